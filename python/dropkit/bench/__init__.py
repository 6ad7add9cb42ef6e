"""dropkit's benchmark: ``python -m dropkit.bench`` (see ``--help``).

Times forward and backward of every variant of dropkit's variant registry against a tuned
pure-NumPy formulation and PyTorch when it imports (``torch.nn.functional`` and
:mod:`dropkit.torch`), next to ``np.multiply(x, 2.0, out=y)``, with adaptive interleaved repeats;
prints a summary, writes full tables, JSON and a picture; ``--targets`` reports the performance
targets. Nothing here is imported by ``import dropkit``.
"""

from typing import Optional, Sequence

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark command line with ``argv`` (default: ``sys.argv[1:]``); return its exit code."""
    from .cli import main as _main

    return _main(argv)
