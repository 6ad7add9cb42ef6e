"""docs/rng.md as a specification: masks rebuilt from ``philox4x32_10`` alone.

``stream_u`` below follows docs/rng.md sections 2-3 word for word (block and lane of a position,
the counter ``(b lo, b hi, plane, 0)``, the key ``(seed lo, seed hi)``, lane ``j`` = bit ``j mod 32``
of word ``j // 32``, plane 0 the most significant bit of ``u``) using only
``dropkit.philox4x32_10``; section 4's rule ``keep iff u >= round(rate * 2**32)`` then gives the
mask, which ``dropkit.dropout_mask`` must reproduce on both backends. No dropout code is called
to build the expected values.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import dropkit
from _helpers import BACKENDS, TWO32, TWO64, simd_impls

# The core on every SIMD target of this CPU, and the NumPy reference.
IMPLS = simd_impls()


@pytest.fixture(params=IMPLS)
def backend_on_target(request, restore_runtime):
    """Select the SIMD target for the core (restored afterwards) and return the backend name."""
    backend, target = request.param
    if target is not None:
        dropkit.set_simd_target(target)
    return backend


@lru_cache(maxsize=None)
def stream_u(seed: int, offset: int, n: int) -> np.ndarray:
    """u(g) for g = offset .. offset + n - 1 (docs/rng.md section 3), as uint64."""
    if n == 0:
        return np.zeros(0, np.uint64)
    b_first, b_last = offset // 128, (offset + n - 1) // 128
    blocks = [b_first + i for i in range(b_last - b_first + 1)]
    planes = np.arange(32)
    # counters[i, p] = (b_i mod 2**32, b_i // 2**32, p, 0)
    counter = np.array(
        [[[b % TWO32, b // TWO32, p, 0] for p in planes] for b in blocks], dtype=np.uint32
    )
    key = np.array([seed % TWO32, seed // TWO32], dtype=np.uint32)
    x = dropkit.philox4x32_10(counter, key, backend="core").astype(np.uint64)  # (nb, 32, 4)
    assert x.shape == (len(blocks), 32, 4)
    lanes = np.arange(128)
    word = x[:, :, lanes // 32]  # (nb, 32, 128): word floor(j/32) for lane j
    bit = (word >> (lanes % 32).astype(np.uint64)) & np.uint64(1)  # B_p(g)
    weights = np.uint64(1) << (np.uint64(31) - planes.astype(np.uint64))  # 2**(31 - p)
    u = (bit * weights[None, :, None]).sum(axis=1, dtype=np.uint64)  # (nb, 128)
    lane0 = offset - 128 * b_first
    return u.reshape(-1)[lane0:lane0 + n]


def expected_mask(seed: int, offset: int, n: int, rate: float) -> np.ndarray:
    t = round(rate * TWO32)  # docs/rng.md section 4 (round half to even)
    return stream_u(seed, offset, n) >= np.uint64(t) if t < TWO32 else np.zeros(n, bool)


def test_stream_u_is_not_degenerate():
    """Sanity check of the rebuild itself: all 32 bits of u vary, values are spread out."""
    u = stream_u(99, 0, 4096)
    bits = (u[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1)
    assert np.all(bits.min(axis=0) == 0) and np.all(bits.max(axis=0) == 1)
    assert len(np.unique(u)) > 4000


SEEDS = [0, 20240611, TWO32 + 5, 0xDEADBEEF_CAFEBABE, TWO64 - 1]
OFFSET_N = [
    pytest.param(0, 700, id="o=0"),
    pytest.param(127, 400, id="o=127"),
    pytest.param(128 * TWO32 - 3, 300, id="o=128*2**32-3"),  # blocks 2**32-1 and 2**32: c1 0 -> 1
    pytest.param(TWO64 - 200, 200, id="o=2**64-200"),  # ends exactly at 2**64
    pytest.param(123457, 2100, id="o=123457"),
]
RATES = [
    pytest.param(0.5, id="0.5"),
    pytest.param(0.1, id="0.1"),
    pytest.param(1 / 3, id="1/3"),
    pytest.param(2.0**-33, id="2**-33"),
    pytest.param(1 - 2.0**-33, id="1-2**-33"),
    pytest.param(0.0, id="0"),
    pytest.param(1.0, id="1"),
    pytest.param(0.75, id="0.75"),
    pytest.param(0.999, id="0.999"),
]


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("offset, n", OFFSET_N)
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed={s:#x}")
def test_mask_matches_spec(seed, offset, n, rate, backend_on_target):
    backend = backend_on_target
    want = expected_mask(seed, offset, n, rate)
    got = dropkit.dropout_mask(n, rate, seed=seed, offset=offset, backend=backend)
    assert got.dtype == np.bool_ and got.shape == (n,)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} positions differ, first at g = offset + {bad[:5]}"
    packed = dropkit.dropout_mask(n, rate, seed=seed, offset=offset, packed=True, backend=backend)
    np.testing.assert_array_equal(packed, np.packbits(want, bitorder="big"))


@pytest.mark.parametrize("seed", [3, TWO32 * 7 + 1])
def test_rounding_and_comparison_at_the_threshold(seed, backend_on_target):
    """Rates that put t exactly at, just above and half a unit around u(g) of chosen positions.

    rate = u/2**32 gives t = u: kept (u >= t, not u > t). rate = (u+1)/2**32: dropped.
    rate = (u+0.5)/2**32 rounds half to even: t = u if u is even (kept), u + 1 if odd (dropped).
    These decisions need all 32 planes, so they also exercise the core's early exit.
    """
    backend = backend_on_target
    offset, n = 5000, 300
    u = stream_u(seed, offset, n)
    for i in [0, 1, 31, 32, 127, 128, 200, 299]:
        ui = int(u[i])
        assert 0 < ui < TWO32 - 1, "degenerate u: pick another position"
        for rate, kept in [
            (ui / TWO32, True),
            ((ui + 1) / TWO32, False),
            ((ui + 0.5) / TWO32, ui % 2 == 0),
            ((ui - 0.5) / TWO32, True),
        ]:
            want = expected_mask(seed, offset, n, rate)
            assert bool(want[i]) == kept  # the model agrees with the hand-derived answer
            got = dropkit.dropout_mask(n, rate, seed=seed, offset=offset, backend=backend)
            assert bool(got[i]) == kept, (i, ui, rate)
            np.testing.assert_array_equal(got, want, err_msg=f"rate={rate!r}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_mask_does_not_depend_on_shape(backend):
    seed, offset = 77, 1001
    flat = dropkit.dropout_mask(7 * 11 * 13, 0.3, seed=seed, offset=offset, backend=backend)
    np.testing.assert_array_equal(flat, expected_mask(seed, offset, flat.size, 0.3))
    for shape in [(7, 143), (7, 11, 13), (1001, 1)]:
        got = dropkit.dropout_mask(shape, 0.3, seed=seed, offset=offset, backend=backend)
        assert got.shape == shape
        np.testing.assert_array_equal(got.reshape(-1), flat)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 129])
def test_packed_layout(n, backend):
    """docs/rng.md section 6: packbits big-endian layout, unused low bits of the last byte 0."""
    want = expected_mask(11, 64, n, 0.5)
    got = dropkit.dropout_mask(n, 0.5, seed=11, offset=64, packed=True, backend=backend)
    assert got.dtype == np.uint8 and got.shape == ((n + 7) // 8,)
    for i in range(n):
        assert (got[i // 8] >> (7 - i % 8)) & 1 == want[i], i
    if n % 8:
        assert got[-1] & ((1 << (8 - n % 8)) - 1) == 0
    np.testing.assert_array_equal(np.unpackbits(got, count=n).astype(bool), want)


# ------------------------------------------------------------------------------------------
# Consequences listed in docs/rng.md section 4
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed, offset", [(5, 0), (TWO32 + 9, 999)])
def test_masks_are_nested(seed, offset, backend):
    """Kept at rate r implies kept at every rate r' < r (same seed and positions)."""
    n = 20000
    rates = [0.9, 0.75, 0.5, 0.5 - 2.0**-30, 1 / 3, 0.25, 0.1, 0.01, 2.0**-20]
    masks = [dropkit.dropout_mask(n, r, seed=seed, offset=offset, backend=backend) for r in rates]
    for (r_hi, m_hi), (r_lo, m_lo) in zip(zip(rates, masks), zip(rates[1:], masks[1:])):
        assert r_lo < r_hi
        violations = np.flatnonzero(m_hi & ~m_lo)
        assert violations.size == 0, f"kept at {r_hi}, dropped at {r_lo}: indices {violations[:5]}"
        assert m_lo.sum() >= m_hi.sum()
    assert masks[-1].sum() > masks[0].sum() + n // 2  # the rates really differ


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed, offset", [(0, 0), (TWO64 - 1, TWO64 - 2**20 - 3)])
def test_rate_zero_keeps_all_rate_one_drops_all(seed, offset, backend):
    n = 2**20 + 3
    assert dropkit.dropout_mask(n, 0.0, seed=seed, offset=offset, backend=backend).all()
    assert not dropkit.dropout_mask(n, 1.0, seed=seed, offset=offset, backend=backend).any()
    packed = dropkit.dropout_mask(n, 0.0, seed=seed, offset=offset, packed=True, backend=backend)
    assert np.all(packed[:-1] == 0xFF) and packed[-1] == 0b11100000
    packed = dropkit.dropout_mask(n, 1.0, seed=seed, offset=offset, packed=True, backend=backend)
    assert not packed.any()
    x = np.full(n, np.nan, dtype=np.float32)
    x[::3] = -np.inf
    x[1::3] = -0.0
    y = dropkit.dropout(x, 1.0, seed=seed, offset=offset, backend=backend)
    assert not y.view(np.uint32).any()  # every element is +0.0 exactly
    g = dropkit.dropout_backward(x, 1.0, seed=seed, offset=offset, backend=backend)
    assert not g.view(np.uint32).any()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rate", [0.1, 1 / 3, 0.5, 0.7, 2.0**-12, 1 - 2.0**-12])
def test_keep_count_equals_count_of_u_above_threshold(rate, backend):
    """The effective keep rule: exactly #{g : u(g) >= t} elements are kept."""
    seed, offset, n = 424242, 77, 128 * 60 + 5
    t = round(rate * TWO32)
    want = int(np.count_nonzero(stream_u(seed, offset, n) >= np.uint64(t)))
    got = dropkit.dropout_mask(n, rate, seed=seed, offset=offset, backend=backend)
    assert int(got.sum()) == want
    x = np.ones(n, np.float32)
    y = dropkit.dropout(x, rate, seed=seed, offset=offset, backend=backend)
    assert int(np.count_nonzero(y)) == want


def test_stream_version():
    # STREAM_VERSION must change whenever any mask bit defined by docs/rng.md changes: a user
    # who stored (seed, offset, rate) relies on it to know whether masks can be regenerated.
    # If a change to the stream makes the spec tests above fail on purpose, bump it there too.
    v = dropkit.STREAM_VERSION
    assert type(v) is int
    assert v == 1
    assert dropkit._core.STREAM_VERSION == v
