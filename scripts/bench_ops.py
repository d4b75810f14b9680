#!/usr/bin/python3
"""Time forward+backward of single ops in PyTorch at the sizes used by
autograd/ops_bench_test.go (BenchmarkOp*), for a side-by-side ratio:

  /usr/bin/python3 scripts/bench_ops.py
  go test ./autograd -run XXX -bench BenchmarkOp

Both use 2 threads; run them on an otherwise idle machine.
"""
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def bench(name, shapes, fn, reps=10):
    ins = [torch.rand(*s, requires_grad=True) * 2 - 1 for s in shapes]
    ins = [t.detach().requires_grad_() for t in ins]

    def step():
        out = fn(*ins)
        out.backward(torch.ones_like(out))

    step()
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    dt = (time.perf_counter() - t0) / reps
    print(f"{name:24s} {dt * 1e9:14.0f} ns/op")


bench("OpAddSame", [(64, 197, 192), (64, 197, 192)], torch.add)
bench("OpAddBias", [(64, 197, 768), (768,)], torch.add)
bench("OpMulChannel", [(64, 64, 32, 32), (1, 64, 1, 1)], torch.mul)
bench("OpReLU", [(64, 64, 32, 32)], torch.relu)
bench("OpGELU", [(64, 197, 768)], F.gelu)
bench("OpSoftmax", [(64, 3, 197, 197)], lambda x: torch.softmax(x, -1))
bench("OpLayerNorm", [(64, 197, 192), (192,), (192,)], lambda x, w, b: F.layer_norm(x, [192], w, b, 1e-6))
bench("OpTransposeHeads", [(64, 197, 3, 64)], lambda x: x.permute(0, 2, 1, 3).contiguous())
bench("OpTransposeLast2", [(64, 192, 196)], lambda x: x.transpose(1, 2).contiguous())
bench("OpMeanTokens", [(64, 197, 192)], lambda x: x.mean(1))
targets = torch.tensor([(i * 31) % 1000 for i in range(64 * 128)])
bench("OpCrossEntropy", [(64 * 128, 1000)], lambda x: F.cross_entropy(x, targets))
