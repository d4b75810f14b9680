#!/usr/bin/env bash
# make bench-int8: ONNX Runtime on fp32 against int8 QDQ exports
# (`sslzoo export NAME --quantize int8`) of each bundled ResNet entry:
# images/s at each batch size in BENCH_BATCHES (cmd/bench-onnx, direct-ort
# path, the two files alternating round by round so that machine load hits
# both alike; medians over rounds), and the kNN top-1 of each file on the
# entry's data set (`sslzoo eval knn --model`, the same protocol as the
# entry's listed metric). One Markdown row per entry, thread count and
# batch on stdout.
#   BENCH_STEPS (20), BENCH_ROUNDS (3), BENCH_BATCHES ("1 64"),
#   BENCH_THREADS ("2 1": ONNX Runtime's intra-op threads, both files alike),
#   CALIBRATE (256), ENTRIES (every bundled ResNet entry), KNN_LIMIT_TRAIN /
#   KNN_LIMIT_TEST (0: the whole splits)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps=${BENCH_STEPS:-20}
rounds=${BENCH_ROUNDS:-3}
batches=${BENCH_BATCHES:-1 64}
threads=${BENCH_THREADS:-2 1}
calibrate=${CALIBRATE:-256}
say() { printf 'bench-int8: %s\n' "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sslzoo-bench-int8.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/sslzoo" ./cmd/sslzoo
go build -o "$work/bench-onnx" ./cmd/bench-onnx
# Every bundled entry with a ResNet backbone, as `sslzoo list` shows them.
listed=$("$work/sslzoo" list)
entries=${ENTRIES:-$(awk '$3 ~ /^resnet/ && $NF == "bundled" {print $1}' <<<"$listed")}
[[ -n $entries ]] || { say "no bundled ResNet entries found (sslzoo list)"; exit 1; }
# dataset is the entry's data set (the DATA column), which its kNN runs on.
dataset() { awk -v e="$1" '$1 == e {print $(NF-1)}' <<<"$listed"; }

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
top1() {
	"$work/sslzoo" eval knn --model "$1" --data "$2" --engine ort --limit-train "${KNN_LIMIT_TRAIN:-0}" --limit-test "${KNN_LIMIT_TEST:-0}" --json |
		/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["top1"])'
}

echo "| entry | threads | batch | fp32 images/s | int8 images/s | int8 speed-up | fp32 kNN top-1 | int8 kNN top-1 | change (points) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for e in $entries; do
	say "$e: exporting fp32 and int8 (calibrated on $calibrate images)"
	"$work/sslzoo" export "$e" --out "$work/fp32.onnx" >/dev/null
	"$work/sslzoo" export "$e" --quantize int8 --calibrate "$calibrate" --out "$work/int8.onnx" >/dev/null
	say "$e: kNN top-1 of both files"
	data=$(dataset "$e")
	[[ -n $data ]] || { say "$e is not in sslzoo list"; exit 1; }
	k32=$(top1 "$work/fp32.onnx" "$data")
	k8=$(top1 "$work/int8.onnx" "$data")
	for th in $threads; do
		for b in $batches; do
			# At least 1,000 images a measurement: 20 single-image forwards
			# take a few milliseconds, under the machine's noise.
			n=$((steps > 1000 / b ? steps : 1000 / b))
			: >"$work/fp32.txt"
			: >"$work/int8.txt"
			for ((r = 1; r <= rounds; r++)); do
				for kind in fp32 int8; do
					"$work/bench-onnx" --model "$work/$kind.onnx" --batch "$b" --steps "$n" --threads "$th" --paths direct-ort |
						/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_sec"])' >>"$work/$kind.txt"
				done
			done
			f=$(median <"$work/fp32.txt")
			q=$(median <"$work/int8.txt")
			/usr/bin/python3 -c 'import sys; e,th,b,f,q,k32,k8=sys.argv[1:]; f,q,k32,k8=map(float,(f,q,k32,k8)); print("| %s | %s | %s | %.1f | %.1f | %.2fx | %.2f%% | %.2f%% | %+.2f |" % (e,th,b,f,q,q/f,100*k32,100*k8,100*(k8-k32)))' "$e" "$th" "$b" "$f" "$q" "$k32" "$k8"
		done
	done
done
