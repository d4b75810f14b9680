#!/bin/sh
# ONNX Runtime fp32 against int8 (QDQ, `sslzoo export --quantize int8`) for
# each bundled ResNet entry, at each batch size in BENCH_BATCHES, through
# cmd/bench-onnx's direct-ort path. Run the fp32 and int8 numbers on the
# same quiet machine; they are only comparable to each other.
#   BENCH_STEPS (20), BENCH_BATCHES ("1 64"), CALIBRATE (256), ENTRIES
# Not measured here yet: the kNN top-1 change (needs an ONNX feature
# source for `sslzoo eval knn`).
set -eu
cd "$(dirname "$0")/.."
STEPS=${BENCH_STEPS:-20}
BATCHES=${BENCH_BATCHES:-"1 64"}
CALIBRATE=${CALIBRATE:-256}
ENTRIES=${ENTRIES:-"byol-resnet18-fmnist mocov2-resnet18-fmnist mocov3-resnet18-fmnist simclr-resnet18-fmnist swav-resnet18-fmnist"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/sslzoo" ./cmd/sslzoo
go build -o "$tmp/bench-onnx" ./cmd/bench-onnx
for e in $ENTRIES; do
	"$tmp/sslzoo" export "$e" --out "$tmp/$e-fp32.onnx" >/dev/null
	"$tmp/sslzoo" export "$e" --quantize int8 --calibrate "$CALIBRATE" --out "$tmp/$e-int8.onnx" >/dev/null
	for b in $BATCHES; do
		for kind in fp32 int8; do
			echo "== $e $kind batch $b"
			"$tmp/bench-onnx" --model "$tmp/$e-$kind.onnx" --batch "$b" --steps "$STEPS" --paths direct-ort
		done
	done
done
