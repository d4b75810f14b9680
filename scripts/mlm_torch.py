#!/usr/bin/python3
"""PyTorch twin of an `sslzoo train mlm` run, for the proof-of-learning table.

    /usr/bin/python3 scripts/mlm_torch.py --like GO_OUT --out DIR [--threads 2]
    sslzoo eval mlm --model DIR --like GO_OUT

reads what `sslzoo train mlm --out GO_OUT` wrote -- GO_OUT/sequences.safetensors
(the packed training sequences, in the Go run's order of packing, and the
recipe as JSON in the "recipe" metadata key; zoo/mlm/sequences.go documents
both), GO_OUT/config.json and GO_OUT/vocab.txt -- and trains the same recipe
in PyTorch on the same sequences:

- model: Hugging Face's BertForMaskedLM as rebuilt in scripts/gen_hf_bert.py
  (same module tree and state_dict names), with the config's dropout rates,
  initialised as Hugging Face and the Go trainer do (Linear and Embedding
  weights normal(0, 0.02), the padding row 0, biases 0, LayerNorm 1 and 0,
  the decoder tied to the word embeddings);
- masking, drawn afresh for every batch: each non-special token (with
  whole_word, each word: a token and the "##" pieces after it) is selected
  with probability prob; a selected token becomes [MASK] (mask_frac), a
  uniformly drawn non-special token (random_frac) or stays; the special ids
  are never selected; a batch in which nothing was selected is drawn again;
- loss: the mean cross-entropy of the MLM head over the selected positions
  (the head runs on those positions only, as in the Go trainer);
- AdamW (torch.optim.AdamW) with weight decay on all but biases and
  LayerNorm weights, global gradient-norm clipping, the learning rate of
  nn.WarmupCosine (linear warmup, then a half-cosine to final_lr at
  total_steps) set before every step;
- order: a fresh permutation of the training sequences every epoch, batches
  taken in turn (the last one of an epoch short), each padded to its longest.

The random draws (initial weights, dropout, order, masks) come from torch's
generators seeded with the run's seed, so they are the same recipe but not
the same numbers as Go's. The comparison is made by evaluating both models
with `sslzoo eval mlm`, which scores both on the Go run's held-out masks.

It writes DIR as a Hugging Face BERT folder (config.json and vocab.txt copied
from GO_OUT, model.safetensors with Hugging Face names, the tied decoder left
out as save_pretrained does) and prints one JSON line: engine, steps, seconds
per step and per epoch and sequences per second (training only: batching,
masking, forward, backward and update), and the final loss. Use --max-steps to
stop early (for timing) without changing the learning-rate schedule. For
timings comparable with DESIGN.md's, run it as the Go side is run, with
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296.
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_hf_bert as hf  # noqa: E402  (the Hugging Face BERT modules)
from learning_torch import write_safetensors  # noqa: E402

SEQUENCES = "sequences.safetensors"
FORMAT = "sslzoo-mlm-sequences/1"
_DTYPES = {"I32": np.int32, "I64": np.int64, "F32": np.float32}


def read_safetensors(path):
    """All tensors of a safetensors file as numpy arrays, and its metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        if e["dtype"] not in _DTYPES:
            raise SystemExit(f"{path}: tensor {name} has dtype {e['dtype']}; expected one of {sorted(_DTYPES)}")
        lo, hi = e["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype=np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<")).reshape(e["shape"])
    return out, meta


def load_run(like):
    path = os.path.join(like, SEQUENCES)
    if not os.path.exists(path):
        raise SystemExit(f"{path} not found: --like must be the --out folder of `sslzoo train mlm` (a run from this sslzoo)")
    tensors, meta = read_safetensors(path)
    if "recipe" not in meta:
        raise SystemExit(f"{path} has no recipe metadata; rerun `sslzoo train mlm`")
    recipe = json.loads(meta["recipe"])
    if recipe.get("format") != FORMAT:
        raise SystemExit(f"{path}: format {recipe.get('format')!r}, this script reads {FORMAT!r}")
    for f in ("config.json", "vocab.txt"):
        if not os.path.exists(os.path.join(like, f)):
            raise SystemExit(f"{os.path.join(like, f)} not found: let `sslzoo train mlm` finish (it writes the model folder at the end)")
    with open(os.path.join(like, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(like, "vocab.txt"), encoding="utf-8") as f:
        vocab = f.read().split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    if len(vocab) != recipe["vocab_size"] or config["vocab_size"] != recipe["vocab_size"]:
        raise SystemExit(f"{like}: vocab.txt has {len(vocab)} tokens, config.json {config['vocab_size']}, the recipe {recipe['vocab_size']}")
    ids = torch.from_numpy(tensors["train.input_ids"].astype(np.int64))
    lengths = torch.from_numpy(tensors["train.lengths"].astype(np.int64))
    return recipe, config, vocab, ids, lengths


def build_model(config, seed):
    c = hf.Cfg(**{k: config[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                         "intermediate_size", "max_position_embeddings", "type_vocab_size",
                                         "layer_norm_eps", "pad_token_id")})
    m = hf.BertForMaskedLM(c)
    # gen_hf_bert's modules carry dropout 0 (they make eval-mode goldens);
    # training uses the config's rates, at the places Hugging Face has them.
    for name, mod in m.named_modules():
        if isinstance(mod, nn.Dropout):
            mod.p = config["attention_probs_dropout_prob"] if name.endswith("attention.self.dropout") else config["hidden_dropout_prob"]
    torch.manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Linear):
                mod.weight.normal_(0.0, 0.02)
                if mod.bias is not None:
                    mod.bias.zero_()
            elif isinstance(mod, nn.Embedding):
                mod.weight.normal_(0.0, 0.02)
                if mod.padding_idx is not None:
                    mod.weight[mod.padding_idx].zero_()
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.fill_(1.0)
                mod.bias.zero_()
        m.cls.predictions.bias.zero_()
    return m


def lr_at(r, step):
    """nn.WarmupCosine, as mlm.Config.LRAt applies it."""
    lr, final, warm, total = r["lr"], r["final_lr"], r["warmup_steps"], r["total_steps"]
    if step < warm:
        return lr * step / warm
    if step >= total:
        return final
    p = (step - warm) / (total - warm)
    return final + (lr - final) * 0.5 * (1 + math.cos(math.pi * p))


class Masker:
    """BERT masking over a padded batch, as data/text/mask.go does it."""

    def __init__(self, recipe, vocab):
        v = len(vocab)
        self.special = torch.zeros(v, dtype=torch.bool)
        self.special[recipe["special_ids"]] = True
        self.cont = torch.tensor([len(t) > 2 and t.startswith("##") for t in vocab], dtype=torch.bool)
        self.random_ids = (~self.special).nonzero().flatten()
        self.mask_id = recipe["mask_id"]
        m = recipe["mask"]
        self.prob, self.mask_frac, self.random_frac, self.whole_word = m["prob"], m["mask_frac"], m["random_frac"], m["whole_word"]

    def __call__(self, ids, gen):
        sp = self.special[ids]
        start = ~sp
        if self.whole_word:
            # A word starts at a non-special token that is not a "##" piece,
            # or is one right after a special token.
            prev_sp = torch.ones_like(sp)
            prev_sp[:, 1:] = sp[:, :-1]
            start = ~sp & (~self.cont[ids] | prev_sp)
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        for _ in range(20):
            chosen = start & (torch.rand(ids.shape, generator=gen) < self.prob)
            if self.whole_word:
                # Each token follows its word's start: the last start at or
                # before it.
                last = torch.where(start, pos, torch.zeros_like(pos)).cummax(dim=1).values
                chosen = chosen.gather(1, last) & ~sp
            if chosen.any():
                break
        else:
            raise SystemExit("masking selected no token in 20 draws (a batch of only special tokens?)")
        u = torch.rand(ids.shape, generator=gen)
        inputs = ids.clone()
        inputs[chosen & (u < self.mask_frac)] = self.mask_id
        rnd = chosen & (u >= self.mask_frac) & (u < self.mask_frac + self.random_frac)
        n = int(rnd.sum())
        if n:
            inputs[rnd] = self.random_ids[torch.randint(len(self.random_ids), (n,), generator=gen)]
        return inputs, chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--like", required=True, help="the --out folder of sslzoo train mlm")
    ap.add_argument("--out", required=True, help="folder for the trained Hugging Face BERT")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (schedule unchanged; for timing)")
    ap.add_argument("--seed", type=int, default=None, help="seed (default: the Go run's)")
    ap.add_argument("--log-every", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    recipe, config, vocab, train_ids, train_len = load_run(a.like)
    seed = recipe["seed"] if a.seed is None else a.seed
    model = build_model(config, seed)
    model.train()
    masker = Masker(recipe, vocab)

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or name.endswith("LayerNorm.weight") else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr_at(recipe, 0), betas=(recipe["beta1"], recipe["beta2"]), eps=recipe["eps"])
    params = decay + no_decay

    n, batch = train_ids.shape[0], recipe["batch"]
    per_epoch, total = recipe["steps_per_epoch"], recipe["total_steps"]
    if per_epoch != (n + batch - 1) // batch:
        raise SystemExit(f"recipe has {per_epoch} steps per epoch but {n} sequences at batch {batch} make {(n + batch - 1) // batch}")
    steps = min(total, a.max_steps) if a.max_steps > 0 else total
    mask_gen = torch.Generator().manual_seed(seed * 7919 + 1)
    train_s, seen, losses, log = 0.0, 0, [], []
    order = None
    for step in range(steps):
        t0 = time.perf_counter()
        epoch, within = divmod(step, per_epoch)
        if within == 0 or order is None:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000003 + epoch))
        idx = order[within * batch:(within + 1) * batch]
        lens = train_len[idx]
        width = int(lens.max())
        ids = train_ids[idx, :width]
        attn = (torch.arange(width)[None, :] < lens[:, None]).long()
        inputs, chosen = masker(ids, mask_gen)
        for g in opt.param_groups:
            g["lr"] = lr_at(recipe, step)
        opt.zero_grad(set_to_none=True)
        h, _ = model.bert(inputs, attn, torch.zeros_like(inputs))
        loss = F.cross_entropy(model.cls(h[chosen]), ids[chosen])
        if not torch.isfinite(loss):
            raise SystemExit(f"step {step}: loss is {loss.item()}")
        loss.backward()
        if recipe["clip_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(params, recipe["clip_norm"])
        opt.step()
        train_s += time.perf_counter() - t0
        seen += len(idx)
        losses.append(loss.item())
        log.append(losses[-1])
        if len(log) == a.log_every or step + 1 == steps:
            print(f"step {step + 1}/{total} epoch {epoch + 1}: loss {sum(log) / len(log):.4f}, lr {lr_at(recipe, step):.3g}, "
                  f"{train_s:.1f} s", file=sys.stderr)
            log = []

    os.makedirs(a.out, exist_ok=True)
    sd = {k: v for k, v in model.state_dict().items()
          if k not in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")}
    write_safetensors(os.path.join(a.out, "model.safetensors"), sd,
                      {"format": "pt", "sslzoo.method": "mlm", "sslzoo.engine": "pytorch " + torch.__version__,
                       "sslzoo.steps": str(steps), "sslzoo.recipe": json.dumps(recipe)})
    for f in ("config.json", "vocab.txt", "tokenizer_config.json"):
        if os.path.exists(os.path.join(a.like, f)):
            shutil.copyfile(os.path.join(a.like, f), os.path.join(a.out, f))
    tail = losses[-min(len(losses), a.log_every):]
    print(json.dumps({
        "engine": "pytorch " + torch.__version__, "method": "mlm", "threads": a.threads, "steps": steps,
        "total_steps": total, "batch": batch, "seq_len": recipe["seq_len"],
        "seconds_per_step": train_s / steps, "seconds_per_epoch": train_s / steps * per_epoch,
        "sequences_per_second": seen / train_s, "train_seconds": train_s,
        "final_loss": losses[-1], "final_loss_mean": sum(tail) / len(tail), "out": a.out}))


if __name__ == "__main__":
    main()
