"""Interleaved, adaptive timing.

A *round* takes one sample of each contender, in a rotating order, so that slow drifts of a
shared machine hit all of them alike and the per-round ratios of two contenders are paired. A
sample is ``number`` back-to-back calls (lasting ``min_sample_time``) divided by ``number``, with
the garbage collector off. :func:`run_rounds` stops a cell when the interval of every ratio it is
asked about is within ``+-tol`` of the ratio (*tight*), past its deadline (*budget*) or after
``max_rounds``; the interval (:func:`ratio_ci`) is the distribution-free one of the median of the
per-round ratios: order statistics ``k`` and ``n + 1 - k``, ``k`` the largest whose binomial
coverage is at least ``CONFIDENCE`` (min and max when ``n`` is too small for that).
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["Candidate", "Measurement", "measure_interleaved", "run_rounds", "ratio_ci", "median", "summarize",
           "CONFIDENCE"]

clock = time.perf_counter
CONFIDENCE = 0.9


@dataclass
class Candidate:
    """Something to time. ``pre`` runs (untimed) before each of its samples, e.g. to set threads."""

    name: str
    fn: Callable[[], Any]
    pre: Optional[Callable[[], None]] = None


@dataclass
class Measurement:
    name: str
    samples: List[float] = field(default_factory=list)  # seconds per call, one per round
    number: int = 1  # calls per sample
    warmup_calls: int = 0


def median(samples: Sequence[float]) -> float:
    """The statistic every table is built on (``statistics.median``)."""
    return float(statistics.median(samples))


def summarize(samples: Sequence[float]) -> Dict[str, float]:
    """Median, quartiles, extremes and the relative spread ``(q3 - q1) / median`` of ``samples``."""
    s = sorted(samples)
    med = median(s)
    q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive") if len(s) >= 2 else (s[0], 0, s[0])
    return {"median_s": med, "q1_s": float(q1), "q3_s": float(q3), "min_s": float(s[0]), "max_s": float(s[-1]),
            "spread_rel": float((q3 - q1) / med) if med > 0 else 0.0}


def ratio_ci(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Tuple[float, float, float]:
    """``(median(a) / median(b), lo, hi)``: the ratio of medians and the distribution-free interval
    of the median of the paired per-round ratios ``a[i] / b[i]`` (see the module docstring)."""
    q = sorted(x / y for x, y in zip(a, b))
    n = len(q)
    k = 1
    for j in range(2, n // 2 + 1):  # P(Binomial(n, 1/2) <= j - 1) on each side
        tail = sum(math.comb(n, i) for i in range(j)) / 2**n
        if 1 - 2 * tail < confidence:
            break
        k = j
    return median(a) / median(b), q[k - 1], q[n - k]


def _run_sample(c: Candidate, number: int, settle: float = 0.0) -> float:
    if c.pre is not None:
        c.pre()
    if settle > 0:  # an untimed pause first (the targets' "after idle" rows)
        time.sleep(settle)
    fn = c.fn
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        t0 = clock()
        for _ in range(number):
            fn()
        t1 = clock()
    finally:
        if gc_was_on:
            gc.enable()
    return (t1 - t0) / number


def calibrate(candidates: Sequence[Candidate], *, warmup: int = 1, warmup_time: float = 0.0,
              min_sample_time: float = 0.001, max_number: int = 1_000_000) -> Dict[str, Measurement]:
    """Warm every candidate up (``warmup`` calls, and ``warmup_time`` seconds if set; first-touch of
    outputs, lazy initialisation, caches), then time one call (and a block of calls if that was
    short) to choose ``number``, the calls per sample, so that a sample lasts ``min_sample_time``."""
    out: Dict[str, Measurement] = {}
    for c in candidates:
        if c.pre is not None:
            c.pre()
        t_end, done = clock() + warmup_time, 0
        while done < warmup or (done > 0 and clock() < t_end):
            c.fn()
            done += 1
        per_call = _run_sample(c, 1)
        if per_call * 20 < min_sample_time:
            per_call = _run_sample(c, max(1, min(max_number, int(0.25 * min_sample_time / max(per_call, 1e-9)))))
        number = max(1, min(max_number, math.ceil(min_sample_time / max(per_call, 1e-9))))
        out[c.name] = Measurement(c.name, [], number, done)
    return out


def one_round(candidates: Sequence[Candidate], meas: Dict[str, Measurement], r: int, settle: float = 0.0) -> None:
    """Round ``r``: one sample of each candidate, starting at candidate ``r mod k``."""
    k = len(candidates)
    for j in range(k):
        c = candidates[(r + j) % k]
        meas[c.name].samples.append(_run_sample(c, meas[c.name].number, settle))


def measure_interleaved(candidates: Sequence[Candidate], *, repeats: int, warmup: int = 1,
                        warmup_time: float = 0.0, min_sample_time: float = 0.002, max_number: int = 1_000_000,
                        settle: float = 0.0) -> Dict[str, Measurement]:
    """Calibrate, then exactly ``repeats`` interleaved rounds (the targets report's timing); with
    ``settle`` > 0 every sample follows an untimed sleep of that many seconds."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    gc.collect()
    meas = calibrate(candidates, warmup=warmup, warmup_time=warmup_time, min_sample_time=min_sample_time,
                     max_number=max_number)
    for r in range(repeats):
        one_round(candidates, meas, r, settle)
    return meas


def widest(meas: Dict[str, Measurement], pairs: Sequence[Tuple[str, str]]) -> float:
    """The largest relative half-width ``(hi - lo) / 2 / ratio`` over ``pairs`` (0 without pairs)."""
    w = 0.0
    for a, b in pairs:
        value, lo, hi = ratio_ci(meas[a].samples, meas[b].samples)
        w = max(w, (hi - lo) / 2 / value if value > 0 else math.inf)
    return w


def run_rounds(candidates: Sequence[Candidate], meas: Dict[str, Measurement], pairs: Sequence[Tuple[str, str]], *,
               min_rounds: int, max_rounds: int, tol: float, deadline: Optional[float]) -> str:
    """Add rounds to ``meas`` until the cell is tight, its deadline (a ``clock()`` time) has passed
    or it has ``max_rounds``; at least ``min_rounds`` in all. Returns why it stopped."""
    while True:
        r = min((len(m.samples) for m in meas.values()), default=0)
        if r >= min_rounds:
            if pairs and widest(meas, pairs) <= tol:
                return "tight"
            if r >= max_rounds:
                return "max-rounds"
            if deadline is not None and clock() >= deadline:
                return "budget"
        one_round(candidates, meas, r)
