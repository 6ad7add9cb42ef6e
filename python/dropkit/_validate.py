"""Argument validation shared by every public entry point (both backends).

Every message names the bad value. ``ValueError`` for bad values, ``TypeError`` for bad types and
dtypes, as NumPy, PyTorch and Keras do.
"""
from __future__ import annotations

import math
import numbers
import operator

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_TWO64 = 1 << 64
MAX_THREADS = 1024  # set_num_threads and OMP_NUM_THREADS; far above any useful count


def flag(value: object, name: str) -> bool:
    """A real boolean (``bool`` or ``numpy.bool_``) as a Python bool; TypeError naming ``name``.

    Strings, integers, None and arrays are refused: ``training='False'`` must not mean True.
    """
    if value is True or value is False:
        return value  # type: ignore[return-value]
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be a bool (True or False), got {value!r}")


def rate(value: object, name: str = "rate") -> float:
    """A drop rate: a real number in [0, 1] (not bool, not NaN)."""
    if type(value) is float and 0.0 <= value <= 1.0:  # the common case, fast (NaN fails the test)
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number in [0, 1], got {value!r}")
    r = float(value)
    if math.isnan(r) or not 0.0 <= r <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return r


def integer(value: object, what: str) -> int:
    """A Python or NumPy integer (not bool) as an int; TypeError naming ``what`` otherwise."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what}, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what}, got {value!r}") from None


def uint64(value: object, name: str) -> int:
    """An integer in [0, 2**64) (Python or NumPy integer, not bool)."""
    if type(value) is int and 0 <= value < _TWO64:  # the common case, fast
        return value
    v = integer(value, f"{name} must be an integer in [0, 2**64)")
    if not 0 <= v < _TWO64:
        raise ValueError(f"{name} must be in [0, 2**64), got {v}")
    return v


def offset(value: object, name: str = "offset") -> int:
    """A stream offset: an integer in [0, 2**64] (2**64 itself only with size 0, see :func:`span`).

    An offset names where a range of positions starts, so the empty range at the very end of the
    stream, ``[2**64, 2**64)``, is valid: ``x[n:]`` at ``offset + n`` works for every ``n``.
    """
    if type(value) is int and 0 <= value <= _TWO64:  # the common case, fast
        return value
    v = integer(value, f"{name} must be an integer in [0, 2**64]")
    if not 0 <= v <= _TWO64:
        raise ValueError(f"{name} must be in [0, 2**64], got {v}")
    return v


def span(offset: int, size: int) -> None:
    """Positions offset .. offset + size - 1 must stay below 2**64."""
    if offset + size > _TWO64:
        raise ValueError(f"offset + size must not exceed 2**64, got offset={offset} and size={size}")


def array(x: object, name: str) -> np.ndarray:
    """``np.asarray(x)``, with NumPy's conversion errors (a ragged nested list, say) naming ``name``.

    A ragged sequence such as ``[[1.0, 2.0], [3.0]]`` has no array shape: ValueError naming the
    argument and showing the value, instead of NumPy's "setting an array element with a sequence".
    """
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except ValueError:
        shown = repr(x)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ValueError(f"{name} must be a rectangular array_like (a ragged nested sequence has no "
                         f"array shape), got {shown}") from None


def float_array(x: object, name: str = "x") -> np.ndarray:
    """``x`` as an ndarray of float16, float32 or float64, never copied when it already is one.

    A ragged nested sequence is a ValueError naming ``name`` (see :func:`array`); another dtype a
    TypeError naming ``name``.
    """
    a = array(x, name)
    if a.dtype not in FLOAT_DTYPES:
        if a.dtype.kind == "f" and not a.dtype.isnative:
            raise TypeError(f"{name} must have a native-byte-order float dtype, got {a.dtype.str!r}; "
                            f"convert with {name}.astype({name}.dtype.newbyteorder('='))")
        raise TypeError(f"{name} must have dtype float16, float32 or float64, got {a.dtype}")
    return a


def out_array(out: object, x: np.ndarray) -> np.ndarray | None:
    """Check ``out=``: an ndarray with x's shape and dtype, writable and C-contiguous.

    A mismatched ``out`` is an error, never silently replaced by a copy (a write into a copy is
    lost data).
    """
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != x.dtype:
        raise TypeError(f"out must have dtype {x.dtype} (the input's), got {out.dtype}")
    if out.shape != x.shape:
        raise ValueError(f"out must have shape {x.shape} (the input's), got {out.shape}")
    if not out.flags.writeable:
        raise ValueError("out must be writable, got a read-only array")
    flags = out.flags
    if not flags.c_contiguous:
        raise ValueError("out must be C-contiguous, got an array with strides " f"{out.strides}")
    if not flags.aligned:
        raise ValueError(f"out must be aligned for its dtype (an address that is a multiple of "
                         f"{out.dtype.alignment} for {out.dtype}), got address {out.ctypes.data:#x}")
    return out


def shape(value: object) -> tuple[int, ...]:
    """A shape: a non-negative integer or a sequence of them (bools are not dimensions)."""
    what = f"shape must be an integer or a sequence of integers (not bools), got {value!r}"
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(what)
    try:
        dims = (operator.index(value),)
    except TypeError:
        try:
            items = tuple(value)  # type: ignore[arg-type]
            if any(isinstance(d, (bool, np.bool_)) for d in items):
                raise TypeError(what)
            dims = tuple(operator.index(d) for d in items)
        except TypeError:
            raise TypeError(what) from None
    if any(d < 0 for d in dims):
        raise ValueError(f"shape must not have negative dimensions, got {value!r}")
    return dims


def threads(value: object) -> int:
    """A thread count: an integer in [1, MAX_THREADS] (not bool)."""
    n = integer(value, f"the number of threads must be an integer in [1, {MAX_THREADS}]")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"the number of threads must be in [1, {MAX_THREADS}], got {n}")
    return n


def uint32_words(name: str, a: object, width: int) -> np.ndarray:
    """Convert ``a`` to a uint64 array of 32-bit words with last axis ``width``, losslessly."""
    arr = np.asarray(a)
    if arr.dtype == np.dtype(object):
        # Python ints too large for int64/uint64 land here; accept ints, reject the rest.
        flat = arr.ravel()
        for v in flat:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{name} must hold integers, got {v!r} of type {type(v).__name__}")
        if arr.ndim == 0 or arr.shape[-1] != width:
            raise ValueError(f"{name} must have shape (..., {width}), got {arr.shape}")
        for v in flat:
            if not 0 <= int(v) < (1 << 32):
                raise ValueError(f"{name} values must be in [0, 2**32), got {int(v)}")
        return np.array([int(v) for v in flat], dtype=np.uint64).reshape(arr.shape)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] != width:
        raise ValueError(f"{name} must have shape (..., {width}), got {arr.shape}")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= (1 << 32):
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} values must be in [0, 2**32), got {bad}")
    return arr.astype(np.uint64)
