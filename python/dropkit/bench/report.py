"""What a run prints and writes: the summary, the full tables, the JSON file and the picture."""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .sweep import NOISY, log2
from .sysinfo import import_pyplot

__all__ = ["summary_rows", "summary_text", "full_tables", "header_lines", "write_json", "write_markdown",
           "write_plot", "pick_sizes"]


def _r(v: Optional[float]) -> str:
    """A ratio in two significant digits (``-`` when not measured)."""
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 99.5 else f"{v:.2g}"


def _b(v: Optional[float]) -> str:
    """Bytes per element."""
    if v is None:
        return "-"
    return "0" if v < 0.005 else f"{v:.2g}" if v >= 0.1 else "<0.1"


def pick_sizes(sizes: Sequence[int]) -> List[int]:
    """Small, medium and large of the measured sizes: the first, the middle (upper) one, the last
    (fewer when fewer were measured)."""
    s = sorted(set(sizes))
    return sorted({s[0], s[len(s) // 2], s[-1]})


def _medians(rows: Sequence[Dict[str, Any]]) -> Dict[Tuple[str, str, int, str], float]:
    """``(variant, direction, size, backend) -> median`` of the first dtype and thread count."""
    if not rows:
        return {}
    dtype, threads = rows[0]["dtype"], rows[0]["threads"]
    return {(r["variant"], r["direction"], r["size"], r["backend"]): r["median_s"] for r in rows
            if r["dtype"] == dtype and r["threads"] == threads}


def _speedups(med: Dict[Tuple[str, str, int, str], float], v: str, sizes: Sequence[int], other: str,
              mine: str) -> Tuple[List[Optional[float]], List[Optional[float]]]:
    """``other / mine`` per size: forward alone, and forward + backward (a training step)."""
    fwd, fb = [], []
    for n in sizes:
        get = lambda d, b: med.get((v, d, n, b))  # noqa: E731
        f = (get("forward", other), get("forward", mine))
        bw = (get("backward", other), get("backward", mine))
        fwd.append(f[0] / f[1] if None not in f else None)
        fb.append((f[0] + bw[0]) / (f[1] + bw[1]) if None not in f + bw else None)
    return fwd, fb


def _from(sizes: Sequence[int], ratios: Sequence[Optional[float]]) -> Optional[str]:
    """Where dropkit is faster: "everywhere", "from 2^k" (and above), "nowhere", "only at ..."."""
    known = [(n, r) for n, r in zip(sizes, ratios) if r is not None]
    if not known:
        return None
    faster = [n for n, r in known if r >= 1]
    if len(faster) == len(known):
        return "everywhere"
    if not faster:
        return "nowhere"
    first = max(i for i, (_, r) in enumerate(known) if r < 1) + 1
    if first < len(known):
        return f"from {log2(known[first][0])}"
    return "only at " + ", ".join(log2(n) for n in faster)


def _verdict(np_fb: Sequence[Optional[float]], pt_fb: Sequence[Optional[float]], sizes: Sequence[int]) -> str:
    """One line on forward + backward: where dropkit beats NumPy and PyTorch."""
    a, b = _from(sizes, np_fb), _from(sizes, pt_fb)
    if a is None and b is None:
        return "dropkit alone (no NumPy or PyTorch formulation)"
    if a == b:
        return f"faster than NumPy and PyTorch {a}" if a != "nowhere" else "slower than NumPy and PyTorch"
    say = lambda who, w: f"slower than {who}" if w == "nowhere" else f"faster than {who} {w}"  # noqa: E731
    return "; ".join(say(who, w) for who, w in (("NumPy", a), ("PyTorch", b)) if w is not None)


def summary_rows(rows: Sequence[Dict[str, Any]], kept: Optional[Dict[str, Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """One record per variant: speedups over NumPy and PyTorch at the small, medium and large size
    (forward, and forward + backward), bytes kept for backward, a verdict. Over PyTorch is
    ``torch / dropkit-torch`` where dropkit.torch has the variant, else ``torch / dropkit``."""
    med = _medians(rows)
    all_sizes = sorted({k[2] for k in med})
    if not all_sizes:
        return []
    picks = pick_sizes(all_sizes)
    out = []
    for v in OrderedDict.fromkeys(k[0] for k in med):
        have = {k[3] for k in med if k[0] == v}
        mine = "dropkit-torch" if "dropkit-torch" in have else "dropkit"
        np_f, np_fb = _speedups(med, v, all_sizes, "numpy", "dropkit")
        pt_f, pt_fb = _speedups(med, v, all_sizes, "torch", mine)
        at = lambda xs: [xs[all_sizes.index(n)] for n in picks]  # noqa: E731
        k = (kept or {}).get(v, {})
        out.append({"variant": v, "sizes": list(picks), "numpy_forward": at(np_f), "numpy_fwd_bwd": at(np_fb),
                    "torch_forward": at(pt_f), "torch_fwd_bwd": at(pt_fb), "torch_vs": mine,
                    "kept_bytes_per_element": {b: k.get(b) for b in ("dropkit", "numpy", "torch", "dropkit-torch")},
                    "verdict": _verdict(np_fb, pt_fb, all_sizes)})
    return out


def summary_text(summary: Sequence[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    """The first screen: the summary table under two lines saying what the numbers are."""
    if not summary:
        return "no results"
    cfg = meta["config"]
    names, k = [log2(n) for n in summary[0]["sizes"]], len(summary[0]["sizes"])
    lines = [f"dropkit's speedup = other's time / dropkit's time, above 1: dropkit is faster "
             f"({cfg['dtypes'][0]}, {cfg['threads'][0]} thread(s), rate {cfg['rate']}; f+b = forward + backward)",
             "over PyTorch: dropkit.torch vs torch.nn.functional on the same tensors (*: dropkit's NumPy API, as "
             "dropkit.torch has no such function)",
             "kept: bytes per element a forward keeps for its backward (dropkit / NumPy / PyTorch); verdict: f+b, "
             "every size measured", ""]
    body = []
    for r in summary:
        kb = r["kept_bytes_per_element"]
        star = "" if r["torch_vs"] == "dropkit-torch" or r["torch_forward"][0] is None else "*"
        vals = [r["numpy_forward"], r["numpy_fwd_bwd"], r["torch_forward"], r["torch_fwd_bwd"]]
        body.append([r["variant"] + star] + [x for g, v in enumerate(vals) for x in ["|"] * bool(g) + [*map(_r, v)]]
                    + [f"{_b(kb['dropkit'])} / {_b(kb['numpy'])} / {_b(kb['torch'])}", r["verdict"]])
    head = ["variant"] + [x for g in range(4) for x in ["|"] * bool(g) + names] + ["dk / np / pt", "verdict"]
    w = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    starts = [sum(w[:i]) + i for i in range(len(head))]
    top = ""
    for label, i in zip(("NumPy fwd", "NumPy f+b", "PyTorch fwd", "PyTorch f+b", "kept B/elem"),
                        [1 + g * (k + 1) for g in range(4)] + [4 * k + 4]):
        top = top.ljust(starts[i]) + label + " "
    lines.append(top.rstrip())
    for row in [head, *body]:
        lines.append(" ".join(c.ljust(w[i]) if i in (0, len(head) - 2, len(head) - 1) else c.rjust(w[i])
                              for i, c in enumerate(row)).rstrip())
    cells = meta.get("cells") or []
    if cells:
        tight = sum(c["stop"] == "tight" for c in cells)
        shares = [c["others_cpu_share"] for c in cells if c.get("others_cpu_share") is not None]
        busy = f"; other processes used {100 * sum(shares) / len(shares):.0f}% of the CPU meanwhile" if shares else ""
        lines += ["", f"{tight} of {len(cells)} cells tight (every headline ratio's {int(100 * cfg['confidence'])}% "
                  f"interval within +-{100 * cfg['tol']:g}%){busy}; each cell's interval is in the JSON"]
    return "\n".join(lines)


def header_lines(meta: Dict[str, Any]) -> List[str]:
    """A few lines naming the machine, SIMD target, threads, versions and how it was measured."""
    cpu, dk, v, cfg = meta["machine"]["cpu"], meta["dropkit"], meta["versions"], meta["config"]
    busy = (meta["machine"].get("load_start") or {}).get("busy_fraction")
    return [
        f"dropkit {dk['version']} (stream {dk['stream_version']}, SIMD {dk['simd_target']}), numpy {v['numpy']}, "
        f"torch {v.get('torch') or 'not used'}, Python {v['python']}",
        f"CPU: {cpu['model']} (family {cpu.get('family')} model {cpu.get('model_number')}), "
        f"{cpu['usable_cpus']} usable CPUs; others used "
        f"{'?' if busy is None else f'{100 * busy:.0f}%'} of the CPU at start",
        f"mode {cfg['mode']}: rounds {cfg['min_rounds']}..{cfg['max_rounds']} per cell, stop when every headline "
        f"ratio's {int(100 * cfg['confidence'])}% interval is within +-{100 * cfg['tol']:g}%; run budget "
        f"{cfg['budget_s'] or 'none'} s; samples >= {1e3 * cfg['min_sample_time_s']:g} ms; medians",
    ]


_COLUMNS = ("size", "backend", "ns/elem", "spread", "GB/s", "numpy/this", "torch/this", "x multiply", "rounds")


def full_tables(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown: a table per (variant, direction, dtype, threads), a row per size and backend."""
    groups: "OrderedDict[tuple, List[Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        groups.setdefault((r["variant"], r["direction"], r["dtype"], r["threads"]), []).append(r)
    out: List[str] = []
    for (variant, direction, dtype, threads), grp in groups.items():
        out += [f"### {variant} / {direction} / {dtype} / {threads} thread{'s' * (threads != 1)}", "",
                "| " + " | ".join(_COLUMNS) + " |", "|---|---|" + "---:|" * (len(_COLUMNS) - 2)]
        torch_med = {r["size"]: r["median_s"] for r in grp if r["backend"] == "torch"}
        last = None
        for r in grp:
            t = torch_med.get(r["size"])
            out.append("| " + " | ".join([
                log2(r["size"]) if r["size"] != last else "", r["backend"], f"{r['ns_per_element']:.3g}",
                f"±{50 * r['spread_rel']:.0f}%", f"{r['gb_per_s']:.1f}", _r(r["speedup"]),
                _r(None if t is None else t / r["median_s"]), f"{r['ratio_to_stream']:.2f}", str(len(r["samples_s"]))])
                + " |")  # fmt: skip
            last = r["size"]
        noisy = OrderedDict((log2(r["size"]), r["others_cpu_share"]) for r in grp
                            if (r.get("others_cpu_share") or 0.0) > NOISY)
        if noisy:
            out += ["", "noisy (other processes' share of the CPU during the cell): "
                    + ", ".join(f"{k} {100 * v:.0f}%" for k, v in noisy.items())]
        out.append("")
    return "\n".join(out)


def write_json(path: str, doc: Dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)


def write_markdown(path: str, doc: Dict[str, Any], summary: str, targets_text: Optional[str]) -> None:
    parts = ["# dropkit benchmark", "", *(f"- {x}" for x in header_lines(doc)), "", "## Summary", "", "```",
             summary, "```", "", "## Every cell", "",
             "numpy/this and torch/this: the other's median over this backend's (above 1: this is faster); "
             "x multiply: this over np.multiply(x, 2.0, out=y); spread: half the interquartile range.", "",
             full_tables(doc["results"])]
    if doc.get("skipped"):
        parts += ["Skipped:", ""] + [f"- {s['what']}: {s['reason']}" for s in doc["skipped"]] + [""]
    if targets_text:
        parts += ["## Targets", "", "```", targets_text, "```", ""]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))


def write_plot(path: str, summary: Sequence[Dict[str, Any]], rows: Sequence[Dict[str, Any]], title: str) -> Optional[str]:
    """A heat map per baseline (NumPy, PyTorch): variants x (forward, forward + backward) x size,
    coloured by log speedup (green: dropkit faster, red: slower), each cell labelled. Returns
    None when it wrote ``path``, else why not."""
    plt = import_pyplot()
    if plt is None:
        return "matplotlib is not installed (pip install matplotlib, or dropkit[bench]); no picture"
    med = _medians(rows)
    sizes = sorted({k[2] for k in med})
    variants = [s["variant"] for s in summary]
    panels = [("NumPy (tuned)", "numpy", lambda v: "dropkit")]
    if any(k[3] == "torch" for k in med):
        panels.append(("PyTorch", "torch", lambda v: "dropkit-torch" if any(
            k[0] == v and k[3] == "dropkit-torch" for k in med) else "dropkit"))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels) + 1.5, 1.6 + 0.42 * len(variants)),
                             squeeze=False, sharey=True)
    cols = [f"{d} {log2(n)}" for d in ("fwd", "f+b") for n in sizes]
    image = None
    for ax, (name, other, mine) in zip(axes[0], panels):
        grid = []
        for v in variants:
            f, fb = _speedups(med, v, sizes, other, mine(v))
            grid.append(f + fb)
        logs = [[math.log10(x) if x else math.nan for x in row] for row in grid]
        image = ax.imshow(logs, cmap="RdYlGn", vmin=-1.5, vmax=1.5, aspect="auto")
        for i, row in enumerate(grid):
            for j, x in enumerate(row):
                if x is not None:
                    ax.text(j, i, _r(x), ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=9)
        ax.set_yticks(range(len(variants)), [v + ("" if mine(v) == "dropkit-torch" or len(panels) == 1 else " *")
                                             for v in variants], fontsize=9)
        ax.axvline(len(sizes) - 0.5, color="black", linewidth=1.5)
        ax.set_title(f"dropkit's speedup over {name}", fontsize=11)
    cb = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, pad=0.01)
    ticks = [0.1, 0.3, 1, 3, 10, 30]
    cb.set_ticks([math.log10(t) for t in ticks], labels=[f"{t:g}x" for t in ticks])
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, -0.02, "numbers: the other's median time / dropkit's (above 1, green: dropkit is faster); "
             "f+b = forward + backward; PyTorch: torch.nn.functional vs dropkit.torch on the same tensors "
             "(*: vs dropkit's NumPy API, dropkit.torch has no such function)", fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return None
