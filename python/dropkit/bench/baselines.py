"""The seeds' own NumPy dropout classes, re-typed as benchmark baselines.

Source: ``shared/seeds/000_41b8142d60501da9.txt`` ("Intuition Behind Neural Network Dropout"),
the slide named on each class. The code is copied as it stands, bugs and all, because these
classes are what the benchmark compares against; only the layout (and these comments) changed.
Known quirks, kept on purpose:

- slide 1 ``Dropout``: the mask comes from ``np.random.binomial`` as int64, so a float32 input
  gives a float64 output; ``backward`` forgets the ``1 / (1 - rate)`` scale of the forward.
- slide 6 ``InvertedDropout``: draws float64 uniforms for every element.
- slide 10 ``SpatialDropout2D``: fine as written (the mask is broadcast, not materialised).
- slide 11 ``GaussianDropout``: stores the float64 noise of every element for ``backward``.
- slide 14 ``TemporalDropout``: has no ``backward``.

All of them draw from NumPy's global ``np.random`` state; the benchmark seeds it once per run.
The registry in :mod:`dropkit.bench.variants` uses slides 1 and 6 (dropout), 10 (spatial2d),
11 (gaussian) and 14 (temporal; its backward is slide 10's formula on the stored mask). Slide 7
(concrete) is not a baseline: it has no ``backward`` and keeps nothing one could use.
"""

import numpy as np

__all__ = [
    "Dropout",
    "InvertedDropout",
    "SpatialDropout2D",
    "GaussianDropout",
    "TemporalDropout",
]


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


# Seed 000, slide 10: "Spatial Dropout Implementation".
class SpatialDropout2D:
    def __init__(self, drop_rate=0.5):
        self.drop_rate = drop_rate
        self.mask = None

    def forward(self, x, training=True):
        if not training:
            return x

        # x shape: (batch_size, channels, height, width)
        _, channels, _, _ = x.shape

        # Create mask for entire feature maps
        mask = np.random.binomial(1, 1 - self.drop_rate, size=(x.shape[0], channels, 1, 1))
        self.mask = np.broadcast_to(mask, x.shape)

        return x * self.mask / (1 - self.drop_rate)

    def backward(self, dout):
        return dout * self.mask / (1 - self.drop_rate)


# Seed 000, slide 11: "Gaussian Dropout Implementation".
class GaussianDropout:
    def __init__(self, drop_rate=0.5):
        self.drop_rate = drop_rate
        self.noise = None

    def forward(self, x, training=True):
        if not training:
            return x

        # Calculate standard deviation for multiplicative noise
        std = np.sqrt(self.drop_rate / (1 - self.drop_rate))

        # Generate multiplicative noise
        self.noise = np.random.normal(1, std, x.shape)
        return x * self.noise

    def backward(self, dout):
        return dout * self.noise


# Seed 000, slide 14: "Temporal Dropout for RNNs".
class TemporalDropout:
    def __init__(self, drop_rate=0.5):
        self.drop_rate = drop_rate
        self.mask = None

    def forward(self, x, training=True):
        """
        x shape: (batch_size, time_steps, features)
        """
        if not training:
            return x

        # Create mask consistent across time steps
        mask_shape = (x.shape[0], 1, x.shape[2])  # (batch, 1, features)
        self.mask = np.random.binomial(1, 1 - self.drop_rate, mask_shape)
        self.mask = np.broadcast_to(self.mask, x.shape)

        return x * self.mask / (1 - self.drop_rate)

    def reset_state(self):
        self.mask = None
