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
from .dropout import SCHEMES
from .network import HIDDEN_ACTIVATIONS, OUTPUTS
from .plots import render_all
from .results import save_result
from .studies import DEFAULT_STUDIES
from .studies import depth as depth_study
from .studies import mc as mc_study
from .studies import spread as spread_study
from .studies import sweep as sweep_study

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


# --- the scaled pass against the exact ensemble: sweep, mc, spread, depth (issue 3) --

def _run_study(study, out: Path, params: dict) -> None:
    """Validate the grid (a bad one is a usage error: exit 2, nothing written), run, save."""
    try:
        params = study.check_params(**params)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    df = study.run(progress=True, **params)
    path = save_result(df, out, params)
    click.echo(f"wrote {path} ({len(df)} rows)")


def _study_options(study, *, seeds: bool = True, shape: bool = True):
    """Options every study command shares; defaults are the study's default grid."""
    d = study.DEFAULTS
    options = [
        click.option("--activation", "activations", type=click.Choice(HIDDEN_ACTIVATIONS),
                     multiple=True, default=d["activations"], show_default=True,
                     help="Hidden activation; repeat the option for several."),
        click.option("--n-inputs", type=click.IntRange(1), default=d["n_inputs"],
                     show_default=True, help="Random inputs X ~ N(0, 1) per network."),
        click.option("--seed", type=click.IntRange(0), default=d["seed"], show_default=True,
                     help="Root seed; every network gets its own stream from "
                          "SeedSequence(seed).spawn."),
        click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                     default=RESULTS_DIR / f"{study.NAME}.csv", show_default=True,
                     help="Result CSV; its parameters go to a JSON sidecar next to it."),
    ]
    if seeds:
        options.append(click.option(
            "--n-seeds", type=click.IntRange(1), default=d["n_seeds"], show_default=True,
            help="Random networks per point (medians and bands are over them)."))
    if shape:
        options += [
            click.option("--width", type=click.IntRange(1), default=d["width"],
                         show_default=True, help="Units per hidden layer (all dropped)."),
            click.option("--depth", type=click.IntRange(1), default=d["depth"],
                         show_default=True, help="Number of hidden layers."),
        ]
    if "scheme" in d:
        options += [
            click.option("--scheme", type=click.Choice(SCHEMES), default=d["scheme"],
                         show_default=True, help="Dropout scheme."),
            click.option("--keep-prob", type=KEEP_PROB, default=d["keep_prob"],
                         show_default=True, help="Probability of keeping a hidden unit."),
        ]

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@main.command()
@_study_options(sweep_study)
@click.option("--output", "outputs", type=click.Choice(OUTPUTS), multiple=True,
              default=sweep_study.DEFAULTS["outputs"], show_default=True,
              help="Output function (softmax has 3 units, the others 1); repeat for several.")
@click.option("--keep-prob", "keep_probs", type=KEEP_PROB, multiple=True,
              default=sweep_study.DEFAULTS["keep_probs"], show_default=True,
              help="Probability of keeping a hidden unit; repeat for several.")
def sweep(out, **params):
    """Gap between the exact ensemble and the scaled pass across keep_prob.

    Vanilla and inverted dropout on the same weights, and vanilla dropout on
    the equivalent weights; the arithmetic mean and the NWGM.
    """
    _run_study(sweep_study, out, {**params, "n_features": sweep_study.DEFAULTS["n_features"]})


@main.command()
@_study_options(mc_study)
@click.option("--output", type=click.Choice(OUTPUTS), default=mc_study.DEFAULTS["output"],
              show_default=True, help="Output function (softmax has 3 units, the others 1).")
@click.option("--k", "ks", type=click.IntRange(1), multiple=True,
              default=mc_study.DEFAULTS["ks"], show_default=True,
              help="Number K of sampled subnetworks; repeat for several.")
@click.option("--n-repeats", type=click.IntRange(1), default=mc_study.DEFAULTS["n_repeats"],
              show_default=True, help="Independent K-member ensembles per K and network.")
def mc(out, **params):
    """Error of K sampled subnetworks against the exact ensemble, vs the scaled pass's."""
    _run_study(mc_study, out, {**params, "n_features": mc_study.DEFAULTS["n_features"]})


@main.command()
@_study_options(spread_study, seeds=False)
@click.option("--output", type=click.Choice(spread_study.OUTPUTS),
              default=spread_study.DEFAULTS["output"], show_default=True,
              help="Output function (one unit).")
def spread(out, **params):
    """Every subnetwork's output for a few inputs, with the mean, NWGM and scaled pass."""
    _run_study(spread_study, out, {**params, "n_features": spread_study.DEFAULTS["n_features"]})


@main.command()
@_study_options(depth_study, shape=False)
@click.option("--output", type=click.Choice(OUTPUTS), default=depth_study.DEFAULTS["output"],
              show_default=True, help="Output function (softmax has 3 units, the others 1).")
@click.option("--depth", "depths", type=click.IntRange(1), multiple=True,
              default=depth_study.DEFAULTS["depths"], show_default=True,
              help="Number of hidden layers; repeat for several.")
@click.option("--width", "widths", type=click.IntRange(1), multiple=True,
              default=depth_study.DEFAULTS["widths"], show_default=True,
              help="Units per hidden layer; repeat for several.")
@click.option("--max-dropped", type=click.IntRange(1, depth_study.MAX_DROPPED),
              default=depth_study.DEFAULTS["max_dropped"], show_default=True,
              help="Skip networks with more dropped units (depth * width) than this.")
def depth(out, **params):
    """Gap against the number of hidden layers and their width."""
    _run_study(depth_study, out, {**params, "n_features": depth_study.DEFAULTS["n_features"]})


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
