#!/usr/bin/python3
"""Golden fixtures for data/augment: torchvision 0.14 functional ops on fixed inputs,
and the WebP files (with PIL's decoded pixels) for data's ImageFolder test.

Run with Debian's python (torch 1.13.1, torchvision 0.14.1):
    /usr/bin/python3 scripts/gen_augment_golden.py
It rewrites data/augment/testdata/golden.json, read by data/augment's tests,
and data/testdata/webp/.
Inputs are float32 CHW tensors in [0,1]; every case records the op, its
arguments, the input name and torchvision's output (float32 values written as
the shortest decimal that round-trips, so Go reads back the same float32).
"""
import json
import os

import torch
import torchvision
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

assert torchvision.__version__.startswith("0.14"), torchvision.__version__

torch.manual_seed(20261128)
inputs = {
    "rgb": torch.rand(3, 9, 11),
    "gray": torch.rand(1, 9, 11),
    # A smooth RGB ramp: resampling errors on it show interpolation, not noise.
    "ramp": torch.stack([
        torch.linspace(0, 1, 13)[None, :].expand(10, 13),
        torch.linspace(0, 1, 10)[:, None].expand(10, 13),
        torch.full((10, 13), 0.25),
    ]).contiguous(),
}
# Pure colours and greys exercise the HSV branches (max == r/g/b, max == min).
special = torch.tensor([
    [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1],
    [0.5, 0.5, 0.5], [0, 0, 0], [1, 1, 1], [0.2, 0.7, 0.7], [0.9, 0.1, 0.5], [0.3, 0.3, 0.8],
], dtype=torch.float32).t().reshape(3, 3, 4)
inputs["special"] = special.contiguous()

cases = []


def add(op, inp, args, out):
    cases.append({"op": op, "input": inp, "args": args,
                  "shape": list(out.shape), "out": out.flatten().tolist()})


for name in ["rgb", "gray", "ramp"]:
    x = inputs[name]
    add("hflip", name, {}, F.hflip(x))
    for b in [0.0, 0.6, 1.3]:
        add("brightness", name, {"factor": b}, F.adjust_brightness(x, b))
    for c in [0.4, 1.5]:
        add("contrast", name, {"factor": c}, F.adjust_contrast(x, c))
    for s in [0.3, 1.7]:
        add("saturation", name, {"factor": s}, F.adjust_saturation(x, s))
    for h in [-0.5, -0.27, 0.1, 0.5]:
        add("hue", name, {"factor": h}, F.adjust_hue(x, h))
    if x.shape[0] == 3:
        add("grayscale", name, {}, F.rgb_to_grayscale(x, num_output_channels=3))
    for k, sig in [(3, 0.7), (5, 1.3), (7, 2.0), ((5, 3), (1.1, 0.4))]:
        kk = [k, k] if isinstance(k, int) else list(k)
        ss = [sig, sig] if isinstance(sig, float) else list(sig)
        add("blur", name, {"kx": kk[0], "ky": kk[1], "sx": ss[0], "sy": ss[1]},
            F.gaussian_blur(x, kk, ss))
    add("solarize", name, {"threshold": 0.5}, F.solarize(x, 0.5))
    c = x.shape[0]
    mean, std = [0.485, 0.456, 0.406][:c], [0.229, 0.224, 0.225][:c]
    add("normalize", name, {"mean": mean, "std": std}, F.normalize(x, mean, std))
    H, W = x.shape[1:]
    # Boxes: identity size, pure upscale, pure downscale, mixed, 1-pixel box.
    for top, left, h, w, oh, ow in [
        (0, 0, H, W, H, W), (1, 2, 5, 6, 12, 10), (0, 0, H, W, 4, 5),
        (2, 1, 6, 8, 9, 4), (3, 3, 1, 1, 3, 3), (0, 1, H, W - 1, 2 * H, 2 * (W - 1)),
    ]:
        for aa in [True, False]:
            out = F.resized_crop(x, top, left, h, w, [oh, ow],
                                 interpolation=InterpolationMode.BILINEAR, antialias=aa)
            add("resized_crop", name, {"top": top, "left": left, "h": h, "w": w,
                                       "oh": oh, "ow": ow, "antialias": aa}, out)

# The same crops on PIL images (uint8), which is what torchvision pipelines
# over torchvision.datasets (FashionMNIST, CIFAR10, ImageFolder) resize:
# PIL's own antialiased bilinear filter, rounded to uint8. The Go side feeds
# the same uint8 values (as v/255) and compares after rounding to 1/255.
from PIL import Image as PILImage  # noqa: E402

for name in ["rgb", "gray", "ramp"]:
    x = inputs[name]
    u8 = (x * 255).round().to(torch.uint8)
    mode = "L" if x.shape[0] == 1 else "RGB"
    pil = PILImage.fromarray(u8[0].numpy() if mode == "L" else u8.permute(1, 2, 0).numpy(), mode)
    H, W = x.shape[1:]
    for top, left, h, w, oh, ow in [(1, 2, 5, 6, 12, 10), (0, 0, H, W, 4, 5), (2, 1, 6, 8, 9, 4), (0, 0, H, W, 32, 32)]:
        out = F.resized_crop(pil, top, left, h, w, [oh, ow], interpolation=InterpolationMode.BILINEAR)
        t = F.pil_to_tensor(out).float() / 255
        cases.append({"op": "pil_resized_crop", "input": name, "args": {"top": top, "left": left, "h": h, "w": w, "oh": oh, "ow": ow},
                      "in_u8": u8.flatten().tolist(), "shape": list(t.shape), "out": t.flatten().tolist()})

x = inputs["special"]
for h in [-0.5, -0.2, 0.0, 0.3, 0.5]:
    add("hue", "special", {"factor": h}, F.adjust_hue(x, h))
add("saturation", "special", {"factor": 0.5}, F.adjust_saturation(x, 0.5))
add("grayscale", "special", {}, F.rgb_to_grayscale(x, num_output_channels=3))

doc = {
    "torch": torch.__version__,
    "torchvision": torchvision.__version__,
    "inputs": {k: {"shape": list(v.shape), "data": v.flatten().tolist()} for k, v in inputs.items()},
    "cases": cases,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "augment", "testdata", "golden.json")
with open(path, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(cases)} cases to {os.path.normpath(path)}")

# WebP has no Go encoder, so the ImageFolder test reads files PIL wrote:
# data/testdata/webp/{lossless,lossy}.webp and the pixels PIL decodes from them.
from PIL import Image  # noqa: E402

wdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "testdata", "webp")
os.makedirs(wdir, exist_ok=True)
# Smooth content: lossy codecs subsample chroma, and decoders upsample it
# differently (libwebp interpolates, x/image/webp repeats), which only
# smooth images make comparable.
yy, xx = torch.meshgrid(torch.arange(12), torch.arange(16), indexing="ij")
arr = torch.stack([xx * 15, yy * 20, 60 + xx * 4 + yy * 6], dim=-1).to(torch.uint8).numpy()
pixels = {}
for name, kw in [("lossless", {"lossless": True}), ("lossy", {"quality": 90})]:
    p = os.path.join(wdir, name + ".webp")
    Image.fromarray(arr, "RGB").save(p, "WEBP", **kw)
    back = Image.open(p).convert("RGB")
    pixels[name] = {"size": list(back.size), "rgb": list(back.tobytes())}
with open(os.path.join(wdir, "pixels.json"), "w") as f:
    json.dump(pixels, f)
    f.write("\n")
print(f"wrote webp fixtures to {os.path.normpath(wdir)}")
