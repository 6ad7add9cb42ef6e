"""dropkit.nn: finite-difference gradient checks (float64) of every layer, of the loss and of whole
networks with dropout in them; layer semantics against plain NumPy formulas; optimizers against
their update equations; bad input."""
from __future__ import annotations

import numpy as np
import pytest

import dropkit
from dropkit import nn

F64 = np.float64


def _stochastic_positions(layers):
    return [(la, la.position) for la in layers if nn.is_stochastic(la)]


def numeric_grad(f, arr, n_max=60, eps=1e-6, rng=None):
    """Central differences of scalar ``f()`` w.r.t. ``arr`` (modified in place) at up to n_max
    entries; returns (flat indices, numeric values)."""
    rng = np.random.default_rng(0) if rng is None else rng
    flat = arr.reshape(-1)
    idx = np.arange(flat.size) if flat.size <= n_max else rng.choice(flat.size, n_max, replace=False)
    out = []
    for i in idx:
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        out.append((fp - fm) / (2 * eps))
    return idx, np.array(out)


def assert_close(analytic, numeric, tol=1e-6):
    scale = max(1.0, np.abs(numeric).max())
    err = np.abs(analytic - numeric).max() / scale
    assert err < tol, f"max relative error {err:.3g}"


def gradcheck_layer(layer, x, training=True, seed=0, tol=1e-6):
    """d/dx and d/dparams of sum(G * layer(x)) by finite differences against backward."""
    stoch = _stochastic_positions([layer])
    reset = lambda: [setattr(la, "position", p) for la, p in stoch]  # noqa: E731
    reset()
    y = layer.forward(x, training)
    G = np.random.default_rng(seed).standard_normal(y.shape)

    def f():
        reset()
        return float((layer.forward(x, training) * G).sum()) + float(getattr(layer, "reg_loss", lambda: 0.0)())

    reset()
    layer.forward(x, training)
    dx = layer.backward(G)
    grads = [g.copy() for g in getattr(layer, "grads", [])]
    assert dx.shape == x.shape and dx.dtype == F64
    idx, num = numeric_grad(f, x)
    assert_close(dx.reshape(-1)[idx], num, tol)
    for p, g in zip(getattr(layer, "params", []), grads):
        idx, num = numeric_grad(f, p)
        assert_close(g.reshape(-1)[idx], num, tol)
    return dx


# ---- every layer's backward ----------------------------------------------------------------------

@pytest.mark.parametrize("init", ["he", "glorot", 0.1])
@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.01, 0.02)])
def test_dense_gradcheck(init, l1, l2):
    layer = nn.DenseLayer(7, 5, init=init, l1_reg=l1, l2_reg=l2, seed=1, dtype=F64)
    layer.b[...] = np.random.default_rng(2).standard_normal(5)
    x = np.random.default_rng(3).standard_normal((6, 7))
    gradcheck_layer(layer, x)


def test_dense_relu_activation_gradcheck():
    layer = nn.Dense(4, activation="relu", seed=1, dtype=F64)
    x = np.random.default_rng(3).standard_normal((6, 3))
    gradcheck_layer(layer, x)
    assert layer.W.shape == (3, 4)


def test_relu_gradcheck():
    x = np.random.default_rng(4).standard_normal((5, 6))
    gradcheck_layer(nn.ReLU(), x)


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradcheck(shape, training):
    bn = nn.BatchNormalization(dtype=F64)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape) * 2 + 1
    bn.forward(x, True)  # build, move running stats away from (0, 1)
    bn.gamma[...] = rng.uniform(0.5, 1.5, bn.gamma.shape)
    bn.beta[...] = rng.standard_normal(bn.beta.shape)
    gradcheck_layer(bn, x, training=training)


@pytest.mark.parametrize("kernel,strides,padding", [(3, 1, "valid"), ((2, 3), 1, "same"), (3, 2, "valid")])
def test_conv2d_gradcheck(kernel, strides, padding):
    conv = nn.Conv2D(3, kernel, strides=strides, padding=padding, seed=6, dtype=F64)
    x = np.random.default_rng(7).standard_normal((2, 2, 7, 6))
    y = conv.forward(x)
    conv.b[...] = np.random.default_rng(8).standard_normal(3)
    assert conv.W.shape == (3, 2) + conv.kernel_size
    if padding == "same":
        assert y.shape == (2, 3, 7, 6)
    gradcheck_layer(conv, x)


def test_conv2d_regularised_relu_gradcheck():
    conv = nn.Conv2D(2, 3, activation="relu", l1_reg=0.01, l2_reg=0.01, seed=6, dtype=F64)
    x = np.random.default_rng(7).standard_normal((2, 1, 5, 5))
    gradcheck_layer(conv, x)


@pytest.mark.parametrize("shape,pool", [((2, 3, 6, 6), 2), ((2, 2, 7, 5), 2), ((1, 2, 6, 6), (3, 2))])
def test_maxpool_gradcheck(shape, pool):
    x = np.random.default_rng(9).standard_normal(shape)
    gradcheck_layer(nn.MaxPooling2D(pool), x)


def test_flatten_gradcheck():
    gradcheck_layer(nn.Flatten(), np.random.default_rng(10).standard_normal((3, 2, 2, 3)))


@pytest.mark.parametrize("inverted", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_dropkit_dropout_gradcheck(inverted, training):
    layer = dropkit.Dropout(0.4, seed=11, inverted=inverted)
    gradcheck_layer(layer, np.random.default_rng(12).standard_normal((6, 10)), training=training)


def test_softmax_cross_entropy_gradcheck():
    rng = np.random.default_rng(13)
    z = rng.standard_normal((6, 4))
    for y in (rng.integers(0, 4, 6), np.eye(4)[rng.integers(0, 4, 6)]):
        loss = nn.SoftmaxCrossEntropy()
        value = loss(z, y)
        g = loss.backward()
        idx, num = numeric_grad(lambda: loss(z, y), z)
        assert_close(g.reshape(-1)[idx], num)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        labels = y if y.ndim == 1 else y.argmax(1)
        assert value == pytest.approx(-np.log(p[np.arange(6), labels]).mean(), rel=1e-12)


# ---- whole networks ------------------------------------------------------------------------------

def _net_gradcheck(model, x, y, tol=1e-6):
    """Loss = CE(model(x), y) + penalties; dropout masks fixed by resetting stream positions."""
    loss = nn.SoftmaxCrossEntropy()
    stoch = _stochastic_positions(model.layers)

    def f():
        for la, p in stoch:
            la.position = p
        out = model.forward(x, True)
        out = out[0] if isinstance(out, tuple) else out  # RegularizedNetwork: (logits, reg_loss)
        return loss(out, y) + model.reg_loss()

    f()
    model.backward(loss.backward())
    grads = [g.copy() for g in model.grads]
    assert len(grads) == len(model.params) > 0
    for p, g in zip(model.params, grads):
        if p.ndim == 0:
            # ConcreteDropout's logit: its multipliers are computed in float32 (docs/rng.md), so the
            # central difference needs a larger step; its truncation error is O(eps^2) ~ 1e-6.
            idx, num = numeric_grad(f, p, eps=1e-3)
            assert_close(g.reshape(-1)[idx], num, 1e-4)
            continue
        idx, num = numeric_grad(f, p, n_max=25)
        assert_close(g.reshape(-1)[idx], num, tol)
    # and the input gradient
    f()
    dx = model.backward(loss.backward())
    idx, num = numeric_grad(f, x, n_max=25)
    assert_close(dx.reshape(-1)[idx], num, tol)


def test_mlp_with_dropout_and_batchnorm_gradcheck():
    model = nn.Sequential([
        nn.DenseLayer(6, 8, l1_reg=1e-3, l2_reg=1e-3, dtype=F64), nn.BatchNormalization(dtype=F64),
        dropkit.Dropout(0.3), nn.ReLU(), nn.DenseLayer(8, 4, dtype=F64), dropkit.Dropout(0.5, inverted=False),
    ], seed=14)
    rng = np.random.default_rng(15)
    _net_gradcheck(model, rng.standard_normal((10, 6)), rng.integers(0, 4, 10))


def test_cnn_with_dropout_gradcheck():
    model = nn.Sequential([
        nn.Conv2D(3, 3, activation="relu", dtype=F64), nn.MaxPooling2D(), dropkit.Dropout(0.25),
        nn.Flatten(), nn.Dense(5, activation="relu", dtype=F64), dropkit.InvertedDropout(0.6), nn.Dense(3, dtype=F64),
    ], seed=16)
    rng = np.random.default_rng(17)
    _net_gradcheck(model, rng.standard_normal((3, 2, 8, 8)), rng.integers(0, 3, 3))


def test_seed_networks_gradcheck():
    rng = np.random.default_rng(18)
    x, y = rng.standard_normal((9, 5)), rng.integers(0, 3, 9)
    _net_gradcheck(nn.SimpleNNWithDropout(5, 7, 3, seed=1, dtype=F64), x, y)
    _net_gradcheck(nn.RegularizedNetwork(5, [6, 4], 3, seed=2, dtype=F64), x, y)


# ---- forward semantics against NumPy ------------------------------------------------------------

def test_conv_and_pool_match_direct_formulas():
    rng = np.random.default_rng(19)
    x = rng.standard_normal((2, 3, 6, 5))
    conv = nn.Conv2D(4, (3, 2), seed=0, dtype=F64)
    y = conv.forward(x)
    conv.b[...] = rng.standard_normal(4)
    y = conv.forward(x)
    direct = np.zeros((2, 4, 4, 4))
    for i in range(4):
        for j in range(4):
            direct[:, :, i, j] = np.einsum("nchw,fchw->nf", x[:, :, i:i + 3, j:j + 2], conv.W) + conv.b
    np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-12)
    p = nn.MaxPooling2D(2).forward(x)
    assert p.shape == (2, 3, 3, 2)
    np.testing.assert_array_equal(p, np.maximum.reduce([x[:, :, a:6:2, b:4:2] for a in (0, 1) for b in (0, 1)]))


def test_init_statistics_and_seed():
    a = nn.DenseLayer(400, 300, seed=3)
    b = nn.DenseLayer(400, 300, seed=3)
    np.testing.assert_array_equal(a.W, b.W)
    assert a.W.dtype == np.float32 and (a.b == 0).all()
    n = a.W.size  # He normal: sd sqrt(2/400); 5-sigma bound on the sample variance (chi-square)
    assert abs(a.W.var() / (2 / 400) - 1) < 5 * np.sqrt(2 / n)
    g = nn.DenseLayer(400, 300, init="glorot", seed=3).W
    lim = np.sqrt(6 / 700)
    assert np.abs(g).max() <= lim and abs(g.var() / (lim**2 / 3) - 1) < 5 * np.sqrt(0.8 / n)


def test_batchnorm_modes():
    bn = nn.BatchNormalization(momentum=0.5)
    x = np.random.default_rng(20).standard_normal((64, 3)).astype(np.float32) * 3 + 2
    y = bn.forward(x, training=True)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(0), x.var(0) / (x.var(0) + 1e-3), rtol=1e-4)
    np.testing.assert_allclose(bn.running_mean, 0.5 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * x.var(0), rtol=1e-5)
    ye = bn.forward(x, training=False)
    np.testing.assert_allclose(ye, (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-3), rtol=1e-5, atol=1e-5)
    assert y.dtype == ye.dtype == np.float32


def test_sequential_train_eval_switches_every_layer():
    d = dropkit.Dropout(0.5, seed=0)
    bn = nn.BatchNormalization()
    model = nn.Sequential([nn.DenseLayer(4, 4), bn, d, nn.ReLU()])
    model.eval()
    assert not d.training and not bn.training and not model.training
    x = np.ones((3, 4), np.float32)
    model.forward(x)
    assert d.position == 0  # evaluation: no mask drawn
    model.train()
    assert d.training and bn.training
    model.forward(x)
    assert d.position == 12


def test_sequential_seed_reproduces_network():
    def make():
        return nn.Sequential([nn.Dense(5), dropkit.Dropout(0.5), nn.Conv2D(2, 1)], seed=9)
    a, b = make(), make()
    assert a.layers[1].seed == b.layers[1].seed and a.layers[1].seed != make().layers[1].seed - 1
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(a.layers[0].forward(x), b.layers[0].forward(x))
    np.testing.assert_array_equal(a.layers[1].forward(np.ones((4, 5), np.float32)),
                                  b.layers[1].forward(np.ones((4, 5), np.float32)))


def test_float32_default_and_float64():
    model = nn.Sequential([nn.Conv2D(2, 3), nn.Flatten(), nn.Dense(3)], seed=0)
    y = model.forward(np.zeros((1, 1, 5, 5)))
    assert y.dtype == np.float32 and all(p.dtype == np.float32 for p in model.params)
    model.astype(np.float64)
    assert model.forward(np.zeros((1, 1, 5, 5))).dtype == np.float64


# ---- optimizers ----------------------------------------------------------------------------------

def test_sgd_momentum_update():
    p = np.array([1.0, -2.0])
    g = np.array([0.5, 0.25])
    opt = nn.SGD(0.1, momentum=0.9)
    opt.step([p], [g])
    np.testing.assert_allclose(p, [1.0 - 0.05, -2.0 - 0.025])
    opt.step([p], [g])  # v = 0.9 * (-0.1 g) - 0.1 g = -0.19 g
    np.testing.assert_allclose(p, [1.0 - 0.05 - 0.095, -2.0 - 0.025 - 0.0475])


def test_adam_update():
    p = np.array([1.0, -2.0])
    g1, g2 = np.array([0.5, -0.25]), np.array([0.1, 0.2])
    opt = nn.Adam(0.01)
    opt.step([p], [g1])
    opt.step([p], [g2])
    m, v, q = np.zeros(2), np.zeros(2), np.array([1.0, -2.0])
    for t, g in enumerate((g1, g2), 1):  # textbook Adam with Keras' epsilon placement
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        q = q - 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(p, q, rtol=1e-14)


# ---- bad input -----------------------------------------------------------------------------------

def test_bad_arguments():
    with pytest.raises(ValueError, match="output_size"):
        nn.DenseLayer(3, 0)
    with pytest.raises(TypeError, match="input_size"):
        nn.DenseLayer(2.5, 3)
    with pytest.raises(ValueError, match="l2_reg"):
        nn.DenseLayer(2, 3, l2_reg=-1)
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="softmax"):
        nn.Dense(3, activation="softmax")
    with pytest.raises(TypeError, match="dtype"):
        nn.DenseLayer(2, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="learning_rate"):
        nn.Adam(-1)
    with pytest.raises(ValueError, match="shape"):
        nn.DenseLayer(3, 2).forward(np.ones((2, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.ReLU().backward(np.ones(3))
    with pytest.raises(ValueError, match="labels"):
        nn.SoftmaxCrossEntropy()(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="layers"):
        nn.Sequential([object()])


# ---- dropout variants inside networks (skipped until the variant exists in dropkit) ---------------

@pytest.mark.skipif(not hasattr(dropkit, "ConcreteDropout"), reason="dropkit has no ConcreteDropout yet")
def test_concrete_dropout_logit_is_a_parameter_gradcheck():
    """The learnable logit and the paper's regulariser (on the next dense layer) are part of the
    network's parameters, loss and gradients."""
    cd = dropkit.ConcreteDropout(init_rate=0.3, weight_regularizer=1e-2, dropout_regularizer=1e-2)
    model = nn.Sequential([nn.DenseLayer(5, 6, dtype=F64), nn.ReLU(), cd, nn.DenseLayer(6, 3, dtype=F64)], seed=20)
    rng = np.random.default_rng(21)
    x, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    assert len(model.params) == 5 and model.params[2].shape == ()  # W, b, logit, W, b
    w = model.layers[3].W
    p = cd.get_dropout_rate()
    ent = p * np.log(p) + (1 - p) * np.log(1 - p)
    assert model.reg_loss() == pytest.approx(1e-2 * (w**2).sum() / (1 - p) + 1e-2 * 6 * ent, rel=1e-12)
    _net_gradcheck(model, x, y)
    # a training step moves the logit, and the layer sees it
    before = cd.dropout_rate
    nn.fit(model, x, y, epochs=3, batch_size=4, seed=0, optimizer=nn.SGD(0.5))
    assert cd.dropout_rate != before and cd.dropout_rate == float(model.params[2])


@pytest.mark.parametrize("name", ["GaussianDropout", "AlphaDropout", "SpatialDropout2D", "AdaptiveDropout",
                                  "CurriculumDropout"])
def test_variant_layers_plug_into_a_cnn_gradcheck(name):
    if not hasattr(dropkit, name):
        pytest.skip(f"dropkit has no {name} yet")
    layer = {"GaussianDropout": lambda: dropkit.GaussianDropout(rate=0.3),
             "AlphaDropout": lambda: dropkit.AlphaDropout(0.2),
             "SpatialDropout2D": lambda: dropkit.SpatialDropout2D(0.4),
             "AdaptiveDropout": lambda: dropkit.AdaptiveDropout(initial_rate=0.4),
             "CurriculumDropout": lambda: dropkit.CurriculumDropout(final_rate=0.5, epochs=2)}[name]()
    model = nn.Sequential([nn.Conv2D(3, 3, activation="relu", dtype=F64), layer, nn.MaxPooling2D(), nn.Flatten(),
                           nn.Dense(3, dtype=F64)], seed=22)
    rng = np.random.default_rng(23)
    x, y = rng.standard_normal((3, 1, 6, 6)), rng.integers(0, 3, 3)
    if name == "CurriculumDropout":
        model.on_epoch_end()  # rate 0 at epoch 0: move on so that something is dropped
    if name == "AdaptiveDropout":
        model.forward(x, True)
        model.update_dropout_rates()  # per-unit rates from the activations
    _net_gradcheck(model, x, y)
