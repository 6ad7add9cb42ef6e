"""Optimizers: SGD with momentum and Adam, updating parameter arrays in place."""
from __future__ import annotations

import math

import numpy as np


def _positive(value, name: str) -> float:
    v = float(value)
    if not v > 0.0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _unit(value, name: str) -> float:
    v = float(value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


class _Optimizer:
    def __init__(self):
        self._state: list | None = None
        self.iterations = 0

    def _check(self, params, grads):
        if len(params) != len(grads):
            raise ValueError(f"got {len(params)} parameter arrays and {len(grads)} gradients")
        shapes = [p.shape for p in params]
        if self._state is None or self._shapes != shapes:
            self._shapes = shapes
            self._state = self._init_state(params)

    def step(self, params, grads) -> None:
        """Update every array of ``params`` in place from the matching array of ``grads``."""
        params, grads = list(params), list(grads)
        self._check(params, grads)
        self.iterations += 1
        self._update(params, grads)


class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as Keras' SGD.

    ``v = momentum * v - lr * g``; ``p += v`` (or ``p += momentum * v - lr * g`` with Nesterov).

    Parameters
    ----------
    learning_rate : float, default 0.01
    momentum : float in [0, 1), default 0
    nesterov : bool, default False
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__()
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.momentum = _unit(momentum, "momentum")
        self.nesterov = bool(nesterov)

    def __repr__(self) -> str:
        return f"SGD(learning_rate={self.learning_rate}, momentum={self.momentum}, nesterov={self.nesterov})"

    def _init_state(self, params):
        return [np.zeros_like(p) for p in params] if self.momentum else []

    def _update(self, params, grads):
        for i, (p, g) in enumerate(zip(params, grads)):
            lr = p.dtype.type(self.learning_rate)
            if not self.momentum:
                p -= lr * g
                continue
            v = self._state[i]
            m = p.dtype.type(self.momentum)
            v *= m
            v -= lr * g
            if self.nesterov:
                p += m * v - lr * g
            else:
                p += v


class Adam(_Optimizer):
    """Adam (Kingma and Ba), with Keras' defaults and epsilon placement.

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g**2``,
    ``p -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + epsilon)``.

    Parameters
    ----------
    learning_rate : float, default 0.001
    beta_1 : float, default 0.9
    beta_2 : float, default 0.999
    epsilon : float, default 1e-7
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__()
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.beta_1 = _unit(beta_1, "beta_1")
        self.beta_2 = _unit(beta_2, "beta_2")
        self.epsilon = _positive(epsilon, "epsilon")

    def __repr__(self) -> str:
        return (f"Adam(learning_rate={self.learning_rate}, beta_1={self.beta_1}, beta_2={self.beta_2}, "
                f"epsilon={self.epsilon})")

    def _init_state(self, params):
        return [(np.zeros_like(p), np.zeros_like(p)) for p in params]

    def _update(self, params, grads):
        t = self.iterations
        lr_t = self.learning_rate * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        for (m, v), p, g in zip(self._state, params, grads):
            dt = p.dtype.type
            m *= dt(self.beta_1)
            m += dt(1.0 - self.beta_1) * g
            v *= dt(self.beta_2)
            v += dt(1.0 - self.beta_2) * np.square(g)
            p -= dt(lr_t) * m / (np.sqrt(v) + dt(self.epsilon))
