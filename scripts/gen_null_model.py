#!/usr/bin/env python3
"""Write a "null" copy of an exported image model, to measure what serving
costs apart from the model.

The copy keeps the model's input, its output name and its metadata (so
`sslzoo serve` and `sslzoo bench serve` treat it as the same model: same
preprocessing, same request bodies), but its graph only flattens the image
and keeps the first D values as the "embedding" (D = the model's embedding
width, capped at the pixel count). ONNX Runtime runs that in microseconds,
so `sslzoo bench serve --model NULL.onnx` measures the server's and the load
client's own cost per request: HTTP, JSON or binary decoding and encoding,
batching, the kernel's loopback. The reciprocal of that rate bounds what any
model can reach through the same server on the same cores.

usage: bin/sslzoo export simclr-resnet18-fmnist --out model.onnx
       /usr/bin/python3 scripts/gen_null_model.py model.onnx null.onnx
       bin/sslzoo bench serve --model null.onnx --cell 3s --rounds 1 --soak 0s --concurrency 32
"""
import sys

import onnx
from onnx import TensorProto, helper


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    m = onnx.load(src, load_external_data=False)
    inp, out = m.graph.input[0], m.graph.output[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]]
    if not dims or any(d <= 0 for d in dims):
        sys.exit(f"{src}: input {inp.name} needs fixed non-batch dimensions, has {dims}")
    pixels = 1
    for d in dims:
        pixels *= d
    width = out.type.tensor_type.shape.dim[-1].dim_value or pixels
    width = min(width, pixels)
    consts = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [width]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    nodes = [
        helper.make_node("Flatten", [inp.name], ["flat"], axis=1),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], [out.name]),
    ]
    graph = helper.make_graph(nodes, "null", [inp], [out], initializer=consts)
    null = helper.make_model(graph, opset_imports=m.opset_import)
    null.ir_version = m.ir_version
    for p in m.metadata_props:
        null.metadata_props.add(key=p.key, value=p.value)
    onnx.checker.check_model(null)
    onnx.save(null, dst)
    print(f"wrote {dst}: {inp.name} -> first {width} pixels as {out.name}, metadata of {src}")


if __name__ == "__main__":
    main()
