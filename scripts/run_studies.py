#!/usr/bin/env python
"""Run the studies from a checkout: the ``ensemble-study`` command group.

    python scripts/run_studies.py reproduce          # every default study + figures
    python scripts/run_studies.py sweep --help       # one study, its options
"""

from ensemble_study.cli import main

if __name__ == "__main__":
    main()
