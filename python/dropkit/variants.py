"""The functional API of the dropout variants (docs/rng.md sections 8-15, docs/variants.md).

Broadcast noise (``noise_shape=``), rate arrays, Gaussian, alpha, feature-alpha and concrete
dropout. Validation and the mode logic live here once; the per-element work goes to a kernel
with the same name and arguments in ``dropkit._core`` (C++) when the core has one and the
backend is ``"core"``, else to its NumPy twin in :mod:`dropkit.reference._variants`. Both
compute the same bits (docs/rng.md). Every function is a pure function of its arguments:
``(seed, offset)`` name the stream positions, nothing per element is stored for backward.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

from . import _core, _dispatch, _params, _runtime, _validate

__all__ = [
    "alpha_dropout",
    "alpha_dropout_backward",
    "concrete_dropout",
    "concrete_dropout_backward",
    "dropout_nd",
    "dropout_nd_backward",
    "feature_alpha_dropout",
    "feature_alpha_dropout_backward",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "gaussian_noise",
    "gaussian_noise_backward",
    "noise_size",
]

_TWO32 = 1 << 32


# --------------------------------------------------------------------------------------------
# Plumbing: kernel choice, arrays, positions
# --------------------------------------------------------------------------------------------


# The kinds of ``_core.variant_fast`` (cpp/bindings/register_fast_path.cpp FastKind).
(_FAST_BERNOULLI, _FAST_GAUSSIAN, _FAST_ALPHA, _FAST_ALPHA_GRAD, _FAST_FEATURE_ALPHA, _FAST_FEATURE_ALPHA_GRAD,
 _FAST_GAUSSIAN_NOISE) = range(7)


def _pstrides(shape: Tuple[int, ...], noise: Tuple[int, ...]) -> Tuple[int, ...]:
    """Position strides of section 8.1: C-order strides of ``noise``, 0 on its axes of size 1."""
    return _params.noise_pstrides(shape, noise)


def noise_size(shape: Any, noise_shape: Any = None) -> int:
    """Number of stream positions one call on an array of ``shape`` uses (docs/rng.md §8.1).

    Parameters
    ----------
    shape : int or sequence of int
        Shape of ``x``.
    noise_shape : sequence of (int or None), or None
        As in :func:`dropout_nd`.

    Returns
    -------
    int
        ``prod(noise_shape)`` (``prod(shape)`` without broadcast): how far a layer's position
        counter advances per training call (§8.3).

    Raises
    ------
    TypeError, ValueError
        A bad shape, or a ``noise_shape`` that does not broadcast to it.
    """
    n = _core.noise_count(shape, noise_shape)  # a plain tuple and a valid noise_shape, in one step
    return n if n is not None else math.prod(_params.resolve_noise_shape(_validate.shape(shape), noise_shape))


def _check_x(x: Any, seed: Any, offset: Any, out: Any, name: str = "x"):
    s = _validate.uint64(seed, "seed")
    o = _validate.offset(offset)
    a = _validate.float_array(x, name)
    return a, s, o, _validate.out_array(out, a)


def _noise(a: np.ndarray, noise_shape: Any, o: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """(resolved noise shape, position strides); the call's positions must stay below 2**64."""
    ns = _params.resolve_noise_shape(a.shape, noise_shape)
    _validate.span(o, math.prod(ns))
    return ns, _pstrides(a.shape, ns)


# --------------------------------------------------------------------------------------------
# Standard dropout with broadcast noise and rate arrays (sections 8, 9)
# --------------------------------------------------------------------------------------------


def _bernoulli(a: np.ndarray, t: Any, scale: Any, s: int, o: int, ps: Tuple[int, ...],
               out: Optional[np.ndarray], backend: Optional[str]) -> np.ndarray:
    """``keep ? x * scale : +0`` with ``keep = u(pos) >= t`` (§4, 8, 9); t, scale scalars or arrays."""
    src, y = _dispatch.buffers(a, out)
    if y.size:  # scalars or rate arrays (section 9), with any position map, on either backend
        _dispatch.run("bernoulli_apply_nd", backend, src, y, t, scale, s, o, ps)
    return y


def _dropout_nd(a, r, rarr, training, inverted, s, o, noise_shape, out, backend):
    """Validated dropout_nd / dropout_nd_backward (backward = training forward on grad)."""
    ns, ps = _noise(a, noise_shape, o)
    if rarr is None:
        if r == 0.0:
            return _dispatch.identity(a, out)
        if not training or ns == a.shape:
            # Evaluation needs no noise (classic: x * (1 - rate), or +0 at rate 1; the offset
            # plays no part), and unbroadcast noise is exactly flat dropout (§8.1).
            return _dispatch.bernoulli_flat(a, r, training, inverted, s, o if training else 0, out,
                                            _dispatch.kernels(backend))
        scale = 0.0 if r == 1.0 else (1.0 / (1.0 - r) if inverted else 1.0)
        return _bernoulli(a, _params.threshold(r), scale, s, o, ps, out, backend)
    if not rarr.any():  # every rate 0: the identity, as for the scalar rate 0
        return _dispatch.identity(a, out)
    ct = np.float64 if a.dtype == np.float64 else np.float32
    if not training:
        if inverted:
            return _dispatch.identity(a, out)
        ones = rarr == 1.0  # classic evaluation (§5): x * (1 - rate), everything dropped at rate 1
        t = np.where(ones, np.uint64(_TWO32), np.uint64(0))
        scale = np.where(ones, 0.0, 1.0 - rarr).astype(ct)
        return _bernoulli(a, t, scale, s, 0, ps, out, backend)
    t = _params.rate_thresholds(rarr)
    scale = _params.rate_scales(rarr, a.dtype) if inverted else np.where(rarr == 1.0, 0.0, 1.0).astype(ct)
    return _bernoulli(a, t, scale, s, o, ps, out, backend)


def dropout_nd(x, rate, *, seed, offset=0, noise_shape=None, training=True, inverted=True, out=None,
               backend=None):
    """Dropout with broadcast noise (``noise_shape``) and per-element rates (docs/rng.md §8, §9).

    Parameters
    ----------
    x : array_like
        float16, float32 or float64, any shape, strides and alignment (copied to a contiguous,
        aligned buffer first when needed; never written unless it is also ``out``).
    rate : float or ndarray of float
        Drop probability in [0, 1], or an ndarray of them broadcastable to ``x`` (a rate per
        feature along the last axis, say). Element ``i`` is kept iff ``u(pos(i)) >= t_i``,
        ``t_i = round(rate_i * 2**32)``, and scaled by its own ``1 / (1 - rate_i)``; a constant
        array gives exactly the bits of the scalar rate.
    seed : int
        In [0, 2**64).
    offset : int, default 0
        Position of the first noise element, with ``offset + prod(noise_shape) <= 2**64``.
    noise_shape : sequence of (int or None), optional
        Keras semantics: one entry per axis of ``x``, None meaning the axis's size; an entry of 1
        shares one noise value along that axis. The noise array of this shape occupies the
        positions ``offset .. offset + prod(noise_shape) - 1`` in C order. None (or ``x.shape``)
        gives exactly :func:`dropkit.dropout`'s mask.
    training : bool, default True
        A real bool. False: inverted dropout returns ``x`` itself; classic returns
        ``x * (1 - rate)`` (``+0.0`` where the rate is 1).
    inverted : bool, default True
        Scale kept elements by ``1 / (1 - rate)`` in training (True), or scale by ``1 - rate`` in
        evaluation instead (False, classic).
    out : ndarray, optional
        Destination with ``x``'s shape and dtype, writable, C-contiguous, aligned; may be ``x``.
    backend : {None, "core", "numpy"}
        As in :func:`dropkit.dropout`.

    Returns
    -------
    ndarray
        Same shape and dtype as ``x``; ``x`` itself in the identity cases (evaluation of inverted
        dropout, every rate 0) when ``out`` is None.

    Raises
    ------
    ValueError
        A rate outside [0, 1] or NaN, a rate array that does not broadcast to ``x``, a
        ``noise_shape`` that does not broadcast, seed/offset out of range, a bad ``out``.
    TypeError
        A bad dtype, a non-integer seed or offset, a flag that is not a bool.

    Examples
    --------
    >>> import numpy as np, dropkit
    >>> x = np.ones((2, 3, 4), np.float32)
    >>> y = dropkit.dropout_nd(x, 0.5, seed=1, noise_shape=(None, None, 1))
    >>> bool((y == y[..., :1]).all())  # one value per (sample, channel)
    True
    """
    if training is True and inverted is True and _dispatch.core_backend(backend):
        y = (_core.variant_fast(_FAST_BERNOULLI, x, rate, seed, offset, noise_shape, out) if type(rate) is float
             else _core.rates_fast(x, rate, seed, offset, noise_shape, out))
        if y is not None:
            return y
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(x, seed, offset, out)
    r, rarr = _params.rate_or_array(rate, a.shape)
    training = _validate.flag(training, "training")
    inverted = _validate.flag(inverted, "inverted")
    return _dropout_nd(a, r, rarr, training, inverted, s, o, noise_shape, out, backend)


def dropout_nd_backward(grad, rate, *, seed, offset=0, noise_shape=None, inverted=True, out=None,
                        backend=None):
    """Gradient of training-mode :func:`dropout_nd`: the same mask and scales applied to ``grad``.

    Parameters
    ----------
    grad : array_like
        Gradient with respect to the forward's output (float16/32/64).
    rate, seed, offset, noise_shape, inverted, out, backend
        The forward's values.

    Returns
    -------
    ndarray
        Same shape and dtype as ``grad``; ``grad`` itself when every rate is 0 and ``out`` is None.

    Raises
    ------
    ValueError, TypeError
        As :func:`dropout_nd`.
    """
    if inverted is True and _dispatch.core_backend(backend):
        y = (_core.variant_fast(_FAST_BERNOULLI, grad, rate, seed, offset, noise_shape, out) if type(rate) is float
             else _core.rates_fast(grad, rate, seed, offset, noise_shape, out))
        if y is not None:
            return y
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(grad, seed, offset, out, "grad")
    r, rarr = _params.rate_or_array(rate, a.shape)
    inverted = _validate.flag(inverted, "inverted")
    return _dropout_nd(a, r, rarr, True, inverted, s, o, noise_shape, out, backend)


# --------------------------------------------------------------------------------------------
# Gaussian dropout (section 12)
# --------------------------------------------------------------------------------------------


_gaussian_rate = _params.gaussian_rate


def _gaussian(a, r, s, o, noise_shape, out, backend):
    ns, ps = _noise(a, noise_shape, o)
    if r == 0.0:
        return _dispatch.identity(a, out)
    src, y = _dispatch.buffers(a, out)
    if y.size:
        _dispatch.run("gaussian_apply", backend, src, y, _params.gaussian_sigma(r), s, o, ps)
    return y


def gaussian_dropout(x, rate, *, seed, offset=0, training=True, noise_shape=None, out=None, backend=None):
    """Gaussian dropout: ``y = x * (1 + sigma * eps)``, ``sigma = sqrt(rate / (1 - rate))`` (§12).

    ``eps`` are standard normals of the continuous stream (Box-Muller on fixed float32
    polynomials): the same bits on every backend, thread count and SIMD target. The multiplier
    ``1 + sigma * eps`` is a binary32 number; the product is one multiplication in the compute type.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64, any shape.
    rate : float
        In [0, 1): the drop rate whose Bernoulli variance the noise matches. 1 is refused
        (infinite variance).
    seed, offset, training, noise_shape, out, backend
        As in :func:`dropout_nd` (``noise_shape`` shares one multiplier along axes of size 1).

    Returns
    -------
    ndarray
        Same shape and dtype; ``x`` itself in evaluation mode or at rate 0 (no ``out``).

    Raises
    ------
    ValueError
        rate outside [0, 1), a bad noise_shape, seed, offset or out.
    TypeError
        A bad dtype, seed, offset or flag.

    Examples
    --------
    >>> import numpy as np, dropkit
    >>> y = dropkit.gaussian_dropout(np.ones(4, np.float32), 0.5, seed=3)
    >>> y.dtype, y.shape
    (dtype('float32'), (4,))
    """
    if training is True and _dispatch.core_backend(backend):
        y = _core.variant_fast(_FAST_GAUSSIAN, x, rate, seed, offset, noise_shape, out)
        if y is not None:
            return y
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(x, seed, offset, out)
    r = _gaussian_rate(rate)
    training = _validate.flag(training, "training")
    if not training:
        _noise(a, noise_shape, o)  # validated, unused
        return _dispatch.identity(a, out)
    return _gaussian(a, r, s, o, noise_shape, out, backend)


def gaussian_dropout_backward(grad, rate, *, seed, offset=0, noise_shape=None, out=None, backend=None):
    """Gradient of training-mode :func:`gaussian_dropout`: ``grad * (1 + sigma * eps)``, regenerated.

    Parameters
    ----------
    grad : array_like
        Gradient with respect to the forward's output.
    rate, seed, offset, noise_shape, out, backend
        The forward's values.

    Returns
    -------
    ndarray
        Same shape and dtype as ``grad``.

    Raises
    ------
    ValueError, TypeError
        As :func:`gaussian_dropout`.
    """
    if _dispatch.core_backend(backend):
        y = _core.variant_fast(_FAST_GAUSSIAN, grad, rate, seed, offset, noise_shape, out)
        if y is not None:
            return y
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(grad, seed, offset, out, "grad")
    r = _gaussian_rate(rate)
    return _gaussian(a, r, s, o, noise_shape, out, backend)


def gaussian_noise(x, stddev, *, seed, offset=0, training=True, noise_shape=None, out=None, backend=None):
    """Additive Gaussian noise (Keras ``GaussianNoise``): ``y = x + stddev * eps`` in training (§12.3).

    ``eps`` are the standard normals of Gaussian dropout's stream (the same positions and pairs);
    ``stddev * eps`` is a binary32 number, the sum one addition in the compute type.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64, any shape.
    stddev : float
        Standard deviation, finite and ``>= 0`` (finite in binary32).
    seed, offset, training, noise_shape, out, backend
        As in :func:`gaussian_dropout` (``noise_shape`` shares one noise value along axes of size 1).

    Returns
    -------
    ndarray
        Same shape and dtype; ``x`` itself in evaluation mode or at ``stddev == 0`` (no ``out``).

    Raises
    ------
    ValueError
        ``stddev`` negative, NaN or infinite; a bad noise_shape, seed, offset or out.
    TypeError
        A bad dtype, seed, offset or flag; ``stddev`` not a real number.

    Examples
    --------
    >>> import numpy as np, dropkit
    >>> y = dropkit.gaussian_noise(np.zeros(4, np.float32), 0.1, seed=3)
    >>> y.dtype, bool(np.all(np.abs(y) < 0.6))
    (dtype('float32'), True)
    """
    if training is True and _dispatch.core_backend(backend):
        y = _core.variant_fast(_FAST_GAUSSIAN_NOISE, x, stddev, seed, offset, noise_shape, out)
        if y is not None:
            return y
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(x, seed, offset, out)
    sd = _params.gaussian_stddev(stddev)
    training = _validate.flag(training, "training")
    ns, ps = _noise(a, noise_shape, o)
    if not training or sd == 0.0:
        return _dispatch.identity(a, out)
    src, y = _dispatch.buffers(a, out)
    if y.size:
        _dispatch.run("gaussian_noise_apply", backend, src, y, sd, s, o, ps)
    return y


def gaussian_noise_backward(grad, stddev, *, seed, offset=0, noise_shape=None, out=None, backend=None):
    """Gradient of :func:`gaussian_noise` with respect to ``x``: ``grad`` itself (§12.3).

    The noise does not depend on ``x``, so the backward reads no stream; the arguments are
    checked as in the forward (so a call that the forward refuses is refused here too).

    Parameters
    ----------
    grad : array_like
        Gradient with respect to the forward's output.
    stddev, seed, offset, noise_shape, out, backend
        The forward's values.

    Returns
    -------
    ndarray
        ``grad`` itself (no ``out``), or ``out`` holding a copy of it.

    Raises
    ------
    ValueError, TypeError
        As :func:`gaussian_noise`.
    """
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(grad, seed, offset, out, "grad")
    _params.gaussian_stddev(stddev)
    _noise(a, noise_shape, o)
    return _dispatch.identity(a, out)


# --------------------------------------------------------------------------------------------
# Alpha and feature-alpha dropout (section 14)
# --------------------------------------------------------------------------------------------


def _alpha(a, r, s, o, noise_shape, out, backend, backward):
    ns, ps = _noise(a, noise_shape, o)
    if r == 0.0:
        return _dispatch.identity(a, out)
    ca, cb, fill = _params.alpha_constants(r)
    t = _params.threshold(r)
    if backward:  # grad * a where kept, +0 where dropped: section 5's apply with scale a (§14)
        if ns == a.shape:  # the flat kernel of standard dropout (in the core today)
            return _dispatch.apply_flat(a, t, ca, s, o, out, _dispatch.kernels(backend))
        return _bernoulli(a, t, ca, s, o, ps, out, backend)
    src, y = _dispatch.buffers(a, out)
    if y.size:
        _dispatch.run("alpha_apply", backend, src, y, t, ca, cb, fill, s, o, ps)
    return y


def alpha_dropout(x, rate, *, seed, offset=0, training=True, noise_shape=None, out=None, backend=None):
    """Alpha dropout (Klambauer et al. 2017, PyTorch semantics): keeps SELU's mean and variance (§14).

    Dropped units take ``alpha' = -1.7580993408473766``; then every unit goes through
    ``a * (.) + b`` with ``a = ((1 - r)(1 + r alpha'^2))^(-1/2)``, ``b = -a alpha' r``, so a kept
    unit is ``x * a + b`` and a dropped one ``a * alpha' + b``. The keep bits are those of
    :func:`dropkit.dropout` for the same ``(seed, positions, rate)``.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64, any shape.
    rate : float
        Drop probability in [0, 1]; at 1 every output is ``+0.0``.
    seed, offset, training, noise_shape, out, backend
        As in :func:`dropout_nd`.

    Returns
    -------
    ndarray
        Same shape and dtype; ``x`` itself in evaluation mode or at rate 0 (no ``out``).

    Raises
    ------
    ValueError, TypeError
        As :func:`dropout_nd` (scalar rates only).
    """
    if training is True and _dispatch.core_backend(backend):
        y = _core.variant_fast(_FAST_ALPHA, x, rate, seed, offset, noise_shape, out)
        if y is not None:
            return y
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(x, seed, offset, out)
    r = _validate.rate(rate)
    training = _validate.flag(training, "training")
    if not training:
        _noise(a, noise_shape, o)
        return _dispatch.identity(a, out)
    return _alpha(a, r, s, o, noise_shape, out, backend, False)


def alpha_dropout_backward(grad, rate, *, seed, offset=0, noise_shape=None, out=None, backend=None):
    """Gradient of training-mode :func:`alpha_dropout`: ``grad * a`` where kept, ``+0`` where dropped.

    Parameters
    ----------
    grad : array_like
        Gradient with respect to the forward's output.
    rate, seed, offset, noise_shape, out, backend
        The forward's values.

    Returns
    -------
    ndarray
        Same shape and dtype as ``grad``.

    Raises
    ------
    ValueError, TypeError
        As :func:`alpha_dropout`.
    """
    if _dispatch.core_backend(backend):
        y = _core.variant_fast(_FAST_ALPHA_GRAD, grad, rate, seed, offset, noise_shape, out)
        if y is not None:
            return y
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(grad, seed, offset, out, "grad")
    r = _validate.rate(rate)
    return _alpha(a, r, s, o, noise_shape, out, backend, True)


def feature_alpha_dropout(x, rate, *, seed, offset=0, training=True, out=None, backend=None):
    """Feature-alpha dropout: alpha dropout of whole channels, noise shape ``(N, C, 1, ..., 1)`` (§14).

    Parameters
    ----------
    x : array_like
        float16, float32 or float64 with at least 2 dimensions ``(N, C, ...)``.
    rate, seed, offset, training, out, backend
        As in :func:`alpha_dropout`; ``N * C`` positions per call.

    Returns
    -------
    ndarray
        Same shape and dtype; ``x`` itself in evaluation mode or at rate 0 (no ``out``).

    Raises
    ------
    ValueError
        ``x`` with fewer than 2 dimensions; otherwise as :func:`alpha_dropout`.
    TypeError
        As :func:`alpha_dropout`.
    """
    if training is True and _dispatch.core_backend(backend):
        y = _core.variant_fast(_FAST_FEATURE_ALPHA, x, rate, seed, offset, None, out)
        if y is not None:
            return y
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(x, seed, offset, out)
    r = _validate.rate(rate)
    training = _validate.flag(training, "training")
    ns = _params.feature_noise_shape(a.shape, "feature_alpha_dropout")
    if not training:
        _noise(a, ns, o)
        return _dispatch.identity(a, out)
    return _alpha(a, r, s, o, ns, out, backend, False)


def feature_alpha_dropout_backward(grad, rate, *, seed, offset=0, out=None, backend=None):
    """Gradient of training-mode :func:`feature_alpha_dropout` (``grad * a`` on kept channels).

    Parameters
    ----------
    grad : array_like
        Gradient with respect to the forward's output, at least 2-D.
    rate, seed, offset, out, backend
        The forward's values.

    Returns
    -------
    ndarray
        Same shape and dtype as ``grad``.

    Raises
    ------
    ValueError, TypeError
        As :func:`feature_alpha_dropout`.
    """
    if _dispatch.core_backend(backend):
        y = _core.variant_fast(_FAST_FEATURE_ALPHA_GRAD, grad, rate, seed, offset, None, out)
        if y is not None:
            return y
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(grad, seed, offset, out, "grad")
    r = _validate.rate(rate)
    ns = _params.feature_noise_shape(a.shape, "feature_alpha_dropout_backward")
    return _alpha(a, r, s, o, ns, out, backend, True)


# --------------------------------------------------------------------------------------------
# Concrete dropout (section 13)
# --------------------------------------------------------------------------------------------


def concrete_dropout(x, logit, *, temperature, seed, offset=0, training=True, out=None, backend=None):
    """Concrete dropout (Gal, Hron and Kendall 2017): a relaxed, differentiable drop mask (§13).

    With ``p = sigmoid(logit)`` and ``u`` a uniform of the continuous stream,
    ``z = sigmoid((logit + log u - log(1 - u)) / temperature)`` is the relaxed drop indicator
    and ``y = x * (1 - z) / (1 - p)``.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64, any shape.
    logit : float
        The logit of the drop probability ``p`` (finite, with ``p < 1``); a layer learns it.
    temperature : float
        ``> 0`` (with ``1 / temperature`` finite in binary32). Small values approach Bernoulli.
    seed, offset, training, out, backend
        As in :func:`dropout_nd`.

    Returns
    -------
    ndarray
        Same shape and dtype; ``x`` itself in evaluation mode (no ``out``).

    Raises
    ------
    ValueError
        temperature <= 0 or too small, a non-finite logit, ``p`` rounding to 1, bad seed,
        offset or out.
    TypeError
        logit or temperature not a real number, a bad dtype, seed, offset or flag.
    """
    if training is True and _dispatch.core_backend(backend):
        y = _core.concrete_fast(x, logit, temperature, seed, offset, out)
        if y is not None:
            return y
    _runtime.backend_name(backend)
    a, s, o, out = _check_x(x, seed, offset, out)
    lg, inv_t, scale, _p = _params.concrete_params(logit, temperature)
    training = _validate.flag(training, "training")
    _validate.span(o, a.size)
    if not training:
        return _dispatch.identity(a, out)
    src, y = _dispatch.buffers(a, out)
    if y.size:
        _dispatch.run("concrete_apply", backend, src, y, lg, inv_t, scale, s, o, _pstrides(a.shape, a.shape))
    return y


def concrete_dropout_backward(grad, x, logit, *, temperature, seed, offset=0, out=None, backend=None):
    """Gradients of training-mode :func:`concrete_dropout`: ``(dx, dlogit)`` (§13.3).

    ``dx = grad * (1 - z) / (1 - p)`` (the forward applied to ``grad``, regenerated) and
    ``dlogit = sum(grad * y * (p - z / temperature))``, summed in the fixed order of §15 (the
    same bits for any thread count).

    Parameters
    ----------
    grad : array_like
        Gradient with respect to the forward's output.
    x : array_like
        The forward's input, same shape and dtype as ``grad``.
    logit, temperature, seed, offset, backend
        The forward's values.
    out : ndarray, optional
        Destination of ``dx`` (``grad``'s shape and dtype, C-contiguous, writable).

    Returns
    -------
    dx : ndarray
        Same shape and dtype as ``grad``.
    dlogit : float
        Gradient of the loss with respect to ``logit``.

    Raises
    ------
    ValueError
        ``x`` of another shape than ``grad``; otherwise as :func:`concrete_dropout`.
    TypeError
        ``x`` of another dtype than ``grad``; otherwise as :func:`concrete_dropout`.
    """
    _runtime.backend_name(backend)
    g, s, o, out = _check_x(grad, seed, offset, out, "grad")
    xa = _validate.float_array(x, "x")
    if xa.shape != g.shape:
        raise ValueError(f"x must have grad's shape {g.shape}, got {xa.shape}")
    if xa.dtype != g.dtype:
        raise TypeError(f"x must have grad's dtype {g.dtype}, got {xa.dtype}")
    lg, inv_t, scale, p = _params.concrete_params(logit, temperature)
    _validate.span(o, g.size)
    gsrc, dx = _dispatch.buffers(g, out)
    xsrc = xa if xa.flags.c_contiguous and xa.flags.aligned else np.array(xa, order="C")
    if dx.size == 0:
        return dx, 0.0
    if xsrc is not dx and np.may_share_memory(xsrc, dx):
        xsrc = xsrc.copy()
    _, dlogit = _dispatch.run("concrete_backward", backend, gsrc, xsrc, dx, lg, inv_t, scale, p, s, o)
    return dx, float(dlogit)
