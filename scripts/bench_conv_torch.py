#!/usr/bin/python3
"""Times PyTorch's conv3x3 64->64, 32x32, batch 64, forward + backward
(input and weight gradients) on 2 threads: the peer figure for
`go test ./tensor -bench BenchmarkConv3x3`. Run with Debian's /usr/bin/python3
(torch 1.13), under the same environment as the Go benchmark.

Prints one line: ms per step and GFLOP/s (3 convolutions' worth of work).
"""
import sys
import time

import torch

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
torch.set_num_threads(2)
torch.manual_seed(0)
n, c, h, w, o, k = 64, 64, 32, 32, 64, 3
x = torch.randn(n, c, h, w, requires_grad=True)
wt = torch.randn(o, c, k, k, requires_grad=True)
dy = torch.randn(n, o, h, w)


def step():
    x.grad = None
    wt.grad = None
    y = torch.nn.functional.conv2d(x, wt, padding=1)
    y.backward(dy)


for _ in range(3):
    step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
dt = (time.perf_counter() - t0) / steps
flops = 3 * 2 * n * o * h * w * c * k * k
print(f"torch conv3x3 fwd+bwd: {dt * 1e3:.1f} ms/step, {flops / dt / 1e9:.1f} GFLOP/s")
