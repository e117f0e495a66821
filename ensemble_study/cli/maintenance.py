"""Commands that run or redraw everything: reproduce, figures, report, bench."""

from __future__ import annotations

from pathlib import Path

import click

from ..results import save_result
from .options import (
    CELLS,
    FIGURES_DIR,
    QUICK_DIR,
    RESULTS_DIR,
    Command,
    FiniteFloat,
    check_out,
    check_out_file,
    check_out_folder,
    check_output_folder,
    check_output_path,
    execution_options,
    results_option,
    stored,
)


def draw_figures(results_dir: Path, figures_dir: Path, stems=None) -> list[Path]:
    """Every figure whose CSV is there; say which of ``stems``' figures (default:
    all) are skipped because their CSV is missing."""
    from ..publish import render_all
    from ..studies import tables

    for stem, tab in tables().items():
        if (tab.figures and (stems is None or stem in stems)
                and not (results_dir / f"{stem}.csv").exists()):
            names = ", ".join(f"{png}.png" for png in tab.figures)
            click.echo(f"skipped {names}: no {results_dir / stem}.csv", err=True)
    written = render_all(results_dir, figures_dir)
    for path in written:
        click.echo(f"wrote {path}")
    return written


@click.command(cls=Command)
@results_option()
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
        written = draw_figures(results_dir, figures_dir)
    except ValueError as exc:  # a malformed CSV, named in the message; nothing written
        raise click.BadParameter(str(exc), param_hint="--results") from None
    if not written:
        click.echo(f"no figure drawn: no result CSV with a figure under {results_dir}",
                   err=True)
        raise SystemExit(1)


@click.command(cls=Command)
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
    """Run every default study, redraw every figure, regenerate the documents' numbers.

    Finished cells are stored under RESULTS/.cells/, so an interrupted run
    started again resumes study by study and cell by cell (--fresh: from
    scratch). Into the default folders, the generated blocks of README.md
    and of the pages under docs/ are rewritten from the new CSVs at the end.
    """
    from .. import reproduce as job
    from ..studies import default_studies

    root = QUICK_DIR if quick else Path()
    results_dir = root / RESULTS_DIR if results_dir is None else results_dir
    figures_dir = root / FIGURES_DIR if figures_dir is None else figures_dir
    # The defaults, and the cell store, checked before any study starts.
    check_output_folder(results_dir, "--results")
    check_output_folder(results_dir / CELLS, "--results")
    check_output_folder(figures_dir, "--figures")

    def echo(text):
        click.echo(text, err=True)

    costs = job.run_studies(results_dir, stored(execution, results_dir), quick=quick,
                            echo=echo)
    # Wall seconds per study: not byte-reproducible, so apart from the studies' tables.
    echo(f"wrote {save_result(costs, results_dir / 'reproduce_cost.csv', {'quick': quick})}")
    try:
        draw_figures(results_dir, figures_dir, default_studies())
    except ValueError as exc:  # a malformed CSV left in --results by something else
        raise click.ClickException(str(exc)) from None
    if results_dir == RESULTS_DIR:
        job.refresh_documents(results_dir, echo=echo)


def _deprecated_readme(ctx, param, value):
    if value is not None:
        click.echo("--readme is deprecated: use --document (or nothing, for every document "
                   "under --root)", err=True)
    return value


@click.command(cls=Command)
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=Path(), show_default="the current folder",
              help="Repository folder: every document under it (README.md and the pages "
                   "under docs/) that holds a '<!-- report: NAME -->' block.")
@click.option("--document", "documents", multiple=True, default=(),
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Only this Markdown file; repeat for several.")
@click.option("--readme", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, callback=_deprecated_readme, help="Deprecated: --document.")
@results_option()
@click.option("--check", is_flag=True,
              help="Change nothing; exit 1 if a block differs from what the CSVs give.")
def report(root, documents, readme, results_dir, check):
    """Regenerate the documents' numbers (tables, intervals, tests) from the result CSVs."""
    from ..publish import update
    from ..report import documents as find_documents
    from ..results import atomic_write_text

    if not results_dir.is_dir():
        raise click.BadParameter(f"no such folder: {results_dir}", param_hint="--results")
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


@click.command(cls=Command)
@click.option("--quick", is_flag=True,
              help="Small networks and 64 inputs: a smoke run of a few seconds.")
@click.option("--naive-budget", type=FiniteFloat(0, min_open=True), default=None,
              show_default="3, or 0.3 with --quick",
              help="Seconds of the naive per-mask loop to time per network before "
                   "extrapolating per subnetwork.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              show_default=f"{RESULTS_DIR / 'bench.csv'}; with --quick, "
                           f"{QUICK_DIR / RESULTS_DIR / 'bench.csv'}",
              callback=check_out, help="Result CSV.")
@click.option("--figure", "figure_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, show_default=f"{FIGURES_DIR / 'bench.png'}; with --quick, "
                                         f"{QUICK_DIR / FIGURES_DIR / 'bench.png'}",
              callback=check_out_file, help="PNG of time against the number of dropped units.")
def bench(quick, naive_budget, out, figure_path):
    """Time exact enumeration against the naive per-mask loop."""
    from ..bench import FOOTNOTE, merge_hosts, run_bench, save_figure

    root = QUICK_DIR if quick else Path()
    out = root / RESULTS_DIR / "bench.csv" if out is None else out
    figure_path = root / FIGURES_DIR / "bench.png" if figure_path is None else figure_path
    check_output_path(out, "--out")
    check_output_path(figure_path, "--figure", sidecar=False)

    df, params = run_bench(quick, naive_budget=naive_budget, echo=click.echo)
    click.echo(FOOTNOTE)
    previous = _previous_bench(out)
    merged = merge_hosts(df, previous)
    if len(merged) > len(df):
        click.echo(f"kept {len(merged) - len(df)} rows of other hosts from {out}")
    click.echo(f"wrote {save_result(merged, out, params)} ({len(merged)} rows)")
    click.echo(f"wrote {save_figure(df, figure_path)}")


def _previous_bench(out: Path):
    """The rows already in ``out`` (None if there is none, or it cannot be read:
    then only this run's rows are written)."""
    from ..results import load_result

    if not out.exists():
        return None
    try:
        return load_result(out)
    except (OSError, ValueError) as exc:
        click.echo(f"not keeping other hosts' rows: {out} could not be read ({exc})")
        return None


COMMANDS = (reproduce, figures, report, bench)
