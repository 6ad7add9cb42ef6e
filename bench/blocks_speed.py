"""DropBlock speed: dropkit.drop_block against np.multiply and timm's drop_block_2d formula.

    PYTHONPATH=python python3 bench/blocks_speed.py [--repeats 15] [--threads 1]

float32 ``(N, C, 32, 32)`` maps (and ``(16, 64, 64, 64)`` at 2**22), ``rate=0.1``, ``block_size=7``,
one thread for dropkit and for PyTorch. In one process, the contenders interleaved round by round;
the median of the rounds per contender. Ratios are against ``np.multiply(x, s)`` (a fresh output,
as drop_block returns one) on the same array.

The timm baseline is timm's ``drop_block_2d`` (``timm/layers/drop.py``, huggingface/pytorch-image-models,
``fast=False``: valid-centre clip mask, uniform noise compared with ``gamma``, ``-max_pool2d(-mask)``,
``numel / (sum + 1e-7)`` scale) and ``drop_block_fast_2d`` (``bernoulli_`` seeds anywhere,
``max_pool2d``), both written here with torch ops on the same CPU tensors (timm is not a
dependency).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import dropkit
from dropkit import blocks
from dropkit.bench import contenders


def timm_drop_block_2d(x, drop_prob, block_size, gamma_scale=1.0):
    """timm's drop_block_2d formula (the benchmark's baseline, dropkit.bench.contenders)."""
    import torch

    return contenders.timm_drop_block_2d(torch, x, drop_prob, block_size, gamma_scale)


def timm_drop_block_fast_2d(x, drop_prob, block_size, gamma_scale=1.0):
    """timm's drop_block_fast_2d formula (with_noise=False, not in place)."""
    import torch
    import torch.nn.functional as F

    _, _, h, w = x.shape
    k = min(block_size, w, h)
    gamma = gamma_scale * drop_prob * (w * h) / k ** 2 / ((w - block_size + 1) * (h - block_size + 1))
    drop = torch.empty_like(x).bernoulli_(gamma)
    drop = F.max_pool2d(drop, kernel_size=k, stride=1, padding=k // 2)
    keep = 1 - drop
    scale = (keep.numel() / keep.to(torch.float32).sum().add(1e-6)).to(x.dtype)
    return x * keep * scale


def measure(fns, repeats):
    """Median seconds per contender, rounds interleaved (each round runs every contender once)."""
    times = {name: [] for name in fns}
    for f in fns.values():  # warm-up
        f()
    for _ in range(repeats):
        for name, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    dropkit.set_num_threads(a.threads)
    try:
        import torch

        torch.set_num_threads(a.threads)
    except ImportError:
        torch = None
    shapes = [(1, 4, 32, 32), (1, 16, 32, 32), (4, 16, 32, 32), (16, 16, 32, 32), (64, 16, 32, 32),
              (16, 64, 64, 64)]
    print(f"dropkit {dropkit.__version__}, {a.threads} thread(s), float32, rate 0.1, block_size 7, "
          f"median of {a.repeats} interleaved rounds")
    cols = ["elements", "shape", "np.multiply us", "drop_block us", "x np.multiply", "timm us", "timm fast us",
            "timm / dropkit", "timm fast / dropkit"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    rng = np.random.default_rng(0)
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        s = np.float32(1.1)
        fns = {"mul": lambda: np.multiply(x, s), "dk": lambda: blocks.drop_block(x, 0.1, 7, seed=1)}
        if torch is not None:
            xt = torch.from_numpy(x)
            fns["timm"] = lambda: timm_drop_block_2d(xt, 0.1, 7)
            fns["timm_fast"] = lambda: timm_drop_block_fast_2d(xt, 0.1, 7)
        t = measure(fns, a.repeats)
        us = {k: v * 1e6 for k, v in t.items()}
        row = [f"2^{int(np.log2(x.size))}", "x".join(map(str, shape)), f"{us['mul']:.0f}", f"{us['dk']:.0f}",
               f"{us['dk'] / us['mul']:.2f}"]
        if torch is not None:
            row += [f"{us['timm']:.0f}", f"{us['timm_fast']:.0f}", f"{us['timm'] / us['dk']:.2f}",
                    f"{us['timm_fast'] / us['dk']:.2f}"]
        else:
            row += ["-"] * 4
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
