"""(b) Every dropout variant on one task: validation accuracy, train/val gap, time per epoch.

The registry holds each variant's constructor; variants that this dropkit does not have yet
(``hasattr(dropkit, name)`` is False) are listed as missing rather than skipped silently.
"""
from __future__ import annotations

import numpy as np

import dropkit

from .. import nn
from ._common import noisy_digits, out_path, pyplot, table

RATE = 0.5


def _make(name, **kwargs):
    def factory(rate, position):
        cls = getattr(dropkit, name)
        for args in ((rate,), ()):
            try:
                return cls(*args, **kwargs)
            except TypeError:
                continue
        return cls(rate)
    factory.available = lambda: hasattr(dropkit, name)
    return factory


def _dropout(inverted):
    def factory(rate, position):
        return dropkit.Dropout(rate, inverted=inverted)
    factory.available = lambda: True
    return factory


def _none():
    def factory(rate, position):
        return None
    factory.available = lambda: True
    return factory


#: name -> factory(rate, position) giving the layer placed after each hidden layer
REGISTRY = {
    "none": _none(),
    "Dropout (inverted)": _dropout(True),
    "Dropout (classic)": _dropout(False),
    "GaussianDropout": _make("GaussianDropout"),
    "AlphaDropout": _make("AlphaDropout"),
    "SpatialDropout": _make("SpatialDropout"),
    "ConcreteDropout": _make("ConcreteDropout"),
    "AdaptiveDropout": _make("AdaptiveDropout"),
    "CurriculumDropout": _make("CurriculumDropout"),
}


def build(factory, hidden, seed):
    """A small CNN on 8x8 digits: Conv(16, 3) - variant - Flatten - Dense(hidden) - variant - Dense(10)."""
    layers = [nn.Conv2D(16, 3, activation="relu")]
    d1 = factory(RATE, "conv")
    layers += [d1] if d1 is not None else []
    layers += [nn.Flatten(), nn.Dense(hidden, activation="relu")]
    d2 = factory(RATE, "dense")
    layers += [d2] if d2 is not None else []
    layers += [nn.Dense(10)]
    return nn.Sequential(layers, seed=seed)


def run(out_dir=".", tiny=False, seed=0, epochs=None):
    """Train the task once per available variant; write ``variants.png``; return the table rows."""
    n_train, hidden = (100, 16) if tiny else (300, 128)
    epochs = epochs or (2 if tiny else 40)
    (Xt, yt), (Xv, yv) = noisy_digits(n_train, 0.3, seed)
    Xt, Xv = Xt.reshape(-1, 1, 8, 8), Xv.reshape(-1, 1, 8, 8)
    rows, curves = [], {}
    for name, factory in REGISTRY.items():
        if not factory.available():
            rows.append([name, "-", "-", "-", "-", "not in this dropkit"])
            continue
        try:
            model = build(factory, hidden, seed)
            h = nn.fit(model, Xt, yt, validation_data=(Xv, yv), epochs=epochs, seed=seed, optimizer=nn.Adam(0.003))
            train_acc = nn.evaluate(model, Xt, yt)[1]
        except Exception as e:  # a variant still being written must not stop the comparison
            rows.append([name, "-", "-", "-", "-", f"failed: {type(e).__name__}: {e}"[:80]])
            continue
        va = h.history["val_accuracy"][-1]
        curves[name] = h.history["val_accuracy"]
        rows.append([name, va, train_acc, train_acc - va, f"{1000 * sum(h.epoch_time) / epochs:.1f}", ""])
    headers = ["variant", "val acc", "train acc", "gap", "ms/epoch", "note"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, c in curves.items():
        ax.plot(np.arange(1, len(c) + 1), c, label=name)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title=f"Dropout variants (rate {RATE}), noisy digits")
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = out_path(out_dir, "variants.png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print(f"(b) variants: digits 8x8, {len(Xt)} training samples (30% labels randomised), {len(Xv)} validation, "
          f"Conv16-[v]-Dense{hidden}-[v]-Dense10, Adam 0.003, {epochs} epochs\n{table(headers, rows)}\nwrote {png}")
    return {"headers": headers, "rows": rows, "png": str(png)}
