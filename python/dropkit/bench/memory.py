"""Bytes kept for backward, per element: what a forward leaves alive for its backward.

- dropkit and the NumPy formulation: :mod:`tracemalloc`'s NumPy domain (NumPy registers every
  array buffer it allocates there) over one forward that allocates its output, minus that output.
- torch and dropkit.torch: ``torch.autograd.graph.saved_tensors_hooks`` over one forward whose
  input requires grad: the bytes of every distinct storage autograd saves, other than the input's
  and the output's (which the caller holds anyway).
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Dict, List, Optional

import numpy as np

from .contenders import TORCH_BACKENDS, VARIANTS, builders, make_case

__all__ = ["kept_bytes"]


def _storage(t: Any) -> tuple:
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()


def _torch_saved(torch: Any, kernels: Any, x: np.ndarray) -> int:
    saved: Dict[int, int] = {}

    def pack(t: Any) -> Any:
        ptr, nbytes = _storage(t)
        saved[ptr] = nbytes
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = kernels.forward()
    skip = {x.__array_interface__["data"][0], _storage(y)[0]}
    return sum(b for p, b in saved.items() if p not in skip)


def _numpy_kept(kernels: Any) -> int:
    tracemalloc.start()
    try:
        y = kernels.forward()
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)])
    finally:
        tracemalloc.stop()
    return max(0, sum(t.size for t in snap.traces) - int(y.nbytes))


def kept_bytes(variants: List[str], n: int, dtype: str, rate: float, seed: int, torch: Any = None,
               backends: Optional[List[str]] = None) -> Dict[str, Dict[str, Any]]:
    """``{variant: {backend: bytes per element kept for backward}}`` at ``n`` elements (``None``
    with the reason under ``"errors"`` where a backend failed)."""
    out: Dict[str, Dict[str, Any]] = {}
    rng = np.random.default_rng(seed)
    for vname in variants:
        v = VARIANTS[vname]
        x = rng.standard_normal(n).astype(dtype)
        case = make_case(v, x, x.copy(), rate, seed, torch, preallocate=False)
        row: Dict[str, Any] = {}
        for bname, build in builders(v, torch is not None).items():
            if backends is not None and bname not in backends:
                continue
            try:
                k = build(case)
                k.forward(), k.backward()  # lazy initialisation is not what a forward keeps
                kept = _torch_saved(torch, k, case.x) if bname in TORCH_BACKENDS else _numpy_kept(k)
                row[bname] = kept / n
                del k
            except Exception as exc:  # report, do not fail the run
                row[bname] = None
                row.setdefault("errors", {})[bname] = f"{type(exc).__name__}: {exc}"
        out[vname] = row
    return out
