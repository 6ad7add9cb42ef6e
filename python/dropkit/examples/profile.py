"""(6) Where an epoch's time goes: the share spent in dropout for one MLP epoch and one CNN epoch,
measured twice: cProfile (cumulative time of the dropout layers' forward/backward) and plain
wall-clock timers around those calls (no profiler overhead)."""
from __future__ import annotations

import cProfile
import pstats
import time

import numpy as np

import dropkit

from .. import nn
from . import cnn
from ._common import find_mnist, table


def _mlp(n_in, seed):
    return nn.Sequential([nn.DenseLayer(n_in, 256), nn.ReLU(), dropkit.Dropout(0.5),
                          nn.DenseLayer(256, 256), nn.ReLU(), dropkit.Dropout(0.5), nn.DenseLayer(256, 10)], seed=seed)


def _profiled_share(model, X, y, seed):
    prof = cProfile.Profile()
    prof.enable()
    t0 = time.perf_counter()
    nn.fit(model, X, y, epochs=1, seed=seed, verbose=False)
    total = time.perf_counter() - t0
    prof.disable()
    st = pstats.Stats(prof).stats
    drop = sum(v[3] for (f, _, fn), v in st.items()
               if f.replace("\\", "/").endswith("dropkit/layers.py") and fn in ("forward", "backward"))
    fit_ct = max((v[3] for (f, _, fn), v in st.items() if fn == "fit" and "dropkit/nn" in f.replace("\\", "/")),
                 default=total)
    return drop / fit_ct, fit_ct


def _timed_share(model, X, y, seed):
    spent = [0.0]
    for layer in model.layers:
        if isinstance(layer, dropkit.Dropout):
            for name in ("forward", "backward"):
                orig = getattr(layer, name)

                def wrapped(*a, _orig=orig, **k):
                    t = time.perf_counter()
                    try:
                        return _orig(*a, **k)
                    finally:
                        spent[0] += time.perf_counter() - t
                setattr(layer, name, wrapped)
    t0 = time.perf_counter()
    nn.fit(model, X, y, epochs=1, seed=seed, verbose=False)
    total = time.perf_counter() - t0
    for layer in model.layers:  # drop the instance wrappers
        layer.__dict__.pop("forward", None)
        layer.__dict__.pop("backward", None)
    return spent[0] / total, total


def run(out_dir=".", tiny=False, seed=0, epochs=None, mnist=None):
    """Profile one epoch of an MLP and of the seed CNN; print the table (no figure)."""
    folder = find_mnist(mnist)
    if folder is not None:
        X, y = nn.datasets.load_mnist(folder, "t10k")
        data = "MNIST t10k"
    else:
        X, y = nn.datasets.load_digits(images=True)
        data = "digits 8x8"
    n = 300 if tiny else 9000
    X, y = X[:n], y[:n]
    rows = []
    n_in = int(np.prod(X.shape[1:]))
    for name, make, Xin in ((f"MLP {n_in}-256-256-10", lambda: _mlp(n_in, seed), X.reshape(len(X), -1)),
                            ("seed CNN", lambda: cnn.build(seed), X)):
        if name == "seed CNN" and X.shape[-1] < 10:
            continue  # the seed CNN needs 28x28 images
        share_p, total_p = _profiled_share(make(), Xin, y, seed)
        share_t, total_t = _timed_share(make(), Xin, y, seed)
        rows.append([name, len(Xin), f"{total_t:.2f}", f"{100 * share_t:.2f}%", f"{total_p:.2f}",
                     f"{100 * share_p:.2f}%"])
    headers = ["model (1 epoch, batch 32)", "samples", "epoch s", "dropout share (timers)", "epoch s (cProfile)",
               "dropout share (cProfile)"]
    print(f"profile: one training epoch on {data}, dropout = dropkit.Dropout forward + backward\n"
          f"{table(headers, rows)}")
    return {"headers": headers, "rows": rows}
