"""The benchmark's registry of dropout variants: one :class:`Variant` entry per variant.

A variant names how each contender computes it. Every contender is a *builder*: a function
that takes a :class:`Case` (the shared input arrays and parameters) and returns
:class:`Kernels`, two zero-argument closures ``forward()`` and ``backward()`` that return their
output. ``backward`` may rely on state left by the last ``forward`` (the benchmark always runs
one ``forward`` before timing ``backward``), which is how mask-storing baselines work.

The contenders ("backends") a variant gives rise to:

========== ==================================================================================
dropkit     the C++ core: ``variant.dropkit(case, "core")``
dropkit-ref dropkit's pure-NumPy reference: ``variant.dropkit(case, "numpy")``
numpy       the tuned pure-NumPy formulation (``variant.numpy``), the "speedup over NumPy" base
seed000-sN  the seeds' own classes, re-typed in :mod:`dropkit.bench.baselines` (``variant.seeds``)
torch       the PyTorch CPU equivalent (``variant.torch``), when torch imports
multiply    not a variant's: ``np.multiply(x, 2.0, out=y)``, the streaming limit, timed everywhere
========== ==================================================================================

Adding a variant (spatial, gaussian, alpha, temporal...) is one :func:`register` call; the
sweep, the tables, the JSON, the plot and the memory section pick it up. For example, once
``dropkit`` has a spatial dropout::

    register(Variant(
        name="spatial2d",
        summary="channel-wise dropout of NCHW maps",
        shape=nchw_shape,
        dropkit=dropkit_function("spatial_dropout", "spatial_dropout_backward"),
        numpy=...,  # a tuned NumPy formulation
        seeds={"seed000-s10": seed_layer(baselines.SpatialDropout2D, rate_arg="drop_rate")},
        torch=torch_functional("dropout2d"),
    ))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from . import baselines

__all__ = [
    "Case",
    "Kernels",
    "Variant",
    "VARIANTS",
    "SPEEDUP_BASE",
    "BACKEND_DESCRIPTIONS",
    "STREAM",
    "known_backends",
    "register",
    "get_variant",
    "backend_builders",
    "flat_shape",
    "dropkit_function",
    "seed_layer",
    "torch_functional",
    "TunedNumpyBernoulli",
]


@dataclass(frozen=True)
class Case:
    """The inputs every contender of one benchmark cell shares.

    ``x`` and ``grad`` are the *same* arrays for every backend (torch wraps them without a
    copy). With ``preallocate`` (timing), builders write into output buffers they allocate once,
    as dropkit's ``out=`` allows; without it (memory section), they allocate like a user would.
    """

    x: np.ndarray
    grad: np.ndarray
    rate: float
    seed: int
    preallocate: bool = True
    torch: Any = None  # the torch module, when the torch backend is built


@dataclass(frozen=True)
class Kernels:
    """Zero-argument closures of one backend on one case. Both return their output."""

    forward: Callable[[], Any]
    backward: Callable[[], Any]


Builder = Callable[[Case], Kernels]
DropkitBuilder = Callable[[Case, str], Kernels]


def flat_shape(n: int) -> Tuple[int, ...]:
    """The default layout of ``n`` elements: one flat C-contiguous vector."""
    return (n,)


@dataclass(frozen=True)
class Variant:
    """One dropout variant and how each contender computes it.

    Parameters
    ----------
    name : str
        Short identifier used on the command line, in tables, JSON and plots.
    summary : str
        One line for ``--list`` and the report.
    dropkit : callable ``(case, backend) -> Kernels``
        dropkit's implementation; ``backend`` is ``"core"`` or ``"numpy"`` (the reference).
    numpy : callable ``(case) -> Kernels``
        The tuned pure-NumPy formulation; the base of the "speedup over NumPy" column.
    seeds : mapping of str to callable ``(case) -> Kernels``
        The seeds' own code for this variant, by backend name (``"seed000-s1"``); may be empty.
    torch : callable ``(case) -> Kernels`` or None
        The PyTorch CPU equivalent, or None when PyTorch has none.
    shape : callable ``(n) -> tuple``
        Array shape holding ``n`` elements (spatial variants want NCHW, say). Default: flat.
    """

    name: str
    summary: str
    dropkit: DropkitBuilder
    numpy: Builder
    seeds: Mapping[str, Builder] = field(default_factory=dict)
    torch: Optional[Builder] = None
    shape: Callable[[int], Tuple[int, ...]] = flat_shape


VARIANTS: Dict[str, Variant] = {}

#: One line per backend, for ``--list``, the report and the JSON.
BACKEND_DESCRIPTIONS: Dict[str, str] = {
    "dropkit": "dropkit C++ core (backend='core'), out= preallocated",
    "dropkit-ref": "dropkit's pure-NumPy reference (backend='numpy'), out= preallocated",
    "numpy": "tuned pure NumPy: SFC64 raw 32-bit words >= round(rate*2^32), bool mask kept, in-place multiplies",
    "seed000-s1": "seed 000 slide 1 Dropout, as written (np.random.binomial int64 mask)",
    "seed000-s6": "seed 000 slide 6 InvertedDropout, as written (np.random.rand < keep_prob)",
    "torch": "PyTorch CPU: torch.nn.functional equivalent, autograd backward (input requires grad)",
    "multiply": "np.multiply(x, 2.0, out=y): the streaming limit, timed in every cell",
}

#: The backend that "speedup over NumPy" divides by.
SPEEDUP_BASE = "numpy"
#: The streaming-limit pseudo-backend timed in every cell.
STREAM = "multiply"


def register(variant: Variant) -> Variant:
    """Add ``variant`` to :data:`VARIANTS` (its name must be new) and return it."""
    if variant.name in VARIANTS:
        raise ValueError(f"variant {variant.name!r} is already registered")
    VARIANTS[variant.name] = variant
    return variant


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


def known_backends() -> List[str]:
    """Every backend name some registered variant has, in table order (torch last)."""
    names: List[str] = ["dropkit", "dropkit-ref", "numpy"]
    for v in VARIANTS.values():
        names.extend(k for k in v.seeds if k not in names)
    return names + ["torch"]


def backend_builders(variant: Variant, *, with_torch: bool) -> Dict[str, Builder]:
    """The builders of every backend ``variant`` has, by backend name, in table order."""
    out: Dict[str, Builder] = {
        "dropkit": lambda case: variant.dropkit(case, "core"),
        "dropkit-ref": lambda case: variant.dropkit(case, "numpy"),
        "numpy": variant.numpy,
    }
    out.update(variant.seeds)
    if with_torch and variant.torch is not None:
        out["torch"] = variant.torch
    return out


# ---------------------------------------------------------------------------------------------
# Builder factories shared by variants
# ---------------------------------------------------------------------------------------------


def dropkit_function(forward_name: str, backward_name: str, **fixed: Any) -> DropkitBuilder:
    """Builder for a dropkit function pair ``f(x, rate, *, seed, offset, out, backend, **fixed)``."""

    def build(case: Case, backend: str) -> Kernels:
        import dropkit  # noqa: PLC0415

        fwd = getattr(dropkit, forward_name)
        bwd = getattr(dropkit, backward_name)
        y = np.empty_like(case.x) if case.preallocate else None
        gx = np.empty_like(case.grad) if case.preallocate else None
        x, g, rate, seed = case.x, case.grad, case.rate, case.seed

        def forward() -> Any:
            return fwd(x, rate, seed=seed, offset=0, out=y, backend=backend, **fixed)

        def backward() -> Any:
            return bwd(g, rate, seed=seed, offset=0, out=gx, backend=backend, **fixed)

        return Kernels(forward, backward)

    return build


def seed_layer(cls: type, *, rate_arg: str, keep_prob: bool = False, training_kw: bool = True) -> Builder:
    """Builder for a seed class: ``cls(**{rate_arg: rate})``, ``forward(x)``, ``backward(grad)``.

    ``keep_prob`` passes ``1 - rate`` (slide 6 takes a keep probability); ``training_kw`` passes
    ``training=True`` to ``forward`` (slide 1's ``forward`` takes no such argument).
    """

    def build(case: Case) -> Kernels:
        layer = cls(**{rate_arg: (1.0 - case.rate) if keep_prob else case.rate})
        x, g = case.x, case.grad
        if training_kw:
            return Kernels(lambda: layer.forward(x, training=True), lambda: layer.backward(g))
        return Kernels(lambda: layer.forward(x), lambda: layer.backward(g))

    return build


def torch_functional(name: str, **kwargs: Any) -> Builder:
    """Builder for ``torch.nn.functional.<name>(input, p, training=True)`` and its autograd backward.

    Works for ``dropout``, ``dropout1d/2d/3d``, ``alpha_dropout`` and ``feature_alpha_dropout``.
    The input requires grad, as an activation in training does, so forward saves what autograd
    keeps for backward; backward is ``torch.autograd.grad`` of the last forward's output.
    """

    def build(case: Case) -> Kernels:
        torch = case.torch
        fn = getattr(torch.nn.functional, name)
        xr = torch.from_numpy(case.x).requires_grad_(True)
        gt = torch.from_numpy(case.grad)
        p = case.rate
        last: List[Any] = [None]

        def forward() -> Any:
            last[0] = fn(xr, p, training=True, **kwargs)
            return last[0]

        def backward() -> Any:
            (gx,) = torch.autograd.grad(last[0], xr, gt, retain_graph=True)
            return gx

        return Kernels(forward, backward)

    return build


def _torch_classic(case: Case) -> Kernels:
    """PyTorch has no classic (non-inverted) dropout; this is what F.dropout does, minus the 1/(1-p)."""
    torch = case.torch
    xr = torch.from_numpy(case.x).requires_grad_(True)
    gt = torch.from_numpy(case.grad)
    keep = 1.0 - case.rate
    last: List[Any] = [None]

    def forward() -> Any:
        last[0] = xr * torch.empty_like(xr).bernoulli_(keep)
        return last[0]

    def backward() -> Any:
        (gx,) = torch.autograd.grad(last[0], xr, gt, retain_graph=True)
        return gx

    return Kernels(forward, backward)


class TunedNumpyBernoulli:
    """The fastest pure-NumPy dropout found here, used as the "speedup over NumPy" base.

    Random 32-bit words straight from ``SFC64.random_raw`` (the cheapest NumPy generator path,
    two words per draw), an integer threshold ``t = round(rate * 2**32)`` as in ``docs/rng.md``
    (so the keep probability is exact, not float-rounded), a one-byte-per-element bool mask
    kept for backward, and two in-place multiplies. On the reference machine this is about
    twice as fast as ``(rng.random(n, dtype=np.float32) >= rate) * x / (1 - rate)``.
    """

    def __init__(self, case: Case, *, inverted: bool) -> None:
        self.x = case.x.reshape(-1)
        self.g = case.grad.reshape(-1)
        self.shape = case.x.shape
        self.n = self.x.size
        self.bitgen = np.random.SFC64(case.seed)
        t = round(case.rate * 2**32)
        self.t = t
        self.threshold = np.uint32(min(t, 2**32 - 1))
        scale = 1.0 / (1.0 - case.rate) if (inverted and case.rate < 1.0) else 1.0
        self.scale = case.x.dtype.type(scale) if case.x.dtype.kind == "f" else scale
        self.prealloc = case.preallocate
        self.mask: Optional[np.ndarray] = np.empty(self.n, dtype=bool) if self.prealloc else None
        self.y = np.empty_like(self.x) if self.prealloc else None
        self.gx = np.empty_like(self.g) if self.prealloc else None

    def _new_mask(self) -> np.ndarray:
        mask = self.mask if self.prealloc else np.empty(self.n, dtype=bool)
        assert mask is not None
        if self.t >= 2**32:
            mask.fill(False)
        elif self.t == 0:
            mask.fill(True)
        else:
            words = self.bitgen.random_raw((self.n + 1) // 2).view(np.uint32)[: self.n]
            np.greater_equal(words, self.threshold, out=mask)
        return mask

    def _apply(self, src: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
        assert self.mask is not None
        res = np.multiply(src, self.mask, out=out)
        if self.scale != 1:
            np.multiply(res, self.scale, out=res)
        return res.reshape(self.shape)

    def forward(self) -> np.ndarray:
        self.mask = self._new_mask()
        return self._apply(self.x, self.y)

    def backward(self) -> np.ndarray:
        return self._apply(self.g, self.gx)


def _tuned_numpy(inverted: bool) -> Builder:
    def build(case: Case) -> Kernels:
        impl = TunedNumpyBernoulli(case, inverted=inverted)
        return Kernels(impl.forward, impl.backward)

    return build


# ---------------------------------------------------------------------------------------------
# The variants of today
# ---------------------------------------------------------------------------------------------

register(
    Variant(
        name="dropout",
        summary="standard inverted dropout (default): kept x / (1 - rate), dropped +0",
        dropkit=dropkit_function("dropout", "dropout_backward", inverted=True),
        numpy=_tuned_numpy(inverted=True),
        seeds={
            # seed 000 slide 1: np.random.binomial int64 mask; backward misses the scale (kept).
            "seed000-s1": seed_layer(baselines.Dropout, rate_arg="dropout_rate", training_kw=False),
            # seed 000 slide 6: float64 np.random.rand < keep_prob.
            "seed000-s6": seed_layer(baselines.InvertedDropout, rate_arg="keep_prob", keep_prob=True),
        },
        torch=torch_functional("dropout"),
    )
)

register(
    Variant(
        name="dropout-classic",
        summary="classic dropout (inverted=False): kept x unscaled, dropped +0",
        dropkit=dropkit_function("dropout", "dropout_backward", inverted=False),
        numpy=_tuned_numpy(inverted=False),
        seeds={},  # the seeds have no classic-dropout code (seed 001 describes it in prose only)
        torch=_torch_classic,
    )
)
