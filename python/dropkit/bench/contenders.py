"""Who is timed, per variant: dropkit, the tuned NumPy formulation, PyTorch, dropkit.torch.

dropkit's entries come from the library's variant registry (every variant it has); the tuned
NumPy and PyTorch formulations are the benchmark's own, by variant name (a variant without one
is timed for dropkit alone, against ``np.multiply``). Every contender is a pair of zero-argument
closures (:class:`Kernels`) over one :class:`Case`; ``backward`` may use what the last
``forward`` left (the mask a NumPy formulation keeps), so a forward always runs first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, NamedTuple, Optional

import numpy as np

from .._registry import VARIANTS

__all__ = ["VARIANTS", "BACKENDS", "TORCH_BACKENDS", "STREAM", "Case", "Kernels", "make_case", "builders"]

#: Every backend, in table order, with what is timed.
BACKENDS: Dict[str, str] = {
    "dropkit": "the variant registry's function on the C++ core (backend='core'), out= preallocated",
    "numpy": "tuned pure NumPy: SFC64 raw words against an integer threshold, mask or noise kept for backward",
    "torch": "PyTorch CPU: torch.nn.functional (or the usual expression), input requires grad, autograd backward",
    "dropkit-torch": "dropkit.torch on the same tensors as torch (its eager autograd.Function, seed=int), autograd backward",
    "multiply": "np.multiply(x, 2.0, out=y): reads and writes the same bytes, the memory reference",
}
TORCH_BACKENDS = ("torch", "dropkit-torch")
STREAM = "multiply"


@dataclass(frozen=True)
class Case:
    """The arrays (in the variant's layout) and parameters every contender of a cell shares."""

    x: np.ndarray
    grad: np.ndarray
    rate: float
    seed: int
    params: Dict[str, Any]
    torch: Any = None
    preallocate: bool = True  # outputs written into buffers made once (dropkit's out=)


class Kernels(NamedTuple):
    forward: Callable[[], Any]
    backward: Callable[[], Any]


def make_case(variant: Any, x: np.ndarray, g: np.ndarray, rate: float, seed: int, torch: Any = None,
              preallocate: bool = True) -> Case:
    shape = variant.shape(x.size)
    return Case(x.reshape(shape), g.reshape(shape), rate, seed, variant.params(shape, rate), torch, preallocate)


def _out(case: Case, a: np.ndarray) -> Optional[np.ndarray]:
    return np.empty_like(a) if case.preallocate else None


def dropkit_kernels(v: Any, case: Case, backend: str = "core") -> Kernels:
    x, g, p, s = case.x, case.grad, case.params, case.seed
    y, dx = _out(case, x), _out(case, g)
    if v.backward_needs_x:
        return Kernels(lambda: v.forward(x, **p, seed=s, out=y, backend=backend),
                       lambda: v.backward(g, x, **p, seed=s, out=dx, backend=backend)[0])
    return Kernels(lambda: v.forward(x, **p, seed=s, out=y, backend=backend),
                   lambda: v.backward(g, **p, seed=s, out=dx, backend=backend))


def _autograd(case: Case, fn: Callable[[Any], Any]) -> Kernels:
    """``fn(xr)`` on a tensor sharing ``case.x`` (requires grad); backward = ``autograd.grad``."""
    torch = case.torch
    xr, gt = torch.from_numpy(case.x).requires_grad_(True), torch.from_numpy(case.grad)
    last = [None]

    def forward() -> Any:
        last[0] = fn(xr)
        return last[0]

    return Kernels(forward, lambda: torch.autograd.grad(last[0], xr, gt, retain_graph=True)[0])


def dropkit_torch_kernels(v: Any, case: Case) -> Kernels:
    import dropkit.torch as dt  # noqa: PLC0415

    fn, p, s = getattr(dt, v.torch_name), case.rate, case.seed
    return _autograd(case, lambda xr: fn(xr, p, True, seed=s, offset=0))


# --- PyTorch formulations, by variant name ----------------------------------------------------------

def _torch_fn(name: str) -> Callable[[Any, Any, Case], Any]:
    return lambda torch, xr, c: getattr(torch.nn.functional, name)(xr, c.rate, training=True)


def _torch_rates(torch: Any, xr: Any, c: Case) -> Any:
    r = torch.from_numpy(np.asarray(c.params["rate"], dtype=c.x.dtype))
    return xr * (torch.rand_like(xr) >= r) / (1 - r)


def _torch_concrete(torch: Any, xr: Any, c: Case) -> Any:
    u = torch.rand_like(xr).clamp_(min=2**-24)
    z = torch.sigmoid((c.params["logit"] + torch.log(u) - torch.log1p(-u)) / c.params["temperature"])
    return xr * (1 - z) / (1 - c.rate)


def _torch_drop_path(torch: Any, xr: Any, c: Case) -> Any:  # timm's drop_path
    keep = 1.0 - c.rate
    return xr * xr.new_empty((xr.shape[0],) + (1,) * (xr.ndim - 1)).bernoulli_(keep).div_(keep)


def timm_drop_block_2d(torch: Any, x: Any, drop_prob: float, block_size: int, gamma_scale: float = 1.0) -> Any:
    """timm's ``drop_block_2d`` formula (``timm/layers/drop.py``, huggingface/pytorch-image-models;
    fast=False, with_noise=False, not in place, not batchwise), written with torch ops: the valid-centre
    clip mask, uniform noise against ``gamma``, ``-max_pool2d(-mask)``, ``numel / (sum + 1e-7)``."""
    F = torch.nn.functional
    _, _, h, w = x.shape
    k = min(block_size, w, h)
    gamma = gamma_scale * drop_prob * (w * h) / k ** 2 / ((w - block_size + 1) * (h - block_size + 1))
    hi = torch.arange(h).view(h, 1)
    wi = torch.arange(w).view(1, w)
    valid = ((hi >= k // 2) & (hi < h - (k - 1) // 2) & (wi >= k // 2) & (wi < w - (k - 1) // 2))
    valid = valid.view(1, 1, h, w).to(x.dtype)
    keep = ((2 - gamma - valid + torch.rand_like(x)) >= 1).to(x.dtype)
    keep = -F.max_pool2d(-keep, kernel_size=k, stride=1, padding=k // 2)
    scale = (keep.numel() / keep.to(torch.float32).sum().add(1e-7)).to(x.dtype)
    return x * keep * scale


TORCH: Dict[str, Callable[[Any, Any, Case], Any]] = {
    "dropblock2d": lambda torch, xr, c: timm_drop_block_2d(torch, xr, c.rate, c.params["block_size"]),
    "dropout": _torch_fn("dropout"),
    "dropout-classic": lambda torch, xr, c: xr * torch.empty_like(xr).bernoulli_(1.0 - c.rate),
    "spatial1d": _torch_fn("dropout1d"),
    "spatial2d": _torch_fn("dropout2d"),
    "spatial3d": _torch_fn("dropout3d"),
    "temporal": lambda torch, xr, c: torch.nn.functional.dropout1d(
        xr.transpose(1, 2), c.rate, training=True).transpose(1, 2),
    "droppath": _torch_drop_path,
    "feature-rates": _torch_rates,
    "gaussian": lambda torch, xr, c: xr * (1 + math.sqrt(c.rate / (1 - c.rate)) * torch.randn_like(xr)),
    "gaussian-noise": lambda torch, xr, c: xr + c.params["stddev"] * torch.randn_like(xr),
    "alpha": _torch_fn("alpha_dropout"),
    "feature-alpha": _torch_fn("feature_alpha_dropout"),
    "concrete": _torch_concrete,
}


# --- Tuned NumPy formulations, by variant name ---------------------------------------------------------
# Random 32-bit words straight from SFC64.random_raw (NumPy's cheapest generator path), compared
# with an integer threshold round(rate * 2^32) as in docs/rng.md; the mask (or noise) is kept for
# backward, which multiplies by it; multiplies in place into preallocated outputs.

def _words(bitgen: Any, shape: Any) -> np.ndarray:
    n = int(np.prod(shape))
    return bitgen.random_raw((n + 1) // 2).view(np.uint32)[:n].reshape(shape)


def _threshold(rate: Any) -> Any:
    return np.minimum(np.rint(np.asarray(rate, dtype=np.float64) * 2**32), 2**32 - 1).astype(np.uint32)


def _kept_multiplier(c: Case, make: Callable[[], np.ndarray]) -> Kernels:
    """forward: ``m = make()``, kept, and ``x * m``; backward: ``grad * m``."""
    y, dx, st = _out(c, c.x), _out(c, c.grad), {}

    def forward() -> np.ndarray:
        st["m"] = make()
        return np.multiply(c.x, st["m"], out=y)

    return Kernels(forward, lambda: np.multiply(c.grad, st["m"], out=dx))


def _numpy_bernoulli(c: Case) -> Kernels:
    """A one-byte mask per element, kept (standard dropout, rate arrays); a multiplier at noise size
    for broadcast noise (spatial, temporal, DropPath)."""
    bg, x, rate, ns = np.random.SFC64(c.seed), c.x, c.params["rate"], c.params.get("noise_shape")
    t = _threshold(rate)
    scale = (1.0 / (1.0 - np.asarray(rate))).astype(x.dtype) if c.params.get("inverted", True) else None
    if ns is not None:
        return _kept_multiplier(c, lambda: np.greater_equal(_words(bg, ns), t) * x.dtype.type(scale))
    y, dx = _out(c, x), _out(c, c.grad)
    st = {"mask": np.empty(x.shape, bool) if c.preallocate else None}

    def apply(src: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
        res = np.multiply(src, st["mask"], out=out)
        return res if scale is None else np.multiply(res, scale, out=res)

    def forward() -> np.ndarray:
        st["mask"] = np.greater_equal(_words(bg, x.shape), t, out=st["mask"] if c.preallocate else None)
        return apply(x, y)

    return Kernels(forward, lambda: apply(c.grad, dx))


def _numpy_gaussian(c: Case) -> Kernels:
    gen, s = np.random.Generator(np.random.SFC64(c.seed)), np.float32(math.sqrt(c.rate / (1.0 - c.rate)))

    def make() -> np.ndarray:
        m = gen.standard_normal(c.x.shape, dtype=np.float32)
        m *= s
        m += np.float32(1)
        return m

    return _kept_multiplier(c, make)


def _numpy_gaussian_noise(c: Case) -> Kernels:
    """``x + stddev * N(0, 1)``; the backward is the identity (a copy into the output buffer)."""
    gen, s, y, dx = np.random.Generator(np.random.SFC64(c.seed)), np.float32(c.params["stddev"]), _out(c, c.x), \
        _out(c, c.grad)

    def forward() -> np.ndarray:
        n = gen.standard_normal(c.x.shape, dtype=np.float32)
        n *= s
        return np.add(c.x, n, out=y)

    def backward() -> np.ndarray:
        if dx is None:
            return c.grad.copy()
        np.copyto(dx, c.grad)
        return dx

    return Kernels(forward, backward)


def _numpy_alpha(c: Case, channels: bool) -> Kernels:
    from .._params import alpha_constants  # noqa: PLC0415  (the same constants)

    bg, x, y, dx = np.random.SFC64(c.seed), c.x, _out(c, c.x), _out(c, c.grad)
    a, b, fill = (x.dtype.type(v) for v in alpha_constants(c.rate))
    ns, t, st = (x.shape[:2] + (1,) * (x.ndim - 2)) if channels else x.shape, _threshold(c.rate), {}

    def forward() -> np.ndarray:
        st["mask"] = np.greater_equal(_words(bg, ns), t)
        out = np.multiply(x, a, out=y)
        out += b
        np.copyto(out, fill, where=~np.broadcast_to(st["mask"], out.shape))
        return out

    def backward() -> np.ndarray:
        out = np.multiply(c.grad, st["mask"], out=dx)
        out *= a
        return out

    return Kernels(forward, backward)


def _numpy_concrete(c: Case) -> Kernels:
    gen = np.random.Generator(np.random.SFC64(c.seed))
    logit, inv_t = np.float32(c.params["logit"]), np.float32(1.0 / c.params["temperature"])
    scale = np.float32(1.0 / (1.0 - c.rate))

    def make() -> np.ndarray:
        u = gen.random(c.x.shape, dtype=np.float32)
        np.maximum(u, np.float32(2**-24), out=u)  # random() may return 0
        a = np.log(u)
        a -= np.log1p(-u)
        a += logit
        a *= inv_t
        np.clip(a, -64, 64, out=a)
        np.exp(a, out=a)
        a += np.float32(1)
        return np.divide(scale, a, out=a)  # (1 - z) / (1 - p) = scale / (1 + e^a)

    return _kept_multiplier(c, make)


def _numpy_dropblock(c: Case) -> Kernels:
    """timm's DropBlock in NumPy: uniform seeds below ``gamma`` at the valid centres, each grown to a
    ``k x k`` block by a separable OR of shifted copies, kept values scaled by ``numel / kept``."""
    gen, x = np.random.Generator(np.random.SFC64(c.seed)), c.x
    h, w = x.shape[-2:]
    k = min(c.params["block_size"], h, w)
    gamma = c.rate * (h * w) / k ** 2 / ((w - k + 1) * (h - k + 1))
    lo, hi = k // 2, (k - 1) - k // 2  # a seed at i drops i - lo .. i + hi (timm's max_pool for odd k)

    def grow(a: np.ndarray, axis: int) -> np.ndarray:
        out = a.copy()
        n = a.shape[axis]
        for d in range(-hi, lo + 1):  # out[j] |= a[j + d]
            if d == 0:
                continue
            src = [slice(None)] * a.ndim
            dst = [slice(None)] * a.ndim
            src[axis], dst[axis] = (slice(d, n), slice(0, n - d)) if d > 0 else (slice(0, n + d), slice(-d, n))
            out[tuple(dst)] |= a[tuple(src)]
        return out

    def make() -> np.ndarray:
        seeds = np.zeros(x.shape, bool)
        seeds[..., lo:h - hi, lo:w - hi] = gen.random(x.shape[:-2] + (h - k + 1, w - k + 1), dtype=np.float32) < gamma
        keep = ~grow(grow(seeds, -2), -1)
        kept = int(np.count_nonzero(keep))
        return keep * x.dtype.type(keep.size / kept if kept else 0.0)

    return _kept_multiplier(c, make)


NUMPY: Dict[str, Callable[[Case], Kernels]] = {
    "dropblock2d": _numpy_dropblock,
    **{k: _numpy_bernoulli for k in ("dropout", "dropout-classic", "spatial1d", "spatial2d", "spatial3d",
                                     "temporal", "droppath", "feature-rates")},
    "gaussian": _numpy_gaussian,
    "gaussian-noise": _numpy_gaussian_noise,
    "alpha": lambda c: _numpy_alpha(c, channels=False),
    "feature-alpha": lambda c: _numpy_alpha(c, channels=True),
    "concrete": _numpy_concrete,
}


def builders(v: Any, with_torch: bool) -> Dict[str, Callable[[Case], Kernels]]:
    """The backends ``v`` has (dropkit always; numpy, torch, dropkit-torch where they exist)."""
    out: Dict[str, Callable[[Case], Kernels]] = {"dropkit": lambda c: dropkit_kernels(v, c)}
    if v.name in NUMPY:
        out["numpy"] = NUMPY[v.name]
    if with_torch and v.name in TORCH:
        fn = TORCH[v.name]
        out["torch"] = lambda c: _autograd(c, lambda xr: fn(c.torch, xr, c))
    if with_torch and v.torch_name is not None:
        out["dropkit-torch"] = lambda c: dropkit_torch_kernels(v, c)
    return out
