#!/usr/bin/env python
"""Thin driver: compare two benchmark JSON files (say, before and after a change to the core).

    python bench/compare.py OLD/results.json NEW/results.json [--backend dropkit]

For every cell both runs measured, prints the backend's median in each and new/old (below 1 is
faster). Both files are ``dropkit-bench/1`` or ``/2`` JSON written by ``python -m dropkit.bench``; the
machines and loads may differ, so compare runs made on the same machine.
"""

import argparse
import json
import statistics
import sys


def _cells(path, backend):
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    if doc.get("schema") not in ("dropkit-bench/1", "dropkit-bench/2"):
        sys.exit(f"{path}: not a dropkit-bench JSON file (schema {doc.get('schema')!r})")
    return {
        (r["variant"], r["direction"], r["dtype"], r["threads"], r["size"]): statistics.median(r["samples_s"])
        for r in doc["results"]
        if r["backend"] == backend
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--backend", default="dropkit", help="backend to compare (default dropkit)")
    a = ap.parse_args(argv)
    old, new = _cells(a.old, a.backend), _cells(a.new, a.backend)
    common = sorted(set(old) & set(new))
    if not common:
        print("no cell in common")
        return 1
    print(f"{'variant':<16} {'dir':<8} {'dtype':<8} {'thr':>3} {'size':>6} "
          f"{'old ns/el':>10} {'new ns/el':>10} {'new/old':>8}")
    for key in common:
        v, d, dt, t, n = key
        o, w = old[key] / n * 1e9, new[key] / n * 1e9
        print(f"{v:<16} {d:<8} {dt:<8} {t:>3} {'2^%d' % (n.bit_length() - 1):>6} {o:>10.3f} {w:>10.3f} {w / o:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
