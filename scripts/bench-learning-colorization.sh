#!/usr/bin/env bash
# make bench-learning-colorization: proof of learning for Colorization on
# the emoji set, in sslzoo and in its PyTorch twin of the same recipe
# (scripts/learning_torch_colorization.py, which reads the recipe from the
# Go run's metadata). Both backbones, a randomly initialised one and raw
# pixels are scored by `sslzoo eval knn --data emoji` on the 9 categories
# (all 3,261 training images as the bank, the 520 test images classified).
# The pictures come from `sslzoo colorize` (README, Colorization on emoji).
#
# Knobs (environment): EPOCHS (40), SIZE (48), WIDTH (0.25), BATCH (64),
# LR (2e-3: the paper's 3e-5 at batch 40 is meant for 450k steps), SEED (1),
# OUT (/tmp/sslzoo-bench-learning-colorization), SSLZOO_BIN. TINY=1 checks
# the harness in a few minutes (512 images, 2 epochs) and proves nothing.
# Finished training runs in OUT are kept, so a stopped run can be started
# again with the same knobs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

epochs=${EPOCHS:-40} size=${SIZE:-48} width=${WIDTH:-0.25} batch=${BATCH:-64} lr=${LR:-2e-3} seed=${SEED:-1}
out=${OUT:-/tmp/sslzoo-bench-learning-colorization}
bin=${SSLZOO_BIN:-bin/sslzoo}
py=/usr/bin/python3
torch_env=(env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296)
limit=()
[[ ${TINY:-0} == 1 ]] && epochs=2 limit=(--limit 512)

[[ -x $bin ]] || { echo "bench-learning-colorization: $bin not built (run make build)" >&2; exit 1; }
"$py" -c 'import torch, torchvision, PIL' 2>/dev/null || {
	echo "bench-learning-colorization: $py cannot import torch/torchvision/PIL (apt-get install python3-torch python3-torchvision python3-pil)" >&2
	exit 1
}
mkdir -p "$out"
knobs="epochs=$epochs size=$size width=$width batch=$batch lr=$lr seed=$seed tiny=${TINY:-0}"
if [[ -s $out/knobs && $(cat "$out/knobs") != "$knobs" ]]; then
	echo "bench-learning-colorization: $out holds runs made with [$(cat "$out/knobs")], not [$knobs]; use another OUT or delete it" >&2
	exit 1
fi
echo "$knobs" >"$out/knobs"

# run NAME DONE-FILE CMD...: a step whose output goes to $out/NAME.log,
# skipped when DONE-FILE exists; on failure the log's tail, and stop.
run() {
	local name=$1 done=$2
	shift 2
	if [[ -s $done ]]; then echo "== $name: kept" >&2; return; fi
	echo "== $name" >&2
	"$@" >"$out/$name.log" 2>&1 || { echo "bench-learning-colorization: $name failed:" >&2; tail -5 "$out/$name.log" >&2; exit 1; }
}

g=$out/colorization-sslzoo t=$out/colorization-torch
run colorization-sslzoo "$g/final.safetensors" "$bin" train colorization --data emoji --size "$size" --width "$width" \
	--epochs "$epochs" --batch "$batch" --lr "$lr" --seed "$seed" "${limit[@]}" --knn-every 0 --checkpoint-every 0 --out "$g"
if [[ -s $t/final.safetensors && -s $t.json ]]; then
	echo "== colorization-torch: kept" >&2
else
	echo "== colorization-torch" >&2
	# stdout is the twin's JSON line; its progress goes to the log.
	"${torch_env[@]}" "$py" scripts/learning_torch_colorization.py --like "$g/final.safetensors" --out "$t" --threads 2 --workers 2 \
		>"$t.json" 2>"$out/colorization-torch.log" ||
		{ echo "bench-learning-colorization: learning_torch_colorization.py failed:" >&2; tail -5 "$out/colorization-torch.log" >&2; exit 1; }
fi

echo "== kNN" >&2
knn() { "$bin" eval knn --checkpoint "$g/final.safetensors" --data emoji --json "$@"; }
ours=$(knn) rnd=$(knn --random-init --seed "$seed") pix=$(knn --pixels)
theirs=$("$bin" eval knn --checkpoint "$t/final.safetensors" --data emoji --json)
"$py" - "$ours" "$theirs" "$rnd" "$pix" "$g/metrics.jsonl" "$t.json" "$knobs" <<'PY' | tee "$out/table.md"
import json, sys
ours, theirs, rnd, pix = (json.loads(a) for a in sys.argv[1:5])
go_s = [json.loads(l)["epoch_s"] for l in open(sys.argv[5]) if '"kind":"epoch"' in l]
torch = json.loads(open(sys.argv[6]).read().strip().splitlines()[-1])
pct = lambda r: "%.2f%%" % (100 * r["top1"])
print("Colorization on emoji (%s): kNN top-1 on the 9 categories, %d test images" % (sys.argv[7], ours["test_images"]))
print()
print("| backbone | kNN top-1 | s/epoch |")
print("| --- | ---: | ---: |")
print("| sslzoo Colorization | %s | %.1f |" % (pct(ours), sum(go_s) / len(go_s)))
print("| PyTorch Colorization | %s | %.1f |" % (pct(theirs), torch["mean_epoch_s"]))
print("| random init | %s | |" % pct(rnd))
print("| raw pixels | %s | |" % pct(pix))
print()
print("time ratio (sslzoo/PyTorch seconds per epoch): %.2f" % (sum(go_s) / len(go_s) / torch["mean_epoch_s"]))
PY
