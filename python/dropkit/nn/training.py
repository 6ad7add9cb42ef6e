"""The training loop: :func:`fit`, :class:`History`, :class:`EarlyStopping` and the seed's
``train_network`` (seed 000, slide 3) completed."""
from __future__ import annotations

import math
import numbers
import sys
import time

import numpy as np

from .. import _validate
from .losses import SoftmaxCrossEntropy
from .model import Sequential
from .optim import SGD, Adam


class History:
    """What :func:`fit` returns, as Keras' ``History``.

    Attributes
    ----------
    history : dict of str to list of float
        Per epoch: ``loss`` and ``accuracy`` (means over the epoch's training batches, dropout on,
        penalties included in the loss), and with validation data ``val_loss`` and ``val_accuracy``
        (evaluation mode).
    epoch : list of int
        Epoch indices run.
    epoch_time : list of float
        Wall time of each epoch's training part, in seconds.
    stopped_epoch : int or None
        The epoch at which early stopping ended the run.
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        self.epoch: list[int] = []
        self.epoch_time: list[float] = []
        self.stopped_epoch: int | None = None

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


class EarlyStopping:
    """Stop when ``monitor`` has gone ``patience`` epochs without improving by more than ``min_delta``.

    The rule of Keras 3's ``keras.callbacks.EarlyStopping`` (without ``baseline`` and
    ``start_from_epoch``): at the end of each epoch the wait grows by one, an improvement on the
    best value so far resets it to 0 (the first epoch of a run always improves), and otherwise
    training stops at the end of the epoch where the wait reaches ``patience`` (``patience=0``
    therefore stops at the first epoch without improvement, as ``patience=1`` does). With the
    losses 10, 9, 8, 9, 8.9, ... and ``patience=1`` the run stops after epoch 3 (counting from 0,
    as :attr:`History.epoch` does: the fourth epoch), with ``patience=2`` after epoch 4.

    Each :func:`fit` starts afresh (:meth:`on_train_begin`, as Keras at the start of each run):
    an object reused in a second ``fit`` does not compare against the first run's best.

    Parameters
    ----------
    monitor : str, default 'val_loss'
        A key of ``History.history``; losses are minimised, accuracies (a name containing "acc")
        maximised.
    patience : int, default 3
        Epochs without improvement after which training stops (an integer >= 0).
    min_delta : float, default 0
        An improvement must exceed it (its absolute value is used, as Keras).
    restore_best_weights : bool, default False
        Put back the parameters of the best epoch at the end of the run (stopped early or not).

    Attributes
    ----------
    best : float or None
        The best monitored value of the current run.
    best_epoch : int or None
        Its epoch (from 0).
    wait : int
        Epochs since the last improvement.
    stopped_epoch : int
        The epoch (from 0) at which this object stopped the last run; 0 when it did not (as Keras).
    """

    def __init__(self, monitor="val_loss", patience=3, min_delta=0.0, restore_best_weights=False):
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        self.monitor, self.patience = str(monitor), int(patience)
        self.min_delta, self.restore_best_weights = abs(float(min_delta)), bool(restore_best_weights)
        self.on_train_begin()

    def on_train_begin(self) -> None:
        """Forget the previous run (best value, its epoch and parameters, the wait); :func:`fit`
        calls it at the start of every run, as Keras does, so one object can be reused."""
        self.best = None
        self.best_epoch = None
        self._wait = 0
        self.stopped_epoch = 0
        self._best_params = None

    @property
    def wait(self) -> int:
        return self._wait

    def __repr__(self) -> str:
        return f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience})"

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if "acc" in self.monitor:
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, epoch: int, logs: dict, params: list) -> bool:
        """Record ``logs`` of ``epoch`` (from 0); True when training should stop.

        Keras' ``on_epoch_end``: the wait grows by one; an improvement records the value, the
        epoch (and the parameters with ``restore_best_weights``) and resets the wait; otherwise
        the run stops once the wait has reached ``patience`` (never at epoch 0).
        """
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which is not in the history "
                             f"(keys: {sorted(logs)}); pass validation_data for 'val_*' keys")
        value = logs[self.monitor]
        self._wait += 1
        if self._improved(value):
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_params = [p.copy() for p in params]
            return False
        if self._wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            return True
        return False

    def restore(self, params: list) -> None:
        """Copy the best epoch's parameters back (when ``restore_best_weights``)."""
        if self._best_params is not None:
            for p, b in zip(params, self._best_params):
                p[...] = b


def as_network(model):
    """The object :func:`fit` trains: ``model`` itself when it has ``backward``, else a
    :class:`Sequential` over its ``layers`` (e.g. the seed's ``RegularizedNetwork``, which has no
    backward)."""
    if callable(getattr(model, "backward", None)) and callable(getattr(model, "forward", None)):
        return model
    layers = getattr(model, "layers", None)
    if isinstance(layers, list):
        return Sequential(layers)
    raise TypeError(f"model must have forward and backward (or a list .layers), got {type(model).__name__}")


def _forward(net, x, training: bool):
    out = net.forward(x, training)
    return out[0] if isinstance(out, tuple) else out  # the seed's RegularizedNetwork returns (x, reg)


def _set_mode(net, training: bool) -> None:
    method = getattr(net, "train" if training else "eval", None)
    if callable(method):
        method()
    else:
        for layer in getattr(net, "layers", []):
            if hasattr(layer, "training"):
                layer.training = training


def _reg(net) -> float:
    f = getattr(net, "reg_loss", None)
    return float(f()) if callable(f) else 0.0


def _model_dtype(net):
    for p in getattr(net, "params", []):
        if p.ndim:  # skip scalars such as a ConcreteDropout logit
            return p.dtype
    for layer in getattr(net, "layers", []):
        d = getattr(layer, "dtype", None)
        if d is not None:
            return np.dtype(d)
    return np.dtype(np.float32)


def evaluate(model, X, y, *, loss=None, batch_size=256):
    """Evaluation-mode loss (penalties included) and accuracy of ``model`` on ``(X, y)``.

    Returns
    -------
    (float, float)
        Mean loss and accuracy.
    """
    net = as_network(model)
    loss = SoftmaxCrossEntropy() if loss is None else loss
    X, y = _validate.array(X, "X"), _validate.array(y, "y")
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same length, got {len(X)} and {len(y)}")
    _set_mode(net, False)
    total, correct = 0.0, 0
    for i in range(0, len(X), batch_size):
        out = _forward(net, X[i:i + batch_size], False)
        yb = y[i:i + batch_size]
        total += loss(out, yb) * len(yb)
        correct += int((out.argmax(axis=1) == (yb if yb.ndim == 1 else yb.argmax(axis=1))).sum())
    n = max(len(X), 1)
    return total / n + _reg(net), correct / n


def _progress(verbose, total: int, desc: str):
    """tqdm bar when wanted and possible, else None."""
    if verbose is None:
        verbose = sys.stderr.isatty()
    if not verbose:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    if not sys.stderr.isatty():
        return None
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)


def fit(model, X, y, *, validation_data=None, validation_split=0.0, epochs=1, batch_size=32, optimizer=None,
        loss=None, seed=None, shuffle=True, early_stopping=None, verbose=None):
    """Train ``model`` on ``(X, y)`` by mini-batch gradient descent.

    Per epoch: training mode (dropout on), batches of ``batch_size`` in an order drawn from
    ``seed``; for each batch forward, loss plus the layers' penalties, backward, optimizer step,
    then ``update_dropout_rates(inputs)`` on layers that have it (adaptive dropout, with that
    layer's input of this batch). After the epoch's batches, ``on_epoch_end()`` on layers that have
    it (curriculum dropout), then evaluation mode on the validation data.

    Parameters
    ----------
    model : Sequential or any object with forward/backward/params/grads (or a ``layers`` list)
    X : ndarray
        Inputs, first axis the samples; cast to the model's parameter dtype.
    y : ndarray
        Integer labels (or one-hot rows) for the default loss.
    validation_data : (X_val, y_val), optional
    validation_split : float, default 0
        Fraction of the samples held out when ``validation_data`` is None, split as Keras 3's
        ``train_validation_split``: the first ``floor(n * (1 - validation_split))`` samples train
        (binary64 arithmetic), the rest (the last ones, before any shuffling) validate. A value
        outside ``[0, 1)``, or one that leaves either part empty (``n = 5`` with ``0.1``), is a
        ValueError, as in Keras. 0 (the default) holds nothing out.
    epochs : int
    batch_size : int, default 32
    optimizer : optimizer, default ``Adam()``
    loss : callable with ``backward()``, default :class:`SoftmaxCrossEntropy`
    seed : None or int
        Seeds the order of the batches. With a model whose layers are seeded (e.g.
        ``Sequential(layers, seed=s)``) the whole run is reproduced bit for bit.
    shuffle : bool, default True
    early_stopping : None, int or EarlyStopping
        An int is the patience on ``val_loss`` (or ``loss`` without validation data). An
        :class:`EarlyStopping` object is reset at the start of the run (Keras' ``on_train_begin``).
    verbose : None or bool
        Progress bar (tqdm) on stderr when stderr is a terminal and tqdm is installed; otherwise
        ``True`` prints one line per epoch to stderr. None: the bar when possible, else nothing.

    Returns
    -------
    History

    Raises
    ------
    ValueError
        ``X`` and ``y`` of different lengths, no training sample (with ``epochs > 0``), empty
        validation data, a ``validation_split`` outside ``[0, 1)`` or leaving a part empty, a
        ``batch_size`` below 1 or negative ``epochs``.
    TypeError
        A model without forward/backward, non-integer ``epochs``/``batch_size``, a
        ``validation_split`` that is not a real number.
    """
    net = as_network(model)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value < (0 if name == "epochs" else 1):
            raise ValueError(f"{name} must be {'>= 0' if name == 'epochs' else '>= 1'}, got {value!r}")
    X, y = _validate.array(X, "X"), _validate.array(y, "y")
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same length, got {len(X)} and {len(y)}")
    if validation_data is None and validation_split is not None:  # as Keras: ignored with validation_data
        if isinstance(validation_split, (bool, np.bool_)) or not isinstance(validation_split, numbers.Real):
            raise TypeError(f"validation_split must be a real number in [0, 1), got {validation_split!r}")
        if not 0.0 <= float(validation_split) < 1.0:  # NaN fails too
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if validation_data is None and validation_split:
        split = float(validation_split)
        n_all = len(X)
        n_train = int(math.floor(n_all * (1.0 - split)))  # Keras 3's train_validation_split
        if n_train == 0 or n_train == n_all:
            raise ValueError(f"validation_split={validation_split!r} of {n_all} samples leaves "
                             f"{n_train} to train and {n_all - n_train} to validate: both parts must be "
                             "non-empty (as in Keras); give more data or another validation_split")
        X, y, validation_data = X[:n_train], y[:n_train], (X[n_train:], y[n_train:])
    if len(X) == 0 and epochs > 0:
        raise ValueError(f"X has no samples (shape {X.shape}): there is nothing to train on")
    dtype = _model_dtype(net)
    if X.dtype != dtype:
        X = X.astype(dtype)
    if validation_data is not None:
        Xv, yv = validation_data
        Xv, yv = _validate.array(Xv, "validation_data[0]"), _validate.array(yv, "validation_data[1]")
        if len(Xv) != len(yv):
            raise ValueError(f"validation_data's X and y must have the same length, got {len(Xv)} and {len(yv)}")
        if len(Xv) == 0:
            raise ValueError(f"validation_data has no samples (X of shape {Xv.shape}): its loss and "
                             "accuracy would be undefined")
        validation_data = (Xv if Xv.dtype == dtype else Xv.astype(dtype), yv)
    optimizer = Adam() if optimizer is None else optimizer
    loss = SoftmaxCrossEntropy() if loss is None else loss
    if isinstance(early_stopping, (int, np.integer)) and not isinstance(early_stopping, bool):
        early_stopping = EarlyStopping("val_loss" if validation_data is not None else "loss", early_stopping)
    if callable(getattr(early_stopping, "on_train_begin", None)):
        early_stopping.on_train_begin()  # Keras resets at the start of each run
    rng = np.random.default_rng(seed)
    hist = History()
    if validation_data is not None:
        hist.history.update(val_loss=[], val_accuracy=[])
    n = len(X)
    n_batches = -(-n // batch_size)
    bar = _progress(verbose, epochs * n_batches, "fit")
    try:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            _set_mode(net, True)
            order = rng.permutation(n) if shuffle else np.arange(n)
            total, correct = 0.0, 0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                xb, yb = X[idx], y[idx]
                out = _forward(net, xb, True)
                batch_loss = loss(out, yb) + _reg(net)
                net.backward(loss.backward())
                optimizer.step(net.params, net.grads)
                if callable(getattr(net, "update_dropout_rates", None)):
                    net.update_dropout_rates()
                total += batch_loss * len(idx)
                correct += int((out.argmax(axis=1) == (yb if yb.ndim == 1 else yb.argmax(axis=1))).sum())
                if bar is not None:
                    bar.update(1)
            if callable(getattr(net, "on_epoch_end", None)):
                net.on_epoch_end()
            else:
                for layer in getattr(net, "layers", []):
                    if callable(getattr(layer, "on_epoch_end", None)):
                        layer.on_epoch_end()
            hist.epoch_time.append(time.perf_counter() - t0)
            logs = {"loss": total / max(n, 1), "accuracy": correct / max(n, 1)}
            if validation_data is not None:
                logs["val_loss"], logs["val_accuracy"] = evaluate(net, *validation_data, loss=loss)
            for k, v in logs.items():
                hist.history[k].append(float(v))
            hist.epoch.append(epoch)
            if bar is not None:
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
            elif verbose:
                print(f"epoch {epoch + 1}/{epochs} - {hist.epoch_time[-1]:.2f}s - "
                      + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), file=sys.stderr)
            if early_stopping is not None and early_stopping.update(epoch, logs, net.params):
                hist.stopped_epoch = epoch
                break
    finally:
        if bar is not None:
            bar.close()
    if early_stopping is not None and early_stopping.restore_best_weights:
        early_stopping.restore(net.params)
    if callable(getattr(net, "sync", None)):
        net.sync()
    _set_mode(net, False)
    return hist


def train_network(model, X_train, y_train, epochs=100, *, X_val=None, y_val=None, batch_size=32,
                  learning_rate=0.01, seed=None, verbose=None):
    """The seed's training loop (seed 000, slide 3) completed: mini-batches of 32, dropout on in
    training and off in validation, plain SGD with learning rate 0.01, softmax cross-entropy.

    Parameters
    ----------
    model : e.g. :class:`SimpleNNWithDropout`
    X_train, y_train : ndarray
    epochs : int, default 100
    X_val, y_val : ndarray, optional
        The seed reads an undefined global ``X_val``; here it is an argument.
    batch_size, learning_rate : as the seed (32, 0.01)
    seed, verbose : as :func:`fit`

    Returns
    -------
    History
    """
    val = None if X_val is None else (X_val, y_val)
    return fit(model, X_train, y_train, validation_data=val, epochs=epochs, batch_size=batch_size,
               optimizer=SGD(learning_rate), seed=seed, verbose=verbose)
