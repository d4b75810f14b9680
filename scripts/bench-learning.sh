#!/usr/bin/env bash
# make bench-learning: proof of learning. Each method pretrains a ResNet-18
# (CIFAR stem, WIDTH) on Fashion-MNIST train without labels, in sslzoo and
# in PyTorch (scripts/learning_torch.py, or learning_torch_cluster.py for
# the DeepClusters: the same recipe read from the Go run's metadata); then `sslzoo eval knn` (k 200, T 0.1, cosine; train split
# as the bank, test split classified) scores both backbones with one
# protocol, beside a randomly initialised backbone and raw pixels.
#
# The table gives kNN top-1 for ours and PyTorch's, their difference, and
# training seconds per epoch (data loading included, evaluation excluded).
# Per method the Go run goes first (PyTorch needs its config), so both see
# the machine in the same state within a minute of each other.
#
# Knobs (environment):
#   BUDGET   minutes of training per method and engine (default 5); the
#            epoch count comes from a short calibration run of ours. "tiny"
#            checks the harness in a few minutes (512 images, 1 epoch, small
#            evaluation) and proves nothing about learning.
#   EPOCHS   set to skip the calibration; LIMIT training images (0: all
#            60000); WIDTH (0.25); SIZE (28, Fashion-MNIST's own); BATCH
#            (128); SEED (1); METHODS: any of simclr mocov2 mocov3 byol
#            swav barlow vicreg simsiam dino jigsaw deepcluster
#            deepclusterv2 (default the first five, so that tables made
#            before the others had twins stay comparable)
#   RECIPE   "cifar" (the default) trains with `sslzoo train --recipe cifar`,
#            solo-learn's CIFAR-10 hyperparameters for small images;
#            "paper" with each method's published ImageNet recipe. Jigsaw
#            and DeepCluster (v1) have no cifar recipe (solo-learn has
#            configs for neither), so they always train with their paper
#            recipes; their rows say so.
#   EVAL_LIMIT_TRAIN / EVAL_LIMIT_TEST  kNN bank / test images (0: all)
#   OUT      result folder (default /tmp/sslzoo-bench-learning); SSLZOO_BIN
#
# Resuming: a run can be stopped and started again with the same OUT and
# knobs (or split over sessions with METHODS=...): training runs whose
# final.safetensors exists and table rows already in OUT/results.jsonl are
# kept, so only the missing work runs. OUT/knobs records the settings, and
# a different setting in the same OUT is refused. Delete OUT to start over.
#
# PyTorch runs with 2 threads, 2 DataLoader workers and the glibc malloc
# setting from DESIGN.md; ours with GOMAXPROCS as it is. OPENBLAS_* is left
# alone, so both use the same OpenBLAS kernel.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

budget=${BUDGET:-5}
methods=${METHODS:-simclr mocov2 mocov3 byol swav}
width=${WIDTH:-0.25}
size=${SIZE:-28}
batch=${BATCH:-128}
recipe=${RECIPE:-cifar}
limit=${LIMIT:-0}
seed=${SEED:-1}
epochs=${EPOCHS:-}
eval_train=${EVAL_LIMIT_TRAIN:-0}
eval_test=${EVAL_LIMIT_TEST:-0}
out=${OUT:-/tmp/sslzoo-bench-learning}
bin=${SSLZOO_BIN:-bin/sslzoo}
py=/usr/bin/python3
torch_env=(env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296)

if [[ $budget == tiny ]]; then
	limit=${LIMIT:-512} batch=${BATCH:-64} epochs=${EPOCHS:-1} width=${WIDTH:-0.25}
	eval_train=${EVAL_LIMIT_TRAIN:-2000} eval_test=${EVAL_LIMIT_TEST:-500}
elif ! [[ $budget =~ ^[0-9]+([.][0-9]+)?$ ]]; then
	echo "bench-learning: BUDGET=$budget: want minutes (e.g. 5) or tiny" >&2
	exit 1
fi
[[ -x $bin ]] || { echo "bench-learning: $bin not built (run make build)" >&2; exit 1; }
"$py" -c 'import torch, torchvision' 2>/dev/null || {
	echo "bench-learning: $py cannot import torch/torchvision (apt-get install python3-torch python3-torchvision)" >&2
	exit 1
}
mkdir -p "$out"
results=$out/results.jsonl
touch "$results"

common=(--data fashion-mnist --arch resnet18-cifar --width "$width" --size "$size" --batch "$batch" --seed "$seed" --knn-every 0 --checkpoint-every 0)
[[ $limit != 0 ]] && common+=(--limit "$limit")
evalargs=(--data fashion-mnist --json)
[[ $eval_train != 0 ]] && evalargs+=(--limit-train "$eval_train")
[[ $eval_test != 0 ]] && evalargs+=(--limit-test "$eval_test")

case $recipe in
cifar | paper) ;;
*) echo "bench-learning: RECIPE=$recipe: want cifar or paper" >&2; exit 1 ;;
esac
# recipe_of METHOD: the recipe METHOD trains with (jigsaw and deepcluster
# have the paper's only).
recipe_of() { if [[ $1 == jigsaw || $1 == deepcluster ]]; then echo paper; else echo "$recipe"; fi; }
# twin_of METHOD: the PyTorch twin script of METHOD.
twin_of() { if [[ $1 == deepcluster* ]]; then echo scripts/learning_torch_cluster.py; else echo scripts/learning_torch.py; fi; }

# mean_epoch_s DIR: mean seconds per epoch from a Go run's metrics.jsonl.
mean_epoch_s() {
	"$py" -c 'import json,sys; e=[json.loads(l)["epoch_s"] for l in open(sys.argv[1]) if "\"kind\":\"epoch\"" in l]; print(sum(e)/len(e))' "$1/metrics.jsonl"
}

# knobs: the settings every result in OUT was made with; the epoch count
# is added once known, so a resumed run does not calibrate again.
knobs="width=$width size=$size batch=$batch recipe=$recipe limit=$limit seed=$seed eval_train=$eval_train eval_test=$eval_test"
if [[ -s $out/knobs ]]; then
	saved=$(cat "$out/knobs")
	[[ ${saved% epochs=*} == "$knobs" ]] || {
		echo "bench-learning: $out holds results made with [$saved], not [$knobs]; use another OUT or delete it" >&2
		exit 1
	}
	saved_epochs=${saved##* epochs=}
	[[ -n $epochs && $epochs != "$saved_epochs" ]] && {
		echo "bench-learning: $out holds $saved_epochs-epoch results; EPOCHS=$epochs needs another OUT" >&2
		exit 1
	}
	epochs=$saved_epochs
fi

if [[ -z $epochs ]]; then
	# Calibration: ten steps of SimCLR give images/s; the epoch count fills
	# the budget at that rate (heavier methods, SwAV's multi-crop above
	# all, take longer).
	cal=$out/calibration
	"$bin" train simclr "${common[@]}" --recipe "$recipe" --limit $((batch * 10)) --epochs 1 --out "$cal" >/dev/null 2>"$cal.log" ||
		{ echo "bench-learning: calibration run failed:" >&2; cat "$cal.log" >&2; exit 1; }
	n=$limit
	[[ $n == 0 ]] && n=60000
	epochs=$("$py" -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if "\"kind\":\"epoch\"" in l][-1]; print(max(1, int(float(sys.argv[2])*60*r["img_per_s"]/int(sys.argv[3]))))' \
		"$cal/metrics.jsonl" "$budget" "$n")
	echo "bench-learning: calibration $(mean_epoch_s "$cal")s for $((batch * 10)) images -> $epochs epoch(s) of $n images in ~$budget min" >&2
fi
echo "$knobs epochs=$epochs" >"$out/knobs"
echo "bench-learning: methods [$methods], ResNet-18 CIFAR stem width $width, batch $batch, $recipe recipe, $epochs epoch(s), limit ${limit/#0/all}, results in $out" >&2

# has_row NAME: whether results.jsonl already has that row.
has_row() { grep -q "\"row\": \"$1\"" "$results"; }

for m in $methods; do
	gdir=$out/$m-sslzoo tdir=$out/$m-torch
	if has_row "$m"; then
		echo "== $m: in $results already" >&2
		continue
	fi
	if [[ -s $gdir/final.safetensors ]]; then
		echo "== $m: sslzoo run kept ($gdir)" >&2
	else
		echo "== $m: sslzoo" >&2
		"$bin" train "$m" "${common[@]}" --recipe "$(recipe_of "$m")" --epochs "$epochs" --out "$gdir" >"$gdir.log" 2>&1 ||
			{ echo "bench-learning: sslzoo train $m failed:" >&2; tail -5 "$gdir.log" >&2; exit 1; }
	fi
	if [[ -s $tdir/final.safetensors && -s $tdir.json ]]; then
		echo "== $m: pytorch run kept ($tdir)" >&2
	else
		echo "== $m: pytorch" >&2
		"${torch_env[@]}" "$py" "$(twin_of "$m")" --like "$gdir/final.safetensors" --out "$tdir" --threads 2 --workers 2 \
			>"$tdir.json" 2>"$tdir.log" || { echo "bench-learning: $(twin_of "$m") $m failed:" >&2; tail -5 "$tdir.log" >&2; exit 1; }
	fi
	echo "== $m: kNN" >&2
	go_knn=$("$bin" eval knn --checkpoint "$gdir/final.safetensors" "${evalargs[@]}")
	torch_knn=$("$bin" eval knn --checkpoint "$tdir/final.safetensors" "${evalargs[@]}")
	"$py" - "$m" "$go_knn" "$torch_knn" "$(mean_epoch_s "$gdir")" "$tdir.json" "$epochs" "$(recipe_of "$m")" "$recipe" >>"$results" <<'PY'
import json, sys
m, g, t, gs, tj, ep = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4]), json.loads(open(sys.argv[5]).read().strip().splitlines()[-1]), int(sys.argv[6])
row = {"row": m, "epochs": ep, "ours_top1": g["top1"], "torch_top1": t["top1"], "ours_top5": g["top5"], "torch_top5": t["top5"],
       "ours_epoch_s": gs, "torch_epoch_s": tj["mean_epoch_s"], "test_images": g["test_images"]}
if sys.argv[7] != sys.argv[8]:
    row["recipe"] = sys.argv[7]  # trained with another recipe than the table's
print(json.dumps(row))
PY
done

if ! has_row random-init; then
	# The baselines need any finished run's checkpoint for the backbone's
	# config (the weights are not used).
	ref=$(ls "$out"/*-sslzoo/final.safetensors 2>/dev/null | head -1)
	[[ -n $ref ]] || { echo "bench-learning: no finished sslzoo run in $out for the baselines" >&2; exit 1; }
	echo "== baselines: random init, raw pixels" >&2
	rnd=$("$bin" eval knn --checkpoint "$ref" --random-init --seed "$seed" "${evalargs[@]}")
	pix=$("$bin" eval knn --checkpoint "$ref" --pixels "${evalargs[@]}")
	"$py" - "$rnd" "$pix" >>"$results" <<'PY'
import json, sys
for name, s in (("random-init", sys.argv[1]), ("pixels", sys.argv[2])):
    r = json.loads(s)
    print(json.dumps({"row": name, "ours_top1": r["top1"], "ours_top5": r["top5"], "test_images": r["test_images"]}))
PY
fi

"$py" - "$results" "$width" "$batch" "$epochs" "$recipe" <<'PY' | tee "$out/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows.sort(key=lambda r: "torch_top1" not in r)  # methods first, then the baselines
print("kNN top-1 on Fashion-MNIST test (k 200, T 0.1), ResNet-18 CIFAR stem width %s, batch %s, %s epoch(s), %s recipe"
      % (sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]))
print()
print("| backbone | epochs | sslzoo kNN top-1 | PyTorch kNN top-1 | sslzoo - PyTorch | sslzoo s/epoch | PyTorch s/epoch | time ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
pct = lambda v: "%.2f%%" % (100 * v)
for r in rows:
    if "torch_top1" in r:
        name = r["row"] + (" (%s recipe)" % r["recipe"] if "recipe" in r else "")
        print("| %s | %d | %s | %s | %+.2f | %.1f | %.1f | %.2f |" % (name, r["epochs"], pct(r["ours_top1"]), pct(r["torch_top1"]),
              100 * (r["ours_top1"] - r["torch_top1"]), r["ours_epoch_s"], r["torch_epoch_s"], r["ours_epoch_s"] / r["torch_epoch_s"]))
    else:
        print("| %s | - | %s | - | - | - | - | - |" % (r["row"], pct(r["ours_top1"])))
print()
print("%d test images; time ratio = sslzoo/PyTorch seconds per epoch (below 1: sslzoo faster)." % rows[0]["test_images"])
PY
