"""The thread pool behind the parallel kernels (cpp/core/pool.hpp): the bits never depend on it,
calls from several Python threads at once are safe, and a forked child gets a working pool."""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
import warnings

import numpy as np
import pytest

import dropkit

N = 1 << 18  # 16 chunks: above the parallel cutoff


@pytest.fixture
def threads_restored():
    before = dropkit.get_num_threads()
    yield
    dropkit.set_num_threads(before)


def _reference(x: np.ndarray, seed: int) -> np.ndarray:
    return dropkit.dropout(x, 0.3, seed=seed, backend="numpy")


def test_many_python_threads_at_once(threads_restored):
    """Concurrent callers (one gets the pool, the others run alone) give the sequential bits."""
    dropkit.set_num_threads(2)
    xs = [np.random.default_rng(i).standard_normal(N, dtype=np.float32) for i in range(6)]
    want = [_reference(x, 100 + i) for i, x in enumerate(xs)]
    got = [None] * len(xs)
    barrier = threading.Barrier(len(xs))

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(5):
            got[i] = dropkit.dropout(xs[i], 0.3, seed=100 + i)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for g, w in zip(got, want):
        assert np.array_equal(g, w)


def test_more_threads_than_cores(threads_restored):
    """Workers beyond the usable cores are not started; the bits are the same."""
    x = np.random.default_rng(1).standard_normal(N, dtype=np.float32)
    dropkit.set_num_threads(64)
    assert np.array_equal(dropkit.dropout(x, 0.3, seed=5), _reference(x, 5))


def _child(q) -> None:
    x = np.random.default_rng(2).standard_normal(N, dtype=np.float32)
    dropkit.set_num_threads(2)
    y = dropkit.dropout(x, 0.3, seed=9)
    q.put(bool(np.array_equal(y, dropkit.dropout(x, 0.3, seed=9, backend="numpy"))))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_after_the_pool_ran(threads_restored):
    """A child forked after the parent used the pool (workers that do not exist in the child)
    finishes its parallel calls with the right bits instead of waiting for those workers."""
    dropkit.set_num_threads(2)
    x = np.random.default_rng(3).standard_normal(N, dtype=np.float32)
    for _ in range(3):  # workers started and spinning in the parent
        dropkit.dropout(x, 0.3, seed=1)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    with warnings.catch_warnings():  # Python >= 3.12 warns about fork in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        p.start()
    p.join(60)
    assert p.exitcode == 0, "child did not finish"
    assert q.get(timeout=5) is True


def test_settings_reach_the_compiled_fast_path(threads_restored):
    """dropkit.dropout's compiled fast path runs with the process settings, not stale copies."""
    simd = dropkit.simd_target()
    try:
        for target in dropkit.available_simd_targets():
            dropkit.set_simd_target(target)
            dropkit.set_num_threads(3)
            assert dropkit._core.fast_state() == (3, target)
            dropkit.set_num_threads(1)
            assert dropkit._core.fast_state() == (1, target)
    finally:
        dropkit.set_simd_target(simd)
