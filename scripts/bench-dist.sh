#!/usr/bin/env bash
# make bench-dist: data-parallel scaling. On this machine, over loopback:
#   1. allreduce time and bandwidth between 2 ranks (sslzoo bench allreduce);
#   2. training throughput of one process on every core against 2 mpirun
#      ranks on one core each, interleaved ROUNDS times, same global batch;
#   3. what one step sends: the collectives' calls and bytes per step and
#      the share of the step spent in them (metrics.jsonl's "comm" field).
# Then an estimate, not a measurement, for MACHINES machines like this one
# on a 10 GbE network: each trains the per-rank batch at this machine's
# one-process speed, and a step adds a ring allreduce of the step's bytes at
# LINK_BUSBW bytes/s per rank plus LATENCY seconds per message of the
# step's calls.
#
# Knobs (environment): METHOD (simclr), WIDTH (0.25), SIZE (28), BATCH
# (global, 128), STEPS (30 per run; the first LOG_EVERY are warm-up),
# ROUNDS (2), MACHINES (8), LINK_BUSBW (1.1e9: 10 Gb/s at 88%, TCP's usual
# payload share), LATENCY (30e-6), OUT (/tmp/sslzoo-bench-dist), SSLZOO_BIN.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

method=${METHOD:-simclr}
width=${WIDTH:-0.25}
size=${SIZE:-28}
batch=${BATCH:-128}
steps=${STEPS:-30}
log_every=${LOG_EVERY:-5}
rounds=${ROUNDS:-2}
machines=${MACHINES:-8}
link_busbw=${LINK_BUSBW:-1.1e9}
latency=${LATENCY:-30e-6}
out=${OUT:-/tmp/sslzoo-bench-dist}
bin=${SSLZOO_BIN:-bin/sslzoo}
py=/usr/bin/python3

command -v mpirun >/dev/null || { echo "bench-dist: mpirun not found (make setup installs openmpi-bin)" >&2; exit 1; }
[[ -x $bin ]] || { echo "bench-dist: $bin not built (run make build)" >&2; exit 1; }
cores=$(nproc)
mkdir -p "$out"
rm -rf "${out:?}"/run-* "$out"/allreduce.jsonl

# Loopback TCP, as the tests run it; root needs mpirun's consent twice.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=(mpirun -np 2 --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo)
# Each rank gets its share of the cores for Go and for oneDNN/OpenBLAS.
per_rank=$((cores / 2 > 0 ? cores / 2 : 1))
rank_env=(-x GOMAXPROCS=$per_rank -x OMP_NUM_THREADS=$per_rank -x OPENBLAS_NUM_THREADS=$per_rank)

echo "bench-dist: allreduce between 2 ranks on loopback" >&2
"${mpi[@]}" "$bin" bench allreduce --json --kib 4,64,1024,16384 >"$out/allreduce.jsonl"

train=(train "$method" --data fashion-mnist --arch resnet18-cifar --width "$width" --size "$size" --batch "$batch"
	--steps "$steps" --log-every "$log_every" --knn-every 0 --checkpoint-every 0 --seed 1)
for r in $(seq 1 "$rounds"); do
	echo "bench-dist: round $r/$rounds: 1 process, $cores cores" >&2
	"$bin" "${train[@]}" --out "$out/run-1-$r" >"$out/run-1-$r.log" 2>&1 ||
		{ echo "bench-dist: one-process run failed:" >&2; tail -5 "$out/run-1-$r.log" >&2; exit 1; }
	echo "bench-dist: round $r/$rounds: 2 ranks, $per_rank core(s) each" >&2
	"${mpi[@]}" "${rank_env[@]}" "$bin" "${train[@]}" --out "$out/run-2-$r" >"$out/run-2-$r.log" 2>&1 ||
		{ echo "bench-dist: 2-rank run failed:" >&2; tail -5 "$out/run-2-$r.log" >&2; exit 1; }
done

"$py" - "$out" "$rounds" "$batch" "$machines" "$link_busbw" "$latency" "$method" "$cores" <<'PY'
import json, statistics, sys
out, rounds, batch, machines, busbw, latency, method, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), sys.argv[7], int(sys.argv[8])

def steps(path):
    recs = [json.loads(l) for l in open(path) if '"kind":"step"' in l]
    return recs[1:]  # the first interval holds the warm-up

def rate(k):
    return statistics.median(r["img_per_s"] for i in range(1, rounds + 1) for r in steps(f"{out}/run-{k}-{i}/metrics.jsonl"))

one, two = rate(1), rate(2)
recs = [r for i in range(1, rounds + 1) for r in steps(f"{out}/run-2-{i}/metrics.jsonl")]
per_step = lambda key: statistics.median(r["comm"][key] for r in recs)
calls, mib, comm_s = per_step("calls_per_step"), per_step("mib_per_step"), per_step("s_per_step")
step_s = batch / two
ar = [json.loads(l) for l in open(f"{out}/allreduce.jsonl")]
big = max(ar, key=lambda r: r["bytes"])

# The estimate: every machine trains batch images (the per-rank batch of a
# MACHINES-way run of global batch MACHINES*batch) at this machine's
# one-process speed, then waits for a ring allreduce of the step's bytes.
compute_s = batch / one
k = machines
bytes_ = mib * 2**20
ring_s = 2 * (k - 1) / k * bytes_ / busbw + calls * 2 * (k - 1) * latency
est_step = compute_s + ring_s
est_rate = k * batch / est_step

print(f"Data-parallel {method}, ResNet-18 CIFAR stem, global batch {batch} unless said; this machine: {cores} cores, loopback TCP.")
print()
print("| setup | images/s | vs 1 process | per step: collectives, MiB, time in them |")
print("| --- | ---: | ---: | --- |")
print(f"| 1 process, {cores} cores (measured) | {one:.1f} | 1.00x | none |")
print(f"| 2 ranks on this machine, {max(cores // 2, 1)} core(s) each (measured) | {two:.1f} | {two / one:.2f}x | {calls:.0f} calls, {mib:.2f} MiB, {comm_s * 1e3:.1f} ms of {step_s * 1e3:.0f} ms ({100 * comm_s / step_s:.1f}%) |")
print(f"| {k} machines like this one, 10 GbE (estimated, global batch {k * batch}) | {est_rate:.0f} | {est_rate / one:.2f}x | {calls:.0f} calls, {mib:.2f} MiB: {ring_s * 1e3:.1f} ms of {est_step * 1e3:.0f} ms ({100 * ring_s / est_step:.1f}%) |")
print()
print(f"Loopback allreduce of {big['bytes'] // 2**20} MiB between 2 ranks: {big['seconds'] * 1e3:.1f} ms, bus bandwidth {big['busbw_bytes_per_s'] / 1e9:.2f} GB/s.")
print(f"Estimate: {k} x {batch} images at {one:.1f} img/s each ({compute_s * 1e3:.0f} ms) plus a ring allreduce of {mib:.2f} MiB at {busbw / 1e9:.2f} GB/s bus bandwidth and {latency * 1e6:.0f} us per message of {calls:.0f} calls ({ring_s * 1e3:.1f} ms); no overlap of communication with compute assumed.")
PY
