#!/usr/bin/python3
"""Write zoo/ssl/testdata/jigsaw_golden.json: PyTorch and NumPy reference
values for Jigsaw (Noroozi & Favaro 2016) in zoo/ssl.

Run with Debian's torch: /usr/bin/python3 scripts/gen_jigsaw_golden.py
(the Go tests TestJigsawPermutationsGolden, TestJigsawLossGolden and
TestJigsawStepsGolden read the file).

It holds three parts:
- "permutations": the greedy maximal-Hamming-distance sets. The 9!
  permutations are taken in lexicographic order (itertools.permutations);
  the first chosen is the one of index "start", and each next one is the
  permutation whose minimum Hamming distance to those chosen so far is
  largest, the lowest index winning a tie (np.argmax returns the first
  maximum). The Go selection must give the same sets exactly.
- "loss": the puzzle loss on given tile features [9N, D] (row 9n+k is input
  position k of image n): the nine rows of an image concatenated, the
  classifier Linear -> BatchNorm1d -> ReLU -> Linear, cross-entropy; the loss
  and its gradients with respect to the features and the classifier.
- "steps": two training iterations of the whole method with a one-layer conv
  encoder (Conv2d 3x3 -> BatchNorm2d -> ReLU -> global average pool): the
  crops are cut into puzzles with the given grid offsets, tile jitter and
  labels, each tile channel normalised by its own mean and (unbiased)
  standard deviation (a flat channel by 1), as the reference
  implementation (bbrattoli/JigsawPuzzlePytorch) does; all 9N tiles go
  through the encoder as one batch; SGD with momentum and weight decay.

Everything runs in float64 from float32 inputs and initial weights.
"""
import itertools
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(20260101)
rng = np.random.default_rng(15)
torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zoo", "ssl", "testdata", "jigsaw_golden.json")

ALL = np.array(list(itertools.permutations(range(9))), dtype=np.int8)  # lexicographic


def max_hamming(n, start):
    min_d = np.full(len(ALL), 10, dtype=np.int8)
    chosen = [start]
    cur = start
    while len(chosen) < n:
        d = (ALL != ALL[cur]).sum(axis=1).astype(np.int8)
        np.minimum(min_d, d, out=min_d)
        cur = int(np.argmax(min_d))  # first maximum: the lowest index
        chosen.append(cur)
    return ALL[chosen].astype(int)


def f32(a):
    return torch.tensor(np.asarray(a, dtype=np.float32), dtype=torch.float64)


def enc(x):
    x = x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return {"shape": list(x.shape), "data": [float("%.10g" % v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]}


def round_params(module):
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                t.copy_(f32(t.numpy()))


def classifier(d_in, hidden, classes):
    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, classes))


def state_of(named):
    out = {}
    for prefix, m in named:
        for k, v in m.state_dict().items():
            if v.is_floating_point():
                out[prefix + "." + k] = enc(v)
    return out


golden = {"permutations": []}
for n, start in [(10, 123456), (100, 0), (100, 271828)]:
    p = max_hamming(n, start)
    d = (p[:, None, :] != p[None, :, :]).sum(-1)
    golden["permutations"].append({"n": n, "start": start, "perms": p.tolist(),
                                   "min_distance": int(d[~np.eye(n, dtype=bool)].min())})

# --- the loss on given features.
N, D, H, P = 4, 5, 8, 10
feats = rng.standard_normal((9 * N, D)).astype(np.float32)
labels = rng.integers(0, P, N)
cls = classifier(9 * D, H, P)
round_params(cls)
init = state_of([("classifier", cls)])
x = f32(feats).requires_grad_(True)
loss = F.cross_entropy(cls(x.reshape(N, 9 * D)), torch.tensor(labels))
loss.backward()
golden["loss"] = {"labels": labels.tolist(), "features": enc(feats), "init": init, "loss": loss.item(),
                  "grad_features": enc(x.grad),
                  "grads": {"classifier." + k: enc(v.grad) for k, v in cls.named_parameters()}}

# --- two training iterations of the method.
B, C, SIZE, TILE, FEAT, HID, STEPS = 4, 3, 16, 4, 4, 16, 2
LR, MOM, WD = 0.1, 0.9, 5e-4
perms = golden["permutations"][0]["perms"]
cell = SIZE // 3


def cut(img, draw):
    tiles = []
    for k in range(9):
        c = perms[draw["label"]][k]
        y0 = draw["top"] + c // 3 * cell + draw["jitter"][c][0]
        x0 = draw["left"] + c % 3 * cell + draw["jitter"][c][1]
        t = img[:, y0:y0 + TILE, x0:x0 + TILE]
        m = t.reshape(C, -1).mean(1)
        s = t.reshape(C, -1).std(1)
        s[s == 0] = 1
        tiles.append((t - m[:, None, None]) / s[:, None, None])
    return torch.stack(tiles)


encoder = nn.Sequential(nn.Conv2d(C, FEAT, 3, padding=1), nn.BatchNorm2d(FEAT), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
head = classifier(9 * FEAT, HID, len(perms))
for m in (encoder, head):
    round_params(m)
init = state_of([("backbone", encoder), ("classifier", head)])
init["permutations"] = enc(np.array(perms, dtype=np.float64))
opt = torch.optim.SGD(list(encoder.parameters()) + list(head.parameters()), lr=LR, momentum=MOM, weight_decay=WD)
steps = []
for s in range(STEPS):
    crops = rng.standard_normal((B, C, SIZE, SIZE)).astype(np.float32)
    crops[1, 0, :8, :8] = 0.5  # flat tile channels: only centred
    draws = [{"top": int(rng.integers(0, SIZE - 3 * cell + 1)), "left": int(rng.integers(0, SIZE - 3 * cell + 1)),
              "jitter": rng.integers(0, cell - TILE + 1, (9, 2)).tolist(), "label": int(rng.integers(0, len(perms)))}
             for _ in range(B)]
    xc = f32(crops)
    tiles = torch.cat([cut(xc[i], draws[i]) for i in range(B)])  # [9B, C, TILE, TILE]
    opt.zero_grad()
    out = head(encoder(tiles).reshape(B, 9 * FEAT))
    loss = F.cross_entropy(out, torch.tensor([d["label"] for d in draws]))
    loss.backward()
    opt.step()
    rec = {"crops": enc(crops), "draws": draws, "loss": loss.item()}
    if s == 0:
        rec["tiles"] = enc(tiles)
    steps.append(rec)
golden["steps"] = {"batch": B, "size": SIZE, "tile": TILE, "feat": FEAT, "hidden": HID,
                   "optim": {"lr": LR, "momentum": MOM, "weight_decay": WD},
                   "init": init, "steps": steps, "final": state_of([("backbone", encoder), ("classifier", head)])}

with open(OUT, "w") as f:
    json.dump(golden, f, separators=(",", ":"))
    f.write("\n")
print("wrote", OUT, os.path.getsize(OUT), "bytes")
