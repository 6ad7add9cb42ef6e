"""What the benchmark ran on: CPU, SIMD, threads, load and library versions (all in the JSON)."""

from __future__ import annotations

import os
import platform
import sys
import time
import warnings
from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = ["cpu_info", "usable_cpus", "import_torch", "import_pyplot", "library_versions", "dropkit_info",
           "machine_info", "load_info", "OthersCpu"]


def cpu_info() -> Dict[str, Any]:
    """Model name, family/model and flags of the first CPU in ``/proc/cpuinfo`` (Linux)."""
    info: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in iter(fh.readline, "\n"):  # the first processor's block
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = (info.get("flags") or info.get("Features") or "").split()
    return {"model": info.get("model name") or platform.processor() or platform.machine(),
            "family": info.get("cpu family"), "model_number": info.get("model"), "machine": platform.machine(),
            "simd_flags": [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl") if f in flags],
            "logical_cpus": os.cpu_count(), "usable_cpus": usable_cpus()}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), which is what "all threads" means."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _optional(name: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an optional import must not fail the benchmark
            if name == "matplotlib":
                import matplotlib  # noqa: PLC0415

                matplotlib.use("Agg")
                import matplotlib.pyplot as plt  # noqa: PLC0415

                return plt
            import torch  # noqa: PLC0415
            import torch.nn.functional  # noqa: F401, PLC0415

            return torch
    except Exception:  # not installed, or a broken install: either way, go without
        return None


def import_torch(enabled: bool = True) -> Any:
    """The ``torch`` module, or ``None`` when disabled or not importable. Never required."""
    return _optional("torch") if enabled else None


def import_pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or ``None`` when matplotlib is missing."""
    return _optional("matplotlib")


def library_versions() -> Dict[str, Optional[str]]:
    """Versions of Python and of every library this run imported (``None``: not used)."""
    mods = {k: sys.modules.get(k) for k in ("dropkit", "torch", "matplotlib")}
    return {"python": platform.python_version(), "numpy": np.__version__,
            **{k: None if m is None else str(getattr(m, "__version__", None)) for k, m in mods.items()}}


def dropkit_info() -> Dict[str, Any]:
    """dropkit's version, stream version, SIMD target(s) and default thread count."""
    import dropkit  # noqa: PLC0415

    return {"version": str(dropkit.__version__), "stream_version": dropkit.STREAM_VERSION,
            "simd_target": dropkit.simd_target(), "available_simd_targets": list(dropkit.available_simd_targets()),
            "default_threads": dropkit.get_num_threads()}


class OthersCpu:
    """Share of the machine's CPU time that *other* processes used between :meth:`start` and
    :meth:`share`: all CPUs' busy time (``/proc/stat``) minus this process's own, over all CPUs'
    time; None where ``/proc/stat`` is missing."""

    _a: Optional[Tuple[float, float, float]] = None

    @staticmethod
    def _read() -> Optional[Tuple[float, float, float]]:
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                st = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        t = os.times()
        return float(sum(st)), float(sum(st) - st[3] - st[4]), (t.user + t.system) * os.sysconf("SC_CLK_TCK")

    def start(self) -> "OthersCpu":
        self._a = self._read()
        return self

    def share(self) -> Optional[float]:
        b = self._read()
        if self._a is None or b is None or b[0] <= self._a[0]:
            return None
        total, busy, own = (y - x for x, y in zip(self._a, b))
        return min(1.0, max(0.0, (busy - own) / total))


def load_info(interval: float = 0.2) -> Dict[str, Any]:
    """Load average, and the CPU share other processes used over ``interval`` seconds just now."""
    probe = OthersCpu().start()
    time.sleep(interval)
    return {"load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "busy_fraction": probe.share()}


def machine_info() -> Dict[str, Any]:
    """CPU, OS and the environment variables that change threading or dropkit's choices."""
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "DROPKIT_SIMD", "DROPKIT_BACKEND")
    return {"cpu": cpu_info(), "platform": platform.platform(), "env": {k: os.environ[k] for k in keys if k in os.environ}}
