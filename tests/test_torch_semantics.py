"""dropkit.torch as a drop-in for torch.nn (issue 14): seeds, copies, state_dict, every autograd
mode, vmap, TorchScript / trace / export, and torch.nn.functional's conventions.

Each test names the PyTorch test it mirrors. Expected values come from PyTorch's own layers, from
the NumPy API (an independent path through dropkit's kernels) or from mathematics.
"""
from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest

import dropkit

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'dropkit[torch]'")
dt = pytest.importorskip("dropkit.torch", reason="dropkit.torch needs PyTorch")

MASK64 = 2**64 - 1


def _splitmix64(z):
    # Written out from Steele, Lea & Flood (2014), the published constants; the documented rule of
    # dt.derive_seed is splitmix64(splitmix64(seed) ^ (index + 1)).
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _keep(m, n=4096):
    """The keep pattern of one training step of layer m on ones(n)."""
    return (m(torch.ones(n)) != 0).numpy()


# ------------------------------------------------------------------------------------------------
# Seeds: seed=None follows PyTorch's generator; explicit seeds, copies and state_dict
# ------------------------------------------------------------------------------------------------


def test_construction_consumes_no_random_state_same_weights_as_nn_dropout():
    # The model of torch's tutorials built twice under the same torch.manual_seed, once with
    # nn.Dropout and once with dropkit's layers (seed=None): every Linear gets the same weights,
    # as PyTorch's own layers consume no random state at construction (test/nn/test_dropout.py
    # builds its layers the same way before seeding).
    def build(drop):
        torch.manual_seed(1234)
        return torch.nn.Sequential(torch.nn.Linear(16, 32), drop(), torch.nn.Linear(32, 32), drop(),
                                   torch.nn.Linear(32, 4))

    ref = build(lambda: torch.nn.Dropout(0.3))
    for layer in (lambda: dt.Dropout(0.3), lambda: dt.AlphaDropout(0.3), lambda: dt.GaussianDropout(0.3),
                  lambda: dt.Dropout(0.3, seed=5)):
        ours = build(layer)
        for a, b in zip(ref.parameters(), ours.parameters()):
            assert torch.equal(a, b)
    # and the generator's next draw is the same as after building with nn.Dropout
    build(lambda: torch.nn.Dropout(0.3))
    r1 = torch.rand(3)
    build(lambda: dt.Dropout(0.3))
    assert torch.equal(torch.rand(3), r1)


@pytest.mark.parametrize("make", [lambda: dt.Dropout(0.5), lambda: dt.Dropout2d(0.5), lambda: dt.AlphaDropout(0.5),
                                  lambda: dt.FeatureAlphaDropout(0.5), lambda: dt.GaussianDropout(0.5)],
                         ids=["Dropout", "Dropout2d", "AlphaDropout", "FeatureAlphaDropout", "GaussianDropout"])
def test_manual_seed_before_a_step_reproduces_it(make):
    # As nn.Dropout: torch.manual_seed(s) before a training step reproduces its masks, and two
    # consecutive steps differ (test/nn/test_dropout.py's layers follow the global generator).
    m = make()
    x = torch.randn(8, 6, 5, 5)
    torch.manual_seed(7)
    a = m(x)
    b = m(x)
    torch.manual_seed(7)
    assert torch.equal(m(x), a) and torch.equal(m(x), b)
    assert not torch.equal(a, b)
    assert m.seed is None and "seed=None" in repr(m)


def test_seed_none_functional_and_module_draw_the_same_way():
    x = torch.randn(300)
    torch.manual_seed(3)
    a = dt.dropout(x, 0.4)
    torch.manual_seed(3)
    assert torch.equal(dt.Dropout(0.4)(x), a)
    torch.manual_seed(3)
    assert not torch.equal(dt.dropout(x, 0.4, offset=1), a)  # the offset still moves the window


def test_transformer_encoder_layers_drop_different_units():
    # nn.TransformerEncoder deep-copies its layer num_layers times (torch/nn/modules/transformer.py
    # _get_clones); each copy must get its own stream (explicit seed) or its own draws (None).
    for seed in (11, None):
        layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        layer.dropout = dt.Dropout(0.5, seed=seed)
        enc = torch.nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
        masks = [_keep(lay.dropout) for lay in enc.layers]
        for i in range(4):
            for j in range(i):
                assert not np.array_equal(masks[i], masks[j]), (seed, i, j)
        if seed is not None:
            assert [lay.dropout.seed for lay in enc.layers] == [dt.derive_seed(11, i) for i in range(4)]
        enc(torch.randn(2, 5, 16)).sum().backward()  # and the whole model trains


def test_deepcopy_gives_independent_derived_streams():
    m = dt.Dropout(0.5, seed=2024)
    m(torch.ones(10))
    c1, c2 = copy.deepcopy(m), copy.deepcopy(m)
    assert c1.seed == _splitmix64(_splitmix64(2024) ^ 1) and c2.seed == _splitmix64(_splitmix64(2024) ^ 2)
    assert c1.position == c2.position == m.position == 10
    masks = [_keep(x) for x in (m, c1, c2)]
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    # deterministic: the same model built again gives its copies the same streams
    assert copy.deepcopy(dt.Dropout(0.5, seed=2024)).seed == c1.seed
    # a copy of a copy derives from the copy's seed
    assert copy.deepcopy(c1).seed == dt.derive_seed(c1.seed, 0)
    # seed=None copies follow the global generator, each call its own draw
    n = dt.Dropout(0.5)
    cn = copy.deepcopy(n)
    assert cn.seed is None and not np.array_equal(_keep(n), _keep(cn))


def test_pickle_and_torch_save_keep_the_stream():
    # Serialisation is not cloning: a saved and loaded module continues the very same stream.
    m = dt.Dropout(0.5, seed=99)
    m(torch.ones(7))
    for restore in (lambda: pickle.loads(pickle.dumps(m)), lambda: _torch_roundtrip(m)):
        r = restore()
        assert r.seed == 99 and r.position == 7
        assert torch.equal(r(torch.ones(50)), dt.dropout(torch.ones(50), 0.5, seed=99, offset=7))


def _torch_roundtrip(m):
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def test_state_dict_saves_and_restores_the_counter():
    # Resuming from a checkpoint continues the stream instead of replaying step one
    # (test/test_nn.py's state_dict round trips, applied to the counter).
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), dt.Dropout(0.5, seed=3))
    x = torch.randn(4, 8)
    model(x)
    sd = model.state_dict()
    assert int(sd["1.position"]) == 32 and int(sd["1.seed"]) == 3
    expected = model(x)
    fresh = torch.nn.Sequential(torch.nn.Linear(8, 8), dt.Dropout(0.5, seed=12345))
    fresh.load_state_dict(sd)
    assert fresh[1].seed == 3 and fresh[1].position == 32
    assert torch.equal(fresh(x), expected)
    # seeds >= 2**63 survive the int64 bit pattern
    big = dt.Dropout(0.5, seed=2**64 - 3)
    big.position = 2**63 + 5
    other = dt.Dropout(0.5, seed=1)
    other.load_state_dict(big.state_dict())
    assert other.seed == 2**64 - 3 and other.position == 2**63 + 5


def test_old_and_pytorch_state_dicts_load():
    # A state_dict without the counter (nn.Dropout's, a seed=None layer's, dropkit < 0.2's) loads
    # strictly and leaves the stream where it is; seed=None layers keep nn.Dropout's empty state.
    m = dt.Dropout(0.5, seed=4)
    m.position = 40
    m.load_state_dict(torch.nn.Dropout(0.5).state_dict())
    assert m.seed == 4 and m.position == 40
    assert dt.Dropout(0.5).state_dict() == {} == torch.nn.Dropout(0.5).state_dict()
    nn_model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    dk_model = torch.nn.Sequential(torch.nn.Linear(3, 3), dt.Dropout(0.5, seed=1))
    nn_model.load_state_dict(dk_model.state_dict(), strict=False)  # extra keys: only non-strict
    with pytest.raises(RuntimeError, match="Unexpected key"):
        nn_model.load_state_dict(dk_model.state_dict())
    bad = dt.Dropout(0.5, seed=1).state_dict()
    bad["position"] = torch.tensor(1.5)
    with pytest.raises(RuntimeError, match="position must be a 0-d int64 tensor"):
        dt.Dropout(0.5, seed=1).load_state_dict(bad)


# ------------------------------------------------------------------------------------------------
# Autograd modes: forward AD, torch.func, vmap
# ------------------------------------------------------------------------------------------------

FUNCS = {
    "dropout": ((3, 5, 4), lambda x, **k: dt.dropout(x, 0.4, **k)),
    "dropout2d": ((3, 5, 4, 2), lambda x, **k: dt.dropout2d(x, 0.4, **k)),
    "alpha_dropout": ((3, 5, 4), lambda x, **k: dt.alpha_dropout(x, 0.4, True, **k)),
    "feature_alpha_dropout": ((3, 5, 4), lambda x, **k: dt.feature_alpha_dropout(x, 0.4, True, **k)),
    "gaussian_dropout": ((3, 5, 4), lambda x, **k: dt.gaussian_dropout(x, 0.4, **k)),
}
# The derivative in a direction t (the Jacobian-vector product) of each at (seed, offset), from the
# NumPy API's backward functions: dropout is linear in x, so its derivative is the function itself
# applied to t; alpha dropout's is a * t where kept and 0 where dropped.
JVP = {
    "dropout": lambda t, s, o: dropkit.dropout_backward(t, 0.4, seed=s, offset=o),
    "dropout2d": lambda t, s, o: dropkit.dropout_nd_backward(t, 0.4, seed=s, offset=o, noise_shape=(3, 5, 1, 1)),
    "alpha_dropout": lambda t, s, o: dropkit.alpha_dropout_backward(t, 0.4, seed=s, offset=o),
    "feature_alpha_dropout": lambda t, s, o: dropkit.feature_alpha_dropout_backward(t, 0.4, seed=s, offset=o),
    "gaussian_dropout": lambda t, s, o: dropkit.gaussian_dropout_backward(t, 0.4, seed=s, offset=o),
}


# torch's own first make_dual loads decompositions through torch.jit.script, deprecated in 2.13.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_forward_ad_tangent(name):
    # test/test_ops.py::TestFwdGradients (dual numbers through torch.autograd.forward_ad).
    import torch.autograd.forward_ad as fwAD

    shape, f = FUNCS[name]
    x = torch.randn(shape, dtype=torch.float64)
    t = torch.randn(shape, dtype=torch.float64)
    with fwAD.dual_level():
        out = f(fwAD.make_dual(x, t), seed=2**64 - 9, offset=5)
        primal, tangent = fwAD.unpack_dual(out)
    assert tangent is not None
    np.testing.assert_array_equal(primal.numpy(), f(x, seed=2**64 - 9, offset=5).numpy())
    np.testing.assert_array_equal(tangent.numpy(), JVP[name](t.numpy(), 2**64 - 9, 5))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_gradcheck_forward_ad_and_batched_grads(name):
    # The checks of test/test_ops.py (TestFwdGradients, TestBwdGradients) through gradcheck:
    # forward-mode AD, forward-over-reverse and reverse-over-reverse, against finite differences.
    # (check_batched_grad / check_batched_forward_grad are left out: they batch with torch's legacy
    # vmap, which has no rule for a Python autograd.Function and raises "Batching rule not
    # implemented"; torch.func.vmap, jacrev and jacfwd are tested below.)
    shape, f = FUNCS[name]
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: f(a, seed=77, offset=3), (x,), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(lambda a: f(a, seed=77, offset=3), (x,), check_fwd_over_rev=True,
                                        check_rev_over_rev=True)


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_func_jvp_against_a_finite_difference(name):
    # torch.func.jvp (test/functorch/test_eager_transforms.py::TestJvp) against the central
    # difference (f(x + h t) - f(x - h t)) / 2h, exact up to rounding: every f is affine in x for a
    # fixed noise.
    shape, f = FUNCS[name]
    x = torch.randn(shape, dtype=torch.float64)
    t = torch.randn(shape, dtype=torch.float64)
    g = lambda u: f(u, seed=123, offset=9)  # noqa: E731
    y, jt = torch.func.jvp(g, (x,), (t,))
    h = 1e-3
    fd = (g(x + h * t) - g(x - h * t)) / (2 * h)
    assert torch.equal(y, g(x))
    torch.testing.assert_close(jt, fd, rtol=1e-9, atol=1e-9)
    assert jt.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_func_grad_and_jacrev_match_autograd(name):
    # torch.func.grad / jacrev (test/functorch/test_eager_transforms.py::TestGradTransform).
    shape, f = FUNCS[name]
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(shape, dtype=torch.float64)
    loss = lambda u: (f(u, seed=5, offset=1) * w).sum()  # noqa: E731
    (expected,) = torch.autograd.grad(loss(x), x)
    torch.testing.assert_close(torch.func.grad(loss)(x.detach()), expected, rtol=0, atol=0)
    flat = lambda u: f(u.reshape(shape), seed=5, offset=1).reshape(-1)  # noqa: E731
    jac = torch.func.jacrev(flat)(x.detach().reshape(-1))
    jf = torch.func.jacfwd(flat)(x.detach().reshape(-1))
    diag = torch.from_numpy(JVP[name](np.ones(shape), 5, 1)).reshape(-1)
    if name in ("dropout", "alpha_dropout", "gaussian_dropout"):  # elementwise: a diagonal Jacobian
        torch.testing.assert_close(jac, torch.diag(diag), rtol=0, atol=0)
    torch.testing.assert_close(jf, jac, rtol=0, atol=0)


def test_vmap_default_randomness_raises():
    # test/functorch/test_vmap.py::TestRandomness: PyTorch's random ops under vmap's default
    # randomness="error" raise; a silently shared mask is never produced.
    for f in (dt.Dropout(0.5, seed=1), dt.Dropout(0.5), lambda x: dt.gaussian_dropout(x, 0.5, seed=2),
              lambda x: dt.alpha_dropout(x, 0.5, True, seed=2)):
        with pytest.raises(RuntimeError, match="randomness"):
            torch.func.vmap(f)(torch.ones(3, 8))
    with pytest.raises(RuntimeError, match="randomness"):  # PyTorch's behaviour, for reference
        torch.func.vmap(torch.nn.Dropout(0.5))(torch.ones(3, 8))


def test_vmap_randomness_same_and_different():
    # randomness="same": one noise for the whole batch; "different": each element its own, here the
    # noise of the batched tensor taken whole (element b at positions offset + b * n).
    x = torch.randn(3, 2, 8, dtype=torch.float64)
    f = lambda u: dt.dropout(u, 0.5, seed=21, offset=4)  # noqa: E731
    same = torch.func.vmap(f, randomness="same")(x)
    diff = torch.func.vmap(f, randomness="different")(x)
    for b in range(3):
        np.testing.assert_array_equal(same[b].numpy(), dropkit.dropout(x[b].numpy(), 0.5, seed=21, offset=4))
    np.testing.assert_array_equal(diff.numpy(), dropkit.dropout(x.numpy(), 0.5, seed=21, offset=4))
    # along another batch dimension, and for channel dropout (noise one per channel per element)
    xt = x.transpose(0, 1).contiguous()  # (2, 3, 8), batch on dim 1
    d1 = torch.func.vmap(f, in_dims=1, randomness="different")(xt)
    np.testing.assert_array_equal(d1.numpy(), diff.numpy())
    c = torch.func.vmap(lambda u: dt.dropout1d(u, 0.5, seed=8), randomness="different")(x)
    np.testing.assert_array_equal(c.numpy(), dropkit.dropout_nd(x.numpy(), 0.5, seed=8, noise_shape=(3, 2, 1)))


def test_vmap_of_a_seeded_layer_advances_its_counter_past_the_whole_batch():
    # randomness="different" gives element b the positions position + b * n: the next step must
    # start after all B * n of them, never reuse one.
    m = dt.Dropout(0.5, seed=17)
    x = torch.ones(3, 8, dtype=torch.float64)
    a = torch.func.vmap(m, randomness="different")(x)
    assert m.position == 24
    np.testing.assert_array_equal(a.numpy(), dropkit.dropout(x.numpy(), 0.5, seed=17))
    b = torch.func.vmap(m, randomness="different")(x)
    np.testing.assert_array_equal(b.numpy(), dropkit.dropout(x.numpy(), 0.5, seed=17, offset=24))


def test_vmap_of_grad_per_sample_gradients():
    # Per-sample gradients (the functorch tutorial's vmap(grad(...))) with randomness="different":
    # each sample's gradient uses the noise its forward used.
    x = torch.randn(4, 6, dtype=torch.float64)
    g = torch.func.vmap(torch.func.grad(lambda u: dt.dropout(u, 0.5, seed=3).sum()), randomness="different")(x)
    np.testing.assert_array_equal(g.numpy(), dropkit.dropout_backward(np.ones((4, 6)), 0.5, seed=3))
    g = torch.func.vmap(torch.func.grad(lambda u: dt.dropout(u, 0.5, seed=3).sum()), randomness="same")(x)
    np.testing.assert_array_equal(g.numpy(), np.broadcast_to(dropkit.dropout_backward(np.ones(6), 0.5, seed=3), (4, 6)))


# ------------------------------------------------------------------------------------------------
# torch.nn.functional's conventions
# ------------------------------------------------------------------------------------------------


def test_alpha_functional_default_training_false_as_pytorch():
    # torch.nn.functional.alpha_dropout / feature_alpha_dropout default to training=False.
    import inspect

    import torch.nn.functional as F

    x = torch.randn(4, 5)
    for ours, theirs in ((dt.alpha_dropout, F.alpha_dropout), (dt.feature_alpha_dropout, F.feature_alpha_dropout)):
        default = inspect.signature(theirs).parameters["training"].default
        assert inspect.signature(ours).parameters["training"].default == default is False
        assert ours(x, 0.5) is x and theirs(x, 0.5) is x


@pytest.mark.parametrize("name", ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                                  "feature_alpha_dropout", "gaussian_dropout"])
def test_training_false_returns_the_input_whatever_its_rank_or_dtype(name):
    # torch.nn.functional returns the input itself when training=False, for any rank and dtype
    # (its early return precedes every shape check).
    f = getattr(dt, name)
    for t in (torch.ones(3), torch.ones(3, dtype=torch.int64), torch.ones(()), torch.ones(2, 3, 4, 5, 6, 7),
              torch.ones(4, dtype=torch.complex64)):
        assert f(t, 0.5, False) is t
    m = getattr(dt, {"dropout": "Dropout", "dropout1d": "Dropout1d", "dropout2d": "Dropout2d",
                     "dropout3d": "Dropout3d", "alpha_dropout": "AlphaDropout",
                     "feature_alpha_dropout": "FeatureAlphaDropout", "gaussian_dropout": "GaussianDropout"}[name])(0.5)
    m.eval()
    t = torch.ones(3, dtype=torch.int32)
    assert m(t) is t


@pytest.mark.parametrize("name, noise", [
    ("dropout", None), ("dropout2d", (4, 6, 1, 1)), ("alpha_dropout", None),
    ("feature_alpha_dropout", (4, 6, 1, 1)), ("gaussian_dropout", None)])
def test_channels_last_kept_with_the_same_bits(name, noise):
    # test/nn/test_dropout.py::TestDropoutNNDeviceType::_test_dropout_stride_mean_preserve: the
    # output keeps the input's strides (channels_last in, channels_last out).
    x = torch.randn(4, 6, 5, 3).to(memory_format=torch.channels_last)
    y = getattr(dt, name)(x, 0.3, True, seed=6, offset=2)
    assert y.stride() == x.stride()
    twin = {"dropout": lambda a: dropkit.dropout(a, 0.3, seed=6, offset=2),
            "alpha_dropout": lambda a: dropkit.alpha_dropout(a, 0.3, seed=6, offset=2),
            "gaussian_dropout": lambda a: dropkit.gaussian_dropout(a, 0.3, seed=6, offset=2),
            "dropout2d": lambda a: dropkit.dropout_nd(a, 0.3, seed=6, offset=2, noise_shape=noise),
            "feature_alpha_dropout": lambda a: dropkit.feature_alpha_dropout(a, 0.3, seed=6, offset=2)}[name]
    np.testing.assert_array_equal(y.numpy(), twin(np.ascontiguousarray(x.numpy())))
    # gradients too
    xg = x.clone().requires_grad_()
    getattr(dt, name)(xg, 0.3, True, seed=6, offset=2).backward(torch.ones_like(x))
    assert xg.grad.shape == x.shape
    # PyTorch keeps it as well (the behaviour mirrored)
    assert torch.nn.functional.dropout(x, 0.3).stride() == x.stride()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_dtypes_and_empty_tensors(name, dtype):
    # test/nn/test_dropout.py::TestDropoutNNDeviceType::test_empty_dropout and the OpInfo dtypes.
    shape, f = FUNCS[name]
    x = torch.randn(shape).to(dtype)
    y = f(x, seed=1)
    assert y.dtype == dtype and y.shape == x.shape
    empty = torch.empty((0,) + shape[1:], dtype=dtype)
    e = f(empty, seed=1)
    assert e.shape == empty.shape and e.dtype == dtype
    xg = torch.randn(shape).to(dtype).requires_grad_()
    f(xg, seed=1).sum().backward()
    assert xg.grad.dtype == dtype


def test_stride_zero_and_non_contiguous_gradients():
    # The gradient of .sum() has stride 0; a transposed consumer gives a non-contiguous one.
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    dt.dropout(x, 0.5, seed=4).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), dropkit.dropout_backward(np.ones((6, 5)), 0.5, seed=4))
    x.grad = None
    g = torch.randn(5, 6, dtype=torch.float64)
    dt.dropout(x, 0.5, seed=4).backward(g.t())
    np.testing.assert_array_equal(x.grad.numpy(), dropkit.dropout_backward(g.t().numpy(), 0.5, seed=4))


# ------------------------------------------------------------------------------------------------
# TorchScript, torch.jit.trace, torch.export, torch.compile with seed=None
# ------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_jit_script_raises_one_clear_error():
    with pytest.raises(TypeError, match="torch.jit.script.*torch.compile, torch.export or torch.jit.trace"):
        torch.jit.script(dt.Dropout(0.5, seed=2**64 - 1))
    with pytest.raises(TypeError, match="torch.jit.script"):
        torch.jit.script(torch.nn.Sequential(torch.nn.Linear(2, 2), dt.Dropout2d(0.5)))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace.*` is deprecated:DeprecationWarning")
def test_jit_trace_records_the_operator_and_advances_the_counter():
    m = dt.Dropout(0.5, seed=2**64 - 5)
    traced = torch.jit.trace(m, torch.ones(10), check_trace=False)
    assert m.position == 10
    x = torch.randn(10)
    np.testing.assert_array_equal(traced(x).numpy(), dropkit.dropout(x.numpy(), 0.5, seed=2**64 - 5, offset=10))
    np.testing.assert_array_equal(traced(x).numpy(), dropkit.dropout(x.numpy(), 0.5, seed=2**64 - 5, offset=20))
    assert "dropkit::dropout_apply" in str(traced.graph)


def test_export_runs_the_operator():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)
            self.drop = dt.Dropout(0.5, seed=7)

        def forward(self, x):
            return self.drop(self.lin(x))

    net = Net()
    ep = torch.export.export(net, (torch.ones(2, 4),))
    x = torch.randn(2, 4)
    h = net.lin(x).detach().numpy()
    np.testing.assert_array_equal(ep.module()(x).detach().numpy(), dropkit.dropout(h, 0.5, seed=7))


def test_compile_seed_none_follows_manual_seed():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = torch.compile(torch.nn.Sequential(torch.nn.Linear(8, 8), dt.Dropout(0.5)), fullgraph=True,
                          backend="aot_eager")
    x = torch.randn(3, 8, requires_grad=True)
    torch.manual_seed(5)
    a = model(x)
    a.sum().backward()
    torch.manual_seed(5)
    b = model(x)
    assert torch.equal(a, b) and not torch.equal(model(x), a)
    assert counters["stats"]["unique_graphs"] == 1
    # the compiled graph draws its seed as eager mode does (the same random_ of the generator)
    eager = torch.nn.Sequential(model._orig_mod[0], dt.Dropout(0.5))
    torch.manual_seed(5)
    assert torch.equal(eager(x), a)


def test_inference_mode_and_parameters():
    # torch.inference_mode (test/test_autograd.py::TestAutogradInferenceMode) and an nn.Parameter
    # input (a Tensor subclass) take the same paths as plain tensors.
    with torch.inference_mode():
        x = torch.ones(10)
        torch.manual_seed(2)
        a = dt.dropout(x, 0.5)
        m = dt.Dropout(0.5, seed=1)
        np.testing.assert_array_equal(m(x).numpy(), dropkit.dropout(np.ones(10, np.float32), 0.5, seed=1))
    torch.manual_seed(2)
    assert torch.equal(dt.dropout(torch.ones(10), 0.5), a)  # the per-call draw works outside too
    p = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    dt.dropout(p, 0.5, seed=3).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), dropkit.dropout_backward(np.ones(5), 0.5, seed=3))


# inductor imports parts of torch that use torch.jit.script_method, deprecated in torch 2.13
@pytest.mark.filterwarnings("ignore:`torch.jit.script.*` is deprecated:DeprecationWarning")
def test_compile_functional_seed_none_and_inductor():
    # seed=None in a compiled function: the seed is drawn in the graph (no graph break); the
    # default inductor backend runs the layers too.
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    f = torch.compile(lambda a: dt.dropout(a, 0.5) + dt.gaussian_dropout(a, 0.3), fullgraph=True, backend="aot_eager")
    x = torch.ones(64)
    torch.manual_seed(9)
    y = f(x)
    torch.manual_seed(9)
    assert torch.equal(f(x), y) and counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()
    m = torch.compile(dt.Dropout2d(0.5, seed=4), fullgraph=True)
    t = torch.randn(2, 3, 4, 4)
    np.testing.assert_array_equal(m(t).numpy(), dropkit.dropout_nd(t.numpy(), 0.5, seed=4, noise_shape=(2, 3, 1, 1)))


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_eager_backward_saves_no_tensor_at_all(name):
    # The eager autograd.Function keeps (seed, offset, p) as Python numbers: saved_tensors_hooks
    # (the tool of test/test_autograd.py::TestAutograd::test_saved_tensors_hook_*) see nothing.
    shape, f = FUNCS[name]
    saved = []
    x = torch.randn(shape, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        f(x, seed=1).sum().backward()
    assert saved == []


@pytest.mark.parametrize("kind, axes", [("dropout", -1), ("alpha", 2), ("gaussian", -1)])
def test_seeded_op_passes_opcheck(kind, axes):
    # torch.library.opcheck: schema, fake kernel, autograd registration, as for the other operators.
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.dropkit.seeded_apply.default,
                          (x, kind, 0.5, torch.tensor(-5, dtype=torch.int64), 3, axes))
