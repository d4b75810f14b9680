#!/usr/bin/python3
"""Writes autograd/testdata/conv_golden.json: PyTorch reference values for
Conv2d, MaxPool2d, AvgPool2d, GlobalAvgPool and BatchNorm, checked by
autograd/conv_golden_test.go.

Run with Debian's /usr/bin/python3 (torch 1.13) from the repository root:

    /usr/bin/python3 scripts/gen_conv_golden.py

Inputs are drawn in float32 and the reference is computed in float64 from
those exact values. Each case holds the inputs, a random output gradient
grad_out, the output, and the gradient of sum(grad_out * output) with
respect to every input; BatchNorm cases also hold the running statistics
before and after the call.
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "autograd", "testdata", "conv_golden.json")
gen = torch.Generator().manual_seed(20240601)


def rand(*shape, scale=1.0, shift=0.0):
    # float32 draw, float64 compute: the fixture stores exactly what Go reads.
    return (torch.randn(*shape, generator=gen, dtype=torch.float32) * scale + shift).double()


def enc(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1).tolist()]}


cases = []


def record(name, op, attrs, inputs, fn, extra=None):
    """inputs: ordered dict name -> tensor (None for absent)."""
    leaves = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inputs.items()}
    out = fn(**leaves)
    gout = rand(*out.shape)
    (out * gout).sum().backward()
    case = {
        "name": name,
        "op": op,
        "attrs": attrs,
        "inputs": {k: enc(v) for k, v in inputs.items() if v is not None},
        "grad_out": enc(gout),
        "output": enc(out),
        "grads": {k: enc(v.grad) for k, v in leaves.items() if v is not None},
    }
    if extra:
        case.update(extra)
    cases.append(case)


# --- Conv2d ---------------------------------------------------------------
conv_specs = [
    ("conv3x3_pad1", dict(n=2, c=3, h=6, w=5, o=4, k=(3, 3), stride=1, pad=1, dil=1, groups=1, bias=True)),
    ("conv3x3_stride2", dict(n=2, c=4, h=7, w=8, o=6, k=(3, 3), stride=2, pad=1, dil=1, groups=1, bias=False)),
    ("conv_groups2", dict(n=1, c=4, h=5, w=5, o=6, k=(3, 3), stride=1, pad=1, dil=1, groups=2, bias=True)),
    ("conv_depthwise", dict(n=2, c=3, h=5, w=6, o=3, k=(3, 3), stride=1, pad=1, dil=1, groups=3, bias=False)),
    ("conv_dilation2", dict(n=1, c=2, h=8, w=7, o=3, k=(3, 3), stride=1, pad=2, dil=2, groups=1, bias=True)),
    ("conv1x1", dict(n=2, c=5, h=4, w=4, o=3, k=(1, 1), stride=1, pad=0, dil=1, groups=1, bias=True)),
    ("conv1x1_stride2", dict(n=2, c=4, h=6, w=6, o=5, k=(1, 1), stride=2, pad=0, dil=1, groups=1, bias=False)),
    ("conv7x7_stem", dict(n=1, c=3, h=16, w=14, o=4, k=(7, 7), stride=2, pad=3, dil=1, groups=1, bias=False)),
    ("conv3x2_nopad", dict(n=1, c=2, h=7, w=6, o=2, k=(3, 2), stride=2, pad=0, dil=1, groups=1, bias=True)),
]
for name, s in conv_specs:
    x = rand(s["n"], s["c"], s["h"], s["w"])
    wt = rand(s["o"], s["c"] // s["groups"], *s["k"], scale=0.5)
    b = rand(s["o"]) if s["bias"] else None
    attrs = {"stride": s["stride"], "pad": s["pad"], "dilation": s["dil"], "groups": s["groups"]}

    def conv(x, w, b, s=s):
        return F.conv2d(x, w, b, stride=s["stride"], padding=s["pad"], dilation=s["dil"], groups=s["groups"])

    record(name, "Conv2d", attrs, {"x": x, "w": wt, "b": b}, conv)

# --- pooling --------------------------------------------------------------
for name, (n, c, h, w, k, st, p) in {
    "maxpool3_2_1": (2, 3, 7, 8, 3, 2, 1),
    "maxpool2_2_0": (1, 2, 6, 6, 2, 2, 0),
    "maxpool3_1_1": (1, 2, 5, 4, 3, 1, 1),
}.items():
    record(name, "MaxPool2d", {"kernel": k, "stride": st, "pad": p}, {"x": rand(n, c, h, w)},
           lambda x, k=k, st=st, p=p: F.max_pool2d(x, k, st, p))
for name, (n, c, h, w, k, st, p) in {
    "avgpool3_2_1": (2, 3, 7, 8, 3, 2, 1),
    "avgpool2_2_0": (1, 2, 6, 6, 2, 2, 0),
    "avgpool3_1_1": (1, 2, 5, 4, 3, 1, 1),
}.items():
    record(name, "AvgPool2d", {"kernel": k, "stride": st, "pad": p}, {"x": rand(n, c, h, w)},
           lambda x, k=k, st=st, p=p: F.avg_pool2d(x, k, st, p, count_include_pad=True))
record("global_avgpool", "GlobalAvgPool", {}, {"x": rand(2, 3, 4, 5)},
       lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1))

# --- BatchNorm ------------------------------------------------------------
bn_specs = [
    ("bn2d_train", (4, 3, 5, 6), True, True, True),
    ("bn2d_eval", (4, 3, 5, 6), False, True, True),
    ("bn1d_train", (8, 5), True, True, True),
    ("bn1d_eval", (8, 5), False, True, True),
    ("bn2d_train_noaffine", (3, 2, 4, 4), True, False, True),
    ("bn2d_nostats", (3, 2, 4, 4), False, True, False),  # track_running_stats=False: batch stats in eval
]
for name, shape, training, affine, stats in bn_specs:
    c = shape[1]
    x = rand(*shape, scale=2.0, shift=0.7)
    w = rand(c, scale=0.3, shift=1.0) if affine else None
    b = rand(c, scale=0.3) if affine else None
    rm0 = rand(c, scale=0.2) if stats else None
    rv0 = (rand(c, scale=0.2).abs() + 0.5) if stats else None
    rm, rv = (rm0.clone(), rv0.clone()) if stats else (None, None)
    momentum, eps = 0.1, 1e-5

    def bn(x, w, b, rm=rm, rv=rv, training=training, stats=stats):
        return F.batch_norm(x, rm, rv, w, b, training=training or not stats, momentum=momentum, eps=eps)

    extra = {}
    if stats:
        extra = {"running_mean_before": enc(rm0), "running_var_before": enc(rv0)}
    record(name, "BatchNorm", {"training": training, "momentum": momentum, "eps": eps, "affine": affine, "stats": stats},
           {"x": x, "w": w, "b": b}, bn, extra)
    if stats:
        # F.batch_norm updated rm/rv in place during record's forward.
        cases[-1]["running_mean_after"] = enc(rm)
        cases[-1]["running_var_after"] = enc(rv)

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"generator": "scripts/gen_conv_golden.py", "torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")
