#!/usr/bin/env python
"""Thin driver: the same as ``python -m dropkit.bench`` (all options pass through).

The benchmark itself ships inside the package as :mod:`dropkit.bench`, so that it also runs from
an installed wheel. Examples::

    python bench/run.py                      # quick mode, under a minute on 2 cores
    python bench/run.py --full               # 2^10..2^24, float32 and float64
    python bench/run.py --variants dropout --directions forward --sizes 16 20 24 --threads 1
"""

import sys

from dropkit.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
