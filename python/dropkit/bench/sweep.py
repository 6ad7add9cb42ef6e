"""The sweep: every variant x direction x size x dtype x thread count, all backends of a cell
and ``np.multiply(x, 2.0, out=y)`` interleaved, adaptive repeats in two passes.

Pass 1 visits every cell (sizes ascending): warm-up, calibration, ``min_rounds`` rounds, more
while the cell is not tight and has used less than ``cell_time``. Pass 2 spends what is left of
``budget`` on the cells still not tight, widest interval first, each rebuilt and given an equal
share of the time left (at least two rounds' worth; a cell whose rounds no longer fit is left).
The *headline pairs* whose intervals decide are NumPy/dropkit and PyTorch/dropkit.torch
(PyTorch/dropkit where dropkit.torch has no counterpart), else dropkit/multiply.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, TextIO, Tuple

import numpy as np

from . import timing
from .contenders import STREAM, VARIANTS, Case, builders, make_case
from .sysinfo import OthersCpu

__all__ = ["SweepConfig", "Cell", "run_sweep", "set_threads", "headline_pairs", "Progress", "NOISY"]

#: A cell during which other processes used more than this share of all CPUs is flagged noisy.
NOISY = 0.1


@dataclass
class SweepConfig:
    variants: List[str]
    directions: List[str]
    sizes: List[int]
    dtypes: List[str]
    threads: List[int]
    backends: Optional[List[str]] = None  # None: every backend a variant has
    min_rounds: int = 3
    max_rounds: int = 15
    tol: float = 0.05  # a cell is tight when every headline ratio is known within +-tol (relative)
    min_sample_time: float = 0.001
    cell_time: float = 0.25  # pass 1: seconds a cell may spend on rounds beyond its min_rounds
    budget: Optional[float] = None  # seconds for the whole sweep (pass 2 uses the rest); None: no pass 2 limit
    rate: float = 0.5
    seed: int = 1234
    torch: Any = None
    skipped: List[Dict[str, str]] = field(default_factory=list)


@dataclass
class Cell:
    variant: str
    direction: str
    dtype: str
    size: int
    threads: int
    meas: Dict[str, timing.Measurement]
    pairs: List[Tuple[str, str]]
    stop: str = ""
    passes: int = 1
    seconds: float = 0.0  # spent on this cell, warm-up and calibration included
    others_cpu_share: Optional[float] = None
    threads_reported: Dict[str, Optional[int]] = field(default_factory=dict)


def log2(n: int) -> str:
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


def set_threads(n: int, torch: Any) -> Dict[str, Optional[int]]:
    """Pin dropkit's (and torch's) thread count to ``n``; return what each reports back."""
    import dropkit  # noqa: PLC0415

    dropkit.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    return {"dropkit": dropkit.get_num_threads(), "torch": None if torch is None else torch.get_num_threads()}


def headline_pairs(names: List[str]) -> List[Tuple[str, str]]:
    pairs = [("numpy", "dropkit")] if "numpy" in names and "dropkit" in names else []
    if "torch" in names:
        pairs.append(("torch", "dropkit-torch" if "dropkit-torch" in names else "dropkit"))
    return pairs or [("dropkit", STREAM)]


class Progress:
    """A progress bar on ``stream`` (tqdm when installed, else one line rewritten in place);
    with ``verbose``, the line of each cell above it."""

    def __init__(self, total: int, stream: Optional[TextIO], verbose: bool = False) -> None:
        self.total, self.done, self.stream, self.verbose, self.t0 = total, 0, stream, verbose, time.perf_counter()
        try:
            from tqdm import tqdm  # noqa: PLC0415

            self.bar = None if stream is None else tqdm(total=total, file=stream, unit="cell", leave=False,
                                                        desc="dropkit.bench", dynamic_ncols=True)
        except ImportError:
            self.bar = None

    def step(self, note: str, line: str) -> None:
        self.done += 1
        if self.stream is not None and self.verbose:
            self.write(line)
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(1)
        elif self.stream is not None:
            k = 30 * self.done // max(self.total, 1)
            self.stream.write(f"\r[{'#' * k}{'.' * (30 - k)}] {self.done}/{self.total} cells "
                              f"{time.perf_counter() - self.t0:5.1f} s {note[:40]:<40}")
            self.stream.flush()

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            self.stream.write(f"\r{' ' * 100}\r{line}\n")  # type: ignore[union-attr]

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.stream is not None:
            self.stream.write(f"\r{' ' * 100}\r")


def _candidates(cell: Cell, x: np.ndarray, g: np.ndarray, cfg: SweepConfig) -> Tuple[List[timing.Candidate], list]:
    v = VARIANTS[cell.variant]
    case: Case = make_case(v, x, g, cfg.rate, cfg.seed, cfg.torch)
    cands, keep = [], []
    for bname, build in builders(v, cfg.torch is not None).items():
        if cfg.backends is not None and bname not in cfg.backends:
            continue
        try:  # one call first: a backward needs its forward's state (dropkit regenerates its noise)
            k = build(case)
            k.forward()
            if cell.direction == "backward":
                k.backward()
        except Exception as exc:  # a variant a backend cannot do, out of memory...: say why, time the others
            cfg.skipped.append({"what": f"{v.name}/{bname} {cell.direction} {cell.dtype} n={log2(cell.size)}",
                                "reason": f"{type(exc).__name__}: {exc}"})
            continue
        keep.append(k)
        cands.append(timing.Candidate(bname, k.backward if cell.direction == "backward" else k.forward))
    y = np.empty_like(x)
    cands.append(timing.Candidate(STREAM, lambda: np.multiply(x, 2.0, out=y)))
    return cands, keep


def _measure(cell: Cell, x: np.ndarray, g: np.ndarray, cfg: SweepConfig, seconds: Optional[float]) -> None:
    t0 = timing.clock()
    cands, keep = _candidates(cell, x, g, cfg)
    if not cell.pairs:
        cell.pairs = headline_pairs([c.name for c in cands])
    others = OthersCpu().start()
    fresh = timing.calibrate(cands, min_sample_time=cfg.min_sample_time)
    for name, m in fresh.items():  # pass 2 appends to pass 1's samples
        m.samples = cell.meas[name].samples if name in cell.meas else []
        cell.meas[name] = m
    deadline = None if seconds is None else timing.clock() + seconds
    cell.stop = timing.run_rounds(cands, cell.meas, cell.pairs, min_rounds=cfg.min_rounds,
                                  max_rounds=cfg.max_rounds, tol=cfg.tol, deadline=deadline)
    share = others.share()
    if share is not None:
        cell.others_cpu_share = max(share, cell.others_cpu_share or 0.0)
    del keep
    cell.seconds += timing.clock() - t0


def cell_line(cell: Cell) -> str:
    """The ``--verbose`` line of a cell: its headline ratios with their intervals."""
    parts = []
    for a, b in cell.pairs:
        value, lo, hi = timing.ratio_ci(cell.meas[a].samples, cell.meas[b].samples)
        parts.append(f"{a}/{b} {value:.3g} [{lo:.3g}, {hi:.3g}]")
    noisy = (f" [noisy: others used {100 * cell.others_cpu_share:.0f}% of the CPU]"
             if (cell.others_cpu_share or 0) > NOISY else "")
    rounds = min(len(m.samples) for m in cell.meas.values())
    return (f"{cell.variant} {cell.direction} {cell.dtype} n={log2(cell.size)} threads={cell.threads}: "
            f"{'; '.join(parts)}; {rounds} rounds, {cell.stop}{noisy}")


def run_sweep(cfg: SweepConfig, progress: Optional[TextIO] = sys.stderr, verbose: bool = False) -> List[Cell]:
    """Time every cell of ``cfg`` (see the module docstring); return the cells."""
    t0 = timing.clock()
    keys = [(n, d, t, v, di) for n in cfg.sizes for d in cfg.dtypes for t in cfg.threads
            for v in cfg.variants for di in cfg.directions]
    bar = Progress(len(keys), progress, verbose)
    inputs: Dict[Tuple[int, str], Tuple[np.ndarray, np.ndarray]] = {}
    cells: List[Cell] = []
    readback: Dict[int, Dict[str, Optional[int]]] = {}
    try:
        for n, dtype, threads, vname, direction in keys:
            if (n, dtype) not in inputs:
                rng = np.random.default_rng([cfg.seed, n])
                inputs[(n, dtype)] = tuple(rng.standard_normal(n, dtype=np.float64).astype(dtype) for _ in "xg")
            readback[threads] = set_threads(threads, cfg.torch)
            cell = Cell(vname, direction, dtype, n, threads, {}, [], threads_reported=readback[threads])
            seconds = cfg.cell_time  # beyond min_rounds; within a fair share of the budget left
            if cfg.budget is not None:
                seconds = min(seconds, max(0.0, cfg.budget - (timing.clock() - t0)) / (len(keys) - len(cells)))
            _measure(cell, *inputs[(n, dtype)], cfg, seconds)
            cells.append(cell)
            bar.step(f"{vname} {direction[:3]} n={log2(n)}", cell_line(cell))
        wide = [c for c in cells if c.stop not in ("tight", "max-rounds")]
        wide.sort(key=lambda c: -timing.widest(c.meas, c.pairs))
        bar.total += len(wide)
        for i, cell in enumerate(wide):
            left = None if cfg.budget is None else cfg.budget - (timing.clock() - t0)
            seconds = None if left is None else left / (len(wide) - i)
            if seconds is not None:  # rebuilding costs about a round: give a cell at least two more
                per_round = cell.seconds / min(len(m.samples) for m in cell.meas.values())
                if left < 3 * per_round:
                    bar.total -= 1
                    continue
                seconds = max(seconds, 2 * per_round)
            set_threads(cell.threads, cfg.torch)
            cell.passes += 1
            _measure(cell, *inputs[(cell.size, cell.dtype)], cfg, seconds)
            bar.step(f"refining {cell.variant} {cell.direction[:3]} n={log2(cell.size)}", cell_line(cell))
    finally:
        bar.close()
    return cells


def cell_rows(cells: List[Cell]) -> List[Dict[str, Any]]:
    """One JSON row per (cell, backend): samples, their summary, and ratios of medians."""
    rows = []
    for c in cells:
        base = c.meas.get("numpy")
        base_med = timing.median(base.samples) if base is not None else None
        stream_med = timing.median(c.meas[STREAM].samples)
        itemsize = np.dtype(c.dtype).itemsize
        for name, m in c.meas.items():
            st = timing.summarize(m.samples)
            med = st["median_s"]
            rows.append({
                "variant": c.variant, "direction": c.direction, "dtype": c.dtype, "size": c.size,
                "threads": c.threads, "threads_reported": c.threads_reported, "others_cpu_share": c.others_cpu_share,
                "backend": name, "calls_per_sample": m.number, "warmup_calls": m.warmup_calls,
                "samples_s": m.samples, **st, "ns_per_element": med / c.size * 1e9,
                "gb_per_s": 2 * itemsize * c.size / med / 1e9 if med > 0 else None,
                "speedup": base_med / med if base_med is not None and med > 0 else None,
                "ratio_to_stream": med / stream_med if stream_med > 0 else None,
            })  # fmt: skip
    return rows


def cell_records(cells: List[Cell]) -> List[Dict[str, Any]]:
    """One JSON record per cell: rounds, why it stopped, and each headline ratio with its interval."""
    out = []
    for c in cells:
        ratios = {}
        for a, b in c.pairs:
            value, lo, hi = timing.ratio_ci(c.meas[a].samples, c.meas[b].samples)
            ratios[f"{a}/{b}"] = {"ratio": value, "ci_low": lo, "ci_high": hi}
        out.append({"variant": c.variant, "direction": c.direction, "dtype": c.dtype, "size": c.size,
                    "threads": c.threads, "rounds": min(len(m.samples) for m in c.meas.values()),
                    "stop": c.stop, "passes": c.passes, "seconds": c.seconds, "others_cpu_share": c.others_cpu_share, "ratios": ratios})
    return out
