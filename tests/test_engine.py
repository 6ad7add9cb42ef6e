"""The C++ engine of the variants (cpp/core/engine.cpp) against its NumPy twins in
dropkit.reference._variants, bit for bit: every SIMD target, dtype, thread count, position map
(default, broadcast noise_shape, a block of a larger array) and offset; in place; bad input."""
from __future__ import annotations

import numpy as np
import pytest

import dropkit
from dropkit import _core
from dropkit.reference import _variants as R

TARGETS = dropkit.available_simd_targets()
DTYPES = (np.float16, np.float32, np.float64)
# (shape, noise_shape): None = the default map
MAPS = [
    ((1000,), None),
    ((70_001,), None),  # several thread chunks, a ragged end
    ((3, 5, 7, 11), (3, 5, 1, 1)),  # spatial, channels first
    ((4, 9, 33), (4, 1, 33)),  # temporal: one mask for all time steps
    ((2, 3, 4), (1, 3, 1)),
    ((64, 1100), (64, 1)),  # DropPath-like: one value per sample, long runs
    ((0, 5), (1, 5)),
    ((), None),
]
RATE = 0.3
T = round(RATE * 2**32)


def _kernels():
    lg, it, sc, _p = R.concrete_params(0.3, 0.1)
    a, b, fill = R.alpha_constants(RATE)
    return {
        "gaussian": (lambda k, x, y, off, ps, th, simd: k.gaussian_apply(x, y, 0.7, 99, off, ps, th, simd)),
        "concrete": (lambda k, x, y, off, ps, th, simd: k.concrete_apply(x, y, lg, it, sc, 99, off, ps, th, simd)),
        "alpha": (lambda k, x, y, off, ps, th, simd: k.alpha_apply(x, y, T, a, b, fill, 99, off, ps, th, simd)),
        "bernoulli": (lambda k, x, y, off, ps, th, simd: k.bernoulli_apply_nd(x, y, T, 1 / 0.7, 99, off, ps, th, simd)),
    }


KERNELS = _kernels()


def _x(shape, dtype, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    if x.size > 3:  # specials: the kernels must pass them through exactly as the reference does
        x.reshape(-1)[:4] = [np.nan, np.inf, -0.0, -np.inf]
    return x


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape,noise_shape", MAPS, ids=str)
def test_core_equals_reference(name, dtype, shape, noise_shape):
    x = _x(shape, dtype)
    ps = None if noise_shape is None else R.noise_pstrides(shape, noise_shape)
    run = KERNELS[name]
    for off in (0, 3, 2**40 + 5):
        want = run(R, x, np.empty_like(x), off, ps, 1, "")
        for simd in TARGETS:
            for threads in (1, 2, 3):
                _same(run(_core, x, np.empty_like(x), off, ps, threads, simd), want)


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("run", [37, 5003])
def test_broadcast_runs_above_the_streaming_threshold(name, dtype, run):
    """Outputs larger than STREAMING_THRESHOLD_BYTES take the streaming broadcast path (runs
    applied as one contiguous range, block by block, keep bits expanded per run): runs of 37
    elements start at every alignment and several share a block; runs of 5003 span blocks;
    specials sit in dropped and kept runs."""
    n_runs = _core.STREAMING_THRESHOLD_BYTES // (run * np.dtype(dtype).itemsize) + 100
    shape = (n_runs // 10, 10, run)
    x = _x(shape, dtype, seed=5)
    x[:, :, run - 1] = np.nan  # the last element of every run (dropped ones must give the fill)
    ps = R.noise_pstrides(shape, (shape[0], 10, 1))
    run = KERNELS[name]
    want = run(R, x, np.empty_like(x), 7, ps, 1, "")
    for simd in TARGETS:
        _same(run(_core, x, np.empty_like(x), 7, ps, 2, simd), want)
        y = x.copy()
        _same(run(_core, y, y, 7, ps, 1, simd), want)  # in place


@pytest.mark.parametrize("name", ["alpha", "bernoulli"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_default_map_above_the_streaming_threshold(name, dtype):
    """The fused walks (standard dropout; alpha dropout's affine form) with streaming stores: an
    odd size past STREAMING_THRESHOLD_BYTES, an offset off the tile grid, specials, every target."""
    n = _core.STREAMING_THRESHOLD_BYTES // np.dtype(dtype).itemsize + 1001
    x = _x((n,), dtype, seed=6)
    run = KERNELS[name]
    want = run(R, x, np.empty_like(x), 77, None, 1, "")
    for simd in TARGETS:
        _same(run(_core, x, np.empty_like(x), 77, None, 2, simd), want)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_block_of_a_larger_array(name):
    """A block with the global strides and its corner's offset gives the slice of the whole call."""
    g = _x((37, 300), np.float32, seed=3)
    run = KERNELS[name]
    whole = run(_core, g, np.empty_like(g), 11, None, 2, "")
    blk = np.ascontiguousarray(g[5:20, 100:260])
    ps = R.block_pstrides(g.shape)
    part = run(_core, blk, np.empty_like(blk), 11 + 5 * 300 + 100, ps, 2, "")
    _same(part, whole[5:20, 100:260])


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_in_place(name):
    x = _x((5, 6, 700), np.float32)
    ps = R.noise_pstrides(x.shape, (5, 6, 1))
    run = KERNELS[name]
    want = run(_core, x, np.empty_like(x), 0, ps, 2, "")
    y = x.copy()
    run(_core, y, y, 0, ps, 2, "")
    _same(y, want)


def test_noise_shape_equal_to_shape_is_standard_dropout():
    x = _x((8, 1000), np.float32)
    std = dropkit.dropout(x, RATE, seed=99, offset=7)
    y = _core.bernoulli_apply_nd(x, np.empty_like(x), T, 1 / (1 - RATE), 99, 7, R.noise_pstrides(x.shape, x.shape), 2, "")
    _same(y, std)


def test_errors_name_the_problem():
    x = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="pstrides"):
        _core.gaussian_apply(x, np.empty_like(x), 0.5, 1, 0, (1,), 1, "")
    with pytest.raises(ValueError, match="2\\*\\*64"):
        _core.gaussian_apply(x, np.empty_like(x), 0.5, 1, 2**64 - 3, None, 1, "")
    with pytest.raises(TypeError, match="dtype"):
        _core.alpha_apply(x, np.empty(x.shape, np.float64), T, 1.0, 0.0, 0.0, 1, 0, None, 1, "")
    with pytest.raises(ValueError, match="shape"):
        _core.bernoulli_apply_nd(x, np.empty((5, 4), np.float32), T, 2.0, 1, 0, None, 1, "")
    with pytest.raises(ValueError, match="threshold"):
        _core.alpha_apply(x, np.empty_like(x), 2**32 + 1, 1.0, 0.0, 0.0, 1, 0, None, 1, "")
    with pytest.raises(ValueError, match="sigma"):
        _core.gaussian_apply(x, np.empty_like(x), float("nan"), 1, 0, None, 1, "")
    buf = np.zeros(4 * 20 + 1, np.uint8)
    mis = buf[1:].view(np.float32).reshape(4, 5)
    with pytest.raises(ValueError, match="aligned"):
        _core.gaussian_apply(x, mis, 0.5, 1, 0, None, 1, "")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize(
    "shape,rshape", [((7, 300), (300,)), ((3, 4, 2500), (3, 1, 2500)), ((40_000,), (40_000,)), ((5, 6), (5, 1)),
                     ((0, 3), (3,)), ((), ())], ids=str)
def test_rate_arrays_core_equals_reference(dtype, shape, rshape):
    rng = np.random.default_rng(7)
    x = _x(shape, dtype)
    rates = rng.uniform(0, 1, rshape)
    if rates.size > 3:
        rates.reshape(-1)[:3] = [0.0, 1.0, 1 - 2.0**-40]  # keep all, drop all, threshold 2**32
    t = R.rate_thresholds(rates)
    s = R.rate_scales(rates, dtype)
    want = R.bernoulli_apply_nd(x, np.empty_like(x), t, s, 5, 77)
    for simd in TARGETS:
        for threads in (1, 2):
            _same(_core.bernoulli_apply_nd(x, np.empty_like(x), t, s, 5, 77, None, threads, simd), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("features", [1, 3, 32, 100, 1024, 2000])
def test_rates_per_feature_core_equals_reference(dtype, features):
    """Rates along the last axis only take the periodic planes (made once per call): every feature
    count (multiple of 32 or not), offsets at every phase mod 32, several thread chunks."""
    rng = np.random.default_rng(features)
    rows = max(3, 70_000 // features)
    x = _x((rows, features), dtype, seed=features)
    rates = rng.uniform(0, 1, (1, features))
    rates.reshape(-1)[:3] = [0.0, 1.0, 1 - 2.0**-40][:features]  # keep all, drop all, threshold 2**32
    t = R.rate_thresholds(rates)
    s = R.rate_scales(rates, dtype)
    for off in (0, 5, 2**40 + 37):
        want = R.bernoulli_apply_nd(x, np.empty_like(x), t, s, 9, off)
        for simd in TARGETS:
            _same(_core.bernoulli_apply_nd(x, np.empty_like(x), t, s, 9, off, None, 2, simd), want)
            _same(_core.bernoulli_apply_nd(x, np.empty_like(x), t[0], s[0], 9, off, None, 1, simd), want)


def test_constant_rate_array_is_the_scalar_rate():
    x = _x((16, 4096), np.float32)
    t = np.full(4096, T, dtype=np.uint64)
    s = np.full(4096, 1 / (1 - RATE))
    y = _core.bernoulli_apply_nd(x, np.empty_like(x), t, s, 5, 3, None, 2, "")
    _same(y, dropkit.dropout(x, RATE, seed=5, offset=3))


def test_rate_arrays_take_any_position_map():
    """The core runs rate arrays with a broadcast map itself (no TypeError, no reference fallback);
    rate arrays that do not broadcast to x are still refused."""
    x = _x((4, 5), np.float32)
    t = np.array([0, T, 2**31, 2**32 - 1, 2**32], np.uint64)
    ps = R.noise_pstrides(x.shape, (4, 1))
    want = R.bernoulli_apply_nd(x, np.empty_like(x), t, 2.0, 1, 0, ps)
    _same(_core.bernoulli_apply_nd(x, np.empty_like(x), t, 2.0, 1, 0, ps, 1, ""), want)
    with pytest.raises(ValueError, match="broadcast"):
        _core.bernoulli_apply_nd(x, np.empty_like(x), np.full(3, T), 2.0, 1, 0, None, 1, "")
    with pytest.raises(ValueError, match="broadcast"):
        _core.bernoulli_apply_nd(x, np.empty_like(x), np.full(3, T), 2.0, 1, 0, ps, 1, "")
    with pytest.raises(ValueError, match="2\\*\\*64"):
        _core.bernoulli_apply_nd(x, np.empty_like(x), t, 2.0, 1, 2**64 - 3, ps, 1, "")


# Rate arrays x position maps (docs/rng.md sections 8 and 9): (shape, noise_shape or "block", rate shape).
# "block": x is the block [10:290, 50:650] of a (300, 700) array with its global strides (8.2),
# positions spread out over more than x.size (the sparse path, windows of uniforms).
RATE_MAPS = [
    ((3, 5, 7, 11), (3, 5, 1, 1), (1, 5, 1, 11)),
    ((4, 9, 33), (4, 1, 33), (9, 1)),  # rates differ along the broadcast axis
    ((2, 3, 4), (1, 3, 1), (2, 1, 4)),
    ((64, 1100), (64, 1), (1100,)),  # DropPath-like: one position per sample, several thread chunks
    ((280, 600), "block", (600,)),
    ((280, 600), "block", (280, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape,noise_shape,rshape", RATE_MAPS, ids=str)
def test_rate_arrays_with_position_maps_core_equals_reference(dtype, shape, noise_shape, rshape):
    """Elements sharing a position share u but compare with their own thresholds: the core's
    uniform words at noise size (dense) or over windows (a block) give the reference's bits on
    every target, thread count and offset; specials in x; rates 0, 1 and 1 - 2**-40 (t = 2**32)."""
    rng = np.random.default_rng(len(shape) + rshape[-1])
    x = _x(shape, dtype, seed=2)
    rates = rng.uniform(0, 1, rshape)
    rates.reshape(-1)[:3] = [0.0, 1.0, 1 - 2.0**-40]  # keep all, drop all, threshold 2**32
    t = R.rate_thresholds(rates)
    s = R.rate_scales(rates, dtype)
    if noise_shape == "block":
        ps, corner = R.block_pstrides((300, 700)), 10 * 700 + 50
    else:
        ps, corner = R.noise_pstrides(shape, noise_shape), 0
    for off in (0, 3, 2**40 + 5):
        want = R.bernoulli_apply_nd(x, np.empty_like(x), t, s, 13, off + corner, ps)
        for simd in TARGETS:
            for threads in (1, 2, 3):
                _same(_core.bernoulli_apply_nd(x, np.empty_like(x), t, s, 13, off + corner, ps, threads, simd), want)
    y = x.copy()  # in place
    _core.bernoulli_apply_nd(y, y, t, s, 13, off + corner, ps, 2, "")
    _same(y, want)


def _stream_u(seed, offset, n):
    """u(g) for g = offset .. offset + n - 1, built from philox4x32_10 as docs/rng.md section 3 says."""
    b0, b1 = offset // 128, (offset + n - 1) // 128
    counter = np.array([[[b % 2**32, b // 2**32, p, 0] for p in range(32)] for b in range(b0, b1 + 1)], np.uint32)
    words = dropkit.philox4x32_10(counter, np.array([seed % 2**32, seed // 2**32], np.uint32), backend="numpy")
    lanes = np.arange(128)
    bits = (words[:, :, lanes // 32].astype(np.uint64) >> (lanes % 32).astype(np.uint64)) & np.uint64(1)
    u = (bits << (np.uint64(31) - np.arange(32, dtype=np.uint64))[None, :, None]).sum(axis=1, dtype=np.uint64)
    return u.reshape(-1)[offset - 128 * b0:][:n]


@pytest.mark.parametrize("noise_shape", [(4, 1, 33), "block"], ids=str)
def test_rate_arrays_threshold_ties(noise_shape):
    """Thresholds u(pos) - 1, u(pos) and u(pos) + 1 along the broadcast axis: elements sharing a
    position compare the same u with their own thresholds, kept iff u >= t (ties kept), on every
    target and thread count (dense path, and the windows of a block of a larger array)."""
    off, seed = 2**40 + 5, 17
    if noise_shape == "block":  # x[2:5, 3:12, 10:43] of a (6, 14, 50) array
        shape, ps, off = (3, 9, 33), R.block_pstrides((6, 14, 50)), off + 2 * 700 + 3 * 50 + 10
    else:
        shape, ps = (4, 9, 33), R.noise_pstrides((4, 9, 33), noise_shape)
    x = _x(shape, np.float32, seed=6)
    rel = sum(i * p for i, p in zip(np.indices(shape), ps))  # pos - off (section 8)
    u = _stream_u(seed, off, int(rel.max()) + 1)[rel]
    delta = np.array([-1, 0, 1], np.int64)[np.arange(shape[1]) % 3][None, :, None]
    t = np.clip(u.astype(np.int64) + delta, 0, 2**32).astype(np.uint64)
    s = np.float32(1.25)
    want = np.where(u >= t, x * s, np.float32(0.0))
    assert (u >= t).any() and (u < t).any()
    _same(R.bernoulli_apply_nd(x, np.empty_like(x), t, s, seed, off, ps), want)
    for simd in TARGETS:
        for threads in (1, 2, 3):
            _same(_core.bernoulli_apply_nd(x, np.empty_like(x), t, s, seed, off, ps, threads, simd), want)


def test_rate_arrays_of_a_block_are_the_slice_of_the_whole():
    """8.2 with rate arrays: a block with the global strides and its corner's offset (the sparse
    path) gives the slice of the whole call (the default map, rates_apply)."""
    g = _x((300, 700), np.float32, seed=3)
    rates = np.random.default_rng(4).uniform(0, 1, (300, 1))
    t, s = R.rate_thresholds(rates), R.rate_scales(rates, np.float32)
    whole = _core.bernoulli_apply_nd(g, np.empty_like(g), t, s, 11, 7, None, 2, "")
    blk = np.ascontiguousarray(g[10:290, 50:650])
    part = _core.bernoulli_apply_nd(blk, np.empty_like(blk), t[10:290], s[10:290], 11, 7 + 10 * 700 + 50,
                                    R.block_pstrides(g.shape), 2, "")
    _same(part, whole[10:290, 50:650])


def test_rate_arrays_with_negative_strides():
    x = _x((6, 50, 40), np.float64)
    rates = np.random.default_rng(8).uniform(0, 1, (50, 40))
    t, s = R.rate_thresholds(rates)[::-1, ::-1], R.rate_scales(rates, np.float64)[::-1]
    ps = R.noise_pstrides(x.shape, (6, 1, 40))
    want = R.bernoulli_apply_nd(x, np.empty_like(x), t, s, 3, 9, ps)
    for simd in TARGETS:
        _same(_core.bernoulli_apply_nd(x, np.empty_like(x), t, s, 3, 9, ps, 2, simd), want)


def test_dropout_nd_runs_rate_arrays_with_noise_shape_in_the_core(monkeypatch):
    """dropkit.dropout_nd(rate=<array>, noise_shape=...) on the core never calls the reference."""
    x = _x((8, 16, 30), np.float32)
    rates = np.random.default_rng(9).uniform(0, 1, (16, 1))
    want = dropkit.dropout_nd(x, rates, seed=5, offset=2, noise_shape=(8, 1, 30), backend="numpy")

    def boom(*args, **kwargs):
        raise AssertionError("the reference ran")

    monkeypatch.setattr(R, "bernoulli_apply_nd", boom)
    _same(dropkit.dropout_nd(x, rates, seed=5, offset=2, noise_shape=(8, 1, 30), backend="core"), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n,offset", [(1000, 0), (50_000, 16_380), (7, 2**40 + 3), (0, 5)], ids=str)
def test_concrete_backward_core_equals_reference(dtype, n, offset):
    """dx and the logit gradient (the deterministic sum of section 15) bit for bit, any threads."""
    rng = np.random.default_rng(11)
    g = rng.standard_normal(n).astype(dtype)
    x = rng.standard_normal(n).astype(dtype)
    lg, it, sc, p = R.concrete_params(-0.7, 0.1)
    want_dx, want_sum = R.concrete_backward(g, x, np.empty_like(g), lg, it, sc, p, 21, offset)
    for simd in TARGETS:
        for threads in (1, 2, 3):
            dx, s = _core.concrete_backward(g, x, np.empty_like(g), lg, it, sc, p, 21, offset, threads, simd)
            _same(dx, want_dx)
            assert np.float64(s).tobytes() == np.float64(want_sum).tobytes()
    dx = g.copy()  # in place: dx is grad
    _core.concrete_backward(dx, x, dx, lg, it, sc, p, 21, offset, 2, "")
    _same(dx, want_dx)


@pytest.mark.parametrize("n,offset", [(0, 0), (1, 0), (100_000, 16_383), (50_000, 2**50 + 7)], ids=str)
def test_deterministic_sum_core_equals_reference(n, offset):
    v = np.random.default_rng(5).standard_normal(n) * 10.0 ** np.random.default_rng(6).integers(-8, 8, n)
    want = R.deterministic_sum(v, offset)
    for threads in (1, 2, 3):
        got = _core.deterministic_sum(v, offset, threads, "")
        assert np.float64(got).tobytes() == np.float64(want).tobytes()
