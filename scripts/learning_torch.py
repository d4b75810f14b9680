#!/usr/bin/python3
"""PyTorch twin of an `sslzoo train` run, for the proof-of-learning table.

    /usr/bin/python3 scripts/learning_torch.py --like GO_OUT/final.safetensors --out DIR

reads the run spec (sslzoo.train) and the method config (sslzoo.method_config)
from the metadata of a final.safetensors that `sslzoo train` wrote, trains the
same recipe in PyTorch -- same data (Fashion-MNIST or MNIST train split, first
`limit` images), same ResNet (CIFAR stem, width multiplier, one input channel,
kaiming fan-out init), same augmentation pipelines in torchvision, same
heads, losses, optimizer (LARS as nn/optim.go implements it, or SGD), learning
rate and momentum schedules, epochs and batch -- and writes DIR/final.safetensors
with the backbone under torchvision names and the Go run's metadata, so that
`sslzoo eval knn --checkpoint DIR/final.safetensors` evaluates both runs with
one and the same protocol.

Methods: simclr, mocov2, mocov3, byol, swav, barlow, vicreg, simsiam, dino
(ResNet recipes: LARS or SGD) and jigsaw, whose permutation set is read from
the Go run's checkpoint.safetensors beside --like (the buffer
"permutations"; without that file it is regenerated as
ssl.MaxHammingPermutations does) and whose per-step puzzle draws use Go's
PCG stream, so both engines cut the same grid offsets, jitter and labels.

It prints one JSON line: method, epochs, seconds per epoch (training only:
data loading included, evaluation excluded), the mean loss of each epoch and
the first ten step losses (first_losses).

The method logic follows scripts/gen_ssl_steps.py, whose loops the Go methods
match step for step (zoo/ssl TestStepsMatchPyTorch); Barlow Twins, VICReg,
SimSiam, DINO and Jigsaw follow zoo/ssl/{barlow,vicreg,simsiam,twin,dino,
jigsaw}.go and losses.go. PyTorch runs with
--threads (2) intra-op threads and --workers (2) DataLoader processes, as the
Go loader decodes on goroutines beside the training step.
"""
import argparse
import gzip
import json
import math
import os
import random
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image


# --- safetensors by hand (8-byte little-endian header length, JSON header,
# raw little-endian data); the Python package is not installed here.
def read_safetensors_metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def read_safetensors_tensor(path, name):
    """One F32 or I64 tensor of a safetensors file, or None if it has none
    of that name."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        info = json.loads(f.read(n)).get(name)
        if info is None:
            return None
        lo, hi = info["data_offsets"]
        f.seek(8 + n + lo)
        dtype = {"F32": "<f4", "I64": "<i8"}[info["dtype"]]
        arr = np.frombuffer(f.read(hi - lo), dtype=dtype).reshape(info["shape"])
        return torch.from_numpy(arr.copy())


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.is_floating_point():
            arr, dtype = t.to(torch.float32).numpy(), "F32"
        else:
            arr, dtype = t.to(torch.int64).numpy(), "I64"
        b = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# --- data
def load_idx_images(spec, limit):
    name = spec.split(":")[0]
    if name == "fashion-mnist":
        d = os.environ.get("SSLZOO_FASHION_MNIST_DIR") or "/usr/share/datasets/fashion-mnist"
    elif name == "mnist":
        d = os.environ.get("SSLZOO_MNIST_DIR")
        if not d:
            sys.exit("learning_torch: set SSLZOO_MNIST_DIR to the MNIST IDX folder")
    else:
        sys.exit("learning_torch: data %r not supported (fashion-mnist or mnist)" % spec)
    with gzip.open(os.path.join(d, "train-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read()
    n, h, w = struct.unpack(">III", raw[4:16])
    x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w)
    if limit:
        x = x[:limit]
    return x


def blur_kernel_for(size):
    # data/augment.BlurKernelFor: 10% of the size, odd, at least 3
    k = size // 10
    if k % 2 == 0:
        k += 1
    return max(k, 3)


def view_pipelines(spec):
    """The torchvision twins of data/augment/recipes.go."""
    size, norm = spec["size"], T.Normalize(spec["mean"], spec["std"])
    tail = [T.ToTensor(), norm]

    def blur(size, p):
        return T.RandomApply([T.GaussianBlur(blur_kernel_for(size), sigma=(0.1, 2.0))], p=p)

    m = spec["method"]
    if m == "simclr":  # CIFAR-10 setting: colour strength 0.5, no blur
        s = 0.5
        v = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(0.5),
                       T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
                       T.RandomGrayscale(0.2)] + tail)
        return [v, v]
    if m in ("mocov2", "simsiam"):
        v = T.Compose([T.RandomResizedCrop(size, scale=(0.2, 1.0)),
                       T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2),
                       blur(size, 0.5), T.RandomHorizontalFlip(0.5)] + tail)
        return [v, v]
    if m in ("byol", "mocov3", "barlow", "vicreg"):
        def view(blur_p, solar_p):
            ops = [T.RandomResizedCrop(size), T.RandomHorizontalFlip(0.5),
                   T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), T.RandomGrayscale(0.2),
                   blur(size, blur_p)]
            if solar_p > 0:
                ops.append(T.RandomSolarize(128, p=solar_p))
            return T.Compose(ops + tail)
        return [view(1.0, 0.0), view(0.1, 0.2)]
    if m in ("swav", "dino"):  # DINO's ResNet run takes SwAV's multi-crop pipeline
        def crop(sz, scale):
            return T.Compose([T.RandomResizedCrop(sz, scale=scale), T.RandomHorizontalFlip(0.5),
                              T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8), T.RandomGrayscale(0.2),
                              blur(sz, 0.5)] + tail)
        g, l = crop(size, (0.14, 1.0)), crop(spec["local_size"], (0.05, 0.14))
        return [g, g] + [l] * spec.get("local_crops", 0)
    if m == "jigsaw":  # one square crop of 3/4 of the image or more; Step cuts the puzzle
        return [T.Compose([T.RandomResizedCrop(size, scale=(0.75, 1.0), ratio=(1.0, 1.0))] + tail)]
    sys.exit("learning_torch: unknown method %r" % m)


class Views(torch.utils.data.Dataset):
    def __init__(self, images, pipelines):
        self.images, self.pipelines = images, pipelines

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i], mode="L")
        return [p(img) for p in self.pipelines]


def worker_init(worker_id):
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


# --- backbone: zoo.ResNet (torchvision names), CIFAR stem
def scaled(base, width):
    return max(1, int(math.floor(base * width + 0.5)))


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        idn = x if self.downsample is None else self.downsample(x)
        return F.relu(out + idn)


class ResNet18Cifar(nn.Module):
    def __init__(self, width, in_ch):
        super().__init__()
        w = [scaled(b, width) for b in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_ch, w[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        cin = w[0]
        for i, (planes, stride) in enumerate(zip(w, (1, 2, 2, 2))):
            blocks = [BasicBlock(cin, planes, stride), BasicBlock(planes, planes, 1)]
            cin = planes
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.feature_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, "layer%d" % i)(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def mlp(dims, bn):
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            if bn:
                layers.append(nn.BatchNorm1d(dims[i + 1]))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mocov3_mlp(num_layers, input_dim, mlp_dim, output_dim, last_bn=True):
    layers = []
    for l in range(num_layers):
        d1 = input_dim if l == 0 else mlp_dim
        d2 = output_dim if l == num_layers - 1 else mlp_dim
        layers.append(nn.Linear(d1, d2, bias=False))
        if l < num_layers - 1:
            layers.append(nn.BatchNorm1d(d2))
            layers.append(nn.ReLU(inplace=True))
        elif last_bn:
            layers.append(nn.BatchNorm1d(d2, affine=False))
    return nn.Sequential(*layers)


# --- optimizers and schedules as in nn/optim.go and zoo/ssl/common.go
def lr_at(oc, step):
    total, warm, base, final = oc["TotalSteps"], oc["WarmupSteps"], oc["LR"], oc["FinalLR"]
    if total <= 0:
        return base * step / warm if step < warm else base
    step = min(step, total)
    if step < warm:
        return base * step / warm
    if step >= total:
        return final
    p = (step - warm) / (total - warm)
    return final + (base - final) * 0.5 * (1 + math.cos(math.pi * p))


class LARS:
    """nn.LARS: g = grad + wd*w; r = eta*|w|/|g|; v = m*v + lr*r*g; w -= v
    (with clip, min(r, lr) in place of lr*r).
    Biases and 1-D parameters get neither decay nor adaptation unless
    adapt_all (SwAV's LARC)."""

    def __init__(self, named_params, lr, momentum, wd, eta, adapt_all, clip):
        self.params = [(n, p) for n, p in named_params]
        self.lr, self.m, self.wd, self.eta, self.adapt_all, self.clip = lr, momentum, wd, eta or 0.001, adapt_all, clip
        self.v = [torch.zeros_like(p) for _, p in self.params]

    def zero_grad(self):
        for _, p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for (name, p), v in zip(self.params, self.v):
            if p.grad is None:
                continue
            excluded = not self.adapt_all and (name.endswith("bias") or p.dim() <= 1)
            wd = 0.0 if excluded else self.wd
            d = p.grad + wd * p
            wn, gn = p.double().norm().item(), d.double().norm().item()
            rate = self.lr
            if not excluded and wn > 0 and gn > 0:
                r = self.eta * wn / gn
                rate = min(r, self.lr) if self.clip else self.lr * r
            v.mul_(self.m).add_(d, alpha=rate)
            p.sub_(v)


def make_optimizer(oc, named):
    if oc["Name"] == "lars":
        return LARS(named, lr_at(oc, 0), oc["Momentum"], oc["WeightDecay"], oc["TrustCoefficient"], oc["AdaptAll"],
                    oc.get("ClipTrustRatio", False))
    if oc["Name"] == "sgd":
        return torch.optim.SGD([p for _, p in named], lr=lr_at(oc, 0), momentum=oc["Momentum"],
                               weight_decay=oc["WeightDecay"])
    sys.exit("learning_torch: optimizer %r not supported" % oc["Name"])


def set_lr(opt, lr):
    if isinstance(opt, LARS):
        opt.lr = lr
    else:
        for g in opt.param_groups:
            g["lr"] = lr


def cosine_momentum(k, K, base):
    if K <= 0 or k >= K:
        return 1.0
    return 1 - (1 - base) * (math.cos(math.pi * k / K) + 1) / 2


@torch.no_grad()
def ema(online, target, m):
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(m).add_(po, alpha=1 - m)
    for bo, bt in zip(online.buffers(), target.buffers()):
        bt.copy_(bo)


def copy_of(module):
    import copy
    c = copy.deepcopy(module)
    for p in c.parameters():
        p.requires_grad_(False)
    return c


# --- methods: build(cfg, enc) returns (trainable named params, step(views, s) -> loss)
def build_simclr(cfg, enc):
    proj = mlp([enc.feature_dim, cfg["HiddenDim"], cfg["OutDim"]], True)
    tau = cfg["Temperature"]

    def step(views, s):
        n = views[0].shape[0]
        z = F.normalize(proj(enc(torch.cat(views[:2]))), dim=1)
        sim = (z @ z.t() / tau).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
        labels = torch.cat([torch.arange(n) + n, torch.arange(n)])
        return F.cross_entropy(sim, labels), None
    return [("backbone", enc), ("projector", proj)], step


def build_mocov2(cfg, enc):
    proj = mlp([enc.feature_dim, cfg["HiddenDim"], cfg["OutDim"]], False)
    online = nn.ModuleList([enc, proj])
    target = copy_of(online)
    K, tau, mom = cfg["QueueSize"], cfg["Temperature"], cfg["Momentum"]
    queue = F.normalize(torch.randn(cfg["OutDim"], K), dim=0)
    ptr = [0]

    def step(views, s):
        n = views[0].shape[0]
        q = F.normalize(proj(enc(views[0])), dim=1)
        with torch.no_grad():
            ema(online, target, mom)
            k = F.normalize(target[1](target[0](views[1])), dim=1)
        l_pos = (q * k).sum(1, keepdim=True)
        l_neg = q @ queue.clone()
        loss = F.cross_entropy(torch.cat([l_pos, l_neg], 1) / tau, torch.zeros(n, dtype=torch.long))
        idx = (ptr[0] + torch.arange(n)) % K
        queue[:, idx] = k.t()
        ptr[0] = (ptr[0] + n) % K
        return loss, None
    return [("backbone", enc), ("projector", proj)], step


def build_mocov3(cfg, enc):
    proj = mocov3_mlp(cfg["ProjLayers"], enc.feature_dim, cfg["HiddenDim"], cfg["OutDim"])
    pred = mocov3_mlp(2, cfg["OutDim"], cfg["HiddenDim"], cfg["OutDim"], False)
    online = nn.ModuleList([enc, proj])
    target = copy_of(online)
    tau, base, K = cfg["Temperature"], cfg["BaseMomentum"], cfg["MomentumSteps"]

    def ctr(q, k):
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        return F.cross_entropy(q @ k.t() / tau, torch.arange(q.shape[0])) * (2 * tau)

    def step(views, s):
        x1, x2 = views[0], views[1]
        q1, q2 = pred(proj(enc(x1))), pred(proj(enc(x2)))
        with torch.no_grad():
            ema(online, target, cosine_momentum(s, K, base))
            k1, k2 = target[1](target[0](x1)), target[1](target[0](x2))
        return ctr(q1, k2) + ctr(q2, k1), None
    return [("backbone", enc), ("projector", proj), ("predictor", pred)], step


def build_byol(cfg, enc):
    proj = mlp([enc.feature_dim, cfg["ProjHidden"], cfg["ProjDim"]], True)
    pred = mlp([cfg["ProjDim"], cfg["PredHidden"], cfg["ProjDim"]], True)
    online = nn.ModuleList([enc, proj])
    target = copy_of(online)
    base, K = cfg["BaseMomentum"], cfg["MomentumSteps"]

    def fn(x, y):
        return 2 - 2 * (F.normalize(x, dim=1) * F.normalize(y, dim=1)).sum(-1)

    def step(views, s):
        x1, x2 = views[0], views[1]
        p1, p2 = pred(proj(enc(x1))), pred(proj(enc(x2)))
        with torch.no_grad():
            t1, t2 = target[1](target[0](x1)), target[1](target[0](x2))
        loss = (fn(p1, t2) + fn(p2, t1)).mean()
        return loss, lambda: ema(online, target, cosine_momentum(s, K, base))
    return [("backbone", enc), ("projector", proj), ("predictor", pred)], step


def multi_crop(enc, views):
    """enc over every view, the crops of one size in one batch (as the Go
    methods' multiCropFeatures: BatchNorm sees the same groups), the
    features concatenated in view order."""
    feats, i = [], 0
    while i < len(views):
        j = i
        while j < len(views) and views[j].shape == views[i].shape:
            j += 1
        feats.append(enc(torch.cat(views[i:j])))
        i = j
    return torch.cat(feats)


def build_swav(cfg, enc):
    if cfg.get("QueueLength", 0):
        sys.exit("learning_torch: SwAV queue not mirrored here (the Go run had QueueLength %d)" % cfg["QueueLength"])
    proj = mlp([enc.feature_dim, cfg["ProjHidden"], cfg["ProjDim"]], True)
    protos = nn.Linear(cfg["ProjDim"], cfg["Prototypes"], bias=False)
    temp, eps, iters, g = cfg["Temperature"], cfg["Epsilon"], cfg["SinkhornIters"], cfg["GlobalCrops"]
    freeze = cfg["FreezePrototypesSteps"]

    @torch.no_grad()
    def sinkhorn(out):
        Q = torch.exp(out / eps).t()
        Kq, Bq = Q.shape
        Q /= Q.sum()
        for _ in range(iters):
            Q /= Q.sum(dim=1, keepdim=True)
            Q /= Kq
            Q /= Q.sum(dim=0, keepdim=True)
            Q /= Bq
        return (Q * Bq).t()

    def step(views, s):
        n = views[0].shape[0]
        with torch.no_grad():
            protos.weight.copy_(F.normalize(protos.weight, dim=1))
        emb = F.normalize(proj(multi_crop(enc, views)), dim=1)
        out = protos(emb)
        nc = len(views)
        loss = 0
        for crop in range(g):
            q = sinkhorn(out[n * crop:n * (crop + 1)].detach())
            sub = 0
            for v in range(nc):
                if v != crop:
                    sub = sub - torch.mean(torch.sum(q * F.log_softmax(out[n * v:n * (v + 1)] / temp, dim=1), dim=1))
            loss = loss + sub / (nc - 1)
        loss = loss / g

        def after_backward():
            if s < freeze:
                protos.weight.grad = None
        return loss, ("before_step", after_backward)
    return [("backbone", enc), ("projector", proj), ("prototypes", protos)], step


def twin_encode(enc, proj, views):
    """Barlow Twins, VICReg and SimSiam (zoo/ssl/twin.go): each view goes
    through encoder and projector on its own, so BatchNorm sees one view."""
    return [proj(enc(v)) for v in views[:2]]


def bias_free_mlp(layers, d_in, hidden, out, last_bn):
    # ssl.newBiasFreeMLP is MoCo v3's _build_mlp
    return mocov3_mlp(layers, d_in, hidden, out, last_bn)


def build_barlow(cfg, enc):
    proj = bias_free_mlp(3, enc.feature_dim, cfg["ProjHidden"], cfg["ProjDim"], False)
    lam, scale = cfg["Lambda"], cfg["Scale"]

    def std(z):  # BatchNorm1d without affine: batch mean, biased variance, eps 1e-5
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)

    def step(views, s):
        z1, z2 = twin_encode(enc, proj, views)
        n, d = z1.shape
        c = std(z1).t() @ std(z2) / n
        eye = torch.eye(d)
        w = torch.full((d, d), lam) + (1 - lam) * eye
        return scale * ((c - eye).pow(2) * w).sum(), None
    return [("backbone", enc), ("projector", proj)], step


def build_vicreg(cfg, enc):
    proj = bias_free_mlp(3, enc.feature_dim, cfg["ProjHidden"], cfg["ProjDim"], False)
    lc = cfg["Loss"]

    def step(views, s):
        z1, z2 = twin_encode(enc, proj, views)
        n, d = z1.shape
        off = 1 - torch.eye(d)
        inv = F.mse_loss(z1, z2)
        var, cov = 0, 0
        for z in (z1, z2):
            zc = z - z.mean(0)
            sd = torch.sqrt(zc.pow(2).sum(0) / (n - 1) + lc["Epsilon"])
            var = var + F.relu(lc["Gamma"] - sd).mean()
            cov = cov + ((zc.t() @ zc / (n - 1)).pow(2) * off).sum()
        return lc["Invariance"] * inv + lc["Variance"] / 2 * var + lc["Covariance"] / d * cov, None
    return [("backbone", enc), ("projector", proj)], step


def build_simsiam(cfg, enc):
    proj = bias_free_mlp(cfg["ProjLayers"], enc.feature_dim, cfg["ProjHidden"], cfg["ProjDim"], True)
    # nn.MLP{Dims: [ProjDim, PredHidden, ProjDim], BatchNorm, NoBiasBeforeBN}
    pred = nn.Sequential(nn.Linear(cfg["ProjDim"], cfg["PredHidden"], bias=False), nn.BatchNorm1d(cfg["PredHidden"]),
                         nn.ReLU(), nn.Linear(cfg["PredHidden"], cfg["ProjDim"]))

    def cos(p, z):
        return (F.normalize(p, dim=1) * F.normalize(z.detach(), dim=1)).sum(1)

    def step(views, s):
        z1, z2 = twin_encode(enc, proj, views)
        p1, p2 = pred(z1), pred(z2)
        return -0.5 * (cos(p1, z2) + cos(p2, z1)).mean(), None
    return [("backbone", enc), ("projector", proj), ("predictor", pred)], step


class DINOHead(nn.Module):
    """ssl.DINOHead: Linear-GELU, Linear-GELU, Linear to the bottleneck
    (weights trunc-normal std 0.02, zero biases), L2 normalisation, then the
    weight-normalised last layer with g fixed at 1 (norm_last_layer)."""

    def __init__(self, d_in, hidden, bottleneck, k):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2, b=2)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.Module()
        self.last_layer.weight_v = nn.Parameter(nn.Linear(bottleneck, k, bias=False).weight.detach().clone())

    def forward(self, x):
        z = F.normalize(self.mlp(x), dim=1)
        return z @ F.normalize(self.last_layer.weight_v, dim=1).t()


def build_dino(cfg, enc):
    head = DINOHead(enc.feature_dim, cfg["HeadHidden"], cfg["Bottleneck"], cfg["Prototypes"])
    online = nn.ModuleList([enc, head])
    target = copy_of(online)
    oc = cfg["Optim"]
    if oc["Name"] == "adamw":
        sys.exit("learning_torch: DINO with AdamW (the ViT recipe) is not mirrored here")
    center = torch.zeros(1, cfg["Prototypes"])
    ts, t0, t1, tw = cfg["StudentTemp"], cfg["WarmupTeacherTemp"], cfg["TeacherTemp"], cfg["TeacherTempWarmupSteps"]
    base, K = cfg["BaseMomentum"], cfg["MomentumSteps"] or oc["TotalSteps"]
    clip, freeze, cm = cfg["ClipGrad"], cfg["FreezeLastLayerSteps"], cfg["CenterMomentum"]
    named = [("backbone." + n, p) for n, p in enc.named_parameters()] + [("head." + n, p) for n, p in head.named_parameters()]
    # DINO's regularised group (nn.ExcludeBiasAndNorm leaves biases and 1-D
    # parameters out); the optimizer itself runs without weight decay.
    decayed = [p for n, p in named if not (n.endswith("bias") or p.dim() <= 1)]
    oc["WeightDecay"], wd0 = 0.0, oc["WeightDecay"]

    def teacher_temp(s):
        return t1 if s >= tw else t0 + (t1 - t0) * s / tw

    def weight_decay_at(s):  # a cosine from WeightDecay to FinalWeightDecay
        return wd0 if oc["TotalSteps"] <= 0 else lr_at(dict(oc, LR=wd0, FinalLR=cfg["FinalWeightDecay"], WarmupSteps=0), s)

    def step(views, s):
        n, g = views[0].shape[0], 2
        with torch.no_grad():
            t_out = target[1](target[0](torch.cat(views[:g])))
        s_out = head(multi_crop(enc, views)) / ts
        q = F.softmax((t_out - center) / teacher_temp(s), dim=1)
        nc, loss = len(views), 0
        for gi in range(g):
            for v in range(nc):
                if v != gi:
                    loss = loss - (q[gi * n:(gi + 1) * n] * F.log_softmax(s_out[v * n:(v + 1) * n], dim=1)).sum(1).mean()
        loss = loss / (g * (nc - 1))

        @torch.no_grad()
        def before_step():
            if s < freeze:
                head.last_layer.weight_v.grad = None
            if clip > 0:  # each parameter's gradient norm on its own
                for _, p in named:
                    if p.grad is not None:
                        c = clip / (p.grad.double().norm().item() + 1e-6)
                        if c < 1:
                            p.grad.mul_(c)
            wd = weight_decay_at(s)
            if wd:
                for p in decayed:
                    if p.grad is not None:
                        p.grad.add_(p, alpha=wd)

        @torch.no_grad()
        def after_step():
            ema(online, target, base if K == 0 else cosine_momentum(s, K, base))
            center.mul_(cm).add_(t_out.mean(0, keepdim=True), alpha=1 - cm)
        return loss, {"before_step": before_step, "after_step": after_step}
    return [("backbone", enc), ("head", head)], step


class GoPCG:
    """Go's math/rand/v2 PCG (128-bit LCG, DXSM output) and Rand.IntN, so the
    twin draws Jigsaw's permutation set and puzzles as the Go run does."""
    M64, M128 = (1 << 64) - 1, (1 << 128) - 1
    MUL = (2549297995355413924 << 64) | 4865540595714422341
    INC = (6364136223846793005 << 64) | 1442695040888963407

    def __init__(self, seed1, seed2):
        self.state = ((seed1 & self.M64) << 64) | (seed2 & self.M64)

    def uint64(self):
        self.state = (self.state * self.MUL + self.INC) & self.M128
        hi, lo = self.state >> 64, self.state & self.M64
        hi ^= hi >> 32
        hi = (hi * 0xda942042e4dd58b5) & self.M64
        hi ^= hi >> 48
        return (hi * (lo | 1)) & self.M64

    def intn(self, n):
        if n & (n - 1) == 0:
            return self.uint64() & (n - 1)
        p = self.uint64() * n
        if p & self.M64 < n:
            thresh = ((1 << 64) - n) % n
            while p & self.M64 < thresh:
                p = self.uint64() * n
        return p >> 64


JIGSAW_STREAM = 0x6a6967736177  # zoo/ssl/jigsaw.go jigsawStream


def max_hamming_permutations(n, start):
    """ssl.MaxHammingPermutations (scripts/gen_jigsaw_golden.py's max_hamming)."""
    import itertools
    perms = np.array(list(itertools.permutations(range(9))), dtype=np.int8)
    min_d = np.full(len(perms), 10, dtype=np.int8)
    chosen, cur = [start], start
    while len(chosen) < n:
        np.minimum(min_d, (perms != perms[cur]).sum(axis=1).astype(np.int8), out=min_d)
        cur = int(np.argmax(min_d))
        chosen.append(cur)
    return torch.from_numpy(perms[chosen].astype(np.int64))


def build_jigsaw(cfg, enc, like=None):
    P, t = cfg["Permutations"], cfg["Tile"]
    ckpt = like and os.path.join(os.path.dirname(like), "checkpoint.safetensors")
    perms = read_safetensors_tensor(ckpt, "permutations") if ckpt and os.path.exists(ckpt) else None
    if perms is None:  # no Go checkpoint beside the run: the same selection
        perms = max_hamming_permutations(P, GoPCG(cfg["Seed"], JIGSAW_STREAM).intn(362880))
        print("learning_torch: jigsaw permutations regenerated (no %s)" % ckpt, file=sys.stderr)
    perms = perms.to(torch.int64)
    if list(perms.shape) != [P, 9]:
        sys.exit("learning_torch: jigsaw permutation set of shape %s, want [%d, 9]" % (list(perms.shape), P))
    cls = mlp([9 * enc.feature_dim, cfg["HiddenDim"], P], True)

    def step(views, s):
        v = views[0]
        n, c, h, w = v.shape
        ch, cw = h // 3, w // 3
        rng = GoPCG(cfg["Seed"], s)  # Jigsaw.drawPuzzles: the step's own stream
        y0, x0, labels = [], [], []
        for i in range(n):
            top, left = rng.intn(h - 3 * ch + 1), rng.intn(w - 3 * cw + 1)
            jit = [(rng.intn(ch - t + 1), rng.intn(cw - t + 1)) for _ in range(9)]
            label = rng.intn(P)
            labels.append(label)
            for cell in perms[label].tolist():  # input position k shows cell perms[label][k]
                y0.append(top + cell // 3 * ch + jit[cell][0])
                x0.append(left + cell % 3 * cw + jit[cell][1])
        r = torch.arange(t)
        ys = (torch.tensor(y0)[:, None] + r)[:, :, None]  # [9N, t, 1]
        xs = (torch.tensor(x0)[:, None] + r)[:, None, :]  # [9N, 1, t]
        img = torch.arange(n).repeat_interleave(9)[:, None, None]
        x = v.permute(0, 2, 3, 1)[img, ys, xs].permute(0, 3, 1, 2).contiguous()  # [9N, C, t, t]
        sd = x.std(dim=(2, 3), unbiased=True, keepdim=True)
        x = (x - x.mean(dim=(2, 3), keepdim=True)) / torch.where(sd == 0, torch.ones_like(sd), sd)
        logits = cls(enc(x).reshape(n, -1))
        return F.cross_entropy(logits, torch.tensor(labels)), None
    return [("backbone", enc), ("classifier", cls)], step


BUILDERS = {"simclr": build_simclr, "mocov2": build_mocov2, "mocov3": build_mocov3, "byol": build_byol, "swav": build_swav,
            "barlow": build_barlow, "vicreg": build_vicreg, "simsiam": build_simsiam, "dino": build_dino,
            "jigsaw": build_jigsaw}


class EpochLog:
    """What a twin reports: each epoch's mean loss and seconds (the training
    loop only, data loading included), the first ten step losses, the
    steps; finish writes the weights and prints the JSON line the
    benchmarks read."""

    def __init__(self, method):
        self.method, self.steps = method, 0
        self.epoch_s, self.loss, self.first_losses = [], [], []

    def start(self):
        self.t0, self.total, self.count = time.perf_counter(), 0.0, 0

    def step(self, loss):
        v = loss.item()
        if len(self.first_losses) < 10:
            self.first_losses.append(v)
        self.total += v
        self.count += 1
        self.steps += 1

    def end(self, epoch, epochs):
        self.epoch_s.append(time.perf_counter() - self.t0)
        self.loss.append(self.total / max(self.count, 1))
        print("torch %s epoch %d/%d: loss %.4f, %.1fs" % (self.method, epoch + 1, epochs, self.loss[-1], self.epoch_s[-1]),
              file=sys.stderr)

    def finish(self, meta, out_dir, state, script, **extra):
        """Writes out_dir/final.safetensors (state, with the Go run's
        metadata, this run's steps and its trainer) and prints the line."""
        os.makedirs(out_dir, exist_ok=True)
        md = dict(meta)
        md["sslzoo.steps"] = str(self.steps)
        md["sslzoo.trained_by"] = "scripts/%s (torch %s)" % (script, torch.__version__)
        path = os.path.join(out_dir, "final.safetensors")
        write_safetensors(path, state, md)
        print(json.dumps({"engine": "torch", "method": self.method, "epochs": len(self.epoch_s), "steps": self.steps,
                          "epoch_s": self.epoch_s, "mean_epoch_s": sum(self.epoch_s) / len(self.epoch_s),
                          "loss": self.loss, "first_losses": self.first_losses, "weights": path, **extra}))


def twin_run(doc, what):
    """Parses a twin script's flags and reads the Go run it reproduces:
    returns (args, metadata, run spec, method config), with the threads and
    seeds set. what names the `sslzoo train` runs the script accepts."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--like", required=True, help="final.safetensors of the sslzoo train %s run to reproduce" % what)
    ap.add_argument("--out", required=True, help="output folder for final.safetensors")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    meta = read_safetensors_metadata(args.like)
    if "sslzoo.train" not in meta or "sslzoo.method_config" not in meta:
        sys.exit("%s: %s has no sslzoo.train / sslzoo.method_config metadata; pass a final.safetensors of sslzoo train %s"
                 % (os.path.basename(sys.argv[0]), args.like, what))
    spec = json.loads(meta["sslzoo.train"])
    torch.manual_seed(spec["seed"])
    random.seed(spec["seed"])
    np.random.seed(spec["seed"])
    return args, meta, spec, json.loads(meta["sslzoo.method_config"])


def twin_loader(args, spec, pipelines, total_steps):
    """The shuffled, seeded DataLoader over the run's images; stops when its
    steps per epoch would not add up to the Go run's total_steps."""
    ds = Views(load_idx_images(spec["data"], spec.get("limit", 0)), pipelines)
    gen = torch.Generator()
    gen.manual_seed(spec["seed"])
    loader = torch.utils.data.DataLoader(ds, batch_size=spec["batch"], shuffle=True, drop_last=True,
                                         num_workers=args.workers, worker_init_fn=worker_init, generator=gen,
                                         persistent_workers=args.workers > 0)
    if len(loader) * spec["epochs"] != total_steps:
        sys.exit("%s: %d steps/epoch x %d epochs != the Go run's %d total steps"
                 % (os.path.basename(sys.argv[0]), len(loader), spec["epochs"], total_steps))
    return loader


def main():
    args, meta, spec, cfg = twin_run(__doc__, "|".join(BUILDERS))
    if spec["arch"] != "resnet18-cifar" or spec["in_channels"] != 1:
        sys.exit("learning_torch: only resnet18-cifar on one-channel data is mirrored (got %s, %d channels)"
                 % (spec["arch"], spec["in_channels"]))
    loader = twin_loader(args, spec, view_pipelines(spec), cfg["Optim"]["TotalSteps"])

    enc = ResNet18Cifar(spec["width"], spec["in_channels"])
    if spec["method"] not in BUILDERS:
        sys.exit("learning_torch: method %r not mirrored (%s)" % (spec["method"], ", ".join(BUILDERS)))
    # Jigsaw reads its permutation set from the Go run's checkpoint; DINO
    # moves the weight decay out of cfg["Optim"] into its own schedule, so
    # the optimizer is built after the method.
    kw = {"like": args.like} if spec["method"] == "jigsaw" else {}
    parts, step_fn = BUILDERS[spec["method"]](cfg, enc, **kw)
    named = []
    for prefix, m in parts:
        named += [(prefix + "." + n, p) for n, p in m.named_parameters()]
        m.train()
    opt = make_optimizer(cfg["Optim"], named)

    log = EpochLog(spec["method"])
    for epoch in range(spec["epochs"]):
        log.start()
        for views in loader:
            s = log.steps
            set_lr(opt, lr_at(cfg["Optim"], s))
            loss, hook = step_fn(views, s)
            if not math.isfinite(loss.item()):
                sys.exit("learning_torch: loss %g at step %d" % (loss.item(), s))
            # hook: None; a callable (after the optimizer step); a
            # ("before_step", fn) pair (after backward); or a dict of both
            before, after = None, None
            if isinstance(hook, dict):
                before, after = hook.get("before_step"), hook.get("after_step")
            elif isinstance(hook, tuple):
                before = hook[1]
            elif callable(hook):
                after = hook
            opt.zero_grad()
            loss.backward()
            if before:
                before()
            opt.step()
            if after:
                after()
            log.step(loss)
        log.end(epoch, spec["epochs"])

    log.finish(meta, args.out, enc.state_dict(), "learning_torch.py")


if __name__ == "__main__":
    main()
