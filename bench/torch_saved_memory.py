"""What autograd keeps for backward: dropkit.torch.Dropout against torch.nn.Dropout.

    python3 bench/torch_saved_memory.py                   # x of shape (4096, 4096), float32
    python3 bench/torch_saved_memory.py --shape 256 1024 --dtype float64

Counts every tensor autograd saves between forward and backward with
``torch.autograd.graph.saved_tensors_hooks``, for one dropout layer applied to an input that
requires grad, then runs backward and checks dropkit's gradient against its NumPy API.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

import dropkit
import dropkit.torch


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", type=int, nargs="+", default=[4096, 4096])
    ap.add_argument("--dtype", default="float32", choices=["float16", "bfloat16", "float32", "float64"])
    ap.add_argument("--p", type=float, default=0.5)
    args = ap.parse_args(argv)
    x = torch.randn(*args.shape, dtype=getattr(torch, args.dtype), requires_grad=True)
    xbytes = x.numel() * x.element_size()
    print(f"x: {tuple(x.shape)} {args.dtype}, {xbytes / 2**20:.1f} MiB; p = {args.p}")
    for name, layer in (("torch.nn.Dropout", torch.nn.Dropout(args.p)),
                        ("dropkit.torch.Dropout", dropkit.torch.Dropout(args.p, seed=1))):
        x.grad = None
        rows = saved(layer, x)
        total = sum(n for _, _, n in rows)
        what = ", ".join(f"{s} {d} ({n} B)" for s, d, n in rows) or "nothing"
        print(f"{name:22s} saves {total:>12,d} bytes = {total / xbytes:6.3f} x x.nbytes: {what}")
    # dropkit's gradient is the mask regenerated from (seed, offset, p): check it.
    g = x.grad.float().numpy() if x.dtype == torch.bfloat16 else x.grad.numpy()
    ones = np.ones(x.shape, np.float32 if x.dtype == torch.bfloat16 else x.grad.numpy().dtype)
    ok = np.array_equal(g, dropkit.dropout_backward(ones, args.p, seed=1, offset=0))
    print("dropkit gradient == dropkit.dropout_backward(ones, p, seed=1, offset=0):", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
