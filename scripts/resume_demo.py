#!/usr/bin/env python
"""What resuming an interrupted study saves, measured in one run.

    python scripts/resume_demo.py          # the sweep at 10 seeds: writes results/resume.csv
    python scripts/resume_demo.py --quick  # smoke run: quick/results/resume.csv

In a temporary folder, and with `--fresh` so that nothing stored before is
reused: runs the study to the end (timed); runs it again into a second
folder and interrupts it (SIGINT, as Ctrl-C does) once half of its cells
are stored; runs that same command once more, which resumes from the store
(timed), and compares the two CSVs byte for byte. The committed results/
are not touched. Prints the row and writes it as one CSV (with its JSON
sidecar).
"""

from __future__ import annotations

import os
import re
import signal
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
from ensemble_study.results import save_result  # noqa: E402

MAIN = "from ensemble_study.cli import main; main()"


def _command(out: Path, quick: bool, fresh: bool) -> list[str]:
    args = [sys.executable, "-c", MAIN, "sweep", "--out", str(out)]
    args += (["--n-seeds", "2", "--width", "4", "--keep-prob", "0.5", "--keep-prob", "0.9"]
             if quick else ["--n-seeds", "10"])
    return args + ["--fresh"] * fresh


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}


def _stored(out: Path) -> int:
    return sum(1 for _ in (out.parent / ".cells").glob("sweep-*/cell-*.csv"))


def _run(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if done.returncode:
        raise click.ClickException(f"{' '.join(args[3:])} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stderr


@click.command()
@click.option("--quick", is_flag=True,
              help="A tiny sweep (2 seeds, width 4, two keep_probs): a smoke run.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              show_default="results/resume.csv; with --quick, quick/results/resume.csv",
              help="Result CSV; its parameters go to a JSON sidecar next to it.")
def main(quick, out):
    """Interrupt a study half-way, resume it; print and save what resuming saved."""
    out = out or Path("quick/results" if quick else "results") / "resume.csv"
    with tempfile.TemporaryDirectory(prefix="resume-demo-") as tmp:
        whole, part = Path(tmp) / "whole" / "sweep.csv", Path(tmp) / "part" / "sweep.csv"
        click.echo("the sweep, uninterrupted ...", err=True)
        whole_s, log = _run(_command(whole, quick, fresh=True))
        total = int(re.search(r"\[sweep\] (\d+) cells", log).group(1))
        click.echo(f"  {whole_s:.1f} s, {total} cells; again, interrupted half-way ...", err=True)
        proc = subprocess.Popen(_command(part, quick, fresh=True), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        while proc.poll() is None and _stored(part) < total / 2:
            time.sleep(0.05)
        if proc.poll() is not None:
            raise click.ClickException("the sweep finished before half its cells were stored")
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the worker processes too
        proc.wait()
        stored = _stored(part)
        click.echo(f"  interrupted with {stored} cells stored; resumed ...", err=True)
        resumed_s, log = _run(_command(part, quick, fresh=False))
        reused = re.search(r"\[sweep\] \d+ cells(?:, (\d+) from the store)?", log).group(1)
        identical = whole.read_bytes() == part.read_bytes()
    df = pd.DataFrame([{
        "study": "sweep", "cells": total, "stored_at_interrupt": stored,
        "from_store": int(reused or 0), "recomputed": total - int(reused or 0),
        "uninterrupted_s": whole_s, "resumed_s": resumed_s, "identical": identical}])
    click.echo(df.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    if not identical:
        raise click.ClickException("the resumed CSV differs from the uninterrupted one")
    params = {"quick": quick, "command": " ".join(_command(Path("OUT"), quick, False)[3:]),
              "version": __version__}
    click.echo(f"wrote {save_result(df, out, params)}")


if __name__ == "__main__":
    main()
