"""Core (C++) against the NumPy reference, bit for bit.

Every public function that touches the stream (``dropout`` in both modes, ``dropout_backward``,
``dropout_mask`` packed and not) is run on both backends with the same arguments, over
dtype x size (0, 1, vector widths +- 1, tile and chunk sizes +- 1, large) x rate, and the
outputs are compared byte for byte. NaN payloads are not specified (docs/rng.md section 5), so a
kept NaN only has to be a NaN on both sides; every other element must match exactly.
The values are also checked against docs/rng.md section 5 directly (mask, scale, +0.0).
"""
from __future__ import annotations

import numpy as np
import pytest

import dropkit
from _helpers import expected_apply

DTYPES = [np.float16, np.float32, np.float64]
SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 1023, 1025, 2049, 16385, 100003]
RATES = [0.0, 0.1, 0.5, 1.0]
OFFSETS = [0, 2**40 + 77]
SEED = 0x5EED_0000_1234_5678


def assert_same_bits(a: np.ndarray, b: np.ndarray, what: str = "") -> None:
    """a and b identical byte for byte, except that NaNs only need to be NaN on both sides."""
    assert a.dtype == b.dtype and a.shape == b.shape, what
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    diff = np.flatnonzero(nan_a != nan_b)
    assert diff.size == 0, f"{what}: NaN at different places, first {diff[:5]}"
    a2, b2 = a.copy(), b.copy()
    a2[nan_a] = 0
    b2[nan_b] = 0
    uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    diff = np.flatnonzero(a2.reshape(-1).view(uint) != b2.reshape(-1).view(uint))
    assert diff.size == 0, (
        f"{what}: {diff.size} elements differ, first at {diff[:5]}: "
        f"{a.reshape(-1)[diff[:5]]} vs {b.reshape(-1)[diff[:5]]}"
    )
    if not (nan_a.any() or nan_b.any()):
        np.testing.assert_array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8),
                                      err_msg=what)


def make_input(n: int, dtype, seed: int = 0) -> np.ndarray:
    """Random values over many binades, with zeros of both signs, infinities, NaN, values near the
    largest finite (overflow when scaled) and subnormals sprinkled in."""
    rng = np.random.default_rng(seed + n)
    with np.errstate(over="ignore"):  # float16 overflows to +-inf: wanted
        x = (rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))).astype(dtype)
    info = np.finfo(dtype)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, float(info.max), -float(info.max),
                         float(info.tiny) / 4, 1.0, -1.0], dtype=dtype)
    if n:
        where = rng.integers(0, n, size=max(1, n // 10))
        x[where] = specials[rng.integers(0, specials.size, where.size)]
    return x


def spec_values(x: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
    """docs/rng.md section 5: keep ? x * s : +0.0, s rounded once to the compute type."""
    return expected_apply(x, keep.reshape(x.shape), scale)


@pytest.mark.parametrize("offset", OFFSETS, ids=lambda o: f"o={o}")
@pytest.mark.parametrize("rate", RATES, ids=lambda r: f"r={r}")
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n={n}")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_forward_backward_parity(dtype, n, rate, offset):
    x = make_input(n, dtype)
    x_copy = x.copy()
    kw = dict(seed=SEED, offset=offset)
    keep = dropkit.dropout_mask(n, rate, backend="numpy", **kw)
    for inverted in (True, False):
        core = dropkit.dropout(x, rate, inverted=inverted, backend="core", **kw)
        ref = dropkit.dropout(x, rate, inverted=inverted, backend="numpy", **kw)
        what = f"dropout inverted={inverted}"
        assert_same_bits(core, ref, what)
        scale = 0.0 if rate == 1 else (1 / (1 - rate) if inverted else 1.0)
        assert_same_bits(core, spec_values(x, keep, scale), what + " vs spec")

        g_core = dropkit.dropout_backward(x, rate, inverted=inverted, backend="core", **kw)
        g_ref = dropkit.dropout_backward(x, rate, inverted=inverted, backend="numpy", **kw)
        assert_same_bits(g_core, g_ref, f"backward inverted={inverted}")
        assert_same_bits(g_core, core, f"backward == forward, inverted={inverted}")
    assert_same_bits(x, x_copy, "input modified")


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_reference_dropout_front_end_is_the_numpy_backend(backend):
    """dropkit.reference.dropout & co. equal the public functions on either backend."""
    x = make_input(3000, np.float32, seed=5)
    kw = dict(seed=9, offset=31)
    assert_same_bits(dropkit.reference.dropout(x, 0.3, **kw), dropkit.dropout(x, 0.3, backend=backend, **kw))
    assert_same_bits(dropkit.reference.dropout_backward(x, 0.3, inverted=False, **kw),
                     dropkit.dropout_backward(x, 0.3, inverted=False, backend=backend, **kw))
    np.testing.assert_array_equal(dropkit.reference.dropout_mask((30, 100), 0.3, packed=True, **kw),
                                  dropkit.dropout_mask((30, 100), 0.3, packed=True, backend=backend, **kw))


@pytest.mark.parametrize("packed", [False, True], ids=["unpacked", "packed"])
@pytest.mark.parametrize("offset", OFFSETS + [3], ids=lambda o: f"o={o}")
@pytest.mark.parametrize("rate", RATES + [1 / 3], ids=lambda r: f"r={r:.3g}")
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n={n}")
def test_mask_parity(n, rate, offset, packed):
    kw = dict(seed=SEED, offset=offset, packed=packed)
    core = dropkit.dropout_mask(n, rate, backend="core", **kw)
    ref = dropkit.dropout_mask(n, rate, backend="numpy", **kw)
    assert core.dtype == ref.dtype == (np.uint8 if packed else np.bool_)
    assert core.shape == ref.shape == (((n + 7) // 8,) if packed else (n,))
    np.testing.assert_array_equal(core.view(np.uint8), ref.view(np.uint8))
    if not packed and 0 < rate < 1 and n >= 1000:
        assert 0 < core.sum() < n  # not a constant mask


@pytest.mark.parametrize("shape", [(), (3, 0, 2), (17, 33), (4, 5, 6, 7)], ids=str)
def test_multidimensional_parity(shape):
    x = make_input(int(np.prod(shape)), np.float64, seed=3).reshape(shape)
    core = dropkit.dropout(x, 0.25, seed=1, offset=5, backend="core")
    ref = dropkit.dropout(x, 0.25, seed=1, offset=5, backend="numpy")
    assert core.shape == shape
    assert_same_bits(core, ref)
    m_core = dropkit.dropout_mask(shape, 0.25, seed=1, offset=5, backend="core")
    m_ref = dropkit.dropout_mask(shape, 0.25, seed=1, offset=5, backend="numpy")
    assert m_core.shape == shape
    np.testing.assert_array_equal(m_core, m_ref)


# ------------------------------------------------------------------------------------------
# float16: every bit pattern
# ------------------------------------------------------------------------------------------

ALL_HALF = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)


@pytest.mark.parametrize("offset", [0, 5], ids=lambda o: f"o={o}")
@pytest.mark.parametrize("inverted", [True, False], ids=["inverted", "classic"])
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_float16_exhaustive(rate, inverted, offset):
    x = ALL_HALF
    assert np.unique(x.view(np.uint16)).size == 1 << 16
    kw = dict(seed=123456789, offset=offset, inverted=inverted)
    core = dropkit.dropout(x, rate, backend="core", **kw)
    ref = dropkit.dropout(x, rate, backend="numpy", **kw)
    keep = dropkit.dropout_mask(x.size, rate, seed=123456789, offset=offset, backend="numpy")
    assert 0.3 < keep.mean() < 0.95

    # Dropped elements are +0.0 exactly (bit pattern 0), NaN and infinities included.
    assert not core.view(np.uint16)[~keep].any()
    assert not ref.view(np.uint16)[~keep].any()
    # Kept elements: NaN stays NaN, everything else bit for bit; both against the spec too.
    assert_same_bits(core, ref, "core vs reference")
    scale = 1 / (1 - rate) if inverted else 1.0
    want = spec_values(x, keep, scale)
    assert_same_bits(core, want, "core vs spec")
    kept_nan = np.isnan(x) & keep
    assert kept_nan.any() and np.isnan(core[kept_nan]).all()
    # Overflow to infinity happens at rate 0.1 for the largest values (scale 1.111...).
    if inverted and rate == 0.1:
        finite = keep & np.isfinite(x)
        big = np.zeros_like(keep)
        big[finite] = np.abs(x[finite].astype(np.float32)) * np.float32(scale) > 65520
        assert big.any() and np.isinf(core[big]).all()
