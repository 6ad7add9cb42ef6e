"""How a validated call reaches its kernel: which kernel set runs it (the C++ core or the NumPy
reference, by backend), the buffers it reads and writes, and the mode logic of flat Bernoulli
dropout that :mod:`dropkit._api` and :mod:`dropkit.variants` share.

Nothing here validates user input: the public functions have done that.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable, Optional, Tuple

import numpy as np

from . import _core, _params, _runtime


def core_backend(backend: Any) -> bool:
    """True when the call runs on the C++ core (no validation: a bad name takes the general path)."""
    return _runtime.current_backend == "core" if backend is None else backend == "core"


def kernels(backend: Optional[str]) -> ModuleType:
    """The flat kernels (``bernoulli_apply``, ``bernoulli_mask``) of the call's backend."""
    if _runtime.backend_name(backend) == "core":
        return _core
    from .reference import _kernels as twin  # the "numpy" backend

    return twin


def kernel(name: str, backend: Optional[str], twin: str = "_variants") -> Callable[..., Any]:
    """The kernel ``name`` of the call's backend: ``dropkit._core``'s, or its NumPy twin in
    ``dropkit.reference.<twin>`` (the "numpy" backend)."""
    if _runtime.backend_name(backend) == "core":
        return getattr(_core, name)
    return getattr(importlib.import_module(f"dropkit.reference.{twin}"), name)


def run(name: str, backend: Optional[str], *args: Any) -> Any:
    """Call kernel ``name`` with ``args`` plus the process-wide thread count and SIMD target."""
    return kernel(name, backend)(*args, _runtime.current_threads, _runtime.current_simd)


def identity(x: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
    """``x`` itself, or ``out`` holding a copy of it."""
    if out is None:
        return x
    if out is not x:
        np.copyto(out, x)
    return out


def buffers(a: np.ndarray, out: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """(source the kernel reads, destination it writes): C-contiguous and aligned.

    A non-contiguous or misaligned ``a`` is copied first (as NumPy's ufuncs buffer such operands;
    ``out`` itself must be aligned); an ``out`` that overlaps ``a`` without being the very same
    buffer gets a copied source (in place on the same buffer is safe element by element).
    """
    src = a if a.flags.c_contiguous else a.copy(order="C")
    if not src.flags.aligned:
        src = src.copy()
    if out is None:
        return src, np.empty(a.shape, dtype=a.dtype)
    if out is not src and np.may_share_memory(src, out) and src.ctypes.data != out.ctypes.data:
        src = src.copy()
    return src, out


def apply_flat(x: np.ndarray, t: int, scale: float, seed: int, offset: int, out: Optional[np.ndarray],
               kern: ModuleType) -> np.ndarray:
    """``keep ? x * s : +0`` with ``keep = u >= t`` at positions ``offset + i`` (docs/rng.md §4-5).

    Every non-identity case of flat dropout goes here, classic evaluation included (``t = 0``:
    all kept, no random bits), so all modes compute the same way: one IEEE multiplication in the
    compute type, no floating-point warnings (a signalling NaN is quieted silently, in every mode).
    """
    src, y = buffers(x, out)
    if y.size:  # (an empty array touches no position: not even offset 2**64 reaches a kernel)
        # Positional: pybind11 parses keywords more slowly, which shows on small arrays.
        kern.bernoulli_apply(src.reshape(-1), y.reshape(-1), t, scale, seed, offset, _runtime.current_threads,
                             _runtime.current_simd)
    return y


def bernoulli_flat(a: np.ndarray, r: float, training: bool, inverted: bool, seed: int, offset: int,
                   out: Optional[np.ndarray], kern: ModuleType) -> np.ndarray:
    """Flat dropout of validated arguments in every mode (docs/rng.md §5); a backward is training."""
    if r == 0.0:  # the identity in every mode
        return identity(a, out)
    if not training:
        if inverted:
            return identity(a, out)
        if r == 1.0:  # everything dropped, as in training: +0.0, never 0 * inf = NaN
            return apply_flat(a, _params.threshold(r), 0.0, seed, offset, out, kern)
        return apply_flat(a, 0, 1.0 - r, seed, offset, out, kern)  # t = 0: all kept, times (1 - rate)
    scale = _params.inverted_scale(r) if inverted else (0.0 if r == 1.0 else 1.0)
    return apply_flat(a, _params.threshold(r), scale, seed, offset, out, kern)
