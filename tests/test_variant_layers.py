"""Layers of the dropout variants (dropkit.variant_layers): the seeds' interface, the position
counter (advances by the noise size, docs/rng.md §8.3), backward against the functional API and
finite differences, schedules, and clear errors."""
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


# (layer factory, input shape, noise shape, the functional forward/backward with their kwargs)
CASES = {
    "spatial1d": (lambda: dropkit.SpatialDropout1D(0.3, seed=5), (4, 3, 6), (4, 3, 1)),
    "spatial1d-last": (lambda: dropkit.SpatialDropout1D(0.3, "channels_last", seed=5), (4, 6, 3), (4, 1, 3)),
    "spatial2d": (lambda: dropkit.SpatialDropout2D(0.3, seed=5), (4, 3, 2, 5), (4, 3, 1, 1)),
    "spatial2d-last": (lambda: dropkit.SpatialDropout2D(rate=0.3, data_format="channels_last", seed=5),
                       (4, 2, 5, 3), (4, 1, 1, 3)),
    "spatial3d": (lambda: dropkit.SpatialDropout3D(drop_rate=0.3, seed=5), (2, 3, 2, 2, 2), (2, 3, 1, 1, 1)),
    "spatial3d-last": (lambda: dropkit.SpatialDropout3D(0.3, "channels_last", seed=5), (2, 2, 2, 2, 3),
                       (2, 1, 1, 1, 3)),
    "temporal": (lambda: dropkit.TemporalDropout(0.3, seed=5), (4, 7, 3), (4, 1, 3)),
    "droppath": (lambda: dropkit.DropPath(0.3, seed=5), (6, 3, 2), (6, 1, 1)),
    "adaptive": (lambda: dropkit.AdaptiveDropout(0.3, seed=5), (6, 4), (6, 4)),
    "curriculum": (lambda: dropkit.CurriculumDropout(0.3, 1, seed=5), (6, 4), (6, 4)),
    "gaussian": (lambda: dropkit.GaussianDropout(0.3, seed=5), (5, 4), (5, 4)),
    "alpha": (lambda: dropkit.AlphaDropout(0.3, seed=5), (5, 4), (5, 4)),
    "feature-alpha": (lambda: dropkit.FeatureAlphaDropout(0.3, seed=5), (5, 4, 3), (5, 4, 1)),
    "concrete": (lambda: dropkit.ConcreteDropout(0.3, 0.3, seed=5), (5, 4), (5, 4)),
}


def functional(name, layer, x, offset, backward=False):
    """What the layer's training forward (or backward, on ``x`` as the gradient) must equal."""
    ns = CASES[name][2]
    if name == "gaussian":
        f = dropkit.gaussian_dropout_backward if backward else dropkit.gaussian_dropout
        return f(x, 0.3, seed=5, offset=offset)
    if name in ("alpha", "feature-alpha"):
        f = dropkit.alpha_dropout_backward if backward else dropkit.alpha_dropout
        return f(x, 0.3, seed=5, offset=offset, noise_shape=ns)
    if name == "concrete":
        lg = math.log(0.3) - math.log1p(-0.3)
        return dropkit.concrete_dropout(x, lg, temperature=0.3, seed=5, offset=offset)  # backward: grad * m
    f = dropkit.dropout_nd_backward if backward else dropkit.dropout_nd
    return f(x, 0.3, seed=5, offset=offset, noise_shape=ns)


def prepare(name, layer):
    if name == "curriculum":
        layer.on_epoch_end()  # rate 0.3 from epoch 1 on (epochs=1)
    return layer


@pytest.mark.parametrize("name", list(CASES))
def test_layer_matches_functional_and_counter_advances_by_noise_size(name):
    make, shape, ns = CASES[name]
    layer = prepare(name, make())
    n = math.prod(ns)
    x = xs(shape)
    assert layer.position == 0 and layer.training is True
    for call in range(3):
        y = layer.forward(x)
        same_bits(y, functional(name, layer, x, call * n))
        assert layer.position == (call + 1) * n
        g = xs(shape, seed=call + 1)
        same_bits(layer.backward(g), functional(name, layer, g, call * n, backward=True))
    # evaluation: the identity for these inverted layers, and the counter stays
    assert layer.forward(x, training=False) is x
    assert layer.position == 3 * n
    same_bits(layer.backward(x), x)
    # the same seed replays the sequence
    again = prepare(name, make())
    again.forward(x)
    same_bits(again.forward(x), functional(name, layer, x, n))


@pytest.mark.parametrize("name", list(CASES))
def test_layer_interface(name):
    make, shape, _ = CASES[name]
    layer = prepare(name, make())
    x = xs(shape)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(x)
    with pytest.raises(TypeError, match="training must be a bool"):
        layer.forward(x, training="False")
    with pytest.raises(TypeError, match="training must be a bool"):
        layer.training = 1
    layer.training = False
    assert layer.forward(x) is x and layer.position == 0
    layer.training = True
    y = layer(x)
    assert y.shape == shape and y.dtype == np.float32
    with pytest.raises(ValueError, match="grad must have the last forward's shape"):
        layer.backward(np.ones((1,) * len(shape)))
    layer.position = 2**64 - 1
    with pytest.raises(ValueError, match="2\\*\\*64"):
        layer.forward(x)
    assert layer.position == 2**64 - 1
    with pytest.raises(ValueError, match="position must be in"):
        layer.position = -1
    assert layer.seed == 5
    assert repr(layer).startswith(type(layer).__name__)


def test_seed_none_and_generator():
    a = dropkit.GaussianDropout(0.5, seed=np.random.default_rng(3))
    b = dropkit.GaussianDropout(0.5, seed=np.random.default_rng(3))
    assert a.seed == b.seed
    x = xs((4, 4))
    same_bits(a.forward(x), b.forward(x))
    c, d = dropkit.SpatialDropout2D(0.5), dropkit.SpatialDropout2D(0.5)
    assert c.seed != d.seed
    with pytest.raises(TypeError, match="seed must be None, an integer"):
        dropkit.AlphaDropout(0.5, seed="1")


# ------------------------------------------------------------------------------------------
# Spatial
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["channels_first", "channels_last"])
def test_spatial2d_whole_channels(fmt):
    layer = dropkit.SpatialDropout2D(0.5, fmt, seed=1)
    x = np.abs(xs((8, 6, 4, 4) if fmt == "channels_first" else (8, 4, 4, 6))) + 1
    y = layer.forward(x)
    z = y == 0
    if fmt == "channels_last":
        z = np.moveaxis(z, -1, 1)
    z = z.reshape(8, 6, -1)
    assert (z.all(axis=2) | ~z.any(axis=2)).all()
    assert 0 < z[:, :, 0].sum() < 48
    np.testing.assert_array_equal(layer.mask, y != 0)
    assert layer.drop_rate == 0.5


def test_spatial_errors():
    with pytest.raises(ValueError, match="data_format must be 'channels_first' or 'channels_last', got 'NCHW'"):
        dropkit.SpatialDropout2D(0.5, "NCHW")
    with pytest.raises(ValueError, match=r"SpatialDropout2D expects a 4-D input \(batch, channels, height, width\)"
                                         r".*got shape \(2, 3, 4\)"):
        dropkit.SpatialDropout2D(0.5, seed=1).forward(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"SpatialDropout1D expects a 3-D input \(batch, length, channels\)"):
        dropkit.SpatialDropout1D(0.5, "channels_last", seed=1).forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"SpatialDropout3D expects a 5-D"):
        dropkit.SpatialDropout3D(0.5, seed=1).forward(np.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got 1.5"):
        dropkit.SpatialDropout2D(1.5)
    with pytest.raises(TypeError, match="give the rate once"):
        dropkit.SpatialDropout2D(0.5, drop_rate=0.5)


# ------------------------------------------------------------------------------------------
# Temporal (variational RNN dropout)
# ------------------------------------------------------------------------------------------


def test_temporal_sequence_and_steps():
    layer = dropkit.TemporalDropout(0.5, seed=3)
    x = np.abs(xs((5, 6, 8))) + 1
    y = layer.forward(x)
    z = y == 0
    assert (z == z[:, :1, :]).all()  # one mask for every time step
    assert 0 < z[:, 0, :].sum() < 40 and layer.position == 40
    y2 = layer.forward(x)
    assert ((y2 == 0) != z).any() and layer.position == 80  # fresh mask per sequence
    # step by step: one mask until reset_state, both step layouts
    s1 = layer.forward(x[:, 0, :])
    s2 = layer.forward(x[:, 1:2, :])
    assert layer.position == 120
    np.testing.assert_array_equal(s1 == 0, s2[:, 0, :] == 0)
    same_bits(s1, dropkit.dropout_nd(x[:, 0, :], 0.5, seed=3, offset=80))
    same_bits(layer.backward(x[:, 1:2, :]), dropkit.dropout_nd(x[:, 1:2, :], 0.5, seed=3, offset=80))
    with pytest.raises(ValueError, match=r"call reset_state\(\)"):
        layer.forward(x[:3, 0, :])
    layer.forward(x[:, 2, :], training=False)  # evaluation keeps the step mask
    s3 = layer.forward(x[:, 3, :])
    np.testing.assert_array_equal(s3 == 0, s1 == 0)
    layer.reset_state()
    assert layer.mask is None
    s4 = layer.forward(x[:, 0, :])
    assert layer.position == 160
    same_bits(s4, dropkit.dropout_nd(x[:, 0, :], 0.5, seed=3, offset=120))


def test_temporal_errors():
    with pytest.raises(ValueError, match=r"TemporalDropout expects \(batch, time, features\).*got shape \(3,\)"):
        dropkit.TemporalDropout(0.5, seed=1).forward(np.ones(3))
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 3, 4\)"):
        dropkit.TemporalDropout(0.5, seed=1).forward(np.ones((1, 2, 3, 4)))


# ------------------------------------------------------------------------------------------
# DropPath
# ------------------------------------------------------------------------------------------


def test_droppath_per_sample_timm_semantics():
    layer = dropkit.DropPath(0.25, seed=9)
    x = np.abs(xs((400, 3, 2))) + 1
    y = layer.forward(x)
    dropped = (y == 0).all(axis=(1, 2))
    kept = (y != 0).all(axis=(1, 2))
    assert (dropped | kept).all()
    assert abs(dropped.mean() - 0.25) < 5 * math.sqrt(0.25 * 0.75 / 400)
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    assert layer.position == 400 and layer.drop_prob == 0.25
    noscale = dropkit.DropPath(0.25, scale_by_keep=False, seed=9)
    y2 = noscale.forward(x)
    same_bits(y2, np.where(kept[:, None, None], x, np.float32(0)))
    assert noscale.forward(x, training=False) is x  # evaluation: the identity, scaled or not
    assert dropkit.DropPath(seed=1).forward(x) is x  # drop_prob 0 by default, as timm
    with pytest.raises(ValueError, match="DropPath expects an input with a batch axis"):
        layer.forward(np.float32(1.0))
    with pytest.raises(TypeError, match="scale_by_keep must be a bool"):
        dropkit.DropPath(0.1, scale_by_keep=1)


# ------------------------------------------------------------------------------------------
# Adaptive
# ------------------------------------------------------------------------------------------


def test_adaptive_applies_its_rates():
    layer = dropkit.AdaptiveDropout(0.6, adaptation_rate=0.5, seed=4)
    assert isinstance(layer, dropkit.Dropout) and layer.rate == 0.6
    acts = np.abs(xs((64, 5), np.float64)) * np.array([0.1, 1.0, 2.0, 4.0, 8.0])
    rates = layer.update_dropout_rates(acts)
    importance = 0.5 * np.ones(5) + 0.5 * np.abs(acts).mean(axis=0)
    np.testing.assert_allclose(rates, 0.6 * (1 - importance / importance.max()))
    n = 20_000
    y = layer.forward(np.ones((n, 5)))
    dropped = (y == 0).mean(axis=0)
    for r, d in zip(rates, dropped):
        assert abs(d - r) < 5 * math.sqrt(max(r * (1 - r), 1e-12) / n)
    assert dropped[-1] == 0.0  # the most important feature is never dropped
    same_bits(y, dropkit.dropout_nd(np.ones((n, 5)), rates, seed=4))
    g = xs((n, 5), np.float64, seed=2)
    same_bits(layer.backward(g), dropkit.dropout_nd_backward(g, rates, seed=4))
    np.testing.assert_array_equal(layer.mask, y != 0)
    # the rates of a forward stay with it: a later update does not change its backward
    layer.update_dropout_rates(acts[:, ::-1])
    same_bits(layer.backward(g), dropkit.dropout_nd_backward(g, rates, seed=4))
    with pytest.raises(ValueError, match=r"rate of shape \(5,\) does not broadcast"):
        layer.forward(np.ones((3, 4)))


def test_adaptive_zero_importance_uses_the_base_rate():
    layer = dropkit.AdaptiveDropout(0.4, adaptation_rate=1.0, seed=1)
    np.testing.assert_array_equal(layer.update_dropout_rates(np.zeros((3, 4))), np.full(4, 0.4))


# ------------------------------------------------------------------------------------------
# Curriculum
# ------------------------------------------------------------------------------------------


def test_curriculum_linear_schedule():
    layer = dropkit.CurriculumDropout(final_rate=0.5, epochs=4, seed=2)
    rates = []
    for _ in range(6):
        rates.append(layer.get_current_rate())
        layer.on_epoch_end()
    assert rates == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]
    x = xs((100, 10))
    layer.current_epoch = 0
    assert layer.forward(x) is x  # rate 0 at epoch 0: the identity
    layer.current_epoch = 2
    y = layer.forward(x)
    same_bits(y, dropkit.dropout(x, 0.25, seed=2, offset=1000))
    assert layer.rate == 0.25 and layer.position == 2000 and layer.iteration == 2


def test_curriculum_exponential_schedule():
    layer = dropkit.CurriculumDropout(0.4, schedule="exponential", gamma=0.1, seed=2)
    x = xs((10, 10))
    for t in range(5):
        theta = (1 - 0.6) * math.exp(-0.1 * t) + 0.6  # Morerio et al.: retain probability
        assert layer.get_current_rate() == pytest.approx(1 - theta, rel=1e-12, abs=1e-15)
        y = layer.forward(x)
        assert layer.rate == pytest.approx(1 - theta, rel=1e-12, abs=1e-15)  # the rate it used
        same_bits(y, dropkit.dropout(x, layer.rate, seed=2, offset=100 * t))
    assert layer.iteration == 5
    layer.forward(x, training=False)
    assert layer.iteration == 5  # evaluation is not an iteration
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        dropkit.CurriculumDropout(0.4, schedule="exponential")
    with pytest.raises(ValueError, match="schedule must be 'linear' or 'exponential', got 'cosine'"):
        dropkit.CurriculumDropout(0.4, schedule="cosine")
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        dropkit.CurriculumDropout(0.4, 0)


# ------------------------------------------------------------------------------------------
# Gaussian, alpha, concrete
# ------------------------------------------------------------------------------------------


def test_gaussian_layer_noise_and_errors():
    layer = dropkit.GaussianDropout(drop_rate=0.5, seed=7)
    assert layer.noise is None
    x = xs((6, 5), np.float64)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x * layer.noise.astype(np.float64))
    with pytest.raises(ValueError, match=r"\[0, 1\) for Gaussian dropout"):
        dropkit.GaussianDropout(1.0)
    layer.drop_rate = 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\) for Gaussian dropout"):
        layer.forward(x)


def test_alpha_layers():
    with pytest.raises(ValueError, match=r"FeatureAlphaDropout needs an input of at least 2 dimensions"):
        dropkit.FeatureAlphaDropout(0.5, seed=1).forward(np.ones(4))
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got -1"):
        dropkit.AlphaDropout(-1)
    layer = dropkit.FeatureAlphaDropout(0.5, seed=1)
    y = layer.forward(xs((8, 4, 6)))
    dropped = (y == y[:, :, :1]).all(axis=2)
    assert dropped.any() and layer.position == 32


def test_concrete_layer_gradients_and_regularizer():
    layer = dropkit.ConcreteDropout(temperature=0.5, init_rate=0.3, weight_regularizer=1e-2,
                                    dropout_regularizer=1e-1, seed=6)
    assert layer.get_dropout_rate() == pytest.approx(0.3, rel=1e-12)
    assert layer.dropout_rate == pytest.approx(math.log(0.3 / 0.7), rel=1e-12)
    x = xs((4, 5), np.float64)
    w = xs((4, 5), np.float64, seed=1)
    layer.forward(x)
    dx = layer.backward(w)
    g1 = layer.dropout_rate_grad
    _, dlogit = dropkit.concrete_dropout_backward(w, x, layer.dropout_rate, temperature=0.5, seed=6, offset=0)
    assert g1 == dlogit and dx.shape == x.shape
    layer.forward(x)
    layer.backward(w)
    assert layer.dropout_rate_grad == g1 + dropkit.concrete_dropout_backward(
        w, x, layer.dropout_rate, temperature=0.5, seed=6, offset=20)[1]  # accumulates
    layer.zero_grad()
    assert layer.dropout_rate_grad == 0.0
    # the regulariser and its gradient, by finite differences (float64, no stream involved)
    W = xs((5, 3), np.float64, seed=4)
    dW, dl = layer.regularizer_backward(W, 5)
    assert layer.dropout_rate_grad == dl
    h = 1e-6
    logit = layer.dropout_rate
    layer.dropout_rate = logit + h
    up = layer.regularizer(W, 5)
    layer.dropout_rate = logit - h
    down = layer.regularizer(W, 5)
    layer.dropout_rate = logit
    assert dl == pytest.approx((up - down) / (2 * h), rel=1e-6)
    fd = np.empty_like(W)
    for i in range(W.size):
        e = np.zeros_like(W)
        e.flat[i] = h
        fd.flat[i] = (layer.regularizer(W + e, 5) - layer.regularizer(W - e, 5)) / (2 * h)
    np.testing.assert_allclose(dW, fd, rtol=1e-6, atol=1e-12)
    p = 0.3
    expect = 1e-2 * np.sum(W**2) / (1 - p) + 1e-1 * 5 * (p * math.log(p) + (1 - p) * math.log(1 - p))
    assert layer.regularizer(W, 5) == pytest.approx(expect, rel=1e-12)
    # trainable False: gradients are not accumulated
    layer.trainable = False
    layer.forward(x)
    layer.backward(w)
    layer.regularizer_backward(W, 5)
    assert layer.dropout_rate_grad == dl
    # evaluation is the identity (the paper), not x * p (the seed)
    assert layer.forward(x, training=False) is x


def test_concrete_layer_learns_the_rate_by_gradient_descent():
    # Only the regulariser's entropy term: its minimum is p = 0.5, reached from p = 0.1.
    layer = dropkit.ConcreteDropout(init_rate=0.1, weight_regularizer=0.0, dropout_regularizer=1.0, seed=1)
    for _ in range(200):
        layer.zero_grad()
        layer.regularizer_backward(np.zeros(1), 1)
        layer.dropout_rate -= 5.0 * layer.dropout_rate_grad
    assert layer.get_dropout_rate() == pytest.approx(0.5, abs=1e-3)


def test_concrete_errors():
    with pytest.raises(ValueError, match=r"init_rate must be in \(0, 1\), got 1.0"):
        dropkit.ConcreteDropout(init_rate=1.0)
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        dropkit.ConcreteDropout(temperature=0)
    with pytest.raises(ValueError, match="input_dim must be a positive integer, got 0"):
        dropkit.ConcreteDropout().regularizer(np.ones(3), 0)
