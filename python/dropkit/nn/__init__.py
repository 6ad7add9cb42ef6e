"""dropkit.nn: a small NumPy network toolkit around dropkit's dropout layers.

Layers with ``forward(x, training)`` / ``backward(grad)`` / ``params`` / ``grads`` (NCHW images,
float32 by default, float64 for gradient checks), softmax cross-entropy, SGD and Adam, a
``Sequential`` container in which every dropkit dropout layer plugs in as is, ``fit`` with a
Keras-style ``History``, Monte Carlo dropout (``mc_predict``), the seeds' networks
(``SimpleNNWithDropout``, ``RegularizedNetwork``, ``train_network``) and data loaders.
"""
from ..layers import Dropout, InvertedDropout
from . import datasets
from .layers import BatchNormalization, Conv2D, Dense, DenseLayer, Flatten, Layer, MaxPooling2D, ReLU
from .losses import SoftmaxCrossEntropy, softmax
from .mc import MCPrediction, mc_predict
from .model import RegularizedNetwork, Sequential, SimpleNNWithDropout, is_concrete, is_stochastic
from .optim import SGD, Adam
from .training import EarlyStopping, History, evaluate, fit, train_network

__all__ = [
    "Adam", "BatchNormalization", "Conv2D", "Dense", "DenseLayer", "Dropout", "EarlyStopping", "Flatten",
    "History", "InvertedDropout", "Layer", "MCPrediction", "MaxPooling2D", "ReLU", "RegularizedNetwork", "SGD",
    "Sequential", "SimpleNNWithDropout", "SoftmaxCrossEntropy", "datasets", "evaluate", "fit", "is_concrete",
    "is_stochastic",
    "mc_predict", "softmax", "train_network",
]
