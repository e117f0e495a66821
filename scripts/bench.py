#!/usr/bin/env python
"""Benchmark exact enumeration against the naive per-mask loop.

    python scripts/bench.py [--quick] [--out results/bench.csv] [--figure figures/bench.png]
"""

from ensemble_study.cli import bench

if __name__ == "__main__":
    bench()
