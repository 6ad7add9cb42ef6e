"""Layers of :mod:`dropkit.nn`: ``forward(x, training)`` / ``backward(grad)`` / ``params`` / ``grads``.

Every layer keeps what its backward needs from the last forward; ``params`` and ``grads`` are lists
of arrays in the same order (the optimizers update ``params`` in place). Images are NCHW.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import _validate
from ..blocks import drop_connect, drop_connect_backward

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype) -> np.dtype:
    """float32 or float64 as a ``numpy.dtype`` (TypeError otherwise)."""
    d = np.dtype(dtype)
    if d not in _DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {d}")
    return d


def _positive_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}")
        return _positive_int(value[0], name), _positive_int(value[1], name)
    v = _positive_int(value, name)
    return v, v


def _reg(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number >= 0, got {value!r}")
    v = float(value)
    if not v >= 0.0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def _input(x, dtype: np.dtype, ndim: int, name: str) -> np.ndarray:
    """``x`` as an array of the layer's dtype (cast when needed) with ``ndim`` dimensions."""
    a = _validate.array(x, "x")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} input must be numeric, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} expects a {ndim}-d input, got shape {a.shape}")
    return a if a.dtype == dtype else a.astype(dtype)


def _init_weights(rng: np.random.Generator, shape, fan_in: int, fan_out: int, init, dtype) -> np.ndarray:
    if isinstance(init, str):
        name = init.lower()
        if name in ("he", "he_normal"):
            w = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
        elif name in ("glorot", "glorot_uniform", "xavier"):
            lim = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-lim, lim, shape)
        else:
            raise ValueError(f"init must be 'he', 'glorot' or a standard deviation, got {init!r}")
    elif isinstance(init, (int, float)) and not isinstance(init, bool) and init > 0:
        w = rng.standard_normal(shape) * float(init)
    else:
        raise ValueError(f"init must be 'he', 'glorot' or a positive standard deviation, got {init!r}")
    return w.astype(dtype)


def _seed_int(seed) -> int:
    """A 64-bit integer from None, an int or a Generator (the layer's init seed)."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 1 << 64, dtype=np.uint64))
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)) and 0 <= seed < (1 << 64):
        return int(seed)
    raise TypeError(f"seed must be None, an integer in [0, 2**64) or a numpy.random.Generator, got {seed!r}")


def _activation(activation):
    if activation is None or activation == "linear":
        return None
    if activation == "relu":
        return ReLU()
    if activation == "softmax":
        raise ValueError("activation='softmax' is not supported: end the model on logits (activation=None); "
                         "the default loss SoftmaxCrossEntropy applies the softmax")
    raise ValueError(f"activation must be None or 'relu', got {activation!r}")


class Layer:
    """Base class: mode handling and empty ``params``/``grads``.

    Attributes
    ----------
    training : bool
        Mode used by ``forward(x, training=None)``. Set by ``Sequential.train()``/``eval()``.
    """

    training = True

    @property
    def params(self) -> list:
        """Trainable arrays (updated in place by the optimizers)."""
        return []

    @property
    def grads(self) -> list:
        """Gradients of the last backward, in the order of ``params``."""
        return []

    def _mode(self, training) -> bool:
        return self.training if training is None else bool(training)

    def _need_forward(self, attr: str):
        value = getattr(self, attr, None)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return value

    def __call__(self, x, training=None):
        return self.forward(x, training)


class _Weighted(Layer):
    """Shared by DenseLayer and Conv2D: lazy build, init seed, dtype, L1/L2 penalties."""

    def _setup(self, init, l1_reg, l2_reg, seed, dtype, use_bias, activation):
        self.init = init
        self.l1_reg = _reg(l1_reg, "l1_reg")
        self.l2_reg = _reg(l2_reg, "l2_reg")
        self.seed = _seed_int(seed)
        self.dtype = as_dtype(dtype)
        self.use_bias = bool(use_bias)
        self.activation = activation
        self._act = _activation(activation)
        self.W = None
        self.b = None
        self.dW = None
        self.db = None
        self._x = None

    def _build_weights(self, wshape, fan_in, fan_out, nbias):
        rng = np.random.default_rng(self.seed)
        self.W = _init_weights(rng, wshape, fan_in, fan_out, self.init, self.dtype)
        self.b = np.zeros(nbias, dtype=self.dtype) if self.use_bias else None
        self.dW = np.zeros_like(self.W)
        self.db = None if self.b is None else np.zeros_like(self.b)

    @property
    def built(self) -> bool:
        """True once the weights exist."""
        return self.W is not None

    @property
    def params(self) -> list:
        if self.W is None:
            return []
        return [self.W] if self.b is None else [self.W, self.b]

    @property
    def grads(self) -> list:
        if self.W is None:
            return []
        return [self.dW] if self.b is None else [self.dW, self.db]

    def reseed(self, seed) -> None:
        """Use another init seed; weights already built are drawn again from it."""
        self.seed = _seed_int(seed)
        if self.W is not None:
            self._build()

    def astype(self, dtype):
        """Convert the weights (and later inputs) to ``dtype`` (float32 or float64); returns self."""
        self.dtype = as_dtype(dtype)
        for name in ("W", "b", "dW", "db"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, v.astype(self.dtype))
        return self

    def reg_loss(self) -> float:
        """``l1_reg * sum|W| + l2_reg * sum W**2`` (biases are not penalised).

        Its gradient ``l1_reg * sign(W) + 2 * l2_reg * W`` is included in ``dW`` by ``backward``.
        """
        if self.W is None or (self.l1_reg == 0.0 and self.l2_reg == 0.0):
            return 0.0
        w = self.W
        return float(self.l1_reg * np.abs(w).sum(dtype=np.float64)
                     + self.l2_reg * np.square(w).sum(dtype=np.float64))

    def _add_reg_grad(self) -> None:
        if self.l1_reg:
            self.dW += self.dtype.type(self.l1_reg) * np.sign(self.W)
        if self.l2_reg:
            self.dW += self.dtype.type(2.0 * self.l2_reg) * self.W


class DenseLayer(_Weighted):
    """Fully connected layer ``y = x @ W + b`` (seed 000, slide 13).

    Parameters
    ----------
    input_size : int or None
        Number of input features; None builds the weights on the first forward.
    output_size : int
        Number of output features.
    activation : {None, 'relu'}
        Applied after the affine map (Keras' argument).
    init : {'he', 'glorot'} or float, default 'he'
        He normal (std sqrt(2 / fan_in)), Glorot uniform (limit sqrt(6 / (fan_in + fan_out))), or a
        normal with this standard deviation (the seed's ``randn * 0.01`` is ``init=0.01``).
    l1_reg, l2_reg : float, default 0
        Penalty ``l1_reg * sum|W| + l2_reg * sum W**2`` returned by :meth:`reg_loss`; ``backward``
        adds its gradient to ``dW``.
    use_bias : bool, default True
    seed : None, int or numpy.random.Generator
        Seed of the weight initialisation.
    dtype : float32 (default) or float64
        Dtype of the weights; inputs of another dtype are cast to it.
    dropconnect : float, default 0
        DropConnect rate (docs/rng.md §18): in training, ``y = x @ drop_connect(W) + b`` with a fresh
        weight mask per forward (``dropconnect_position`` advances by ``W.size``); backward
        regenerates it (nothing stored). ``dropconnect_seed`` (default: the layer's ``seed``) keys
        the mask stream.

    Attributes
    ----------
    W : ndarray, shape (input_size, output_size)
    b : ndarray, shape (output_size,) or None
    dW, db : ndarray
        Gradients of the last backward.
    """

    def __init__(self, input_size, output_size, *, activation=None, init="he", l1_reg=0.0, l2_reg=0.0,
                 use_bias=True, seed=None, dtype=np.float32, dropconnect=0.0, dropconnect_seed=None):
        self.input_size = None if input_size is None else _positive_int(input_size, "input_size")
        self.output_size = _positive_int(output_size, "output_size")
        self._setup(init, l1_reg, l2_reg, seed, dtype, use_bias, activation)
        self.dropconnect = _validate.rate(dropconnect, "dropconnect")
        self.dropconnect_seed = None if dropconnect_seed is None else _validate.uint64(dropconnect_seed, "dropconnect_seed")
        self.dropconnect_position, self._dc_offset = 0, None
        if self.input_size is not None:
            self._build()

    def __repr__(self) -> str:
        return (f"DenseLayer({self.input_size}, {self.output_size}, activation={self.activation!r}, "
                f"l1_reg={self.l1_reg}, l2_reg={self.l2_reg})")

    def _build(self):
        self._build_weights((self.input_size, self.output_size), self.input_size, self.output_size,
                            self.output_size)

    def forward(self, x, training=None):
        """``x @ W + b`` (then the activation) for ``x`` of shape (batch, input_size)."""
        a = _input(x, self.dtype, 2, "DenseLayer")
        if self.W is None:
            self.input_size = a.shape[1]
            self._build()
        if a.shape[1] != self.input_size:
            raise ValueError(f"DenseLayer expects {self.input_size} input features, got shape {a.shape}")
        self._x = a
        self._dc_offset = None
        w = self.W
        if self.dropconnect and self._mode(training):  # a fresh weight mask (docs/rng.md §18)
            self._dc_offset, self.dropconnect_position = self.dropconnect_position, self.dropconnect_position + w.size
            w = drop_connect(w, self.dropconnect, seed=self._dc_seed(), offset=self._dc_offset)
        y = a @ w
        if self.b is not None:
            y += self.b
        return y if self._act is None else self._act.forward(y, training)

    def backward(self, grad):
        """Gradient w.r.t. the input; sets ``dW`` (data term + penalty gradient) and ``db``."""
        x = self._need_forward("_x")
        g = _validate.array(grad, "grad").astype(self.dtype, copy=False)
        if self._act is not None:
            g = self._act.backward(g)
        if g.shape != (x.shape[0], self.output_size):
            raise ValueError(f"grad must have shape {(x.shape[0], self.output_size)}, got {g.shape}")
        np.matmul(x.T, g, out=self.dW)
        w = self.W
        if self._dc_offset is not None:  # the forward's weight mask, regenerated
            kw = dict(seed=self._dc_seed(), offset=self._dc_offset)
            drop_connect_backward(self.dW, self.dropconnect, out=self.dW, **kw)
            w = drop_connect(w, self.dropconnect, **kw)
        self._add_reg_grad()
        if self.b is not None:
            g.sum(axis=0, out=self.db)
        return g @ w.T

    def _dc_seed(self) -> int:
        return self.seed if self.dropconnect_seed is None else self.dropconnect_seed

    def reseed(self, seed) -> None:
        """As :meth:`_Weighted.reseed`; the DropConnect stream restarts at position 0."""
        super().reseed(seed)
        self.dropconnect_position = 0


class Dense(DenseLayer):
    """Keras-style lazy :class:`DenseLayer`: ``Dense(units, activation=None, ...)``.

    The input size is read from the first input. Other arguments as :class:`DenseLayer`
    (``init`` defaults to 'glorot', Keras' default).
    """

    def __init__(self, units, activation=None, *, init="glorot", **kwargs):
        super().__init__(None, units, activation=activation, init=init, **kwargs)


class ReLU(Layer):
    """``max(x, 0)``; the gradient at 0 is taken as 0."""

    def __init__(self):
        self._mask = None

    def __repr__(self) -> str:
        return "ReLU()"

    def forward(self, x, training=None):
        """Elementwise ``max(x, 0)``, dtype preserved (NaN stays NaN)."""
        a = _validate.array(x, "x")
        y = np.maximum(a, a.dtype.type(0))
        self._mask = y  # the mask (y > 0, i.e. x > 0) is taken in backward
        return y

    def backward(self, grad):
        """``grad`` where the input was positive, 0 elsewhere."""
        y = self._need_forward("_mask")
        g = _validate.array(grad, "grad")
        if g.shape != y.shape:
            raise ValueError(f"grad must have the last forward's shape {y.shape}, got {g.shape}")
        return g * (y > 0)


class BatchNormalization(Layer):
    """Batch normalisation over the feature axis (last axis of 2-d input, channel axis 1 of NCHW).

    Training: normalise with the batch mean and (biased) variance, update the running statistics
    ``running = momentum * running + (1 - momentum) * batch``. Evaluation: normalise with the
    running statistics. Parameters are built on the first forward.

    Parameters
    ----------
    momentum : float, default 0.99 (Keras)
    epsilon : float, default 1e-3 (Keras)
    dtype : float32 (default) or float64

    Attributes
    ----------
    gamma, beta : ndarray
        Scale and shift (trainable).
    running_mean, running_var : ndarray
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, *, dtype=np.float32):
        m = float(momentum)
        if not 0.0 <= m <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        e = float(epsilon)
        if not e > 0.0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
        self.momentum, self.epsilon = m, e
        self.dtype = as_dtype(dtype)
        self.gamma = self.beta = self.dgamma = self.dbeta = None
        self.running_mean = self.running_var = None
        self._cache = None

    def __repr__(self) -> str:
        return f"BatchNormalization(momentum={self.momentum}, epsilon={self.epsilon})"

    @property
    def params(self) -> list:
        return [] if self.gamma is None else [self.gamma, self.beta]

    @property
    def grads(self) -> list:
        return [] if self.gamma is None else [self.dgamma, self.dbeta]

    def astype(self, dtype):
        """Convert parameters and statistics to ``dtype``; returns self."""
        self.dtype = as_dtype(dtype)
        for name in ("gamma", "beta", "dgamma", "dbeta", "running_mean", "running_var"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, v.astype(self.dtype))
        return self

    @staticmethod
    def _axes(a):
        if a.ndim == 2:
            return (0,), (1, -1)
        if a.ndim == 4:
            return (0, 2, 3), (1, -1, 1, 1)
        raise ValueError(f"BatchNormalization expects 2-d (N, F) or 4-d (N, C, H, W) input, got shape {a.shape}")

    def forward(self, x, training=None):
        """Normalise ``x``; batch statistics in training, running statistics in evaluation."""
        a = _validate.array(x, "x")
        a = a if a.dtype == self.dtype else a.astype(self.dtype)
        axes, bshape = self._axes(a)
        nf = a.shape[1]
        if self.gamma is None:
            self.gamma = np.ones(nf, self.dtype)
            self.beta = np.zeros(nf, self.dtype)
            self.dgamma, self.dbeta = np.zeros_like(self.gamma), np.zeros_like(self.beta)
            self.running_mean = np.zeros(nf, self.dtype)
            self.running_var = np.ones(nf, self.dtype)
        if nf != self.gamma.shape[0]:
            raise ValueError(f"BatchNormalization was built for {self.gamma.shape[0]} features, got shape {a.shape}")
        if self._mode(training):
            mean = a.mean(axis=axes)
            var = a.var(axis=axes)
            m = self.dtype.type(self.momentum)
            self.running_mean *= m
            self.running_mean += (1 - m) * mean
            self.running_var *= m
            self.running_var += (1 - m) * var
            batch = True
        else:
            mean, var, batch = self.running_mean, self.running_var, False
        inv = (1.0 / np.sqrt(var + self.dtype.type(self.epsilon))).astype(self.dtype)
        xhat = (a - mean.reshape(bshape)) * inv.reshape(bshape)
        self._cache = (xhat, inv, batch, axes, bshape)
        return xhat * self.gamma.reshape(bshape) + self.beta.reshape(bshape)

    def backward(self, grad):
        """Gradient w.r.t. the input (through the batch statistics in training); sets dgamma, dbeta."""
        xhat, inv, batch, axes, bshape = self._need_forward("_cache")
        g = _validate.array(grad, "grad").astype(self.dtype, copy=False)
        if g.shape != xhat.shape:
            raise ValueError(f"grad must have the last forward's shape {xhat.shape}, got {g.shape}")
        self.dbeta[...] = g.sum(axis=axes)
        self.dgamma[...] = (g * xhat).sum(axis=axes)
        dxhat = g * self.gamma.reshape(bshape)
        if not batch:
            return dxhat * inv.reshape(bshape)
        n = xhat.size // xhat.shape[1]
        s1 = dxhat.sum(axis=axes).reshape(bshape)
        s2 = (dxhat * xhat).sum(axis=axes).reshape(bshape)
        return (inv.reshape(bshape) / n) * (n * dxhat - s1 - xhat * s2)


class Conv2D(_Weighted):
    """2-d convolution (cross-correlation, as Keras and PyTorch) on NCHW input.

    im2col through ``sliding_window_view`` and one BLAS matrix product per call; the backward's
    col2im loops over the kernel offsets only (``kh * kw`` strided adds), never over pixels.
    The kernel is built on the first call from the input's channel count.

    Parameters
    ----------
    filters : int
        Number of output channels.
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : {'valid', 'same'}, default 'valid'
        'same' (stride 1 only) zero-pads so that the output has the input's height and width.
    activation : {None, 'relu'}
    init : {'glorot', 'he'} or float, default 'glorot' (Keras' default)
    l1_reg, l2_reg, use_bias, seed, dtype
        As :class:`DenseLayer`.

    Attributes
    ----------
    W : ndarray, shape (filters, in_channels, kh, kw)
    b : ndarray, shape (filters,) or None
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None, *, init="glorot",
                 l1_reg=0.0, l2_reg=0.0, use_bias=True, seed=None, dtype=np.float32):
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        if padding == "same" and self.strides != (1, 1):
            raise ValueError(f"padding='same' needs strides 1, got strides={strides!r}")
        self.padding = padding
        self.in_channels = None
        self._setup(init, l1_reg, l2_reg, seed, dtype, use_bias, activation)

    def __repr__(self) -> str:
        return (f"Conv2D({self.filters}, {self.kernel_size}, strides={self.strides}, padding={self.padding!r}, "
                f"activation={self.activation!r})")

    def _build(self):
        kh, kw = self.kernel_size
        c = self.in_channels
        self._build_weights((self.filters, c, kh, kw), c * kh * kw, self.filters * kh * kw, self.filters)

    def _pad(self):
        if self.padding == "valid":
            return (0, 0), (0, 0)
        kh, kw = self.kernel_size
        return ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)

    def forward(self, x, training=None):
        """Convolve ``x`` of shape (N, C, H, W); returns (N, filters, H_out, W_out)."""
        a = _input(x, self.dtype, 4, "Conv2D")
        if self.W is None:
            self.in_channels = a.shape[1]
            self._build()
        n, c, h, w = a.shape
        if c != self.in_channels:
            raise ValueError(f"Conv2D was built for {self.in_channels} input channels, got shape {a.shape}")
        (pt, pb), (pl, pr) = self._pad()
        if pt or pb or pl or pr:
            a = np.pad(a, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
        kh, kw = self.kernel_size
        sh, sw = self.strides
        hp, wp = a.shape[2], a.shape[3]
        if hp < kh or wp < kw:
            raise ValueError(f"Conv2D kernel {self.kernel_size} is larger than the (padded) input {a.shape[2:]}")
        win = sliding_window_view(a, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # (N, C, Ho, Wo, kh, kw)
        ho, wo = win.shape[2], win.shape[3]
        # im2col as (N, C*kh*kw, Ho*Wo): one copy whose inner loop runs along image rows, and a
        # product per image that lands directly in NCHW order (no transpose of the output).
        cols = np.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3)).reshape(n, c * kh * kw, ho * wo)
        y = np.matmul(self.W.reshape(self.filters, -1), cols)  # (N, F, Ho*Wo), BLAS per image
        if self.b is not None:
            y += self.b[:, None]
        y = y.reshape(n, self.filters, ho, wo)
        self._x = (cols, (n, c, h, w), (hp, wp), (ho, wo))
        return y if self._act is None else self._act.forward(y, training)

    def backward(self, grad):
        """Gradient w.r.t. the input; sets ``dW`` (plus the penalty gradient) and ``db``."""
        cols, (n, c, h, w), (hp, wp), (ho, wo) = self._need_forward("_x")
        g = _validate.array(grad, "grad").astype(self.dtype, copy=False)
        if self._act is not None:
            g = self._act.backward(g)
        if g.shape != (n, self.filters, ho, wo):
            raise ValueError(f"grad must have shape {(n, self.filters, ho, wo)}, got {g.shape}")
        g3 = g.reshape(n, self.filters, ho * wo)
        # dW = sum over images of g[n] @ cols[n].T (BLAS per image, cols read transposed in place)
        np.matmul(g3, cols.transpose(0, 2, 1)).sum(axis=0, out=self.dW.reshape(self.filters, -1))
        self._add_reg_grad()
        if self.b is not None:
            g3.sum(axis=(0, 2), out=self.db)
        kh, kw = self.kernel_size
        sh, sw = self.strides
        dcols = np.matmul(self.W.reshape(self.filters, -1).T, g3).reshape(n, c, kh, kw, ho, wo)
        dx = np.zeros((n, c, hp, wp), dtype=self.dtype)
        for i in range(kh):  # col2im: one strided add per kernel offset, never a loop over pixels
            for j in range(kw):
                dx[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += dcols[:, :, i, j]
        (pt, _), (pl, _) = self._pad()
        return dx[:, :, pt:pt + h, pl:pl + w] if (hp, wp) != (h, w) else dx


class MaxPooling2D(Layer):
    """Max pooling over non-overlapping ``pool_size`` windows of NCHW input (Keras' 'valid': the
    rows/columns that do not fill a window are dropped).

    Parameters
    ----------
    pool_size : int or (int, int), default 2
    strides : None
        Only the Keras default (strides = pool_size) is supported.
    """

    def __init__(self, pool_size=2, strides=None):
        self.pool_size = _pair(pool_size, "pool_size")
        if strides is not None and _pair(strides, "strides") != self.pool_size:
            raise ValueError(f"strides must be None (= pool_size), got {strides!r}")
        self._cache = None

    def __repr__(self) -> str:
        return f"MaxPooling2D(pool_size={self.pool_size})"

    def _views(self, a, ho, wo):
        ph, pw = self.pool_size
        return [a[:, :, i:ho * ph:ph, j:wo * pw:pw] for i in range(ph) for j in range(pw)]

    def forward(self, x, training=None):
        """Window maxima: (N, C, H, W) -> (N, C, H // ph, W // pw)."""
        a = _validate.array(x, "x")
        if a.ndim != 4:
            raise ValueError(f"MaxPooling2D expects a 4-d (N, C, H, W) input, got shape {a.shape}")
        ph, pw = self.pool_size
        ho, wo = a.shape[2] // ph, a.shape[3] // pw
        if ho == 0 or wo == 0:
            raise ValueError(f"MaxPooling2D pool {self.pool_size} is larger than the input {a.shape[2:]}")
        views = self._views(a, ho, wo)  # one strided view per window offset (ph * pw of them)
        m = views[0].copy()
        for v in views[1:]:
            np.maximum(m, v, out=m)
        self._cache = (a, m)
        return m

    def backward(self, grad):
        """The gradient goes to the (first, in row-major window order) maximum of each window."""
        a, m = self._need_forward("_cache")
        g = _validate.array(grad, "grad")
        if g.shape != m.shape:
            raise ValueError(f"grad must have shape {m.shape}, got {g.shape}")
        ho, wo = m.shape[2], m.shape[3]
        dx = np.zeros(a.shape, dtype=np.result_type(g.dtype, a.dtype))
        taken = np.zeros(m.shape, dtype=bool)
        for v, d in zip(self._views(a, ho, wo), self._views(dx, ho, wo)):
            hit = v == m
            hit &= ~taken
            taken |= hit
            np.multiply(g, hit, out=d)
        return dx


class Flatten(Layer):
    """(N, ...) -> (N, prod(...)), C order (NCHW images flatten channel-major)."""

    def __init__(self):
        self._shape = None

    def __repr__(self) -> str:
        return "Flatten()"

    def forward(self, x, training=None):
        """Reshape to (N, -1)."""
        a = _validate.array(x, "x")
        if a.ndim < 1:
            raise ValueError(f"Flatten expects an input with a batch axis, got shape {a.shape}")
        self._shape = a.shape
        return a.reshape(a.shape[0], -1)

    def backward(self, grad):
        """Reshape back to the input's shape."""
        shape = self._need_forward("_shape")
        return _validate.array(grad, "grad").reshape(shape)
