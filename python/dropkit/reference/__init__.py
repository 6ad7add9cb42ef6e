"""dropkit.reference: the pure-NumPy twin of dropkit's C++ core.

Two levels, each mirroring the core name for name:

- the public functions :func:`dropout`, :func:`dropout_backward`, :func:`dropout_mask` and
  :func:`philox4x32_10`, with the same signatures as ``dropkit.dropout`` etc. (minus ``backend``),
  which run the public API on the NumPy kernels;
- the kernels in :mod:`dropkit.reference._kernels` (``philox4x32_10``, ``bernoulli_apply``,
  ``bernoulli_mask``), one per function of ``dropkit._core``, same arguments, same bits.

Both follow docs/rng.md; the tests check them against each other bit for bit. Use
``dropkit.set_backend("numpy")``, ``DROPKIT_BACKEND=numpy`` at import, or ``backend="numpy"`` per
call to run all of dropkit on this backend.
"""
from __future__ import annotations

from . import _kernels

__all__ = ["dropout", "dropout_backward", "dropout_mask", "philox4x32_10"]


def dropout(x, rate, *, seed, offset=0, training=True, inverted=True, out=None):
    """:func:`dropkit.dropout` on the NumPy reference kernels (same arguments, same bits)."""
    from .. import _api

    return _api.dropout(x, rate, seed=seed, offset=offset, training=training, inverted=inverted,
                        out=out, backend="numpy")


def dropout_backward(grad, rate, *, seed, offset=0, inverted=True, out=None):
    """:func:`dropkit.dropout_backward` on the NumPy reference kernels."""
    from .. import _api

    return _api.dropout_backward(grad, rate, seed=seed, offset=offset, inverted=inverted, out=out,
                                 backend="numpy")


def dropout_mask(shape, rate, *, seed, offset=0, packed=False):
    """:func:`dropkit.dropout_mask` on the NumPy reference kernels."""
    from .. import _api

    return _api.dropout_mask(shape, rate, seed=seed, offset=offset, packed=packed, backend="numpy")


def philox4x32_10(counter, key):
    """:func:`dropkit.philox4x32_10` in NumPy (uint64 arithmetic), broadcasting as the core's."""
    return _kernels.philox4x32_10(counter, key)
