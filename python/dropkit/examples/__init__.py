"""Worked examples on real data, runnable as ``python -m dropkit.examples NAME``.

Names: ``overfitting`` (seed 002: with and without dropout, inverted vs classic), ``variants``
(every dropout variant on one task), ``cnn`` (the seed's MNIST CNN), ``mc`` (Monte Carlo dropout:
accuracy vs uncertainty, reliability), ``profile`` (share of an epoch spent in dropout),
``blocks`` (DropBlock on MNIST and DropConnect on digits, with and without).
Each prints a Markdown table and (except ``profile``) writes a PNG; ``--tiny`` runs in seconds.
Needs the ``examples`` extra (scikit-learn, matplotlib).
"""
from __future__ import annotations

from importlib import import_module

EXAMPLES = {
    "overfitting": "overfitting",
    "variants": "variants",
    "cnn": "cnn",
    "mc": "mc",
    "profile": "profile",
    "blocks": "blocks",
}


def run(name, **kwargs):
    """Run example ``name`` (a key of ``EXAMPLES``) with the given settings; returns its results dict.

    Raises
    ------
    ValueError
        Unknown name.
    """
    if name not in EXAMPLES:
        raise ValueError(f"name must be one of {sorted(EXAMPLES)}, got {name!r}")
    return import_module(f"{__name__}.{EXAMPLES[name]}").run(**kwargs)


__all__ = ["EXAMPLES", "run"]
