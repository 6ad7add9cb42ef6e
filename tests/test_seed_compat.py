"""The seed documents' code runs on dropkit with only the import changed.

The code blocks of seed 000 (slides 2, 3 and 4) are copied verbatim below, as strings executed in
a namespace where ``np`` is numpy and ``Dropout`` is ``dropkit.Dropout``; that namespace stands
for the seed's ``import numpy as np`` plus ``from dropkit import Dropout`` in place of the seed's
own class. Usages of slides 1, 6 and 13 and the math of slide 5 and of seed 002 (classic dropout)
are checked against expectations computed from the masks and from NumPy arithmetic.
"""
from __future__ import annotations

import contextlib
import io
import math
import re
import warnings

import numpy as np
import pytest

import dropkit
from dropkit import Dropout, InvertedDropout

# ---- seed 000, slide 2, verbatim ------------------------------------------------------------
SLIDE_2 = r'''
class SimpleNNWithDropout:
    def __init__(self, input_size, hidden_size, output_size):
        self.W1 = np.random.randn(input_size, hidden_size) * 0.01
        self.W2 = np.random.randn(hidden_size, output_size) * 0.01
        self.dropout1 = Dropout(dropout_rate=0.2)
        self.dropout2 = Dropout(dropout_rate=0.5)
        
    def forward(self, X, training=True):
        self.dropout1.training = training
        self.dropout2.training = training
        
        # First layer with dropout
        h1 = np.maximum(0, X.dot(self.W1))  # ReLU activation
        h1_dropout = self.dropout1.forward(h1)
        
        # Second layer with dropout
        h2 = np.maximum(0, h1_dropout.dot(self.W2))
        out = self.dropout2.forward(h2)
        
        return out
'''

# ---- seed 000, slide 3, verbatim ------------------------------------------------------------
SLIDE_3 = r'''
def train_network(model, X_train, y_train, epochs=100):
    batch_size = 32
    learning_rate = 0.01
    
    for epoch in range(epochs):
        # Training phase - dropout active
        model.dropout1.training = True
        model.dropout2.training = True
        
        # Mini-batch training
        indices = np.random.permutation(len(X_train))
        for i in range(0, len(X_train), batch_size):
            batch_idx = indices[i:i+batch_size]
            X_batch = X_train[batch_idx]
            y_batch = y_train[batch_idx]
            
            # Forward pass with dropout
            output = model.forward(X_batch)
            
            # Backward pass and update weights
            # (Implementation details omitted for brevity)

        # Validation phase - dropout inactive
        model.dropout1.training = False
        model.dropout2.training = False
        val_output = model.forward(X_val)
'''

# ---- seed 000, slide 4, verbatim ------------------------------------------------------------
SLIDE_4 = r'''
class AdaptiveDropout(Dropout):
    def __init__(self, initial_rate=0.5, adaptation_rate=0.01):
        super().__init__(initial_rate)
        self.adaptation_rate = adaptation_rate
        self.neuron_importance = None
        
    def update_dropout_rates(self, activations):
        if self.neuron_importance is None:
            self.neuron_importance = np.ones_like(activations.mean(axis=0))
            
        # Update importance based on activation patterns
        current_importance = np.abs(activations).mean(axis=0)
        self.neuron_importance = (1 - self.adaptation_rate) * self.neuron_importance + \
                               self.adaptation_rate * current_importance
                               
        # Adjust dropout rates inversely to importance
        adjusted_rates = self.rate * (1 - self.neuron_importance/np.max(self.neuron_importance))
        return adjusted_rates
'''

# ---- seed 000, slide 5, verbatim ------------------------------------------------------------
SLIDE_5 = r'''
def dropout_math_example():
    """
    Mathematical representation of dropout in code
    """
    # Expected value calculation
    def E(x, p):
        """
        $$E[y] = E[\frac{x \cdot \text{Bernoulli}(p)}{p}] = x$$
        """
        return x
    
    # Variance calculation
    def Var(x, p):
        """
        $$Var[y] = \frac{x^2(1-p)}{p}$$
        """
        return (x**2 * (1-p))/p
    
    # Example values
    x = 1.0
    p = 0.5
    
    print(f"Expected value: {E(x, p)}")
    print(f"Variance: {Var(x, p)}")
'''


def run_seed(*sources, **extra):
    """Execute seed code with ``np`` = numpy and ``Dropout`` = dropkit.Dropout."""
    ns = {"np": np, "Dropout": Dropout, "__name__": "seed000"}
    ns.update(extra)
    for src in sources:
        # The seed's docstrings hold LaTeX such as "\cdot" in non-raw strings: an invalid escape,
        # which Python warns about at compile time. That warning is the seed's, not dropkit's.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            code = compile(src, "<seed 000>", "exec")
        exec(code, ns)
    return ns


def sigma5(p, n):
    return 5 * math.sqrt(p * (1 - p) / n)


def variance_bound(x, rate, n):
    """5-sigma bound on |sample variance - Var| for n draws of y = x B / q, B ~ Bernoulli(q).

    Sample variance = mean((y - x)^2) - (mean(y) - x)^2. With Z = B / q - 1: E Z^2 = r / q and
    E Z^4 = r^4 / q^3 + r, so the first term has sd x^2 sqrt((E Z^4 - (E Z^2)^2) / n); the second
    is at most (5 sd(mean))^2 = 25 Var / n. (At rate 0.5 the first sd is 0: only the second counts.)
    """
    q = 1 - rate
    var = x**2 * rate / q
    mu4 = x**4 * (rate**4 / q**3 + rate)
    return 5 * math.sqrt(max(mu4 - var**2, 0.0) / n) + 25 * var / n * (1 + 1e-9)


# ------------------------------------------------------------------------------------------
# Slide 2: SimpleNNWithDropout
# ------------------------------------------------------------------------------------------


def test_slide2_network_forward():
    ns = run_seed(SLIDE_2)
    model = ns["SimpleNNWithDropout"](784, 128, 10)
    assert isinstance(model.dropout1, Dropout) and model.dropout1.rate == 0.2
    assert model.dropout2.rate == 0.5
    X = np.random.default_rng(0).standard_normal((256, 784))

    out = model.forward(X, training=True)
    assert out.shape == (256, 10) and out.dtype == np.float64
    m1, m2 = model.dropout1.mask, model.dropout2.mask
    assert m1.shape == (256, 128) and m2.shape == (256, 10)
    assert abs((~m1).mean() - 0.2) < sigma5(0.2, m1.size)
    assert abs((~m2).mean() - 0.5) < sigma5(0.5, m2.size)
    assert model.dropout1.position == 256 * 128 and model.dropout2.position == 256 * 10

    # Rebuild the forward from the masks: kept units scaled by 1/(1-rate), dropped exactly 0.
    h1 = np.maximum(0, X.dot(model.W1))
    h1_dropout = np.where(m1, h1 * (1 / (1 - 0.2)), 0.0)
    h2 = np.maximum(0, h1_dropout.dot(model.W2))
    assert (h2 > 0).mean() > 0.2  # enough live units for the check below to mean something
    np.testing.assert_allclose(out, np.where(m2, h2 * 2.0, 0.0), rtol=1e-12, atol=0)
    assert (out[~m2] == 0).all()
    zeros = (out == 0).mean()
    assert zeros >= 0.5 - sigma5(0.5, out.size)  # at least the dropped half is exactly zero

    ev1 = model.forward(X, training=False)
    ev2 = model.forward(X, training=False)
    np.testing.assert_array_equal(ev1, ev2)  # eval is deterministic
    np.testing.assert_allclose(ev1, np.maximum(0, np.maximum(0, X.dot(model.W1)).dot(model.W2)),
                               rtol=1e-12)
    assert model.dropout1.position == 256 * 128  # eval does not consume the stream
    assert model.dropout1.mask is None

    out2 = model.forward(X, training=True)
    assert (model.dropout2.mask != m2).any() and (out2 != out).any()  # fresh masks each step


# ------------------------------------------------------------------------------------------
# Slide 3: the training loop
# ------------------------------------------------------------------------------------------


def test_slide3_training_loop_runs():
    rng = np.random.default_rng(1)
    X_train = rng.standard_normal((100, 784))
    y_train = rng.integers(0, 10, 100)
    X_val = rng.standard_normal((20, 784))
    ns = run_seed(SLIDE_2, SLIDE_3, X_val=X_val)
    model = ns["SimpleNNWithDropout"](784, 128, 10)
    ns["train_network"](model, X_train, y_train, epochs=3)
    # Every sample of every epoch went through dropout1. Note that the seed's validation phase
    # also runs in training mode: SimpleNNWithDropout.forward(X, training=True) overwrites the
    # .training = False set just before it (a quirk of the seed code, reproduced faithfully).
    assert model.dropout1.position == 3 * (100 + 20) * 128
    assert model.dropout2.position == 3 * (100 + 20) * 10
    assert model.dropout1.training is True


# ------------------------------------------------------------------------------------------
# Slide 4: AdaptiveDropout subclass
# ------------------------------------------------------------------------------------------


def test_slide4_adaptive_dropout_subclass():
    ns = run_seed(SLIDE_4)
    layer = ns["AdaptiveDropout"]()
    assert isinstance(layer, Dropout) and layer.rate == 0.5 and layer.training is True
    layer2 = ns["AdaptiveDropout"](0.3, adaptation_rate=0.1)
    assert layer2.rate == 0.3
    acts = np.abs(np.random.default_rng(2).standard_normal((64, 16))) * np.arange(1, 17)
    rates = layer2.update_dropout_rates(acts)
    importance = 0.9 * np.ones(16) + 0.1 * np.abs(acts).mean(axis=0)
    np.testing.assert_allclose(rates, 0.3 * (1 - importance / importance.max()))
    assert rates.shape == (16,) and rates.min() == 0.0 and (rates <= 0.3).all()
    # the subclass is still a working dropout layer
    x = np.ones((64, 16))
    y = layer2.forward(x)
    np.testing.assert_array_equal(y, np.where(layer2.mask, 1 / (1 - 0.3), 0.0))
    assert layer2.backward(x).shape == (64, 16)


# ------------------------------------------------------------------------------------------
# Slide 1: Dropout(dropout_rate=...) with .training and backward
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_slide1_usage(dtype):
    d = Dropout(dropout_rate=0.5)
    d.training = True
    inputs = np.random.default_rng(3).standard_normal((32, 64)).astype(dtype)
    out = d.forward(inputs)
    mask = d.mask
    assert out.dtype == dtype
    # The seed's forward: (inputs * mask) / (1 - rate); exact here since 1 / 0.5 = 2.
    np.testing.assert_array_equal(out, (inputs * mask) / (1 - 0.5))
    g = np.random.default_rng(4).standard_normal((32, 64)).astype(dtype)
    # WE DIFFER FROM THE SEED HERE: slide 1's backward returns grad_output * self.mask and forgets
    # the 1/(1 - rate) scale of its own forward. dropkit's backward is the true gradient.
    np.testing.assert_array_equal(d.backward(g), g * mask / (1 - 0.5))
    assert (d.backward(g) != g * mask).any()
    d.training = False
    assert d.forward(inputs) is inputs


# ------------------------------------------------------------------------------------------
# Slide 6: InvertedDropout(keep_prob=...)
# ------------------------------------------------------------------------------------------


def test_slide6_inverted_dropout():
    layer = InvertedDropout(keep_prob=0.8)
    x = np.random.default_rng(5).standard_normal((128, 100))
    y = layer.forward(x, training=True)
    mask = layer.mask
    assert abs((~mask).mean() - 0.2) < sigma5(0.2, mask.size)
    # The seed computes (x * mask) / keep_prob; dropkit multiplies by 1 / keep_prob rounded once,
    # which may differ in the last bit.
    np.testing.assert_allclose(y, (x * mask) / 0.8, rtol=1e-15, atol=0)
    assert (y[~mask] == 0).all()
    dout = np.random.default_rng(6).standard_normal((128, 100))
    np.testing.assert_allclose(layer.backward(dout), dout * mask / 0.8, rtol=1e-15, atol=0)
    assert layer.forward(x, training=False) is x


# ------------------------------------------------------------------------------------------
# Slide 13: Dropout(drop_rate=...).forward(x, training) with training positional
# ------------------------------------------------------------------------------------------


def test_slide13_drop_rate_positional_training():
    sizes = [50, 40, 30, 10]
    layers = [Dropout(drop_rate=0.3 if i < len(sizes) - 2 else 0.5) for i in range(len(sizes) - 1)]
    assert [layer.rate for layer in layers] == [0.3, 0.3, 0.5]
    x = np.abs(np.random.default_rng(7).standard_normal((400, 50))) + 0.1
    training = True
    y = layers[0].forward(x, training)
    assert abs((y == 0).mean() - 0.3) < sigma5(0.3, y.size)
    np.testing.assert_allclose(y, np.where(y != 0, x / 0.7, 0.0), rtol=1e-15)
    training = False
    assert layers[0].forward(x, training) is x


# ------------------------------------------------------------------------------------------
# Slide 5: E[y] = x and Var[y] = x^2 (1 - p) / p, p the KEEP probability
# ------------------------------------------------------------------------------------------


def test_slide5_printed_values_match_dropkit(capsys):
    ns = run_seed(SLIDE_5)
    ns["dropout_math_example"]()
    printed = capsys.readouterr().out
    e = float(re.search(r"Expected value: (\S+)", printed).group(1))
    v = float(re.search(r"Variance: (\S+)", printed).group(1))
    # The slide's example: x = 1, keep p = 0.5, i.e. dropkit rate 0.5.
    assert (e, v) == (1.0, 1.0)
    n = 1 << 20
    y = dropkit.dropout(np.ones(n), 0.5, seed=500).astype(np.float64)
    assert abs(y.mean() - e) < 5 * math.sqrt(v / n)
    assert abs(y.var() - v) < variance_bound(1.0, 0.5, n)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5, 0.8])
@pytest.mark.parametrize("x", [1.0, -2.5])
def test_slide5_mean_and_variance(rate, x):
    keep = 1 - rate  # the slide's p

    def E(x, p):  # slide 5
        return x

    def Var(x, p):  # slide 5
        return (x**2 * (1 - p)) / p

    assert Var(x, keep) == pytest.approx(x**2 * rate / (1 - rate))
    n = 1 << 20
    y = dropkit.dropout(np.full(n, x), rate, seed=int(rate * 1000) + 5, offset=n).astype(np.float64)
    var = Var(x, keep)
    assert abs(y.mean() - E(x, keep)) < 5 * math.sqrt(var / n)
    assert abs(y.var() - var) < variance_bound(x, rate, n)


# ------------------------------------------------------------------------------------------
# Seed 002: classic dropout, h~ = M * h in training and (1 - p) h at inference
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.7])
def test_seed002_classic_formulation(rate):
    layer = Dropout(rate, inverted=False, seed=2002)
    h = np.random.default_rng(8).uniform(0.5, 2.0, (512, 512))
    train = layer.forward(h)
    M = layer.mask
    np.testing.assert_array_equal(train, M * h)  # M ~ Bernoulli(1 - p), no scaling
    assert abs(M.mean() - (1 - rate)) < sigma5(1 - rate, M.size)
    ev = layer.forward(h, training=False)
    np.testing.assert_array_equal(ev, (1 - rate) * h)  # float64: one rounding, as NumPy's
    # E[train y] = E[eval y]: compare the means over all units; y_i = M_i h_i, Var = q(1-q) h_i^2.
    sd = math.sqrt(((1 - rate) * rate * h**2).sum()) / h.size
    assert abs(train.mean() - ev.mean()) < 5 * sd
    # backward in training is M * grad
    g = np.random.default_rng(9).standard_normal(h.shape)
    layer.forward(h)
    np.testing.assert_array_equal(layer.backward(g), layer.mask * g)


def test_seed002_classic_functional_float32():
    rate = 0.4
    h = np.random.default_rng(10).uniform(-2, 2, 10_000).astype(np.float32)
    M = dropkit.dropout_mask(h.shape, rate, seed=1)
    np.testing.assert_array_equal(dropkit.dropout(h, rate, seed=1, inverted=False), M * h)
    ev = dropkit.dropout(h, rate, seed=1, training=False, inverted=False)
    assert ev.dtype == np.float32
    np.testing.assert_array_equal(ev, h * np.float32(1 - rate))
