#!/usr/bin/env bash
# Proof of learning for the masked-modelling methods, in sslzoo and in a
# PyTorch twin of the same recipe (make bench-learning runs it after the
# vision methods; METHODS picks "mae", "mlm" or both):
#
# - MAE: a ViT pretrains on Fashion-MNIST train without labels
#   (scripts/learning_torch_mae.py is the twin). Both encoders, and an
#   untrained ViT of the same config, are scored by `sslzoo eval knn` and
#   `sslzoo eval linear` with one protocol. The table also gives the
#   reconstruction loss of the first and last logged steps.
# - MLM: a BERT trains on the Brown Corpus (scripts/mlm_torch.py is the
#   twin, on the very sequences the Go run packed). `sslzoo eval mlm` scores
#   both on the Go run's held-out sequences with the same masks, beside the
#   unigram baseline; `sslzoo eval genres` checks that the 15 Brown genres are
#   separable by leave-one-out kNN on the document embeddings, beside an
#   untrained BERT and the chance rates.
#
# Knobs (environment): METHODS ("mae mlm"); SEED (1); OUT
# (/tmp/sslzoo-bench-learning-masked); SSLZOO_BIN
#   MAE_ARCH (vit-tiny), MAE_BATCH (128), MAE_EPOCHS (1), MAE_LIMIT (20000
#     training images; 0: all), MAE_LR (1e-3: the recipe's 1.5e-4*batch/256
#     is meant for hundreds of epochs at batch 4096)
#   MLM_ARCH (bert-tiny), MLM_SEQ (128), MLM_BATCH (32), MLM_EPOCHS (2),
#     MLM_LR (1e-3), MLM_VOCAB (8000)
#   EVAL_LIMIT_TRAIN (10000) / EVAL_LIMIT_TEST (2000): images for MAE's
#     kNN bank / linear training set and its test set
# TINY=1 checks the harness in a few minutes and proves nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

methods=${METHODS:-mae mlm}
seed=${SEED:-1}
out=${OUT:-/tmp/sslzoo-bench-learning-masked}
bin=${SSLZOO_BIN:-bin/sslzoo}
py=/usr/bin/python3
torch_env=(env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296)
mae_arch=${MAE_ARCH:-vit-tiny} mae_batch=${MAE_BATCH:-128} mae_epochs=${MAE_EPOCHS:-1}
mae_limit=${MAE_LIMIT:-20000} mae_lr=${MAE_LR:-1e-3}
mlm_arch=${MLM_ARCH:-bert-tiny} mlm_seq=${MLM_SEQ:-128} mlm_batch=${MLM_BATCH:-32}
mlm_epochs=${MLM_EPOCHS:-2} mlm_lr=${MLM_LR:-1e-3} mlm_vocab=${MLM_VOCAB:-8000} mlm_steps=0
eval_train=${EVAL_LIMIT_TRAIN:-10000} eval_test=${EVAL_LIMIT_TEST:-2000}
if [[ ${TINY:-0} == 1 ]]; then
	mae_limit=512 mae_batch=64 eval_train=1000 eval_test=300 mlm_steps=15 mlm_seq=64 mlm_vocab=2000
fi

[[ -x $bin ]] || { echo "bench-learning-masked: $bin not built (run make build)" >&2; exit 1; }
"$py" -c 'import torch, torchvision' 2>/dev/null || {
	echo "bench-learning-masked: $py cannot import torch/torchvision (apt-get install python3-torch python3-torchvision)" >&2
	exit 1
}
mkdir -p "$out"

# run NAME CMD...: run a step, its output in $out/NAME.log; on failure show
# the log's tail and stop.
run() {
	local name=$1
	shift
	echo "== $name" >&2
	"$@" >"$out/$name.log" 2>&1 || { echo "bench-learning-masked: $name failed:" >&2; tail -5 "$out/$name.log" >&2; exit 1; }
}

# Training first, evaluation after: the timed runs go back to back, and
# the untimed evaluations may share the machine.
for m in $methods; do
	[[ ${TABLE_ONLY:-0} == 1 ]] && break
	case $m in
	mae)
		g=$out/mae-sslzoo
		run mae-sslzoo "$bin" train mae --data fashion-mnist --arch "$mae_arch" --size 28 --batch "$mae_batch" \
			--epochs "$mae_epochs" --limit "$mae_limit" --lr "$mae_lr" --seed "$seed" --knn-every 0 --checkpoint-every 0 --log-every 10 --out "$g"
		run mae-torch "${torch_env[@]}" "$py" scripts/learning_torch_mae.py --like "$g/final.safetensors" --out "$out/mae-torch" --threads 2 --workers 2
		;;
	mlm)
		steps=()
		[[ $mlm_steps != 0 ]] && steps=(--steps "$mlm_steps")
		run mlm-sslzoo "$bin" train mlm --data brown --arch "$mlm_arch" --vocab-size "$mlm_vocab" --seq-len "$mlm_seq" \
			--batch "$mlm_batch" --epochs "$mlm_epochs" "${steps[@]}" --lr "$mlm_lr" --seed "$seed" --out "$out/mlm-sslzoo"
		run mlm-torch "${torch_env[@]}" "$py" scripts/mlm_torch.py --like "$out/mlm-sslzoo" --out "$out/mlm-torch" --threads 2
		;;
	*)
		echo "bench-learning-masked: unknown method $m (mae, mlm)" >&2
		exit 1
		;;
	esac
done
for m in $methods; do
	[[ ${TABLE_ONLY:-0} == 1 ]] && break
	if [[ $m == mae ]]; then
		ev=(--data fashion-mnist --json --limit-train "$eval_train" --limit-test "$eval_test")
		for p in knn linear; do
			run "mae-$p-sslzoo" "$bin" eval "$p" --checkpoint "$out/mae-sslzoo/final.safetensors" "${ev[@]}"
			run "mae-$p-torch" "$bin" eval "$p" --checkpoint "$out/mae-torch/final.safetensors" "${ev[@]}"
			run "mae-$p-random" "$bin" eval "$p" --checkpoint "$out/mae-sslzoo/final.safetensors" --random-init --seed "$seed" "${ev[@]}"
		done
	else
		g=$out/mlm-sslzoo
		run mlm-eval-sslzoo "$bin" eval mlm --model "$g" --like "$g" --json
		run mlm-eval-torch "$bin" eval mlm --model "$out/mlm-torch" --like "$g" --json
		run mlm-genres-sslzoo "$bin" eval genres --model "$g" --random-init --seed "$seed" --json
		run mlm-genres-torch "$bin" eval genres --model "$out/mlm-torch" --json
	fi
done

"$py" - "$out" "$methods" <<'PY' | tee "$out/table.md"
import json, os, re, sys
out, methods = sys.argv[1], sys.argv[2].split()
def last_json(name):
    lines = [l for l in open(os.path.join(out, name + ".log")) if l.startswith("{")]
    return json.loads(lines[-1])
pct = lambda v: "%.2f%%" % (100 * v)
if "mae" in methods:
    steps = [json.loads(l) for l in open(os.path.join(out, "mae-sslzoo", "metrics.jsonl"))]
    logged = [s for s in steps if s["kind"] == "step"] or [s for s in steps if s["kind"] == "epoch"]
    go_epoch = sum(s["epoch_s"] for s in steps if s["kind"] == "epoch") / max(1, sum(s["kind"] == "epoch" for s in steps))
    tj = last_json("mae-torch")
    print("MAE on Fashion-MNIST (%d epoch(s), %d steps): reconstruction loss %.3f at step %d -> %.3f at step %d (sslzoo); PyTorch epoch losses %s"
          % (tj["epochs"], tj["steps"], logged[0]["loss"], logged[0]["step"], logged[-1]["loss"], logged[-1]["step"],
             ", ".join("%.3f" % l for l in tj["loss"])))
    print()
    print("| encoder | kNN top-1 | linear top-1 | s/epoch |")
    print("| --- | ---: | ---: | ---: |")
    for who, secs in (("sslzoo", go_epoch), ("torch", tj["mean_epoch_s"]), ("random", None)):
        k, l = last_json("mae-knn-" + who), last_json("mae-linear-" + who)
        name = {"sslzoo": "sslzoo MAE", "torch": "PyTorch MAE", "random": "random-init ViT"}[who]
        print("| %s | %s | %s | %s |" % (name, pct(k["top1"]), pct(l["top1"]), "%.1f" % secs if secs else "-"))
    print("\nMAE time ratio sslzoo/PyTorch per epoch: %.2f; kNN bank %d, test %d images" % (go_epoch / tj["mean_epoch_s"], k["train_images"], k["test_images"]))
    print()
if "mlm" in methods:
    log = open(os.path.join(out, "mlm-sslzoo.log")).read()
    m = re.search(r"training: ([0-9.]+) s for ([0-9]+) sequences", log)
    before = re.search(r"held-out perplexity ([0-9.]+) ->", log)
    tj = last_json("mlm-torch")
    g, t = last_json("mlm-eval-sslzoo"), last_json("mlm-eval-torch")
    gg, tg = last_json("mlm-genres-sslzoo"), last_json("mlm-genres-torch")
    go_sps = int(m.group(2)) / float(m.group(1))
    print("BERT MLM on the Brown Corpus (%d steps of %d sequences; %d held-out sequences, %d masked positions; perplexity before training %s)"
          % (tj["steps"], tj["batch"], g["held_out_sequences"], g["masked_positions"], before.group(1) if before else "?"))
    print()
    print("| model | masked-token accuracy | perplexity | genre kNN top-1 | sequences/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print("| sslzoo | %s | %.1f | %s | %.1f |" % (pct(g["accuracy"]), g["perplexity"], pct(gg["top1"]), go_sps))
    print("| PyTorch | %s | %.1f | %s | %.1f |" % (pct(t["accuracy"]), t["perplexity"], pct(tg["top1"]), tj["sequences_per_second"]))
    print("| unigram baseline | %s | %.1f | - | - |" % (pct(g["unigram"]["accuracy"]), g["unigram"]["perplexity"]))
    print("| untrained BERT | - | - | %s | - |" % pct(gg["random_init"]["top1"]))
    print("| chance (majority genre / uniform) | - | - | %s / %s | - |" % (pct(gg["majority_rate"]), pct(gg["uniform_rate"])))
    print("\nMLM speed ratio sslzoo/PyTorch (sequences/s): %.2f" % (go_sps / tj["sequences_per_second"]))
PY
