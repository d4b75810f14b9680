#!/usr/bin/python3
"""Golden fixtures for serve/kserve: KServe v2 inference requests laid out
as the Open Inference Protocol and its binary tensor data extension say,
with numpy doing the byte layout (little-endian, row-major; BOOL one byte;
BYTES a uint32 length before each element) and Python's json the JSON.

Run with Debian's python (numpy):
    /usr/bin/python3 scripts/gen_kserve_golden.py
It rewrites serve/kserve/testdata/: binary_request.bin (JSON header, then
the binary data), json_request.json (nested and flat "data"), and
golden.json, the manifest the Go test reads (the header length, and every
input's datatype, shape and values; FP16 values as their uint16 bits).
"""
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve", "kserve", "testdata")

rng = np.random.default_rng(13)
tensors = [
    ("pixels", "FP32", rng.standard_normal((2, 1, 2, 3)).astype(np.float32)),
    ("ids", "INT64", np.array([[101, 7592, -3], [2 ** 40, 0, 102]], dtype=np.int64)),
    ("mask", "BOOL", np.array([True, False, True])),
    ("raw", "UINT8", np.array([0, 1, 254, 255], dtype=np.uint8)),
    ("half", "FP16", np.array([1.5, -0.25, 65504.0], dtype=np.float16)),
    ("counts", "UINT32", np.array([[1, 2], [3, 4]], dtype=np.uint32)),
    ("words", "BYTES", np.array([b"light", b"", "colour \u00e9".encode()], dtype=object)),
]


def raw_bytes(dt, a):
    if dt == "BYTES":
        return b"".join(np.uint32(len(s)).astype("<u4").tobytes() + s for s in a.ravel())
    return a.astype(a.dtype.newbyteorder("<")).tobytes(order="C")


def values(dt, a):
    if dt == "FP16":
        return a.view(np.uint16).ravel().tolist()
    if dt == "BYTES":
        return [s.decode() for s in a.ravel()]
    if dt == "FP32":  # exact float32 values, written as float64 for JSON
        return [float(v) for v in a.ravel()]
    return a.ravel().tolist()


def main():
    os.makedirs(OUT, exist_ok=True)
    header = {
        "id": "golden-1",
        "inputs": [
            {"name": n, "shape": list(a.shape), "datatype": dt, "parameters": {"binary_data_size": len(raw_bytes(dt, a))}}
            for n, dt, a in tensors
        ],
        "outputs": [{"name": "embedding", "parameters": {"binary_data": True}}, {"name": "logits"}],
        "parameters": {"binary_data_output": False},
    }
    head = json.dumps(header).encode()
    with open(os.path.join(OUT, "binary_request.bin"), "wb") as f:
        f.write(head)
        for n, dt, a in tensors:
            f.write(raw_bytes(dt, a))

    # JSON data: nested as the tensor's shape for some inputs, flat for others.
    jin = []
    for i, (n, dt, a) in enumerate(tensors):
        if dt == "FP16":
            continue  # FP16 has no JSON form; it travels as binary data
        if dt == "BYTES":
            data = [s.decode() for s in a.ravel()]
        elif dt == "FP32":
            data = a.astype(np.float64).tolist() if i % 2 == 0 else [float(v) for v in a.ravel()]
        else:
            data = a.tolist() if i % 2 == 0 else a.ravel().tolist()
        jin.append({"name": n, "shape": list(a.shape), "datatype": dt, "data": data})
    with open(os.path.join(OUT, "json_request.json"), "w") as f:
        json.dump({"id": "golden-2", "inputs": jin}, f, indent=1)

    manifest = {
        "binary_header_length": len(head),
        "inputs": [{"name": n, "datatype": dt, "shape": list(a.shape), "values": values(dt, a)} for n, dt, a in tensors],
    }
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
