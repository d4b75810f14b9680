# sslzoo developer entry points. `make help` lists them.
SHELL := /usr/bin/env bash
GO ?= go
# Per test binary; the whole suite is meant to stay well under 10 minutes on 2 cores.
TEST_TIMEOUT ?= 15m
# Benchmark size; override on the command line, e.g. `make bench BENCH_STEPS=5 BENCH_ROUNDS=1`.
BENCH_STEPS ?= 20
BENCH_WARMUP ?= 3
BENCH_ROUNDS ?= 3
BENCH_BATCH ?= 64
# -tags mpi (package dist speaks Open MPI) where mpicc is on PATH and cgo can
# find libmpi through pkg-config. Recursive (=), so that it is read when a
# recipe runs, after `setup` has installed Open MPI. `make build GOTAGS=` opts out.
GOTAGS = $(if $(shell command -v mpicc >/dev/null 2>&1 && pkg-config --exists ompi 2>/dev/null && echo y),-tags mpi)

.PHONY: help setup build test demo bench fmt lint vet clean

help:
	@echo "make demo   - install what is missing, then pull a bundled encoder, embed Fashion-MNIST, print kNN accuracy and ONNX parity"
	@echo "make test   - install what is missing, then go vet, go test ./... and sslzoo conformance --reduced"
	@echo "make build  - build bin/sslzoo"
	@echo "make bench  - sslzoo vs PyTorch, interleaved (BENCH_STEPS, BENCH_ROUNDS, BENCH_BATCH)"
	@echo "make bench-learning - proof of learning: each SSL method in sslzoo and PyTorch, kNN on Fashion-MNIST (BUDGET=minutes|tiny)"
	@echo "make bench-dist - data-parallel scaling: 1 process vs 2 mpirun ranks, allreduce bandwidth, bytes per step, 8-machine 10 GbE estimate"
	@echo "make bench-learning-masked - proof of learning for MAE (kNN/linear vs random-init ViT) and MLM on Brown (vs unigram), each beside PyTorch"
	@echo "make bench-learning-colorization - proof of learning for Colorization on emoji (kNN on its 9 categories) beside PyTorch"
	@echo "make fmt    - gofmt the tree"
	@echo "make lint   - gofmt check, go vet, staticcheck when installed"
	@echo "make conformance - every backbone at full size and every op: ONNX Runtime, Go engine, onnxruntime-node vs Go"
	@echo "make verify-zoo  - rerun every bundled entry's listed metric and check it within 0.3 points"
	@echo "make bench-embed - sslzoo embed on 10,000 PNG files vs the same images as one tensor, interleaved (EMBED_N, EMBED_REPS)"
	@echo "make bench-serve - sslzoo serve under load: batching on/off, v2 json/binary, OpenAI, vs in-process; soak RSS (SERVE_MODEL, SERVE_CELL, SERVE_SOAK)"
	@echo "make fuzz   - every Go fuzz target for FUZZTIME each (default 60s); make test runs each for FUZZ_SMOKE (3s)"
	@echo "make bench-onnx  - ONNX Runtime vs PyTorch eager, sslzoo runtime vs raw onnxruntime_go, Go engine vs ORT (BENCH_STEPS, BENCH_ROUNDS, BENCH_BATCHES)"
	@echo "make bench-engines - Go engine vs ORT as whole sslzoo embed processes, start-up subtracted (BENCH_ROUNDS, BENCH_BATCHES)"

setup:
	@./scripts/setup.sh

build:
	@mkdir -p bin
	$(GO) build $(GOTAGS) -o bin/sslzoo ./cmd/sslzoo

test: setup build
	$(GO) vet ./...
	$(if $(GOTAGS),$(GO) vet $(GOTAGS) ./dist)
	@# dist's TestMPIRun builds its own -tags mpi binary and runs it under mpirun -np 2.
	$(GO) test -timeout $(TEST_TIMEOUT) ./...
	@# The CLI's own conformance run (every backbone, reduced widths; ORT, Go engine, onnxruntime-node).
	./bin/sslzoo conformance --reduced
	@# Each fuzz target briefly past its committed corpus (the corpus itself ran in go test).
	FUZZ_FRESH=1 FUZZTIME=$(FUZZ_SMOKE) ./scripts/fuzz.sh

# Fuzz time per target: `make fuzz FUZZTIME=60s`; make test uses FUZZ_SMOKE.
FUZZTIME ?= 60s
FUZZ_SMOKE ?= 3s
.PHONY: fuzz
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

demo: setup build
	./bin/sslzoo demo

bench: setup build
	BENCH_STEPS=$(BENCH_STEPS) BENCH_WARMUP=$(BENCH_WARMUP) BENCH_ROUNDS=$(BENCH_ROUNDS) \
	BENCH_BATCH=$(BENCH_BATCH) ./scripts/bench.sh

# Minutes of training per method and engine; BUDGET=tiny checks the harness only.
BUDGET ?= 5
.PHONY: bench-learning
bench-learning: setup build
	BUDGET=$(BUDGET) ./scripts/bench-learning.sh

# MAE and MLM proof of learning beside their PyTorch twins (knobs in the script).
.PHONY: bench-learning-masked
bench-learning-masked: setup build
	./scripts/bench-learning-masked.sh

# Colorization on emoji beside its PyTorch twin (knobs in the script).
.PHONY: bench-learning-colorization
bench-learning-colorization: setup build
	./scripts/bench-learning-colorization.sh

# Data-parallel scaling: allreduce bandwidth, 1 process against 2 mpirun
# ranks, bytes per step, and the 8-machine 10 GbE estimate (knobs in the script).
.PHONY: bench-dist
bench-dist: setup build
	./scripts/bench-dist.sh

# Full-size per-model conformance plus the per-op suite (`make test` runs
# the same suites with the big architectures reduced).
.PHONY: conformance
conformance: setup build
	./bin/sslzoo conformance --ops

# ORT serving speed: batch sizes for bench-onnx (ResNet-18 CIFAR and ViT-tiny).
BENCH_BATCHES ?= 1 64
.PHONY: bench-onnx
bench-onnx: setup build
	BENCH_STEPS=$(BENCH_STEPS) BENCH_WARMUP=$(BENCH_WARMUP) BENCH_ROUNDS=$(BENCH_ROUNDS) \
	BENCH_BATCHES="$(BENCH_BATCHES)" ./scripts/bench-onnx.sh

# The Go engine vs ORT as a user runs them: whole `sslzoo embed` processes.
.PHONY: bench-engines
bench-engines: setup build
	BENCH_ROUNDS=$(BENCH_ROUNDS) BENCH_BATCHES="$(BENCH_BATCHES)" ./scripts/bench-embed-engines.sh

# ORT fp32 vs int8 (QDQ export) for each bundled ResNet entry.
.PHONY: bench-int8
bench-int8: setup build
	BENCH_STEPS=$(BENCH_STEPS) BENCH_ROUNDS=$(BENCH_ROUNDS) BENCH_BATCHES="$(BENCH_BATCHES)" ./scripts/bench-int8.sh

# Every bundled entry's metrics, reproduced from the manifest's commands.
.PHONY: verify-zoo
verify-zoo: setup build
	/usr/bin/python3 scripts/verify_zoo.py

# Embedding image files (decode + preprocess + ORT) against tensor input.
EMBED_N ?= 10000
EMBED_REPS ?= 3
.PHONY: bench-embed
bench-embed: setup build
	/usr/bin/python3 scripts/bench_embed_files.py --n $(EMBED_N) --reps $(EMBED_REPS)

# Serving under load: sslzoo serve with batching on and off against the model
# in-process, then a soak; exits non-zero when a serving target is missed.
SERVE_MODEL ?= simclr-resnet18-fmnist
SERVE_CELL ?= 5s
SERVE_SOAK ?= 60s
.PHONY: bench-serve
bench-serve: setup build
	bin/sslzoo bench serve --model $(SERVE_MODEL) --cell $(SERVE_CELL) --soak $(SERVE_SOAK)

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...
	$(if $(GOTAGS),$(GO) vet $(GOTAGS) ./dist)

lint: vet
	@bad=$$(gofmt -l $$($(GO) list -f '{{.Dir}}' ./...) | sort -u); \
	if [[ -n "$$bad" ]]; then echo "gofmt needed on:"; echo "$$bad"; exit 1; fi
	@if command -v staticcheck >/dev/null 2>&1; then staticcheck ./...; \
	else echo "lint: staticcheck not installed; ran gofmt and go vet only"; fi

clean:
	rm -rf bin
