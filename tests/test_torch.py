"""dropkit.torch: the same bits as dropkit.dropout, gradients, no saved mask, torch.compile, errors."""
from __future__ import annotations

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
    assert m.state_dict() == {} and m.position == 0
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
    torch.manual_seed(31)
    s1 = dt.Dropout().seed
    torch.manual_seed(31)
    assert dt.Dropout().seed == s1
    assert dt.Dropout(seed=5).seed == 5


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
    assert len(blocks) == 2
    for code in blocks:
        exec(compile(code, str(doc), "exec"), {})  # their asserts are the checks
