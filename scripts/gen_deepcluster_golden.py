#!/usr/bin/python3
"""Write zoo/ssl/testdata/deepcluster_golden.json: NumPy and PyTorch
reference values for DeepCluster (Caron et al. 2018) in zoo/ssl.

Run with Debian's torch: /usr/bin/python3 scripts/gen_deepcluster_golden.py
(the Go tests TestDeepClusterPCAGolden, TestDeepClusterKMeansGolden,
TestDeepClusterSplitGolden, TestDeepClusterSamplerGolden and
TestDeepClusterStepsGolden in zoo/ssl/deepcluster_test.go read the file).

It holds five parts:
- "pca": PCA-whitening of a fixed feature matrix to d dimensions, then L2
  normalisation of each row: centre by the mean, eigendecompose the
  covariance (divided by n), keep the d leading eigenvectors, each signed so
  that its largest-magnitude entry is positive, scaled by
  1/sqrt(lambda + 1e-5 * lambda_1). faiss's PCAMatrix (eigen_power -0.5),
  which the reference runs, is the same up to the eigenvector signs, the
  scale (it does not divide by n; the L2 normalisation cancels that) and
  its epsilon of 0.
- "kmeans": Lloyd's iterations as faiss's Clustering.train runs them (assign
  to the nearest centroid by squared L2, then each centroid to the mean of
  its rows), from fixed initial centroids, then one more assignment against
  the final centroids (the reference's index.search). The data is checked
  to have no empty cluster on the way and a clear margin between the
  nearest and the second-nearest centroid of every row, so float32 and
  float64 assign alike.
- "split": a crafted case where a cluster empties after the first
  assignment and only one cluster has two rows or more, so faiss's random
  choice of the cluster to split (probability (size-1)/(n-k)) is forced:
  the empty cluster takes that centroid, and the two are pushed apart by
  1/1024 (even coordinates *(1+eps) for the new one and *(1-eps) for the
  old, odd ones the other way). Values after one and after two iterations
  ("splits" counts the re-seedings over all iterations so far).
- "sampler": the per-cluster counts of an epoch of n images drawn uniformly
  over the non-empty clusters: n // C each, one more for the n % C largest
  clusters (the lower label first among equals).
- "steps": two SGD steps (no momentum, weight decay) of the classifier
  Linear(F, K) with cross-entropy on fixed features and pseudo-labels, in
  PyTorch.

Everything runs in float64 from float32 inputs.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(2018)
OUT = os.path.join(os.path.dirname(__file__), "..", "zoo", "ssl", "testdata", "deepcluster_golden.json")
PCA_EPS = 1e-5
SPLIT_EPS = 1.0 / 1024


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def tensor(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.ravel()]}


def pca_whiten(x, d):
    n = x.shape[0]
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / n
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(-vals, kind="stable")
    vals, vecs = vals[order], vecs[:, order]
    top = max(vals[0], 0)
    a = np.zeros((d, x.shape[1]))
    for i in range(d):
        v = vecs[:, i]
        j = int(np.argmax(np.abs(v)))
        s = np.sign(v[j]) / np.sqrt(max(vals[i], 0) + PCA_EPS * top)
        a[i] = v * s
    y = xc @ a.T
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return mean, vals[:d], y


def nearest(x, c, margin):
    dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    assign = dist.argmin(1)
    s = np.sort(dist, 1)
    if c.shape[0] > 1:
        assert (s[:, 1] - s[:, 0]).min() > margin, (s[:, 1] - s[:, 0]).min()
    return assign, float(s[:, 0].sum())


def lloyd(x, init, iters, margin=1e-3, split=None):
    c = init.copy()
    n, k = x.shape[0], c.shape[0]
    objs = []
    snapshots = []
    splits = 0
    for it in range(iters):
        assign, obj = nearest(x, c, margin)
        objs.append(obj)
        counts = np.bincount(assign, minlength=k)
        for j in range(k):
            if counts[j] > 0:
                c[j] = x[assign == j].mean(0)
            else:
                c[j] = 0
        empty = [j for j in range(k) if counts[j] == 0]
        if split is None:
            assert not empty, f"iteration {it}: empty clusters {empty}"
        for ci in empty:
            # faiss's rule, here with only one cluster of two rows or more.
            cand = [j for j in range(k) if counts[j] >= 2]
            assert len(cand) == 1 and (counts[cand[0]] - 1) / (n - k) >= 1, counts
            cj = cand[0]
            c[ci] = c[cj]
            for j in range(x.shape[1]):
                if j % 2 == 0:
                    c[ci, j] *= 1 + SPLIT_EPS
                    c[cj, j] *= 1 - SPLIT_EPS
                else:
                    c[ci, j] *= 1 - SPLIT_EPS
                    c[cj, j] *= 1 + SPLIT_EPS
            counts[ci] = counts[cj] // 2
            counts[cj] -= counts[ci]
        splits += len(empty)
        assign, final = nearest(x, c, margin)
        snapshots.append({"iterations": it + 1, "centroids": tensor(c), "assign": [int(a) for a in assign],
                          "objective": objs.copy(), "final": final, "splits": splits})
    return snapshots


golden = {}

# PCA-whitening: correlated features with distinct variances and an offset.
n, f, d = 40, 12, 6
scales = np.linspace(3.0, 0.3, f)
q, _ = np.linalg.qr(rng.standard_normal((f, f)))
x = f32(rng.standard_normal((n, f)) * scales @ q.T + rng.standard_normal(f))
mean, vals, y = pca_whiten(x, d)
golden["pca"] = {"x": tensor(x), "d": d, "mean": [float(v) for v in mean], "values": [float(v) for v in vals], "y": tensor(y)}

# k-means on five blobs on the unit sphere, from one row of each blob.
n, d, k = 60, 4, 5
centres = rng.standard_normal((k, d))
xs = centres[np.arange(n) % k] + 0.35 * rng.standard_normal((n, d))
xs /= np.linalg.norm(xs, axis=1, keepdims=True)
xs = f32(xs)
init = f32(xs[[5, 11, 17, 23, 9]])
snaps = lloyd(xs, init, 4)
golden["kmeans"] = {"x": tensor(xs), "init": tensor(init), "k": k, "iterations": 4, "want": snaps[-1]}

# The split: five rows near (1, 0), one at (-1, 0), and a far initial
# centroid that no row takes.
xsplit = f32([[1.0, 0.2], [1.1, -0.1], [0.9, 0.15], [1.2, 0.3], [0.8, -0.25], [-1.0, 0.0]])
isplit = f32([[1.0, 0.0], [-1.0, 0.0], [0.0, 5.0]])
snaps = lloyd(xsplit, isplit, 2, margin=1e-5, split=True)
assert snaps[0]["splits"] == 1 and snaps[1]["splits"] == 1
golden["split"] = {"x": tensor(xsplit), "init": tensor(isplit), "k": 3, "after": snaps}


# The sampler's counts.
def counts_for(labels, k):
    n = len(labels)
    sizes = np.bincount([l for l in labels if l >= 0], minlength=k)
    non_empty = [l for l in range(k) if sizes[l] > 0]
    q, r = divmod(n, len(non_empty))
    counts = [0] * k
    for l in non_empty:
        counts[l] = q
    for l in sorted(non_empty, key=lambda l: (-sizes[l], l))[:r]:
        counts[l] += 1
    return counts


cases = []
for sizes, unlabelled in [([8, 1, 6, 0, 5], 3), ([4, 4, 4], 2), ([30, 2, 0, 0, 7, 1], 0)]:
    labels = [l for l, s in enumerate(sizes) for _ in range(s)] + [-1] * unlabelled
    labels = [int(v) for v in rng.permutation(labels)]
    cases.append({"labels": labels, "k": len(sizes), "counts": counts_for(labels, len(sizes))})
golden["sampler"] = cases

# Two SGD steps of the classifier on fixed features.
b, f, k = 6, 5, 4
feats = f32(rng.standard_normal((b, f)))
w0 = f32(0.3 * rng.standard_normal((k, f)))
b0 = f32(0.1 * rng.standard_normal(k))
labels = [0, 2, 1, 2, 3, 0]
lr, wd = 0.2, 0.01
w = torch.tensor(w0, requires_grad=True)
bias = torch.tensor(b0, requires_grad=True)
opt = torch.optim.SGD([w, bias], lr=lr, weight_decay=wd)
xt = torch.tensor(feats)
losses = []
for _ in range(2):
    opt.zero_grad()
    loss = F.cross_entropy(xt @ w.T + bias, torch.tensor(labels))
    loss.backward()
    opt.step()
    losses.append(float(loss))
golden["steps"] = {"features": tensor(feats), "weight": tensor(w0), "bias": tensor(b0), "labels": labels, "lr": lr,
                   "weight_decay": wd, "losses": losses, "final_weight": tensor(w.detach().numpy()),
                   "final_bias": tensor(bias.detach().numpy())}

with open(OUT, "w") as fh:
    json.dump(golden, fh, separators=(",", ":"))
    fh.write("\n")
print("wrote", OUT, os.path.getsize(OUT), "bytes")
