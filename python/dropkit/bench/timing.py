"""Interleaved timing: warm-up, calibration, rounds A, B, C, A, B, C..., medians and spread.

The machine the benchmark runs on is shared and noisy, so contenders are never timed one after
the other in long stretches: every round takes one sample of each, in a rotating order, and the
statistics are medians. One sample is ``number`` back-to-back calls (enough to last
``min_sample_time``) divided by ``number``; the garbage collector is off while it runs.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = ["Candidate", "Measurement", "measure_interleaved", "median", "summarize"]

_clock = time.perf_counter


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
    repeats_target: int = 0


def median(samples: Sequence[float]) -> float:
    """The statistic every table is built on (``statistics.median``), exposed so tests can redo it."""
    return float(statistics.median(samples))


def summarize(samples: Sequence[float]) -> Dict[str, float]:
    """Median, quartiles, extremes and the relative spread ``(q3 - q1) / median`` of ``samples``."""
    s = sorted(samples)
    med = median(s)
    if len(s) >= 2:
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1 = q3 = s[0]
    return {
        "median_s": med,
        "q1_s": float(q1),
        "q3_s": float(q3),
        "min_s": float(s[0]),
        "max_s": float(s[-1]),
        "spread_rel": float((q3 - q1) / med) if med > 0 else 0.0,
    }


def _run_sample(c: Candidate, number: int, settle: float = 0.0) -> float:
    if c.pre is not None:
        c.pre()
    if settle > 0:
        # Let the thread pools of the previous candidate (another OpenMP runtime, say torch's)
        # stop spinning, so they do not steal cores from this one.
        time.sleep(settle)
    fn = c.fn
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        t0 = _clock()
        for _ in range(number):
            fn()
        t1 = _clock()
    finally:
        if gc_was_on:
            gc.enable()
    return (t1 - t0) / number


def measure_interleaved(
    candidates: Sequence[Candidate],
    *,
    repeats: int,
    warmup: int = 1,
    min_sample_time: float = 0.002,
    max_time_per_candidate: Optional[float] = None,
    min_repeats: int = 3,
    max_number: int = 1_000_000,
    settle: float = 0.0,
    warmup_time: float = 0.0,
) -> Dict[str, Measurement]:
    """Time every candidate in interleaved rounds; return a :class:`Measurement` per name.

    1. Warm-up: untimed calls of each candidate (first-touch of outputs, lazy initialisation,
       caches, idle cores and thread pools waking up): at least ``warmup`` calls and, if
       ``warmup_time`` is set, until that many seconds have passed.
    2. Calibration: one timed call, then a timed block of calls if that was short, gives the
       per-call cost, hence ``number`` (calls per sample) so a sample lasts ``min_sample_time``.
    3. Rounds: round ``r`` takes one sample of each candidate, starting at candidate
       ``r mod k`` so none is always first. A candidate whose samples would cost more than
       ``max_time_per_candidate`` in all stops after ``max(min_repeats, ...)`` samples.
       With ``settle`` > 0, each sample is preceded by an untimed sleep of that many seconds.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    gc.collect()
    results: Dict[str, Measurement] = {}
    for c in candidates:
        if c.pre is not None:
            c.pre()
        t_end = _clock() + warmup_time
        done = 0
        while done < warmup or (done > 0 and _clock() < t_end):
            c.fn()
            done += 1
        per_call = _run_sample(c, 1)
        if per_call * 20 < min_sample_time:
            block = max(1, min(max_number, int(0.25 * min_sample_time / max(per_call, 1e-9))))
            per_call = _run_sample(c, block)
        number = max(1, min(max_number, math.ceil(min_sample_time / max(per_call, 1e-9))))
        target = repeats
        if max_time_per_candidate is not None and per_call * number * repeats > max_time_per_candidate:
            target = max(min(min_repeats, repeats), int(max_time_per_candidate / (per_call * number)))
        results[c.name] = Measurement(c.name, [], number, done, target)

    k = len(candidates)
    for r in range(max((m.repeats_target for m in results.values()), default=0)):
        for j in range(k):
            c = candidates[(r + j) % k]
            m = results[c.name]
            if len(m.samples) < m.repeats_target:
                m.samples.append(_run_sample(c, m.number, settle))
    return results
