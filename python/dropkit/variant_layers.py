"""Layers of the dropout variants, with the interface of the seed documents (docs/variants.md).

Every layer has ``.training``, ``forward(x, training=None)``, ``backward(grad)``, the seed's
constructor keywords, ``seed=`` (None, an int or a ``numpy.random.Generator``) and a position
counter ``.position`` that advances by the *noise* size of each training-mode forward
(docs/rng.md §8.3): ``N * C`` for a spatial dropout of NCHW maps, not ``x.size``. Nothing per
element is stored: ``backward`` regenerates the noise of the last forward from
``(seed, offset, parameters)``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Tuple

import numpy as np

from . import _core, _dispatch, _params, _runtime, _validate, variants
from ._params import gaussian_rate, gaussian_stddev
from .layers import Dropout, check_grad, check_noise_shape, resolve_seed
from .reference import _variants as _refv

__all__ = [
    "AdaptiveDropout",
    "AlphaDropout",
    "ConcreteDropout",
    "CurriculumDropout",
    "DropPath",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "TemporalDropout",
]


def _training(layer: Any, training: Any) -> bool:
    return layer._training if training is None else _validate.flag(training, "training")


# --------------------------------------------------------------------------------------------
# Bernoulli layers: dropkit.Dropout with broadcast noise or a rate per element
# --------------------------------------------------------------------------------------------


class _BroadcastDropout(Dropout):
    """:class:`dropkit.Dropout` whose noise may be broadcast and whose rate may be an array.

    Subclasses say how: :meth:`_noise_shape` (Keras ``noise_shape`` for an input shape, also
    the place to check the input's rank) and :meth:`_rate_value` (a float or an array).
    ``_last`` holds ``(training, shape, rate, offset, noise_shape)`` of the last forward.
    """

    def _noise_shape(self, shape: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:
        return None

    @property
    def noise_shape(self):
        """None: a variant layer's noise shape is its own (:meth:`_noise_shape`), not an argument."""
        return None

    @noise_shape.setter
    def noise_shape(self, value) -> None:
        if value is not None:
            raise TypeError(f"{type(self).__name__} sets its own noise shape; noise_shape must be None, "
                            f"got {value!r} (use dropkit.Dropout(rate, noise_shape=...) for a custom one)")

    def _rate_value(self, shape: Tuple[int, ...]) -> Any:
        return _validate.rate(self.rate)

    def _eval(self, a: np.ndarray, rate: Any, ns: Any) -> np.ndarray:
        return variants.dropout_nd(a, rate, seed=self.seed, training=False, inverted=self.inverted,
                                   noise_shape=ns, backend=self.backend)

    def _train(self, a: np.ndarray, rate: Any, ns: Any, offset: int) -> np.ndarray:
        if self._inverted and type(rate) is float and _dispatch.core_backend(self.backend):
            y = _core.variant_fast(0, a, rate, self.seed, offset, ns, None)  # the common call, compiled
            if y is not None:
                return y
        return variants.dropout_nd(a, rate, seed=self.seed, offset=offset, noise_shape=ns,
                                   inverted=self.inverted, backend=self.backend)

    def _forward(self, a: np.ndarray, training: bool, ns: Any, rate: Any,
                 offset: Optional[int] = None) -> np.ndarray:
        """Training: noise from ``offset`` (default the counter, which then advances by the noise size)."""
        if not training:
            self._last = (False, a.shape, rate, None, ns)
            return self._eval(a, rate, ns)
        advance = offset is None
        if advance:
            offset = self._position
        y = self._train(a, rate, ns, offset)  # (checks offset + noise size <= 2**64 first)
        if advance:
            self._position = offset + variants.noise_size(a.shape, ns)
        self._last = (True, a.shape, rate, offset, ns)
        return y

    def forward(self, x, training=None):
        """Apply the dropout to ``x``.

        Parameters
        ----------
        x : array_like
            float16, float32 or float64 of the shape the layer expects.
        training : bool or None
            None uses ``self.training``; otherwise a real bool.

        Returns
        -------
        ndarray
            Same shape and dtype. In training, fresh noise from the next noise-size positions of
            the layer's stream.
        """
        training = self._training if training is None else _validate.flag(training, "training")
        a = _validate.float_array(x, "x")
        ns = self._noise_shape(a.shape)
        rate = self._rate_value(a.shape)
        return self._forward(a, training, ns, rate)

    __call__ = forward

    def backward(self, grad):
        """Gradient with respect to the input of the last ``forward`` (its mask, regenerated).

        Parameters
        ----------
        grad : array_like
            Same shape as the last forward's input.

        Returns
        -------
        ndarray
            After a training forward, ``grad`` through the same mask and scales; after an
            evaluation forward, what evaluation does to ``grad``.

        Raises
        ------
        RuntimeError
            No forward yet.
        ValueError
            ``grad`` of another shape than the forward's input.
        """
        g, (training, _shape, rate, offset, ns) = check_grad(self, grad)
        if not training:
            return self._eval(g, rate, ns)
        return variants.dropout_nd_backward(g, rate, seed=self.seed, offset=offset, noise_shape=ns,
                                            inverted=self.inverted, backend=self.backend)

    @property
    def mask(self):
        """Keep mask (bool, the input's shape) of the last training forward, regenerated; else None."""
        if self._last is None or not self._last[0]:
            return None
        _, shape, rate, offset, ns = self._last
        ones = np.ones(shape, dtype=np.float32)
        return variants.dropout_nd(ones, rate, seed=self.seed, offset=offset, noise_shape=ns,
                                   inverted=False, backend=self.backend) != 0


def _rate_alias(name: str, doc: str) -> property:
    """A property ``name`` that reads and writes ``rate`` (validated, errors naming ``name``)."""

    def fset(self, value) -> None:
        self.rate = _validate.rate(value, name)

    return property(lambda self: self.rate, fset, doc=doc)


_DATA_FORMATS = ("channels_first", "channels_last")


class _SpatialDropout(_BroadcastDropout):
    """Spatial dropout: one mask value per (sample, channel).

    Default layout channels-first, ``(batch, channels, *spatial)``, for 1-D, 2-D and 3-D alike (the
    seed's ``SpatialDropout2D`` is NCHW; PyTorch's ``dropout1d/2d/3d`` are channels-first too).
    Keras' layers default to channels-last: ``data_format="channels_last"`` gives that layout.
    """

    _dims = 2
    _axes = "height, width"

    def __init__(self, rate=None, data_format="channels_first", *, drop_rate=None, seed=None,
                 inverted=True, backend=None):
        self._check_format(data_format)
        super().__init__(rate, drop_rate=drop_rate, seed=seed, inverted=inverted, backend=backend)
        self.data_format = data_format

    @property
    def data_format(self) -> str:
        """``"channels_first"`` (the default) or ``"channels_last"``; checked when set."""
        return self._data_format

    @data_format.setter
    def data_format(self, value) -> None:
        self._check_format(value)
        self._data_format = value

    drop_rate = _rate_alias("drop_rate", "The drop rate (the seed's name for :attr:`rate`).")

    @classmethod
    def _layout(cls, data_format: str) -> str:
        if data_format == "channels_first":
            return "(batch, channels, " + cls._axes + ")"
        return "(batch, " + cls._axes + ", channels)"

    @classmethod
    def _check_format(cls, data_format: Any) -> None:
        if not isinstance(data_format, str) or data_format not in _DATA_FORMATS:
            hint = ""
            if isinstance(data_format, (int, np.integer)) and not isinstance(data_format, (bool, np.bool_)):
                # Keras' SpatialDropout1D(rate, seed): here the second argument is data_format
                hint = "; an integer looks like a seed: pass it as seed=..."
            raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}: "
                             f"{cls.__name__} takes {cls._layout('channels_first')} with 'channels_first' "
                             f"(the default) and {cls._layout('channels_last')} with 'channels_last' "
                             f"(Keras' layout); there is no global default to defer to (None){hint}")

    def _noise_shape(self, shape):
        rank = self._dims + 2
        first = self._data_format == "channels_first"
        if len(shape) != rank:
            other = "channels_last" if first else "channels_first"
            raise ValueError(f"{type(self).__name__} expects a {rank}-D input {self._layout(self.data_format)} "
                             f"for data_format={self.data_format!r} (data_format={other!r} takes "
                             f"{self._layout(other)}), got shape {shape} for x")
        ones = (1,) * self._dims
        return (shape[0], shape[1]) + ones if first else (shape[0],) + ones + (shape[-1],)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(rate={self.rate!r}, data_format={self.data_format!r}, "
                f"training={self.training}, seed={self.seed}, position={self.position})")


class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of 1-D feature sequences; default layout ``(batch, channels, length)``.

    Channels-first by default, as :class:`SpatialDropout2D` and :class:`SpatialDropout3D` (the
    seed's NCHW) and PyTorch's ``nn.Dropout1d``. Keras' ``SpatialDropout1D`` is not this default:
    it takes ``(samples, timesteps, channels)`` only; pass ``data_format="channels_last"`` for
    that layout (then the mask is shared along the time axis, as Keras').

    Parameters
    ----------
    rate : float, default 0.5
        Drop probability of a channel, in [0, 1]; the seed's ``drop_rate=`` is accepted too.
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        ``(N, C, L)`` or ``(N, L, C)``. Any other value (None included) is a ValueError.
    seed, inverted, backend
        As in :class:`dropkit.Dropout`.

    Notes
    -----
    One noise value per (sample, channel): the counter advances by ``N * C`` per training forward.
    An input of another rank is a ValueError naming the expected layout; a 3-D input in the other
    layout cannot be told apart by its shape, so the layout must be stated: with the default, the
    mask is shared along the *last* axis.
    """

    _dims = 1
    _axes = "length"


class SpatialDropout2D(_SpatialDropout):
    """Drops whole feature maps; default layout ``(batch, channels, height, width)`` (seed slide 10).

    Channels-first by default, the seed's layout (and PyTorch's ``dropout2d``). Keras'
    ``SpatialDropout2D`` defaults to channels-last (its ``image_data_format``): pass
    ``data_format="channels_last"`` for ``(batch, height, width, channels)``.

    Parameters
    ----------
    rate : float, default 0.5
        Drop probability of a channel, in [0, 1]; the seed's ``drop_rate=`` is accepted too.
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        ``(N, C, H, W)`` or ``(N, H, W, C)``. Any other value (None included) is a ValueError.
    seed, inverted, backend
        As in :class:`dropkit.Dropout`.

    Notes
    -----
    One noise value per (sample, channel): the counter advances by ``N * C`` per training forward.
    """

    _dims = 2
    _axes = "height, width"


class SpatialDropout3D(_SpatialDropout):
    """Drops whole channels of volumes; default layout ``(batch, channels, depth, height, width)``.

    Channels-first by default, as :class:`SpatialDropout2D` (the seed's layout) and PyTorch's
    ``dropout3d``. Keras' ``SpatialDropout3D`` defaults to channels-last: pass
    ``data_format="channels_last"`` for ``(batch, depth, height, width, channels)``.

    Parameters
    ----------
    rate : float, default 0.5
        Drop probability of a channel, in [0, 1]; the seed's ``drop_rate=`` is accepted too.
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        ``(N, C, D, H, W)`` or ``(N, D, H, W, C)``. Any other value (None included) is a ValueError.
    seed, inverted, backend
        As in :class:`dropkit.Dropout`.
    """

    _dims = 3
    _axes = "depth, height, width"


class TemporalDropout(_BroadcastDropout):
    """One dropout mask for every time step (seed slide 14; Gal and Ghahramani 2016).

    A sequence ``(batch, time, features)`` gets one mask of shape ``(batch, 1, features)``, fresh
    at each call. Step-by-step calls on ``(batch, features)`` or ``(batch, 1, features)`` share one
    mask until :meth:`reset_state` (variational RNN dropout): the first step after a reset draws
    it (the counter advances by ``batch * features``), the next steps reuse it.

    Parameters
    ----------
    drop_rate : float, default 0.5
        Drop probability in [0, 1] (``rate=`` is accepted too).
    seed, inverted, backend
        As in :class:`dropkit.Dropout`.
    """

    def __init__(self, drop_rate=None, *, rate=None, seed=None, inverted=True, backend=None):
        super().__init__(rate, drop_rate=drop_rate, seed=seed, inverted=inverted, backend=backend)
        self._step: Optional[tuple] = None  # (offset, (batch, features), rate) of the step mask

    drop_rate = _SpatialDropout.drop_rate

    def _noise_shape(self, shape):
        if len(shape) == 3:
            return (shape[0], 1, shape[2])
        if len(shape) == 2:
            return None
        raise ValueError(f"TemporalDropout expects (batch, time, features), or (batch, features) or "
                         f"(batch, 1, features) for one step, got shape {shape} for x")

    def forward(self, x, training=None):
        """Apply the time-shared mask (see the class docstring for sequences and steps).

        Parameters
        ----------
        x : array_like
            ``(batch, time, features)``, or one step ``(batch, features)`` / ``(batch, 1, features)``.
        training : bool or None
            None uses ``self.training``.

        Returns
        -------
        ndarray
            Same shape and dtype.

        Raises
        ------
        ValueError
            Another rank, or a step whose ``(batch, features)`` differ from the current step
            mask's (call :meth:`reset_state` between sequences).
        """
        training = _training(self, training)
        a = _validate.float_array(x, "x")
        ns = self._noise_shape(a.shape)
        is_step = a.ndim == 2 or a.shape[1] == 1
        if not (training and is_step):
            return self._forward(a, training, ns, self._rate_value(a.shape))
        bf = (a.shape[0], a.shape[-1])
        if self._step is None:
            offset = self._position
            _validate.span(offset, bf[0] * bf[1])
            self._step = (offset, bf, self._rate_value(a.shape))
            self._position = offset + bf[0] * bf[1]
        offset, shape, rate = self._step
        if shape != bf:
            raise ValueError(f"this step has (batch, features) = {bf}, the step mask {shape}: "
                             "call reset_state() before a new sequence")
        return self._forward(a, True, ns, rate, offset)

    __call__ = forward

    def reset_state(self) -> None:
        """Forget the step mask (the next step draws a new one) and the last forward (``mask`` None)."""
        self._step = None
        self._last = None


class DropPath(_BroadcastDropout):
    """Stochastic depth: drop a whole sample's residual branch (timm ``DropPath`` semantics).

    One value per sample (noise shape ``(N, 1, ..., 1)``); kept samples are scaled by
    ``1 / (1 - drop_prob)`` when ``scale_by_keep``. Evaluation, and ``drop_prob = 0``, return the
    input itself.

    Parameters
    ----------
    drop_prob : float, default 0.0
        Probability of dropping a sample's path, in [0, 1].
    scale_by_keep : bool, default True
        Scale kept samples by ``1 / (1 - drop_prob)`` (as timm); False leaves them unscaled.
    seed, backend
        As in :class:`dropkit.Dropout`.
    """

    def __init__(self, drop_prob=0.0, scale_by_keep=True, *, seed=None, backend=None):
        super().__init__(_validate.rate(drop_prob, "drop_prob"), seed=seed,
                         inverted=_validate.flag(scale_by_keep, "scale_by_keep"), backend=backend)

    drop_prob = _rate_alias("drop_prob", "The drop probability (timm's name for :attr:`rate`).")

    @property
    def scale_by_keep(self) -> bool:
        return self.inverted

    @scale_by_keep.setter
    def scale_by_keep(self, value) -> None:
        self.inverted = value

    def _noise_shape(self, shape):
        if len(shape) < 1:
            raise ValueError(f"DropPath expects an input with a batch axis (at least 1-D), got shape {shape} for x")
        return (shape[0],) + (1,) * (len(shape) - 1)

    def _eval(self, a, rate, ns):
        return a  # timm: the identity in evaluation, scaled or not

    def __repr__(self) -> str:
        return (f"DropPath(drop_prob={self.rate!r}, scale_by_keep={self.inverted}, "
                f"training={self.training}, seed={self.seed}, position={self.position})")


def _finite_real(value: Any, name: str) -> float:
    """A finite real number (Python or NumPy, not bool) as a float; TypeError/ValueError naming ``name``."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return v


class AdaptiveDropout(_BroadcastDropout):
    """Dropout with a rate per feature from the features' importance (seed slide 4), or standout.

    ``mode="importance"`` (the default, the seed's): ``update_dropout_rates(activations)``
    updates the importance, an exponential moving average of the mean ``|activation|`` per
    feature (over axis 0), and returns ``rate * (1 - importance / max(importance))`` as the seed
    does. Unlike the seed, which computes these rates and never uses them, ``forward`` then
    applies them: element ``i`` of a feature is dropped with that feature's rate (a rate array,
    docs/rng.md §9). Before the first update every feature uses ``rate``.

    ``mode="standout"`` (Ba and Frey 2013, "Adaptive dropout for training deep neural networks",
    with the standout network's weights tied to the layer's, ``pi = alpha * w + beta``): the keep
    probability of each element comes from the value it is applied to,
    ``keep_i = sigmoid(alpha * x_i + beta)``, so a training forward is
    ``dropout_nd(x, rate=standout_rates(x), seed=seed, offset=position)``: element ``i`` is kept
    with its own probability and, with inverted scaling, scaled by ``1 / keep_i``. Apply the layer
    to the pre-activation ``w_j . a`` to follow the paper exactly; after a nonlinearity it uses the
    activation instead. ``initial_rate`` and ``update_dropout_rates`` are not used by standout.

    Parameters
    ----------
    initial_rate : float, default 0.5
        The base rate ``rate`` in [0, 1] (importance mode).
    adaptation_rate : float, default 0.01
        EMA weight of the new importance, in [0, 1] (importance mode).
    mode : {"importance", "standout"}, default "importance"
        Where the rates come from: the importance of the last ``update_dropout_rates`` or the
        input of each forward.
    alpha, beta : float, default 1.0 and 0.0
        Finite real numbers: standout's keep probability ``sigmoid(alpha * x + beta)``.
    seed, inverted, backend
        As in :class:`dropkit.Dropout`.

    Attributes
    ----------
    neuron_importance : ndarray or None
        The importance per feature (None before the first update).
    adjusted_rates : ndarray or None
        The rates of the last ``update_dropout_rates``, used by ``forward`` in importance mode.
    mode, alpha, beta
        As the constructor arguments; checked at assignment (may be changed between calls).

    Notes
    -----
    Standout, in detail:

    - **Rates.** ``standout_rates(x)`` is ``1 - sigmoid(alpha * x + beta)`` computed in float64
      as ``sigmoid(-z)``, ``z = alpha * x + beta``: with ``e = exp(-|z|)``, ``1 / (1 + e)`` where
      ``z <= 0`` and ``e / (1 + e)`` elsewhere (no overflow, accurate in both tails), clipped into
      [0, 1]. An element whose ``z`` is NaN (a NaN in ``x``, or ``alpha = 0`` with an infinite
      ``x``) has no keep probability: ValueError, nothing drawn. Like every rate array, the keep
      decision uses the threshold ``round(rate_i * 2**32)`` (docs/rng.md §9), so a keep
      probability of at most ``2**-33`` means the element is always dropped.
    - **Backward.** The forward's rate array is kept with it (float64, ``x``'s shape: the one
      per-element thing this layer stores, because the rates are a function of ``x``; the mask is
      regenerated from ``(seed, offset)`` and these rates). ``backward(grad)`` is
      ``dropout_nd_backward(grad, rates, ...)``: the rates are treated as constants, so no
      gradient flows through ``sigmoid(alpha * x + beta)``: the mask is a sample, a constant of
      the backward pass, and ``alpha``, ``beta`` are fixed hyperparameters of the tied standout
      network (not learned here).
    - **Evaluation.** The paper multiplies by the expected mask at test time,
      ``x * sigmoid(alpha * x + beta)``, having trained with an unscaled mask. dropkit uses
      inverted dropout by default, as everywhere else: kept elements are scaled by
      ``1 / keep_i`` in training, so ``E[y] = x`` and evaluation returns ``x`` itself (no rates
      computed). ``inverted=False`` gives the paper's form: the unscaled mask in training and
      ``x * sigmoid(alpha * x + beta)`` in evaluation (whose ``backward`` is again
      ``grad * keep`` with the keep probabilities as constants). Inverted scaling divides by
      small keep probabilities: with strongly negative ``alpha * x + beta`` the rare kept
      elements are large; prefer ``inverted=False`` if that matters.
    - **Positions.** As every rate array: ``x.size`` per training forward.
    """

    _MODES = ("importance", "standout")

    def __init__(self, initial_rate=0.5, adaptation_rate=0.01, *, mode="importance", alpha=1.0, beta=0.0,
                 seed=None, inverted=True, backend=None):
        self.mode = mode
        self.alpha = alpha
        self.beta = beta
        super().__init__(_validate.rate(initial_rate, "initial_rate"), seed=seed, inverted=inverted,
                         backend=backend)
        self.adaptation_rate = _validate.rate(adaptation_rate, "adaptation_rate")
        self.neuron_importance = None
        self.adjusted_rates: Optional[np.ndarray] = None

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value) -> None:
        if not isinstance(value, str) or value not in self._MODES:
            raise ValueError(f"mode must be 'importance' or 'standout', got {value!r}")
        self._mode = value

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value) -> None:
        self._alpha = _finite_real(value, "alpha")

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value) -> None:
        self._beta = _finite_real(value, "beta")

    def update_dropout_rates(self, activations):
        """Update the importance from ``activations`` (batch first) and return the new rates.

        Parameters
        ----------
        activations : array_like
            At least 1-D; the importance is per element of ``activations.shape[1:]``.

        Returns
        -------
        ndarray
            ``rate * (1 - importance / max(importance))`` (``rate`` where every importance is 0),
            which ``forward`` uses from now on in importance mode (standout ignores them).

        Raises
        ------
        TypeError
            ``activations`` not real numbers (bool, complex, str, object).
        ValueError
            ``activations`` ragged, without a non-empty batch axis, or holding a NaN or an
            infinity (the message gives the first index). Nothing is updated then: one bad batch
            neither poisons the importance nor stops the adaptation.

        Notes
        -----
        Finite activations never give a NaN or infinite rate: a per-feature mean of ``|a|`` that
        would overflow its dtype (values near the largest float, e.g. ``1e308`` in float64) is
        computed as ``m * mean(|a| / m)`` with ``m`` the feature's largest ``|a|``, and a moving
        average that rounds past the largest finite float is held at the largest finite float.
        """
        acts = _validate.array(activations, "activations")
        if acts.dtype.kind not in "iuf":
            raise TypeError(f"activations must be real numbers (integer or float), got dtype {acts.dtype}")
        if acts.ndim < 1 or acts.shape[0] == 0:
            raise ValueError(f"activations must have a non-empty batch axis, got shape {acts.shape}")
        if acts.dtype.kind == "f":
            bad = ~np.isfinite(acts)
            if bad.any():
                i = tuple(int(k) for k in np.argwhere(bad)[0])
                raise ValueError(f"activations must be finite (the importance is a mean of |activation|), "
                                 f"got {acts[i].item()!r} at index {i}")
        with np.errstate(over="ignore", invalid="ignore"):
            mags = np.abs(acts)
            current_importance = mags.mean(axis=0)
        if current_importance.dtype.kind == "f" and not np.isfinite(current_importance).all():
            top_mag = mags.max(axis=0)  # finite: every activation is
            safe = np.where(top_mag > 0, top_mag, 1)
            current_importance = np.asarray(top_mag * (mags / safe).mean(axis=0), current_importance.dtype)
        old = self.neuron_importance
        if old is None:
            old = np.ones_like(current_importance)
        with np.errstate(over="ignore"):
            importance = (1 - self.adaptation_rate) * old + self.adaptation_rate * current_importance
        if importance.dtype.kind == "f":
            importance = np.minimum(importance, np.finfo(importance.dtype).max)
        top = np.max(importance)
        ratio = importance / top if top > 0 else np.zeros_like(importance)
        adjusted = self.rate * (1 - ratio)
        self.neuron_importance = importance
        self.adjusted_rates = np.clip(np.asarray(adjusted, dtype=np.float64), 0.0, 1.0)
        return adjusted

    def standout_rates(self, x):
        """Standout's drop rates for ``x``: ``1 - sigmoid(alpha * x + beta)`` per element.

        Parameters
        ----------
        x : array_like
            float16, float32 or float64.

        Returns
        -------
        ndarray of float64
            ``x``'s shape, values in [0, 1], computed as in the class Notes (the rates a
            training forward on ``x`` uses).

        Raises
        ------
        TypeError
            ``x`` of another dtype.
        ValueError
            ``alpha * x + beta`` is NaN somewhere (the message gives the first such index).
        """
        a = _validate.float_array(x, "x")
        with np.errstate(over="ignore", invalid="ignore"):
            z = self._alpha * a.astype(np.float64) + self._beta
        nan = np.isnan(z)
        if nan.any():
            i = tuple(int(k) for k in np.argwhere(nan)[0])
            raise ValueError(f"standout needs a keep probability sigmoid(alpha * x + beta) for every "
                             f"element, but it is NaN at index {i} (x = {a[i]!r}, alpha = {self._alpha!r})")
        e = np.exp(-np.abs(z))
        rates = np.where(z <= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return np.clip(rates, 0.0, 1.0)

    def forward(self, x, training=None):
        """Apply the dropout to ``x`` (importance rates, or standout rates from ``x`` itself).

        Parameters
        ----------
        x : array_like
            float16, float32 or float64; in importance mode of a shape the rates broadcast to.
        training : bool or None
            None uses ``self.training``; otherwise a real bool.

        Returns
        -------
        ndarray
            Same shape and dtype. In training, fresh noise from the next ``x.size`` positions of
            the layer's stream; in evaluation ``x`` itself (inverted) or ``x * (1 - rates)``.
        """
        if self._mode == "importance":
            return super().forward(x, training)
        training = _training(self, training)
        a = _validate.float_array(x, "x")
        if not training and self.inverted:
            return self._forward(a, False, None, 0.0)  # the identity; so is its backward
        return self._forward(a, training, None, self.standout_rates(a))

    __call__ = forward

    def _rate_value(self, shape):
        if self.adjusted_rates is None:
            return _validate.rate(self.rate)
        return self.adjusted_rates.copy()  # the forward's rates, kept for its backward

    def __repr__(self) -> str:
        extra = f", alpha={self._alpha!r}, beta={self._beta!r}" if self._mode == "standout" else ""
        return (f"AdaptiveDropout(rate={self.rate!r}, mode={self._mode!r}{extra}, inverted={self.inverted}, "
                f"training={self.training}, seed={self.seed}, position={self.position})")


class CurriculumDropout(_BroadcastDropout):
    """Dropout whose rate grows during training (seed slide 12; Morerio et al. 2017 as an option).

    ``schedule="linear"`` (the seed's): ``rate = min(final_rate * current_epoch / epochs,
    final_rate)``, ``on_epoch_end()`` advancing ``current_epoch``. ``schedule="exponential"``
    (Morerio et al. 2017, "Curriculum Dropout"): the retain probability
    ``theta(t) = (1 - theta_bar) exp(-gamma t) + theta_bar``, ``theta_bar = 1 - final_rate``, per
    iteration ``t`` (training forwards so far, :attr:`iteration`); that is
    ``rate = final_rate * (1 - exp(-gamma t))``.

    Parameters
    ----------
    final_rate : float, default 0.5
        The rate the schedule reaches, in [0, 1].
    epochs : int, default 100
        Epochs of the linear ramp (> 0).
    schedule : {"linear", "exponential"}
    gamma : float, optional
        Required (> 0) for the exponential schedule (Morerio et al. suggest about ``10 / T`` for
        ``T`` iterations).
    seed, inverted, backend
        As in :class:`dropkit.Dropout`.
    """

    def __init__(self, final_rate=0.5, epochs=100, *, schedule="linear", gamma=None, seed=None,
                 inverted=True, backend=None):
        self.final_rate = _validate.rate(final_rate, "final_rate")
        e = _validate.integer(epochs, "epochs must be a positive integer")
        if e <= 0:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if schedule not in ("linear", "exponential"):
            raise ValueError(f"schedule must be 'linear' or 'exponential', got {schedule!r}")
        if schedule == "exponential":
            if gamma is None or isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating)) \
                    or not (math.isfinite(gamma) and gamma > 0):
                raise ValueError(f"gamma must be a finite number > 0 for the exponential schedule, got {gamma!r}")
        self.epochs = e
        self.schedule = schedule
        self.gamma = None if gamma is None else float(gamma)
        self.current_epoch = 0
        self.iteration = 0
        super().__init__(0.0, seed=seed, inverted=inverted, backend=backend)

    def get_current_rate(self) -> float:
        """The rate the next training forward uses."""
        if self.schedule == "exponential":
            return self.final_rate * -math.expm1(-self.gamma * self.iteration)
        return min(self.final_rate * self.current_epoch / self.epochs, self.final_rate)

    def _rate_value(self, shape):
        self.rate = self.get_current_rate()
        return self.rate

    def forward(self, x, training=None):
        """Dropout at :meth:`get_current_rate` (see :meth:`_BroadcastDropout.forward`)."""
        y = super().forward(x, training)
        if self._last[0]:
            self.iteration += 1
        return y

    __call__ = forward

    def on_epoch_end(self) -> None:
        """Advance ``current_epoch`` (the linear schedule's clock)."""
        self.current_epoch += 1


# --------------------------------------------------------------------------------------------
# Continuous-noise and affine-fill layers
# --------------------------------------------------------------------------------------------


class _StreamLayer:
    """Seed, position counter, training flag and backend of a layer (as :class:`dropkit.Dropout`).

    ``_last`` holds ``(training, shape, params, offset, extra, noise_shape)`` of the last forward.
    """

    training = Dropout.training
    position = Dropout.position

    def __init__(self, seed, backend):
        self.training = True
        _runtime.backend_name(backend)
        self.backend = backend
        self.seed = resolve_seed(seed)
        self.position = 0
        self._last: Optional[tuple] = None

    def _noise_shape(self, shape):
        return None

    def forward(self, x, training=None):
        """Apply the layer's noise to ``x``.

        Parameters
        ----------
        x : array_like
            float16, float32 or float64.
        training : bool or None
            None uses ``self.training``; otherwise a real bool.

        Returns
        -------
        ndarray
            Same shape and dtype; ``x`` itself in evaluation mode.
        """
        training = self._training if training is None else _validate.flag(training, "training")
        a = _validate.float_array(x, "x")
        ns = self._noise_shape(a.shape)
        params = self._params()
        if not training:
            self._last = (False, a.shape, params, None, None, ns)
            return a
        offset = self._position
        n = variants.noise_size(a.shape, ns)
        _validate.span(offset, n)
        y = self._apply(a, params, offset, ns)
        self._position = offset + n
        self._last = (True, a.shape, params, offset, self._keep(a), ns)
        return y

    __call__ = forward

    def _keep(self, a):
        return None

    def backward(self, grad):
        """Gradient with respect to the input of the last ``forward`` (noise regenerated).

        Parameters
        ----------
        grad : array_like
            Same shape as the last forward's input.

        Returns
        -------
        ndarray
            ``grad`` through the derivative of the last forward (``grad`` after an evaluation one).

        Raises
        ------
        RuntimeError
            No forward yet.
        ValueError
            ``grad`` of another shape.
        """
        g, (training, shape, params, offset, extra, ns) = check_grad(self, grad)
        if not training:
            return g
        return self._grad(g, params, offset, ns, extra)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(training={self.training}, seed={self.seed}, position={self.position})"


class GaussianDropout(_StreamLayer):
    """Gaussian dropout ``y = x * (1 + sigma * eps)``, ``sigma = sqrt(rate / (1 - rate))`` (slide 11).

    Parameters
    ----------
    drop_rate : float, default 0.5
        In [0, 1) (``rate=`` is accepted too; 1 is refused: infinite variance).
    seed, backend
        As in :class:`dropkit.Dropout`.

    Attributes
    ----------
    noise : ndarray of float32 or None
        The multipliers ``1 + sigma * eps`` of the last training forward, regenerated on access.
    """

    def __init__(self, drop_rate=None, *, rate=None, seed=None, backend=None):
        if drop_rate is not None and rate is not None:
            raise TypeError(f"give the rate once: drop_rate or rate, got {drop_rate!r} and {rate!r}")
        self.drop_rate = gaussian_rate(0.5 if drop_rate is None and rate is None
                                                 else (drop_rate if rate is None else rate))
        super().__init__(seed, backend)

    @property
    def rate(self) -> float:
        return self.drop_rate

    @rate.setter
    def rate(self, value) -> None:
        self.drop_rate = value

    def _params(self):
        return gaussian_rate(self.drop_rate)

    def _apply(self, a, rate, offset, ns):
        return variants.gaussian_dropout(a, rate, seed=self.seed, offset=offset, backend=self.backend)

    def _grad(self, g, rate, offset, ns, extra):
        return variants.gaussian_dropout_backward(g, rate, seed=self.seed, offset=offset, backend=self.backend)

    @property
    def noise(self):
        if self._last is None or not self._last[0]:
            return None
        _, shape, rate, offset, _, _ = self._last
        return variants.gaussian_dropout(np.ones(shape, np.float32), rate, seed=self.seed, offset=offset,
                                         backend=self.backend)


class GaussianNoise(_StreamLayer):
    """Additive zero-mean Gaussian noise ``y = x + stddev * eps`` in training (Keras ``GaussianNoise``).

    docs/rng.md section 12.3. Evaluation returns ``x`` itself; the backward is the identity.

    Parameters
    ----------
    stddev : float
        Standard deviation, finite and ``>= 0``.
    seed, backend
        As in :class:`dropkit.Dropout` (``seed`` also positionally, as Keras' second argument).
    """

    def __init__(self, stddev, seed=None, *, backend=None):
        self.stddev = gaussian_stddev(stddev)
        super().__init__(seed, backend)

    def _params(self):
        return gaussian_stddev(self.stddev)

    def _apply(self, a, stddev, offset, ns):
        return variants.gaussian_noise(a, stddev, seed=self.seed, offset=offset, backend=self.backend)

    def _grad(self, g, stddev, offset, ns, extra):
        return variants.gaussian_noise_backward(g, stddev, seed=self.seed, offset=offset, backend=self.backend)


class AlphaDropout(_StreamLayer):
    """Alpha dropout for SELU networks (Klambauer et al. 2017; Keras ``AlphaDropout``, PyTorch
    ``nn.AlphaDropout``).

    Parameters
    ----------
    rate : float, default 0.5
        Drop probability in [0, 1].
    noise_shape : sequence of (int or None), optional
        Keras ``AlphaDropout(rate, noise_shape, seed)`` semantics, as in :class:`dropkit.Dropout`:
        one entry per axis of the input, None meaning the input's size, 1 sharing one noise value
        along the axis. The forward is exactly ``dropkit.alpha_dropout(x, rate, seed=seed,
        offset=position, noise_shape=noise_shape)``, the backward
        :func:`dropkit.alpha_dropout_backward` with the same arguments, and the position counter
        advances by the noise size. None: one value per element.
    seed : None, int or numpy.random.Generator
        As in :class:`dropkit.Dropout`.
    backend
        As in :class:`dropkit.Dropout`.
    """

    _feature = False

    def __init__(self, rate=0.5, noise_shape=None, seed=None, *, backend=None):
        self.rate = _validate.rate(rate)
        self.noise_shape = noise_shape
        super().__init__(seed, backend)

    @property
    def noise_shape(self):
        return self._noise_shape_arg

    @noise_shape.setter
    def noise_shape(self, value) -> None:
        if self._feature and value is not None:
            raise TypeError(f"{type(self).__name__} sets its own noise shape (N, C, 1, ...); noise_shape "
                            f"must be None, got {value!r}")
        self._noise_shape_arg = check_noise_shape(value)

    def _params(self):
        return _validate.rate(self.rate)

    def _noise_shape(self, shape):
        if self._feature:
            return _params.feature_noise_shape(shape, type(self).__name__)
        if self._noise_shape_arg is None:
            return None
        return _params.resolve_noise_shape(shape, self._noise_shape_arg)

    def _apply(self, a, rate, offset, ns):
        return variants.alpha_dropout(a, rate, seed=self.seed, offset=offset, noise_shape=ns,
                                      backend=self.backend)

    def _grad(self, g, rate, offset, ns, extra):
        return variants.alpha_dropout_backward(g, rate, seed=self.seed, offset=offset, noise_shape=ns,
                                               backend=self.backend)

    def __repr__(self) -> str:
        ns = "" if self._noise_shape_arg is None else f", noise_shape={self._noise_shape_arg!r}"
        return (f"{type(self).__name__}(rate={self.rate!r}{ns}, training={self.training}, seed={self.seed}, "
                f"position={self.position})")


class FeatureAlphaDropout(AlphaDropout):
    """Alpha dropout of whole channels of ``(N, C, ...)`` inputs (PyTorch ``nn.FeatureAlphaDropout``).

    Parameters
    ----------
    rate : float, default 0.5
        Drop probability of a channel, in [0, 1].
    seed, backend
        As in :class:`dropkit.Dropout`.

    Notes
    -----
    The counter advances by ``N * C`` per training forward.
    """

    _feature = True

    def __init__(self, rate=0.5, *, seed=None, backend=None):
        super().__init__(rate, seed=seed, backend=backend)


class ConcreteDropout(_StreamLayer):
    """Concrete dropout with a learnable drop probability (seed slide 7; Gal, Hron and Kendall 2017).

    ``dropout_rate`` holds the *logit* of the drop probability ``p`` (the seed's name);
    ``get_dropout_rate()`` is ``p``. Training: ``y = x * (1 - z) / (1 - p)`` with the relaxed drop
    indicator ``z = sigmoid((logit + log u - log(1 - u)) / temperature)``; evaluation is the
    identity (the paper's; the seed multiplies by ``p``, see docs/seeds.md). ``backward`` returns
    ``dx`` and adds d(loss)/d(logit) to ``dropout_rate_grad``; :meth:`regularizer` is the paper's
    regulariser and :meth:`regularizer_backward` its gradient.

    Parameters
    ----------
    temperature : float, default 0.1
        > 0.
    init_rate : float, default 0.5
        Initial ``p``, in (0, 1).
    weight_regularizer : float, default 1e-6
    dropout_regularizer : float, default 1e-5
        The paper's (and its Keras code's) coefficients of the regulariser.
    seed, backend
        As in :class:`dropkit.Dropout`.

    Attributes
    ----------
    dropout_rate : float
        The logit of ``p``; update it with ``dropout_rate_grad``.
    dropout_rate_grad : float
        Accumulated gradient with respect to ``dropout_rate`` (:meth:`zero_grad` resets it).
    trainable : bool
        When False, ``backward`` and :meth:`regularizer_backward` leave ``dropout_rate_grad`` alone.
    """

    def __init__(self, temperature=0.1, init_rate=0.5, weight_regularizer=1e-6, dropout_regularizer=1e-5,
                 *, seed=None, backend=None):
        p = _validate.rate(init_rate, "init_rate")
        if not 0.0 < p < 1.0:
            raise ValueError(f"init_rate must be in (0, 1), got {init_rate!r}")
        self.temperature = temperature
        self.dropout_rate = math.log(p) - math.log1p(-p)  # logit
        _params.concrete_params(self.dropout_rate, temperature)  # checks the temperature
        self.weight_regularizer = float(weight_regularizer)
        self.dropout_regularizer = float(dropout_regularizer)
        self.trainable = True
        self.dropout_rate_grad = 0.0
        super().__init__(seed, backend)

    def get_dropout_rate(self) -> float:
        """The drop probability ``p = sigmoid(dropout_rate)``."""
        return _params.concrete_params(self.dropout_rate, self.temperature)[3]

    def concrete_dropout(self, noise):
        """The seed's relaxed drop indicator ``sigmoid((log u - log(1 - u) + logit) / temperature)``.

        Parameters
        ----------
        noise : array_like
            Uniforms ``u`` in (0, 1).

        Returns
        -------
        ndarray of float64
            ``z`` (1 means dropped). The layer itself draws ``u`` from its stream (docs/rng.md §13).
        """
        u = np.asarray(noise, dtype=np.float64)
        a = (np.log(u) - np.log1p(-u) + float(self.dropout_rate)) / float(self.temperature)
        e = np.exp(-np.abs(a))  # sigmoid without overflow, accurate in both tails
        return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def zero_grad(self) -> None:
        """Reset ``dropout_rate_grad`` to 0."""
        self.dropout_rate_grad = 0.0

    def _params(self):
        _params.concrete_params(self.dropout_rate, self.temperature)
        return (float(self.dropout_rate), float(self.temperature))

    def _keep(self, a):
        return a  # the input: the logit's gradient needs grad * x

    def _apply(self, a, params, offset, ns):
        logit, temp = params
        return variants.concrete_dropout(a, logit, temperature=temp, seed=self.seed, offset=offset,
                                         backend=self.backend)

    def _grad(self, g, params, offset, ns, x):
        logit, temp = params
        if x.dtype == g.dtype:
            dx, dlogit = variants.concrete_dropout_backward(g, x, logit, temperature=temp, seed=self.seed,
                                                            offset=offset, backend=self.backend)
        else:
            # A gradient of another float dtype than the forward's input, accepted as every layer
            # does: dx has grad's dtype and is the forward applied to grad (docs/rng.md §13.3), the
            # same bits as for a forward in grad's dtype; dlogit widens grad and x exactly (§13.3
            # computes it in binary64 from exactly widened values), so it uses the wider dtype.
            wide = np.promote_types(x.dtype, g.dtype)
            dxw, dlogit = variants.concrete_dropout_backward(g.astype(wide, copy=False), x.astype(wide, copy=False),
                                                             logit, temperature=temp, seed=self.seed,
                                                             offset=offset, backend=self.backend)
            if wide == g.dtype:
                dx = dxw
            else:
                dx = variants.concrete_dropout(g, logit, temperature=temp, seed=self.seed, offset=offset,
                                               backend=self.backend)
        if self.trainable:
            self.dropout_rate_grad += dlogit
        return dx

    def _sum_sq(self, weights) -> Tuple[np.ndarray, float]:
        w = np.asarray(weights)
        if w.dtype.kind not in "iuf":
            raise TypeError(f"weights must be a real array, got dtype {w.dtype}")
        w64 = w.astype(np.float64).reshape(-1)
        sq = w64 * w64
        if _runtime.backend_name(self.backend) == "core":
            return w, _core.deterministic_sum(sq, 0, _runtime.get_num_threads(), _runtime.simd_target())
        return w, _refv.deterministic_sum(sq, 0)

    @staticmethod
    def _input_dim(input_dim) -> int:
        k = _validate.integer(input_dim, "input_dim must be a positive integer")
        if k <= 0:
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
        return k

    def regularizer(self, weights, input_dim) -> float:
        """``weight_regularizer * sum(W^2) / (1 - p) + dropout_regularizer * K * (p log p + (1-p) log(1-p))``.

        Parameters
        ----------
        weights : array_like
            The weights ``W`` of the layer this dropout feeds.
        input_dim : int
            ``K``, the number of its input features.

        Returns
        -------
        float
            The regulariser, to add to the loss (``sum(W^2)`` in the order of docs/rng.md §15).
        """
        k = self._input_dim(input_dim)
        _, ss = self._sum_sq(weights)
        p = self.get_dropout_rate()
        ent = (p * math.log(p) if p > 0 else 0.0) + ((1 - p) * math.log1p(-p) if p < 1 else 0.0)
        return self.weight_regularizer * ss / (1.0 - p) + self.dropout_regularizer * k * ent

    def regularizer_backward(self, weights, input_dim) -> Tuple[np.ndarray, float]:
        """Gradient of :meth:`regularizer`: ``(d/dW, d/dlogit)``; adds the latter to ``dropout_rate_grad``.

        Parameters
        ----------
        weights : array_like
            As in :meth:`regularizer`.
        input_dim : int
            As in :meth:`regularizer`.

        Returns
        -------
        dweights : ndarray
            ``2 * weight_regularizer * W / (1 - p)`` (float64 for integer weights).
        dlogit : float
            ``weight_regularizer * sum(W^2) * p / (1 - p) + dropout_regularizer * K * logit * p (1 - p)``.
        """
        k = self._input_dim(input_dim)
        w, ss = self._sum_sq(weights)
        p = self.get_dropout_rate()
        logit = float(self.dropout_rate)
        wf = w if w.dtype.kind == "f" else w.astype(np.float64)
        dw = wf * wf.dtype.type(2.0 * self.weight_regularizer / (1.0 - p))
        dlogit = self.weight_regularizer * ss * p / (1.0 - p) + self.dropout_regularizer * k * logit * p * (1.0 - p)
        if self.trainable:
            self.dropout_rate_grad += dlogit
        return dw, dlogit

    def __repr__(self) -> str:
        return (f"ConcreteDropout(temperature={self.temperature!r}, p={self.get_dropout_rate()!r}, "
                f"training={self.training}, seed={self.seed}, position={self.position})")
