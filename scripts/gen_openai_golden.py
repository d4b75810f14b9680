#!/usr/bin/python3
"""Golden fixture for serve/openai: an embedding in OpenAI's base64 form,
written the way OpenAI's Python client reads it back
(numpy.frombuffer(base64.b64decode(s), dtype="float32"), little-endian),
and a PNG written by PIL as a data URL.

Run with Debian's python (numpy, Pillow):
    /usr/bin/python3 scripts/gen_openai_golden.py
It rewrites serve/openai/testdata/golden.json.
"""
import base64
import io
import json
import os

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve", "openai", "testdata")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    v = rng.standard_normal(16).astype("<f4")
    v[0], v[1] = 0.0, -1e-30
    png = io.BytesIO()
    Image.fromarray((rng.random((5, 7)) * 255).astype(np.uint8), mode="L").save(png, format="PNG")
    doc = {
        "values": [float(x) for x in v],
        "base64": base64.b64encode(v.tobytes()).decode(),
        "png_data_url": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
        "png_hex": png.getvalue().hex(),
    }
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
