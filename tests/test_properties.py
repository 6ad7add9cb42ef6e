"""Reproducibility properties (docs/rng.md section 2): a mask bit depends on (seed, position, rate)
only, never on how the call was chunked, the thread count or the SIMD target.

The threaded and SIMD tests use arrays above ``dropkit._core.PARALLEL_CUTOFF`` (so the core really
splits the work) with odd offsets (so blocks of 128 positions straddle every split), and compare
against a single-threaded scalar run and against the NumPy reference.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import dropkit
from _helpers import TWO64

TARGETS = dropkit.available_simd_targets()
CUTOFF = int(dropkit._core.PARALLEL_CUTOFF)
N_BIG = 3 * CUTOFF + 12345
THREADS = [1, 2, 3, 4]


def bits(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1).view(np.uint8)


def assert_bits_equal(a: np.ndarray, b: np.ndarray, what: str = "") -> None:
    """Byte for byte (the inputs here hold no NaN); the message names the first elements."""
    assert a.dtype == b.dtype and a.shape == b.shape, what
    if a.size == 0:
        return
    differs = (bits(a) != bits(b)).reshape(a.size, -1).any(axis=1)
    diff = np.flatnonzero(differs)
    assert diff.size == 0, f"{what}: {diff.size} elements differ, first at flat index {diff[:5]}"


def finite_input(n: int, dtype, seed: int = 0) -> np.ndarray:
    """Finite, nonzero values (so a kept element is never 0 and NaN never hides a difference)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 2.0, n) * rng.choice([-1, 1], n)).astype(dtype)


# ------------------------------------------------------------------------------------------
# Chunking
# ------------------------------------------------------------------------------------------


def random_splits(n: int, count: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    pairs = [(0, 0), (0, n), (n, n), (0, 1), (n - 1, n), (127, 129), (128, 256), (5, 5)]
    for _ in range(count):
        a, b = sorted(int(v) for v in rng.integers(0, n + 1, 2))
        pairs.append((a, b))
    for _ in range(count // 2):  # short pieces too
        a = int(rng.integers(0, n))
        pairs.append((a, min(n, a + int(rng.integers(0, 300)))))
    return pairs


CHUNK_CASES = [
    pytest.param("core", 0, 0.5, id="core-o=0-r=0.5"),
    pytest.param("core", 1_000_003, 0.1, id="core-o=1000003-r=0.1"),
    pytest.param("core", 2**64 - 9000, 1 / 3, id="core-o=2**64-9000-r=1/3"),
    pytest.param("core", 128 * 2**32 - 4321, 0.7, id="core-o=128*2**32-4321-r=0.7"),
    pytest.param("numpy", 1_000_003, 0.1, id="numpy-o=1000003-r=0.1"),
    pytest.param("numpy", 77, 0.5, id="numpy-o=77-r=0.5"),
]


@pytest.mark.parametrize("backend, offset, rate", CHUNK_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64], ids=lambda d: np.dtype(d).name)
def test_chunked_dropout_equals_whole(dtype, backend, offset, rate):
    x = finite_input(6000, dtype, seed=1).reshape(60, 100)
    seed = 0xC0FFEE
    whole = dropkit.dropout(x, rate, seed=seed, offset=offset, backend=backend).ravel()
    flat = x.ravel()
    for a, b in random_splits(x.size, 40, seed=offset % 1000):
        part = dropkit.dropout(flat[a:b], rate, seed=seed, offset=offset + a, backend=backend)
        assert_bits_equal(part, whole[a:b], f"slice [{a}:{b}]")
    # An off-by-one offset must give a different answer (the test can see the position).
    shifted = dropkit.dropout(flat[1:], rate, seed=seed, offset=offset, backend=backend)
    assert np.any(bits(shifted) != bits(whole[1:]))


@pytest.mark.parametrize("backend, offset, rate", CHUNK_CASES)
def test_chunked_packed_masks_equal_whole(backend, offset, rate):
    n, seed = 6001, 31337
    whole = dropkit.dropout_mask(n, rate, seed=seed, offset=offset, backend=backend)
    whole_packed = dropkit.dropout_mask(n, rate, seed=seed, offset=offset, packed=True, backend=backend)
    np.testing.assert_array_equal(np.unpackbits(whole_packed, count=n).astype(bool), whole)
    for a, b in random_splits(n, 40, seed=offset % 997):
        part = dropkit.dropout_mask(b - a, rate, seed=seed, offset=offset + a, packed=True,
                                    backend=backend)
        assert part.shape == ((b - a + 7) // 8,)
        np.testing.assert_array_equal(np.unpackbits(part, count=b - a).astype(bool), whole[a:b],
                                      err_msg=f"packed slice [{a}:{b}]")
        if (b - a) % 8:  # unused low bits of the last byte are 0
            assert part[-1] & ((1 << (8 - (b - a) % 8)) - 1) == 0
        if a % 8 == 0:  # byte-aligned pieces are byte slices of the whole packed mask
            whole_bytes = whole_packed[a // 8:(b + 7) // 8].copy()
            if (b - a) % 8 and whole_bytes.size:
                whole_bytes[-1] &= 0xFF << (8 - (b - a) % 8) & 0xFF
            np.testing.assert_array_equal(part, whole_bytes)
        unpacked = dropkit.dropout_mask(b - a, rate, seed=seed, offset=offset + a, backend=backend)
        np.testing.assert_array_equal(unpacked, whole[a:b])


# ------------------------------------------------------------------------------------------
# Threads and SIMD targets
# ------------------------------------------------------------------------------------------

BIG_OFFSETS = [12345, 2**64 - N_BIG]  # the second ends exactly at 2**64
BIG_RATES = [0.1, 0.5, 1 / 3]


def big_input(dtype) -> np.ndarray:
    return finite_input(N_BIG, dtype, seed=2)


_REF_CACHE: dict = {}


def reference_dropout(dtype, rate, offset) -> np.ndarray:
    key = ("x", np.dtype(dtype).name, rate, offset)
    if key not in _REF_CACHE:
        _REF_CACHE[key] = dropkit.dropout(big_input(dtype), rate, seed=99, offset=offset,
                                          backend="numpy")
    return _REF_CACHE[key]


def reference_mask(rate, offset, packed) -> np.ndarray:
    key = ("m", rate, offset, packed)
    if key not in _REF_CACHE:
        _REF_CACHE[key] = dropkit.dropout_mask(N_BIG, rate, seed=99, offset=offset, packed=packed,
                                               backend="numpy")
    return _REF_CACHE[key]


def test_big_size_is_above_the_parallel_cutoff():
    assert N_BIG > 3 * CUTOFF and N_BIG % 128 != 0
    assert all(o % 2 == 1 for o in BIG_OFFSETS)
    assert BIG_OFFSETS[1] + N_BIG == TWO64


@pytest.mark.parametrize("offset", BIG_OFFSETS, ids=["o=12345", "o=2**64-n"])
@pytest.mark.parametrize("rate", BIG_RATES, ids=lambda r: f"r={r:.3g}")
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"threads={t}")
@pytest.mark.parametrize("simd", TARGETS)
def test_threads_and_simd_match_reference(simd, threads, rate, offset, restore_runtime):
    dropkit.set_simd_target(simd)
    dropkit.set_num_threads(threads)
    assert (dropkit.simd_target(), dropkit.get_num_threads()) == (simd, threads)
    x = big_input(np.float32)
    got = dropkit.dropout(x, rate, seed=99, offset=offset, backend="core")
    assert_bits_equal(got, reference_dropout(np.float32, rate, offset), "dropout")
    for packed in (False, True):
        m = dropkit.dropout_mask(N_BIG, rate, seed=99, offset=offset, packed=packed, backend="core")
        assert_bits_equal(m, reference_mask(rate, offset, packed), f"mask packed={packed}")


@pytest.mark.parametrize("dtype", [np.float16, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"threads={t}")
def test_threads_other_dtypes(dtype, threads, restore_runtime):
    dropkit.set_num_threads(1)
    x = big_input(dtype)
    one = dropkit.dropout(x, 0.3, seed=5, offset=777, backend="core")
    dropkit.set_num_threads(threads)
    got = dropkit.dropout(x, 0.3, seed=5, offset=777, backend="core")
    assert_bits_equal(got, one, f"threads={threads} vs 1")
    back = dropkit.dropout_backward(x, 0.3, seed=5, offset=777, backend="core")
    assert_bits_equal(back, one, "backward")


@pytest.mark.parametrize("rate", BIG_RATES, ids=lambda r: f"r={r:.3g}")
@pytest.mark.parametrize("pair", list(itertools.combinations(TARGETS, 2)), ids=lambda p: "-vs-".join(p))
def test_simd_targets_pairwise(pair, rate, restore_runtime):
    x = big_input(np.float64)
    results = []
    for target in pair:
        dropkit.set_simd_target(target)
        y = dropkit.dropout(x, rate, seed=4242, offset=333, backend="core")
        m = dropkit.dropout_mask(N_BIG, rate, seed=4242, offset=333, packed=True, backend="core")
        results.append((y, m))
    assert_bits_equal(results[0][0], results[1][0], f"dropout {pair}")
    assert_bits_equal(results[0][1], results[1][1], f"packed mask {pair}")


@pytest.mark.parametrize("threads", [2, 3, 4], ids=lambda t: f"threads={t}")
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=lambda d: np.dtype(d).name)
def test_chunked_threaded_calls_equal_one_call(dtype, threads, restore_runtime):
    """Pieces of arbitrary (odd, above-cutoff and tiny) sizes on several threads, glued together,
    equal one single-threaded call over the whole array; and so do the masks."""
    offset, seed, rate = 987_654_321, 2**63 + 11, 0.25
    x = big_input(dtype)
    dropkit.set_num_threads(1)
    whole = dropkit.dropout(x, rate, seed=seed, offset=offset, backend="core")
    whole_mask = dropkit.dropout_mask(N_BIG, rate, seed=seed, offset=offset, backend="core")
    dropkit.set_num_threads(threads)
    cuts = [0, 1, 130, CUTOFF + 131, CUTOFF + 140, 2 * CUTOFF + 999, N_BIG - 3, N_BIG]
    pieces, masks = [], []
    for a, b in zip(cuts, cuts[1:]):
        pieces.append(dropkit.dropout(x[a:b], rate, seed=seed, offset=offset + a, backend="core"))
        masks.append(dropkit.dropout_mask(b - a, rate, seed=seed, offset=offset + a, backend="core"))
    assert_bits_equal(np.concatenate(pieces), whole, "glued dropout")
    np.testing.assert_array_equal(np.concatenate(masks), whole_mask)


def test_in_place_threaded_equals_out_of_place(restore_runtime):
    dropkit.set_num_threads(3)
    x = big_input(np.float32)
    want = dropkit.dropout(x, 0.4, seed=8, offset=1, backend="core")
    y = x.copy()
    got = dropkit.dropout(y, 0.4, seed=8, offset=1, out=y, backend="core")
    assert got is y
    assert_bits_equal(y, want, "in place")


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_mask_independent_of_layout(backend):
    """Same positions, different shapes and strides: same bits."""
    base = finite_input(24 * 35, np.float32, seed=4).reshape(24, 35)
    flat = dropkit.dropout(base.ravel(), 0.3, seed=6, offset=11, backend=backend)
    for view in (base.reshape(4, 6, 35), base.reshape(840, 1)):
        got = dropkit.dropout(view, 0.3, seed=6, offset=11, backend=backend)
        assert_bits_equal(got.ravel(), flat, f"shape {view.shape}")
    # A non-contiguous input is taken in C order of its own elements.
    t = base.T
    got = dropkit.dropout(t, 0.3, seed=6, offset=11, backend=backend)
    want = dropkit.dropout(np.ascontiguousarray(t), 0.3, seed=6, offset=11, backend=backend)
    assert_bits_equal(got, want, "transposed")


# ------------------------------------------------------------------------------------------
# Streaming (non-temporal) stores: the core switches to them for outputs larger than
# _core.STREAMING_THRESHOLD_BYTES; store="streaming" forces them here, at small sizes, on every
# target, dtype and alignment (the SIMD paths peel elements until the output is aligned).
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("simd", TARGETS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 15, 33, 1000, 70001])
@pytest.mark.parametrize("misalign", [0, 1, 3])
def test_streaming_stores_give_the_same_bits(simd, dtype, n, misalign):
    from dropkit.reference import _kernels as ref

    rng = np.random.default_rng(n + misalign)
    x = (rng.standard_normal(n) * 10).astype(dtype)
    buf = np.zeros(n + 8, dtype=dtype)
    out = buf[misalign:misalign + n]  # C-contiguous, starts `misalign` elements past an aligned base
    expected = np.empty_like(x)
    t, seed, offset = round(0.3 * 2**32), 99, 12345
    ref.bernoulli_apply(x, expected, t, 1 / 0.7, seed, offset)
    dropkit._core.bernoulli_apply(x, out, t, 1 / 0.7, seed, offset, 2, simd, "streaming")
    assert_bits_equal(out, expected, f"{simd} {np.dtype(dtype)} n={n} misalign={misalign}")
    assert not buf[:misalign].any() and not buf[misalign + n:].any()  # nothing written outside


def test_store_mode_is_checked():
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="bogus"):
        dropkit._core.bernoulli_apply(x, np.empty_like(x), 0, 1.0, 0, 0, 1, "", "bogus")


def test_automatic_streaming_above_the_threshold_gives_the_same_bits():
    # Just past the size at which "auto" switches to streaming stores (3/8 of the last-level cache).
    n = dropkit._core.STREAMING_THRESHOLD_BYTES // 4 + 4099
    x = np.random.default_rng(5).standard_normal(n).astype(np.float32)
    cached = np.empty_like(x)
    dropkit._core.bernoulli_apply(x, cached, round(0.5 * 2**32), 2.0, 7, 3, 2, "", "cached")
    auto = dropkit.dropout(x, 0.5, seed=7, offset=3)
    assert_bits_equal(auto, cached)
    ref = dropkit.reference.dropout(x[:70000], 0.5, seed=7, offset=3)
    assert_bits_equal(auto[:70000], ref)
