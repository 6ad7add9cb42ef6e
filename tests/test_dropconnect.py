"""DropConnect / weight dropout (docs/rng.md §18): the functional helpers, ``dropkit.nn.Dense(...,
dropconnect=rate)`` and the PyTorch parametrization ``dropkit.torch_blocks.DropConnect``.

Expected values come from the stream rebuilt from ``philox4x32_10`` (tests/test_blocks.py
``stream_u``), from ``x @ (W * keep / (1 - rate)) + b`` written out, and from finite differences.
The parametrization's checks mirror PyTorch's ``test/nn/test_parametrization.py`` (state_dict
round trip, ``remove_parametrizations``, ``cached``) and AWD-LSTM's ``WeightDrop`` use
(``weight_hh_l0`` of an LSTM).
"""
from __future__ import annotations

import numpy as np
import pytest

import dropkit
from dropkit import blocks
from dropkit.nn import SGD, Dense, Dropout, ReLU, Sequential, SoftmaxCrossEntropy

from _helpers import TWO32, assert_same_bits
from test_blocks import stream_u


def keep_of(shape, rate, seed, offset):
    """Keep bits of sections 3-4: u(offset + i) >= round(rate * 2**32), from philox alone."""
    n = int(np.prod(shape))
    return (stream_u(seed, offset, n) >= np.uint64(round(rate * TWO32))).reshape(shape)


# ------------------------------------------------------------------------------------------
# Functional
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64])
def test_drop_connect_is_dropout_of_the_weight(backend, dt):
    w = np.random.default_rng(0).standard_normal((17, 23)).astype(dt)
    keep = keep_of(w.shape, 0.4, 5, 300)
    ct = np.float64 if dt == np.float64 else np.float32
    want = np.where(keep, w.astype(ct) * ct(1.0 / (1.0 - 0.4)), ct(0)).astype(dt)
    assert_same_bits(blocks.drop_connect(w, 0.4, seed=5, offset=300, backend=backend), want)
    assert_same_bits(blocks.drop_connect_backward(w, 0.4, seed=5, offset=300, backend=backend), want)
    assert blocks.drop_connect(w, 0.4, seed=5, training=False) is w
    assert blocks.drop_connect(w, 0.0, seed=5) is w
    with pytest.raises(ValueError, match="rate"):
        blocks.drop_connect(w, 1.5, seed=5)


# ------------------------------------------------------------------------------------------
# dropkit.nn.Dense(..., dropconnect=rate)
# ------------------------------------------------------------------------------------------


def test_dense_dropconnect_forward_counter_and_eval():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5))
    d = Dense(4, dropconnect=0.3, seed=11, dtype=np.float64)
    y1 = d.forward(x, True)
    w_masked = np.where(keep_of(d.W.shape, 0.3, 11, 0), d.W * (1.0 / (1.0 - 0.3)), 0.0)
    np.testing.assert_allclose(y1, x @ w_masked + d.b, rtol=1e-12)
    assert d.dropconnect_position == d.W.size
    y2 = d.forward(x, True)  # a fresh mask: the next W.size positions
    w_masked2 = np.where(keep_of(d.W.shape, 0.3, 11, d.W.size), d.W * (1.0 / (1.0 - 0.3)), 0.0)
    np.testing.assert_allclose(y2, x @ w_masked2 + d.b, rtol=1e-12)
    assert not np.array_equal(y1, y2)
    assert d.dropconnect_position == 2 * d.W.size
    np.testing.assert_allclose(d.forward(x, False), x @ d.W + d.b, rtol=1e-12)  # evaluation: W as is
    assert d.dropconnect_position == 2 * d.W.size
    # its own seed, when given
    e = Dense(4, dropconnect=0.3, seed=11, dropconnect_seed=99, dtype=np.float64)
    e.forward(x, True)
    assert np.array_equal(e.W, d.W)
    w_masked3 = np.where(keep_of(e.W.shape, 0.3, 99, 0), e.W * (1.0 / (1.0 - 0.3)), 0.0)
    e.dropconnect_position = 0
    np.testing.assert_allclose(e.forward(x, True), x @ w_masked3 + e.b, rtol=1e-12)
    with pytest.raises(ValueError, match="dropconnect"):
        Dense(4, dropconnect=1.5)


def test_dense_dropconnect_gradients_by_finite_differences():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 7))
    up = rng.standard_normal((5, 3))
    d = Dense(3, dropconnect=0.4, seed=3, dtype=np.float64, activation="relu")
    d.forward(x, True)  # build

    def loss(xv=None, w=None):
        if w is not None:
            d.W[...] = w
        d.dropconnect_position = 0  # the same mask at every evaluation
        return float((up * d.forward(x if xv is None else xv, True)).sum())

    w0 = d.W.copy()
    loss()
    dx = d.backward(up)
    dw = d.dW.copy()
    assert (dw == 0).any()  # dropped weights get no gradient
    h = 1e-6
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        e = e.reshape(x.shape)
        num = (loss(xv=x + e) - loss(xv=x - e)) / (2 * h)
        assert num == pytest.approx(dx.flat[i], rel=1e-6, abs=1e-7)
    for i in range(w0.size):
        e = np.zeros(w0.size)
        e[i] = h
        e = e.reshape(w0.shape)
        num = (loss(w=w0 + e) - loss(w=w0 - e)) / (2 * h)
        assert num == pytest.approx(dw.flat[i], rel=1e-6, abs=1e-7)
    # nothing per element kept: the mask is regenerated from (seed, offset)
    assert isinstance(d._dc_offset, int)


def test_dense_network_trains_with_dropconnect_and_dropout():
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((3, 10)) * 3
    yl = rng.integers(0, 3, 300)
    x = (centres[yl] + rng.standard_normal((300, 10))).astype(np.float32)

    def run():
        model = Sequential([Dense(32, dropconnect=0.3), ReLU(), Dropout(0.2), Dense(3, dropconnect=0.2)], seed=7)
        loss, opt = SoftmaxCrossEntropy(), SGD(0.05)
        losses = []
        for step in range(60):
            idx = slice((step * 50) % 300, (step * 50) % 300 + 50)
            losses.append(loss(model.forward(x[idx], True), yl[idx]))
            model.backward(loss.backward())
            opt.step(model.params, model.grads)
        acc = float((model.forward(x, False).argmax(1) == yl).mean())
        return losses, acc, model.layers[0].dropconnect_position

    a, b = run(), run()
    assert a == b  # reproducible from the seed
    losses, acc, pos = a
    assert pos == 60 * 10 * 32
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert acc > 0.9


# ------------------------------------------------------------------------------------------
# PyTorch: the DropConnect parametrization
# ------------------------------------------------------------------------------------------


def test_torch_linear_dropconnect_values_grads_eval_state_dict():
    torch = pytest.importorskip("torch")
    from torch.nn.utils import parametrize
    from dropkit import torch_blocks as tb

    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 4).double()
    w0 = lin.weight.detach().clone()
    tb.register_drop_connect(lin, "weight", 0.5, seed=21)
    dc = lin.parametrizations.weight[0]
    assert dc.position == 0
    x = torch.randn(3, 6, dtype=torch.float64)
    y = lin(x)
    keep = torch.from_numpy(keep_of((4, 6), 0.5, 21, 0))
    wm = torch.where(keep, w0 * 2.0, torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(y, torch.nn.functional.linear(x, wm, lin.bias), rtol=1e-12, atol=0)
    assert dc.position == 24
    g = torch.randn(3, 4, dtype=torch.float64)
    y.backward(g)
    want = torch.where(keep, (g.T @ x) * 2.0, torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(lin.parametrizations.weight.original.grad, want, rtol=1e-12, atol=1e-15)
    # gradcheck through the parametrization (a fixed position at each evaluation)
    def f(w):
        dc.position = 0
        return dc(w)
    assert torch.autograd.gradcheck(f, (w0.clone().requires_grad_(),))
    # evaluation: the weight as is, the counter does not move
    lin.eval()
    pos = dc.position
    torch.testing.assert_close(lin(x), torch.nn.functional.linear(x, w0, lin.bias), rtol=0, atol=0)
    assert dc.position == pos
    # state_dict: the unmasked weight under parametrizations.weight.original, and (an explicit
    # seed: dropkit.torch's seeded layers, issue 14) the mask stream's seed and position, loadable
    sd = lin.state_dict()
    assert set(sd) == {"bias", "parametrizations.weight.original", "parametrizations.weight.0.seed",
                       "parametrizations.weight.0.position"}
    assert torch.equal(sd["parametrizations.weight.original"], w0)
    other = tb.register_drop_connect(torch.nn.Linear(6, 4).double(), "weight", 0.5, seed=99)
    other.load_state_dict(sd)  # the seed and the position come with it
    other.train()
    lin.train()
    torch.testing.assert_close(other(x), lin(x), rtol=0, atol=0)  # same seed, same positions
    dc.position = 0
    assert not torch.equal(other(x), lin(x))  # the streams are at different positions now
    parametrize.remove_parametrizations(lin, "weight", leave_parametrized=False)
    assert torch.equal(lin.weight, w0)


def test_torch_lstm_language_model_toy_trains_with_weight_drop():
    """AWD-LSTM's WeightDrop on ``weight_hh_l0``, one mask per step under ``parametrize.cached()``."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils import parametrize
    from dropkit import torch as dkt
    from dropkit import torch_blocks as tb

    def run():
        torch.manual_seed(1)
        vocab, emb, hid = 40, 16, 32
        embed = torch.nn.Embedding(vocab, emb)
        lstm = torch.nn.LSTM(emb, hid, batch_first=True)
        tb.register_drop_connect(lstm, "weight_hh_l0", 0.5, seed=3)
        drop = dkt.Dropout(0.3, seed=4)
        head = torch.nn.Linear(hid, vocab)
        params = list(embed.parameters()) + list(lstm.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=0.01)
        data = torch.randint(0, vocab, (8, 21), generator=torch.Generator().manual_seed(2))
        losses = []
        for _ in range(12):
            with parametrize.cached():  # the weight is computed once per step: one mask
                out, _ = lstm(embed(data[:, :-1]))
                logits = head(drop(out))
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), data[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, lstm.parametrizations.weight_hh_l0[0].position, lstm

    a, pos, lstm = run()
    b, _, _ = run()
    assert a == b  # reproducible
    assert pos == 12 * lstm.weight_hh_l0.numel()
    assert a[-1] < a[0] - 0.3
    assert lstm.parametrizations.weight_hh_l0.original.grad is not None


def test_torch_dense_network_with_both_kinds_of_dropout():
    torch = pytest.importorskip("torch")
    from dropkit import torch as dkt
    from dropkit import torch_blocks as tb

    torch.manual_seed(5)
    model = torch.nn.Sequential(tb.register_drop_connect(torch.nn.Linear(10, 32), p=0.3, seed=1), torch.nn.ReLU(),
                                dkt.Dropout(0.2, seed=2), tb.register_drop_connect(torch.nn.Linear(32, 3), p=0.2, seed=3))
    g = torch.Generator().manual_seed(6)
    centres = torch.randn(3, 10, generator=g) * 3
    yl = torch.randint(0, 3, (300,), generator=g)
    x = centres[yl] + torch.randn(300, 10, generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x), yl)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    acc = float((model(x).argmax(1) == yl).float().mean())
    assert losses[-1] < 0.5 * losses[0] and acc > 0.9


def test_torch_dropconnect_compiles():
    torch = pytest.importorskip("torch")
    from dropkit import torch_blocks as tb

    torch._dynamo.reset()
    lin = tb.register_drop_connect(torch.nn.Linear(5, 3), p=0.5, seed=8)
    model = torch.compile(lin, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 5)
    y = model(x)
    w = lin.parametrizations.weight.original.detach()
    wm = torch.from_numpy(dropkit.dropout(w.numpy(), 0.5, seed=8, offset=0))
    torch.testing.assert_close(y, torch.nn.functional.linear(x, wm, lin.bias), rtol=1e-6, atol=1e-6)
    assert lin.parametrizations.weight[0].position == 15
    y.sum().backward()
    assert lin.parametrizations.weight.original.grad is not None


def test_mc_predict_samples_dropconnect_one_forward_per_sample():
    """Monte Carlo DropConnect (Wan et al. 2013 use the average over masks at test time): each of the
    T samples draws its own weight mask, from the layer's DropConnect stream at consecutive
    positions; a batched forward would share one mask, so it is refused; the state is restored."""
    from dropkit import nn

    rng = np.random.default_rng(0)
    dense = nn.DenseLayer(5, 3, dropconnect=0.5, seed=4)
    model = nn.Sequential([dense])
    X = rng.standard_normal((6, 5)).astype(np.float32)
    before = (dense.dropconnect_seed, dense.dropconnect_position)
    res = nn.mc_predict(model, X, samples=4, seed=3, return_samples=True)
    assert (dense.dropconnect_seed, dense.dropconnect_position) == before
    child = int(np.random.SeedSequence(3).spawn(1)[0].generate_state(1, np.uint64)[0])
    for t in range(4):  # sample t by hand: the weight mask at positions t * W.size onwards
        w = dropkit.dropout(dense.W, 0.5, seed=child, offset=t * dense.W.size)
        logits = X @ w + dense.b
        p = np.exp(logits - logits.max(1, keepdims=True))
        np.testing.assert_allclose(res.samples[t], p / p.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert not np.allclose(res.samples[0], res.samples[1])
    with pytest.raises(ValueError, match="DropConnect"):
        nn.mc_predict(model, X, samples=2, batched=True)

