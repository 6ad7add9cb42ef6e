"""The functional API. Validation and the mode logic live here once; the per-element work goes to
one of two kernel sets with the same names and arguments: ``dropkit._core`` (C++) or
``dropkit.reference._kernels`` (NumPy). docs/rng.md specifies what both compute."""
from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from . import _core, _dispatch, _params, _runtime, _validate, variants

threshold = _params.threshold  # (kept under its old name: docs/rng.md section 4)


def _check_common(x: Any, rate: Any, seed: Any, offset: Any, out: Any, backend: Any, name: str = "x"):
    k = _dispatch.kernels(backend)  # validated first, even when no kernel will run
    r = _validate.rate(rate)
    s = _validate.uint64(seed, "seed")
    o = _validate.offset(offset)
    a = _validate.float_array(x, name)
    _validate.span(o, a.size)
    return a, r, s, o, _validate.out_array(out, a), k


def dropout(x, rate, *, seed, offset=0, training=True, inverted=True, out=None, backend=None,
            noise_shape=None):
    """Dropout forward: zero each element with probability ``rate``.

    The mask is a pure function of ``(seed, offset + flat index, rate)`` (docs/rng.md), so any
    call can be repeated, split into chunks or run on any number of threads with the same bits.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64 (native byte order), any shape (0-d and empty included), any
        strides, any alignment: a non-contiguous or misaligned ``x`` is copied to a contiguous,
        aligned buffer before the kernel reads it (as NumPy's ufuncs buffer such operands); ``x``
        is never written unless it is also ``out``.
    rate : float
        Drop probability in [0, 1]. A rate of another real type (NumPy float16/float32, an int, a
        0-d array) is first converted to the nearest binary64, exactly for NumPy floats:
        ``np.float32(0.1)`` is 0.100000001490116..., not 0.1 (docs/rng.md §4).
    seed : int
        In [0, 2**64); the Philox key. A Python or NumPy integer (or 0-d integer array), not bool.
    offset : int, default 0
        Stream position of ``x.flat[0]``, in [0, 2**64], with ``offset + x.size <= 2**64``
        (so ``offset == 2**64`` only for an empty ``x``).
    training : bool, default True
        A real bool (``bool`` or ``numpy.bool_``; anything else, None included, is a TypeError).
        False: no mask. Inverted dropout returns ``x`` itself; classic returns ``(1 - rate) * x``
        (all ``+0.0`` at rate 1, as in training).
    inverted : bool, default True
        A real bool. True: kept elements are scaled by ``1 / (1 - rate)`` in training (PyTorch,
        Keras). False: the classic formulation (Srivastava et al.): kept elements unscaled in
        training, everything scaled by ``1 - rate`` in evaluation.
    out : ndarray, optional
        Destination with ``x``'s shape and dtype, writable, C-contiguous and aligned for its dtype;
        may be ``x`` itself. Anything else raises, nothing is written.
    backend : {None, "core", "numpy"}
        None: :func:`dropkit.get_backend` (``"core"``, the C++ kernels, unless
        :func:`dropkit.set_backend` or ``DROPKIT_BACKEND`` at import chose otherwise).
        ``"numpy"`` runs the pure-NumPy reference, bit for bit the same.
    noise_shape : sequence of (int or None), optional
        Broadcast noise (Keras semantics, docs/rng.md §8). Given, or with ``rate`` an ndarray
        broadcastable to ``x`` (a rate per element, §9), the call is
        :func:`dropkit.dropout_nd` (backward: :func:`dropkit.dropout_nd_backward`).

    Returns
    -------
    ndarray
        Same shape and dtype as ``x``. When the call is the identity (inverted evaluation at any
        rate, or ``rate == 0`` in any mode) and ``out`` is None, ``x`` itself is returned (not a
        copy, as ``torch.nn.functional.dropout`` does); pass ``out=`` for a copy.

    Raises
    ------
    ValueError
        rate outside [0, 1] or NaN or not a real number; seed outside [0, 2**64); offset outside
        [0, 2**64]; offset + size > 2**64; ``out`` of the wrong shape, read-only, not C-contiguous
        or misaligned.
    TypeError
        x (or ``out``) not float16/float32/float64; seed or offset not an integer; ``training`` or
        ``inverted`` not a bool.

    Notes
    -----
    A dropped element is ``+0.0`` whatever it held (NaN and infinities included): the mask selects,
    it does not multiply. float16 is computed in float32 and rounded once. No floating-point
    warnings are raised, in any mode (a signalling NaN is quieted silently).

    Examples
    --------
    >>> import numpy as np, dropkit
    >>> y = dropkit.dropout(np.ones(8, np.float32), 0.5, seed=42)
    >>> sorted(set(y.tolist())) in ([0.0, 2.0], [2.0], [0.0])
    True
    """
    if noise_shape is None and type(rate) is float:
        if backend is None and _runtime.current_backend == "core" or backend == "core":
            y = _core.dropout_fast(x, rate, seed, offset, training, inverted, out)  # (None: not a common call)
            if y is not None:
                return y
    elif training is True and inverted is True and _dispatch.core_backend(backend):  # broadcast noise, rate arrays
        y = (_core.variant_fast(0, x, rate, seed, offset, noise_shape, out) if type(rate) is float
             else _core.rates_fast(x, rate, seed, offset, noise_shape, out))
        if y is not None:
            return y
    if noise_shape is not None or (isinstance(rate, np.ndarray) and rate.ndim):
        return variants.dropout_nd(  # broadcast noise or a rate array (docs/rng.md §8, §9)
            x, rate, seed=seed, offset=offset, noise_shape=noise_shape, training=training,
                          inverted=inverted, out=out, backend=backend)
    a, r, s, o, out, k = _check_common(x, rate, seed, offset, out, backend)
    training = _validate.flag(training, "training")
    inverted = _validate.flag(inverted, "inverted")
    return _dispatch.bernoulli_flat(a, r, training, inverted, s, o, out, k)


def dropout_backward(grad, rate, *, seed, offset=0, inverted=True, out=None, backend=None, noise_shape=None):
    """Gradient of training-mode :func:`dropout` with respect to its input.

    Regenerates the mask from ``(seed, offset, rate)`` (nothing was stored) and applies the same
    scale: ``grad * mask / (1 - rate)`` (inverted) or ``grad * mask`` (classic).

    Parameters
    ----------
    grad : array_like
        Gradient of the loss with respect to the forward's output; float16/32/64, any alignment
        (copied to an aligned buffer when misaligned, as ``x`` in :func:`dropout`).
    rate, seed, offset, inverted, out, backend, noise_shape
        As in :func:`dropout`; pass the forward's values. A rate array or a ``noise_shape`` makes
        the call :func:`dropkit.dropout_nd_backward` (the same mask as the forward's).

    Returns
    -------
    ndarray
        Same shape and dtype as ``grad``; ``grad`` itself when ``rate == 0`` and ``out`` is None.

    Raises
    ------
    ValueError, TypeError
        As :func:`dropout`.
    """
    if backend is None and _runtime.current_backend == "core" or backend == "core":
        y = (_core.dropout_fast(grad, rate, seed, offset, True, inverted, out)
             if noise_shape is None and type(rate) is float else
             _core.variant_fast(0, grad, rate, seed, offset, noise_shape, out) if type(rate) is float and inverted is True
             else _core.rates_fast(grad, rate, seed, offset, noise_shape, out) if inverted is True else None)
        if y is not None:
            return y
    if noise_shape is not None or (isinstance(rate, np.ndarray) and rate.ndim):
        return variants.dropout_nd_backward(  # broadcast noise or a rate array (docs/rng.md §8, §9)
            grad, rate, seed=seed, offset=offset, noise_shape=noise_shape,
                                   inverted=inverted, out=out, backend=backend)
    a, r, s, o, out, k = _check_common(grad, rate, seed, offset, out, backend, "grad")
    inverted = _validate.flag(inverted, "inverted")
    return _dispatch.bernoulli_flat(a, r, True, inverted, s, o, out, k)


def dropout_mask(shape, rate, *, seed, offset=0, packed=False, backend=None):
    """The keep mask :func:`dropout` would use for an array of this shape.

    Parameters
    ----------
    shape : int or tuple of int
        Non-negative Python or NumPy integers (bools are not dimensions: a TypeError).
    rate, seed, offset, backend
        As in :func:`dropout`.
    packed : bool, default False
        A real bool (``bool`` or ``numpy.bool_``). False: a bool array of ``shape``, True = kept.
        True: the flat C-order mask in ``numpy.packbits`` layout (``bitorder="big"``: element ``8i``
        is the most significant bit of byte ``i``; unused low bits of the last byte are 0), a uint8
        array of ``ceil(size / 8)`` bytes. ``np.unpackbits(m, count=size).reshape(shape)`` undoes it.

    Returns
    -------
    ndarray

    Raises
    ------
    ValueError, TypeError
        Bad rate, seed, offset or shape (as in :func:`dropout`); TypeError if ``packed`` is not a
        bool.
    """
    k = _dispatch.kernels(backend)
    dims = _validate.shape(shape)
    r = _validate.rate(rate)
    s = _validate.uint64(seed, "seed")
    o = _validate.offset(offset)
    packed = _validate.flag(packed, "packed")
    n = math.prod(dims)  # exact: np.prod would wrap at 2**64
    _validate.span(o, n)
    out = np.empty((n + 7) // 8, dtype=np.uint8) if packed else np.empty(dims, dtype=np.bool_)
    if n:  # (an empty mask touches no position: not even offset 2**64 reaches a kernel)
        k.bernoulli_mask(out.reshape(-1), n, threshold(r), s, o, packed, _runtime.current_threads,
                         _runtime.current_simd)
    return out


def philox4x32_10(counter, key, *, backend=None):
    """Philox4x32-10 (Random123) block function, the generator under every dropkit mask.

    Parameters
    ----------
    counter : array_like of uint32, shape (..., 4)
    key : array_like of uint32, shape (..., 2)
        The leading dimensions broadcast against each other.
    backend : {None, "core", "numpy"}

    Returns
    -------
    ndarray of uint32, shape (broadcast leading dims..., 4)

    Raises
    ------
    TypeError
        Non-integer input.
    ValueError
        Last dimension not 4 (counter) or 2 (key), or a value outside [0, 2**32).

    Examples
    --------
    >>> import dropkit
    >>> [hex(v) for v in dropkit.philox4x32_10([0, 0, 0, 0], [0, 0])]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    if _runtime.backend_name(backend) == "numpy":
        return _dispatch.kernels("numpy").philox4x32_10(counter, key)
    # One validation for both backends (lossless, names the bad value).
    c = _validate.uint32_words("counter", counter, 4).astype(np.uint32)
    k = _validate.uint32_words("key", key, 2).astype(np.uint32)
    lead = np.broadcast_shapes(c.shape[:-1], k.shape[:-1])
    cb = np.ascontiguousarray(np.broadcast_to(c, lead + (4,)).reshape(-1, 4))
    kb = np.ascontiguousarray(np.broadcast_to(k, lead + (2,)).reshape(-1, 2))
    return _core.philox4x32_10(cb, kb, _runtime.current_simd).reshape(lead + (4,))
