"""The seed networks of seed 000 (slides 2, 3 and 13) run on dropkit with only the imports changed,
and train: the seed's code is executed verbatim (as strings), in a namespace holding what its
imports would bring (``np`` and dropkit's classes)."""
from __future__ import annotations

import numpy as np
import pytest

import dropkit
from dropkit import nn

pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn (the 'test' extra)")

# Slides 2 and 3, verbatim, are kept once, in test_seed_compat.py.
from test_seed_compat import SLIDE_2, SLIDE_3  # noqa: E402

# ---- seed 000, slide 13, verbatim -----------------------------------------------------------
SLIDE_13 = r'''
class RegularizedNetwork:
    def __init__(self, input_size, hidden_sizes, output_size):
        self.layers = []
        sizes = [input_size] + hidden_sizes + [output_size]
        
        for i in range(len(sizes)-1):
            self.layers.extend([
                DenseLayer(sizes[i], sizes[i+1], 
                          l1_reg=0.0001, 
                          l2_reg=0.0001),
                BatchNormalization(),
                Dropout(drop_rate=0.3 if i < len(sizes)-2 else 0.5),
                ReLU()
            ])
            
    def forward(self, x, training=True):
        reg_loss = 0
        for layer in self.layers:
            if hasattr(layer, 'reg_loss'):
                reg_loss += layer.reg_loss()
            x = layer.forward(x, training)
        return x, reg_loss
'''


def run_seed(*sources, **names):
    """Execute seed code where ``import numpy as np`` and the dropkit imports have been done."""
    ns = {"np": np, "__name__": "seed000", **names}
    for src in sources:
        exec(compile(src, "<seed 000>", "exec"), ns)
    return ns


@pytest.fixture(autouse=True)
def one_blas_thread():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="installed with scikit-learn")
    with threadpoolctl.threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits():
    X, y = nn.datasets.load_digits()
    return nn.datasets.train_val_split(X, y, 0.3, seed=1)


def test_slide3_loop_runs_on_dropkit_nn_model(digits):
    """The seed's own loop (slide 3) drives dropkit.nn.SimpleNNWithDropout, the seed's interface."""
    (Xt, yt), (Xv, _) = digits
    model = nn.SimpleNNWithDropout(64, 32, 10, seed=0)
    ns = run_seed(SLIDE_3, SimpleNNWithDropout=nn.SimpleNNWithDropout, X_val=Xv)
    ns["train_network"](model, Xt, yt, epochs=2)
    # the seed's forward(X) defaults to training=True, also for its validation pass (a seed quirk)
    assert model.dropout1.position == 2 * (len(Xt) + len(Xv)) * 32
    assert model.dropout2.position == 2 * (len(Xt) + len(Xv)) * 10


def test_slides_2_and_3_completed_train(digits):
    """dropkit.nn's SimpleNNWithDropout and train_network (the seed's signatures) learn digits:
    the same forward as the seed, plus the backward pass and SGD updates the seed omitted."""
    (Xt, yt), (Xv, yv) = digits
    model = nn.SimpleNNWithDropout(64, 64, 10, seed=0)
    seed_ns = run_seed(SLIDE_2, Dropout=dropkit.Dropout)
    # Same forward as the seed's class: copy our weights and stream seeds into the seed's model.
    seed_model = seed_ns["SimpleNNWithDropout"](64, 64, 10)
    seed_model.W1, seed_model.W2 = model.W1.astype(np.float64), model.W2.astype(np.float64)
    seed_model.dropout1.seed, seed_model.dropout2.seed = model.dropout1.seed, model.dropout2.seed
    x50 = Xt[:50].astype(np.float64)
    np.testing.assert_allclose(model.forward(x50), seed_model.forward(x50), rtol=1e-5, atol=1e-6)
    before = nn.evaluate(model, Xv, yv)[1]
    h = nn.train_network(model, Xt, yt, epochs=100, X_val=Xv, y_val=yv, seed=0)  # the seed's 100
    # The seed's network ends on ReLU + Dropout(0.5): a class whose output unit dies (ReLU at 0 for
    # every input) gets no gradient any more, which caps the accuracy (0.69 here); still far above
    # chance (0.1) and the untrained net.
    assert before < 0.3 and h.history["val_accuracy"][-1] > 0.6, (before, h.history["val_accuracy"][-1])
    assert h.history["loss"][-1] < 0.75 * h.history["loss"][0]
    assert not model.dropout1.training  # validation ran with dropout off


def test_slide13_verbatim_runs_and_trains(digits):
    """The seed's RegularizedNetwork, verbatim, on dropkit.nn's layers and dropkit's Dropout."""
    (Xt, yt), (Xv, yv) = digits
    ns = run_seed(SLIDE_13, DenseLayer=nn.DenseLayer, BatchNormalization=nn.BatchNormalization,
                  Dropout=dropkit.Dropout, ReLU=nn.ReLU)
    net = ns["RegularizedNetwork"](64, [64, 32], 10)
    out, reg = net.forward(Xt[:40], True)
    assert out.shape == (40, 10) and out.dtype == np.float32 and (out >= 0).all()  # the seed ends on ReLU
    dense = [la for la in net.layers if isinstance(la, nn.DenseLayer)]
    expected = sum(1e-4 * np.abs(d.W.astype(np.float64)).sum() + 1e-4 * (d.W.astype(np.float64) ** 2).sum()
                   for d in dense)
    assert reg == pytest.approx(expected, rel=1e-9)
    # the last block's Dropout(0.5) on the outputs: about half of them zeroed
    assert net.layers[-2].rate == 0.5 and net.layers[2].rate == 0.3
    # dropkit.nn.fit trains the seed's class through its .layers (it has no backward of its own)
    h = nn.fit(net, Xt, yt, validation_data=(Xv, yv), epochs=15, seed=0, optimizer=nn.Adam(0.003))
    assert h.history["val_accuracy"][-1] > 0.8
    ev1, _ = net.forward(Xv, False)
    ev2, _ = net.forward(Xv, False)
    np.testing.assert_array_equal(ev1, ev2)  # evaluation mode is deterministic (running statistics)
