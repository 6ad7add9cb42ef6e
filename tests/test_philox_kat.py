"""Philox4x32-10 known answers (Random123 ``tests/kat_vectors``), broadcasting and bad input.

Both backends are checked: the C++ core (``dropkit.philox4x32_10`` with ``backend="core"``) on
every SIMD target this CPU has, and the NumPy reference (``dropkit.reference.philox4x32_10``).
The known answers come from ``tests/data/philox4x32_kat.txt`` (Random123, shipped with the
tests, so every checkout runs them); random inputs are checked against a scalar Philox on Python ints (``_helpers.philox_py``) written from docs/rng.md section 1.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

import dropkit
from _helpers import KAT_FILE, M32, TWO32, philox_py, read_kat, simd_impls

KAT = read_kat()  # tests/data/philox4x32_kat.txt, shipped with the tests: never skipped
KAT_PARAMS = [pytest.param(row, id=f"ctr={row[0][0]:08x}") for row in KAT]


# Each implementation under test: the core on each SIMD target, and the NumPy reference.
IMPLS = simd_impls()


@pytest.fixture(params=IMPLS)
def philox(request, restore_runtime):
    backend, target = request.param
    if backend == "numpy":
        return dropkit.reference.philox4x32_10
    dropkit.set_simd_target(target)
    assert dropkit.simd_target() == target
    return partial(dropkit.philox4x32_10, backend="core")


# ------------------------------------------------------------------------------------------
# Known answers
# ------------------------------------------------------------------------------------------


def test_kat_file_ships_with_the_tests():
    # A clone of the repository alone runs the known-answer tests: the file is under tests/, with
    # its provenance line, not read from a folder outside the checkout.
    tests_dir = Path(__file__).resolve().parent
    assert KAT_FILE.is_file() and tests_dir in KAT_FILE.resolve().parents
    first = KAT_FILE.read_text().splitlines()[0]
    assert first.startswith("# Source: github DEShawResearch/random123 @ ") and "tests/kat_vectors" in first


def test_kat_file_has_the_three_10_round_vectors():
    assert len(KAT) == 3
    # The file's answers agree with the tests' scalar model (guards the parser and the model).
    for ctr, key, expected in KAT:
        assert list(philox_py(ctr, key)) == expected


@pytest.mark.parametrize("row", KAT_PARAMS)
def test_kat_single(philox, row):
    ctr, key, expected = row
    got = philox(np.array(ctr, dtype=np.uint32), np.array(key, dtype=np.uint32))
    assert got.dtype == np.uint32 and got.shape == (4,)
    assert [hex(v) for v in got.tolist()] == [hex(v) for v in expected]


@pytest.mark.parametrize("n", [1, 3, 7, 8, 9, 15, 16, 17, 33, 101])
def test_kat_batched(philox, n):
    """The vectors in a batch of n rows (vector lanes and tails of every width): row i holds
    KAT vector (i * 7) mod 3, so every lane position sees every vector."""
    pick = [(i * 7) % 3 for i in range(n)]
    ctr = np.array([KAT[k][0] for k in pick], dtype=np.uint32)
    key = np.array([KAT[k][1] for k in pick], dtype=np.uint32)
    expected = np.array([KAT[k][2] for k in pick], dtype=np.uint32)
    got = philox(ctr, key)
    assert got.dtype == np.uint32 and got.shape == (n, 4)
    np.testing.assert_array_equal(got, expected)


def test_spec_example(philox):
    """docs/rng.md section 1: counter 0, key 0 gives 6627e8d5 e169c58d bc57ac4c 9b00dbd8."""
    got = philox([0, 0, 0, 0], [0, 0])
    assert got.tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


@pytest.mark.parametrize("n", [1, 5, 16, 37])
def test_random_inputs_match_scalar_model(philox, n):
    rng = np.random.default_rng(1000 + n)
    ctr = rng.integers(0, TWO32, size=(n, 4), dtype=np.uint64).astype(np.uint32)
    key = rng.integers(0, TWO32, size=(n, 2), dtype=np.uint64).astype(np.uint32)
    got = philox(ctr, key)
    assert got.tolist() == [list(philox_py(c, k)) for c, k in zip(ctr.tolist(), key.tolist())]


# ------------------------------------------------------------------------------------------
# Broadcasting
# ------------------------------------------------------------------------------------------


def test_broadcasting_3x1_with_5(philox):
    rng = np.random.default_rng(7)
    ctr = rng.integers(0, TWO32, size=(3, 1, 4), dtype=np.uint64).astype(np.uint32)
    key = rng.integers(0, TWO32, size=(5, 2), dtype=np.uint64).astype(np.uint32)
    ctr[0, 0] = M32  # extreme words too
    key[1] = [M32, 0]
    got = philox(ctr, key)
    assert got.shape == (3, 5, 4) and got.dtype == np.uint32
    for i in range(3):
        for j in range(5):
            assert got[i, j].tolist() == list(philox_py(ctr[i, 0], key[j])), (i, j)


def test_broadcasting_one_side_1d(philox):
    rng = np.random.default_rng(8)
    ctr = rng.integers(0, TWO32, size=(6, 4), dtype=np.uint64).astype(np.uint32)
    key = [123, 456]
    got = philox(ctr, key)
    assert got.shape == (6, 4)
    assert got.tolist() == [list(philox_py(c, key)) for c in ctr.tolist()]
    one_ctr = [1, 2, 3, 4]
    keys = rng.integers(0, TWO32, size=(2, 3, 2), dtype=np.uint64).astype(np.uint32)
    got = philox(one_ctr, keys)
    assert got.shape == (2, 3, 4)
    assert got.reshape(-1, 4).tolist() == [
        list(philox_py(one_ctr, k)) for k in keys.reshape(-1, 2).tolist()
    ]


def test_other_integer_dtypes(philox):
    ctr = np.array([5, 6, 7, 8], dtype=np.int64)
    key = np.array([M32, 1], dtype=np.uint64)
    assert philox(ctr, key).tolist() == list(philox_py([5, 6, 7, 8], [M32, 1]))


def test_empty_batch(philox):
    got = philox(np.zeros((0, 4), np.uint32), [1, 2])
    assert got.shape == (0, 4) and got.dtype == np.uint32


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ctr, key, exc",
    [
        pytest.param(np.zeros(4, np.float32), [0, 0], TypeError, id="float-counter"),
        pytest.param([0, 0, 0, 0], np.zeros(2, np.float64), TypeError, id="float-key"),
        pytest.param([0.0, 0.0, 0.0, 0.0], [0, 0], TypeError, id="float-list-counter"),
        pytest.param([0, 0, 0], [0, 0], ValueError, id="counter-last-dim-3"),
        pytest.param(np.zeros((2, 3), np.uint32), [0, 0], ValueError, id="counter-2x3"),
        pytest.param([0, 0, 0, 0], [0, 0, 0], ValueError, id="key-last-dim-3"),
        pytest.param([0, 0, 0, TWO32], [0, 0], ValueError, id="counter-2**32"),
        pytest.param([0, 0, 0, -1], [0, 0], ValueError, id="counter-minus-1"),
        pytest.param([0, 0, 0, 0], [TWO32, 0], ValueError, id="key-2**32"),
        pytest.param([0, 0, 0, 0], [0, -1], ValueError, id="key-minus-1"),
        pytest.param(np.array([[0, 0, 0, 0], [0, 0, 0, TWO32]], np.int64), [0, 0], ValueError,
                     id="counter-2**32-in-batch"),
        pytest.param(np.zeros((2, 4), np.uint32), np.zeros((3, 2), np.uint32), ValueError,
                     id="no-broadcast"),
    ],
)
@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_bad_input(backend, ctr, key, exc):
    f = dropkit.reference.philox4x32_10 if backend == "numpy" else partial(dropkit.philox4x32_10,
                                                                           backend="core")
    with pytest.raises(exc):
        f(ctr, key)
