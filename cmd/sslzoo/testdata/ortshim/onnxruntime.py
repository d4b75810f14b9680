"""A stand-in for the few calls of onnxruntime's Python API that the README's
Python snippet makes, for TestReadmeSnippets only: Debian packages no
onnxruntime wheel. The graph's metadata and inputs come from the onnx
package; run() hands the input to `sslzoo embed --model F.onnx --input
x.npy`, so the graph runs on ONNX Runtime through sslzoo's binding, and the
snippet's own preprocessing is what the test checks.
"""
import os
import subprocess
import tempfile

import numpy as np
import onnx


class _ModelMeta:
    def __init__(self, props):
        self.custom_metadata_map = props


class _NodeArg:
    def __init__(self, name):
        self.name = name


class InferenceSession:
    def __init__(self, path):
        self._path = os.path.abspath(path)
        self._model = onnx.load(path)

    def get_modelmeta(self):
        return _ModelMeta({p.key: p.value for p in self._model.metadata_props})

    def get_inputs(self):
        weights = {t.name for t in self._model.graph.initializer}
        return [_NodeArg(i.name) for i in self._model.graph.input if i.name not in weights]

    def run(self, output_names, feeds):
        if output_names is not None or len(feeds) != 1:
            raise NotImplementedError("the stand-in runs one input to every output")
        (x,) = feeds.values()
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
            np.save(src, x)
            subprocess.run([os.environ["SSLZOO_CLI"], "embed", "--model", self._path, "--input", src, "--out", dst, "--engine", "ort"],
                           check=True, stdout=subprocess.DEVNULL)
            return [np.load(dst)]
