"""dropkit.dask: dropout and its variants on Dask arrays, chunk by chunk, with the bits of the whole.

``pip install "dropkit[dask]"``. Every function here is the lazy twin of the in-memory dropkit
function of the same name: ``dropkit.dask.f(x, ...).compute()`` equals ``dropkit.f(x.compute(),
...)`` bit for bit (``dropout`` with ``noise_shape=`` or a rate array: ``dropkit.dropout_nd``),
for every chunking and on every scheduler. The result keeps ``x``'s chunks (one ``map_blocks``
task per block, no rechunking, nothing computed when called).

How a block finds its positions
-------------------------------
docs/rng.md §8: the element with multi-index ``i`` of the whole array sits at stream position
``offset + sum(i_d * pstride_d)``, where the position strides are the C-order strides of the
noise-shaped array (0 on the axes where ``noise_shape`` is 1; the array's own C-order strides
without ``noise_shape``). A block ``x[a_0:b_0, a_1:b_1, ...]`` keeps those *global* strides and
starts at ``offset + sum(a_d * pstride_d)`` (§8.2), so each task is one call to the C++ core's
affine-map kernel (``bernoulli_apply_nd``, ``alpha_apply``, ``gaussian_apply``), whatever the
chunking: chunks splitting the last axis, ragged chunks, and noise blocks (one noise value per
channel, say) straddling array blocks all cost the same. A rate array is sliced per block (each
task gets its block's rates; the whole array travels with the graph, so keep it small: a rate per
feature, say).

Threads: the rule
-----------------
Keep ``(dask worker threads) x (dropkit threads) <= cores``. dropkit's kernels use
:func:`dropkit.get_num_threads` threads of its pool in the process that runs the task:

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

from . import _api, _core, _runtime, _validate
from .reference import _kernels as _refk
from . import _params
from .reference import _variants as _refv  # the "numpy" backend's kernels (not its parameters)

__all__ = [
    "alpha_dropout",
    "alpha_dropout_backward",
    "dropout",
    "dropout_backward",
    "feature_alpha_dropout",
    "feature_alpha_dropout_backward",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "gaussian_noise",
]

_TWO32 = 1 << 32


# ------------------------------------------------------------------------------------------------
# One task per block
# ------------------------------------------------------------------------------------------------


def _kernel(name: str):
    """The core's kernel ``name`` (backend "core"), else its NumPy twin (the same bits)."""
    if _runtime.backend_name(None) == "core" and hasattr(_core, name):
        return getattr(_core, name)
    return getattr(_refv, name) if hasattr(_refv, name) else getattr(_refk, name)


def _contiguous(shape: tuple, pstrides: tuple) -> bool:
    """Whether an array of ``shape`` with these position strides sits at consecutive positions
    (the block spans every axis after its first partial one, and the noise is not broadcast)."""
    step = 1
    for n, p in zip(reversed(shape), reversed(pstrides)):
        if n != 1 and p != step:
            return False
        step *= n
    return True


def _rate_slice(rates: np.ndarray, location: list) -> np.ndarray:
    """The block's part of a rate array of x's ndim (axes of size 1 broadcast)."""
    return rates[tuple(slice(0, 1) if n == 1 else slice(a, b) for n, (a, b) in zip(rates.shape, location))]


def _rate_params(rates: np.ndarray, mode: str, dtype) -> tuple:
    """(thresholds, scales) of a block's rates (docs/rng.md §9, and §5 for classic evaluation)."""
    ct = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    ones = rates == 1.0
    if mode == "classic-eval":  # x * (1 - rate), everything dropped where the rate is 1
        return np.where(ones, np.uint64(_TWO32), np.uint64(0)), np.where(ones, 0.0, 1.0 - rates).astype(ct)
    scale = _params.rate_scales(rates, dtype) if mode == "inverted" else np.where(ones, 0.0, 1.0).astype(ct)
    return _params.rate_thresholds(rates), scale


def _block(xb: np.ndarray, kernel: str, params: tuple, seed: int, offset: int, pstrides: tuple,
           rates, threads, block_info=None) -> np.ndarray:
    """One dask task: ``kernel(block, out, *params, seed, corner offset, global pstrides)``.

    Module level with plain arguments, so the graph pickles. ``rates`` is None, or a rate array
    of x's ndim with ``params = (mode,)``: the block's thresholds and scales are computed here from
    its slice of the rates (the NumPy reference kernel runs if the core takes scalars only).
    """
    if block_info is None or 0 not in block_info:
        raise RuntimeError("dropkit.dask block function called without dask's block_info")
    if threads is not None:
        _runtime.set_num_threads(threads)
    location = block_info[0]["array-location"]
    src = xb if xb.flags.c_contiguous and xb.flags.aligned else np.array(xb, order="C")
    dst = np.empty(src.shape, dtype=src.dtype)
    if dst.size == 0:
        return dst
    corner = offset + sum(a * p for (a, _), p in zip(location, pstrides))  # docs/rng.md §8.2
    if rates is not None:
        params = _rate_params(_rate_slice(rates, location), params[0], src.dtype)
    threads_simd = (_runtime.get_num_threads(), _runtime.simd_target())
    if kernel == "bernoulli_apply_nd" and rates is None and _contiguous(src.shape, pstrides):
        # Consecutive positions (chunks spanning the trailing axes): the flat streaming kernel of
        # dropkit.dropout, faster than the general map on the same positions.
        _kernel("bernoulli_apply")(src.reshape(-1), dst.reshape(-1), *params, seed, corner, *threads_simd)
        return dst
    f = _kernel(kernel)
    args = (src, dst, *params, seed, corner, pstrides, *threads_simd)
    try:
        f(*args)
    except TypeError:  # a core built before rate arrays takes one threshold per call: the reference
        if rates is None or f is getattr(_refv, kernel):
            raise
        getattr(_refv, kernel)(*args)
    return dst


def _map(x, kernel: str, params: tuple, seed: int, offset: int, pstrides: tuple, threads,
         rates=None):
    """The lazy array of :func:`_block` over every block of ``x`` (same chunks)."""
    fn = partial(_block, kernel=kernel, params=params, seed=seed, offset=offset, pstrides=pstrides,
                 rates=rates, threads=threads)
    token = tokenize(x, kernel, params, seed, offset, pstrides, rates)
    return da.map_blocks(fn, x, dtype=x.dtype, meta=np.empty((0,) * x.ndim, dtype=x.dtype),
                         name=f"dropkit-{kernel}-{token}")


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------


def _check(x, seed, offset, threads, name: str):
    """(seed, offset, threads) checked; ``x`` a float dask array with known chunk sizes."""
    if not isinstance(x, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array (use the dropkit function of the same name "
                        f"for NumPy arrays), got {type(x).__name__}")
    if np.dtype(x.dtype) not in _validate.FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float16, float32 or float64, got {x.dtype}")
    if any(isinstance(c, float) and math.isnan(c) for c in x.shape):
        raise ValueError(f"{name} has unknown chunk sizes (shape {x.shape}): positions need them; "
                         f"call {name}.compute_chunk_sizes() first")
    s = _validate.uint64(seed, "seed")
    o = _validate.uint64(offset, "offset")
    t = None if threads is None else _validate.threads(threads)
    return s, o, t


def _noise(shape: tuple, noise_shape, offset: int) -> tuple:
    """Global position strides of ``noise_shape`` (Keras semantics, docs/rng.md §8.1), checked;
    the call's ``prod(noise_shape)`` positions must stay below 2**64."""
    if noise_shape is None:
        entries = shape
    elif isinstance(noise_shape, (str, bytes)) or not hasattr(noise_shape, "__len__"):
        raise TypeError(f"noise_shape must be None or a sequence of integers (or None entries), "
                        f"got {noise_shape!r}")
    else:
        entries = tuple(noise_shape)
    ps = _params.noise_pstrides(shape, entries)  # the one check of §8.1 (length, 1 or the size)
    _validate.span(offset, math.prod(n if e is None else int(e) for n, e in zip(shape, entries)))
    return ps


# ------------------------------------------------------------------------------------------------
# Standard dropout (noise_shape, rate arrays)
# ------------------------------------------------------------------------------------------------


def _dropout(x, rate, s, o, noise_shape, training, inverted, t):
    ps = _noise(tuple(x.shape), noise_shape, o)
    r, rarr = _params.rate_or_array(rate, tuple(x.shape))
    if rarr is not None:
        if not rarr.any() or (not training and inverted):  # every rate 0, or inverted evaluation
            return x
        mode = "classic-eval" if not training else ("inverted" if inverted else "classic")
        return _map(x, "bernoulli_apply_nd", (mode,), s, o, ps, t, rates=rarr)
    if r == 0.0 or (not training and inverted):  # the identity, as dropkit.dropout returns x
        return x
    if not training and r < 1.0:  # classic evaluation: x * (1 - rate), no mask (t = 0)
        return _map(x, "bernoulli_apply_nd", (0, 1.0 - r), s, o, ps, t)
    scale = 0.0 if r == 1.0 else (1.0 / (1.0 - r) if inverted else 1.0)
    return _map(x, "bernoulli_apply_nd", (_api.threshold(r), scale), s, o, ps, t)


def dropout(x, rate, *, seed, offset=0, noise_shape=None, training=True, inverted=True, threads=None):
    """Lazy dropout of a Dask array with the bits of :func:`dropkit.dropout` on the whole array.

    Parameters
    ----------
    x : dask.array.Array
        float16, float32 or float64, any shape and chunking (chunk sizes must be known).
    rate : float or array_like of float
        Drop probability in [0, 1], or a NumPy array of them broadcastable to ``x`` (docs/rng.md
        §9; each task takes its block's slice; the array is part of the graph).
    seed : int
        In [0, 2**64).
    offset : int, default 0
        Stream position of the first noise element. Without ``noise_shape``, element ``i`` of
        the whole array (flat C order) sits at ``offset + i``. ``offset + prod(noise_shape)``
        must not exceed 2**64.
    noise_shape : sequence of (int or None), optional
        Keras semantics, as :func:`dropkit.dropout_nd`: one entry per axis, None for the axis's
        size, 1 to share one noise value along that axis; shared values may span many blocks.
    training, inverted : bool
        As in :func:`dropkit.dropout`.
    threads : int, optional
        If given, each task sets ``dropkit.set_num_threads(threads)`` in the process that runs it
        (see the module's thread rule).

    Returns
    -------
    dask.array.Array
        Same shape, chunks and dtype; nothing is computed. Bit for bit
        ``dropkit.dropout_nd(x.compute(), rate, ...)`` (``dropkit.dropout`` without
        ``noise_shape`` and rate arrays). ``x`` itself when the call is the identity (inverted
        evaluation, or every rate 0), as :func:`dropkit.dropout` returns its input.

    Raises
    ------
    TypeError
        ``x`` not a dask array or not float16/32/64; seed or offset not an integer; a bad
        ``noise_shape`` type.
    ValueError
        rate outside [0, 1] or a rate array that does not broadcast to ``x``; seed or offset
        outside [0, 2**64); ``offset + prod(noise_shape) > 2**64``; a ``noise_shape`` that does
        not broadcast; unknown chunk sizes.

    Examples
    --------
    >>> import numpy as np, dask.array as da, dropkit, dropkit.dask
    >>> x = da.ones((4, 6), chunks=(3, 4), dtype=np.float32)
    >>> y = dropkit.dask.dropout(x, 0.5, seed=1)
    >>> np.array_equal(y.compute(), dropkit.dropout(np.ones((4, 6), np.float32), 0.5, seed=1))
    True
    >>> z = dropkit.dask.dropout(x, 0.5, seed=1, noise_shape=(None, 1))  # one value per row
    >>> bool((z.compute() == z.compute()[:, :1]).all())
    True
    """
    s, o, t = _check(x, seed, offset, threads, "x")
    return _dropout(x, rate, s, o, noise_shape, _validate.flag(training, "training"),
                    _validate.flag(inverted, "inverted"), t)


def dropout_backward(grad, rate, *, seed, offset=0, noise_shape=None, inverted=True, threads=None):
    """Lazy gradient of training-mode :func:`dropout`: ``grad * keep * s``, the mask regenerated.

    Parameters
    ----------
    grad : dask.array.Array
        Gradient with respect to the forward's output, any chunking (it need not match the
        forward's): float16/32/64.
    rate, seed, offset, noise_shape, inverted, threads
        As in :func:`dropout`; pass the forward's values.

    Returns
    -------
    dask.array.Array
        Bit for bit ``dropkit.dropout_nd_backward(grad.compute(), ...)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`dropout`.
    """
    s, o, t = _check(grad, seed, offset, threads, "grad")
    return _dropout(grad, rate, s, o, noise_shape, True, _validate.flag(inverted, "inverted"), t)


# ------------------------------------------------------------------------------------------------
# Gaussian, alpha and feature-alpha dropout
# ------------------------------------------------------------------------------------------------


def _gaussian(x, rate, s, o, noise_shape, training, t):
    ps = _noise(tuple(x.shape), noise_shape, o)
    r = _params.gaussian_rate(rate)
    if not training or r == 0.0:
        return x
    return _map(x, "gaussian_apply", (_params.gaussian_sigma(r),), s, o, ps, t)


def gaussian_dropout(x, rate, *, seed, offset=0, training=True, noise_shape=None, threads=None):
    """Lazy :func:`dropkit.gaussian_dropout`: ``x * (1 + sigma * eps)``, ``sigma = sqrt(rate / (1 - rate))``.

    Parameters
    ----------
    x : dask.array.Array
        float16, float32 or float64, any chunking.
    rate : float
        In [0, 1) (1 is refused: infinite variance).
    seed, offset, training, noise_shape, threads
        As in :func:`dropout`.

    Returns
    -------
    dask.array.Array
        Bit for bit ``dropkit.gaussian_dropout(x.compute(), ...)``; ``x`` itself in evaluation
        mode or at rate 0.

    Raises
    ------
    TypeError, ValueError
        As :func:`dropout`; rate 1.
    """
    s, o, t = _check(x, seed, offset, threads, "x")
    return _gaussian(x, rate, s, o, noise_shape, _validate.flag(training, "training"), t)


def gaussian_dropout_backward(grad, rate, *, seed, offset=0, noise_shape=None, threads=None):
    """Lazy :func:`dropkit.gaussian_dropout_backward`: the forward's multipliers applied to ``grad``.

    Parameters
    ----------
    grad : dask.array.Array
        Gradient with respect to the forward's output, any chunking.
    rate, seed, offset, noise_shape, threads
        The forward's values.

    Returns
    -------
    dask.array.Array
        Bit for bit ``dropkit.gaussian_dropout_backward(grad.compute(), ...)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`gaussian_dropout`.
    """
    s, o, t = _check(grad, seed, offset, threads, "grad")
    return _gaussian(grad, rate, s, o, noise_shape, True, t)


def gaussian_noise(x, stddev, *, seed, offset=0, training=True, noise_shape=None, threads=None):
    """Lazy :func:`dropkit.gaussian_noise`: ``x + stddev * eps`` (docs/rng.md 12.3).

    Parameters
    ----------
    x : dask.array.Array
        float16, float32 or float64, any chunking.
    stddev : float
        Finite and ``>= 0``.
    seed, offset, training, noise_shape, threads
        As in :func:`dropout`.

    Returns
    -------
    dask.array.Array
        Bit for bit ``dropkit.gaussian_noise(x.compute(), ...)``; ``x`` itself in evaluation mode
        or at ``stddev == 0``.

    Raises
    ------
    TypeError, ValueError
        As :func:`dropkit.gaussian_noise`.
    """
    s, o, t = _check(x, seed, offset, threads, "x")
    ps = _noise(tuple(x.shape), noise_shape, o)
    sd = _params.gaussian_stddev(stddev)
    if not _validate.flag(training, "training") or sd == 0.0:
        return x
    return _map(x, "gaussian_noise_apply", (sd,), s, o, ps, t)


def _alpha(x, rate, s, o, noise_shape, training, backward, t):
    ps = _noise(tuple(x.shape), noise_shape, o)
    r = _validate.rate(rate)
    if not training or r == 0.0:
        return x
    a, b, fill = _params.alpha_constants(r)
    if backward:  # grad * a where kept, +0 where dropped (docs/rng.md §14)
        return _map(x, "bernoulli_apply_nd", (_api.threshold(r), a), s, o, ps, t)
    return _map(x, "alpha_apply", (_api.threshold(r), a, b, fill), s, o, ps, t)


def alpha_dropout(x, rate, *, seed, offset=0, training=True, noise_shape=None, threads=None):
    """Lazy :func:`dropkit.alpha_dropout` (SELU-preserving; kept ``x * a + b``, dropped the fill).

    Parameters
    ----------
    x : dask.array.Array
        float16, float32 or float64, any chunking.
    rate : float
        Drop probability in [0, 1] (scalar).
    seed, offset, training, noise_shape, threads
        As in :func:`dropout`.

    Returns
    -------
    dask.array.Array
        Bit for bit ``dropkit.alpha_dropout(x.compute(), ...)``; ``x`` itself in evaluation mode
        or at rate 0.

    Raises
    ------
    TypeError, ValueError
        As :func:`dropout`.
    """
    s, o, t = _check(x, seed, offset, threads, "x")
    return _alpha(x, rate, s, o, noise_shape, _validate.flag(training, "training"), False, t)


def alpha_dropout_backward(grad, rate, *, seed, offset=0, noise_shape=None, threads=None):
    """Lazy :func:`dropkit.alpha_dropout_backward`: ``grad * a`` where kept, ``+0`` where dropped.

    Parameters
    ----------
    grad : dask.array.Array
        Gradient with respect to the forward's output, any chunking.
    rate, seed, offset, noise_shape, threads
        The forward's values.

    Returns
    -------
    dask.array.Array
        Bit for bit ``dropkit.alpha_dropout_backward(grad.compute(), ...)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`alpha_dropout`.
    """
    s, o, t = _check(grad, seed, offset, threads, "grad")
    return _alpha(grad, rate, s, o, noise_shape, True, True, t)


def _feature(x, what: str) -> tuple:
    """``(N, C, 1, ..., 1)``: one noise value per (sample, channel); at least 2 dimensions."""
    return _params.feature_noise_shape(tuple(x.shape), what)


def feature_alpha_dropout(x, rate, *, seed, offset=0, training=True, threads=None):
    """Lazy :func:`dropkit.feature_alpha_dropout`: alpha dropout of whole channels of ``(N, C, ...)``.

    Parameters
    ----------
    x : dask.array.Array
        float16, float32 or float64, at least 2-D, any chunking (a channel may span many blocks).
    rate, seed, offset, training, threads
        As in :func:`alpha_dropout`; ``N * C`` positions per call.

    Returns
    -------
    dask.array.Array
        Bit for bit ``dropkit.feature_alpha_dropout(x.compute(), ...)``.

    Raises
    ------
    ValueError
        ``x`` with fewer than 2 dimensions; otherwise as :func:`alpha_dropout`.
    TypeError
        As :func:`alpha_dropout`.
    """
    s, o, t = _check(x, seed, offset, threads, "x")
    ns = _feature(x, "feature_alpha_dropout")
    return _alpha(x, rate, s, o, ns, _validate.flag(training, "training"), False, t)


def feature_alpha_dropout_backward(grad, rate, *, seed, offset=0, threads=None):
    """Lazy :func:`dropkit.feature_alpha_dropout_backward` (``grad * a`` on kept channels).

    Parameters
    ----------
    grad : dask.array.Array
        Gradient with respect to the forward's output, at least 2-D, any chunking.
    rate, seed, offset, threads
        The forward's values.

    Returns
    -------
    dask.array.Array
        Bit for bit ``dropkit.feature_alpha_dropout_backward(grad.compute(), ...)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`feature_alpha_dropout`.
    """
    s, o, t = _check(grad, seed, offset, threads, "grad")
    ns = _feature(grad, "feature_alpha_dropout_backward")
    return _alpha(grad, rate, s, o, ns, True, True, t)
