#!/usr/bin/python3
"""PyTorch twin of an `sslzoo train colorization` run (Zhang, Isola & Efros
2016, "Colorful Image Colorization"), for the proof-of-learning table.

    /usr/bin/python3 scripts/learning_torch_colorization.py --like GO_OUT/final.safetensors --out DIR

It reads the run spec (sslzoo.train) and the method config
(sslzoo.method_config) from the Go run's final.safetensors, trains the same
recipe in PyTorch and writes DIR/final.safetensors: the backbone under the
Go file's (torchvision's) names and shapes, with the Go run's metadata, so
`sslzoo eval knn --checkpoint DIR/final.safetensors` evaluates both runs by
one protocol. It prints one JSON line as scripts/learning_torch.py does
(engine, method, epochs, steps, seconds per epoch with data loading and
without evaluation, the mean loss of each epoch, the first ten step losses,
the weights' path), plus the number of target pixels the rebalancing
counted.

What follows zoo/ssl/colorization.go exactly (up to float rounding):
- data: --data emoji (or emoji:DIR) is data.LoadEmoji's train split: every
  emoji.json record and skin-tone variation that has a Google image, the
  "Component" category left out, split by the sha256 of the base emoji's
  file name (test when its first 8 bytes mod 100 < 15), ordered by that
  hash, then base name, then file name; each 64x64 PNG composited over
  white on the 8-bit straight colour as compositeOnWhite rounds it; the
  first `limit` images when the run had a limit. folder:DIR is
  data.OpenImageFolder's listing (DIR/train when it exists; class folders
  and files in sorted order), decoded with PIL's convert("RGB").
- backbone: ResNet-18 with the CIFAR stem at the run's width, 3 input
  channels, kaiming fan-out init (learning_torch.ResNet18Cifar); the dense
  features are its layer4 map before the pooling (zoo.ResNet.FeatureMap).
- input: the backbone sees the sRGB grey of each pixel's lightness (the
  encoded luminance, L with a = b = 0) in all three channels, normalised
  with the method config's Mean and Std, not the L channel alone.
- head, loss: a 1x1 Conv2d to the 262 ab bins (PyTorch's default init, as
  nn.DefaultInit), its logits resized bilinearly (align_corners=False) to
  the ceil(H/Stride) x ceil(W/Stride) target grid; the targets are the ab
  of every Stride-th pixel from the top-left, soft-encoded over the 5
  nearest bins (Gaussian sigma 5, ties to the lower class), each pixel
  weighted by the rebalancing weight of its nearest bin, and by 0 in an
  image none of whose target pixels has |a| or |b| above 5; the loss is the
  mean over all target pixels of the batch of -sum_q t_q log softmax_q.
  The colour maths, the bins, the soft encoding and the rebalancing are
  scripts/gen_colorization_golden.py's functions, which the Go tests check
  the Go code against.
- rebalancing: as Colorization.step counts it, online: during the first
  PriorSteps steps the nearest bins of the colour images' target pixels
  are added to the running distribution (kept in float32 as the Go buffer
  ab_prior is), each step training with the weights of the counts so far,
  its own batch included; the weights are fixed after that.
- optimizer: torch.optim.AdamW with the config's betas, eps 1e-8 and
  decoupled weight decay on every parameter (nn.AdamW steps as PyTorch
  1.13's), the learning rate of zoo/ssl OptimConfig.LRAt set before each
  step (no warmup, cosine from LR to FinalLR over TotalSteps).
- schedule: the Go run's epochs and batch; a shuffled loader without the
  last partial batch, so the same steps per epoch and total steps (checked
  against the config's TotalSteps).

What is the same distribution only, not the same random draws: the
initial weights (torch's RNG, seeded with the run's seed), the shuffling,
and the augmentation: a square RandomResizedCrop of 47% to 100% of the
area resized to Size (bilinear, antialiased, on the float image, which is
what data/augment.ResizedCrop matches), then a horizontal flip with p 0.5,
no colour augmentation and no normalisation of the target image. So the
batches the rebalancing counts differ too, and its weights agree with the
Go run's only as closely as two draws of one epoch's crops do.

PyTorch runs with --threads (2) intra-op threads and --workers (2)
DataLoader processes, which also compute the grey inputs and the soft
targets (the Go step derives them on its own goroutines).
"""
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

sys.dont_write_bytecode = True  # importing the sibling scripts leaves no scripts/__pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learning_torch import (EpochLog, ResNet18Cifar, lr_at, read_safetensors_tensor, set_lr, twin_run,  # noqa: E402
                            worker_init)
import gen_colorization_golden as golden  # noqa: E402

# gen_colorization_golden computes its fixtures in float64 and sets torch's
# default dtype so on import; the training here is float32, as the Go run's.
torch.set_default_dtype(torch.float32)

PROG = "learning_torch_colorization"
NUM_BINS = 262  # ssl.NumABBins
EMOJI_PACKAGE, EMOJI_VERSION = "emoji-datasource-google", "16.0.0"  # data.EmojiPackage, data.EmojiVersion
EMOJI_SIDE, EMOJI_TEST_PERCENT = 64, 15


def die(msg):
    sys.exit("%s: %s" % (PROG, msg))


# --- data
def cache_root():
    """internal/cachedir.Root: $SSLZOO_CACHE, else $XDG_CACHE_HOME/sslzoo,
    else ~/.cache/sslzoo."""
    if os.environ.get("SSLZOO_CACHE"):
        return os.path.abspath(os.environ["SSLZOO_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return os.path.abspath(os.path.join(os.environ["XDG_CACHE_HOME"], "sslzoo"))
    return os.path.join(os.path.expanduser("~"), ".cache", "sslzoo")


def emoji_hash(name):
    return int(hashlib.sha256(name.encode()).hexdigest()[:16], 16)


def composite_on_white(rgba):
    """data.compositeOnWhite: (c*a + 255*(255-a) + 127) / 255 on the 8-bit
    straight colour, [64, 64, 4] -> [64, 64, 3]."""
    c, a = rgba[..., :3].astype(np.uint32), rgba[..., 3:].astype(np.uint32)
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def load_emoji_train(d):
    """data.LoadEmoji(dir, train=true): [N, 64, 64, 3] uint8, in its order."""
    d = d or os.path.join(cache_root(), EMOJI_PACKAGE, EMOJI_VERSION)
    json_path = os.path.join(d, "emoji.json")
    png_dir = os.path.join(d, "64")
    if not os.path.isdir(png_dir) and os.path.isdir(os.path.join(d, "img", "google", "64")):
        png_dir = os.path.join(d, "img", "google", "64")  # the npm package's own layout
    if not os.path.exists(json_path):
        die("no emoji set at %s (emoji.json missing); let sslzoo fetch it first (any `sslzoo train --data emoji` does)" % d)
    with open(json_path, "rb") as f:
        entries = json.load(f)
    samples, seen = [], set()

    def add(name, group, has):
        if has is False:  # has_img_google false: no picture of it
            return
        if name in seen:
            die("%s: image %s is listed twice" % (json_path, name))
        seen.add(name)
        h = emoji_hash(group)
        if not (h % 100 < EMOJI_TEST_PERCENT):  # data.EmojiInTest: the train split is the rest
            samples.append((h, group, name))

    for e in entries:
        if e.get("category") == "Component":
            continue
        add(e["image"], e["image"], e.get("has_img_google"))
        for v in (e.get("skin_variations") or {}).values():
            add(v["image"], e["image"], v.get("has_img_google"))
    samples.sort()  # by hash, then base emoji, then file name (byte order: ASCII names)
    out = np.empty((len(samples), EMOJI_SIDE, EMOJI_SIDE, 3), np.uint8)
    for i, (_, _, name) in enumerate(samples):
        with Image.open(os.path.join(png_dir, name)) as im:
            rgba = np.asarray(im.convert("RGBA"))
        if rgba.shape[:2] != (EMOJI_SIDE, EMOJI_SIDE):
            die("%s: %dx%d pixels, want 64x64" % (name, rgba.shape[1], rgba.shape[0]))
        out[i] = composite_on_white(rgba)
    return out


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")  # data.ImageExtensions


def list_image_folder(d):
    """data.Open("folder:DIR", train) and OpenImageFolder: DIR/train when it
    exists, else DIR; class folders in name order, each one's images (walked,
    hidden subfolders skipped) in sorted path order."""
    root = os.path.join(d, "train") if os.path.isdir(os.path.join(d, "train")) else d
    if not os.path.isdir(root):
        die("image folder %s: not a folder" % root)
    paths = []
    classes = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)) and not e.startswith("."))
    for c in classes:
        files = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, c)):
            dirnames[:] = [n for n in dirnames if not n.startswith(".")]
            files += [os.path.join(dirpath, n) for n in filenames if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
        paths += sorted(files)
    if not classes:
        die("image folder %s: no class subfolders" % root)
    if not paths:
        die("image folder %s: no images" % root)
    return paths


def load_images(spec):
    """The run's training images: an array [N, H, W, 3] (emoji) or a list of
    file paths (folder), the first `limit` of them."""
    name, _, d = spec["data"].partition(":")
    if name == "emoji":
        images = load_emoji_train(d)
    elif name == "folder" and d:
        images = list_image_folder(d)
    else:
        die("data %r not supported: the colorization twin reads emoji, emoji:DIR or folder:DIR" % spec["data"])
    if spec.get("limit"):
        images = images[:spec["limit"]]
    return images


def soft_targets_of(rgb, bins, stride):
    """Colorization's targetsOf for one sRGB image [H, W, 3] (float64): the
    SoftNeighbours nearest bins of each target pixel's ab (nearest first) and
    their weights, and whether the image has colour."""
    sub = rgb[::stride, ::stride].reshape(-1, 3)
    ab = golden.srgb_to_lab(sub)[:, 1:]
    colour = bool((np.abs(ab) > golden.GRAY_THRESHOLD).any())
    idx, w = golden.soft_encode(ab, bins)
    return idx, w, colour


class ColorViews(torch.utils.data.Dataset):
    """One augmented view per image, turned into what Colorization.step
    derives from it: the normalised grey input [3, H, W], the soft targets'
    bins and weights [th*tw, K] and the colour flag."""

    def __init__(self, images, size, bins, stride, mean, std):
        self.images, self.bins, self.stride = images, bins, stride
        self.mean, self.std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        # TrainSpec.Views("colorization"): square crop of 47%-100% of the
        # area, mirror; no colour jitter, no normalisation.
        self.view = T.Compose([T.RandomResizedCrop(size, scale=(0.47, 1.0), ratio=(1.0, 1.0), antialias=True),
                               T.RandomHorizontalFlip(0.5)])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        if isinstance(self.images, np.ndarray):
            u8 = self.images[i]
        else:
            with Image.open(self.images[i]) as im:
                u8 = np.array(im.convert("RGB"))
        x = torch.from_numpy(np.ascontiguousarray(u8)).permute(2, 0, 1).float() / 255
        v = self.view(x).clamp_(0, 1)  # Step takes sRGB in [0, 1]
        rgb = v.permute(1, 2, 0).double().numpy()
        g = golden.gray(rgb)  # grayInput: the grey of the same lightness, per channel normalised
        inp = ((g[None] - self.mean[:, None, None]) / self.std[:, None, None]).astype(np.float32)
        idx, w, colour = soft_targets_of(rgb, self.bins, self.stride)
        return (torch.from_numpy(inp), torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(w.astype(np.float32)),
                torch.tensor(colour))


# --- model
def feature_map(enc, x):
    """zoo.ResNet.FeatureMap: ResNet18Cifar.forward without the pooling."""
    x = F.relu(enc.bn1(enc.conv1(x)))
    for i in range(1, 5):
        x = getattr(enc, "layer%d" % i)(x)
    return x


class Rebalancer:
    """Colorization.count and the rebalancing weights: the running
    distribution of the nearest bins of the colour targets over the first
    prior_steps steps, float32 as the buffer ab_prior, and its weights."""

    def __init__(self, bins, lam, prior_steps):
        self.bins, self.lam, self.prior_steps = bins, lam, prior_steps
        self.prior = np.zeros(len(bins), np.float32)
        self.pixels = 0
        self.weights = np.ones(len(bins), np.float32)

    def weights_for(self, s, nearest):
        """The weights step s trains with; nearest are the nearest bins of its
        colour target pixels. The counts are kept (commit) once the step's
        loss is finite, as Colorization.step does."""
        if s >= self.prior_steps:
            return self.weights, None
        c = np.bincount(nearest, minlength=len(self.bins)).astype(np.float32)
        total = self.pixels + len(nearest)
        prior = self.prior.copy()
        if total > 0:
            prior = ((self.prior.astype(np.float64) * self.pixels + c.astype(np.float64)) / total).astype(np.float32)
        if prior.astype(np.float64).sum() == 0:
            weights = np.ones(len(self.bins), np.float32)
        else:
            weights = golden.rebalance(prior.astype(np.float64), self.bins, self.lam)[0].astype(np.float32)
        return weights, (prior, total, weights)

    def commit(self, pending):
        if pending is not None:
            self.prior, self.pixels, self.weights = pending


def ab_bins(like):
    """The 262 class centres, in class order: derived as ssl.ABBins was
    (gen_colorization_golden.derive_bins), and checked against the Go run's
    checkpoint buffer ab_bins when the checkpoint is beside --like."""
    bins = np.array(golden.derive_bins(1025, 65), np.float64)
    if len(bins) != NUM_BINS:
        die("derived %d ab bins, want %d" % (len(bins), NUM_BINS))
    ckpt = os.path.join(os.path.dirname(os.path.abspath(like)), "checkpoint.safetensors")
    if os.path.exists(ckpt):
        go = read_safetensors_tensor(ckpt, "ab_bins")
        if go is not None and (list(go.shape) != [NUM_BINS, 2] or not np.array_equal(go.numpy().astype(np.float64), bins)):
            die("the Go checkpoint's ab_bins %s differ from the derived ones" % list(go.shape))
    return bins


def go_tensor_shapes(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    return {k: v["shape"] for k, v in h.items() if k != "__metadata__"}


def main():
    args, meta, spec, cfg = twin_run(__doc__, "colorization")
    if spec.get("method") != "colorization" or meta.get("sslzoo.method", "colorization") != "colorization":
        die("%s is a %s run, not colorization (scripts/learning_torch.py twins the others)" % (args.like, spec.get("method")))
    if spec["arch"] != "resnet18-cifar" or spec["in_channels"] != 3:
        die("only resnet18-cifar on 3-channel images is mirrored (got %s, %d channel(s))" % (spec["arch"], spec["in_channels"]))
    arch = json.loads(meta.get("sslzoo.arch_config", "{}")).get("resnet", {})
    if arch.get("ZeroInitResidual") or arch.get("Stem", "cifar") != "cifar":
        die("arch config %s is not the plain CIFAR-stem ResNet-18 mirrored here" % meta.get("sslzoo.arch_config"))
    oc = cfg["Optim"]
    if oc["Name"] != "adamw":
        die("optimizer %r not mirrored (the colorization recipe is adamw)" % oc["Name"])
    stride, size = cfg["Stride"], spec["size"]
    images = load_images(spec)
    bins = ab_bins(args.like)

    ds = ColorViews(images, size, bins, stride, cfg["Mean"], cfg["Std"])
    gen = torch.Generator()
    gen.manual_seed(spec["seed"])
    loader = torch.utils.data.DataLoader(ds, batch_size=spec["batch"], shuffle=True, drop_last=True,
                                         num_workers=args.workers, worker_init_fn=worker_init, generator=gen,
                                         persistent_workers=args.workers > 0)
    if len(loader) * spec["epochs"] != oc["TotalSteps"]:
        die("%d images: %d steps/epoch x %d epochs != the Go run's %d total steps"
            % (len(ds), len(loader), spec["epochs"], oc["TotalSteps"]))

    enc = ResNet18Cifar(spec["width"], 3)
    head = nn.Conv2d(enc.feature_dim, NUM_BINS, 1)
    enc.train()
    head.train()
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr_at(oc, 0), betas=(oc.get("Beta1") or 0.9, oc.get("Beta2") or 0.999), eps=1e-8,
                            weight_decay=oc["WeightDecay"])
    reb = Rebalancer(bins, cfg["Lambda"], cfg["PriorSteps"])
    th, tw = -(-size // stride), -(-size // stride)

    log = EpochLog("colorization")
    for epoch in range(spec["epochs"]):
        log.start()
        for x, idx, w, colour in loader:
            s = log.steps
            set_lr(opt, lr_at(oc, s))
            k = idx.shape[-1]
            idx, w = idx.reshape(-1, k), w.reshape(-1, k)
            pix_colour = colour.repeat_interleave(th * tw)
            weights, pending = reb.weights_for(s, idx[pix_colour, 0].numpy())
            # softTargets: the soft encoding times the nearest bin's weight, 0 for grey images
            vals = torch.from_numpy(weights)[idx[:, 0]][:, None] * w * pix_colour[:, None].float()
            targets = torch.zeros(idx.shape[0], NUM_BINS).scatter_(1, idx, vals)
            logits = head(feature_map(enc, x))
            if logits.shape[2:] != (th, tw):
                logits = F.interpolate(logits, size=(th, tw), mode="bilinear", align_corners=False)
            logits = logits.permute(0, 2, 3, 1).reshape(-1, NUM_BINS)
            loss = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
            if not math.isfinite(loss.item()):
                die("loss %g at step %d" % (loss.item(), s))
            reb.commit(pending)
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.step(loss)
        log.end(epoch, spec["epochs"])

    state = enc.state_dict()
    want = go_tensor_shapes(args.like)
    got = {k: list(v.shape) for k, v in state.items()}
    if got != want:
        die("the backbone's tensors differ from the Go file's: only here %s, only there %s, other shapes %s"
            % (sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5],
               [k for k in set(got) & set(want) if got[k] != want[k]][:5]))
    log.finish(meta, args.out, state, "learning_torch_colorization.py", prior_pixels=reb.pixels)


if __name__ == "__main__":
    main()
