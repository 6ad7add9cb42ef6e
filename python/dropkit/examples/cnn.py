"""(c) The seed's MNIST CNN (seed 000, slides 8 and 9) on dropkit.nn.

Conv(32, 3, relu) - MaxPool - Dropout .25 - Conv(64, 3, relu) - MaxPool - Dropout .25 - Flatten -
Dense(128, relu) - Dropout .5 - Dense(10), Adam, batch 32, sparse categorical cross-entropy.
With only the 10,000 test images (as here): a seeded 90/10 held-out split of them. With the full
files (train-*.gz in the MNIST folder): the seed's protocol, 60,000 training images with Keras'
``validation_split=0.1`` (the last 6,000), 10 epochs, plus the accuracy on the 10,000 test images.
"""
from __future__ import annotations

import time

import numpy as np

import dropkit

from .. import nn
from ._common import find_mnist, pyplot, save_figure, table

SEED_RESULTS = {"accuracy": 0.9923, "val_accuracy": 0.9912}  # slide 9, Keras


def build(seed=0):
    """The seed's CNN, NCHW, logits out (softmax in the loss)."""
    return nn.Sequential([
        nn.Conv2D(32, 3, activation="relu"), nn.MaxPooling2D(), dropkit.Dropout(0.25),
        nn.Conv2D(64, 3, activation="relu"), nn.MaxPooling2D(), dropkit.Dropout(0.25),
        nn.Flatten(), nn.Dense(128, activation="relu"), dropkit.Dropout(0.5), nn.Dense(10),
    ], seed=seed)


def torch_epoch_seconds(X, y, batch_size=32, dropout="torch"):
    """Seconds for one epoch of the same model in PyTorch (CPU), or None without torch.

    ``dropout="dropkit"`` runs its three dropout layers through :mod:`dropkit.torch` (the same
    model otherwise): the seed's CNN with dropkit's dropout inside PyTorch.
    """
    try:
        import torch
    except ImportError:
        return None
    tnn = torch.nn
    torch.manual_seed(0)
    if dropout == "dropkit":
        from dropkit import torch as dkt

        drop = [dkt.Dropout(0.25, seed=1), dkt.Dropout(0.25, seed=2), dkt.Dropout(0.5, seed=3)]
    elif dropout == "torch":
        drop = [tnn.Dropout(0.25), tnn.Dropout(0.25), tnn.Dropout(0.5)]
    else:
        raise ValueError(f"dropout must be 'torch' or 'dropkit', got {dropout!r}")
    model = tnn.Sequential(tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2), drop[0],
                           tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2), drop[1], tnn.Flatten(),
                           tnn.Linear(1600, 128), tnn.ReLU(), drop[2], tnn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y)
    t0 = time.perf_counter()
    for i in range(0, len(Xt), batch_size):
        opt.zero_grad()
        loss = tnn.functional.cross_entropy(model(Xt[i:i + batch_size]), yt[i:i + batch_size])
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def run(out_dir=".", tiny=False, seed=0, epochs=None, mnist=None):
    """Train the CNN; write ``cnn.png``; return the table rows."""
    folder = find_mnist(mnist)
    if folder is None:
        raise FileNotFoundError("no MNIST data: pass --mnist DIR or set DROPKIT_MNIST to a folder with "
                                "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
    full = any((folder / f).is_file() for f in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"))
    epochs = epochs or (1 if tiny else 10)
    X_test = y_test = None
    if full:
        X, y = nn.datasets.load_mnist(folder, "train")
        X_test, y_test = nn.datasets.load_mnist(folder, "t10k")
        if tiny:
            X, y, X_test, y_test = X[:600], y[:600], X_test[:200], y_test[:200]
        n_val = len(X) // 10  # Keras' validation_split=0.1: the last 10%, before any shuffling
        (Xt, yt), (Xv, yv) = (X[:-n_val], y[:-n_val]), (X[-n_val:], y[-n_val:])
        data = f"MNIST train ({len(X)} images), validation_split=0.1 as the seed, test on t10k"
    else:
        X, y = nn.datasets.load_mnist(folder, "t10k")
        if tiny:
            X, y = X[:600], y[:600]
        (Xt, yt), (Xv, yv) = nn.datasets.train_val_split(X, y, 0.1, seed=seed)
        data = f"MNIST t10k ({len(X)} images), seeded 90/10 held-out split"
    model = build(seed)
    h = nn.fit(model, Xt, yt, validation_data=(Xv, yv), epochs=epochs, batch_size=32, optimizer=nn.Adam(),
               seed=seed)
    rows = [["train accuracy (last epoch, dropout on)", h.history["accuracy"][-1], SEED_RESULTS["accuracy"]],
            ["validation accuracy", h.history["val_accuracy"][-1], SEED_RESULTS["val_accuracy"]],
            ["seconds per epoch (training part; min / median)",
             f"{min(h.epoch_time):.1f} / {np.median(h.epoch_time):.1f}", "-"]]
    if X_test is not None:
        rows.append(["test accuracy (t10k)", nn.evaluate(model, X_test, y_test)[1], "-"])
    if not tiny:
        t = [torch_epoch_seconds(Xt, yt) for _ in range(2)]
        rows.append(["PyTorch CPU, same model: seconds per epoch (min of 2)",
                     "-" if t[0] is None else f"{min(t):.1f}", "-"])
        t = [torch_epoch_seconds(Xt, yt, dropout="dropkit") for _ in range(2)]
        rows.append(["PyTorch CPU, dropout through dropkit.torch: seconds per epoch (min of 2)",
                     "-" if t[0] is None else f"{min(t):.1f}", "-"])
    headers = ["metric", "dropkit.nn", "seed (Keras, 60k train)"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ep = np.arange(1, len(h.epoch) + 1)
    ax.plot(ep, h.history["accuracy"], "o-", label="train (dropout on)")
    ax.plot(ep, h.history["val_accuracy"], "s--", label="validation")
    ax.axhline(SEED_RESULTS["val_accuracy"], color="gray", lw=0.8, ls=":", label="seed's validation 0.9912")
    ax.set(xlabel="epoch", ylabel="accuracy")
    ax.set_title("Seed CNN on " + data.replace(", ", ",\n", 1), fontsize=9)
    ax.legend()
    png = save_figure(plt, fig, out_dir, "cnn.png")
    print(f"(c) cnn: {data}; train {len(Xt)}, validation {len(Xv)}, {epochs} epochs, Adam, batch 32\n"
          f"{table(headers, rows)}\nwrote {png}")
    return {"headers": headers, "rows": rows, "png": str(png), "history": h.history}
