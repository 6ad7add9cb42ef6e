"""The core issue's performance targets, measured in one process on the same arrays.

float32, rate 0.5, one thread unless stated; dropkit and the multiply write into preallocated
``out=`` arrays; the candidates of each ratio are timed in interleaved rounds (A, B, A, B...) and
each ratio is a ratio of medians (the verdict); the median of the per-round ratios and the ratio
of the fastest samples are printed beside it, since on a shared machine noise only adds time.
A MISS is reported, never turned into a failing exit code.

====================================  ==========================================  =======
ratio                                 measured as                                 goal
====================================  ==========================================  =======
forward / multiply                    dropkit.dropout  vs  np.multiply(x, 2.0)    <= 2.0
backward / multiply                   dropkit.dropout_backward  vs  the same      <= 2.0
numpy formula / forward               (rng.random(n, float32) >= rate) * x /      >= 10
                                      (1 - rate)  vs  dropkit.dropout
1 thread / 2 threads                  dropkit.dropout at 2^20, 1 vs 2 threads,    >= 1.7
                                      back to back (the thread pool warm)
1 thread / 2 threads after idle       the same, each sample after 2 ms of sleep   (info)
                                      (OpenMP threads asleep: includes waking them)
====================================  ==========================================  =======

The last row has no goal: it shows what a call pays when dropkit's OpenMP threads have gone to
sleep between calls (libgomp spins briefly, then waits in the kernel). On a VM, waking them can
cost a sizeable part of a 0.1 ms call.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, TextIO

import numpy as np

from .sysinfo import OthersCpu
from .timing import Candidate, measure_interleaved, median, summarize

__all__ = ["GOALS", "INFO", "run_targets", "format_targets", "main"]

#: (key, label, op, goal)
GOALS = (
    ("forward_over_multiply", "dropkit forward / np.multiply", "<=", 2.0),
    ("backward_over_multiply", "dropkit backward / np.multiply", "<=", 2.0),
    ("numpy_formula_over_forward", "NumPy formula / dropkit forward", ">=", 10.0),
    ("one_thread_over_two", "1 thread / 2 threads (forward)", ">=", 1.7),
)
#: (key, label): reported without a goal
INFO = (("one_thread_over_two_idle", "1 thread / 2 threads, after idle"),)


def _verdict(value: float, op: str, goal: float) -> bool:
    return value <= goal if op == "<=" else value >= goal


def run_targets(
    *,
    n: int = 2**24,
    n_threads_case: int = 2**20,
    rate: float = 0.5,
    seed: int = 1234,
    rounds: int = 15,
    min_sample_time: float = 0.01,
    two_threads: int = 2,
    progress: Optional[TextIO] = sys.stderr,
) -> Dict[str, Any]:
    """Measure the four target ratios; return them with every sample (JSON-ready)."""
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

    try:
        threads_before = dropkit.get_num_threads()
    except Exception:
        threads_before = None

    def one_thread() -> None:
        dropkit.set_num_threads(1)

    def fwd() -> Any:
        return dropkit.dropout(x, rate, seed=seed, offset=0, out=y, backend="core")

    def bwd() -> Any:
        return dropkit.dropout_backward(g, rate, seed=seed, offset=0, out=gx, backend="core")

    def mul() -> Any:
        return np.multiply(x, 2.0, out=y_mul)

    def formula() -> Any:
        return (rng.random(n, dtype=np.float32) >= rate) * x / (1 - rate)

    result: Dict[str, Any] = {
        "config": {
            "dtype": "float32",
            "rate": rate,
            "n": n,
            "n_threads_case": n_threads_case,
            "two_threads": two_threads,
            "rounds": rounds,
            "min_sample_time_s": min_sample_time,
            "seed": seed,
            "statistic": "ratio of medians of interleaved samples (seconds per call)",
        },
        "rows": [],
    }
    others = OthersCpu().start()
    try:
        log(f"n=2^{n.bit_length() - 1}, 1 thread: forward, backward, multiply, NumPy formula ({rounds} rounds)")
        one_thread()
        big = measure_interleaved(
            [
                Candidate("dropkit_forward", fwd, one_thread),
                Candidate("dropkit_backward", bwd, one_thread),
                Candidate("multiply", mul, one_thread),
                Candidate("numpy_formula", formula, one_thread),
            ],
            repeats=rounds,
            warmup=1,
            warmup_time=0.05,
            min_sample_time=min_sample_time,
        )
        log(f"n=2^{n_threads_case.bit_length() - 1}: forward with 1 and {two_threads} threads ({rounds} rounds)")
        xs = x[:n_threads_case]
        ys = y[:n_threads_case]

        def fwd_small() -> Any:
            return dropkit.dropout(xs, rate, seed=seed, offset=0, out=ys, backend="core")

        def thread_candidates() -> List[Candidate]:
            return [
                Candidate("forward_1_thread", fwd_small, one_thread),
                Candidate(f"forward_{two_threads}_threads", fwd_small,
                          lambda: dropkit.set_num_threads(two_threads)),
            ]

        # Back to back: the thread pool stays warm between samples (the goal's measurement).
        thr = measure_interleaved(thread_candidates(), repeats=rounds, warmup=2, warmup_time=0.05,
                                  min_sample_time=min_sample_time)
        # After 2 ms of sleep before each sample: the OpenMP threads have gone to sleep.
        log(f"n=2^{n_threads_case.bit_length() - 1}: the same after 2 ms idle ({rounds} rounds)")
        thr_idle = measure_interleaved(thread_candidates(), repeats=rounds, warmup=2, warmup_time=0.05,
                                       min_sample_time=min_sample_time, settle=0.002)
    except Exception as exc:  # core not built, API mismatch...: report, do not fail the run
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        if threads_before is not None:
            try:
                dropkit.set_num_threads(threads_before)
            except Exception:
                pass

    result["others_cpu_share"] = others.share()
    pairs = (
        (big["dropkit_forward"], big["multiply"]),
        (big["dropkit_backward"], big["multiply"]),
        (big["numpy_formula"], big["dropkit_forward"]),
        (thr["forward_1_thread"], thr[f"forward_{two_threads}_threads"]),
    )
    rows = [(key, label, op, goal, num, den) for (key, label, op, goal), (num, den) in zip(GOALS, pairs)]
    rows += [(key, label, None, None, thr_idle["forward_1_thread"], thr_idle[f"forward_{two_threads}_threads"])
             for key, label in INFO]
    for key, label, op, goal, num, den in rows:
        ratio = median(num.samples) / median(den.samples)
        per_round = [a / b for a, b in zip(num.samples, den.samples)]
        result["rows"].append(
            {
                "key": key,
                "label": label,
                "n": n_threads_case if key.startswith("one_thread_over_two") else n,
                "threads": "1 vs %d" % two_threads if key.startswith("one_thread_over_two") else 1,
                "ratio": ratio,
                "op": op,
                "goal": goal,
                "pass": None if goal is None else _verdict(ratio, op, goal),
                "median_of_round_ratios": median(per_round),
                # noise only adds time: the fastest samples show what the code can do (cf. timeit)
                "ratio_of_minimums": min(num.samples) / min(den.samples),
                "numerator": {"name": num.name, "calls_per_sample": num.number, "samples_s": num.samples,
                              **summarize(num.samples)},
                "denominator": {"name": den.name, "calls_per_sample": den.number, "samples_s": den.samples,
                                **summarize(den.samples)},
            }
        )  # fmt: skip
    try:
        import os  # noqa: PLC0415

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
        "dropkit performance targets (float32, rate %s, same arrays, interleaved rounds, ratio of medians)"
        % cfg.get("rate", "?"),
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
        lines.append(
            f"  {r['label']:<{width}}  {r['ratio']:7.2f}   {goal}   ({where};"
            f" median of per-round ratios {r['median_of_round_ratios']:.2f};"
            f" ratio of fastest samples {r['ratio_of_minimums']:.2f})"
        )
    share = result.get("others_cpu_share")
    if share is not None and share > 0.1:
        lines.append(f"  note: other processes used {100 * share:.0f}% of the CPU during these measurements; "
                     "the ratios (the thread ratio above all) are unreliable, run again on a quiet machine")
    cpus = result.get("usable_cpus")
    if cpus is not None and cpus < cfg.get("two_threads", 2):
        lines.append(f"  note: only {cpus} CPU(s) usable; the thread ratio cannot reach its goal here")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m dropkit.bench.targets``: the same as ``python -m dropkit.bench --targets``."""
    from .cli import main as cli_main  # noqa: PLC0415

    return cli_main(["--targets", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    raise SystemExit(main())
