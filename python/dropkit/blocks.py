"""DropBlock and DropConnect, functional API (docs/rng.md sections 17 and 18, docs/variants.md).

DropBlock drops contiguous ``k x k`` squares (segments, cubes) of each feature map: block
centres are drawn from dropkit's Bernoulli stream at the seed rate ``gamma`` where a whole block
fits, expanded to blocks by a max filter, and the kept values are scaled by ``numel / kept``
(timm's ``drop_block_2d`` semantics, exactly specified). DropConnect is standard inverted
dropout applied to a weight array with its own ``(seed, offset)``.

Every function is a pure function of its arguments: ``(seed, offset)`` name the stream
positions, nothing per element is stored for backward (each ``*_backward`` regenerates the
mask). ``backend="numpy"`` runs :mod:`dropkit.reference._blocks`, written from the document;
``backend="core"`` runs the C++ kernel ``dropkit._core.drop_block_apply`` (``cpp/core/dropblock.cpp``)
for 1 to 3 spatial axes, and for more axes :func:`drop_block_apply` below (the core's Bernoulli
kernel for the seeds, the max filter, count and apply in vectorised NumPy): the same bits.
"""
from __future__ import annotations

import math
import numbers
import threading
from typing import Any, Optional, Tuple

import numpy as np

from . import _api, _core, _dispatch, _params, _runtime, _validate

__all__ = [
    "drop_block",
    "drop_block_backward",
    "drop_block_mask",
    "drop_block_noise_size",
    "drop_connect",
    "drop_connect_backward",
]

_TWO32 = 1 << 32
_DATA_FORMATS = ("channels_first", "channels_last")


# --------------------------------------------------------------------------------------------
# The fast kernel (same name and arguments as dropkit.reference._blocks.drop_block_apply)
# --------------------------------------------------------------------------------------------


_SCRATCH = threading.local()


def _scratch(slot: str, n: int) -> np.ndarray:
    """A bool work buffer of ``n`` elements, kept per thread and per slot between calls.

    Fresh large allocations cost a page fault per 4 KiB on first touch (more than the work on
    them here), so the max filter reuses its buffers. Their contents never outlive a call: every
    element read is written first in the same call. Freed by :func:`_clear_scratch`.
    """
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    b = bufs.get(slot)
    if b is None or b.size < n:
        b = bufs[slot] = np.empty(max(n, 1), dtype=bool)
    return b[:n]


def _clear_scratch() -> None:
    """Free this thread's work buffers (they are re-made at the next call)."""
    _SCRATCH.bufs = {}


def _dilate_axis(a: np.ndarray, axis: int, k: int, size: int, slot: str) -> np.ndarray:
    """Sliding OR along ``axis`` from anchors to the map (docs/rng.md §17.5).

    ``a`` (C-contiguous bool) holds, along ``axis``, the ``size - k + 1`` anchors
    ``c - floor(k/2)`` of the valid centres; the result (C-contiguous, length ``size`` along
    ``axis``) is True at ``i`` when an anchor in ``[i - k + 1, i]`` is. Each line along ``axis`` is
    padded with ``k - 1`` False on both sides (length ``L = size + k - 1``), which makes it a window
    OR of width ``k``: the width is doubled ``floor(log2 k)`` times, then two overlapping windows
    are combined. The doubling runs on the flat buffer with shifts of ``w * inner`` elements, so
    every pass is one long contiguous loop; a window that runs past the end of its line reads the
    next line, but only at indices ``> L - w`` that are never used (the final windows end at
    ``L - 1``).
    """
    if k == 1:
        return a
    outer = math.prod(a.shape[:axis])
    inner = math.prod(a.shape[axis + 1:])
    length = size + k - 1
    v = a.shape[axis]
    p = _scratch(slot + "p", outer * length * inner).reshape(outer, length, inner)
    p[:, :k - 1, :] = False
    p[:, k - 1 + v:, :] = False
    p[:, k - 1:k - 1 + v, :] = a.reshape(outer, v, inner)
    flat, tmp = p.reshape(-1), _scratch(slot + "t", p.size)
    w = 1
    while 2 * w <= k:  # flat[i] = OR of the padded line over [i, i + w - 1], w doubling
        sh = w * inner
        np.logical_or(flat[:flat.size - sh], flat[sh:], out=tmp[:flat.size - sh])
        flat, tmp = tmp, flat
        w *= 2
    r = flat.reshape(outer, length, inner)
    res = _scratch(slot + "r", outer * size * inner).reshape(outer, size, inner)
    np.logical_or(r[:, :size, :], r[:, k - w:k - w + size, :], out=res)
    shape = list(a.shape)
    shape[axis] = size
    return res.reshape(shape)


def _dropped_fast(noise_shape: Tuple[int, ...], k: Tuple[int, ...], t: int, seed: int, offset: int,
                  threads: int, simd: str) -> np.ndarray:
    """Dropped mask (bool, ``noise_shape``) of §17.4-17.5: seeds from the core, separable max filter.

    The result may be a view of a work buffer: valid until the next call on this thread.
    """
    spatial = noise_shape[2:]
    valid = tuple(slice(kd // 2, s - (kd - 1) // 2) for s, kd in zip(spatial, k))
    ashape = noise_shape[:2] + tuple(s - kd + 1 for s, kd in zip(spatial, k))
    anchors = _scratch("a", math.prod(ashape)).reshape(ashape)
    if t >= _TWO32:  # every valid centre is a seed
        anchors[...] = True
    else:
        bits = _scratch("b", math.prod(noise_shape)).view(np.uint8)
        _core.bernoulli_mask(bits, bits.size, t, seed, offset, False, threads, simd)  # 1 = kept
        np.logical_not(bits.reshape(noise_shape)[(slice(None), slice(None)) + valid].view(bool), out=anchors)
    d = anchors
    for ax in range(len(spatial) - 1, -1, -1):  # the box is a product of intervals: axis by axis
        d = _dilate_axis(d, ax + 2, k[ax], spatial[ax], "d%d" % (ax % 2))
    return d


def drop_block_apply(x: np.ndarray, out: np.ndarray, threshold: int, k, seed: int, offset: int,
                     batchwise: bool, channels_last: bool, threads: Optional[int] = None,
                     simd: Optional[str] = None) -> np.ndarray:
    """The fast twin of :func:`dropkit.reference._blocks.drop_block_apply` (same arguments, same bits).

    ``x``, ``out`` C-contiguous, one float dtype and shape; ``out`` may be ``x``. Returns ``out``.
    """
    cf_shape = (x.shape[0], x.shape[-1]) + x.shape[1:-1] if channels_last else x.shape
    noise_shape = (1 if batchwise else cf_shape[0],) + tuple(cf_shape[1:])
    dropped = _dropped_fast(noise_shape, tuple(k), threshold, seed, offset,
                            _runtime.get_num_threads() if threads is None else threads,
                            _runtime.simd_target() if simd is None else simd)
    total = dropped.size
    scale = _params.block_scale(total, total - int(np.count_nonzero(dropped)), x.dtype)
    dx = np.moveaxis(dropped, 1, -1) if channels_last else dropped
    dx = np.broadcast_to(dx, x.shape)
    with np.errstate(all="ignore"):  # overflow to inf and NaN propagation are the IEEE results
        if x.dtype == np.float16:  # widened, one binary32 product, rounded back (docs/rng.md §5)
            out[...] = np.multiply(x, scale, dtype=np.float32)
        else:
            np.multiply(x, scale, out=out)
    np.copyto(out, out.dtype.type(0.0), where=dx)  # dropped: +0.0, selected, whatever x held
    return out


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


def _kernel(backend: Optional[str], ndim: int):
    """The C++ kernel (1 to 3 spatial axes), else this module's NumPy twin; the reference for "numpy"."""
    if _runtime.backend_name(backend) == "core":
        f = getattr(_core, "drop_block_apply", None)
        return f if f is not None and ndim <= 5 else drop_block_apply
    return _dispatch.kernel("drop_block_apply", "numpy", twin="_blocks")


def channels_last_format(value: Any) -> bool:
    """True for channels last; ValueError naming ``data_format`` otherwise."""
    if not isinstance(value, str) or value not in _DATA_FORMATS:
        raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {value!r}")
    return value == "channels_last"


def check_gamma_scale(value: Any) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"gamma_scale must be a finite real number >= 0, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"gamma_scale must be a finite real number >= 0, got {value!r}")
    return v


def _cf_shape(shape: Tuple[int, ...], channels_last: bool, name: str) -> Tuple[int, ...]:
    """``(N, C, S_1, ..., S_D)`` of an input shape; at least one spatial axis."""
    if len(shape) < 3:
        layout = "(N, S..., C)" if channels_last else "(N, C, S...)"
        raise ValueError(f"{name} must have at least 3 dimensions {layout} (batch, channels and at least "
                         f"one spatial axis), got shape {shape}")
    return (shape[0], shape[-1]) + shape[1:-1] if channels_last else shape


def _noise_shape(cf: Tuple[int, ...], batchwise: bool) -> Tuple[int, ...]:
    return (1 if batchwise else cf[0],) + cf[1:]


def _setup(shape, rate, block_size, offset, data_format, gamma_scale, batchwise, name):
    """Validated ``(t, k, offset, batchwise, channels_last, noise size)`` of a call (§17.2-17.4)."""
    r = _validate.rate(rate)
    o = _validate.offset(offset)
    last = channels_last_format(data_format)
    g = check_gamma_scale(gamma_scale)
    bw = _validate.flag(batchwise, "batchwise")
    cf = _cf_shape(shape, last, name)
    n = math.prod(_noise_shape(cf, bw))
    _validate.span(o, n)
    spatial = cf[2:]
    if 0 in cf:  # nothing to drop; block_size still checked against a map of size >= 1
        _params.block_sizes(tuple(max(s, 1) for s in spatial), block_size)
        return 0, (1,) * len(spatial), o, bw, last, n
    k = _params.block_sizes(spatial, block_size)
    _, t = _params.seed_threshold(spatial, k, r, g)
    return t, k, o, bw, last, n


def _apply(a, t, k, s, o, bw, last, out, backend):
    if t == 0 or a.size == 0:  # §17.7: identity, no stream read
        return _dispatch.identity(a, out)
    src = a if a.flags.c_contiguous and a.flags.aligned else np.array(a, order="C")
    if out is None:
        y = np.empty(a.shape, dtype=a.dtype)
    else:
        y = out
        if y is not src and np.may_share_memory(src, y) and src.ctypes.data != y.ctypes.data:
            src = src.copy()
    return _kernel(backend, a.ndim)(src, y, t, list(k), s, o, bw, last, _runtime.get_num_threads(),
                                    _runtime.simd_target())


def drop_block_noise_size(shape, *, data_format="channels_first", batchwise=False) -> int:
    """Stream positions one DropBlock call on an array of ``shape`` uses: ``N' * C * M`` (§17.4).

    Parameters
    ----------
    shape : sequence of int
        Shape of ``x``, ``(N, C, S...)`` or ``(N, S..., C)``.
    data_format : {"channels_first", "channels_last"}
    batchwise : bool
        True: ``N' = 1`` (one mask for the batch), else ``N' = N``.

    Returns
    -------
    int
        How far a layer's position counter advances per training call.
    """
    last = channels_last_format(data_format)
    bw = _validate.flag(batchwise, "batchwise")
    return math.prod(_noise_shape(_cf_shape(_validate.shape(shape), last, "x"), bw))


# --------------------------------------------------------------------------------------------
# DropBlock
# --------------------------------------------------------------------------------------------


def drop_block(x, rate, block_size, *, seed, offset=0, data_format="channels_first", gamma_scale=1.0,
               batchwise=False, training=True, out=None, backend=None):
    """DropBlock (Ghiasi et al. 2018): drop contiguous blocks of each feature map (docs/rng.md §17).

    Block centres are seeds of dropkit's Bernoulli stream at the rate
    ``gamma = gamma_scale * rate * M / K / V`` (``M`` map size, ``K`` block size, ``V`` number of
    centres where a whole block fits), drawn only where a whole block fits; every element of a
    seed's block is dropped; kept elements are scaled by ``numel / kept`` (counted exactly).
    timm's ``drop_block_2d`` semantics, for 1-D, 2-D, 3-D (any ``D``) maps.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64 of shape ``(N, C, S_1, ..., S_D)`` (channels first) or
        ``(N, S_1, ..., S_D, C)`` (channels last), ``D >= 1``; any strides.
    rate : float
        The drop rate in [0, 1] the seed rate is derived from (timm's ``drop_prob``).
    block_size : int or sequence of int
        Side of a block: an integer (a square / cube, clipped to ``min(block_size, S_1, ..., S_D)``
        as timm's ``clipped_block_size``) or one size per spatial axis (each clipped to its axis).
    seed : int
        In [0, 2**64).
    offset : int, default 0
        Position of the first noise element; the call uses ``N' * C * M`` positions
        (:func:`drop_block_noise_size`).
    data_format : {"channels_first", "channels_last"}
        The layout of ``x``; the mask's bits do not depend on it.
    gamma_scale : float, default 1.0
        Finite, ``>= 0``: multiplies the seed rate (timm's argument).
    batchwise : bool, default False
        One mask shared by every sample (noise ``(1, C, S...)``).
    training : bool, default True
        False returns ``x`` itself.
    out : ndarray, optional
        Destination with ``x``'s shape and dtype, C-contiguous, writable; may be ``x``.
    backend : {None, "core", "numpy"}
        As in :func:`dropkit.dropout`; the same bits.

    Returns
    -------
    ndarray
        Same shape and dtype: kept elements ``x * scale``, dropped ``+0.0``. ``x`` itself (no
        ``out``) in evaluation, when the threshold of ``gamma`` is 0 (rate 0), or for an empty ``x``.

    Raises
    ------
    ValueError
        rate outside [0, 1], fewer than 3 dimensions, a block size below 1, a bad data_format,
        gamma_scale negative or not finite, seed/offset out of range, a bad ``out``.
    TypeError
        A bad dtype, a non-integer seed, offset or block size, a flag that is not a bool.

    Examples
    --------
    >>> import numpy as np, dropkit
    >>> x = np.ones((2, 3, 16, 16), np.float32)
    >>> y = dropkit.drop_block(x, 0.2, 5, seed=1)
    >>> bool(np.isclose(y.mean(), 1.0))  # numel / kept keeps the mean of a constant input
    True
    """
    _runtime.backend_name(backend)
    a = _validate.float_array(x, "x")
    s = _validate.uint64(seed, "seed")
    training = _validate.flag(training, "training")
    out = _validate.out_array(out, a)
    t, k, o, bw, last, _n = _setup(a.shape, rate, block_size, offset, data_format, gamma_scale, batchwise, "x")
    if not training:
        return _dispatch.identity(a, out)
    return _apply(a, t, k, s, o, bw, last, out, backend)


def drop_block_backward(grad, rate, block_size, *, seed, offset=0, data_format="channels_first",
                        gamma_scale=1.0, batchwise=False, out=None, backend=None):
    """Gradient of training-mode :func:`drop_block`: the same mask and scale on ``grad``, regenerated.

    Parameters
    ----------
    grad : array_like
        Gradient with respect to the forward's output (the forward's shape).
    rate, block_size, seed, offset, data_format, gamma_scale, batchwise, out, backend
        The forward's values.

    Returns
    -------
    ndarray
        Same shape and dtype as ``grad``; ``grad`` itself in the identity cases.

    Raises
    ------
    ValueError, TypeError
        As :func:`drop_block`.
    """
    _runtime.backend_name(backend)
    a = _validate.float_array(grad, "grad")
    s = _validate.uint64(seed, "seed")
    out = _validate.out_array(out, a)
    t, k, o, bw, last, _n = _setup(a.shape, rate, block_size, offset, data_format, gamma_scale, batchwise,
                                   "grad")
    return _apply(a, t, k, s, o, bw, last, out, backend)


def drop_block_mask(shape, rate, block_size, *, seed, offset=0, data_format="channels_first",
                    gamma_scale=1.0, batchwise=False, backend=None):
    """Keep mask of :func:`drop_block` for an input of ``shape`` (bool, True where kept).

    Parameters
    ----------
    shape : sequence of int
        Shape of ``x``.
    rate, block_size, seed, offset, data_format, gamma_scale, batchwise, backend
        As in :func:`drop_block`.

    Returns
    -------
    ndarray of bool, shape ``shape``
        With ``batchwise``, the shared mask repeated over the batch.
    """
    shp = _validate.shape(shape)
    ones = np.ones(shp, dtype=np.float32)
    return drop_block(ones, rate, block_size, seed=seed, offset=offset, data_format=data_format,
                      gamma_scale=gamma_scale, batchwise=batchwise, backend=backend) != 0


# --------------------------------------------------------------------------------------------
# DropConnect (section 18)
# --------------------------------------------------------------------------------------------


def drop_connect(w, rate, *, seed, offset=0, training=True, out=None, backend=None):
    """DropConnect / weight dropout: inverted dropout of a weight array (docs/rng.md §18).

    Exactly :func:`dropkit.dropout` applied to ``w``: weight ``i`` (C-order flat index) is kept
    when ``u(offset + i) >= round(rate * 2**32)`` and then scaled by ``1 / (1 - rate)``, dropped
    weights are ``+0.0``. Give the weight mask its own seed (or offsets) so it never shares
    positions with an activation dropout.

    Parameters
    ----------
    w : array_like
        The weights, float16, float32 or float64, any shape.
    rate : float
        Drop probability of a weight, in [0, 1].
    seed, offset, training, out, backend
        As in :func:`dropkit.dropout` (``w.size`` positions from ``offset``).

    Returns
    -------
    ndarray
        The masked weights, same shape and dtype; ``w`` itself in evaluation or at rate 0.

    Raises
    ------
    ValueError, TypeError
        As :func:`dropkit.dropout`.
    """
    return _api.dropout(w, rate, seed=seed, offset=offset, training=training, out=out, backend=backend)


def drop_connect_backward(grad, rate, *, seed, offset=0, out=None, backend=None):
    """Gradient with respect to ``w`` of training-mode :func:`drop_connect`, the mask regenerated.

    Parameters
    ----------
    grad : array_like
        Gradient with respect to the masked weights.
    rate, seed, offset, out, backend
        The forward's values.

    Returns
    -------
    ndarray
        ``grad * keep / (1 - rate)``, same shape and dtype.

    Raises
    ------
    ValueError, TypeError
        As :func:`dropkit.dropout_backward`.
    """
    return _api.dropout_backward(grad, rate, seed=seed, offset=offset, out=out, backend=backend)
