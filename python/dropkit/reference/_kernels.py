"""Pure-NumPy reference kernels of the dropkit random stream (``STREAM_VERSION`` 1).

Each function here is written from ``docs/rng.md`` alone and mirrors one kernel of the C++
core (same name, same arguments, same bits), so the two can be checked against each other.
They favour being obviously right over being fast, but stay vectorised and work through the
positions in chunks of ``_CHUNK`` elements so memory stays bounded.

Section numbers in comments refer to ``docs/rng.md``.
"""

from __future__ import annotations

import numbers
from typing import Iterator, Optional, Tuple

import numpy as np

from .. import _validate

__all__ = [
    "philox4x32_10",
    "bernoulli_keep",
    "bernoulli_apply",
    "bernoulli_mask",
]

# Section 1: Philox4x32-10 constants (Random123 ``philox.h``).
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_ROUNDS = 10

_TWO32 = 1 << 32
_TWO64 = 1 << 64
_BLOCK = 128  # Section 2: positions per block.
_NPLANES = 32  # Section 3: bit planes per position.
_CHUNK = 1 << 20  # Elements handled per vectorised step; a multiple of 8 and of _BLOCK.

_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def check_int(name: str, value: object, lo: int, hi: int) -> int:
    """Return ``value`` as a Python int after checking it is an integer in ``[lo, hi]``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def check_span(n: int, offset: int) -> None:
    """Section 2: ``offset + n`` must not exceed ``2**64``."""
    if offset + n > _TWO64:
        raise ValueError(f"offset + n must not exceed 2**64, got offset={offset}, n={n}")


def _check_vector(name: str, a: object) -> np.ndarray:
    """Check that ``a`` is a 1-D C-contiguous ndarray and return it."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    return a


def _check_writeable(name: str, a: np.ndarray) -> None:
    if not a.flags.writeable:
        raise ValueError(f"{name} must be writeable")


# --------------------------------------------------------------------------------------------
# Section 1: the generator
# --------------------------------------------------------------------------------------------


def philox_words(
    c0: np.ndarray,
    c1: np.ndarray,
    c2: np.ndarray,
    c3: np.ndarray,
    k0: np.ndarray,
    k1: np.ndarray,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Philox4x32-10 on uint64 arrays (or scalars) holding 32-bit words; no checks.

    Each argument is a ``numpy.uint64`` array or scalar with values in ``[0, 2**32)``; they
    broadcast together. Returns the four output words as uint64 arrays.
    """
    for r in range(_ROUNDS):
        if r:
            # Key schedule: bumped between two rounds, nine times in all. Both terms are
            # below 2**32, so the uint64 sum cannot wrap before the mask.
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
        # Products of two 32-bit words are below 2**64: exact in uint64.
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (
            (p1 >> _SHIFT32) ^ c1 ^ k0,
            p1 & _MASK32,
            (p0 >> _SHIFT32) ^ c3 ^ k1,
            p0 & _MASK32,
        )
    return c0, c1, c2, c3


def philox4x32_10(counter: object, key: object) -> np.ndarray:
    """Philox4x32 with 10 rounds (Random123), vectorised.

    Parameters
    ----------
    counter : array_like of int, shape (..., 4)
        Counter words ``(c0, c1, c2, c3)``, each in ``[0, 2**32)``.
    key : array_like of int, shape (..., 2)
        Key words ``(k0, k1)``, each in ``[0, 2**32)``.

    Returns
    -------
    numpy.ndarray of uint32, shape (..., 4)
        Output words ``(x0, x1, x2, x3)``. The leading shape is
        ``numpy.broadcast_shapes(counter.shape[:-1], key.shape[:-1])``.

    Raises
    ------
    TypeError
        If ``counter`` or ``key`` does not have an integer dtype.
    ValueError
        If the last axis of ``counter`` is not 4 or that of ``key`` not 2, if a value is
        outside ``[0, 2**32)``, or if the leading shapes do not broadcast.

    Examples
    --------
    >>> philox4x32_10([0, 0, 0, 0], [0, 0])
    array([1713891541, 3781805453, 3159862348, 2600524760], dtype=uint32)
    """
    c = _validate.uint32_words("counter", counter, 4)
    k = _validate.uint32_words("key", key, 2)
    lead = np.broadcast_shapes(c.shape[:-1], k.shape[:-1])
    c = np.broadcast_to(c, lead + (4,))
    k = np.broadcast_to(k, lead + (2,))
    words = philox_words(c[..., 0], c[..., 1], c[..., 2], c[..., 3], k[..., 0], k[..., 1])
    out = np.empty(lead + (4,), dtype=np.uint32)
    for w in range(4):
        out[..., w] = words[w]
    return out


# --------------------------------------------------------------------------------------------
# Sections 2-4: the keep bits
# --------------------------------------------------------------------------------------------


def _n_planes(threshold: int) -> int:
    """Section 4: ``P = 32 - ctz(t)`` for ``0 < t < 2**32``."""
    trailing_zeros = (threshold & -threshold).bit_length() - 1
    return _NPLANES - trailing_zeros


def plane_bits(blocks: np.ndarray, plane: int, k0: np.uint64, k1: np.uint64) -> np.ndarray:
    """Section 3: the bits ``B_p`` of every lane of ``blocks``, flattened, as uint8 0/1.

    ``blocks`` is a uint64 array of block indices. The result has ``128 * blocks.size``
    entries; entry ``128 * i + j`` is lane ``j`` of block ``blocks[i]``.
    """
    x = philox_words(
        blocks & _MASK32,  # c0 = b mod 2**32
        blocks >> _SHIFT32,  # c1 = floor(b / 2**32)
        np.uint64(plane),  # c2 = p
        np.uint64(0),  # c3 = 0: the Bernoulli stream kind
        k0,
        k1,
    )
    words = np.empty((blocks.size, 4), dtype="<u4")
    for w in range(4):
        words[:, w] = x[w]
    # Lane j is bit (j mod 32) of word floor(j / 32). In little-endian byte order, bit
    # (j mod 32) of word w is bit (j mod 8) of byte 4 * w + (j mod 32) // 8 = j // 8 of the
    # block's 16 bytes, which is exactly what unpackbits with bitorder="little" enumerates.
    return np.unpackbits(words.view(np.uint8), bitorder="little")


def _keep_span(n: int, threshold: int, seed: int, offset: int) -> np.ndarray:
    """Keep bits of positions ``offset .. offset + n - 1`` in one vectorised step.

    Arguments are already checked, ``0 < threshold < 2**32`` and ``n > 0``.
    """
    k0 = np.uint64(seed & 0xFFFFFFFF)
    k1 = np.uint64(seed >> 32)
    first_block = offset // _BLOCK  # below 2**57: fits uint64
    last_block = (offset + n - 1) // _BLOCK
    blocks = np.arange(last_block - first_block + 1, dtype=np.uint64) + np.uint64(first_block)
    lane0 = offset - first_block * _BLOCK

    # Section 4: only the top P planes decide u >= t. Build
    # top = floor(u / 2**(32 - P)) = sum_{p < P} B_p * 2**(P - 1 - p), most significant first.
    n_planes = _n_planes(threshold)
    top = np.zeros(blocks.size * _BLOCK, dtype=np.uint32)
    for p in range(n_planes):
        top <<= np.uint32(1)
        top |= plane_bits(blocks, p, k0, k1)
    t_top = np.uint32(threshold >> (_NPLANES - n_planes))
    return top[lane0 : lane0 + n] >= t_top


def _keep_chunks(
    n: int, threshold: int, seed: int, offset: int
) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield ``(i0, keep)`` for consecutive chunks of flat indices ``i0 .. i0 + len(keep) - 1``.

    ``i0`` is a multiple of ``_CHUNK`` (so of 8, which packed masks rely on). Arguments are
    already checked.
    """
    for i0 in range(0, n, _CHUNK):
        m = min(_CHUNK, n - i0)
        if threshold == 0:  # rate 0: everything kept, no Philox call
            yield i0, np.ones(m, dtype=bool)
        elif threshold == _TWO32:  # rate 1: everything dropped, no Philox call
            yield i0, np.zeros(m, dtype=bool)
        else:
            yield i0, _keep_span(m, threshold, seed, offset + i0)


def _check_stream_args(
    n: object, threshold: object, seed: object, offset: object
) -> Tuple[int, int, int, int]:
    """Check the stream arguments shared by every kernel; return them as Python ints."""
    n_ = check_int("n", n, 0, _TWO64)
    t = check_int("threshold", threshold, 0, _TWO32)
    s = check_int("seed", seed, 0, _TWO64 - 1)
    o = check_int("offset", offset, 0, _TWO64 - 1)
    check_span(n_, o)
    return n_, t, s, o


def bernoulli_keep(n: int, threshold: int, seed: int, offset: int) -> np.ndarray:
    """Keep bits of ``n`` consecutive stream positions (``docs/rng.md`` sections 2-4).

    Parameters
    ----------
    n : int
        Number of positions, ``n >= 0``.
    threshold : int
        ``t`` in ``[0, 2**32]``; position ``g`` is kept when ``u(g) >= t``.
    seed : int
        Seed in ``[0, 2**64)``; the Philox key is ``(seed mod 2**32, seed // 2**32)``.
    offset : int
        First position ``g``, in ``[0, 2**64)``, with ``offset + n <= 2**64``.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
        Element ``i`` is True when position ``offset + i`` is kept.

    Raises
    ------
    TypeError
        If an argument is not an integer.
    ValueError
        If an argument is out of range or ``offset + n > 2**64``.
    """
    n_, t, s, o = _check_stream_args(n, threshold, seed, offset)
    keep = np.empty(n_, dtype=bool)
    for i0, chunk in _keep_chunks(n_, t, s, o):
        keep[i0 : i0 + chunk.size] = chunk
    return keep


# --------------------------------------------------------------------------------------------
# Section 5: applying the mask to values
# --------------------------------------------------------------------------------------------


def bernoulli_apply(
    x: np.ndarray,
    out: np.ndarray,
    threshold: int,
    scale: float,
    seed: int,
    offset: int,
    threads: Optional[int] = None,
    simd: Optional[str] = None,
    store: Optional[str] = None,
) -> np.ndarray:
    """Write the Bernoulli-masked, scaled ``x`` into ``out`` (``docs/rng.md`` section 5).

    ``out[i] = x[i] * s`` when position ``offset + i`` is kept, ``+0.0`` otherwise. For
    float16 and float32 the product is one binary32 multiplication (float16 widened first,
    the product rounded back to float16); for float64 it is one binary64 multiplication.
    Dropped elements are ``+0.0`` whatever ``x`` held (NaN, infinities, ``-0.0``): the mask
    selects, it does not multiply.

    Parameters
    ----------
    x : numpy.ndarray
        1-D C-contiguous input, dtype float16, float32 or float64.
    out : numpy.ndarray
        1-D C-contiguous writeable output with the dtype and length of ``x``; may be ``x``
        itself (in place).
    threshold : int
        ``t`` in ``[0, 2**32]``.
    scale : float
        Scale of kept elements, rounded once to the compute type (binary32 for float16 and
        float32, binary64 for float64).
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        Position of ``x[0]``, in ``[0, 2**64)``, with ``offset + x.size <= 2**64``.
    threads : int, optional
        Accepted for parity with the C++ core; ignored.
    simd : str, optional
        Accepted for parity with the C++ core; ignored.
    store : str, optional
        Accepted for parity with the C++ core (its choice of streaming stores); ignored.

    Returns
    -------
    numpy.ndarray
        ``out``.

    Raises
    ------
    TypeError
        If ``x`` or ``out`` is not an ndarray of a supported float dtype, if their dtypes
        differ, or if an integer argument is not an integer.
    ValueError
        If the arrays are not 1-D, C-contiguous, of equal length (``out`` writeable), or an
        integer argument is out of range.
    """
    _check_vector("x", x)
    _check_vector("out", out)
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"x must have dtype float16, float32 or float64, got {x.dtype}")
    if out.dtype != x.dtype:
        raise TypeError(f"out must have the dtype of x ({x.dtype}), got {out.dtype}")
    if out.shape != x.shape:
        raise ValueError(f"out must have the length of x ({x.size}), got {out.size}")
    _check_writeable("out", out)
    if not isinstance(scale, numbers.Real) or isinstance(scale, (bool, np.bool_)):
        raise TypeError(f"scale must be a real number, got {scale!r}")
    n, t, s, o = _check_stream_args(x.size, threshold, seed, offset)

    compute = np.float64 if x.dtype == np.float64 else np.float32
    s_c = compute(scale)  # one rounding of the binary64 scale to the compute type
    zero = compute(0.0)  # +0.0
    if np.shares_memory(x, out) and not (
        x.__array_interface__["data"][0] == out.__array_interface__["data"][0]
    ):
        x = x.copy()  # partial overlap: chunks would read values already written

    # Overflow to infinity and NaN propagation are the specified IEEE results: no warnings.
    with np.errstate(all="ignore"):
        for i0, keep in _keep_chunks(n, t, s, o):
            i1 = i0 + keep.size
            product = x[i0:i1].astype(compute) * s_c
            out[i0:i1] = np.where(keep, product, zero).astype(x.dtype)
    return out


# --------------------------------------------------------------------------------------------
# Section 6: masks
# --------------------------------------------------------------------------------------------


def bernoulli_mask(
    out: np.ndarray,
    n: int,
    threshold: int,
    seed: int,
    offset: int,
    packed: bool,
    threads: Optional[int] = None,
    simd: Optional[str] = None,
) -> np.ndarray:
    """Write the keep bits of ``n`` positions into ``out`` (``docs/rng.md`` sections 4, 6).

    Parameters
    ----------
    out : numpy.ndarray
        1-D C-contiguous writeable output. Unpacked: dtype uint8 or bool, length ``n``,
        ``out[i]`` is 1 (True) when position ``offset + i`` is kept. Packed: dtype uint8,
        length ``ceil(n / 8)``, ``numpy.packbits`` layout (``bitorder="big"``): byte ``i``
        holds elements ``8i .. 8i+7``, element ``8i`` in the most significant bit, unused low
        bits of the last byte 0.
    n : int
        Number of positions, ``n >= 0``.
    threshold : int
        ``t`` in ``[0, 2**32]``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        First position, in ``[0, 2**64)``, with ``offset + n <= 2**64``.
    packed : bool
        Whether to pack eight keep bits per byte.
    threads : int, optional
        Accepted for parity with the C++ core; ignored.
    simd : str, optional
        Accepted for parity with the C++ core; ignored.

    Returns
    -------
    numpy.ndarray
        ``out``.

    Raises
    ------
    TypeError
        If ``out`` is not an ndarray of dtype uint8 or bool (uint8 only when packed), or an
        integer argument is not an integer.
    ValueError
        If ``out`` is not 1-D, C-contiguous and writeable with the expected length, or an
        integer argument is out of range.
    """
    _check_vector("out", out)
    packed = bool(packed)
    allowed = (np.dtype(np.uint8),) if packed else (np.dtype(np.uint8), np.dtype(bool))
    if out.dtype not in allowed:
        kinds = "uint8" if packed else "uint8 or bool"
        raise TypeError(f"out must have dtype {kinds}, got {out.dtype}")
    n_, t, s, o = _check_stream_args(n, threshold, seed, offset)
    expected = (n_ + 7) // 8 if packed else n_
    if out.size != expected:
        raise ValueError(
            f"out must have length {expected} for n={n_}, packed={packed}, got {out.size}"
        )
    _check_writeable("out", out)

    for i0, keep in _keep_chunks(n_, t, s, o):
        if packed:
            # i0 is a multiple of 8, so every chunk starts on a byte boundary.
            b0 = i0 // 8
            out[b0 : b0 + (keep.size + 7) // 8] = np.packbits(keep, bitorder="big")
        else:
            out[i0 : i0 + keep.size] = keep
    return out
