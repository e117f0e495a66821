"""The ``ensemble-study`` command line: thin click commands over the library.

Each study command runs one study function, saves its tidy table with
:func:`ensemble_study.results.save_result` (CSV + JSON sidecar, written
atomically) and, like every command here, holds no logic of its own.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import click

from . import __version__
from .plots import render_all
from .results import save_result
from .studies import DEFAULT_STUDIES

RESULTS_DIR = Path("results")
FIGURES_DIR = Path("figures")

KEEP_PROB = click.FloatRange(0, 1, min_open=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ensemble-study")
def main():
    """Exact dropout ensembles on small networks, against the scaled pass.

    Each study command writes a CSV (plus a JSON sidecar with its parameters)
    under results/; `figures` redraws every PNG under figures/ from those
    CSVs; `reproduce` runs every default study and then `figures`.
    """


@main.command()
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path),
              default=RESULTS_DIR, show_default=True, help="Folder of result CSVs to read.")
@click.option("--out", "figures_dir", type=click.Path(file_okay=False, path_type=Path),
              default=FIGURES_DIR, show_default=True, help="Folder to write the PNGs into.")
def figures(results_dir, figures_dir):
    """Redraw every figure under --out from the CSVs under --results."""
    if not results_dir.is_dir():
        raise click.BadParameter(f"no such folder: {results_dir}", param_hint="--results")
    written = render_all(results_dir, figures_dir)
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo(f"no result CSV with a figure under {results_dir}", err=True)


@main.command()
@click.option("--quick", is_flag=True, help="Small grids: a smoke run in well under a minute.")
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path),
              default=RESULTS_DIR, show_default=True, help="Folder to write result CSVs into.")
@click.option("--figures", "figures_dir", type=click.Path(file_okay=False, path_type=Path),
              default=FIGURES_DIR, show_default=True, help="Folder to write the PNGs into.")
def reproduce(quick, results_dir, figures_dir):
    """Run every default study, then redraw every figure."""
    for name in DEFAULT_STUDIES:
        study = importlib.import_module(f"ensemble_study.studies.{name}")
        click.echo(f"[{name}] running{' (quick)' if quick else ''} ...", err=True)
        start = time.perf_counter()
        df, params = study.run_default(quick=quick, progress=True)
        path = save_result(df, results_dir / f"{study.NAME}.csv", params)
        click.echo(f"[{name}] wrote {path} ({len(df)} rows, "
                   f"{time.perf_counter() - start:.1f} s)", err=True)
    for path in render_all(results_dir, figures_dir):
        click.echo(f"wrote {path}")
