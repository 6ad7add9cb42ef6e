"""Process-wide settings: thread count, SIMD target, backend. The C++ kernels hold no state;
these values are passed to every call."""
from __future__ import annotations

import os
import threading
import warnings

from . import _core, _validate

SIMD_TARGETS = ("scalar", "avx2", "avx512")
BACKENDS = ("core", "numpy")
MAX_THREADS: int = _validate.MAX_THREADS

_lock = threading.Lock()


def _cpu_threads() -> int:
    """The CPUs this process may run on (the default without OMP_NUM_THREADS), at most
    MAX_THREADS."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, MAX_THREADS))


def _initial_threads() -> int:
    """The default count (``OMP_NUM_THREADS``, else the CPUs), if in [1, MAX_THREADS].

    A larger ``OMP_NUM_THREADS`` gives a RuntimeWarning and the CPU count instead, the way OpenMP
    itself treats values it cannot use (an unparsable value: libgomp prints its own warning and
    uses the CPU count): the variable is shared with every OpenMP library in the process, so a value
    meant for another one must not make ``import dropkit`` fail. Under ``-W error`` it does fail.
    """
    n = _core.default_threads()
    if 1 <= n <= MAX_THREADS:
        return n
    fallback = _cpu_threads()
    warnings.warn(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')!r} asks for {n} threads, "
                  f"more than dropkit's maximum of {MAX_THREADS}; dropkit uses {fallback} "
                  f"(the CPU count) instead. Call dropkit.set_num_threads to choose another.",
                  RuntimeWarning, stacklevel=2)
    return fallback


current_threads: int = _initial_threads()


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


current_simd: str = _initial_simd()
_core.set_fast_state(current_threads, current_simd)  # the settings the compiled fast path (dropout_fast) uses


def set_num_threads(n: int) -> None:
    """Set the number of threads of dropkit's own pool that its kernels use.

    Parameters
    ----------
    n : int
        In [1, 1024] (``dropkit._runtime.MAX_THREADS``: far above any useful count, and well
        below what a process can create threads for). A Python
        or NumPy integer, not a bool. Arrays smaller than ``dropkit._core.PARALLEL_CUTOFF``
        elements always run on one thread. The result never depends on the thread count.

    Raises
    ------
    ValueError
        If ``n`` is outside [1, 1024]; the setting is unchanged.
    TypeError
        If ``n`` is not an integer (bools, floats and strings included).
    """
    global current_threads
    n = _validate.threads(n)
    with _lock:
        current_threads = n
        _core.set_fast_state(current_threads, current_simd)


def get_num_threads() -> int:
    """The number of threads dropkit's kernels use.

    The default, read when dropkit is imported, follows OpenMP's rule (dropkit's kernels run on
    their own pool; OpenMP, when the build found it, only supplies this count):
    ``OMP_NUM_THREADS``, else the number of CPUs this process may use. An ``OMP_NUM_THREADS``
    above 1024 gives a RuntimeWarning at import and the CPU count (at most 1024) instead; a value
    that cannot be parsed (``0``, ``abc``) gives the CPU count (with OpenMP's own warning in an
    OpenMP build).

    Returns
    -------
    int
    """
    return current_threads


def simd_target() -> str:
    """The SIMD target in use: ``"avx512"``, ``"avx2"`` or ``"scalar"``.

    The widest the CPU supports, unless ``DROPKIT_SIMD`` (read at import) or
    :func:`set_simd_target` chose another. Every target gives the same bits.

    Returns
    -------
    str
    """
    return current_simd


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
    global current_simd
    if name not in SIMD_TARGETS:
        raise ValueError(f"SIMD target must be one of {', '.join(SIMD_TARGETS)}, got {name!r}")
    if not _core.simd_available(name):
        raise ValueError(f"SIMD target {name!r} is not available on this CPU or build "
                         f"(available: {', '.join(available_simd_targets())})")
    with _lock:
        current_simd = name
        _core.set_fast_state(current_threads, current_simd)


def _parse_backend(raw: object, source: str) -> str:
    name = raw.strip().lower() if isinstance(raw, str) else raw
    if name not in BACKENDS:
        raise ValueError(f"{source} must be 'core' or 'numpy', got {raw!r}")
    return name  # type: ignore[return-value]


def _initial_backend() -> str:
    raw = os.environ.get("DROPKIT_BACKEND", "")
    return "core" if not raw.strip() else _parse_backend(raw, "DROPKIT_BACKEND")


current_backend: str = _initial_backend()


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
    global current_backend
    b = _parse_backend(name, "backend")
    with _lock:
        current_backend = b


def get_backend() -> str:
    """The backend that calls with ``backend=None`` use: ``"core"`` or ``"numpy"``.

    Returns
    -------
    str
    """
    return current_backend


def backend_name(backend: str | None) -> str:
    """Resolve ``backend=``: None means the process-wide choice (:func:`get_backend`)."""
    return current_backend if backend is None else _parse_backend(backend, "backend")
