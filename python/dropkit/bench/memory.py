"""Peak extra memory of forward and of forward+backward, per variant and backend.

The measurements run in a fresh child process (``python -m dropkit.bench.memory``), for three
reasons: the parent's heap is full of the sweep's freed buffers, glibc's malloc must be told to
map every large buffer on its own (``MALLOC_MMAP_THRESHOLD_``, set for the child only) so a freed
buffer leaves the resident set at once, and that setting would skew the parent's timings.

Two methods, both recorded for every row:

- ``tracemalloc``: NumPy registers each array buffer it allocates with :mod:`tracemalloc`, so
  ``get_traced_memory()`` after ``reset_peak()`` gives the exact peak of NumPy-side bytes (plus
  Python objects). It sees dropkit's outputs (allocated as NumPy arrays) but not memory that C++
  or PyTorch allocate themselves. Primary method for dropkit, dropkit-ref, numpy and seeds.
- ``rss-hwm``: the kernel's peak resident set size ``VmHWM``, reset before each measurement by
  writing ``5`` to ``/proc/self/clear_refs``, minus ``VmRSS`` at the start. It sees every
  allocator (page granularity). Primary method for torch and dropkit-torch (PyTorch allocates
  their tensors). Where the reset is not permitted, only the resident growth after the call is
  known (``rss-live``) and is reported as such.

"Peak" includes the outputs; "retained" is what is still held after the call besides the
outputs: the mask (or noise) a layer keeps for backward. dropkit keeps none.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .variants import TORCH_BACKENDS, Case, backend_builders, get_variant

__all__ = ["MemorySpec", "run_memory_section", "measure_rows", "main"]

_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"


def _status_bytes(field: str) -> Optional[int]:
    try:
        with open(_STATUS, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_hwm() -> bool:
    """Reset the peak RSS (VmHWM) to the current RSS; False where the kernel does not allow it."""
    try:
        with open(_CLEAR_REFS, "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


_libc: Any = None


def _malloc_trim() -> None:
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _nbytes(obj: Any) -> int:
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if hasattr(obj, "element_size") and hasattr(obj, "numel"):  # a torch tensor
        return int(obj.element_size() * obj.numel())
    return 0


def _measure_once(case: Case, builder: Any, phase: str) -> Dict[str, Any]:
    gc.collect()
    _malloc_trim()
    hwm_ok = _reset_hwm()
    rss0 = _status_bytes("VmRSS")
    tracemalloc.reset_peak()
    tm0 = tracemalloc.get_traced_memory()[0]

    kernels = builder(case)
    outs = [kernels.forward()]
    if phase == "forward+backward":
        outs.append(kernels.backward())

    tm_now, tm_peak = tracemalloc.get_traced_memory()
    hwm = _status_bytes("VmHWM")
    rss1 = _status_bytes("VmRSS")
    out_bytes = sum(_nbytes(o) for o in outs)
    del outs, kernels
    row: Dict[str, Any] = {
        "outputs_bytes": out_bytes,
        "peak_bytes_tracemalloc": tm_peak - tm0,
        "live_bytes_tracemalloc": tm_now - tm0,
        "peak_bytes_rss": (hwm - rss0) if (hwm_ok and hwm is not None and rss0 is not None) else None,
        "live_bytes_rss": (rss1 - rss0) if (rss1 is not None and rss0 is not None) else None,
        "rss_peak_available": bool(hwm_ok),
    }
    return row


@dataclass(frozen=True)
class MemorySpec:
    """What the memory section measures: every variant x backend, forward and forward+backward."""

    n: int
    dtype: str = "float32"
    rate: float = 0.5
    seed: int = 1234
    variants: Tuple[str, ...] = ("dropout",)
    backends: Optional[Tuple[str, ...]] = None  # None: every backend a variant has
    with_torch: bool = True


def measure_rows(spec: MemorySpec, progress: bool = True) -> Dict[str, Any]:
    """Measure every (variant, backend, phase) in this process. Meant for the child process."""
    from .sysinfo import import_torch  # noqa: PLC0415

    n, dtype, rate, seed, backends = spec.n, spec.dtype, spec.rate, spec.seed, spec.backends
    torch = import_torch(spec.with_torch)
    try:
        import dropkit  # noqa: PLC0415

        dropkit.set_num_threads(1)
    except Exception:
        pass
    if torch is not None:
        torch.set_num_threads(1)
    np.random.seed(seed % 2**32)
    rng = np.random.default_rng(seed)
    tracemalloc.start()
    rows: List[Dict[str, Any]] = []
    for vname in spec.variants:
        variant = get_variant(vname)
        shape = variant.shape(n)
        x = rng.standard_normal(shape, dtype=np.float64).astype(dtype)
        g = rng.standard_normal(shape, dtype=np.float64).astype(dtype)
        case = Case(x, g, rate, seed, preallocate=False, torch=torch)
        for bname, builder in backend_builders(variant, with_torch=torch is not None).items():
            if backends is not None and bname not in backends:
                continue
            if progress:
                print(f"[memory] {vname} {bname}", file=sys.stderr, flush=True)
            try:  # warm-up at full size: lazy initialisation must not count as the op's memory
                k = builder(case)
                k.forward()
                k.backward()
                del k
            except Exception as exc:
                rows.append({"variant": vname, "backend": bname, "error": f"{type(exc).__name__}: {exc}"})
                continue
            for phase in ("forward", "forward+backward"):
                r = _measure_once(case, builder, phase)
                # torch tensors (torch's and dropkit.torch's outputs) are invisible to tracemalloc
                primary = "rss-hwm" if bname in TORCH_BACKENDS else "tracemalloc"
                if primary == "rss-hwm" and r["peak_bytes_rss"] is None:
                    primary = "rss-live"
                peak = {
                    "tracemalloc": r["peak_bytes_tracemalloc"],
                    "rss-hwm": r["peak_bytes_rss"],
                    "rss-live": r["live_bytes_rss"],
                }[primary]
                live = r["live_bytes_tracemalloc"] if primary == "tracemalloc" else r["live_bytes_rss"]
                retained = None if live is None else max(0, live - r["outputs_bytes"])
                rows.append(
                    {
                        "variant": vname,
                        "backend": bname,
                        "phase": phase,
                        "method": primary,
                        "peak_bytes": peak,
                        "retained_bytes": retained,
                        "peak_bytes_per_element": None if peak is None else peak / n,
                        "retained_bytes_per_element": None if retained is None else retained / n,
                        **r,
                    }
                )
    tracemalloc.stop()
    return {
        "size": n,
        "dtype": dtype,
        "rate": rate,
        "threads": 1,
        "rss_peak_available": _reset_hwm(),
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "methods": {
            "tracemalloc": "tracemalloc peak after reset_peak(): NumPy-side buffers (NumPy registers "
            "every array allocation) and Python objects; primary for dropkit, dropkit-ref, numpy, seeds",
            "rss-hwm": "VmHWM - VmRSS(start) after resetting VmHWM via /proc/self/clear_refs: "
            "every allocator, page granularity; primary for torch and dropkit-torch",
            "rss-live": "VmRSS growth after the call (no peak: VmHWM could not be reset)",
        },
        "rows": rows,
    }


def run_memory_section(spec: MemorySpec, progress: bool = True, timeout: float = 600.0) -> Dict[str, Any]:
    """Run :func:`measure_rows` in a fresh child process and return its result (or an error)."""
    cmd = [sys.executable, "-m", "dropkit.bench.memory", json.dumps(asdict(spec))]
    if not progress:
        cmd.append("--quiet")
    env = dict(os.environ)
    # One mmap per large buffer, returned to the kernel on free; fixed, so no dynamic threshold.
    env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    env.setdefault("OMP_NUM_THREADS", "1")
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=None, env=env, timeout=timeout, check=False, text=True
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "rows": []}
    if proc.returncode != 0:
        return {"error": f"memory child exited with {proc.returncode}", "rows": []}
    try:
        result: Dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        return {"error": f"memory child printed no JSON: {exc}", "rows": []}
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The child process: ``python -m dropkit.bench.memory SPEC_JSON [--quiet]``; prints JSON."""
    ap = argparse.ArgumentParser(prog="python -m dropkit.bench.memory", description=__doc__.split("\n")[0])
    ap.add_argument("spec", help="MemorySpec fields as a JSON object")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    fields = json.loads(a.spec)
    for key in ("variants", "backends"):
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    result = measure_rows(MemorySpec(**fields), progress=not a.quiet)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
