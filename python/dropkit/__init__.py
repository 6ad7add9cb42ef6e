"""dropkit: fast, exact, reproducible dropout for NumPy.

A C++17 core (its own thread pool, AVX2/AVX-512 with runtime dispatch) over a counter-based
Philox4x32-10 stream: every mask is a pure function of (seed, offset, element index, rate), the
same on every thread count, SIMD target and chunking, and the same as the pure-NumPy reference
in :mod:`dropkit.reference`. See docs/rng.md for the stream, README.md for an overview.
"""
from . import _core
from ._api import dropout, dropout_backward, dropout_mask, philox4x32_10
from ._runtime import (available_simd_targets, get_backend, get_num_threads, set_backend,
                       set_num_threads, set_simd_target, simd_target)
from .layers import Dropout, InvertedDropout
from .variants import (alpha_dropout, alpha_dropout_backward, concrete_dropout, concrete_dropout_backward,
                       dropout_nd, dropout_nd_backward, feature_alpha_dropout, feature_alpha_dropout_backward,
                       gaussian_dropout, gaussian_dropout_backward, gaussian_noise, gaussian_noise_backward)
from .variant_layers import (AdaptiveDropout, AlphaDropout, ConcreteDropout, CurriculumDropout, DropPath,
                             FeatureAlphaDropout, GaussianDropout, GaussianNoise, SpatialDropout1D, SpatialDropout2D,
                             SpatialDropout3D, TemporalDropout)
from . import reference
from .blocks import drop_block, drop_block_backward, drop_block_mask, drop_connect, drop_connect_backward
from .block_layers import DropBlock1D, DropBlock2D, DropBlock3D

__version__: str = _core.__version__
STREAM_VERSION: int = _core.STREAM_VERSION

__all__ = [
    "AdaptiveDropout",
    "AlphaDropout",
    "ConcreteDropout",
    "CurriculumDropout",
    "DropPath",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "TemporalDropout",
    "alpha_dropout",
    "alpha_dropout_backward",
    "concrete_dropout",
    "concrete_dropout_backward",
    "dropout_nd",
    "dropout_nd_backward",
    "feature_alpha_dropout",
    "feature_alpha_dropout_backward",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "gaussian_noise",
    "gaussian_noise_backward",
    "Dropout",
    "InvertedDropout",
    "STREAM_VERSION",
    "available_simd_targets",
    "dropout",
    "dropout_backward",
    "dropout_mask",
    "get_backend",
    "get_num_threads",
    "philox4x32_10",
    "reference",
    "set_backend",
    "set_num_threads",
    "set_simd_target",
    "simd_target",
    "DropBlock1D",
    "DropBlock2D",
    "DropBlock3D",
    "drop_block",
    "drop_block_backward",
    "drop_block_mask",
    "drop_connect",
    "drop_connect_backward",
]
