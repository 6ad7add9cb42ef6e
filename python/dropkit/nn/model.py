"""``Sequential`` and the seeds' networks (seed 000, slides 2 and 13) with their backward passes."""
from __future__ import annotations

import numpy as np

from .. import _validate
from ..layers import Dropout
from .layers import BatchNormalization, DenseLayer, ReLU, as_dtype


def is_stochastic(layer) -> bool:
    """True for a dropout-like layer: a dropkit ``Dropout`` (or subclass) or any layer with a stream
    ``position`` (the dropout variants)."""
    return isinstance(layer, Dropout) or hasattr(layer, "position")


def is_concrete(layer) -> bool:
    """True for a layer with a learnable drop-rate logit (dropkit's ``ConcreteDropout``): it has a
    float ``dropout_rate`` whose gradient ``backward`` accumulates in ``dropout_rate_grad``."""
    return hasattr(layer, "dropout_rate_grad") and hasattr(layer, "dropout_rate") and callable(
        getattr(layer, "zero_grad", None))


def _child_seeds(seed, n: int) -> list[int]:
    ss = np.random.SeedSequence(seed)
    return [int(c.generate_state(1, np.uint64)[0]) for c in ss.spawn(n)]


class Sequential:
    """Layers applied in order; ``backward`` runs them in reverse.

    Parameters
    ----------
    layers : list
        Objects with ``forward(x, training)`` and ``backward(grad)``: the layers of
        :mod:`dropkit.nn`, dropkit's ``Dropout``/``InvertedDropout`` and the dropout variants,
        or your own. Optional members used when present: ``params``/``grads``, ``reg_loss()``,
        ``training``, ``on_epoch_end()``, ``update_dropout_rates(activations)``.
        A ``ConcreteDropout`` is trained: its logit ``dropout_rate`` is one of :attr:`params`
        (a float64 0-d array, written back to the layer at every forward and by
        :meth:`sync`), and its regulariser (Gal et al.), on the weights of the next layer that
        has ``W``, is part of :meth:`reg_loss` and of the gradients.
    seed : None or int
        If given, every layer's randomness is re-seeded from it (children of
        ``numpy.random.SeedSequence(seed)``, one per layer position): weight initialisation
        (``reseed``) and the dropout streams (``seed`` set, ``position`` reset to 0). The same
        seed then gives the same network and the same masks.

    Attributes
    ----------
    layers : list
        The list given (not copied).
    training : bool
        Set by :meth:`train` / :meth:`eval`.
    """

    def __init__(self, layers, *, seed=None):
        if not isinstance(layers, (list, tuple)):
            raise TypeError(f"layers must be a list of layers, got {type(layers).__name__}")
        for i, layer in enumerate(layers):
            if not (callable(getattr(layer, "forward", None)) and callable(getattr(layer, "backward", None))):
                raise TypeError(f"layers[{i}] has no forward/backward: {layer!r}")
        self.layers = layers if isinstance(layers, list) else list(layers)
        self.training = True
        self._inputs: dict[int, np.ndarray] = {}
        self._logits: dict[int, tuple[np.ndarray, float]] = {}  # concrete layers: (param, value written)
        if seed is not None:
            self.reseed(seed)

    def __repr__(self) -> str:
        inner = ",\n    ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}([\n    {inner}\n])"

    def reseed(self, seed) -> None:
        """Re-seed every layer from ``seed`` (see the class docstring)."""
        for layer, s in zip(self.layers, _child_seeds(seed, len(self.layers))):
            if callable(getattr(layer, "reseed", None)):
                layer.reseed(s)
            elif is_stochastic(layer) and hasattr(layer, "seed"):
                layer.seed = s
                layer.position = 0

    def train(self):
        """Training mode for the container and every layer; returns self."""
        return self._set_mode(True)

    def eval(self):
        """Evaluation mode for the container and every layer; returns self."""
        return self._set_mode(False)

    def _set_mode(self, flag: bool):
        self.training = flag
        for layer in self.layers:
            if hasattr(layer, "training"):
                layer.training = flag
        return self

    def forward(self, x, training=None):
        """Run every layer. ``training`` None uses ``self.training``."""
        training = self.training if training is None else bool(training)
        self._inputs.clear()
        self.sync()
        for i, layer in enumerate(self.layers):
            if training and hasattr(layer, "update_dropout_rates"):
                self._inputs[i] = x
            x = layer.forward(x, training)
        return x

    __call__ = forward

    def backward(self, grad):
        """Backpropagate ``grad`` (d loss / d output) through every layer; returns d loss / d input."""
        concrete = [i for i, layer in enumerate(self.layers) if is_concrete(layer)]
        for i in concrete:
            self.layers[i].zero_grad()
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        for i in concrete:  # the regulariser's gradient: into the next layer's dW and the logit
            nxt, k = self._concrete_target(i)
            if nxt is not None and getattr(self.layers[i], "trainable", True):
                dw, _ = self.layers[i].regularizer_backward(nxt.W, k)
                nxt.dW += dw.astype(nxt.dW.dtype, copy=False)
        return grad

    def predict(self, X, batch_size=256):
        """Evaluation-mode outputs for ``X``, in batches (does not consume dropout streams)."""
        X = _validate.array(X, "X")
        outs = [Sequential.forward(self, X[i:i + batch_size], False) for i in range(0, len(X), batch_size)]
        return np.concatenate(outs) if outs else Sequential.forward(self, X, False)

    def _logit(self, i: int) -> np.ndarray:
        layer = self.layers[i]
        entry = self._logits.get(i)
        if entry is None or entry[1] != layer.dropout_rate:  # new, or changed on the layer by the user
            arr = np.array(float(layer.dropout_rate), dtype=np.float64)
            self._logits[i] = (arr, float(arr))
            return arr
        return entry[0]

    def sync(self) -> None:
        """Write the trained logits of ``ConcreteDropout`` layers back to their ``dropout_rate``."""
        for i, (arr, _) in list(self._logits.items()):
            v = float(arr)
            self.layers[i].dropout_rate = v
            self._logits[i] = (arr, v)

    def _concrete_target(self, i: int):
        """The layer whose weights follow concrete layer ``i`` and its input dimension K."""
        for layer in self.layers[i + 1:]:
            w = getattr(layer, "W", None)
            if w is not None:
                return layer, int(w.shape[1] if w.ndim == 4 else w.shape[0])
        return None, 0

    def _trainable_concrete(self, i: int, layer) -> bool:
        return is_concrete(layer) and getattr(layer, "trainable", True)

    @property
    def params(self) -> list:
        """Every layer's ``params``, in layer order (a ConcreteDropout contributes its logit)."""
        out = []
        for i, layer in enumerate(self.layers):
            out.extend(getattr(layer, "params", []))
            if self._trainable_concrete(i, layer):
                out.append(self._logit(i))
        return out

    @property
    def grads(self) -> list:
        """Every layer's ``grads``, in the order of :attr:`params`."""
        out = []
        for i, layer in enumerate(self.layers):
            out.extend(getattr(layer, "grads", []))
            if self._trainable_concrete(i, layer):
                out.append(np.array(float(layer.dropout_rate_grad), dtype=np.float64))
        return out

    def reg_loss(self) -> float:
        """Sum of ``reg_loss()`` over the layers that have one, plus each ConcreteDropout's
        regulariser on the weights of the next layer that has ``W``."""
        total = sum(layer.reg_loss() for layer in self.layers if callable(getattr(layer, "reg_loss", None)))
        for i, layer in enumerate(self.layers):
            if is_concrete(layer):
                nxt, k = self._concrete_target(i)
                if nxt is not None:
                    self.sync()
                    total += layer.regularizer(nxt.W, k)
        return float(total)

    def astype(self, dtype):
        """Convert every layer that has ``astype`` (weights, statistics) to ``dtype``; returns self."""
        d = as_dtype(dtype)
        for layer in self.layers:
            if callable(getattr(layer, "astype", None)):
                layer.astype(d)
        return self

    # Hooks called by fit -------------------------------------------------------------------
    def on_epoch_end(self) -> None:
        """Call ``on_epoch_end()`` on every layer that has it (curriculum dropout)."""
        for layer in self.layers:
            hook = getattr(layer, "on_epoch_end", None)
            if callable(hook):
                hook()

    def update_dropout_rates(self) -> None:
        """Call ``update_dropout_rates(activations)`` on every layer that has it, with that layer's
        input of the last training forward (adaptive dropout)."""
        for i, x in self._inputs.items():
            self.layers[i].update_dropout_rates(x)


class SimpleNNWithDropout(Sequential):
    """The network of seed 000, slide 2, with its backward pass.

    ``X @ W1 -> ReLU -> Dropout(0.2) -> @ W2 -> ReLU -> Dropout(0.5)``, no biases, as the seed.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
    init : float or {'he', 'glorot'}, default 'he'
        The seed draws ``randn * 0.01`` (``init=0.01``); He initialisation trains much faster.
    seed : None or int
        Seeds the weights and the two dropout streams (see :class:`Sequential`).
    dtype : float32 (default) or float64

    Notes
    -----
    As in the seed, ``forward(X, training=True)`` sets the dropout layers' ``training`` to its
    argument, and the output passes through ReLU and dropout (use its outputs as logits).
    """

    def __init__(self, input_size, hidden_size, output_size, *, init="he", seed=None, dtype=np.float32):
        self.dense1 = DenseLayer(input_size, hidden_size, init=init, use_bias=False, dtype=dtype)
        self.dense2 = DenseLayer(hidden_size, output_size, init=init, use_bias=False, dtype=dtype)
        self.dropout1 = Dropout(dropout_rate=0.2)
        self.dropout2 = Dropout(dropout_rate=0.5)
        super().__init__([self.dense1, ReLU(), self.dropout1, self.dense2, ReLU(), self.dropout2],
                         seed=np.random.SeedSequence().entropy if seed is None else seed)

    @property
    def W1(self) -> np.ndarray:
        """First weight matrix (input_size, hidden_size)."""
        return self.dense1.W

    @property
    def W2(self) -> np.ndarray:
        """Second weight matrix (hidden_size, output_size)."""
        return self.dense2.W

    def forward(self, X, training=True):
        """The seed's forward; ``training`` is also written to the dropout layers' ``training``."""
        self.dropout1.training = training
        self.dropout2.training = training
        return super().forward(X, training)


class RegularizedNetwork(Sequential):
    """The network of seed 000, slide 13, trainable: ``forward`` returns ``(output, reg_loss)``.

    Hidden blocks ``DenseLayer(l1_reg, l2_reg) -> BatchNormalization -> Dropout(0.3) -> ReLU``,
    then an output ``DenseLayer`` giving the logits.

    Parameters
    ----------
    input_size : int
    hidden_sizes : list of int
    output_size : int
    l1_reg, l2_reg : float, default 1e-4 (the seed's)
    hidden_rate : float, default 0.3 (the seed's)
    seed : None or int
    dtype : float32 (default) or float64

    Notes
    -----
    Difference from the seed: the seed also puts ``BatchNormalization -> Dropout(0.5) -> ReLU``
    after the last dense layer, i.e. on the logits (a ReLU there forbids negative logits and a
    dropout of the logits is noise on the prediction itself); here the last dense layer gives the
    logits. The seed's code itself runs unchanged on :mod:`dropkit.nn`'s layers and trains with
    :func:`dropkit.nn.fit` (which uses its ``layers``).
    """

    def __init__(self, input_size, hidden_sizes, output_size, *, l1_reg=1e-4, l2_reg=1e-4, hidden_rate=0.3,
                 seed=None, dtype=np.float32):
        sizes = [input_size] + list(hidden_sizes) + [output_size]
        layers = []
        for i in range(len(sizes) - 2):
            layers.extend([DenseLayer(sizes[i], sizes[i + 1], l1_reg=l1_reg, l2_reg=l2_reg, dtype=dtype),
                           BatchNormalization(dtype=dtype), Dropout(drop_rate=hidden_rate), ReLU()])
        layers.append(DenseLayer(sizes[-2], sizes[-1], init="glorot", l1_reg=l1_reg, l2_reg=l2_reg, dtype=dtype))
        super().__init__(layers, seed=np.random.SeedSequence().entropy if seed is None else seed)

    def forward(self, x, training=True):
        """``(output, reg_loss)`` as the seed's ``forward``."""
        return super().forward(x, training), self.reg_loss()
