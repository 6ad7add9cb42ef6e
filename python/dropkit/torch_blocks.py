"""DropBlock and DropConnect for PyTorch CPU tensors, on dropkit's stream (docs/rng.md §17, §18).

- :func:`drop_block_2d` / :class:`DropBlock2d`: timm's arguments (``drop_prob``, ``block_size``,
  ``gamma_scale``, ``with_noise``, ``inplace``, ``batchwise``, ``fast``), so that
  ``timm.layers.DropBlock2d`` users can swap it; the bits of :func:`dropkit.drop_block` on
  ``t.numpy()``. Backward saves no tensor, only the numbers ``(seed, offset, parameters)``.
- :class:`DropConnect` and :func:`register_drop_connect`: a ``torch.nn.utils.parametrize``
  parametrization applying dropkit's weight mask (inverted dropout of the weight) to any
  parameter of any module (``nn.Linear.weight``, ``nn.LSTM.weight_hh_l0``, ...).

Both run through opaque custom operators (``torch.ops.dropkit.drop_block_apply`` here,
``torch.ops.dropkit.dropout_apply`` of :mod:`dropkit.torch` for DropConnect) with registered
autograd formulas that regenerate the mask, so they work in eager mode, under
``torch.autograd.gradcheck`` and inside ``torch.compile``.

Differences from timm (``timm/layers/drop.py``, ``drop_block_2d``, ``drop_block_fast_2d``,
``DropBlock2d``):

- the random numbers are dropkit's stream (reproducible from ``seed``), not ``torch.rand``;
- ``fast`` is accepted and has no effect: dropkit always computes timm's exact form
  (``fast=False``: centres only where the whole block fits, every block inside the map), which
  is also its fast one; timm's ``fast=True`` places centres anywhere and clips blocks at the
  border, and ignores ``batchwise``; dropkit honours ``batchwise`` in both cases;
- ``with_noise=True`` (fill dropped blocks with Gaussian noise, "experimental" in timm) is
  refused with a ``ValueError``;
- the scale is ``numel / kept`` without timm's ``+ 1e-7``; nothing kept gives zeros;
- a ``block_size`` larger than a side is clipped in the seed rate as well (timm divides by
  ``(W - block_size + 1) * (H - block_size + 1)``, zero or negative then), and even block sizes
  are defined (timm's ``drop_block_2d`` fails on them).
"""
from __future__ import annotations

import math

import torch
from torch.nn.utils import parametrize

from . import _validate, blocks
from . import torch as _dt

__all__ = ["DropBlock2d", "DropConnect", "drop_block_2d", "register_drop_connect"]

_TWO64 = 1 << 64


# ------------------------------------------------------------------------------------------------
# The DropBlock operators (CPU, opaque to torch.compile)
# ------------------------------------------------------------------------------------------------


def _run(src: torch.Tensor, dst: torch.Tensor, p: float, block_size: int, gamma_scale: float,
         batchwise: bool, seed: int, offset: torch.Tensor) -> None:
    """``dst = drop_block(src)`` for contiguous CPU tensors of one dtype, through the NumPy API."""
    o = _dt.from_int64(int(offset))
    s = _dt.from_int64(seed)
    kw = dict(seed=s, offset=o, gamma_scale=gamma_scale, batchwise=batchwise)
    if src.dtype == torch.bfloat16:  # NumPy has no bfloat16: float32 round trip, as dropkit.torch
        tmp = src.detach().float()
        blocks.drop_block_backward(tmp.numpy(), p, block_size, out=tmp.numpy(), **kw)
        dst.copy_(tmp)
        return
    blocks.drop_block_backward(src.detach().numpy(), p, block_size, out=dst.detach().numpy(), **kw)


@torch.library.custom_op("dropkit::drop_block_apply", mutates_args=(), device_types="cpu")
def _drop_block_apply(x: torch.Tensor, p: float, block_size: int, gamma_scale: float, batchwise: bool,
                      seed: int, offset: torch.Tensor) -> torch.Tensor:
    """DropBlock (training mode) of a contiguous ``(N, C, H, W)`` CPU tensor; seed (int) and offset
    (0-d int64 tensor) hold the two's-complement bit patterns of values in [0, 2**64)."""
    y = torch.empty_like(x, memory_format=torch.contiguous_format)
    _run(x, y, p, block_size, gamma_scale, batchwise, seed, offset)
    return y


@_drop_block_apply.register_fake
def _(x, p, block_size, gamma_scale, batchwise, seed, offset):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("dropkit::drop_block_apply_", mutates_args=("x",), device_types="cpu")
def _drop_block_apply_(x: torch.Tensor, p: float, block_size: int, gamma_scale: float, batchwise: bool,
                       seed: int, offset: torch.Tensor) -> None:
    """In-place :func:`_drop_block_apply`."""
    _run(x, x, p, block_size, gamma_scale, batchwise, seed, offset)


@_drop_block_apply_.register_fake
def _(x, p, block_size, gamma_scale, batchwise, seed, offset):
    return None


def _setup(ctx, inputs, output):
    _, ctx.p, ctx.block_size, ctx.gamma_scale, ctx.batchwise, ctx.seed, offset = inputs
    ctx.save_for_backward(offset)  # 8 bytes: the mask is regenerated, nothing per element kept


def _backward(ctx, grad):
    (offset,) = ctx.saved_tensors
    dx = torch.ops.dropkit.drop_block_apply(grad.contiguous(), ctx.p, ctx.block_size, ctx.gamma_scale,
                                            ctx.batchwise, ctx.seed, offset)
    return dx, None, None, None, None, None, None


_drop_block_apply.register_autograd(_backward, setup_context=_setup)


def _check_args(t, drop_prob, block_size, gamma_scale, with_noise, batchwise, name):
    _dt.check_tensor(t, name)
    if t.dim() != 4:
        raise ValueError(f"DropBlock2d expects a 4-D (N, C, H, W) input, got a {t.dim()}-D input of "
                         f"shape {tuple(t.shape)}")
    p = _validate.rate(drop_prob, "drop_prob")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    g = blocks.check_gamma_scale(gamma_scale)
    if _validate.flag(with_noise, "with_noise"):
        raise ValueError("with_noise=True (Gaussian noise in the dropped blocks, experimental in timm) is "
                         "not supported by dropkit; use with_noise=False")
    return p, g, _validate.flag(batchwise, "batchwise")


def _apply(t, p, block_size, g, batchwise, seed, offset, inplace):
    ops = torch.ops.dropkit
    if not inplace:
        return ops.drop_block_apply(t.contiguous(), p, block_size, g, batchwise, seed, offset)
    if t.is_contiguous() and not (t.requires_grad and torch.is_grad_enabled()):
        ops.drop_block_apply_(t, p, block_size, g, batchwise, seed, offset)
    else:
        t.copy_(ops.drop_block_apply(t.contiguous(), p, block_size, g, batchwise, seed, offset))
    return t


def _noise_numel(t: torch.Tensor, batchwise: bool) -> int:
    shape = tuple(t.shape)
    return math.prod(shape[1:]) if batchwise else math.prod(shape)


def drop_block_2d(x, drop_prob=0.1, block_size=7, gamma_scale=1.0, with_noise=False, inplace=False,
                  batchwise=False, *, seed=None, offset=0, training=True):
    """DropBlock of an ``(N, C, H, W)`` CPU tensor with timm's ``drop_block_2d`` arguments, on dropkit's stream.

    Parameters
    ----------
    x : torch.Tensor
        CPU, ``(N, C, H, W)``, dtype float16, bfloat16, float32 or float64.
    drop_prob : float, default 0.1
        In [0, 1]; the seed rate is ``gamma_scale * drop_prob * H * W / k**2 / ((W - k + 1) (H - k + 1))``,
        ``k = min(block_size, H, W)``.
    block_size : int, default 7
        Side of the square blocks (clipped to the map).
    gamma_scale : float, default 1.0
    with_noise : bool, default False
        True is refused (``ValueError``).
    inplace : bool, default False
        Write into ``x``.
    batchwise : bool, default False
        One mask for the whole batch.
    seed : None, int or torch.Generator
        As :func:`dropkit.torch.seed_from`.
    offset : int, default 0
        Stream position of the first noise element (``N * C * H * W`` positions, ``C * H * W``
        batchwise).
    training : bool, default True
        False returns ``x``.

    Returns
    -------
    torch.Tensor
        Bit for bit ``dropkit.drop_block(x.numpy(), drop_prob, block_size, seed=seed,
        offset=offset, gamma_scale=gamma_scale, batchwise=batchwise)``; ``x`` itself when
        ``training`` is False or ``drop_prob`` is 0.

    Raises
    ------
    ValueError, TypeError
        Bad arguments (named), another rank than 4, ``with_noise=True``, a tensor off the CPU.
    """
    p, g, bw = _check_args(x, drop_prob, block_size, gamma_scale, with_noise, batchwise, "x")
    s = _dt.seed_from(seed) if isinstance(seed, torch.Generator) or seed is None else _validate.uint64(seed, "seed")
    o = _validate.uint64(offset, "offset")
    _validate.span(o, _noise_numel(x, bw))
    if not _validate.flag(training, "training") or p == 0.0:
        return x
    return _apply(x, p, block_size, g, bw, _dt.to_int64(s), torch.tensor(_dt.to_int64(o), dtype=torch.int64),
                  bool(inplace))


class DropBlock2d(torch.nn.Module):
    """``timm.layers.DropBlock2d`` on dropkit's stream: reproducible, exact, no mask kept for backward.

    Parameters
    ----------
    drop_prob : float, default 0.1
    block_size : int, default 7
    gamma_scale : float, default 1.0
    with_noise : bool, default False
        True is refused (``ValueError``) at construction.
    inplace : bool, default False
    batchwise : bool, default False
        One mask for the whole batch (honoured whatever ``fast`` says).
    fast : bool, default True
        Accepted for timm compatibility; no effect (see the module docstring).
    seed : None, int or torch.Generator
        As :func:`dropkit.torch.seed_from` (None: from PyTorch's default generator).

    Attributes
    ----------
    seed : int
    position : int
        Stream position of the next training forward; advances by ``N * C * H * W``
        (``C * H * W`` batchwise) per training forward. Not in the ``state_dict``.

    Notes
    -----
    Training mode gives the bits of :func:`drop_block_2d` at ``offset = position``; evaluation
    mode and ``drop_prob = 0`` return the input itself, as timm.
    """

    def __init__(self, drop_prob=0.1, block_size=7, gamma_scale=1.0, with_noise=False, inplace=False,
                 batchwise=False, fast=True, *, seed=None):
        super().__init__()
        self.drop_prob = _validate.rate(drop_prob, "drop_prob")
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        self.block_size = block_size
        self.gamma_scale = blocks.check_gamma_scale(gamma_scale)
        if _validate.flag(with_noise, "with_noise"):
            raise ValueError("with_noise=True (Gaussian noise in the dropped blocks, experimental in timm) is "
                             "not supported by dropkit; use with_noise=False")
        self.with_noise = False
        self.inplace = _validate.flag(inplace, "inplace")
        self.batchwise = _validate.flag(batchwise, "batchwise")
        self.fast = _validate.flag(fast, "fast")
        self.seed = _dt.seed_from(seed)
        self.register_buffer("_position", torch.zeros((), dtype=torch.int64), persistent=False)

    @property
    def position(self) -> int:
        return _dt.from_int64(int(self._position))

    @position.setter
    def position(self, value) -> None:
        self._position.fill_(_dt.to_int64(_validate.uint64(value, "position")))

    def extra_repr(self) -> str:
        return (f"drop_prob={self.drop_prob}, block_size={self.block_size}, gamma_scale={self.gamma_scale}, "
                f"batchwise={self.batchwise}, seed={self.seed}, position={self.position}")

    def forward(self, x):
        """DropBlock of ``x`` in training mode (the next noise-size positions), ``x`` in evaluation."""
        if not self.training or not self.drop_prob:
            return x
        p, g, bw = _check_args(x, self.drop_prob, self.block_size, self.gamma_scale, self.with_noise,
                               self.batchwise, "input")
        n = _noise_numel(x, bw)
        if not torch.compiler.is_compiling():
            if self.position + n >= _TWO64:
                raise ValueError(f"the layer's stream is exhausted: position + noise size must stay below "
                                 f"2**64, got position={self.position} and noise size={n}")
        offset = self._position.clone()
        self._position.add_(n)
        return _apply(x, p, self.block_size, g, bw, _dt.to_int64(self.seed), offset, self.inplace)


# ------------------------------------------------------------------------------------------------
# DropConnect
# ------------------------------------------------------------------------------------------------


class DropConnect(_dt.Dropout):
    """Weight dropout as a ``torch.nn.utils.parametrize`` parametrization (docs/rng.md §18).

    ``forward(W)`` returns dropkit's inverted dropout of ``W`` in training mode (kept weights
    scaled by ``1 / (1 - p)``, a fresh mask from the next ``W.numel()`` positions of the
    parametrization's own stream) and ``W`` itself in evaluation mode. Register it with
    :func:`register_drop_connect` (or ``parametrize.register_parametrization``); the module's
    ``train()``/``eval()`` reach it as a submodule. The gradient reaches the original parameter
    through the mask (regenerated in backward, nothing saved but ``(seed, offset, p)``).

    Parameters
    ----------
    p : float, default 0.5
        Drop probability of a weight, in [0, 1].
    seed : None, int or torch.Generator
        As :func:`dropkit.torch.seed_from`.

    Notes
    -----
    Every access of the parametrized attribute in training mode draws a new mask (and advances
    ``position``). A module that reads its weight several times per forward (``nn.LSTM`` does)
    draws several; wrap the forward in ``torch.nn.utils.parametrize.cached()`` to draw one mask
    per step. The ``state_dict`` holds ``parametrizations.<name>.original`` (the unmasked
    weight), as every parametrization; seed and position are not in it.
    """

    def __init__(self, p=0.5, *, seed=None):
        super().__init__(p, inplace=False, seed=seed)


def register_drop_connect(module, name="weight", p=0.5, *, seed=None):
    """Apply DropConnect to parameter ``name`` of ``module`` (a :class:`DropConnect` parametrization).

    Parameters
    ----------
    module : torch.nn.Module
        Any module, e.g. ``nn.Linear`` (``"weight"``) or ``nn.LSTM`` (``"weight_hh_l0"``).
    name : str, default "weight"
        The parameter to mask.
    p : float, default 0.5
        Drop probability of a weight.
    seed : None, int or torch.Generator
        Seed of the mask stream.

    Returns
    -------
    torch.nn.Module
        ``module`` (parametrized in place). Its parametrization is
        ``module.parametrizations[name][0]``; its ``position`` starts at 0 (the check that
        ``register_parametrization`` runs does not consume positions).

    Raises
    ------
    ValueError, TypeError
        A bad ``p`` or ``seed``; ``name`` not a parameter or buffer of ``module``.
    """
    dc = DropConnect(p, seed=seed)
    if not hasattr(module, name):
        raise ValueError(f"module {type(module).__name__} has no parameter named {name!r}")
    parametrize.register_parametrization(module, name, dc)
    dc.position = 0  # the registration evaluated the parametrization once
    return module
