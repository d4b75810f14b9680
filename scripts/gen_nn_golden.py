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
import zlib

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
    # solo-learn's clip_lars_lr: eta 0.02 leaves the ratio under lr (the
    # clipped form still differs from the plain one by the lr factor);
    # eta 0.5 makes the clip bind on some steps.
    "lars_clip": {"kind": "lars", "lr": 0.3, "momentum": 0.9, "weight_decay": 1e-4, "eta": 0.02, "clip": True},
    "lars_clip_binding": {"kind": "lars", "lr": 0.3, "momentum": 0.9, "weight_decay": 1e-5, "eta": 0.5, "clip": True},
}
OPTIM_STEPS = 3
# The learning rate of step t is lr*LR_SCALE[t], set before the step as a
# schedule would, so SetLR is exercised too.
LR_SCALE = [1.0, 0.5, 0.25]
OPTIM_PARAMS = {"layer.weight": (4, 3), "layer.bias": (4,), "norm.weight": (3,), "conv.weight": (2, 3, 2, 2)}


def lars_reference(params, grads, state, lr, cfg):
    """LARS as published for SimCLR (TF LARSOptimizer, classic momentum) and
    BYOL (optax: add_decayed_weights, scale_by_trust_ratio, lr, trace):
    biases and 1-D (norm) parameters get neither decay nor adaptation.
    With "clip" (solo-learn's clip_lars_lr: the trust ratio divided by lr,
    capped at 1, then times lr) the rate of an adapted parameter is
    min(eta*|w|/|g|, lr)."""
    m, eta = cfg["momentum"], cfg["eta"]
    with torch.no_grad():
        for name, p in params.items():
            g = grads[name]
            excluded = name.endswith("bias") or p.dim() <= 1
            wd = 0.0 if excluded else cfg["weight_decay"]
            d = g + wd * p
            rate = lr
            if not excluded:
                wn, gn = p.double().norm().item(), d.double().norm().item()
                if wn > 0 and gn > 0:
                    r = eta * wn / gn
                    rate = lr * min(r / lr, 1.0) if cfg.get("clip") else lr * r
            v = state.setdefault(name, torch.zeros_like(p))
            v.mul_(m).add_(rate * d)
            if cfg.get("nesterov"):
                p.sub_(m * v + rate * d)
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


def layer_case(name, module, inputs, meta, forward=None, train=True, grad_inputs=None):
    """Write nn/testdata/<name>.safetensors: the module's state_dict (under
    "model."), its inputs ("input", "input1", ...), its output, a random
    seed r for the backward pass of sum(output*r), and the gradients of
    every parameter ("grad.<name>") and float input ("input_grad", ...;
    grad_inputs, a list of booleans, can exclude inputs such as masks).
    Buffers after the forward pass (running statistics) are saved under
    "after."."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    module.train(train)
    state = {"model." + k: v.detach().clone() for k, v in module.state_dict().items()}
    ins = []
    for i, x in enumerate(inputs):
        if x.dtype.is_floating_point and (grad_inputs is None or grad_inputs[i]):
            x = x.clone().requires_grad_(True)
        ins.append(x)
    out = forward(module, *ins) if forward else module(*ins)
    seed = torch.randn(out.shape, generator=g)
    (out * seed).sum().backward()
    t = dict(state)
    for i, x in enumerate(inputs):
        key = "input" if i == 0 else "input%d" % i
        t[key] = x
        if ins[i].requires_grad:
            t[key.replace("input", "input_grad")] = ins[i].grad
    t["output"] = out.detach()
    t["seed"] = seed
    for k, p in module.named_parameters():
        if p.grad is not None:
            t["grad." + k] = p.grad
    for k, b in module.named_buffers():
        t["after." + k] = b.detach().clone()
    meta = dict(meta, train=str(train).lower())
    st_save(os.path.join(ROOT, "nn/testdata/%s.safetensors" % name), t,
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})


def perturb(module, g, scale=0.5):
    """Move every parameter and float buffer off its default value, so a
    test cannot pass by a layer ignoring, say, its LayerNorm weight."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
        for k, b in module.named_buffers():
            if k.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif b.dtype.is_floating_point:
                b.add_(torch.randn(b.shape, generator=g) * scale)


def gen_layers():
    """Fixtures for every nn layer, compared by nn/layers_test.go."""
    nn = torch.nn
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    x = lambda *s: torch.randn(*s, generator=g)

    layer_case("linear", nn.Linear(5, 4), [x(2, 3, 5)], {"in": 5, "out": 4, "bias": True})
    layer_case("linear_nobias", nn.Linear(5, 4, bias=False), [x(3, 5)], {"in": 5, "out": 4, "bias": False})

    ln = nn.LayerNorm(6, eps=1e-6)
    perturb(ln, g)
    layer_case("layernorm", ln, [x(2, 3, 6) * 3 + 1], {"d": 6, "eps": 1e-6})

    emb = nn.Embedding(10, 4)
    ids = torch.tensor([[1, 3, 3], [0, 9, 2]])
    layer_case("embedding", emb, [ids], {"n": 10, "d": 4})

    mlp = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))
    layer_case("mlp_relu_gelu", mlp, [x(4, 6)], {})

    mlp_bn = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    perturb(mlp_bn[1], g)
    layer_case("mlp_bn", mlp_bn, [x(5, 6)], {"dims": [6, 8, 3], "batchnorm": True})
    mlp_bn2 = nn.Sequential(nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(),
                            nn.Linear(8, 7, bias=False), nn.BatchNorm1d(7), nn.ReLU(),
                            nn.Linear(7, 4, bias=False), nn.BatchNorm1d(4))
    layer_case("mlp_bn_last", mlp_bn2, [x(5, 6)],
               {"dims": [6, 8, 7, 4], "batchnorm": True, "last_batchnorm": True, "no_bias_before_bn": True})

    for name, conv, shape in (
            ("conv_stride_pad", nn.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 7, 7)),
            ("conv_groups_nobias", nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False), (2, 4, 5, 5)),
            ("conv_dilation", nn.Conv2d(2, 3, 3, padding=2, dilation=2), (1, 2, 6, 6)),
            ("conv_1x1", nn.Conv2d(5, 2, 1), (2, 5, 3, 4))):
        meta = {"in": conv.in_channels, "out": conv.out_channels, "k": conv.kernel_size[0],
                "stride": conv.stride[0], "pad": conv.padding[0], "dilation": conv.dilation[0],
                "groups": conv.groups, "bias": conv.bias is not None}
        layer_case(name, conv, [x(*shape)], meta)

    for name, bn, shape, train in (
            ("bn2d_train", nn.BatchNorm2d(4), (3, 4, 5, 5), True),
            ("bn2d_eval", nn.BatchNorm2d(4), (3, 4, 5, 5), False),
            ("bn1d_train", nn.BatchNorm1d(6), (8, 6), True),
            ("bn1d_eval", nn.BatchNorm1d(6), (8, 6), False)):
        perturb(bn, g)
        bn.num_batches_tracked.fill_(3)
        layer_case(name, bn, [x(*shape) * 2 + 0.5], {"c": bn.num_features}, train=train)

    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    perturb(mha, g, 0.2)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    layer_case("mha_self_padmask", mha, [x(2, 5, 8), pad.to(torch.uint8)],
               {"embed": 8, "heads": 2, "bias": True},
               forward=lambda m, q, p: m(q, q, q, key_padding_mask=p.bool(), need_weights=False)[0])
    mha2 = nn.MultiheadAttention(12, 3, batch_first=True)
    perturb(mha2, g, 0.2)
    causal = torch.triu(torch.full((3, 4), float("-inf")), diagonal=1)
    layer_case("mha_cross_attnmask", mha2, [x(2, 3, 12), x(2, 4, 12), x(2, 4, 12), causal],
               {"embed": 12, "heads": 3, "bias": True},
               forward=lambda m, q, k, v, am: m(q, k, v, attn_mask=am, need_weights=False)[0],
               grad_inputs=[True, True, True, False])


def main(argv):
    if len(argv) >= 2 and argv[0] == "--dump":
        dump(argv[1])
        return
    which = set(argv) or {"weights", "optim", "layers"}
    torch.set_num_threads(1)
    if "weights" in which:
        gen_weights()
    if "optim" in which:
        gen_optim()
    if "layers" in which:
        gen_layers()


if __name__ == "__main__":
    main(sys.argv[1:])
