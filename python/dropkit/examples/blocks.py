"""DropBlock on MNIST and DropConnect on digits, with and without; a DropBlock mask next to a
standard dropout mask of the same drop fraction (``blocks.png``).

``python -m dropkit.examples.blocks [--tiny] [--out DIR] [--seed N] [--epochs N] [--mnist DIR]``.
``run`` has the signature of the other examples, so ``dropkit.examples.EXAMPLES`` can list it.

- MNIST (the 10,000 t10k images, a seeded 90/10 held-out split): a small CNN
  ``Conv(16, 3, relu, same) - DropBlock2D - MaxPool - Conv(32, 3, relu, same) - DropBlock2D - MaxPool -
  Flatten - Dense(10)``, Adam, with ``DropBlock2D(rate, block_size=3)`` and with the DropBlock layers
  removed.
- digits (scikit-learn's 8x8 digits, 50/50): ``Dense(256, relu, dropconnect=0.5) - Dense(10)`` against
  the same network without DropConnect.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import dropkit

from .. import nn
from ._common import find_mnist, pyplot, save_figure, table


def cnn(drop_block_rate, seed=0):
    """The MNIST CNN; ``drop_block_rate`` None removes the DropBlock layers."""
    def db():
        return [] if drop_block_rate is None else [dropkit.DropBlock2D(drop_block_rate, 3)]
    return nn.Sequential([nn.Conv2D(16, 3, padding="same", activation="relu"), *db(), nn.MaxPooling2D(),
                          nn.Conv2D(32, 3, padding="same", activation="relu"), *db(), nn.MaxPooling2D(),
                          nn.Flatten(), nn.Dense(10)], seed=seed)


def mlp(dropconnect, seed=0):
    """The digits MLP, DropConnect on its hidden layer's weights."""
    return nn.Sequential([nn.Dense(256, activation="relu", dropconnect=dropconnect), nn.Dense(10)], seed=seed)


def masks_figure(out_dir, seed=0, size=48, rate=0.15, block_size=7):
    """A DropBlock mask and a standard dropout mask of the same drop fraction, side by side."""
    m_block = dropkit.drop_block_mask((1, 1, size, size), rate, block_size, seed=seed)[0, 0]
    frac = 1.0 - m_block.mean()
    m_std = dropkit.dropout_mask((size, size), float(frac), seed=seed + 1)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
    for ax, m, title in ((axes[0], m_block, f"DropBlock (rate {rate}, block {block_size})"),
                         (axes[1], m_std, "standard dropout")):
        ax.imshow(m, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{title}\ndropped {1.0 - m.mean():.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return save_figure(plt, fig, out_dir, "blocks.png")


def run(out_dir=".", tiny=False, seed=0, epochs=None, mnist=None):
    """Train with and without each kind; write ``blocks.png``; return the table rows."""
    rows = []
    folder = find_mnist(mnist)
    if folder is not None:
        X, y = nn.datasets.load_mnist(folder, "t10k")
        if tiny:
            X, y = X[:400], y[:400]
        (Xt, yt), (Xv, yv) = nn.datasets.train_val_split(X, y, 0.1, seed=seed)
        ep = epochs or (1 if tiny else 3)
        for label, rate in (("MNIST CNN, no DropBlock", None), ("MNIST CNN, DropBlock2D(0.1, 3)", 0.1)):
            h = nn.fit(cnn(rate, seed), Xt, yt, validation_data=(Xv, yv), epochs=ep, batch_size=64,
                       optimizer=nn.Adam(), seed=seed)
            rows.append([label, ep, h.history["accuracy"][-1], h.history["val_accuracy"][-1]])
    Xd, yd = nn.datasets.load_digits()
    (Xt, yt), (Xv, yv) = nn.datasets.train_val_split(Xd, yd, 0.5, seed=seed)
    if tiny:
        Xt, yt = Xt[:200], yt[:200]
    ep = epochs or (2 if tiny else 30)
    for label, dc in (("digits MLP, no DropConnect", 0.0), ("digits MLP, dropconnect=0.5", 0.5)):
        h = nn.fit(mlp(dc, seed), Xt, yt, validation_data=(Xv, yv), epochs=ep, batch_size=32,
                   optimizer=nn.Adam(), seed=seed)
        rows.append([label, ep, h.history["accuracy"][-1], h.history["val_accuracy"][-1]])
    png = masks_figure(out_dir, seed)
    headers = ["model", "epochs", "train accuracy (last epoch)", "held-out accuracy"]
    note = "" if folder is not None else " (no MNIST folder found: digits only)"
    print(f"blocks: DropBlock and DropConnect, with and without{note}\n{table(headers, rows)}\nwrote {png}")
    return {"headers": headers, "rows": rows, "png": str(png)}


def main(argv=None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m dropkit.examples.blocks", description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", default=".")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--mnist", default=None)
    a = p.parse_args(argv)
    run(out_dir=a.out, tiny=a.tiny, seed=a.seed, epochs=a.epochs, mnist=a.mnist)
    return 0


if __name__ == "__main__":
    sys.exit(main())
