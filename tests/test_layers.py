"""Tests of the layers ``dropkit.Dropout`` and ``dropkit.InvertedDropout`` (docs/rng.md section 7).

Expectations come from the functional API called with the layer's seed and stream position, from
the keep mask (``dropkit.dropout_mask``) and NumPy arithmetic, never from the layer itself.
"""
from __future__ import annotations

import numpy as np
import pytest

import dropkit
from dropkit import Dropout, InvertedDropout

from _helpers import assert_same_bits

# The fixture ``backend`` (each of "core" and "numpy") is in conftest.py.


def nonzero_sample(shape, dtype=np.float64, seed=0):
    """Random values bounded away from 0, so ``y != 0`` is exactly the keep mask."""
    rng = np.random.default_rng(seed)
    mag = rng.uniform(0.5, 3.0, shape)
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return (mag * sign).astype(dtype)


# ------------------------------------------------------------------------------------------
# construction
# ------------------------------------------------------------------------------------------


def test_rate_spellings():
    assert Dropout(0.3).rate == 0.3
    assert Dropout(rate=0.4).rate == 0.4
    assert Dropout(dropout_rate=0.2).rate == 0.2
    assert Dropout(drop_rate=0.3).rate == 0.3
    assert Dropout().rate == 0.5  # documented default
    assert Dropout(0).rate == 0.0 and Dropout(1).rate == 1.0


@pytest.mark.parametrize("kwargs", [
    dict(rate=0.5, dropout_rate=0.2), dict(dropout_rate=0.2, drop_rate=0.3),
    dict(rate=0.1, drop_rate=0.1), dict(rate=0.1, dropout_rate=0.1, drop_rate=0.1),
])
def test_rate_given_twice_is_type_error(kwargs):
    with pytest.raises(TypeError, match="once"):
        Dropout(**kwargs)


def test_rate_given_twice_positional():
    with pytest.raises(TypeError):
        Dropout(0.5, dropout_rate=0.2)


def test_inverted_dropout_keep_prob():
    layer = InvertedDropout(keep_prob=0.8)
    assert layer.rate == pytest.approx(0.2)
    assert layer.keep_prob == pytest.approx(0.8)
    assert layer.inverted is True
    assert InvertedDropout().keep_prob == pytest.approx(0.8)
    layer.keep_prob = 0.6
    assert layer.rate == pytest.approx(0.4)
    with pytest.raises(ValueError, match="1.5"):
        layer.keep_prob = 1.5
    assert layer.rate == pytest.approx(0.4)
    assert InvertedDropout(keep_prob=1.0).rate == 0.0
    assert InvertedDropout(keep_prob=0.0).rate == 1.0


def test_training_default_true():
    assert Dropout(0.3).training is True
    assert InvertedDropout().training is True
    assert Dropout(0.3, inverted=False).training is True


def test_seeds():
    assert Dropout(seed=5).seed == 5
    assert Dropout(seed=2**64 - 1).seed == 2**64 - 1
    # np.random.Generator: reproducible, and the generator itself is advanced (one draw)
    a, b = Dropout(seed=np.random.default_rng(7)), Dropout(seed=np.random.default_rng(7))
    assert a.seed == b.seed and 0 <= a.seed < 2**64 and isinstance(a.seed, int)
    rng = np.random.default_rng(7)
    c, d = Dropout(seed=rng), Dropout(seed=rng)
    assert c.seed == a.seed and d.seed != c.seed
    assert Dropout(seed=np.random.default_rng(8)).seed != a.seed
    # None: fresh entropy per layer
    fresh = {Dropout(seed=None).seed for _ in range(8)} | {Dropout().seed for _ in range(8)}
    assert len(fresh) == 16


@pytest.mark.parametrize("seed,exc", [(1.5, TypeError), ("x", TypeError), ("1", TypeError),
                                      (True, TypeError), (np.random.RandomState(0), TypeError),
                                      (-1, ValueError), (2**64, ValueError)], ids=repr)
def test_bad_seed(seed, exc):
    with pytest.raises(exc, match="seed"):
        Dropout(0.5, seed=seed)
    with pytest.raises(exc, match="seed"):
        InvertedDropout(0.5, seed=seed)


# ------------------------------------------------------------------------------------------
# forward
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inverted", [True, False])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_forward_equals_functional_at_position(backend, inverted, dtype):
    layer = Dropout(0.3, seed=1234, inverted=inverted, backend=backend)
    shapes = [(4, 5), (17,), (), (0, 3), (2, 3, 7), (1000,)]
    pos = 0
    for k, shape in enumerate(shapes):
        x = nonzero_sample(shape, dtype, k)
        assert layer.position == pos
        y = layer.forward(x)
        ref = dropkit.dropout(x, 0.3, seed=1234, offset=pos, inverted=inverted, backend=backend)
        assert_same_bits(y, ref)
        pos += x.size
        assert layer.position == pos


def test_successive_forwards_use_fresh_positions(backend):
    layer = Dropout(0.5, seed=3, backend=backend)
    x = np.ones((8, 125))
    y1, m1 = layer.forward(x), layer.mask
    assert layer.position == 1000
    y2, m2 = layer.forward(x), layer.mask
    assert layer.position == 2000
    assert (m1 != m2).any() and (y1 != y2).any()
    # the two masks are consecutive pieces of one stream
    whole = dropkit.dropout_mask(2000, 0.5, seed=3, backend=backend)
    np.testing.assert_array_equal(np.concatenate([m1.ravel(), m2.ravel()]), whole)


def test_call_is_forward(backend):
    a, b = Dropout(0.4, seed=9, backend=backend), Dropout(0.4, seed=9, backend=backend)
    x = nonzero_sample(300)
    assert_same_bits(a(x), b.forward(x))
    assert a.position == b.position == 300


def test_same_seed_same_sequence(backend):
    a, b = Dropout(0.25, seed=42, backend=backend), Dropout(0.25, seed=42, backend=backend)
    c = Dropout(0.25, seed=43, backend=backend)
    differs = False
    for k, shape in enumerate([(10, 10), (33,), (5, 2, 9)]):
        x = nonzero_sample(shape, np.float32, k)
        ya, yb, yc = a.forward(x), b.forward(x), c.forward(x)
        assert_same_bits(ya, yb)
        differs |= bool((ya != yc).any())
    assert differs


def test_backends_agree_for_layers():
    a, b = Dropout(0.3, seed=77, backend="core"), Dropout(0.3, seed=77, backend="numpy")
    for k in range(3):
        x = nonzero_sample((70, 1001), np.float32, k)
        assert_same_bits(a.forward(x), b.forward(x))
        g = nonzero_sample((70, 1001), np.float32, 10 + k)
        assert_same_bits(a.backward(g), b.backward(g))


def test_training_none_uses_attribute(backend):
    layer = Dropout(0.5, seed=1, backend=backend)
    x = nonzero_sample((20, 20))
    y = layer.forward(x, training=None)
    assert (y == 0).any() and layer.position == 400
    layer.training = False
    assert layer.forward(x) is x
    assert layer.forward(x, training=None) is x
    assert layer.position == 400
    # an explicit argument wins over the attribute, and does not change it
    y = layer.forward(x, training=True)
    assert (y == 0).any() and layer.position == 800 and layer.training is False
    layer.training = True
    assert layer.forward(x, training=False) is x
    assert layer.training is True and layer.position == 800


def test_eval_forward_inverted(backend):
    layer = Dropout(0.5, seed=2, backend=backend)
    layer.forward(nonzero_sample(10))
    x = nonzero_sample((3, 4))
    before = x.copy()
    assert layer.forward(x, training=False) is x
    assert_same_bits(x, before)
    assert layer.position == 10
    assert layer.mask is None
    g = nonzero_sample((3, 4), seed=5)
    assert_same_bits(layer.backward(g), g)  # identity after an inverted eval forward


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_classic_layer(backend, dtype):
    rate = 0.3
    layer = Dropout(rate, seed=8, inverted=False, backend=backend)
    x = nonzero_sample((50, 40), dtype)
    ct = np.float64 if dtype == np.float64 else np.float32
    ev = layer.forward(x, training=False)
    assert_same_bits(ev, (x.astype(ct) * ct(1 - rate)).astype(dtype))
    assert layer.position == 0
    g = nonzero_sample((50, 40), dtype, 1)
    assert_same_bits(layer.backward(g), (g.astype(ct) * ct(1 - rate)).astype(dtype))
    y = layer.forward(x)
    keep = dropkit.dropout_mask(x.shape, rate, seed=8, backend=backend)
    np.testing.assert_array_equal(layer.mask, keep)
    assert_same_bits(y, np.where(keep, x, dtype(0)).astype(dtype))
    assert_same_bits(layer.backward(g), np.where(keep, g, dtype(0)).astype(dtype))


# ------------------------------------------------------------------------------------------
# mask
# ------------------------------------------------------------------------------------------


def test_mask_lifecycle(backend):
    layer = Dropout(0.4, seed=21, backend=backend)
    assert layer.mask is None
    x = nonzero_sample((30, 7), np.float32)
    y = layer.forward(x)
    m = layer.mask
    assert isinstance(m, np.ndarray) and m.dtype == np.bool_ and m.shape == x.shape
    np.testing.assert_array_equal(m, y != 0)
    assert 0 < m.sum() < m.size
    np.testing.assert_array_equal(m, dropkit.dropout_mask(x.shape, 0.4, seed=21, backend=backend))
    layer.forward(x, training=False)
    assert layer.mask is None
    layer.forward(x)
    m2 = layer.mask
    np.testing.assert_array_equal(m2, dropkit.dropout_mask(x.shape, 0.4, seed=21, offset=x.size,
                                                           backend=backend))


# ------------------------------------------------------------------------------------------
# backward
# ------------------------------------------------------------------------------------------


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        Dropout(0.5, seed=0).backward(np.ones(3))
    with pytest.raises(RuntimeError):
        InvertedDropout(seed=0).backward(np.ones(3))


def test_backward_wrong_shape(backend):
    layer = Dropout(0.5, seed=0, backend=backend)
    layer.forward(np.ones((3, 4)))
    for bad in (np.ones((4, 3)), np.ones(12), np.ones((3, 4, 1))):
        with pytest.raises(ValueError, match="shape"):
            layer.backward(bad)
    layer.forward(np.ones((2, 2)), training=False)
    with pytest.raises(ValueError, match="shape"):
        layer.backward(np.ones((3, 4)))


def test_backward_bad_grad_dtype(backend):
    layer = Dropout(0.5, seed=0, backend=backend)
    layer.forward(np.ones(4))
    with pytest.raises(TypeError, match="int64"):
        layer.backward(np.ones(4, dtype=np.int64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_uses_last_forward_position_and_rate(backend, dtype):
    layer = Dropout(0.3, seed=555, backend=backend)
    layer.forward(nonzero_sample(77, dtype))  # position 0 .. 76
    x = nonzero_sample((40, 25), dtype, 1)
    pos = layer.position
    assert pos == 77
    y = layer.forward(x)
    layer.rate = 0.7  # must not affect the backward of the forward above
    g = nonzero_sample((40, 25), dtype, 2)
    dg = layer.backward(g)
    keep = dropkit.dropout_mask(x.shape, 0.3, seed=555, offset=pos, backend=backend)
    np.testing.assert_array_equal(keep, y != 0)
    ct = np.float64 if dtype == np.float64 else np.float32
    expected = np.where(keep, g * ct(1 / (1 - 0.3)), dtype(0)).astype(dtype)
    assert_same_bits(dg, expected)
    np.testing.assert_allclose(dg, g * keep / (1 - 0.3), rtol=1e-6)
    np.testing.assert_array_equal(layer.mask, keep)  # mask too keeps the forward's rate
    assert layer.position == pos + x.size  # backward does not advance
    assert_same_bits(layer.backward(g), dg)  # and can be repeated
    # the next forward uses the new rate at the next position
    y3 = layer.forward(x)
    keep3 = dropkit.dropout_mask(x.shape, 0.7, seed=555, offset=pos + x.size, backend=backend)
    assert_same_bits(y3, np.where(keep3, x * ct(1 / (1 - 0.7)), dtype(0)).astype(dtype))


def test_inverted_dropout_layer_backward(backend):
    layer = InvertedDropout(keep_prob=0.8, seed=4, backend=backend)
    x = nonzero_sample((64, 32))
    y = layer.forward(x, training=True)
    keep = layer.mask
    np.testing.assert_array_equal(keep, y != 0)
    np.testing.assert_allclose(y, x * keep / 0.8, rtol=1e-15)
    dout = nonzero_sample((64, 32), seed=3)
    np.testing.assert_allclose(layer.backward(dout), dout * keep / 0.8, rtol=1e-15)
    assert abs((~keep).mean() - 0.2) < 5 * np.sqrt(0.16 / keep.size)


def test_position_overflow_is_an_error(backend):
    layer = Dropout(0.5, seed=0, backend=backend)
    layer.position = 2**64 - 3
    y = layer.forward(np.ones(3))
    assert layer.position == 2**64
    assert_same_bits(y, dropkit.dropout(np.ones(3), 0.5, seed=0, offset=2**64 - 3, backend=backend))
    with pytest.raises(ValueError, match="2\\*\\*64"):
        layer.forward(np.ones(1))
    assert layer.position == 2**64
