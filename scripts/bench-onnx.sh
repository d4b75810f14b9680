#!/usr/bin/env bash
# make bench-onnx: ONNX serving speed, three comparisons on the exported
# ResNet-18 (CIFAR stem, 32x32) and ViT-tiny (224x224), at batch 1 and 64:
#
#   1. ONNX Runtime (through sslzoo) against PyTorch eager on the same
#      network and weights (PyTorch loads the ONNX file's initializers and
#      must reproduce ONNX Runtime's output before it is timed);
#   2. sslzoo's runtime against onnxruntime_go called directly: the
#      overhead of our API (target: at most 5% at batch 64);
#   3. sslzoo's Go engine against ONNX Runtime.
#
# Each round runs, per model and batch size, each path in a cmd/bench-onnx
# process of its own (their order rotating by round) and then PyTorch, so
# all see the same machine load. The table gives medians over rounds. PyTorch runs with the
# glibc malloc setting from DESIGN.md; ONNX Runtime and PyTorch both get
# BENCH_THREADS threads; OPENBLAS_* are left as they are.
#
# Knobs (environment): BENCH_STEPS (20), BENCH_WARMUP (3), BENCH_ROUNDS (3),
# BENCH_BATCHES ("1 64"), BENCH_ARCHS ("resnet18-cifar vit-tiny"),
# BENCH_THREADS (2), BENCH_PATHS ("sslzoo-ort,direct-ort,go"). For a quick
# check of the harness: BENCH_STEPS=2 BENCH_WARMUP=0 BENCH_ROUNDS=1 BENCH_BATCHES=2.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

steps=${BENCH_STEPS:-20}
warmup=${BENCH_WARMUP:-3}
rounds=${BENCH_ROUNDS:-3}
batches=${BENCH_BATCHES:-1 64}
archs=${BENCH_ARCHS:-resnet18-cifar vit-tiny}
threads=${BENCH_THREADS:-2}
paths=${BENCH_PATHS:-sslzoo-ort,direct-ort,go}
bin=${SSLZOO_BIN:-bin/sslzoo}
py=/usr/bin/python3
torch_env=(env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296)

say() { printf 'bench-onnx: %s\n' "$*" >&2; }

[[ -x $bin ]] || { say "$bin not built (run make build)"; exit 1; }
"$py" -c 'import torch, torchvision, onnx, numpy' 2>/dev/null || {
	say "$py cannot import torch/torchvision/onnx/numpy (apt-get install python3-torch python3-torchvision python3-onnx python3-numpy)"
	exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/sslzoo-bench-onnx.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/bench-onnx" ./cmd/bench-onnx

results=$work/results.jsonl
IFS=, read -r -a path_list <<<"$paths"
for arch in $archs; do
	model=$work/$arch.onnx
	"$bin" export --arch "$arch" --seed 1 --out "$model" >&2
	# PyTorch must compute what ONNX Runtime computes before it is timed.
	size=$("$py" -c 'import onnx,sys; print(onnx.load(sys.argv[1], load_external_data=False).graph.input[0].type.tensor_type.shape.dim[2].dim_value)' "$model")
	"$py" -c 'import numpy as np,sys; np.save(sys.argv[1], np.random.default_rng(0).standard_normal((2,3,int(sys.argv[2]),int(sys.argv[2])), dtype=np.float32))' "$work/x.npy" "$size"
	"$bin" embed --engine ort --model "$model" --input "$work/x.npy" --out "$work/y.npy" >&2
	"${torch_env[@]}" "$py" scripts/bench_onnx_torch.py --arch "$arch" --onnx "$model" --batch 2 --steps 1 --warmup 0 \
		--threads "$threads" --check-in "$work/x.npy" --check-out "$work/y.npy" >/dev/null
done

say "$rounds rounds of $steps steps (+$warmup warm-up), batches $batches, $threads threads"
for ((r = 1; r <= rounds; r++)); do
	for arch in $archs; do
		for b in $batches; do
			say "round $r/$rounds: $arch batch $b"
			# Each path runs in a process of its own, their order rotating by
			# round: ONNX Runtime's pool threads spin on after its runs, and in
			# one process they took the cores from whatever ran next (the Go
			# engine's ResNet-18 at batch 1: 8.6 ms beside ORT, 4.8 ms alone;
			# a second ORT session likewise).
			for ((i = 0; i < ${#path_list[@]}; i++)); do
				p=${path_list[$(((i + r) % ${#path_list[@]}))]}
				"$work/bench-onnx" --model "$work/$arch.onnx" --batch "$b" --steps "$steps" --warmup "$warmup" \
					--threads "$threads" --paths "$p" | sed "s/^{/{\"arch\":\"$arch\",/" >>"$results"
			done
			"${torch_env[@]}" "$py" scripts/bench_onnx_torch.py --arch "$arch" --onnx "$work/$arch.onnx" --batch "$b" \
				--steps "$steps" --warmup "$warmup" --threads "$threads" | sed "s/^{/{\"arch\":\"$arch\",/" >>"$results"
		done
	done
done

"$py" - "$results" <<'PY'
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(arch, batch, engine):
    v = [r["images_per_sec"] for r in rows if r["arch"] == arch and r["batch"] == batch and r["engine"] == engine]
    return statistics.median(v) if v else None

keys = sorted({(r["arch"], r["batch"]) for r in rows}, key=lambda k: (k[0], k[1]))
fmt = "{:<15} {:>5}  {:>10} {:>10} {:>10} {:>10}  {:>9} {:>9} {:>9}"
print(fmt.format("model", "batch", "ort img/s", "torch", "direct", "go engine", "ort/torch", "overhead", "go/ort"))
for arch, b in keys:
    o, t, d, g = (med(arch, b, e) for e in ("sslzoo-ort", "torch", "direct-ort", "go"))
    f = lambda v: "-" if v is None else f"{v:.1f}"
    ratio = lambda a, c: "-" if a is None or c is None else f"{a / c:.2f}"
    # Overhead: how much slower sslzoo's runtime is than onnxruntime_go direct.
    over = "-" if o is None or d is None else f"{(d / o - 1) * 100:+.1f}%"
    print(fmt.format(arch, b, f(o), f(t), f(d), f(g), ratio(o, t), over, ratio(g, o)))
print("ort/torch and go/ort: throughput ratios (above 1: the first is faster); overhead: sslzoo runtime time over direct onnxruntime_go (target <= +5% at batch 64)")
PY
