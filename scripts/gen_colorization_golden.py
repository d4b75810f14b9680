#!/usr/bin/python3
"""Write zoo/ssl/testdata/colorization_golden.json: NumPy and PyTorch
reference values for Colorization (Zhang, Isola & Efros 2016, "Colorful
Image Colorization") in zoo/ssl.

Run with Debian's torch: /usr/bin/python3 scripts/gen_colorization_golden.py
(the Go tests TestColorLab*, TestABBins*, TestSoftEncoding*,
TestRebalance*, TestAnnealedMean* and TestColorizationLossGolden read the
file). With --go it prints the Go table of the ab bins instead (the
abBinTable literal of zoo/ssl/colorlab.go).

scikit-image is not installed here, so the colour conversion is written out
from the standard formulas: the sRGB transfer function (IEC 61966-2-1), the
sRGB -> XYZ matrix of Bruce Lindbloom's tables (computed from the sRGB
primaries and D65, so its rows sum to the white), the D65 white
(0.95047, 1, 1.08883) and CIE L*a*b* with the exact CIE constants
epsilon = 216/24389 and kappa = 24389/27 (scikit-image rounds them to
0.008856 and 7.787).

It holds:
- "lab": fixed sRGB pixels with their L*a*b*, the grey of the same
  lightness (the backbone's input) and Lab -> sRGB of fixed Lab values
  (unclipped, so out-of-gamut colours show).
- "bins": the quantised ab gamut. The ab plane is cut into 10x10 cells
  centred on multiples of 10 over [-110, 110]; a cell is kept when some sRGB
  colour lands in it. The colours sampled are every face of the RGB cube on
  a grid of `faces` points a side (the rim of the ab gamut is the image of
  the cube's surface) plus the solid cube on a grid of `solid` points a side.
  "counts" records how many cells that finds at several densities, to show
  it has converged. The paper's file (pts_in_hull.npy) has 313; this
  derivation finds fewer (see the Go doc comment of ABBins).
- "soft": soft encodings of ab values: the 5 nearest bins (nearest first)
  and their Gaussian weights (sigma 5), normalised.
- "rebalance": class-rebalancing weights of a toy distribution: the
  empirical distribution smoothed by a Gaussian (sigma 5) over the bin
  centres and renormalised, mixed with the uniform (lambda 0.5), inverted,
  normalised so that its expectation under the smoothed distribution is 1.
- "anneal": the annealed mean (T = 0.38) of fixed logits.
- "loss": the whole loss on fixed images, feature maps and head weights: the
  images' ab subsampled at stride 4 (pixels 0, 4, 8, ...), soft-encoded,
  each pixel weighted by the rebalancing weight of its nearest bin and by
  its image's colour mask (0 when no target pixel has |a| or |b| above 5);
  the head, a 1x1 Conv2d to the bins, upsampled bilinearly
  (align_corners=False) to the target grid; the mean over pixels of the
  weighted cross-entropy; its gradients, and the head after one SGD step
  (momentum, weight decay) from them.

Everything runs in float64 from float32 inputs.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(2016)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zoo", "ssl", "testdata", "colorization_golden.json")

M = np.array([[0.4124564, 0.3575761, 0.1804375],
              [0.2126729, 0.7151522, 0.0721750],
              [0.0193339, 0.1191920, 0.9503041]])
M_INV = np.linalg.inv(M)
WHITE = np.array([0.95047, 1.0, 1.08883])
EPS, KAPPA = 216 / 24389, 24389 / 27
GRID, NEIGHBOURS, SIGMA, LAMBDA, PRIOR_SIGMA, T = 10, 5, 5.0, 0.5, 5.0, 0.38
GRAY_THRESHOLD, STRIDE = 5.0, 4


def linear(c):
    return np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)


def encode(c):
    return np.where(c > 0.0031308, 1.055 * np.abs(c) ** (1 / 2.4) - 0.055, 12.92 * c)


def f(t):
    return np.where(t > EPS, np.cbrt(t), (KAPPA * t + 16) / 116)


def f_inv(v):
    return np.where(v ** 3 > EPS, v ** 3, (116 * v - 16) / KAPPA)


def srgb_to_lab(rgb):
    """rgb [..., 3] in [0, 1] -> Lab [..., 3]."""
    xyz = linear(rgb) @ M.T / WHITE
    fx, fy, fz = f(xyz[..., 0]), f(xyz[..., 1]), f(xyz[..., 2])
    return np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], -1)


def lab_to_srgb(lab):
    fy = (lab[..., 0] + 16) / 116
    fx, fz = fy + lab[..., 1] / 500, fy - lab[..., 2] / 200
    xyz = np.stack([f_inv(fx), f_inv(fy), f_inv(fz)], -1) * WHITE
    return encode(xyz @ M_INV.T)


def gray(rgb):
    """The sRGB grey of the same lightness: the encoded luminance."""
    return encode(linear(rgb) @ M[1])


def cell_codes(rgb):
    ab = srgb_to_lab(rgb)[:, 1:]
    q = np.floor(ab / GRID + 0.5).astype(np.int64)
    return np.unique((q[:, 0] + 64) * 128 + (q[:, 1] + 64))


def derive_bins(faces, solid):
    codes = []
    g = np.linspace(0, 1, faces)
    u, v = [x.ravel() for x in np.meshgrid(g, g, indexing="ij")]
    for axis in range(3):
        for val in (0.0, 1.0):
            cols = [u, v]
            cols.insert(axis, np.full_like(u, val))
            codes.append(cell_codes(np.stack(cols, -1)))
    g = np.linspace(0, 1, solid)
    for r in g:
        gg, bb = [x.ravel() for x in np.meshgrid(g, g, indexing="ij")]
        codes.append(cell_codes(np.stack([np.full_like(gg, r), gg, bb], -1)))
    codes = np.unique(np.concatenate(codes))
    cells = sorted(((int(c) // 128 - 64) * GRID, (int(c) % 128 - 64) * GRID) for c in codes)
    return cells


def soft_encode(ab, centres):
    d2 = ((ab[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    idx = np.argsort(d2, axis=1, kind="stable")[:, :NEIGHBOURS]
    dd = np.take_along_axis(d2, idx, 1)
    w = np.exp(-dd / (2 * SIGMA ** 2))
    return idx, w / w.sum(1, keepdims=True)


def rebalance(p, centres, lam=LAMBDA):
    p = np.asarray(p, np.float64)
    p = p / p.sum()
    d2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    smooth = np.exp(-d2 / (2 * PRIOR_SIGMA ** 2)) @ p
    smooth /= smooth.sum()
    w = 1 / ((1 - lam) * smooth + lam / len(p))
    return w / (smooth * w).sum(), smooth


def enc(x):
    x = x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return {"shape": list(x.shape), "data": [float("%.12g" % v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]}


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def main():
    dense = (1025, 65)
    cells = derive_bins(*dense)
    if "--go" in sys.argv:
        print("var abBinTable = [...][2]int8{")
        for i in range(0, len(cells), 8):
            print("\t" + " ".join("{%d, %d}," % (a // GRID, b // GRID) for a, b in cells[i:i + 8]))
        print("}")
        return
    counts = []
    for faces, solid in ((129, 17), (257, 33), (513, 65), dense, (2049, 129)):
        c = derive_bins(faces, solid)
        counts.append({"faces": faces, "solid": solid, "bins": len(c)})
        print("faces %d solid %d: %d bins" % (faces, solid, len(c)), flush=True)
    assert derive_bins(2049, 129) == cells, "the bin set has not converged at the fixture's density"
    centres = np.array(cells, np.float64)
    q = len(cells)

    # Lab of fixed pixels: primaries, greys, the dark linear segment, random.
    pix = np.concatenate([
        np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1],
                  [0.5, 0.5, 0.5], [0.02, 0.03, 0.01], [0.001, 0.0, 0.004], [0.04045, 0.2, 0.9]]),
        rng.random((20, 3))])
    pix = f32(pix)
    labs = np.array([[50, 0, 0], [75, 20, -30], [30, -60, 40], [5, 10, 10], [90, -40, 90], [60, 100, -100],
                     [0, 0, 0], [100, 0, 0], [2, 30, -20], [45, 80, 60]], np.float64)
    lab = {"rgb": enc(pix), "lab": enc(srgb_to_lab(pix)), "gray": enc(gray(pix)),
           "lab_in": enc(labs), "rgb_out": enc(lab_to_srgb(labs))}

    # Soft encodings: on a centre, between centres (no ties at the fifth),
    # near the rim, and random in-gamut colours.
    ab = np.concatenate([np.array([[0.0, 0.0], [3.3, -7.1], [-41.7, 12.2], [95.0, -95.0], [-85.5, 75.3],
                                   [64.2, 70.9], [12.5, 12.75], [-0.2, 99.1]]),
                         srgb_to_lab(f32(rng.random((8, 3))))[:, 1:]])
    idx, w = soft_encode(ab, centres)
    soft = {"ab": enc(ab), "index": idx.tolist(), "weight": enc(w)}

    # Rebalancing of a toy distribution: mass near the greys, some on a
    # few saturated bins, most bins empty.
    counts_toy = np.zeros(q)
    d0 = np.hypot(centres[:, 0], centres[:, 1])
    counts_toy[d0 <= 20] = np.round(1000 / (1 + d0[d0 <= 20]))
    for k in (3, 50, 100, 200, q - 1):
        counts_toy[k] += 7 * (k % 5 + 1)
    weights, smooth = rebalance(counts_toy, centres)
    weights_lam1, _ = rebalance(counts_toy, centres, 1.0)
    reb = {"counts": enc(counts_toy), "smoothed": enc(smooth), "weights": enc(weights), "weights_lambda1": enc(weights_lam1)}

    # Annealed mean of fixed logits.
    logits = f32(rng.normal(0, 3, (4, q)))
    logits[1, 7] += 20  # one confident row
    z = np.exp(logits / T - (logits / T).max(1, keepdims=True))
    z /= z.sum(1, keepdims=True)
    anneal = {"logits": enc(logits), "t": T, "ab": enc(z @ centres)}

    # The loss: 3 images of 10x10 (targets at 3x3), feature maps 2x2 of 6
    # channels, the head to the q bins; image 2 grey (masked out).
    n, h, w_, d, fh, fw = 3, 10, 10, 6, 2, 2
    img = f32(rng.random((n, 3, h, w_)))
    img[0, 0] = f32(0.8 + 0.2 * rng.random((h, w_)))  # a red-heavy image reaches the rim
    img[2] = f32(np.repeat(rng.random((1, h, w_)), 3, 0))
    lab_img = srgb_to_lab(img.transpose(0, 2, 3, 1))  # [n, h, w, 3]
    sub = lab_img[:, ::STRIDE, ::STRIDE, 1:]  # [n, th, tw, 2]
    th, tw = sub.shape[1], sub.shape[2]
    flat = sub.reshape(-1, 2)
    idx, wts = soft_encode(flat, centres)
    target = np.zeros((len(flat), q))
    np.put_along_axis(target, idx, wts, 1)
    mask = (np.abs(sub) > GRAY_THRESHOLD).reshape(n, -1).any(1).astype(np.float64)
    row_w = weights[idx[:, 0]] * np.repeat(mask, th * tw)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x_in = (gray(img.transpose(0, 2, 3, 1))[:, None, :, :] - mean[None, :, None, None]) / std[None, :, None, None]

    feats = torch.tensor(f32(rng.normal(0, 1, (n, d, fh, fw))), requires_grad=True)
    head = torch.nn.Conv2d(d, q, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(f32(rng.normal(0, 0.3, (q, d, 1, 1)))))
        head.bias.copy_(torch.tensor(f32(rng.normal(0, 0.1, q))))
    init = {"head.weight": enc(head.weight), "head.bias": enc(head.bias)}
    out = F.interpolate(head(feats), size=(th, tw), mode="bilinear", align_corners=False)
    logp = F.log_softmax(out.permute(0, 2, 3, 1).reshape(-1, q), 1)
    loss = -(torch.tensor(row_w)[:, None] * torch.tensor(target) * logp).sum() / logp.shape[0]
    loss.backward()
    grads = {"head.weight": enc(head.weight.grad), "head.bias": enc(head.bias.grad)}
    lr, momentum, wd = 0.1, 0.9, 5e-4
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    opt.step()
    after = {"head.weight": enc(head.weight), "head.bias": enc(head.bias)}
    loss_case = {"images": enc(img), "features": enc(feats), "init": init, "weights": enc(weights),
                 "target_shape": [th, tw], "mask": mask.tolist(), "target": enc(target), "row_weight": enc(row_w),
                 "input": enc(x_in), "mean": mean.tolist(), "std": std.tolist(),
                 "loss": float(loss), "grad_features": enc(feats.grad), "grads": grads,
                 "optim": {"lr": lr, "momentum": momentum, "weight_decay": wd}, "after": after}

    golden = {"lab": lab, "bins": {"cells": cells, "count": q, "counts": counts}, "soft": soft,
              "rebalance": reb, "anneal": anneal, "loss": loss_case}
    with open(OUT, "w") as fh_:
        json.dump(golden, fh_, separators=(",", ":"))
    print("wrote %s: %d bins, loss %.6f" % (OUT, q, float(loss)))


if __name__ == "__main__":
    main()
