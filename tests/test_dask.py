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


def test_runs_of_a_block():
    # Block rows 1..2, columns 2..4 of a (4, 5) array: two runs of 3, at flat indices 7 and 12.
    length, starts, gstride = dd._runs((4, 5), [(1, 3), (2, 5)])
    assert length == 3 and starts.tolist() == [7, 12] and gstride == [5, 1]
    # Trailing axes spanned fully merge: rows 1..2 of (4, 5) is one run of 10 at 5.
    length, starts, _ = dd._runs((4, 5), [(1, 3), (0, 5)])
    assert length == 10 and starts.tolist() == [5]
    # 3-D: block [1:3, 0:2, 0:4] of (3, 4, 4): axis 1 partial -> runs of 8 at 16 and 32.
    length, starts, _ = dd._runs((3, 4, 4), [(1, 3), (0, 2), (0, 4)])
    assert length == 8 and starts.tolist() == [16, 32]


@pytest.mark.parametrize("shape, location, span_min, span", [
    ((23, 19), [(0, 23), (4, 8)], 1 << 22, True),   # 23 runs of 4 in a span of 422: one call
    ((40, 200), [(0, 40), (3, 6)], 1 << 22, True),  # 40 runs, span 7803: still one call
    ((40, 200), [(0, 40), (3, 6)], 0, False),       # span 7803 > 16 x 120: a call per run
    ((40, 3000), [(0, 40), (3, 4)], 1 << 22, False),  # gap of 2999 per run > 1024: a call per run
    ((4, 5), [(1, 3), (0, 5)], 1 << 22, False),     # one run
])
def test_block_path_choice(shape, location, span_min, span, monkeypatch):
    monkeypatch.setattr(dd, "_SPAN_MIN", span_min)
    length, starts, _ = dd._runs(shape, location)
    size = int(np.prod([b - a for a, b in location]))
    assert dd._use_span(length, starts, size) is span


@pytest.mark.parametrize("span_min", [0, 1 << 22])
@pytest.mark.parametrize("shape, chunks", [((40, 200), (40, 3)), ((40, 200), (7, 50)), ((9, 3000), (4, 1000)),
                                           ((5, 6, 70), (2, 3, 4))], ids=str)
def test_span_and_run_paths_give_the_same_bits(shape, chunks, span_min, monkeypatch):
    monkeypatch.setattr(dd, "_SPAN_MIN", span_min)  # 0: the per-run loop wherever the span is > 16x
    x = _data(shape, np.float32)
    y = dd.dropout(da.from_array(x, chunks=chunks), 0.3, seed=SEED, offset=OFFSET).compute(scheduler="sync")
    np.testing.assert_array_equal(y, dropkit.dropout(x, 0.3, seed=SEED, offset=OFFSET))


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
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        y = client.compute(dd.dropout(X, 0.4, seed=SEED, offset=OFFSET)).result()
        dx = client.compute(dd.dropout_backward(X, 0.4, seed=SEED, offset=OFFSET)).result()
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        worker_threads = set(client.run(dropkit.get_num_threads).values())
    assert len(pids) == 2
    assert worker_threads == {1}  # the nanny's OMP_NUM_THREADS=1, read by dropkit (the thread rule)
    np.testing.assert_array_equal(y, dropkit.dropout(x, 0.4, seed=SEED, offset=OFFSET))
    np.testing.assert_array_equal(dx, dropkit.dropout_backward(x, 0.4, seed=SEED, offset=OFFSET))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(x=np.ones(3)), TypeError, "dask.array.Array"),
    (dict(x=da.ones(3, dtype=np.int32)), TypeError, "dtype"),
    (dict(rate=1.5), ValueError, "rate must be in"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(offset=2**64 - 2), ValueError, "offset"),
    (dict(threads=0), ValueError, "threads"),
])
def test_bad_input(kwargs, exc, match):
    kw = dict(x=da.ones(3, chunks=2), rate=0.5, seed=1)
    kw.update(kwargs)
    x = kw.pop("x")
    with pytest.raises(exc, match=match):
        dd.dropout(x, **kw)


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
