"""The functional API of the dropout variants (dropkit.variants; docs/rng.md sections 8-15).

Expected values come from outside the code under test: standard dropout's own masks
(``dropout_mask``) for the positions of broadcast noise, the constants of docs/rng.md §14
recomputed here, finite differences for every backward, and statistics with fixed seeds and
5-sigma bounds. Backend parity compares ``backend="core"`` with ``backend="numpy"`` bit for bit
(the core runs its own kernel where ``dropkit._core`` has one, the reference otherwise).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dropkit
from _helpers import TWO64, bits
from dropkit import variants as dv
from dropkit.reference import _variants as V

DTYPES = [np.float16, np.float32, np.float64]
ALPHA = -1.7580993408473766


def xs(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(bits(a), bits(b))


# Every forward with its backward, called as f(x, **kw).
FORWARDS = {
    "dropout_nd": (dropkit.dropout_nd, dropkit.dropout_nd_backward, {"rate": 0.3}),
    "dropout_nd-rates": (dropkit.dropout_nd, dropkit.dropout_nd_backward,
                         {"rate": np.array([0.0, 0.2, 0.5, 0.7, 1.0, 0.25, 0.9])}),
    "gaussian": (dropkit.gaussian_dropout, dropkit.gaussian_dropout_backward, {"rate": 0.3}),
    "alpha": (dropkit.alpha_dropout, dropkit.alpha_dropout_backward, {"rate": 0.3}),
}


# ------------------------------------------------------------------------------------------
# Backend parity, threads and SIMD targets
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORWARDS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("noise_shape", [None, (None, 1, None), (1, 5, 1), (1, 1, 1)])
def test_backends_agree(name, dtype, noise_shape):
    fwd, bwd, kw = FORWARDS[name]
    x = xs((3, 5, 7), dtype)
    a = fwd(x, seed=11, offset=5, noise_shape=noise_shape, backend="core", **kw)
    b = fwd(x, seed=11, offset=5, noise_shape=noise_shape, backend="numpy", **kw)
    same_bits(a, b)
    ga = bwd(x, seed=11, offset=5, noise_shape=noise_shape, backend="core", **kw)
    gb = bwd(x, seed=11, offset=5, noise_shape=noise_shape, backend="numpy", **kw)
    same_bits(ga, gb)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backends_agree_feature_alpha_and_concrete(dtype):
    x = xs((4, 3, 5), dtype)
    same_bits(dropkit.feature_alpha_dropout(x, 0.4, seed=3, offset=2, backend="core"),
              dropkit.feature_alpha_dropout(x, 0.4, seed=3, offset=2, backend="numpy"))
    same_bits(dropkit.feature_alpha_dropout_backward(x, 0.4, seed=3, offset=2, backend="core"),
              dropkit.feature_alpha_dropout_backward(x, 0.4, seed=3, offset=2, backend="numpy"))
    same_bits(dropkit.concrete_dropout(x, 0.3, temperature=0.2, seed=3, offset=9, backend="core"),
              dropkit.concrete_dropout(x, 0.3, temperature=0.2, seed=3, offset=9, backend="numpy"))
    g = xs(x.shape, dtype, seed=1)
    dxa, dla = dropkit.concrete_dropout_backward(g, x, 0.3, temperature=0.2, seed=3, offset=9, backend="core")
    dxb, dlb = dropkit.concrete_dropout_backward(g, x, 0.3, temperature=0.2, seed=3, offset=9, backend="numpy")
    same_bits(dxa, dxb)
    assert dla == dlb  # the fixed summation order of §15


@pytest.mark.usefixtures("restore_runtime")
@pytest.mark.parametrize("name", ["dropout_nd", "gaussian", "alpha"])
def test_threads_and_simd_targets_agree(name):
    fwd, _, kw = FORWARDS[name]
    x = xs((70_000,), np.float32)  # above the core's parallel cutoff
    ns = None
    ref = fwd(x, seed=5, offset=3, noise_shape=ns, backend="core", **kw)
    for target in dropkit.available_simd_targets():
        for threads in (1, 2):
            dropkit.set_simd_target(target)
            dropkit.set_num_threads(threads)
            same_bits(fwd(x, seed=5, offset=3, noise_shape=ns, backend="core", **kw), ref)


# ------------------------------------------------------------------------------------------
# Positions of broadcast noise (§8.1) against standard dropout's masks
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise_shape", [(2, 3, 1), (None, 1, None), (1, 3, 4), (1, 1, 1), (2, 3, 4)])
def test_broadcast_noise_is_the_noise_arrays_mask(noise_shape):
    x = xs((2, 3, 4), np.float64) + 5.0  # no zeros among the inputs
    ns = tuple(s if n is None else n for n, s in zip(noise_shape, x.shape))
    keep = dropkit.dropout_mask(ns, 0.4, seed=21, offset=17)  # the noise array at offset + k
    y = dropkit.dropout_nd(x, 0.4, seed=21, offset=17, noise_shape=noise_shape)
    expected = np.where(np.broadcast_to(keep, x.shape), x * (1 / 0.6), 0.0)
    same_bits(y, expected)


def test_broadcast_gaussian_and_alpha_share_the_noise_element():
    x = xs((3, 4, 5), np.float32)
    m = dropkit.gaussian_dropout(np.ones((3, 1, 5), np.float32), 0.5, seed=2, offset=7)
    same_bits(dropkit.gaussian_dropout(x, 0.5, seed=2, offset=7, noise_shape=(None, 1, None)), x * m)
    keep = np.broadcast_to(dropkit.dropout_mask((3, 1, 5), 0.5, seed=2, offset=7), x.shape)
    a = 1 / math.sqrt((1 - 0.5) * (1 + 0.5 * ALPHA * ALPHA))
    b = -((a * ALPHA) * 0.5)
    expected = np.where(keep, (x * np.float32(a)) + np.float32(b), np.float32(a * ALPHA + b))
    same_bits(dropkit.alpha_dropout(x, 0.5, seed=2, offset=7, noise_shape=(3, 1, 5)), expected)


def test_noise_shape_x_shape_gives_dropout_bits():
    x = xs((4, 6), np.float32)
    expected = dropkit.dropout(x, 0.37, seed=9, offset=100)
    same_bits(dropkit.dropout_nd(x, 0.37, seed=9, offset=100, noise_shape=x.shape), expected)
    same_bits(dropkit.dropout_nd(x, 0.37, seed=9, offset=100, noise_shape=(None, None)), expected)
    # and the kernel of broadcast noise itself, with the default position strides
    out = np.empty_like(x)
    V.bernoulli_apply_nd(x, out, round(0.37 * 2**32), np.float32(1 / (1 - 0.37)), 9, 100, (6, 1))
    same_bits(out, expected)
    same_bits(dropkit.dropout_nd_backward(x, 0.37, seed=9, offset=100, noise_shape=x.shape),
              dropkit.dropout_backward(x, 0.37, seed=9, offset=100))


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("noise_shape", [None, (None, 1)])
@pytest.mark.parametrize("inverted", [True, False])
def test_constant_rate_array_gives_scalar_bits(backend, noise_shape, inverted):
    x = xs((40, 9), np.float32)
    for r in (0.1, 0.5, 0.73, 1.0):
        scalar = dropkit.dropout_nd(x, r, seed=4, offset=3, noise_shape=noise_shape, inverted=inverted,
                                    backend=backend)
        for rates in (np.full(9, r), np.full((40, 1), r), np.full((40, 9), r)):
            same_bits(dropkit.dropout_nd(x, rates, seed=4, offset=3, noise_shape=noise_shape,
                                         inverted=inverted, backend=backend), scalar)
        ev = dropkit.dropout_nd(x, np.full(9, r), seed=4, training=False, inverted=inverted, backend=backend)
        same_bits(ev, dropkit.dropout(x, r, seed=4, training=False, inverted=inverted))


def test_rate_array_elements_follow_their_own_rate():
    # Per element: the standard mask of that element's rate at its position (§9).
    x = xs((50, 4), np.float64) + 10.0
    rates = np.array([0.1, 0.5, 0.9, 0.3])
    y = dropkit.dropout_nd(x, rates, seed=8, offset=1)
    for j, r in enumerate(rates):
        keep = dropkit.dropout_mask(x.shape, r, seed=8, offset=1)[:, j]
        same_bits(y[:, j], np.where(keep, x[:, j] * (1 / (1 - r)), 0.0))


# ------------------------------------------------------------------------------------------
# Values against formulas written from the text
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_alpha_values_from_constants(dtype, rate):
    x = xs((1000,), dtype)
    q = ALPHA * ALPHA
    a = 1 / math.sqrt((1 - rate) * (1 + rate * q))
    b = -((a * ALPHA) * rate)
    fill = a * ALPHA + b
    keep = dropkit.dropout_mask(x.shape, rate, seed=6, offset=4)
    ct = dtype
    expected = np.where(keep, (x * ct(a)) + ct(b), ct(fill)).astype(dtype)
    same_bits(dropkit.alpha_dropout(x, rate, seed=6, offset=4), expected)
    g = xs((1000,), dtype, seed=2)
    same_bits(dropkit.alpha_dropout_backward(g, rate, seed=6, offset=4),
              np.where(keep, g * ct(a), ct(0)).astype(dtype))


def test_gaussian_multiplier_from_normals():
    x = xs((257,), np.float64)
    rate = 0.2
    sigma32 = np.float32(math.sqrt(rate / (1 - rate)))
    eps = V.normals(13, 40, x.size)
    m = (sigma32 * eps) + np.float32(1)
    same_bits(dropkit.gaussian_dropout(x, rate, seed=13, offset=40), x * m.astype(np.float64))


def test_concrete_values_close_to_the_paper_formula():
    x = xs((500,), np.float64)
    logit, temp = 0.4, 0.3
    u = V.uniforms(V.continuous_words(17, 3, x.size)).astype(np.float64)
    p = 1 / (1 + math.exp(-logit))
    z = 1 / (1 + np.exp(-(logit + np.log(u) - np.log1p(-u)) / temp))
    y = dropkit.concrete_dropout(x, logit, temperature=temp, seed=17, offset=3)
    np.testing.assert_allclose(y, x * (1 - z) / (1 - p), rtol=2e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------
# Finite-difference gradient checks (float64)
# ------------------------------------------------------------------------------------------


def _fd_check(f, x, grad_fn, w, h=1e-6):
    """Compare grad_fn(w) with the central difference of L(x) = sum(w * f(x)), element by element."""
    g = grad_fn(w)
    fd = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        fd.flat[i] = (np.sum(w * f(x + e)) - np.sum(w * f(x - e))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", list(FORWARDS) + ["feature_alpha"])
@pytest.mark.parametrize("noise_shape", [None, (None, 1, None)])
def test_backward_finite_differences(name, noise_shape):
    x = xs((3, 2, 7), np.float64)
    w = xs(x.shape, np.float64, seed=5)
    if name == "feature_alpha":
        def f(v):
            return dropkit.feature_alpha_dropout(v, 0.4, seed=2, offset=1)

        def grad(g):
            return dropkit.feature_alpha_dropout_backward(g, 0.4, seed=2, offset=1)
    else:
        fwd, bwd, kw = FORWARDS[name]

        def f(v):
            return fwd(v, seed=2, offset=1, noise_shape=noise_shape, **kw)

        def grad(g):
            return bwd(g, seed=2, offset=1, noise_shape=noise_shape, **kw)
    _fd_check(f, x, grad, w)


def test_concrete_backward_finite_differences():
    x = xs((4, 6), np.float64)
    w = xs(x.shape, np.float64, seed=3)
    logit, temp = 0.3, 0.5

    def loss(v, lg):
        return np.sum(w * dropkit.concrete_dropout(v, lg, temperature=temp, seed=12, offset=2))

    dx, dlogit = dropkit.concrete_dropout_backward(w, x, logit, temperature=temp, seed=12, offset=2)
    _fd_check(lambda v: dropkit.concrete_dropout(v, logit, temperature=temp, seed=12, offset=2), x,
              lambda g: dropkit.concrete_dropout_backward(g, x, logit, temperature=temp, seed=12, offset=2)[0], w)
    same_bits(dx, dropkit.concrete_dropout(w, logit, temperature=temp, seed=12, offset=2))
    # The multiplier is binary32 (theta rounded to binary32 too): a step of 1e-3 keeps the
    # rounding noise near 1e-5 relative, the truncation error (h^2/6 * f''') below it.
    h = 1e-3
    fd = (loss(x, logit + h) - loss(x, logit - h)) / (2 * h)
    assert abs(dlogit) > 0.05
    assert dlogit == pytest.approx(fd, rel=2e-3)


# ------------------------------------------------------------------------------------------
# Statistics (fixed seeds, 5-sigma bounds)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_gaussian_moments(rate):
    n = 1 << 18
    m = dropkit.gaussian_dropout(np.ones(n), rate, seed=int(rate * 100) + 1).astype(np.float64)
    var = rate / (1 - rate)
    sd = math.sqrt(var)
    eps = (m - 1) / sd
    assert abs(eps.mean()) < 5 / math.sqrt(n)
    assert abs(eps.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs(np.mean(eps**3)) < 5 * math.sqrt(15 / n)  # Var(eps^3) = 15
    assert abs(np.mean(eps**4) - 3) < 5 * math.sqrt(96 / n)  # Var(eps^4) = 105 - 9
    # the multiplier keeps the mean: E[y] = x
    x = 2.5
    y = dropkit.gaussian_dropout(np.full(n, x), rate, seed=77)
    assert abs(y.mean() - x) < 5 * x * sd / math.sqrt(n)


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_alpha_keeps_mean_zero_and_variance_one(rate):
    n = 1 << 18
    x = np.random.default_rng(31).standard_normal(n)
    y = dropkit.alpha_dropout(x, rate, seed=41)
    a = 1 / math.sqrt((1 - rate) * (1 + rate * ALPHA * ALPHA))
    b = -a * ALPHA * rate
    fill = a * ALPHA + b
    # fourth moment of y (kept: a x + b, x ~ N(0, 1); dropped: fill), for the variance's bound
    mu4 = (1 - rate) * (3 * a**4 + 6 * a**2 * b**2 + b**4) + rate * fill**4
    assert abs(y.mean()) < 5 / math.sqrt(n)
    assert abs(np.mean(y**2) - 1) < 5 * math.sqrt((mu4 - 1) / n)


def test_rate_array_keep_fractions_per_feature():
    rates = np.array([0.0, 0.05, 0.3, 0.5, 0.85, 1.0])
    n = 20_000
    y = dropkit.dropout_nd(np.ones((n, rates.size), np.float32), rates, seed=5)
    kept = (y != 0).mean(axis=0)
    for r, k in zip(rates, kept):
        if r in (0.0, 1.0):
            assert k == 1.0 - r
        else:
            assert abs(k - (1 - r)) < 5 * math.sqrt(r * (1 - r) / n)
    # kept elements carry their own scale
    for j, r in enumerate(rates[:-1]):
        col = y[:, j]
        assert (col[col != 0] == np.float32(1.0 / (1.0 - r))).all()


def test_spatial_channels_dropped_together():
    x = np.abs(xs((16, 8, 5, 5), np.float32)) + 1.0
    y = dropkit.dropout_nd(x, 0.5, seed=3, noise_shape=(None, None, 1, 1))
    z = (y == 0).reshape(16, 8, -1)
    assert (z.all(axis=2) | ~z.any(axis=2)).all()
    frac = z[:, :, 0].mean()
    assert abs(frac - 0.5) < 5 * math.sqrt(0.25 / 128)
    assert 0 < z[:, :, 0].sum() < 128


# ------------------------------------------------------------------------------------------
# Rate 0 and 1, empty arrays, evaluation mode, dtypes, out=
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_identity_cases_return_x(dtype):
    x = xs((3, 4), dtype)
    assert dropkit.dropout_nd(x, 0.0, seed=1, noise_shape=(None, 1)) is x
    assert dropkit.dropout_nd(x, np.zeros(4), seed=1) is x
    assert dropkit.dropout_nd(x, np.full(4, 0.5), seed=1, training=False) is x
    assert dropkit.dropout_nd_backward(x, 0.0, seed=1) is x
    for f in (dropkit.gaussian_dropout, dropkit.alpha_dropout):
        assert f(x, 0.0, seed=1) is x
        assert f(x, 0.5, seed=1, training=False) is x
    assert dropkit.gaussian_dropout_backward(x, 0.0, seed=1) is x
    assert dropkit.alpha_dropout_backward(x, 0.0, seed=1) is x
    assert dropkit.feature_alpha_dropout(x, 0.5, seed=1, training=False) is x
    assert dropkit.concrete_dropout(x, 0.0, temperature=0.1, seed=1, training=False) is x
    out = np.empty_like(x)
    assert dropkit.gaussian_dropout(x, 0.5, seed=1, training=False, out=out) is out
    same_bits(out, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rate_one(dtype):
    x = xs((5, 6), dtype)
    x[0, 0] = np.nan
    for y in (dropkit.dropout_nd(x, 1.0, seed=1, noise_shape=(None, 1)),
              dropkit.dropout_nd(x, np.ones(6), seed=1),
              dropkit.alpha_dropout(x, 1.0, seed=1),
              dropkit.alpha_dropout_backward(x, 1.0, seed=1),
              dropkit.feature_alpha_dropout(x, 1.0, seed=1)):
        assert y.dtype == dtype
        same_bits(y, np.zeros_like(x))  # +0.0 everywhere, NaN included
    ev = dropkit.dropout_nd(x, np.array([1.0, 0.5, 0, 0, 0, 0]), seed=1, training=False, inverted=False)
    same_bits(ev[:, 0], np.zeros(5, dtype))
    same_bits(ev[:, 1], (x[:, 1].astype(np.float64 if dtype == np.float64 else np.float32)
                         * (np.float64(0.5) if dtype == np.float64 else np.float32(0.5))).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_preserved(dtype):
    x = xs((4, 3, 2), dtype)
    for y in (dropkit.dropout_nd(x, 0.4, seed=1, noise_shape=(None, None, 1)),
              dropkit.dropout_nd(x, np.array([0.1, 0.6]), seed=1),
              dropkit.gaussian_dropout(x, 0.4, seed=1),
              dropkit.alpha_dropout(x, 0.4, seed=1),
              dropkit.feature_alpha_dropout(x, 0.4, seed=1),
              dropkit.concrete_dropout(x, 0.1, temperature=0.2, seed=1)):
        assert y.dtype == dtype and y.shape == x.shape


def test_empty_arrays():
    for shape in [(0,), (0, 3), (2, 0, 4)]:
        x = np.zeros(shape, np.float32)
        for y in (dropkit.dropout_nd(x, 0.4, seed=1), dropkit.dropout_nd(x, 0.4, seed=1, noise_shape=(1,) * len(shape)),
                  dropkit.gaussian_dropout(x, 0.4, seed=1), dropkit.alpha_dropout(x, 0.4, seed=1),
                  dropkit.concrete_dropout(x, 0.0, temperature=0.5, seed=1)):
            assert y.shape == shape and y.dtype == np.float32
        dx, dl = dropkit.concrete_dropout_backward(x, x, 0.0, temperature=0.5, seed=1, offset=TWO64)
        assert dx.shape == shape and dl == 0.0
    assert dropkit.gaussian_dropout(np.zeros(0), 0.4, seed=1, offset=TWO64).shape == (0,)


def test_out_and_in_place():
    x = xs((6, 5), np.float32)
    expected = dropkit.gaussian_dropout(x, 0.3, seed=2, noise_shape=(6, 1))
    out = np.empty_like(x)
    assert dropkit.gaussian_dropout(x, 0.3, seed=2, noise_shape=(6, 1), out=out) is out
    same_bits(out, expected)
    y = x.copy()
    assert dropkit.gaussian_dropout(y, 0.3, seed=2, noise_shape=(6, 1), out=y) is y
    same_bits(y, expected)
    # a non-contiguous input is read correctly
    big = xs((6, 10), np.float32)
    same_bits(dropkit.alpha_dropout(big[:, ::2], 0.3, seed=2), dropkit.alpha_dropout(big[:, ::2].copy(), 0.3, seed=2))


def test_offset_range_counts_noise_positions():
    x = np.ones((4, 1000), np.float32)
    y = dropkit.dropout_nd(x, 0.5, seed=1, offset=TWO64 - 4, noise_shape=(None, 1))  # 4 positions
    assert ((y == 0) | (y == 2)).all()
    with pytest.raises(ValueError, match="2\\*\\*64"):
        dropkit.dropout_nd(x, 0.5, seed=1, offset=TWO64 - 3, noise_shape=(None, 1))
    with pytest.raises(ValueError, match="2\\*\\*64"):
        dropkit.gaussian_dropout(x, 0.5, seed=1, offset=TWO64 - 3999)


# ------------------------------------------------------------------------------------------
# Bad input: clear errors, nothing written
# ------------------------------------------------------------------------------------------


BAD = [
    (dropkit.dropout_nd, {"rate": 1.5}, ValueError, r"rate must be in \[0, 1\], got 1.5"),
    (dropkit.dropout_nd, {"rate": np.array([0.1, -0.2, 0.3, 0.1])}, ValueError, r"got -0.2"),
    (dropkit.dropout_nd, {"rate": np.array([0.1, np.nan, 0.3, 0.1])}, ValueError, r"got nan"),
    (dropkit.dropout_nd, {"rate": np.full(3, 0.1)}, ValueError, r"rate of shape \(3,\) does not broadcast"),
    (dropkit.dropout_nd, {"rate": np.full((2, 3, 4), 0.1)}, ValueError, r"does not broadcast to x's shape"),
    (dropkit.dropout_nd, {"rate": np.array(["a"])}, ValueError, r"real number"),
    (dropkit.dropout_nd, {"rate": [0.5]}, ValueError, r"rate must be a real number in \[0, 1\], got \[0.5\]"),
    (dropkit.dropout_nd, {"rate": np.array([True])}, ValueError, r"dtype bool"),
    (dropkit.dropout_nd, {"rate": 0.5, "noise_shape": (3, 2)}, ValueError, r"noise_shape .* does not broadcast"),
    (dropkit.dropout_nd, {"rate": 0.5, "noise_shape": (3,)}, ValueError, r"noise_shape must have 2 entries"),
    (dropkit.dropout_nd, {"rate": 0.5, "noise_shape": (3, 1.5)}, TypeError, r"noise_shape entries"),
    (dropkit.dropout_nd, {"rate": 0.5, "noise_shape": 3}, TypeError, r"noise_shape must be None or a sequence"),
    (dropkit.dropout_nd, {"rate": 0.5, "training": 1}, TypeError, r"training must be a bool"),
    (dropkit.dropout_nd, {"rate": 0.5, "inverted": "yes"}, TypeError, r"inverted must be a bool"),
    (dropkit.gaussian_dropout, {"rate": 1.0}, ValueError, r"rate must be in \[0, 1\) for Gaussian dropout .*got 1.0"),
    (dropkit.gaussian_dropout, {"rate": -0.1}, ValueError, r"rate must be in \[0, 1\], got -0.1"),
    (dropkit.gaussian_dropout, {"rate": 0.5, "noise_shape": (1, 2)}, ValueError, r"does not broadcast"),
    (dropkit.alpha_dropout, {"rate": 2}, ValueError, r"got 2"),
    (dropkit.alpha_dropout, {"rate": 0.5, "training": None}, TypeError, r"training must be a bool"),
    (dropkit.alpha_dropout, {"rate": 0.5, "seed": -1}, ValueError, r"seed must be in \[0, 2\*\*64\), got -1"),
    (dropkit.alpha_dropout, {"rate": 0.5, "offset": 1.0}, TypeError, r"offset must be an integer"),
    (dropkit.concrete_dropout, {"logit": 0.0, "temperature": 0.0}, ValueError, r"temperature must be > 0, got 0.0"),
    (dropkit.concrete_dropout, {"logit": 0.0, "temperature": -1}, ValueError, r"temperature must be > 0, got -1"),
    (dropkit.concrete_dropout, {"logit": 0.0, "temperature": 1e-300}, ValueError, r"temperature is too small"),
    (dropkit.concrete_dropout, {"logit": np.inf, "temperature": 0.1}, ValueError, r"logit must be finite"),
    (dropkit.concrete_dropout, {"logit": "0", "temperature": 0.1}, TypeError, r"logit must be a real number"),
    (dropkit.concrete_dropout, {"logit": 0.0, "temperature": True}, TypeError, r"temperature must be a real"),
    (dropkit.concrete_dropout, {"logit": 800.0, "temperature": 0.1}, ValueError, r"must be < 1"),
]


@pytest.mark.parametrize("f, kw, exc, msg", BAD)
def test_bad_input_clear_error_nothing_written(f, kw, exc, msg):
    x = xs((3, 4), np.float32)
    x0 = x.copy()
    out = np.full_like(x, 7.0)
    kw = dict(kw)
    kw.setdefault("seed", 1)
    if f is dropkit.concrete_dropout:
        args = (x, kw.pop("logit"))
    else:
        args = (x, kw.pop("rate"))
    with pytest.raises(exc, match=msg):
        f(*args, out=out, **kw)
    same_bits(out, np.full_like(x, 7.0))
    same_bits(x, x0)


def test_bad_input_feature_alpha_and_concrete_backward():
    with pytest.raises(ValueError, match=r"at least 2 dimensions .* got shape \(5,\)"):
        dropkit.feature_alpha_dropout(np.ones(5), 0.5, seed=1)
    with pytest.raises(ValueError, match=r"at least 2 dimensions"):
        dropkit.feature_alpha_dropout_backward(np.ones(5), 0.5, seed=1)
    g = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"x must have grad's shape \(2, 3\), got \(3, 2\)"):
        dropkit.concrete_dropout_backward(g, np.ones((3, 2)), 0.0, temperature=0.1, seed=1)
    with pytest.raises(TypeError, match=r"x must have grad's dtype float64, got float32"):
        dropkit.concrete_dropout_backward(g, np.ones((2, 3), np.float32), 0.0, temperature=0.1, seed=1)
    with pytest.raises(TypeError, match=r"x must have dtype float16, float32 or float64, got int64"):
        dropkit.gaussian_dropout(np.ones(3, np.int64), 0.5, seed=1)
    with pytest.raises(ValueError, match=r"backend must be 'core' or 'numpy', got 'gpu'"):
        dropkit.dropout_nd(np.ones(3), 0.5, seed=1, backend="gpu")
    with pytest.raises(ValueError, match=r"out must have shape \(3,\)"):
        dropkit.alpha_dropout(np.ones(3), 0.5, seed=1, out=np.empty(4))


# ------------------------------------------------------------------------------------------
# dropkit.dropout delegates noise_shape= and rate arrays to dropout_nd
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_dropout_accepts_noise_shape_and_rate_arrays(backend):
    x = np.abs(xs((4, 3, 5), np.float32)) + 1
    kw = dict(seed=3, offset=6, backend=backend)
    y = dropkit.dropout(x, 0.5, noise_shape=(None, None, 1), **kw)
    same_bits(y, dropkit.dropout_nd(x, 0.5, noise_shape=(None, None, 1), **kw))
    assert ((y == 0) == (y[..., :1] == 0)).all()
    rates = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    same_bits(dropkit.dropout(x, rates, **kw), dropkit.dropout_nd(x, rates, **kw))
    same_bits(dropkit.dropout(x, rates, inverted=False, **kw),
              dropkit.dropout_nd(x, rates, inverted=False, **kw))
    same_bits(dropkit.dropout(x, rates, training=False, inverted=False, **kw),
              dropkit.dropout_nd(x, rates, training=False, inverted=False, **kw))
    assert dropkit.dropout(x, rates, training=False, **kw) is x
    same_bits(dropkit.dropout(x, np.float64(0.5), noise_shape=x.shape, **kw), dropkit.dropout(x, 0.5, **kw))
    out = np.empty_like(x)
    assert dropkit.dropout(x, 0.5, noise_shape=(1, 3, 1), out=out, **kw) is out
    with pytest.raises(ValueError, match=r"noise_shape .* does not broadcast"):
        dropkit.dropout(x, 0.5, noise_shape=(2, 3, 1), **kw)
    with pytest.raises(ValueError, match=r"rate of shape \(4,\) does not broadcast"):
        dropkit.dropout(x, np.full(4, 0.5), **kw)
