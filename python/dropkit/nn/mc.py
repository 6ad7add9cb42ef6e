"""Monte Carlo dropout (Gal and Ghahramani): predictions and uncertainty from T stochastic passes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _validate
from .losses import softmax
from .model import _child_seeds, is_stochastic


@dataclass
class MCPrediction:
    """Result of :func:`mc_predict`.

    Attributes
    ----------
    mean : ndarray (N, K)
        Predictive mean of the class probabilities over the T passes.
    entropy : ndarray (N,)
        Predictive entropy ``H[mean]`` (nats): total uncertainty.
    mutual_information : ndarray (N,)
        ``H[mean] - mean_t H[p_t]`` (nats): the part due to the weights (epistemic), >= 0.
    samples : ndarray (T, N, K) or None
        The T passes' probabilities (``return_samples=True``).
    """

    mean: np.ndarray
    entropy: np.ndarray
    mutual_information: np.ndarray
    samples: np.ndarray | None = None

    def predict(self) -> np.ndarray:
        """The predicted classes, ``mean.argmax(axis=1)``."""
        return self.mean.argmax(axis=1)


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=-1)


def mc_predict(model, X, samples=30, *, seed=None, batched=None, return_samples=False, max_batch_bytes=1 << 27):
    """T stochastic forward passes with dropout on (other layers, e.g. BatchNormalization, in
    evaluation mode).

    Pass ``t`` of a dropout layer uses the stream positions right after pass ``t - 1``'s, so the
    T masks are consecutive positions of each layer's stream; the passes are run as one forward of
    the input repeated T times (same masks, as the repeated input is pass after pass in memory)
    when that fits in ``max_batch_bytes``, else one forward per pass.

    Parameters
    ----------
    model : Sequential (or anything with a ``layers`` list)
        Its last layer gives logits.
    X : ndarray
    samples : int, default 30
        T.
    seed : None or int
        None: each dropout layer's own stream from its current ``position`` (advanced, so a second
        call draws fresh masks). An int: each dropout layer's stream is re-seeded from it
        (``SeedSequence`` children by layer position) starting at position 0 for this call, and
        the layers' own seed and position are restored afterwards: the same seed gives the same
        result.
    batched : None or bool
        Force or forbid the single batched forward (None: decide by ``max_batch_bytes``).
    return_samples : bool, default False
    max_batch_bytes : int
        Size limit of the repeated input for the batched path.

    Returns
    -------
    MCPrediction
    """
    layers = getattr(model, "layers", None)
    if not isinstance(layers, list):
        raise TypeError(f"model must have a list of layers, got {type(model).__name__}")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    X = _validate.array(X, "X")
    T = int(samples)
    if callable(getattr(model, "sync", None)):
        model.sync()  # trained ConcreteDropout logits into their layers
    saved = [(layer.seed, layer.position) for layer in layers if is_stochastic(layer)]
    # DropConnect layers (Dense(dropconnect=...)) draw one weight mask per forward: MC sampling then
    # needs one forward per sample, and their own stream (dropconnect_seed, dropconnect_position).
    connect = [layer for layer in layers if getattr(layer, "dropconnect", 0)]
    if connect and batched:
        raise ValueError("batched=True cannot sample DropConnect: a batched forward draws one weight mask "
                         "for every sample; use batched=False (the default picks it)")
    saved_connect = [(layer.dropconnect_seed, layer.dropconnect_position) for layer in connect]
    if seed is not None:
        for layer, s in zip(layers, _child_seeds(seed, len(layers))):
            if is_stochastic(layer):
                layer.seed, layer.position = s, 0
            elif layer in connect:
                layer.dropconnect_seed, layer.dropconnect_position = s, 0

    def run(x):
        for layer in layers:
            x = layer.forward(x, is_stochastic(layer) or layer in connect)
        return x

    try:
        if batched is None:
            batched = not connect and X.nbytes * T <= max_batch_bytes
        if batched:
            logits = run(np.concatenate([X] * T, axis=0))
            logits = logits.reshape((T, len(X)) + logits.shape[1:])
        else:
            logits = np.stack([run(X) for _ in range(T)])
    finally:
        if seed is not None:
            for layer, (s, pos) in zip([la for la in layers if is_stochastic(la)], saved):
                layer.seed, layer.position = s, pos
            for layer, (s, pos) in zip(connect, saved_connect):
                layer.dropconnect_seed, layer.dropconnect_position = s, pos
    probs = softmax(logits.astype(np.float64), axis=-1)
    mean = probs.mean(axis=0)
    ent = _entropy(mean)
    mi = np.maximum(ent - _entropy(probs).mean(axis=0), 0.0)
    return MCPrediction(mean, ent, mi, probs if return_samples else None)
