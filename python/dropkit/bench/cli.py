"""``python -m dropkit.bench``: the command line of the benchmark."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from . import report, sysinfo
from .contenders import BACKENDS, TORCH_BACKENDS, VARIANTS
from .memory import kept_bytes
from .sweep import SweepConfig, cell_records, cell_rows, probe_backends, run_sweep
from .targets import format_targets, run_targets
from .timing import CONFIDENCE

__all__ = ["main", "build_parser", "PRESETS", "SCHEMA"]

SCHEMA = "dropkit-bench/2"

#: Defaults of the two modes; any option given on the command line wins.
PRESETS: Dict[str, Dict[str, Any]] = {
    "quick": {"sizes": [10, 14, 18, 22], "dtypes": ["float32"], "threads": ["1"], "min_rounds": 3,
              "max_rounds": 15, "tol": 0.05, "min_time": 0.001, "cell_time": 0.03, "budget": 50.0,
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
        raise argparse.ArgumentTypeError(f"size must be an exponent like 14 or 2^14, or a count > 40; got {text!r}")
    if v < 0 or (t.startswith("2^") and v > 40):
        raise argparse.ArgumentTypeError(f"size must be positive and at most 2^40, got {text!r}")
    return 1 << v if v <= 40 else v


def _threads(text: str) -> str:
    if text == "all" or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"threads must be a positive integer or 'all', got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m dropkit.bench",
        description="Time every dropkit variant, forward and backward, against a tuned NumPy formulation and "
        "PyTorch (torch.nn.functional and dropkit.torch) when installed, next to np.multiply; print a summary, "
        "write full tables, JSON and a picture. Default: quick mode (under a minute on 2 cores).")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="quick mode (the default): sizes 2^10 2^14 2^18 2^22")
    mode.add_argument("--full", action="store_true", help="sizes 2^10..2^24, float32 and float64, 1 and all "
                      "threads, tighter intervals, no time budget, then the targets report")
    mode.add_argument("--targets", action="store_true", help="only the performance targets report")
    mode.add_argument("--list", action="store_true", help="list variants and backends, then exit")
    sel = ap.add_argument_group("what to time")
    sel.add_argument("--variants", nargs="+", metavar="NAME", help=f"default: all ({', '.join(VARIANTS)})")
    sel.add_argument("--directions", nargs="+", choices=["forward", "backward"], help="default: both")
    sel.add_argument("--backends", nargs="+", metavar="NAME", choices=[b for b in BACKENDS if b != "multiply"],
                     help="subset of dropkit numpy torch dropkit-torch (np.multiply is always timed)")
    sel.add_argument("--sizes", nargs="+", type=_size, metavar="K",
                     help="log2 of element counts (10 14 18 or 2^20); values > 40 are counts")
    sel.add_argument("--dtypes", nargs="+", choices=["float32", "float64"], help="quick: float32; full: both")
    sel.add_argument("--threads", nargs="+", type=_threads, metavar="T",
                     help="thread counts of dropkit and torch; 'all' = usable CPUs (quick: 1; full: 1 all)")
    sel.add_argument("--rate", type=float, default=0.5, help="drop rate, in (0, 1) (default 0.5)")
    sel.add_argument("--seed", type=int, default=1234, help="seed of inputs and every generator (default 1234)")
    sel.add_argument("--simd", metavar="TARGET", help="dropkit.set_simd_target(TARGET) first (default: automatic)")
    sel.add_argument("--no-torch", action="store_true", help="do not import PyTorch even if installed")
    how = ap.add_argument_group("how to time (adaptive: more rounds where the ratios are uncertain)")
    how.add_argument("--min-rounds", type=int, metavar="N", help="rounds every cell gets (quick 3, full 5)")
    how.add_argument("--max-rounds", type=int, metavar="N", help="rounds a cell may get (quick 15, full 31)")
    how.add_argument("--repeats", type=int, metavar="N", help="exactly N rounds per cell (min = max = N)")
    how.add_argument("--tol", type=float, metavar="F", help="stop a cell when every headline ratio's "
                     f"{int(100 * CONFIDENCE)}%% interval is within +-F (quick 0.05, full 0.02)")
    how.add_argument("--min-time", type=float, metavar="S", help="seconds per sample (quick 0.001, full 0.005)")
    how.add_argument("--budget", type=float, metavar="S", help="seconds for the whole run: every cell gets its "
                     "minimum rounds, what is left goes to the least certain cells (quick 50, full 0 = no limit)")
    out = ap.add_argument_group("what to produce")
    out.add_argument("--out", default="bench-results", metavar="DIR", help="output folder (default ./bench-results)")
    out.add_argument("--no-plot", action="store_true", help="no picture")
    out.add_argument("--no-memory", action="store_true", help="do not measure the bytes kept for backward")
    out.add_argument("--memory-size", type=_size, metavar="K", help="size of that measurement (2^18 / 2^24)")
    out.add_argument("--no-targets", action="store_true", help="--full without the targets report")
    out.add_argument("--targets-size", type=_size, default=1 << 24, metavar="K", help="targets' big size (2^24)")
    out.add_argument("--targets-threads-size", type=_size, default=1 << 20, metavar="K",
                     help="targets' small size and thread rows (2^20)")
    out.add_argument("--targets-rounds", type=int, metavar="N", help="targets' rounds (21, full 31)")
    out.add_argument("--verbose", action="store_true", help="a line per cell (ratios, intervals, rounds)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def _list_text() -> str:
    lines = ["variants (from dropkit's variant registry):"]
    for v in VARIANTS.values():
        lines.append(f"  {v.name:<15} {v.summary}; dropkit.torch: {v.torch_name or 'none'}")
    lines += ["backends:"] + [f"  {k:<15} {d}" for k, d in BACKENDS.items()]
    lines.append(f"  ({' and '.join(TORCH_BACKENDS)} need PyTorch: pip install 'dropkit[torch]')")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.list:
        print(_list_text())
        return 0
    if not 0 < a.rate < 1:
        ap.error(f"--rate must be in (0, 1), got {a.rate}")
    for v in a.variants or []:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    import dropkit  # noqa: PLC0415

    mode = "full" if a.full else ("targets" if a.targets else "quick")
    p = PRESETS["full" if a.full else "quick"]
    pick = lambda value, key: p[key] if value is None else value  # noqa: E731
    progress = None if a.quiet else sys.stderr
    t_start = time.perf_counter()
    os.makedirs(a.out, exist_ok=True)
    if a.simd:
        dropkit.set_simd_target(a.simd)
    torch = sysinfo.import_torch(not a.no_torch)
    threads_before = dropkit.get_num_threads()
    usable = sysinfo.usable_cpus()
    threads: List[int] = []
    for t in a.threads or p["threads"]:
        if (usable if t == "all" else int(t)) not in threads:
            threads.append(usable if t == "all" else int(t))
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
        "backends": dict(BACKENDS), "variants": {v.name: v.summary for v in VARIANTS.values()},
        "results": [], "cells": [], "summary": [], "kept_for_backward": None, "skipped": [], "unavailable": {},
        "targets": None,
    }  # fmt: skip
    doc["machine"]["load_start"] = sysinfo.load_info()
    targets_text: Optional[str] = None
    def do_targets() -> str:
        tr = run_targets(n=a.targets_size, n_threads_case=a.targets_threads_size, rate=a.rate, seed=a.seed,
                         rounds=config["targets_rounds"], min_sample_time=p["targets_min_time"],
                         progress=progress)
        doc["targets"] = tr
        return format_targets(tr)

    if mode == "targets":
        print(do_targets())
        doc["versions"] = sysinfo.library_versions()
        doc["elapsed_s"] = time.perf_counter() - t_start
        path = os.path.join(a.out, "targets.json")
        report.write_json(path, doc)
        print(f"\nwrote {path}")
        return 0

    cfg = SweepConfig(
        variants=config["variants"], directions=config["directions"], sizes=config["sizes"],
        dtypes=config["dtypes"], threads=threads, backends=a.backends, min_rounds=config["min_rounds"],
        max_rounds=config["max_rounds"], tol=config["tol"], min_sample_time=config["min_sample_time_s"],
        cell_time=p["cell_time"], budget=config["budget_s"], rate=a.rate, seed=a.seed, torch=torch,
    )  # fmt: skip
    notes: List[str] = []
    if torch is None and (a.backends is None or set(a.backends) & set(TORCH_BACKENDS)):
        why = "--no-torch given" if a.no_torch else "PyTorch does not import (pip install 'dropkit[torch]')"
        cfg.skipped.append({"what": f"backends {', '.join(TORCH_BACKENDS)}", "reason": why})
    cfg.unavailable = probe_backends(cfg)
    if cfg.budget is not None:  # what is left of the run's budget, less the time the outputs take (about 5 s)
        cfg.budget = max(0.0, cfg.budget - (time.perf_counter() - t_start) - 5.0)
    interrupted = False
    try:
        cells = run_sweep(cfg, progress, verbose=a.verbose)
    except KeyboardInterrupt:
        interrupted, cells = True, []
        notes.append("interrupted: nothing written but the configuration")
    finally:
        dropkit.set_num_threads(threads_before)
    doc["results"], doc["cells"] = cell_rows(cells), cell_records(cells)
    doc["skipped"], doc["unavailable"] = cfg.skipped, cfg.unavailable
    if not interrupted and not a.no_memory:
        dropkit.set_num_threads(1)
        if torch is not None:
            torch.set_num_threads(1)
        doc["kept_for_backward"] = {"size": config["memory_size"], "dtype": config["dtypes"][0], "per_variant": kept_bytes(
            config["variants"], config["memory_size"], config["dtypes"][0], a.rate, a.seed, torch, a.backends)}
        dropkit.set_num_threads(threads_before)
    doc["versions"] = sysinfo.library_versions()
    doc["summary"] = report.summary_rows(doc["results"], (doc["kept_for_backward"] or {}).get("per_variant"))
    summary = report.summary_text(doc["summary"], doc)
    print(summary)
    if mode == "full" and not a.no_targets and not interrupted:
        targets_text = do_targets()
        print()
        print(targets_text)

    files = {k: os.path.join(a.out, f) for k, f in
             (("tables", "results.txt"), ("markdown", "results.md"), ("json", "results.json"), ("png", "results.png"))}
    if a.no_plot or not doc["results"]:
        files["png"] = None  # type: ignore[assignment]
    else:
        cpu = doc["machine"]["cpu"]
        title = (f"{cpu['model']} ({cpu['usable_cpus']} CPUs), {config['dtypes'][0]}, {threads[0]} thread(s), "
                 f"rate {a.rate}: python -m dropkit.bench {' '.join(argv)}".rstrip())
        note = report.write_plot(files["png"], doc["summary"], doc["results"], title)  # type: ignore[arg-type]
        if note is not None:
            files["png"] = None  # type: ignore[assignment]
            doc["plot_note"] = note
            notes.append(note)
    with open(files["tables"], "w", encoding="utf-8") as fh:
        fh.write("\n".join(report.header_lines(doc)) + "\n\n" + report.full_tables(doc["results"]))
    doc["machine"]["load_end"] = sysinfo.load_info(0.05)
    doc.update(files=files, interrupted=interrupted, elapsed_s=time.perf_counter() - t_start)
    report.write_markdown(files["markdown"], doc, summary, targets_text)
    report.write_json(files["json"], doc)
    print()
    print(report.header_lines(doc)[1])
    for s in cfg.skipped:
        notes.append(f"skipped {s['what']}: {s['reason']}")
    notes += [f"not timed: {k}: {why}" for k, why in cfg.unavailable.items()]
    for n in notes:
        print(f"note: {n}")
    print(f"full tables: {files['tables']} and {files['markdown']}; JSON: {files['json']}; "
          f"picture: {files['png'] or 'none'}  ({doc['elapsed_s']:.0f} s)")
    return 130 if interrupted else 0
