"""``python -m dropkit.bench``: the command line of the benchmark."""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from . import report, sysinfo
from .contenders import BACKENDS, TORCH_BACKENDS, VARIANTS
from .memory import kept_bytes
from .sweep import SweepConfig, cell_records, cell_rows, run_sweep
from .targets import format_targets, run_targets
from .timing import CONFIDENCE

__all__ = ["main", "build_parser", "PRESETS", "SCHEMA"]

SCHEMA = "dropkit-bench/2"

#: Defaults of the two modes; any option given on the command line wins.
PRESETS: Dict[str, Dict[str, Any]] = {
    "quick": {"sizes": [10, 14, 18, 22], "dtypes": ["float32"], "threads": ["1"], "min_rounds": 3,
              "max_rounds": 25, "tol": 0.05, "min_time": 0.001, "cell_time": 0.03, "budget": 45.0,
              "memory_size": 18, "targets_rounds": 21, "targets_min_time": 0.01},
    "full": {"sizes": list(range(10, 25)), "dtypes": ["float32", "float64"], "threads": ["1", "all"],
             "min_rounds": 5, "max_rounds": 31, "tol": 0.02, "min_time": 0.005, "cell_time": 2.0, "budget": 0.0,
             "memory_size": 24, "targets_rounds": 31, "targets_min_time": 0.02},
}


def _size(text: str) -> int:
    """``14`` or ``2^14`` mean 2**14 elements; a number above 40 is an element count."""
    t = text.strip().replace("**", "^")
    try:
        v = int(t[2:]) if t.startswith("2^") else int(t)
    except ValueError:
        v = -1
    if v < 0 or (t.startswith("2^") and v > 40):
        raise argparse.ArgumentTypeError(f"size must be an exponent like 14 or 2^14, or a count > 40; got {text!r}")
    return 1 << v if v <= 40 else v


def _threads(text: str) -> str:
    if text == "all" or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"threads must be a positive integer or 'all', got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m dropkit.bench", description=(
        "Time every dropkit variant, forward and backward, against a tuned NumPy formulation and PyTorch "
        "(torch.nn.functional and dropkit.torch) when installed, next to np.multiply; print a summary; write full "
        "tables, JSON and a picture. Default: quick mode, under a minute on 2 cores."))
    add = ap.add_argument
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default: sizes 2^10 2^14 2^18 2^22, float32, 1 thread")
    mode.add_argument("--full", action="store_true", help="sizes 2^10..2^24, float32 and float64, 1 and all "
                      "threads, tighter intervals, no time budget, then the targets report")
    mode.add_argument("--targets", action="store_true", help="only the performance targets report")
    mode.add_argument("--list", action="store_true", help="list variants and backends, then exit")
    add("--variants", nargs="+", metavar="NAME", help=f"default: all ({', '.join(VARIANTS)})")
    add("--directions", nargs="+", choices=["forward", "backward"], help="default: both")
    add("--backends", nargs="+", choices=[b for b in BACKENDS if b != "multiply"], help="default: all "
        "(np.multiply is always timed)")
    add("--sizes", nargs="+", type=_size, metavar="K", help="log2 of element counts (or 2^K, or counts > 40)")
    add("--dtypes", nargs="+", choices=["float32", "float64"])
    add("--threads", nargs="+", type=_threads, metavar="T", help="dropkit's and torch's; 'all' = usable CPUs")
    add("--rate", type=float, default=0.5, help="drop rate, in (0, 1) (default 0.5)")
    add("--seed", type=int, default=1234, help="seed of the inputs and every generator (default 1234)")
    add("--simd", metavar="TARGET", help="dropkit.set_simd_target(TARGET) first")
    add("--no-torch", action="store_true", help="do not import PyTorch even if installed")
    add("--min-rounds", type=int, metavar="N", help="rounds every cell gets (quick 3, full 5)")
    add("--max-rounds", type=int, metavar="N", help="rounds a cell may get (quick 25, full 31)")
    add("--repeats", type=int, metavar="N", help="exactly N rounds per cell (min = max = N)")
    add("--tol", type=float, metavar="F", help=f"a cell stops when every headline ratio's {int(100 * CONFIDENCE)}%% "
        "interval is within +-F of it (quick 0.05, full 0.02)")
    add("--min-time", type=float, metavar="S", help="seconds per sample (quick 0.001, full 0.005)")
    add("--budget", type=float, metavar="S", help="seconds for the whole run: every cell gets its minimum rounds, "
        "what is left goes to the least certain cells (quick 45, full 0 = no limit)")
    add("--out", default="bench-results", metavar="DIR", help="output folder (default ./bench-results)")
    add("--no-plot", action="store_true", help="no picture")
    add("--no-memory", action="store_true", help="do not measure the bytes kept for backward")
    add("--memory-size", type=_size, metavar="K", help="size of that measurement (quick 2^18, full 2^24)")
    add("--no-targets", action="store_true", help="--full without the targets report")
    add("--targets-size", type=_size, default=1 << 24, metavar="K", help="targets' big size (2^24)")
    add("--targets-threads-size", type=_size, default=1 << 20, metavar="K", help="targets' small size (2^20)")
    add("--targets-rounds", type=int, metavar="N", help="targets' rounds (21, full 31)")
    add("--verbose", action="store_true", help="a line per cell: ratios, intervals, rounds")
    add("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.list:
        print("variants (dropkit's variant registry):")
        print("\n".join(f"  {v.name:<15} {v.summary}; dropkit.torch: {v.torch_name or 'none'}" for v in VARIANTS.values()))
        print("backends:\n" + "\n".join(f"  {k:<15} {d}" for k, d in BACKENDS.items()))
        print(f"  ({' and '.join(TORCH_BACKENDS)} need PyTorch: pip install 'dropkit[torch]')")
        return 0
    if not 0 < a.rate < 1:
        ap.error(f"--rate must be in (0, 1), got {a.rate}")
    bad = [v for v in a.variants or [] if v not in VARIANTS]
    if bad:
        ap.error(f"unknown variant {bad[0]!r}; known: {', '.join(VARIANTS)}")
    import dropkit  # noqa: PLC0415

    t_start, mode = time.perf_counter(), ("full" if a.full else "targets" if a.targets else "quick")
    p = PRESETS["full" if a.full else "quick"]
    pick = lambda value, key: p[key] if value is None else value  # noqa: E731
    progress = None if a.quiet else sys.stderr
    os.makedirs(a.out, exist_ok=True)
    if a.simd:
        dropkit.set_simd_target(a.simd)
    torch, threads_before = sysinfo.import_torch(not a.no_torch), dropkit.get_num_threads()
    threads: List[int] = []
    for t in [sysinfo.usable_cpus() if t == "all" else int(t) for t in a.threads or p["threads"]]:
        threads += [t] * (t not in threads)
    config: Dict[str, Any] = {
        "mode": mode, "variants": a.variants or list(VARIANTS), "directions": a.directions or ["forward", "backward"],
        "backends": a.backends, "sizes": a.sizes or [1 << k for k in p["sizes"]], "dtypes": a.dtypes or p["dtypes"],
        "threads": threads, "min_rounds": a.repeats or pick(a.min_rounds, "min_rounds"),
        "max_rounds": a.repeats or pick(a.max_rounds, "max_rounds"), "tol": pick(a.tol, "tol"),
        "confidence": CONFIDENCE, "min_sample_time_s": pick(a.min_time, "min_time"),
        "budget_s": pick(a.budget, "budget") or None, "rate": a.rate, "seed": a.seed, "torch": torch is not None,
        "simd_request": a.simd, "memory_size": a.memory_size or (1 << p["memory_size"]),
        "targets_rounds": a.targets_rounds or p["targets_rounds"],
        "statistic": "median of samples (seconds per call); ratios of medians; intervals: distribution-free, "
                     "of the median of per-round ratios",
    }  # fmt: skip
    config["max_rounds"] = max(config["max_rounds"], config["min_rounds"])
    doc: Dict[str, Any] = {
        "schema": SCHEMA, "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": argv, "config": config, "machine": sysinfo.machine_info(), "dropkit": sysinfo.dropkit_info(),
        "backends": dict(BACKENDS), "variants": {v.name: v.summary for v in VARIANTS.values()}, "results": [],
        "cells": [], "summary": [], "kept_for_backward": None, "skipped": [], "targets": None,
    }  # fmt: skip
    doc["machine"]["load_start"] = sysinfo.load_info()

    def do_targets() -> str:
        doc["targets"] = run_targets(n=a.targets_size, n_threads_case=a.targets_threads_size, rate=a.rate, seed=a.seed,
                                     rounds=config["targets_rounds"], min_sample_time=p["targets_min_time"],
                                     progress=progress)
        return format_targets(doc["targets"])

    if mode == "targets":
        print(do_targets())
        doc.update(versions=sysinfo.library_versions(), elapsed_s=time.perf_counter() - t_start)
        report.write_json(os.path.join(a.out, "targets.json"), doc)
        print(f"\nwrote {os.path.join(a.out, 'targets.json')}")
        return 0

    cfg = SweepConfig(
        variants=config["variants"], directions=config["directions"], sizes=config["sizes"],
        dtypes=config["dtypes"], threads=threads, backends=a.backends, min_rounds=config["min_rounds"],
        max_rounds=config["max_rounds"], tol=config["tol"], min_sample_time=config["min_sample_time_s"],
        cell_time=p["cell_time"], budget=config["budget_s"], rate=a.rate, seed=a.seed, torch=torch,
    )  # fmt: skip
    if torch is None and (a.backends is None or set(a.backends) & set(TORCH_BACKENDS)):
        why = "--no-torch given" if a.no_torch else "PyTorch does not import (pip install 'dropkit[torch]')"
        cfg.skipped.append({"what": f"backends {', '.join(TORCH_BACKENDS)}", "reason": why})
    if cfg.budget is not None:  # what is left of the run's budget, less the time the outputs take (about 5 s)
        cfg.budget = max(0.0, cfg.budget - (time.perf_counter() - t_start) - 5.0)
    try:
        cells = run_sweep(cfg, progress, verbose=a.verbose)
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    finally:
        dropkit.set_num_threads(threads_before)
    doc.update(results=cell_rows(cells), cells=cell_records(cells), skipped=cfg.skipped)
    if not a.no_memory:
        dropkit.set_num_threads(1)  # (torch is still on the sweep's last thread count)
        doc["kept_for_backward"] = {"size": config["memory_size"], "dtype": config["dtypes"][0], "per_variant": kept_bytes(
            config["variants"], config["memory_size"], config["dtypes"][0], a.rate, a.seed, torch, a.backends)}
        dropkit.set_num_threads(threads_before)
    doc["versions"] = sysinfo.library_versions()
    doc["summary"] = report.summary_rows(doc["results"], (doc["kept_for_backward"] or {}).get("per_variant"))
    summary = report.summary_text(doc["summary"], doc)
    print(summary)
    targets_text = do_targets() if mode == "full" and not a.no_targets else None
    if targets_text:
        print("\n" + targets_text)

    files: Dict[str, Optional[str]] = {k: os.path.join(a.out, f) for k, f in
                                       (("markdown", "results.md"), ("json", "results.json"), ("png", "results.png"))}
    notes = list(dict.fromkeys(f"not timed: {re.split(' forward| backward', s['what'])[0]}: {s['reason']}"
                               for s in cfg.skipped))
    if a.no_plot or not doc["results"]:
        files["png"] = None
    else:
        cpu = doc["machine"]["cpu"]
        title = (f"{cpu['model']} ({cpu['usable_cpus']} CPUs), {config['dtypes'][0]}, {threads[0]} thread(s), "
                 f"rate {a.rate}: python -m dropkit.bench {' '.join(argv)}".rstrip())
        note = report.write_plot(files["png"], doc["summary"], doc["results"], title)  # type: ignore[arg-type]
        if note is not None:
            files["png"], doc["plot_note"] = None, note
            notes.append(note)
    doc["machine"]["load_end"] = sysinfo.load_info(0.05)
    doc.update(files=files, elapsed_s=time.perf_counter() - t_start)
    report.write_markdown(files["markdown"], doc, summary, targets_text)  # type: ignore[arg-type]
    report.write_json(files["json"], doc)  # type: ignore[arg-type]
    print("\n" + report.header_lines(doc)[1])
    print("".join(f"note: {n}\n" for n in notes), end="")
    print(f"every cell: {files['markdown']}; JSON: {files['json']}; picture: {files['png'] or 'none'}  "
          f"({doc['elapsed_s']:.0f} s)")
    return 0
