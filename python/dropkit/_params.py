"""The per-call parameters of every variant, from the rules of docs/rng.md: one module that the
public functions, the Dask and PyTorch forms and the NumPy reference all use (the compiled fast
path of ``_core.variant_fast`` computes the same numbers by the same operation sequences in C++,
so the parity tests compare two independent implementations of these rules).

Everything here is binary64 Python arithmetic (one rounding per operation, ``math.sqrt`` correctly
rounded) or an exact integer rule; nothing reads the stream.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import _validate  # (imports nothing of dropkit's)

#: alpha' of alpha dropout (docs/rng.md section 14): the binary64 nearest -lambda * alpha of SELU.
ALPHA_PRIME = -1.7580993408473766
_TWO32 = 1 << 32
#: The largest finite binary32 number.
_F32_MAX = float(np.finfo(np.float32).max)


def threshold(rate: float) -> int:
    """``t = round(rate * 2**32)`` (ties to even): an element is kept iff ``u >= t`` (docs/rng.md §4).

    ``rate`` is a binary64 float (a Python float); ``rate * 2**32`` is exact, so this rounds once.
    """
    return round(rate * _TWO32)


def inverted_scale(rate: float) -> float:
    """``1 / (1 - rate)`` in binary64, 0 at ``rate == 1`` (docs/rng.md §5)."""
    return 0.0 if rate == 1.0 else 1.0 / (1.0 - rate)


def check_real(name: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    return float(value)


def compute_type(dtype: np.dtype):
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def noise_pstrides(shape: Sequence[int], noise_shape: Optional[Sequence[Optional[int]]]) -> Tuple[int, ...]:
    """Position strides of an array of ``shape`` whose noise has ``noise_shape`` (section 8.1).

    Keras semantics: ``noise_shape`` has one entry per axis of ``shape``; ``None`` means the
    axis's own size; an entry of 1 shares one noise value along that axis (stride 0); otherwise
    it must equal the axis's size. The strides are the C-order strides (in elements) of the
    noise-shaped array, with 0 on shared axes.

    Parameters
    ----------
    shape : sequence of int
        Shape of ``x``.
    noise_shape : sequence of (int or None), or None
        Shape of the noise; ``None`` means ``shape`` (no sharing).

    Returns
    -------
    tuple of int
        ``pstrides``: element ``i`` (a multi-index) sits at ``offset + sum(i_d * pstrides[d])``.

    Raises
    ------
    TypeError
        If an entry is not an integer or None.
    ValueError
        If ``noise_shape`` has the wrong length or an entry is neither 1 nor the axis size.
    """
    shape = tuple(int(s) for s in shape)
    if noise_shape is None:
        ns = shape
    else:
        ns_in = tuple(noise_shape)
        if len(ns_in) != len(shape):
            raise ValueError(
                f"noise_shape must have {len(shape)} entries (one per axis of x), got {ns_in!r}"
            )
        ns_list = []
        for d, (n, s) in enumerate(zip(ns_in, shape)):
            if n is None:
                n = s
            if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
                raise TypeError(f"noise_shape entries must be integers or None, got {n!r}")
            n = int(n)
            if n != 1 and n != s:
                raise ValueError(
                    f"noise_shape {ns_in!r} does not broadcast to x's shape {shape}: "
                    f"axis {d} has size {s}, noise size {n}"
                )
            ns_list.append(n)
        ns = tuple(ns_list)
    strides = [0] * len(ns)
    acc = 1
    for d in range(len(ns) - 1, -1, -1):
        strides[d] = acc if ns[d] != 1 else 0
        acc *= ns[d]
    return tuple(strides)


def rate_thresholds(rate: object) -> np.ndarray:
    """Per-element thresholds ``t = round_half_even(rate * 2**32)`` (sections 4 and 9).

    Parameters
    ----------
    rate : array_like of float
        Drop rates in ``[0, 1]``, converted to binary64.

    Returns
    -------
    numpy.ndarray of uint64
        Thresholds in ``[0, 2**32]``, same shape as ``rate``.

    Raises
    ------
    ValueError
        If a rate is outside ``[0, 1]`` or NaN.
    """
    r = np.asarray(rate, dtype=np.float64)
    bad = ~((r >= 0.0) & (r <= 1.0))
    if np.any(bad):
        raise ValueError(f"rate must be in [0, 1], got {float(r[bad].flat[0])}")
    # rate * 2**32 is exact in binary64; rint rounds half to even (as Python's round()).
    return np.rint(r * 4294967296.0).astype(np.uint64)


def rate_scales(rate: object, dtype: object) -> np.ndarray:
    """Per-element inverted-dropout scales ``1 / (1 - rate)`` (sections 5 and 9).

    Computed in binary64 and rounded once to the compute type of ``dtype`` (binary32 for
    float16/float32, binary64 for float64); 0 where ``rate == 1``.
    """
    r = np.asarray(rate, dtype=np.float64)
    with np.errstate(divide="ignore"):
        s = np.where(r == 1.0, 0.0, 1.0 / (1.0 - r))
    return s.astype(compute_type(np.dtype(dtype)))


def gaussian_rate(rate: object, name: str = "rate") -> float:
    """A Gaussian dropout rate: a real number in [0, 1) (docs/rng.md 12.2; 1 has infinite variance)."""
    r = _validate.rate(rate, name)
    if r == 1.0:
        raise ValueError(f"{name} must be in [0, 1) for Gaussian dropout (rate 1 has infinite variance), "
                         f"got {rate!r}")
    return r


def gaussian_sigma(rate: float) -> float:
    """``sigma = sqrt(rate / (1 - rate))`` in binary64 (section 12.2); rate in ``[0, 1)``."""
    r = check_real("rate", rate)
    if not 0.0 <= r < 1.0:
        raise ValueError(f"rate must be in [0, 1) for Gaussian dropout, got {rate}")
    return math.sqrt(r / (1.0 - r))


def gaussian_stddev(stddev: object, name: str = "stddev") -> float:
    """The standard deviation of additive Gaussian noise (docs/rng.md section 12.3), checked.

    A real number, finite, ``>= 0``, whose binary32 rounding is finite; returned as a binary64
    float (the kernels round it once to binary32).

    Raises
    ------
    TypeError
        Not a real number (bools included).
    ValueError
        NaN, negative, infinite, or beyond the largest binary32 number.
    """
    if isinstance(stddev, np.ndarray) and stddev.ndim == 0:
        stddev = stddev[()]
    s = check_real(name, stddev)
    if not 0.0 <= s <= _F32_MAX:
        raise ValueError(f"{name} must be finite (in binary32) and >= 0, got {stddev!r}")
    return s


def alpha_constants(rate: float) -> Tuple[float, float, float]:
    """``(a, b, fill)`` of alpha dropout in binary64 by the fixed sequence of section 14.

    ``a = 1 / sqrt((1 - r) * (1 + r * (alpha' * alpha')))``, ``b = -((a * alpha') * r)``,
    ``fill = a * alpha' + b``; ``(0, 0, 0)`` at ``r = 1``.
    """
    r = check_real("rate", rate)
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if r == 1.0:
        return 0.0, 0.0, 0.0
    q = ALPHA_PRIME * ALPHA_PRIME
    a = 1.0 / math.sqrt((1.0 - r) * (1.0 + r * q))
    b = -((a * ALPHA_PRIME) * r)
    fill = a * ALPHA_PRIME + b
    return a, b, fill


def concrete_params(logit: float, temperature: float) -> Tuple[float, float, float, float]:
    """Per-call binary64 constants of concrete dropout from the logit of p (docs/rng.md section 13.1).

    Admissible: a ``logit`` whose binary32 rounding is finite (``|logit| <= 3.4028235e38``, so
    ``theta32`` is a number on every target), and a ``temperature`` that is ``> 0`` (``+inf``
    included: ``inv_t = 0``, every kept weight 1/2) with ``1 / temperature`` finite in binary32.

    Returns
    -------
    (logit, inv_temperature, scale, p) : tuple of float
        ``p = 1 / (1 + exp(-logit))``, ``inv_temperature = 1 / temperature``,
        ``scale = 1 / (1 - p)``, all binary64 (``math.exp``).

    Raises
    ------
    TypeError
        ``logit`` or ``temperature`` not a real number.
    ValueError
        A value outside the ranges above, or ``p`` rounding to 1.
    """
    if isinstance(logit, np.ndarray) and logit.ndim == 0:
        logit = logit[()]
    if isinstance(temperature, np.ndarray) and temperature.ndim == 0:
        temperature = temperature[()]
    lg = check_real("logit", logit)
    temp = check_real("temperature", temperature)
    if not temp > 0.0:  # (NaN fails too)
        raise ValueError(f"temperature must be > 0, got {temperature!r} (+inf is allowed)")
    inv_t = 1.0 / temp
    if not inv_t <= _F32_MAX:
        raise ValueError(f"temperature is too small (1/temperature overflows binary32), got {temperature!r}")
    if not abs(lg) <= _F32_MAX:
        raise ValueError(f"logit must be finite in binary32 (|logit| <= {_F32_MAX!r}), got {logit!r}")
    p = 1.0 / (1.0 + math.exp(-lg)) if lg > -700.0 else 0.0
    if not p < 1.0:
        raise ValueError(f"the drop probability must be < 1, got p=1 from logit {logit!r}")
    return lg, inv_t, 1.0 / (1.0 - p), p


def resolve_noise_shape(shape: Tuple[int, ...], noise_shape: Any) -> Tuple[int, ...]:
    """``noise_shape`` with None entries replaced by x's sizes (Keras semantics), checked."""
    if noise_shape is None:
        return shape
    if isinstance(noise_shape, (str, bytes)) or not isinstance(noise_shape, Sequence) and not (
            isinstance(noise_shape, np.ndarray) and noise_shape.ndim == 1):
        raise TypeError(f"noise_shape must be None or a sequence of integers (or None entries), "
                        f"got {noise_shape!r}")
    entries = tuple(noise_shape)
    noise_pstrides(shape, entries)  # the one check of section 8.1 (length, 1 or the size)
    return tuple(s if n is None else int(n) for n, s in zip(entries, shape))


def rate_or_array(rate: Any, shape: Tuple[int, ...]) -> Tuple[float, Optional[np.ndarray]]:
    """A scalar rate ``(r, None)`` or a rate array ``(nan, array)`` of x's ndim, checked (§9).

    Arrays: real values in [0, 1] (NaN refused), broadcastable to ``shape``; returned as a
    C-contiguous float64 array with leading axes of size 1 added up to ``len(shape)``.
    """
    if not isinstance(rate, np.ndarray) or rate.ndim == 0:  # (a list is not a rate: docs/rng.md §7)
        return _validate.rate(rate), None
    arr = rate
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"rate must be a real number in [0, 1] or an array of them, got an array of "
                         f"dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    try:
        ok = np.broadcast_shapes(arr.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"rate of shape {arr.shape} does not broadcast to x's shape {shape}")
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        raise ValueError(f"rate must be in [0, 1], got {float(arr[bad].flat[0])!r}")
    arr = np.ascontiguousarray(arr.reshape((1,) * (len(shape) - arr.ndim) + arr.shape))
    return math.nan, arr


def feature_noise_shape(shape: Tuple[int, ...], what: str) -> Tuple[int, ...]:
    """``(N, C, 1, ..., 1)``: one noise value per (sample, channel) of an ``(N, C, ...)`` input."""
    if len(shape) < 2:
        raise ValueError(f"{what} needs an input of at least 2 dimensions (batch, channels, ...), "
                         f"got shape {shape}")
    return tuple(shape[:2]) + (1,) * (len(shape) - 2)


# ---- DropBlock (docs/rng.md section 17) ----


def block_sizes(spatial: Sequence[int], block_size: object) -> Tuple[int, ...]:
    """Clipped block size ``k_d`` per spatial axis (section 17.2).

    Parameters
    ----------
    spatial : sequence of int
        ``(S_1, ..., S_D)``, each at least 1.
    block_size : int or sequence of int
        An integer ``b`` (a square / cube: ``k_d = min(b, S_1, ..., S_D)``, timm's
        ``clipped_block_size``) or one integer per spatial axis (``k_d = min(b_d, S_d)``).

    Returns
    -------
    tuple of int

    Raises
    ------
    TypeError
        ``block_size`` not an integer or a sequence of integers (bools refused).
    ValueError
        An entry below 1, or a sequence of another length than ``D``.
    """
    spatial = tuple(int(s) for s in spatial)
    if isinstance(block_size, (bool, np.bool_)):
        raise TypeError(f"block_size must be a positive integer or a sequence of them, got {block_size!r}")
    if isinstance(block_size, numbers.Integral):
        b = int(block_size)
        if b < 1:
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        k = min((b,) + spatial)
        return (k,) * len(spatial)
    if isinstance(block_size, (str, bytes)) or not isinstance(block_size, (Sequence, np.ndarray)):
        raise TypeError(f"block_size must be a positive integer or a sequence of them, got {block_size!r}")
    entries = tuple(block_size)
    if len(entries) != len(spatial):
        raise ValueError(f"block_size must have {len(spatial)} entries (one per spatial axis), got {block_size!r}")
    out = []
    for b, s in zip(entries, spatial):
        if isinstance(b, (bool, np.bool_)) or not isinstance(b, numbers.Integral):
            raise TypeError(f"block_size entries must be positive integers, got {block_size!r}")
        if int(b) < 1:
            raise ValueError(f"block_size entries must be positive integers, got {block_size!r}")
        out.append(min(int(b), s))
    return tuple(out)


def seed_threshold(spatial: Sequence[int], k: Sequence[int], rate: float, gamma_scale: float) -> Tuple[float, int]:
    """``(gamma, t)`` of section 17.3.

    ``gamma = (((gamma_scale * rate) * M) / K) / V`` in binary64, left to right, with the integers
    ``M = prod S_d``, ``K = prod k_d``, ``V = prod (S_d - k_d + 1)``;
    ``t = round_half_even(min(gamma, 1) * 2**32)``.
    """
    m = math.prod(spatial)
    kk = math.prod(k)
    v = math.prod(s - kd + 1 for s, kd in zip(spatial, k))
    if m >= (1 << 53):
        raise ValueError(f"the feature map must have fewer than 2**53 elements, got {m}")
    gamma = float(gamma_scale) * float(rate) * m / kk / v  # Python: float op int converts exactly
    return gamma, round(min(gamma, 1.0) * _TWO32)


def block_scale(total: int, kept: int, dtype: object):
    """``T / kept`` (the exact quotient rounded to binary64), rounded to the compute type; 0 if kept = 0 (17.6)."""
    ct = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    return ct(0.0) if kept == 0 else ct(total / kept)
