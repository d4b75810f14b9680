"""Writes the .npy fixtures of internal/npy's tests with NumPy itself.

Run from the repository root: /usr/bin/python3 internal/npy/testdata/gen.py
"""
import os

import numpy as np
from numpy.lib import format as npformat

here = os.path.dirname(os.path.abspath(__file__))


def save(name, a, version=None):
    with open(os.path.join(here, name), "wb") as f:
        npformat.write_array(f, a, version=version, allow_pickle=False)


save("f32_2x3.npy", np.arange(6, dtype=np.float32).reshape(2, 3) / 4 - 0.5)
save("f64_3.npy", np.array([1.5, -2.25, 1e300], dtype=np.float64))
save("i64_2x2.npy", np.array([[0, -1], [2**40, 7]], dtype=np.int64))
save("i32_scalar.npy", np.array(-42, dtype=np.int32))
save("f32_0x3.npy", np.zeros((0, 3), dtype=np.float32))
save("f32_v2.npy", np.arange(4, dtype=np.float32), version=(2, 0))
save("fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
save("bigendian.npy", np.arange(3, dtype=">f4"))
save("bool.npy", np.array([True, False]))
