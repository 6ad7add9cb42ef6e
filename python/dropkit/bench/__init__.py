"""dropkit's benchmark: ``python -m dropkit.bench`` (see ``--help``).

Times forward and backward of every registered variant (:mod:`dropkit.bench.variants`) against
dropkit's NumPy reference, a tuned pure-NumPy formulation, the seeds' own code
(:mod:`dropkit.bench.baselines`) and PyTorch when it imports, next to the streaming limit
``np.multiply(x, 2.0, out=y)``; writes a table, a JSON file and a PNG plot; measures peak memory;
and reports the core's performance targets (``--targets``).

Nothing here is imported by ``import dropkit``; the submodules import lazily so that
``python -m dropkit.bench.memory`` (the memory child process) starts clean.
"""

from typing import Optional, Sequence

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark command line with ``argv`` (default: ``sys.argv[1:]``); return its exit code."""
    from .cli import main as _main

    return _main(argv)
