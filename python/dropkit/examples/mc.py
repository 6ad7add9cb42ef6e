"""(d) Monte Carlo dropout: accuracy against predictive uncertainty, and a reliability plot."""
from __future__ import annotations

import numpy as np

import dropkit

from .. import nn
from ._common import noisy_digits, pyplot, save_figure, table


def reliability(conf, correct, bins=10):
    """Per confidence bin: (mean confidence, accuracy, count); and the expected calibration error."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    out, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            out.append((conf[m].mean(), correct[m].mean(), int(m.sum())))
            ece += m.mean() * abs(conf[m].mean() - correct[m].mean())
    return out, ece


def run(out_dir=".", tiny=False, seed=0, epochs=None, samples=None):
    """Train a dropout MLP on digits, MC-predict the validation set; write ``mc_dropout.png``."""
    n_train, hidden = (150, 32) if tiny else (500, 256)
    epochs = epochs or (3 if tiny else 40)
    T = samples or (5 if tiny else 50)
    (Xt, yt), (Xv, yv) = noisy_digits(n_train, 0.0, seed)
    model = nn.Sequential([nn.DenseLayer(64, hidden), nn.ReLU(), dropkit.Dropout(0.5),
                           nn.DenseLayer(hidden, hidden), nn.ReLU(), dropkit.Dropout(0.5),
                           nn.DenseLayer(hidden, 10)], seed=seed)
    nn.fit(model, Xt, yt, epochs=epochs, seed=seed)
    res = nn.mc_predict(model, Xv, samples=T, seed=seed)
    logits = model.predict(Xv)
    p_det = nn.softmax(logits.astype(np.float64))
    mc_correct = res.predict() == yv
    det_correct = p_det.argmax(1) == yv
    # accuracy by quintile of predictive entropy
    q = np.quantile(res.entropy, [0.2, 0.4, 0.6, 0.8])
    group = np.digitize(res.entropy, q)
    rows = []
    for g in range(5):
        m = group == g
        rows.append([f"entropy quintile {g + 1}", f"{res.entropy[m].min():.3f}-{res.entropy[m].max():.3f}",
                     int(m.sum()), float(mc_correct[m].mean()), float(res.mutual_information[m].mean())])
    rel_mc, ece_mc = reliability(res.mean.max(1), mc_correct)
    rel_det, ece_det = reliability(p_det.max(1), det_correct)
    summary = [["MC dropout (T=%d)" % T, float(mc_correct.mean()), ece_mc,
                float(res.entropy[~mc_correct].mean()) if (~mc_correct).any() else float("nan"),
                float(res.entropy[mc_correct].mean())],
               ["single pass, dropout off", float(det_correct.mean()), ece_det, "-", "-"]]
    headers = ["group", "entropy range (nats)", "n", "accuracy", "mean mutual information"]
    headers2 = ["prediction", "accuracy", "ECE", "mean entropy, wrong", "mean entropy, right"]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].bar(np.arange(1, 6), [r[3] for r in rows], color="C0")
    axes[0].set(xlabel="predictive-entropy quintile (1 = most certain)", ylabel="accuracy", ylim=(0, 1.02),
                title="accuracy falls as MC-dropout uncertainty rises")
    for rel, label, style in ((rel_mc, f"MC dropout, ECE {ece_mc:.3f}", "o-"),
                              (rel_det, f"dropout off, ECE {ece_det:.3f}", "s--")):
        axes[1].plot([r[0] for r in rel], [r[1] for r in rel], style, label=label)
    axes[1].plot([0, 1], [0, 1], color="gray", lw=0.8)
    axes[1].set(xlabel="confidence (max mean probability)", ylabel="accuracy", title="reliability", xlim=(0, 1),
                ylim=(0, 1))
    axes[1].legend()
    png = save_figure(plt, fig, out_dir, "mc_dropout.png")
    print(f"(d) mc: digits, MLP 64-{hidden}-{hidden}-10 with dropout 0.5, {len(Xt)} training samples, "
          f"{epochs} epochs, {len(Xv)} validation, T={T} passes\n{table(headers, rows)}\n\n"
          f"{table(headers2, summary)}\nwrote {png}")
    return {"headers": headers, "rows": rows, "summary": summary, "png": str(png)}
