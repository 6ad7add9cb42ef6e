"""Issue 15's promise at the edges: for every registered variant (dropkit._registry.VARIANTS), a
sample of edge arguments gives the same bits on every available SIMD target and on the NumPy
reference (docs/rng.md sections 4-5, 9, 12-14, 17 say what each edge gives).

The inputs hold the edge values of the dtype (signed zeros, infinities, NaN, the largest finite,
the smallest normal and subnormal numbers); the parameters run to the ends of their admissible
ranges: rates of 1e-300 (a threshold rounding to 0), 2^-33 (the last rate rounding to t = 0 or 1),
1 - 2^-53 and 1; a subnormal and the largest binary32 standard deviation; concrete logits of
+-3e38 and temperatures of 1e-30, 1e300 and +inf.
"""
import math

import numpy as np
import pytest

import dropkit
from dropkit._registry import VARIANTS

DTYPES = [np.float16, np.float32, np.float64]
RATES = (1e-300, 2.0 ** -33, 0.5, 1.0 - 2.0 ** -53, 1.0)
EDGES = {
    "bernoulli": [{"rate": r} for r in RATES],
    "alpha": [{"rate": r} for r in RATES],
    "gaussian": [{"rate": r} for r in RATES[:-1]],  # 1 is refused (infinite variance)
    "additive": [{"stddev": s} for s in (5e-324, 1e-45, 1.0, float(np.finfo(np.float32).max))],
    "concrete": [{"logit": lg, "temperature": t} for lg, t in
                 ((0.0, 0.1), (-3e38, 1e300), (-3e38, math.inf), (30.0, math.inf), (-800.0, 1e-30),
                  (5.0, 1e-30), (36.0, 0.5))],
    "block": [{"rate": r} for r in (1e-9, 0.5, 1.0)],
}


def _x(shape, dtype):
    f = np.finfo(dtype)
    edge = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, f.max, -f.max, f.tiny, -f.tiny,
            f.smallest_subnormal, 3.0, -2.5]
    n = math.prod(shape)
    with np.errstate(over="ignore"):
        return np.resize(np.array(edge, dtype=dtype), n).reshape(shape)


def _cases(v, shape):
    base = v.params(shape, 0.3)
    for edge in EDGES[v.family]:
        p = dict(base, **edge)
        if "rate" in base and np.ndim(base["rate"]):  # a rate array: the edge rates along its axis
            p["rate"] = np.resize(np.array(RATES), np.shape(base["rate"]))
        yield p


def _run(v, f, a, x, p, **kw):
    if f is v.backward and v.backward_needs_x:
        dx, extra = f(a, x, **p, seed=2**64 - 1, offset=2**40 + 3, **kw)
        return dx, extra
    return f(a, **p, seed=2**64 - 1, offset=2**40 + 3, **kw), None


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(VARIANTS))
def test_edge_arguments_same_bits_on_every_target_and_backend(name, dtype):
    v = VARIANTS[name]
    x = _x(v.shape(2048), dtype)
    prev = dropkit.simd_target()
    try:
        for p in _cases(v, x.shape):
            for f in (v.forward, v.backward):
                ref, ref_extra = _run(v, f, x, x, p, backend="numpy")
                for target in dropkit.available_simd_targets():
                    dropkit.set_simd_target(target)
                    got, extra = _run(v, f, x, x, p)
                    what = f"{name} {f.__name__} {p} on {target}"
                    assert got.dtype == x.dtype, what
                    np.testing.assert_array_equal(_bits(got), _bits(ref), err_msg=what)
                    if ref_extra is not None:
                        assert (extra == ref_extra) or (math.isnan(extra) and math.isnan(ref_extra)), what
    finally:
        dropkit.set_simd_target(prev)
