#!/usr/bin/python3
"""PyTorch side of `make bench`: the same workloads as `sslzoo bench`.

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-torchvision
0.14). Prints one JSON object with the same field names as `sslzoo bench
--json`, so scripts/bench.sh can set the two side by side.

Workloads:
  train    ResNet-18 with the CIFAR stem (3x3/1 conv1, no max-pool), 10
           classes, 32x32 inputs: forward, cross-entropy against random
           labels, backward, SGD step (lr 0.01, momentum 0.9, wd 5e-4).
  forward  the same model in eval mode under inference_mode.
  gemm     torch.mm on square float32 matrices (OpenBLAS on Debian).
"""
import argparse
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def resnet18_cifar(num_classes=10):
    m = torchvision.models.resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    return m


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_model(args):
    torch.manual_seed(0)
    model = resnet18_cifar()
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    losses = []
    if args.mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                out = model(x)
            out.sum().item()  # make sure the result is materialised

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    secs = time.perf_counter() - t0
    res = {
        "engine": "pytorch", "mode": args.mode, "arch": "resnet18-cifar",
        "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
        "threads": torch.get_num_threads(), "seconds": secs,
        "images_per_sec": args.batch * args.steps / secs,
        "peak_rss_mib": peak_rss_mib(),
    }
    if losses:
        res["first_loss"] = losses[0]
        res["last_loss"] = losses[-1]
    return res


def bench_gemm(args):
    n = args.size
    g = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=g) - 0.5
    b = torch.rand(n, n, generator=g) - 0.5
    c = torch.empty(n, n)
    # Warm up for at least --warmup calls and 0.3 s, as `sslzoo bench gemm`.
    t0, i = time.perf_counter(), 0
    while i < args.warmup or time.perf_counter() - t0 < 0.3:
        torch.mm(a, b, out=c)
        i += 1
    # GFLOP/s from the median call, as `sslzoo bench gemm` does.
    times = []
    t0 = time.perf_counter()
    for _ in range(args.steps):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        times.append(time.perf_counter() - t)
    secs = time.perf_counter() - t0
    med = sorted(times)[len(times) // 2]
    return {
        "engine": "pytorch", "mode": "gemm", "size": n, "steps": args.steps,
        "warmup": args.warmup, "threads": torch.get_num_threads(), "seconds": secs,
        "gflops": 2.0 * n * n * n / med / 1e9,
        "peak_rss_mib": peak_rss_mib(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["train", "forward", "gemm"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--size", type=int, default=512, help="GEMM m=n=k")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.batch < 1 or args.steps < 1 or args.warmup < 0 or args.size < 1 or args.threads < 1:
        p.error("batch, steps, size and threads must be positive; warmup non-negative")
    torch.set_num_threads(args.threads)
    res = bench_gemm(args) if args.mode == "gemm" else bench_model(args)
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
