"""TEMPORARY stand-in for ``dropkit._registry`` (the library's variant registry, being written on
main). It builds the same :class:`Variant` records from today's public functions, so that the
benchmark is written against the registry's interface. When ``dropkit._registry`` lands, the one
import in :mod:`dropkit.bench.contenders` changes to ``from dropkit._registry import VARIANTS``
and this file is deleted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

import dropkit


@dataclass(frozen=True)
class Variant:
    """One dropout variant, as ``dropkit._registry.Variant`` describes it."""

    name: str
    summary: str
    family: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    params: Callable[[Tuple[int, ...], float], Dict[str, Any]]
    shape: Callable[[int], Tuple[int, ...]]
    backward_needs_x: bool = False
    layer: Optional[str] = None
    torch_name: Optional[str] = None
    keras_name: Optional[str] = None


def _layout(n: int, inner: Tuple[int, ...]) -> Tuple[int, ...]:
    """``(batch,) + inner`` holding ``n`` elements; inner sizes shrink (gcd) when ``n`` is small."""
    dims, rest = [], n
    for d in reversed(inner):
        g = math.gcd(rest, d)
        dims.insert(0, g)
        rest //= g
    return (rest, *dims)


def _rate(**extra: Any) -> Callable[[Tuple[int, ...], float], Dict[str, Any]]:
    return lambda shape, rate: {"rate": rate, **extra}


def _noise(fn: Callable[[Tuple[int, ...]], Tuple[int, ...]]) -> Callable[[Tuple[int, ...], float], Dict[str, Any]]:
    return lambda shape, rate: {"rate": rate, "noise_shape": fn(shape)}


def _feature_rates(shape: Tuple[int, ...], rate: float) -> Dict[str, Any]:
    r = np.clip(rate * np.linspace(0.5, 1.5, shape[-1]), 0.0, 0.99)  # 0.5x..1.5x of rate per feature
    r.setflags(write=False)
    return {"rate": r}


def _concrete(shape: Tuple[int, ...], rate: float) -> Dict[str, Any]:
    return {"logit": math.log(rate) - math.log1p(-rate), "temperature": 0.1}


_channels = lambda s: tuple(s[:2]) + (1,) * (len(s) - 2)  # noqa: E731  (N, C, 1, ...)
_flat = lambda n: (n,)  # noqa: E731
_nd, _ndb = dropkit.dropout_nd, dropkit.dropout_nd_backward

VARIANTS: Dict[str, Variant] = {v.name: v for v in (
    Variant("dropout", "standard inverted dropout: kept x / (1 - rate), dropped 0", "bernoulli",
            dropkit.dropout, dropkit.dropout_backward, _rate(), _flat, layer="Dropout", torch_name="dropout"),
    Variant("dropout-classic", "classic dropout (inverted=False): kept x unscaled", "bernoulli",
            dropkit.dropout, dropkit.dropout_backward, _rate(inverted=False), _flat, layer="Dropout"),
    Variant("spatial1d", "whole channels of (N, C, L)", "bernoulli", _nd, _ndb, _noise(_channels),
            lambda n: _layout(n, (32, 256)), layer="SpatialDropout1D", torch_name="dropout1d"),
    Variant("spatial2d", "whole channels of (N, C, H, W)", "bernoulli", _nd, _ndb, _noise(_channels),
            lambda n: _layout(n, (32, 16, 16)), layer="SpatialDropout2D", torch_name="dropout2d"),
    Variant("spatial3d", "whole channels of (N, C, D, H, W)", "bernoulli", _nd, _ndb, _noise(_channels),
            lambda n: _layout(n, (32, 4, 8, 8)), layer="SpatialDropout3D", torch_name="dropout3d"),
    Variant("temporal", "one mask for every time step of (batch, time, features)", "bernoulli", _nd, _ndb,
            _noise(lambda s: (s[0], 1, s[2])), lambda n: _layout(n, (64, 256)), layer="TemporalDropout"),
    Variant("droppath", "stochastic depth: one value per sample of (N, tokens, width)", "bernoulli", _nd, _ndb,
            _noise(lambda s: (s[0],) + (1,) * (len(s) - 1)), lambda n: _layout(n, (64, 256)), layer="DropPath"),
    Variant("feature-rates", "a rate per feature of (batch, 1024)", "bernoulli", _nd, _ndb, _feature_rates,
            lambda n: _layout(n, (1024,)), layer="AdaptiveDropout"),
    Variant("gaussian", "x * (1 + sigma * eps), sigma = sqrt(rate / (1 - rate))", "gaussian",
            dropkit.gaussian_dropout, dropkit.gaussian_dropout_backward, _rate(), _flat,
            layer="GaussianDropout", torch_name="gaussian_dropout"),
    Variant("alpha", "alpha dropout (SELU): kept a*x + b, dropped a*alpha' + b", "alpha",
            dropkit.alpha_dropout, dropkit.alpha_dropout_backward, _rate(), _flat,
            layer="AlphaDropout", torch_name="alpha_dropout"),
    Variant("feature-alpha", "alpha dropout of whole channels of (N, C, H, W)", "alpha",
            dropkit.feature_alpha_dropout, dropkit.feature_alpha_dropout_backward, _rate(),
            lambda n: _layout(n, (32, 16, 16)), layer="FeatureAlphaDropout", torch_name="feature_alpha_dropout"),
    Variant("concrete", "concrete dropout, temperature 0.1: x * (1 - z) / (1 - p)", "concrete",
            dropkit.concrete_dropout, dropkit.concrete_dropout_backward, _concrete, _flat,
            backward_needs_x=True, layer="ConcreteDropout"),
)}
