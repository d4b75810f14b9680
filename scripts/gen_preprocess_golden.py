#!/usr/bin/python3
"""Golden fixtures for data/preprocess: small image files in every format the
package reads, and what torchvision's eval transforms make of them.

Run with Debian's python (Pillow 9.4, torch 1.13.1, torchvision 0.14.1):
    /usr/bin/python3 scripts/gen_preprocess_golden.py
It rewrites data/preprocess/testdata/golden/ (images, expected tensors as
float32 .npy, and golden.json, the manifest the Go test reads).

Every case is: Image.open(file).convert(mode), then torchvision's
Resize(resize_size) or Resize(size), CenterCrop(size) when crop is "center",
ToTensor() (or, for scale != 1/255, the uint8 values times scale), and
Normalize(mean, std). The "native" cases use scale 1, mean 0, std 1 at the
image's own size, so their tensors are PIL's decoded, converted pixels
(0..255): the Go test checks its decoders against them, and feeds them back
in to judge resize and crop apart from decoding (JPEG decoders differ).
"""
import io
import json
import os

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image, features

assert torchvision.__version__.startswith("0.14"), torchvision.__version__
assert features.check("webp"), "this PIL has no WebP support"

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "preprocess", "testdata", "golden")
os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.remove(os.path.join(OUT, f))

rng = np.random.default_rng(20261130)
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def smooth_rgb(h, w):
    """A colour gradient with some noise: resampling errors show on it."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 128 + 100 * np.sin(x / 3.0) * np.cos(y / 4.0)
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def save(name, im, **kw):
    im.save(os.path.join(OUT, name), **kw)
    return name


images = []  # (file name, whether Go's decoder should reproduce PIL's pixels exactly)

# RGBA PNG with every kind of alpha, including colour behind alpha 0.
rgba = np.concatenate([smooth_rgb(30, 40), rng.integers(0, 256, (30, 40, 1), dtype=np.uint8)], -1)
rgba[::5, :, 3] = 0
rgba[1::5, :, 3] = 255
images.append((save("rgba.png", Image.fromarray(rgba, "RGBA")), True))
# Grey PNG at the size of a Fashion-MNIST image.
images.append((save("grey.png", Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), "L")), True))
# Grey + alpha.
la = np.stack([rng.integers(0, 256, (18, 24)), rng.integers(0, 256, (18, 24))], -1).astype(np.uint8)
images.append((save("la.png", Image.fromarray(la, "LA")), True))
# Small RGB PNG: resizing it to 16 enlarges.
images.append((save("small.png", Image.fromarray(smooth_rgb(12, 10), "RGB")), True))
# Palette PNG with a tRNS chunk.
pal = Image.fromarray(smooth_rgb(20, 20), "RGB").quantize(colors=50, dither=Image.Dither.NONE)
pal.info["transparency"] = 3
images.append((save("palette_trns.png", pal, transparency=3), True))
# Palette GIF with a transparent index that holds a bright colour.
gif = Image.fromarray(smooth_rgb(23, 37), "RGB").quantize(colors=64, dither=Image.Dither.NONE)
palette = gif.getpalette()
palette[3 * 5:3 * 5 + 3] = [250, 20, 200]
gif.putpalette(palette)
images.append((save("palette.gif", gif, transparency=5), True))


def gif_on_screen(src, dst, screen, offset):
    """Rewrites a one-frame GIF so that its frame sits at offset on a larger
    logical screen; PIL cannot write that itself."""
    b = bytearray(open(os.path.join(OUT, src), "rb").read())
    b[6:10] = screen[0].to_bytes(2, "little") + screen[1].to_bytes(2, "little")
    i = 13 + (3 << ((b[10] & 7) + 1) if b[10] & 0x80 else 0)
    while b[i] == 0x21:  # skip extensions
        i += 2
        while b[i]:
            i += 1 + b[i]
        i += 1
    assert b[i] == 0x2C, hex(b[i])
    b[i + 1:i + 5] = offset[0].to_bytes(2, "little") + offset[1].to_bytes(2, "little")
    with open(os.path.join(OUT, dst), "wb") as f:
        f.write(b)
    return dst


small_gif = Image.fromarray(smooth_rgb(8, 10), "RGB").quantize(colors=16, dither=Image.Dither.NONE)
save("frame.gif", small_gif, transparency=2)
images.append((gif_on_screen("frame.gif", "offset.gif", (14, 12), (3, 2)), True))
os.remove(os.path.join(OUT, "frame.gif"))
# JPEG: colour at 4:2:0 (PIL's default; even and odd sizes), 4:2:2, 4:4:4, and grey.
images.append((save("photo.jpg", Image.fromarray(smooth_rgb(36, 48), "RGB"), quality=85), False))
images.append((save("photo_odd.jpg", Image.fromarray(smooth_rgb(25, 37), "RGB"), quality=75), False))
images.append((save("photo422.jpg", Image.fromarray(smooth_rgb(20, 30), "RGB"), quality=90, subsampling=1), False))
images.append((save("photo444.jpg", Image.fromarray(smooth_rgb(17, 19), "RGB"), quality=90, subsampling=0), False))
images.append((save("grey.jpg", Image.fromarray(smooth_rgb(30, 20)[:, :, 0], "L"), quality=90), False))
# BMP: 24-bit at the model's size, and 8-bit palette.
images.append((save("rgb.bmp", Image.fromarray(smooth_rgb(16, 16), "RGB")), True))
images.append((save("palette.bmp", Image.fromarray(smooth_rgb(13, 19), "RGB").quantize(colors=40)), True))
# WebP: lossless with alpha, lossy with odd and even sizes, lossy with alpha.
images.append((save("lossless.webp", Image.fromarray(rgba[:22, :30], "RGBA"), lossless=True), True))
images.append((save("lossy.webp", Image.fromarray(smooth_rgb(25, 33), "RGB"), quality=80), True))
images.append((save("lossy_even.webp", Image.fromarray(smooth_rgb(24, 32), "RGB"), quality=60), True))
images.append((save("lossy_alpha.webp", Image.fromarray(rgba[:21, :27], "RGBA"), quality=70), True))
# TIFF.
images.append((save("rgb.tiff", Image.fromarray(smooth_rgb(14, 18), "RGB")), True))


def spec(channels, size, resize_size=0, crop="center", scale=1 / 255, mean=None, std=None, resize="bilinear"):
    c = 1 if channels == "L" else 3
    if mean is None:
        mean, std = (IMAGENET["mean"], IMAGENET["std"]) if c == 3 else ([0.5], [0.5])
    return {"layout": "NCHW", "channels": channels, "size": list(size), "resize_size": resize_size,
            "resize": resize, "crop": crop, "scale": scale, "mean": mean, "std": std}


def run(path, s):
    im = Image.open(path)
    im = im.convert(s["channels"])
    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[s["resize"]]
    ops = [T.Resize(s["resize_size"] or tuple(s["size"]), interpolation=mode)]
    if s["crop"] == "center":
        ops.append(T.CenterCrop(tuple(s["size"])))
    im = T.Compose(ops)(im)
    if s["scale"] == 1 / 255:
        x = T.ToTensor()(im)
    else:
        a = np.array(im, dtype=np.float32)
        x = torch.from_numpy(a.reshape(a.shape[0], a.shape[1], -1)).permute(2, 0, 1).contiguous() * s["scale"]
    x = T.Normalize(s["mean"], s["std"])(x)
    return x.numpy().astype(np.float32)


def write_npy(name, a):
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a, dtype="<f4"))
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(buf.getvalue())


cases = []
for file, exact in images:
    path = os.path.join(OUT, file)
    w, h = Image.open(path).size
    base = file.replace(".", "_")
    todo = [
        ("native_rgb", spec("RGB", (h, w), crop="none", scale=1, mean=[0, 0, 0], std=[1, 1, 1])),
        ("native_l", spec("L", (h, w), crop="none", scale=1, mean=[0], std=[1])),
        ("center", spec("RGB", (16, 16), resize_size=20)),
        ("center_l", spec("L", (16, 16), resize_size=18)),
    ]
    if file in ("rgba.png", "photo.jpg", "lossy.webp", "palette.gif", "small.png", "grey.png"):
        todo += [
            ("whole", spec("RGB", (20, 24), crop="none")),
            ("pad", spec("RGB", (12, 20), resize_size=12)),
            ("scale1", spec("RGB", (16, 16), resize_size=16, scale=1,
                            mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])),
            ("bicubic", spec("RGB", (16, 16), resize_size=20, resize="bicubic")),
            ("bicubic_l", spec("L", (14, 18), crop="none", resize="bicubic")),
        ]
    for name, s in todo:
        out = f"{base}.{name}.npy"
        write_npy(out, run(path, s))
        resized = s["resize_size"] > 0 or tuple(s["size"]) != (h, w)
        cases.append({"name": f"{file}/{name}", "image": file, "spec": s, "expected": out,
                      "resized": resized, "decoder_exact": exact})

# Geometry alone, on blank images: torchvision's Resize(int) output sizes,
# and where CenterCrop starts (negative: padding), found by cropping an
# image whose pixel values number its positions.
resize_sizes = []
for h, w, rs in [(375, 500, 256), (500, 375, 256), (30, 40, 20), (40, 30, 20), (7, 1000, 3), (1000, 7, 3),
                 (100, 100, 224), (299, 301, 224), (3, 7, 5), (481, 640, 224), (1, 1, 1)]:
    ow, oh = T.Resize(rs)(Image.new("L", (w, h))).size
    resize_sizes.append({"h": h, "w": w, "resize_size": rs, "out_h": oh, "out_w": ow})
crops = []
for h, w, ch, cw in [(26, 20, 16, 16), (10, 10, 3, 3), (11, 10, 4, 4), (13, 13, 4, 6), (12, 15, 12, 20),
                     (12, 16, 12, 20), (9, 9, 12, 11), (5, 8, 2, 3), (256, 341, 224, 224), (7, 7, 7, 7)]:
    pos = np.arange(1, h * w + 1, dtype=np.int32).reshape(h, w)
    out = np.array(T.CenterCrop((ch, cw))(Image.fromarray(pos, "I")))
    ys, xs = np.nonzero(out)
    first = out[ys[0], xs[0]] - 1  # the first real pixel in the crop, row-major
    top, left = first // w - ys[0], first % w - xs[0]
    crops.append({"h": h, "w": w, "crop_h": ch, "crop_w": cw, "top": int(top), "left": int(left)})

with open(os.path.join(OUT, "golden.json"), "w") as f:
    json.dump({"generator": "scripts/gen_preprocess_golden.py",
               "versions": {"torchvision": torchvision.__version__, "PIL": Image.__version__,
                            "libjpeg": features.version("jpg"), "libwebp": features.version("webp")},
               "resize_sizes": resize_sizes, "center_crops": crops, "cases": cases}, f, indent=1)
print(f"wrote {len(images)} images and {len(cases)} cases to {os.path.normpath(OUT)}")
