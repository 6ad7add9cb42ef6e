"""Helpers shared by the test files (imported as ``from _helpers import ...``).

pytest's default ``prepend`` import mode puts this folder on ``sys.path``. Nothing here imports
dropkit at module level: tests/test_reference_kernels.py must still run when the package is not
installed (it then loads the reference kernels by path).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

M32 = 0xFFFFFFFF
TWO32 = 1 << 32
TWO64 = 1 << 64

BACKENDS = ("core", "numpy")
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}

# Test data shipped with the tests (tests/data/README.md says where each file comes from), so every
# checkout runs the tests that read it.
DATA_DIR = Path(__file__).resolve().parent / "data"
KAT_FILE = DATA_DIR / "philox4x32_kat.txt"


# ------------------------------------------------------------------------------------------
# Philox4x32-10 on Python ints and its known answers
# ------------------------------------------------------------------------------------------


def read_kat() -> list[tuple[list[int], list[int], list[int]]]:
    """The 10-round philox4x32 lines of KAT_FILE: (counter, key, expected), words as ints.

    The file ships in tests/data: a missing file is an error (FileNotFoundError), never a skip."""
    rows = []
    for line in KAT_FILE.read_text().splitlines():
        f = line.split()
        if len(f) == 12 and f[0] == "philox4x32" and f[1] == "10":
            words = [int(w, 16) for w in f[2:]]
            rows.append((words[0:4], words[4:6], words[6:10]))
    return rows


def philox_py(ctr, key) -> tuple[int, int, int, int]:
    """Philox4x32-10 on Python ints, straight from docs/rng.md section 1."""
    c0, c1, c2, c3 = (int(v) for v in ctr)
    k0, k1 = (int(v) for v in key)
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
    return c0, c1, c2, c3


def simd_impls() -> list:
    """pytest params for each implementation: ``("core", target)`` for every SIMD target of this
    CPU (ids ``core-<target>``), then ``("numpy", None)`` (id ``numpy``)."""
    import dropkit  # not at module level: see the module docstring

    return [pytest.param(("core", t), id=f"core-{t}") for t in dropkit.available_simd_targets()] + [
        pytest.param(("numpy", None), id="numpy")
    ]


# ------------------------------------------------------------------------------------------
# Bit patterns and docs/rng.md section 5 (one IEEE multiplication in the compute type)
# ------------------------------------------------------------------------------------------


def bits(a):
    """The raw bit patterns of a float array (so -0.0 != +0.0 and NaNs compare)."""
    a = np.asarray(a)
    return a.view(UINT[a.dtype.itemsize])


def assert_same_bits(actual, expected):
    """Same dtype, same shape, same bit pattern element by element."""
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(bits(actual), bits(expected))


def compute_type(dtype):
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def times(x, factor):
    """``x * factor`` as one multiplication in the compute type, rounded back to x's dtype."""
    ct = compute_type(x.dtype)
    with np.errstate(all="ignore"):  # overflow to inf is the specified IEEE result
        return (np.asarray(x).astype(ct) * ct(factor)).astype(x.dtype)


def expected_apply(x, keep, scale):
    """docs/rng.md section 5: kept -> x * s (compute type), dropped -> +0.0 (selected)."""
    x = np.asarray(x)
    return np.where(keep, times(x, scale), x.dtype.type(0.0)).astype(x.dtype)
