"""Conventions dropkit shares with Keras 3 (and where it deliberately differs), issue 15.

Each test names the upstream test or rule it mirrors; expected values come from that rule or
from arithmetic, never from the code under test:

- EarlyStopping: keras/src/callbacks/early_stopping_test.py (test_early_stopping_patience,
  test_early_stopping_reuse_across_models, test_early_stopping_final_weights_when_restoring_model_weights)
  and the rule in keras/src/callbacks/early_stopping.py (`wait += 1` per epoch, reset on an
  improvement, stop when `wait >= patience and epoch > 0`; `on_train_begin` forgets the last run).
- validation_split: keras/src/trainers/data_adapters/array_slicing.py::train_validation_split
  (`split_at = floor(n * (1.0 - validation_split))`, ValueError when `split_at` is 0 or n).
- Dropout / AlphaDropout noise_shape: keras/src/layers/regularization/dropout_test.py and
  alpha_dropout_test.py (test_*_partial_noise_shape_dynamic/static, test_validate_noise_shape_*).
- SpatialDropout1D: keras/src/layers/regularization/spatial_dropout_test.py
  (test_spatial_dropout_1D_correctness: Keras' layer takes (samples, timesteps, channels)).
"""
from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

import dropkit
from dropkit import nn
from _helpers import bits

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


# ------------------------------------------------------------------------------------------
# A model and a loss whose per-epoch values are scripted, so that fit's bookkeeping is checked
# against exact numbers (one batch per epoch: the epoch's loss is the scripted value).
# ------------------------------------------------------------------------------------------


class Recorder:
    """A two-class "network" that records what each forward sees; no learning needed."""

    def __init__(self):
        self.params = [np.zeros(1, np.float32)]
        self.grads = [np.zeros(1, np.float32)]
        self.seen = {True: [], False: []}  # first feature of every sample seen, per mode

    def forward(self, x, training=False):
        self.seen[bool(training)].extend(np.asarray(x)[:, 0].tolist())
        return np.zeros((len(x), 2), np.float32)

    def backward(self, grad):
        return grad


class ScriptedLoss:
    """loss(out, y) returns the next scripted value on training batches (per fit epoch)."""

    def __init__(self, values):
        self.values = list(values)
        self.calls = 0

    def __call__(self, out, y):
        v = self.values[self.calls] if self.calls < len(self.values) else self.values[-1]
        self.calls += 1
        return v

    def backward(self):
        return np.zeros((4, 2), np.float32)


def fit_scripted(losses, stopper, epochs=None):
    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    y = np.zeros(4, np.int64)
    return nn.fit(Recorder(), X, y, epochs=epochs or len(losses), batch_size=4, shuffle=False,
                  loss=ScriptedLoss(losses), optimizer=nn.SGD(0.1), early_stopping=stopper)


# ------------------------------------------------------------------------------------------
# EarlyStopping
# ------------------------------------------------------------------------------------------

KERAS_LOSSES = [10.0, 9.0, 8.0, 9.0, 8.9, 8.8, 8.7, 8.6, 8.5]


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_early_stopping_patience_as_keras(patience):
    # keras early_stopping_test.py::test_early_stopping_patience: with these losses Keras stops at
    # (0-based) epoch max(patience, 1) + 2: 8.0 at epoch 2 is the best, then `patience` epochs of
    # waiting (patience 0 stops at the first epoch without improvement, like patience 1).
    stopper = nn.EarlyStopping(monitor="loss", patience=patience)
    stopper.on_train_begin()
    stopped = None
    for epoch, loss in enumerate(KERAS_LOSSES):
        if stopper.update(epoch, {"loss": loss}, []):
            stopped = epoch
            break
    assert stopped == max(patience, 1) + 2 and stopper.stopped_epoch == stopped
    assert stopper.best == 8.0 and stopper.best_epoch == 2


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_early_stopping_patience_in_fit(patience):
    # The same rule through fit: History.epoch counts from 0, as Keras' `stopped_epoch`.
    h = fit_scripted(KERAS_LOSSES, nn.EarlyStopping(monitor="loss", patience=patience))
    expected = max(patience, 1) + 2
    assert h.history["loss"] == KERAS_LOSSES[:expected + 1]
    assert h.epoch == list(range(expected + 1)) and h.stopped_epoch == expected


def test_early_stopping_is_reset_by_each_fit():
    # keras early_stopping_test.py::test_early_stopping_reuse_across_models (Keras issue 20256):
    # a reused EarlyStopping must not compare a new run with the previous run's best.
    stopper = nn.EarlyStopping(monitor="loss", patience=1)
    first = fit_scripted([1.0, 0.5, 0.25], stopper)
    assert first.stopped_epoch is None and stopper.best == 0.25
    second = fit_scripted(KERAS_LOSSES, stopper)
    fresh = fit_scripted(KERAS_LOSSES, nn.EarlyStopping(monitor="loss", patience=1))
    assert second.epoch == fresh.epoch == [0, 1, 2, 3] and second.stopped_epoch == 3
    assert stopper.best == 8.0 and stopper.best_epoch == 2


def test_early_stopping_restores_the_best_epoch_as_keras():
    # keras early_stopping_test.py::test_early_stopping_final_weights_when_restoring_model_weights:
    # val_loss 0.2, 0.15, 0.1, 0.11, 0.12 with patience 2: the best is epoch 2, the run stops at
    # epoch 4 (five epochs trained) and the weights of epoch 2 come back.
    stopper = nn.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    stopper.on_train_begin()
    weights = [np.zeros((), np.float64)]
    trained = 0
    for epoch, loss in enumerate([0.2, 0.15, 0.1, 0.11, 0.12]):
        trained += 1
        weights[0][...] = epoch
        if stopper.update(epoch, {"val_loss": loss}, weights):
            break
    stopper.restore(weights)
    assert trained == 5 and float(weights[0]) == 2.0


# ------------------------------------------------------------------------------------------
# validation_split
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", [0.1, 0.2, 0.25, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("n", range(1, 51))
def test_validation_split_sizes_as_keras(n, split):
    # keras array_slicing.py::train_validation_split: the first floor(n * (1.0 - split)) samples
    # train, the rest validate; a split that leaves either part empty is a ValueError.
    n_train = math.floor(n * (1.0 - split))
    X = np.arange(2 * n, dtype=np.float32).reshape(n, 2)  # feature 0 names the sample: 2 * index
    y = np.zeros(n, np.int64)
    model = Recorder()
    if n_train == 0 or n_train == n:
        with pytest.raises(ValueError, match=rf"validation_split={split!r} of {n} samples"):
            nn.fit(model, X, y, validation_split=split, epochs=1, batch_size=64, shuffle=False,
                   loss=ScriptedLoss([1.0]), optimizer=nn.SGD(0.1))
        return
    h = nn.fit(model, X, y, validation_split=split, epochs=1, batch_size=64, shuffle=False,
               loss=ScriptedLoss([1.0]), optimizer=nn.SGD(0.1))
    assert model.seen[True] == [2.0 * i for i in range(n_train)]  # the first n_train samples train
    assert model.seen[False] == [2.0 * i for i in range(n_train, n)]  # the last ones validate
    assert "val_loss" in h.history


def test_validation_split_examples_from_the_issue():
    # n = 10, s = 0.25: Keras trains on floor(10 * 0.75) = 7 and validates on 3 (not 8 / 2).
    X, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.zeros(10, np.int64)
    model = Recorder()
    nn.fit(model, X, y, validation_split=0.25, epochs=1, batch_size=64, loss=ScriptedLoss([1.0]),
           optimizer=nn.SGD(0.1))
    assert len(model.seen[True]) == 7 and len(model.seen[False]) == 3
    # n = 5, s = 0.1: round(0.5) = 0 held out made X[:-0] empty (training on nothing, loss 0.0);
    # Keras trains on floor(5 * 0.9) = 4 and validates on 1
    model = Recorder()
    h = nn.fit(model, X[:5], y[:5], validation_split=0.1, epochs=1, batch_size=64, loss=ScriptedLoss([1.0]),
               optimizer=nn.SGD(0.1))
    assert len(model.seen[True]) == 4 and len(model.seen[False]) == 1 and h.history["loss"] == [1.0]
    # n = 3, s = 0.9: floor(0.3) = 0 would train on nothing: Keras raises, so does fit
    with pytest.raises(ValueError, match="both parts must be non-empty"):
        nn.fit(Recorder(), X[:3], y[:3], validation_split=0.9, epochs=1, loss=ScriptedLoss([1.0]))


def test_fit_refuses_empty_data():
    X, y = np.zeros((0, 2), np.float32), np.zeros(0, np.int64)
    with pytest.raises(ValueError, match="X has no samples"):
        nn.fit(Recorder(), X, y, epochs=1, loss=ScriptedLoss([1.0]))
    Xt, yt = np.ones((4, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="validation_data has no samples"):
        nn.fit(Recorder(), Xt, yt, validation_data=(X, y), epochs=1, loss=ScriptedLoss([1.0]))
    for bad, err in ((1.0, ValueError), (-0.1, ValueError), (float("nan"), ValueError), ("0.2", TypeError),
                     (True, TypeError)):
        with pytest.raises(err, match="validation_split"):
            nn.fit(Recorder(), Xt, yt, validation_split=bad, epochs=1, loss=ScriptedLoss([1.0]))


# ------------------------------------------------------------------------------------------
# Spatial dropout layouts
# ------------------------------------------------------------------------------------------

LAYOUTS = {  # the default (channels-first) and the channels-last layout, written out here
    dropkit.SpatialDropout1D: ("(batch, channels, length)", "(batch, length, channels)"),
    dropkit.SpatialDropout2D: ("(batch, channels, height, width)", "(batch, height, width, channels)"),
    dropkit.SpatialDropout3D: ("(batch, channels, depth, height, width)",
                               "(batch, depth, height, width, channels)"),
}


def test_spatial_dropout_1d_keras_layout_with_channels_last():
    # keras spatial_dropout_test.py::test_spatial_dropout_1D_correctness: Keras' SpatialDropout1D
    # takes (samples, timesteps, channels) and shares the mask along time. dropkit gives that
    # with data_format="channels_last"; its default is channels-first (N, C, L), mask shared
    # along the last axis: the issue's observation, now the documented behaviour.
    x = np.ones((10, 3, 10))
    keras_like = dropkit.SpatialDropout1D(0.5, data_format="channels_last", seed=0)(x, training=True)
    np.testing.assert_array_equal(keras_like[:, 0, :], keras_like[:, 1, :])
    assert (keras_like[:, :, 0] != keras_like[:, :, 1]).any()
    default = dropkit.SpatialDropout1D(0.5, seed=0)(x, training=True)
    assert np.all(default == default[:, :, :1]) and (default[:, 0, :] != default[:, 1, :]).any()


@pytest.mark.parametrize("cls", list(LAYOUTS))
def test_spatial_layout_stated_the_same_everywhere(cls):
    first, last = LAYOUTS[cls]
    doc = cls.__doc__
    assert first in doc.splitlines()[0] and "default" in doc.splitlines()[0]  # the summary line
    assert "channels_last" in doc and "Keras" in doc
    assert f"Keras ``{cls.__name__}`` (" not in doc  # never "(batch, channels, ...) (Keras ...)"
    rank = len(first.split(","))
    x = np.ones((2,) * (rank - 1))  # one axis short
    with pytest.raises(ValueError) as e:
        cls(0.5, seed=1)(x)
    msg = str(e.value)
    assert first in msg and "data_format='channels_first'" in msg and last in msg and "for x" in msg
    with pytest.raises(ValueError) as e:
        cls(0.5, "channels_last", seed=1)(x)
    assert str(e.value).index(last) < str(e.value).index(first)  # the format in use comes first
    # Keras' data_format=None (the global image_data_format) has no dropkit counterpart: an error
    # naming both layouts, not a silent guess
    with pytest.raises(ValueError, match="data_format must be 'channels_first' or 'channels_last', got None") as e:
        cls(0.5, None)
    assert first in str(e.value) and last in str(e.value)
    # docs/variants.md's table of differences states the same default layout
    variants_md = (DOCS / "variants.md").read_text()
    assert f"`{cls.__name__}`" in variants_md and first in variants_md


def test_spatial_dropout_1d_keras_positional_seed_is_caught():
    # Keras: SpatialDropout1D(rate, seed=None); dropkit's second argument is data_format
    with pytest.raises(ValueError, match=r"got 42: .*pass it as seed="):
        dropkit.SpatialDropout1D(0.5, 42)


def test_spatial_dropout_1d_docstring_does_not_claim_keras_default():
    doc = dropkit.SpatialDropout1D.__doc__
    assert "(samples, timesteps, channels)" in doc  # what Keras' layer takes, said as Keras'
    assert "(Keras ``SpatialDropout1D``)" not in doc


# ------------------------------------------------------------------------------------------
# Dropout and AlphaDropout: Keras' noise_shape and seed keywords
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise_shape", [(None, 1, None), (20, 1, 10), [20, 1, 10]])
def test_dropout_layer_noise_shape_as_keras_and_as_the_function(noise_shape, backend):
    # keras dropout_test.py::test_dropout_partial_noise_shape_dynamic / _static and
    # test_validate_noise_shape_cast_to_a_tuple; the noise is the functional API's, bit for bit.
    x = np.random.default_rng(0).standard_normal((20, 5, 10)).astype(np.float32)
    layer = dropkit.Dropout(0.5, noise_shape=noise_shape, seed=1337, backend=backend)
    assert layer.noise_shape == tuple(noise_shape) and isinstance(layer.noise_shape, tuple)
    y = layer(x, training=True)
    ones = dropkit.Dropout(0.5, noise_shape=noise_shape, seed=1337, backend=backend)(np.ones((20, 5, 10)))
    np.testing.assert_array_equal(ones[:, 0, :], ones[:, 1, :])
    expected = dropkit.dropout(x, 0.5, seed=1337, offset=0, noise_shape=noise_shape, backend=backend)
    np.testing.assert_array_equal(bits(y), bits(expected))
    assert layer.position == 20 * 10  # the counter advances by the noise size (docs/rng.md §8.3)
    np.testing.assert_array_equal(layer.mask, y != 0)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    gb = dropkit.dropout_nd_backward(g, 0.5, seed=1337, offset=0, noise_shape=noise_shape, backend=backend)
    np.testing.assert_array_equal(bits(layer.backward(g)), bits(gb))
    # the next call continues the stream
    y2 = layer(x)
    e2 = dropkit.dropout(x, 0.5, seed=1337, offset=200, noise_shape=noise_shape, backend=backend)
    np.testing.assert_array_equal(bits(y2), bits(e2))
    # evaluation: the identity (inverted), nothing drawn
    assert layer(x, training=False) is x and layer.position == 400


@pytest.mark.parametrize("noise_shape", [(None, 1, None), (20, 1, 10)])
def test_alpha_dropout_layer_noise_shape_as_keras_and_as_the_function(noise_shape, backend):
    # keras alpha_dropout_test.py::test_alpha_dropout_partial_noise_shape_dynamic / _static
    x = np.random.default_rng(2).standard_normal((20, 5, 10)).astype(np.float32)
    ones = dropkit.AlphaDropout(0.5, noise_shape=noise_shape, seed=1337, backend=backend)(np.ones((20, 5, 10)))
    np.testing.assert_array_equal(ones[:, 0, :], ones[:, 1, :])
    layer = dropkit.AlphaDropout(0.5, noise_shape, 1337, backend=backend)  # Keras' positional order
    y = layer(x)
    expected = dropkit.alpha_dropout(x, 0.5, seed=1337, noise_shape=noise_shape, backend=backend)
    np.testing.assert_array_equal(bits(y), bits(expected))
    assert layer.position == 200
    g = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    layer.noise_shape = None  # changing it after the forward does not change that forward's backward
    gb = dropkit.alpha_dropout_backward(g, 0.5, seed=1337, noise_shape=noise_shape, backend=backend)
    np.testing.assert_array_equal(bits(layer.backward(g)), bits(gb))


def test_keras_positional_signature_and_bad_noise_shapes():
    # Keras: Dropout(rate, noise_shape=None, seed=None)
    a = dropkit.Dropout(0.3, (None, 1), 7)
    b = dropkit.Dropout(rate=0.3, noise_shape=(None, 1), seed=7)
    x = np.ones((6, 4), np.float32)
    np.testing.assert_array_equal(a(x), b(x))
    assert dropkit.Dropout(0.5, noise_shape=None).noise_shape is None
    # keras dropout_test.py::test_validate_noise_shape_*: non-iterables, non-integers, 0 and negative
    # sizes are refused at construction (TypeError for the types, dropkit's rule; ValueError for sizes)
    for bad, err in (("Invalid", TypeError), ((20, 1.5, 10), TypeError), ((20, True, 10), TypeError),
                     (5, TypeError), ((20, -1, 10), ValueError), ((20, 0, 10), ValueError)):
        for cls in (dropkit.Dropout, dropkit.AlphaDropout):
            with pytest.raises(err, match="noise_shape"):
                cls(0.5, noise_shape=bad)
    # a noise_shape that does not fit the input: an error at forward, nothing drawn
    layer = dropkit.Dropout(0.5, noise_shape=(None, 3), seed=1)
    with pytest.raises(ValueError):
        layer(np.ones((2, 4), np.float32))
    assert layer.position == 0
    # layers with their own noise shape take none
    with pytest.raises(TypeError, match="noise_shape must be None"):
        dropkit.FeatureAlphaDropout(0.5).noise_shape = (None, 1)
    with pytest.raises(TypeError, match="noise_shape must be None"):
        dropkit.SpatialDropout2D(0.5).noise_shape = (None, 1, 1, 1)


# ------------------------------------------------------------------------------------------
# Errors that name the argument the caller passed
# ------------------------------------------------------------------------------------------

RAGGED = [[1.0, 2.0], [3.0]]


def _ragged_calls():
    f = np.ones((2, 2), np.float32)
    calls = {
        "dropout": lambda b: dropkit.dropout(RAGGED, 0.3, seed=5, backend=b),
        "dropout_backward": lambda b: dropkit.dropout_backward(RAGGED, 0.3, seed=5, backend=b),
        "dropout_nd": lambda b: dropkit.dropout_nd(RAGGED, 0.3, seed=5, backend=b),
        "dropout_nd_backward": lambda b: dropkit.dropout_nd_backward(RAGGED, 0.3, seed=5, backend=b),
        "gaussian_dropout": lambda b: dropkit.gaussian_dropout(RAGGED, 0.3, seed=5, backend=b),
        "gaussian_dropout_backward": lambda b: dropkit.gaussian_dropout_backward(RAGGED, 0.3, seed=5, backend=b),
        "alpha_dropout": lambda b: dropkit.alpha_dropout(RAGGED, 0.3, seed=5, backend=b),
        "alpha_dropout_backward": lambda b: dropkit.alpha_dropout_backward(RAGGED, 0.3, seed=5, backend=b),
        "feature_alpha_dropout": lambda b: dropkit.feature_alpha_dropout(RAGGED, 0.3, seed=5, backend=b),
        "feature_alpha_dropout_backward": lambda b: dropkit.feature_alpha_dropout_backward(
            RAGGED, 0.3, seed=5, backend=b),
        "concrete_dropout": lambda b: dropkit.concrete_dropout(RAGGED, 0.0, temperature=0.1, seed=5, backend=b),
        "concrete_dropout_backward(grad)": lambda b: dropkit.concrete_dropout_backward(
            RAGGED, f, 0.0, temperature=0.1, seed=5, backend=b),
        "concrete_dropout_backward(x)": lambda b: dropkit.concrete_dropout_backward(
            f, RAGGED, 0.0, temperature=0.1, seed=5, backend=b),
    }
    layers = {
        "Dropout": lambda b: dropkit.Dropout(0.3, seed=1, backend=b),
        "InvertedDropout": lambda b: dropkit.InvertedDropout(0.7, seed=1, backend=b),
        "SpatialDropout1D": lambda b: dropkit.SpatialDropout1D(0.3, seed=1, backend=b),
        "TemporalDropout": lambda b: dropkit.TemporalDropout(0.3, seed=1, backend=b),
        "DropPath": lambda b: dropkit.DropPath(0.3, seed=1, backend=b),
        "AdaptiveDropout": lambda b: dropkit.AdaptiveDropout(0.3, seed=1, backend=b),
        "AdaptiveDropout-standout": lambda b: dropkit.AdaptiveDropout(mode="standout", seed=1, backend=b),
        "CurriculumDropout": lambda b: dropkit.CurriculumDropout(0.3, 2, seed=1, backend=b),
        "GaussianDropout": lambda b: dropkit.GaussianDropout(0.3, seed=1, backend=b),
        "AlphaDropout": lambda b: dropkit.AlphaDropout(0.3, seed=1, backend=b),
        "FeatureAlphaDropout": lambda b: dropkit.FeatureAlphaDropout(0.3, seed=1, backend=b),
        "ConcreteDropout": lambda b: dropkit.ConcreteDropout(seed=1, backend=b),
    }
    for name, make in layers.items():
        calls[name + ".forward"] = (lambda make: lambda b: make(b).forward(RAGGED))(make)

        def backward(b, make=make):
            layer = make(b)
            layer.forward(np.ones((2, 3, 2), np.float32))
            return layer.backward(RAGGED)

        calls[name + ".backward"] = backward
    return calls


RAGGED_CALLS = _ragged_calls()


@pytest.mark.parametrize("name", list(RAGGED_CALLS))
def test_ragged_list_names_the_argument(name, backend):
    # NumPy's "setting an array element with a sequence" names no argument; the caller's does
    arg = "x" if name.endswith("forward") or name.endswith("(x)") or not (
        "backward" in name) else "grad"
    with pytest.raises(ValueError, match=rf"^{arg} must be a rectangular array_like .*\[\[1\.0, 2\.0\], \[3\.0\]\]"):
        RAGGED_CALLS[name](backend)


def test_adaptive_update_names_activations_when_ragged():
    with pytest.raises(ValueError, match="^activations must be a rectangular array_like"):
        dropkit.AdaptiveDropout(0.3, seed=1).update_dropout_rates(RAGGED)


def test_adaptive_error_names_initial_rate():
    # the keyword the caller used, not the internal name "rate"
    with pytest.raises(ValueError, match=r"^initial_rate must be in \[0, 1\], got 1.5"):
        dropkit.AdaptiveDropout(initial_rate=1.5)
    with pytest.raises(ValueError, match=r"^initial_rate must be in \[0, 1\], got -0.1"):
        dropkit.AdaptiveDropout(-0.1)


def test_shape_errors_name_x():
    with pytest.raises(ValueError, match=r"got shape \(6,\) for x"):
        dropkit.TemporalDropout().forward(np.ones(6))
    with pytest.raises(ValueError, match=r"got shape \(\) for x"):
        dropkit.DropPath(0.5).forward(np.float32(1.0))


@pytest.mark.parametrize("fwd,grad", [(np.float32, np.float64), (np.float64, np.float32),
                                      (np.float16, np.float32), (np.float64, np.float16)])
def test_concrete_layer_backward_with_another_grad_dtype(fwd, grad, backend):
    # As every layer (Dropout, GaussianDropout, ...): a gradient of another float dtype is accepted
    # and dx has grad's dtype. docs/rng.md §13.3: dx is the forward applied to grad (so its bits are
    # those of concrete_dropout(grad)), and dlogit is a binary64 sum of exactly widened grad and x,
    # so it equals the backward with both widened to float64.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 7)).astype(fwd)
    g = rng.standard_normal((5, 7)).astype(grad)
    layer = dropkit.ConcreteDropout(temperature=0.2, init_rate=0.3, seed=11, backend=backend)
    layer.forward(x)
    dx = layer.backward(g)
    assert dx.dtype == np.dtype(grad)
    logit, t = layer.dropout_rate, layer.temperature
    np.testing.assert_array_equal(
        bits(dx), bits(dropkit.concrete_dropout(g, logit, temperature=t, seed=11, backend=backend)))
    _, dlogit64 = dropkit.concrete_dropout_backward(g.astype(np.float64), x.astype(np.float64), logit,
                                                    temperature=t, seed=11, backend=backend)
    assert layer.dropout_rate_grad == dlogit64


# ------------------------------------------------------------------------------------------
# AdaptiveDropout: non-finite activations and overflowing means
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_adaptive_refuses_non_finite_activations_and_keeps_adapting(bad):
    clean1 = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    clean2 = np.array([[0.5, 4.0, 1.0], [0.5, 0.0, 1.0]])
    poisoned = clean2.copy()
    poisoned[1, 2] = bad
    layer = dropkit.AdaptiveDropout(0.4, adaptation_rate=0.5, seed=3)
    fresh = dropkit.AdaptiveDropout(0.4, adaptation_rate=0.5, seed=3)
    layer.update_dropout_rates(clean1)
    fresh.update_dropout_rates(clean1)
    with pytest.raises(ValueError, match=r"^activations must be finite .* at index \(1, 2\)"):
        layer.update_dropout_rates(poisoned)
    # nothing was updated: the layer adapts on as if the bad batch had never come
    np.testing.assert_array_equal(layer.neuron_importance, fresh.neuron_importance)
    r = layer.update_dropout_rates(clean2)
    np.testing.assert_array_equal(r, fresh.update_dropout_rates(clean2))
    # the rates by hand: importance = 0.5 * (0.5 * 1 + 0.5 * mean|clean1|) + 0.5 * mean|clean2|
    imp = 0.5 * (0.5 + 0.5 * np.array([2.0, 2.0, 2.0])) + 0.5 * np.array([0.5, 2.0, 1.0])
    np.testing.assert_allclose(r, 0.4 * (1 - imp / imp.max()), rtol=1e-15)
    assert np.isfinite(layer.forward(np.ones((2, 3)))).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_mean_that_would_overflow(dtype):
    big = np.finfo(dtype).max / 2 * 1.5  # two of them overflow the sum, not the mean
    acts = np.array([[big, big], [big, 0.0]], dtype)
    layer = dropkit.AdaptiveDropout(0.5, adaptation_rate=0.01, seed=1)
    rates = layer.update_dropout_rates(acts)
    # importance = 0.99 * 1 + 0.01 * [big, big / 2]: the ratio is 1/2 up to rounding
    assert np.isfinite(layer.neuron_importance).all() and np.isfinite(rates).all()
    np.testing.assert_allclose(rates, [0.0, 0.25], rtol=1e-6, atol=1e-7)
    assert np.isfinite(layer.forward(np.ones((3, 2), dtype))).all()
    # a moving average that rounds past the largest float is held at the largest float
    layer.neuron_importance = np.full(2, np.finfo(dtype).max, dtype)
    layer.adaptation_rate = 0.5
    rates = layer.update_dropout_rates(np.array([[np.finfo(dtype).max, 0.0]], dtype))
    assert np.isfinite(layer.neuron_importance).all() and np.isfinite(rates).all()


NN_LAYERS = {
    "DenseLayer": (lambda: nn.DenseLayer(2, 3, seed=0), (4, 2)),
    "ReLU": (lambda: nn.ReLU(), (4, 2)),
    "BatchNormalization": (lambda: nn.BatchNormalization(), (4, 2)),
    "Conv2D": (lambda: nn.Conv2D(2, 2, seed=0), (1, 1, 3, 3)),
    "MaxPooling2D": (lambda: nn.MaxPooling2D(2), (1, 1, 4, 4)),
    "Flatten": (lambda: nn.Flatten(), (4, 2)),
}


@pytest.mark.parametrize("name", list(NN_LAYERS))
def test_nn_layers_name_a_ragged_argument(name):
    make, shape = NN_LAYERS[name]
    with pytest.raises(ValueError, match=r"^x must be a rectangular array_like"):
        make().forward(RAGGED, True)
    layer = make()
    layer.forward(np.ones(shape, np.float32), True)
    with pytest.raises(ValueError, match=r"^grad must be a rectangular array_like"):
        layer.backward(RAGGED)


def test_fit_names_a_ragged_argument():
    Xt, yt = np.ones((4, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match=r"^X must be a rectangular array_like"):
        nn.fit(Recorder(), RAGGED, [0, 1], epochs=1, loss=ScriptedLoss([1.0]))
    with pytest.raises(ValueError, match=r"^y must be a rectangular array_like"):
        nn.fit(Recorder(), Xt, [[0], [1, 2], [0], [0]], epochs=1, loss=ScriptedLoss([1.0]))
    with pytest.raises(ValueError, match=r"^validation_data\[0\] must be a rectangular array_like"):
        nn.fit(Recorder(), Xt, yt, validation_data=(RAGGED, [0, 1]), epochs=1, loss=ScriptedLoss([1.0]))
