"""Shared by the examples: argument defaults, tables, figures, data."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (an optional extra)."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("the examples draw with matplotlib: pip install matplotlib (or dropkit[examples])") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def table(headers, rows) -> str:
    """A Markdown table (floats with 4 decimals)."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.4f}"
        return str(v)
    body = [[cell(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in body])


def save_figure(plt, fig, out_dir, name: str) -> Path:
    """Lay out, write ``out_dir / name`` (PNG, 110 dpi), close the figure; returns the path."""
    fig.tight_layout()
    png = out_path(out_dir, name)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def cpu_model() -> str:
    """The CPU model name (lscpu's 'Model name' on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def out_path(out_dir, name: str) -> Path:
    """``out_dir / name``, creating the folder."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    return d / name


def find_mnist(path=None):
    """The MNIST folder: ``path``, else $DROPKIT_MNIST, else the project's shared test data
    (``../shared/data/mnist`` beside a clone of dropkit that contains this file or the current
    directory); None if none exists."""
    for cand in (path, os.environ.get("DROPKIT_MNIST")):
        if cand:
            return Path(cand)
    here, cwd = Path(__file__).resolve(), Path.cwd().resolve()
    for parent in (*here.parents, cwd, *cwd.parents):
        c = parent.parent / "shared" / "data" / "mnist"
        if (parent / "pyproject.toml").is_file() and c.is_dir():
            return c
    return None


class Timer:
    """Context manager measuring wall time in ``.seconds``."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        return False


def noisy_digits(n_train, noise, seed):
    """Digits split 50/50 (seeded); the first ``n_train`` training samples with a fraction ``noise``
    of their labels replaced by uniform random labels (the 'sampling noise' of seed 002)."""
    from ..nn import datasets
    X, y = datasets.load_digits()
    (Xt, yt), (Xv, yv) = datasets.train_val_split(X, y, 0.5, seed=seed)
    Xt, yt = Xt[:n_train], yt[:n_train].copy()
    rng = np.random.default_rng(seed)
    flip = rng.random(len(yt)) < noise
    yt[flip] = rng.integers(0, 10, int(flip.sum()))
    return (Xt, yt), (Xv, yv)
