"""Softmax cross-entropy on logits (the default loss of :func:`dropkit.nn.fit`)."""
from __future__ import annotations

import numpy as np


def softmax(logits, axis=-1) -> np.ndarray:
    """Numerically stable softmax along ``axis``, dtype preserved."""
    z = np.asarray(logits)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _labels(y, n: int, k: int) -> np.ndarray:
    t = np.asarray(y)
    if t.ndim == 2:  # one-hot or probabilities
        if t.shape != (n, k):
            raise ValueError(f"y must have shape ({n},) or ({n}, {k}), got {t.shape}")
        return t
    if t.shape != (n,):
        raise ValueError(f"y must have shape ({n},) or ({n}, {k}), got {t.shape}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"integer labels expected (or one-hot rows), got dtype {t.dtype}")
    if n and (t.min() < 0 or t.max() >= k):
        raise ValueError(f"labels must be in [0, {k}), got values in [{t.min()}, {t.max()}]")
    return t


class SoftmaxCrossEntropy:
    """Mean cross-entropy of ``softmax(logits)`` against integer labels (or one-hot rows).

    ``loss(logits, y)`` returns the mean over the batch; ``backward()`` returns its gradient with
    respect to the logits, ``(softmax(logits) - onehot(y)) / N``, in the logits' dtype.
    """

    def __init__(self):
        self._cache = None

    def __repr__(self) -> str:
        return "SoftmaxCrossEntropy()"

    def __call__(self, logits, y) -> float:
        """Mean loss over the batch (a Python float, computed in float64)."""
        z = np.asarray(logits)
        if z.ndim != 2:
            raise ValueError(f"logits must be 2-d (batch, classes), got shape {z.shape}")
        n, k = z.shape
        t = _labels(y, n, k)
        z64 = z.astype(np.float64, copy=False)
        shifted = z64 - z64.max(axis=1, keepdims=True)
        logsum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        logp = shifted - logsum
        if t.ndim == 1:
            loss = -logp[np.arange(n), t].sum()
        else:
            loss = -(t * logp).sum()
        self._cache = (np.exp(logp), t, z.dtype)
        return float(loss / max(n, 1))

    def backward(self) -> np.ndarray:
        """Gradient of the last mean loss with respect to the logits."""
        if self._cache is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before the loss")
        p, t, dtype = self._cache
        n = p.shape[0]
        g = p.copy()
        if t.ndim == 1:
            g[np.arange(n), t] -= 1.0
        else:
            g -= t
        return (g / max(n, 1)).astype(dtype, copy=False)
