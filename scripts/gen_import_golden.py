#!/usr/bin/python3
"""Writes the fixtures of `sslzoo import` (weights/ckptimport/testdata/):
small models saved in the real checkpoint layout of each project, and the
features PyTorch computes from them.

Run with Debian's torch 1.13 (the pyenv python3 has none):

    /usr/bin/python3 scripts/gen_import_golden.py [--out weights/ckptimport/testdata]

or `go test ./weights/ckptimport -update`, which runs this script.

The models are the projects' own structures at reduced size: torchvision's
ResNet blocks (through gen_parity.py's width-scaled ResNet, whose keys are
torchvision's), timm-named ViTs and Hugging Face BERT modules (gen_parity.py
and gen_hf_bert.py, as timm and transformers are not installed), wrapped
and saved as each project does. What each file mirrors, and the source
file it follows:

  torchvision_resnet18.pth      plain state_dict of a resnet18 (width 1/16),
                                fc included; num_batches_tracked removed as
                                in torchvision's older releases.
                                (torchvision/models/resnet.py)
  moco_v2_800ep_pretrain.pth.tar  {epoch, arch, state_dict, optimizer}, the
                                DDP-wrapped MoCo of moco/builder.py (mlp=True:
                                encoder_q/encoder_k ResNet-50 with an MLP fc,
                                queue, queue_ptr) after one SGD step, saved in
                                the legacy (pre-1.6) format; encoder_q's conv1
                                and layer1.0.conv1 are views into one storage
                                at offsets. (facebookresearch/moco main_moco.py)
  moco_v3_r50.pth.tar           {epoch, arch, state_dict, optimizer, scaler} of
                                MoCo_ResNet: base_encoder, momentum_encoder with
                                their fc projector MLPs, predictor.
                                (facebookresearch/moco-v3 moco/builder.py)
  moco_v3_vit.pth.tar           MoCo_ViT with a width-24 ViT of 12 heads, 2D
                                sin-cos position table, 3-layer head MLPs.
                                (moco-v3 vits.py, moco/builder.py)
  swav_800ep_pretrain.pth.tar   SwAV's ResNet-50 (ConstantPad2d(1) then a 7x7
                                conv with padding 2), projection_head and
                                prototypes, DDP "module." keys.
                                (facebookresearch/swav src/resnet50.py)
  dino_vit_backbone.pth         a backbone-only DINO ViT (width 32, 4 heads,
                                patch 8) stored as bfloat16 (to test that
                                dtype; DINO's own files are float32).
                                (facebookresearch/dino vision_transformer.py)
  dino_full_checkpoint.pth      {student, teacher, optimizer, epoch, args,
                                dino_loss, fp16_scaler}: MultiCropWrapper
                                models (backbone + DINOHead with weight norm),
                                the student under DDP, teacher != student,
                                AdamW state after a step, argparse.Namespace
                                args. (dino main_dino.py)
  mae_pretrain_checkpoint.pth   {model, optimizer, epoch, scaler, args}:
                                MaskedAutoencoderViT (encoder width 16, 2
                                heads, decoder, mask_token); blocks.0.attn.qkv
                                .weight is a transposed view and pos_embed a
                                view at an offset. (facebookresearch/mae
                                models_mae.py, util/misc.py save_model)
  solo_learn/byol-ep=0.ckpt     a Lightning checkpoint of a solo-learn BYOL
  solo_learn/args.json          on CIFAR: backbone / momentum_backbone ResNet-18
                                whose conv1 is solo-learn's 3x3, stride 1,
                                padding 2, no max pool; projector, predictor,
                                classifier; loops, callbacks, optimizer_states,
                                lr_schedulers, and hyper_parameters holding an
                                AttributeDict with an OmegaConf DictConfig.
                                omegaconf and Lightning are not installed, so
                                those two are stand-in classes registered under
                                the real module names: the pickle names the
                                same globals with the same opcodes.
                                (vturrisi/solo-learn solo/methods/base.py)
  hf_bert/pytorch_model.bin     a BertForPreTraining state_dict (encoder with
  hf_bert/config.json           pooler under "bert.", tied MLM decoder,
                                seq_relationship, the legacy position_ids
                                buffer as an expanded int64 view), float16.

  evil_*.pth                    pickles that name os.system, posix.system,
                                builtins.eval and subprocess.Popen (torch.save
                                of objects whose __reduce__ returns them, and
                                one written by hand with a protocol-0 GLOBAL
                                "os system" + REDUCE): they must be refused.
  huge_storage*.pth             a zip and a legacy file whose storage declares
                                2^40 float elements while the file holds 16
                                bytes: refused before any allocation.

  weights/torchpickle/testdata/ (for the reader itself): one dict of
  tensors of every dtype and view kind (offset, transposed, strided,
  expanded, scalar, empty, Parameter) and of plain data (ints past 64 bits,
  str, bytes, bytearray, tuple, set, frozenset, argparse.Namespace), saved
  with torch.save as zip at pickle protocols 1, 2, 4, 5 and legacy at 1 and
  2; the plain data alone with pickle.dump at protocols 0 to 5; and the
  expected values (expected.safetensors, contiguous; expected.json).

  inputs.safetensors            image [2, 3, 32, 32]; BERT input_ids,
                                attention_mask, token_type_ids [2, 16].
  expected.safetensors          per fixture: the backbone's features, computed
                                in float64 from the stored (rounded) weights in
                                eval mode: ResNet pooled features before fc,
                                ViT class token after the final LayerNorm,
                                BERT last_hidden_state.
  fixtures.json                 per fixture: file, --format, --heads, which
                                input, the configuration Python built, and
                                groups the import must report as dropped.
"""

import argparse
import collections
import copy
import io
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_hf_bert as hf  # noqa: E402  (Hugging Face BERT modules)
import gen_parity as gp  # noqa: E402  (width-scaled torchvision ResNet, timm-named ViT)

IMG = 32


class DDP(nn.Module):
    """What DistributedDataParallel adds to a state_dict: the "module." prefix."""

    def __init__(self, m):
        super().__init__()
        self.module = m


def resnet(depth, width, seed, num_classes=0, stem="imagenet"):
    torch.manual_seed(seed)
    m = gp.make_resnet(depth, width=width, stem=stem, num_classes=num_classes)
    gp.perturb_norms(m, torch.Generator().manual_seed(seed + 1))
    return m


def vit(dim, depth, heads, seed, patch=8):
    torch.manual_seed(seed)
    m = gp.VisionTransformer(img_size=IMG, patch=patch, in_chans=3, dim=dim, depth=depth, heads=heads)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        m.cls_token.copy_(0.5 * torch.randn(m.cls_token.shape, generator=gen))
        m.pos_embed.copy_(0.5 * torch.randn(m.pos_embed.shape, generator=gen))
    gp.perturb_norms(m, gen)
    return m


def perturb(m, seed, scale=0.05):
    """A different copy (momentum encoder, teacher): features must differ."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return m


def resnet_features(m, x):
    r = copy.deepcopy(m).double().eval()
    r.fc = nn.Identity()
    with torch.no_grad():
        return r(x.double())


def vit_features(m, x):
    r = copy.deepcopy(m).double().eval()
    r.head = nn.Identity()
    with torch.no_grad():
        return r(x.double())


def build_mlp(num_layers, input_dim, mlp_dim, output_dim, last_bn=True):
    """MoCo v3's projector/predictor (moco-v3 moco/builder.py _build_mlp)."""
    layers = []
    for i in range(num_layers):
        d1 = input_dim if i == 0 else mlp_dim
        d2 = output_dim if i == num_layers - 1 else mlp_dim
        layers.append(nn.Linear(d1, d2, bias=False))
        if i < num_layers - 1:
            layers += [nn.BatchNorm1d(d2), nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(nn.BatchNorm1d(d2, affine=False))
    return nn.Sequential(*layers)


def sincos_pos_embed(dim, grid, temperature=10000.0):
    """A fixed 2D sin-cos table with a zero class-token row (MoCo v3's)."""
    w, h = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij")
    q = dim // 4
    omega = 1.0 / temperature ** (torch.arange(q, dtype=torch.float32) / q)
    ow = w.flatten()[:, None] * omega[None]
    oh = h.flatten()[:, None] * omega[None]
    table = torch.cat([ow.sin(), ow.cos(), oh.sin(), oh.cos()], dim=1)[None]
    return torch.cat([torch.zeros(1, 1, dim), table], dim=1)


def sgd_step(model, params, x, loss_fn):
    opt = torch.optim.SGD(params, lr=0.03, momentum=0.9, weight_decay=1e-4)
    model.train()
    loss_fn(x).backward()
    opt.step()
    opt.zero_grad()
    model.eval()
    return opt


def adamw_step(model, params, x, loss_fn):
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.04)
    model.train()
    loss_fn(x).backward()
    opt.step()
    opt.zero_grad()
    model.eval()
    return opt


def view_into(params, seed, pad=5):
    """Makes the parameters views into one shared storage at offsets."""
    total = sum(p.numel() + pad for p in params) + pad
    flat = torch.randn(total, generator=torch.Generator().manual_seed(seed))
    off = pad
    for p in params:
        n = p.numel()
        v = flat[off:off + n].view(p.shape)
        with torch.no_grad():
            v.copy_(p)
        p.data = v
        off += n + pad


SCALER = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 0}


# ------------------------------------------------------------------- fixtures


def fx_torchvision(out, x):
    m = resnet(18, 1 / 16, seed=10, num_classes=10)
    sd = collections.OrderedDict((k, v) for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked"))
    torch.save(sd, os.path.join(out, "torchvision_resnet18.pth"))
    return resnet_features(m, x), dict(Depth=18, Stem="imagenet", Width=1 / 16, InChannels=3), ["fc.* (2 tensors)"]


class MoCoV2(nn.Module):
    """moco/builder.py MoCo with mlp=True."""

    def __init__(self, base, dim, K):
        super().__init__()
        self.encoder_q = base(dim)
        self.encoder_k = base(dim)
        dim_mlp = self.encoder_q.fc.weight.shape[1]
        self.encoder_q.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(), self.encoder_q.fc)
        self.encoder_k.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(), self.encoder_k.fc)
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            pk.data.copy_(pq.data)
            pk.requires_grad = False
        self.register_buffer("queue", nn.functional.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))


def fx_moco_v2(out, x):
    model = DDP(MoCoV2(lambda d: resnet(50, 1 / 32, seed=20, num_classes=d), dim=8, K=16))
    q = model.module.encoder_q
    # One training step: encoder_q moves away from encoder_k, BatchNorm
    # counts a batch, SGD keeps momentum buffers.
    opt = sgd_step(model, model.parameters(), x, lambda x: q(x).square().mean())
    gp.perturb_norms(q, torch.Generator().manual_seed(21))
    view_into([q.conv1.weight, q.layer1[0].conv1.weight], seed=22)
    ckpt = {"epoch": 800, "arch": "resnet50", "state_dict": model.state_dict(), "optimizer": opt.state_dict()}
    torch.save(ckpt, os.path.join(out, "moco_v2_800ep_pretrain.pth.tar"), _use_new_zipfile_serialization=False)
    drops = ["module.encoder_q.fc.* (4 tensors)", "module.encoder_k.*", "module.queue", "module.queue_ptr",
             'checkpoint["optimizer"]', 'checkpoint["epoch"]', 'checkpoint["arch"]']
    return resnet_features(q, x), dict(Depth=50, Stem="imagenet", Width=1 / 32), drops


class MoCoV3(nn.Module):
    """moco-v3 moco/builder.py MoCo_ResNet / MoCo_ViT."""

    def __init__(self, base, momentum, head_attr, layers, dim=8, mlp_dim=16):
        super().__init__()
        self.base_encoder, self.momentum_encoder = base, momentum
        hidden = getattr(base, "feature_dim", None) or base.cls_token.shape[-1]
        setattr(self.base_encoder, head_attr, build_mlp(layers, hidden, mlp_dim, dim))
        setattr(self.momentum_encoder, head_attr, build_mlp(layers, hidden, mlp_dim, dim))
        self.predictor = build_mlp(2, dim, mlp_dim, dim, head_attr == "head")


def fx_moco_v3_r50(out, x):
    base = resnet(50, 1 / 32, seed=30, num_classes=16)
    mom = perturb(copy.deepcopy(base), 31)
    model = DDP(MoCoV3(base, mom, "fc", 2))
    ckpt = {"epoch": 1000, "arch": "resnet50", "state_dict": model.state_dict(),
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.6, "weight_decay": 1e-6, "momentum": 0.9, "params": [0, 1]}]},
            "scaler": dict(SCALER)}
    torch.save(ckpt, os.path.join(out, "moco_v3_r50.pth.tar"))
    drops = ["module.base_encoder.fc.*", "module.momentum_encoder.*", "module.predictor.*", 'checkpoint["scaler"]']
    return resnet_features(base, x), dict(Depth=50, Stem="imagenet", Width=1 / 32), drops


def fx_moco_v3_vit(out, x):
    base = vit(24, 2, 12, seed=40)
    with torch.no_grad():
        base.pos_embed.copy_(sincos_pos_embed(24, IMG // 8))
    mom = perturb(copy.deepcopy(base), 41)
    model = DDP(MoCoV3(base, mom, "head", 3))
    ckpt = {"epoch": 300, "arch": "vit_small", "state_dict": model.state_dict(),
            "optimizer": {"state": {}, "param_groups": [{"lr": 1.5e-4, "weight_decay": 0.1, "params": [0]}]},
            "scaler": dict(SCALER)}
    torch.save(ckpt, os.path.join(out, "moco_v3_vit.pth.tar"))
    drops = ["module.base_encoder.head.*", "module.momentum_encoder.*", "module.predictor.*"]
    return vit_features(base, x), dict(Dim=24, Depth=2, Heads=12, PatchSize=8, ImageSize=IMG, MLPRatio=4, Pool="cls"), drops


class SwAVResNet(nn.Module):
    """swav src/resnet50.py ResNet: zero padding layer, 7x7 conv with
    padding 2, torchvision blocks, projection head, prototypes."""

    def __init__(self, width, seed, hidden=16, out_dim=8, prototypes=12):
        super().__init__()
        body = resnet(50, width, seed=seed)
        self.padding = nn.ConstantPad2d(1, 0.0)
        self.conv1 = nn.Conv2d(3, body.conv1.out_channels, kernel_size=7, stride=2, padding=2, bias=False)
        with torch.no_grad():
            self.conv1.weight.copy_(body.conv1.weight)
        self.bn1, self.relu, self.maxpool = body.bn1, nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        self.layer1, self.layer2, self.layer3, self.layer4 = body.layer1, body.layer2, body.layer3, body.layer4
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        feat = body.feature_dim
        self.projection_head = nn.Sequential(nn.Linear(feat, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))
        self.prototypes = nn.Linear(out_dim, prototypes, bias=False)

    def forward_backbone(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.padding(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def fx_swav(out, x):
    m = SwAVResNet(1 / 32, seed=50)
    torch.save(DDP(m).state_dict(), os.path.join(out, "swav_800ep_pretrain.pth.tar"))
    r = copy.deepcopy(m).double().eval()
    with torch.no_grad():
        feats = r.forward_backbone(x.double())
    return feats, dict(Depth=50, Stem="imagenet", Width=1 / 32), ["module.projection_head.*", "module.prototypes.weight"]


def fx_dino_backbone(out, x):
    m = vit(32, 2, 4, seed=60)
    sd = collections.OrderedDict((k, v.bfloat16()) for k, v in m.state_dict().items())
    torch.save(sd, os.path.join(out, "dino_vit_backbone.pth"))
    m.load_state_dict({k: v.float() for k, v in sd.items()})
    return vit_features(m, x), dict(Dim=32, Depth=2, Heads=4, PatchSize=8, ImageSize=IMG), []


class DINOHead(nn.Module):
    """dino vision_transformer.py DINOHead (3 layers, weight-normed last layer)."""

    def __init__(self, in_dim, out_dim=24, hidden=16, bottleneck=8):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, bottleneck))
        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)


class MultiCropWrapper(nn.Module):
    """dino utils.py MultiCropWrapper: backbone + head."""

    def __init__(self, backbone, head):
        super().__init__()
        backbone.head = nn.Identity()
        self.backbone, self.head = backbone, head


def fx_dino_full(out, x):
    student = DDP(MultiCropWrapper(vit(16, 2, 2, seed=70), DINOHead(16)))
    teacher = MultiCropWrapper(perturb(copy.deepcopy(student.module.backbone), 71, 0.2), DINOHead(16))
    opt = adamw_step(student, student.parameters(), x, lambda x: student.module.backbone(x).square().mean())
    args = argparse.Namespace(arch="vit_small", patch_size=8, out_dim=24, norm_last_layer=True,
                              momentum_teacher=0.996, use_fp16=True, lr=0.0005, global_crops_scale=(0.4, 1.0),
                              local_crops_number=8, data_path="/path/to/imagenet/train", output_dir=".")
    dino_loss = {"center": torch.zeros(1, 24)}
    ckpt = {"student": student.state_dict(), "teacher": teacher.state_dict(), "optimizer": opt.state_dict(),
            "epoch": 100, "args": args, "dino_loss": collections.OrderedDict(dino_loss), "fp16_scaler": dict(SCALER)}
    torch.save(ckpt, os.path.join(out, "dino_full_checkpoint.pth"))
    drops = ["head.*", 'checkpoint["student"]', 'checkpoint["optimizer"]', 'checkpoint["args"]', 'checkpoint["dino_loss"]']
    return vit_features(teacher.backbone, x), dict(Dim=16, Depth=2, Heads=2), drops


class MAE(nn.Module):
    """mae models_mae.py MaskedAutoencoderViT (encoder + decoder)."""

    def __init__(self, enc, dec_dim=8, dec_heads=2, patch=8):
        super().__init__()
        dim = enc.cls_token.shape[-1]
        n = (IMG // patch) ** 2
        self.patch_embed, self.cls_token = enc.patch_embed, enc.cls_token
        self.pos_embed = nn.Parameter(enc.pos_embed.detach().clone(), requires_grad=False)
        self.blocks, self.norm = enc.blocks, enc.norm
        self.decoder_embed = nn.Linear(dim, dec_dim)
        self.mask_token = nn.Parameter(0.02 * torch.randn(1, 1, dec_dim))
        self.decoder_pos_embed = nn.Parameter(torch.randn(1, n + 1, dec_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([gp.Block(dec_dim, dec_heads, 4.0)])
        self.decoder_norm = nn.LayerNorm(dec_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(dec_dim, patch * patch * 3)

    def forward_encoder(self, x):
        """forward_encoder with mask_ratio 0: every patch is kept."""
        x, _ = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:, :]
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


def fx_mae(out, x):
    m = MAE(vit(16, 2, 2, seed=80))
    opt = adamw_step(m, [p for p in m.parameters() if p.requires_grad], x, lambda x: m.forward_encoder(x).square().mean())
    qkv = m.blocks[0].attn.qkv.weight
    qkv.data = qkv.detach().t().contiguous().t()  # same values, column-major strides
    assert not qkv.is_contiguous()
    view_into([m.pos_embed], seed=81, pad=11)
    args = argparse.Namespace(model="mae_vit_base_patch16", input_size=IMG, mask_ratio=0.75, norm_pix_loss=True,
                              epochs=400, blr=1.5e-4, accum_iter=1)
    ckpt = {"model": m.state_dict(), "optimizer": opt.state_dict(), "epoch": 399, "scaler": dict(SCALER), "args": args}
    torch.save(ckpt, os.path.join(out, "mae_pretrain_checkpoint.pth"))
    r = copy.deepcopy(m).double().eval()
    with torch.no_grad():
        feats = r.forward_encoder(x.double())[:, 0]
    drops = ["decoder_embed.*", "mask_token", "decoder_pos_embed", "decoder_blocks.*", "decoder_norm.*", "decoder_pred.*",
             'checkpoint["optimizer"]', 'checkpoint["args"]']
    return feats, dict(Dim=16, Depth=2, Heads=2, PatchSize=8, ImageSize=IMG), drops


def standin(module, name, base=object, **attrs):
    """A class that pickles as module.name (the real package is not installed)."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    cls = type(name, (base,), dict(attrs))
    cls.__module__, cls.__qualname__ = module, name
    setattr(sys.modules[module], name, cls)
    return cls


class SoloBYOL(nn.Module):
    """The modules of a solo-learn BYOL (solo/methods/byol.py, base.py)."""

    def __init__(self, backbone, feat, proj=16, out=8, classes=10):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(feat, classes)
        self.momentum_backbone = perturb(copy.deepcopy(backbone), 91)
        self.projector = nn.Sequential(nn.Linear(feat, proj), nn.BatchNorm1d(proj), nn.ReLU(), nn.Linear(proj, out))
        self.momentum_projector = copy.deepcopy(self.projector)
        self.predictor = nn.Sequential(nn.Linear(out, proj), nn.BatchNorm1d(proj), nn.ReLU(), nn.Linear(proj, out))


def fx_solo(out, x):
    bb = resnet(18, 1 / 16, seed=90)
    # solo/methods/base.py for cifar10/cifar100: a 3x3, stride 1, padding 2
    # conv1 and no max pool (solo-learn hard-codes 64 channels; torchvision's
    # width, scaled down here with the rest of the network).
    w0 = bb.conv1.out_channels
    torch.manual_seed(92)
    bb.conv1 = nn.Conv2d(3, w0, kernel_size=3, stride=1, padding=2, bias=False)
    bb.maxpool = nn.Identity()
    bb.fc = nn.Identity()
    method = SoloBYOL(bb, bb.feature_dim)

    DictConfig = standin("omegaconf.dictconfig", "DictConfig")
    ContainerMetadata = standin("omegaconf.base", "ContainerMetadata")
    AnyNode = standin("omegaconf.nodes", "AnyNode")
    AttributeDict = standin("pytorch_lightning.utilities.parsing", "AttributeDict", dict)
    import typing

    def node(v):
        n = AnyNode()
        n.__dict__.update(_val=v, _parent=None)
        return n

    meta = ContainerMetadata()
    meta.__dict__.update(ref_type=typing.Any, object_type=dict, optional=True, key=None, flags={}, key_type=typing.Any,
                         element_type=typing.Any, resolver_cache=collections.defaultdict(dict))
    cfg = DictConfig()
    cfg.__dict__.update(_metadata=meta, _parent=None, _content={"method": node("byol"), "name": node("byol-cifar10")})
    hparams = AttributeDict(cfg=cfg)

    ckpt = {
        "epoch": 0, "global_step": 195, "pytorch-lightning_version": "1.9.5",
        "state_dict": method.state_dict(),
        "loops": {"fit_loop": {"state_dict": {}, "epoch_loop.state_dict": {"_batches_that_stepped": 195},
                               "epoch_progress": {"total": {"ready": 1, "started": 1, "processed": 1, "completed": 0}}}},
        "callbacks": {"LearningRateMonitor": {}, "ModelCheckpoint{'monitor': None, 'mode': 'min'}": {
            "monitor": None, "best_model_score": None, "best_model_path": "", "kth_value": torch.tensor(float("inf")),
            "dirpath": "trained_models/byol/abc123", "best_k_models": {}, "last_model_path": ""}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1.0, "momentum": 0.9, "weight_decay": 1e-5, "eta": 0.02,
                                                              "clip_lr": True, "exclude_bias_n_norm": True, "params": [0, 1, 2]}]}],
        "lr_schedulers": [{"warmup_epochs": 10, "max_epochs": 1000, "warmup_start_lr": 0.003, "eta_min": 0.0,
                           "base_lrs": [1.0], "last_epoch": 1, "_step_count": 2, "_last_lr": [0.1]}],
        "hparams_name": "cfg",
        "hyper_parameters": hparams,
    }
    d = os.path.join(out, "solo_learn")
    os.makedirs(d, exist_ok=True)
    torch.save(ckpt, os.path.join(d, "byol-ep=0.ckpt"))
    with open(os.path.join(d, "args.json"), "w") as f:
        json.dump({"name": "byol-cifar10", "method": "byol", "backbone": {"name": "resnet18", "kwargs": {}},
                   "data": {"dataset": "cifar10", "num_classes": 10}, "max_epochs": 1000}, f, indent=2)
        f.write("\n")
    drops = ["classifier.*", "momentum_backbone.*", "projector.*", "momentum_projector.*", "predictor.*",
             'checkpoint["hyper_parameters"]', 'checkpoint["callbacks"]']
    return resnet_features(bb, x), dict(Depth=18, Stem="cifar", Width=1 / 16, StemPadding=2), drops


class BertPreTrainingHeads(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.predictions = hf.BertLMPredictionHead(c)
        self.seq_relationship = nn.Linear(c.hidden_size, 2)


class BertForPreTraining(nn.Module):
    """transformers BertForPreTraining's module tree: bert (with pooler),
    cls.predictions (decoder tied to the word embeddings), cls.seq_relationship."""

    def __init__(self, c):
        super().__init__()
        self.bert = hf.BertModel(c, add_pooling_layer=True)
        self.cls = BertPreTrainingHeads(c)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight


def fx_bert(out, inputs):
    c = hf.Cfg()
    torch.manual_seed(100)
    m = BertForPreTraining(c).eval()
    hf.randomize(m, torch.Generator().manual_seed(101))
    m.half()  # tied parameters stay shared (converted in place)
    assert m.cls.predictions.decoder.weight.data_ptr() == m.bert.embeddings.word_embeddings.weight.data_ptr()
    sd = m.state_dict()
    sd["bert.embeddings.position_ids"] = torch.arange(c.max_position_embeddings).expand((1, -1))
    d = os.path.join(out, "hf_bert")
    os.makedirs(d, exist_ok=True)
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(c.to_json("BertForPreTraining"))
    ref = copy.deepcopy(m.bert).double().eval()
    with torch.no_grad():
        h, _ = ref(*inputs)
    cfg = dict(VocabSize=c.vocab_size, Hidden=c.hidden_size, Layers=c.num_hidden_layers, Heads=c.num_attention_heads,
               Intermediate=c.intermediate_size, MaxPositions=c.max_position_embeddings)
    drops = ["bert.pooler.*", "cls.* (9 tensors)", "bert.embeddings.position_ids"]
    return h, cfg, drops


# ------------------------------------------------------------ hostile files


class Reduce:
    """An object whose pickle calls fn(*args) on load."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def write_zip(path, pkl, records=()):
    """A torch.save-shaped zip: archive/data.pkl, archive/data/<key>, version."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        for name, data in records:
            z.writestr("archive/data/" + name, data)
        z.writestr("archive/version", b"3\n")


class StorageRef:
    def __init__(self, numel):
        self.numel = numel


class TorchPickler(pickle.Pickler):
    """Pickles StorageRef as torch's storage persistent id (zip or legacy)."""

    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            pid = ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
            return pid + (None,) if self.legacy else pid
        return None


def huge_tensor(numel):
    return Reduce(torch._utils._rebuild_tensor_v2, StorageRef(numel), 0, (numel,), (1,), False, collections.OrderedDict())


def write_hostile(out):
    payload = "echo pwned > /tmp/sslzoo-import-pwned"
    sd = {"conv1.weight": torch.ones(2)}
    torch.save({"state_dict": sd, "x": Reduce(os.system, payload)}, os.path.join(out, "evil_posix_system.pth"))
    torch.save({"state_dict": sd, "x": Reduce(eval, "__import__('os').system('%s')" % payload)},
               os.path.join(out, "evil_builtins_eval.pth"), _use_new_zipfile_serialization=False)
    torch.save({"state_dict": sd, "x": Reduce(subprocess.Popen, ["sh", "-c", payload])}, os.path.join(out, "evil_subprocess_popen.pth"))
    # By hand, protocol 0: GLOBAL "os system", a tuple of one string, REDUCE.
    write_zip(os.path.join(out, "evil_os_system.pth"), b"cos\nsystem\n(S'" + payload.encode() + b"'\ntR.")

    big = 1 << 40
    buf = io.BytesIO()
    TorchPickler(buf, legacy=False).dump({"w": huge_tensor(big)})
    write_zip(os.path.join(out, "huge_storage.pth"), buf.getvalue(), [("0", b"\0" * 16)])
    with open(os.path.join(out, "huge_storage_legacy.pth"), "wb") as f:
        # torch/serialization.py _legacy_save: magic, protocol, sys_info,
        # the object, the storage keys, then each storage's count and bytes.
        for obj in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                                   "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(obj, f, protocol=2)
        TorchPickler(f, legacy=True).dump({"w": huge_tensor(big)})
        pickle.dump(["0"], f, protocol=2)
        f.write(struct.pack("<q", big) + b"\0" * 16)


# ------------------------------------------------------- torchpickle fixtures

ST_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
             torch.bool: "BOOL"}


def write_safetensors_any(path, tensors):
    """safetensors of any of ST_DTYPES (gen_parity's writer knows F32/I64)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def plain_json(v):
    """The expected decoding of a plain value, as JSON: ints beyond 2^53 and
    bytes as tagged strings, tuples/lists/sets as lists (sets sorted)."""
    if isinstance(v, bool) or v is None or isinstance(v, (float, str)):
        return v
    if isinstance(v, int):
        return v if abs(v) < 2 ** 53 else {"int": str(v)}
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [plain_json(e) for e in v]
    if isinstance(v, (set, frozenset)):
        return sorted(plain_json(e) for e in v)
    if isinstance(v, dict):
        return {k: plain_json(e) for k, e in v.items()}
    if isinstance(v, argparse.Namespace):
        return {"Namespace": plain_json(vars(v))}
    raise TypeError(type(v))


def write_torchpickle_fixtures(out):
    """Tensors of every dtype and view kind, and plain data, saved in both
    container formats at several pickle protocols."""
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(5)
    base = torch.randn(40, generator=g)
    tensors = collections.OrderedDict([
        ("f32", torch.randn(2, 3, generator=g)),
        ("offset", base[3:9].view(2, 3)),
        ("transposed", base[:12].view(3, 4).t()),
        ("strided", base.view(5, 8)[1:4, 1::3]),
        ("expanded_row", torch.arange(5).expand((1, -1))),
        ("f64", torch.randn(3, generator=g, dtype=torch.float64)),
        ("f16", torch.randn(2, 2, generator=g).half()),
        ("bf16", torch.randn(2, 2, generator=g).bfloat16()),
        ("i64", torch.tensor([-(2 ** 40), 0, 7])),
        ("i32", torch.tensor([-5, 6], dtype=torch.int32)),
        ("i16", torch.tensor([-300, 300], dtype=torch.int16)),
        ("i8", torch.tensor([-128, 127], dtype=torch.int8)),
        ("u8", torch.tensor([0, 255], dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(3.5)),
        ("empty", torch.zeros(0, 3)),
        ("param", nn.Parameter(torch.randn(4, generator=g))),
    ])
    plain = {"int": 7, "neg": -300, "big": 2 ** 70, "negbig": -(2 ** 65) + 3, "float": 0.25, "str": "h\u00e9llo \u2603",
             "bytes": b"\x00\xff", "bytearray": bytearray(b"ab"), "tuple": (1, "a"), "list": [1, [2, 3]],
             "set": {3, 4}, "frozenset": frozenset({5}), "none": None, "true": True, "false": False,
             "ns": argparse.Namespace(lr=0.5, arch="vit_small"), "nested": {"a": {"b": [None]}}}
    obj = {"tensors": tensors, "plain": plain}
    write_safetensors_any(os.path.join(out, "expected.safetensors"), {k: v.detach() for k, v in tensors.items()})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(plain_json(plain), f, indent=1, sort_keys=True)
        f.write("\n")
    for proto in (1, 2, 4, 5):
        torch.save(obj, os.path.join(out, f"zip_p{proto}.pth"), pickle_protocol=proto)
    for proto in (1, 2):
        torch.save(obj, os.path.join(out, f"legacy_p{proto}.pth"), pickle_protocol=proto, _use_new_zipfile_serialization=False)
    # Plain pickles (no tensors) at every protocol, the text opcodes of 0 included.
    for proto in range(6):
        with open(os.path.join(out, f"plain_p{proto}.pkl"), "wb") as f:
            pickle.dump(plain, f, protocol=proto)


# ----------------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    p.add_argument("--out", default=os.path.join(root, "weights", "ckptimport", "testdata"))
    p.add_argument("--pickle-out", default=os.path.join(root, "weights", "torchpickle", "testdata"))
    args = p.parse_args()
    out = args.out
    write_torchpickle_fixtures(args.pickle_out)
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, IMG, IMG, generator=gen)
    ids, mask, tt = hf.inputs()
    gp.write_safetensors(os.path.join(out, "inputs.safetensors"),
                         {"image": x, "input_ids": ids, "attention_mask": mask, "token_type_ids": tt})

    table = [
        # name, file, format, heads, input, fixture
        ("torchvision", "torchvision_resnet18.pth", "torchvision", 0, "image", fx_torchvision),
        ("moco-v2", "moco_v2_800ep_pretrain.pth.tar", "moco-v2", 0, "image", fx_moco_v2),
        ("moco-v3-r50", "moco_v3_r50.pth.tar", "moco-v3", 0, "image", fx_moco_v3_r50),
        ("moco-v3-vit", "moco_v3_vit.pth.tar", "moco-v3", 0, "image", fx_moco_v3_vit),
        ("swav", "swav_800ep_pretrain.pth.tar", "swav", 0, "image", fx_swav),
        ("dino-backbone", "dino_vit_backbone.pth", "dino", 4, "image", fx_dino_backbone),
        ("dino-full", "dino_full_checkpoint.pth", "dino", 2, "image", fx_dino_full),
        ("mae", "mae_pretrain_checkpoint.pth", "mae", 2, "image", fx_mae),
        ("solo-learn", "solo_learn/byol-ep=0.ckpt", "solo-learn", 0, "image", fx_solo),
        ("hf-bert", "hf_bert/pytorch_model.bin", "hf-bert", 0, "text", None),
    ]
    expected, manifest = {}, []
    for name, path, fmt, heads, inp, fn in table:
        if fn is None:
            feats, cfg, drops = fx_bert(out, (ids, mask, tt))
        else:
            feats, cfg, drops = fn(out, x)
        if not torch.isfinite(feats).all() or feats.abs().max() > 50:
            raise RuntimeError(f"{name}: features out of range ({feats.abs().max()})")
        expected[name] = feats.float()
        manifest.append({"name": name, "file": path, "format": fmt, "heads": heads, "input": inp,
                         "config": cfg, "dropped": drops})
    gp.write_safetensors(os.path.join(out, "expected.safetensors"), expected)
    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    write_hostile(out)
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(out) for fn in fns)
    print(f"wrote {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
