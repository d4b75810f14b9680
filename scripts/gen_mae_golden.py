#!/usr/bin/python3
"""Write zoo/ssl/testdata/mae_golden.safetensors: PyTorch reference values
for sslzoo's masked autoencoder.

Run with Debian's torch: /usr/bin/python3 scripts/gen_mae_golden.py
(the Go tests TestMAEGolden* read the file).

The module below is written after the public MAE reference
(models_mae.MaskedAutoencoderViT with timm's Block), with the reference's
parameter names, on a tiny configuration: 8x8 RGB images, 2x2 patches
(16 patches), encoder width 16, depth 2, 2 heads; decoder width 8, depth 1,
2 heads. timm is not installed, so the block (pre-norm, qkv with bias, exact
GELU MLP, LayerNorm eps 1e-6) is written out here. Everything is computed
in float64 from float32-representable weights and inputs.

Stored tensors (float32 unless noted):
  param.<name>          every parameter, reference names
  in.imgs [2,3,8,8], in.noise [2,16], in.patches [2,16,12]
  out.patchify, out.unpatchify (of in.patches)
  out.ids_keep, out.ids_restore (int64), out.mask
  out.sincos [17,16]    get_2d_sincos_pos_embed(16, 4, cls_token=True)
  out.pred, out.loss             mask ratio 0.75, norm_pix_loss False
  out.loss_normpix, grad.<name>  the same with norm_pix_loss True, and the
                                 gradient of that loss for every trainable
                                 parameter

The model classes take the sizes as arguments (the defaults are the tiny
configuration above), so scripts/learning_torch_mae.py imports them to train
the same MAE at full size; importing this file changes no global state.
"""
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zoo", "ssl", "testdata", "mae_golden.safetensors")

IMG, P, C, DIM, DEPTH, HEADS = 8, 2, 3, 16, 2, 2
DDIM, DDEPTH, DHEADS, RATIO = 8, 1, 2, 0.75


def sincos_1d(dim, pos):
    omega = np.arange(dim // 2, dtype=np.float64)
    omega /= dim / 2.0
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim, grid_size, cls_token):
    gh = np.arange(grid_size, dtype=np.float32)
    gw = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(gw, gh), axis=0).reshape([2, 1, grid_size, grid_size])
    emb = np.concatenate([sincos_1d(dim // 2, grid[0]), sincos_1d(dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
    return emb


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        x = (a.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class MAE(nn.Module):
    """The masked autoencoder; parameters keep PyTorch's default
    initialisation apart from the fixed sine-cosine position tables."""

    def __init__(self, norm_pix_loss, img=IMG, patch=P, chans=C, dim=DIM, depth=DEPTH, heads=HEADS,
                 ddim=DDIM, ddepth=DDEPTH, dheads=DHEADS, mlp_ratio=4.0, dmlp_ratio=4.0):
        super().__init__()
        grid = img // patch
        L = grid ** 2
        self.p, self.chans = patch, chans
        self.norm_pix_loss = norm_pix_loss
        self.patch_embed = PatchEmbed(chans, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, L + 1, dim), requires_grad=False)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.decoder_embed = nn.Linear(dim, ddim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, ddim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, L + 1, ddim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(ddim, dheads, dmlp_ratio) for _ in range(ddepth)])
        self.decoder_norm = nn.LayerNorm(ddim, eps=1e-6)
        self.decoder_pred = nn.Linear(ddim, patch * patch * chans)
        with torch.no_grad():
            self.pos_embed.copy_(torch.from_numpy(sincos_2d(dim, grid, True)).unsqueeze(0))
            self.decoder_pos_embed.copy_(torch.from_numpy(sincos_2d(ddim, grid, True)).unsqueeze(0))

    def patchify(self, imgs):
        p, c = self.p, self.chans
        h = w = imgs.shape[2] // p
        x = imgs.reshape(imgs.shape[0], c, h, p, w, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(imgs.shape[0], h * w, p ** 2 * c)

    def unpatchify(self, x):
        p, c = self.p, self.chans
        h = int(x.shape[1] ** 0.5)
        x = x.reshape(x.shape[0], h, h, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, h * p, h * p)

    def random_masking(self, x, ratio, noise):
        n, l, d = x.shape
        keep = int(l * (1 - ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, d))
        mask = torch.ones([n, l])
        mask[:, :keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return x_masked, mask, ids_restore, ids_keep

    def forward_encoder(self, x, ratio, noise):
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore, ids_keep = self.random_masking(x, ratio, noise)
        cls = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls.expand(x.shape[0], -1, -1), x), dim=1)
        for b in self.blocks:
            x = b(x)
        return self.norm(x), mask, ids_restore, ids_keep

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1)
        x = x + self.decoder_pos_embed
        for b in self.decoder_blocks:
            x = b(x)
        x = self.decoder_pred(self.decoder_norm(x))
        return x[:, 1:, :]

    def forward_loss(self, imgs, pred, mask):
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs, ratio, noise):
        latent, mask, ids_restore, ids_keep = self.forward_encoder(imgs, ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask, ids_restore, ids_keep


def f32(a):
    return torch.tensor(np.asarray(a, dtype=np.float32), dtype=torch.float64)


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        if a.dtype == np.int64:
            dt, raw = "I64", a.astype("<i8").tobytes()
        else:
            dt, raw = "F32", a.astype("<f4").tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def randomize(model):
    """Random values everywhere (not the reference's ones and zeros for
    LayerNorm), so every parameter's gradient is exercised."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.2) + (1.0 if "norm" in name and name.endswith("weight") else 0.0))


def main():
    torch.manual_seed(5)
    rng = np.random.default_rng(55)
    torch.set_default_dtype(torch.float64)
    model = MAE(norm_pix_loss=False)
    randomize(model)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(f32(p.numpy()))
    imgs = f32(rng.normal(size=(2, C, IMG, IMG)))
    noise = f32(rng.random(size=(2, (IMG // P) ** 2)))
    patches = f32(rng.normal(size=(2, (IMG // P) ** 2, P * P * C)))
    out = {"in.imgs": imgs.numpy(), "in.noise": noise.numpy(), "in.patches": patches.numpy(),
           "out.patchify": model.patchify(imgs).numpy(), "out.unpatchify": model.unpatchify(patches).numpy(),
           "out.sincos": sincos_2d(DIM, IMG // P, True)}
    for name, p in model.named_parameters():
        out["param." + name] = p.detach().numpy()

    loss, pred, mask, ids_restore, ids_keep = model(imgs, RATIO, noise)
    out["out.loss"] = loss.detach().numpy().reshape(())
    out["out.pred"] = pred.detach().numpy()
    out["out.mask"] = mask.numpy()
    out["out.ids_restore"] = ids_restore.numpy().astype(np.int64)
    out["out.ids_keep"] = ids_keep.numpy().astype(np.int64)

    model.norm_pix_loss = True
    loss, _, _, _, _ = model(imgs, RATIO, noise)
    loss.backward()
    out["out.loss_normpix"] = loss.detach().numpy().reshape(())
    for name, p in model.named_parameters():
        if p.requires_grad:
            out["grad." + name] = p.grad.numpy()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    write_safetensors(OUT, out)
    print("wrote", OUT, "loss", float(out["out.loss"]), "normpix", float(out["out.loss_normpix"]))


if __name__ == "__main__":
    main()
