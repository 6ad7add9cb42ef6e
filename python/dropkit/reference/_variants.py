"""Pure-NumPy reference kernels of the dropout variants (``docs/rng.md`` sections 8-14).

Written from the text of ``docs/rng.md`` alone, one function per future kernel of the C++ core,
in the style of :mod:`dropkit.reference._kernels` ("reference mirrors core"): same arguments,
same bits. Every float operation on the noise is spelled out as one NumPy operation on
``float32`` (or ``float64``) arrays and scalars of that same type, so each is a single IEEE
operation rounded to nearest even; no fused multiply-add, no libm. Integer steps work on the bit
patterns through ``view``.

Section numbers in comments refer to ``docs/rng.md``:

- 8: positions of an element (broadcast noise, blocks of larger arrays, the affine map);
- 9: rate arrays (a threshold and a scale per element);
- 10: the continuous stream (32-bit words, the draw index) and uniforms in (0, 1);
- 11: the float32 log, exp, sin/cos of a quarter turn;
- 12: Gaussian normals (Box-Muller) and Gaussian dropout;
- 13: concrete dropout (forward, backward pieces);
- 14: alpha dropout;
- 15: deterministic sums.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple

import numpy as np

from . import _kernels
from .._params import (ALPHA_PRIME, alpha_constants, check_real as _check_real, compute_type as _compute_type,
                       concrete_params, gaussian_sigma, gaussian_stddev, noise_pstrides, rate_scales, rate_thresholds)

__all__ = [
    # section 8
    "noise_pstrides",
    "block_pstrides",
    "positions",
    # section 9 (and 4 at arbitrary positions)
    "rate_thresholds",
    "rate_scales",
    "bernoulli_keep_at",
    "bernoulli_apply_nd",
    # section 10
    "continuous_words",
    "continuous_words_at",
    "uniforms",
    # section 11
    "log_f32",
    "exp_f32",
    "sincos_quarter_f32",
    # section 12
    "normals",
    "normals_at",
    "gaussian_sigma",
    "gaussian_multiplier",
    "gaussian_apply",
    # section 13
    "concrete_params",
    "concrete_noise",
    "concrete_apply",
    "concrete_backward",
    # section 14
    "ALPHA_PRIME",
    "alpha_constants",
    "alpha_apply",
    # section 15
    "REDUCE_CHUNK",
    "REDUCE_LANES",
    "chunk_partials",
    "deterministic_sum",
]

_TWO32 = 1 << 32
_TWO64 = 1 << 64
_MASK32 = np.uint64(0xFFFFFFFF)
_KIND_CONTINUOUS = np.uint64(1)  # section 10: fourth counter word of the continuous stream
_CHUNK = 1 << 18  # elements per vectorised step (memory bound only; no effect on values)

_F32 = np.float32
_U32 = np.uint32
_I32 = np.int32


def _f32(bits: int) -> np.float32:
    """The binary32 number with bit pattern ``bits``."""
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


# Section 10: uniforms. k * 2**-23 + 2**-24 (both exact).
_TWO_M23 = _f32(0x34000000)  # 2**-23
_TWO_M24 = _f32(0x33800000)  # 2**-24
_ONE = _f32(0x3F800000)
_TWO = _f32(0x40000000)
_HALF = _f32(0x3F000000)
_MINUS_TWO = _f32(0xC0000000)

# Section 11.1: log (FreeBSD/musl e_logf.c reduction and polynomial).
_LOG_SQRTHALF_BITS = 0x3F3504F3  # bits of the binary32 number nearest sqrt(1/2)
_LG1 = _f32(0x3F2AAAAA)  # 0xaaaaaa.0p-24 = 0.666666626930236816
_LG2 = _f32(0x3ECCCE13)  # 0xccce13.0p-25 = 0.400009721517562866
_LG3 = _f32(0x3E91E9EE)  # 0x91e9ee.0p-25 = 0.284987866878509521
_LG4 = _f32(0x3E789E26)  # 0xf89e26.0p-26 = 0.242790788412094116
_LN2_HI = _f32(0x3F317180)  # 0.693138122558593750
_LN2_LO = _f32(0x3717F7D1)  # 9.05800061445916e-06

# Section 11.2: exp (Cody-Waite reduction, Cephes expf polynomial), on [-64, 64].
_EXP_CLAMP = _f32(0x42800000)  # 64.0
_LOG2E = _f32(0x3FB8AA3B)  # 1.44269502162933350
_SHIFTER = _f32(0x4B400000)  # 1.5 * 2**23 = 12582912
_EXP_CW1 = _f32(0x3F318000)  # 0.693359375 (9 significant bits: nf * CW1 is exact)
_EXP_CW2 = _f32(0xB95E8083)  # -2.12194442e-4
_EXP_P = (
    _f32(0x39506967),  # 1.98756912e-4
    _f32(0x3AB743CE),  # 1.39819994e-3
    _f32(0x3C088908),  # 8.33345205e-3
    _f32(0x3D2AA9C1),  # 4.16657962e-2
    _f32(0x3E2AAAAA),  # 1.66666657e-1
    _f32(0x3F000000),  # 0.5
)

# Section 11.3: sin and cos of t quarter turns, t in [-1/2, 1/2).
_SIN_S = (  # s(t) = t * (S1 + t^2 (S3 + t^2 (S5 + t^2 S7)))
    _f32(0x3FC90FDB),  # S1 = 1.57079637050628662
    _f32(0xBF255DDD),  # S3 = -0.645963490009307861
    _f32(0x3DA32F49),  # S5 = 0.0796800330281257629
    _f32(0xBB96C981),  # S7 = -0.00460165785625576973
)
_COS_C = (  # c(t) = 1 + t^2 (C2 + t^2 (C4 + t^2 (C6 + t^2 C8)))
    _f32(0xBF9DE9E6),  # C2 = -1.23370051383972168
    _f32(0x3E81E0EF),  # C4 = 0.253669232130050659
    _f32(0xBCAAE2F0),  # C6 = -0.0208601653575897217
    _f32(0x3A6CEABF),  # C8 = 0.000903766544070094824
)

# Section 14: alpha dropout.

# Section 15: deterministic sums.
REDUCE_CHUNK = 1 << 14
REDUCE_LANES = 16

_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def check_int(name: str, value: object, lo: int, hi: int) -> int:
    return _kernels.check_int(name, value, lo, hi)


def _check_float_array(name: str, a: object) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float16, float32 or float64, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    return a


def _check_out(x: np.ndarray, out: np.ndarray, name: str = "out") -> None:
    _check_float_array(name, out)
    if out.dtype != x.dtype:
        raise TypeError(f"{name} must have the dtype of x ({x.dtype}), got {out.dtype}")
    if out.shape != x.shape:
        raise ValueError(f"{name} must have the shape of x {x.shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")


# --------------------------------------------------------------------------------------------
# Section 8: positions
# --------------------------------------------------------------------------------------------


def block_pstrides(global_shape: Sequence[int]) -> Tuple[int, ...]:
    """C-order strides (in elements) of ``global_shape`` (section 8.2: blocks of a larger array).

    A block ``x[a_0:b_0, a_1:b_1, ...]`` of a global array passed with ``offset=o`` uses these
    strides and the offset ``o + sum(a_d * strides[d])``.
    """
    return noise_pstrides(global_shape, None)


def _max_position(shape: Sequence[int], pstrides: Sequence[int], offset: int) -> int:
    return offset + sum((s - 1) * p for s, p in zip(shape, pstrides) if s > 0)


def _check_map(shape: Tuple[int, ...], pstrides: Optional[Sequence[int]], offset: int) -> Tuple[int, ...]:
    """Default and check the affine map; every position must lie in [0, 2**64)."""
    if pstrides is None:
        pstrides = noise_pstrides(shape, None)
    pstrides = tuple(pstrides)
    if len(pstrides) != len(shape):
        raise ValueError(f"pstrides must have {len(shape)} entries, got {pstrides!r}")
    pstrides = tuple(check_int("pstrides entry", p, 0, _TWO64 - 1) for p in pstrides)
    if math.prod(shape) and _max_position(shape, pstrides, offset) >= _TWO64:
        raise ValueError(
            f"positions must stay below 2**64: offset={offset}, shape={shape}, pstrides={pstrides}"
        )
    return pstrides


def _positions_flat(shape, pstrides, offset: int, i0: int, i1: int) -> np.ndarray:
    """Positions (uint64) of the C-order flat indices i0 .. i1-1; the map is already checked."""
    if len(shape) == 0:
        return np.full(i1 - i0, offset, dtype=np.uint64)
    idx = np.unravel_index(np.arange(i0, i1, dtype=np.int64), shape)
    pos = np.full(i1 - i0, offset, dtype=np.uint64)
    for d in range(len(shape)):
        if pstrides[d]:
            pos += idx[d].astype(np.uint64) * np.uint64(pstrides[d])
    return pos


def positions(shape: Sequence[int], pstrides: Optional[Sequence[int]], offset: int) -> np.ndarray:
    """Stream position of every element of an array of ``shape`` (section 8.2).

    Parameters
    ----------
    shape : sequence of int
        Shape of ``x``.
    pstrides : sequence of int, or None
        Position strides (``noise_pstrides`` / ``block_pstrides``); None means the C-order strides
        of ``shape`` (position ``offset + flat index``).
    offset : int
        Position of element ``(0, ..., 0)``.

    Returns
    -------
    numpy.ndarray of uint64, shape ``shape``
        ``offset + sum(i_d * pstrides[d])``.
    """
    shape = tuple(int(s) for s in shape)
    o = check_int("offset", offset, 0, _TWO64 - 1)
    ps = _check_map(shape, pstrides, o)
    n = math.prod(shape)
    return _positions_flat(shape, ps, o, 0, n).reshape(shape)


def _span_or_unique(keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(distinct keys to compute, index of each key among them); a dense range when cheap."""
    if keys.size == 0:
        return keys, np.zeros(0, dtype=np.intp)
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo < 2 * keys.size + 64:
        return np.arange(hi - lo + 1, dtype=np.uint64) + np.uint64(lo), (keys - np.uint64(lo)).astype(np.intp)
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, inv.reshape(-1)


def _drive(x, out, seed, offset, pstrides, policy) -> np.ndarray:
    """The one driver of every apply kernel: checks, then chunk by chunk of flat indices
    ``out[i0:i1] = policy(x[i0:i1], positions, i0, i1, seed)`` (``x`` read before ``out`` is
    written, also in place). A policy returns values of x's dtype."""
    _check_float_array("x", x)
    _check_out(x, out)
    s = check_int("seed", seed, 0, _TWO64 - 1)
    o = check_int("offset", offset, 0, _TWO64 - 1)
    ps = _check_map(x.shape, pstrides, o)
    xf = x.reshape(-1)
    if np.shares_memory(x, out):
        xf = xf.copy()
    of = out.reshape(-1)
    with np.errstate(all="ignore"):  # overflow to inf / NaN propagation are the IEEE results
        for i0 in range(0, xf.size, _CHUNK):
            i1 = min(xf.size, i0 + _CHUNK)
            of[i0:i1] = policy(xf[i0:i1], _positions_flat(x.shape, ps, o, i0, i1), i0, i1, s)
    return out


# --------------------------------------------------------------------------------------------
# Section 9: rate arrays (and section 4 at arbitrary positions)
# --------------------------------------------------------------------------------------------


def bernoulli_keep_at(pos: np.ndarray, threshold: object, seed: int) -> np.ndarray:
    """Keep bits ``u(g) >= t`` at arbitrary positions (sections 3, 4, 9).

    Parameters
    ----------
    pos : numpy.ndarray of uint64
        Positions ``g`` (any shape; repeats allowed).
    threshold : int or array_like of int
        ``t`` in ``[0, 2**32]``, a scalar or an array broadcastable to ``pos``.
    seed : int
        Seed in ``[0, 2**64)``.

    Returns
    -------
    numpy.ndarray of bool, shape of ``pos`` broadcast with ``threshold``.
    """
    s = check_int("seed", seed, 0, _TWO64 - 1)
    pos = np.asarray(pos, dtype=np.uint64)
    t = np.asarray(threshold, dtype=np.uint64)
    if t.size and int(t.max()) > _TWO32:
        raise ValueError(f"threshold must be in [0, 2**32], got {int(t.max())}")
    pos, t = np.broadcast_arrays(pos, t)
    flat_pos = pos.reshape(-1)
    flat_t = t.reshape(-1)
    # Section 4: with P = 32 - min ctz(t) over 0 < t < 2**32, u >= t iff top P bits >= t >> (32-P)
    # for every element (t = 0 and t = 2**32 included: top >= 0 always, top < 2**P always).
    inner = flat_t[(flat_t > 0) & (flat_t < _TWO32)]
    if inner.size == 0:
        return (flat_t == 0).reshape(pos.shape)
    low = inner & (~inner + np.uint64(1))  # lowest set bit
    n_planes = 32 - int(np.log2(low.astype(np.float64)).min())
    k0, k1 = np.uint64(s & 0xFFFFFFFF), np.uint64(s >> 32)
    blocks, inv = _span_or_unique(flat_pos >> np.uint64(7))
    lane = (flat_pos & np.uint64(127)).astype(np.intp)
    pick = inv * 128 + lane
    top = np.zeros(flat_pos.size, dtype=np.uint64)
    for p in range(n_planes):
        top <<= np.uint64(1)
        top |= _kernels.plane_bits(blocks, p, k0, k1)[pick].astype(np.uint64)
    return (top >= (flat_t >> np.uint64(32 - n_planes))).reshape(pos.shape)


def bernoulli_apply_nd(
    x: np.ndarray,
    out: np.ndarray,
    threshold: object,
    scale: object,
    seed: int,
    offset: int,
    pstrides: Optional[Sequence[int]] = None,
    threads: Optional[int] = None,
    simd: Optional[str] = None,
) -> np.ndarray:
    """Bernoulli dropout with the affine position map and per-element rates (sections 5, 8, 9).

    ``out[i] = x[i] * s_i`` when ``u(pos(i)) >= t_i``, ``+0.0`` otherwise, with ``pos`` the map
    of section 8 and ``t``, ``s`` scalars or arrays broadcastable to ``x``. With scalar ``t``,
    ``s`` and ``pstrides=None`` this is exactly :func:`dropkit.reference._kernels.bernoulli_apply`.

    Parameters
    ----------
    x, out : numpy.ndarray
        C-contiguous arrays of one float dtype and one shape; ``out`` may be ``x``.
    threshold : int or array_like of int
        Thresholds in ``[0, 2**32]`` (:func:`rate_thresholds`).
    scale : float or array_like of float
        Scales of kept elements, rounded once to the compute type (:func:`rate_scales`).
    seed, offset : int
        Seed and position of element ``(0, ..., 0)``.
    pstrides : sequence of int, optional
        Position strides (section 8); default the C-order strides of ``x``.
    threads, simd : optional
        Accepted for parity with the C++ core; ignored.

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    _check_float_array("x", x)
    ct = _compute_type(x.dtype)
    t_full = np.broadcast_to(np.asarray(threshold, dtype=np.uint64), x.shape).reshape(-1)
    s_full = np.broadcast_to(np.asarray(scale, dtype=np.float64).astype(ct), x.shape).reshape(-1)
    zero = ct(0.0)

    def policy(xc, pos, i0, i1, seed_):
        keep = bernoulli_keep_at(pos, t_full[i0:i1], seed_)
        return np.where(keep, xc.astype(ct) * s_full[i0:i1], zero).astype(xc.dtype)

    return _drive(x, out, seed, offset, pstrides, policy)


# --------------------------------------------------------------------------------------------
# Section 10: the continuous stream
# --------------------------------------------------------------------------------------------


def continuous_words_at(pos: np.ndarray, seed: int, draw: int = 0) -> np.ndarray:
    """32-bit words ``w_d(g)`` of the continuous stream at arbitrary positions (section 10).

    ``q = g // 4``; Philox counter ``(q mod 2**32, q // 2**32, d, 1)``, key
    ``(seed mod 2**32, seed // 2**32)``; ``w_d(g)`` is output word ``x[g mod 4]``.

    Returns
    -------
    numpy.ndarray of uint32, shape of ``pos``.
    """
    s = check_int("seed", seed, 0, _TWO64 - 1)
    d = check_int("draw", draw, 0, _TWO32 - 1)
    pos = np.asarray(pos, dtype=np.uint64)
    flat = pos.reshape(-1)
    quads, inv = _span_or_unique(flat >> np.uint64(2))
    x = _kernels.philox_words(
        quads & _MASK32,
        quads >> np.uint64(32),
        np.uint64(d),
        _KIND_CONTINUOUS,
        np.uint64(s & 0xFFFFFFFF),
        np.uint64(s >> 32),
    )
    words = np.empty((quads.size, 4), dtype=np.uint32)
    for w in range(4):
        words[:, w] = x[w]
    return words[inv, (flat & np.uint64(3)).astype(np.intp)].reshape(pos.shape)


def continuous_words(seed: int, offset: int, n: int, draw: int = 0) -> np.ndarray:
    """Words ``w_d(g)`` of positions ``offset .. offset + n - 1`` (section 10).

    Parameters
    ----------
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int
        First position.
    n : int
        Number of positions, ``offset + n <= 2**64``.
    draw : int, optional
        Draw index ``d`` in ``[0, 2**32)`` (third counter word), 0 by default.

    Returns
    -------
    numpy.ndarray of uint32, shape (n,)
    """
    n_ = check_int("n", n, 0, _TWO64)
    o = check_int("offset", offset, 0, _TWO64 - 1)
    _kernels.check_span(n_, o)
    pos = np.arange(n_, dtype=np.uint64) + np.uint64(o)
    return continuous_words_at(pos, seed, draw)


def uniforms(words: np.ndarray) -> np.ndarray:
    """Uniforms in (0, 1) of 32-bit words: ``(w >> 9) * 2**-23 + 2**-24`` (section 10).

    Both operations are exact in binary32: the result is ``(2k + 1) * 2**-24`` with
    ``k = w >> 9`` in ``[0, 2**23)``, never 0 or 1.

    Returns
    -------
    numpy.ndarray of float32, shape of ``words``.
    """
    w = np.asarray(words, dtype=np.uint32)
    k = (w >> _U32(9)).astype(np.float32)  # below 2**23: exact
    return k * _TWO_M23 + _TWO_M24


# --------------------------------------------------------------------------------------------
# Section 11: float32 elementary functions (each step one binary32 operation, no FMA)
# --------------------------------------------------------------------------------------------


def log_f32(u: np.ndarray) -> np.ndarray:
    """Natural log of positive normal binary32 numbers by the fixed sequence of section 11.1."""
    u = np.asarray(u, dtype=np.float32)
    ix = u.view(np.uint32) + _U32(0x3F800000 - _LOG_SQRTHALF_BITS)
    k = (ix >> _U32(23)).view(np.int32) - _I32(127)
    m = ((ix & _U32(0x007FFFFF)) + _U32(_LOG_SQRTHALF_BITS)).view(np.float32)  # [sqrt(1/2), sqrt(2))
    f = m - _ONE
    s = f / (_TWO + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * _LG4)
    t2 = z * (_LG1 + w * _LG3)
    r = t2 + t1
    hfsq = (_HALF * f) * f
    dk = k.astype(np.float32)  # exact (|k| < 2**24)
    return ((((s * (hfsq + r)) + dk * _LN2_LO) - hfsq) + f) + dk * _LN2_HI


def exp_f32(a: np.ndarray) -> np.ndarray:
    """``exp(a)`` for binary32 ``a`` in ``[-64, 64]`` by the fixed sequence of section 11.2."""
    a = np.asarray(a, dtype=np.float32)
    nf = (a * _LOG2E + _SHIFTER) - _SHIFTER  # round-half-even of a*log2(e), as a float
    r = (a - nf * _EXP_CW1) - nf * _EXP_CW2
    z = r * r
    p = _EXP_P[0]
    for c in _EXP_P[1:]:
        p = p * r + c
    e = ((p * z) + r) + _ONE
    n = nf.astype(np.int32)  # exact: an integer in [-93, 93]
    two_n = ((n + _I32(127)).view(np.uint32) << _U32(23)).view(np.float32)  # 2**n, normal
    return e * two_n


def sincos_quarter_f32(words: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(cos, sin)`` of the angle ``2*pi*(w >> 7) / 2**25`` of 32-bit words (section 11.3).

    The quadrant comes from the integer bits, the rest is ``t`` quarter turns, ``t`` in
    ``[-1/2, 1/2)``, exact in binary32; polynomials in ``t`` give ``c(t)``, ``s(t)``; the quadrant
    swaps them and flips signs (sign-bit XOR), with no floating range reduction.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray) of float32
    """
    b = np.asarray(words, dtype=np.uint32) + _U32(0x20000000)  # wraps mod 2**32
    quad = b >> _U32(30)
    j = (b >> _U32(7)) & _U32(0x007FFFFF)
    t = (j.view(np.int32) - _I32(0x00400000)).astype(np.float32) * _TWO_M23  # exact
    t2 = t * t
    s = _SIN_S[3]
    for c in _SIN_S[2::-1]:
        s = s * t2 + c
    s = s * t
    c = _COS_C[3]
    for cc in _COS_C[2::-1]:
        c = c * t2 + cc
    c = c * t2 + _ONE
    swap = (quad & _U32(1)).astype(bool)
    cos_v = np.where(swap, s, c)
    sin_v = np.where(swap, c, s)
    neg_cos = ((quad + _U32(1)) >> _U32(1)) & _U32(1)  # quadrants 1 and 2
    neg_sin = quad >> _U32(1)  # quadrants 2 and 3
    cos_v = (cos_v.view(np.uint32) ^ (neg_cos << _U32(31))).view(np.float32)
    sin_v = (sin_v.view(np.uint32) ^ (neg_sin << _U32(31))).view(np.float32)
    return cos_v, sin_v


# --------------------------------------------------------------------------------------------
# Section 12: Gaussian normals and Gaussian dropout
# --------------------------------------------------------------------------------------------


def normals_at(pos: np.ndarray, seed: int) -> np.ndarray:
    """Standard normals ``eps(g)`` at arbitrary positions (section 12.1, Box-Muller).

    Position ``g`` belongs to the pair ``h = g - (g mod 2)``; ``a = w(h)``, ``b = w(h + 1)``
    (draw 0, the same Philox call); ``r = sqrt(-2 * log_f32(uniform(a)))``; ``eps(h) = r*cos``,
    ``eps(h + 1) = r*sin`` of the angle of ``b``.

    Returns
    -------
    numpy.ndarray of float32, shape of ``pos``.
    """
    pos = np.asarray(pos, dtype=np.uint64)
    h = pos & ~np.uint64(1)
    a = continuous_words_at(h, seed)
    b = continuous_words_at(h + np.uint64(1), seed)
    r = np.sqrt(_MINUS_TWO * log_f32(uniforms(a)))
    cos_v, sin_v = sincos_quarter_f32(b)
    odd = (pos & np.uint64(1)).astype(bool)
    return np.where(odd, r * sin_v, r * cos_v)


def normals(seed: int, offset: int, n: int) -> np.ndarray:
    """Standard normals of positions ``offset .. offset + n - 1`` (section 12.1).

    Returns
    -------
    numpy.ndarray of float32, shape (n,)
    """
    n_ = check_int("n", n, 0, _TWO64)
    o = check_int("offset", offset, 0, _TWO64 - 1)
    _kernels.check_span(n_, o)
    return normals_at(np.arange(n_, dtype=np.uint64) + np.uint64(o), seed)


def gaussian_multiplier(eps: np.ndarray, sigma: float) -> np.ndarray:
    """``m = 1 + sigma32 * eps`` in binary32, two roundings (section 12.2)."""
    s32 = np.float32(_check_real("sigma", sigma))
    return (s32 * np.asarray(eps, dtype=np.float32)) + _ONE


def _apply_multiplier(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``x * m`` in the compute type, rounded back to x's dtype (sections 12.2, 13.2)."""
    ct = _compute_type(x.dtype)
    return (x.astype(ct) * m.astype(ct)).astype(x.dtype)


def _multiplier_apply(x, out, seed, offset, pstrides, multiplier) -> np.ndarray:
    """``out = x * multiplier(positions, seed)``: the policy of the continuous noises."""
    return _drive(x, out, seed, offset, pstrides,
                  lambda xc, pos, i0, i1, s: _apply_multiplier(xc, multiplier(pos, s)))


def gaussian_apply(
    x: np.ndarray,
    out: np.ndarray,
    sigma: float,
    seed: int,
    offset: int,
    pstrides: Optional[Sequence[int]] = None,
    threads: Optional[int] = None,
    simd: Optional[str] = None,
) -> np.ndarray:
    """Gaussian dropout ``out = x * (1 + sigma * eps)`` (section 12.2).

    The multiplier is binary32 (``sigma`` rounded once to binary32); the product is one
    multiplication in the compute type. The backward is this function applied to the gradient.

    Parameters
    ----------
    x, out : numpy.ndarray
        C-contiguous arrays of one float dtype and shape; ``out`` may be ``x``.
    sigma : float
        ``sqrt(rate / (1 - rate))`` in binary64 (:func:`gaussian_sigma`).
    seed, offset : int
        Seed and position of element ``(0, ..., 0)``.
    pstrides : sequence of int, optional
        Position strides (section 8); default the C-order strides of ``x``.
    threads, simd : optional
        Accepted for parity with the C++ core; ignored.

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    sig = _check_real("sigma", sigma)
    if not (sig >= 0.0 and math.isfinite(sig)):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    return _multiplier_apply(
        x, out, seed, offset, pstrides, lambda pos, s: gaussian_multiplier(normals_at(pos, s), sig)
    )


def gaussian_noise_apply(
    x: np.ndarray,
    out: np.ndarray,
    stddev: float,
    seed: int,
    offset: int,
    pstrides: Optional[Sequence[int]] = None,
    threads: Optional[int] = None,
    simd: Optional[str] = None,
) -> np.ndarray:
    """Gaussian noise ``out = x + stddev32 * eps`` (section 12.3).

    ``n = stddev32 * eps`` is binary32 (one rounding); the sum is one addition in the compute type.

    Parameters
    ----------
    x, out : numpy.ndarray
        C-contiguous arrays of one float dtype and shape; ``out`` may be ``x``.
    stddev : float
        Finite, ``>= 0``, finite in binary32 (:func:`dropkit._params.gaussian_stddev`).
    seed, offset, pstrides, threads, simd
        As in :func:`gaussian_apply`.

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    s32 = np.float32(gaussian_stddev(stddev))
    ct = _compute_type(x.dtype)

    def add(xc, pos, i0, i1, s):
        n = s32 * normals_at(pos, s)  # binary32, one rounding
        return (xc.astype(ct) + n.astype(ct)).astype(xc.dtype)

    return _drive(x, out, seed, offset, pstrides, add)


# --------------------------------------------------------------------------------------------
# Section 13: concrete dropout
# --------------------------------------------------------------------------------------------


def concrete_noise(pos: np.ndarray, seed: int, logit: float, inv_temperature: float) -> np.ndarray:
    """Kept weight ``kappa = 1 - z = 1 / (1 + exp(a))`` at positions (section 13.2), float32.

    ``a = clamp((logit32 + log u - log(1 - u)) * inv_t32, -64, 64)`` with ``u`` the uniform of
    ``w_0(g)``; ``z = 1 - kappa`` is the relaxed drop indicator.
    """
    u = uniforms(continuous_words_at(pos, seed))
    v = _ONE - u  # exact
    noise_logit = log_f32(u) - log_f32(v)
    lg32 = np.float32(logit)
    it32 = np.float32(inv_temperature)
    with np.errstate(over="ignore"):
        a = (lg32 + noise_logit) * it32
    a = np.minimum(np.maximum(a, -_EXP_CLAMP), _EXP_CLAMP)
    return _ONE / (_ONE + exp_f32(a))


def concrete_apply(
    x: np.ndarray,
    out: np.ndarray,
    logit: float,
    inv_temperature: float,
    scale: float,
    seed: int,
    offset: int,
    pstrides: Optional[Sequence[int]] = None,
    threads: Optional[int] = None,
    simd: Optional[str] = None,
) -> np.ndarray:
    """Concrete dropout ``out = x * (kappa * scale32)`` (section 13.2); ``kappa = 1 - z``.

    Parameters
    ----------
    x, out : numpy.ndarray
        C-contiguous arrays of one float dtype and shape; ``out`` may be ``x``.
    logit, inv_temperature, scale : float
        Binary64 constants of :func:`concrete_params`, each rounded once to binary32 here.
    seed, offset : int
        Seed and position of element ``(0, ..., 0)``.
    pstrides : sequence of int, optional
        Position strides (section 8); default the C-order strides of ``x``.
    threads, simd : optional
        Accepted for parity with the C++ core; ignored.

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    lg = _check_real("logit", logit)
    it = _check_real("inv_temperature", inv_temperature)
    sc32 = np.float32(_check_real("scale", scale))

    def mult(pos, s):
        return concrete_noise(pos, s, lg, it) * sc32

    return _multiplier_apply(x, out, seed, offset, pstrides, mult)


def concrete_backward(
    grad: np.ndarray,
    x: np.ndarray,
    dx: np.ndarray,
    logit: float,
    inv_temperature: float,
    scale: float,
    p: float,
    seed: int,
    offset: int,
    threads: Optional[int] = None,
    simd: Optional[str] = None,
) -> Tuple[np.ndarray, float]:
    """Backward of concrete dropout (section 13.3): ``dx`` and ``d(loss)/d(logit)``.

    ``dx = grad * m`` (the forward applied to the gradient); the logit gradient is the
    deterministic sum (section 15) of ``v_i = ((g_i * x_i) * m_i) * (p - z_i * inv_t)`` in
    binary64, ``z_i = 1 - kappa_i`` in binary32, positions ``offset + i``.

    Returns
    -------
    (numpy.ndarray, float)
        ``dx`` and the logit gradient.
    """
    _check_float_array("grad", grad)
    _check_float_array("x", x)
    if x.shape != grad.shape:
        raise ValueError(f"x must have the shape of grad {grad.shape}, got {x.shape}")
    _check_out(grad, dx, "dx")
    lg = _check_real("logit", logit)
    it = _check_real("inv_temperature", inv_temperature)
    sc32 = np.float32(_check_real("scale", scale))
    p64 = _check_real("p", p)
    s = check_int("seed", seed, 0, _TWO64 - 1)
    o = check_int("offset", offset, 0, _TWO64 - 1)
    _kernels.check_span(x.size, o)
    gf = grad.reshape(-1).copy()
    xf = x.reshape(-1)
    dxf = dx.reshape(-1)
    v = np.empty(gf.size, dtype=np.float64)
    with np.errstate(all="ignore"):
        for i0 in range(0, gf.size, _CHUNK):
            i1 = min(gf.size, i0 + _CHUNK)
            pos = np.arange(i0, i1, dtype=np.uint64) + np.uint64(o)
            kappa = concrete_noise(pos, s, lg, it)
            m = kappa * sc32
            z = _ONE - kappa
            phi = p64 - z.astype(np.float64) * it
            v[i0:i1] = ((gf[i0:i1].astype(np.float64) * xf[i0:i1].astype(np.float64)) * m.astype(np.float64)) * phi
            dxf[i0:i1] = _apply_multiplier(gf[i0:i1], m)
    return dx, deterministic_sum(v, o)


# --------------------------------------------------------------------------------------------
# Section 14: alpha dropout
# --------------------------------------------------------------------------------------------


def alpha_apply(
    x: np.ndarray,
    out: np.ndarray,
    threshold: int,
    a: float,
    b: float,
    fill: float,
    seed: int,
    offset: int,
    pstrides: Optional[Sequence[int]] = None,
    threads: Optional[int] = None,
    simd: Optional[str] = None,
) -> np.ndarray:
    """Alpha dropout (section 14): kept ``(x * a) + b``, dropped ``fill``, Bernoulli mask of §4.

    ``a``, ``b``, ``fill`` are rounded once to the compute type; kept values take two roundings
    (no FMA). With ``pstrides`` from :func:`noise_pstrides` this is feature-alpha dropout.

    Parameters
    ----------
    x, out : numpy.ndarray
        C-contiguous arrays of one float dtype and shape; ``out`` may be ``x``.
    threshold : int
        ``t = round(rate * 2**32)``.
    a, b, fill : float
        :func:`alpha_constants` of the rate.
    seed, offset : int
        Seed and position of element ``(0, ..., 0)``.
    pstrides : sequence of int, optional
        Position strides (section 8); default the C-order strides of ``x``.
    threads, simd : optional
        Accepted for parity with the C++ core; ignored.

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    _check_float_array("x", x)
    t = check_int("threshold", threshold, 0, _TWO32)
    ct = _compute_type(x.dtype)
    a_c, b_c, f_c = ct(_check_real("a", a)), ct(_check_real("b", b)), ct(_check_real("fill", fill))

    def policy(xc, pos, i0, i1, seed_):
        keep = bernoulli_keep_at(pos, t, seed_)
        return np.where(keep, (xc.astype(ct) * a_c) + b_c, f_c).astype(xc.dtype)

    return _drive(x, out, seed, offset, pstrides, policy)


# --------------------------------------------------------------------------------------------
# Section 15: deterministic sums
# --------------------------------------------------------------------------------------------


def chunk_partials(values: np.ndarray, offset: int) -> Tuple[int, np.ndarray]:
    """Per-chunk partial sums of section 15.

    Element ``i`` has reduction position ``g = offset + i``; chunk ``c`` holds positions
    ``[c * 2**14, (c + 1) * 2**14)``. Inside a chunk, 16 binary64 lane accumulators start at
    +0.0 and lane ``g mod 16`` adds its elements in increasing ``g``; then
    ``acc[l] += acc[l + h]`` for ``h = 8, 4, 2, 1`` and ``l < h``; the partial is ``acc[0]``.

    Parameters
    ----------
    values : numpy.ndarray of float64, 1-D
        The summands.
    offset : int
        Reduction position of ``values[0]``.

    Returns
    -------
    (int, numpy.ndarray of float64)
        Index of the first chunk touched, and the partial of each chunk touched, in order.
    """
    v = np.asarray(values)
    if v.dtype != np.float64 or v.ndim != 1:
        raise TypeError(f"values must be a 1-D float64 array, got {v.dtype} with shape {v.shape}")
    o = check_int("offset", offset, 0, _TWO64 - 1)
    _kernels.check_span(v.size, o)
    if v.size == 0:
        return o // REDUCE_CHUNK, np.zeros(0, dtype=np.float64)
    c0 = o // REDUCE_CHUNK
    c1 = (o + v.size - 1) // REDUCE_CHUNK
    nch = c1 - c0 + 1
    # Pad with +0.0 to whole chunks: adding +0.0 to an accumulator that started at +0.0 never
    # changes it (an RNE sum that starts at +0.0 is never -0.0), so padding is invisible.
    padded = np.zeros(nch * REDUCE_CHUNK, dtype=np.float64)
    start = o - c0 * REDUCE_CHUNK
    padded[start : start + v.size] = v
    rows = padded.reshape(nch, REDUCE_CHUNK // REDUCE_LANES, REDUCE_LANES)
    acc = np.zeros((nch, REDUCE_LANES), dtype=np.float64)
    with np.errstate(all="ignore"):
        for r in range(rows.shape[1]):  # increasing position within each lane
            acc = acc + rows[:, r, :]
        h = REDUCE_LANES // 2
        while h:
            acc = acc[:, :h] + acc[:, h : 2 * h]
            h //= 2
    return c0, acc[:, 0].copy()


def deterministic_sum(values: np.ndarray, offset: int) -> float:
    """Sum of ``values`` by the fixed order of section 15 (any thread count gives these bits).

    ``+0.0`` plus the chunk partials of :func:`chunk_partials`, left to right in chunk order.
    """
    _, partials = chunk_partials(values, offset)
    total = 0.0
    for p in partials.tolist():
        total = total + p
    return total
