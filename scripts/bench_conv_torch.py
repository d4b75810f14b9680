#!/usr/bin/python3
"""Times PyTorch forward + backward on 2 threads, the peer figures for the
Go benchmarks on the same shapes:

    conv     conv3x3 64->64, 32x32, batch 64 (input and weight gradients);
             go test ./tensor -bench BenchmarkConv3x3
    bn       BatchNorm2d(64) in training mode on [64,64,32,32];
             go test ./autograd -bench BenchmarkBatchNormTrain
    maxpool  max_pool2d(3, 2, 1) on [64,64,32,32];
             go test ./autograd -bench BenchmarkMaxPool3x3s2

Usage: bench_conv_torch.py [conv|bn|maxpool] [steps]. Run with Debian's
/usr/bin/python3 (torch 1.13), under the same environment as the Go side.
Prints one line with ms per step (and GFLOP/s for conv).
"""
import sys
import time

import torch

mode = sys.argv[1] if len(sys.argv) > 1 else "conv"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
torch.set_num_threads(2)
torch.manual_seed(0)
n, c, h, w, o, k = 64, 64, 32, 32, 64, 3
x = torch.randn(n, c, h, w, requires_grad=True)
wt = torch.randn(o, c, k, k, requires_grad=True)
dy = torch.randn(n, o, h, w)


bn = torch.nn.BatchNorm2d(64).train()


def step():
    x.grad = None
    wt.grad = None
    if mode == "conv":
        y = torch.nn.functional.conv2d(x, wt, padding=1)
    elif mode == "bn":
        y = bn(x)
    elif mode == "maxpool":
        y = torch.nn.functional.max_pool2d(x, 3, 2, 1)
    else:
        sys.exit(f"unknown mode {mode!r}: want conv, bn or maxpool")
    y.backward(torch.ones_like(y) if mode != "conv" else dy)


for _ in range(3):
    step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
dt = (time.perf_counter() - t0) / steps
if mode == "conv":
    flops = 3 * 2 * n * o * h * w * c * k * k
    print(f"torch conv3x3 fwd+bwd: {dt * 1e3:.1f} ms/step, {flops / dt / 1e9:.1f} GFLOP/s")
else:
    print(f"torch {mode} fwd+bwd: {dt * 1e3:.2f} ms/step")
