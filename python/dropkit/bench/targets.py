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
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from .sysinfo import OthersCpu
from .timing import Candidate, Measurement, measure_interleaved, median, summarize

__all__ = ["GENERAL_RATES", "VARIANT_GOALS", "run_targets", "format_targets", "main"]

#: Rates without a short binary expansion: many bit planes per tile (docs/rng.md section 4).
GENERAL_RATES = (0.1, 0.2, 0.3, 0.9)


@dataclass
class _Row:
    key: str
    label: str
    op: Optional[str]  # "<=", ">=" or None (information)
    goal: Optional[float]
    num: Measurement
    den: Optional[Measurement]  # None: an absolute row, the numerator's median in microseconds
    n: int
    threads: str


def _verdict(value: float, op: str, goal: float) -> bool:
    return value <= goal if op == "<=" else value >= goal


#: The variants' speed goals (issue 7), ratio to np.multiply at the big size, forward and backward.
VARIANT_GOALS: Tuple[Tuple[str, float], ...] = (
    ("spatial1d", 1.2), ("spatial2d", 1.2), ("spatial3d", 1.2), ("temporal", 1.2), ("droppath", 1.2),
    ("alpha", 1.3), ("feature-alpha", 1.3), ("feature-rates", 1.6), ("gaussian", 2.5), ("concrete", 3.0),
)


def _variant_rows(x: np.ndarray, g: np.ndarray, y_mul: np.ndarray, rate: float, seed: int, rounds: int,
                  min_sample_time: float, one: Callable[[], None],
                  log: Callable[[str], None]) -> List[_Row]:
    """Forward and backward of each registered variant of VARIANT_GOALS against np.multiply.

    Variant by variant (its own interleaved group, so that only one variant's output buffers are
    alive at a time), on views of the same arrays in the variant's own layout.
    """
    from .contenders import VARIANTS, dropkit_kernels, make_case  # noqa: PLC0415

    n = x.size
    rows: List[_Row] = []
    for name, goal in VARIANT_GOALS:
        v = VARIANTS.get(name)
        if v is None:
            continue
        case = make_case(v, x, g, rate, seed)
        xs, ms = case.x, y_mul.reshape(case.x.shape)
        k = dropkit_kernels(v, case)
        cands = [Candidate("multiply", lambda: np.multiply(xs, 2.0, out=ms), one),
                 Candidate("forward", k.forward, one), Candidate("backward", k.backward, one)]
        if name == "gaussian":
            rng = np.random.default_rng(seed + 2)
            sigma = np.float32((rate / (1.0 - rate)) ** 0.5)
            cands.append(Candidate("numpy_formula",
                                   lambda: xs * (1 + sigma * rng.standard_normal(n, dtype=np.float32)), one))
        log(f"variant {name}: forward, backward, multiply ({rounds} rounds)")
        m = measure_interleaved(cands, repeats=rounds, warmup=1, warmup_time=0.05, min_sample_time=min_sample_time)
        rows += [_Row(f"{name}_{d}_over_multiply", f"{name} {d} / multiply", "<=", goal, m[d], m["multiply"], n, "1")
                 for d in ("forward", "backward")]
        if name == "gaussian":
            rows.append(_Row("gaussian_numpy_formula_over_forward", "Gaussian NumPy formula / forward", ">=", 8.0,
                             m["numpy_formula"], m["forward"], n, "1"))
        del k, cands, m
    return rows


def _busy_process() -> "subprocess.Popen[bytes]":
    """A CPU-bound child (one core's worth), stopped by the caller."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_targets(
    *,
    n: int = 2**24,
    n_threads_case: int = 2**20,
    rate: float = 0.5,
    seed: int = 1234,
    rounds: int = 15,
    min_sample_time: float = 0.01,
    two_threads: int = 2,
    variants: bool = True,
    progress: Optional[TextIO] = sys.stderr,
) -> Dict[str, Any]:
    """Measure every target row; return them with every sample (JSON-ready).

    ``n`` is the big (out-of-cache) size, ``n_threads_case`` the small (in-cache) size of the
    thread rows and of the small single-thread rows; ``rate`` is the standard rate (0.5).
    ``variants``: also the rows of every variant (VARIANT_GOALS) at the big size.
    """
    import dropkit  # noqa: PLC0415

    def log(msg: str) -> None:
        if progress is not None:
            print(f"[targets] {msg}", file=progress, flush=True)

    rng_inputs = np.random.default_rng(seed)
    x = rng_inputs.standard_normal(n, dtype=np.float32)
    g = rng_inputs.standard_normal(n, dtype=np.float32)
    y = np.empty_like(x)
    gx = np.empty_like(g)
    y_mul = np.empty_like(x)
    rng = np.random.default_rng(seed + 1)
    small = min(n_threads_case, n)
    x16 = x[:16].copy()

    result: Dict[str, Any] = {
        "config": {
            "dtype": "float32",
            "rate": rate,
            "general_rates": list(GENERAL_RATES),
            "n": n,
            "n_threads_case": small,
            "two_threads": two_threads,
            "rounds": rounds,
            "min_sample_time_s": min_sample_time,
            "seed": seed,
            "statistic": "ratio of medians of interleaved samples (seconds per call)",
        },
        "rows": [],
    }
    try:
        threads_before = dropkit.get_num_threads()
        simd_before = dropkit.simd_target()
        targets = dropkit.available_simd_targets()
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    result["config"]["simd_default"] = simd_before
    result["config"]["simd_available"] = targets

    def setting(threads: int, simd: str) -> Callable[[], None]:
        def pre() -> None:
            dropkit.set_num_threads(threads)
            dropkit.set_simd_target(simd)
        return pre

    one = setting(1, simd_before)

    def fwd(xa: np.ndarray, ya: np.ndarray, r: float) -> Callable[[], Any]:
        return lambda: dropkit.dropout(xa, r, seed=seed, out=ya, backend="core")

    def group(size: int, formula: bool) -> List[Candidate]:
        xs, ys, gs, gxs, ms = x[:size], y[:size], g[:size], gx[:size], y_mul[:size]
        cands = [Candidate("multiply", lambda: np.multiply(xs, 2.0, out=ms), one),
                 Candidate("forward", fwd(xs, ys, rate), one)]
        if formula:
            cands += [Candidate("backward",
                                lambda: dropkit.dropout_backward(gs, rate, seed=seed, out=gxs, backend="core"), one),
                      Candidate("forward_rate_1", fwd(xs, ys, 1.0), one),
                      Candidate("numpy_formula",
                                lambda: (rng.random(size, dtype=np.float32) >= rate) * xs / (1 - rate), one)]
        cands += [Candidate(f"forward_rate_{r:g}", fwd(xs, ys, r), one) for r in GENERAL_RATES]
        cands += [Candidate(f"forward_{t}", fwd(xs, ys, rate), setting(1, t)) for t in targets if t != simd_before]
        return cands

    rows: List[_Row] = []
    others = OthersCpu().start()
    busy: Optional["subprocess.Popen[bytes]"] = None
    try:
        for size, big in ((n, True), (small, False)):
            log(f"n=2^{size.bit_length() - 1}, 1 thread: rates, targets, multiply ({rounds} rounds)")
            m = measure_interleaved(group(size, big), repeats=rounds, warmup=1, warmup_time=0.05,
                                    min_sample_time=min_sample_time)
            where = "big" if big else "small"
            mul = m["multiply"]
            if big:
                rows += [
                    _Row("forward_over_multiply", "forward / multiply, rate %g" % rate, "<=", 1.1,
                         m["forward"], mul, size, "1"),
                    _Row("backward_over_multiply", "backward / multiply, rate %g" % rate, "<=", 1.1,
                         m["backward"], mul, size, "1"),
                    _Row("rate_1_over_multiply", "forward / multiply, rate 1", "<=", 1.05,
                         m["forward_rate_1"], mul, size, "1"),
                    _Row("numpy_formula_over_forward", "NumPy formula / forward", ">=", 12.0,
                         m["numpy_formula"], m["forward"], size, "1"),
                ]
            else:
                rows.append(_Row("forward_over_multiply_small", "forward / multiply, rate %g" % rate, None, None,
                                 m["forward"], mul, size, "1"))
            rows += [_Row(f"rate_{r:g}_over_multiply_{where}", f"forward / multiply, rate {r:g}", "<=",
                          1.3 if big else 1.6, m[f"forward_rate_{r:g}"], mul, size, "1") for r in GENERAL_RATES]
            rows += [_Row(f"default_over_{t}_{where}", f"forward, {simd_before} / {t}", "<=", 1.05,
                          m["forward"], m[f"forward_{t}"], size, "1") for t in targets if t != simd_before]

        if variants:
            rows += _variant_rows(x, g, y_mul, rate, seed, rounds, min_sample_time, one, log)

        log(f"16 elements: dropkit.dropout and np.multiply ({rounds} rounds)")
        m = measure_interleaved(
            [Candidate("dropout_16", lambda: dropkit.dropout(x16, rate, seed=seed), one),
             Candidate("multiply_16", lambda: np.multiply(x16, 2.0), one)],
            repeats=rounds, warmup=100, min_sample_time=min_sample_time)
        rows += [_Row("small_call_us", "dropout on 16 elements, us per call", "<=", 1.0,
                      m["dropout_16"], None, 16, "1"),
                 _Row("small_multiply_us", "np.multiply on 16 elements, us per call", None, None,
                      m["multiply_16"], None, 16, "1")]

        def threads_pair(size: int, settle: float) -> Dict[str, Measurement]:
            xs, ys = x[:size], y[:size]
            cands = [Candidate("1", fwd(xs, ys, rate), setting(1, simd_before)),
                     Candidate("2", fwd(xs, ys, rate), setting(two_threads, simd_before))]
            if settle > 0:  # one call per sample, each after `settle` seconds of sleep
                return measure_interleaved(cands, repeats=rounds, warmup=2, min_sample_time=0.0,
                                           max_number=1, settle=settle)
            return measure_interleaved(cands, repeats=rounds, warmup=2, warmup_time=0.05,
                                       min_sample_time=min_sample_time)

        def thread_rows(tag: str, label: str, cases: Sequence[Tuple[int, float]]) -> None:
            for size, settle in cases:
                t = threads_pair(size, settle)
                how = "after 10 ms idle" if settle else "back to back"
                rows.append(_Row(f"two_over_one_{tag}_{'idle' if settle else 'b2b'}_{size}",
                                 f"{two_threads} threads / 1 thread, {label}{how}", "<=", 1.25,
                                 t["2"], t["1"], size, f"{two_threads} vs 1"))

        log(f"threads: 1 vs {two_threads}, back to back and after 10 ms idle ({rounds} rounds)")
        t = threads_pair(small, 0.0)
        rows.append(_Row("one_thread_over_two", f"1 thread / {two_threads} threads, back to back", ">=", 1.8,
                         t["1"], t["2"], small, f"1 vs {two_threads}"))
        thread_rows("quiet", "", [(small // 4, 0.01), (small, 0.01)])
        # (what other processes used so far; the busy rows' own competitor is not counted)
        result["others_cpu_share"] = others.share()
        log("threads with a CPU-bound process on one core (started here, stopped after)")
        busy = _busy_process()
        time.sleep(0.2)
        thread_rows("busy", "one core busy, ", [(small, 0.0), (small // 4, 0.01)])
    except Exception as exc:  # core not built, API mismatch...: report, do not fail the run
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        try:
            dropkit.set_num_threads(threads_before)
            dropkit.set_simd_target(simd_before)
        except Exception:
            pass

    for r in rows:
        num = r.num.samples
        if r.den is None:
            value = median(num) * 1e6
            per_round, fastest = [v * 1e6 for v in num], min(num) * 1e6
        else:
            den = r.den.samples
            value = median(num) / median(den)
            per_round, fastest = [a / b for a, b in zip(num, den)], min(num) / min(den)
        result["rows"].append(
            {
                "key": r.key,
                "label": r.label,
                "n": r.n,
                "threads": r.threads,
                "unit": "us" if r.den is None else "ratio",
                "ratio": value,
                "op": r.op,
                "goal": r.goal,
                "pass": None if r.goal is None or r.op is None else _verdict(value, r.op, r.goal),
                "median_of_round_ratios": median(per_round),
                # noise only adds time: the fastest samples show what the code can do (cf. timeit)
                "ratio_of_minimums": fastest,
                "numerator": {"name": r.num.name, "calls_per_sample": r.num.number, "samples_s": num,
                              **summarize(num)},
                "denominator": None if r.den is None else {
                    "name": r.den.name, "calls_per_sample": r.den.number, "samples_s": r.den.samples,
                    **summarize(r.den.samples)},
            }
        )  # fmt: skip
    try:
        result["usable_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        result["usable_cpus"] = None
    return result


def _log2(n: int) -> str:
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


def format_targets(result: Dict[str, Any]) -> str:
    """The targets report as printed: one line per ratio with its goal and PASS/MISS."""
    cfg = result.get("config", {})
    lines: List[str] = [
        "dropkit performance targets (float32, default SIMD target %s of %s; same arrays, interleaved "
        "rounds, ratio of medians)" % (cfg.get("simd_default", "?"), ", ".join(cfg.get("simd_available", []))),
    ]
    if "error" in result:
        lines.append(f"  not measured: {result['error']}")
        return "\n".join(lines)
    width = max((len(r["label"]) for r in result["rows"]), default=10)
    for r in result["rows"]:
        where = f"n={_log2(int(r['n']))}, threads {r['threads']}"
        if r["goal"] is None:
            goal = "(no goal)       "
        else:
            goal = f"goal {r['op']} {r['goal']:<4g}  {'PASS' if r['pass'] else 'MISS'}"
        per_round, fastest = ("median sample", "fastest sample") if r["unit"] == "us" else (
            "median of per-round ratios", "ratio of fastest samples")
        lines.append(
            f"  {r['label']:<{width}}  {r['ratio']:7.2f}   {goal}   ({where};"
            f" {per_round} {r['median_of_round_ratios']:.2f}; {fastest} {r['ratio_of_minimums']:.2f})"
        )
    share = result.get("others_cpu_share")
    if share is not None and share > 0.1:
        lines.append(f"  note: other processes used {100 * share:.0f}% of the CPU during these measurements; "
                     "the ratios (the thread ratio above all) are unreliable, run again on a quiet machine")
    cpus = result.get("usable_cpus")
    if cpus is not None and cpus < cfg.get("two_threads", 2):
        lines.append(f"  note: only {cpus} CPU(s) usable; the thread rows cannot reach their goals here")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m dropkit.bench.targets``: the same as ``python -m dropkit.bench --targets``."""
    from .cli import main as cli_main  # noqa: PLC0415

    return cli_main(["--targets", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    raise SystemExit(main())
