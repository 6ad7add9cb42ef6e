"""dropkit.torch against PyTorch's own dropout layers: forward and forward + backward, ratios.

Usage: ``PYTHONPATH=python python3 bench/torch_vs_dropkit.py [--sizes 8 10 ...] [--rounds 7]``.

float32, one thread each (torch.set_num_threads(1), dropkit.set_num_threads(1)), p = 0.1 (Gaussian:
the same rate). For each variant and size the two contenders run interleaved in one process, round
after round; each round times a batch of calls of each (the batch sized to ~20 ms), and the
reported time is the minimum over rounds (µs per call, in thread CPU time, time.thread_time, so
that other processes on a shared machine count less). Ratio = dropkit / PyTorch: < 1 is faster.
The functional forms with seed=None (PyTorch's generator at every call, as F.dropout); forward +
backward is ``f(x).sum().backward()`` (a stride-0 incoming gradient, as in issue 14's table).
"""
from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

import dropkit
import dropkit.torch as dkt

P = 0.1
SIGMA = math.sqrt(P / (1 - P))


def _shape(kind: str, n: int):
    if kind in ("dropout2d", "feature_alpha"):
        return (max(n >> 8, 1), 16, 4, 4)
    if kind == "dropout3d":
        return (max(n >> 8, 1), 8, 2, 4, 4)
    return (n,)


VARIANTS = {  # name: (PyTorch, dropkit.torch)
    "dropout": (lambda x: F.dropout(x, P), lambda x: dkt.dropout(x, P)),
    "dropout2d": (lambda x: F.dropout2d(x, P), lambda x: dkt.dropout2d(x, P)),
    "dropout3d": (lambda x: F.dropout3d(x, P), lambda x: dkt.dropout3d(x, P)),
    "alpha": (lambda x: F.alpha_dropout(x, P, True), lambda x: dkt.alpha_dropout(x, P, True)),
    "feature_alpha": (lambda x: F.feature_alpha_dropout(x, P, True),
                      lambda x: dkt.feature_alpha_dropout(x, P, True)),
    # PyTorch has no Gaussian dropout: the usual x * (1 + sigma * randn_like(x)).
    "gaussian": (lambda x: x * (1.0 + SIGMA * torch.randn_like(x)), lambda x: dkt.gaussian_dropout(x, P)),
}


def _batch(fn, target=0.02):
    """Calls per timed batch so that one batch takes about ``target`` seconds."""
    k = 1
    while True:
        t0 = time.thread_time()
        for _ in range(k):
            fn()
        dt = time.thread_time() - t0
        if dt > target / 4 or k > 1 << 20:
            return max(1, int(k * target / max(dt, 1e-9)))
        k *= 4


def _time(fns, rounds):
    """Interleaved rounds of each contender; min over rounds of the per-call time in µs."""
    ks = [_batch(f) for f in fns]
    best = [math.inf] * len(fns)
    for _ in range(rounds):
        for i, (f, k) in enumerate(zip(fns, ks)):
            t0 = time.thread_time()
            for _ in range(k):
                f()
            best[i] = min(best[i], (time.thread_time() - t0) / k * 1e6)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 10, 12, 14, 16, 18, 20, 22, 24],
                    help="log2 of the element counts")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    dropkit.set_num_threads(1)
    print(f"torch {torch.__version__}, float32, 1 thread each, p={P}, min of {a.rounds} interleaved rounds,"
          f" µs per call; ratio = dropkit.torch / PyTorch")
    print(f"{'variant':14s} {'n':>5s} {'torch fwd':>10s} {'dkt fwd':>10s} {'ratio':>6s}   "
          f"{'torch f+b':>10s} {'dkt f+b':>10s} {'ratio':>6s}")
    for name in a.variants:
        theirs, ours = VARIANTS[name]
        for k in a.sizes:
            x = torch.randn(_shape(name, 1 << k))
            xg = x.clone().requires_grad_()

            def fb(f):
                def run():
                    f(xg).sum().backward()
                    xg.grad = None
                return run

            tf, of = _time([lambda: theirs(x), lambda: ours(x)], a.rounds)
            tb, ob = _time([fb(theirs), fb(ours)], a.rounds)
            print(f"{name:14s} 2^{k:<3d} {tf:10.2f} {of:10.2f} {of / tf:6.2f}   {tb:10.2f} {ob:10.2f} {ob / tb:6.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
