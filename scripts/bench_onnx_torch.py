#!/usr/bin/python3
"""PyTorch side of `make bench-onnx`: eager forward of the exported backbones.

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-onnx). The
model is the PyTorch twin from scripts/gen_parity.py (torchvision's ResNet
blocks, timm's ViT layout), and its weights are the ONNX file's own
initializers (they carry the PyTorch state_dict names), so both sides run
the very same network. With --check-in/--check-out it first compares its
output with the ONNX Runtime output that `sslzoo embed` wrote for the same
input, and fails when they differ.

Prints one JSON line: engine "torch", images_per_sec from the median time of
--steps forwards after --warmup untimed ones, under torch.inference_mode.

    bench_onnx_torch.py --arch resnet18-cifar|vit-tiny --onnx F.onnx --batch 64
        --steps 20 --warmup 3 --threads 2 [--check-in X.npy --check-out Y.npy]
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
import onnx.numpy_helper
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_parity import VisionTransformer, make_resnet  # noqa: E402


def build(arch, img):
    if arch == "resnet18-cifar":
        return make_resnet(18, stem="cifar")
    if arch == "vit-tiny":
        return VisionTransformer(img, 16, 3, 192, 12, 3)
    raise SystemExit(f"bench_onnx_torch: unknown arch {arch!r} (resnet18-cifar, vit-tiny)")


def load_onnx_weights(model, path):
    m = onnx.load(path)
    inits = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    own = model.state_dict()
    sd = {k: inits[k] for k in own if k in inits}
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit(f"bench_onnx_torch: {path} lacks {len(missing)} weights, e.g. {missing[:3]}")
    model.load_state_dict(sd, strict=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check-in")
    ap.add_argument("--check-out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    img = onnx.load(a.onnx, load_external_data=False).graph.input[0].type.tensor_type.shape.dim[2].dim_value
    model = build(a.arch, img)
    load_onnx_weights(model, a.onnx)
    model.eval()
    if a.check_in:
        x = torch.from_numpy(np.load(a.check_in))
        want = np.load(a.check_out)
        with torch.inference_mode():
            got = model(x).numpy()
        diff = float(np.abs(got - want).max())
        scale = max(1.0, float(np.abs(want).max()))
        if not diff <= 1e-3 * scale:
            raise SystemExit(f"bench_onnx_torch: PyTorch and ONNX Runtime differ by {diff:.3g} (scale {scale:.3g})")
        print(json.dumps({"check": a.arch, "max_abs_diff": diff}), file=sys.stderr)
    x = torch.randn(a.batch, 3, img, img, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            model(x)
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({
        "engine": "torch", "model": a.onnx, "batch": a.batch, "steps": a.steps, "threads": a.threads,
        "median_ms": med * 1e3, "mean_ms": statistics.mean(times) * 1e3, "images_per_sec": a.batch / med,
    }))


if __name__ == "__main__":
    main()
