#!/usr/bin/env python
"""Thin driver: the core's performance targets, the same as ``python -m dropkit.bench --targets``.

Prints, measured in one process on the same arrays (float32, rate 0.5, one thread unless stated,
interleaved rounds, ratio of medians), each ratio with its goal and PASS/MISS; the rows and goals
are listed in ``docs/performance.md``.

A MISS never fails the process. Options: ``--targets-rounds N``, ``--targets-size K``,
``--targets-threads-size K``, ``--rate R``, ``--seed S``, ``--out DIR`` (writes targets.json).
"""

import sys

from dropkit.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["--targets", *sys.argv[1:]]))
