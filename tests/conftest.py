"""Fixtures shared by the test files (helpers that are not fixtures live in _helpers.py)."""
from __future__ import annotations

import pytest

from _helpers import BACKENDS, simd_impls


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend in turn: "core" (C++) and "numpy" (reference)."""
    return request.param


@pytest.fixture
def restore_runtime():
    """Put the process-wide thread count, SIMD target and backend back after the test."""
    import dropkit  # not at module level: test_reference_kernels.py runs without the package

    threads, simd, backend = dropkit.get_num_threads(), dropkit.simd_target(), dropkit.get_backend()
    yield
    dropkit.set_num_threads(threads)
    dropkit.set_simd_target(simd)
    dropkit.set_backend(backend)


@pytest.fixture(params=simd_impls())
def backend_on_target(request, restore_runtime):
    """Each implementation in turn: the core on every SIMD target of this CPU (the target restored
    afterwards), then the NumPy reference. Returns the backend name."""
    backend, target = request.param
    if target is not None:
        import dropkit

        dropkit.set_simd_target(target)
    return backend
