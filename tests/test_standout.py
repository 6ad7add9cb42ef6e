"""AdaptiveDropout(mode="standout") (Ba and Frey 2013): keep probability sigmoid(alpha * x + beta)
per element, applied as a rate array through dropout_nd; backward with the forward's rates as
constants; evaluation as inverted (identity) or classic (x * keep) dropout; clear errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import dropkit
from _helpers import bits


def xs(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(bits(a), bits(b))


def keep_prob(v, alpha, beta):
    """The paper's keep probability, written out independently (math, one scalar at a time)."""
    return 1.0 / (1.0 + math.exp(-(alpha * v + beta)))


def test_standout_rates_formula_and_tails():
    layer = dropkit.AdaptiveDropout(mode="standout", alpha=1.5, beta=-0.5, seed=1)
    x = np.linspace(-20.0, 20.0, 81)
    r = layer.standout_rates(x)
    assert r.dtype == np.float64 and r.shape == x.shape
    # 1 - sigmoid(z) = 1 / (1 + exp(z)): no cancellation in this form, so a tight tolerance holds
    expect = np.array([1.0 / (1.0 + math.exp(1.5 * v - 0.5)) for v in x])
    np.testing.assert_allclose(r, expect, rtol=1e-14, atol=0)
    # the keep probability (1 - r rounds: absolute tolerance of one ulp of 1)
    np.testing.assert_allclose(1.0 - r, [keep_prob(v, 1.5, -0.5) for v in x], rtol=1e-13, atol=2.3e-16)
    # tails without overflow warnings (filterwarnings=error); infinities map to 0 and 1
    t = layer.standout_rates(np.array([-1e300, -1000.0, 1000.0, 1e300, -np.inf, np.inf]))
    np.testing.assert_array_equal(t, [1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    # float16 and float32 inputs are widened exactly before the sigmoid
    x32 = xs((3, 4))
    same_bits(layer.standout_rates(x32), layer.standout_rates(x32.astype(np.float64)))


def test_keep_fraction_per_column_matches_sigmoid():
    alpha, beta = 1.5, -0.5
    values = np.array([-3.0, -1.0, -0.25, 0.3, 1.0, 2.0, 4.0])
    n = 20_000
    x = np.tile(values, (n, 1)).astype(np.float32)
    layer = dropkit.AdaptiveDropout(mode="standout", alpha=alpha, beta=beta, seed=11)
    y = layer.forward(x)
    assert y.dtype == np.float32 and layer.position == x.size
    kept = y != 0
    np.testing.assert_array_equal(layer.mask, kept)
    for j, v in enumerate(values):
        p = keep_prob(float(np.float32(v)), alpha, beta)
        frac = kept[:, j].mean()
        assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n), (v, frac, p)
        # kept elements carry the inverted scale 1 / keep (float32 rounding)
        np.testing.assert_allclose(y[kept[:, j], j], np.float32(v) / p, rtol=2e-7)


def test_extreme_keep_probabilities_are_exact():
    layer = dropkit.AdaptiveDropout(mode="standout", seed=2)
    x = np.tile(np.array([-60.0, 60.0], np.float32), (1000, 1))
    y = layer.forward(x)
    assert (y[:, 0] == 0).all()  # keep probability below 2**-33: rate 1, always dropped
    same_bits(y[:, 1], x[:, 1])  # keep probability 1 (rate 0): kept, scale 1


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_layer_equals_dropout_nd_reference(dtype):
    alpha, beta = 0.7, 0.2
    layer = dropkit.AdaptiveDropout(0.3, 0.05, mode="standout", alpha=alpha, beta=beta, seed=7)
    x = xs((7, 9), dtype)
    for call in range(3):
        rates = layer.standout_rates(x)
        y = layer.forward(x)
        assert y.dtype == dtype and y.shape == x.shape
        off = call * x.size
        same_bits(y, dropkit.dropout_nd(x, rates, seed=7, offset=off, backend="numpy"))
        assert layer.position == off + x.size
        g = xs((7, 9), dtype, seed=call + 1)
        same_bits(layer.backward(g), dropkit.dropout_nd_backward(g, rates, seed=7, offset=off, backend="numpy"))
    # the same seed replays; another (alpha, beta) gives other rates
    again = dropkit.AdaptiveDropout(mode="standout", alpha=alpha, beta=beta, seed=7)
    same_bits(again.forward(x), dropkit.dropout_nd(x, again.standout_rates(x), seed=7, backend="numpy"))
    other = dropkit.AdaptiveDropout(mode="standout", alpha=-alpha, beta=beta, seed=7)
    assert not np.array_equal(other.standout_rates(x), again.standout_rates(x))


def test_backward_uses_the_forward_rates_not_the_input_afterwards():
    layer = dropkit.AdaptiveDropout(mode="standout", alpha=2.0, seed=3)
    x = xs((6, 5), np.float64)
    rates = layer.standout_rates(x)
    layer.forward(x)
    x *= -1.0  # the caller reuses its buffer: the backward must not see it
    g = xs((6, 5), np.float64, seed=9)
    same_bits(layer.backward(g), dropkit.dropout_nd_backward(g, rates, seed=3, backend="numpy"))


def test_backward_finite_differences_with_the_mask_fixed():
    # With the rates frozen at the forward's, x -> dropout_nd(x, rates) is linear: J^T g by
    # central differences must equal backward(g) (the documented gradient: rates as constants).
    alpha, beta = 1.2, 0.3
    layer = dropkit.AdaptiveDropout(mode="standout", alpha=alpha, beta=beta, seed=4)
    x = xs((3, 4), np.float64)
    layer.position = 100
    rates = layer.standout_rates(x)
    layer.forward(x)
    g = xs((3, 4), np.float64, seed=5)
    dx = layer.backward(g)

    def loss(z):
        return float(np.sum(g * dropkit.dropout_nd(z, rates, seed=4, offset=100, backend="numpy")))

    h = 1e-6
    fd = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        fd.flat[i] = (loss(x + e) - loss(x - e)) / (2 * h)
    np.testing.assert_allclose(dx, fd, rtol=1e-7, atol=1e-9)
    assert (dx == 0).any() and (dx != 0).any()  # a real mask: some dropped, some kept
    kept = dx != 0
    np.testing.assert_allclose(dx[kept], g[kept] / (1 - rates[kept]), rtol=1e-15)


def test_evaluation_inverted_and_classic():
    x = xs((5, 6), np.float64)
    layer = dropkit.AdaptiveDropout(mode="standout", alpha=1.0, beta=0.5, seed=6)
    assert layer.forward(x, training=False) is x and layer.position == 0
    same_bits(layer.backward(x), x)
    nan = x.copy()
    nan[0, 0] = np.nan
    assert layer.forward(nan, training=False) is nan  # inverted evaluation computes no rates
    # classic (the paper's form): unscaled mask in training, x * keep in evaluation
    classic = dropkit.AdaptiveDropout(mode="standout", alpha=1.0, beta=0.5, seed=6, inverted=False)
    keep = np.array([[keep_prob(v, 1.0, 0.5) for v in row] for row in x])
    np.testing.assert_allclose(classic.forward(x, training=False), x * keep, rtol=1e-14)
    g = xs((5, 6), np.float64, seed=1)
    np.testing.assert_allclose(classic.backward(g), g * keep, rtol=1e-14)
    assert classic.position == 0
    y = classic.forward(x)
    kept = classic.mask
    same_bits(y[kept], x[kept])
    assert (y[~kept] == 0).all() and kept.any() and (~kept).any()
    same_bits(y, dropkit.dropout_nd(x, classic.standout_rates(x), seed=6, inverted=False, backend="numpy"))


def test_importance_mode_is_the_default_and_unchanged():
    plain = dropkit.AdaptiveDropout(0.3, seed=5)
    assert plain.mode == "importance" and plain.alpha == 1.0 and plain.beta == 0.0
    explicit = dropkit.AdaptiveDropout(0.3, mode="importance", alpha=3.0, beta=-2.0, seed=5)
    x = xs((40, 4))
    same_bits(explicit.forward(x), plain.forward(x))
    same_bits(plain.forward(x), dropkit.dropout_nd(x, 0.3, seed=5, offset=x.size))
    # switching an existing layer to standout (validated assignment) changes where rates come from
    plain.mode = "standout"
    y = plain.forward(x)
    same_bits(y, dropkit.dropout_nd(x, plain.standout_rates(x), seed=5, offset=2 * x.size, backend="numpy"))
    assert "mode='standout'" in repr(plain)


def test_standout_errors():
    with pytest.raises(ValueError, match="mode must be 'importance' or 'standout', got 'dropout'"):
        dropkit.AdaptiveDropout(mode="dropout")
    with pytest.raises(ValueError, match="mode must be 'importance' or 'standout', got None"):
        dropkit.AdaptiveDropout(mode=None)
    with pytest.raises(TypeError, match="alpha must be a finite real number, got '1'"):
        dropkit.AdaptiveDropout(mode="standout", alpha="1")
    with pytest.raises(TypeError, match="alpha must be a finite real number, got True"):
        dropkit.AdaptiveDropout(mode="standout", alpha=True)
    with pytest.raises(ValueError, match="alpha must be a finite real number, got nan"):
        dropkit.AdaptiveDropout(mode="standout", alpha=float("nan"))
    with pytest.raises(ValueError, match="beta must be a finite real number, got inf"):
        dropkit.AdaptiveDropout(mode="standout", beta=np.inf)
    with pytest.raises(TypeError, match=r"beta must be a finite real number, got \(1\+0j\)"):
        dropkit.AdaptiveDropout(beta=1 + 0j)
    layer = dropkit.AdaptiveDropout(mode="standout", alpha=np.float32(2.0), beta=np.int64(-1), seed=1)
    assert layer.alpha == 2.0 and layer.beta == -1.0
    with pytest.raises(ValueError, match="alpha must be a finite real number, got -inf"):
        layer.alpha = -np.inf
    with pytest.raises(ValueError, match="mode must be 'importance' or 'standout', got 'Standout'"):
        layer.mode = "Standout"
    assert layer.alpha == 2.0 and layer.mode == "standout"
    x = xs((3, 4))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN at index \(1, 2\)"):
        layer.forward(x)
    assert layer.position == 0 and layer.mask is None  # nothing drawn
    layer.alpha = 0.0
    with pytest.raises(ValueError, match=r"NaN at index \(0,\)"):
        layer.forward(np.array([np.inf, 1.0]))  # 0 * inf has no keep probability
    with pytest.raises(TypeError, match="x must have dtype float16, float32 or float64"):
        layer.forward(np.ones(3, dtype=np.int32))
