"""Edge cases of the public API (issue 6, "loose edges"): misaligned arrays, thread counts, boolean
flags, layer attributes, the end of the stream, signalling NaNs.

Expected values come from NumPy arithmetic, the keep mask and the reference kernels called with an
explicitly computed threshold, never from the function under test. The sentences of docs/rng.md
that these behaviours pin are tested in tests/test_rng_doc.py.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import dropkit
from dropkit import _runtime

from _helpers import TWO64, assert_same_bits, bits, expected_apply

FLOATS = (np.float16, np.float32, np.float64)


def sample(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3).astype(dtype)


def misaligned(n, dtype, shift=1, fill=None):
    """A C-contiguous array of n elements whose address is ``shift`` bytes past an aligned one."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + 64, np.uint8)
    start = (-raw.ctypes.data) % 64 + shift  # 64-byte aligned address, plus shift
    a = raw[start:start + n * dtype.itemsize].view(dtype)
    assert a.ctypes.data % dtype.alignment != 0 and not a.flags.aligned and a.flags.c_contiguous
    if fill is not None:
        a[...] = fill
    return a


# ------------------------------------------------------------------------------------------
# Misaligned arrays
# ------------------------------------------------------------------------------------------

CALLS = {
    "train": dict(rate=0.3),
    "train-classic": dict(rate=0.3, inverted=False),
    "train-rate1": dict(rate=1.0),
    "eval-inverted": dict(rate=0.3, training=False),
    "eval-classic": dict(rate=0.3, training=False, inverted=False),
    "eval-classic-rate1": dict(rate=1.0, training=False, inverted=False),
    "rate0": dict(rate=0.0),
    "backward": dict(rate=0.3, backward=True),
}


def _call(x, kind, **kwargs):
    kw = dict(CALLS[kind])
    rate = kw.pop("rate")
    if kw.pop("backward", False):
        return dropkit.dropout_backward(x, rate, seed=3, **kw, **kwargs)
    return dropkit.dropout(x, rate, seed=3, **kw, **kwargs)


@pytest.mark.parametrize("kind", list(CALLS))
@pytest.mark.parametrize("dtype,shift", [(np.float16, 1), (np.float32, 1), (np.float32, 2),
                                         (np.float64, 1), (np.float64, 4)])
@pytest.mark.parametrize("n", [1, 37, 5000])
def test_misaligned_out_is_rejected_and_untouched(backend, kind, dtype, shift, n):
    x = sample(n, dtype, 1)
    out = misaligned(n, dtype, shift, fill=7.0)
    with pytest.raises(ValueError, match=r"^out must be aligned .*"):
        _call(x, kind, out=out, backend=backend)
    assert (out == 7.0).all()


@pytest.mark.parametrize("dtype", FLOATS)
def test_misaligned_in_place_is_rejected_and_untouched(backend, dtype):
    x = misaligned(100, dtype, fill=sample(100, dtype, 2))
    before = x.copy()
    with pytest.raises(ValueError, match="out must be aligned"):
        dropkit.dropout(x, 0.5, seed=1, out=x, backend=backend)
    assert_same_bits(x, before)


@pytest.mark.parametrize("kind", list(CALLS))
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 37, 5000])
def test_misaligned_x_gives_the_aligned_result(backend, kind, dtype, n):
    src = sample(n, dtype, 4)
    x = misaligned(n, dtype, fill=src)
    want = np.array(_call(src, kind, backend=backend), copy=True)  # aligned input
    assert_same_bits(_call(x, kind, backend=backend), want)
    out = np.full(n, 9.0, dtype)
    assert _call(x, kind, out=out, backend=backend) is out
    assert_same_bits(out, want)
    assert_same_bits(x, src)  # the input is never written


class _AlignmentSpy:
    """Wraps a kernel; records whether every array it was given was aligned for its dtype."""

    def __init__(self, real):
        self.real, self.seen = real, []

    def __call__(self, *args, **kwargs):
        self.seen += [a.ctypes.data % a.dtype.alignment == 0 for a in args if isinstance(a, np.ndarray)]
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("dtype", FLOATS)
def test_misaligned_x_never_reaches_a_kernel(monkeypatch, backend, dtype):
    from dropkit.reference import _kernels as ref_kernels

    mod = dropkit._core if backend == "core" else ref_kernels
    spy = _AlignmentSpy(mod.bernoulli_apply)
    monkeypatch.setattr(mod, "bernoulli_apply", spy)
    x = misaligned(300, dtype, fill=1.0)
    dropkit.dropout(x, 0.5, seed=1, backend=backend)
    dropkit.dropout(x, 0.5, seed=1, out=np.empty(300, dtype), backend=backend)
    dropkit.dropout_backward(x, 0.5, seed=1, backend=backend)
    dropkit.dropout(x, 1.0, seed=1, training=False, inverted=False, backend=backend)
    assert len(spy.seen) == 8 and all(spy.seen)


# ------------------------------------------------------------------------------------------
# Thread counts
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,exc", [
    (2**31, ValueError), (10**30, ValueError), (1025, ValueError), (np.int64(2**40), ValueError),
    (0, ValueError), (-1, ValueError), (-(2**70), ValueError),
    (True, TypeError), (False, TypeError), (np.bool_(True), TypeError), (2.0, TypeError),
    (np.float64(2.0), TypeError), ("2", TypeError), (None, TypeError), (np.array([2]), TypeError),
], ids=repr)
def test_set_num_threads_rejects(restore_runtime, n, exc):
    before = dropkit.get_num_threads()
    shown = str(int(n)) if isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) \
        else repr(n)
    with pytest.raises(exc, match=r"number of threads .*" + re.escape(shown)):
        dropkit.set_num_threads(n)
    assert dropkit.get_num_threads() == before
    x = sample(1000, np.float32)  # later calls still work
    assert_same_bits(dropkit.dropout(x, 0.5, seed=1), dropkit.dropout(x, 0.5, seed=1, backend="numpy"))


def test_set_num_threads_bounds_accepted(restore_runtime):
    assert _runtime.MAX_THREADS == 1024  # documented in set_num_threads and README
    x = sample(1000, np.float32)
    want = dropkit.dropout(x, 0.5, seed=1, backend="numpy")
    for n in (1, np.int64(2), np.uint16(1024), 1024):
        dropkit.set_num_threads(n)
        assert dropkit.get_num_threads() == int(n) and type(dropkit.get_num_threads()) is int
        assert_same_bits(dropkit.dropout(x, 0.5, seed=1), want)


def _import_with_omp(value, *flags):
    env = {k: v for k, v in os.environ.items() if k not in ("DROPKIT_SIMD", "DROPKIT_BACKEND")}
    env["OMP_NUM_THREADS"] = value
    code = ("import numpy as np, dropkit\n"
            "x = np.ones(300_000, np.float32)\n"
            "y = dropkit.dropout(x, 0.5, seed=1)\n"
            "print(dropkit.get_num_threads(), int((y == 2).sum()))\n")
    p = subprocess.run([sys.executable, *flags, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout.split(), p.stderr


def _default_threads():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cpus or 1, 1024)


def test_omp_num_threads_in_range_is_used():
    rc, out, err = _import_with_omp("3")
    assert rc == 0, err
    assert out[0] == "3" and "OMP_NUM_THREADS" not in err


@pytest.mark.parametrize("value", ["2147483647", "1025", "4096,2"])
def test_omp_num_threads_too_large_warns_and_uses_the_default(value):
    keep = str(int(dropkit.dropout_mask(300_000, 0.5, seed=1).sum()))
    rc, out, err = _import_with_omp(value)
    assert rc == 0, err
    assert out == [str(_default_threads()), keep]
    assert "RuntimeWarning" in err and "OMP_NUM_THREADS" in err and repr(value) in err and "1024" in err


def test_omp_num_threads_too_large_is_an_error_under_w_error():
    rc, out, err = _import_with_omp("2147483647", "-W", "error")
    assert rc != 0 and "OMP_NUM_THREADS" in err and "RuntimeWarning" in err


# ------------------------------------------------------------------------------------------
# Boolean flags
# ------------------------------------------------------------------------------------------

NOT_BOOLS = ["False", "no", "", 0, 1, 0.0, None, np.int64(0), np.array(False), [True], b"0"]
X = np.ones(8, np.float32)


def _flag_calls(backend):
    return {
        "dropout-training": ("training", lambda v: dropkit.dropout(X, 0.5, seed=1, training=v,
                                                                   backend=backend)),
        "dropout-inverted": ("inverted", lambda v: dropkit.dropout(X, 0.5, seed=1, inverted=v,
                                                                   backend=backend)),
        "dropout-eval-inverted": ("inverted", lambda v: dropkit.dropout(
            X, 0.5, seed=1, training=False, inverted=v, backend=backend)),
        "dropout-rate0-training": ("training", lambda v: dropkit.dropout(X, 0.0, seed=1, training=v,
                                                                         backend=backend)),
        "backward-inverted": ("inverted", lambda v: dropkit.dropout_backward(X, 0.5, seed=1, inverted=v,
                                                                             backend=backend)),
        "mask-packed": ("packed", lambda v: dropkit.dropout_mask(8, 0.5, seed=1, packed=v,
                                                                 backend=backend)),
        "Dropout(inverted=)": ("inverted", lambda v: dropkit.Dropout(0.5, seed=1, inverted=v,
                                                                     backend=backend)),
        "Dropout.forward(training=)": ("training", lambda v: dropkit.Dropout(
            0.5, seed=1, backend=backend).forward(X, training=v)),
    }


@pytest.mark.parametrize("entry", list(_flag_calls("core")))
@pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
def test_flags_must_be_bools(backend, entry, value):
    if value is None and entry == "Dropout.forward(training=)":
        # Documented: in the layers None means "use .training" (True here), not an error.
        y = dropkit.Dropout(0.5, seed=1, backend=backend).forward(X, training=None)
        assert_same_bits(y, expected_apply(X, dropkit.dropout_mask(8, 0.5, seed=1), 2.0))
        return
    name, call = _flag_calls(backend)[entry]
    with pytest.raises(TypeError, match=rf"^{name} must be a bool \(True or False\), got "
                                        + re.escape(repr(value))):
        call(value)


@pytest.mark.parametrize("entry", list(_flag_calls("core")))
def test_flags_accept_numpy_bools(backend, entry):
    _, call = _flag_calls(backend)[entry]
    for v in (True, False):
        a, b = call(v), call(np.bool_(v))
        a = a.forward(X) if isinstance(a, dropkit.Dropout) else a
        b = b.forward(X) if isinstance(b, dropkit.Dropout) else b
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


def test_functional_training_none_is_an_error(backend):
    with pytest.raises(TypeError, match="training must be a bool"):
        dropkit.dropout(X, 0.5, seed=1, training=None, backend=backend)


@pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
def test_layer_flags_are_checked_at_assignment(backend, value):
    layer = dropkit.Dropout(0.5, seed=1, backend=backend)
    with pytest.raises(TypeError, match=r"^training must be a bool"):
        layer.training = value
    with pytest.raises(TypeError, match=r"^inverted must be a bool"):
        layer.inverted = value
    assert layer.training is True and layer.inverted is True
    layer.training, layer.inverted = np.bool_(False), np.bool_(False)
    assert layer.training is False and layer.inverted is False  # stored as Python bools
    x = sample(50, np.float64, 5)
    np.testing.assert_array_equal(layer.forward(x), x * 0.5)  # classic evaluation
    assert layer.position == 0


# ------------------------------------------------------------------------------------------
# Layer seed and position, mask shapes
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [np.array(7), np.array(7, np.uint64), np.array(2**64 - 1, np.uint64),
                                  np.array(7, np.int8)], ids=repr)
def test_layer_accepts_0d_integer_array_seed(backend, seed):
    layer = dropkit.Dropout(0.5, seed=seed, backend=backend)
    assert layer.seed == int(seed) and type(layer.seed) is int
    x = sample(100, np.float32, 6)
    assert_same_bits(layer.forward(x), dropkit.dropout(x, 0.5, seed=seed, backend=backend))
    assert_same_bits(layer.forward(x), dropkit.dropout(x, 0.5, seed=int(seed), offset=100,
                                                       backend=backend))


@pytest.mark.parametrize("seed,exc", [(np.array(7.0), TypeError), (np.array([7]), TypeError),
                                      (np.array(True), TypeError), (np.array(-1), ValueError)], ids=repr)
def test_layer_rejects_other_arrays_as_seed(seed, exc):
    with pytest.raises(exc, match="seed"):
        dropkit.Dropout(0.5, seed=seed)


@pytest.mark.parametrize("value,exc", [("0", TypeError), (1.0, TypeError), (None, TypeError),
                                       (True, TypeError), (np.float64(3), TypeError), (-1, ValueError),
                                       (2**64 + 1, ValueError), (np.int64(-5), ValueError)], ids=repr)
def test_layer_position_is_checked_at_assignment(backend, value, exc):
    layer = dropkit.Dropout(0.5, seed=1, backend=backend)
    layer.forward(X)
    with pytest.raises(exc, match=r"^position must be "):
        layer.position = value
    assert layer.position == 8


def test_layer_position_accepts_integers_up_to_2_64(backend):
    layer = dropkit.Dropout(0.5, seed=1, backend=backend)
    layer.position = np.uint64(2**64 - 8)
    assert layer.position == 2**64 - 8 and type(layer.position) is int
    assert_same_bits(layer.forward(X), dropkit.dropout(X, 0.5, seed=1, offset=2**64 - 8, backend=backend))
    assert layer.position == 2**64
    layer.position = 2**64
    assert layer.forward(X[:0]).shape == (0,) and layer.position == 2**64
    with pytest.raises(ValueError, match=r"2\*\*64"):
        layer.forward(X[:1])


@pytest.mark.parametrize("shape", [True, False, np.bool_(True), (True, 3), (2, np.bool_(False)), [3, True]],
                         ids=repr)
def test_mask_shape_rejects_bools(backend, shape):
    with pytest.raises(TypeError, match=r"^shape must be .*" + re.escape(repr(shape))):
        dropkit.dropout_mask(shape, 0.5, seed=1, backend=backend)


# ------------------------------------------------------------------------------------------
# The end of the stream: offset 2**64 with nothing to cover
# ------------------------------------------------------------------------------------------


def test_offset_2_64_with_size_0(backend):
    for shape in [(0,), (3, 0)]:
        e = np.ones(shape, np.float32)
        assert dropkit.dropout(e, 0.5, seed=1, offset=TWO64, backend=backend).shape == shape
        assert dropkit.dropout_backward(e, 0.5, seed=1, offset=TWO64, backend=backend).shape == shape
        m = dropkit.dropout_mask(shape, 0.5, seed=1, offset=TWO64, backend=backend)
        assert m.shape == shape and m.dtype == np.bool_
        p = dropkit.dropout_mask(shape, 0.5, seed=1, offset=TWO64, packed=True, backend=backend)
        assert p.shape == (0,) and p.dtype == np.uint8
    # the chunking rule holds for the empty last chunk: x[n:n] at offset o + n, o + n = 2**64
    x = sample(10, np.float32)
    y = dropkit.dropout(x, 0.5, seed=1, offset=TWO64 - 10, backend=backend)
    assert_same_bits(dropkit.dropout(x[10:], 0.5, seed=1, offset=TWO64, backend=backend), y[10:])


def test_offset_beyond_2_64_or_2_64_with_elements(backend):
    e = np.ones(0, np.float32)
    with pytest.raises(ValueError, match=r"^offset must be in \[0, 2\*\*64\], got 18446744073709551617"):
        dropkit.dropout(e, 0.5, seed=1, offset=TWO64 + 1, backend=backend)
    with pytest.raises(ValueError, match=r"^offset \+ size must not exceed 2\*\*64"):
        dropkit.dropout(np.ones(1, np.float32), 0.5, seed=1, offset=TWO64, backend=backend)
    with pytest.raises(ValueError, match=r"^offset \+ size must not exceed 2\*\*64"):
        dropkit.dropout_mask(1, 0.5, seed=1, offset=TWO64, backend=backend)


# ------------------------------------------------------------------------------------------
# Signalling NaNs
# ------------------------------------------------------------------------------------------

SNAN = {np.float16: 0x7C01, np.float32: 0x7F800001, np.float64: 0x7FF0000000000001}
UINTS = {np.float16: np.uint16, np.float32: np.uint32, np.float64: np.uint64}


def _is_nan_bits(a, dtype):
    """NaN test on the bit pattern (np.isnan on a signalling NaN may itself raise 'invalid')."""
    b = bits(a).astype(np.uint64)
    info = np.finfo(dtype)
    mant = (1 << info.nmant) - 1
    expo = ((1 << info.nexp) - 1) << info.nmant
    return ((b & expo) == expo) & ((b & mant) != 0)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kind", ["train", "train-classic", "eval-classic", "backward", "rate0",
                                  "eval-inverted"])
def test_signalling_nan_is_silent_in_every_mode(backend, dtype, kind):
    x = np.full(64, SNAN[dtype], UINTS[dtype]).view(dtype)
    x[::2] = 1.5
    assert _is_nan_bits(x[1::2], dtype).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning ("invalid value") fails the test
        y = _call(x, kind, backend=backend)
    keep = dropkit.dropout_mask(64, CALLS[kind]["rate"], seed=3, backend=backend)
    if kind in ("eval-classic", "rate0", "eval-inverted"):
        keep[:] = True
    assert _is_nan_bits(y[1::2][keep[1::2]], dtype).all()  # a kept NaN stays NaN
    assert (bits(y)[~keep] == 0).all()  # a dropped one is +0.0
    assert keep[1::2].any()


def test_backward_names_grad_in_its_errors(backend):
    with pytest.raises(TypeError, match=r"^grad must have dtype float16, float32 or float64, got int64"):
        dropkit.dropout_backward(np.arange(3, dtype=np.int64), 0.5, seed=1, backend=backend)
