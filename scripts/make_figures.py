#!/usr/bin/env python
"""Redraw every figure under figures/ from the result CSVs under results/.

    python scripts/make_figures.py [--results results] [--out figures]
"""

from ensemble_study.cli import figures

if __name__ == "__main__":
    figures()
