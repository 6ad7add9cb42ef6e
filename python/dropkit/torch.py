"""dropkit.torch: dropkit's dropout for PyTorch CPU tensors (``pip install "dropkit[torch]"``).

The same stream as :func:`dropkit.dropout` (docs/rng.md): the mask of a tensor is a pure function
of ``(seed, offset + flat C-order index, p)``, so ``dropkit.torch.dropout(t, p, seed=s, offset=o)``
has exactly the bits of ``dropkit.dropout(t.numpy(), p, seed=s, offset=o)``. Backward saves no
tensor: only the three numbers ``(seed, offset, p)``, from which it regenerates the mask.

Contents
--------
- :func:`dropout`: functional, over an opaque custom operator ``torch.ops.dropkit.dropout_apply``
  (``torch.library.custom_op``) whose registered autograd formula (run by PyTorch as a
  ``torch.autograd.Function``) saves ``(seed, offset, p)`` and no tensor; an in-place twin
  ``dropout_apply_`` serves ``inplace=True`` without autograd. It works in eager mode, under
  ``torch.autograd.gradcheck`` and inside ``torch.compile(fullgraph=True)``.
- :class:`Dropout`: a ``torch.nn.Dropout`` drop-in (a subclass) with a seed and a position counter.

Not here yet (they need dropkit's variants engine: broadcast noise, affine fill, continuous
noise): ``Dropout1d/2d/3d``, ``AlphaDropout``, ``FeatureAlphaDropout``, ``GaussianDropout``.

Data path and copies
--------------------
CPU tensors of dtype float16, float32 and float64 go to the C++ core without a copy: the core
reads ``t.numpy()`` (a NumPy view of the tensor's memory) and writes into the output tensor's
memory through another view. Two cases copy, by necessity:

- a non-contiguous tensor is first made contiguous (``t.contiguous()``, one copy) because the core
  walks C-order memory; the result is contiguous;
- bfloat16 (NumPy has no bfloat16) is widened to a float32 copy, dropped out in float32 and rounded
  back to bfloat16 (round to nearest even): the rule docs/rng.md §5 gives float16, with the same
  keep bits. Two temporaries of the tensor's size in float32.

Tensors on any other device (CUDA, meta, ...) raise ``ValueError``, never a silent copy to the CPU.

Seeds
-----
``seed=None`` draws 64 bits from PyTorch's default generator (so ``torch.manual_seed`` makes runs
reproducible, as with ``torch.nn.functional.dropout``); an int in [0, 2**64) is used as is; a
``torch.Generator`` gives 64 bits (two 32-bit draws, low word first).

Threads
-------
The core uses :func:`dropkit.get_num_threads` OpenMP threads, independent of
``torch.get_num_threads()``; the bits never depend on either.
"""
from __future__ import annotations

try:
    import torch  # the real PyTorch (absolute import), not this module
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("dropkit.torch needs PyTorch: pip install 'dropkit[torch]'") from e

from . import _api, _validate

__all__ = ["Dropout", "dropout", "seed_from"]

_TWO32 = 1 << 32
_TWO63 = 1 << 63
_TWO64 = 1 << 64

#: dtypes the core reads in place; bfloat16 goes through float32 (a documented copy).
_DIRECT = (torch.float16, torch.float32, torch.float64)
_DTYPES = _DIRECT + (torch.bfloat16,)


# ------------------------------------------------------------------------------------------------
# Seeds
# ------------------------------------------------------------------------------------------------


def seed_from(seed=None) -> int:
    """A 64-bit dropkit seed from None, an int or a ``torch.Generator``.

    Parameters
    ----------
    seed : None, int or torch.Generator
        None: 64 bits from PyTorch's default CPU generator (``torch.manual_seed`` reproduces it).
        int: used as is, must be in [0, 2**64). Generator: two 32-bit draws ``lo, hi`` from it,
        giving ``lo + hi * 2**32`` (the generator advances).

    Returns
    -------
    int
        In [0, 2**64).

    Raises
    ------
    TypeError
        Anything else (bool, float, a numpy Generator, ...).
    ValueError
        An int outside [0, 2**64).
    """
    if seed is None or isinstance(seed, torch.Generator):
        lo, hi = torch.randint(0, _TWO32, (2,), dtype=torch.int64, generator=seed).tolist()
        return lo + (hi << 32)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be None, an integer in [0, 2**64) or a torch.Generator, got {seed!r}")
    return _validate.uint64(seed, "seed")


def _signed(v: int) -> int:
    """[0, 2**64) -> int64 (two's complement), as the operator schema's ``int`` holds."""
    return v - _TWO64 if v >= _TWO63 else v


def _unsigned(v: int) -> int:
    return v + _TWO64 if v < 0 else v


# ------------------------------------------------------------------------------------------------
# The operators: opaque to torch.compile, CPU only
# ------------------------------------------------------------------------------------------------


def _run(src: torch.Tensor, dst: torch.Tensor, p: float, seed: int, offset: torch.Tensor) -> None:
    """``dst = keep ? src / (1 - p) : +0`` on contiguous CPU tensors of one dtype, through the core."""
    o = _unsigned(int(offset))  # validated again by the core call (offset + numel <= 2**64)
    if src.dtype == torch.bfloat16:  # NumPy has no bfloat16: float32 round trip (documented copy)
        tmp = src.detach().float()
        _api.dropout_backward(tmp.numpy(), p, seed=_unsigned(seed), offset=o, out=tmp.numpy())
        dst.copy_(tmp)
        return
    # Training forward and backward are one kernel: keep ? v * s : +0 with the same (seed, offset, p).
    _api.dropout_backward(src.detach().numpy(), p, seed=_unsigned(seed), offset=o, out=dst.detach().numpy())


# ``offset`` is a 0-d int64 tensor (the bit pattern of a position in [0, 2**64)) rather than an int:
# a layer's position counter then lives in a buffer that a compiled graph advances in place, instead
# of a Python int that torch.compile would specialise on, recompiling at every step.


@torch.library.custom_op("dropkit::dropout_apply", mutates_args=(), device_types="cpu")
def _dropout_apply(x: torch.Tensor, p: float, seed: int, offset: torch.Tensor) -> torch.Tensor:
    """``keep ? x / (1 - p) : +0`` for a contiguous CPU tensor; seed (int) and offset (0-d int64
    tensor) hold the two's-complement bit patterns of values in [0, 2**64)."""
    y = torch.empty_like(x, memory_format=torch.contiguous_format)
    _run(x, y, p, seed, offset)
    return y


@_dropout_apply.register_fake
def _(x, p, seed, offset):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("dropkit::dropout_apply_", mutates_args=("x",), device_types="cpu")
def _dropout_apply_(x: torch.Tensor, p: float, seed: int, offset: torch.Tensor) -> None:
    """In-place :func:`_dropout_apply` on a contiguous CPU tensor."""
    _run(x, x, p, seed, offset)


@_dropout_apply_.register_fake
def _(x, p, seed, offset):
    return None


def _setup_context(ctx, inputs, output):
    # Only (seed, offset, p): the offset as its 0-d int64 tensor (8 bytes), never a mask.
    _, ctx.p, ctx.seed, offset = inputs
    ctx.save_for_backward(offset)


def _backward(ctx, grad):
    (offset,) = ctx.saved_tensors
    return torch.ops.dropkit.dropout_apply(grad.contiguous(), ctx.p, ctx.seed, offset), None, None, None


# The autograd formula of the operator (PyTorch wraps it in a torch.autograd.Function): backward is
# the forward kernel applied to the gradient with the same (seed, offset, p). It is registered on
# the operator rather than written as a torch.autograd.Function subclass because torch.compile then
# sees one opaque node with a known derivative (and Dynamo in torch 2.13 warns, DeprecationWarning,
# whenever it traces a user autograd.Function).
_dropout_apply.register_autograd(_backward, setup_context=_setup_context)


def _apply(t: torch.Tensor, p: float, seed: int, offset: torch.Tensor, inplace: bool) -> torch.Tensor:
    """Training-mode dropout through the operators (arguments already validated)."""
    if not inplace:
        return torch.ops.dropkit.dropout_apply(t.contiguous(), p, seed, offset)
    if t.is_contiguous() and not (t.requires_grad and torch.is_grad_enabled()):
        torch.ops.dropkit.dropout_apply_(t, p, seed, offset)  # truly in place
    else:  # autograd records copy_ (a leaf that requires grad raises, as in PyTorch)
        t.copy_(torch.ops.dropkit.dropout_apply(t.contiguous(), p, seed, offset))
    return t


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------


def _check_tensor(t, name: str = "t") -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} must be a CPU tensor (dropkit.torch runs on the CPU only), got a tensor "
                         f"on device {str(t.device)!r}; move it with .cpu() if a copy is intended")
    if t.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")
    if t.dtype not in _DTYPES:
        raise TypeError(f"{name} must have dtype float16, bfloat16, float32 or float64, got {t.dtype}")


def dropout(t, p=0.5, training=True, *, seed=None, offset=0, inplace=False):
    """Dropout of a CPU tensor with dropkit's counter-based stream; ``torch.nn.functional.dropout``'s
    arguments plus ``seed`` and ``offset``.

    Parameters
    ----------
    t : torch.Tensor
        CPU, dtype float16, bfloat16, float32 or float64, any shape and strides.
    p : float, default 0.5
        Drop probability in [0, 1].
    training : bool, default True
        False returns ``t`` itself (inverted dropout needs no scaling at evaluation).
    seed : None, int or torch.Generator
        See :func:`seed_from`. None draws from PyTorch's default generator (under
        ``torch.compile`` that is a graph break: pass an int, or use :class:`Dropout`).
    offset : int, default 0
        Stream position of the first element (flat C order); ``offset + t.numel()`` must not
        exceed 2**64.
    inplace : bool, default False
        Write the result into ``t`` (as ``torch.nn.functional.dropout(..., inplace=True)``).

    Returns
    -------
    torch.Tensor
        ``keep ? t / (1 - p) : +0.0``, same shape and dtype, contiguous (or ``t`` itself when
        ``inplace`` or when the call is the identity: ``training=False`` or ``p == 0``, as PyTorch
        does). Bit for bit ``dropkit.dropout(t.numpy(), p, seed=seed, offset=offset)``.

    Raises
    ------
    ValueError
        p outside [0, 1]; seed or offset outside [0, 2**64); offset + numel > 2**64; a tensor
        on another device than the CPU.
    TypeError
        Not a tensor, not a float dtype listed above, a sparse tensor, a seed of another type.

    Notes
    -----
    Backward saves no tensor, only ``(seed, offset, p)``, and regenerates the mask: the gradient is
    ``grad * keep / (1 - p)``. A non-contiguous ``t`` is copied to a contiguous one first.

    Examples
    --------
    >>> import numpy as np, torch, dropkit, dropkit.torch
    >>> t = torch.ones(6, dtype=torch.float64)
    >>> y = dropkit.torch.dropout(t, 0.5, seed=7)
    >>> np.array_equal(y.numpy(), dropkit.dropout(t.numpy(), 0.5, seed=7))
    True
    """
    _check_tensor(t)
    r = _validate.rate(p, "p")
    if isinstance(seed, torch.Generator) or seed is None:
        s = seed_from(seed)
    else:
        s = _validate.uint64(seed, "seed")
    o = _validate.uint64(offset, "offset")
    _validate.span(o, t.numel())
    if not training or r == 0.0:
        return t
    return _apply(t, r, _signed(s), torch.tensor(_signed(o), dtype=torch.int64), bool(inplace))


class Dropout(torch.nn.Dropout):
    """``torch.nn.Dropout`` on dropkit's stream: reproducible from a seed, no mask saved for backward.

    A subclass of ``torch.nn.Dropout`` (so ``isinstance(m, torch.nn.Dropout)`` holds), with its
    arguments and behaviour: ``train()``/``eval()``, ``inplace=``, evaluation is the identity.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability in [0, 1].
    inplace : bool, default False
        Overwrite the input, as ``torch.nn.Dropout(inplace=True)``.
    seed : None, int or torch.Generator
        See :func:`seed_from`: None draws from PyTorch's default generator at construction, so
        ``torch.manual_seed`` before building the model reproduces every mask.

    Attributes
    ----------
    seed : int
        The 64-bit seed in use.
    position : int
        Stream position of the next training-mode forward. Each training forward uses
        ``offset = position`` and then advances it by ``input.numel()`` (docs/rng.md §7);
        evaluation does not advance it. Set it to replay a step. The counter is a 64-bit integer
        that must not wrap: in eager mode a forward with ``position + numel >= 2**64`` raises
        ``ValueError`` (the last position, ``2**64 - 1``, is never used by a layer). Neither attribute is in the
        ``state_dict`` (which stays the one of ``torch.nn.Dropout``).

    Notes
    -----
    Works under ``torch.compile(fullgraph=True)`` without recompiling per step: the counter lives
    in a non-persistent 0-d int64 buffer that the graph advances in place.
    """

    def __init__(self, p=0.5, inplace=False, seed=None):
        super().__init__(_validate.rate(p, "p"), inplace)
        self.seed = seed_from(seed)
        # The counter as a 0-d int64 buffer (bit pattern of a position in [0, 2**64)), kept out of
        # the state_dict: a compiled graph advances it in place without recompiling.
        self.register_buffer("_position", torch.zeros((), dtype=torch.int64), persistent=False)

    @property
    def position(self) -> int:
        return _unsigned(int(self._position))

    @position.setter
    def position(self, value) -> None:
        self._position.fill_(_signed(_validate.uint64(value, "position")))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, seed={self.seed}, position={self.position}"

    def forward(self, input):  # noqa: A002 (PyTorch's argument name)
        """Dropout of ``input`` in training mode, the identity in evaluation mode.

        Parameters
        ----------
        input : torch.Tensor
            CPU float16, bfloat16, float32 or float64.

        Returns
        -------
        torch.Tensor
            In training, the mask of positions ``position .. position + numel - 1`` of the
            layer's stream; ``position`` then advances by ``numel``.

        Raises
        ------
        ValueError, TypeError
            As :func:`dropout`; ``position + numel >= 2**64`` (see ``position``).
        """
        _check_tensor(input, "input")
        if not self.training:
            return input
        p = _validate.rate(self.p, "p")
        if not torch.compiler.is_compiling():  # a compiled graph cannot read the counter's value
            position, n = self.position, input.numel()
            if position + n >= _TWO64:  # the int64 counter would wrap to 0 and reuse the stream
                raise ValueError(f"the layer's stream is exhausted: position + numel must stay below "
                                 f"2**64, got position={position} and numel={n}")
        offset = self._position.clone()  # the backward keeps this one; the buffer moves on
        self._position.add_(input.numel())
        if p == 0.0:
            return input
        return _apply(input, p, _signed(self.seed), offset, bool(self.inplace))


# TODO(variants engine, issue 7): Dropout1d, Dropout2d, Dropout3d, FeatureAlphaDropout (broadcast
# noise: a position map with stride 0 along the spatial axes), AlphaDropout (affine fill) and
# GaussianDropout (continuous noise) are deliberately absent: they will be thin subclasses of
# Dropout calling the variant's core entry through one more custom op each, once dropkit has them.
