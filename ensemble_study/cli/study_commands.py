"""One command per study, generated from its declaration."""

from __future__ import annotations

from pathlib import Path

import click

from ..results import save_result
from ..study import Study
from .options import (
    CELLS,
    QUICK_DIR,
    RESULTS_DIR,
    Command,
    check_output_folder,
    check_output_path,
    execution_options,
    given_values,
    param_option,
    results_option,
    stored,
    usage_error,
)


def default_out(study: Study, quick: bool) -> Path:
    """``results/NAME.csv``, or ``quick/results/NAME.csv`` with ``--quick``."""
    return (QUICK_DIR if quick else Path()) / RESULTS_DIR / f"{study.name}.csv"


def timing_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_timing.csv")


def run_study(study: Study, *, quick: bool, given: dict, out: Path | None, execution,
              echo=click.echo) -> Path:
    """Validate (a usage error names the option), run, save the table (and its timing)."""
    try:
        params = study.check_params(given, quick=quick)
    except ValueError as exc:
        raise usage_error(study, exc) from None
    out = default_out(study, quick) if out is None else out
    check_output_path(out, "--out")
    if study.measure is not None:
        check_output_path(timing_path(out), "--out")
    check_output_folder(out.parent / CELLS, "--out")
    df = study.run(params, progress=True, execution=stored(execution, out.parent))
    echo(f"wrote {save_result(df, out, study.sidecar(params))} ({len(df)} rows)")
    if study.measure is not None:
        echo(f"wrote {save_result(study.measure(params), timing_path(out), study.sidecar(params))}")
    return out


def print_summary(study: Study, results_dir: Path, echo=click.echo) -> None:
    """Every block of the study, rendered from ``results_dir/NAME.csv``."""
    from ..publish import render

    if not study.blocks:
        echo(f"{study.name} has no summary blocks")
        return
    try:
        cache = {study.name: study.load(results_dir)}
        for name in study.blocks:
            echo(f"## {name}\n\n{render(name, results_dir, cache=cache)}")
    except (FileNotFoundError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--results") from None


def _help(study: Study) -> str:
    where = ("It runs apart from `ensemble-study reproduce`" if not study.reproduce
             else "It is part of `ensemble-study reproduce`")
    cost = f"The default grid takes {study.cost}. " if study.cost else ""
    return (f"{study.title}\n\n{cost}{where}. Writes RESULTS/{study.name}.csv and its JSON "
            f"sidecar; --quick runs a small grid into {QUICK_DIR}/. The table's columns and "
            f"the study's design: the documentation of "
            f"ensemble_study.studies.{study.name}.")


def study_command(study: Study) -> click.Command:
    """The ``ensemble-study NAME`` command of ``study``."""

    def callback(quick, out, summary, results_dir, execution, **values):
        given = given_values(study, values)
        if summary:
            if given:
                raise click.UsageError(f"--summary runs nothing; it takes no grid options "
                                       f"(got {', '.join(sorted(given))})")
            if quick and results_dir == RESULTS_DIR:
                results_dir = QUICK_DIR / RESULTS_DIR
            print_summary(study, results_dir)
            return
        run_study(study, quick=quick, given=given, out=out, execution=execution)

    options = [click.option("--quick", is_flag=True,
                            help=f"The small smoke-test grid (seconds), written under "
                                 f"{QUICK_DIR}/ unless --out is given.")]
    for p in study.params:
        options += param_option(p)
    options += [
        click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     show_default=f"{RESULTS_DIR / study.name}.csv",
                     help="Result CSV; its parameters go to a JSON sidecar next to it."),
        click.option("--summary", is_flag=True,
                     help="Run nothing: print the study's documentation blocks from the CSV "
                          "under --results (with --quick, the quick run's)."),
        results_option(),
    ]
    fn = execution_options(callback)
    for option in reversed(options):
        fn = option(fn)
    return click.command(study.name, cls=Command, help=_help(study),
                         short_help=study.title)(fn)
