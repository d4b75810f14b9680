#!/usr/bin/python3
"""PyTorch twin of an `sslzoo train deepcluster` or `sslzoo train deepclusterv2`
run, for the proof-of-learning table.

    /usr/bin/python3 scripts/learning_torch_cluster.py --like GO_OUT/final.safetensors --out DIR

It takes the command line of scripts/learning_torch.py (and imports that
module for the backbone, data, augmentation, optimizers and schedule): it
reads the run spec (sslzoo.train) and the method config
(sslzoo.method_config) from the metadata of the Go run's final.safetensors,
trains the same recipe in PyTorch and writes DIR/final.safetensors with the
backbone under the Go file's (torchvision) names and shapes and the Go run's
metadata, so that `sslzoo eval knn --checkpoint DIR/final.safetensors`
evaluates both runs with one protocol. It prints one JSON line as
learning_torch.py does (engine, method, epochs, steps, epoch_s,
mean_epoch_s, loss, first_losses, weights), plus cluster_s, the seconds
each epoch's clustering took. epoch_s is the training loop only (data
loading included), the clustering before it excluded, as the Go run's
metrics.jsonl epoch_s (whose cluster_s is logged apart).

What is mirrored, as zoo/ssl/deepcluster.go, deepcluster_kmeans.go and
deepclusterv2.go and the CLI's ssl.Train do it:

- both: the data (first `limit` images of the train split), ResNet-18 with
  the CIFAR stem (width, one input channel), the steps per epoch (full
  batches only) and epochs; before every epoch a clustering pass, whose
  features are taken with the network in evaluation mode on the evaluation
  transform (the whole image resized to the training size and normalised);
  the per-epoch timing excludes it.
- deepcluster (paper recipe only; the Go CLI has no cifar recipe for it):
  the pooled backbone features of every image are PCA-whitened to
  min(PCADim, feature dim, n-1) dimensions (eigenvectors of the covariance
  over n, each signed so its largest-magnitude entry is positive, scaled by
  1/sqrt(lambda + 1e-5 lambda_1)) and L2-normalised; k-means (Lloyd,
  squared L2, Iterations rounds, from k distinct random rows, empty
  clusters re-seeded by faiss's split rule with the 1/1024 perturbation,
  then a final assignment) gives the pseudo-labels; the epoch's order is
  the sampler uniform over the non-empty clusters (n/C images each, one
  more for the n mod C largest; without replacement from clusters at least
  that large, every image count/size times plus a draw without replacement
  from smaller ones; then shuffled); the classifier Linear(F, k) is
  re-initialised (weights N(0, 0.01^2), bias 0) after every clustering; the
  loss is cross-entropy on one RandomResizedCrop (scale 0.08-1) + flip
  view; SGD with momentum on the backbone and plain SGD (no momentum) on
  the classifier at the same constant rate and weight decay.
- deepclusterv2 (paper or cifar recipe, read from the config): SwAV's
  multi-crop pipeline (2 global crops 0.14-1, local crops 0.05-0.14),
  crops of one size through the encoder together, the projection head
  Linear-BN-ReLU-Linear on all crops at once, L2-normalised; the memory
  bank [GlobalCrops, images, ProjDim] is filled before the first epoch with
  each image's evaluation-mode embedding (the same row for every crop) and
  afterwards holds, for each image, the global crops' embeddings of the
  last step that saw it (from that step's forward pass); before every epoch
  each head h runs spherical k-means (Iterations rounds: assign by the
  largest dot product, move non-empty centroids to their rows' mean,
  L2-normalise all; empty clusters keep their centroid; then a final
  assignment) on crop h mod GlobalCrops of the bank from k distinct random
  rows, and its centroids overwrite the head's prototypes (never trained);
  the loss is, per head, cross-entropy of z P_h^T / Temperature against the
  image's pseudo-label, over all crops, then the mean over the heads; LARS
  (as learning_torch.LARS: nn/optim.go's, with clip and exclusions as the
  config says) with the warmup-cosine schedule on backbone and projector;
  the loader is a seeded shuffle.

What is only the same distribution, not the same draws: the initial
weights, the augmentation, the shuffle, the k-means initial rows, the
choice of the cluster an empty one splits, the sampler's draws and the
classifier re-initialisation (the Go run takes them from its PCG streams;
here numpy and torch generators seeded from the run's seed and the
config's cluster seed). The PCA, k-means and sums run here in float64 /
float32 torch/numpy kernels, so near-ties may fall the other way. The
reference's Sobel filter is left out, as sslzoo does.
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as T

sys.dont_write_bytecode = True  # importing learning_torch leaves no scripts/__pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learning_torch import (EpochLog, ResNet18Cifar, Views, load_idx_images, lr_at, make_optimizer, mlp,  # noqa: E402
                            multi_crop, set_lr, twin_run, view_pipelines, worker_init)

PROG = "learning_torch_cluster"
METHODS = ("deepcluster", "deepclusterv2")
PCA_EPS = 1e-5  # zoo/ssl/deepcluster_kmeans.go pcaEps
SPLIT_EPS = 1.0 / 1024  # kmeansSplitEps
# the draws' streams (zoo/ssl/deepcluster.go dcStream*), for seeding numpy
STREAM_INIT, STREAM_SPLIT, STREAM_SAMPLER, STREAM_CLASSIFIER = 1, 2, 3, 4


def fail(msg):
    sys.exit("%s: %s" % (PROG, msg))


def draws(seed, epoch, stream):
    """A numpy generator for one (cluster seed, epoch, stream) draw."""
    return np.random.default_rng([seed & (2**64 - 1), epoch, stream])


# --- data: the views plus each image's index (ssl.Train's setBatchIndices)
class IndexedViews(Views):
    def __getitem__(self, i):
        return super().__getitem__(i), i


class EpochOrder(torch.utils.data.Sampler):
    """The epoch's image order: the method's list when it gives one
    (DeepCluster's uniform sampler), else a seeded shuffle."""

    def __init__(self, n, seed):
        self.n, self.order = n, None
        self.gen = torch.Generator()
        self.gen.manual_seed(seed)

    def __iter__(self):
        if self.order is not None:
            return iter(self.order.tolist())
        return iter(torch.randperm(self.n, generator=self.gen).tolist())

    def __len__(self):
        return self.n


@torch.no_grad()
def eval_features(net, images, spec, chunk=500):
    """net's outputs for every image through TrainSpec.EvalTransform (the
    whole image resized bilinearly, antialiased, to the training size, then
    normalised), with net in evaluation mode; net is left in training mode."""
    size = spec["size"]
    mean = torch.tensor(spec["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"]).view(1, -1, 1, 1)
    net.eval()
    out = []
    for lo in range(0, len(images), chunk):
        x = torch.tensor(images[lo:lo + chunk], dtype=torch.float32).div_(255).unsqueeze(1)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(net((x - mean) / std))
    net.train()
    return torch.cat(out)


# --- clustering (zoo/ssl/deepcluster_kmeans.go; scripts/gen_deepcluster*_golden.py)
def pca_whiten(x, d):
    """fitPCA + apply: PCA-whitening of the rows of x [n, f] to d dimensions,
    then L2 normalisation of each row (a zero row stays zero)."""
    x = x.double().numpy()
    n = x.shape[0]
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / n
    cov = (cov + cov.T) / 2
    vals, vecs = np.linalg.eigh(cov)  # ascending
    vals, vecs = vals[::-1], vecs[:, ::-1]
    top = max(vals[0], 0.0)
    if not top > 0:
        fail("pca: the %d features do not vary over the %d images" % (x.shape[1], n))
    v = vecs[:, :d]
    lead = v[np.abs(v).argmax(0), np.arange(d)]  # the first largest-magnitude entry of each
    sign = np.where(lead < 0, -1.0, 1.0)
    a = v * sign / np.sqrt(np.maximum(vals[:d], 0) + PCA_EPS * top)
    y = xc @ a
    norm = np.linalg.norm(y, axis=1, keepdims=True)
    y = y / np.where(norm == 0, 1, norm)
    return torch.from_numpy(y.astype(np.float32))


def normalise_rows(c):
    norm = c.double().norm(dim=1, keepdim=True)
    return (c.double() / torch.where(norm == 0, torch.ones_like(norm), norm)).float()


def nearest(x, xnorm, c, by_dot):
    """Each row's nearest centroid (squared L2 as |c|^2 - 2 x.c, or the
    largest dot product; the lowest index on a tie) and the sum of the
    squared distances."""
    n, k = x.shape[0], c.shape[0]
    cnorm = (c.double() ** 2).sum(1).float()
    rows = max(1, (1 << 24) // k)
    assign = torch.empty(n, dtype=torch.long)
    obj = 0.0
    for lo in range(0, n, rows):
        dots = x[lo:lo + rows] @ c.t()
        bj = torch.argmax(dots, dim=1) if by_dot else torch.argmin(cnorm - 2 * dots, dim=1)
        assign[lo:lo + rows] = bj
        best = cnorm[bj] - 2 * dots.gather(1, bj[:, None])[:, 0]
        obj += (xnorm[lo:lo + rows] + best.double()).clamp(min=0).sum().item()
    return assign, obj


def split_empty(c, counts, n, rng):
    """faiss's split_clusters (splitEmpty): each empty cluster ci walks the
    clusters cyclically from 0, stopping at cj with probability
    (count_j - 1)/(n - k); ci takes cj's centroid and the two move apart by
    a relative 1/1024 (even coordinates of ci up and of cj down, odd ones
    the other way); their counts split cj's."""
    k = len(counts)
    up, down = np.float32(1 + SPLIT_EPS), np.float32(1 - SPLIT_EPS)
    splits = 0
    for ci in range(k):
        if counts[ci] != 0:
            continue
        cj = 0
        while True:
            if n > k:
                p = (counts[cj] - 1) / (n - k)
            else:  # Go's (count-1)/0: +Inf for two rows or more, never otherwise
                p = math.inf if counts[cj] > 1 else -math.inf
            if rng.random() < p:
                break
            cj = (cj + 1) % k
        c[ci] = c[cj]
        c[ci, 0::2] *= up
        c[ci, 1::2] *= down
        c[cj, 0::2] *= down
        c[cj, 1::2] *= up
        counts[ci] = counts[cj] // 2
        counts[cj] -= counts[ci]
        splits += 1
    return splits


def lloyd(x, init, iters, spherical, rng=None):
    """kmeans (faiss's Clustering: means, empty clusters split) or
    sphericalKMeans (cluster_memory: non-empty centroids to their mean, all
    L2-normalised, empty ones kept); iters rounds, then one more
    assignment. Returns (assign, centroids, final objective, splits)."""
    x = x.float().contiguous()
    n, d = x.shape
    k = init.shape[0]
    c = init.clone().float()
    x64 = x.double()
    xnorm = (x64 ** 2).sum(1)
    splits = 0
    for _ in range(iters):
        assign, _ = nearest(x, xnorm, c, spherical)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros(k, d, dtype=torch.float64).index_add_(0, assign, x64)
        nonempty = counts > 0
        if spherical:
            c[nonempty] = (sums[nonempty] / counts[nonempty, None]).float()
            c = normalise_rows(c)
        else:
            c = (sums / counts.clamp(min=1)[:, None]).float()
            c[~nonempty] = 0
            cn, cc = c.numpy().copy(), counts.numpy().copy()
            splits += split_empty(cn, cc, n, rng)
            c = torch.from_numpy(cn)
    assign, obj = nearest(x, xnorm, c, spherical)
    return assign, c, obj, splits


def distinct_rows(x, k, rng):
    """k distinct random rows of x (faiss's initialisation)."""
    return x[torch.from_numpy(rng.permutation(x.shape[0])[:k].astype(np.int64))].clone()


def cluster_counts(sizes, n):
    """clusterCounts: n/C images from each of the C non-empty clusters, one
    more for the n mod C largest (the lower label first among equals)."""
    counts = np.zeros(len(sizes), dtype=np.int64)
    nonempty = [l for l in range(len(sizes)) if sizes[l] > 0]
    if not nonempty:
        return counts
    q, r = divmod(n, len(nonempty))
    counts[nonempty] = q
    for l in sorted(nonempty, key=lambda l: (-sizes[l], l))[:r]:
        counts[l] += 1
    return counts


def uniform_order(labels, k, rng):
    """uniformOrder: an epoch of len(labels) images, uniform over the
    pseudo-labels (as the reference's UnifLabelSampler), shuffled."""
    labels = np.asarray(labels)
    members = [np.flatnonzero(labels == l) for l in range(k)]
    counts = cluster_counts([len(m) for m in members], len(labels))
    order = []
    for m, c in zip(members, counts):
        if c == 0:
            continue
        order.extend([m] * (c // len(m)))
        order.append(rng.choice(m, c % len(m), replace=False))
    order = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
    if len(order) == 0:
        fail("uniform sampler: none of the %d images has a cluster" % len(labels))
    return torch.from_numpy(rng.permutation(order).astype(np.int64))


def nmi(a, b):
    """Normalised mutual information (arithmetic) of two labellings, over
    the images both label; logged as the Go run's clustering stats."""
    a, b = np.asarray(a), np.asarray(b)
    keep = (a >= 0) & (b >= 0)
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return float("nan")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    joint = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(joint, (ia, ib), 1)
    p = joint / len(a)
    pa, pb = p.sum(1), p.sum(0)

    def h(q):
        q = q[q > 0]
        return -(q * np.log(q)).sum()
    ha, hb = h(pa), h(pb)
    if ha == 0 and hb == 0:
        return 1.0
    nz = p > 0
    mi = (p[nz] * np.log(p[nz] / (pa[:, None] * pb[None, :])[nz])).sum()
    return max(0.0, 2 * mi / (ha + hb))


# --- methods: build(cfg, enc, spec, images) returns a dict with
# parts (prefix, module), opt, oc, pipelines, prepare(epoch) -> order or
# None, step(views, idx, s) -> loss, after() (after the optimizer step).
def build_deepcluster(cfg, enc, spec, images):
    n, k, seed = len(images), cfg["Clusters"], cfg["Seed"]
    if cfg["Images"] != n:
        fail("deepcluster: the Go run clustered %d images, the data has %d" % (cfg["Images"], n))
    if not 2 <= k <= n:
        fail("deepcluster: %d clusters for %d images" % (k, n))
    oc = cfg["Optim"]
    if oc["Name"] != "sgd":
        fail("deepcluster trains with sgd, the config has %r" % oc["Name"])
    cls = nn.Linear(enc.feature_dim, k)
    # deepClusterSGD: momentum SGD over the backbone, plain SGD over the
    # classifier, one rate and weight decay
    opt = torch.optim.SGD([{"params": list(enc.parameters()), "momentum": oc["Momentum"]},
                           {"params": list(cls.parameters()), "momentum": 0.0}],
                          lr=lr_at(oc, 0), weight_decay=oc["WeightDecay"])
    size, norm = spec["size"], T.Normalize(spec["mean"], spec["std"])
    pipelines = [T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(0.5), T.ToTensor(), norm])]
    st = {"labels": None}

    def prepare(epoch):
        f = eval_features(enc, images, spec)
        d = max(1, min(cfg["PCADim"], f.shape[1], n - 1))
        y = pca_whiten(f, d)
        init = distinct_rows(y, k, draws(seed, epoch, STREAM_INIT))
        assign, _, obj, splits = lloyd(y, init, cfg["Iterations"], False, draws(seed, epoch, STREAM_SPLIT))
        labels = assign.numpy()
        order = uniform_order(labels, k, draws(seed, epoch, STREAM_SAMPLER))
        info = "%d/%d clusters non-empty, objective %.4g, %d splits, dim %d" % (
            len(np.unique(labels)), k, obj, splits, d)
        if st["labels"] is not None:
            info += ", NMI %.3f" % nmi(st["labels"].numpy(), labels)
        st["labels"] = assign
        with torch.no_grad():  # resetClassifier
            g = torch.Generator()
            g.manual_seed(int(draws(seed, epoch, STREAM_CLASSIFIER).integers(2**62)))
            cls.weight.normal_(0, 0.01, generator=g)
            cls.bias.zero_()
        return order, info

    def step(views, idx, s):
        return F.cross_entropy(cls(enc(views[0])), st["labels"][idx])
    return {"parts": [("backbone", enc), ("classifier", cls)], "opt": opt, "oc": oc, "pipelines": pipelines,
            "prepare": prepare, "step": step, "after": None}


def build_deepclusterv2(cfg, enc, spec, images):
    n, seed, g, temp = len(images), cfg["Seed"], cfg["GlobalCrops"], cfg["Temperature"]
    heads, dim = cfg["Prototypes"], cfg["ProjDim"]
    if cfg["Images"] != n:
        fail("deepclusterv2: the Go run clustered %d images, the data has %d" % (cfg["Images"], n))
    if any(not 2 <= k <= n for k in heads):
        fail("deepclusterv2: prototypes %s for %d images" % (heads, n))
    pipelines = view_pipelines(dict(spec, method="swav"))  # TrainSpec.Views: SwAV's multi-crop
    if not 1 <= g <= 2:
        fail("deepclusterv2: %d global crops in the memory bank; the pipeline has 2" % g)
    proj = mlp([enc.feature_dim, cfg["ProjHidden"], dim], True)
    protos = [torch.zeros(k, dim) for k in heads]
    bank = torch.zeros(g, n, dim)
    labels = torch.full((len(heads), n), -1, dtype=torch.long)
    oc = cfg["Optim"]
    named = [("backbone." + a, p) for a, p in enc.named_parameters()] + \
            [("projector." + a, p) for a, p in proj.named_parameters()]
    opt = make_optimizer(oc, named)
    embed = nn.Sequential(enc, proj)
    st = {"clustered": False, "z": None, "idx": None}

    def prepare(epoch):
        info = ""
        if not st["clustered"]:  # fill the bank: evaluation-mode embeddings, one row for every crop
            z = F.normalize(eval_features(embed, images, spec), dim=1)
            bank.copy_(z.unsqueeze(0).expand(g, n, dim))
            info = "bank filled, "
        parts = []
        for h, k in enumerate(heads):
            x = bank[h % g]
            rows = torch.nonzero((x.double() ** 2).sum(1) > 0)[:, 0]
            if len(rows) < k:
                fail("deepclusterv2: head %d: %d images in the memory bank, fewer than its %d prototypes" % (h, len(rows), k))
            x = x[rows]
            init = distinct_rows(x, k, np.random.default_rng([seed & (2**64 - 1), epoch, 256 + h]))
            assign, c, obj, _ = lloyd(x, init, cfg["Iterations"], True)
            new = torch.full((n,), -1, dtype=torch.long)
            new[rows] = assign
            part = "head %d: %d/%d non-empty, objective %.4g" % (h, len(torch.unique(assign)), k, obj)
            if st["clustered"]:
                part += ", NMI %.3f" % nmi(labels[h].numpy(), new.numpy())
            parts.append(part)
            labels[h] = new
            protos[h] = c
        st["clustered"] = True
        return None, info + "; ".join(parts)

    def step(views, idx, s):
        b = views[0].shape[0]
        z = F.normalize(proj(multi_crop(enc, views)), dim=1)
        loss = 0
        for h, p in enumerate(protos):
            loss = loss + F.cross_entropy(z @ p.t() / temp, labels[h][idx].repeat(len(views)), ignore_index=-1)
        st["z"], st["idx"] = z.detach()[:g * b].view(g, b, dim), idx
        return loss / len(protos)

    def after():  # the forward pass's global-crop embeddings replace the bank's rows
        bank[:, st["idx"]] = st["z"]
    return {"parts": [("backbone", enc), ("projector", proj)], "opt": opt, "oc": oc, "pipelines": pipelines,
            "prepare": prepare, "step": step, "after": after}


BUILDERS = {"deepcluster": build_deepcluster, "deepclusterv2": build_deepclusterv2}


def main():
    args, meta, spec, cfg = twin_run(__doc__, "|".join(METHODS))
    if spec["method"] not in BUILDERS:
        fail("%s is a %r run; this twin mirrors %s (scripts/learning_torch.py the others)"
             % (args.like, spec["method"], " and ".join(METHODS)))
    if spec["arch"] != "resnet18-cifar" or spec["in_channels"] != 1:
        fail("only resnet18-cifar on one-channel data is mirrored (got %s, %d channels)"
             % (spec["arch"], spec["in_channels"]))
    images = load_idx_images(spec["data"], spec.get("limit", 0))
    enc = ResNet18Cifar(spec["width"], spec["in_channels"])
    m = BUILDERS[spec["method"]](cfg, enc, spec, images)
    oc = m["oc"]

    batch, epochs = spec["batch"], spec["epochs"]
    spe = len(images) // batch
    # DeepCluster's schedule is constant (TotalSteps 0): check the Go run's steps instead
    want = oc["TotalSteps"] or int(meta.get("sslzoo.steps", spe * epochs))
    if spe * epochs != want:
        fail("%d steps/epoch x %d epochs != the Go run's %d total steps" % (spe, epochs, want))
    sampler = EpochOrder(len(images), spec["seed"])
    loader = torch.utils.data.DataLoader(IndexedViews(images, m["pipelines"]), batch_size=batch, sampler=sampler,
                                         drop_last=True, num_workers=args.workers, worker_init_fn=worker_init,
                                         persistent_workers=args.workers > 0)
    for _, part in m["parts"]:
        part.train()
    opt, step_fn, after = m["opt"], m["step"], m["after"]

    log, cluster_s = EpochLog(spec["method"]), []
    for epoch in range(epochs):
        tc = time.perf_counter()
        sampler.order, info = m["prepare"](epoch)
        cluster_s.append(time.perf_counter() - tc)
        print("torch %s epoch %d clustering: %s, %.1fs" % (spec["method"], epoch + 1, info, cluster_s[-1]),
              file=sys.stderr)
        log.start()
        for views, idx in loader:
            s = log.steps
            set_lr(opt, lr_at(oc, s))
            loss = step_fn(views, idx, s)
            if not math.isfinite(loss.item()):
                fail("loss %g at step %d" % (loss.item(), s))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if after:
                after()
            log.step(loss)
        log.end(epoch, epochs)

    log.finish(meta, args.out, enc.state_dict(), "learning_torch_cluster.py", cluster_s=cluster_s)


if __name__ == "__main__":
    main()
