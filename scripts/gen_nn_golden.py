#!/usr/bin/python3
"""Golden fixtures for sslzoo's weights and nn packages, computed with PyTorch.

Run with Debian's interpreter, which has torch 1.13:

    /usr/bin/python3 scripts/gen_nn_golden.py            # rewrite every fixture
    /usr/bin/python3 scripts/gen_nn_golden.py weights    # only weights/testdata
    /usr/bin/python3 scripts/gen_nn_golden.py --dump F   # print a safetensors file as JSON

The python `safetensors` package is not installed here, so this script reads
and writes the format by hand: an 8-byte little-endian header length, a JSON
header {name: {dtype, shape, data_offsets}} plus optional __metadata__, then
the raw little-endian bytes. The Go tests call --dump to check that files Go
writes are readable by torch.
"""
import json
import math
import os
import struct
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
TORCH = {v: k for k, v in DTYPES.items()}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        # numpy has no bfloat16: reinterpret the bits.
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def st_save(path, tensors, metadata=None):
    """Write tensors (an ordered dict name -> torch.Tensor) as safetensors."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs, off = [], 0
    for name, t in tensors.items():
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_load(path):
    """Read a safetensors file into (dict name -> torch.Tensor, metadata)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = TORCH[e["dtype"]]
        buf = bytearray(data[b:end])
        if dt == torch.bfloat16:
            t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16) if buf else torch.zeros(0, dtype=dt)
        elif buf:
            t = torch.frombuffer(buf, dtype=dt)
        else:
            t = torch.zeros(0, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


def dump(path):
    tensors, meta = st_load(path)
    out = {"__metadata__": meta}
    for name, t in tensors.items():
        vals = t.double().flatten().tolist() if t.dtype.is_floating_point else t.long().flatten().tolist()
        # JSON has no inf/nan: spell them as strings.
        vals = [v if not (isinstance(v, float) and (math.isinf(v) or math.isnan(v))) else str(v) for v in vals]
        out[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "values": vals}
    print(json.dumps(out))


def gen_weights():
    """weights/testdata/torch_dtypes.safetensors: every dtype, with the
    float32 value PyTorch converts each float tensor to."""
    g = torch.Generator().manual_seed(1)
    special = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 1e-7, 6e-8, 3e-5,
                            float("inf"), float("-inf"), 1e38, -1e-40])
    f16 = torch.cat([special, torch.randn(20, generator=g) * 100]).half()
    bf16 = torch.cat([special, torch.randn(20, generator=g) * 1e4]).bfloat16()
    f64 = torch.randn(2, 3, generator=g, dtype=torch.float64) * 1e3
    # Rounding inputs for float32 -> half / bfloat16, ties included:
    # 1+2^-11 is halfway between two halves, 1+3*2^-11 too (ties to even).
    src = torch.cat([special, torch.tensor([1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-8, 1 + 3 * 2**-8,
                                            65519.0, 65520.0, 2**-25, 2**-24 * 1.5, 3 * 2**-26]),
                     torch.randn(40, generator=g) * 50])
    tensors = {
        "f32": torch.randn(3, 4, generator=g),
        "f64": f64, "f64_as_f32": f64.float(),
        "f16": f16, "f16_as_f32": f16.float(),
        "bf16": bf16, "bf16_as_f32": bf16.float(),
        "round_src": src, "round_f16": src.half(), "round_bf16": src.bfloat16(),
        "i64": torch.tensor([[-3, 0], [5, 2**40]], dtype=torch.int64),
        "i32": torch.tensor([-7, 2**31 - 1, 0], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar_i64": torch.tensor(7, dtype=torch.int64),
        "empty": torch.zeros(0, 3),
    }
    st_save(os.path.join(ROOT, "weights/testdata/torch_dtypes.safetensors"), tensors,
            {"format": "pt", "written_by": "scripts/gen_nn_golden.py"})


OPTIM_CASES = {
    "sgd_plain": {"kind": "sgd", "lr": 0.1},
    "sgd_momentum": {"kind": "sgd", "lr": 0.1, "momentum": 0.9},
    "sgd_damp_wd": {"kind": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
    "sgd_nesterov_wd": {"kind": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
    "adamw": {"kind": "adamw", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.05},
    "adamw_betas": {"kind": "adamw", "lr": 0.003, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.0},
    "lars": {"kind": "lars", "lr": 0.3, "momentum": 0.9, "weight_decay": 0.01, "eta": 0.001},
    "lars_nesterov": {"kind": "lars", "lr": 0.2, "momentum": 0.9, "weight_decay": 1e-4, "eta": 0.02, "nesterov": True},
}
OPTIM_STEPS = 3
# The learning rate of step t is lr*LR_SCALE[t], set before the step as a
# schedule would, so SetLR is exercised too.
LR_SCALE = [1.0, 0.5, 0.25]
OPTIM_PARAMS = {"layer.weight": (4, 3), "layer.bias": (4,), "norm.weight": (3,), "conv.weight": (2, 3, 2, 2)}


def lars_reference(params, grads, state, lr, cfg):
    """LARS as published for SimCLR (TF LARSOptimizer, classic momentum) and
    BYOL (optax: add_decayed_weights, scale_by_trust_ratio, lr, trace):
    biases and 1-D (norm) parameters get neither decay nor adaptation."""
    m, eta = cfg["momentum"], cfg["eta"]
    with torch.no_grad():
        for name, p in params.items():
            g = grads[name]
            excluded = name.endswith("bias") or p.dim() <= 1
            wd = 0.0 if excluded else cfg["weight_decay"]
            d = g + wd * p
            r = 1.0
            if not excluded:
                wn, gn = p.double().norm().item(), d.double().norm().item()
                if wn > 0 and gn > 0:
                    r = eta * wn / gn
            v = state.setdefault(name, torch.zeros_like(p))
            v.mul_(m).add_(lr * r * d)
            if cfg.get("nesterov"):
                p.sub_(m * v + lr * r * d)
            else:
                p.sub_(v)


def gen_optim():
    """nn/testdata/optim.safetensors: parameter trajectories of a few
    optimizer steps from fixed parameters and gradients, plus one
    clip_grad_norm_ case."""
    g = torch.Generator().manual_seed(2)
    init = {n: torch.randn(*s, generator=g) for n, s in OPTIM_PARAMS.items()}
    grads = [{n: torch.randn(*s, generator=g) * (0.5 + t) for n, s in OPTIM_PARAMS.items()}
             for t in range(OPTIM_STEPS)]
    out = {}
    for n in OPTIM_PARAMS:
        out["init." + n] = init[n]
        for t in range(OPTIM_STEPS):
            out["grad%d.%s" % (t, n)] = grads[t][n]
    for case, cfg in OPTIM_CASES.items():
        params = {n: torch.nn.Parameter(v.clone()) for n, v in init.items()}
        plist = list(params.values())
        if cfg["kind"] == "sgd":
            opt = torch.optim.SGD(plist, lr=cfg["lr"], momentum=cfg.get("momentum", 0),
                                  dampening=cfg.get("dampening", 0), weight_decay=cfg.get("weight_decay", 0),
                                  nesterov=cfg.get("nesterov", False))
        elif cfg["kind"] == "adamw":
            opt = torch.optim.AdamW(plist, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"],
                                    weight_decay=cfg["weight_decay"])
        state = {}
        for t in range(OPTIM_STEPS):
            lr = cfg["lr"] * LR_SCALE[t]
            if cfg["kind"] == "lars":
                lars_reference(params, grads[t], state, lr, cfg)
            else:
                for group in opt.param_groups:
                    group["lr"] = lr
                for n, p in params.items():
                    p.grad = grads[t][n].clone()
                opt.step()
            for n, p in params.items():
                out["%s.after%d.%s" % (case, t, n)] = p.detach().clone()
    # clip_grad_norm_: one case that clips and one that does not.
    for case, max_norm in (("clip", 1.5), ("noclip", 1e3)):
        ps = [torch.nn.Parameter(init[n].clone()) for n in OPTIM_PARAMS]
        for p, n in zip(ps, OPTIM_PARAMS):
            p.grad = grads[0][n].clone()
        norm = torch.nn.utils.clip_grad_norm_(ps, max_norm)
        out[case + ".norm"] = norm.reshape(())
        for p, n in zip(ps, OPTIM_PARAMS):
            out["%s.grad.%s" % (case, n)] = p.grad.clone()
    meta = {"cases": json.dumps(OPTIM_CASES), "steps": str(OPTIM_STEPS), "lr_scale": json.dumps(LR_SCALE),
            "params": json.dumps(list(OPTIM_PARAMS)), "clip": json.dumps({"clip": 1.5, "noclip": 1e3})}
    st_save(os.path.join(ROOT, "nn/testdata/optim.safetensors"), out, meta)


def main(argv):
    if len(argv) >= 2 and argv[0] == "--dump":
        dump(argv[1])
        return
    which = set(argv) or {"weights", "optim"}
    torch.set_num_threads(1)
    if "weights" in which:
        gen_weights()
    if "optim" in which:
        gen_optim()


if __name__ == "__main__":
    main(sys.argv[1:])
