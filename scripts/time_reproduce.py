#!/usr/bin/env python
"""Wall time of `ensemble-study reproduce` on one core against every core, in one run.

    python scripts/time_reproduce.py          # both full runs: writes results/reproduce_time.csv
    python scripts/time_reproduce.py --quick  # smoke run: quick/results/reproduce_time.csv
    python scripts/time_reproduce.py --publish  # the every-core run regenerates results/, figures/

Runs `reproduce --fresh` twice, each into its own temporary folder (the
committed results/ and figures/ are not touched, and no stored cell is
reused): once with `--jobs 1` in a process pinned to one CPU (so that
exact_ensemble's threads and BLAS get one core too), once with the default
`--jobs` (every core). With `--publish` the every-core run writes the
committed results/ and figures/ instead: the same bytes as any other run
from the same seeds, so one measurement also regenerates them. Prints both
wall times and the ratio, and writes them as one CSV (with its JSON sidecar).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ensemble_study import __version__  # noqa: E402
from ensemble_study.executor import available_cores  # noqa: E402
from ensemble_study.results import save_result  # noqa: E402

MAIN = "from ensemble_study.cli import main; main()"


def _time_reproduce(folder: Path, quick: bool, jobs: int | None, cpus: set[int] | None) -> float:
    args = [sys.executable, "-c", MAIN, "reproduce", "--fresh",
            "--results", str(folder / "results"), "--figures", str(folder / "figures")]
    args += ["--quick"] * quick + (["--jobs", str(jobs)] if jobs is not None else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus is not None else None
    start = time.perf_counter()
    done = subprocess.run(args, env=env, preexec_fn=pin, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise click.ClickException(f"reproduce failed:\n{done.stderr[-3000:]}")
    return seconds


@click.command()
@click.option("--quick", is_flag=True, help="Time `reproduce --quick` (a smoke run).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              show_default="results/reproduce_time.csv; with --quick, "
                           "quick/results/reproduce_time.csv",
              help="Result CSV; its parameters go to a JSON sidecar next to it.")
@click.option("--publish", is_flag=True,
              help="Run the every-core pass into the committed results/ and figures/ "
                   "instead of a temporary folder (not with --quick).")
def main(quick, out, publish):
    """Time `reproduce` on one core and on every core; print and save the ratio."""
    if quick and publish:
        raise click.UsageError("--publish writes the committed results/ and figures/; "
                               "a --quick smoke run never does (drop one of the two)")
    out = out or Path("quick/results" if quick else "results") / "reproduce_time.csv"
    cores = available_cores()
    pinnable = hasattr(os, "sched_setaffinity")
    one = {min(os.sched_getaffinity(0))} if pinnable else None
    rows = []
    for label, jobs, cpus in (("one core", 1, one), ("every core", None, None)):
        with tempfile.TemporaryDirectory(prefix="reproduce-time-") as tmp:
            folder = REPO if publish and jobs is None else Path(tmp)
            click.echo(f"reproduce{' --quick' * quick} on {label} into {folder} ...", err=True)
            seconds = _time_reproduce(folder, quick, jobs, cpus)
        rows.append({"run": label, "jobs": 1 if jobs == 1 else cores,
                     "cpus": 1 if cpus is not None else cores, "quick": quick,
                     "wall_s": seconds})
        click.echo(f"  {seconds:.1f} s", err=True)
    df = pd.DataFrame(rows)
    df["speedup"] = df["wall_s"].iloc[0] / df["wall_s"]
    click.echo(df.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    params = {"quick": quick, "cores": cores, "pinned_one_core": pinnable,
              "published": publish, "version": __version__}
    click.echo(f"wrote {save_result(df, out, params)}")


if __name__ == "__main__":
    main()
