#!/usr/bin/env bash
# make bench: sslzoo against PyTorch on the same workloads, interleaved.
#
# Each round runs ours then PyTorch's train step, then ours then PyTorch's
# eval forward, each in a fresh process (so peak RSS is per workload), so
# both sides see the same machine load over time. Then GEMM at 512^3 and
# 2048^3. The table gives medians over rounds and the ratio ours/PyTorch
# (for peak RSS, PyTorch/ours: above 1 means we use less memory).
#
# PyTorch runs with 2 threads and the glibc malloc setting from DESIGN.md
# that makes it fastest here. OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are left as
# they are, so both sides use the same OpenBLAS kernel.
#
# Knobs (environment): BENCH_STEPS, BENCH_WARMUP, BENCH_ROUNDS, BENCH_BATCH,
# BENCH_GEMM_SIZES ("512 2048"; empty to skip), BENCH_GEMM_STEPS, SSLZOO_BIN.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

steps=${BENCH_STEPS:-20}
warmup=${BENCH_WARMUP:-3}
rounds=${BENCH_ROUNDS:-3}
batch=${BENCH_BATCH:-64}
gemm_sizes=${BENCH_GEMM_SIZES-512 2048}
gemm_steps=${BENCH_GEMM_STEPS:-10}
bin=${SSLZOO_BIN:-bin/sslzoo}
py=/usr/bin/python3
torch_env=(env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296)

[[ -x $bin ]] || { echo "bench: $bin not built (run make build)" >&2; exit 1; }
"$py" -c 'import torch, torchvision' 2>/dev/null || {
	echo "bench: $py cannot import torch/torchvision (apt-get install python3-torch python3-torchvision)" >&2
	exit 1
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT

# run LABEL CMD...: runs one benchmark process and appends its JSON line.
run() {
	local label=$1
	shift
	local out
	if ! out=$("$@"); then
		echo "bench: $label failed: $*" >&2
		exit 1
	fi
	printf '%s\n' "$out" | tail -n 1 >>"$results"
	printf '%s\n' "$out" | tail -n 1 | "$py" -c 'import json,sys; r=json.load(sys.stdin); print("  %-8s %-8s %s" % (r["engine"], r["mode"], ("%.1f images/s" % r["images_per_sec"]) if "images_per_sec" in r else ("%.1f GFLOP/s" % r["gflops"])), "rss %.0f MiB" % r["peak_rss_mib"])' >&2
}

echo "bench: $rounds rounds of $steps steps (+$warmup warm-up), batch $batch, resnet18-cifar" >&2
for ((r = 1; r <= rounds; r++)); do
	echo "round $r/$rounds" >&2
	run "sslzoo train" "$bin" bench train --arch resnet18-cifar --batch "$batch" --steps "$steps" --warmup "$warmup" --json
	run "torch train" "${torch_env[@]}" "$py" scripts/bench_torch.py train --batch "$batch" --steps "$steps" --warmup "$warmup" --threads 2
	run "sslzoo forward" "$bin" bench forward --arch resnet18-cifar --batch "$batch" --steps "$steps" --warmup "$warmup" --json
	run "torch forward" "${torch_env[@]}" "$py" scripts/bench_torch.py forward --batch "$batch" --steps "$steps" --warmup "$warmup" --threads 2
done
for n in $gemm_sizes; do
	echo "gemm $n^3" >&2
	run "sslzoo gemm" "$bin" bench gemm --size "$n" --steps "$gemm_steps" --warmup 1 --json
	run "torch gemm" "${torch_env[@]}" "$py" scripts/bench_torch.py gemm --size "$n" --steps "$gemm_steps" --warmup 1 --threads 2
done

"$py" - "$results" <<'PY'
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def pick(engine, mode, size=None):
    return [r for r in rows if r["engine"] == engine and r["mode"] == mode and (size is None or r.get("size") == size)]
def med(rs, key):
    vals = [r[key] for r in rs if key in r]
    return statistics.median(vals) if vals else None

table = []
def line(metric, ours, theirs, inverse=False, label="ours/pytorch"):
    if ours is None or theirs is None:
        return
    ratio = theirs / ours if inverse else ours / theirs
    table.append((metric, f"{ours:.1f}", f"{theirs:.1f}", f"{ratio:.2f}", label))

for mode in ("train", "forward"):
    o, t = pick("sslzoo", mode), pick("pytorch", mode)
    n = min(len(o), len(t))
    line(f"{mode} images/s (median of {n})", med(o, "images_per_sec"), med(t, "images_per_sec"))
    line(f"{mode} peak RSS MiB", med(o, "peak_rss_mib"), med(t, "peak_rss_mib"), True, "pytorch/ours (>1: ours smaller)")
for size in sorted({r["size"] for r in rows if r["mode"] == "gemm"}):
    o, t = pick("sslzoo", "gemm", size), pick("pytorch", "gemm", size)
    line(f"gemm {size}^3 GFLOP/s (torch.mm)", med(o, "gflops"), med(t, "gflops"))
    line(f"gemm {size}^3 GFLOP/s (raw OpenBLAS)", med(o, "paired_gflops"), med(o, "raw_gflops"), False, "ours/raw OpenBLAS, interleaved in one process")

head = ("metric", "sslzoo", "pytorch", "ratio", "ratio is")
w = [max(len(str(r[i])) for r in table + [head]) for i in range(5)]
fmt = "  ".join("{:<%d}" % w[0] if i == 0 else "{:>%d}" % w[i] if i < 4 else "{:<%d}" % w[i] for i in range(5))
print(fmt.format(*head).rstrip())
for r in table:
    print(fmt.format(*r).rstrip())
o = rows[0] if rows else {}
extra = [f"{k}={o[k]}" for k in ("blas", "conv") if o.get(k)]
if extra:
    print("sslzoo kernels: " + ", ".join(extra))
PY
