#!/usr/bin/env python3
"""Embedding image files against the same images as one .npy.

Writes the first --n Fashion-MNIST test images as PNG files (PIL) and as one
preprocessed float32 .npy, then times, interleaved, whole processes of

    sslzoo embed MODEL DIR --out files.npy          (decode + preprocess + run)
    sslzoo embed --model MODEL --input x.npy --out tensor.npy   (run only)

Each process's start-up (a run on one image) is subtracted, and the median
over --reps rounds is reported as images/s and as the ratio files/tensor,
the figure `sslzoo embed` on files must keep at 0.9 or more. It also checks
that the two outputs agree.

usage: /usr/bin/python3 scripts/bench_embed_files.py [--n 10000] [--reps 3]
       (make bench-embed; after make build)
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDX = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def read_idx(path, n):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    count, h, w = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, h, w)[:n]


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default="simclr-resnet18-fmnist")
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin", "sslzoo"))
    ap.add_argument("--engine", default="ort")
    args = ap.parse_args()

    info = json.loads(subprocess.run([args.bin, "info", args.model, "--json"], check=True, capture_output=True, text=True).stdout)
    pre = info["preprocess"]
    imgs = read_idx(IDX, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "png")
        os.makedirs(folder)
        for i, a in enumerate(imgs):
            Image.fromarray(a, "L").save(os.path.join(folder, f"{i:05d}.png"))
        x = (imgs.astype(np.float32) * np.float32(pre["scale"]) - np.float32(pre["mean"][0])) / np.float32(pre["std"][0])
        np.save(os.path.join(tmp, "x.npy"), x[:, None, :, :])
        np.save(os.path.join(tmp, "one.npy"), x[:1, None, :, :])
        one = os.path.join(folder, "00000.png")

        eng = ["--engine", args.engine]
        files = [args.bin, "embed", args.model, folder, "--out", os.path.join(tmp, "files.npy")] + eng
        files1 = [args.bin, "embed", args.model, one, "--out", os.path.join(tmp, "one_f.npy")] + eng
        tensor = [args.bin, "embed", "--model", args.model, "--input", os.path.join(tmp, "x.npy"), "--out", os.path.join(tmp, "tensor.npy")] + eng
        tensor1 = [args.bin, "embed", "--model", args.model, "--input", os.path.join(tmp, "one.npy"), "--out", os.path.join(tmp, "one_t.npy")] + eng
        timed(files1)  # pulls and exports the model on first use
        rf, rt = [], []
        for _ in range(args.reps):
            rf.append(args.n / max(timed(files) - timed(files1), 1e-9))
            rt.append(args.n / max(timed(tensor) - timed(tensor1), 1e-9))
        a, b = np.load(os.path.join(tmp, "files.npy")), np.load(os.path.join(tmp, "tensor.npy"))
        diff = float(np.abs(a - b).max())
    f, t = statistics.median(rf), statistics.median(rt)
    print(f"| {args.n} Fashion-MNIST PNGs, {args.model}, {args.engine} | {f:.0f} | {t:.0f} | {f / t:.2f} | {diff:.1e} |")
    print(f"(medians of {args.reps} interleaved rounds; files {[round(v) for v in rf]}, tensor {[round(v) for v in rt]} images/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
