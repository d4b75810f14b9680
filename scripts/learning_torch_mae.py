#!/usr/bin/python3
"""PyTorch twin of an `sslzoo train mae` run, for the proof-of-learning table.

    /usr/bin/python3 scripts/learning_torch_mae.py --like GO_OUT/final.safetensors --out DIR

reads the run spec (sslzoo.train) and the MAE config (sslzoo.method_config)
from the metadata of a final.safetensors that `sslzoo train mae` wrote, and
trains the same recipe in PyTorch:

  data          Fashion-MNIST or MNIST train split, first `limit` images, one
                channel, shuffled batches with the last partial batch dropped
  augmentation  RandomResizedCrop(size, scale (0.2, 1)), horizontal flip,
                normalisation (cmd/sslzoo/train_mae.go)
  model         the ViT of the run's --arch (zoo/arch.go sizes) with 4x4
                patches at the run's image size, and the MAE decoder, mask
                ratio and norm_pix_loss of the config; the module is the one
                scripts/gen_mae_golden.py checks the Go MAE against
  init          ssl.MAE.initWeights: Xavier-uniform Linear weights and patch
                projection (on its flattened view), zero Linear biases, class
                and mask tokens normal(0, 0.02), LayerNorms 1 and 0, fixed
                sine-cosine position tables; the patch bias keeps Conv2d's
                default
  optimizer     AdamW with the config's betas and weight decay on every
                parameter but biases and 1-D ones (ssl.NewMAE's groups), eps
                1e-8, the warmup-cosine rate of zoo/ssl/common.go per step

and writes DIR/final.safetensors with the encoder under the Go file's names
and shapes (checked against it) and the Go run's metadata, so that
`sslzoo eval knn --checkpoint DIR/final.safetensors` and `eval linear`
evaluate both encoders with one and the same protocol.

It prints one JSON line: engine, method, epochs, steps, seconds per epoch
(training only, data loading included), mean loss of each epoch, images per
second and the weights' path. The masks come from torch.rand, not from the
Go run's PCG: the same distribution, not the same draws. PyTorch runs with
--threads (2) intra-op threads and --workers (2) DataLoader processes, as the
Go loader decodes on goroutines beside the training step.
"""
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torchvision.transforms as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_mae_golden import MAE  # noqa: E402
from learning_torch import lr_at, twin_loader, twin_run, write_safetensors  # noqa: E402

# zoo/arch.go's ViTs as (dim, depth, heads); `sslzoo train` gives them 4x4
# patches at --size (cmd/sslzoo/train.go buildBackbone).
VIT_SIZES = {"vit-tiny": (192, 12, 3), "vit-small": (384, 12, 6), "vit-base": (768, 12, 12)}
PATCH = 4


def fail(msg):
    sys.exit("learning_torch_mae: " + msg)


def read_shapes(path):
    """Tensor name -> shape from a safetensors header."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def reference_init(model):
    """ssl.MAE.initWeights on the gen_mae_golden module."""
    with torch.no_grad():
        w = model.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(model.cls_token, std=0.02)
        nn.init.normal_(model.mask_token, std=0.02)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def encoder_state(model):
    """The ViT's tensors (timm names), without the decoder's."""
    return {k: v for k, v in model.state_dict().items()
            if not (k.startswith("decoder_") or k == "mask_token")}


def make_adamw(model, oc):
    if oc["Name"] != "adamw":
        fail("optimizer %r; the MAE recipe uses adamw" % oc["Name"])
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() <= 1 or name.endswith(".bias") else decay).append(p)
    betas = (oc.get("Beta1") or 0.9, oc.get("Beta2") or 0.999)  # nn.NewAdamW's defaults for 0
    return torch.optim.AdamW([{"params": decay, "weight_decay": oc["WeightDecay"]},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr_at(oc, 0), betas=betas, eps=1e-8)


def main():
    args, meta, spec, cfg = twin_run(__doc__, "mae")
    oc = cfg["Optim"]
    if spec["method"] != "mae":
        fail("%s is a %s run; scripts/learning_torch.py mirrors the ResNet methods" % (args.like, spec["method"]))
    if spec["arch"] not in VIT_SIZES or spec["in_channels"] != 1 or spec["size"] % PATCH:
        fail("only %s on one-channel data at a size divisible by %d is mirrored (got %s, %d channels, size %d)"
             % ("/".join(sorted(VIT_SIZES)), PATCH, spec["arch"], spec["in_channels"], spec["size"]))
    dim, depth, heads = VIT_SIZES[spec["arch"]]

    size, ratio = spec["size"], cfg["MaskRatio"]
    pipeline = T.Compose([T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomHorizontalFlip(0.5),
                          T.ToTensor(), T.Normalize(spec["mean"], spec["std"])])
    loader = twin_loader(args, spec, [pipeline], oc["TotalSteps"])

    model = MAE(cfg["NormPixLoss"], img=size, patch=PATCH, chans=1, dim=dim, depth=depth, heads=heads,
                ddim=cfg["DecoderDim"], ddepth=cfg["DecoderDepth"], dheads=cfg["DecoderHeads"],
                dmlp_ratio=cfg.get("DecoderMLPRatio") or 4.0)
    reference_init(model)
    want = read_shapes(args.like)
    got = {k: list(v.shape) for k, v in encoder_state(model).items()}
    if got != want:
        diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        fail("the torch encoder's tensors differ from %s's at %s" % (args.like, ", ".join(diff[:5])))
    model.train()
    opt = make_adamw(model, oc)
    patches = (size // PATCH) ** 2

    s, epoch_s, epoch_loss, seen = 0, [], [], 0
    for epoch in range(spec["epochs"]):
        t0, total, count = time.perf_counter(), 0.0, 0
        for (x,) in loader:
            for g in opt.param_groups:
                g["lr"] = lr_at(oc, s)
            loss = model(x, ratio, torch.rand(x.shape[0], patches))[0]
            if not math.isfinite(loss.item()):
                fail("loss %g at step %d" % (loss.item(), s))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            count += 1
            seen += x.shape[0]
            s += 1
        epoch_s.append(time.perf_counter() - t0)
        epoch_loss.append(total / max(count, 1))
        print("torch mae epoch %d/%d: loss %.4f, %.1fs" % (epoch + 1, spec["epochs"], epoch_loss[-1], epoch_s[-1]),
              file=sys.stderr)

    os.makedirs(args.out, exist_ok=True)
    md = dict(meta)
    md["sslzoo.steps"] = str(s)
    md["sslzoo.trained_by"] = "scripts/learning_torch_mae.py (torch %s)" % torch.__version__
    weights = os.path.join(args.out, "final.safetensors")
    write_safetensors(weights, encoder_state(model), md)
    print(json.dumps({"engine": "torch", "method": "mae", "epochs": spec["epochs"], "steps": s,
                      "epoch_s": epoch_s, "mean_epoch_s": sum(epoch_s) / len(epoch_s), "loss": epoch_loss,
                      "img_per_s": seen / sum(epoch_s), "weights": weights}))


if __name__ == "__main__":
    main()
