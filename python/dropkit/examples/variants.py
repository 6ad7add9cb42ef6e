"""(b) Every dropout variant on one task: validation accuracy, train/val gap, time per epoch.

The registry holds each variant's constructor; variants that this dropkit does not have yet
(``hasattr(dropkit, name)`` is False) are listed as missing rather than skipped silently.
"""
from __future__ import annotations

import numpy as np

import dropkit

from .. import nn
from ._common import noisy_digits, pyplot, save_figure, table

RATE = 0.5


def _variant(name, make, dense=None):
    """A registry entry: ``make(rate, epochs)`` builds the layer; ``dense`` (optional) the one used
    after the dense layer instead (for variants defined on feature maps only)."""
    def factory(rate, position, epochs):
        if position == "dense" and dense is not None:
            return dense(rate, epochs)
        return make(rate, epochs)
    factory.available = lambda: hasattr(dropkit, name)
    return factory


def _dropout(inverted):
    return _variant("Dropout", lambda rate, epochs: dropkit.Dropout(rate, inverted=inverted))


def _none():
    factory = _variant("Dropout", lambda rate, epochs: None)
    return factory


def _plain(rate, epochs):
    return dropkit.Dropout(rate)


#: name -> factory(rate, position, epochs) giving the layer placed after the conv ("conv") and
#: after the hidden dense layer ("dense"); a name dropkit does not export yet is reported as missing.
REGISTRY = {
    "none": _none(),
    "Dropout (inverted)": _dropout(True),
    "Dropout (classic)": _dropout(False),
    "GaussianDropout": _variant("GaussianDropout", lambda r, e: dropkit.GaussianDropout(rate=r)),
    "AlphaDropout": _variant("AlphaDropout", lambda r, e: dropkit.AlphaDropout(r)),
    "SpatialDropout2D (+ Dropout)": _variant("SpatialDropout2D", lambda r, e: dropkit.SpatialDropout2D(r), _plain),
    "ConcreteDropout (p learned)": _variant("ConcreteDropout", lambda r, e: dropkit.ConcreteDropout(init_rate=r)),
    "AdaptiveDropout": _variant("AdaptiveDropout", lambda r, e: dropkit.AdaptiveDropout(initial_rate=r)),
    "CurriculumDropout": _variant("CurriculumDropout", lambda r, e: dropkit.CurriculumDropout(final_rate=r, epochs=e)),
}


def build(factory, hidden, seed, epochs):
    """A small CNN on 8x8 digits: Conv(16, 3) - variant - Flatten - Dense(hidden) - variant - Dense(10)."""
    layers = [nn.Conv2D(16, 3, activation="relu")]
    d1 = factory(RATE, "conv", epochs)
    layers += [d1] if d1 is not None else []
    layers += [nn.Flatten(), nn.Dense(hidden, activation="relu")]
    d2 = factory(RATE, "dense", epochs)
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
            model = build(factory, hidden, seed, epochs)
            h = nn.fit(model, Xt, yt, validation_data=(Xv, yv), epochs=epochs, seed=seed, optimizer=nn.Adam(0.003))
            train_acc = nn.evaluate(model, Xt, yt)[1]
        except Exception as e:  # a variant still being written must not stop the comparison
            rows.append([name, "-", "-", "-", "-", f"failed: {type(e).__name__}: {e}"[:80]])
            continue
        va = h.history["val_accuracy"][-1]
        curves[name] = h.history["val_accuracy"]
        learned = [f"p {la.get_dropout_rate():.3f}" for la in model.layers if nn.is_concrete(la)]
        note = ("learned " + ", ".join(learned)) if learned else ""
        rows.append([name, va, train_acc, train_acc - va, f"{1000 * sum(h.epoch_time) / epochs:.1f}", note])
    headers = ["variant", "val acc", "train acc", "gap", "ms/epoch", "note"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, c in curves.items():
        ax.plot(np.arange(1, len(c) + 1), c, label=name)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title=f"Dropout variants (rate {RATE}), noisy digits")
    ax.legend(fontsize=7)
    png = save_figure(plt, fig, out_dir, "variants.png")
    print(f"(b) variants: digits 8x8, {len(Xt)} training samples (30% labels randomised), {len(Xv)} validation, "
          f"Conv16-[v]-Dense{hidden}-[v]-Dense10, Adam 0.003, {epochs} epochs\n{table(headers, rows)}\nwrote {png}")
    return {"headers": headers, "rows": rows, "png": str(png)}
