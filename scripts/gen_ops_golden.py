#!/usr/bin/python3
"""Write autograd/testdata/ops_golden.json: PyTorch reference values for the
autograd ops (forward output and input gradients).

Run with Debian's torch: /usr/bin/python3 scripts/gen_ops_golden.py
(the Go test TestOpsGolden reads the file; regenerate after changing cases).

Each case holds float32 inputs, the integer arguments some ops take
(targets, ids, indices), an upstream gradient grad_out, and the reference
output and gradients d(sum(grad_out * out))/d(input) computed by PyTorch in
float64 from the float32 inputs, so the Go float32 kernels are compared with
an independent, more precise computation.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(20240601)


def draw(shape, kind="uniform"):
    n = int(np.prod(shape)) if shape else 1
    if kind == "uniform":
        v = rng.uniform(-1, 1, n)
    elif kind == "positive":
        v = rng.uniform(0.2, 2, n)
    elif kind == "away":
        v = rng.uniform(0.3, 1.5, n) * rng.choice([-1, 1], n)
    elif kind == "wide":
        v = rng.uniform(-4, 4, n)
    elif kind == "logits":
        v = rng.normal(0, 30, n)
    elif kind == "distinct":
        v = rng.permutation(n) * 0.1 - n * 0.05
    else:
        raise ValueError(kind)
    return np.asarray(v, dtype=np.float32).reshape(shape)


def fmt(a):
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    return [float("%.9g" % v) for v in a]


cases = []


def case(name, op, inputs, fn, attrs=None, ints=None, grad=None):
    """inputs: list of (shape, kind); fn maps float64 torch tensors to the output.
    grad: per input, whether to record its gradient (default all)."""
    arrs = [draw(s, k) for s, k in inputs]
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrs]
    out = fn(*ts)
    g = draw(list(out.shape))
    (out * torch.tensor(g, dtype=torch.float64)).sum().backward()
    grads = []
    for i, t in enumerate(ts):
        want = grad[i] if grad is not None else True
        grads.append({"shape": list(t.shape), "data": fmt(t.grad if t.grad is not None else torch.zeros_like(t))} if want else None)
    cases.append({
        "name": name, "op": op, "attrs": attrs or {}, "ints": ints or [],
        "inputs": [{"shape": list(a.shape), "data": fmt(a)} for a in arrs],
        "grad_out": {"shape": list(out.shape), "data": fmt(g)},
        "output": {"shape": list(out.shape), "data": fmt(out.detach())},
        "grads": grads,
    })


# Broadcasting binary ops.
for op, f, kb in [("Add", torch.add, "uniform"), ("Sub", torch.sub, "uniform"),
                  ("Mul", torch.mul, "uniform"), ("Div", torch.div, "away")]:
    for sa, sb in [([2, 3], [2, 3]), ([4, 1, 3], [2, 3]), ([2, 3, 2, 2], [1, 3, 1, 1]),
                   ([3, 1], [1, 4]), ([2, 3, 4], [4]), ([], [2, 2])]:
        case(f"{op}{sa}{sb}", op, [(sa, "uniform"), (sb, kb)], f)

# Unary ops.
unary = [
    ("AddScalar", "uniform", lambda x: x + 0.5, {"value": 0.5}),
    ("MulScalar", "uniform", lambda x: x * -2.0, {"value": -2.0}),
    ("Neg", "uniform", torch.neg, None),
    ("Exp", "wide", torch.exp, None),
    ("Log", "positive", torch.log, None),
    ("Sqrt", "positive", torch.sqrt, None),
    ("Square", "uniform", torch.square, None),
    ("Abs", "away", torch.abs, None),
    ("PowScalar", "uniform", lambda x: torch.pow(x, 3.0), {"exponent": 3.0}),
    ("PowScalar", "positive", lambda x: torch.pow(x, -0.5), {"exponent": -0.5}),
    ("ReLU", "away", torch.relu, None),
    ("GELU", "wide", F.gelu, None),
    ("Sigmoid", "wide", torch.sigmoid, None),
    ("Tanh", "wide", torch.tanh, None),
]
for i, (op, kind, f, attrs) in enumerate(unary):
    case(f"{op}{i}", op, [([3, 7], kind)], f, attrs)

# Reductions.
case("Sum1", "Sum", [([2, 3, 4], "uniform")], lambda x: x.sum(dim=[1]), {"axes": [1], "keepdims": False})
case("Sum02k", "Sum", [([2, 3, 4], "uniform")], lambda x: x.sum(dim=[0, 2], keepdim=True), {"axes": [0, 2], "keepdims": True})
case("MeanLast", "Mean", [([3, 5], "uniform")], lambda x: x.mean(dim=[-1]), {"axes": [-1], "keepdims": False})
case("Mean12k", "Mean", [([2, 3, 2, 2], "uniform")], lambda x: x.mean(dim=[1, 2], keepdim=True), {"axes": [1, 2], "keepdims": True})
case("SumAll", "SumAll", [([3, 4], "uniform")], lambda x: x.sum())
case("MeanAll", "MeanAll", [([2, 3, 2], "uniform")], lambda x: x.mean())
case("Max1", "Max", [([3, 4, 2], "distinct")], lambda x: x.max(dim=1).values, {"axis": 1, "keepdims": False})
case("MaxLastk", "Max", [([3, 5], "distinct")], lambda x: x.max(dim=-1, keepdim=True).values, {"axis": -1, "keepdims": True})

# Softmax family.
case("SoftmaxLast", "Softmax", [([3, 5], "wide")], lambda x: torch.softmax(x, -1), {"axis": -1})
case("SoftmaxMid", "Softmax", [([2, 4, 3], "wide")], lambda x: torch.softmax(x, 1), {"axis": 1})
case("LogSoftmaxBig", "LogSoftmax", [([3, 6], "logits")], lambda x: torch.log_softmax(x, -1), {"axis": -1})
case("LogSoftmax0", "LogSoftmax", [([4, 3], "wide")], lambda x: torch.log_softmax(x, 0), {"axis": 0})

# Norms.
case("LayerNormAffine", "LayerNorm", [([2, 3, 8], "wide"), ([8], "uniform"), ([8], "uniform")],
     lambda x, w, b: F.layer_norm(x, [8], w, b, 1e-5), {"epsilon": 1e-5, "has_weight": True, "has_bias": True})
case("LayerNormPlain", "LayerNorm", [([4, 5], "uniform")],
     lambda x: F.layer_norm(x, [5], None, None, 1e-6), {"epsilon": 1e-6, "has_weight": False, "has_bias": False})
case("L2NormLast", "L2Normalize", [([4, 6], "uniform")], lambda x: F.normalize(x, 2.0, 1, 1e-12), {"axis": 1, "eps": 1e-12})
case("L2Norm0", "L2Normalize", [([3, 4], "uniform")], lambda x: F.normalize(x, 2.0, 0, 1e-12), {"axis": 0, "eps": 1e-12})
case("L2NormClamped", "L2Normalize", [([3, 4], "uniform")], lambda x: F.normalize(x * 1e-3, 2.0, 1, 0.01) * 1e3,
     {"axis": 1, "eps": 0.01, "prescale": 1e-3})

# Losses.
targets = [2, -100, 0, 4, 4, -100]
case("CrossEntropy", "CrossEntropy", [([6, 5], "wide")], lambda x: F.cross_entropy(x, torch.tensor(targets)), ints=targets)
case("CrossEntropySoft", "CrossEntropySoft", [([4, 5], "wide"), ([4, 5], "positive")],
     lambda x, p: F.cross_entropy(x, p))

# Lookups and shape ops.
ids = [1, 3, 3, 6, 0, 1]
case("Embedding", "Embedding", [([7, 4], "uniform")], lambda w: F.embedding(torch.tensor(ids).view(2, 3), w),
     {"shape": [2, 3]}, ints=ids)
case("Reshape", "Reshape", [([2, 3, 4], "uniform")], lambda x: x.reshape(4, -1), {"shape": [4, -1]})
for perm, shape in [((0, 2, 1, 3), [2, 3, 4, 5]), ((1, 0), [3, 4]), ((2, 0, 1), [2, 3, 4]), ((3, 1, 0, 2), [2, 3, 2, 4])]:
    case(f"Transpose{list(perm)}", "Transpose", [(shape, "uniform")], lambda x, p=perm: x.permute(*p), {"perm": list(perm)})
case("Concat1", "Concat", [([2, 2, 3], "uniform"), ([2, 1, 3], "uniform"), ([2, 3, 3], "uniform")],
     lambda a, b, c: torch.cat([a, b, c], 1), {"axis": 1})
case("Concat0", "Concat", [([1, 4], "uniform"), ([2, 4], "uniform")], lambda a, b: torch.cat([a, b], 0), {"axis": 0})
case("Slice1", "Slice", [([4, 5], "uniform")], lambda x: x[:, 1:4], {"axis": 1, "start": 1, "end": 4})
case("SliceNeg", "Slice", [([4, 5], "uniform")], lambda x: x[-3:-1], {"axis": 0, "start": -3, "end": -1})
gidx = [4, 4, 1, 0]
case("Gather1", "Gather", [([2, 5, 3], "uniform")], lambda x: torch.index_select(x, 1, torch.tensor(gidx)),
     {"axis": 1}, ints=gidx)
tidx = [[4, 0, 2], [1, 1, 3]]
case("TakeAlongAxis1", "TakeAlongAxis", [([2, 5, 3], "uniform")],
     lambda x: torch.gather(x, 1, torch.tensor(tidx)[:, :, None].expand(-1, -1, 3)), {"axis": 1, "k": 3},
     ints=[j for row in tidx for j in row])

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "autograd", "testdata", "ops_golden.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as fh:
    json.dump({"generator": "scripts/gen_ops_golden.py", "torch": torch.__version__, "cases": cases}, fh, separators=(",", ":"))
    fh.write("\n")
print(f"wrote {len(cases)} cases to {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")
