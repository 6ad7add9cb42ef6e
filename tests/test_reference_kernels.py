"""Tests of the pure-NumPy reference kernels (``dropkit.reference._kernels``).

Everything is checked against ``docs/rng.md`` through slow, independent pure-Python code: a
scalar Philox4x32-10 on Python ints (``_helpers.philox_py``), ``u(g)`` built plane by plane
from it in this file, and float16 products computed exactly in binary64.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from _helpers import KAT_FILE, M32, TWO32, TWO64, philox_py, read_kat

try:
    from dropkit.reference import _kernels as K
except ImportError:  # package not installed: load the file by path
    _path = Path(__file__).resolve().parents[1] / "python" / "dropkit" / "reference" / "_kernels.py"
    _spec = importlib.util.spec_from_file_location("_dropkit_reference_kernels", _path)
    assert _spec is not None and _spec.loader is not None
    K = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = K
    _spec.loader.exec_module(K)

philox4x32_10 = K.philox4x32_10
bernoulli_keep = K.bernoulli_keep
bernoulli_apply = K.bernoulli_apply
bernoulli_mask = K.bernoulli_mask

CHUNK = K._CHUNK  # the kernels' internal chunk size, to test across its boundaries

# ------------------------------------------------------------------------------------------
# Independent scalar model of docs/rng.md sections 1-4, on Python ints (Philox: _helpers.py).
# ------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def block_planes(seed, b):
    """The 32 plane outputs of block ``b``: a tuple of 4-word tuples."""
    key = (seed & M32, seed >> 32)
    return tuple(philox_py((b & M32, b >> 32, p, 0), key) for p in range(32))


def u_py(seed, g):
    """u(g) of docs/rng.md section 3, all 32 planes."""
    b, j = divmod(g, 128)
    planes = block_planes(seed, b)
    return sum(((planes[p][j // 32] >> (j % 32)) & 1) << (31 - p) for p in range(32))


def keep_py(n, t, seed, offset):
    return np.array([u_py(seed, g) >= t for g in range(offset, offset + n)], dtype=bool)


def n_planes(t):
    return 32 - ((t & -t).bit_length() - 1)


# ------------------------------------------------------------------------------------------
# Philox
# ------------------------------------------------------------------------------------------


def test_philox_known_answers():
    rows = read_kat()
    assert len(rows) == 3  # all three Random123 philox4x32 10-round vectors
    for ctr, key, expected in rows:
        got = philox4x32_10(np.array(ctr, dtype=np.uint32), np.array(key, dtype=np.uint32))
        assert got.dtype == np.uint32 and got.shape == (4,)
        assert got.tolist() == expected, (ctr, key)
        assert list(philox_py(ctr, key)) == expected  # the test's own model is right too
    # all at once, as one (3, 4) x (3, 2) call
    ctrs, keys, exps = (np.array([r[i] for r in rows], dtype=np.uint32) for i in range(3))
    np.testing.assert_array_equal(philox4x32_10(ctrs, keys), exps)


def test_philox_spec_example():
    assert philox4x32_10([0, 0, 0, 0], [0, 0]).tolist() == [
        0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8
    ]


def test_philox_matches_scalar_model_with_broadcasting():
    rng = np.random.default_rng(2024)
    ctr = rng.integers(0, TWO32, size=(5, 1, 4), dtype=np.uint64).astype(np.uint32)
    key = rng.integers(0, TWO32, size=(3, 2), dtype=np.uint64).astype(np.uint32)
    ctr[0, 0] = [M32, M32, M32, M32]  # extreme words
    key[0] = [M32, 0]
    got = philox4x32_10(ctr, key)
    assert got.shape == (5, 3, 4) and got.dtype == np.uint32
    for i in range(5):
        for j in range(3):
            assert tuple(got[i, j].tolist()) == philox_py(ctr[i, 0], key[j]), (i, j)

    # one counter, many keys; many counters, one key; other integer dtypes and lists
    got = philox4x32_10(ctr[1, 0].astype(np.int64), key)
    assert got.shape == (3, 4)
    assert [tuple(r) for r in got.tolist()] == [philox_py(ctr[1, 0], k) for k in key]
    got = philox4x32_10(ctr[:, 0], key[2].tolist())
    assert [tuple(r) for r in got.tolist()] == [philox_py(c, key[2]) for c in ctr[:, 0]]
    # leading zero-size dimension
    assert philox4x32_10(np.zeros((0, 4), np.uint32), [1, 2]).shape == (0, 4)


@pytest.mark.parametrize(
    "ctr, key, exc",
    [
        (np.zeros(4, np.float32), [0, 0], TypeError),
        ([0, 0, 0, 0], np.zeros(2, np.float64), TypeError),
        (np.zeros(4, bool), [0, 0], TypeError),
        ([0, 0, 0], [0, 0], ValueError),
        ([0, 0, 0, 0], [0, 0, 0], ValueError),
        (np.uint32(0), [0, 0], ValueError),
        ([0, 0, 0, -1], [0, 0], ValueError),
        ([0, 0, 0, TWO32], [0, 0], ValueError),
        ([0, 0, 0, 0], [TWO64, 0], ValueError),  # object array of Python ints
        (np.zeros((2, 4), np.uint32), np.zeros((3, 2), np.uint32), ValueError),
    ],
)
def test_philox_bad_input(ctr, key, exc):
    with pytest.raises(exc):
        philox4x32_10(ctr, key)


# ------------------------------------------------------------------------------------------
# Keep bits
# ------------------------------------------------------------------------------------------

THRESHOLDS = [
    1,  # P = 32: only u = 0 dropped
    2**31,  # P = 1 (rate 0.5)
    3 * 2**30,  # P = 2
    2**30 + 2**29 + 2**3,  # P = 29
    round(0.1 * TWO32),  # P = 31
    0x9E3779B9,  # odd, P = 32
    TWO32 - 1,  # P = 32: only u = 2**32 - 1 kept
]


def test_threshold_plane_counts():
    assert [n_planes(t) for t in THRESHOLDS] == [32, 1, 2, 29, 31, 32, 32]


@pytest.mark.parametrize(
    "seed, offset, n",
    [
        (0, 127, 300),  # starts in the last lane of block 0
        (0xDEADBEEF_12345678, TWO32 * 128 - 5, 260),  # blocks 2**32 - 1 and 2**32: c1 0 -> 1
        (TWO64 - 1, TWO64 - 300, 300),  # ends exactly at 2**64, last block 2**57 - 1
        (12345, 1000 * 128 + 33, 200),
    ],
)
def test_keep_matches_spec_model(seed, offset, n):
    us = np.array([u_py(seed, g) for g in range(offset, offset + n)], dtype=np.uint64)
    for t in THRESHOLDS:
        got = bernoulli_keep(n, t, seed, offset)
        assert got.dtype == bool and got.shape == (n,)
        np.testing.assert_array_equal(got, us >= t, err_msg=f"t={t}")
    # the model's u values are not degenerate: all 32 bit positions vary
    bits = (us[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1)
    assert np.all(bits.min(axis=0) == 0) and np.all(bits.max(axis=0) == 1)


def test_keep_extreme_thresholds():
    # t = 0 keeps all, t = 2**32 drops all (any seed, any offset)
    assert bernoulli_keep(1000, 0, 3, TWO64 - 1000).all()
    assert not bernoulli_keep(1000, TWO32, 3, 5).any()
    # thresholds right at the observed u values: off-by-one in ">=" would show here
    n, seed, off = 256, 77, 999
    us = np.array([u_py(seed, g) for g in range(off, off + n)], dtype=np.uint64)
    lo, hi, mid = int(us.min()), int(us.max()), int(np.median(us))
    for t in (lo, lo + 1, hi, hi + 1, mid):
        np.testing.assert_array_equal(bernoulli_keep(n, t, seed, off), us >= t, err_msg=f"t={t}")


def test_keep_key_uses_both_seed_words():
    base = bernoulli_keep(4096, 2**31, 5, 0)
    assert not np.array_equal(base, bernoulli_keep(4096, 2**31, 5 + TWO32, 0))
    assert not np.array_equal(base, bernoulli_keep(4096, 2**31, 6, 0))
    np.testing.assert_array_equal(base, keep_py(4096, 2**31, 5, 0))


def test_keep_nested():
    n, seed, off = 50_000, 9, 31
    masks = [bernoulli_keep(n, t, seed, off) for t in sorted(THRESHOLDS)]
    for lower_t, higher_t in zip(masks, masks[1:]):
        assert np.all(lower_t >= higher_t)  # kept at a higher rate -> kept at a lower one


@pytest.mark.parametrize("t", [2**31, round(0.1 * TWO32), 0x9E3779B9])
def test_keep_chunking(t):
    seed, o = 0xABCDEF, 128 * 7 + 3
    n = CHUNK + CHUNK // 2 + 77  # crosses the kernels' internal chunk boundary
    full = bernoulli_keep(n, t, seed, o)
    for a, b in [(0, 1), (5, 133), (CHUNK - 9, CHUNK + 300), (n - 1000, n), (129, CHUNK + 129)]:
        part = bernoulli_keep(b - a, t, seed, o + a)
        np.testing.assert_array_equal(full[a:b], part, err_msg=f"{a}:{b}")
    # keep probability within 5 sigma
    p = (TWO32 - t) / TWO32
    assert abs(full.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_keep_empty_and_bad_input():
    assert bernoulli_keep(0, 2**31, 0, TWO64 - 1).shape == (0,)
    assert bernoulli_keep(1, 2**31, 0, TWO64 - 1).shape == (1,)
    for args, exc in [
        ((2, 2**31, 0, TWO64 - 1), ValueError),  # offset + n > 2**64
        ((1, TWO32 + 1, 0, 0), ValueError),
        ((1, -1, 0, 0), ValueError),
        ((1, 1, TWO64, 0), ValueError),
        ((1, 1, -1, 0), ValueError),
        ((1, 1, 0, TWO64), ValueError),
        ((-1, 1, 0, 0), ValueError),
        ((1, 0.5, 0, 0), TypeError),
        ((1.0, 1, 0, 0), TypeError),
        ((1, 1, "0", 0), TypeError),
    ]:
        with pytest.raises(exc):
            bernoulli_keep(*args)


# ------------------------------------------------------------------------------------------
# Masks
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000, CHUNK + 13])
@pytest.mark.parametrize("t", [0, round(0.1 * TWO32), 2**31, TWO32])
def test_mask_unpacked_and_packed(n, t):
    seed, o = 2**40 + 3, 12345
    keep = bernoulli_keep(n, t, seed, o)
    for dtype in (np.uint8, bool):
        out = np.full(n, 0xAA, np.uint8).astype(dtype)
        res = bernoulli_mask(out, n, t, seed, o, packed=False)
        assert res is out
        np.testing.assert_array_equal(out.astype(bool), keep)
        assert set(np.unique(out.view(np.uint8)).tolist()) <= {0, 1}
    packed = np.full((n + 7) // 8, 0xFF, np.uint8)  # stale bits must be overwritten
    assert bernoulli_mask(packed, n, t, seed, o, packed=True) is packed
    np.testing.assert_array_equal(packed, np.packbits(keep))  # bitorder big by default
    np.testing.assert_array_equal(np.unpackbits(packed, count=n).astype(bool), keep)
    if n % 8:
        assert packed[-1] & ((1 << (8 - n % 8)) - 1) == 0  # unused low bits are 0


def test_mask_packed_bit_order():
    # element 8i in the most significant bit, against a hand-built byte
    keep = bernoulli_keep(8, 2**31, 1, 0)
    out = np.zeros(1, np.uint8)
    bernoulli_mask(out, 8, 2**31, 1, 0, packed=True)
    assert int(out[0]) == sum(int(k) << (7 - i) for i, k in enumerate(keep))


def test_mask_bad_input():
    with pytest.raises(ValueError):
        bernoulli_mask(np.zeros(9, np.uint8), 8, 1, 0, 0, packed=False)
    with pytest.raises(ValueError):
        bernoulli_mask(np.zeros(2, np.uint8), 8, 1, 0, 0, packed=True)
    with pytest.raises(TypeError):
        bernoulli_mask(np.zeros(8, np.int32), 8, 1, 0, 0, packed=False)
    with pytest.raises(TypeError):
        bernoulli_mask(np.zeros(1, bool), 8, 1, 0, 0, packed=True)
    with pytest.raises(ValueError):
        bernoulli_mask(np.zeros(16, np.uint8)[::2], 8, 1, 0, 0, packed=False)
    with pytest.raises(ValueError):
        bernoulli_mask(np.zeros((2, 4), np.uint8), 8, 1, 0, 0, packed=False)


# ------------------------------------------------------------------------------------------
# Apply
# ------------------------------------------------------------------------------------------


def _expected_via_binary64(x, keep, scale, dtype):
    """Independent product: exact in binary64, then rounded once to binary32 (and to float16)."""
    s32 = float(np.float32(scale))
    with np.errstate(over="ignore", invalid="ignore"):  # signalling NaNs, overflow to inf
        exact = x.astype(np.float64) * s32  # <= 24 + 24 significant bits: exact in binary64
        prod = exact.astype(np.float32).astype(dtype)
    return np.where(keep, prod, dtype(0.0))


@pytest.mark.parametrize("rate", [0.1, 0.4, 0.75])
def test_apply_float16_exhaustive(rate):
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    t = round(rate * TWO32)
    scale = 1.0 / (1.0 - rate)
    seed, o = 99, TWO64 - (1 << 16) - 1
    keep = bernoulli_keep(x.size, t, seed, o)
    out = np.full_like(x, np.float16(7.0))
    assert bernoulli_apply(x, out, t, scale, seed, o) is out
    exp = _expected_via_binary64(x, keep, scale, np.float16)

    got_bits, exp_bits = out.view(np.uint16), exp.view(np.uint16)
    nan = np.isnan(exp)
    np.testing.assert_array_equal(np.isnan(out), nan)  # kept NaN stays NaN
    np.testing.assert_array_equal(got_bits[~nan], exp_bits[~nan])  # bit-exact incl. -0.0, inf
    assert np.all(got_bits[~keep] == 0)  # every dropped element is +0.0, NaN and -0 included
    assert 0 < keep.sum() < x.size

    # The specified double rounding (binary32 product, then float16) is what is checked: at
    # rate 0.4 thousands of kept values differ from a single rounding of the exact product.
    with np.errstate(over="ignore", invalid="ignore"):
        single = (x.astype(np.float64) * float(np.float32(scale))).astype(np.float16)
    differs = keep & np.isfinite(x) & (single.view(np.uint16) != exp_bits)
    if rate == 0.4:
        assert differs.sum() > 1000
    if rate == 0.75:  # scale 4: kept values above 16376 overflow to infinity
        big = keep & np.isfinite(x) & (np.abs(x) > 16376)
        assert big.any() and np.isinf(out[big]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_float32_float64_against_python(dtype):
    rng = np.random.default_rng(5)
    n = 5000
    x = (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)).astype(dtype)
    x[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, np.finfo(dtype).max]
    t, scale, seed, o = round(0.3 * TWO32), 1.0 / 0.7, 2**63 + 1, 3
    keep = bernoulli_keep(n, t, seed, o)
    out = bernoulli_apply(x, np.empty_like(x), t, scale, seed, o)
    if dtype is np.float64:
        exp = np.array([xi * scale if k else 0.0 for xi, k in zip(x.tolist(), keep)])
    else:
        exp = _expected_via_binary64(x, keep, scale, np.float32)
    nan = np.isnan(exp)
    np.testing.assert_array_equal(np.isnan(out), nan)
    uint = np.uint32 if dtype is np.float32 else np.uint64
    np.testing.assert_array_equal(out.view(uint)[~nan], exp.astype(dtype).view(uint)[~nan])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_apply_dropped_specials_are_positive_zero(dtype):
    n = 4000
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, 1.0], dtype=dtype)
    x = np.resize(specials, n)
    t, seed, o = 2**31, 17, 1
    keep = bernoulli_keep(n, t, seed, o)
    out = bernoulli_apply(x, np.full_like(x, 5), t, 2.0, seed, o)
    assert np.all(out[~keep] == 0) and not np.signbit(out[~keep]).any()
    assert np.all(out[~keep].view(f"u{np.dtype(dtype).itemsize}") == 0)
    kept = out[keep]
    kx = x[keep]
    assert np.isnan(kept[np.isnan(kx)]).all()
    assert np.array_equal(kept[np.isinf(kx)], kx[np.isinf(kx)])
    assert np.signbit(kept[(kx == 0)]).all()  # kept -0.0 * 2 stays -0.0
    # rate 1: everything +0.0 without any multiplication
    out1 = bernoulli_apply(x, np.full_like(x, 5), TWO32, 0.0, seed, o)
    assert np.all(out1.view(f"u{np.dtype(dtype).itemsize}") == 0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_apply_in_place_and_chunked(dtype):
    n = CHUNK + 1001
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n).astype(dtype)
    t, scale, seed, o = round(0.1 * TWO32), 1.0 / 0.9, 8, 2**50
    ref = bernoulli_apply(x, np.empty_like(x), t, scale, seed, o)
    y = x.copy()
    assert bernoulli_apply(y, y, t, scale, seed, o) is y
    np.testing.assert_array_equal(y.view(f"u{y.itemsize}"), ref.view(f"u{y.itemsize}"))
    a, b = CHUNK - 50, CHUNK + 50
    part = bernoulli_apply(x[a:b], np.empty(b - a, dtype), t, scale, seed, o + a)
    np.testing.assert_array_equal(part, ref[a:b])
    keep = bernoulli_keep(n, t, seed, o)
    np.testing.assert_array_equal(ref[~keep], 0)
    compute = np.float64 if dtype is np.float64 else np.float32
    product = x[keep].astype(compute) * compute(scale)
    np.testing.assert_array_equal(ref[keep], product.astype(dtype))


def test_apply_partial_overlap():
    n = CHUNK + 100  # more than one internal chunk
    x = np.arange(1, n + 2, dtype=np.float32)
    t, seed = 1, 4  # keep (nearly) everything so a clobbered input shows in the output
    for src, dst in [(slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None))]:
        ref = bernoulli_apply(x[src].copy(), np.empty(n, np.float32), t, 3.0, seed, 0)
        buf = x.copy()
        bernoulli_apply(buf[src], buf[dst], t, 3.0, seed, 0)  # out overlaps x, shifted by one
        np.testing.assert_array_equal(buf[dst], ref)


def test_apply_bad_input():
    x = np.zeros(8, np.float32)
    cases = [
        ((x.astype(np.int32), np.zeros(8, np.int32)), TypeError),
        ((x, np.zeros(8, np.float64)), TypeError),
        ((x, np.zeros(9, np.float32)), ValueError),
        ((np.zeros(16, np.float32)[::2], x), ValueError),
        ((x.reshape(2, 4), x.reshape(2, 4).copy()), ValueError),
        ((list(x), x), TypeError),
    ]
    for (a, o), exc in cases:
        with pytest.raises(exc):
            bernoulli_apply(a, o, 1, 1.0, 0, 0)
    ro = np.zeros(8, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        bernoulli_apply(x, ro, 1, 1.0, 0, 0)
    with pytest.raises(ValueError):
        bernoulli_apply(x, x, 1, 1.0, 0, TWO64 - 7)  # offset + size > 2**64
    assert bernoulli_apply(x, x, 1, 1.0, 0, TWO64 - 8) is x
    e = np.zeros(0, np.float16)
    assert bernoulli_apply(e, e, 2**31, 2.0, 0, TWO64 - 1).shape == (0,)
    # threads and simd are accepted
    assert bernoulli_apply(x, x, 1, 1.0, 0, 0, threads=4, simd="scalar") is x
