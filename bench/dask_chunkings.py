"""Time dropkit.dask.dropout over one in-memory array for several chunkings (sync scheduler).

    python3 bench/dask_chunkings.py

Each block is one call of the core's affine-map kernel, whatever the chunking; the column
``map_blocks(np.negative)`` is the same graph doing a trivial NumPy operation: the gap between
the two is dropkit's cost, the rest is dask's per-task overhead. One dropkit thread, best of three
runs after a warm-up; float32 (65536, 256) = 64 MiB.
"""
from __future__ import annotations

import time

import numpy as np

import dask.array as da

import dropkit
import dropkit.dask as dkd


def best(make) -> float:
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        make().compute(scheduler="sync")
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def main() -> None:
    dropkit.set_num_threads(1)
    x = np.random.default_rng(0).standard_normal((65536, 256)).astype(np.float32)
    print("float32 (65536, 256), sync scheduler, 1 dropkit thread, best of 3 after a warm-up")
    for chunks in [(65536, 256), (8192, 256), (8192, 128), (8192, 32), (1024, 8)]:
        X = da.from_array(x, chunks=chunks)
        d = best(lambda: dkd.dropout(X, 0.5, seed=1))
        n = best(lambda: dkd.dropout(X, 0.5, seed=1, noise_shape=(None, 1)))
        m = best(lambda: X.map_blocks(np.negative))
        print(f"chunks {str(chunks):13s} {X.npartitions:5d} blocks: dropout {d:.3f} s, "
              f"noise_shape=(None, 1) {n:.3f} s, map_blocks(np.negative) {m:.3f} s")


if __name__ == "__main__":
    main()
