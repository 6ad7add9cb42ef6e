"""Dropout of an on-disk .npy array larger than a memory budget, chunk by chunk, with dropkit.dask.

    python3 bench/dask_out_of_core.py                       # 1 GiB float32 array, 256 MiB budget
    python3 bench/dask_out_of_core.py --size-mib 4096 --budget-mib 512 --col-chunks 2
    python3 bench/dask_out_of_core.py --column-noise        # noise_shape=(1, None): one value per column

Writes an input .npy (random float32, written chunk by chunk), then runs
``dropkit.dask.dropout`` over it with the threaded scheduler and ``da.store`` into an output .npy.
Every block is read from and written to the files through its own short-lived memory map, so no
page of either file stays mapped in this process: the peak resident set size (``ru_maxrss``,
printed) bounds what the process ever held, and it is checked against the budget and the array size.
Spot checks then compare a few blocks with ``dropkit.dropout`` on the same rows at the same stream
positions (``offset + global flat index``), without loading the whole array. With
``--column-noise`` the noise has shape ``(1, cols)`` (``noise_shape=(1, None)``: every row shares
one mask, so every block reads noise shared with all the others), checked against
``dropkit.dropout_nd`` likewise.

Thread rule (docs/integrations.md): ``workers x dropkit threads <= cores``; here
``dropkit.set_num_threads(1)`` and as many dask worker threads as cores.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import dask
import dask.array as da

import dropkit
import dropkit.dask

MIB = 1 << 20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class NpyBlocks:
    """Array-like view of a .npy file: each ``[...]`` opens a memory map, copies the block, unmaps it.

    For ``__setitem__`` (the output), the block is written through a map opened in ``r+`` mode and
    flushed. Picklable (it holds only the path), so it also works on dask.distributed workers.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        m = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = m.shape, m.dtype, m.ndim
        del m

    def __getitem__(self, key):
        m = np.load(self.path, mmap_mode="r")
        try:
            return np.array(m[key])  # a private copy; the map goes away below
        finally:
            del m

    def __setitem__(self, key, value):
        m = np.load(self.path, mmap_mode="r+")
        try:
            m[key] = value
            m.flush()
        finally:
            del m


def make_input(path: Path, shape: tuple, rows_per_chunk: int, seed: int) -> None:
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)._mmap.close()
    out = NpyBlocks(path)
    rng = np.random.default_rng(seed)
    for r0 in range(0, shape[0], rows_per_chunk):
        r1 = min(shape[0], r0 + rows_per_chunk)
        out[r0:r1] = rng.standard_normal((r1 - r0, shape[1]), dtype=np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="array size on disk (default 1024)")
    ap.add_argument("--budget-mib", type=int, default=256, help="memory budget to stay under (default 256)")
    ap.add_argument("--chunk-mib", type=int, default=16, help="dask block size (default 16)")
    ap.add_argument("--cols", type=int, default=4096, help="columns of the 2-D array (default 4096)")
    ap.add_argument("--col-chunks", type=int, default=1,
                    help="split the columns into this many chunks (>1: blocks are runs of rows)")
    ap.add_argument("--column-noise", action="store_true",
                    help="noise_shape=(1, None): one noise value per column, shared by every row")
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--dir", default=None, help="where to put the two .npy files (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    args = ap.parse_args(argv)

    cores = os.cpu_count() or 1
    dropkit.set_num_threads(1)  # the thread rule: dask runs `cores` tasks at once
    cols = args.cols
    rows = args.size_mib * MIB // (4 * cols)
    shape = (rows, cols)
    rows_per_chunk = max(1, args.chunk_mib * MIB * args.col_chunks // (4 * cols))
    col_chunk = -(-cols // args.col_chunks)
    nbytes = rows * cols * 4

    tmp = tempfile.TemporaryDirectory(dir=args.dir) if not args.keep else None
    folder = Path(tmp.name if tmp else (args.dir or tempfile.mkdtemp()))
    src, dst = folder / "x.npy", folder / "y.npy"
    print(f"array: float32 {shape} = {nbytes / MIB:.0f} MiB on disk in {folder}; budget {args.budget_mib} MiB; "
          f"blocks ({rows_per_chunk}, {col_chunk}) = {rows_per_chunk * col_chunk * 4 / MIB:.1f} MiB; "
          f"{cores} dask threads x 1 dropkit thread")
    rss0 = current_rss_mib()
    t0 = time.perf_counter()
    make_input(src, shape, rows_per_chunk, args.seed)
    np.lib.format.open_memmap(dst, mode="w+", dtype=np.float32, shape=shape)._mmap.close()
    t1 = time.perf_counter()
    print(f"wrote the input in {t1 - t0:.1f} s; RSS after imports {rss0:.0f} MiB, peak so far {peak_rss_mib():.0f} MiB")

    x = da.from_array(NpyBlocks(src), chunks=(rows_per_chunk, col_chunk), asarray=False)
    noise_shape = (1, None) if args.column_noise else None
    y = dropkit.dask.dropout(x, args.rate, seed=args.seed, offset=args.offset, noise_shape=noise_shape)
    t2 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=cores):
        da.store(y, NpyBlocks(dst), lock=False)
    t3 = time.perf_counter()
    peak = peak_rss_mib()
    print(f"dropout of {x.npartitions} blocks: {t3 - t2:.1f} s ({nbytes / MIB / (t3 - t2):.0f} MiB/s read+drop+write)")
    print(f"peak RSS {peak:.0f} MiB for a {nbytes / MIB:.0f} MiB array "
          f"({100 * peak * MIB / nbytes:.0f}% of it; budget {args.budget_mib} MiB)")

    # Spot checks: a few row ranges against the NumPy API at the same stream positions.
    inp, outp = NpyBlocks(src), NpyBlocks(dst)
    rng = np.random.default_rng(1)
    for r0 in sorted(set(rng.integers(0, max(1, rows - 64), 4).tolist()) | {0, max(0, rows - 64)}):
        a, b = inp[r0:r0 + 64], outp[r0:r0 + 64]
        if noise_shape:  # positions offset + column, whatever the row
            expect = dropkit.dropout_nd(a, args.rate, seed=args.seed, offset=args.offset, noise_shape=noise_shape)
        else:
            expect = dropkit.dropout(a, args.rate, seed=args.seed, offset=args.offset + r0 * cols)
        if not np.array_equal(b.view(np.uint32), expect.view(np.uint32)):
            print(f"MISMATCH at rows {r0}..{r0 + 64}")
            return 1
    print(f"spot checks (6 row ranges) equal {'dropkit.dropout_nd' if noise_shape else 'dropkit.dropout'} "
          f"at the same positions: OK")
    if tmp:
        tmp.cleanup()
    ok = peak < args.budget_mib and peak * MIB < nbytes
    print("never held the whole array: " + ("yes" if ok else "NO (peak RSS over the budget)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
