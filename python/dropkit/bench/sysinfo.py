"""What the benchmark ran on: CPU, SIMD, threads and library versions (all recorded in the JSON)."""

from __future__ import annotations

import os
import platform
import sys
import warnings
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

__all__ = [
    "cpu_info",
    "usable_cpus",
    "import_torch",
    "import_pyplot",
    "library_versions",
    "dropkit_info",
    "machine_info",
    "load_info",
    "busy_fraction",
    "OthersCpu",
]

# Flags worth a glance in the printed header; the JSON keeps the full list.
_SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq")


def cpu_info() -> Dict[str, Any]:
    """CPU model name and flags from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    model: Optional[str] = None
    flags: List[str] = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = value.split()
                if model is not None and flags:
                    break
    except OSError:
        pass
    return {
        "model": model or platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "flags": flags,
        "simd_flags": [f for f in _SIMD_FLAGS if f in flags],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
    }


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), which is what "all threads" means."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def import_torch(enabled: bool = True) -> Any:
    """Return the ``torch`` module, or ``None`` when disabled or not importable. Never required."""
    if not enabled:
        return None
    try:
        with warnings.catch_warnings():
            # An optional import must not turn a torch-side warning into a failed benchmark.
            warnings.simplefilter("ignore")
            import torch  # noqa: PLC0415
            import torch.nn.functional  # noqa: F401, PLC0415
    except Exception:  # ImportError, or a broken install: either way, no torch column
        return None
    return torch


def import_pyplot() -> Any:
    """Return ``matplotlib.pyplot`` on the Agg backend, or ``None`` when matplotlib is missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import matplotlib  # noqa: PLC0415

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt  # noqa: PLC0415
    except Exception:
        return None
    return plt


def _version_of(module_name: str) -> Optional[str]:
    """The version of an imported module, None when this run did not import (use) it."""
    mod = sys.modules.get(module_name)
    return None if mod is None else str(getattr(mod, "__version__", None))


def library_versions() -> Dict[str, Optional[str]]:
    """Versions of Python and of every library this run imported (timed or used)."""
    import dropkit  # noqa: PLC0415

    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "dropkit": str(getattr(dropkit, "__version__", None)),
        "torch": _version_of("torch"),  # None: not installed, or --no-torch
        "matplotlib": _version_of("matplotlib"),  # None: not installed, or not (yet) used
    }


def dropkit_info() -> Dict[str, Any]:
    """dropkit's stream version, SIMD target(s) and default thread count, as far as it reports them."""
    import dropkit  # noqa: PLC0415

    info: Dict[str, Any] = {
        "version": str(getattr(dropkit, "__version__", None)),
        "stream_version": getattr(dropkit, "STREAM_VERSION", None),
    }
    for key, fname in (
        ("simd_target", "simd_target"),
        ("available_simd_targets", "available_simd_targets"),
        ("default_threads", "get_num_threads"),
    ):
        try:
            value = getattr(dropkit, fname)()
            info[key] = list(value) if isinstance(value, (list, tuple)) else value
        except Exception as exc:  # core not built: say so instead of failing the run
            info[key] = None
            info.setdefault("errors", {})[key] = f"{type(exc).__name__}: {exc}"
    return info


class OthersCpu:
    """Share of the machine's CPU time that *other* processes used between :meth:`start` and
    :meth:`share`: all CPUs' busy time (``/proc/stat``) minus this process's own CPU time (every
    thread, OpenMP and PyTorch pools included), over all CPUs' time. On a shared machine this says
    how much a measurement was disturbed. None where ``/proc/stat`` is missing."""

    def __init__(self) -> None:
        try:
            self._hz = float(os.sysconf("SC_CLK_TCK"))
        except (AttributeError, ValueError, OSError):
            self._hz = 100.0
        self._a: Optional[Tuple[float, float, float]] = None

    @staticmethod
    def _stat() -> Optional[List[int]]:
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                return [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None

    def _read(self) -> Optional[Tuple[float, float, float]]:
        st = self._stat()
        if st is None or len(st) < 5:
            return None
        t = os.times()
        idle = st[3] + st[4]
        return float(sum(st)), float(sum(st) - idle), (t.user + t.system) * self._hz

    def start(self) -> "OthersCpu":
        self._a = self._read()
        return self

    def share(self) -> Optional[float]:
        b = self._read()
        if self._a is None or b is None:
            return None
        total, busy, own = (y - x for x, y in zip(self._a, b))
        if total <= 0:
            return None
        return min(1.0, max(0.0, (busy - own) / total))


def busy_fraction(interval: float = 0.3) -> Optional[float]:
    """Fraction of all CPUs busy with other processes over ``interval`` seconds (this one sleeps):
    the load a shared machine is under right now (None where ``/proc/stat`` is missing)."""
    import time  # noqa: PLC0415

    probe = OthersCpu().start()
    time.sleep(interval)
    return probe.share()


def load_info() -> Dict[str, Any]:
    """Load average and the CPU share other processes used just now."""
    try:
        la: Optional[List[float]] = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        la = None
    return {"load_average": la, "busy_fraction": busy_fraction()}


def machine_info() -> Dict[str, Any]:
    """CPU, OS and the environment variables that change threading."""
    env_keys = ("OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {
        "cpu": cpu_info(),
        "platform": platform.platform(),
        "env": {k: os.environ[k] for k in env_keys if k in os.environ},
    }
