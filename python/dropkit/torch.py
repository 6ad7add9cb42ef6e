"""dropkit.torch: dropkit's dropout and its variants for PyTorch CPU tensors (``pip install "dropkit[torch]"``).

The same stream as the NumPy API (docs/rng.md): the noise of a tensor is a pure function of
``(seed, positions, p)``, so ``dropkit.torch.dropout(t, p, seed=s, offset=o)`` has exactly the
bits of ``dropkit.dropout(t.numpy(), p, seed=s, offset=o)``, and every variant here the bits of its
NumPy twin (table below). Backward saves no tensor: only the numbers ``(seed, offset, p)``, from
which it regenerates the noise.

Contents
--------
============================ ================================ ======================================
here (function / nn.Module)  PyTorch counterpart              the same bits as (NumPy API)
============================ ================================ ======================================
``dropout`` / ``Dropout``    ``F.dropout`` / ``nn.Dropout``   ``dropkit.dropout``
``dropout1d`` / ``Dropout1d`` ``nn.Dropout1d``: (N, C, L),    ``dropkit.dropout_nd`` with
                             (C, L)                           ``noise_shape = (N, C, 1)`` / ``(C, 1)``
``dropout2d`` / ``Dropout2d`` ``nn.Dropout2d``: (N, C, H, W), ``noise_shape = (N, C, 1, 1)`` /
                             (C, H, W)                        ``(C, 1, 1)``
``dropout3d`` / ``Dropout3d`` ``nn.Dropout3d``: (N, C, D, H, W), ``(N, C, 1, 1, 1)`` / ``(C, 1, 1, 1)``
                             (C, D, H, W)
``alpha_dropout`` /          ``F.alpha_dropout`` /            ``dropkit.alpha_dropout``
``AlphaDropout``             ``nn.AlphaDropout``
``feature_alpha_dropout`` /  ``nn.FeatureAlphaDropout``:      ``dropkit.feature_alpha_dropout``
``FeatureAlphaDropout``      noise (N, C, 1, ...)             (noise ``(N, C, 1, ..., 1)``)
``gaussian_dropout`` /       none (Keras ``GaussianDropout``) ``dropkit.gaussian_dropout``
``GaussianDropout``
============================ ================================ ======================================

Eager mode runs a ``torch.autograd.Function`` around dropkit's compiled core (on NumPy views of
the tensors), whose backward and forward-mode derivative regenerate the noise from ``(seed,
offset, p)``, kept as Python numbers: nothing is saved for backward. ``torch.func`` (``grad``,
``jvp``, ``jacrev``, ``jacfwd``, ``vmap`` with PyTorch's ``randomness`` modes) works through the
same function's ``setup_context``, ``jvp`` and ``vmap`` rules. Compiled graphs (``torch.compile``,
``torch.export``) and ``torch.jit.trace`` use opaque custom operators instead
(``torch.library.custom_op``): ``torch.ops.dropkit.dropout_apply``, ``variant_apply`` (a ``kind``
string and a number of noise axes), ``seeded_apply`` (``seed=None``: a seed drawn in the graph)
and in-place twins, whose registered autograd formulas save one 0-d int64 tensor (8 bytes).
``torch.jit.script`` raises ``TypeError`` (use one of the three above).

Data path and copies
--------------------
CPU tensors of dtype float16, float32 and float64 go to the C++ core without a copy: the core
reads ``t.numpy()`` (a NumPy view of the tensor's memory) and writes into the output tensor's
memory through another view. A dense tensor in any memory format (``channels_last``, transposed)
is walked in memory order with the positions of its logical C order: the output keeps the input's
strides and has the same bits as for a contiguous copy. Two cases copy, by necessity:

- a tensor with overlapping or missing elements (a stride-0 gradient, a sliced view) is copied
  once into the result's buffer (``t.contiguous()``), which the core then overwrites in place;
- bfloat16 (NumPy has no bfloat16) is widened to a float32 copy, computed in float32 and rounded
  back to bfloat16 (round to nearest even): the rule docs/rng.md §5 gives float16, with the same
  noise.

Tensors on any other device (CUDA, meta, ...) raise ``ValueError``, never a silent copy to the CPU.

Seeds
-----
``seed=None`` (the default) follows PyTorch's global generator at every call, as
``torch.nn.Dropout`` does: each call draws a fresh 64-bit seed
(``torch.randint(-2**63, 2**63 - 1, ())``, its bit pattern), so ``torch.manual_seed`` before a step
reproduces it, and modules draw nothing at construction. An int in [0, 2**64) (or a
``torch.Generator``, two 32-bit draws at construction, low word first) selects dropkit's
counter-based stream: modules then advance a position counter, saved in the ``state_dict``, and
``copy.deepcopy`` gives copy ``k`` the seed :func:`derive_seed` ``(seed, k)``.

Threads
-------
The core uses :func:`dropkit.get_num_threads` threads of its own pool, independent of
``torch.get_num_threads()``; the bits never depend on either.
"""
from __future__ import annotations

import copy
import math
import threading

try:
    import torch  # the real PyTorch (absolute import), not this module
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("dropkit.torch needs PyTorch: pip install 'dropkit[torch]'") from e

import torch.autograd.forward_ad as _fwad

from . import _api, _core, _params, _runtime, _validate

__all__ = [
    "AlphaDropout",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "alpha_dropout",
    "derive_seed",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "feature_alpha_dropout",
    "gaussian_dropout",
    "seed_from",
]

_TWO32 = 1 << 32
_TWO63 = 1 << 63
_TWO64 = 1 << 64
_MASK64 = _TWO64 - 1

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

    Notes
    -----
    The functions and modules here do not call this with None: ``seed=None`` there draws a fresh
    seed at every call (:func:`dropout`).
    """
    if seed is None or isinstance(seed, torch.Generator):
        lo, hi = torch.randint(0, _TWO32, (2,), dtype=torch.int64, generator=seed).tolist()
        return lo + (hi << 32)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be None, an integer in [0, 2**64) or a torch.Generator, got {seed!r}")
    return _validate.uint64(seed, "seed")


_LOCAL = threading.local()


_LO, _HI = -_TWO63, _TWO63 - 1  # the int64 range drawn (the bit pattern of a 64-bit seed)


def _draw_seed() -> int:
    """The per-call seed of ``seed=None``: ``torch.randint(-2**63, 2**63 - 1, ())`` from PyTorch's
    default generator, as a bit pattern in [0, 2**64). (Eager mode draws it in place into one
    reusable tensor per thread, the same draw; a compiled graph calls torch.randint.)"""
    c = getattr(_LOCAL, "c", None)
    if c is None:
        with torch.inference_mode(False):  # a normal tensor, updatable in and out of inference mode
            t = torch.empty((), dtype=torch.int64)
        c = _LOCAL.c = (t, t.numpy())
    c[0].random_(_LO, _HI)
    return from_int64(int(c[1]))


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def derive_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th deep copy of a module seeded with ``seed``.

    ``splitmix64(splitmix64(seed) ^ (index + 1))`` (Steele, Lea and Flood's SplitMix64 finalizer,
    twice): a fixed function, so rebuilding a model (for example ``nn.TransformerEncoder``, which
    deep-copies its layer ``num_layers`` times) gives its copies the same seeds again.

    Parameters
    ----------
    seed : int
        In [0, 2**64).
    index : int
        0 for the first copy made of a module, 1 for the second, ...

    Returns
    -------
    int
        In [0, 2**64).
    """
    return _splitmix64(_splitmix64(_validate.uint64(seed, "seed")) ^ (_validate.uint64(index, "index") + 1))


# Helpers that dropkit.torch_blocks shares (not in __all__).


def to_int64(v: int) -> int:
    """[0, 2**64) -> int64 (two's complement), as the operator schema's ``int`` holds."""
    return v - _TWO64 if v >= _TWO63 else v


def from_int64(v: int) -> int:
    """int64 (two's complement) -> [0, 2**64): the inverse of :func:`to_int64`."""
    return v + _TWO64 if v < 0 else v


# ------------------------------------------------------------------------------------------------
# The kernels: dropkit's compiled core on NumPy views of the tensors' memory
# ------------------------------------------------------------------------------------------------

#: kind -> the kind of its backward (and of its forward-mode derivative): each kind is linear in
#: x except alpha, whose derivative is ``a`` where kept and 0 where dropped ("alpha_backward").
_BACKWARD = {"dropout": "dropout", "alpha": "alpha_backward", "alpha_backward": "alpha_backward",
             "gaussian": "gaussian"}
#: kinds that draw noise (a vmap in randomness="error" mode refuses them, as PyTorch's dropout).
_RANDOM = frozenset(("dropout", "alpha", "gaussian"))

_CONSTS: dict = {}


def _consts(kind: str, p: float):
    """(flat kernel or None, nd kernel, the constants before seed) of ``kind`` at rate ``p``, once."""
    c = _CONSTS.get((kind, p))
    if c is None:
        t = _api.threshold(p)
        if kind == "dropout":
            args = (t, 0.0 if p == 1.0 else 1.0 / (1.0 - p))
            c = (_core.bernoulli_apply, _core.bernoulli_apply_nd, args)
        elif kind == "alpha_backward":
            c = (_core.bernoulli_apply, _core.bernoulli_apply_nd, (t, _params.alpha_constants(p)[0]))
        elif kind == "alpha":
            c = (None, _core.alpha_apply, (t,) + tuple(_params.alpha_constants(p)))
        elif kind == "gaussian":
            c = (None, _core.gaussian_apply, (_params.gaussian_sigma(p),))
        else:  # pragma: no cover - internal
            raise ValueError(f"unknown kind {kind!r}")
        _CONSTS[(kind, p)] = c
    return c


def _noise_pstrides(shape, pos):
    """Position strides (docs/rng.md §8.1) of an input of ``shape``: ``pos`` is -1 (noise of the
    input's shape), ``k >= 0`` (noise of the first ``k`` axes, then ones) or a tuple of strides."""
    if isinstance(pos, tuple):
        return pos
    ps = _PSTRIDES.get((shape, pos))
    if ps is not None:
        return ps
    if len(_PSTRIDES) > 256:
        _PSTRIDES.clear()
    ps = _PSTRIDES[(shape, pos)] = _c_pstrides(shape, pos)
    return ps


_PSTRIDES: dict = {}


def _c_pstrides(shape, pos):
    k = len(shape) if pos < 0 else pos
    ps, acc = [0] * len(shape), 1
    for d in range(k - 1, -1, -1):
        ps[d] = acc if shape[d] != 1 else 0
        acc *= shape[d]
    return tuple(ps)


def _noise_numel(shape, pos) -> int:
    """Positions one call uses: prod(noise shape) (docs/rng.md §8.1, §8.3)."""
    if isinstance(pos, tuple):
        return 1 + sum((n - 1) * s for n, s in zip(shape, pos)) if 0 not in shape else 0
    return math.prod(shape if pos < 0 else shape[:pos])


def _np(t: torch.Tensor):
    """A NumPy view of a CPU tensor's memory (``force=True``: also when it requires grad; the
    dtypes here have no conjugate or negative bit, so this never copies)."""
    return t.numpy(force=True)


def _kernel(kind: str, p: float, seed: int, offset: int, src: torch.Tensor, dst: torch.Tensor, pos) -> None:
    """``dst = kind(src)`` for C-contiguous tensors of one dtype and shape (``dst`` may be ``src``)."""
    flat, nd, args = _CONSTS.get((kind, p)) or _consts(kind, p)
    if pos == -1:
        if flat is not None:  # (the flat kernels take any C-contiguous array)
            flat(_np(src), _np(dst), *args, seed, offset, _runtime.current_threads, _runtime.current_simd)
        else:
            nd(_np(src).reshape(-1), _np(dst).reshape(-1), *args, seed, offset, (1,), _runtime.current_threads,
               _runtime.current_simd)
    else:
        nd(_np(src), _np(dst), *args, seed, offset, _noise_pstrides(src.shape, pos),  # (a Size is a tuple)
           _runtime.current_threads, _runtime.current_simd)


def _compute(x: torch.Tensor, kind: str, p: float, seed: int, offset: int, pos, inplace: bool = False):
    """``kind(x)`` with the noise at positions ``offset + pos(i)``: a new tensor with x's strides
    when x is dense (contiguous, channels_last or any permutation), else a contiguous one; with
    ``inplace`` the result is written into x and x returned. No autograd here."""
    if x.is_contiguous() and x.dtype is not torch.bfloat16:  # the common case first
        y = x if inplace else torch.empty_like(x)  # (x's strides: contiguous)
        if x.numel():
            _kernel(kind, p, seed, offset, x, y, pos)
        return y
    if x.numel() == 0:
        return x if inplace else torch.empty_like(x)
    if x.dtype == torch.bfloat16:  # NumPy has no bfloat16: through float32 (a documented copy)
        y = _compute(x.float(), kind, p, seed, offset, pos, True).to(torch.bfloat16)
        return x.copy_(y) if inplace else y
    if 0 not in x.stride():
        y = x if inplace else torch.empty_like(x)  # x's strides when x is dense and non-overlapping
        if y.stride() == x.stride():
            order = sorted(range(x.dim()), key=lambda d: -x.stride(d))
            xs, ys = x.permute(order), y.permute(order)
            if xs.is_contiguous():  # memory order: the positions follow the logical (C) order
                ps = _noise_pstrides(tuple(x.shape), pos)
                _kernel(kind, p, seed, offset, xs, ys, tuple(ps[d] for d in order))
                return y
    # Overlapping (a stride-0 gradient of .sum()) or with gaps (sliced): one copy into the result's
    # buffer, then in place there.
    tmp = x.contiguous()
    flat, nd, args = _CONSTS.get((kind, p)) or _consts(kind, p)
    if pos == -1 and flat is not None:
        a = tmp.numpy()
        flat(a, a, *args, seed, offset, _runtime.current_threads, _runtime.current_simd)
    else:
        _kernel(kind, p, seed, offset, tmp, tmp, pos)
    return x.copy_(tmp) if inplace else tmp


# ------------------------------------------------------------------------------------------------
# Autograd: a light torch.autograd.Function in eager mode, custom operators in compiled graphs
# ------------------------------------------------------------------------------------------------


def _linear(t: torch.Tensor, kind: str, p: float, seed: int, offset: int, pos, follow):
    """The backward / tangent of ``kind``: ``_BACKWARD[kind]`` applied to ``t`` (differentiable
    when needed: double backward, forward-over-reverse, functorch)."""
    if torch._C._are_functorch_transforms_active():
        return _NoiseF.apply(t, kind, p, seed, offset, pos, follow)
    if (t.requires_grad and torch.is_grad_enabled()) or _fwad._current_level >= 0:
        return _noise_apply(t, (kind, p, seed, offset, pos))
    return _compute(t, kind, p, seed, offset, pos)


class _Noise(torch.autograd.Function):
    """Eager autograd: keeps ``spec = (kind, p, seed, offset, pos)``, Python numbers, no tensor."""

    @staticmethod
    def forward(ctx, x, spec):
        kind, p, seed, offset, pos = spec
        ctx.k = k = (_BACKWARD[kind], p, seed, offset, pos, None)
        ctx.b = k[:5]
        return _compute(x, kind, p, seed, offset, pos)

    @staticmethod
    def backward(ctx, grad):
        if grad.requires_grad and torch.is_grad_enabled():  # double backward: differentiable
            return _linear(grad, *ctx.k), None
        return _compute(grad, *ctx.b), None

    @staticmethod
    def jvp(ctx, tangent, _):
        return _linear(tangent, *ctx.k)


# torch.autograd.Function.apply without its Python wrapper (which binds default arguments and
# unwraps dead functorch wrappers, ~1 us): used when no functorch transform is active and the
# input is a plain tensor, where that wrapper does nothing.
_noise_apply_c = super(torch.autograd.Function, _Noise).apply


def _noise_apply(x: torch.Tensor, spec):
    if torch._C._functorch.is_functorch_wrapped_tensor(x):
        return _Noise.apply(x, spec)
    return _noise_apply_c(x, spec)


def _vmapped(x: torch.Tensor) -> bool:
    """Whether a functorch tensor is batched by a vmap at some level under its wrappers."""
    ft = torch._C._functorch
    while ft.is_functorch_wrapped_tensor(x):
        if ft.is_batchedtensor(x):
            return True
        x = ft.get_unwrapped(x)
    return False


def _batch_factor(x: torch.Tensor) -> int:
    """The product of the sizes of the vmap batch dimensions wrapping a functorch tensor."""
    ft, f = torch._C._functorch, 1
    while ft.is_functorch_wrapped_tensor(x):
        inner = ft.get_unwrapped(x)
        if ft.is_batchedtensor(x):
            f *= inner.shape[ft.maybe_get_bdim(x)]
        x = inner
    return f


class _NoiseF(torch.autograd.Function):
    """The same for torch.func (grad, jvp, vmap), which needs ``setup_context`` and a vmap rule.

    ``follow`` (a linear kind's): None when the forward's input was batched by an enclosing vmap,
    so the noise follows that vmap's ``randomness``; "same" when it was not (``jacrev`` and
    ``jacfwd`` vmap the backward of one unbatched forward: one noise for every batch element).
    """

    @staticmethod
    def forward(x, kind, p, seed, offset, pos, follow):
        return _compute(x, kind, p, seed, offset, pos)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, kind, p, seed, offset, pos, follow = inputs
        batched = _vmapped(x)
        ctx.k = (_BACKWARD[kind], p, seed, offset, pos, follow if batched else "same")

    @staticmethod
    def backward(ctx, grad):
        return _linear(grad, *ctx.k), None, None, None, None, None, None

    @staticmethod
    def jvp(ctx, tangent, *_):
        return _linear(tangent, *ctx.k)

    @staticmethod
    def vmap(info, in_dims, x, kind, p, seed, offset, pos, follow):
        mode = follow or info.randomness
        if kind in _RANDOM and mode == "error":
            raise RuntimeError(
                f"vmap: dropkit.torch's {kind} noise is a random operation and vmap runs in "
                f"randomness='error' mode (its default, as for PyTorch's own dropout): pass "
                f"randomness='different' (independent noise per batch element) or 'same' (one "
                f"noise for all) to torch.func.vmap, or apply the dropout outside vmap")
        if mode not in ("same", "different"):  # a linear kind under randomness='error'
            mode = "same"
        bdim = in_dims[0]
        if bdim is None:
            if mode == "same":
                return _NoiseF.apply(x, kind, p, seed, offset, pos, follow), None
            x, bdim = x.expand(info.batch_size, *x.shape), 0
        xb = x.movedim(bdim, 0)
        sample = tuple(xb.shape[1:])
        ps = _noise_pstrides(sample, pos)
        lead = _noise_numel(sample, ps) if mode == "different" else 0
        return _NoiseF.apply(xb, kind, p, seed, offset, (lead,) + ps, follow), 0


# The operators of compiled graphs (torch.compile, torch.export) and of torch.jit.trace: opaque
# custom operators with a fake kernel and a registered autograd formula. ``offset`` is a 0-d int64
# tensor (the bit pattern of a position in [0, 2**64)): a layer's counter then lives in a buffer
# that a compiled graph advances in place, instead of a Python int that torch.compile would
# specialise on, recompiling at every step. ``seeded_apply`` takes the seed as such a tensor
# instead (``seed=None``: a seed drawn in the graph), with offset 0.

def _op_run(x: torch.Tensor, kind: str, p: float, seed: int, offset: int, axes: int, inplace: bool):
    return _compute(x, kind, p, from_int64(seed), from_int64(offset), axes, inplace)


@torch.library.custom_op("dropkit::dropout_apply", mutates_args=(), device_types="cpu")
def _dropout_apply(x: torch.Tensor, p: float, seed: int, offset: torch.Tensor) -> torch.Tensor:
    """``keep ? x / (1 - p) : +0`` for a contiguous CPU tensor; seed (int) and offset (0-d int64
    tensor) hold the two's-complement bit patterns of values in [0, 2**64)."""
    return _op_run(x.contiguous(), "dropout", p, seed, int(offset), -1, False)


@_dropout_apply.register_fake
def _(x, p, seed, offset):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("dropkit::dropout_apply_", mutates_args=("x",), device_types="cpu")
def _dropout_apply_(x: torch.Tensor, p: float, seed: int, offset: torch.Tensor) -> None:
    """In-place :func:`_dropout_apply` on a contiguous CPU tensor."""
    _op_run(x, "dropout", p, seed, int(offset), -1, True)


@_dropout_apply_.register_fake
def _(x, p, seed, offset):
    return None


@torch.library.custom_op("dropkit::variant_apply", mutates_args=(), device_types="cpu")
def _variant_apply(x: torch.Tensor, kind: str, p: float, seed: int, offset: torch.Tensor,
                   axes: int) -> torch.Tensor:
    """A variant (``kind`` of :data:`_BACKWARD`) of a contiguous CPU tensor whose noise has the
    shape of x's first ``axes`` axes followed by ones (all of x's axes when ``axes`` is -1)."""
    return _op_run(x.contiguous(), kind, p, seed, int(offset), axes, False)


@_variant_apply.register_fake
def _(x, kind, p, seed, offset, axes):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("dropkit::variant_apply_", mutates_args=("x",), device_types="cpu")
def _variant_apply_(x: torch.Tensor, kind: str, p: float, seed: int, offset: torch.Tensor,
                    axes: int) -> None:
    """In-place :func:`_variant_apply` on a contiguous CPU tensor."""
    _op_run(x, kind, p, seed, int(offset), axes, True)


@_variant_apply_.register_fake
def _(x, kind, p, seed, offset, axes):
    return None


@torch.library.custom_op("dropkit::seeded_apply", mutates_args=(), device_types="cpu")
def _seeded_apply(x: torch.Tensor, kind: str, p: float, seed: torch.Tensor, offset: int,
                  axes: int) -> torch.Tensor:
    """:func:`_variant_apply` with the seed a 0-d int64 tensor (``seed=None``: drawn in the graph)
    and the offset an int."""
    return _op_run(x.contiguous(), kind, p, int(seed), offset, axes, False)


@_seeded_apply.register_fake
def _(x, kind, p, seed, offset, axes):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


# The autograd formulas keep only (seed, offset, p) -- the offset (or a drawn seed) as its 0-d
# int64 tensor, 8 bytes -- never a mask, and regenerate the noise.


def _setup_dropout(ctx, inputs, output):
    _, ctx.p, ctx.seed, offset = inputs
    ctx.save_for_backward(offset)


def _backward_dropout(ctx, grad):
    (offset,) = ctx.saved_tensors
    return torch.ops.dropkit.dropout_apply(grad.contiguous(), ctx.p, ctx.seed, offset), None, None, None


def _setup_variant(ctx, inputs, output):
    _, ctx.kind, ctx.p, ctx.seed, offset, ctx.axes = inputs
    ctx.save_for_backward(offset)


def _backward_variant(ctx, grad):
    (offset,) = ctx.saved_tensors
    dx = torch.ops.dropkit.variant_apply(grad.contiguous(), _BACKWARD[ctx.kind], ctx.p, ctx.seed, offset,
                                         ctx.axes)
    return dx, None, None, None, None, None


def _setup_seeded(ctx, inputs, output):
    _, ctx.kind, ctx.p, seed, ctx.offset, ctx.axes = inputs
    ctx.save_for_backward(seed)


def _backward_seeded(ctx, grad):
    (seed,) = ctx.saved_tensors
    dx = torch.ops.dropkit.seeded_apply(grad.contiguous(), _BACKWARD[ctx.kind], ctx.p, seed, ctx.offset,
                                        ctx.axes)
    return dx, None, None, None, None, None


_dropout_apply.register_autograd(_backward_dropout, setup_context=_setup_dropout)
_variant_apply.register_autograd(_backward_variant, setup_context=_setup_variant)
_seeded_apply.register_autograd(_backward_seeded, setup_context=_setup_seeded)


def _graph_apply(t: torch.Tensor, kind: str, p: float, seed, offset, axes: int, inplace: bool):
    """Training mode through the operators (compiled graphs, tracing). ``seed`` is an int in
    [0, 2**64) and ``offset`` a 0-d int64 tensor, or ``seed`` is None: a seed drawn in the graph."""
    ops = torch.ops.dropkit
    if seed is None:
        s = torch.randint(_LO, _HI, (), dtype=torch.int64)  # the draw of _draw_seed, in the graph
        y = ops.seeded_apply(t.contiguous(), kind, p, s, to_int64(offset), axes)
        return t.copy_(y) if inplace else y
    s = to_int64(seed)
    if kind == "dropout" and axes < 0:
        def op(x):
            return ops.dropout_apply(x, p, s, offset)

        def op_(x):
            ops.dropout_apply_(x, p, s, offset)
    else:
        def op(x):
            return ops.variant_apply(x, kind, p, s, offset, axes)

        def op_(x):
            ops.variant_apply_(x, kind, p, s, offset, axes)
    if not inplace:
        return op(t.contiguous())
    if t.is_contiguous() and not (t.requires_grad and torch.is_grad_enabled()):
        op_(t)  # truly in place
    else:  # autograd records copy_ (a leaf that requires grad raises, as in PyTorch)
        t.copy_(op(t.contiguous()))
    return t


def _apply(t: torch.Tensor, kind: str, p: float, seed: int, offset: int, axes: int, inplace: bool):
    """Training mode in eager (arguments validated; ``seed`` and ``offset`` in [0, 2**64))."""
    if torch._C._are_functorch_transforms_active():
        y = _NoiseF.apply(t, kind, p, seed, offset, axes, None)
    elif (t.requires_grad and torch.is_grad_enabled()) or _fwad._current_level >= 0:
        if inplace and t.is_leaf and t.requires_grad and torch.is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        if torch._C._functorch.is_functorch_wrapped_tensor(t):
            y = _Noise.apply(t, (kind, p, seed, offset, axes))
        else:
            y = _noise_apply_c(t, (kind, p, seed, offset, axes))
    else:
        return _compute(t, kind, p, seed, offset, axes, inplace)
    return t.copy_(y) if inplace else y



# ------------------------------------------------------------------------------------------------
# Validation shared by functions and modules
# ------------------------------------------------------------------------------------------------


def check_tensor(t, name: str = "t") -> None:
    """A dense CPU tensor of a supported float dtype; TypeError or ValueError naming ``name`` otherwise."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_cpu:
        raise ValueError(f"{name} must be a CPU tensor (dropkit.torch runs on the CPU only), got a tensor "
                         f"on device {str(t.device)!r}; move it with .cpu() if a copy is intended")
    if t.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")
    if t.dtype not in _DTYPES:
        raise TypeError(f"{name} must have dtype float16, bfloat16, float32 or float64, got {t.dtype}")


def _gaussian_rate(p) -> float:
    return _params.gaussian_rate(p, "p")


def _channel_axes(t: torch.Tensor, spatial: int, name: str) -> int:
    """Noise axes of channel-wise dropout with ``spatial`` spatial axes: 2 for a batched input
    ``(N, C, *spatial)``, 1 for an unbatched ``(C, *spatial)``."""
    d = t.dim()
    if d == spatial + 2:
        return 2
    if d == spatial + 1:
        return 1
    dims = ", ".join("DHW"[3 - spatial:]) if spatial > 1 else "L"
    raise ValueError(f"{name} expects a {spatial + 1}-D (C, {dims}) or {spatial + 2}-D (N, C, {dims}) "
                     f"input, got a {t.dim()}-D input of shape {tuple(t.shape)}")


def _feature_axes(t: torch.Tensor, name: str) -> int:
    if t.dim() < 2:
        raise ValueError(f"{name} needs an input of at least 2 dimensions (N, C, ...), got shape "
                         f"{tuple(t.shape)}")
    return 2


#: name -> (kind, rate check, noise axes of an input or None for -1 (all axes), the largest rate
#: the fast check lets through): every function and module of the table.
_VARIANTS = {
    "dropout": ("dropout", lambda p: _validate.rate(p, "p"), None, 1.0),
    "dropout1d": ("dropout", lambda p: _validate.rate(p, "p"), lambda t: _channel_axes(t, 1, "dropout1d"), 1.0),
    "dropout2d": ("dropout", lambda p: _validate.rate(p, "p"), lambda t: _channel_axes(t, 2, "dropout2d"), 1.0),
    "dropout3d": ("dropout", lambda p: _validate.rate(p, "p"), lambda t: _channel_axes(t, 3, "dropout3d"), 1.0),
    "alpha_dropout": ("alpha", lambda p: _validate.rate(p, "p"), None, 1.0),
    "feature_alpha_dropout": ("alpha", lambda p: _validate.rate(p, "p"),
                              lambda t: _feature_axes(t, "feature_alpha_dropout"), 1.0),
    "gaussian_dropout": ("gaussian", _gaussian_rate, None, math.nextafter(1.0, 0.0)),  # p < 1
}


def _functional(name: str, t, p, training, seed, offset, inplace):
    """The functional form of ``name``: validate the arguments, identity cases, then the noise.

    ``training=False`` returns ``t`` whatever its rank, dtype or device (as torch.nn.functional:
    only ``p`` is checked); ``seed=None`` draws a fresh seed per call from PyTorch's generator.
    Every check has a fast form for the common call, falling back to the full one.
    """
    kind, check_rate, noise_axes, top = _VARIANTS[name]
    r = p if type(p) is float and 0.0 < p <= top else check_rate(p)
    if seed is not None and not (type(seed) is int and 0 <= seed < _TWO64) and not isinstance(seed, torch.Generator):
        seed = _validate.uint64(seed, "seed")
    o = offset if offset == 0 and type(offset) is int else _validate.uint64(offset, "offset")
    if not training:
        return t
    if not (type(t) is torch.Tensor and t.is_cpu and t.layout == torch.strided and t.dtype in _DTYPES):
        check_tensor(t)
    axes = -1 if noise_axes is None else noise_axes(t)
    if o:
        _validate.span(o, _noise_numel(tuple(t.shape), axes))
    if r == 0.0:
        return t
    if seed is not None and type(seed) is not int:
        seed = seed_from(seed)  # a torch.Generator
    inplace = inplace is True or bool(inplace)
    if torch.compiler.is_compiling() or torch._C._is_tracing():
        if seed is None:
            return _graph_apply(t, kind, r, None, o, axes, inplace)
        return _graph_apply(t, kind, r, seed, torch.tensor(to_int64(o), dtype=torch.int64), axes, inplace)
    return _apply(t, kind, r, _draw_seed() if seed is None else seed, o, axes, inplace)


# ------------------------------------------------------------------------------------------------
# Public functions
# ------------------------------------------------------------------------------------------------


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
        False returns ``t`` itself, whatever its rank, dtype or device (inverted dropout needs no
        scaling at evaluation).
    seed : None, int or torch.Generator
        None: a fresh 64-bit seed drawn from PyTorch's default generator at this call (so
        ``torch.manual_seed`` reproduces it, as with ``torch.nn.functional.dropout``; in a
        compiled graph too). An int in [0, 2**64): dropkit's stream. A Generator: two 32-bit
        draws from it (:func:`seed_from`).
    offset : int, default 0
        Stream position of the first element (flat C order); ``offset + t.numel()`` must not
        exceed 2**64.
    inplace : bool, default False
        Write the result into ``t`` (as ``torch.nn.functional.dropout(..., inplace=True)``).

    Returns
    -------
    torch.Tensor
        ``keep ? t / (1 - p) : +0.0``, same shape, dtype and strides when ``t`` is dense (any
        memory format; else contiguous), or ``t`` itself when ``inplace`` or when the call is the
        identity: ``training=False`` or ``p == 0``, as PyTorch does. Bit for bit
        ``dropkit.dropout(t.numpy(), p, seed=seed, offset=offset)``.

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
    ``grad * keep / (1 - p)``, and so is the tangent of forward-mode AD. A ``t`` with overlapping
    or missing elements (expanded, sliced) is copied once, into the result's buffer.

    Examples
    --------
    >>> import numpy as np, torch, dropkit, dropkit.torch
    >>> t = torch.ones(6, dtype=torch.float64)
    >>> y = dropkit.torch.dropout(t, 0.5, seed=7)
    >>> np.array_equal(y.numpy(), dropkit.dropout(t.numpy(), 0.5, seed=7))
    True
    """
    return _functional("dropout", t, p, training, seed, offset, inplace)


_SHARED_DOC = """
    Parameters
    ----------
    t : torch.Tensor
        CPU, dtype float16, bfloat16, float32 or float64, any strides; {shape}.
    p : float, default 0.5
        {p}
    training : bool, default {training}
        False returns ``t`` itself, whatever its rank, dtype or device.
    seed, offset, inplace
        As in :func:`dropout`; the call uses the {positions} stream positions from ``offset``
        (which must stay below 2**64).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and (dense ``t``) strides (``t`` itself when ``inplace``, when
        ``training`` is False or when ``p == 0``). Bit for bit ``{same}``.

    Raises
    ------
    ValueError, TypeError
        As :func:`dropout`{raises}.

    Notes
    -----
    Backward saves no tensor, only ``(seed, offset, p)``, and regenerates the noise; the
    tangent of forward-mode AD is the backward's rule applied to the tangent.
"""


def _doc(summary: str, **fields) -> str:
    fields.setdefault("raises", "")
    fields.setdefault("training", "True")
    return summary + "\n" + _SHARED_DOC.format(**fields)


def dropout1d(t, p=0.5, training=True, *, seed=None, offset=0, inplace=False):
    return _functional("dropout1d", t, p, training, seed, offset, inplace)


def dropout2d(t, p=0.5, training=True, *, seed=None, offset=0, inplace=False):
    return _functional("dropout2d", t, p, training, seed, offset, inplace)


def dropout3d(t, p=0.5, training=True, *, seed=None, offset=0, inplace=False):
    return _functional("dropout3d", t, p, training, seed, offset, inplace)


def alpha_dropout(t, p=0.5, training=False, *, seed=None, offset=0, inplace=False):
    return _functional("alpha_dropout", t, p, training, seed, offset, inplace)


def feature_alpha_dropout(t, p=0.5, training=False, *, seed=None, offset=0, inplace=False):
    return _functional("feature_alpha_dropout", t, p, training, seed, offset, inplace)


def gaussian_dropout(t, p=0.5, training=True, *, seed=None, offset=0, inplace=False):
    return _functional("gaussian_dropout", t, p, training, seed, offset, inplace)


for _n, _spatial in (("1", "L"), ("2", "H, W"), ("3", "D, H, W")):
    globals()[f"dropout{_n}d"].__doc__ = _doc(
        f"Channel-wise dropout of ``(N, C, {_spatial})`` or unbatched ``(C, {_spatial})`` tensors: whole "
        f"channels zeroed, as ``torch.nn.functional.dropout{_n}d`` (PyTorch's names and arguments, plus "
        f"``seed`` and ``offset``).",
        shape=f"``(N, C, {_spatial})`` or ``(C, {_spatial})``",
        p="Probability of zeroing a channel, in [0, 1]; kept channels are scaled by ``1 / (1 - p)``.",
        positions="``N * C`` (``C`` unbatched)",
        same=f"dropkit.dropout_nd(t.numpy(), p, seed=seed, offset=offset, noise_shape=(N, C{', 1' * (int(_n))}))",
        raises=f"; a tensor of another number of dimensions than {int(_n) + 1} or {int(_n) + 2}")
alpha_dropout.__doc__ = _doc(
    "Alpha dropout (``torch.nn.functional.alpha_dropout``): keeps the mean and variance of SELU "
    "activations; dropped units take the fill ``a * alpha' + b``, kept ones ``x * a + b``.",
    shape="any shape", p="Drop probability in [0, 1]; at 1 every output is ``+0.0``.",
    positions="``t.numel()``", same="dropkit.alpha_dropout(t.numpy(), p, seed=seed, offset=offset)",
    training="False (as ``torch.nn.functional.alpha_dropout``)")
feature_alpha_dropout.__doc__ = _doc(
    "Feature-alpha dropout (``torch.nn.functional.feature_alpha_dropout``): alpha dropout of whole "
    "channels, one decision per ``(sample, channel)`` of an ``(N, C, ...)`` input.",
    shape="at least 2-D, ``(N, C, ...)``", p="Drop probability in [0, 1].",
    positions="``N * C``", same="dropkit.feature_alpha_dropout(t.numpy(), p, seed=seed, offset=offset)",
    raises="; a tensor of fewer than 2 dimensions (in training)",
    training="False (as ``torch.nn.functional.feature_alpha_dropout``)")
gaussian_dropout.__doc__ = _doc(
    "Gaussian dropout (Keras ``GaussianDropout``; PyTorch has none): ``t * (1 + sigma * eps)``, "
    "``sigma = sqrt(p / (1 - p))``, ``eps`` standard normals of dropkit's continuous stream.",
    shape="any shape", p="In [0, 1): the drop rate whose variance the noise matches (1 is refused).",
    positions="``t.numel()``", same="dropkit.gaussian_dropout(t.numpy(), p, seed=seed, offset=offset)",
    raises="; p = 1")
del _n, _spatial


# ------------------------------------------------------------------------------------------------
# Modules
# ------------------------------------------------------------------------------------------------


class _Stream:
    """Mixin of every module here: the seed mode, a position counter and the training-mode forward.

    Subclasses name their function of :data:`_VARIANTS` in ``_variant``.
    """

    _variant = "dropout"

    def __init__(self, p=0.5, inplace=False, seed=None):
        super().__init__(_validate.rate(p, "p"), inplace)  # PyTorch's layer: p, inplace
        self._init_stream(seed)

    def _init_stream(self, seed) -> None:
        # None: PyTorch's global generator at every call (nothing drawn here); else dropkit's stream.
        self.seed = None if seed is None else seed_from(seed)
        self._copies = 0  # deep copies made of this module (each gets derive_seed(seed, index))
        # The counter as a 0-d int64 buffer (bit pattern of a position in [0, 2**64)): a compiled
        # graph advances it in place without recompiling. It is saved in the state_dict by
        # _save_to_state_dict (with the seed), not as a buffer, so that seed=None layers keep the
        # state_dict of PyTorch's layer.
        self.register_buffer("_position", torch.zeros((), dtype=torch.int64), persistent=False)

    def _counter(self):
        """A NumPy view of the counter buffer (reads and writes without a torch call)."""
        b = self._buffers["_position"]
        c = self.__dict__.get("_pos_cache")
        if c is None or c[0] is not b:
            c = self.__dict__["_pos_cache"] = (b, b.numpy())
        return c[1]

    @property
    def position(self) -> int:
        return from_int64(int(self._position))

    @position.setter
    def position(self, value) -> None:
        self._position.fill_(to_int64(_validate.uint64(value, "position")))

    def extra_repr(self) -> str:
        if self.seed is None:
            return f"{super().extra_repr()}, seed=None"
        return f"{super().extra_repr()}, seed={self.seed}, position={self.position}"

    # -- copies, pickling, state_dict, TorchScript ---------------------------------------------

    def __deepcopy__(self, memo):
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        state = {k: v for k, v in self.__dict__.items() if k != "_pos_cache"}
        new.__setstate__(copy.deepcopy(state, memo))
        if self.seed is not None:  # each copy its own stream (nn.TransformerEncoder's clones)
            index = self.__dict__.get("_copies", 0)
            new.seed = derive_seed(self.seed, index)
            new._copies = 0
            self._copies = index + 1
        return new

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_pos_cache", None)
        return state

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.seed is not None:
            destination[prefix + "seed"] = torch.tensor(to_int64(self.seed), dtype=torch.int64)
            destination[prefix + "position"] = self._position if keep_vars else self._position.detach().clone()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        for name in ("seed", "position"):
            key = prefix + name
            if key not in state_dict:
                continue  # a state_dict of PyTorch's layer, of a seed=None layer or of dropkit < 0.2
            while key in unexpected_keys:
                unexpected_keys.remove(key)
            v = state_dict[key]
            if not (isinstance(v, torch.Tensor) and v.dim() == 0 and v.dtype == torch.int64):
                error_msgs.append(f"{key} must be a 0-d int64 tensor, got {v!r}")
            elif name == "seed":
                self.seed = from_int64(int(v))
            else:
                self._position.copy_(v)

    def __prepare_scriptable__(self):
        raise TypeError(
            f"{type(self).__name__} (dropkit.torch) cannot be compiled by torch.jit.script: it calls "
            f"dropkit's compiled core through Python. Use torch.compile, torch.export or "
            f"torch.jit.trace instead (or torch.nn.{type(self).__name__.replace('Gaussian', '')} "
            f"for a scripted model)")

    # -- forward --------------------------------------------------------------------------------

    def forward(self, input):  # noqa: A002 (PyTorch's argument name)
        """The layer's noise applied to ``input`` in training mode, the identity in evaluation mode.

        Parameters
        ----------
        input : torch.Tensor
            CPU float16, bfloat16, float32 or float64 (shape as the class requires); in
            evaluation mode anything, returned as is.

        Returns
        -------
        torch.Tensor
            In training: with ``seed=None``, the noise of a seed drawn now from PyTorch's default
            generator; with a seed, the noise at positions ``position .. position + N - 1`` of
            the layer's stream, ``N`` the noise size (``input.numel()``, or one per channel for
            channel-wise dropout), ``position`` then advancing by ``N``.

        Raises
        ------
        ValueError, TypeError
            As the functional form; ``position + N >= 2**64`` (see ``position``).
        """
        if not self.training:
            return input
        if not (type(input) is torch.Tensor and input.is_cpu and input.layout == torch.strided
                and input.dtype in _DTYPES):
            check_tensor(input, "input")
        kind, check_rate, noise_axes, top = _VARIANTS[self._variant]
        p = self.p
        if not (type(p) is float and 0.0 < p <= top):
            p = check_rate(p)
        axes = -1 if noise_axes is None else noise_axes(input)
        seed, inplace = self.seed, self.inplace is True or bool(self.inplace)
        if torch.compiler.is_compiling() or torch._C._is_tracing():
            # compiled graphs and tracing: the operators, the counter advanced in the graph
            if seed is None:
                return input if p == 0.0 else _graph_apply(input, kind, p, None, 0, axes, inplace)
            offset = self._position.clone()  # the backward keeps this one; the buffer moves on
            self._position.add_(_noise_numel(tuple(input.shape), axes))
            return input if p == 0.0 else _graph_apply(input, kind, p, seed, offset, axes, inplace)
        if seed is None:
            return input if p == 0.0 else _apply(input, kind, p, _draw_seed(), 0, axes, inplace)
        counter = self._counter()
        position = from_int64(int(counter))
        n = _noise_numel(tuple(input.shape), axes)
        if torch._C._are_functorch_transforms_active():
            n *= _batch_factor(input)  # vmap(randomness="different") uses B * n positions
        if position + n >= _TWO64:  # the int64 counter would wrap to 0 and reuse the stream
            raise ValueError(f"the layer's stream is exhausted: position + noise size must stay "
                             f"below 2**64, got position={position} and noise size={n}")
        counter[()] = to_int64(position + n)
        return input if p == 0.0 else _apply(input, kind, p, seed, position, axes, inplace)


_MODULE_DOC = """{summary}

    A subclass of ``{base}`` (so ``isinstance`` checks hold), with its arguments and behaviour:
    ``train()``/``eval()``, ``inplace=``, evaluation is the identity. Training mode gives the bits
    of :func:`{func}` (at ``offset = position`` for an explicit seed).

    Parameters
    ----------
    p : float, default 0.5
        {p}
    inplace : bool, default False
        Overwrite the input, as PyTorch's ``inplace=True``.
    seed : None, int or torch.Generator
        None (PyTorch's semantics): a fresh seed drawn from PyTorch's default generator at every
        training forward, nothing drawn at construction; ``torch.manual_seed`` before a step
        reproduces it. An int in [0, 2**64), or a Generator (two 32-bit draws now): dropkit's
        stream with the position counter below.

    Attributes
    ----------
    seed : int or None
        The 64-bit seed in use (None: PyTorch's generator). ``copy.deepcopy`` gives copy ``k`` of
        a seeded layer the seed ``derive_seed(seed, k)`` (``nn.TransformerEncoder``'s clones).
    position : int
        With a seed, the stream position of the next training-mode forward. Each training forward
        uses ``offset = position`` and then advances it by the noise size {advance} (docs/rng.md
        §7, §8.3); evaluation does not advance it. Set it to replay a step. The counter is a
        64-bit integer that must not wrap: in eager mode a forward with ``position + size >=
        2**64`` raises ``ValueError`` (the last position, ``2**64 - 1``, is never used by a layer).
        With a seed, ``state_dict`` holds ``seed`` and ``position`` (0-d int64 tensors, bit
        patterns) and ``load_state_dict`` restores them (a state_dict without them leaves both
        as they are); with ``seed=None`` the state_dict is that of ``{base}``.

    Notes
    -----
    Backward saves no tensor, only ``(seed, offset, p)``. Works under
    ``torch.compile(fullgraph=True)`` and ``torch.export`` without recompiling per step (the
    counter lives in a 0-d int64 buffer that the graph advances in place) and under
    ``torch.jit.trace``; ``torch.jit.script`` raises ``TypeError``.
"""


def _module_doc(summary, base, func, p="Drop probability in [0, 1].", advance="(``input.numel()``)"):
    return _MODULE_DOC.format(summary=summary, base=base, func=func, p=p, advance=advance)


class Dropout(_Stream, torch.nn.Dropout):
    __doc__ = _module_doc("``torch.nn.Dropout`` on dropkit's stream: reproducible from a seed, no mask "
                          "saved for backward.", "torch.nn.Dropout", "dropout")
    _variant = "dropout"


_CHANNEL_ADVANCE = "(``N * C``, or ``C`` for an unbatched input: one position per channel)"


class Dropout1d(_Stream, torch.nn.Dropout1d):
    __doc__ = _module_doc("``torch.nn.Dropout1d`` on dropkit's stream: zeroes whole channels of "
                          "``(N, C, L)`` or ``(C, L)`` inputs.", "torch.nn.Dropout1d", "dropout1d",
                          advance=_CHANNEL_ADVANCE)
    _variant = "dropout1d"


class Dropout2d(_Stream, torch.nn.Dropout2d):
    __doc__ = _module_doc(
        "``torch.nn.Dropout2d`` on dropkit's stream: zeroes whole channels of ``(N, C, H, W)`` or "
        "``(C, H, W)`` inputs.\n\n    A 3-D input is unbatched ``(C, H, W)``, as PyTorch documents it "
        "and as ``Dropout1d``/``Dropout3d``\n    treat theirs; PyTorch 2.13's own ``Dropout2d`` still "
        "reads a 3-D input as ``(N, C, L)`` (with a\n    warning that this will change). Other ranks "
        "raise ``ValueError`` (PyTorch warns and proceeds).", "torch.nn.Dropout2d", "dropout2d",
        advance=_CHANNEL_ADVANCE)
    _variant = "dropout2d"


class Dropout3d(_Stream, torch.nn.Dropout3d):
    __doc__ = _module_doc("``torch.nn.Dropout3d`` on dropkit's stream: zeroes whole channels of "
                          "``(N, C, D, H, W)`` or ``(C, D, H, W)`` inputs.", "torch.nn.Dropout3d",
                          "dropout3d", advance=_CHANNEL_ADVANCE)
    _variant = "dropout3d"


class AlphaDropout(_Stream, torch.nn.AlphaDropout):
    __doc__ = _module_doc("``torch.nn.AlphaDropout`` on dropkit's stream (SELU networks).",
                          "torch.nn.AlphaDropout", "alpha_dropout")
    _variant = "alpha_dropout"


class FeatureAlphaDropout(_Stream, torch.nn.FeatureAlphaDropout):
    __doc__ = _module_doc("``torch.nn.FeatureAlphaDropout`` on dropkit's stream: alpha dropout of whole "
                          "channels of ``(N, C, ...)`` inputs.", "torch.nn.FeatureAlphaDropout",
                          "feature_alpha_dropout", advance="(``N * C``)")
    _variant = "feature_alpha_dropout"


class GaussianDropout(_Stream, torch.nn.Module):
    __doc__ = _module_doc("Gaussian dropout as an ``nn.Module`` (Keras ``GaussianDropout``; PyTorch has "
                          "none): ``input * (1 + sigma * eps)``, ``sigma = sqrt(p / (1 - p))``.",
                          "torch.nn.Module", "gaussian_dropout",
                          p="In [0, 1): the drop rate whose variance the noise matches (1 is refused).")
    _variant = "gaussian_dropout"

    def __init__(self, p=0.5, inplace=False, seed=None):
        torch.nn.Module.__init__(self)
        self.p = _gaussian_rate(p)
        self.inplace = inplace
        self._init_stream(seed)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}, seed={self.seed}, position={self.position}"

