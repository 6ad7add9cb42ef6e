"""``python -m dropkit.bench``: the command line of the benchmark."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from . import report, sysinfo
from .memory import MemorySpec, run_memory_section
from .sweep import SweepConfig, probe_backends, run_sweep
from .targets import format_targets, run_targets
from .variants import BACKEND_DESCRIPTIONS, SPEEDUP_BASE, TORCH_BACKENDS, VARIANTS, known_backends

__all__ = ["main", "build_parser", "PRESETS", "SCHEMA"]

SCHEMA = "dropkit-bench/1"

#: Defaults of the two modes; any option given on the command line wins.
PRESETS: Dict[str, Dict[str, Any]] = {
    "quick": {
        "sizes": [10, 14, 18, 20, 22],  # 2^22 only if the budget allows
        "dtypes": ["float32"],
        "repeats": 5,
        "warmup": 1,
        "warmup_time": 0.01,
        "min_time": 0.002,
        "max_time_per_backend": 0.5,
        "min_repeats": 3,
        "budget": 35.0,
        "memory_size": 22,
        "targets_rounds": 11,
        "targets_min_time": 0.01,
    },
    "full": {
        "sizes": list(range(10, 25)),
        "dtypes": ["float32", "float64"],
        "repeats": 11,
        "warmup": 2,
        "warmup_time": 0.05,
        "min_time": 0.01,
        "max_time_per_backend": 6.0,
        "min_repeats": 5,
        "budget": 0.0,
        "memory_size": 24,
        "targets_rounds": 31,
        "targets_min_time": 0.02,
    },
}


def _size(text: str) -> int:
    """``14`` or ``2^14`` mean 2**14 elements; a number above 40 is an element count."""
    t = text.strip().replace("**", "^")
    try:
        if t.startswith("2^"):
            v = int(t[2:])
            return 1 << v
        v = int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be an exponent like 14 or 2^14, or a count > 40; got {text!r}")
    if v < 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return 1 << v if v <= 40 else v


def _threads(text: str) -> str:
    if text == "all":
        return text
    try:
        if int(text) >= 1:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"threads must be a positive integer or 'all', got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m dropkit.bench",
        description="Benchmark dropkit against NumPy (tuned, its own reference, the seeds' code) and "
        "PyTorch when installed (torch.nn.functional, and dropkit.torch on the same tensors): tables, JSON, "
        "PNG plot, memory and the performance targets. "
        "Default: quick mode (about two minutes on 2 cores).",
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="quick mode (the default)")
    mode.add_argument("--full", action="store_true",
                      help="everything: sizes 2^10..2^24, float32 and float64, more repeats, no time budget")
    mode.add_argument("--targets", action="store_true", help="only the targets report (also ends a normal run)")
    mode.add_argument("--list", action="store_true", help="list variants and backends, then exit")
    sel = ap.add_argument_group("what to time")
    sel.add_argument("--variants", nargs="+", metavar="NAME", help=f"default: all ({', '.join(VARIANTS)})")
    sel.add_argument("--directions", nargs="+", choices=["forward", "backward"], help="default: both")
    sel.add_argument("--backends", nargs="+", metavar="NAME",
                     help="subset of %s (multiply is always timed; numpy is needed for the speedup column)"
                     % ", ".join(known_backends()))
    sel.add_argument("--sizes", nargs="+", type=_size, metavar="K",
                     help="log2 of element counts (10 14 18 or 2^20); values > 40 are element counts. "
                     "quick: 10 14 18 20 22 (22 if the budget allows); full: 10..24")
    sel.add_argument("--dtypes", nargs="+", choices=["float32", "float64"], help="quick: float32; full: both")
    sel.add_argument("--threads", nargs="+", type=_threads, metavar="T",
                     help="thread counts to pin, 'all' = CPUs usable by this process (default: 1 all)")
    sel.add_argument("--rate", type=float, default=0.5, help="drop rate (default 0.5)")
    sel.add_argument("--seed", type=int, default=1234, help="seed of inputs and every generator (default 1234)")
    sel.add_argument("--simd", metavar="TARGET", help="dropkit.set_simd_target(TARGET) first (default: automatic)")
    sel.add_argument("--no-torch", action="store_true",
                     help="do not import PyTorch even if installed (no torch, no dropkit-torch backend)")
    how = ap.add_argument_group("how to time")
    how.add_argument("--repeats", type=int, metavar="N", help="samples per backend and cell (quick 5, full 11)")
    how.add_argument("--warmup", type=int, metavar="N", help="untimed calls before calibration (quick 1, full 2)")
    how.add_argument("--warmup-time", type=float, metavar="S",
                     help="keep warming up each backend for S seconds, if it has had --warmup calls "
                     "(quick 0.01, full 0.05)")
    how.add_argument("--min-time", type=float, metavar="S", help="minimum seconds per sample (quick 0.002, full 0.01)")
    how.add_argument("--max-time-per-backend", type=float, metavar="S",
                     help="stop a slow backend's samples after about S seconds per cell, keeping at least "
                     "--min-repeats (quick 0.5, full 6; 0 = no cap)")
    how.add_argument("--min-repeats", type=int, metavar="N", help="samples kept under the cap (quick 3, full 5)")
    how.add_argument("--budget", type=float, metavar="S",
                     help="skip the remaining sizes when the next would end the sweep past S seconds "
                     "(quick 35, full 0 = none)")
    out = ap.add_argument_group("what to produce")
    out.add_argument("--out", default="bench-results", metavar="DIR", help="output folder (default ./bench-results)")
    out.add_argument("--no-plot", action="store_true", help="no PNG")
    out.add_argument("--no-memory", action="store_true", help="no memory section")
    out.add_argument("--no-targets", action="store_true", help="no targets report at the end")
    out.add_argument("--memory-size", type=_size, metavar="K",
                     help="size of the memory section (quick 2^22, full 2^24)")
    out.add_argument("--targets-size", type=_size, default=1 << 24, metavar="K",
                     help="size of the targets' single-thread ratios (default 2^24, where the goals are defined)")
    out.add_argument("--targets-threads-size", type=_size, default=1 << 20, metavar="K",
                     help="size of the targets' thread ratio (default 2^20)")
    out.add_argument("--targets-rounds", type=int, metavar="N",
                     help="interleaved rounds of the targets (quick 11, --targets alone 21, full 31)")
    out.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return ap


def _resolve_threads(values: Optional[Sequence[str]]) -> List[int]:
    usable = sysinfo.usable_cpus()
    raw = values or ["1", "all"]
    out: List[int] = []
    for v in raw:
        t = usable if v == "all" else int(v)
        if t not in out:
            out.append(t)
    return out


def _list_text() -> str:
    lines = ["variants:"]
    for v in VARIANTS.values():
        lines.append(f"  {v.name:<18} {v.summary}")
        seeds = ", ".join(v.seeds) or "none"
        lines.append(f"  {'':<18} seeds: {seeds}; torch: {'yes' if v.torch else 'none'}; "
                     f"dropkit-torch: {'yes' if v.dropkit_torch else 'none'}; shape: {v.shape.__name__}")
    lines.append("backends:")
    for k, d in BACKEND_DESCRIPTIONS.items():
        lines.append(f"  {k:<18} {d}")
    lines.append(f"  ({' and '.join(TORCH_BACKENDS)} need PyTorch: pip install 'dropkit[torch]'; "
                 "without it they are skipped with that reason)")
    return "\n".join(lines)


def _meta(config: Dict[str, Any], argv: Sequence[str]) -> Dict[str, Any]:
    return {
        "schema": SCHEMA,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(argv),
        "config": config,
        "machine": sysinfo.machine_info(),
        "dropkit": sysinfo.dropkit_info(),
        "versions": sysinfo.library_versions(),
        "backends": dict(BACKEND_DESCRIPTIONS),
        "variants": {v.name: v.summary for v in VARIANTS.values()},
    }


def _warn_if_busy(load: Dict[str, Any]) -> None:
    busy = load.get("busy_fraction")
    if busy is not None and busy > 0.15:
        print(
            f"note: the machine is busy ({100 * busy:.0f}% of its CPU time used by other processes just now; "
            f"load average {load.get('load_average')}): timings will be noisy, multi-threaded ones most",
            file=sys.stderr,
        )


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.list:
        print(_list_text())
        return 0
    import dropkit  # noqa: PLC0415  (a clear ImportError here beats one deep in the sweep)

    mode = "full" if a.full else ("targets" if a.targets else "quick")
    p = PRESETS["full" if a.full else "quick"]
    pick = lambda v, key: p[key] if v is None else v  # noqa: E731
    progress = None if a.quiet else sys.stderr
    t_start = time.perf_counter()
    os.makedirs(a.out, exist_ok=True)

    if a.simd:
        dropkit.set_simd_target(a.simd)
    torch = sysinfo.import_torch(not a.no_torch)
    threads_default = None
    try:
        threads_default = dropkit.get_num_threads()
    except Exception:
        pass

    variants = a.variants or list(VARIANTS)
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    if a.backends:
        for b in a.backends:
            if b not in known_backends() and b != "multiply":
                ap.error(f"unknown backend {b!r}; known: {', '.join(known_backends())}")
    max_t = pick(a.max_time_per_backend, "max_time_per_backend")
    budget = pick(a.budget, "budget")
    config: Dict[str, Any] = {
        "mode": mode,
        "variants": variants,
        "directions": a.directions or ["forward", "backward"],
        "backends": a.backends,
        "sizes": a.sizes or [1 << k for k in p["sizes"]],
        "dtypes": a.dtypes or p["dtypes"],
        "threads": _resolve_threads(a.threads),
        "repeats": pick(a.repeats, "repeats"),
        "warmup": pick(a.warmup, "warmup"),
        "warmup_time_s": pick(a.warmup_time, "warmup_time"),
        "min_sample_time_s": pick(a.min_time, "min_time"),
        "max_time_per_backend_s": max_t if max_t else None,
        "min_repeats": pick(a.min_repeats, "min_repeats"),
        "budget_s": budget if budget else None,
        "rate": a.rate,
        "seed": a.seed,
        "torch": torch is not None,
        "simd_request": a.simd,
        "speedup_base": SPEEDUP_BASE,
        "stream_op": "np.multiply(x, 2.0, out=y)",
        "statistic": "median of samples; spread = (q3 - q1) / median; a sample = seconds per call "
        "averaged over calls_per_sample back-to-back calls",
        "memory_size": a.memory_size or (1 << p["memory_size"]),
        # The targets alone are cheap (a few seconds): more rounds, steadier medians.
        "targets_rounds": a.targets_rounds or (21 if mode == "targets" else p["targets_rounds"]),
    }
    doc = _meta(config, argv)
    doc["machine"]["load_start"] = sysinfo.load_info()
    _warn_if_busy(doc["machine"]["load_start"])
    doc.update({"results": [], "skipped": [], "unavailable": {}, "memory": None, "targets": None})
    targets_text: Optional[str] = None

    def do_targets() -> None:
        nonlocal targets_text
        tr = run_targets(
            n=a.targets_size, n_threads_case=a.targets_threads_size, rate=a.rate, seed=a.seed,
            rounds=config["targets_rounds"], min_sample_time=p["targets_min_time"], progress=progress,
            variants=mode != "quick",  # the variants' rows: --targets and --full (about 15 s at 2^24)
        )  # fmt: skip
        doc["targets"] = tr
        targets_text = format_targets(tr)

    if mode == "targets":
        do_targets()
        assert targets_text is not None
        print(targets_text)
        doc["elapsed_s"] = time.perf_counter() - t_start
        path = os.path.join(a.out, "targets.json")
        report.write_json(path, doc)
        print(f"\nwrote {path}")
        return 0

    cfg = SweepConfig(
        variants=variants,
        directions=config["directions"],
        sizes=config["sizes"],
        dtypes=config["dtypes"],
        threads=config["threads"],
        backends=a.backends,
        repeats=config["repeats"],
        warmup=config["warmup"],
        warmup_time=config["warmup_time_s"],
        min_sample_time=config["min_sample_time_s"],
        max_time_per_backend=config["max_time_per_backend_s"],
        min_repeats=config["min_repeats"],
        budget=config["budget_s"],
        rate=a.rate,
        seed=a.seed,
        torch=torch,
    )
    if torch is None and (a.backends is None or set(a.backends) & set(TORCH_BACKENDS)):
        why = ("--no-torch given" if a.no_torch else
               "PyTorch is not installed or does not import (pip install 'dropkit[torch]')")
        cfg.skipped.append({"what": f"backends {', '.join(TORCH_BACKENDS)}", "reason": why})
        print(f"note: backends {', '.join(TORCH_BACKENDS)} not timed: {why}", file=sys.stderr)
    cfg.unavailable = probe_backends(cfg)
    doc["unavailable"] = cfg.unavailable
    for key, why in cfg.unavailable.items():
        print(f"note: {key} unavailable, not timed: {why}", file=sys.stderr)

    interrupted = False
    try:
        doc["results"] = run_sweep(cfg, progress)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: writing what was measured", file=sys.stderr)
    finally:
        if threads_default is not None:
            try:
                dropkit.set_num_threads(threads_default)
            except Exception:
                pass
    doc["skipped"] = cfg.skipped
    doc["versions"] = sysinfo.library_versions()  # now that torch/matplotlib may be imported

    print("\n".join(report.header_lines(doc)))
    print()
    print(report.timing_table(doc["results"]))
    vs_torch = report.torch_table(doc["results"])
    if vs_torch:
        print(vs_torch)
    for s in cfg.skipped:
        print(f"skipped {s['what']}: {s['reason']}")

    if not interrupted and not a.no_memory:
        if progress is not None:
            print("[memory] fresh child process ...", file=sys.stderr, flush=True)
        spec = MemorySpec(
            n=config["memory_size"], dtype=config["dtypes"][0], rate=a.rate, seed=a.seed, variants=tuple(variants),
            backends=tuple(a.backends) if a.backends else None, with_torch=torch is not None,
        )  # fmt: skip
        doc["memory"] = run_memory_section(spec, progress=progress is not None)
        print()
        print(report.memory_table(doc["memory"]))

    if not interrupted and not a.no_targets:
        do_targets()
        print()
        print(targets_text)

    files: Dict[str, Optional[str]] = {
        "json": os.path.join(a.out, "results.json"),
        "markdown": os.path.join(a.out, "results.md"),
        "png": None,
    }
    if not a.no_plot and doc["results"]:
        png = os.path.join(a.out, "results.png")
        note = report.write_plot(png, doc["results"])
        if note is None:
            files["png"] = png
        else:
            doc["plot_note"] = note
            print(f"\nnote: {note}")
    doc["versions"] = sysinfo.library_versions()
    doc["machine"]["load_end"] = sysinfo.load_info()
    doc["files"] = files
    doc["interrupted"] = interrupted
    doc["elapsed_s"] = time.perf_counter() - t_start
    report.write_markdown(files["markdown"], doc, targets_text)  # type: ignore[arg-type]
    report.write_json(files["json"], doc)  # type: ignore[arg-type]
    print()
    print("wrote " + ", ".join(f for f in files.values() if f) + f" in {doc['elapsed_s']:.1f} s")
    return 130 if interrupted else 0
