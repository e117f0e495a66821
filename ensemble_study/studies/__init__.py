"""The studies: one module each, each returning one tidy DataFrame.

Every study module defines ``NAME`` (the CSV stem under ``results/``) and
``run_default(quick: bool, progress: bool) -> tuple[DataFrame, dict]`` that
runs its default grid (a small one when ``quick``) and returns the table and
the parameters to record in the sidecar. ``DEFAULT_STUDIES`` lists what
``ensemble-study reproduce`` runs, in order.
"""

DEFAULT_STUDIES: list[str] = ["sweep", "mc", "spread", "depth", "trained", "boundary",
                                "approximations"]
