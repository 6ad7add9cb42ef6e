"""DropBlock layers (docs/rng.md §17), with the conventions of :mod:`dropkit.variant_layers`.

``.training``, ``forward(x, training=None)``, ``backward(grad)``, ``seed=`` (None, an int or a
``numpy.random.Generator``) and a position counter ``.position`` that advances by the noise size
of each training-mode forward (``N * C * M``, or ``C * M`` with ``batchwise``). Nothing per
element is stored: ``backward`` regenerates the mask of the last forward from
``(seed, offset, parameters)``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _params, _runtime, _validate, blocks
from .layers import Dropout, check_grad, resolve_seed

__all__ = ["DropBlock1D", "DropBlock2D", "DropBlock3D"]


class _DropBlock:
    """DropBlock of ``(N, C, S...)`` / ``(N, S..., C)`` inputs with ``_dims`` spatial axes."""

    _dims = 2
    _axes = "height, width"

    def __init__(self, rate=0.1, block_size=7, data_format="channels_first", *, gamma_scale=1.0,
                 batchwise=False, seed=None, backend=None):
        self.rate = _validate.rate(rate)
        _params.block_sizes((1 << 62,) * self._dims, block_size)  # checked now (clipped per input later)
        self.block_size = block_size
        blocks.channels_last_format(data_format)
        self.data_format = data_format
        self.gamma_scale = blocks.check_gamma_scale(gamma_scale)
        self.batchwise = _validate.flag(batchwise, "batchwise")
        _runtime.backend_name(backend)
        self.backend = backend
        self.training = True
        self.seed = resolve_seed(seed)
        self.position = 0
        self._last: Optional[tuple] = None  # (training, shape, offset, params) of the last forward

    training = Dropout.training  # a checked bool, as every dropkit layer's
    position = Dropout.position  # the stream counter, checked

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(rate={self.rate!r}, block_size={self.block_size!r}, "
                f"data_format={self.data_format!r}, gamma_scale={self.gamma_scale!r}, "
                f"batchwise={self.batchwise}, training={self.training}, seed={self.seed}, "
                f"position={self.position})")

    def _params(self) -> dict:
        return dict(data_format=self.data_format, gamma_scale=self.gamma_scale, batchwise=self.batchwise)

    def _check_rank(self, shape) -> None:
        rank = self._dims + 2
        if len(shape) != rank:
            first = self.data_format == "channels_first"
            layout = ("batch, channels, " + self._axes) if first else ("batch, " + self._axes + ", channels")
            raise ValueError(f"{type(self).__name__} expects a {rank}-D input ({layout}) for "
                             f"data_format={self.data_format!r}, got shape {shape}")

    def forward(self, x, training=None):
        """Apply DropBlock to ``x``.

        Parameters
        ----------
        x : array_like
            float16, float32 or float64 of rank ``D + 2`` in the layer's ``data_format``.
        training : bool or None
            None uses ``self.training``; otherwise a real bool.

        Returns
        -------
        ndarray
            Same shape and dtype. In training, the mask of the next noise-size positions of the
            layer's stream (the counter then advances by :func:`dropkit.blocks.drop_block_noise_size`);
            in evaluation, ``x`` itself.

        Raises
        ------
        ValueError, TypeError
            As :func:`dropkit.drop_block`; an input of another rank.
        """
        training = self._training if training is None else _validate.flag(training, "training")
        a = _validate.float_array(x, "x")
        params = self._params()
        rate = _validate.rate(self.rate)
        self._check_rank(a.shape)
        if not training:
            self._last = (False, a.shape, None, rate, params)
            return blocks.drop_block(a, rate, self.block_size, seed=self.seed, training=False,
                                     backend=self.backend, **params)
        offset = self._position
        n = blocks.drop_block_noise_size(a.shape, data_format=self.data_format, batchwise=self.batchwise)
        _validate.span(offset, n)
        y = blocks.drop_block(a, rate, self.block_size, seed=self.seed, offset=offset, backend=self.backend,
                              **params)
        self._position = offset + n
        self._last = (True, a.shape, offset, rate, params)
        return y

    __call__ = forward

    def backward(self, grad):
        """Gradient with respect to the input of the last ``forward`` (its mask and scale, regenerated).

        Parameters
        ----------
        grad : array_like
            Same shape as the last forward's input.

        Returns
        -------
        ndarray
            ``grad`` through the forward's mask and scale (``grad`` itself after an evaluation forward).

        Raises
        ------
        RuntimeError
            No forward yet.
        ValueError
            ``grad`` of another shape than the forward's input.
        """
        g, (training, shape, offset, rate, params) = check_grad(self, grad)
        if not training:
            return g
        return blocks.drop_block_backward(g, rate, self.block_size, seed=self.seed, offset=offset,
                                          backend=self.backend, **params)

    @property
    def mask(self):
        """Keep mask (bool, the input's shape) of the last training forward, regenerated; else None."""
        if self._last is None or not self._last[0]:
            return None
        _, shape, offset, rate, params = self._last
        return blocks.drop_block_mask(shape, rate, self.block_size, seed=self.seed, offset=offset,
                                      backend=self.backend, **params)


_DOC = """DropBlock of {what} (Ghiasi et al. 2018; docs/rng.md §17).

    Drops contiguous blocks of ``block_size`` along each of the {d} spatial axes of every
    feature map; kept values are scaled by ``numel / kept``. The bits of
    :func:`dropkit.drop_block` at ``offset = position``.

    Parameters
    ----------
    rate : float, default 0.1
        The drop rate the seed rate ``gamma`` is derived from (timm's ``drop_prob``), in [0, 1].
    block_size : int or sequence of {d} int, default 7
        Block side (clipped to the map as timm does), or one size per spatial axis.
    data_format : {{"channels_first", "channels_last"}}
        {layouts}.
    gamma_scale : float, default 1.0
        Multiplies the seed rate (finite, ``>= 0``).
    batchwise : bool, default False
        One mask shared by the whole batch (the counter then advances by ``C * M``).
    seed, backend
        As in :class:`dropkit.Dropout`.

    Attributes
    ----------
    position : int
        Stream position of the next training forward; advances by ``N * C * M`` (``M`` the map
        size) per training forward, not in evaluation.
    mask : ndarray of bool or None
        Keep mask of the last training forward, regenerated on access.
    """


class DropBlock1D(_DropBlock):
    __doc__ = _DOC.format(what="sequences ``(N, C, L)``", d=1,
                          layouts="``(N, C, L)`` or ``(N, L, C)``")
    _dims = 1
    _axes = "length"


class DropBlock2D(_DropBlock):
    __doc__ = _DOC.format(what="images ``(N, C, H, W)``", d=2,
                          layouts="``(N, C, H, W)`` or ``(N, H, W, C)``")
    _dims = 2
    _axes = "height, width"


class DropBlock3D(_DropBlock):
    __doc__ = _DOC.format(what="volumes ``(N, C, D, H, W)``", d=3,
                          layouts="``(N, C, D, H, W)`` or ``(N, D, H, W, C)``")
    _dims = 3
    _axes = "depth, height, width"
