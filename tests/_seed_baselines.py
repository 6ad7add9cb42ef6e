"""The seed documents' own NumPy dropout classes, re-typed as written (bugs included).

Source: ``shared/seeds/000_41b8142d60501da9.txt`` ("Intuition Behind Neural Network Dropout"),
the slide named on each class; only the layout and these comments changed. A test fixture (it was
dropkit.bench.baselines until the benchmark stopped timing the seeds' classes). Known quirks, kept
on purpose: slide 1 ``Dropout`` draws an int64 ``np.random.binomial`` mask (a float32 input gives
a float64 output) and its ``backward`` forgets the ``1 / (1 - rate)`` scale; slide 6
``InvertedDropout`` draws float64 uniforms for every element. Both draw from NumPy's global
``np.random`` state. The benchmark no longer times them (its NumPy baseline is the tuned
formulation of :mod:`dropkit.bench.contenders`); the tests compare the library with them.
"""

import numpy as np

__all__ = ["Dropout", "InvertedDropout"]


# Seed 000, slide 1: "Understanding Dropout Implementation".
class Dropout:
    def __init__(self, dropout_rate=0.5):
        self.rate = dropout_rate
        self.mask = None
        self.training = True

    def forward(self, inputs):
        if self.training:
            # Create binary mask with probability (1-rate)
            self.mask = np.random.binomial(1, 1 - self.rate, inputs.shape)
            # Scale up activations to maintain expected values
            return (inputs * self.mask) / (1 - self.rate)
        return inputs

    def backward(self, grad_output):
        # Gradient is only propagated through active units
        return grad_output * self.mask


# Seed 000, slide 6: "Inverted Dropout Implementation".
class InvertedDropout:
    def __init__(self, keep_prob=0.8):
        self.keep_prob = keep_prob
        self.mask = None

    def forward(self, x, training=True):
        if not training:
            return x

        # Generate mask and scale during training
        self.mask = np.random.rand(*x.shape) < self.keep_prob
        return (x * self.mask) / self.keep_prob

    def backward(self, dout):
        return dout * self.mask / self.keep_prob
