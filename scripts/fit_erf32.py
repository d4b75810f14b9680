#!/usr/bin/python3
"""Fit the rational erf approximation used by autograd/fastmath.go.

erf(x) ~ x * P(x^2) / Q(x^2) on 0 < x <= 4, with deg P = 6, deg Q = 5 and
Q(0) = 1. Linearised least squares (x*P - f*Q) weighted by 1/(f*Q_prev)
gives relative error; Lawson's reweighting pushes it toward minimax.
Prints the coefficients and the worst float32 error (in ulps of 1).
Needs only numpy: /usr/bin/python3 scripts/fit_erf32.py
"""
import math

import numpy as np

NP, NQ = 6, 5
xs = np.linspace(1e-4, 4.0, 20000)
f = np.array([math.erf(v) for v in xs])
t = xs * xs
w = np.ones_like(xs)
q_prev = np.ones_like(xs)
for _ in range(60):
    a = np.concatenate([xs[:, None] * t[:, None] ** np.arange(NP + 1)[None, :],
                        -f[:, None] * t[:, None] ** np.arange(1, NQ + 1)[None, :]], axis=1)
    s = np.sqrt(w) / (f * q_prev)
    c, *_ = np.linalg.lstsq(a * s[:, None], f * s, rcond=None)
    p, q = c[:NP + 1], np.concatenate([[1.0], c[NP + 1:]])
    q_prev = np.polyval(q[::-1], t)
    err = (xs * np.polyval(p[::-1], t) / q_prev - f) / f
    w = w * np.abs(err)
    w /= w.sum()
print("max relative error (float64):", np.max(np.abs(err)))
for i, v in enumerate(p):
    print(f"erfP{i} = {v!r}")
for i, v in enumerate(q[1:], 1):
    print(f"erfQ{i} = {v!r}")
y = np.minimum(xs * np.polyval(p[::-1], t) / q_prev, 1.0).astype(np.float32)
ref = f.astype(np.float32)
print("max float32 difference:", np.max(np.abs(y.astype(np.float64) - ref)))
