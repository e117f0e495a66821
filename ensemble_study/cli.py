"""The ``ensemble-study`` command line: thin click commands over the library.

Each study command runs one study function, saves its tidy table with
:func:`ensemble_study.results.save_result` (CSV + JSON sidecar, written
atomically) and, like every command here, holds no logic of its own.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from pathlib import Path

import click

from . import __version__
from .datasets import DATASETS
from .dropout import SCHEMES
from .network import HIDDEN_ACTIVATIONS, OUTPUTS
from .plots import render_all
from .results import save_result
from .studies import DEFAULT_STUDIES
from .studies import depth as depth_study
from .studies import mc as mc_study
from .studies import spread as spread_study
from .studies import sweep as sweep_study
from .train import OPTIMIZERS, TrainConfig

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


# --- training with dropout (issue 5) ------------------------------------------

@main.command()
@click.option("--dataset", type=click.Choice(DATASETS), default="digits", show_default=True,
              help="Offline dataset (two classes: one sigmoid output; more: softmax).")
@click.option("--keep-prob", type=KEEP_PROB, default=0.5, show_default=True,
              help="Probability of keeping a hidden unit during training.")
@click.option("--scheme", type=click.Choice(SCHEMES), default="inverted", show_default=True,
              help="Dropout scheme (vanilla scales at test time, inverted at train time).")
@click.option("--hidden", type=click.IntRange(1), multiple=True, default=(10, 10),
              show_default=True, help="Width of a hidden ReLU layer; repeat once per layer. "
              "Every hidden layer is dropped: 2**(sum of widths) subnetworks.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True,
              help="Adam, or mini-batch SGD with momentum 0.9.")
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=0.01,
              show_default=True, help="Step size.")
@click.option("--epochs", type=click.IntRange(1), default=40, show_default=True,
              help="Passes over the training split.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Examples per step (each with its own fresh mask).")
@click.option("--weight-decay", type=click.FloatRange(0), default=0.0, show_default=True,
              help="L2 penalty 0.5 * wd * ||W||^2 on the weights.")
@click.option("--max-norm", type=click.FloatRange(0, min_open=True), default=None,
              help="Bound on each hidden unit's incoming weight norm. [default: none]")
@click.option("--exact/--no-exact", default=True, show_default=True,
              help="Also score the exact ensemble (every subnetwork) on the test split.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the split, the initial network and the training masks.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "train.csv", show_default=True,
              help="CSV of the training history (one row per epoch).")
def train(dataset, keep_prob, scheme, hidden, optimizer, learning_rate, epochs, batch_size,
          weight_decay, max_norm, exact, seed, out):
    """Train one network with dropout; report the scaled pass (and exact ensemble) on test data."""
    import numpy as np

    from . import MLP, DropoutConfig, exact_ensemble
    from .datasets import load_dataset
    from .train import error_rate
    from .train import train as train_network

    data_ss, init_ss, train_ss = np.random.SeedSequence(seed).spawn(3)
    ds = load_dataset(dataset, rng=data_ss)
    net = MLP.random((ds.n_features, *hidden, ds.n_outputs), "relu", ds.output, rng=init_ss)
    cfg = DropoutConfig(keep_prob, layers=list(range(1, len(hidden) + 1)), scheme=scheme)
    tc = TrainConfig(optimizer=optimizer, learning_rate=learning_rate, epochs=epochs,
                     batch_size=batch_size, weight_decay=weight_decay, max_norm=max_norm)
    net, history = train_network(net, cfg, ds.X_train, ds.y_train, train_cfg=tc, rng=train_ss,
                                 eval_set=(ds.X_test, ds.y_test), progress=True)
    save_result(history, out, {"dataset": dataset, "architecture": net.architecture,
                               "keep_prob": keep_prob, "scheme": scheme, "seed": seed,
                               "train_cfg": dataclasses.asdict(tc)})
    click.echo(f"wrote {out}; {net.architecture}, test error of the scaled pass: "
               f"{history['eval_error'].iloc[-1]:.4f}")
    if exact:
        ens = exact_ensemble(net, cfg, ds.X_test, progress=True)
        click.echo(f"exact ensemble of {ens.n_subnetworks:,} subnetworks, test error: mean "
                   f"{error_rate(net.output, ens.mean, ds.y_test):.4f}, NWGM "
                   f"{error_rate(net.output, ens.geometric_mean, ds.y_test):.4f}")


@main.command()
@click.option("--quick", is_flag=True, help="Start from the small smoke-test grid.")
@click.option("--dataset", "datasets", type=click.Choice(DATASETS), multiple=True,
              help="Dataset; repeat for several. [default: digits, digits_2v3]")
@click.option("--keep-prob", "keep_probs", type=KEEP_PROB, multiple=True,
              help="Keep probability of the hidden units; repeat for several. "
                   "[default: 0.2 0.35 0.5 0.7 0.9]")
@click.option("--scheme", "schemes", type=click.Choice(SCHEMES), multiple=True,
              help="Dropout scheme; repeat for both. [default: both]")
@click.option("--seed", "seeds", type=int, multiple=True,
              help="Training seed (initial network, masks, sampled ensembles); repeat for "
                   "several. [default: 0 1 2]")
@click.option("--hidden", type=click.IntRange(1), multiple=True,
              help="Width of a hidden ReLU layer; repeat once per layer. [default: 10 10]")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Passes over the training split. [default: 40]")
@click.option("--n-test", type=click.IntRange(1), default=None,
              help="Score the first N test examples (the exact ensemble's cost grows with N). "
                   "[default: 200]")
@click.option("--sample-size", "sample_sizes", type=click.IntRange(1), multiple=True,
              help="K of a sampled ensemble; repeat for several. [default: 1 10 100 1000]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "trained.csv", show_default=True, help="Result CSV.")
def trained(quick, datasets, keep_probs, schemes, seeds, hidden, epochs, n_test, sample_sizes,
            out):
    """Train with dropout over a grid; score exact, NWGM, scaled and sampled predictors."""
    from .studies.trained import default_params, run_trained

    params = default_params(quick)
    given = {"datasets": datasets, "keep_probs": keep_probs, "schemes": schemes,
             "seeds": seeds, "hidden": hidden, "n_test": n_test, "sample_sizes": sample_sizes}
    params.update({k: v for k, v in given.items() if v})
    if epochs is not None:
        params["train_cfg"] = dataclasses.replace(params["train_cfg"], epochs=epochs)
    df = run_trained(**params, progress=True)
    path = save_result(df, out, {**params, "train_cfg": dataclasses.asdict(params["train_cfg"])})
    click.echo(f"wrote {path} ({len(df)} rows)")


@main.command()
@click.option("--quick", is_flag=True,
              help="Small networks and 64 inputs: a smoke run of a few seconds.")
@click.option("--naive-budget", type=click.FloatRange(0, min_open=True), default=None,
              help="Seconds of the naive per-mask loop to time per network before "
                   "extrapolating per subnetwork. [default: 3, or 0.3 with --quick]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "bench.csv", show_default=True, help="Result CSV.")
@click.option("--figure", "figure_path", type=click.Path(dir_okay=False, path_type=Path),
              default=FIGURES_DIR / "bench.png", show_default=True,
              help="PNG of time against the number of dropped units.")
def bench(quick, naive_budget, out, figure_path):
    """Time exact enumeration: the package's paths against the naive per-mask loop."""
    from .bench import FOOTNOTE, run_bench, save_figure

    df, params = run_bench(quick, naive_budget=naive_budget, echo=click.echo)
    click.echo(FOOTNOTE)
    click.echo(f"wrote {save_result(df, out, params)} ({len(df)} rows)")
    click.echo(f"wrote {save_figure(df, figure_path)}")


# --- Srivastava et al. Fig. 11 on digits, and Hinton et al.'s claim (issue 10) ----

@main.command()
@click.option("--quick", is_flag=True,
              help="Tiny networks, 2 seeds, 5 epochs: a smoke run of a few seconds, written "
                   "to results/srivastava_quick.csv unless --out is given.")
@click.option("--seed", "seeds", type=click.IntRange(0), multiple=True,
              help="Training seed; repeat for several. [default: 0 to 9]")
@click.option("--keep-prob", "keep_probs", type=KEEP_PROB, multiple=True,
              help="Keep probability of the hidden units; repeat for several. "
                   "[default: 0.5 0.8]")
@click.option("--scheme", "schemes", type=click.Choice(SCHEMES), multiple=True,
              help="Dropout scheme; repeat for both. [default: both]")
@click.option("--n-draws", type=click.IntRange(1), default=None,
              help="Independent draws of K masks per K and network. [default: 20]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Result CSV. [default: results/srivastava.csv]")
@click.option("--summary", "summary_only", is_flag=True,
              help="Run nothing: print the tables (errors, Fig. 11 crossings, Hinton's "
                   "claim) of the CSV at --out.")
def srivastava(quick, seeds, keep_probs, schemes, n_draws, out, summary_only):
    """Srivastava et al. 2014 Fig. 11 on digits with the exact ensemble; Hinton et al.'s claim.

    Trains 64-20-10 and 64-8-8-10 ReLU networks by one recipe (with
    dropout, and a no-dropout baseline per seed), then scores the scaled
    pass, the exact ensemble and K sampled subnetworks on the 449 test images.
    The default grid took 32 minutes as two processes on the project's
    shared 2-core VM (see the README); --quick takes seconds.
    """
    from .results import load_result
    from .studies import srivastava as study

    if out is None:
        out = RESULTS_DIR / ("srivastava_quick.csv" if quick else "srivastava.csv")
    if summary_only:
        if not out.is_file():
            raise click.BadParameter(f"no such file: {out}", param_hint="--out")
        click.echo(study.summary(load_result(out)))
        return
    params = dict(study.QUICK if quick else study.DEFAULTS)
    given = {"seeds": seeds, "keep_probs": keep_probs, "schemes": schemes}
    params.update({k: v for k, v in given.items() if v})
    if n_draws is not None:
        params["n_draws"] = n_draws
    try:
        params = study.check_params(**params)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    df = study.run(progress=True, **params)
    path = save_result(df, out, {**params, "recipe": dataclasses.asdict(params["recipe"])})
    click.echo(f"wrote {path} ({len(df)} rows)")
