"""Dropout layers with the interface of the seed documents (forward/backward, .training, .mask),
backed by the counter-based stream: nothing per-element is stored, backward regenerates the mask."""
from __future__ import annotations

import operator
import secrets
from typing import Any, Optional, Tuple

import numpy as np

from . import _api, _params, _runtime, _validate, variants

_TWO64 = 1 << 64


def resolve_seed(seed: object) -> int:
    """A 64-bit seed from None (fresh OS entropy), an integer, or a ``numpy.random.Generator`` (SPEC 7).

    Integers are accepted as in the functional API: Python and NumPy integers and 0-d integer
    arrays, not bools.
    """
    if seed is None:
        return secrets.randbits(64)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, _TWO64, dtype=np.uint64))
    try:
        return _validate.uint64(seed, "seed")
    except TypeError:
        raise TypeError("seed must be None, an integer in [0, 2**64) or a numpy.random.Generator, "
                        f"got {seed!r}") from None


def check_grad(layer: Any, grad: Any) -> Tuple[np.ndarray, tuple]:
    """The precondition of every layer's ``backward``: a forward happened (``layer._last``, whose
    second entry is its input's shape) and ``grad`` is a float array of that shape.

    Returns ``(grad as an ndarray, layer._last)``; RuntimeError before any forward, ValueError
    for another shape.
    """
    if layer._last is None:
        raise RuntimeError(f"{type(layer).__name__}.backward called before forward")
    g = _validate.float_array(grad, "grad")
    shape = layer._last[1]
    if g.shape != shape:
        raise ValueError(f"grad must have the last forward's shape {shape}, got {g.shape}")
    return g, layer._last


def check_noise_shape(value: object) -> Optional[Tuple[Optional[int], ...]]:
    """A layer's ``noise_shape=`` (Keras semantics) as a tuple, or None.

    One entry per axis of the input, each a positive integer or None (the input's size on that
    axis, empty axes included), as Keras' ``Dropout`` checks it; whether it broadcasts to an input
    (each entry 1 or that axis's size) is checked at each ``forward``. Strings, bools, floats and
    non-sequences are a TypeError (dropkit's rule for bad types; Keras raises ValueError), entries
    below 1 a ValueError, both naming ``noise_shape``.
    """
    if value is None:
        return None
    what = f"noise_shape must be None or a sequence of positive integers or None entries, got {value!r}"
    if isinstance(value, (str, bytes)) or (isinstance(value, np.ndarray) and value.ndim != 1):
        raise TypeError(what)
    try:
        items = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(what) from None
    dims = []
    for d in items:
        if d is None:
            dims.append(None)
            continue
        if isinstance(d, (bool, np.bool_)):
            raise TypeError(what)
        try:
            d = operator.index(d)
        except TypeError:
            raise TypeError(what) from None
        if d < 1:  # as Keras: a fixed 0 is useless, None covers an empty axis
            raise ValueError(f"noise_shape entries must be positive integers or None, got {value!r}")
        dims.append(d)
    return tuple(dims)


class Dropout:
    """Dropout layer: ``forward`` zeroes each element with probability ``rate``.

    Parameters
    ----------
    rate : float, default 0.5
        Drop probability in [0, 1]. The seeds' spellings ``dropout_rate=`` and ``drop_rate=`` are
        accepted too (give the rate once).
    noise_shape : sequence of (int or None), optional
        Keras ``Dropout(rate, noise_shape, seed)`` semantics: the shape of the mask, one entry per
        axis of the input, None meaning the input's size on that axis and 1 sharing one mask value
        along the axis (``(None, 1, None)`` drops the same features at every time step of
        ``(batch, time, features)``). The forward is exactly
        ``dropkit.dropout(x, rate, seed=seed, offset=position, noise_shape=noise_shape)`` and the
        position counter advances by the mask's size (docs/rng.md §8.3). None: one value per
        element, as :func:`dropkit.dropout`.
    seed : None, int or numpy.random.Generator
        None draws 64 bits of OS entropy; an int in [0, 2**64) is used as is; a Generator gives one
        64-bit draw. The same seed reproduces the whole sequence of masks.
    inverted : bool, default True
        Inverted dropout (scale kept units by ``1/(1-rate)`` in training) or classic
        (scale everything by ``1-rate`` at inference), as in :func:`dropkit.dropout`.
    backend : {None, "core", "numpy"}
        Passed to the functional API.

    Attributes
    ----------
    rate : float
        Read (and validated) at each ``forward``; may be changed between calls.
    training : bool
        Mode used when ``forward`` is called with ``training=None``. Starts True. Assigning
        anything but a ``bool`` or ``numpy.bool_`` raises TypeError at once.
    inverted : bool
        As the constructor argument; assignment checked as for ``training``.
    seed : int
        The 64-bit seed in use.
    noise_shape : tuple or None
        As the constructor argument (checked at assignment, applied at each ``forward``).
    position : int
        Stream position of the next training forward (advances by ``x.size`` per call, by the
        size of the resolved ``noise_shape`` when one is set). May be
        assigned an integer in [0, 2**64] (Python or NumPy, not bool); anything else raises at
        assignment (TypeError for a non-integer, ValueError out of range), naming ``position``.
    mask : ndarray of bool or None
        The keep mask of the last training forward, regenerated on access (None before any, or
        after an evaluation-mode forward).

    Notes
    -----
    Differences from the seed code (docs/seeds.md): ``backward`` applies the ``1/(1-rate)`` scale
    (the seed's first ``Dropout.backward`` forgot it), and ``mask`` is bool, not int.
    """

    def __init__(self, rate=None, noise_shape=None, seed=None, *, dropout_rate=None, drop_rate=None,
                 inverted=True, backend=None):
        given = [v for v in (rate, dropout_rate, drop_rate) if v is not None]
        if len(given) > 1:
            raise TypeError("give the rate once: rate, dropout_rate or drop_rate, "
                            f"got {rate!r}, {dropout_rate!r} and {drop_rate!r}")
        self.rate = _validate.rate(given[0] if given else 0.5)
        self.training = True
        self.inverted = inverted
        _runtime.backend_name(backend)
        self.backend = backend
        self.seed = resolve_seed(seed)
        self.position = 0
        self.noise_shape = noise_shape
        self._last: tuple | None = None  # (training, shape, rate, offset) of the last forward
        self._last_ns: tuple | None = None  # the resolved noise shape of the last forward, if any

    @property
    def noise_shape(self):
        return self._noise_shape_arg

    @noise_shape.setter
    def noise_shape(self, value) -> None:
        self._noise_shape_arg = check_noise_shape(value)

    @property
    def training(self) -> bool:
        return self._training

    @training.setter
    def training(self, value) -> None:
        self._training = _validate.flag(value, "training")

    @property
    def inverted(self) -> bool:
        return self._inverted

    @inverted.setter
    def inverted(self, value) -> None:
        self._inverted = _validate.flag(value, "inverted")

    @property
    def position(self) -> int:
        return self._position

    @position.setter
    def position(self, value) -> None:
        self._position = _validate.offset(value, "position")

    def __repr__(self) -> str:
        ns = "" if self.noise_shape is None else f", noise_shape={self.noise_shape!r}"
        return (f"{type(self).__name__}(rate={self.rate!r}{ns}, inverted={self.inverted}, "
                f"training={self.training}, seed={self.seed}, position={self.position})")

    def forward(self, x, training=None):
        """Apply dropout to ``x``.

        Parameters
        ----------
        x : array_like
            float16, float32 or float64, any shape.
        training : bool or None
            None (the default) uses ``self.training``; otherwise a real bool (``bool`` or
            ``numpy.bool_``): anything else is a TypeError naming ``training``. (The functional
            :func:`dropkit.dropout` has no layer to defer to, so there None is a TypeError.)

        Returns
        -------
        ndarray
            Same shape and dtype. In training, a fresh mask from the next ``x.size`` positions of
            the layer's stream.
        """
        rate = _validate.rate(self.rate)
        training = self._training if training is None else _validate.flag(training, "training")
        a = _validate.float_array(x, "x")
        if self._noise_shape_arg is not None:
            return self._forward_noise_shape(a, rate, training)
        self._last_ns = None
        if not training:
            self._last = (False, a.shape, rate, None)
            return _api.dropout(a, rate, seed=self.seed, training=False, inverted=self.inverted,
                                backend=self.backend)
        offset = self._position
        _validate.span(offset, a.size)
        y = _api.dropout(a, rate, seed=self.seed, offset=offset, training=True, inverted=self.inverted,
                         backend=self.backend)
        self._position = offset + a.size
        self._last = (True, a.shape, rate, offset)
        return y

    __call__ = forward

    def _forward_noise_shape(self, a: np.ndarray, rate: float, training: bool) -> np.ndarray:
        """The forward with a Keras ``noise_shape`` (dropkit.dropout_nd; counter += the mask size)."""
        ns = _params.resolve_noise_shape(a.shape, self._noise_shape_arg)  # checked against x
        if not training:
            self._last, self._last_ns = (False, a.shape, rate, None), ns
            return variants.dropout_nd(a, rate, seed=self.seed, training=False, inverted=self.inverted,
                                       noise_shape=ns, backend=self.backend)
        offset = self._position
        size = variants.noise_size(a.shape, ns)
        _validate.span(offset, size)
        y = variants.dropout_nd(a, rate, seed=self.seed, offset=offset, noise_shape=ns,
                                inverted=self.inverted, backend=self.backend)
        self._position = offset + size
        self._last, self._last_ns = (True, a.shape, rate, offset), ns
        return y

    def backward(self, grad):
        """Gradient with respect to the input of the last ``forward``.

        Parameters
        ----------
        grad : array_like
            Same shape as the last forward's input.

        Returns
        -------
        ndarray
            ``grad * mask / (1 - rate)`` (inverted), ``grad * mask`` (classic) after a training
            forward; after an evaluation forward, ``grad`` (inverted) or ``(1 - rate) * grad``.

        Raises
        ------
        RuntimeError
            No forward yet.
        ValueError
            ``grad`` has another shape than the forward's input.
        """
        g, (training, shape, rate, offset) = check_grad(self, grad)
        ns = self._last_ns
        if ns is not None:  # the same broadcast mask and scales (dropkit.dropout_nd_backward)
            if not training:
                return variants.dropout_nd(g, rate, seed=self.seed, training=False, inverted=self.inverted,
                                           noise_shape=ns, backend=self.backend)
            return variants.dropout_nd_backward(g, rate, seed=self.seed, offset=offset, noise_shape=ns,
                                                inverted=self.inverted, backend=self.backend)
        if not training:
            return _api.dropout(g, rate, seed=self.seed, training=False, inverted=self.inverted,
                                backend=self.backend)
        return _api.dropout_backward(g, rate, seed=self.seed, offset=offset, inverted=self.inverted,
                                     backend=self.backend)

    @property
    def mask(self):
        if self._last is None or not self._last[0]:
            return None
        _, shape, rate, offset = self._last
        if self._last_ns is not None:
            ones = np.ones(shape, dtype=np.float32)
            return variants.dropout_nd(ones, rate, seed=self.seed, offset=offset, noise_shape=self._last_ns,
                                       inverted=False, backend=self.backend) != 0
        return _api.dropout_mask(shape, rate, seed=self.seed, offset=offset, backend=self.backend)


class InvertedDropout(Dropout):
    """Inverted dropout parametrised by the keep probability (seed 000, slide 6).

    ``InvertedDropout(keep_prob=0.8)`` is ``Dropout(rate=1 - keep_prob)``, inverted.

    Parameters
    ----------
    keep_prob : float, default 0.8
        Probability of keeping a unit, in [0, 1].
    seed, backend
        As in :class:`Dropout`.
    """

    def __init__(self, keep_prob=0.8, *, seed=None, backend=None):
        kp = _validate.rate(keep_prob, "keep_prob")
        super().__init__(1.0 - kp, seed=seed, inverted=True, backend=backend)

    @property
    def keep_prob(self) -> float:
        return 1.0 - self.rate

    @keep_prob.setter
    def keep_prob(self, value) -> None:
        self.rate = 1.0 - _validate.rate(value, "keep_prob")
