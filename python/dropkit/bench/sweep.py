"""The timing sweep: every variant x direction x size x dtype x thread count x backend.

Loop order, outermost first: size (ascending), dtype, threads, variant, direction. The input
arrays ``x`` and ``grad`` are made once per (size, dtype) and shared by every backend, variant
and thread count. In each cell all backends and the streaming limit ``np.multiply(x, 2.0,
out=y)`` are timed together in interleaved rounds (:func:`dropkit.bench.timing.measure_interleaved`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from .sysinfo import OthersCpu
from .timing import Candidate, median, measure_interleaved, summarize
from .variants import SPEEDUP_BASE, STREAM, Case, Kernels, backend_builders, get_variant

__all__ = ["SweepConfig", "run_sweep", "probe_backends", "set_threads", "NOISY"]

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
    repeats: int = 5
    warmup: int = 1
    warmup_time: float = 0.0  # seconds of warm-up calls per backend and cell, at least `warmup` calls
    min_sample_time: float = 0.002
    max_time_per_backend: Optional[float] = 0.5
    min_repeats: int = 3
    settle: float = 0.002  # seconds of sleep before each sample of a multi-threaded cell
    budget: Optional[float] = None  # seconds; larger sizes are skipped when they would not fit
    rate: float = 0.5
    seed: int = 1234
    torch: Any = None
    skipped: List[Dict[str, str]] = field(default_factory=list)
    unavailable: Dict[str, str] = field(default_factory=dict)


def set_threads(n: int, torch: Any) -> Dict[str, Optional[int]]:
    """Pin dropkit's (and torch's) thread count to ``n``; return what each reports back."""
    import dropkit  # noqa: PLC0415

    got: Dict[str, Optional[int]] = {"dropkit": None, "torch": None}
    try:
        dropkit.set_num_threads(n)
        got["dropkit"] = int(dropkit.get_num_threads())
    except Exception:
        pass
    if torch is not None:
        torch.set_num_threads(n)
        got["torch"] = int(torch.get_num_threads())
    return got


class _Progress:
    def __init__(self, total: int, stream: Optional[TextIO]) -> None:
        self.total = total
        self.done = 0
        self.t0 = time.perf_counter()
        self.stream = stream

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def line(self, msg: str) -> None:
        if self.stream is not None:
            w = len(str(self.total))
            print(f"[{self.done:>{w}}/{self.total} {self.elapsed():6.1f}s] {msg}", file=self.stream, flush=True)


def _log2(n: int) -> str:
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


def probe_backends(cfg: SweepConfig) -> Dict[str, str]:
    """Run every (variant, backend) once on a tiny array; return ``{"variant/backend": reason}``
    for those that fail (core not built, a variant dropkit does not have yet...)."""
    bad: Dict[str, str] = {}
    for vname in cfg.variants:
        variant = get_variant(vname)
        shape = variant.shape(1024)
        for dtype in cfg.dtypes:
            x = np.linspace(-1, 1, int(np.prod(shape)), dtype=dtype).reshape(shape)
            case = Case(x, x.copy(), cfg.rate, cfg.seed, preallocate=True, torch=cfg.torch)
            for bname, builder in backend_builders(variant, with_torch=cfg.torch is not None).items():
                key = f"{vname}/{bname}"
                if key in bad or (cfg.backends is not None and bname not in cfg.backends):
                    continue
                try:
                    k = builder(case)
                    k.forward()
                    k.backward()
                except Exception as exc:
                    bad[key] = f"{type(exc).__name__}: {exc}"
    return bad


def _cell_candidates(
    variant_name: str, direction: str, x: np.ndarray, g: np.ndarray, cfg: SweepConfig
) -> Tuple[List[Candidate], List[Any]]:
    variant = get_variant(variant_name)
    shape = variant.shape(x.size)
    xv, gv = x.reshape(shape), g.reshape(shape)
    case = Case(xv, gv, cfg.rate, cfg.seed, preallocate=True, torch=cfg.torch)
    cands: List[Candidate] = []
    keep: List[Any] = []
    for bname, builder in backend_builders(variant, with_torch=cfg.torch is not None).items():
        if cfg.backends is not None and bname not in cfg.backends:
            continue
        if f"{variant_name}/{bname}" in cfg.unavailable:
            continue
        try:
            k: Kernels = builder(case)
            if direction == "backward":
                k.forward()  # state for mask-storing backends; dropkit regenerates its mask
        except Exception as exc:  # e.g. out of memory at a large size: skip this backend here
            cfg.skipped.append({"what": f"{variant_name}/{bname} {direction} {x.dtype} n={_log2(x.size)}",
                                "reason": f"{type(exc).__name__}: {exc}"})
            continue
        keep.append(k)
        cands.append(Candidate(bname, k.backward if direction == "backward" else k.forward))
    y = np.empty_like(x)
    keep.append(y)
    cands.append(Candidate(STREAM, lambda: np.multiply(x, 2.0, out=y)))
    return cands, keep


def _rows_of_cell(
    meas: Dict[str, Any], *, variant: str, direction: str, dtype: str, n: int, threads: int,
    readback: Dict[str, Optional[int]], others_cpu: Optional[float] = None,
) -> List[Dict[str, Any]]:  # fmt: skip
    itemsize = np.dtype(dtype).itemsize
    base = meas.get(SPEEDUP_BASE)
    base_med = median(base.samples) if base is not None else None
    stream_med = median(meas[STREAM].samples)
    rows = []
    for name, m in meas.items():
        st = summarize(m.samples)
        med = st["median_s"]
        rows.append(
            {
                "variant": variant,
                "direction": direction,
                "dtype": dtype,
                "size": n,
                "threads": threads,
                "threads_reported": readback,
                "others_cpu_share": others_cpu,
                "backend": name,
                "calls_per_sample": m.number,
                "warmup_calls": m.warmup_calls,
                "samples_s": m.samples,
                **st,
                "ns_per_element": med / n * 1e9,
                "gb_per_s": 2 * itemsize * n / med / 1e9 if med > 0 else None,
                "speedup": (base_med / med) if (base_med is not None and med > 0) else None,
                "ratio_to_stream": med / stream_med if stream_med > 0 else None,
            }
        )
    return rows


def _estimate_seconds(prev_rows: Sequence[Dict[str, Any]], factor: float, cfg: SweepConfig) -> float:
    """Rough cost of the next size from this size's medians scaled by ``factor`` (size ratio)."""
    total = 0.0
    for r in prev_rows:
        t = r["median_s"] * factor
        reps = cfg.repeats
        if cfg.max_time_per_backend is not None and t * reps > cfg.max_time_per_backend:
            reps = max(min(cfg.min_repeats, cfg.repeats), int(cfg.max_time_per_backend / max(t, 1e-12)))
        # warm-up, calibration, then the samples (each at least min_sample_time long)
        total += max((cfg.warmup + 1) * t, cfg.warmup_time + t) + reps * (max(t, cfg.min_sample_time) + cfg.settle)
        if r["direction"] == "backward" and r["backend"] != STREAM:
            total += t  # the forward that primes backward
    return total


def run_sweep(cfg: SweepConfig, progress: Optional[TextIO] = sys.stderr) -> List[Dict[str, Any]]:
    """Time every cell of ``cfg``; return one row per (cell, backend). See module docstring."""
    cells_per_size = len(cfg.dtypes) * len(cfg.threads) * len(cfg.variants) * len(cfg.directions)
    prog = _Progress(cells_per_size * len(cfg.sizes), progress)
    np.random.seed(cfg.seed % 2**32)  # the seeds' baselines draw from the global state
    rows: List[Dict[str, Any]] = []
    prev_rows: List[Dict[str, Any]] = []
    prev_n = None
    for si, n in enumerate(cfg.sizes):
        if cfg.budget is not None and prev_n is not None:
            est = _estimate_seconds(prev_rows, n / prev_n, cfg)
            left = cfg.budget - prog.elapsed()
            if est > left:
                for m in cfg.sizes[si:]:
                    cfg.skipped.append(
                        {"what": f"size {_log2(m)}",
                         "reason": f"time budget {cfg.budget:g} s: size {_log2(n)} estimated at {est:.1f} s, "
                                   f"{max(left, 0):.1f} s left (use --budget 0 or --full to run it)"}
                    )  # fmt: skip
                prog.line(f"skipping sizes from {_log2(n)} on: estimated {est:.1f} s, "
                          f"{max(left, 0):.1f} s left in the budget")
                prog.total = prog.done
                break
        size_rows: List[Dict[str, Any]] = []
        for dtype in cfg.dtypes:
            rng = np.random.default_rng([cfg.seed, n])
            x = rng.standard_normal(n, dtype=np.float64).astype(dtype)
            g = rng.standard_normal(n, dtype=np.float64).astype(dtype)
            for threads in cfg.threads:
                readback = set_threads(threads, cfg.torch)
                for vname in cfg.variants:
                    for direction in cfg.directions:
                        cands, keep = _cell_candidates(vname, direction, x, g, cfg)
                        others = OthersCpu().start()
                        meas = measure_interleaved(
                            cands,
                            repeats=cfg.repeats,
                            warmup=cfg.warmup,
                            warmup_time=cfg.warmup_time,
                            min_sample_time=cfg.min_sample_time,
                            max_time_per_candidate=cfg.max_time_per_backend,
                            min_repeats=cfg.min_repeats,
                            settle=cfg.settle if threads > 1 else 0.0,
                        )
                        others_share = others.share()
                        del keep
                        cell = _rows_of_cell(
                            meas, variant=vname, direction=direction, dtype=dtype, n=n, threads=threads,
                            readback=readback, others_cpu=others_share,
                        )  # fmt: skip
                        size_rows += cell
                        prog.done += 1
                        noisy = (f"  [noisy: other processes used {100 * others_share:.0f}% of the CPU]"
                                 if others_share is not None and others_share > NOISY else "")
                        prog.line(_summary(cell, vname, direction, dtype, n, threads) + noisy)
        rows += size_rows
        prev_rows, prev_n = size_rows, n
    return rows


def _summary(cell: List[Dict[str, Any]], v: str, d: str, dtype: str, n: int, t: int) -> str:
    by = {r["backend"]: r for r in cell}
    head = f"{v} {'fwd' if d == 'forward' else 'bwd'} {dtype} n={_log2(n)} threads={t}:"
    dk = by.get("dropkit")
    if dk is None:
        best = min(cell, key=lambda r: r["median_s"])
        return f"{head} fastest {best['backend']} {best['ns_per_element']:.3g} ns/elem"
    sp = f", {dk['speedup']:.3g}x numpy" if dk["speedup"] is not None else ""
    dt, th = by.get("dropkit-torch"), by.get("torch")
    vs = ""
    if dt is not None and th is not None and dt["median_s"] > 0:  # torch / dropkit-torch, above 1: faster
        vs = (f"; dropkit-torch {dt['ns_per_element']:.3g} vs torch {th['ns_per_element']:.3g} ns/elem "
              f"({th['median_s'] / dt['median_s']:.2f}x)")
    return f"{head} dropkit {dk['ns_per_element']:.3g} ns/elem{sp}, {dk['ratio_to_stream']:.2f}x stream{vs}"

