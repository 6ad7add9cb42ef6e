"""DropBlock (docs/rng.md §17): the mask rebuilt from the document, both backends, timm's
semantics, statistics, the backward, layers and dropkit.torch_blocks.DropBlock2d.

Expected values come from: the stream rebuilt from ``dropkit.philox4x32_10`` alone and the rules
of §17 written out with Python loops (``spec_keep``); timm's ``drop_block_2d`` formula written
with torch ops and fed the same uniforms (timm ``timm/layers/drop.py``); exact probabilities
for the statistics; finite differences for the backward.
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

import dropkit
from dropkit import blocks
from dropkit.block_layers import DropBlock1D, DropBlock2D, DropBlock3D

from _helpers import TWO32, TWO64, assert_same_bits, bits

FLOATS = (np.float16, np.float32, np.float64)


# ------------------------------------------------------------------------------------------
# The document, rebuilt without any dropout code
# ------------------------------------------------------------------------------------------


def stream_u(seed: int, offset: int, n: int) -> np.ndarray:
    """u(g), g = offset .. offset + n - 1, from philox4x32_10 (docs/rng.md §2-3), uint64."""
    b0, b1 = offset // 128, (offset + n - 1) // 128
    blocks_ = np.arange(b1 - b0 + 1, dtype=object) + b0
    counter = np.array([[[int(b) % TWO32, int(b) // TWO32, p, 0] for p in range(32)] for b in blocks_],
                       dtype=np.uint64)
    key = np.array([seed % TWO32, seed // TWO32], dtype=np.uint64)
    x = dropkit.philox4x32_10(counter, key).astype(np.uint64)  # (nb, 32, 4)
    lanes = np.arange(128)
    bit = (x[:, :, lanes // 32] >> (lanes % 32).astype(np.uint64)) & np.uint64(1)
    u = (bit << (np.uint64(31) - np.arange(32, dtype=np.uint64))[None, :, None]).sum(axis=1, dtype=np.uint64)
    lane0 = offset - 128 * b0
    return u.reshape(-1)[lane0:lane0 + n]


def spec_k(spatial, block_size):
    """§17.2."""
    if isinstance(block_size, int):
        return (min((block_size,) + tuple(spatial)),) * len(spatial)
    return tuple(min(b, s) for b, s in zip(block_size, spatial))


def spec_t(spatial, k, rate, gamma_scale):
    """§17.3: gamma left to right in binary64, t = round_half_even(min(gamma, 1) * 2**32)."""
    m, kk = math.prod(spatial), math.prod(k)
    v = math.prod(s - kd + 1 for s, kd in zip(spatial, k))
    gamma = gamma_scale * rate * m / kk / v
    return round(min(gamma, 1.0) * TWO32)


def spec_keep(noise_shape, k, t, seed, offset):
    """§17.4-17.5 with loops: seeds at valid centres where u(g) < t, each drops its block."""
    total = math.prod(noise_shape)
    u = stream_u(seed, offset, total).reshape(noise_shape)
    spatial = noise_shape[2:]
    keep = np.ones(noise_shape, dtype=bool)
    for idx in np.ndindex(*noise_shape):
        c = idx[2:]
        valid = all(kd // 2 <= cd <= s - 1 - (kd - 1) // 2 for cd, kd, s in zip(c, k, spatial))
        if valid and int(u[idx]) < t:
            cells = tuple(slice(cd - kd // 2, cd + (kd - 1) // 2 + 1) for cd, kd in zip(c, k))
            keep[idx[:2] + cells] = False
    return keep


def to_cf(shape, channels_last):
    return (shape[0], shape[-1]) + tuple(shape[1:-1]) if channels_last else tuple(shape)


# shape of x, block_size, data_format, batchwise
CONFIGS = [
    pytest.param((2, 3, 12, 12), 3, "channels_first", False, id="2d-k3"),
    pytest.param((2, 12, 11, 3), (2, 5), "channels_last", False, id="2d-last-k2x5"),
    pytest.param((3, 2, 40), 4, "channels_first", False, id="1d-k4-even"),
    pytest.param((1, 2, 5, 6, 7), 3, "channels_first", False, id="3d-k3"),
    pytest.param((2, 2, 5, 6), 9, "channels_first", False, id="2d-block-exceeds-map"),
    pytest.param((3, 2, 10, 10), 3, "channels_first", True, id="2d-batchwise"),
    pytest.param((2, 9, 8, 2), 6, "channels_last", True, id="2d-last-batchwise-even"),
]
SEED_OFFSETS = [
    pytest.param(7, 0, id="s7-o0"),
    pytest.param(TWO64 - 1, 123457, id="smax-o123457"),
    pytest.param(0xDEADBEEF_CAFEBABE, 128 * TWO32 - 50, id="o-crosses-block-2**32"),
]


@pytest.mark.parametrize("rate,gamma_scale", [(0.3, 1.0), (0.9, 2.5), (1.0, 1.0)], ids=["r0.3", "r0.9g2.5", "r1"])
@pytest.mark.parametrize("seed,offset", SEED_OFFSETS)
@pytest.mark.parametrize("shape,block_size,data_format,batchwise", CONFIGS)
def test_mask_and_values_follow_the_document(backend, shape, block_size, data_format, batchwise, seed, offset,
                                             rate, gamma_scale):
    last = data_format == "channels_last"
    cf = to_cf(shape, last)
    noise = ((1 if batchwise else cf[0]),) + cf[1:]
    k = spec_k(cf[2:], block_size)
    t = spec_t(cf[2:], k, rate, gamma_scale)
    keep_cf = spec_keep(noise, k, t, seed, offset)
    kept = int(keep_cf.sum())
    keep = np.broadcast_to(keep_cf, cf)
    keep = np.moveaxis(keep, 1, -1) if last else keep
    kw = dict(seed=seed, offset=offset, data_format=data_format, gamma_scale=gamma_scale, batchwise=batchwise,
              backend=backend)
    np.testing.assert_array_equal(blocks.drop_block_mask(shape, rate, block_size, **kw), keep)
    rng = np.random.default_rng(1)
    for dt in FLOATS:
        x = (rng.standard_normal(shape) * 3).astype(dt)
        x.flat[:4] = [np.nan, -np.inf, -0.0, np.inf]  # dropped: +0.0 whatever x held (§17.7, §5)
        ct = np.float64 if dt == np.float64 else np.float32
        scale = ct(0.0) if kept == 0 else ct(keep_cf.size / kept)  # §17.6
        with np.errstate(all="ignore"):
            want = np.where(keep, x.astype(ct) * scale, ct(0.0)).astype(dt)
        assert_same_bits(blocks.drop_block(x, rate, block_size, **kw), want)
        assert_same_bits(blocks.drop_block_backward(x, rate, block_size, **kw), want)


def test_threshold_is_timms_gamma_when_the_block_fits():
    # timm/layers/drop.py::drop_block_2d:
    #   gamma = gamma_scale * drop_prob * total_size / clipped_block_size ** 2 / ((W - block_size + 1) * (H - block_size + 1))
    from dropkit.reference import _blocks as refb

    for (h, w), bs, p, gs in [((16, 16), 7, 0.1, 1.0), ((13, 20), 3, 0.25, 1.0), ((9, 9), 9, 0.5, 0.5),
                              ((32, 17), 5, 1 / 3, 1.7)]:
        cbs = min(bs, w, h)
        timm_gamma = gs * p * (w * h) / cbs ** 2 / ((w - bs + 1) * (h - bs + 1))
        gamma, t = refb.seed_threshold((h, w), (cbs, cbs), p, gs)
        assert gamma == timm_gamma
        assert t == round(timm_gamma * TWO32)


# ------------------------------------------------------------------------------------------
# timm's drop_block_2d on the same uniforms
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,block_size,batchwise", [((2, 3, 16, 16), 5, False), ((3, 2, 13, 10), 3, False),
                                                         ((2, 4, 12, 12), 7, True), ((1, 2, 7, 7), 7, False)])
def test_matches_timm_drop_block_2d_formula(shape, block_size, batchwise):
    """timm ``timm/layers/drop.py::drop_block_2d`` (fast=False), written with torch ops, fed the
    uniforms ``u(g) / 2**32`` of dropkit's positions: the same keep mask, and timm's
    ``numel / (sum + 1e-7)`` scale to within that 1e-7."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    seed, offset, p = 11, 5, 0.3
    b, c, h, w = shape
    cbs = min(block_size, w, h)
    gamma = p * (w * h) / cbs ** 2 / ((w - block_size + 1) * (h - block_size + 1))
    gamma_q = round(gamma * TWO32) / TWO32  # the threshold's gamma (a multiple of 2**-32, exact)
    nb = 1 if batchwise else b
    uniform = torch.from_numpy((stream_u(seed, offset, nb * c * h * w).astype(np.float64) / TWO32)
                               .reshape(nb, c, h, w))
    hi, wi = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    valid = ((hi >= cbs // 2) & (hi < h - (cbs - 1) // 2) & (wi >= cbs // 2) & (wi < w - (cbs - 1) // 2))
    valid = valid.reshape(1, 1, h, w).to(torch.float64)
    block_mask = ((2 - gamma_q - valid + uniform) >= 1).to(torch.float64)
    block_mask = -F.max_pool2d(-block_mask, kernel_size=cbs, stride=1, padding=cbs // 2)
    timm_scale = float(block_mask.numel() / (block_mask.sum() + 1e-7))
    x = np.random.default_rng(2).standard_normal(shape)
    y = blocks.drop_block(x, p, block_size, seed=seed, offset=offset, batchwise=batchwise)
    keep = np.broadcast_to(block_mask.numpy() == 1, shape)
    np.testing.assert_array_equal(y != 0, keep)
    kept = int(block_mask.sum())  # timm's + 1e-7 changes the scale by about 1e-7 / kept, relatively
    np.testing.assert_allclose(y[keep], x[keep] * timm_scale, rtol=2e-7 / kept + 1e-15)


# ------------------------------------------------------------------------------------------
# Backends, threads, targets, layouts, chunking
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,block_size,data_format", [((4, 8, 64, 64), 7, "channels_first"),
                                                          ((2, 33, 47, 5), (4, 9), "channels_last"),
                                                          ((2, 3, 9, 10, 11), 3, "channels_first"),
                                                          ((8, 4, 300), 13, "channels_first")])
def test_core_equals_reference_on_every_target(backend_on_target, shape, block_size, data_format):
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    kw = dict(seed=99, offset=1000, data_format=data_format)
    want = blocks.drop_block(x, 0.15, block_size, backend="numpy", **kw)
    assert_same_bits(blocks.drop_block(x, 0.15, block_size, backend=backend_on_target, **kw), want)


def test_thread_count_does_not_change_bits(restore_runtime):
    x = np.random.default_rng(4).standard_normal((8, 16, 96, 96)).astype(np.float32)
    outs = []
    for n in (1, 2, 3):
        dropkit.set_num_threads(n)
        outs.append(blocks.drop_block(x, 0.1, 7, seed=5, offset=3))
    assert_same_bits(outs[1], outs[0])
    assert_same_bits(outs[2], outs[0])


def test_channels_last_is_channels_first_moved():
    x = np.random.default_rng(5).standard_normal((3, 4, 14, 15)).astype(np.float32)
    y_cf = blocks.drop_block(x, 0.2, 5, seed=8)
    y_cl = blocks.drop_block(np.moveaxis(x, 1, -1), 0.2, 5, seed=8, data_format="channels_last")
    assert_same_bits(np.ascontiguousarray(np.moveaxis(y_cl, -1, 1)), y_cf)


def test_samples_at_their_offsets_give_the_slices_of_the_mask():
    # §17.4: sample n of (N, C, S) sits at offset + n * C * M, so a batch split in two keeps its bits
    shape, o = (6, 3, 10, 12), 77
    full = blocks.drop_block_mask(shape, 0.3, 3, seed=4, offset=o)
    per = 3 * 10 * 12
    part = blocks.drop_block_mask((2, 3, 10, 12), 0.3, 3, seed=4, offset=o + 2 * per)
    np.testing.assert_array_equal(part, full[2:4])


def test_batchwise_shares_sample_zeros_mask():
    shape = (5, 3, 12, 12)
    m = blocks.drop_block_mask(shape, 0.3, 3, seed=6, offset=9, batchwise=True)
    first = blocks.drop_block_mask(shape, 0.3, 3, seed=6, offset=9)[0]
    for n in range(shape[0]):
        np.testing.assert_array_equal(m[n], first)
    assert blocks.drop_block_noise_size(shape, batchwise=True) == 3 * 144
    assert blocks.drop_block_noise_size(shape) == 5 * 3 * 144


def test_block_larger_than_the_map_is_clipped():
    x = np.random.default_rng(6).standard_normal((2, 3, 6, 9))
    assert_same_bits(blocks.drop_block(x, 0.4, 50, seed=1), blocks.drop_block(x, 0.4, 6, seed=1))
    # one valid centre per map when the block is the whole (square) map: all or nothing
    m = blocks.drop_block_mask((50, 2, 5, 5), 0.5, 5, seed=2)
    per_map = m.reshape(100, 25)
    assert np.all(per_map.all(axis=1) | ~per_map.any(axis=1))
    assert 0 < per_map.all(axis=1).sum() < 100


# ------------------------------------------------------------------------------------------
# Statistics (exact expectations and variances of the document's mask)
# ------------------------------------------------------------------------------------------


def cover_matrix(spatial, k):
    """A[s, c] = 1 when the block of valid centre c contains s (§17.5)."""
    cells = list(np.ndindex(*spatial))
    centres = [c for c in cells if all(kd // 2 <= cd <= s - 1 - (kd - 1) // 2 for cd, kd, s in zip(c, k, spatial))]
    a = np.zeros((len(cells), len(centres)))
    for j, c in enumerate(centres):
        for i, s in enumerate(cells):
            a[i, j] = all(cd - kd // 2 <= sd <= cd + (kd - 1) // 2 for sd, cd, kd in zip(s, c, k))
    return a


@pytest.mark.parametrize("spatial,block_size,rate,seed", [((16, 16), 3, 0.1, 1), ((16, 16), 5, 0.2, 2),
                                                          ((16, 16), 7, 0.3, 3), ((50,), 5, 0.25, 4),
                                                          ((6, 7, 8), 3, 0.15, 5)])
def test_drop_fraction_within_4_sigma_of_its_expectation(backend, spatial, block_size, rate, seed):
    """Expectation ``sum_s 1 - q^{n(s)}`` and variance ``sum_{s,j} q^{|A_s u A_j|} - q^{n(s) + n(j)}``
    (``q = 1 - t / 2**32``, ``A_s`` the valid centres covering ``s``), maps independent."""
    k = spec_k(spatial, block_size)
    q = 1.0 - spec_t(spatial, k, rate, 1.0) / TWO32
    a = cover_matrix(spatial, k)
    n = a.sum(axis=1)
    union = n[:, None] + n[None, :] - a @ a.T
    mean_map = np.sum(1.0 - q ** n)
    var_map = np.sum(q ** union - q ** (n[:, None] + n[None, :]))
    maps = 256
    m = blocks.drop_block_mask((32, 8) + spatial, rate, block_size, seed=seed, backend=backend)
    dropped = int((~m).sum())
    assert abs(dropped - maps * mean_map) <= 4 * math.sqrt(maps * var_map), (dropped, maps * mean_map)
    # the paper's gamma aims at `rate` ignoring overlaps and borders: the same ballpark
    assert 0.4 * rate < dropped / m.size < 1.6 * rate


@pytest.mark.parametrize("spatial,block_size", [((40, 40), 7), ((33, 21), 4), ((60,), 9), ((9, 10, 11), 3)])
def test_dropped_region_is_a_union_of_whole_blocks(spatial, block_size):
    """Every dropped element lies in a complete k-block that is inside the map and fully dropped
    (opening: erode to the fully dropped valid blocks, dilate back, get the dropped set)."""
    m = blocks.drop_block_mask((4, 3) + spatial, 0.3, block_size, seed=7)
    dropped = ~m
    k = spec_k(spatial, block_size)
    full = np.zeros_like(dropped)  # valid anchors a (block a .. a + k - 1) whose block is all dropped
    anchors = tuple(slice(0, s - kd + 1) for s, kd in zip(spatial, k))
    full[(Ellipsis,) + anchors] = True
    for delta in itertools.product(*[range(kd) for kd in k]):
        src = tuple(slice(dd, dd + s - kd + 1) for dd, s, kd in zip(delta, spatial, k))
        full[(Ellipsis,) + anchors] &= dropped[(Ellipsis,) + src]
    back = np.zeros_like(dropped)
    for delta in itertools.product(*[range(kd) for kd in k]):
        dst = tuple(slice(dd, dd + s - kd + 1) for dd, s, kd in zip(delta, spatial, k))
        back[(Ellipsis,) + dst] |= full[(Ellipsis,) + anchors]
    np.testing.assert_array_equal(back, dropped)
    assert dropped.any() and not dropped.all()


@pytest.mark.parametrize("dt", FLOATS)
def test_scale_preserves_the_mean(dt):
    """For a constant input, sum(y) = kept * fl(T / kept) = T up to the rounding of the scale (and of
    the float16 product): the mean is preserved."""
    x = np.ones((8, 4, 20, 20), dt)
    unit = {np.float16: 2.0 ** -11, np.float32: 2.0 ** -24, np.float64: 2.0 ** -53}[dt]
    for seed in range(5):
        y = blocks.drop_block(x, 0.25, 5, seed=seed)
        kept = int((y != 0).sum())
        assert 0 < kept < x.size
        assert np.all(y[y != 0] == dt(x.size / kept))
        total = Fraction(float(y[y != 0][0])) * kept  # sum(y), exactly
        assert abs(total / x.size - 1) <= 2 * unit


def test_mean_of_random_input_is_preserved_on_average():
    rng = np.random.default_rng(9)
    x = rng.uniform(0.5, 1.5, (16, 8, 24, 24))
    means = [blocks.drop_block(x, 0.2, 5, seed=s).mean() for s in range(40)]
    # kept values are a sample of x scaled by numel / kept: the mean of y estimates mean(x)
    assert abs(np.mean(means) - x.mean()) < 4 * np.std(means) / math.sqrt(len(means)) + 1e-3


# ------------------------------------------------------------------------------------------
# Backward
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batchwise", [False, True])
def test_backward_finite_differences(batchwise):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 2, 9, 9))
    w = rng.standard_normal(x.shape)
    kw = dict(seed=3, offset=40, batchwise=batchwise)

    def loss(v):
        return float((w * blocks.drop_block(v, 0.3, 3, **kw)).sum())

    g = blocks.drop_block_backward(w, 0.3, 3, **kw)
    h = 1e-6
    for i in rng.choice(x.size, 40, replace=False):
        e = np.zeros(x.size)
        e[i] = h
        num = (loss(x + e.reshape(x.shape)) - loss(x - e.reshape(x.shape))) / (2 * h)
        assert num == pytest.approx(g.flat[i], rel=1e-6, abs=1e-7)  # cancellation in the sum: ~1e-9
    assert (g == 0).any() and (g != 0).any()


# ------------------------------------------------------------------------------------------
# Identity cases, out=, errors
# ------------------------------------------------------------------------------------------


def test_identity_cases():
    x = np.random.default_rng(11).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert blocks.drop_block(x, 0.3, 3, seed=1, training=False) is x
    assert blocks.drop_block(x, 0.0, 3, seed=1) is x
    assert blocks.drop_block(x, 0.3, 3, seed=1, gamma_scale=0.0) is x
    assert blocks.drop_block_backward(x, 0.0, 3, seed=1) is x
    e = np.zeros((0, 3, 8, 8), np.float32)
    assert blocks.drop_block(e, 0.3, 3, seed=1) is e
    out = np.empty_like(x)
    assert blocks.drop_block(x, 0.0, 3, seed=1, out=out) is out and np.array_equal(out, x)
    y = blocks.drop_block(x, 0.5, 3, seed=1)
    out = np.full_like(x, 7.0)
    assert blocks.drop_block(x, 0.5, 3, seed=1, out=out) is out
    assert_same_bits(out, y)
    xc = x.copy()
    blocks.drop_block(xc, 0.5, 3, seed=1, out=xc)  # in place
    assert_same_bits(xc, y)
    # non-contiguous input: the values of its contiguous copy
    big = np.random.default_rng(12).standard_normal((2, 3, 8, 16)).astype(np.float32)
    assert_same_bits(blocks.drop_block(big[..., ::2], 0.5, 3, seed=1),
                     blocks.drop_block(np.ascontiguousarray(big[..., ::2]), 0.5, 3, seed=1))


X4 = np.ones((2, 3, 8, 8), np.float32)


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(rate=1.5), ValueError, ["rate", "1.5"]),
    (dict(rate="a"), ValueError, ["rate", "'a'"]),
    (dict(block_size=0), ValueError, ["block_size", "0"]),
    (dict(block_size=2.0), TypeError, ["block_size", "2.0"]),
    (dict(block_size=True), TypeError, ["block_size", "True"]),
    (dict(block_size=(3, 3, 3)), ValueError, ["block_size", "(3, 3, 3)"]),
    (dict(block_size=(3, -1)), ValueError, ["block_size", "-1"]),
    (dict(data_format="NHWC"), ValueError, ["data_format", "'NHWC'"]),
    (dict(gamma_scale=-1.0), ValueError, ["gamma_scale", "-1.0"]),
    (dict(gamma_scale=float("inf")), ValueError, ["gamma_scale", "inf"]),
    (dict(gamma_scale="2"), TypeError, ["gamma_scale", "'2'"]),
    (dict(batchwise=1), TypeError, ["batchwise", "1"]),
    (dict(training="False"), TypeError, ["training", "'False'"]),
    (dict(seed=-1), ValueError, ["seed", "-1"]),
    (dict(seed=1.0), TypeError, ["seed", "1.0"]),
    (dict(offset=TWO64 - 10), ValueError, ["offset", str(TWO64 - 10)]),
    (dict(x=np.ones((2, 8), np.float32)), ValueError, ["x", "(2, 8)"]),
    (dict(x=np.ones((2, 3, 8, 8), np.int32)), TypeError, ["x", "int32"]),
    (dict(out=np.ones((2, 3, 8, 7), np.float32)), ValueError, ["out", "(2, 3, 8, 7)"]),
    (dict(backend="gpu"), ValueError, ["gpu"]),
])
def test_bad_arguments_are_named_and_nothing_is_written(kwargs, exc, words):
    args = dict(x=X4, rate=0.3, block_size=3, seed=1)
    args.update(kwargs)
    out = np.full((2, 3, 8, 8), 5.0, np.float32)
    if "out" not in kwargs and "x" not in kwargs:
        args["out"] = out
    with pytest.raises(exc) as info:
        blocks.drop_block(args.pop("x"), args.pop("rate"), args.pop("block_size"), **args)
    for w in words:
        assert w in str(info.value)
    assert np.all(out == 5.0)


# ------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls,shape", [(DropBlock1D, (2, 3, 30)), (DropBlock2D, (2, 3, 12, 12)),
                                       (DropBlock3D, (2, 3, 6, 6, 6))])
def test_layer_counter_backward_and_mask(cls, shape):
    x = np.random.default_rng(13).standard_normal(shape).astype(np.float32)
    layer = cls(0.3, 3, seed=21)
    y1 = layer.forward(x)
    assert layer.position == x.size
    assert_same_bits(y1, blocks.drop_block(x, 0.3, 3, seed=21, offset=0))
    g = np.random.default_rng(14).standard_normal(shape).astype(np.float32)
    assert_same_bits(layer.backward(g), blocks.drop_block(g, 0.3, 3, seed=21, offset=0))
    np.testing.assert_array_equal(layer.mask, y1 != 0)
    y2 = layer.forward(x)
    assert layer.position == 2 * x.size
    assert_same_bits(y2, blocks.drop_block(x, 0.3, 3, seed=21, offset=x.size))
    assert layer.forward(x, training=False) is x and layer.position == 2 * x.size
    assert layer.backward(g) is g and layer.mask is None
    layer.training = False
    assert layer(x) is x
    # batchwise advances by C * M
    lb = cls(0.3, 3, seed=21, batchwise=True)
    lb.forward(x)
    assert lb.position == x.size // shape[0]
    with pytest.raises(ValueError, match="expects a"):
        cls(0.3, 3).forward(np.ones((2,) * (len(shape) + 1), np.float32))
    with pytest.raises(RuntimeError):
        cls(0.3, 3).backward(g)
    with pytest.raises(TypeError, match="training"):
        layer.training = 1


def test_layer_reproduces_from_seed_and_works_in_sequential():
    from dropkit.nn import SGD, Conv2D, Dense, Flatten, Sequential, SoftmaxCrossEntropy

    rng = np.random.default_rng(15)
    x = rng.standard_normal((8, 1, 12, 12)).astype(np.float32)
    yl = rng.integers(0, 3, 8)

    def run():
        model = Sequential([Conv2D(4, 3, padding="same", activation="relu"), DropBlock2D(0.2, 3),
                            Flatten(), Dense(3)], seed=5)
        loss, opt = SoftmaxCrossEntropy(), SGD(0.1)
        losses = []
        for _ in range(3):
            losses.append(loss(model.forward(x, True), yl))
            model.backward(loss.backward())
            opt.step(model.params, model.grads)
        return losses, model.layers[1].position

    a, b = run(), run()
    assert a == b and a[1] == 3 * 8 * 4 * 144
    assert all(np.isfinite(a[0]))


# ------------------------------------------------------------------------------------------
# dropkit.torch_blocks.DropBlock2d
# ------------------------------------------------------------------------------------------


def test_torch_drop_block_2d_bits_grad_and_module():
    torch = pytest.importorskip("torch")
    from dropkit import torch_blocks as tb

    x = torch.randn(2, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    want = blocks.drop_block(x.detach().numpy(), 0.2, 5, seed=3, offset=7)
    y = tb.drop_block_2d(x, 0.2, 5, seed=3, offset=7)
    assert np.array_equal(bits(y.detach().numpy()), bits(want))
    assert torch.autograd.gradcheck(lambda t: tb.drop_block_2d(t, 0.2, 5, seed=3, offset=7), (x,))
    y.backward(torch.ones_like(y))
    assert np.array_equal(x.grad.numpy(), blocks.drop_block(np.ones(x.shape), 0.2, 5, seed=3, offset=7))
    # the module: timm's arguments, a counter, eval and drop_prob 0 are the identity
    m = tb.DropBlock2d(0.2, 5, 1.0, False, False, True, True, seed=4)  # positional, as timm
    xs = x.detach()
    y1 = m(xs)
    assert m.position == 3 * 256
    assert np.array_equal(y1.numpy(), blocks.drop_block(xs.numpy(), 0.2, 5, seed=4, batchwise=True))
    m.eval()
    assert m(xs) is xs
    assert tb.DropBlock2d(0.0, seed=1)(xs) is xs
    assert "position" not in str(m.state_dict().keys())
    # inplace writes into the input
    t = xs.clone()
    ref = tb.drop_block_2d(t, 0.2, 5, seed=9)
    out = tb.drop_block_2d(t, 0.2, 5, seed=9, inplace=True)
    assert out is t and torch.equal(t, ref)
    # bfloat16 through float32 (rounded once)
    tb16 = xs.to(torch.bfloat16)
    y16 = tb.drop_block_2d(tb16, 0.2, 5, seed=9)
    assert torch.equal(y16, tb.drop_block_2d(tb16.float(), 0.2, 5, seed=9).to(torch.bfloat16))


def test_torch_drop_block_refusals():
    torch = pytest.importorskip("torch")
    from dropkit import torch_blocks as tb

    with pytest.raises(ValueError, match="with_noise"):
        tb.DropBlock2d(0.1, 7, with_noise=True)
    with pytest.raises(ValueError, match="with_noise"):
        tb.drop_block_2d(torch.ones(1, 1, 8, 8), 0.1, 3, with_noise=True, seed=1)
    with pytest.raises(ValueError, match="4-D"):
        tb.DropBlock2d(0.1, 3, seed=1)(torch.ones(1, 8, 8))
    with pytest.raises(ValueError, match="block_size"):
        tb.DropBlock2d(0.1, 0)
    with pytest.raises(ValueError, match="drop_prob"):
        tb.DropBlock2d(1.5, 3)


def test_torch_drop_block_compiles_to_one_graph():
    torch = pytest.importorskip("torch")
    from dropkit import torch_blocks as tb

    torch._dynamo.reset()
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    drop = tb.DropBlock2d(0.2, 3, seed=6)
    model = torch.compile(torch.nn.Sequential(conv, drop), fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 2, 10, 10)
    y1, y2 = model(x), model(x)
    assert drop.position == 2 * 2 * 3 * 100
    with torch.no_grad():
        h = conv(x).numpy()
    assert np.array_equal(y2.detach().numpy(), blocks.drop_block(h, 0.2, 3, seed=6, offset=600))
    y2.sum().backward()
    assert conv.weight.grad is not None


@pytest.mark.parametrize("shape,k,batchwise,last", [((3, 4, 20, 21), (5, 5), False, False),
                                                    ((2, 19, 23, 3), (4, 7), True, True),
                                                    ((2, 3, 50), (8,), False, False),
                                                    ((1, 2, 6, 7, 8), (3, 2, 5), False, False)])
@pytest.mark.parametrize("t", [round(0.05 * TWO32), TWO32])
def test_numpy_twin_of_the_kernel_equals_reference(shape, k, batchwise, last, t):
    """dropkit.blocks.drop_block_apply (the NumPy twin used when the core has no kernel or for
    more than 3 spatial axes) against the reference, same arguments."""
    from dropkit.reference import _blocks as refb

    x = np.random.default_rng(16).standard_normal(shape).astype(np.float32)
    a = blocks.drop_block_apply(x, np.empty_like(x), t, k, 3, 11, batchwise, last)
    b = refb.drop_block_apply(x, np.empty_like(x), t, k, 3, 11, batchwise, last)
    assert_same_bits(a, b)


def test_four_spatial_axes_core_equals_reference():
    x = np.random.default_rng(17).standard_normal((2, 2, 4, 5, 6, 7)).astype(np.float32)
    assert_same_bits(blocks.drop_block(x, 0.4, 3, seed=2, backend="core"),
                     blocks.drop_block(x, 0.4, 3, seed=2, backend="numpy"))
