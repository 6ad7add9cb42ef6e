"""The benchmark's registry of dropout variants: one :class:`Variant` entry per variant.

A variant names how each contender computes it. Every contender is a *builder*: a function
that takes a :class:`Case` (the shared input arrays and parameters) and returns
:class:`Kernels`, two zero-argument closures ``forward()`` and ``backward()`` that return their
output. ``backward`` may rely on state left by the last ``forward`` (the benchmark always runs
one ``forward`` before timing ``backward``), which is how mask-storing baselines work.

The contenders ("backends") a variant gives rise to:

============= ==================================================================================
dropkit       the C++ core: ``variant.dropkit(case, "core")``
dropkit-ref   dropkit's pure-NumPy reference: ``variant.dropkit(case, "numpy")``
numpy         the tuned pure-NumPy formulation (``variant.numpy``), the "speedup over NumPy" base
seed000-sN    the seeds' own classes, re-typed in :mod:`dropkit.bench.baselines` (``variant.seeds``)
torch         the PyTorch CPU equivalent (``variant.torch``), when torch imports
dropkit-torch :mod:`dropkit.torch` on the same tensors as ``torch`` (``variant.dropkit_torch``)
multiply      not a variant's: ``np.multiply(x, 2.0, out=y)``, the streaming limit, timed everywhere
============= ==================================================================================

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

import functools
import math
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
    "dropkit_torch_functional",
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
    dropkit_torch : callable ``(case) -> Kernels`` or None
        The :mod:`dropkit.torch` counterpart timed like ``torch`` (same tensors, autograd
        backward), or None when dropkit.torch has none.
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
    dropkit_torch: Optional[Builder] = None


VARIANTS: Dict[str, Variant] = {}

#: One line per backend, for ``--list``, the report and the JSON.
BACKEND_DESCRIPTIONS: Dict[str, str] = {
    "dropkit": "dropkit C++ core (backend='core'), out= preallocated",
    "dropkit-ref": "dropkit's pure-NumPy reference (backend='numpy'), out= preallocated",
    "numpy": "tuned pure NumPy: SFC64 raw 32-bit words >= round(rate*2^32), bool mask kept, in-place multiplies",
    "seed000-s1": "seed 000 slide 1 Dropout, as written (np.random.binomial int64 mask)",
    "seed000-s6": "seed 000 slide 6 InvertedDropout, as written (np.random.rand < keep_prob)",
    "seed000-s10": "seed 000 slide 10 SpatialDropout2D, as written (np.random.binomial (N, C, 1, 1) mask)",
    "seed000-s11": "seed 000 slide 11 GaussianDropout, as written (float64 np.random.normal noise kept)",
    "seed000-s14": "seed 000 slide 14 TemporalDropout, as written; backward (missing) is slide 10's formula",
    "torch": "PyTorch CPU: torch.nn.functional equivalent, autograd backward (input requires grad)",
    "dropkit-torch": "dropkit.torch functional (custom op, seed=, offset=0) on the torch backend's tensors, "
    "autograd backward (input requires grad)",
    "multiply": "np.multiply(x, 2.0, out=y): the streaming limit, timed in every cell",
}

#: The backends that need PyTorch (absent, with a stated reason, when it does not import).
TORCH_BACKENDS = ("torch", "dropkit-torch")

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
    """Every backend name some registered variant has, in table order (torch, dropkit-torch last)."""
    names: List[str] = ["dropkit", "dropkit-ref", "numpy"]
    for v in VARIANTS.values():
        names.extend(k for k in v.seeds if k not in names)
    return names + list(TORCH_BACKENDS)


def backend_builders(variant: Variant, *, with_torch: bool) -> Dict[str, Builder]:
    """The builders of every backend ``variant`` has, by backend name, in table order.

    ``with_torch`` (PyTorch imports) adds ``torch`` and ``dropkit-torch`` where the variant has them.
    """
    out: Dict[str, Builder] = {
        "dropkit": lambda case: variant.dropkit(case, "core"),
        "dropkit-ref": lambda case: variant.dropkit(case, "numpy"),
        "numpy": variant.numpy,
    }
    out.update(variant.seeds)
    if with_torch and variant.torch is not None:
        out["torch"] = variant.torch
    if with_torch and variant.dropkit_torch is not None:
        out["dropkit-torch"] = variant.dropkit_torch
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


def dropkit_torch_functional(name: str) -> Builder:
    """Builder for ``dropkit.torch.<name>(input, p, training=True, seed=case.seed, offset=0)``.

    Timed exactly as :func:`torch_functional` times PyTorch: the same arrays wrapped by
    ``torch.from_numpy`` (no copy), the input requires grad (so forward records the autograd node,
    which for dropkit.torch saves ``(seed, offset, p)`` only), and backward is
    ``torch.autograd.grad`` of the last forward's output, which regenerates the noise. The seed is
    an int, as the ``dropkit`` backend's is (``seed=None`` would draw from torch's generator each
    call). The core runs on ``dropkit.get_num_threads()`` threads.
    """

    def build(case: Case) -> Kernels:
        import importlib  # noqa: PLC0415

        torch = case.torch
        fn = getattr(importlib.import_module("dropkit.torch"), name)
        xr = torch.from_numpy(case.x).requires_grad_(True)
        gt = torch.from_numpy(case.grad)
        p, seed = case.rate, case.seed
        last: List[Any] = [None]

        def forward() -> Any:
            last[0] = fn(xr, p, True, seed=seed, offset=0)
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
        dropkit_torch=dropkit_torch_functional("dropout"),
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
        dropkit_torch=None,  # dropkit.torch has no inverted=False (neither has PyTorch)
    )
)


# ---------------------------------------------------------------------------------------------
# The variants of issue 7 (broadcast noise, rate arrays, continuous noise, affine fill)
# ---------------------------------------------------------------------------------------------


def _layout(n: int, inner: Tuple[int, ...]) -> Tuple[int, ...]:
    """``(batch,) + inner`` holding ``n`` elements; inner sizes shrink (gcd) when ``n`` is small."""
    dims: List[int] = []
    rest = n
    for d in reversed(inner):
        g = math.gcd(rest, d)
        dims.insert(0, g)
        rest //= g
    return (rest,) + tuple(dims)


def ncl_shape(n: int) -> Tuple[int, ...]:
    """(N, C, L) = (n / 8192, 32, 256) for spatial1d."""
    return _layout(n, (32, 256))


def nchw_shape(n: int) -> Tuple[int, ...]:
    """(N, C, H, W) = (n / 8192, 32, 16, 16), NCHW feature maps."""
    return _layout(n, (32, 16, 16))


def ncdhw_shape(n: int) -> Tuple[int, ...]:
    """(N, C, D, H, W) = (n / 8192, 32, 4, 8, 8)."""
    return _layout(n, (32, 4, 8, 8))


def btf_shape(n: int) -> Tuple[int, ...]:
    """(batch, time, features) = (n / 16384, 64, 256)."""
    return _layout(n, (64, 256))


def tokens_shape(n: int) -> Tuple[int, ...]:
    """(batch, tokens, width) = (n / 16384, 64, 256): a residual branch, for DropPath."""
    return _layout(n, (64, 256))


def features_shape(n: int) -> Tuple[int, ...]:
    """(batch, features) = (n / 1024, 1024): a dense layer's activations."""
    return _layout(n, (1024,))


def channel_noise(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """(N, C, 1, ..., 1): spatial (channels first) and feature-alpha noise."""
    return tuple(shape[:2]) + (1,) * (len(shape) - 2)


def time_noise(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """(batch, 1, features): temporal noise."""
    return (shape[0], 1, shape[2])


def sample_noise(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """(N, 1, ..., 1): DropPath noise."""
    return (shape[0],) + (1,) * (len(shape) - 1)


def feature_rates(case: Case) -> np.ndarray:
    """Per-feature rates around ``case.rate`` (from 0.5x to 1.5x of it, within [0, 0.99]).

    Cached (read-only): the rates are the layer's parameters, made once, not per call, so the
    memory section does not count them as state a backend keeps.
    """
    return _feature_rates(float(case.rate), int(case.x.shape[-1]))


@functools.lru_cache(maxsize=16)
def _feature_rates(rate: float, f: int) -> np.ndarray:
    r = np.clip(rate * np.linspace(0.5, 1.5, f), 0.0, 0.99)
    r.setflags(write=False)
    return r


def _dropkit_pair(fwd_name: str, bwd_name: str, args: Callable[[Case], Dict[str, Any]]) -> DropkitBuilder:
    """Builder for ``f(x, rate, *, seed, offset, out, backend, **args(case))`` pairs (rate from args)."""

    def build(case: Case, backend: str) -> Kernels:
        import dropkit  # noqa: PLC0415

        fwd, bwd = getattr(dropkit, fwd_name), getattr(dropkit, bwd_name)
        kw = args(case)
        y = np.empty_like(case.x) if case.preallocate else None
        gx = np.empty_like(case.grad) if case.preallocate else None
        x, g, seed = case.x, case.grad, case.seed
        return Kernels(lambda: fwd(x, seed=seed, offset=0, out=y, backend=backend, **kw),
                       lambda: bwd(g, seed=seed, offset=0, out=gx, backend=backend, **kw))

    return build


def _dropkit_noise(fwd_name: str, bwd_name: str, noise: Optional[Callable] = None) -> DropkitBuilder:
    def args(case: Case) -> Dict[str, Any]:
        kw: Dict[str, Any] = {"rate": case.rate}
        if noise is not None:
            kw["noise_shape"] = noise(case.x.shape)
        return kw

    return _dropkit_pair(fwd_name, bwd_name, args)


_CONCRETE_T = 0.1  # the seed's default temperature


def _dropkit_concrete(case: Case, backend: str) -> Kernels:
    import dropkit  # noqa: PLC0415

    logit = math.log(case.rate) - math.log1p(-case.rate)
    y = np.empty_like(case.x) if case.preallocate else None
    gx = np.empty_like(case.grad) if case.preallocate else None
    x, g, seed = case.x, case.grad, case.seed
    return Kernels(
        lambda: dropkit.concrete_dropout(x, logit, temperature=_CONCRETE_T, seed=seed, out=y, backend=backend),
        lambda: dropkit.concrete_dropout_backward(g, x, logit, temperature=_CONCRETE_T, seed=seed, out=gx,
                                                  backend=backend)[0],
    )


class _TunedNumpyBase:
    """Shared state of the tuned NumPy formulations: SFC64 raw words, buffers, dtype."""

    def __init__(self, case: Case) -> None:
        self.x, self.g = case.x, case.grad
        self.dt = case.x.dtype.type
        self.rate = case.rate
        self.bitgen = np.random.SFC64(case.seed)
        self.prealloc = case.preallocate
        self.y = np.empty_like(self.x) if self.prealloc else None
        self.gx = np.empty_like(self.g) if self.prealloc else None

    def words(self, n: int) -> np.ndarray:
        return self.bitgen.random_raw((n + 1) // 2).view(np.uint32)[:n]

    def keep(self, shape: Tuple[int, ...], threshold: Any) -> np.ndarray:
        return np.greater_equal(self.words(int(np.prod(shape))).reshape(shape), threshold)


class TunedNumpyBroadcast(_TunedNumpyBase):
    """Bernoulli noise at noise size, kept as a small multiplier (mask * scale) and broadcast."""

    def __init__(self, case: Case, noise: Callable[[Tuple[int, ...]], Tuple[int, ...]]) -> None:
        super().__init__(case)
        self.ns = noise(case.x.shape)
        self.t = np.uint32(min(round(case.rate * 2**32), 2**32 - 1))
        self.scale = self.dt(1.0 / (1.0 - case.rate))
        self.mult: Optional[np.ndarray] = None

    def forward(self) -> np.ndarray:
        self.mult = self.keep(self.ns, self.t) * self.scale  # noise-shaped, x's dtype
        return np.multiply(self.x, self.mult, out=self.y)

    def backward(self) -> np.ndarray:
        return np.multiply(self.g, self.mult, out=self.gx)


class TunedNumpyRates(_TunedNumpyBase):
    """Per-feature rates: one word per element against its column's integer threshold."""

    def __init__(self, case: Case) -> None:
        super().__init__(case)
        r = feature_rates(case)
        self.t = np.minimum(np.rint(r * 2**32), 2**32 - 1).astype(np.uint32)
        self.scale = (1.0 / (1.0 - r)).astype(self.x.dtype)
        self.mask: Optional[np.ndarray] = None

    def _apply(self, src: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
        res = np.multiply(src, self.mask, out=out)
        return np.multiply(res, self.scale, out=res)

    def forward(self) -> np.ndarray:
        self.mask = self.keep(self.x.shape, self.t)
        return self._apply(self.x, self.y)

    def backward(self) -> np.ndarray:
        return self._apply(self.g, self.gx)


class TunedNumpyGaussian(_TunedNumpyBase):
    """``x * (1 + s * eps)``: float32 normals from ``Generator(SFC64).standard_normal``, kept."""

    def __init__(self, case: Case) -> None:
        super().__init__(case)
        self.gen = np.random.Generator(self.bitgen)
        self.s = math.sqrt(case.rate / (1.0 - case.rate))
        self.m: Optional[np.ndarray] = None

    def forward(self) -> np.ndarray:
        m = self.gen.standard_normal(self.x.shape, dtype=np.float32)
        m *= np.float32(self.s)
        m += np.float32(1)
        self.m = m
        return np.multiply(self.x, m, out=self.y)

    def backward(self) -> np.ndarray:
        return np.multiply(self.g, self.m, out=self.gx)


class TunedNumpyAlpha(_TunedNumpyBase):
    """Alpha dropout: integer-threshold mask (noise-shaped for feature-alpha), affine, fill."""

    def __init__(self, case: Case, noise: Optional[Callable] = None) -> None:
        super().__init__(case)
        from ..reference._variants import alpha_constants  # noqa: PLC0415  (the same constants)

        a, b, fill = alpha_constants(case.rate)
        self.a, self.b, self.fill = self.dt(a), self.dt(b), self.dt(fill)
        self.ns = noise(case.x.shape) if noise is not None else case.x.shape
        self.t = np.uint32(min(round(case.rate * 2**32), 2**32 - 1))
        self.mask: Optional[np.ndarray] = None

    def forward(self) -> np.ndarray:
        self.mask = self.keep(self.ns, self.t)
        y = np.multiply(self.x, self.a, out=self.y)
        y += self.b
        np.copyto(y, self.fill, where=~np.broadcast_to(self.mask, y.shape))
        return y

    def backward(self) -> np.ndarray:
        gx = np.multiply(self.g, self.mask, out=self.gx)
        gx *= self.a
        return gx


class TunedNumpyConcrete(_TunedNumpyBase):
    """Concrete dropout in float32: uniforms, logistic noise, the multiplier kept for backward."""

    def __init__(self, case: Case) -> None:
        super().__init__(case)
        self.gen = np.random.Generator(self.bitgen)
        self.logit = np.float32(math.log(case.rate) - math.log1p(-case.rate))
        self.inv_t = np.float32(1.0 / _CONCRETE_T)
        self.scale = np.float32(1.0 / (1.0 - case.rate))
        self.m: Optional[np.ndarray] = None

    def forward(self) -> np.ndarray:
        u = self.gen.random(self.x.shape, dtype=np.float32)
        np.maximum(u, np.float32(2**-24), out=u)  # random() may return 0
        a = np.log(u)
        a -= np.log1p(-u)
        a += self.logit
        a *= self.inv_t
        np.clip(a, -64, 64, out=a)
        np.exp(a, out=a)
        a += np.float32(1)
        np.divide(self.scale, a, out=a)  # (1 - z) / (1 - p) = scale / (1 + e^a)
        self.m = a
        return np.multiply(self.x, a, out=self.y)

    def backward(self) -> np.ndarray:
        return np.multiply(self.g, self.m, out=self.gx)


def _tuned(cls: type, *args: Any) -> Builder:
    def build(case: Case) -> Kernels:
        impl = cls(case, *args)
        return Kernels(impl.forward, impl.backward)

    return build


def _seed_temporal(case: Case) -> Kernels:
    """Slide 14's TemporalDropout; it has no backward: slide 10's formula on its stored mask."""
    layer = baselines.TemporalDropout(drop_rate=case.rate)
    x, g = case.x, case.grad
    return Kernels(lambda: layer.forward(x, training=True),
                   lambda: g * layer.mask / (1 - layer.drop_rate))


def _torch_autograd(fn: Callable[[Any, Any, Case], Any]) -> Builder:
    """Builder for a PyTorch expression ``fn(torch, xr, case)`` and its autograd backward."""

    def build(case: Case) -> Kernels:
        torch = case.torch
        xr = torch.from_numpy(case.x).requires_grad_(True)
        gt = torch.from_numpy(case.grad)
        last: List[Any] = [None]

        def forward() -> Any:
            last[0] = fn(torch, xr, case)
            return last[0]

        def backward() -> Any:
            (gx,) = torch.autograd.grad(last[0], xr, gt, retain_graph=True)
            return gx

        return Kernels(forward, backward)

    return build


def _torch_temporal(torch: Any, xr: Any, case: Case) -> Any:
    # (batch, time, features) -> dropout1d over (batch, features, time): one value per feature
    return torch.nn.functional.dropout1d(xr.transpose(1, 2), case.rate, training=True).transpose(1, 2)


def _torch_drop_path(torch: Any, xr: Any, case: Case) -> Any:
    # timm's drop_path
    keep = 1.0 - case.rate
    r = xr.new_empty((xr.shape[0],) + (1,) * (xr.ndim - 1)).bernoulli_(keep)
    return xr * r.div_(keep)


def _torch_rates(torch: Any, xr: Any, case: Case) -> Any:
    r = torch.from_numpy(feature_rates(case).astype(case.x.dtype))
    return xr * (torch.rand_like(xr) >= r) / (1 - r)


def _torch_gaussian(torch: Any, xr: Any, case: Case) -> Any:
    return xr * (1 + math.sqrt(case.rate / (1 - case.rate)) * torch.randn_like(xr))


def _torch_concrete(torch: Any, xr: Any, case: Case) -> Any:
    logit = math.log(case.rate) - math.log1p(-case.rate)
    u = torch.rand_like(xr).clamp_(min=2**-24)
    z = torch.sigmoid((logit + torch.log(u) - torch.log1p(-u)) / _CONCRETE_T)
    return xr * (1 - z) / (1 - case.rate)


# Broadcast-noise variants (spatial, temporal, DropPath, feature-alpha): their tuned NumPy
# formulations keep a noise-sized multiplier, not a per-element mask (BROADCAST_NAMES lists them
# for the memory check).
_BROADCAST: List[Variant] = []


def register_broadcast_variants() -> None:
    """Register the broadcast-noise variants (spatial1d/2d/3d, temporal, droppath, feature-alpha)."""
    for v in _BROADCAST:
        if v.name not in VARIANTS:
            register(v)


for _name, _shape, _torch_fn, _layout_name in (("spatial1d", ncl_shape, "dropout1d", "(N, C, L)"),
                                               ("spatial2d", nchw_shape, "dropout2d", "(N, C, H, W)"),
                                               ("spatial3d", ncdhw_shape, "dropout3d", "(N, C, D, H, W)")):
    _BROADCAST.append(
        Variant(
            name=_name,
            summary=f"spatial dropout of {_layout_name} inputs: whole channels, noise (N, C, 1, ...)",
            dropkit=_dropkit_noise("dropout_nd", "dropout_nd_backward", channel_noise),
            numpy=_tuned(TunedNumpyBroadcast, channel_noise),
            seeds=({"seed000-s10": seed_layer(baselines.SpatialDropout2D, rate_arg="drop_rate")}
                   if _name == "spatial2d" else {}),
            torch=torch_functional(_torch_fn),
            dropkit_torch=dropkit_torch_functional(_torch_fn),
            shape=_shape,
        )
    )

_BROADCAST.append(
    Variant(
        name="temporal",
        summary="one mask for every time step: (batch, time, features), noise (batch, 1, features)",
        dropkit=_dropkit_noise("dropout_nd", "dropout_nd_backward", time_noise),
        numpy=_tuned(TunedNumpyBroadcast, time_noise),
        seeds={"seed000-s14": _seed_temporal},
        torch=_torch_autograd(_torch_temporal),
        shape=btf_shape,
    )
)

_BROADCAST.append(
    Variant(
        name="droppath",
        summary="stochastic depth (timm drop_path): one value per sample, noise (N, 1, 1)",
        dropkit=_dropkit_noise("dropout_nd", "dropout_nd_backward", sample_noise),
        numpy=_tuned(TunedNumpyBroadcast, sample_noise),
        seeds={},  # the seeds have no DropPath
        torch=_torch_autograd(_torch_drop_path),
        shape=tokens_shape,
    )
)

register(
    Variant(
        name="feature-rates",
        summary="a rate per feature (adaptive dropout): (batch, 1024), rates 0.5x..1.5x of --rate",
        dropkit=_dropkit_pair("dropout_nd", "dropout_nd_backward", lambda case: {"rate": feature_rates(case)}),
        numpy=_tuned(TunedNumpyRates),
        seeds={},  # slide 4 computes per-feature rates but never applies them (docs/seeds.md)
        torch=_torch_autograd(_torch_rates),
        shape=features_shape,
    )
)

register(
    Variant(
        name="gaussian",
        summary="Gaussian dropout: x * (1 + sigma * eps), sigma = sqrt(rate / (1 - rate))",
        dropkit=_dropkit_noise("gaussian_dropout", "gaussian_dropout_backward"),
        numpy=_tuned(TunedNumpyGaussian),
        seeds={"seed000-s11": seed_layer(baselines.GaussianDropout, rate_arg="drop_rate")},
        torch=_torch_autograd(_torch_gaussian),  # PyTorch has no Gaussian dropout
        dropkit_torch=dropkit_torch_functional("gaussian_dropout"),
    )
)

register(
    Variant(
        name="alpha",
        summary="alpha dropout (SELU): kept a*x + b, dropped a*alpha' + b",
        dropkit=_dropkit_noise("alpha_dropout", "alpha_dropout_backward"),
        numpy=_tuned(TunedNumpyAlpha),
        seeds={},  # the seeds have no alpha dropout
        torch=torch_functional("alpha_dropout"),
        dropkit_torch=dropkit_torch_functional("alpha_dropout"),
    )
)

_BROADCAST.append(
    Variant(
        name="feature-alpha",
        summary="feature-alpha dropout: alpha dropout of whole NCHW channels",
        dropkit=_dropkit_pair("feature_alpha_dropout", "feature_alpha_dropout_backward",
                              lambda case: {"rate": case.rate}),
        numpy=_tuned(TunedNumpyAlpha, channel_noise),
        seeds={},
        torch=torch_functional("feature_alpha_dropout"),
        dropkit_torch=dropkit_torch_functional("feature_alpha_dropout"),
        shape=nchw_shape,
    )
)

register(
    Variant(
        name="concrete",
        summary=f"concrete dropout (temperature {_CONCRETE_T}, p = --rate): x * (1 - z) / (1 - p)",
        dropkit=_dropkit_concrete,
        numpy=_tuned(TunedNumpyConcrete),
        seeds={},  # slide 7 has forward code only: no backward, nothing kept to build one
        torch=_torch_autograd(_torch_concrete),  # PyTorch has no concrete dropout
    )
)

register_broadcast_variants()
#: Variants whose noise is smaller than x (broadcast along some axes).
BROADCAST_NAMES = frozenset(v.name for v in _BROADCAST)
