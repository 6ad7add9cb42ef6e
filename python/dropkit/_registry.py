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

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from . import variants as _v
from . import blocks as _b
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


# ---- layouts and typical parameters ------------------------------------------------------


def _layout(n: int, inner: Tuple[int, ...]) -> Tuple[int, ...]:
    """``(batch,) + inner`` holding exactly ``n`` elements; inner sizes shrink (gcd) when ``n`` is small."""
    dims, rest = [], n
    for d in reversed(inner):
        g = math.gcd(rest, d)
        dims.insert(0, g)
        rest //= g
    return (rest, *dims)


def _rate(**extra: Any) -> Callable[[Shape, float], Dict[str, Any]]:
    return lambda shape, rate: {"rate": rate, **extra}


def _noise(fn: Callable[[Shape], Shape]) -> Callable[[Shape, float], Dict[str, Any]]:
    return lambda shape, rate: {"rate": rate, "noise_shape": fn(shape)}


def _feature_rates(shape: Shape, rate: float) -> Dict[str, Any]:
    r = np.clip(rate * np.linspace(0.5, 1.5, shape[-1]), 0.0, 0.99)  # 0.5x..1.5x of rate per feature
    r.setflags(write=False)
    return {"rate": r}


def _concrete(shape: Shape, rate: float) -> Dict[str, Any]:
    return {"logit": math.log(rate) - math.log1p(-rate), "temperature": 0.1}


def _channels(s: Shape) -> Shape:
    return tuple(s[:2]) + (1,) * (len(s) - 2)  # (N, C, 1, ...)


def _flat(n: int) -> Shape:
    return (n,)


_nd, _ndb = _v.dropout_nd, _v.dropout_nd_backward

for _entry in (
    Variant("dropout", "standard inverted dropout: kept x / (1 - rate), dropped 0", "bernoulli",
            dropout, dropout_backward, _rate(), _flat, layer="Dropout", torch_name="dropout", keras_name="Dropout"),
    Variant("dropout-classic", "classic dropout (inverted=False): kept x unscaled", "bernoulli",
            dropout, dropout_backward, _rate(inverted=False), _flat, layer="Dropout"),
    Variant("spatial1d", "whole channels of (N, C, L)", "bernoulli", _nd, _ndb, _noise(_channels),
            lambda n: _layout(n, (32, 256)), layer="SpatialDropout1D", torch_name="dropout1d",
            keras_name="SpatialDropout1D"),
    Variant("spatial2d", "whole channels of (N, C, H, W)", "bernoulli", _nd, _ndb, _noise(_channels),
            lambda n: _layout(n, (32, 16, 16)), layer="SpatialDropout2D", torch_name="dropout2d",
            keras_name="SpatialDropout2D"),
    Variant("spatial3d", "whole channels of (N, C, D, H, W)", "bernoulli", _nd, _ndb, _noise(_channels),
            lambda n: _layout(n, (32, 4, 8, 8)), layer="SpatialDropout3D", torch_name="dropout3d",
            keras_name="SpatialDropout3D"),
    Variant("temporal", "one mask for every time step of (batch, time, features)", "bernoulli", _nd, _ndb,
            _noise(lambda s: (s[0], 1, s[2])), lambda n: _layout(n, (64, 256)), layer="TemporalDropout"),
    Variant("droppath", "stochastic depth: one value per sample of (N, tokens, width)", "bernoulli", _nd, _ndb,
            _noise(lambda s: (s[0],) + (1,) * (len(s) - 1)), lambda n: _layout(n, (64, 256)), layer="DropPath"),
    Variant("feature-rates", "a rate per feature of (batch, 1024)", "bernoulli", _nd, _ndb, _feature_rates,
            lambda n: _layout(n, (1024,)), layer="AdaptiveDropout"),
    Variant("gaussian", "x * (1 + sigma * eps), sigma = sqrt(rate / (1 - rate))", "gaussian",
            _v.gaussian_dropout, _v.gaussian_dropout_backward, _rate(), _flat, layer="GaussianDropout",
            torch_name="gaussian_dropout", keras_name="GaussianDropout"),
    Variant("gaussian-noise", "additive zero-mean Gaussian noise x + stddev * eps (Keras GaussianNoise)",
            "additive", _v.gaussian_noise, _v.gaussian_noise_backward,
            lambda shape, rate: {"stddev": rate}, _flat, layer="GaussianNoise", keras_name="GaussianNoise"),
    Variant("alpha", "alpha dropout (SELU): kept a*x + b, dropped a*alpha' + b", "alpha",
            _v.alpha_dropout, _v.alpha_dropout_backward, _rate(), _flat, layer="AlphaDropout",
            torch_name="alpha_dropout", keras_name="AlphaDropout"),
    Variant("feature-alpha", "alpha dropout of whole channels of (N, C, H, W)", "alpha",
            _v.feature_alpha_dropout, _v.feature_alpha_dropout_backward, _rate(),
            lambda n: _layout(n, (32, 16, 16)), layer="FeatureAlphaDropout", torch_name="feature_alpha_dropout"),
    Variant("dropblock2d", "DropBlock: 5x5 blocks of (N, C, H, W) maps (Ghiasi et al. 2018, timm)", "block",
            _b.drop_block, _b.drop_block_backward, lambda shape, rate: {"rate": rate, "block_size": 5},
            lambda n: _layout(n, (32, 16, 16)), layer="DropBlock2D"),
    Variant("concrete", "concrete dropout, temperature 0.1: x * (1 - z) / (1 - p)", "concrete",
            _v.concrete_dropout, _v.concrete_dropout_backward, _concrete, _flat,
            backward_needs_x=True, layer="ConcreteDropout"),
):
    register(_entry)
