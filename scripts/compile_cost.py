#!/usr/bin/env python
"""The compiled kernels' first-call cost: an empty numba cache, then a filled one.

    python scripts/compile_cost.py [--out results/compile_cost.csv]

Each measurement is a new process running ``ensemble_study.bench.warm_up``
(every compiled path once, on tiny networks) with ``NUMBA_CACHE_DIR`` in a
temporary folder: the first process compiles and fills the cache, the
second loads from it. The import of the package is timed apart.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pandas as pd

from ensemble_study.results import save_result

PROBE = ("import time; t = time.perf_counter(); import ensemble_study.bench as b; "
         "i = time.perf_counter() - t; w = b.warm_up(); "
         "import json; print(json.dumps({'import_s': i, 'warm_up_s': w}))")


@click.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("results/compile_cost.csv"), show_default=True,
              help="Result CSV (and its JSON sidecar).")
def main(out):
    """Time the kernels' compilation (empty cache) and loading (filled cache)."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**__import__("os").environ, "NUMBA_CACHE_DIR": cache}
        for cache_state in ("empty", "filled"):
            res = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True,
                                 capture_output=True, text=True)
            rows.append({"cache": cache_state, **json.loads(res.stdout.strip().splitlines()[-1])})
            click.echo(f"{cache_state} cache: import {rows[-1]['import_s']:.2f} s, "
                       f"first call of every kernel {rows[-1]['warm_up_s']:.2f} s")
    path = save_result(pd.DataFrame(rows), out, {"python": sys.version.split()[0]})
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
