"""Tables (text and Markdown), the JSON file and the PNG plot of a benchmark run."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .sweep import NOISY
from .sysinfo import import_pyplot

__all__ = ["timing_table", "torch_table", "memory_table", "header_lines", "write_json", "write_markdown", "write_plot"]

_COLUMNS = ("size", "backend", "ns/elem", "spread", "GB/s", "speedup vs numpy", "x stream")


def _log2(n: int) -> str:
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


def _fmt_ns(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _fmt_ratio(v: Optional[float], suffix: str = "") -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}{suffix}"
    if v >= 10:
        return f"{v:.1f}{suffix}"
    return f"{v:.2f}{suffix}"


def _groups(rows: Iterable[Dict[str, Any]]) -> "OrderedDict[Tuple[Any, ...], List[Dict[str, Any]]]":
    out: "OrderedDict[Tuple[Any, ...], List[Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        out.setdefault((r["variant"], r["direction"], r["dtype"], r["threads"]), []).append(r)
    return out


def _cells(r: Dict[str, Any], first_of_size: bool) -> List[str]:
    return [
        _log2(int(r["size"])) if first_of_size else "",
        r["backend"],
        _fmt_ns(r["ns_per_element"]),
        f"±{100 * r['spread_rel'] / 2:.0f}%",
        f"{r['gb_per_s']:.1f}",
        _fmt_ratio(r["speedup"], "x"),
        _fmt_ratio(r["ratio_to_stream"]),
    ]


def _render(header: Sequence[str], body: List[List[str]], markdown: bool, n_text: int = 2) -> List[str]:
    """A table: the first ``n_text`` columns left-aligned text, the others right-aligned numbers."""
    if markdown:
        rule = ["---" if i < n_text else "---:" for i in range(len(header))]
        return ["| " + " | ".join(row) + " |" for row in (list(header), rule, *body)]
    widths = [max([len(header[i])] + [len(row[i]) for row in body]) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < n_text else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in body]


def timing_table(rows: Sequence[Dict[str, Any]], *, markdown: bool = False) -> str:
    """One section per (variant, direction, dtype, threads); a row per size and backend."""
    out: List[str] = []
    for (variant, direction, dtype, threads), grp in _groups(rows).items():
        title = f"{variant} / {direction} / {dtype} / {threads} thread{'s' if threads != 1 else ''}"
        out.append(f"### {title}" if markdown else f"== {title} ==")
        if markdown:
            out.append("")
        body: List[List[str]] = []
        last_size = None
        for r in grp:
            body.append(_cells(r, r["size"] != last_size))
            last_size = r["size"]
        out += _render(_COLUMNS, body, markdown)
        noisy = OrderedDict(
            (_log2(int(r["size"])), r["others_cpu_share"]) for r in grp
            if (r.get("others_cpu_share") or 0.0) > NOISY
        )  # fmt: skip
        if noisy:
            out.append("")
            out.append("noisy (other processes' share of the CPU during the cell): "
                       + ", ".join(f"{k} {100 * v:.0f}%" for k, v in noisy.items()))
        out.append("")
    return "\n".join(out)


#: Columns of :func:`torch_table`.
TORCH_COLUMNS = ("variant", "direction", "dtype", "threads", "size", "torch ns/elem", "dropkit-torch ns/elem",
                 "torch / dropkit-torch", "dropkit-torch / dropkit")


def torch_table(rows: Sequence[Dict[str, Any]], *, markdown: bool = False) -> str:
    """dropkit.torch against PyTorch, a row per cell that timed both (empty string when none did).

    ``torch / dropkit-torch`` = median(torch) / median(dropkit-torch) of the cell's samples (above 1:
    dropkit.torch is faster); ``dropkit-torch / dropkit`` = median(dropkit-torch) / median(dropkit),
    the cost of the PyTorch wrapper (validation, custom op, autograd node, a fresh output tensor
    with its first-touch page faults) over the NumPy API writing into a preallocated ``out=``.
    """
    cells: "OrderedDict[Tuple[Any, ...], Dict[str, Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        key = (r["variant"], r["direction"], r["dtype"], r["threads"], r["size"])
        cells.setdefault(key, {})[r["backend"]] = r
    body: List[List[str]] = []
    for (variant, direction, dtype, threads, size), by in cells.items():
        dt, th = by.get("dropkit-torch"), by.get("torch")
        if dt is None or th is None:
            continue
        dk = by.get("dropkit")
        body.append(
            [
                variant,
                direction,
                dtype,
                str(threads),
                _log2(int(size)),
                _fmt_ns(th["ns_per_element"]),
                _fmt_ns(dt["ns_per_element"]),
                _fmt_ratio(th["median_s"] / dt["median_s"] if dt["median_s"] > 0 else None, "x"),
                _fmt_ratio(dt["median_s"] / dk["median_s"] if dk is not None and dk["median_s"] > 0 else None, "x"),
            ]
        )
    if not body:
        return ""
    what = "same tensors; backward = torch.autograd.grad of the forward's output"
    # Markdown: the document gives the section its heading (write_markdown).
    out = [f"{what[0].upper()}{what[1:]}.", ""] if markdown else [f"== dropkit.torch vs PyTorch ({what}) =="]
    out += _render(TORCH_COLUMNS, body, markdown, n_text=3)
    out.append("")
    out.append("torch / dropkit-torch = median(torch) / median(dropkit-torch): above 1, dropkit.torch is faster; "
               "dropkit-torch / dropkit = the wrapper's cost (custom op, autograd node, a fresh output tensor) "
               "over the NumPy API writing into a preallocated out= on the same arrays.")
    out.append("")
    return "\n".join(out)


def memory_table(mem: Dict[str, Any], *, markdown: bool = False) -> str:
    """Peak and retained bytes per element, both methods side by side, the primary one marked."""
    if not mem:
        return ""
    lines: List[str] = []
    n = mem.get("size")
    title = (
        f"Memory: extra bytes per element, n={_log2(int(n)) if n else '?'} {mem.get('dtype', '')}, "
        f"rate {mem.get('rate', '?')}, 1 thread, fresh process"
    )
    lines.append(f"### {title}" if markdown else f"== {title} ==")
    if markdown:
        lines.append("")
    if mem.get("error"):
        lines.append(f"not measured: {mem['error']}")
        return "\n".join(lines) + "\n"
    header = ("variant", "backend", "phase", "peak B/elem", "retained B/elem", "peak tracemalloc", "peak RSS", "method")
    body: List[List[str]] = []
    for r in mem.get("rows", []):
        if "error" in r:
            body.append([r["variant"], r["backend"], "-", "-", "-", "-", "-", f"error: {r['error'][:40]}"])
            continue
        nn = int(mem["size"])
        tm = r["peak_bytes_tracemalloc"] / nn
        rss = None if r["peak_bytes_rss"] is None else r["peak_bytes_rss"] / nn
        body.append(
            [
                r["variant"],
                r["backend"],
                r["phase"],
                "-" if r["peak_bytes_per_element"] is None else f"{r['peak_bytes_per_element']:.2f}",
                "-" if r["retained_bytes_per_element"] is None else f"{r['retained_bytes_per_element']:.2f}",
                f"{tm:.2f}",
                "-" if rss is None else f"{rss:.2f}",
                r["method"],
            ]
        )
    lines += _render(header, body, markdown, n_text=3)
    lines.append("")
    lines.append(
        "peak: largest extra memory during the call, outputs included; retained: still held after the "
        "call besides the outputs (the mask kept for backward). tracemalloc sees NumPy-allocated buffers "
        "only (primary for dropkit, dropkit-ref, numpy, seeds); RSS (VmHWM reset via "
        "/proc/self/clear_refs) sees every allocator at page granularity (primary for torch and dropkit-torch, "
        "whose tensors PyTorch allocates)."
    )
    return "\n".join(lines) + "\n"


def header_lines(meta: Dict[str, Any]) -> List[str]:
    """A few lines naming the machine, SIMD target, threads and versions of a run."""
    cpu = meta["machine"]["cpu"]
    dk = meta["dropkit"]
    v = meta["versions"]
    load = meta["machine"].get("load_start") or {}
    busy = load.get("busy_fraction")
    busy_text = "unknown" if busy is None else f"{100 * busy:.0f}% busy with other processes"
    return [
        f"dropkit {dk.get('version')} (stream {dk.get('stream_version')}), SIMD target {dk.get('simd_target')} "
        f"of {dk.get('available_simd_targets')}; numpy {v.get('numpy')}; torch {v.get('torch') or 'not used'}; "
        f"Python {v.get('python')}",
        f"CPU: {cpu.get('model')} ({cpu.get('usable_cpus')} usable of {cpu.get('logical_cpus')} logical; "
        f"{' '.join(cpu.get('simd_flags') or []) or 'no SIMD flags read'}); at start: {busy_text}, "
        f"load average {load.get('load_average')}",
        f"mode {meta['config']['mode']}; rate {meta['config']['rate']}; threads {meta['config']['threads']}; "
        f"warm-up >= {meta['config']['warmup']} calls and {meta['config']['warmup_time_s'] * 1e3:g} ms; "
        f"{meta['config']['repeats']} samples/backend, >= {meta['config']['min_sample_time_s'] * 1e3:g} ms each, "
        "median and interquartile spread; speedup = median(numpy) / median(backend); "
        "x stream = median(backend) / median(np.multiply(x, 2.0, out=y)); GB/s counts 2 x itemsize bytes per element",
    ]


def write_json(path: str, doc: Dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)


def write_markdown(path: str, doc: Dict[str, Any], targets_text: Optional[str]) -> None:
    parts = ["# dropkit benchmark", ""]
    parts += [f"- {line}" for line in header_lines(doc)]
    parts += ["", "## Timing", "", timing_table(doc["results"], markdown=True)]
    vs_torch = torch_table(doc["results"], markdown=True)
    if vs_torch:
        parts += ["## dropkit.torch vs PyTorch", "", vs_torch]
    if doc.get("skipped"):
        parts += ["Skipped:", ""] + [f"- {s['what']}: {s['reason']}" for s in doc["skipped"]] + [""]
    if doc.get("memory"):
        parts += ["## Memory", "", memory_table(doc["memory"], markdown=True)]
    if targets_text:
        parts += ["## Targets", "", "```", targets_text, "```", ""]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))


_COLORS = {
    "dropkit": "#d62728",
    "dropkit-ref": "#ff9896",
    "numpy": "#1f77b4",
    "seed000-s1": "#9467bd",
    "seed000-s6": "#c5b0d5",
    "torch": "#ff7f0e",
    "dropkit-torch": "#8c0a0a",
    "multiply": "#000000",
}

#: Backends drawn with thick lines: dropkit's own.
_BOLD = ("dropkit", "dropkit-torch")


def write_plot(path: str, rows: Sequence[Dict[str, Any]]) -> Optional[str]:
    """ns/element against size, log-log. A row of panels per variant, a column per (direction,
    dtype); a line per backend, solid for one thread, dashed for more. Returns None when it wrote
    the file, else why it could not (matplotlib missing)."""
    plt = import_pyplot()
    if plt is None:
        return "matplotlib is not installed (pip install matplotlib, or dropkit[bench]); PNG skipped"
    variants = list(OrderedDict.fromkeys(r["variant"] for r in rows))
    columns = list(OrderedDict.fromkeys((r["direction"], r["dtype"]) for r in rows))
    if not variants:
        return "no results to plot"
    fig, axes = plt.subplots(
        len(variants), len(columns), figsize=(5.6 * len(columns), 3.8 * len(variants) + 1.0), squeeze=False
    )
    threads_all = sorted({int(r["threads"]) for r in rows})
    styles = {t: ("-", "--", ":", "-.")[min(i, 3)] for i, t in enumerate(threads_all)}
    fallback = iter(["#2ca02c", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"] * 4)
    colors = dict(_COLORS)
    seen_backends: List[str] = []
    for i, variant in enumerate(variants):
        for j, (direction, dtype) in enumerate(columns):
            ax = axes[i][j]
            sel = [r for r in rows if r["variant"] == variant and r["direction"] == direction and r["dtype"] == dtype]
            lines: "OrderedDict[Tuple[str, int], List[Tuple[int, float]]]" = OrderedDict()
            for r in sel:
                lines.setdefault((r["backend"], int(r["threads"])), []).append((int(r["size"]), r["ns_per_element"]))
            for (backend, threads), pts in lines.items():
                if backend not in colors:
                    colors[backend] = next(fallback)
                pts.sort()
                if backend not in seen_backends:
                    seen_backends.append(backend)
                ax.plot(
                    [p[0] for p in pts], [p[1] for p in pts],
                    linestyle=styles[threads], marker="o", markersize=3,
                    color=colors[backend], linewidth=2.4 if backend in _BOLD else 1.3,
                )  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{variant}: {direction}, {dtype}", fontsize=10)
            ax.set_xlabel("elements")
            ax.set_ylabel("ns / element (median)")
            ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("dropkit benchmark: time per element (lower is better; multiply = streaming limit)", fontsize=11)
    from matplotlib.lines import Line2D  # noqa: PLC0415

    handles = [Line2D([], [], color=colors[b], linewidth=2.4 if b in _BOLD else 1.3, marker="o", markersize=3)
               for b in seen_backends]
    labels = list(seen_backends)
    for t in threads_all:
        handles.append(Line2D([], [], color="#555555", linestyle=styles[t]))
        labels.append(f"{t} thread{'s' if t != 1 else ''}")
    ncol = min(len(handles), 5)
    fig_h = fig.get_size_inches()[1]
    legend_h = 0.25 * ((len(handles) + ncol - 1) // ncol) + 0.15
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_h / fig_h, 1, 1 - 0.45 / fig_h))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
