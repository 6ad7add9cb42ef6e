"""``python -m dropkit.bench --targets``: the performance targets of the core issues, measured in
one process on the same arrays.

float32, one thread unless stated; dropkit and the multiply write into preallocated ``out=``
arrays; the candidates of each group are timed in interleaved rounds and each ratio is a ratio
of medians (the verdict); the median of the per-round ratios and the ratio of the fastest
samples are printed beside it, since on a shared machine noise only adds time. A MISS is
reported, never turned into a failing exit code. The rows and their goals are listed in
``docs/performance.md``; the thread rows need two usable CPUs (a note says so otherwise).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, TextIO, Tuple

import numpy as np

from .sysinfo import OthersCpu
from .timing import Candidate, Measurement, measure_interleaved, median, summarize

__all__ = ["GENERAL_RATES", "VARIANT_GOALS", "run_targets", "format_targets"]

#: Rates without a short binary expansion: many bit planes per tile (docs/rng.md section 4).
GENERAL_RATES = (0.1, 0.2, 0.3, 0.9)
#: The variants' speed goals (issue 7), ratio to np.multiply at the big size, forward and backward.
VARIANT_GOALS: Tuple[Tuple[str, float], ...] = (
    ("spatial1d", 1.2), ("spatial2d", 1.2), ("spatial3d", 1.2), ("temporal", 1.2), ("droppath", 1.2),
    ("alpha", 1.3), ("feature-alpha", 1.3), ("feature-rates", 1.6), ("gaussian", 2.5), ("concrete", 3.0),
)


class _Row(NamedTuple):
    key: str
    label: str
    op: Optional[str]  # "<=", ">=" or None (information)
    goal: Optional[float]
    num: Measurement
    den: Optional[Measurement]  # None: an absolute row, the numerator's median in microseconds
    n: int
    threads: str


def _variant_rows(x: np.ndarray, g: np.ndarray, y_mul: np.ndarray, rate: float, seed: int, rounds: int,
                  min_sample_time: float, one: Callable[[], None], log: Callable[[str], None]) -> List[_Row]:
    """Forward and backward of each variant of VARIANT_GOALS against np.multiply, variant by variant
    (only one variant's buffers alive at a time), on views of the same arrays in its own layout."""
    from .contenders import VARIANTS, dropkit_kernels, make_case  # noqa: PLC0415

    rows: List[_Row] = []
    for name, goal in VARIANT_GOALS:
        if name not in VARIANTS:
            continue
        case = make_case(VARIANTS[name], x, g, rate, seed)
        xs, ms, k = case.x, y_mul.reshape(case.x.shape), dropkit_kernels(VARIANTS[name], case)
        cands = [Candidate("multiply", lambda: np.multiply(xs, 2.0, out=ms), one),
                 Candidate("forward", k.forward, one), Candidate("backward", k.backward, one)]
        if name == "gaussian":
            rng, sigma = np.random.default_rng(seed + 2), np.float32((rate / (1.0 - rate)) ** 0.5)
            cands.append(Candidate("numpy_formula",
                                   lambda: xs * (1 + sigma * rng.standard_normal(x.size, dtype=np.float32)), one))
        log(f"variant {name}: forward, backward, multiply ({rounds} rounds)")
        m = measure_interleaved(cands, repeats=rounds, warmup=1, warmup_time=0.05, min_sample_time=min_sample_time)
        rows += [_Row(f"{name}_{d}_over_multiply", f"{name} {d} / multiply", "<=", goal, m[d], m["multiply"],
                      x.size, "1") for d in ("forward", "backward")]
        if name == "gaussian":
            rows.append(_Row("gaussian_numpy_formula_over_forward", "Gaussian NumPy formula / forward", ">=", 8.0,
                             m["numpy_formula"], m["forward"], x.size, "1"))
    return rows


def run_targets(*, n: int = 2**24, n_threads_case: int = 2**20, rate: float = 0.5, seed: int = 1234,
                rounds: int = 15, min_sample_time: float = 0.01, two_threads: int = 2, variants: bool = True,
                progress: Optional[TextIO] = sys.stderr) -> Dict[str, Any]:
    """Measure every target row; return them with every sample (JSON-ready). ``n``: the big
    (out-of-cache) size; ``n_threads_case``: the small (in-cache) size of the thread rows and the
    small single-thread rows; ``variants``: also every variant's rows (VARIANT_GOALS) at ``n``."""
    import dropkit  # noqa: PLC0415

    def log(msg: str) -> None:
        if progress is not None:
            print(f"[targets] {msg}", file=progress, flush=True)

    rng_inputs = np.random.default_rng(seed)
    x, g = rng_inputs.standard_normal(n, dtype=np.float32), rng_inputs.standard_normal(n, dtype=np.float32)
    y, gx, y_mul = np.empty_like(x), np.empty_like(g), np.empty_like(x)
    rng, small, x16 = np.random.default_rng(seed + 1), min(n_threads_case, n), x[:16].copy()
    result: Dict[str, Any] = {"config": {
        "dtype": "float32", "rate": rate, "general_rates": list(GENERAL_RATES), "n": n, "n_threads_case": small,
        "two_threads": two_threads, "rounds": rounds, "min_sample_time_s": min_sample_time, "seed": seed,
        "statistic": "ratio of medians of interleaved samples (seconds per call)"}, "rows": []}
    threads_before, simd = dropkit.get_num_threads(), dropkit.simd_target()
    targets = [t for t in dropkit.available_simd_targets() if t != simd]
    result["config"].update(simd_default=simd, simd_available=list(dropkit.available_simd_targets()))

    def setting(threads: int, target: str) -> Callable[[], None]:
        return lambda: (dropkit.set_num_threads(threads), dropkit.set_simd_target(target)) and None

    one = setting(1, simd)

    def fwd(xa: np.ndarray, ya: np.ndarray, r: float) -> Callable[[], Any]:
        return lambda: dropkit.dropout(xa, r, seed=seed, out=ya, backend="core")

    rows: List[_Row] = []
    others = OthersCpu().start()
    busy: Optional["subprocess.Popen[bytes]"] = None
    try:
        for size, big in ((n, True), (small, False)):
            xs, ys, gs, gxs, ms = x[:size], y[:size], g[:size], gx[:size], y_mul[:size]
            cands = [Candidate("multiply", lambda: np.multiply(xs, 2.0, out=ms), one),
                     Candidate("forward", fwd(xs, ys, rate), one)]
            if big:
                cands += [Candidate("backward", lambda: dropkit.dropout_backward(
                              gs, rate, seed=seed, out=gxs, backend="core"), one),
                          Candidate("forward_rate_1", fwd(xs, ys, 1.0), one),
                          Candidate("numpy_formula",
                                    lambda: (rng.random(size, dtype=np.float32) >= rate) * xs / (1 - rate), one)]
            cands += [Candidate(f"forward_rate_{r:g}", fwd(xs, ys, r), one) for r in GENERAL_RATES]
            cands += [Candidate(f"forward_{t}", fwd(xs, ys, rate), setting(1, t)) for t in targets]
            log(f"n=2^{size.bit_length() - 1}, 1 thread: rates, targets, multiply ({rounds} rounds)")
            m = measure_interleaved(cands, repeats=rounds, warmup=1, warmup_time=0.05,
                                    min_sample_time=min_sample_time)
            where, mul = ("big" if big else "small"), m["multiply"]
            if big:
                rows += [_Row("forward_over_multiply", f"forward / multiply, rate {rate:g}", "<=", 1.1,
                              m["forward"], mul, size, "1"),
                         _Row("backward_over_multiply", f"backward / multiply, rate {rate:g}", "<=", 1.1,
                              m["backward"], mul, size, "1"),
                         _Row("rate_1_over_multiply", "forward / multiply, rate 1", "<=", 1.05,
                              m["forward_rate_1"], mul, size, "1"),
                         _Row("numpy_formula_over_forward", "NumPy formula / forward", ">=", 12.0,
                              m["numpy_formula"], m["forward"], size, "1")]
            else:
                rows.append(_Row("forward_over_multiply_small", f"forward / multiply, rate {rate:g}", None, None,
                                 m["forward"], mul, size, "1"))
            rows += [_Row(f"rate_{r:g}_over_multiply_{where}", f"forward / multiply, rate {r:g}", "<=",
                          1.3 if big else 1.6, m[f"forward_rate_{r:g}"], mul, size, "1") for r in GENERAL_RATES]
            rows += [_Row(f"default_over_{t}_{where}", f"forward, {simd} / {t}", "<=", 1.05,
                          m["forward"], m[f"forward_{t}"], size, "1") for t in targets]
        if variants:
            rows += _variant_rows(x, g, y_mul, rate, seed, rounds, min_sample_time, one, log)

        log(f"16 elements: dropkit.dropout and np.multiply ({rounds} rounds)")
        m = measure_interleaved([Candidate("dropout_16", lambda: dropkit.dropout(x16, rate, seed=seed), one),
                                 Candidate("multiply_16", lambda: np.multiply(x16, 2.0), one)],
                                repeats=rounds, warmup=100, min_sample_time=min_sample_time)
        rows += [_Row("small_call_us", "dropout on 16 elements, us per call", "<=", 1.0, m["dropout_16"], None, 16, "1"),
                 _Row("small_multiply_us", "np.multiply on 16 elements, us per call", None, None,
                      m["multiply_16"], None, 16, "1")]

        def pair(size: int, settle: float) -> Dict[str, Measurement]:
            cands = [Candidate("1", fwd(x[:size], y[:size], rate), setting(1, simd)),
                     Candidate("2", fwd(x[:size], y[:size], rate), setting(two_threads, simd))]
            if settle > 0:  # one call per sample, each after `settle` seconds of sleep
                return measure_interleaved(cands, repeats=rounds, warmup=2, min_sample_time=0.0, max_number=1,
                                           settle=settle)
            return measure_interleaved(cands, repeats=rounds, warmup=2, warmup_time=0.05,
                                       min_sample_time=min_sample_time)

        def thread_rows(tag: str, label: str, cases: List[Tuple[int, float]]) -> None:
            for size, settle in cases:
                t, how = pair(size, settle), ("after 10 ms idle" if settle else "back to back")
                rows.append(_Row(f"two_over_one_{tag}_{'idle' if settle else 'b2b'}_{size}",
                                 f"{two_threads} threads / 1 thread, {label}{how}", "<=", 1.25,
                                 t["2"], t["1"], size, f"{two_threads} vs 1"))

        log(f"threads: 1 vs {two_threads}, back to back and after 10 ms idle ({rounds} rounds)")
        t = pair(small, 0.0)
        rows.append(_Row("one_thread_over_two", f"1 thread / {two_threads} threads, back to back", ">=", 1.8,
                         t["1"], t["2"], small, f"1 vs {two_threads}"))
        thread_rows("quiet", "", [(small // 4, 0.01), (small, 0.01)])
        result["others_cpu_share"] = others.share()  # (the busy rows' own competitor is not counted)
        log("threads with a CPU-bound process on one core (started here, stopped after)")
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        thread_rows("busy", "one core busy, ", [(small, 0.0), (small // 4, 0.01)])
    except Exception as exc:  # core not built, API mismatch...: report, do not fail the run
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        dropkit.set_num_threads(threads_before)
        dropkit.set_simd_target(simd)

    for r in rows:
        num = r.num.samples
        if r.den is None:
            value, per_round, fastest = median(num) * 1e6, [v * 1e6 for v in num], min(num) * 1e6
        else:
            den = r.den.samples
            value, per_round, fastest = median(num) / median(den), [a / b for a, b in zip(num, den)], min(num) / min(den)
        result["rows"].append({
            "key": r.key, "label": r.label, "n": r.n, "threads": r.threads, "unit": "us" if r.den is None else "ratio",
            "ratio": value, "op": r.op, "goal": r.goal,
            "pass": None if r.goal is None else (value <= r.goal if r.op == "<=" else value >= r.goal),
            "median_of_round_ratios": median(per_round),
            "ratio_of_minimums": fastest,  # noise only adds time: the fastest samples show what the code can do
            "numerator": {"name": r.num.name, "calls_per_sample": r.num.number, "samples_s": num, **summarize(num)},
            "denominator": None if r.den is None else {"name": r.den.name, "calls_per_sample": r.den.number,
                                                       "samples_s": r.den.samples, **summarize(r.den.samples)},
        })  # fmt: skip
    result["usable_cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return result


def format_targets(result: Dict[str, Any]) -> str:
    """The targets report as printed: one line per ratio with its goal and PASS/MISS."""
    cfg = result.get("config", {})
    lines = [f"dropkit performance targets (float32, default SIMD target {cfg.get('simd_default', '?')} of "
             f"{', '.join(cfg.get('simd_available', []))}; same arrays, interleaved rounds, ratio of medians)"]
    if "error" in result:
        return "\n".join(lines + [f"  not measured: {result['error']}"])
    width = max((len(r["label"]) for r in result["rows"]), default=10)
    for r in result["rows"]:
        n = int(r["n"])
        where = f"n={f'2^{n.bit_length() - 1}' if n & (n - 1) == 0 else n}, threads {r['threads']}"
        goal = ("(no goal)       " if r["goal"] is None else
                f"goal {r['op']} {r['goal']:<4g}  {'PASS' if r['pass'] else 'MISS'}")
        per_round, fastest = (("median sample", "fastest sample") if r["unit"] == "us" else
                              ("median of per-round ratios", "ratio of fastest samples"))
        lines.append(f"  {r['label']:<{width}}  {r['ratio']:7.2f}   {goal}   ({where}; {per_round} "
                     f"{r['median_of_round_ratios']:.2f}; {fastest} {r['ratio_of_minimums']:.2f})")
    share = result.get("others_cpu_share")
    if share is not None and share > 0.1:
        lines.append(f"  note: other processes used {100 * share:.0f}% of the CPU during these measurements; "
                     "the ratios (the thread ratio above all) are unreliable, run again on a quiet machine")
    if result.get("usable_cpus") is not None and result["usable_cpus"] < cfg.get("two_threads", 2):
        lines.append(f"  note: only {result['usable_cpus']} CPU(s) usable; the thread rows cannot reach their goals")
    return "\n".join(lines)
