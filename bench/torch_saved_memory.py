"""What autograd keeps for backward: dropkit.torch's layers against PyTorch's.

    python3 bench/torch_saved_memory.py                    # x of shape (64, 256, 32, 32), float32
    python3 bench/torch_saved_memory.py --shape 32 64 16 16 --dtype float64

Counts every tensor autograd saves between forward and backward with
``torch.autograd.graph.saved_tensors_hooks``, for each dropout layer applied to an input that
requires grad (viewed as ``(N, C, L)`` for the 1-d channel layers), then runs backward and checks
each dropkit gradient against its NumPy API twin. PyTorch has no Gaussian dropout: the baseline
is the usual ``x * (1 + sigma * torch.randn_like(x))``.
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

import dropkit
import dropkit.torch as dkt


def saved(layer, x):
    """(shape, dtype, bytes) of each tensor saved for backward while running ``layer(x).sum()``."""
    rows = []

    def pack(t):
        rows.append((tuple(t.shape), str(t.dtype).replace("torch.", ""), t.numel() * t.element_size()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = layer(x).sum()
    loss.backward()
    return rows


class TorchGaussian(torch.nn.Module):
    """Gaussian dropout written with PyTorch ops, as users do: the noise tensor is saved."""

    def __init__(self, p):
        super().__init__()
        self.sigma = math.sqrt(p / (1 - p))

    def forward(self, x):
        return x * (1 + self.sigma * torch.randn_like(x))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", type=int, nargs=4, default=[64, 256, 32, 32], metavar=("N", "C", "H", "W"))
    ap.add_argument("--dtype", default="float32", choices=["float16", "bfloat16", "float32", "float64"])
    ap.add_argument("--p", type=float, default=0.5)
    args = ap.parse_args(argv)
    p, shape = args.p, tuple(args.shape)
    x = torch.randn(*shape, dtype=getattr(torch, args.dtype))
    xbytes = x.numel() * x.element_size()
    print(f"x: {shape} {args.dtype}, {xbytes / 2**20:.1f} MiB; p = {p}")
    flat = (shape[0], shape[1], -1)
    ones = np.ones(shape, np.float32 if args.dtype == "bfloat16" else x.numpy().dtype)
    pairs = [  # (name, PyTorch's layer, dropkit's layer, input view, NumPy gradient of ones)
        ("Dropout", torch.nn.Dropout(p), dkt.Dropout(p, seed=1), shape,
         lambda: dropkit.dropout_backward(ones, p, seed=1)),
        ("Dropout1d", torch.nn.Dropout1d(p), dkt.Dropout1d(p, seed=1), flat,
         lambda: dropkit.dropout_nd_backward(ones.reshape(flat), p, seed=1, noise_shape=(None, None, 1))),
        ("Dropout2d", torch.nn.Dropout2d(p), dkt.Dropout2d(p, seed=1), shape,
         lambda: dropkit.dropout_nd_backward(ones, p, seed=1, noise_shape=(None, None, 1, 1))),
        ("AlphaDropout", torch.nn.AlphaDropout(p), dkt.AlphaDropout(p, seed=1), shape,
         lambda: dropkit.alpha_dropout_backward(ones, p, seed=1)),
        ("FeatureAlphaDropout", torch.nn.FeatureAlphaDropout(p), dkt.FeatureAlphaDropout(p, seed=1), shape,
         lambda: dropkit.feature_alpha_dropout_backward(ones, p, seed=1)),
        ("GaussianDropout", TorchGaussian(p), dkt.GaussianDropout(p, seed=1), shape,
         lambda: dropkit.gaussian_dropout_backward(ones, p, seed=1)),
    ]
    print(f"{'layer':20s} {'PyTorch saves':>16s} {'dropkit.torch saves':>20s}  gradient == NumPy API")
    ok_all = True
    for name, theirs, ours, view, expect in pairs:
        totals = []
        for layer in (theirs, ours):
            xr = x.reshape(view).detach().requires_grad_(True)
            rows = saved(layer, xr)
            totals.append(sum(n for _, _, n in rows))
        g = xr.grad.float().numpy() if xr.dtype == torch.bfloat16 else xr.grad.numpy()
        ok = bool(np.array_equal(g, expect().reshape(g.shape)))
        ok_all &= ok
        print(f"{name:20s} {totals[0]:>10,d} B {totals[0] / xbytes:5.3f}x {totals[1]:>12,d} B {totals[1] / xbytes:5.3f}x"
              f"  {ok}")
    print("(B = bytes saved for backward; Nx = as a multiple of x.nbytes)")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
