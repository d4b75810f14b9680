#!/usr/bin/env bash
# make bench-engines: the Go engine against ONNX Runtime as a user runs
# them: whole `sslzoo embed --model M --engine go|ort --input X.npy`
# processes, timed from outside. Each (model, batch) runs twice per engine,
# on one batch of rows and on BIG batches; the difference removes start-up
# (loading the library and the model, planning, the first run), so
# rows/s = (BIG-1)*batch / (t_big - t_one). The engines alternate round by
# round; medians over rounds. One Markdown row per model and batch.
#   BENCH_ROUNDS (3), BENCH_BATCHES ("1 64"), BENCH_ARCHS ("resnet18-cifar vit-tiny"),
#   BENCH_THREADS (2: ONNX Runtime's threads and the Go engine's GOMAXPROCS),
#   BIG_ROWS (1024: rows of the long run, a quarter for ViT, at least 8 batches: see batches_for)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${BENCH_ROUNDS:-3}
batches=${BENCH_BATCHES:-1 64}
archs=${BENCH_ARCHS:-resnet18-cifar vit-tiny}
threads=${BENCH_THREADS:-2}
bin=${SSLZOO_BIN:-bin/sslzoo}
py=/usr/bin/python3
say() { printf 'bench-engines: %s\n' "$*" >&2; }

[[ -x $bin ]] || { say "$bin not built (run make build)"; exit 1; }
"$py" -c 'import numpy' 2>/dev/null || { say "$py cannot import numpy (apt-get install python3-numpy)"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/sslzoo-bench-engines.XXXXXX")
trap 'rm -rf "$work"' EXIT

# batches_for ARCH BATCH: how many batches the long run embeds (ViT-tiny at 224
# px costs ~25x a 32-px ResNet-18 row).
batches_for() {
	local big=$((${BIG_ROWS:-1024} / $2))
	[[ $1 == vit-* ]] && big=$((big / 4))
	echo $((big > 8 ? big : 8))
}

# seconds CMD...: wall time of one process; a failing one stops the bench.
seconds() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>"$work/err" || { say "failed: $* ($(tail -1 "$work/err"))"; exit 1; }
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

echo "| model | batch | rows timed | ONNX Runtime rows/s | Go engine rows/s | Go engine/ORT |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for arch in $archs; do
	model=$work/$arch.onnx
	"$bin" export --arch "$arch" --seed 1 --out "$model" >/dev/null 2>&1
	size=$("$py" -c 'import onnx,sys; print(onnx.load(sys.argv[1], load_external_data=False).graph.input[0].type.tensor_type.shape.dim[2].dim_value)' "$model")
	for b in $batches; do
		big=$(batches_for "$arch" "$b")
		for n in 1 "$big"; do
			"$py" -c 'import numpy as np,sys; r,s=int(sys.argv[2]),int(sys.argv[3]); np.save(sys.argv[1], np.random.default_rng(0).standard_normal((r,3,s,s), dtype=np.float32))' \
				"$work/x$n.npy" $((n * b)) "$size"
		done
		: >"$work/ort.txt"
		: >"$work/go.txt"
		for ((r = 1; r <= rounds; r++)); do
			say "round $r/$rounds: $arch batch $b ($big batches against 1)"
			order="ort go"
			((r % 2 == 0)) && order="go ort"
			for engine in $order; do
				run=(env GOMAXPROCS="$threads" "$bin" embed --model "$model" --engine "$engine" --threads "$threads" --batch "$b")
				t1=$(seconds "${run[@]}" --input "$work/x1.npy" --out "$work/y1.npy")
				tn=$(seconds "${run[@]}" --input "$work/x$big.npy" --out "$work/y$big.npy")
				"$py" -c 'import sys; t1,tn,rows=map(float,sys.argv[1:]); print(rows/(tn-t1) if tn>t1 else 0)' "$t1" "$tn" $(((big - 1) * b)) >>"$work/$engine.txt"
			done
		done
		o=$(median <"$work/ort.txt")
		g=$(median <"$work/go.txt")
		"$py" -c 'import sys; a,b,rows,o,g=sys.argv[1:]; o,g=float(o),float(g); print("| %s | %s | %s | %.1f | %.1f | %.2f |" % (a,b,rows,o,g,g/o if o else 0))' \
			"$arch" "$b" $(((big - 1) * b)) "$o" "$g"
	done
done
