"""Tests of the functional API (``dropkit.dropout``, ``dropout_backward``, ``dropout_mask``) and
the runtime settings, on both backends.

Expected values are never taken from the function under test: they are rebuilt from the keep
mask (``dropout_mask``, itself cross-checked against the other backend and against packbits) and
docs/rng.md section 5 (one IEEE multiplication in the compute type, ``+0.0`` where dropped), or
from NumPy arithmetic.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

import dropkit
from dropkit.reference import _kernels as ref_kernels

from _helpers import BACKENDS, TWO64, bits, compute_type, expected_apply, times
from _helpers import assert_same_bits as _assert_same_bits

FLOATS = (np.float16, np.float32, np.float64)


# ------------------------------------------------------------------------------------------
# Helpers. The independent model of docs/rng.md section 5 (``expected_apply``, ``times``) and
# ``bits`` are in _helpers.py; the fixtures ``backend`` and ``restore_runtime`` in conftest.py.
# ------------------------------------------------------------------------------------------


def assert_same_bits(actual, expected):
    """An ndarray with expected's dtype, shape and bit patterns (-0.0 != +0.0, NaNs compare)."""
    assert isinstance(actual, np.ndarray)
    _assert_same_bits(actual, expected)


def inv_scale(rate):
    return 0.0 if rate == 1.0 else 1.0 / (1.0 - rate)


def sample(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3).astype(dtype)


# ------------------------------------------------------------------------------------------
# dtypes
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
def test_float_dtypes_preserved_and_values_match_mask(backend, dtype):
    x = sample(1000, dtype, 1)
    rate = 0.3
    y = dropkit.dropout(x, rate, seed=11, offset=3, backend=backend)
    assert y.dtype == dtype
    keep = dropkit.dropout_mask(x.shape, rate, seed=11, offset=3, backend=backend)
    assert 0 < keep.sum() < keep.size
    assert_same_bits(y, expected_apply(x, keep, inv_scale(rate)))
    g = dropkit.dropout_backward(x, rate, seed=11, offset=3, backend=backend)
    assert g.dtype == dtype


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_,
                                   np.complex64, np.complex128, np.longdouble])
def test_non_float_dtype_rejected_with_dtype_name(backend, dtype):
    x = np.ones(5, dtype=dtype)
    name = re.escape(str(np.dtype(dtype)))
    with pytest.raises(TypeError, match=name):
        dropkit.dropout(x, 0.5, seed=0, backend=backend)
    with pytest.raises(TypeError, match=name):
        dropkit.dropout(x, 0.5, seed=0, training=False, backend=backend)
    with pytest.raises(TypeError, match=name):
        dropkit.dropout_backward(x, 0.5, seed=0, backend=backend)


def test_list_of_floats_accepted(backend):
    data = [[0.5, -1.25, 3.0], [2.0, -0.0, 7.5]]
    y = dropkit.dropout(data, 0.5, seed=4, backend=backend)
    ref = dropkit.dropout(np.array(data), 0.5, seed=4, backend=backend)
    assert y.dtype == np.float64 and y.shape == (2, 3)
    assert_same_bits(y, ref)
    keep = dropkit.dropout_mask((2, 3), 0.5, seed=4, backend=backend)
    assert_same_bits(y, expected_apply(np.array(data), keep, 2.0))


def test_list_of_ints_rejected(backend):
    with pytest.raises(TypeError, match="int"):
        dropkit.dropout([1, 2, 3], 0.5, seed=0, backend=backend)


# ------------------------------------------------------------------------------------------
# shapes and strides
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (17,), (129,), (2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", FLOATS)
def test_shapes(backend, shape, dtype):
    x = sample(shape, dtype, 2)
    y = dropkit.dropout(x, 0.5, seed=21, offset=9, backend=backend)
    assert y.shape == shape and y.dtype == dtype
    assert y.flags.c_contiguous
    keep = dropkit.dropout_mask(shape, 0.5, seed=21, offset=9, backend=backend)
    assert keep.shape == shape
    assert_same_bits(y, expected_apply(x, keep, 2.0))
    # The mask depends on flat positions only, never on the shape (docs/rng.md section 2).
    flat = dropkit.dropout(x.reshape(-1), 0.5, seed=21, offset=9, backend=backend)
    assert_same_bits(y.reshape(-1), flat)


def test_python_scalar_gives_0d_array(backend):
    y = dropkit.dropout(3.0, 0.5, seed=1, backend=backend)
    assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == np.float64
    keep = dropkit.dropout_mask((), 0.5, seed=1, backend=backend)
    assert float(y) == (6.0 if keep else 0.0)


def _views():
    base2 = sample((37, 41), np.float32, 3)
    base1 = sample(301, np.float64, 4)
    return {
        "step2": base1[::2],
        "reversed": base1[::-1],
        "step-3": base1[::-3],
        "transpose": base2.T,
        "fortran": np.asfortranarray(base2),
        "col-slice": base2[:, 5:30:2],
        "neg-2d": base2[::-1, ::-2],
        "broadcast": np.broadcast_to(base1[:7], (5, 7)),
        "float16-T": sample((9, 13), np.float16, 5).T,
    }


@pytest.mark.parametrize("name", list(_views()))
@pytest.mark.parametrize("rate", [0.3, 0.5])
def test_non_contiguous_equals_contiguous_copy(backend, name, rate):
    x = _views()[name]
    assert not x.flags.c_contiguous
    ref = dropkit.dropout(np.ascontiguousarray(x), rate, seed=8, offset=100, backend=backend)
    y = dropkit.dropout(x, rate, seed=8, offset=100, backend=backend)
    assert y.flags.c_contiguous and y.shape == x.shape
    assert_same_bits(y, ref)
    g = dropkit.dropout_backward(x, rate, seed=8, offset=100, backend=backend)
    assert g.flags.c_contiguous
    assert_same_bits(g, ref)
    out = np.full(x.shape, 99.0, dtype=x.dtype)
    assert dropkit.dropout(x, rate, seed=8, offset=100, out=out, backend=backend) is out
    assert_same_bits(out, ref)
    # eval classic also handles strides
    ev = dropkit.dropout(x, rate, seed=8, training=False, inverted=False, backend=backend)
    assert_same_bits(ev, times(np.ascontiguousarray(x), 1.0 - rate))


@pytest.mark.parametrize("dtype", FLOATS)
def test_unaligned_input_and_out(backend, dtype):
    # A misaligned x is copied to an aligned buffer first; a misaligned out= is an error (nothing
    # written). More cases in test_edges.py.
    n = 1001
    item = np.dtype(dtype).itemsize
    x = np.ndarray((n,), dtype, buffer=bytearray(n * item + 1), offset=1)
    x[...] = sample(n, dtype, 6)
    o = np.ndarray((n,), dtype, buffer=bytearray(n * item + 1), offset=1)
    assert not x.flags.aligned and not o.flags.aligned
    ref = dropkit.dropout(x.copy(), 0.3, seed=2, backend=backend)
    assert_same_bits(dropkit.dropout(x, 0.3, seed=2, backend=backend), ref)
    o[...] = 5.0
    with pytest.raises(ValueError, match="out must be aligned"):
        dropkit.dropout(x, 0.3, seed=2, out=o, backend=backend)
    assert (o == 5.0).all()
    a = np.empty(n, dtype)
    assert dropkit.dropout(x, 0.3, seed=2, out=a, backend=backend) is a
    assert_same_bits(a, ref)


# ------------------------------------------------------------------------------------------
# out=
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training,inverted,rate", [
    (True, True, 0.3), (True, False, 0.3), (False, True, 0.3), (False, False, 0.3),
    (True, True, 0.0), (True, True, 1.0), (True, False, 1.0),
])
@pytest.mark.parametrize("dtype", FLOATS)
def test_out_written_and_returned(backend, training, inverted, rate, dtype):
    x = sample((6, 35), dtype, 7)
    ref = dropkit.dropout(x, rate, seed=5, training=training, inverted=inverted, backend=backend)
    out = np.full(x.shape, 42.0, dtype=dtype)
    res = dropkit.dropout(x, rate, seed=5, training=training, inverted=inverted, out=out,
                          backend=backend)
    assert res is out
    assert_same_bits(out, np.ascontiguousarray(ref))
    if training:
        gout = np.full(x.shape, 42.0, dtype=dtype)
        res = dropkit.dropout_backward(x, rate, seed=5, inverted=inverted, out=gout, backend=backend)
        assert res is gout
        assert_same_bits(gout, ref)


def _bad_outs(x):
    y = np.full(x.shape, 7.0, dtype=x.dtype)
    y.flags.writeable = False
    wrong_dtype = np.float32 if x.dtype != np.float32 else np.float64
    return {
        "shape": (ValueError, np.full(x.shape[:-1] + (x.shape[-1] + 1,), 7.0, dtype=x.dtype)),
        "transposed-shape": (ValueError, np.full(x.shape[::-1], 7.0, dtype=x.dtype)),
        "dtype": (TypeError, np.full(x.shape, 7.0, dtype=wrong_dtype)),
        "int-dtype": (TypeError, np.full(x.shape, 7, dtype=np.int64)),
        "read-only": (ValueError, y),
        "strided": (ValueError, np.full(x.shape[:-1] + (2 * x.shape[-1],), 7.0, dtype=x.dtype)[:, ::2]),
        "fortran": (ValueError, np.asfortranarray(np.full(x.shape, 7.0, dtype=x.dtype))),
        "list": (TypeError, [[7.0] * x.shape[1]] * x.shape[0]),
        "memoryview": (TypeError, memoryview(np.full(x.shape, 7.0, dtype=x.dtype))),
    }


@pytest.mark.parametrize("kind", list(_bad_outs(np.zeros((4, 5)))))
@pytest.mark.parametrize("call", ["train", "eval-inverted", "eval-classic", "rate0", "backward"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bad_out_raises_and_leaves_out_untouched(backend, kind, call, dtype):
    x = sample((4, 5), dtype, 8)
    exc, out = _bad_outs(x)[kind]
    before = np.array(out, copy=True)
    kwargs = dict(seed=1, out=out, backend=backend)
    with pytest.raises(exc, match="out"):
        if call == "train":
            dropkit.dropout(x, 0.5, **kwargs)
        elif call == "eval-inverted":
            dropkit.dropout(x, 0.5, training=False, **kwargs)
        elif call == "eval-classic":
            dropkit.dropout(x, 0.5, training=False, inverted=False, **kwargs)
        elif call == "rate0":
            dropkit.dropout(x, 0.0, **kwargs)
        else:
            dropkit.dropout_backward(x, 0.5, **kwargs)
    after = np.array(out, copy=True)
    assert after.dtype == before.dtype and after.shape == before.shape
    np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("n", [1, 17, 1000, 70_001])
def test_out_is_x_in_place(backend, dtype, rate, n):
    x = sample(n, dtype, 9)
    ref = dropkit.dropout(x.copy(), rate, seed=3, offset=1, backend=backend)
    res = dropkit.dropout(x, rate, seed=3, offset=1, out=x, backend=backend)
    assert res is x
    assert_same_bits(x, np.asarray(ref))
    g = sample(n, dtype, 10)
    gref = dropkit.dropout_backward(g.copy(), rate, seed=3, offset=1, backend=backend)
    assert dropkit.dropout_backward(g, rate, seed=3, offset=1, out=g, backend=backend) is g
    assert_same_bits(g, np.asarray(gref))


@pytest.mark.parametrize("layout", ["out-ahead", "out-behind", "strided-x", "far-overlap"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_partially_overlapping_out(backend, layout, dtype):
    n = 200_003  # above the parallel cutoff, so a threaded kernel would race on a bad overlap
    buf = sample(2 * n + 8, dtype, 11)
    if layout == "out-ahead":
        x, out = buf[:n], buf[1:n + 1]
    elif layout == "out-behind":
        x, out = buf[1:n + 1], buf[:n]
    elif layout == "strided-x":
        x, out = buf[:2 * n:2], buf[:n]
    else:
        x, out = buf[:n], buf[n // 2:n // 2 + n]
    assert np.shares_memory(x, out)
    expected = dropkit.dropout(x.copy(), 0.3, seed=12, offset=5, backend=backend)
    res = dropkit.dropout(x, 0.3, seed=12, offset=5, out=out, backend=backend)
    assert res is out
    assert_same_bits(out, expected)


# ------------------------------------------------------------------------------------------
# modes
# ------------------------------------------------------------------------------------------


SIZES = [1, 15, 16, 17, 63, 64, 65, 129, 1000, 70_003]


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", SIZES)
def test_inverted_training(backend, rate, dtype, n):
    x = sample(n, dtype, n)
    keep = dropkit.dropout_mask(n, rate, seed=77, offset=1000, backend=backend)
    y = dropkit.dropout(x, rate, seed=77, offset=1000, backend=backend)
    s = compute_type(dtype)(1.0 / (1.0 - rate))  # the scale rounded once to the compute type
    assert_same_bits(y, expected_apply(x, keep, 1.0 / (1.0 - rate)))
    if dtype == np.float32:
        np.testing.assert_array_equal(bits(y[keep]), bits(x[keep] * s))
    assert not np.signbit(y[~keep]).any() and (y[~keep] == 0).all()


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", FLOATS)
def test_classic_training_keeps_x_exactly(backend, rate, dtype):
    x = sample(5000, dtype, 13)
    keep = dropkit.dropout_mask(x.shape, rate, seed=3, backend=backend)
    y = dropkit.dropout(x, rate, seed=3, inverted=False, backend=backend)
    np.testing.assert_array_equal(bits(y[keep]), bits(x[keep]))
    assert (bits(y[~keep]) == 0).all()
    g = dropkit.dropout_backward(x, rate, seed=3, inverted=False, backend=backend)
    assert_same_bits(g, np.where(keep, x, dtype(0)).astype(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
def test_eval_inverted_returns_x_itself(backend, dtype):
    x = sample((3, 4), dtype, 14)
    before = x.copy()
    assert dropkit.dropout(x, 0.4, seed=0, training=False, backend=backend) is x
    assert_same_bits(x, before)
    xt = x.T  # non-contiguous: still the identity, returned as is
    assert dropkit.dropout(xt, 0.4, seed=0, training=False, backend=backend) is xt


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("dtype", FLOATS)
def test_eval_classic_scales_by_keep_probability(backend, rate, dtype):
    x = sample(1000, dtype, 15)
    y = dropkit.dropout(x, rate, seed=0, training=False, inverted=False, backend=backend)
    ct = compute_type(dtype)
    expected = (x.astype(ct) * ct(1.0 - rate)).astype(dtype)
    if rate == 1.0:
        # Everything is dropped, as in training: +0.0 (bit pattern 0), never -0.0 or 0 * inf = NaN.
        expected = np.zeros_like(x)
    assert_same_bits(y, expected)
    assert (y is x) == (rate == 0.0)  # rate 0 is the identity in every mode: x itself


@pytest.mark.parametrize("inverted", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
def test_rate_zero_training_is_identity(backend, inverted, dtype):
    x = sample(100, dtype, 16)
    x[0] = np.nan
    before = x.copy()
    assert dropkit.dropout(x, 0.0, seed=5, inverted=inverted, backend=backend) is x
    assert dropkit.dropout_backward(x, 0.0, seed=5, inverted=inverted, backend=backend) is x
    assert_same_bits(x, before)
    assert dropkit.dropout_mask(100, 0.0, seed=5, backend=backend).all()


@pytest.mark.parametrize("inverted", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
def test_rate_one_gives_positive_zeros(backend, inverted, dtype):
    x = np.array([np.inf, -np.inf, np.nan, -np.nan, -0.0, 0.0, -1.0, 1e4] * 40, dtype=dtype)
    for y in (dropkit.dropout(x, 1.0, seed=5, inverted=inverted, backend=backend),
              dropkit.dropout(x, 1.0, seed=5, inverted=inverted, training=False, backend=backend)
              if not inverted else np.zeros_like(x),
              dropkit.dropout_backward(x, 1.0, seed=5, inverted=inverted, backend=backend)):
        assert y.dtype == dtype and y.shape == x.shape
        assert (bits(y) == 0).all()  # +0.0 everywhere: no NaN from 0 * inf, no -0.0
    assert not dropkit.dropout_mask(x.shape, 1.0, seed=5, backend=backend).any()


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.85])
@pytest.mark.parametrize("dtype", FLOATS)
def test_backward_is_forward_on_grad(backend, rate, dtype):
    g = sample((40, 33), dtype, 17)
    fwd = dropkit.dropout(g, rate, seed=2**63 + 5, offset=2**40, backend=backend)
    bwd = dropkit.dropout_backward(g, rate, seed=2**63 + 5, offset=2**40, backend=backend)
    assert_same_bits(bwd, fwd)
    keep = dropkit.dropout_mask(g.shape, rate, seed=2**63 + 5, offset=2**40, backend=backend)
    assert_same_bits(bwd, expected_apply(g, keep, 1.0 / (1.0 - rate)))
    # and as a product grad * mask * scale, in float64 (loose: one rounding apart at most)
    np.testing.assert_allclose(bwd.astype(np.float64),
                               g.astype(np.float64) * keep / (1.0 - rate),
                               rtol=1e-3 if dtype == np.float16 else 1e-6)


def test_backends_agree(backend):
    other = "numpy" if backend == "core" else "core"
    for dtype in FLOATS:
        x = sample(70_003, dtype, 18)
        for rate in (0.1, 0.3, 0.5, 0.999):
            a = dropkit.dropout(x, rate, seed=123456789012, offset=77, backend=backend)
            b = dropkit.dropout(x, rate, seed=123456789012, offset=77, backend=other)
            assert_same_bits(a, b)


def test_seed_and_offset_change_the_mask(backend):
    m = dropkit.dropout_mask(4096, 0.5, seed=1, backend=backend)
    assert (m != dropkit.dropout_mask(4096, 0.5, seed=2, backend=backend)).any()
    assert (m != dropkit.dropout_mask(4096, 0.5, seed=1, offset=1, backend=backend)).any()
    # seed 2**32 differs from seed 0 (the high key word is used)
    assert (dropkit.dropout_mask(4096, 0.5, seed=0, backend=backend)
            != dropkit.dropout_mask(4096, 0.5, seed=2**32, backend=backend)).any()
    # chunking: an offset is a slice of the longer stream
    long = dropkit.dropout_mask(5000, 0.3, seed=9, backend=backend)
    np.testing.assert_array_equal(
        dropkit.dropout_mask(4001, 0.3, seed=9, offset=999, backend=backend), long[999:])


# ------------------------------------------------------------------------------------------
# NaN / Inf / signed zeros
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inverted", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_inf_and_signed_zero(backend, inverted, dtype):
    big = np.finfo(dtype).max
    pattern = [np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 1.5, -2.5, big, -big]
    x = np.array(pattern * 410, dtype=dtype)
    rate = 0.5
    keep = dropkit.dropout_mask(x.shape, rate, seed=31, backend=backend)
    y = dropkit.dropout(x, rate, seed=31, inverted=inverted, backend=backend)
    assert (bits(y[~keep]) == 0).all()  # dropped -> +0.0, sign bit clear, even NaN/inf/-0.0
    nan = np.isnan(x)
    assert np.isnan(y[keep & nan]).all() and (keep & nan).any()
    inf = np.isinf(x)
    assert (keep & inf).any()
    np.testing.assert_array_equal(y[keep & inf], x[keep & inf])  # infinite, sign kept
    negzero = (x == 0) & np.signbit(x)
    assert np.signbit(y[keep & negzero]).all()  # a kept -0.0 is -0.0 * s = -0.0
    # finite values: the specified product (max * 2 overflows to inf, inverted mode)
    fin = keep & np.isfinite(x)
    expected = expected_apply(x, keep, 2.0 if inverted else 1.0)
    np.testing.assert_array_equal(bits(y[fin]), bits(expected[fin]))
    if inverted:
        assert np.isinf(y[keep & (np.abs(x) == big)]).all()


# ------------------------------------------------------------------------------------------
# Bad arguments at every entry point
# ------------------------------------------------------------------------------------------


BAD_RATES = [-0.1, 1.5, float("nan"), float("inf"), "0.5", None, complex(0.5), True, [0.5]]
X5 = np.ones(5, np.float32)


def _functional(name, backend):
    """A call of entry point ``name`` taking (rate, seed, offset)."""
    return {
        "dropout": lambda r, s, o: dropkit.dropout(X5, r, seed=s, offset=o, backend=backend),
        "dropout-eval": lambda r, s, o: dropkit.dropout(X5, r, seed=s, offset=o, training=False,
                                                        backend=backend),
        "dropout-classic-eval": lambda r, s, o: dropkit.dropout(
            X5, r, seed=s, offset=o, training=False, inverted=False, backend=backend),
        "dropout_backward": lambda r, s, o: dropkit.dropout_backward(X5, r, seed=s, offset=o,
                                                                     backend=backend),
        "dropout_mask": lambda r, s, o: dropkit.dropout_mask(5, r, seed=s, offset=o, backend=backend),
        "dropout_mask-packed": lambda r, s, o: dropkit.dropout_mask(5, r, seed=s, offset=o, packed=True,
                                                                    backend=backend),
    }[name]


FUNCTIONAL = ["dropout", "dropout-eval", "dropout-classic-eval", "dropout_backward", "dropout_mask",
              "dropout_mask-packed"]


@pytest.mark.parametrize("entry", FUNCTIONAL)
@pytest.mark.parametrize("rate", BAD_RATES, ids=repr)
def test_bad_rate_functional(backend, entry, rate):
    with pytest.raises(ValueError, match=re.escape(repr(rate))):
        _functional(entry, backend)(rate, 0, 0)


def _layers(backend):
    return {
        "Dropout(rate)": lambda r, s: dropkit.Dropout(r, seed=s, backend=backend),
        "Dropout(rate=)": lambda r, s: dropkit.Dropout(rate=r, seed=s, backend=backend),
        "Dropout(dropout_rate=)": lambda r, s: dropkit.Dropout(dropout_rate=r, seed=s, backend=backend),
        "Dropout(drop_rate=)": lambda r, s: dropkit.Dropout(drop_rate=r, seed=s, backend=backend),
        "Dropout(classic)": lambda r, s: dropkit.Dropout(r, seed=s, inverted=False, backend=backend),
        "InvertedDropout(keep_prob=)": lambda r, s: dropkit.InvertedDropout(keep_prob=r, seed=s,
                                                                            backend=backend),
    }


@pytest.mark.parametrize("entry", list(_layers("core")))
@pytest.mark.parametrize("rate", BAD_RATES, ids=repr)
def test_bad_rate_layer_constructors(backend, entry, rate):
    if rate is None and entry.startswith("Dropout"):
        # Documented: Dropout's rate arguments default to None, meaning "rate 0.5".
        layer = _layers(backend)[entry](rate, 0)
        assert layer.rate == 0.5
        return
    with pytest.raises(ValueError, match=re.escape(repr(rate))):
        _layers(backend)[entry](rate, 0)


def test_bad_rate_set_on_layer_is_caught_at_forward(backend):
    layer = dropkit.Dropout(0.5, seed=1, backend=backend)
    layer.rate = 1.5
    with pytest.raises(ValueError, match="1.5"):
        layer.forward(X5)
    assert layer.position == 0


@pytest.mark.parametrize("rate", [np.float32(0.25), np.float64(0.3), np.array(0.75), 1, 0, np.int64(1)],
                         ids=repr)
def test_numpy_and_int_rates_accepted(backend, rate):
    r = float(rate)
    y = dropkit.dropout(X5 * 3, rate, seed=0, backend=backend)
    keep = dropkit.dropout_mask(5, r, seed=0, backend=backend)
    assert_same_bits(y, expected_apply(X5 * 3, keep, inv_scale(r)))


BAD_SEEDS = [(-1, ValueError), (2**64, ValueError), (2**70, ValueError), (np.int64(-3), ValueError),
             (1.5, TypeError), ("1", TypeError), (np.float64(2.0), TypeError), (True, TypeError)]


@pytest.mark.parametrize("entry", FUNCTIONAL)
@pytest.mark.parametrize("seed,exc", BAD_SEEDS + [(None, TypeError)], ids=repr)
def test_bad_seed_functional(backend, entry, seed, exc):
    with pytest.raises(exc, match=re.escape(str(int(seed)) if isinstance(seed, np.integer)
                                            else repr(seed))):
        _functional(entry, backend)(0.5, seed, 0)


@pytest.mark.parametrize("entry", list(_layers("core")))
@pytest.mark.parametrize("seed,exc", BAD_SEEDS, ids=repr)
def test_bad_seed_layer_constructors(backend, entry, seed, exc):
    with pytest.raises(exc, match=re.escape(str(int(seed)) if isinstance(seed, np.integer)
                                            else repr(seed))):
        _layers(backend)[entry](0.5, seed)


@pytest.mark.parametrize("seed", [0, 2**64 - 1, np.uint64(2**64 - 1), np.int8(3)], ids=repr)
def test_extreme_and_numpy_seeds_accepted(backend, seed):
    y = dropkit.dropout(X5, 0.5, seed=seed, backend=backend)
    keep = dropkit.dropout_mask(5, 0.5, seed=int(seed), backend=backend)
    assert_same_bits(y, expected_apply(X5, keep, 2.0))
    assert dropkit.Dropout(seed=seed).seed == int(seed)


@pytest.mark.parametrize("entry", FUNCTIONAL)
@pytest.mark.parametrize("offset,exc", [(-1, ValueError), (2**64, ValueError), (1.5, TypeError),
                                        ("0", TypeError), (None, TypeError)], ids=repr)
def test_bad_offset(backend, entry, offset, exc):
    with pytest.raises(exc, match="offset"):
        _functional(entry, backend)(0.5, 0, offset)


@pytest.mark.parametrize("entry", ["dropout", "dropout_backward", "dropout_mask", "dropout_mask-packed"])
def test_offset_plus_size_limit(backend, entry):
    call = _functional(entry, backend)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        call(0.5, 0, TWO64 - 4)  # 5 positions from 2**64 - 4: one too many
    with pytest.raises(ValueError, match="2\\*\\*64"):
        call(0.5, 0, TWO64 - 1)
    call(0.5, 0, TWO64 - 5)  # the last 5 positions are fine


def test_last_positions_agree_across_backends():
    n = 1000
    m = [dropkit.dropout_mask(n, 0.5, seed=3, offset=TWO64 - n, backend=b) for b in BACKENDS]
    np.testing.assert_array_equal(m[0], m[1])
    assert 0 < m[0].sum() < n
    p = dropkit.dropout_mask(n, 0.5, seed=3, offset=TWO64 - n, packed=True)
    np.testing.assert_array_equal(p, np.packbits(m[0]))


def test_offset_limit_on_empty_array(backend):
    empty = np.ones(0, np.float32)
    assert dropkit.dropout(empty, 0.5, seed=0, offset=TWO64 - 1, backend=backend).shape == (0,)


@pytest.mark.parametrize("name", ["bogus", "", "torch", "c++"])
def test_bad_backend_name(name):
    for call in (lambda: dropkit.dropout(X5, 0.5, seed=0, backend=name),
                 lambda: dropkit.dropout_backward(X5, 0.5, seed=0, backend=name),
                 lambda: dropkit.dropout_mask(5, 0.5, seed=0, backend=name),
                 lambda: dropkit.philox4x32_10([0, 0, 0, 0], [0, 0], backend=name)):
        with pytest.raises(ValueError, match=re.escape(repr(name))):
            call()


@pytest.mark.parametrize("call", ["eval", "rate0", "empty"])
def test_bad_backend_name_rejected_on_short_circuit_paths(call):
    with pytest.raises(ValueError, match="bogus"):
        if call == "eval":
            dropkit.dropout(X5, 0.5, seed=0, training=False, backend="bogus")
        elif call == "rate0":
            dropkit.dropout(X5, 0.0, seed=0, backend="bogus")
        else:
            dropkit.dropout(X5[:0], 0.5, seed=0, backend="bogus")


class _Spy:
    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


def _install_spies(monkeypatch):
    """Count the kernel calls of each backend. The core's compiled fast path (dropout_fast: the
    whole common call in one step) counts as a bernoulli_apply call of the core."""
    spies = {}
    for mod, tag in ((ref_kernels, "numpy"), (dropkit._core, "core")):
        for fn in ("bernoulli_apply", "bernoulli_mask"):
            spy = _Spy(getattr(mod, fn))
            monkeypatch.setattr(mod, fn, spy)
            spies[tag, fn] = spy
    fast = dropkit._core.dropout_fast
    apply_spy = spies["core", "bernoulli_apply"]

    def counted_fast(*args):
        y = fast(*args)
        if y is not None:
            apply_spy.calls += 1
        return y

    monkeypatch.setattr(dropkit._core, "dropout_fast", counted_fast)
    return spies


@pytest.mark.parametrize("name,expect", [("numpy", "numpy"), (" NumPy ", "numpy"), ("core", "core"),
                                         ("CORE", "core")])
def test_set_backend(monkeypatch, restore_runtime, name, expect):
    x = sample(3000, np.float32, 19)
    ref = dropkit.dropout(x, 0.3, seed=4, backend="numpy")
    spies = _install_spies(monkeypatch)
    dropkit.set_backend(name)
    assert dropkit.get_backend() == expect
    assert_same_bits(dropkit.dropout(x, 0.3, seed=4), ref)
    dropkit.dropout_backward(x, 0.3, seed=4)
    dropkit.dropout_mask(10, 0.3, seed=4)
    other = "core" if expect == "numpy" else "numpy"
    assert spies[expect, "bernoulli_apply"].calls == 2
    assert spies[expect, "bernoulli_mask"].calls == 1
    assert spies[other, "bernoulli_apply"].calls == 0 and spies[other, "bernoulli_mask"].calls == 0
    # an explicit backend wins over the process-wide choice
    dropkit.dropout(x, 0.3, seed=4, backend=other)
    assert spies[other, "bernoulli_apply"].calls == 1


def test_set_backend_in_layers(monkeypatch, restore_runtime):
    spies = _install_spies(monkeypatch)
    dropkit.set_backend("numpy")
    layer = dropkit.Dropout(0.3, seed=1)
    layer.forward(np.ones(10))
    assert spies["numpy", "bernoulli_apply"].calls == 1
    assert spies["core", "bernoulli_apply"].calls == 0


@pytest.mark.parametrize("name", ["cuda", "", None, 3])
def test_set_backend_rejects_bad_names(restore_runtime, name):
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        dropkit.set_backend(name)
    assert dropkit.get_backend() in ("core", "numpy")


def _import_dropkit_with_env(value):
    """Run a fresh interpreter with DROPKIT_BACKEND=value; return (returncode, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DROPKIT_SIMD", "DROPKIT_BACKEND")}
    if value is not None:
        env["DROPKIT_BACKEND"] = value
    code = ("import numpy as np, dropkit\n"
            "x = np.linspace(-1, 1, 3000, dtype=np.float32)\n"
            "a = dropkit.dropout(x, 0.3, seed=4)\n"
            "b = dropkit.dropout(x, 0.3, seed=4, backend='numpy')\n"
            "print(dropkit.get_backend(), a.tobytes() == b.tobytes())\n")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout.strip(), p.stderr


@pytest.mark.parametrize("env,expect", [("numpy", "numpy"), (" NumPy ", "numpy"), (None, "core"),
                                        ("", "core")])
def test_env_backend_is_read_at_import(env, expect):
    rc, out, err = _import_dropkit_with_env(env)
    assert rc == 0, err
    assert out == f"{expect} True"


def test_bad_env_backend_fails_the_import():
    rc, out, err = _import_dropkit_with_env("cuda")
    assert rc != 0
    assert "DROPKIT_BACKEND" in err and "'cuda'" in err


# ------------------------------------------------------------------------------------------
# dropout_mask
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [0, 1, 7, (), (0,), (3, 0), (5,), (4, 6), (2, 3, 11), np.int64(9),
                                   [3, 4]], ids=repr)
def test_mask_dtype_and_shape(backend, shape):
    m = dropkit.dropout_mask(shape, 0.4, seed=6, offset=2, backend=backend)
    dims = (int(shape),) if np.ndim(shape) == 0 and not isinstance(shape, tuple) else tuple(shape)
    assert m.dtype == np.bool_ and m.shape == dims
    # consistent with dropout: kept <=> output nonzero for a nonzero input
    y = dropkit.dropout(np.ones(dims, np.float32), 0.4, seed=6, offset=2, backend=backend)
    np.testing.assert_array_equal(m, y != 0)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 127, 128, 129, 1000, 70_001])
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 1.0])
def test_packed_mask(backend, n, rate):
    unpacked = dropkit.dropout_mask(n, rate, seed=44, offset=13, backend=backend)
    packed = dropkit.dropout_mask(n, rate, seed=44, offset=13, packed=True, backend=backend)
    assert packed.dtype == np.uint8 and packed.shape == (math.ceil(n / 8),)
    np.testing.assert_array_equal(packed, np.packbits(unpacked.ravel()))
    np.testing.assert_array_equal(np.unpackbits(packed, count=n).astype(bool), unpacked)
    if n % 8:  # unused low bits of the last byte are zero
        assert packed[-1] & ((1 << (8 - n % 8)) - 1) == 0


def test_packed_mask_multidim_and_offset(backend):
    shape = (3, 5, 7)
    full = dropkit.dropout_mask(300, 0.5, seed=1, backend=backend)
    for off in (0, 1, 77, 128):
        m = dropkit.dropout_mask(shape, 0.5, seed=1, offset=off, backend=backend)
        np.testing.assert_array_equal(m.ravel(), full[off:off + 105])
        p = dropkit.dropout_mask(shape, 0.5, seed=1, offset=off, packed=True, backend=backend)
        assert p.shape == (14,)
        np.testing.assert_array_equal(np.unpackbits(p, count=105).reshape(shape).astype(bool), m)


def test_mask_keep_fraction(backend):
    n = 1 << 20
    for rate in (0.1, 0.5, 0.8):
        m = dropkit.dropout_mask(n, rate, seed=2024, backend=backend)
        q = 1 - rate
        assert abs(m.mean() - q) < 5 * math.sqrt(q * (1 - q) / n)


@pytest.mark.parametrize("shape,exc", [(-1, ValueError), ((3, -2), ValueError), (1.5, TypeError),
                                       ((2.0, 3), TypeError), ("abc", TypeError)], ids=repr)
def test_bad_mask_shape(backend, shape, exc):
    with pytest.raises(exc, match="shape"):
        dropkit.dropout_mask(shape, 0.5, seed=0, backend=backend)


@pytest.mark.parametrize("shape", [(2**62, 4), (2**32, 2**32)])
def test_mask_size_overflow_is_an_error(backend, shape):
    with pytest.raises((ValueError, MemoryError, OverflowError)):
        dropkit.dropout_mask(shape, 0.5, seed=0, offset=1, packed=True, backend=backend)


# ------------------------------------------------------------------------------------------
# runtime settings
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                   ("2", TypeError), (True, TypeError), (None, TypeError)], ids=repr)
def test_set_num_threads_bad(restore_runtime, n, exc):
    before = dropkit.get_num_threads()
    with pytest.raises(exc):
        dropkit.set_num_threads(n)
    assert dropkit.get_num_threads() == before


def test_num_threads_round_trip_and_bits(restore_runtime):
    x = sample(300_001, np.float32, 20)
    results = []
    for n in (1, 2, 3, 7, np.int64(4)):
        dropkit.set_num_threads(n)
        assert dropkit.get_num_threads() == n
        results.append(dropkit.dropout(x, 0.3, seed=5, offset=11))
        results.append(dropkit.dropout_mask(x.size, 0.3, seed=5, offset=11, packed=True))
    for a, b in zip(results[2:], results[:-2]):
        np.testing.assert_array_equal(a, b)


def test_simd_targets(restore_runtime):
    avail = dropkit.available_simd_targets()
    assert "scalar" in avail and set(avail) <= {"scalar", "avx2", "avx512"}
    assert dropkit.simd_target() in avail
    x = sample(100_003, np.float16, 21)
    ref = dropkit.dropout(x, 0.3, seed=9, backend="numpy")
    for t in avail:
        dropkit.set_simd_target(t)
        assert dropkit.simd_target() == t
        assert_same_bits(dropkit.dropout(x, 0.3, seed=9, backend="core"), ref)
    for bad in ("bogus", "AVX2", "", "sse2"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            dropkit.set_simd_target(bad)
        assert dropkit.simd_target() == avail[-1]


_SUBPROCESS_CODE = """
import hashlib, numpy as np, dropkit
x = np.linspace(-3, 3, 200_003, dtype=np.float32)
h = hashlib.sha256()
h.update(dropkit.dropout(x, 0.3, seed=99, offset=5).tobytes())
h.update(dropkit.dropout(x.astype(np.float16), 0.5, seed=98).tobytes())
h.update(dropkit.dropout_mask(200_003, 0.7, seed=7, packed=True).tobytes())
print(dropkit.simd_target())
print(h.hexdigest())
"""


def _digest():
    x = np.linspace(-3, 3, 200_003, dtype=np.float32)
    h = hashlib.sha256()
    h.update(dropkit.dropout(x, 0.3, seed=99, offset=5, backend="core").tobytes())
    h.update(dropkit.dropout(x.astype(np.float16), 0.5, seed=98, backend="core").tobytes())
    h.update(dropkit.dropout_mask(200_003, 0.7, seed=7, packed=True, backend="core").tobytes())
    return h.hexdigest()


def _run_python(code, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("DROPKIT_SIMD", "DROPKIT_BACKEND")}
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                          timeout=120)


def test_dropkit_simd_env_scalar(restore_runtime):
    dropkit.set_simd_target(dropkit.available_simd_targets()[-1])  # the widest, as by default
    expected = _digest()
    r = _run_python(_SUBPROCESS_CODE, DROPKIT_SIMD="scalar")
    assert r.returncode == 0, r.stderr
    target, digest = r.stdout.split()
    assert target == "scalar"
    assert digest == expected


def test_dropkit_simd_env_bogus_fails_at_import():
    r = _run_python("import dropkit", DROPKIT_SIMD="bogus")
    assert r.returncode != 0
    assert "DROPKIT_SIMD" in r.stderr and "bogus" in r.stderr


# ------------------------------------------------------------------------------------------
# concurrency
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend_", ["core", "numpy"])
def test_concurrent_python_threads(backend_):
    n = 1 << 20
    xs = [sample(n, np.float32, 100 + i) for i in range(4)]
    seeds = [11, 12, 2**40 + 13, 2**64 - 1]
    sequential = [dropkit.dropout(x, 0.3, seed=s, backend=backend_) for x, s in zip(xs, seeds)]
    seq_masks = [dropkit.dropout_mask(n, 0.3, seed=s, packed=True, backend=backend_) for s in seeds]
    barrier = threading.Barrier(4)
    results: list = [None] * 4
    errors: list = []

    def work(i):
        try:
            barrier.wait()
            outs = []
            for _ in range(3):
                outs.append(dropkit.dropout(xs[i], 0.3, seed=seeds[i], backend=backend_))
                outs.append(dropkit.dropout_mask(n, 0.3, seed=seeds[i], packed=True, backend=backend_))
            results[i] = outs
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        for k, r in enumerate(results[i]):
            expected = sequential[i] if k % 2 == 0 else seq_masks[i]
            np.testing.assert_array_equal(r.view(np.uint8), expected.view(np.uint8))
    assert (sequential[0] != sequential[1]).any()
