"""(a) Overfitting (seed 002): one MLP with and without dropout on a small, noisy training set;
train and validation curves, the generalisation gap, inverted vs classic dropout."""
from __future__ import annotations

import numpy as np

import dropkit

from .. import nn
from ._common import Timer, noisy_digits, pyplot, save_figure, table

CONFIGS = [("no dropout", 0.0, True), ("dropout 0.5, inverted", 0.5, True), ("dropout 0.5, classic", 0.5, False)]


def build(rate, inverted, hidden, seed):
    """64 -> hidden -> hidden -> 10 MLP with dropout after each hidden ReLU."""
    return nn.Sequential([
        nn.DenseLayer(64, hidden), nn.ReLU(), dropkit.Dropout(rate, inverted=inverted),
        nn.DenseLayer(hidden, hidden), nn.ReLU(), dropkit.Dropout(rate, inverted=inverted),
        nn.DenseLayer(hidden, 10)], seed=seed)


def run(out_dir=".", tiny=False, seed=0, epochs=None):
    """Train the three configurations, write ``overfitting.png``, return the table rows."""
    n_train, noise, hidden = (100, 0.3, 32) if tiny else (300, 0.3, 256)
    epochs = epochs or (3 if tiny else 60)
    (Xt, yt), (Xv, yv) = noisy_digits(n_train, noise, seed)
    curves, rows = {}, []
    for name, rate, inverted in CONFIGS:
        model = build(rate, inverted, hidden, seed)
        opt = nn.Adam(0.003)
        c = {k: [] for k in ("train_acc", "val_acc", "train_loss", "val_loss")}
        seconds = 0.0
        for ep in range(epochs):
            with Timer() as t:
                nn.fit(model, Xt, yt, epochs=1, optimizer=opt, seed=seed * 1000 + ep)
            seconds += t.seconds
            tl, ta = nn.evaluate(model, Xt, yt)
            vl, va = nn.evaluate(model, Xv, yv)
            for k, v in zip(c, (ta, va, tl, vl)):
                c[k].append(v)
        curves[name] = c
        rows.append([name, c["train_acc"][-1], c["val_acc"][-1], c["train_acc"][-1] - c["val_acc"][-1],
                     c["val_loss"][-1] - c["train_loss"][-1], max(c["val_acc"]), f"{1000 * seconds / epochs:.1f}"])
    headers = ["model", "train acc", "val acc", "gap (acc)", "gap (loss)", "best val acc", "ms/epoch"]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ep = np.arange(1, epochs + 1)
    for (name, c), color in zip(curves.items(), ("C3", "C0", "C2")):
        axes[0].plot(ep, c["train_acc"], color=color, label=f"{name} train")
        axes[0].plot(ep, c["val_acc"], color=color, ls="--", label=f"{name} val")
        axes[1].plot(ep, c["train_loss"], color=color)
        axes[1].plot(ep, c["val_loss"], color=color, ls="--")
    axes[0].set(xlabel="epoch", ylabel="accuracy (evaluation mode)",
                title="accuracy: train (solid), validation (dashed)")
    axes[1].set(xlabel="epoch", ylabel="cross-entropy", title="loss", yscale="log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Overfitting on {len(Xt)} digits with {int(noise * 100)}% noisy labels: dropout narrows the gap")
    png = save_figure(plt, fig, out_dir, "overfitting.png")
    text = table(headers, rows)
    print(f"(a) overfitting: digits, {len(Xt)} training samples ({int(noise * 100)}% labels randomised), "
          f"{len(Xv)} validation, MLP 64-{hidden}-{hidden}-10, Adam 0.003, {epochs} epochs\n{text}\nwrote {png}")
    return {"headers": headers, "rows": rows, "png": str(png), "curves": curves}
