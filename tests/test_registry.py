"""Every registered variant (dropkit._registry.VARIANTS), parametrised: a new entry is covered here
by being registered.

- parity: the C++ core against the NumPy reference, every dtype, SIMD target and thread count;
- the backward is the adjoint of the forward's derivative (central finite differences in float64:
  every variant is linear in x for fixed noise, affine for alpha, so the difference quotient is
  exact up to rounding);
- bad input: a bad rate, dtype, seed or ``out`` gives an error naming the argument, and nothing
  is written to ``out``.
"""
import numpy as np
import pytest

import dropkit
from dropkit._registry import VARIANTS

NAMES = list(VARIANTS)
DTYPES = [np.float16, np.float32, np.float64]


def _args(v, n, dtype, seed=0):
    shape = v.shape(n)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    return x, v.params(shape, 0.3)


def _backward(v, g, x, p, **kw):
    if v.backward_needs_x:
        return v.backward(g, x, **p, **kw)[0]
    return v.backward(g, **p, **kw)


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_core_matches_reference_on_every_target_and_thread_count(name, dtype):
    v = VARIANTS[name]
    x, p = _args(v, 1 << 16, dtype)  # at the parallel cut-off (2**16), so two threads really split it
    ref_y = v.forward(x, **p, seed=7, offset=3, backend="numpy")
    ref_g = _backward(v, x, x, p, seed=7, offset=3, backend="numpy")
    prev = (dropkit.simd_target(), dropkit.get_num_threads())
    try:
        for target in dropkit.available_simd_targets():
            for threads in (1, 2):
                dropkit.set_simd_target(target)
                dropkit.set_num_threads(threads)
                np.testing.assert_array_equal(_bits(v.forward(x, **p, seed=7, offset=3)), _bits(ref_y),
                                              err_msg=f"{name} forward, {target}, {threads} threads")
                np.testing.assert_array_equal(_bits(_backward(v, x, x, p, seed=7, offset=3)), _bits(ref_g),
                                              err_msg=f"{name} backward, {target}, {threads} threads")
    finally:
        dropkit.set_simd_target(prev[0])
        dropkit.set_num_threads(prev[1])


@pytest.mark.parametrize("name", NAMES)
def test_backward_is_the_adjoint_of_the_forward(name):
    v = VARIANTS[name]
    x, p = _args(v, 4096, np.float64, seed=1)
    rng = np.random.default_rng(2)
    d = rng.standard_normal(x.shape)
    g = rng.standard_normal(x.shape)
    h = 1e-3
    f = lambda u: v.forward(u, **p, seed=11, offset=5)  # noqa: E731
    jvp = (f(x + h * d) - f(x - h * d)) / (2 * h)  # exact for a map affine in x (up to rounding)
    vjp = _backward(v, g, x, p, seed=11, offset=5)
    lhs, rhs = float(np.sum(g * jvp)), float(np.sum(vjp * d))
    assert abs(lhs - rhs) <= 1e-8 * max(1.0, abs(lhs)), (lhs, rhs)
    if v.family == "additive":  # y = x + n: the Jacobian is the identity
        np.testing.assert_array_equal(vjp, g)
        assert np.any(f(x) != x)  # the noise did something
    else:
        assert np.any(vjp != g)  # the noise did something


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_names_the_argument_and_writes_nothing(name):
    v = VARIANTS[name]
    x, p = _args(v, 256, np.float32)
    out = np.full_like(x, 7.0)
    with pytest.raises(TypeError, match="seed"):
        v.forward(x, **p, seed="1", out=out)
    with pytest.raises(ValueError, match="seed"):
        v.forward(x, **p, seed=-1, out=out)
    with pytest.raises(ValueError, match="offset"):
        v.forward(x, **p, seed=1, offset=-1, out=out)
    with pytest.raises(TypeError, match="x"):
        v.forward(x.astype(np.int32), **p, seed=1)
    with pytest.raises(TypeError, match="out"):
        v.forward(x, **p, seed=1, out=out.astype(np.float64))
    if "rate" in p:
        bad = dict(p, rate=1.5 if np.ndim(p["rate"]) == 0 else np.full(np.shape(p["rate"]), 1.5))
        with pytest.raises(ValueError, match="rate"):
            v.forward(x, **bad, seed=1, out=out)
    if "stddev" in p:
        for value in (-0.5, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="stddev"):
                v.forward(x, **dict(p, stddev=value), seed=1, out=out)
    assert np.all(out == 7.0)
