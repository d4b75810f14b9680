#!/usr/bin/python3
"""Writes the PyTorch parity fixtures for sslzoo's backbones (zoo/testdata/).

Run with Debian's interpreter, which has torch 1.13 and torchvision 0.14:

    /usr/bin/python3 scripts/gen_parity.py [--out zoo/testdata]

For each reduced-size backbone it writes two safetensors files:

  <name>.weights.safetensors  the state_dict, under the exact key names of the
                              full-size model (torchvision / timm / Hugging Face)
  <name>.io.safetensors       inputs, the eval-mode output, the train-mode
                              output, the gradient of every parameter for
                              loss = sum(output * r) with a fixed random r
                              ("grad.<param name>"), and BatchNorm buffers
                              after the train-mode forward ("after.<buffer>")

r is scaled by a power of two so that the largest gradient lies in (0.5, 1],
and ResNet inputs are drawn away from ReLU and max-pool kinks (see
KINK_MARGIN); both keep a fixed 1e-4 tolerance meaningful in float32.

plus shapes.json: the parameter and buffer names and shapes of the full-size
registry entries (resnet18 ... bert-base), so the Go registry can be checked
against the real architectures without storing their weights.

The safetensors format is written by hand here (the Python package is not
installed): an 8-byte little-endian header length, a JSON header mapping each
name to {dtype, shape, data_offsets}, then the raw little-endian data.

ViT and BERT are written out in this file with timm's and Hugging Face's module
structure and names, because neither timm nor transformers is installed.
Dropout is 0 in every fixture: train mode cannot match across two random
number generators otherwise.
"""

import argparse
import copy
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)


# ---------------------------------------------------------------- safetensors

_DTYPES = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: torch.Tensor or np.ndarray} in safetensors layout."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        a = np.array(a, order="C", copy=True)  # ascontiguousarray would turn 0-d into 1-d
        if a.dtype not in _DTYPES:
            raise ValueError(f"{name}: unsupported dtype {a.dtype}")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _DTYPES[a.dtype],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)  # align the data to 8 bytes
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def read_safetensors(path):
    """Reads back what write_safetensors wrote (used as a self-check)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": "<f4", "I64": "<i8"}[h["dtype"]]
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dt).reshape(h["shape"])
    return out


# --------------------------------------------------------------------- ResNet


def scaled(base, width):
    """Channel count for a width multiplier: nearest integer, at least 1."""
    return max(1, int(math.floor(base * width + 0.5)))


class ResNet(nn.Module):
    """torchvision's ResNet with a width multiplier and a CIFAR stem option.

    The blocks are torchvision's own BasicBlock/Bottleneck and the layer
    construction follows torchvision's _make_layer, so every state_dict key
    matches torchvision.models.resnet18/34/50.
    """

    def __init__(self, block, layers, width=1.0, stem="imagenet", in_channels=3, num_classes=0):
        super().__init__()
        widths = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.inplanes = widths[0]
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        self.layer1 = self._make_layer(block, widths[0], layers[0], 1)
        self.layer2 = self._make_layer(block, widths[1], layers[1], 2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], 2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = widths[3] * block.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes) if num_classes > 0 else nn.Identity()

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


RESNET_LAYERS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3])}


def make_resnet(depth, **kw):
    block, layers = RESNET_LAYERS[depth]
    return ResNet(block, layers, **kw)


# ------------------------------------------------------------------------ ViT


def resample_pos_embed(pos_embed, old_grid, new_grid):
    """Resizes the patch part of a [1, 1+H*W, D] position table (cls kept).

    Bicubic, align_corners=False, no antialiasing: what MAE's
    interpolate_pos_embed does, and what timm's resample_abs_pos_embed does
    when upsampling (timm antialiases when shrinking; sslzoo does not).
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    cls, grid = pos_embed[:, :1], pos_embed[:, 1:]
    d = grid.shape[-1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d)
    return torch.cat([cls, grid], dim=1)


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, dim, patch, patch)

    def forward(self, x):
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """timm's VisionTransformer layout (class token, learned positions).

    pool="cls" normalises with `norm` then takes the class token; pool="mean"
    averages the patch tokens and normalises with `fc_norm`, as timm does for
    global_pool="avg" (and MAE's fine-tuning model).
    """

    def __init__(self, img_size, patch, in_chans, dim, depth, heads, mlp_ratio=4.0, pool="cls", num_classes=0):
        super().__init__()
        self.grid = (img_size // patch, img_size // patch)
        self.pool = pool
        self.patch_embed = PatchEmbed(patch, in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.grid[0] * self.grid[1], dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        if pool == "cls":
            self.norm = nn.LayerNorm(dim, eps=1e-6)
        else:
            self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x):
        x, grid = self.patch_embed(x)
        pos = resample_pos_embed(self.pos_embed, self.grid, grid)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos
        for blk in self.blocks:
            x = blk(x)
        if self.pool == "cls":
            x = self.norm(x)[:, 0]
        else:
            x = self.fc_norm(x[:, 1:].mean(dim=1))
        return self.head(x)


# ----------------------------------------------------------------------- BERT


class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab"], c["hidden"], padding_idx=c["pad"])
        self.position_embeddings = nn.Embedding(c["max_pos"], c["hidden"])
        self.token_type_embeddings = nn.Embedding(c["types"], c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, ids, types):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.word_embeddings(ids) + self.token_type_embeddings(types) + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c["heads"]
        self.query = nn.Linear(c["hidden"], c["hidden"])
        self.key = nn.Linear(c["hidden"], c["hidden"])
        self.value = nn.Linear(c["hidden"], c["hidden"])
        self.dropout = nn.Dropout(c["attn_dropout"])

    def split(self, x):
        b, t, h = x.shape
        return x.view(b, t, self.heads, h // self.heads).permute(0, 2, 1, 3)

    def forward(self, x, mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask
        ctx = self.dropout(scores.softmax(dim=-1)) @ v
        b, _, t, _ = ctx.shape
        return ctx.permute(0, 2, 1, 3).reshape(b, t, -1)


class BertSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden"], c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, h, x):
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden"], c["intermediate"])

    def forward(self, x):
        return F.gelu(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["intermediate"], c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, h, x):
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c["layers"])])

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class BertPooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden"], c["hidden"])

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class BertModel(nn.Module):
    """Hugging Face's BertModel: post-norm blocks, exact GELU."""

    def __init__(self, c, pooler):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        if pooler:
            self.pooler = BertPooler(c)

    def forward(self, ids, types, attention_mask):
        # Hugging Face's extended mask: 0 where attended, the most negative
        # float32 where padded, broadcast over heads and query positions.
        mask = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        seq = self.encoder(self.embeddings(ids, types), mask)
        pooled = self.pooler(seq) if hasattr(self, "pooler") else None
        return seq, pooled


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden"], c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12)

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, c, word_embeddings):
        super().__init__()
        self.transform = BertPredictionHeadTransform(c)
        self.bias = nn.Parameter(torch.zeros(c["vocab"]))
        self.word_embeddings = [word_embeddings]  # tied, not a submodule

    def forward(self, x):
        return F.linear(self.transform(x), self.word_embeddings[0].weight, self.bias)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, c, word_embeddings):
        super().__init__()
        self.predictions = BertLMPredictionHead(c, word_embeddings)


class BertForMaskedLM(nn.Module):
    """Hugging Face's BertForMaskedLM naming: bert.* and cls.predictions.*.

    The decoder shares the word embedding matrix, so the state_dict holds it
    once (as Hugging Face's safetensors files do), with the decoder bias as
    cls.predictions.bias.
    """

    def __init__(self, c, pooler):
        super().__init__()
        self.bert = BertModel(c, pooler)
        self.cls = BertOnlyMLMHead(c, self.bert.embeddings.word_embeddings)

    def forward(self, ids, types, attention_mask):
        seq, pooled = self.bert(ids, types, attention_mask)
        return seq, pooled, self.cls.predictions(seq)


# ------------------------------------------------------------------ fixtures


def perturb_norms(model, gen):
    """Moves norm parameters and BN statistics away from their 1/0 init, so
    that eval mode and the affine parts are actually exercised."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


def state_dict_of(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def seed_grad(shape, gen):
    """The fixed random r of loss = sum(out * r), scaled by 1/sqrt(numel) so
    that gradients stay O(1): float32 then resolves them to well under the
    1e-4 tolerance, whatever the output size."""
    return torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape))


def grad_scale(model):
    """The power of two that brings the largest gradient into (0.5, 1]."""
    return 2.0 ** -math.ceil(math.log2(max(p.grad.abs().max().item() for p in model.parameters())))


def run_step(model, inputs, gen, names=None):
    """Eval forward, then train forward + backward of sum(out * r).

    Returns the io entries: r, eval and train outputs, gradients, buffers.
    """
    io = {}
    outs = lambda o: o if isinstance(o, tuple) else (o,)
    model.eval()
    with torch.no_grad():
        eval_out = [o for o in outs(model(*inputs)) if o is not None]
    model.train()
    train_out = [o for o in outs(model(*inputs)) if o is not None]
    names = names or [f"out{i}" for i in range(len(train_out))]
    loss = 0
    for name, e, t in zip(names, eval_out, train_out):
        r = seed_grad(t.shape, gen)
        io[f"r.{name}"] = r
        io[f"eval.{name}"] = e
        io[f"train.{name}"] = t.detach()
        loss = loss + (t * r).sum()
    model.zero_grad()
    loss.backward()
    # Backpropagation is linear in r, and scaling by a power of two is exact
    # in floating point: rescale r and every gradient so that the largest
    # gradient lies in (0.5, 1]. The fixed absolute tolerance of the Go test
    # then means the same thing for every model (about 1e-4 of the largest
    # gradient), however deep the network and however large its gradients.
    scale = grad_scale(model)
    for name in names:
        io[f"r.{name}"] = io[f"r.{name}"] * scale
    for k, p in model.named_parameters():
        if p.grad is None:
            raise RuntimeError(f"no gradient for {k}")
        io[f"grad.{k}"] = p.grad * scale  # a copy: zero_grad later zeroes p.grad in place
    for k, b in model.named_buffers():
        io[f"after.{k}"] = b.clone()
    return io


# ReLU and max pooling are not differentiable where a pre-activation sits at
# 0 or two pooled values tie. Two float32 implementations differ by rounding
# (about 1e-5 deep in a ResNet-50), so a value that close to a kink can land
# on different sides of it, and the gradient at that element then differs by
# its whole size. As in finite-difference gradient checks, the inputs are
# drawn until, in float64, every pre-activation and every max-pool runner-up
# stays at least KINK_MARGIN away from the kink.
KINK_MARGIN = 1e-4


def kink_margin(model, x):
    """Smallest distance of any ReLU input from 0, or of any max-pool window's
    runner-up from its max (ties at an exact 0 from ReLU are harmless), in a
    float64 train-mode forward of a copy of model."""
    m = copy.deepcopy(model).double().train()
    margins = []

    def relu_hook(mod, inp):
        margins.append(inp[0].abs().min().item())

    def pool_hook(mod, inp):
        x = F.pad(inp[0], [mod.padding] * 4, value=-math.inf)
        n, c = x.shape[:2]
        win = F.unfold(x.reshape(n * c, 1, *x.shape[2:]), mod.kernel_size, stride=mod.stride)
        top = win.topk(2, dim=1).values
        gap = (top[:, 0] - top[:, 1])[top[:, 0] != 0]
        if gap.numel():
            margins.append(gap.min().item())

    for mod in m.modules():
        if isinstance(mod, nn.ReLU):
            mod.register_forward_pre_hook(relu_hook)
        if isinstance(mod, nn.MaxPool2d):
            mod.register_forward_pre_hook(pool_hook)
    m(x.double())
    return min(margins)


def fixture_resnet(out, name, depth, stem, width, in_channels, num_classes, input_shape, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = make_resnet(depth, width=width, stem=stem, in_channels=in_channels, num_classes=num_classes)
    perturb_norms(model, gen)
    weights = state_dict_of(model)
    for tries in range(1, 1001):
        x = torch.randn(input_shape, generator=gen)
        margin = kink_margin(model, x)
        if margin >= KINK_MARGIN:
            break
    else:
        raise RuntimeError(f"{name}: no input with kink margin {KINK_MARGIN} in {tries} draws")
    io = {"input": x}
    io.update(run_step(model, (x,), gen))
    cfg = dict(depth=depth, stem=stem, width=width, in_channels=in_channels, num_classes=num_classes,
               input_draws=tries, kink_margin=margin)
    save(out, name, weights, io, cfg)


def fixture_vit(out, name, cfg, input_shape, resized_shapes, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = VisionTransformer(**cfg)
    with torch.no_grad():
        model.cls_token.copy_(0.5 * torch.randn(model.cls_token.shape, generator=gen))
        model.pos_embed.copy_(0.5 * torch.randn(model.pos_embed.shape, generator=gen))
    perturb_norms(model, gen)
    weights = state_dict_of(model)
    x = torch.randn(input_shape, generator=gen)
    io = {"input": x}
    io.update(run_step(model, (x,), gen))
    # Other input sizes: eval output, and the gradients that pass through the
    # position-embedding interpolation.
    for i, shape in enumerate(resized_shapes):
        xr = torch.randn(shape, generator=gen)
        model.eval()
        with torch.no_grad():
            ye = model(xr)
        model.train()
        model.zero_grad()
        y = model(xr)
        r = seed_grad(y.shape, gen)
        (y * r).sum().backward()
        scale = grad_scale(model)
        io[f"resize{i}.input"] = xr
        io[f"resize{i}.eval"] = ye
        io[f"resize{i}.r"] = r * scale
        io[f"resize{i}.grad.pos_embed"] = model.pos_embed.grad * scale
        io[f"resize{i}.grad.patch_embed.proj.weight"] = model.patch_embed.proj.weight.grad * scale
    save(out, name, weights, io, cfg)


def fixture_bert(out, name, c, pooler, batch, seq, lengths, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = BertForMaskedLM(c, pooler)
    perturb_norms(model, gen)
    with torch.no_grad():
        model.cls.predictions.bias.copy_(0.1 * torch.randn(c["vocab"], generator=gen))
    weights = state_dict_of(model)
    ids = torch.randint(1, c["vocab"], (batch, seq), generator=gen)
    types = torch.zeros(batch, seq, dtype=torch.int64)
    mask = torch.zeros(batch, seq, dtype=torch.int64)
    for b, n in enumerate(lengths):
        ids[b, n:] = c["pad"]  # padding rows get no gradient (padding_idx)
        mask[b, :n] = 1
        types[b, n // 2 : n] = 1
    io = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
    io.update(run_step(model, (ids, types, mask), gen, names=["sequence", "pooled", "logits"] if pooler else ["sequence", "logits"]))
    save(out, name, weights, io, dict(c, pooler=pooler))


def save(out, name, weights, io, cfg):
    meta = {"config": json.dumps(cfg, sort_keys=True), "generator": "scripts/gen_parity.py", "torch": torch.__version__}
    wpath = os.path.join(out, f"{name}.weights.safetensors")
    ipath = os.path.join(out, f"{name}.io.safetensors")
    write_safetensors(wpath, weights, meta)
    write_safetensors(ipath, io, meta)
    for path, want in ((wpath, weights), (ipath, io)):
        got = read_safetensors(path)
        assert set(got) == set(want), path
        for k, v in want.items():
            v = v.detach().numpy() if isinstance(v, torch.Tensor) else v
            assert np.array_equal(got[k], v), (path, k)
    print(f"{name}: {len(weights)} weights, {len(io)} io tensors, "
          f"{os.path.getsize(wpath) + os.path.getsize(ipath)} bytes")


# Full-size registry entries, as the Go registry (zoo.Arch) builds them:
# backbones without classifier heads, BERT without pooler or MLM head.
BERT_SIZES = {"bert-tiny": (2, 128, 2), "bert-mini": (4, 256, 4), "bert-small": (4, 512, 8), "bert-base": (12, 768, 12)}
VIT_SIZES = {"vit-tiny": (192, 12, 3), "vit-tiny-l6": (192, 6, 3), "vit-tiny-144": (144, 12, 3), "vit-small": (384, 12, 6), "vit-base": (768, 12, 12)}


def full_size_shapes():
    models = {
        "resnet18-cifar": make_resnet(18, stem="cifar"),
        "resnet18": make_resnet(18),
        "resnet34": make_resnet(34),
        "resnet50": make_resnet(50),
    }
    for name, (dim, depth, heads) in VIT_SIZES.items():
        models[name] = VisionTransformer(224, 16, 3, dim, depth, heads)
    for name, (layers, hidden, heads) in BERT_SIZES.items():
        c = dict(vocab=30522, hidden=hidden, layers=layers, heads=heads, intermediate=4 * hidden,
                 max_pos=512, types=2, pad=0, dropout=0.1, attn_dropout=0.1)
        models[name] = BertModel(c, pooler=False)
    shapes = {n: {k: list(v.shape) for k, v in m.state_dict().items()} for n, m in models.items()}
    # The width-1 ResNets must be torchvision's own, less the classifier.
    for depth in (18, 34, 50):
        ref = getattr(torchvision.models, f"resnet{depth}")()
        want = {k: list(v.shape) for k, v in ref.state_dict().items() if not k.startswith("fc.")}
        assert shapes[f"resnet{depth}"] == want, f"resnet{depth} differs from torchvision"
    return shapes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "zoo", "testdata"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    # Batch and image sizes are chosen so that train-mode BatchNorm sees
    # enough values per channel in layer4 for float32 to be well conditioned:
    # with 3 values per channel (ResNet-50, imagenet stem, 32x32 input),
    # PyTorch's own float32 and float64 outputs already differ by 5e-3.
    fixture_resnet(args.out, "resnet18_cifar", 18, "cifar", 0.0625, 3, 10, (4, 3, 16, 16), seed=1)
    fixture_resnet(args.out, "resnet18_imagenet", 18, "imagenet", 0.0625, 1, 0, (4, 1, 32, 32), seed=6)
    fixture_resnet(args.out, "resnet50_cifar", 50, "cifar", 0.03125, 2, 7, (2, 2, 16, 16), seed=2)
    fixture_vit(args.out, "vit_cls",
                dict(img_size=16, patch=4, in_chans=3, dim=32, depth=2, heads=4, mlp_ratio=4.0, pool="cls", num_classes=10),
                (2, 3, 16, 16), [(2, 3, 24, 24), (1, 3, 12, 20)], seed=3)
    fixture_vit(args.out, "vit_mean",
                dict(img_size=16, patch=8, in_chans=1, dim=16, depth=1, heads=2, mlp_ratio=2.0, pool="mean", num_classes=0),
                (3, 1, 16, 16), [(2, 1, 32, 24)], seed=4)
    bert = dict(vocab=100, hidden=32, layers=2, heads=4, intermediate=64, max_pos=16, types=2, pad=0,
                dropout=0.0, attn_dropout=0.0)
    fixture_bert(args.out, "bert_mlm", bert, pooler=True, batch=2, seq=8, lengths=[8, 5], seed=5)

    path = os.path.join(args.out, "shapes.json")
    with open(path + ".tmp", "w") as f:
        json.dump(full_size_shapes(), f, indent=None, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print(f"shapes.json: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
