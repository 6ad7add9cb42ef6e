"""The variant registry: one entry per dropout variant, from which the benchmark, the parametrised
tests and the integrations read what a variant is.

An entry names the variant's public forward and backward functions, a typical call's parameters
for an input shape, a typical input layout, its noise family and its names in PyTorch and Keras
terms. The functions themselves keep one validation and one compiled call each (the fast path of
``_core.variant_fast``); the per-call constants they use live in :mod:`dropkit._params`.

Adding a variant is one :func:`register` call here (and its function, layer and spec section);
everything that iterates over :data:`VARIANTS` picks it up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from . import variants as _v
from ._api import dropout, dropout_backward

__all__ = ["Variant", "VARIANTS", "register", "get"]

Shape = Tuple[int, ...]


@dataclass(frozen=True)
class Variant:
    """One dropout variant.

    Attributes
    ----------
    name : str
        Short identifier (command lines, tables, test ids).
    summary : str
        One line.
    family : str
        Noise family: ``"bernoulli"`` (keep bits, scaled), ``"alpha"`` (keep bits, affine),
        ``"gaussian"`` or ``"concrete"`` (continuous multipliers).
    forward : callable
        ``forward(x, **params, seed=, offset=0, out=None, backend=None) -> y``.
    backward : callable
        ``backward(grad, **params, seed=, offset=0, out=None, backend=None) -> dx``; with
        ``backward_needs_x``: ``backward(grad, x, **params, ...) -> (dx, extra)``.
    params : callable
        ``params(shape, rate) -> dict``: keyword arguments of a typical call on that shape.
    shape : callable
        ``shape(n) -> tuple``: a typical layout of about ``n`` elements.
    backward_needs_x : bool
        The backward takes the forward's input too (concrete dropout's logit gradient).
    layer : str or None
        The class name of its layer in :mod:`dropkit`.
    torch_name, keras_name : str or None
        Its name in ``torch.nn.functional`` (and :mod:`dropkit.torch`) and in Keras.
    """

    name: str
    summary: str
    family: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    params: Callable[[Shape, float], Dict[str, Any]]
    shape: Callable[[int], Shape]
    backward_needs_x: bool = False
    layer: Optional[str] = None
    torch_name: Optional[str] = None
    keras_name: Optional[str] = None


VARIANTS: Dict[str, Variant] = {}


def register(v: Variant) -> Variant:
    """Add ``v`` to :data:`VARIANTS` (its name must be new)."""
    if v.name in VARIANTS:
        raise ValueError(f"variant {v.name!r} is already registered")
    VARIANTS[v.name] = v
    return v


def get(name: str) -> Variant:
    """The entry called ``name``; ``KeyError`` listing the known names otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


# ---- layouts ------------------------------------------------------------------------------


def flat(n: int) -> Shape:
    return (n,)


def _maps(rank: int) -> Callable[[int], Shape]:
    """``(N, C, *spatial)`` with 8x8 (1-D: 64) feature maps, or smaller ones for small ``n``."""

    def shape(n: int) -> Shape:
        side = 8 if rank > 1 else 64
        per_map = side ** rank if rank > 1 else side
        if n < 4 * per_map:
            side, per_map = 2, 2 ** rank
        nc = max(1, n // per_map)
        c = min(16, nc)
        return (max(1, nc // c), c) + (side,) * rank

    return shape


def sequence(n: int) -> Shape:
    """``(batch, time, features)`` with 32 features."""
    f = 32 if n >= 32 * 8 else 4
    rest = max(1, n // f)
    t = min(16, rest)
    return (max(1, rest // t), t, f)


def rows(n: int) -> Shape:
    """``(batch, features)`` with 64 features."""
    f = 64 if n >= 64 * 4 else 4
    return (max(1, n // f), f)


# ---- parameters ---------------------------------------------------------------------------


def _rate(shape: Shape, rate: float) -> Dict[str, Any]:
    return {"rate": rate}


def _noise(axes: Callable[[Shape], Tuple[Any, ...]]) -> Callable[[Shape, float], Dict[str, Any]]:
    return lambda shape, rate: {"rate": rate, "noise_shape": axes(shape)}


def _feature_rates(shape: Shape, rate: float) -> Dict[str, Any]:
    import numpy as np

    f = shape[-1]
    return {"rate": np.linspace(rate / 2, min(0.95, rate * 1.5), f)}


def _concrete(shape: Shape, rate: float) -> Dict[str, Any]:
    import math

    return {"logit": math.log(rate) - math.log1p(-rate), "temperature": 0.1}


def _channels(shape: Shape) -> Tuple[Any, ...]:
    return tuple(shape[:2]) + (1,) * (len(shape) - 2)


register(Variant("dropout", "standard inverted dropout (PyTorch, Keras)", "bernoulli", dropout, dropout_backward,
                 _rate, flat, layer="Dropout", torch_name="dropout", keras_name="Dropout"))
register(Variant("dropout-classic", "classic dropout (Srivastava et al.): unscaled in training", "bernoulli",
                 dropout, dropout_backward, lambda shape, rate: {"rate": rate, "inverted": False}, flat,
                 layer="Dropout"))
for _rank in (1, 2, 3):
    register(Variant(f"spatial{_rank}d", f"whole channels of (N, C, {'x'.join('LHW'[-_rank:] if _rank < 3 else 'DHW')}) maps",
                     "bernoulli", _v.dropout_nd, _v.dropout_nd_backward, _noise(_channels), _maps(_rank),
                     layer=f"SpatialDropout{_rank}D", torch_name=f"dropout{_rank}d",
                     keras_name=f"SpatialDropout{_rank}D"))
register(Variant("temporal", "one mask per sequence, shared over time (Gal & Ghahramani)", "bernoulli",
                 _v.dropout_nd, _v.dropout_nd_backward, _noise(lambda s: (s[0], 1, s[2])), sequence,
                 layer="TemporalDropout"))
register(Variant("droppath", "whole samples (stochastic depth)", "bernoulli", _v.dropout_nd,
                 _v.dropout_nd_backward, _noise(lambda s: (s[0],) + (1,) * (len(s) - 1)), rows, layer="DropPath"))
register(Variant("feature-rates", "a rate per feature (last axis)", "bernoulli", dropout, dropout_backward,
                 _feature_rates, rows, layer="AdaptiveDropout"))
register(Variant("gaussian", "multiplicative Gaussian noise N(1, rate / (1 - rate))", "gaussian",
                 _v.gaussian_dropout, _v.gaussian_dropout_backward, _rate, flat, layer="GaussianDropout",
                 keras_name="GaussianDropout"))
register(Variant("alpha", "alpha dropout for SELU networks", "alpha", _v.alpha_dropout, _v.alpha_dropout_backward,
                 _rate, flat, layer="AlphaDropout", torch_name="alpha_dropout", keras_name="AlphaDropout"))
register(Variant("feature-alpha", "alpha dropout of whole channels", "alpha", _v.feature_alpha_dropout,
                 _v.feature_alpha_dropout_backward, _rate, _maps(2), layer="FeatureAlphaDropout",
                 torch_name="feature_alpha_dropout"))
register(Variant("concrete", "relaxed Bernoulli mask with a learnable rate (Gal et al. 2017)", "concrete",
                 _v.concrete_dropout, _v.concrete_dropout_backward, _concrete, flat, backward_needs_x=True,
                 layer="ConcreteDropout"))
register(Variant("gaussian-noise", "additive zero-mean Gaussian noise (Keras GaussianNoise)", "additive",
                 _v.gaussian_noise, _v.gaussian_noise_backward, lambda shape, rate: {"stddev": rate}, flat,
                 layer="GaussianNoise", keras_name="GaussianNoise"))
