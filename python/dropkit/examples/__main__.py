"""``python -m dropkit.examples NAME [--tiny] [--out DIR] [--seed N] [--epochs N] [--mnist DIR]``."""
from __future__ import annotations

import argparse
import sys

from . import EXAMPLES, run


def main(argv=None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m dropkit.examples", description=__doc__)
    p.add_argument("name", choices=sorted(EXAMPLES) + ["all"])
    p.add_argument("--tiny", action="store_true", help="tiny settings (seconds; used by the tests)")
    p.add_argument("--out", default=".", help="folder for the PNGs (default: current folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the example's epoch count")
    p.add_argument("--mnist", default=None, help="MNIST folder (default: $DROPKIT_MNIST)")
    a = p.parse_args(argv)
    names = [n for n in EXAMPLES] if a.name == "all" else [a.name]
    for name in names:
        kwargs = dict(out_dir=a.out, tiny=a.tiny, seed=a.seed, epochs=a.epochs)
        if name in ("cnn", "profile", "blocks"):
            kwargs["mnist"] = a.mnist
        run(name, **kwargs)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
