"""Pure-NumPy reference of DropBlock (``docs/rng.md`` section 17), written from the document alone.

One function per step of section 17, each spelled out as directly as the text states it:

- :func:`block_sizes` (17.2) clips the block size;
- :func:`seed_threshold` (17.3) computes ``gamma`` and the threshold ``t``;
- :func:`valid_centres` (17.4) marks the centres where a whole block fits;
- :func:`drop_block_keep` (17.4, 17.5) draws the seeds at their positions and expands them to
  blocks by trying every displacement of a block, one at a time;
- :func:`block_scale` (17.6) is ``T / kept`` rounded to the compute type;
- :func:`drop_block_apply` (17.7) applies mask and scale, with the arguments of the fast path in
  :mod:`dropkit.blocks` (same name, same arguments, same bits).

Favours being obviously right over being fast: positions are materialised, the max filter loops
over the ``K`` cells of a block.
"""
from __future__ import annotations

import itertools
import math
import numbers
from typing import Optional, Sequence, Tuple

import numpy as np

from .._params import block_scale, block_sizes, seed_threshold
from . import _kernels
from ._variants import bernoulli_keep_at

__all__ = [
    "block_sizes",
    "seed_threshold",
    "valid_centres",
    "drop_block_keep",
    "block_scale",
    "drop_block_apply",
]

_TWO32 = 1 << 32
_TWO53 = 1 << 53
_TWO64 = 1 << 64


def valid_centres(spatial: Sequence[int], k: Sequence[int]) -> np.ndarray:
    """Boolean array of shape ``spatial``: ``floor(k_d/2) <= s_d <= S_d - 1 - floor((k_d-1)/2)`` (17.4)."""
    ok = np.ones(tuple(spatial), dtype=bool)
    for d, (s, kd) in enumerate(zip(spatial, k)):
        idx = np.arange(s)
        axis_ok = (idx >= kd // 2) & (idx <= s - 1 - (kd - 1) // 2)
        shape = [1] * len(spatial)
        shape[d] = s
        ok &= axis_ok.reshape(shape)
    return ok


def drop_block_keep(noise_shape: Sequence[int], k: Sequence[int], threshold: int, seed: int,
                    offset: int) -> np.ndarray:
    """Keep mask (bool, ``noise_shape`` = ``(N', C, S_1, ..., S_D)``) of sections 17.4-17.5.

    Parameters
    ----------
    noise_shape : sequence of int
        ``(N', C, S_1, ..., S_D)``; element with C-order flat index ``j`` sits at ``offset + j``.
    k : sequence of int
        Clipped block sizes (:func:`block_sizes`).
    threshold : int
        ``t`` in ``[0, 2**32]``: a valid centre at position ``g`` is a seed when ``u(g) < t``.
    seed, offset : int
        The stream's seed and the position of the first element.

    Returns
    -------
    numpy.ndarray of bool
        True where kept.
    """
    noise_shape = tuple(int(n) for n in noise_shape)
    s = _kernels.check_int("seed", seed, 0, _TWO64 - 1)
    o = _kernels.check_int("offset", offset, 0, _TWO64)
    t = _kernels.check_int("threshold", threshold, 0, _TWO32)
    total = math.prod(noise_shape)
    _kernels.check_span(total, o)
    spatial = noise_shape[2:]
    if total == 0:
        return np.ones(noise_shape, dtype=bool)
    pos = (np.arange(total, dtype=np.uint64) + np.uint64(o)).reshape(noise_shape)
    dropped_bit = ~bernoulli_keep_at(pos, t, s)  # u(g) < t (section 4)
    seeds = dropped_bit & valid_centres(spatial, k)  # broadcast over (N', C)
    # 17.5: s is dropped when a seed sits at s + delta, delta_d in [-floor((k_d-1)/2), floor(k_d/2)].
    dropped = np.zeros(noise_shape, dtype=bool)
    ranges = [range(-((kd - 1) // 2), kd // 2 + 1) for kd in k]
    for delta in itertools.product(*ranges):
        dst = [slice(None), slice(None)]
        src = [slice(None), slice(None)]
        for dd, size in zip(delta, spatial):
            # dst index s with 0 <= s < size and 0 <= s + dd < size
            lo, hi = max(0, -dd), min(size, size - dd)
            dst.append(slice(lo, hi))
            src.append(slice(lo + dd, hi + dd))
        dropped[tuple(dst)] |= seeds[tuple(src)]
    return ~dropped


def drop_block_apply(x: np.ndarray, out: np.ndarray, threshold: int, k: Sequence[int], seed: int,
                     offset: int, batchwise: bool, channels_last: bool,
                     threads: Optional[int] = None, simd: Optional[str] = None) -> np.ndarray:
    """DropBlock of ``x`` into ``out`` (sections 17.4-17.7); returns ``out``.

    Parameters
    ----------
    x, out : numpy.ndarray
        One float dtype (float16/32/64) and one shape ``(N, C, S...)`` (channels first) or
        ``(N, S..., C)`` (channels last), C-contiguous; ``out`` may be ``x``.
    threshold : int
        ``t`` of 17.3.
    k : sequence of int
        Clipped block sizes.
    seed, offset : int
        Seed and position of the first noise element.
    batchwise : bool
        One mask of noise shape ``(1, C, S...)`` for the whole batch.
    channels_last : bool
        The layout of ``x``.
    threads, simd : optional
        Accepted for parity with the fast path; ignored.
    """
    if x.ndim < 3:
        raise ValueError(f"x must have at least 3 dimensions, got shape {x.shape}")
    cf = np.moveaxis(x, -1, 1) if channels_last else x
    n, c = cf.shape[0], cf.shape[1]
    spatial = cf.shape[2:]
    noise_shape = (1 if batchwise else n, c) + tuple(spatial)
    keep = drop_block_keep(noise_shape, k, threshold, seed, offset)
    total = keep.size
    scale = block_scale(total, int(keep.sum()), x.dtype)
    keep_x = np.broadcast_to(keep, cf.shape)
    if channels_last:
        keep_x = np.moveaxis(keep_x, 1, -1)
    ct = type(scale)
    with np.errstate(all="ignore"):
        y = np.where(keep_x, x.astype(ct) * scale, ct(0.0)).astype(x.dtype)
    out[...] = y
    return out
