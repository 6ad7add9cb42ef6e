"""dropkit.torch: the same bits as dropkit.dropout, gradients, no saved mask, torch.compile, errors."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import dropkit

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'dropkit[torch]'")
dt = pytest.importorskip("dropkit.torch", reason="dropkit.torch needs PyTorch")

DTYPES = [torch.float16, torch.float32, torch.float64]
SHAPES = [(), (0,), (1,), (17,), (3, 5, 33), (2, 0, 3)]
SEED, OFFSET = 2**64 - 12345, 2**63 + 7  # both past 2**63: the int64 bit-pattern path


def _ref(t, p, seed, offset=0):
    """dropkit.dropout on a NumPy copy of t's values (C order)."""
    return dropkit.dropout(np.array(t.detach().numpy()), p, seed=seed, offset=offset)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", [0.1, 0.5, 1.0])
def test_same_bits_as_numpy_api(dtype, shape, p):
    t = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    y = dt.dropout(t, p, seed=SEED, offset=OFFSET)
    assert y.dtype == dtype and y.shape == t.shape
    np.testing.assert_array_equal(y.numpy().reshape(-1).view(np.uint8),
                                  _ref(t, p, SEED, OFFSET).reshape(-1).view(np.uint8))
    assert torch.equal(t, torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype))


@pytest.mark.parametrize("make", [lambda a: a.transpose(0, 2), lambda a: a[:, ::2, 1:],
                                  lambda a: a[:1].expand(4, 6, 10)], ids=["transposed", "sliced", "expanded"])
def test_non_contiguous_input(make):
    t = make(torch.randn(4, 6, 10, dtype=torch.float32))
    assert not t.is_contiguous()
    y = dt.dropout(t, 0.3, seed=5, offset=11)
    np.testing.assert_array_equal(y.numpy(), _ref(t, 0.3, 5, 11))  # logical C order, as NumPy


def test_zero_copy_reads_and_writes_tensor_memory():
    # The in-place path runs the core on t's own storage: the data pointer does not change.
    t = torch.randn(1000, dtype=torch.float64)
    ptr, expect = t.data_ptr(), _ref(t, 0.5, 3)
    assert dt.dropout(t, 0.5, seed=3, inplace=True) is t and t.data_ptr() == ptr
    np.testing.assert_array_equal(t.numpy(), expect)


def test_bfloat16_is_the_float32_result_rounded():
    t = torch.randn(1000, generator=torch.Generator().manual_seed(2)).bfloat16()
    y = dt.dropout(t, 0.25, seed=9, offset=3)
    assert y.dtype == torch.bfloat16
    expect = torch.from_numpy(dropkit.dropout(t.float().numpy(), 0.25, seed=9, offset=3)).bfloat16()
    assert torch.equal(y.view(torch.int16), expect.view(torch.int16))
    keep = dropkit.dropout_mask(1000, 0.25, seed=9, offset=3)
    np.testing.assert_array_equal((y != 0).numpy(), keep & (t != 0).numpy())


@pytest.mark.parametrize("contiguous", [True, False])
def test_inplace(contiguous):
    base = torch.randn(6, 8, dtype=torch.float32)
    t = base.clone() if contiguous else base.clone().t()
    expect = _ref(t, 0.5, 4, 2)
    assert dt.dropout(t, 0.5, seed=4, offset=2, inplace=True) is t
    np.testing.assert_array_equal(t.numpy(), expect)


def test_inplace_on_a_non_leaf_backpropagates():
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    h = x * 3.0
    y = dt.dropout(h, 0.4, seed=8, inplace=True)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 3.0 * dropkit.dropout_backward(np.ones((5, 6)), 0.4, seed=8))


def test_inplace_on_a_leaf_that_requires_grad_raises_as_pytorch():
    x = torch.randn(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        dt.dropout(x, 0.5, seed=1, inplace=True)


def test_identity_cases_return_the_input():
    t = torch.randn(7)
    assert dt.dropout(t, 0.5, False, seed=1) is t
    assert dt.dropout(t, 0.0, seed=1) is t


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_backward_regenerates_the_mask(p):
    x = torch.randn(4, 9, dtype=torch.float32, requires_grad=True)
    g = torch.randn(4, 9, dtype=torch.float32)
    y = dt.dropout(x, p, seed=SEED, offset=OFFSET)
    y.backward(g)
    expect = dropkit.dropout_backward(g.numpy(), p, seed=SEED, offset=OFFSET)
    np.testing.assert_array_equal(x.grad.numpy(), expect)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_gradcheck_float64(p):
    x = torch.randn(3, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: dt.dropout(a, p, seed=77, offset=5), (x,))
    assert torch.autograd.gradgradcheck(lambda a: dt.dropout(a, p, seed=77, offset=5), (x,))
    # and on a non-contiguous input
    xt = torch.randn(11, 3, dtype=torch.float64).t().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: dt.dropout(a, p, seed=77), (xt,))


def _saved_tensors(fn, x):
    saved = []

    def pack(t):
        saved.append((tuple(t.shape), t.dtype, t.numel() * t.element_size()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x).sum().backward()
    return saved


def test_saves_no_tensor_of_the_input_size():
    x = torch.randn(64, 256, requires_grad=True)
    ours = _saved_tensors(lambda a: dt.dropout(a, 0.5, seed=1), x)
    theirs = _saved_tensors(torch.nn.Dropout(0.5), x)
    assert all(n <= 8 for _, _, n in ours), ours  # the 0-d int64 offset, nothing else
    assert sum(n for _, _, n in ours) <= 8
    assert any(shape == tuple(x.shape) for shape, _, _ in theirs), theirs  # PyTorch saves a mask


def test_module_counter_generator_and_modes():
    g = torch.Generator().manual_seed(123)
    lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64, generator=torch.Generator().manual_seed(123)).tolist()
    m = dt.Dropout(0.25, seed=g)
    assert isinstance(m, torch.nn.Dropout) and m.seed == lo + hi * 2**32
    # issue 14: an explicit stream saves its seed and counter (int64 bit patterns) in the state_dict
    assert set(m.state_dict()) == {"seed", "position"} and m.position == 0
    a, b = torch.randn(3, 5), torch.randn(7)
    np.testing.assert_array_equal(m(a).numpy(), _ref(a, 0.25, m.seed, 0))
    np.testing.assert_array_equal(m(b).numpy(), _ref(b, 0.25, m.seed, 15))
    assert m.position == 22
    m.eval()
    assert m(a) is a and m.position == 22
    m.train()
    m.position = 2**64 - 3
    assert m.position == 2**64 - 3
    np.testing.assert_array_equal(m(torch.ones(2)).numpy(), _ref(torch.ones(2), 0.25, m.seed, 2**64 - 3))
    with pytest.raises(ValueError, match="exhausted"):
        m(torch.ones(1))  # the counter would reach 2**64 and wrap
    assert m.position == 2**64 - 1


def test_module_seed_none_follows_torch_manual_seed():
    # issue 14: seed=None follows PyTorch's global generator at every call (as nn.Dropout): nothing
    # is drawn at construction, torch.manual_seed before a step reproduces that step.
    torch.manual_seed(31)
    m = dt.Dropout()
    assert m.seed is None and dt.Dropout(seed=5).seed == 5
    x = torch.ones(1000)
    torch.manual_seed(31)
    y1 = m(x)
    torch.manual_seed(31)
    assert torch.equal(m(x), y1) and not torch.equal(m(x), y1)


def test_module_inplace_and_repr():
    m = dt.Dropout(0.5, inplace=True, seed=3)
    t = torch.randn(10)
    expect = _ref(t, 0.5, 3, 0)
    assert m(t) is t
    np.testing.assert_array_equal(t.numpy(), expect)
    assert "seed=3, position=10" in repr(m)


def test_torch_compile_fullgraph_one_graph():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    lin = torch.nn.Linear(8, 8, dtype=torch.float64)
    drop = dt.Dropout(0.5, seed=4)
    model = torch.compile(torch.nn.Sequential(lin, drop), fullgraph=True, backend="aot_eager")
    for step in range(3):
        a = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
        out = model(a)
        g = torch.randn(2, 8, dtype=torch.float64)
        out.backward(g)
        h = lin(a).detach().numpy()
        np.testing.assert_array_equal(out.detach().numpy(), dropkit.dropout(h, 0.5, seed=4, offset=16 * step))
        dh = dropkit.dropout_backward(g.numpy(), 0.5, seed=4, offset=16 * step)
        np.testing.assert_allclose(a.grad.numpy(), dh @ lin.weight.detach().numpy(), rtol=1e-12)
    assert drop.position == 48
    assert counters["stats"]["unique_graphs"] == 1  # the counter is a buffer: no recompilation


def test_torch_compile_inplace_layer():
    torch._dynamo.reset()
    lin = torch.nn.Linear(8, 8)
    model = torch.compile(torch.nn.Sequential(lin, dt.Dropout(0.5, inplace=True, seed=2)),
                          fullgraph=True, backend="aot_eager")
    a = torch.randn(3, 8)
    with torch.no_grad():  # the mutating operator, in place
        y = model(a)
        np.testing.assert_array_equal(y.numpy(), dropkit.dropout(lin(a).numpy(), 0.5, seed=2))
    a = torch.randn(3, 8, requires_grad=True)  # with autograd: copy_ into the input
    y = model(a)
    y.sum().backward()
    h = lin(a).detach().numpy()
    np.testing.assert_array_equal(y.detach().numpy(), dropkit.dropout(h, 0.5, seed=2, offset=24))
    dh = dropkit.dropout_backward(np.ones((3, 8), np.float32), 0.5, seed=2, offset=24)
    np.testing.assert_allclose(a.grad.numpy(), dh @ lin.weight.detach().numpy(), rtol=1e-6)


def test_custom_op_passes_opcheck():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.dropkit.dropout_apply.default,
                          (x, 0.5, 7, torch.tensor(3, dtype=torch.int64)))


# ------------------------------------------------------------------------------------------------
# The variants: Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout, GaussianDropout
# ------------------------------------------------------------------------------------------------


def _channels(shape, k):
    """noise_shape of channel-wise dropout: the first k sizes, then ones."""
    return tuple(shape[:k]) + (1,) * (len(shape) - k)


# name: (NumPy twin (x, p, seed, offset) -> y, its backward (g, p, seed, offset) -> dx, shapes, noise axes)
VARIANTS = {
    "dropout1d": (lambda x, p, s, o: dropkit.dropout_nd(x, p, seed=s, offset=o, noise_shape=_channels(x.shape, x.ndim - 1)),
                  lambda g, p, s, o: dropkit.dropout_nd_backward(g, p, seed=s, offset=o, noise_shape=_channels(g.shape, g.ndim - 1)),
                  [(3, 4, 17), (4, 17)]),
    "dropout2d": (lambda x, p, s, o: dropkit.dropout_nd(x, p, seed=s, offset=o, noise_shape=_channels(x.shape, x.ndim - 2)),
                  lambda g, p, s, o: dropkit.dropout_nd_backward(g, p, seed=s, offset=o, noise_shape=_channels(g.shape, g.ndim - 2)),
                  [(2, 3, 5, 6), (3, 5, 6)]),
    "dropout3d": (lambda x, p, s, o: dropkit.dropout_nd(x, p, seed=s, offset=o, noise_shape=_channels(x.shape, x.ndim - 3)),
                  lambda g, p, s, o: dropkit.dropout_nd_backward(g, p, seed=s, offset=o, noise_shape=_channels(g.shape, g.ndim - 3)),
                  [(2, 3, 2, 3, 4), (3, 2, 3, 4)]),
    "alpha_dropout": (lambda x, p, s, o: dropkit.alpha_dropout(x, p, seed=s, offset=o),
                      lambda g, p, s, o: dropkit.alpha_dropout_backward(g, p, seed=s, offset=o),
                      [(), (0,), (3, 5, 33)]),
    "feature_alpha_dropout": (lambda x, p, s, o: dropkit.feature_alpha_dropout(x, p, seed=s, offset=o),
                              lambda g, p, s, o: dropkit.feature_alpha_dropout_backward(g, p, seed=s, offset=o),
                              [(4, 7), (2, 3, 5, 6)]),
    "gaussian_dropout": (lambda x, p, s, o: dropkit.gaussian_dropout(x, p, seed=s, offset=o),
                         lambda g, p, s, o: dropkit.gaussian_dropout_backward(g, p, seed=s, offset=o),
                         [(), (1,), (3, 5, 33)]),
}
MODULES = {"dropout1d": "Dropout1d", "dropout2d": "Dropout2d", "dropout3d": "Dropout3d",
           "alpha_dropout": "AlphaDropout", "feature_alpha_dropout": "FeatureAlphaDropout",
           "gaussian_dropout": "GaussianDropout"}
VARIANT_CASES = [(n, shape) for n, (_, _, shapes) in VARIANTS.items() for shape in shapes]


def _bits(a):
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _specials(t):
    if t.numel() > 3:
        t.view(-1)[:3] = torch.tensor([float("nan"), -0.0, float("inf")])
    return t


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("p", [0.3, 1.0])
@pytest.mark.parametrize("name, shape", VARIANT_CASES, ids=str)
def test_variants_same_bits_as_numpy_api(name, shape, p, dtype):
    if name == "gaussian_dropout" and p == 1.0:
        p = 0.9  # rate 1 is refused (infinite variance)
    twin = VARIANTS[name][0]
    t = _specials(torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype))
    before = _bits(t.numpy()).copy()
    y = getattr(dt, name)(t, p, True, seed=SEED, offset=OFFSET)
    assert y.dtype == dtype and y.shape == t.shape
    np.testing.assert_array_equal(_bits(y.numpy()), _bits(twin(np.array(t.numpy()), p, SEED, OFFSET)))
    np.testing.assert_array_equal(_bits(t.numpy()), before)  # the input is not written


@pytest.mark.parametrize("name, shape", VARIANT_CASES, ids=str)
def test_variants_backward_regenerates_the_noise(name, shape):
    _, twin_backward, _ = VARIANTS[name]
    x = torch.randn(shape, dtype=torch.float32, requires_grad=True)
    g = torch.randn(shape, dtype=torch.float32)
    getattr(dt, name)(x, 0.3, True, seed=SEED, offset=OFFSET).backward(g)
    np.testing.assert_array_equal(x.grad.numpy(), twin_backward(g.numpy(), 0.3, SEED, OFFSET))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_gradcheck_float64(name):
    shape = VARIANTS[name][2][-1]
    f = getattr(dt, name)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: f(a, 0.4, True, seed=77, offset=5), (x,))
    assert torch.autograd.gradgradcheck(lambda a: f(a, 0.4, True, seed=77, offset=5), (x,))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_save_no_tensor_of_the_input_size(name):
    x = torch.randn(VARIANTS[name][2][-1], requires_grad=True)
    saved = _saved_tensors(lambda a: getattr(dt, name)(a, 0.5, True, seed=1), x)
    assert sum(n for _, _, n in saved) <= 8, saved  # the 0-d int64 offset, nothing else


@pytest.mark.parametrize("spatial, shape", [(1, (3, 4, 50)), (2, (3, 4, 5, 6)), (2, (4, 5, 6)), (3, (2, 3, 2, 3, 4))],
                         ids=str)
def test_channel_dropout_drops_whole_channels_with_the_standard_mask(spatial, shape):
    # Channel j of sample i sits at position offset + i * C + j: its keep bit is bit (i * C + j) of
    # dropkit.dropout_mask, the standard Bernoulli mask (docs/rng.md 8.1).
    t = torch.rand(shape, dtype=torch.float64) + 1.0  # no zeros
    y = getattr(dt, f"dropout{spatial}d")(t, 0.5, seed=SEED, offset=OFFSET)
    lead = shape[:len(shape) - spatial]
    keep = dropkit.dropout_mask(math.prod(lead), 0.5, seed=SEED, offset=OFFSET).reshape(lead)
    assert keep.any() and not keep.all()
    flat_y, flat_t = y.reshape(*lead, -1).numpy(), t.reshape(*lead, -1).numpy()
    np.testing.assert_array_equal(flat_y, np.where(keep[..., None], flat_t * 2.0, 0.0))


@pytest.mark.parametrize("ours, theirs, shape", [
    ("Dropout1d", torch.nn.Dropout1d, (64, 8, 5)),
    ("Dropout2d", torch.nn.Dropout2d, (64, 8, 3, 4)),
    ("Dropout3d", torch.nn.Dropout3d, (64, 8, 2, 2, 3)),
    ("AlphaDropout", torch.nn.AlphaDropout, (64, 40)),
    ("FeatureAlphaDropout", torch.nn.FeatureAlphaDropout, (64, 8, 3, 4)),
], ids=lambda v: v if isinstance(v, str) else None)
def test_modules_behave_as_pytorch(ours, theirs, shape):
    """Same values and sharing structure as PyTorch's layer: on a constant input, the outputs take
    the same two values (kept, dropped) and are constant over the same axes."""
    x = torch.full(shape, 0.75, dtype=torch.float64)
    torch.manual_seed(0)
    a, b = getattr(dt, ours)(0.3, seed=5)(x), theirs(0.3)(x)
    va, vb = torch.unique(a), torch.unique(b)
    assert len(va) == len(vb) == 2
    np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-15)
    shared = tuple(range(2, len(shape)))
    for out in (a, b):
        if shared:
            assert torch.equal(out, out.amax(dim=shared, keepdim=True).expand(shape))


def test_gaussian_dropout_statistics():
    # y = x * (1 + sigma * eps): mean 1 and standard deviation sigma = sqrt(p / (1 - p)) = 1 at
    # p = 0.5; n = 2**16 values, 5 sigma bounds (sd of the mean 1/256, of the variance ~ sqrt(2/n)).
    y = dt.gaussian_dropout(torch.ones(1 << 16, dtype=torch.float64), 0.5, seed=3)
    assert abs(float(y.mean()) - 1.0) < 5 / 256
    assert abs(float(y.var()) - 1.0) < 5 * math.sqrt(2 / (1 << 16))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_counter_modes_inplace_and_state(name):
    cls = getattr(dt, MODULES[name])
    shape = {"dropout1d": (3, 4, 17), "dropout2d": (2, 3, 5, 6), "dropout3d": (2, 3, 2, 3, 4),
             "feature_alpha_dropout": (2, 3, 5, 6)}.get(name, (3, 5, 33))
    noise = math.prod(shape[:2]) if name in ("dropout1d", "dropout2d", "dropout3d", "feature_alpha_dropout") else math.prod(shape)
    g = torch.Generator().manual_seed(9)
    lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64, generator=torch.Generator().manual_seed(9)).tolist()
    m = cls(0.25, seed=g)
    assert m.seed == lo + hi * 2**32 and set(m.state_dict()) == {"seed", "position"} and m.position == 0
    if name != "gaussian_dropout":
        assert isinstance(m, getattr(torch.nn, MODULES[name]))
    f = getattr(dt, name)
    a = torch.randn(shape)
    np.testing.assert_array_equal(m(a).numpy(), f(a, 0.25, True, seed=m.seed, offset=0).numpy())
    np.testing.assert_array_equal(m(a).numpy(), f(a, 0.25, True, seed=m.seed, offset=noise).numpy())
    assert m.position == 2 * noise
    m.eval()
    assert m(a) is a and m.position == 2 * noise
    m.train()
    mi = cls(0.25, inplace=True, seed=m.seed)
    b = a.clone()
    assert mi(b) is b
    np.testing.assert_array_equal(b.numpy(), f(a, 0.25, True, seed=m.seed).numpy())
    assert f"seed={m.seed}, position={2 * noise}" in repr(m) and "inplace=True" in repr(mi)
    m.position = 2**64 - noise
    with pytest.raises(ValueError, match="exhausted"):
        m(a)


def test_unbatched_channel_input_uses_one_position_per_channel():
    m = dt.Dropout2d(0.5, seed=4)
    t = torch.randn(6, 3, 5)
    np.testing.assert_array_equal(m(t).numpy(), dropkit.dropout_nd(t.numpy(), 0.5, seed=4, noise_shape=(6, 1, 1)))
    assert m.position == 6


def test_variant_non_contiguous_and_bfloat16():
    base = torch.randn(5, 3, 4, 6)
    t = base.transpose(0, 1)  # (3, 5, 4, 6), not contiguous
    np.testing.assert_array_equal(dt.dropout2d(t, 0.5, seed=2).numpy(),
                                  dropkit.dropout_nd(t.numpy(), 0.5, seed=2, noise_shape=(3, 5, 1, 1)))
    tb = base.bfloat16()
    y = dt.alpha_dropout(tb, 0.2, True, seed=2, offset=7)
    expect = torch.from_numpy(dropkit.alpha_dropout(tb.float().numpy(), 0.2, seed=2, offset=7)).bfloat16()
    assert y.dtype == torch.bfloat16 and torch.equal(y.view(torch.int16), expect.view(torch.int16))


def test_variant_inplace_on_a_non_leaf_backpropagates():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    y = dt.feature_alpha_dropout(x * 2.0, 0.4, True, seed=8, inplace=True)
    y.sum().backward()
    dx = dropkit.feature_alpha_dropout_backward(np.ones((2, 3, 4, 5)), 0.4, seed=8)
    np.testing.assert_array_equal(x.grad.numpy(), 2.0 * dx)


def test_variant_identity_cases():
    for name, (_, _, shapes) in VARIANTS.items():
        t = torch.randn(shapes[-1])
        f = getattr(dt, name)
        assert f(t, 0.5, False, seed=1) is t and f(t, 0.0, True, seed=1) is t


def test_torch_compile_channel_and_gaussian_layers_one_graph():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    conv = torch.nn.Conv2d(2, 3, 3, dtype=torch.float64)
    drop, gauss = dt.Dropout2d(0.5, seed=4), dt.GaussianDropout(0.3, seed=6)
    model = torch.compile(torch.nn.Sequential(conv, drop, gauss), fullgraph=True, backend="aot_eager")
    for step in range(3):
        a = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
        out = model(a)
        g = torch.randn(out.shape, dtype=torch.float64)
        out.backward(g)
        h = conv(a).detach().numpy()  # (2, 3, 3, 4): 6 channel positions, 72 Gaussian positions
        y = dropkit.dropout_nd(h, 0.5, seed=4, offset=6 * step, noise_shape=(2, 3, 1, 1))
        np.testing.assert_array_equal(out.detach().numpy(), dropkit.gaussian_dropout(y, 0.3, seed=6, offset=72 * step))
        dh = dropkit.dropout_nd_backward(dropkit.gaussian_dropout_backward(g.numpy(), 0.3, seed=6, offset=72 * step),
                                         0.5, seed=4, offset=6 * step, noise_shape=(2, 3, 1, 1))
        (expect,) = torch.autograd.grad(conv(a), a, torch.from_numpy(dh))
        np.testing.assert_allclose(a.grad.numpy(), expect.numpy(), rtol=1e-12)
    assert drop.position == 18 and gauss.position == 216
    assert counters["stats"]["unique_graphs"] == 1


@pytest.mark.parametrize("kind, axes", [("dropout", 2), ("alpha", -1), ("alpha_backward", 2), ("gaussian", -1)])
def test_variant_op_passes_opcheck(kind, axes):
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.dropkit.variant_apply.default,
                          (x, kind, 0.5, 7, torch.tensor(3, dtype=torch.int64), axes))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: dt.dropout1d(torch.ones(2, 3, 4, 5)), ValueError, "dropout1d expects a 2-D .*got a 4-D"),
    (lambda: dt.dropout2d(torch.ones(2, 3)), ValueError, "dropout2d expects a 3-D"),
    (lambda: dt.dropout3d(torch.ones(2, 3, 4)), ValueError, "dropout3d expects a 4-D"),
    (lambda: dt.feature_alpha_dropout(torch.ones(3), training=True), ValueError, "at least 2 dimensions"),
    (lambda: dt.gaussian_dropout(torch.ones(3), 1.0), ValueError, "p must be in \\[0, 1\\)"),
    (lambda: dt.GaussianDropout(1.0), ValueError, "p must be in \\[0, 1\\)"),
    (lambda: dt.AlphaDropout(1.5), ValueError, "p must be in"),
    (lambda: dt.alpha_dropout(torch.ones(3, dtype=torch.int64), training=True), TypeError, "dtype"),
    (lambda: dt.Dropout2d(seed=1)(torch.empty(2, 3, 4, device="meta")), ValueError, "meta"),
    (lambda: dt.dropout2d(torch.ones(2, 3, 4, 5), offset=2**64 - 5, seed=1), ValueError, "offset"),
])
def test_variant_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_channel_noise_offset_range_is_the_noise_size():
    t = torch.ones(2, 3, 4, 5)  # 6 channel positions: offset 2**64 - 6 is the last valid one
    np.testing.assert_array_equal(dt.dropout2d(t, 0.5, seed=1, offset=2**64 - 6).numpy(),
                                  dropkit.dropout_nd(t.numpy(), 0.5, seed=1, offset=2**64 - 6, noise_shape=(2, 3, 1, 1)))


@pytest.mark.parametrize("bad, exc, match", [
    (dict(t=torch.empty(3, device="meta")), ValueError, "CPU tensor.*meta"),
    (dict(t=torch.ones(3, dtype=torch.int32)), TypeError, "dtype"),
    (dict(t=np.ones(3)), TypeError, "torch.Tensor"),
    (dict(t=torch.ones(3).to_sparse()), TypeError, "layout"),
    (dict(p=1.5), ValueError, "p must be in"),
    (dict(p=float("nan")), ValueError, "p must be in"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=2**64), ValueError, "seed"),
    (dict(seed=1.0), TypeError, "seed"),
    (dict(offset=2**64 - 2), ValueError, "offset"),
])
def test_bad_input(bad, exc, match):
    kw = dict(t=torch.ones(3), p=0.5, seed=1)
    kw.update(bad)
    t = kw.pop("t")
    with pytest.raises(exc, match=match):
        dt.dropout(t, **kw)


def test_module_rejects_meta_and_bad_seed():
    with pytest.raises(ValueError, match="meta"):
        dt.Dropout(0.5, seed=1)(torch.empty(2, device="meta"))
    with pytest.raises(TypeError, match="seed"):
        dt.Dropout(0.5, seed=np.random.default_rng(0))
    with pytest.raises(ValueError, match="p must be in"):
        dt.Dropout(-0.1)


def test_import_dropkit_does_not_import_torch():
    code = "import sys, dropkit; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docstring_examples():
    import doctest

    result = doctest.testmod(dt, raise_on_error=False, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_integrations_doc_examples_run():
    import re
    from pathlib import Path

    pytest.importorskip("dask.array", reason="the doc's second example needs Dask")
    doc = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 3  # PyTorch, PyTorch seeding modes, Dask
    for code in blocks:
        exec(compile(code, str(doc), "exec"), {})  # their asserts are the checks
