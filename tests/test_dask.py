"""dropkit.dask: bit for bit dropkit.dropout of the whole array, for any chunking and scheduler."""
from __future__ import annotations

import numpy as np
import pytest

import dropkit

da = pytest.importorskip("dask.array", reason="Dask is not installed: pip install 'dropkit[dask]'")
dd = pytest.importorskip("dropkit.dask", reason="dropkit.dask needs dask[array]")

SEED, OFFSET = 2**64 - 99, 2**63 + 12345

# (shape, chunkings): chunks splitting the last axis, ragged chunks, single elements, whole array.
CASES = [
    ((), [()]),
    ((0,), [(5,)]),
    ((4, 0, 3), [(2, 1, 2)]),
    ((1,), [(1,)]),
    ((101,), [(101,), (7,), ((50, 1, 50),)]),
    ((23, 19), [(23, 19), (5, 19), (23, 4), (6, 7), ((10, 13), (1, 17, 1)), (1, 1)]),
    ((6, 7, 9), [(2, 7, 9), (6, 7, 4), (4, 3, 9), (1, 5, 2), ((1, 5), (7,), (3, 3, 3))]),
    ((40, 200), [(40, 3), (13, 50)]),
]
PARAMS = [(shape, chunks) for shape, chunkings in CASES for chunks in chunkings]


def _data(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape, chunks", PARAMS, ids=str)
def test_bits_equal_the_whole_array(shape, chunks, dtype):
    x = _data(shape, dtype)
    X = da.from_array(x, chunks=chunks)
    Y = dd.dropout(X, 0.3, seed=SEED, offset=OFFSET)
    assert Y.chunks == X.chunks and Y.dtype == X.dtype  # no rechunking
    y = Y.compute(scheduler="sync")
    expect = dropkit.dropout(x, 0.3, seed=SEED, offset=OFFSET)
    assert y.shape == expect.shape and y.dtype == expect.dtype
    np.testing.assert_array_equal(y.reshape(-1).view(np.uint8), expect.reshape(-1).view(np.uint8))


@pytest.mark.parametrize("chunks", [(5, 19), (23, 4), ((10, 13), (1, 17, 1))], ids=str)
@pytest.mark.parametrize("rate, inverted", [(0.5, True), (0.1, False), (1.0, True), (1.0, False)])
def test_rates_and_classic_mode(chunks, rate, inverted):
    x = _data((23, 19), np.float32)
    X = da.from_array(x, chunks=chunks)
    y = dd.dropout(X, rate, seed=3, offset=17, inverted=inverted).compute(scheduler="sync")
    np.testing.assert_array_equal(y, dropkit.dropout(x, rate, seed=3, offset=17, inverted=inverted))


@pytest.mark.parametrize("rate", [0.0, 0.4, 1.0])
def test_evaluation_mode(rate):
    x = _data((8, 6), np.float64)
    X = da.from_array(x, chunks=(3, 4))
    assert dd.dropout(X, rate, seed=1, training=False) is X  # inverted: the identity
    y = dd.dropout(X, rate, seed=1, training=False, inverted=False).compute(scheduler="sync")
    np.testing.assert_array_equal(y, dropkit.dropout(x, rate, seed=1, training=False, inverted=False))
    if rate == 0.0:
        assert dd.dropout(X, rate, seed=1) is X


@pytest.mark.parametrize("grad_chunks", [(4, 6), (1, 2)], ids=str)
def test_backward_matches_and_chunking_may_differ_from_forward(grad_chunks):
    g = _data((8, 6), np.float32, seed=1)
    x = _data((8, 6), np.float32, seed=2)
    G = da.from_array(g, chunks=grad_chunks)
    dx = dd.dropout_backward(G, 0.25, seed=SEED, offset=OFFSET).compute(scheduler="sync")
    np.testing.assert_array_equal(dx, dropkit.dropout_backward(g, 0.25, seed=SEED, offset=OFFSET))
    # The gradient is zero exactly where the forward (other chunks) dropped.
    y = dd.dropout(da.from_array(x, chunks=(3, 5)), 0.25, seed=SEED, offset=OFFSET).compute(scheduler="sync")
    np.testing.assert_array_equal(dx == 0, (y == 0) | (g == 0))


# ------------------------------------------------------------------------------------------------
# noise_shape, the variants and rate arrays: each against the in-memory function, several chunkings
# ------------------------------------------------------------------------------------------------

ND_SHAPE = (6, 7, 9)
# splitting the last axis, ragged, single rows, one block; noise blocks straddle the array blocks
ND_CHUNKS = [(6, 7, 9), (2, 7, 9), (6, 7, 4), (1, 5, 2), ((1, 5), (7,), (3, 3, 3))]
NOISE = [None, (6, 1, 9), (1, 7, 1), (None, None, 1), (1, 1, 1)]

# name: (dask function, in-memory function, extra arguments); backward = forward on the gradient
VARIANTS = {
    "dropout": (lambda: dd.dropout, lambda: dropkit.dropout_nd, {}),
    "dropout-classic": (lambda: dd.dropout, lambda: dropkit.dropout_nd, {"inverted": False}),
    "dropout-classic-eval": (lambda: dd.dropout, lambda: dropkit.dropout_nd,
                             {"inverted": False, "training": False}),
    "dropout_backward": (lambda: dd.dropout_backward, lambda: dropkit.dropout_nd_backward, {}),
    "gaussian_dropout": (lambda: dd.gaussian_dropout, lambda: dropkit.gaussian_dropout, {}),
    "gaussian_dropout_backward": (lambda: dd.gaussian_dropout_backward,
                                  lambda: dropkit.gaussian_dropout_backward, {}),
    "alpha_dropout": (lambda: dd.alpha_dropout, lambda: dropkit.alpha_dropout, {}),
    "alpha_dropout_backward": (lambda: dd.alpha_dropout_backward, lambda: dropkit.alpha_dropout_backward, {}),
}


def _same(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got.reshape(-1).view(np.uint8), want.reshape(-1).view(np.uint8))


@pytest.mark.parametrize("noise_shape", NOISE, ids=str)
@pytest.mark.parametrize("chunks", ND_CHUNKS, ids=str)
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_and_noise_shape_equal_the_in_memory_function(name, chunks, noise_shape):
    lazy, eager, kw = VARIANTS[name]
    x = _data(ND_SHAPE, np.float32, seed=4)
    x.reshape(-1)[:3] = [np.nan, -0.0, np.inf]
    X = da.from_array(x, chunks=chunks)
    Y = lazy()(X, 0.3, seed=SEED, offset=OFFSET, noise_shape=noise_shape, **kw)
    assert Y.chunks == X.chunks
    _same(Y.compute(scheduler="sync"), eager()(x, 0.3, seed=SEED, offset=OFFSET, noise_shape=noise_shape, **kw))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_other_dtypes(name, dtype):
    lazy, eager, kw = VARIANTS[name]
    x = _data((5, 33), dtype, seed=5)
    for chunks, noise_shape in [((2, 10), None), ((5, 4), (5, 1)), ((3, 33), (1, 33))]:
        Y = lazy()(da.from_array(x, chunks=chunks), 0.45, seed=7, offset=3, noise_shape=noise_shape, **kw)
        _same(Y.compute(scheduler="sync"), eager()(x, 0.45, seed=7, offset=3, noise_shape=noise_shape, **kw))


@pytest.mark.parametrize("chunks", [(4, 5, 3, 6), (1, 2, 3, 4), ((1, 3), (2, 3), (3,), (4, 2))], ids=str)
def test_feature_alpha_dropout_whole_channels_across_blocks(chunks):
    x = _data((4, 5, 3, 6), np.float64, seed=6)
    X = da.from_array(x, chunks=chunks)
    y = dd.feature_alpha_dropout(X, 0.4, seed=SEED, offset=OFFSET).compute(scheduler="sync")
    _same(y, dropkit.feature_alpha_dropout(x, 0.4, seed=SEED, offset=OFFSET))
    g = dd.feature_alpha_dropout_backward(X, 0.4, seed=SEED, offset=OFFSET).compute(scheduler="sync")
    _same(g, dropkit.feature_alpha_dropout_backward(x, 0.4, seed=SEED, offset=OFFSET))
    fill = dropkit.reference._variants.alpha_constants(0.4)[2]
    dropped = (y == fill).all(axis=(2, 3))  # whole (sample, channel) maps share one decision
    assert dropped.any() and not dropped.all()
    assert ((y == fill).any(axis=(2, 3)) == dropped).all()


@pytest.mark.parametrize("rate_shape", [(9,), (7, 1), (6, 1, 1), ND_SHAPE], ids=str)
@pytest.mark.parametrize("chunks", [(2, 7, 4), ((1, 5), (3, 4), (3, 3, 3))], ids=str)
@pytest.mark.parametrize("kw", [{}, {"inverted": False}, {"training": False, "inverted": False},
                                {"noise_shape": (None, 1, None)}], ids=str)
def test_rate_arrays(rate_shape, chunks, kw):
    rate = np.random.default_rng(7).uniform(0, 1, rate_shape)
    rate.reshape(-1)[:2] = [0.0, 1.0]
    x = _data(ND_SHAPE, np.float32, seed=8)
    X = da.from_array(x, chunks=chunks)
    _same(dd.dropout(X, rate, seed=SEED, offset=OFFSET, **kw).compute(scheduler="sync"),
          dropkit.dropout_nd(x, rate, seed=SEED, offset=OFFSET, **kw))
    if "training" not in kw:
        _same(dd.dropout_backward(X, rate, seed=SEED, offset=OFFSET, **kw).compute(scheduler="sync"),
              dropkit.dropout_nd_backward(x, rate, seed=SEED, offset=OFFSET, **kw))


def test_rate_array_identities():
    X = da.from_array(_data((4, 5), np.float32), chunks=2)
    assert dd.dropout(X, np.zeros(5), seed=1) is X
    assert dd.dropout(X, np.full(5, 0.5), seed=1, training=False) is X
    assert dd.gaussian_dropout(X, 0.5, seed=1, training=False) is X
    assert dd.alpha_dropout(X, 0.0, seed=1) is X
    assert dd.feature_alpha_dropout(X, 0.5, seed=1, training=False) is X


def test_noise_offset_range_is_the_noise_size():
    # (6, 7) with noise (6, 1) uses 6 positions: offset 2**64 - 6 is valid, 2**64 - 5 is not.
    x = _data((6, 7), np.float32)
    X = da.from_array(x, chunks=(4, 3))
    y = dd.dropout(X, 0.5, seed=2, offset=2**64 - 6, noise_shape=(6, 1)).compute(scheduler="sync")
    _same(y, dropkit.dropout_nd(x, 0.5, seed=2, offset=2**64 - 6, noise_shape=(6, 1)))
    with pytest.raises(ValueError, match="2\\*\\*64"):
        dd.dropout(X, 0.5, seed=2, offset=2**64 - 5, noise_shape=(6, 1))


def test_one_kernel_call_per_block(monkeypatch):
    """However the chunks cut the C order, each block is one kernel call: the flat kernel where the
    block's positions are consecutive, the affine map with the global strides otherwise."""
    calls = []
    kernel = dd._kernel

    def counting(name):
        f = kernel(name)

        def wrapped(*args):
            calls.append((name, args[0].shape, args[5]) + ((tuple(args[6]),) if name.endswith("_nd") else ()))
            return f(*args)
        return wrapped

    monkeypatch.setattr(dd, "_kernel", counting)
    x = _data((40, 200), np.float32)
    for chunks, n in [((7, 3), 6 * 67), ((7, 200), 6), ((1, 50), 40 * 4)]:
        calls.clear()
        y = dd.dropout(da.from_array(x, chunks=chunks), 0.3, seed=SEED, offset=OFFSET).compute(scheduler="sync")
        _same(y, dropkit.dropout(x, 0.3, seed=SEED, offset=OFFSET))
        assert len(calls) == n
        if chunks == (7, 3):  # block (1, 2): rows 7..13, columns 6..8: its corner, the global strides
            assert ("bernoulli_apply_nd", (7, 3), OFFSET + 7 * 200 + 6, (200, 1)) in calls
        else:  # whole rows, or one row: consecutive positions, the flat kernel
            assert {c[0] for c in calls} == {"bernoulli_apply"}
            assert ("bernoulli_apply", (chunks[0] * chunks[1],), OFFSET + 7 * 200 + (chunks[0] == 1) * 50) in calls


@pytest.mark.parametrize("shape, pstrides, expect", [
    ((3, 4), (4, 1), True), ((3, 4), (5, 1), False), ((1, 4), (200, 1), True), ((2, 1, 4), (8, 99, 1), False),
    ((2, 1, 4), (4, 99, 1), True), ((3, 4), (0, 1), False), ((1, 1), (0, 0), True), ((), (), True),
])
def test_contiguous_positions(shape, pstrides, expect):
    assert dd._contiguous(shape, pstrides) is expect


def test_lazy_nothing_computed_when_called():
    calls = []

    def source(b):
        calls.append(b.shape)
        return b

    X = da.from_array(_data((10, 10), np.float32), chunks=5).map_blocks(
        source, dtype=np.float32, meta=np.empty((0, 0), np.float32))
    Y = dd.dropout(X, 0.5, seed=1)
    assert calls == [] and Y.npartitions == X.npartitions
    Y.compute(scheduler="sync")
    assert len(calls) == 4


def test_threaded_scheduler_and_threads_setting(restore_runtime):
    x = _data((64, 50), np.float32)
    X = da.from_array(x, chunks=(16, 20))
    y = dd.dropout(X, 0.3, seed=9, threads=1).compute(scheduler="threads", num_workers=2)
    np.testing.assert_array_equal(y, dropkit.dropout(x, 0.3, seed=9))
    assert dropkit.get_num_threads() == 1  # the tasks ran in this process and applied threads=1


def test_distributed_local_cluster_two_processes():
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    x = _data((30, 20), np.float64)
    X = da.from_array(x, chunks=(7, 9))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        y = client.compute(dd.dropout(X, 0.4, seed=SEED, offset=OFFSET)).result()
        dx = client.compute(dd.dropout_backward(X, 0.4, seed=SEED, offset=OFFSET)).result()
        gn = client.compute(dd.gaussian_dropout(X, 0.4, seed=SEED, offset=OFFSET, noise_shape=(1, 20))).result()
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        worker_threads = set(client.run(dropkit.get_num_threads).values())
    assert len(pids) == 2
    assert worker_threads == {1}  # the nanny's OMP_NUM_THREADS=1, read by dropkit (the thread rule)
    np.testing.assert_array_equal(y, dropkit.dropout(x, 0.4, seed=SEED, offset=OFFSET))
    np.testing.assert_array_equal(dx, dropkit.dropout_backward(x, 0.4, seed=SEED, offset=OFFSET))
    np.testing.assert_array_equal(gn, dropkit.gaussian_dropout(x, 0.4, seed=SEED, offset=OFFSET, noise_shape=(1, 20)))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(x=np.ones(3)), TypeError, "dask.array.Array"),
    (dict(x=da.ones(3, dtype=np.int32)), TypeError, "dtype"),
    (dict(rate=1.5), ValueError, "rate must be in"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(offset=2**64 - 2), ValueError, "offset"),
    (dict(threads=0), ValueError, "threads"),
    (dict(noise_shape=(2,)), ValueError, "noise_shape"),
    (dict(noise_shape=(1, 1)), ValueError, "noise_shape"),
    (dict(noise_shape="3"), TypeError, "noise_shape"),
    (dict(noise_shape=(1.5,)), TypeError, "noise_shape"),
    (dict(rate=np.full((2,), 0.5)), ValueError, "broadcast"),
    (dict(rate=np.array([0.5, 0.5, 1.5])), ValueError, "rate must be in"),
])
def test_bad_input(kwargs, exc, match):
    kw = dict(x=da.ones(3, chunks=2), rate=0.5, seed=1)
    kw.update(kwargs)
    x = kw.pop("x")
    with pytest.raises(exc, match=match):
        dd.dropout(x, **kw)


def test_variant_bad_input():
    X = da.ones((3, 4), chunks=2)
    with pytest.raises(ValueError, match="rate must be in \\[0, 1\\)"):
        dd.gaussian_dropout(X, 1.0, seed=1)
    with pytest.raises(ValueError, match="rate must be in"):
        dd.alpha_dropout(X, -0.5, seed=1)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        dd.feature_alpha_dropout(da.ones(3, chunks=2), 0.5, seed=1)
    with pytest.raises(TypeError, match="dask.array.Array"):
        dd.gaussian_dropout_backward(np.ones(3), 0.5, seed=1)


def test_unknown_chunk_sizes_are_an_error():
    X = da.from_array(np.arange(10.0), chunks=3)
    Xu = X[X > 3]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        dd.dropout(Xu, 0.5, seed=1)
    Xu.compute_chunk_sizes()
    np.testing.assert_array_equal(dd.dropout(Xu, 0.5, seed=1).compute(scheduler="sync"),
                                  dropkit.dropout(np.arange(4.0, 10.0), 0.5, seed=1))


def test_import_dropkit_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, dropkit; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docstring_examples():
    import doctest

    result = doctest.testmod(dd, raise_on_error=False, verbose=False)
    assert result.attempted > 0 and result.failed == 0
