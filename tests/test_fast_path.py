"""The compiled fast path of every variant (``_core.variant_fast``, ``rates_fast``, ``concrete_fast``)
against the general path and the NumPy reference.

The fast path computes its per-call constants in C++ (thresholds, scales, Gaussian sigma, alpha
constants, concrete constants, position strides); the general path takes them from
``dropkit._params`` and the reference from the same module through its own kernels. A wrong
constant, stride or span rule in either shows up as a bit difference here. Each case first checks
that the fast path really took the call (it returns None when it declines), so that the comparison
is never the general path against itself.
"""
import math

import numpy as np
import pytest

import dropkit
from dropkit import _core

TWO64 = 1 << 64
DTYPES = [np.float16, np.float32, np.float64]


def _x(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3).astype(dtype)


def _strided_copy(a):
    """The same values in a non-contiguous view: the fast path declines it, the general path copies."""
    big = np.empty(a.shape + (2,), dtype=a.dtype)
    big[..., 0] = a
    v = big[..., 0]
    assert not v.flags.c_contiguous or v.size <= 1
    return v


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


SCALAR_CASES = [
    # (variant function, fast kind, noise_shape, shape, rate, offset)
    (dropkit.dropout_nd, 0, None, (3, 5, 7), 0.3, 0),
    (dropkit.dropout_nd, 0, (3, 5, 1), (3, 5, 7), 0.3, 11),
    (dropkit.dropout_nd, 0, (1, None, 1, 1), (2, 4, 6, 6), 0.7, 5),
    (dropkit.dropout_nd, 0, [None, 1], (33, 9), 1e-9, 0),
    (dropkit.gaussian_dropout, 1, None, (4, 37), 0.4, 3),
    (dropkit.gaussian_dropout, 1, (4, 1), (4, 37), 0.9999, 0),
    (dropkit.alpha_dropout, 2, None, (5, 40), 0.2, 1),
    (dropkit.alpha_dropout, 2, (1, 40), (5, 40), 0.5, 0),
    (dropkit.feature_alpha_dropout, 4, None, (3, 4, 5, 6), 0.25, 7),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("f, kind, ns, shape, rate, offset", SCALAR_CASES)
def test_scalar_fast_path_matches_general_path_and_reference(f, kind, ns, shape, rate, offset, dtype):
    x = _x(shape, dtype)
    kw = dict(seed=2**64 - 3, offset=offset)
    if f is not dropkit.feature_alpha_dropout:
        kw["noise_shape"] = ns
    assert _core.variant_fast(kind, x, rate, kw["seed"], offset, ns, None) is not None  # it is taken
    fast = f(x, rate, **kw)
    general = f(_strided_copy(x), rate, **kw)
    ref = f(x, rate, backend="numpy", **kw)
    _same(fast, general)
    _same(fast, ref)


BACKWARDS = [
    (dropkit.dropout_nd_backward, 0, (2, 1, 9)),
    (dropkit.gaussian_dropout_backward, 1, (2, 1, 9)),
    (dropkit.alpha_dropout_backward, 3, (2, 1, 9)),
    (dropkit.feature_alpha_dropout_backward, 5, None),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("f, kind, ns", BACKWARDS)
def test_backward_fast_path_matches_general_path_and_reference(f, kind, ns, dtype):
    g = _x((2, 3, 9), dtype, seed=1)
    kw = dict(seed=9, offset=4)
    if f is not dropkit.feature_alpha_dropout_backward:
        kw["noise_shape"] = ns
    assert _core.variant_fast(kind, g, 0.35, 9, 4, ns, None) is not None
    _same(f(g, 0.35, **kw), f(_strided_copy(g), 0.35, **kw))
    _same(f(g, 0.35, **kw), f(g, 0.35, backend="numpy", **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rates_shape, ns", [((7,), None), ((5, 1), None), ((3, 5, 7), None), ((7,), (3, 1, 7)),
                                            ((1, 1, 7), (1, 5, 7))])
def test_rate_array_fast_path_matches_general_path_and_reference(rates_shape, ns, dtype):
    x = _x((3, 5, 7), dtype, seed=2)
    rng = np.random.default_rng(3)
    rates = rng.uniform(0, 1, rates_shape)
    rates.flat[0] = 1.0  # everything dropped there (scale 0)
    rates.flat[-1] = 0.0  # everything kept (threshold 0)
    assert _core.rates_fast(x, rates, 5, 100, ns, None) is not None
    fast = dropkit.dropout(x, rates, seed=5, offset=100, noise_shape=ns)
    _same(fast, dropkit.dropout(_strided_copy(x), rates, seed=5, offset=100, noise_shape=ns))
    _same(fast, dropkit.dropout(x, rates, seed=5, offset=100, noise_shape=ns, backend="numpy"))
    # a non-contiguous rate array (read through its strides) gives the same bits
    wide = np.empty(rates_shape + (3,))
    wide[..., 1] = rates
    assert _core.rates_fast(x, wide[..., 1], 5, 100, ns, None) is not None
    _same(fast, dropkit.dropout(x, wide[..., 1], seed=5, offset=100, noise_shape=ns))
    # and the backward with a rate array (docs/rng.md section 5: the same (seed, offset, rate))
    _same(dropkit.dropout_backward(x, rates, seed=5, offset=100, noise_shape=ns),
          dropkit.dropout_nd_backward(_strided_copy(x), rates, seed=5, offset=100, noise_shape=ns))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("logit, temperature", [(0.3, 0.1), (-3.0, 2.0), (5.0, 1e300), (-1e30, 0.5),
                                                (0.0, math.inf), (-800.0, 1e-30)])
def test_concrete_fast_path_matches_general_path_and_reference(logit, temperature, dtype):
    x = _x((6, 11), dtype, seed=4)
    assert _core.concrete_fast(x, logit, temperature, 8, 2, None) is not None
    kw = dict(temperature=temperature, seed=8, offset=2)
    fast = dropkit.concrete_dropout(x, logit, **kw)
    _same(fast, dropkit.concrete_dropout(_strided_copy(x), logit, **kw))
    _same(fast, dropkit.concrete_dropout(x, logit, backend="numpy", **kw))
    assert np.isfinite(fast.astype(np.float64)).all()


@pytest.mark.parametrize("target", dropkit.available_simd_targets())
def test_concrete_edges_same_bits_on_every_target_and_backend(target):
    """docs/rng.md 13.1-13.2: an infinite or huge temperature gives kappa = 1/2, never NaN, everywhere.

    The issue's case: temperature 1e300 (1/T underflows to 0 in binary32) with a logit beyond
    binary32, which gave 1.0 on the SIMD targets and NaN on the scalar one; that logit is now
    refused, and the admissible neighbours agree on every target.
    """
    x = np.ones(40, np.float32)
    with pytest.raises(ValueError, match="logit must be finite in binary32"):
        dropkit.concrete_dropout(x, -1e39, temperature=1e300, seed=1)
    prev = dropkit.simd_target()
    try:
        dropkit.set_simd_target(target)
        for logit, temp in [(-3e38, 1e300), (-3e38, math.inf), (30.0, math.inf), (0.0, 1e300)]:
            y = dropkit.concrete_dropout(x, logit, temperature=temp, seed=1)
            ref = dropkit.concrete_dropout(x, logit, temperature=temp, seed=1, backend="numpy")
            _same(y, ref)
            p = 1.0 / (1.0 + math.exp(-logit)) if logit > -700 else 0.0
            # kappa = 1/2 exactly, times scale32 = 1 / (1 - p) rounded to binary32
            np.testing.assert_array_equal(y, np.float32(0.5) * np.float32(1.0 / (1.0 - p)))
            dx, dlogit = dropkit.concrete_dropout_backward(x, x, logit, temperature=temp, seed=1)
            dx_ref, dlogit_ref = dropkit.concrete_dropout_backward(x, x, logit, temperature=temp, seed=1,
                                                                   backend="numpy")
            _same(dx, dx_ref)
            assert dlogit == dlogit_ref and math.isfinite(dlogit)
    finally:
        dropkit.set_simd_target(prev)


def test_fast_path_declines_what_the_general_path_must_judge():
    """Each case returns None, so that the general path raises its error (or takes its route)."""
    x = np.ones((4, 6), np.float32)
    vf = _core.variant_fast
    assert vf(0, x, 0.0, 1, 0, None, None) is None  # rate 0: the identity (x itself)
    assert vf(0, x, 1.0, 1, 0, None, None) is None  # rate 1
    assert vf(0, x, float("nan"), 1, 0, None, None) is None
    assert vf(0, x, np.float32(0.5), 1, 0, None, None) is None  # a NumPy scalar: converted there
    assert vf(0, x, 0.5, -1, 0, None, None) is None
    assert vf(0, x, 0.5, 1, TWO64 - 23, None, None) is None  # offset + 24 > 2**64
    assert vf(0, x, 0.5, 1, TWO64 - 24, None, None) is not None  # the last valid offset
    assert vf(0, x, 0.5, 1, TWO64 - 3, (4, 1), None) is None  # 4 noise positions from 2**64 - 3: no
    assert vf(0, x, 0.5, 1, TWO64 - 4, (4, 1), None) is not None  # ... from 2**64 - 4: the last ones
    assert vf(0, x, 0.5, 1, TWO64 - 1, (1, 1), None) is not None
    assert vf(0, x, 0.5, 1, TWO64, (1, 1), None) is None
    assert vf(0, x, 0.5, 1, 0, (4, 3), None) is None  # does not broadcast
    assert vf(0, x, 0.5, 1, 0, (4,), None) is None  # wrong length
    assert vf(0, x, 0.5, 1, 0, (4, True), None) is None  # bool entry
    assert vf(0, x, 0.5, 1, 0, None, np.empty((4, 6), np.float64)) is None  # out of another dtype
    assert vf(0, x, 0.5, 1, 0, None, x[:, :3].copy()) is None  # out of another shape
    assert vf(4, np.ones(5, np.float32), 0.5, 1, 0, None, None) is None  # feature-alpha needs 2-D
    assert vf(0, np.ones((0, 3), np.float32), 0.5, 1, 0, None, None) is None  # empty
    assert _core.rates_fast(x, np.zeros(6), 1, 0, None, None) is None  # every rate 0: the identity
    assert _core.rates_fast(x, np.full(6, 1.5), 1, 0, None, None) is None
    assert _core.rates_fast(x, np.full(6, np.nan), 1, 0, None, None) is None
    assert _core.rates_fast(x, np.full(6, 0.5, np.float32), 1, 0, None, None) is None
    assert _core.rates_fast(x, np.full(5, 0.5), 1, 0, None, None) is None
    assert _core.concrete_fast(x, 0.0, 0.0, 1, 0, None) is None
    assert _core.concrete_fast(x, 0.0, 1e-39, 1, 0, None) is None  # 1/T overflows binary32
    assert _core.concrete_fast(x, 1e39, 1.0, 1, 0, None) is None
    assert _core.concrete_fast(x, 40.0, 1.0, 1, 0, None) is None  # p rounds to 1


def test_fast_path_out_in_place_and_overlap():
    x = _x((8, 16), np.float32)
    expect = dropkit.gaussian_dropout(x, 0.3, seed=3, noise_shape=(8, 1))
    y = x.copy()
    assert dropkit.gaussian_dropout(y, 0.3, seed=3, noise_shape=(8, 1), out=y) is y
    _same(y, expect)
    # a partial overlap is declined by the fast path and handled (copied source) by the general one
    buf = np.concatenate([x.reshape(-1), np.zeros(16, np.float32)])
    src, dst = buf[16:].reshape(8, 16), buf[:-16].reshape(8, 16)
    src[...] = x
    assert _core.variant_fast(1, src, 0.3, 3, 0, (8, 1), dst) is None
    dropkit.gaussian_dropout(src, 0.3, seed=3, noise_shape=(8, 1), out=dst)
    _same(dst, expect)


def test_rate_caches_never_serve_stale_thresholds():
    """The compiled rate path keeps the last call's converted rates and threshold planes per thread
    (a hit needs the very same rates, phase and feature count). Alternating rate arrays that differ
    in one element, offsets of every phase mod 32, a refused array in between, and a strided array:
    every call must equal the reference."""
    x = _x((8, 96), np.float32, seed=5)  # 768 elements, period lcm(96, 32) = 96: the plane path
    rng = np.random.default_rng(6)
    r1 = rng.uniform(0, 0.9, 96)
    r2 = r1.copy()
    r2[37] = np.nextafter(r2[37], 1.0)  # one threshold may stay, the key must still differ
    r3 = r1.copy()
    r3[5] = 0.95
    bad = r1.copy()
    bad[3] = 1.5
    calls = [(r1, 0), (r1, 0), (r2, 0), (r1, 7), (r1, 7), (r3, 7), (r1, 31), (r1, 32)]
    for rates, offset in calls + calls[::-1]:
        got = dropkit.dropout(x, rates, seed=9, offset=offset)
        _same(got, dropkit.dropout(x, rates, seed=9, offset=offset, backend="numpy"))
        with pytest.raises(ValueError, match="rate"):
            dropkit.dropout(x, bad, seed=9, offset=offset)
    wide = np.empty((96, 2))
    wide[:, 0] = r3
    _same(dropkit.dropout(x, wide[:, 0], seed=9), dropkit.dropout(x, r3, seed=9, backend="numpy"))
    _same(dropkit.dropout(x, r1, seed=9), dropkit.dropout(x, r1, seed=9, backend="numpy"))
    # the same rates with another feature count (a different key) and the float64 scales
    x64 = _x((8, 48), np.float64, seed=7)
    _same(dropkit.dropout(x64, r1[:48], seed=9), dropkit.dropout(x64, r1[:48], seed=9, backend="numpy"))
    _same(dropkit.dropout(x, r1, seed=9), dropkit.dropout(x, r1, seed=9, backend="numpy"))
