#!/usr/bin/python3
"""Write zoo/ssl/testdata/deepclusterv2_golden.json: PyTorch reference
values for DeepCluster v2 (Caron et al. 2020, the SwAV repository's
main_deepclusterv2.py) in zoo/ssl.

Run with Debian's torch: /usr/bin/python3 scripts/gen_deepclusterv2_golden.py
(the Go tests TestDeepClusterV2KMeansGolden, TestDeepClusterV2LossGolden and
TestDeepClusterV2StepGolden in zoo/ssl/deepclusterv2_test.go read the file).

It holds three parts:
- "kmeans": cluster_memory's k-means on one rank, from fixed initial
  centroids: nmb_kmeans_iters iterations of (E) assign each unit row to the
  centroid of the largest dot product, (M) move each centroid that got rows
  to their mean, leave an empty one as it was, L2-normalise all; then the
  final E step. The rows lie in the positive orthant and one initial
  centroid in the negative one, so that cluster stays empty throughout and
  keeps its (normalised) centroid. Every E step is checked to have a clear
  margin between the best and the second-best centroid, so float32 and
  float64 assign alike.
- "loss": the loss for fixed unit embeddings of 3 crops of 4 images, two
  heads of prototypes and per-image labels (one image unlabelled on head 1,
  -100 as the reference's ignore_index): for each head, cross-entropy of
  z @ P_h.T / 0.1 against the labels repeated crop by crop, then the mean
  over the heads; with the gradient with respect to z.
- "step": one iteration of the method on fixed pooled features (the
  backbone is the identity): the SwAV projection head Linear -> BatchNorm1d
  (training mode) -> ReLU -> Linear on all crops at once, L2
  normalisation, the loss above with three heads of fixed prototypes, and
  one SGD step (momentum 0.9, weight decay 1e-4) of the head. The
  prototypes have no gradient (the reference's freeze_prototypes_niters
  covers the whole run). It records the loss, the head's state after the
  step and the global crops' embeddings of the forward pass (what the
  memory bank keeps).

Everything runs in float64 from float32 inputs.
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(2020)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zoo", "ssl", "testdata", "deepclusterv2_golden.json")
TEMPERATURE = 0.1


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def tensor(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.ravel()]}


def unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def cluster(x, init, iters, margin=1e-4):
    """cluster_memory's k-means for one head on one rank."""
    xt, c = torch.from_numpy(x), torch.from_numpy(init.copy())
    k = c.shape[0]
    objective = []
    for it in range(iters + 1):
        dots = xt @ c.T
        top = torch.topk(dots, 2, dim=1).values
        if (top[:, 0] - top[:, 1]).min() < margin:
            return None
        _, assign = dots.max(dim=1)
        objective.append(float((2 - 2 * dots.max(dim=1).values).sum()))
        if it == iters:
            break
        counts = torch.zeros(k, dtype=torch.long)
        sums = torch.zeros_like(c)
        for j in range(k):
            sel = assign == j
            if sel.any():
                sums[j] = xt[sel].sum(0)
                counts[j] = int(sel.sum())
        mask = counts > 0
        c[mask] = sums[mask] / counts[mask].unsqueeze(1)
        c = F.normalize(c, dim=1, p=2)
    return assign.numpy(), c.numpy(), objective, counts.numpy()


def kmeans_case():
    n, d, k, iters, empty = 60, 8, 5, 10, 2
    for _ in range(100):
        means = np.abs(rng.normal(size=(k - 1, d))) + 0.2
        x = np.abs(means[rng.integers(0, k - 1, size=n)] + 0.35 * rng.normal(size=(n, d)))
        x = f32(unit(f32(x)))
        init = np.empty((k, d))
        rows = rng.permutation(n)[: k - 1]
        init[[j for j in range(k) if j != empty]] = x[rows]
        init[empty] = -unit(np.abs(rng.normal(size=d)) + 0.1)
        init = f32(init)
        out = cluster(x, init, iters)
        if out is None:
            continue
        assign, centroids, objective, counts = out
        if counts[empty] != 0 or (counts[np.arange(k) != empty] == 0).any():
            continue
        return {"x": tensor(x), "init": tensor(init), "k": k, "iterations": iters, "empty": empty,
                "assign": [int(a) for a in assign], "centroids": tensor(centroids),
                "final": objective[-1]}
    raise SystemExit("no k-means case with clear margins")


def dc2_loss(z, protos, labels, crops):
    loss = 0
    for p, lab in zip(protos, labels):
        scores = z @ p.T / TEMPERATURE
        targets = torch.tensor(lab, dtype=torch.long).repeat(crops)
        loss = loss + F.cross_entropy(scores, targets, ignore_index=-100)
    return loss / len(protos)


def loss_case():
    b, crops, d = 4, 3, 8
    ks = [5, 3]
    z = torch.tensor(f32(unit(f32(rng.normal(size=(crops * b, d))))), requires_grad=True)
    protos = [torch.tensor(f32(unit(f32(rng.normal(size=(k, d)))))) for k in ks]
    labels = [[int(v) for v in rng.integers(0, k, size=b)] for k in ks]
    labels[1][2] = -100
    loss = dc2_loss(z, protos, labels, crops)
    loss.backward()
    return {"z": tensor(z.detach().numpy()), "prototypes": [tensor(p.numpy()) for p in protos], "labels": labels,
            "crops": crops, "temperature": TEMPERATURE, "loss": float(loss), "grad": tensor(z.grad.numpy())}


def step_case():
    b, crops, feat, hidden, d = 4, 3, 6, 10, 8
    ks = [5, 3, 4]
    lr, momentum, wd = 0.1, 0.9, 1e-4
    head = nn.Sequential(nn.Linear(feat, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d))
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.from_numpy(f32(rng.normal(scale=0.5, size=p.shape))))
    init = {k: v.detach().clone().numpy() for k, v in head.state_dict().items() if "num_batches" not in k}
    x = f32(rng.normal(size=(crops * b, feat)))
    protos = [torch.tensor(f32(unit(f32(rng.normal(size=(k, d)))))) for k in ks]
    labels = [[int(v) for v in rng.integers(0, k, size=b)] for k in ks]
    labels[0][1] = -100
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    head.train()
    z = F.normalize(head(torch.from_numpy(x)), dim=1, p=2)
    loss = dc2_loss(z, protos, labels, crops)
    opt.zero_grad()
    loss.backward()
    opt.step()
    final = {k: v.detach().clone().numpy() for k, v in head.state_dict().items() if "num_batches" not in k}
    return {"features": tensor(x), "crops": crops, "hidden": hidden, "dim": d,
            "prototypes": [tensor(p.numpy()) for p in protos], "labels": labels,
            "lr": lr, "momentum": momentum, "weight_decay": wd, "temperature": TEMPERATURE,
            "init": {k: tensor(v) for k, v in init.items()}, "loss": float(loss),
            "final": {k: tensor(v) for k, v in final.items()},
            "bank": tensor(z.detach().numpy()[: 2 * b])}


golden = {"kmeans": kmeans_case(), "loss": loss_case(), "step": step_case()}
with open(OUT, "w") as fh:
    json.dump(golden, fh, separators=(",", ":"))
print("wrote", OUT, os.path.getsize(OUT), "bytes")
