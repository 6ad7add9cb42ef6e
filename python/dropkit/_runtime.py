"""Process-wide settings: thread count, SIMD target, backend. The C++ kernels hold no state;
these values are passed to every call."""
from __future__ import annotations

import os
import threading

from . import _core, _validate

SIMD_TARGETS = ("scalar", "avx2", "avx512")
BACKENDS = ("core", "numpy")

_lock = threading.Lock()
_threads: int = _core.default_threads()


def _initial_simd() -> str:
    want = os.environ.get("DROPKIT_SIMD", "").strip().lower()
    if not want:
        return _core.simd_best()
    if want not in SIMD_TARGETS:
        raise ValueError(f"DROPKIT_SIMD must be one of {', '.join(SIMD_TARGETS)}, got {want!r}")
    if not _core.simd_available(want):
        raise ValueError(f"DROPKIT_SIMD={want!r} is not available on this CPU or build "
                         f"(available: {', '.join(available_simd_targets())})")
    return want


def available_simd_targets() -> list[str]:
    """The SIMD targets this build and CPU can run, narrowest first (``"scalar"`` always).

    Returns
    -------
    list of str
        A sublist of ``["scalar", "avx2", "avx512"]``.
    """
    return [t for t in SIMD_TARGETS if _core.simd_available(t)]


_simd: str = _initial_simd()


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads dropkit's kernels use.

    Parameters
    ----------
    n : int
        At least 1. Arrays smaller than ``dropkit._core.PARALLEL_CUTOFF`` elements always run on
        one thread. The result never depends on the thread count.

    Raises
    ------
    ValueError
        If ``n < 1``.
    TypeError
        If ``n`` is not an integer.
    """
    global _threads
    n = _validate.threads(n)
    with _lock:
        _threads = n


def get_num_threads() -> int:
    """The number of threads dropkit's kernels use (default: ``OMP_NUM_THREADS``, else the cores).

    Returns
    -------
    int
    """
    return _threads


def simd_target() -> str:
    """The SIMD target in use: ``"avx512"``, ``"avx2"`` or ``"scalar"``.

    The widest the CPU supports, unless ``DROPKIT_SIMD`` (read at import) or
    :func:`set_simd_target` chose another. Every target gives the same bits.

    Returns
    -------
    str
    """
    return _simd


def set_simd_target(name: str) -> None:
    """Choose the SIMD target for later calls (mainly for tests and benchmarks).

    Parameters
    ----------
    name : {"scalar", "avx2", "avx512"}
        Must be in :func:`available_simd_targets`.

    Raises
    ------
    ValueError
        If the name is unknown or the target is not available here.
    """
    global _simd
    if name not in SIMD_TARGETS:
        raise ValueError(f"SIMD target must be one of {', '.join(SIMD_TARGETS)}, got {name!r}")
    if not _core.simd_available(name):
        raise ValueError(f"SIMD target {name!r} is not available on this CPU or build "
                         f"(available: {', '.join(available_simd_targets())})")
    with _lock:
        _simd = name


def _parse_backend(raw: object, source: str) -> str:
    name = raw.strip().lower() if isinstance(raw, str) else raw
    if name not in BACKENDS:
        raise ValueError(f"{source} must be 'core' or 'numpy', got {raw!r}")
    return name  # type: ignore[return-value]


def _initial_backend() -> str:
    raw = os.environ.get("DROPKIT_BACKEND", "")
    return "core" if not raw.strip() else _parse_backend(raw, "DROPKIT_BACKEND")


_backend: str = _initial_backend()


def set_backend(name: str) -> None:
    """Choose the backend that calls with ``backend=None`` use.

    Parameters
    ----------
    name : {"core", "numpy"}
        ``"core"``: the C++ kernels (the default). ``"numpy"``: the pure-NumPy reference
        (:mod:`dropkit.reference`), bit for bit the same, much slower. Case and surrounding
        spaces are ignored. The ``DROPKIT_BACKEND`` environment variable, read when dropkit is
        imported, sets the initial value.

    Raises
    ------
    ValueError
        Any other name.
    """
    global _backend
    b = _parse_backend(name, "backend")
    with _lock:
        _backend = b


def get_backend() -> str:
    """The backend that calls with ``backend=None`` use: ``"core"`` or ``"numpy"``.

    Returns
    -------
    str
    """
    return _backend


def backend_name(backend: str | None) -> str:
    """Resolve ``backend=``: None means the process-wide choice (:func:`get_backend`)."""
    return _backend if backend is None else _parse_backend(backend, "backend")
