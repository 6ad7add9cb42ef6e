"""dropkit.dask: dropout of Dask arrays, chunk by chunk, with the bits of the whole array.

``pip install "dropkit[dask]"``. The element with global flat C-order index ``i`` of ``x`` sits
at stream position ``offset + i`` (docs/rng.md §2) whichever block holds it, so
``dropkit.dask.dropout(x, rate, seed=s).compute()`` equals ``dropkit.dropout(x.compute(), rate,
seed=s)`` bit for bit for every chunking, on every scheduler. The result is lazy (one
``map_blocks`` task per block, the same chunks, no rechunking, nothing computed when called).

How a block finds its positions
-------------------------------
A block is an axis-aligned box of the array. Its elements are not contiguous in the array's C
order unless the block spans every axis after its first partial one, so each block is cut into
*runs*: the trailing axes that the block spans fully merge with the last axis it only partly
covers into one contiguous run of positions; the leading axes index the runs. A block of a
``(N, F)`` array chunked along the rows only is one run: one core call. Chunks that split the last
axis give one run per row of the block: when the runs are short and close together, the core runs
once over the block's whole span in a temporary buffer (computing the gaps too); otherwise once per
run (a few microseconds each: prefer chunks that span the trailing axes).
:func:`_apply_at_positions` is the one place that maps a block to positions; a core entry
taking a general affine position map (``offset + sum(i_d * pstride_d)``) will replace it.

Threads: the rule
-----------------
Keep ``(dask worker threads) x (dropkit threads) <= cores``. dropkit's kernels use
:func:`dropkit.get_num_threads` OpenMP threads in the process that runs the task:

- ``dask.distributed`` worker processes: the nanny starts workers with ``OMP_NUM_THREADS=1``
  (distributed's default ``distributed.nanny.pre-spawn-environ``), which dropkit reads at import,
  so each task runs on one core; give the cluster ``n_workers * threads_per_worker = cores``;
- the threaded scheduler (the default for dask arrays) runs as many tasks at once as there are
  cores, in this process: call ``dropkit.set_num_threads(1)``, or run one worker thread
  (``dask.config.set(num_workers=1)``) and let dropkit use every core;
- or pass ``threads=n``: each task then calls ``dropkit.set_num_threads(n)`` before its work.
  The setting is process-wide: with the threaded scheduler it also changes this process's value.

The bits never depend on any of these choices.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np

try:
    import dask.array as da
    from dask.base import tokenize
except ImportError as e:  # pragma: no cover - exercised only without dask
    raise ImportError("dropkit.dask needs Dask: pip install 'dropkit[dask]'") from e

from . import _api, _runtime, _validate

__all__ = ["dropout", "dropout_backward"]


# ------------------------------------------------------------------------------------------------
# Block -> positions
# ------------------------------------------------------------------------------------------------


#: The span path may touch at most this many elements more than the block, per run it saves...
_GAP_PER_RUN = 1024
#: ... and a temporary buffer of at most this many times the block's size, or _SPAN_MIN elements.
_SPAN_FACTOR = 16
_SPAN_MIN = 1 << 22


def _runs(shape: tuple, location: list) -> tuple[int, np.ndarray, list]:
    """Cut a block into contiguous runs of global positions.

    Parameters
    ----------
    shape : tuple of int
        The whole array's shape.
    location : list of (start, stop)
        The block's extent along each axis (dask's ``array-location``).

    Returns
    -------
    length : int
        Elements per run (every run has the same length).
    starts : ndarray of int64
        Global flat C-order index of each run's first element, runs in the block's C order.
    gstride : list of int
        The whole array's C-order strides, in elements.
    """
    nd = len(shape)
    ext = [b - a for a, b in location]
    gstride = [math.prod(shape[d + 1:]) for d in range(nd)]
    k = nd - 1  # the last axis the block does not span fully; the axes after it merge into the run
    while k >= 0 and ext[k] == shape[k]:
        k -= 1
    if k < 0:  # the whole array (or 0-d): one run
        return math.prod(ext), np.zeros(1, dtype=np.int64), gstride
    length = ext[k] * gstride[k]
    base = sum(location[d][0] * gstride[d] for d in range(k + 1))
    starts = np.full(1, base, dtype=np.int64)
    for d in range(k):  # outer product over the leading axes, C order
        starts = (starts[:, None] + np.arange(ext[d], dtype=np.int64) * gstride[d]).reshape(-1)
    return length, starts, gstride


def _use_span(length: int, starts: np.ndarray, size: int) -> bool:
    """Whether one core call over the block's whole span beats one call per run (see below)."""
    n = len(starts)
    span = int(starts[-1]) - int(starts[0]) + length
    return n > 1 and span - size <= _GAP_PER_RUN * n and span <= max(_SPAN_FACTOR * size, _SPAN_MIN)


def _apply_at_positions(src: np.ndarray, dst: np.ndarray, shape: tuple, location: list, rate: float,
                        seed: int, offset: int, inverted: bool) -> None:
    """``dst = keep ? src * s : +0`` where the block's elements take their global positions.

    ``src`` and ``dst`` are C-contiguous blocks; the element at block index ``(j_0, .., j_{n-1})``
    sits at position ``offset + sum((start_d + j_d) * gstride_d)``. Today the core maps contiguous
    positions only, so:

    - one run (the block spans every axis after its first partial one): one core call;
    - many short, closely spaced runs: the block is copied into a zeroed buffer laid out as the
      whole array's span from the block's first to its last element (a strided view with the
      global strides), the core runs once over the span at ``offset + first``, and the block is
      read back; the gaps (elements of other blocks) are computed and discarded. Used when this
      wastes at most ``_GAP_PER_RUN`` elements per run saved (a core call costs about as much as
      a thousand elements) and the buffer holds at most ``_SPAN_FACTOR`` times the block or
      ``_SPAN_MIN`` elements;
    - otherwise one core call per run.

    TODO(position map, issue 7): a core entry taking a general affine position map replaces all
    three with one call: ``pstrides = gstride``, offset ``offset + sum(start_d * gstride_d)``.
    """
    length, starts, gstride = _runs(shape, location)
    if _use_span(length, starts, src.size):
        first = int(starts[0])
        buf = np.zeros(int(starts[-1]) - first + length, dtype=src.dtype)
        view = np.lib.stride_tricks.as_strided(buf, shape=src.shape,
                                               strides=[g * buf.itemsize for g in gstride])
        view[...] = src
        _api.dropout_backward(buf, rate, seed=seed, offset=offset + first, inverted=inverted, out=buf)
        dst[...] = view
        return
    s2 = src.reshape(len(starts), length)
    d2 = dst.reshape(len(starts), length)
    for r, start in enumerate(starts.tolist()):
        _api.dropout_backward(s2[r], rate, seed=seed, offset=offset + start, inverted=inverted, out=d2[r])


def _block_masked(xb: np.ndarray, rate: float, seed: int, offset: int, inverted: bool, threads,
                  block_info=None) -> np.ndarray:
    """One dask task: training forward / backward of one block (module level: picklable)."""
    if block_info is None or 0 not in block_info:
        raise RuntimeError("dropkit.dask block function called without dask's block_info")
    if threads is not None:
        _runtime.set_num_threads(threads)
    info = block_info[0]
    src = xb if xb.flags.c_contiguous else np.ascontiguousarray(xb)  # 0-d is always contiguous
    dst = np.empty(src.shape, dtype=src.dtype)
    if dst.size:
        _apply_at_positions(src, dst, tuple(info["shape"]), info["array-location"], rate, seed, offset,
                            inverted)
    return dst


def _block_eval(xb: np.ndarray, rate: float, threads) -> np.ndarray:
    """Classic evaluation of one block (elementwise, no positions)."""
    if threads is not None:
        _runtime.set_num_threads(threads)
    return _api.dropout(xb, rate, seed=0, training=False, inverted=False)


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------


def _check(x, rate, seed, offset, threads, name: str):
    if not isinstance(x, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array (use dropkit.dropout for NumPy arrays), "
                        f"got {type(x).__name__}")
    if np.dtype(x.dtype) not in _validate.FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float16, float32 or float64, got {x.dtype}")
    if any(isinstance(c, float) and math.isnan(c) for c in x.shape):
        raise ValueError(f"{name} has unknown chunk sizes (shape {x.shape}): positions need them; "
                         f"call {name}.compute_chunk_sizes() first")
    r = _validate.rate(rate)
    s = _validate.uint64(seed, "seed")
    o = _validate.uint64(offset, "offset")
    _validate.span(o, math.prod(x.shape))
    t = None if threads is None else _validate.threads(threads)
    return r, s, o, t


def _masked(x, r, s, o, inverted, t):
    fn = partial(_block_masked, rate=r, seed=s, offset=o, inverted=bool(inverted), threads=t)
    return da.map_blocks(fn, x, dtype=x.dtype, meta=np.empty((0,) * x.ndim, dtype=x.dtype),
                         name=f"dropkit-dropout-{tokenize(x, r, s, o, bool(inverted))}")


def dropout(x, rate, *, seed, offset=0, training=True, inverted=True, threads=None):
    """Lazy dropout of a Dask array with the bits of :func:`dropkit.dropout` on the whole array.

    Parameters
    ----------
    x : dask.array.Array
        float16, float32 or float64, any shape and chunking (chunk sizes must be known).
    rate : float
        Drop probability in [0, 1].
    seed : int
        In [0, 2**64).
    offset : int, default 0
        Stream position of the array's first element; element ``i`` (global flat C order) sits at
        ``offset + i``. ``offset + x.size`` must not exceed 2**64.
    training, inverted : bool
        As in :func:`dropkit.dropout`.
    threads : int, optional
        If given, each task sets ``dropkit.set_num_threads(threads)`` in the process that runs it
        (see the module's thread rule).

    Returns
    -------
    dask.array.Array
        Same shape, chunks and dtype; nothing is computed. ``x`` itself when the call is the
        identity (inverted evaluation, or ``rate == 0``), as :func:`dropkit.dropout` returns its input.

    Raises
    ------
    TypeError
        ``x`` not a dask array or not float16/32/64; seed or offset not an integer.
    ValueError
        rate outside [0, 1]; seed or offset outside [0, 2**64); ``offset + x.size > 2**64``;
        unknown chunk sizes.

    Examples
    --------
    >>> import numpy as np, dask.array as da, dropkit, dropkit.dask
    >>> x = da.ones((4, 6), chunks=(3, 4), dtype=np.float32)
    >>> y = dropkit.dask.dropout(x, 0.5, seed=1)
    >>> np.array_equal(y.compute(), dropkit.dropout(np.ones((4, 6), np.float32), 0.5, seed=1))
    True
    """
    r, s, o, t = _check(x, rate, seed, offset, threads, "x")
    if not training:
        if inverted:
            return x
        if r < 1.0:
            return da.map_blocks(partial(_block_eval, rate=r, threads=t), x, dtype=x.dtype,
                                 meta=np.empty((0,) * x.ndim, dtype=x.dtype))
        return _masked(x, r, s, o, inverted, t)  # rate 1: +0.0 everywhere, as dropkit.dropout
    if r == 0.0:
        return x
    return _masked(x, r, s, o, inverted, t)


def dropout_backward(grad, rate, *, seed, offset=0, inverted=True, threads=None):
    """Lazy gradient of training-mode :func:`dropout`: ``grad * keep * s``, the mask regenerated.

    Parameters
    ----------
    grad : dask.array.Array
        Gradient with respect to the forward's output, any chunking (it need not match the
        forward's): float16/32/64.
    rate, seed, offset, inverted, threads
        As in :func:`dropout`; pass the forward's values.

    Returns
    -------
    dask.array.Array
        Bit for bit ``dropkit.dropout_backward(grad.compute(), ...)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`dropout`.
    """
    r, s, o, t = _check(grad, rate, seed, offset, threads, "grad")
    if r == 0.0:
        return grad
    return _masked(grad, r, s, o, inverted, t)
