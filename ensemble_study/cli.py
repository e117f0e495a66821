"""The ``ensemble-study`` command line: thin click commands over the library.

Each study command runs one study function, saves its tidy table with
:func:`ensemble_study.results.save_result` (CSV + JSON sidecar, written
atomically) and, like every command here, holds no logic of its own.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import re
import time
from pathlib import Path

import click

from . import __version__
from .datasets import DATASETS, GENERATED
from .dropout import SCHEMES
from .evaluate import ESTIMATORS
from .executor import Execution, available_cores, connect, require_dask
from .network import HIDDEN_ACTIVATIONS, OUTPUTS
from .plots import FIGURES, render_all
from .results import output_folder_problem, output_path_problem, save_result
from .studies import DEFAULT_STUDIES
from .studies import approximations as approximations_study
from .studies import depth as depth_study
from .studies import mc as mc_study
from .studies import spread as spread_study
from .studies import sweep as sweep_study
from .train import OPTIMIZERS, TrainConfig

RESULTS_DIR = Path("results")
FIGURES_DIR = Path("figures")
# Where `reproduce --quick` writes (QUICK_DIR/results, QUICK_DIR/figures): smoke
# runs never overwrite the committed results/ and figures/.
QUICK_DIR = Path("quick")
# Finished cells of every study, under the folder of its CSV (see executor.CellStore).
CELLS = ".cells"


class FiniteFloat(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and ``inf`` (click lets them through).

    A NaN compares False with every bound, so ``FloatRange(0)`` accepts it;
    use ``FiniteFloat(0)`` for every float option.
    """

    name = "finite float"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


KEEP_PROB = FiniteFloat(0, 1, min_open=True)


def _path_callback(kind: str):
    """A click callback checking an output path of ``kind`` "result", "file" or "folder"."""

    def callback(ctx, param, value):
        if value is None:
            return value
        problem = (output_folder_problem(value) if kind == "folder"
                   else output_path_problem(value, sidecar=kind == "result"))
        if problem:
            raise click.BadParameter(problem, ctx, param)
        return value

    return callback


# Callbacks for output options, for every command: a bad path (a folder, a device,
# a symlink out of its folder, below a file, in an unwritable folder) is a usage
# error (exit 2) before any work. `check_out` also checks a result's JSON sidecar.
check_out = _path_callback("result")
check_out_file = _path_callback("file")
check_out_folder = _path_callback("folder")
# Enumerating more subnetworks than exact_ensemble's default max_subnetworks (2**24)
# is refused; commands that train first check it before training.
MAX_EXACT_DROPPED = 24


def _check_exact_size(hidden, option: str = "--hidden") -> None:
    if sum(hidden) > MAX_EXACT_DROPPED:
        raise click.BadParameter(
            f"{' + '.join(map(str, hidden))} = {sum(hidden)} dropped hidden units would need "
            f"2**{sum(hidden)} subnetworks for the exact ensemble; at most "
            f"{MAX_EXACT_DROPPED} dropped units are allowed", param_hint=option)

# exact_ensemble's default limit; the commands that enumerate check it before training.
MAX_EXACT_UNITS = 24


def _check_output_path(path: Path, param_hint: str) -> Path:
    """Refuse a file path that cannot be written, before any work is done."""
    problem = output_path_problem(path, sidecar=False)
    if problem:
        raise click.BadParameter(problem, param_hint=param_hint)
    return path


def _check_enumerable(n_units: int, what: str, param_hint: str) -> None:
    if n_units > MAX_EXACT_UNITS:
        raise click.BadParameter(
            f"{what}: {n_units} dropped units would need 2**{n_units} subnetworks per exact "
            f"ensemble; allowed at most {MAX_EXACT_UNITS}", param_hint=param_hint)


def _train_dropout(n_hidden: int, keep_probs: tuple, input_keep_prob: float, scheme: str):
    """The DropoutConfig of ``train``: every hidden layer, and the input when q_in < 1."""
    from .dropout import DropoutConfig

    if len(keep_probs) == 1:
        keep_probs = keep_probs * n_hidden
    if len(keep_probs) != n_hidden:
        raise click.BadParameter(
            f"give one keep probability for every hidden layer, or one per hidden layer "
            f"({n_hidden}); got {len(keep_probs)}: {keep_probs}", param_hint="--keep-prob")
    kp = {l + 1: q for l, q in enumerate(keep_probs)}
    if input_keep_prob < 1:
        kp[0] = input_keep_prob
    if len(set(kp.values())) == 1:
        return DropoutConfig(keep_probs[0], layers=sorted(kp), scheme=scheme)
    return DropoutConfig(kp, scheme=scheme)


def _layer_keep_probs(values) -> dict:
    """``("2=0.8", ...)`` -> ``{2: 0.8}``; a usage error names the bad item."""
    out = {}
    for item in values:
        layer, sep, q = item.partition("=")
        try:
            layer, q = int(layer), float(q)
        except ValueError:
            layer = q = None
        if not sep or layer is None or layer < 1 or not (0 < q <= 1):
            raise click.BadParameter(
                f"expected LAYER=Q with a hidden layer LAYER >= 1 and 0 < Q <= 1; got {item!r}",
                param_hint="--layer-keep-prob")
        out[layer] = q
    return out


def _train_streams(seed: int):
    """The split, initial network and training masks of ``train --seed``."""
    import numpy as np

    return np.random.SeedSequence(seed).spawn(3)


# One format for every option's default, whether click or the help text states it:
# "help.  [default: X; range]" (click puts a show_default string in parentheses, and a
# "[default: X]" written into the help text would sit apart from the range).
_STATED = re.compile(r"\s*\[default: ([^\]]*)\](?:  \[([^\]]*)\])?$")
_SHOWN = re.compile(r"\[default: \((.*?)\)(;|\])")


def _help_text(text: str) -> str:
    text = _SHOWN.sub(r"[default: \1\2", text)
    found = _STATED.search(text)
    if found is None:
        return text
    extra = "; ".join(part for part in found.groups() if part)
    return f"{text[:found.start()]}  [default: {extra}]"


class _Command(click.Command):
    def format_options(self, ctx, formatter):
        records = [r for p in self.get_params(ctx) if (r := p.get_help_record(ctx))]
        if records:
            with formatter.section("Options"):
                formatter.write_dl([(opts, _help_text(text)) for opts, text in records])


class _Group(click.Group):
    command_class = _Command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ensemble-study")
def main():
    """Exact dropout ensembles on small networks, against the scaled pass.

    Each study command writes a CSV (plus a JSON sidecar with its parameters)
    under results/; `figures` redraws every PNG under figures/ from those
    CSVs; `reproduce` runs every default study and then `figures`.

    Studies run their cells on every core (--jobs) or on Dask (--scheduler),
    and store each finished cell under .cells/ next to their CSV, so that an
    interrupted run resumes where it stopped (--fresh: start over).
    """


# --- the scaled pass against the exact ensemble: sweep, mc, spread, depth (issue 3) --

def _check_scheduler(ctx, param, value):
    if value is not None:
        if not value.strip():
            raise click.BadParameter("give 'local' or a scheduler address such as "
                                     "tcp://host:8786; got an empty string", ctx=ctx, param=param)
        try:
            require_dask()
        except ImportError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


def execution_options(fn):
    """``--jobs``, ``--scheduler`` and ``--fresh``, passed on as one ``execution``."""

    @functools.wraps(fn)
    def command(*args, jobs, scheduler, fresh, **kwargs):
        try:
            return fn(*args, execution=Execution(jobs=jobs, scheduler=scheduler, fresh=fresh),
                      **kwargs)
        except ConnectionError as exc:  # raised before any cell runs or file is written
            raise click.BadParameter(str(exc), param_hint="--scheduler") from None

    options = [
        click.option("--jobs", type=click.IntRange(1), default=None,
                     show_default=f"every core this process may use: {available_cores()}",
                     help="Local worker processes over the cells."),
        click.option("--scheduler", metavar="ADDRESS", default=None, callback=_check_scheduler,
                     show_default="none: --jobs local processes",
                     help="Run the cells on a running dask.distributed scheduler "
                          "(e.g. tcp://host:8786), or 'local' for a LocalCluster of --jobs "
                          "workers started for the run. Needs the extra: "
                          "pip install -e '.[dask]'."),
        click.option("--fresh", is_flag=True,
                     help=f"Recompute every cell instead of resuming from the finished ones "
                          f"stored under {CELLS}/ next to the CSV."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _stored(execution: Execution, results_dir: Path) -> Execution:
    """The execution, storing finished cells under ``results_dir/.cells``."""
    return dataclasses.replace(execution, store=results_dir / CELLS)


def _run_study(study, out: Path, params: dict, execution: Execution) -> None:
    """Validate the grid (a bad one is a usage error: exit 2, nothing written), run, save."""
    try:
        params = study.check_params(**params)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    df = study.run(progress=True, execution=_stored(execution, out.parent), **params)
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
                     callback=check_out,
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
@execution_options
def sweep(out, execution, **params):
    """Exact ensemble against the scaled pass across keep_prob.

    Vanilla and inverted dropout on the same weights, and vanilla dropout on
    the equivalent weights; the arithmetic mean and the NWGM.
    """
    _run_study(sweep_study, out, {**params, "n_features": sweep_study.DEFAULTS["n_features"]},
               execution)


@main.command()
@_study_options(mc_study)
@click.option("--output", type=click.Choice(OUTPUTS), default=mc_study.DEFAULTS["output"],
              show_default=True, help="Output function (softmax has 3 units, the others 1).")
@click.option("--k", "ks", type=click.IntRange(1), multiple=True,
              default=mc_study.DEFAULTS["ks"], show_default=True,
              help="Number K of sampled subnetworks; repeat for several.")
@click.option("--n-repeats", type=click.IntRange(1), default=mc_study.DEFAULTS["n_repeats"],
              show_default=True, help="Independent K-member ensembles per K and network.")
@execution_options
def mc(out, execution, **params):
    """Monte Carlo ensembles of K subnetworks against the exact one.

    The error of K sampled subnetworks against the exact ensemble, for a log
    grid of K, beside the scaled pass's error.
    """
    _run_study(mc_study, out, {**params, "n_features": mc_study.DEFAULTS["n_features"]},
               execution)


@main.command()
@_study_options(spread_study, seeds=False)
@click.option("--output", type=click.Choice(spread_study.OUTPUTS),
              default=spread_study.DEFAULTS["output"], show_default=True,
              help="Output function (one unit).")
@execution_options
def spread(out, execution, **params):
    """Every subnetwork's output for a few inputs.

    With the ensemble's arithmetic mean, its NWGM and the scaled pass.
    """
    _run_study(spread_study, out, {**params, "n_features": spread_study.DEFAULTS["n_features"]},
               execution)


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
@execution_options
def depth(out, execution, **params):
    """Gap against the number of hidden layers and their width."""
    _run_study(depth_study, out, {**params, "n_features": depth_study.DEFAULTS["n_features"]},
               execution)


def _draw_figures(results_dir: Path, figures_dir: Path, stems=None) -> list[Path]:
    """Every figure whose CSV is there; say which of ``stems``' figures (default:
    all) are skipped because their CSV is missing."""
    for stem, pngs in FIGURES.items():
        if (stems is None or stem in stems) and not (results_dir / f"{stem}.csv").exists():
            names = ", ".join(f"{png}.png" for png in pngs)
            click.echo(f"skipped {names}: no {results_dir / stem}.csv", err=True)
    written = render_all(results_dir, figures_dir)
    for path in written:
        click.echo(f"wrote {path}")
    return written


@main.command()
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path),
              default=RESULTS_DIR, show_default=True, help="Folder of result CSVs to read.")
@click.option("--out", "figures_dir", type=click.Path(file_okay=False, path_type=Path),
              default=FIGURES_DIR, show_default=True, callback=check_out_folder,
              help="Folder to write the PNGs into.")
def figures(results_dir, figures_dir):
    """Redraw every figure under --out from the CSVs under --results.

    Says which figures are skipped because their CSV is missing; exits with
    status 1 when none could be drawn.
    """
    if not results_dir.is_dir():
        raise click.BadParameter(f"no such folder: {results_dir}", param_hint="--results")
    try:
        written = _draw_figures(results_dir, figures_dir)
    except ValueError as exc:  # a malformed CSV, named in the message; nothing written
        raise click.BadParameter(str(exc), param_hint="--results") from None
    if not written:
        click.echo(f"no figure drawn: no result CSV with a figure under {results_dir}",
                   err=True)
        raise SystemExit(1)


@main.command()
@click.option("--quick", is_flag=True,
              help=f"Small grids: a smoke run of seconds, written under {QUICK_DIR}/.")
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, show_default=f"{RESULTS_DIR}; with --quick, {QUICK_DIR / RESULTS_DIR}",
              callback=check_out_folder, help="Folder to write result CSVs into.")
@click.option("--figures", "figures_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, show_default=f"{FIGURES_DIR}; with --quick, {QUICK_DIR / FIGURES_DIR}",
              callback=check_out_folder, help="Folder to write the PNGs into.")
@execution_options
def reproduce(quick, results_dir, figures_dir, execution):
    """Run every default study, then redraw every figure.

    Finished cells are stored under RESULTS/.cells/, so an interrupted run
    started again resumes study by study and cell by cell (--fresh: from
    scratch).
    """
    root = QUICK_DIR if quick else Path()
    results_dir = root / RESULTS_DIR if results_dir is None else results_dir
    figures_dir = root / FIGURES_DIR if figures_dir is None else figures_dir
    costs = []
    with connect(_stored(execution, results_dir)) as execution:
        for name in DEFAULT_STUDIES:
            study = importlib.import_module(f"ensemble_study.studies.{name}")
            click.echo(f"[{name}] running{' (quick)' if quick else ''} ...", err=True)
            start = time.perf_counter()
            df, params = study.run_default(quick=quick, progress=True, execution=execution)
            path = save_result(df, results_dir / f"{study.NAME}.csv", params)
            seconds = time.perf_counter() - start
            costs.append({"study": study.NAME, "rows": len(df), "seconds": seconds})
            click.echo(f"[{name}] wrote {path} ({len(df)} rows, {seconds:.1f} s)", err=True)
            if hasattr(study, "timing"):  # seconds, kept out of the byte-reproducible table
                path = save_result(study.timing(params),
                                   results_dir / f"{study.NAME}_timing.csv", params)
                click.echo(f"[{name}] wrote {path}", err=True)
    # Wall seconds per study (cells taken from the store cost nothing): not
    # byte-reproducible, so apart from the studies' tables.
    import pandas as pd

    path = save_result(pd.DataFrame(costs), results_dir / "reproduce_cost.csv", {"quick": quick})
    click.echo(f"wrote {path}", err=True)
    try:
        _draw_figures(results_dir, figures_dir, DEFAULT_STUDIES)
    except ValueError as exc:  # a malformed CSV left in --results by something else
        raise click.ClickException(str(exc)) from None
    if results_dir == RESULTS_DIR:
        _refresh_documents(results_dir)


def _refresh_documents(results_dir: Path) -> None:
    """Regenerate the blocks of every document (``report.documents``: README.md and
    the pages under docs/) from the CSVs under ``results_dir``.

    The new CSVs can differ from the committed ones (wall times always do; a
    host with other floating-point kernels can move the last bits of a
    trained network), and the blocks must say what the CSVs say, or the
    README's second command (the tests) would fail after its first.
    """
    from .report import documents, update
    from .results import atomic_write_text

    for doc in documents(Path()):
        new, changed = update(doc.read_text(), results_dir)
        if changed:
            atomic_write_text(doc, new)
        click.echo(f"{doc}: {len(changed)} generated block(s) rewritten"
                   + (f": {', '.join(changed)}" if changed else ""), err=True)


# --- every approximation against the exact ensemble (issue 9) -------------------

@main.command()
@click.option("--quick", is_flag=True, help="The small smoke-test grid (seconds).")
@click.option("--activation", "activations", type=click.Choice(HIDDEN_ACTIVATIONS),
              multiple=True, help="Hidden activation of the random and baldi networks; "
              "repeat for several. [default: all four]")
@click.option("--keep-prob", "keep_probs", type=KEEP_PROB, multiple=True,
              help="keep_prob of the random networks' hidden units; repeat for several. "
                   "[default: 0.2 0.5 0.8 0.95]")
@click.option("--scheme", type=click.Choice(SCHEMES), default=None,
              help="Dropout scheme. [default: inverted]")
@click.option("--n-seeds", type=click.IntRange(1), default=None,
              help="Random networks per (output, activation). [default: 5]")
@click.option("--k", "ks", type=click.IntRange(1, 10**6), multiple=True,
              help="K of the plain and Rao-Blackwellised MC estimates; repeat for several. "
                   "[default: 1 2 5 10 20 50 100 1000]")
@click.option("--n-draws", type=click.IntRange(1), default=None,
              help="Independent estimates per K. [default: 2]")
@click.option("--trained-seeds", type=click.IntRange(0), default=None,
              help="Trained networks per (dataset, activation, keep_prob); 0 skips the "
                   "trained part. [default: 2]")
@click.option("--baldi-networks", type=click.IntRange(0), default=None,
              help="Networks per (activation, weight scale) for Baldi's bound; 0 skips it. "
                   "[default: 25]")
@click.option("--seed", type=click.IntRange(0), default=None,
              help="Root seed of SeedSequence(seed).spawn, one stream per cell. [default: 0]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / f"{approximations_study.NAME}.csv", show_default=True,
              help="Result CSV; seconds go to <stem>_timing.csv beside it.")
@execution_options
def approximations(quick, out, execution, **given):
    """Every approximation of the ensemble against the exact one.

    The scaled pass, the NWGM and its correction, moment propagation, and
    plain and Rao-Blackwellised Monte Carlo.
    """
    study = approximations_study
    params = dict(study.QUICK if quick else study.DEFAULTS)
    params.update({k: v for k, v in given.items() if v not in (None, ())})
    try:
        params = study.check_params(**params)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    timing_out = out.with_name(f"{out.stem}_timing.csv")
    if out.parent.exists() and not out.parent.is_dir():
        raise click.BadParameter(f"{out.parent} is not a folder", param_hint="--out")
    for path in (out, timing_out):
        if path.exists() and not path.is_file():
            raise click.BadParameter(f"{path} exists and is not a regular file",
                                     param_hint="--out")
    df = study.run(progress=True, execution=_stored(execution, out.parent), **params)
    click.echo(f"wrote {save_result(df, out, params)} ({len(df)} rows)")
    click.echo(f"wrote {save_result(study.timing(params), timing_out, params)}")


@main.command("approximations-summary")
@click.option("--results", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=RESULTS_DIR / f"{approximations_study.NAME}.csv", show_default=True,
              help="The approximations study's CSV.")
def approximations_summary(path):
    """Print the README's tables of the approximations study from its CSV."""
    import pandas as pd

    from .results import load_result

    study = approximations_study
    df = load_result(path)
    timing_path = path.with_name(f"{path.stem}_timing.csv")
    timings = load_result(timing_path) if timing_path.is_file() else None
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.float_format", "{:.3g}".format):
        for title, table in study.report(df, timings):
            click.echo(f"\n## {title}\n{table.to_string(index=False)}")


# --- the documentation's generated numbers ---------------------------------------

def _deprecated_readme(ctx, param, value):
    if value is not None:
        click.echo("--readme is deprecated: use --document (or nothing, for every document "
                   "under --root)", err=True)
    return value


@main.command()
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=Path(), show_default="the current folder",
              help="Repository folder: every document under it (README.md and the pages "
                   "under docs/) that holds a '<!-- report: NAME -->' block.")
@click.option("--document", "documents", multiple=True, default=(),
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Only this Markdown file; repeat for several.")
@click.option("--readme", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, callback=_deprecated_readme, help="Deprecated: --document.")
@click.option("--results", "results_dir", type=click.Path(file_okay=False, exists=True,
                                                          path_type=Path),
              default=RESULTS_DIR, show_default=True, help="Folder of result CSVs to read.")
@click.option("--check", is_flag=True,
              help="Change nothing; exit 1 if a block differs from what the CSVs give.")
def report(root, documents, readme, results_dir, check):
    """Regenerate the documents' numbers (tables, intervals, tests) from the result CSVs."""
    from .report import documents as find_documents
    from .report import update
    from .results import atomic_write_text

    docs = list(documents) + ([readme] if readme is not None else [])
    if not docs:
        docs = find_documents(root)
    if not docs:
        raise click.UsageError(f"no document under {root} holds a generated block")
    updates = []
    for doc in docs:  # every block of every document rendered before any is written
        try:
            updates.append((doc, *update(doc.read_text(), results_dir)))
        except (FileNotFoundError, ValueError) as exc:
            raise click.UsageError(f"{doc}: {exc}") from None
    stale = [(doc, changed) for doc, _, changed in updates if changed]
    if check:
        for doc, changed in stale:
            click.echo(f"{doc}: out of date: {', '.join(changed)}", err=True)
        if stale:
            raise SystemExit(1)
        click.echo(f"{len(docs)} document(s): every block matches {results_dir}")
        return
    for doc, new, changed in updates:
        if changed:
            atomic_write_text(doc, new)
        click.echo(f"{doc}: {len(changed)} block(s) rewritten"
                   + (f": {', '.join(changed)}" if changed else ""))


# --- training with dropout (issue 5) ------------------------------------------

@main.command()
@click.option("--dataset", type=click.Choice(DATASETS), default="digits", show_default=True,
              help="Offline dataset (two classes: one sigmoid output; more: softmax).")
@click.option("--keep-prob", type=KEEP_PROB, multiple=True, default=(0.5,), show_default=True,
              help="Probability of keeping a hidden unit during training: once for every "
                   "hidden layer, or repeated once per hidden layer.")
@click.option("--input-keep-prob", type=KEEP_PROB, default=1.0, show_default=True,
              help="Probability of keeping an input unit (1: no input dropout).")
@click.option("--scheme", type=click.Choice(SCHEMES), default="inverted", show_default=True,
              help="Dropout scheme (vanilla scales at test time, inverted at train time).")
@click.option("--hidden", type=click.IntRange(1), multiple=True, default=(10, 10),
              show_default=True, help="Width of a hidden layer; repeat once per layer. "
              "Every hidden layer is dropped: 2**(sum of widths) subnetworks.")
@click.option("--activation", type=click.Choice(HIDDEN_ACTIVATIONS), default="relu",
              show_default=True, help="Activation of every hidden layer.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True,
              help="Adam, or mini-batch SGD with momentum 0.9.")
@click.option("--learning-rate", type=FiniteFloat(0, min_open=True), default=0.01,
              show_default=True, help="Step size.")
@click.option("--epochs", type=click.IntRange(1), default=40, show_default=True,
              help="Passes over the training split.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Examples per step (each with its own fresh mask).")
@click.option("--weight-decay", type=FiniteFloat(0), default=0.0, show_default=True,
              help="L2 penalty 0.5 * wd * ||W||^2 on the weights.")
@click.option("--max-norm", type=FiniteFloat(0, min_open=True), default=None,
              help="Bound on each hidden unit's incoming weight norm. [default: none]")
@click.option("--exact/--no-exact", default=True, show_default=True,
              help="Also score the exact ensemble (every subnetwork) on the test split.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seeds the split, the initial network and the training masks.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "train.csv", show_default=True, callback=check_out,
              help="CSV of the training history (one row per epoch).")
@click.option("--save", "save_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the trained network to this .npz (MLP.save; "
              "read it back with MLP.load or `evaluate --net`). [default: not saved]")
def train(dataset, keep_prob, input_keep_prob, scheme, hidden, activation, optimizer,
          learning_rate, epochs, batch_size, weight_decay, max_norm, exact, seed, out,
          save_path):
    """Train one network with dropout; report the scaled pass (and exact ensemble) on test data."""
    from . import MLP, exact_ensemble
    from .datasets import load_dataset
    from .masks import n_free_units
    from .train import error_rate
    from .train import train as train_network

    cfg = _train_dropout(len(hidden), keep_prob, input_keep_prob, scheme)
    _check_output_path(out, "--out")
    if save_path is not None:
        if save_path.suffix != ".npz":
            raise click.BadParameter(f"must end in .npz; got {save_path}", param_hint="--save")
        _check_output_path(save_path, "--save")
    data_ss, init_ss, train_ss = _train_streams(seed)
    ds = load_dataset(dataset, rng=data_ss)
    net = MLP.random((ds.n_features, *hidden, ds.n_outputs), activation, ds.output,
                     rng=init_ss)
    if exact:
        from .dropout import unit_keep_probs

        _check_enumerable(n_free_units(unit_keep_probs(net, cfg)), "--exact (or --no-exact)",
                          "--exact")
    tc = TrainConfig(optimizer=optimizer, learning_rate=learning_rate, epochs=epochs,
                     batch_size=batch_size, weight_decay=weight_decay, max_norm=max_norm)
    net, history = train_network(net, cfg, ds.X_train, ds.y_train, train_cfg=tc, rng=train_ss,
                                 eval_set=(ds.X_test, ds.y_test), progress=True)
    save_result(history, out, {"dataset": dataset, "architecture": net.architecture,
                               "activation": activation, "keep_prob": list(keep_prob),
                               "input_keep_prob": input_keep_prob, "scheme": scheme,
                               "seed": seed, "train_cfg": dataclasses.asdict(tc)})
    click.echo(f"wrote {out}; {net.architecture}, test error of the scaled pass: "
               f"{history['eval_error'].iloc[-1]:.4f}")
    if save_path is not None:
        click.echo(f"wrote {net.save(save_path)}")
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
@click.option("--seed", "seeds", type=click.IntRange(0), multiple=True,
              help="Training seed (initial network, masks, sampled ensembles); repeat for "
                   "several. [default: 0 1 2]")
@click.option("--hidden", type=click.IntRange(1), multiple=True,
              help="Width of a hidden layer; repeat once per layer. [default: 10 10]")
@click.option("--activation", type=click.Choice(HIDDEN_ACTIVATIONS), default="relu",
              show_default=True, help="Activation of every hidden layer.")
@click.option("--input-keep-prob", type=KEEP_PROB, default=1.0, show_default=True,
              help="Keep probability of the input units in every cell (1: no input dropout; "
                   "the inputs then join the exact ensemble, so only 2-D datasets fit).")
@click.option("--layer-keep-prob", "layer_keep_probs", multiple=True, metavar="LAYER=Q",
              callback=lambda ctx, param, value: _layer_keep_probs(value),
              help="Fix the keep probability of one hidden layer (1 = the first) in every "
                   "cell, e.g. 2=0.8; the other hidden layers take the grid's --keep-prob. "
                   "Repeat for several layers. [default: none]")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Passes over the training split. [default: 40]")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None,
              help="Adam, or mini-batch SGD with momentum 0.9. [default: adam]")
@click.option("--learning-rate", type=FiniteFloat(0, min_open=True), default=None,
              help="Step size. [default: 0.01]")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Examples per step (each with its own fresh mask). [default: 32]")
@click.option("--weight-decay", type=FiniteFloat(0), default=None,
              help="L2 penalty 0.5 * wd * ||W||^2 on the weights. [default: 0]")
@click.option("--max-norm", type=FiniteFloat(0, min_open=True), default=None,
              help="Bound on each hidden unit's incoming weight norm. [default: none]")
@click.option("--n-test", type=click.IntRange(1), default=None,
              help="Score the first N test examples (the exact ensemble's cost grows with N). "
                   "[default: 200]")
@click.option("--sample-size", "sample_sizes", type=click.IntRange(1), multiple=True,
              help="K of a sampled ensemble; repeat for several. [default: 1 10 100 1000]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "trained.csv", show_default=True, callback=check_out,
              help="Result CSV.")
@execution_options
def trained(quick, datasets, keep_probs, schemes, seeds, hidden, activation, input_keep_prob,
            layer_keep_probs, epochs, optimizer, learning_rate, batch_size, weight_decay,
            max_norm, n_test, sample_sizes, out, execution):
    """Train with dropout over a grid; score exact, NWGM, scaled and sampled predictors."""
    from .datasets import load_dataset
    from .studies.trained import default_params, run_trained

    params = default_params(quick)
    given = {"datasets": datasets, "keep_probs": keep_probs, "schemes": schemes,
             "seeds": seeds, "hidden": hidden, "n_test": n_test, "sample_sizes": sample_sizes}
    params.update({k: v for k, v in given.items() if v})
    params.update(activation=activation, input_keep_prob=input_keep_prob)
    if layer_keep_probs:
        bad = [layer for layer in layer_keep_probs if layer > len(params["hidden"])]
        if bad:
            raise click.BadParameter(
                f"layer {bad[0]} is not a hidden layer: the network has "
                f"{len(params['hidden'])} (1..{len(params['hidden'])})",
                param_hint="--layer-keep-prob")
        params["layer_keep_probs"] = layer_keep_probs
    tc = {"epochs": epochs, "optimizer": optimizer, "learning_rate": learning_rate,
          "batch_size": batch_size, "weight_decay": weight_decay, "max_norm": max_norm}
    params["train_cfg"] = dataclasses.replace(
        params["train_cfg"], **{k: v for k, v in tc.items() if v is not None})
    n_hidden_units = sum(params["hidden"])
    for name in params["datasets"]:
        n_inputs = load_dataset(name, rng=0).n_features if input_keep_prob < 1 else 0
        _check_enumerable(n_hidden_units + n_inputs, f"dataset {name!r}",
                          "--input-keep-prob" if n_inputs else "--hidden")
    _check_output_path(out, "--out")
    df = run_trained(**params, progress=True, execution=_stored(execution, out.parent))
    path = save_result(df, out, {**params, "train_cfg": dataclasses.asdict(params["train_cfg"])})
    click.echo(f"wrote {path} ({len(df)} rows)")


@main.command()
@click.option("--quick", is_flag=True, help="Start from the small smoke-test grid.")
@click.option("--dataset", type=click.Choice(GENERATED), default=None,
              help="Two-dimensional two-class task. [default: diamond]")
@click.option("--hidden", type=click.IntRange(1), multiple=True,
              help="Width of a hidden ReLU layer (all dropped); repeat once per layer. "
                   "[default: 8 8, or 6 6 with --quick]")
@click.option("--keep-prob", "keep_probs", type=KEEP_PROB, multiple=True,
              help="Keep probability of the hidden units; repeat for several. "
                   "[default: 0.3 0.6, or 0.5 with --quick]")
@click.option("--scheme", "schemes", type=click.Choice(SCHEMES), multiple=True,
              help="Dropout scheme; repeat for both. [default: both]")
@click.option("--seed", type=click.IntRange(0), default=None,
              help="Seeds the data, the initial network and the training masks. [default: 0]")
@click.option("--n-samples", type=click.IntRange(2), default=None,
              help="Generated examples (a quarter held out for the test error). "
                   "[default: 1000]")
@click.option("--noise", type=FiniteFloat(0), default=None,
              help="Standard deviation of the input noise. [default: 0.1]")
@click.option("--grid-size", type=click.IntRange(2), default=None,
              help="Points per axis of the grid over the plane. [default: 61, or 25 with "
                   "--quick]")
@click.option("--extent", type=FiniteFloat(0, min_open=True), default=None,
              help="The grid covers [-extent, extent]^2 (raw coordinates). [default: 1.5]")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Passes over the training split. [default: 60, or 15 with --quick]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "boundary.csv", show_default=True, help="Result CSV.")
@execution_options
def boundary(quick, hidden, keep_probs, schemes, epochs, out, execution, **given):
    """Decision boundaries of the exact ensemble and the scaled pass on a 2-D task."""
    from .studies.boundary import default_params, run_boundary

    params = default_params(quick)
    params.update({k: v for k, v in {"hidden": hidden, "keep_probs": keep_probs,
                                     "schemes": schemes}.items() if v})
    params.update({k: v for k, v in given.items() if v is not None})
    if epochs is not None:
        params["train_cfg"] = dataclasses.replace(params["train_cfg"], epochs=epochs)
    _check_enumerable(sum(params["hidden"]), "--hidden", "--hidden")
    _check_output_path(out, "--out")
    df = run_boundary(**params, progress=True, execution=_stored(execution, out.parent))
    path = save_result(df, out, {**params, "train_cfg": dataclasses.asdict(params["train_cfg"])})
    click.echo(f"wrote {path} ({len(df)} rows)")


@main.command()
@click.option("--quick", is_flag=True,
              help="Small networks and 64 inputs: a smoke run of a few seconds.")
@click.option("--naive-budget", type=FiniteFloat(0, min_open=True), default=None,
              show_default="3, or 0.3 with --quick",
              help="Seconds of the naive per-mask loop to time per network before "
                   "extrapolating per subnetwork.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "bench.csv", show_default=True, callback=check_out,
              help="Result CSV.")
@click.option("--figure", "figure_path", type=click.Path(dir_okay=False, path_type=Path),
              default=FIGURES_DIR / "bench.png", show_default=True, callback=check_out_file,
              help="PNG of time against the number of dropped units.")
def bench(quick, naive_budget, out, figure_path):
    """Time exact enumeration against the naive per-mask loop."""
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
@execution_options
def srivastava(quick, seeds, keep_probs, schemes, n_draws, out, summary_only, execution):
    """Srivastava et al. 2014 Fig. 11 on digits with the exact ensemble; Hinton et al.'s claim.

    Trains 64-20-10 and 64-8-8-10 ReLU networks by one recipe (with
    dropout, and a no-dropout baseline per seed), then scores the scaled
    pass, the exact ensemble and K sampled subnetworks on the 449 test images.
    The default grid took 15 to 32 minutes as two processes (--jobs 2) on
    the project's shared 2-core VM (see the README); --quick takes seconds.
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
    df = study.run(progress=True, execution=_stored(execution, out.parent), **params)
    path = save_result(df, out, {**params, "recipe": dataclasses.asdict(params["recipe"])})
    click.echo(f"wrote {path} ({len(df)} rows)")


# --- a given network: evaluate (issue 11) -------------------------------------

def _load_npy(path: Path, param_hint: str):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint=param_hint) from None


@main.command()
@click.option("--net", "net_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True,
              help="The network: an .npz written by MLP.save or `train --save`, or a .pt "
                   "holding a whole pickled torch nn.Sequential (torch.save(model, path)), "
                   "read with torch.load(weights_only=False), which runs the pickle's code: "
                   "trusted files only.")
@click.option("--dataset", type=click.Choice(DATASETS), default=None,
              help="Score the test split of this dataset (with its labels), the split "
                   "`train --seed` held out.")
@click.option("--inputs", "inputs_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Or: inputs X of shape (n_examples, n_features) in a .npy file (read "
                   "without pickles).")
@click.option("--labels", "labels_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="With --inputs: integer class labels, shape (n_examples,), in a .npy file "
                   "(adds test error and NLL). [default: none]")
@click.option("--keep-prob", "keep_probs", type=KEEP_PROB, multiple=True,
              help="Probability of keeping a unit: once for every dropped layer, or once per "
                   "--layers value. [default: a .pt's nn.Dropout modules; required for .npz]")
@click.option("--layers", type=click.IntRange(0), multiple=True,
              help="Activation layer to drop (0 = input, 1..L-1 hidden); repeat for several. "
                   "[default: a .pt's dropped layers, else every hidden layer]")
@click.option("--scheme", type=click.Choice(SCHEMES), default=None,
              help="Dropout scheme the weights were trained under. [default: inverted, "
                   "PyTorch's]")
@click.option("--output", type=click.Choice(OUTPUTS), default=None,
              help="For a .pt ending in nn.Linear (logits): the output function, e.g. softmax "
                   "for a model trained with CrossEntropyLoss. [default: identity]")
@click.option("--max-subnetworks", type=click.IntRange(1), default=2**20, show_default=True,
              help="Enumerate the ensemble exactly up to this many subnetworks; beyond, "
                   "estimate it from --n-samples sampled ones (with standard errors).")
@click.option("--n-samples", type=click.IntRange(2), default=10_000, show_default=True,
              help="Sampled subnetworks K past the enumeration limit.")
@click.option("--estimator", type=click.Choice(tuple(ESTIMATORS)), default="auto",
              show_default=True,
              help="How to estimate the ensemble past the limit: rao_blackwell (sample the "
                   "outer dropped layers, average the last one exactly), mc (plain Monte "
                   "Carlo), auto (rao_blackwell where the last dropped layer feeds the "
                   "output, else mc).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="The seed given to `train` (the test split of --dataset); also seeds "
                   "the sampled masks.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "evaluate.csv", show_default=True,
              help="Result CSV; its parameters go to a JSON sidecar next to it.")
def evaluate(net_path, dataset, inputs_path, labels_path, keep_probs, layers, scheme, output,
             max_subnetworks, n_samples, estimator, seed, out):
    """A given network's dropout ensemble against its NWGM and scaled pass.

    Prints, and writes as a tidy CSV, the ensemble's arithmetic mean, its
    NWGM and the scheme's scaled pass, their gaps, and on a labelled dataset
    the test error and NLL of each.
    """
    import numpy as np

    from .evaluate import check_labels, dropout_config, evaluate_network, load_network
    from .network import check_input

    if (dataset is None) == (inputs_path is None):
        raise click.UsageError("give exactly one of --dataset and --inputs")
    if labels_path is not None and inputs_path is None:
        raise click.BadParameter("goes with --inputs (a --dataset has its own labels)",
                                 param_hint="--labels")
    if output is not None and net_path.suffix != ".pt":
        raise click.BadParameter(f"applies to a .pt network only (an .npz stores its output "
                                 f"function); got --net {net_path}", param_hint="--output")
    _check_output_path(out, "--out")
    if net_path.suffix == ".pt":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise click.UsageError("reading a .pt network needs PyTorch: "
                                   "pip install -e '.[torch]'") from None
    try:
        net, default = load_network(net_path, output=output)
    except (ValueError, OSError) as exc:
        raise click.BadParameter(str(exc).replace("\n", " "), param_hint="--net") from None
    except Exception as exc:  # what unpickling a foreign .pt raises varies
        raise click.BadParameter(f"cannot read {net_path}: {type(exc).__name__}: "
                                 f"{exc}".replace("\n", " "), param_hint="--net") from None
    try:
        cfg = dropout_config(net, keep_probs, layers, scheme, default)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--keep-prob/--layers") from None
    data_ss, _, _ = _train_streams(seed)
    if dataset is not None:
        from .datasets import load_dataset

        ds = load_dataset(dataset, rng=data_ss)
        X, y, hint = ds.X_test, ds.y_test, "--dataset"
        if net.output == "identity":
            raise click.BadParameter(f"{dataset} has class labels, but the network's output "
                                     f"is identity; pass --output for a .pt of logits, or "
                                     f"--inputs", param_hint="--dataset")
        if ds.n_outputs != net.sizes[-1]:
            raise click.BadParameter(f"{dataset} needs {ds.n_outputs} output unit(s); the "
                                     f"network {net.architecture} has {net.sizes[-1]}",
                                     param_hint="--dataset")
    else:
        X, hint = _load_npy(inputs_path, "--inputs"), "--inputs"
        y = None if labels_path is None else _load_npy(labels_path, "--labels")
    try:
        X = check_input(net, X)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} ({net.architecture})", param_hint=hint) from None
    if y is not None:
        try:
            y = check_labels(net, y, X.shape[0])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--labels") from None
    df = evaluate_network(net, cfg, X, y, max_subnetworks=max_subnetworks,
                          n_samples=n_samples, estimator=estimator,
                          rng=np.random.SeedSequence(seed, spawn_key=(3,)))
    shown = df.dropna(axis=1, how="all").drop(columns=["architecture", "output", "scheme",
                                                       "layers", "keep_prob"])
    shown["reference"] = shown["reference"].fillna("-")
    first = df.iloc[0]
    click.echo(f"{net.architecture} ({net.output} output), {cfg.scheme} dropout on layers "
               f"{first['layers']} at keep_prob {first['keep_prob']}, {len(X)} inputs:")
    click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    params = {"net": str(net_path), "dataset": dataset, "inputs": inputs_path,
              "keep_prob": (dict(cfg.keep_prob) if not isinstance(cfg.keep_prob, float)
                            else cfg.keep_prob), "layers": list(cfg.layers),
              "scheme": cfg.scheme, "output": net.output, "max_subnetworks": max_subnetworks,
              "n_samples": n_samples, "estimator": estimator, "seed": seed}
    click.echo(f"wrote {save_result(df, out, params)} ({len(df)} rows)")
