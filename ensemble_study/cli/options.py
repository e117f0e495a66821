"""Click machinery: options from :class:`~ensemble_study.study.Param` records, shared options.

Nothing here knows a study: :func:`study_command` turns any
:class:`~ensemble_study.study.Study` into a command whose options, types,
ranges, defaults and help come from its declaration.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from pathlib import Path

import click

from ..executor import Execution, SchedulerLost, available_cores, require_dask
from ..results import output_folder_problem, output_path_problem
from ..study import SAME, Param, Study

RESULTS_DIR = Path("results")
FIGURES_DIR = Path("figures")
# Where --quick writes (QUICK_DIR/results, QUICK_DIR/figures): smoke runs never
# overwrite the committed results/ and figures/.
QUICK_DIR = Path("quick")
# Finished cells of every study, under the folder of its CSV (see executor.CellStore).
CELLS = ".cells"


class FiniteFloat(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and ``inf`` (click lets them through).

    A NaN compares False with every bound, so ``FloatRange(0)`` accepts it.
    """

    name = "finite float"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


KEEP_PROB = FiniteFloat(0, 1, min_open=True)


class LayerKeepProb(click.ParamType):
    """``LAYER=Q``: a hidden layer (>= 1) and its keep probability in (0, 1]."""

    name = "LAYER=Q"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        layer, sep, q = str(value).partition("=")
        try:
            layer, q = int(layer), float(q)
        except ValueError:
            layer = q = None
        if not sep or layer is None or layer < 1 or not (0 < q <= 1):
            self.fail(f"expected LAYER=Q with a hidden layer LAYER >= 1 and 0 < Q <= 1; "
                      f"got {value!r}", param, ctx)
        return (layer, q)


class Widths(click.ParamType):
    """``8,8``: the hidden widths of one architecture."""

    name = "W[,W...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            widths = tuple(int(w) for w in str(value).split(","))
        except ValueError:
            widths = ()
        if not widths or min(widths) < 1:
            self.fail(f"expected hidden widths >= 1 separated by commas, e.g. 8,8; "
                      f"got {value!r}", param, ctx)
        return widths


_METAVARS = {"int": "N", "float": "X", "keep_prob": "Q", "layer_keep_prob": "LAYER=Q",
             "widths": "W[,W...]"}


def _click_type(p: Param):
    if p.type == "int":
        return click.IntRange(None if p.low is None else int(p.low),
                              None if p.high is None else int(p.high))
    if p.type == "float":
        return FiniteFloat(p.low, p.high, min_open=p.low_open, max_open=p.high_open)
    if p.type == "keep_prob":
        return KEEP_PROB
    if p.type == "str":
        return click.Choice(p.choices)
    if p.type == "layer_keep_prob":
        return LayerKeepProb()
    if p.type == "widths":
        return Widths()
    return click.BOOL


def _shown(value, kind: str) -> str:
    """A parameter value as the command line spells it."""
    if value is None or value == ():
        return "none"
    if isinstance(value, tuple) and kind in ("widths", "layer_keep_prob") and isinstance(
            value[0], tuple):
        return " ".join(_shown(v, kind) for v in value)
    if kind == "widths":
        return ",".join(map(str, value))
    if kind == "layer_keep_prob":
        return f"{value[0]}={value[1]:g}"
    if isinstance(value, tuple):
        return " ".join(_shown(v, kind) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _default_text(p: Param) -> str:
    default = _shown(p.default, p.type)
    return default if p.quick is SAME else f"{default}; --quick: {_shown(p.quick, p.type)}"


def param_option(p: Param):
    """The click option of a study parameter, and hidden options for its old spellings.

    The default is None (or empty), so that the command knows which values
    were given; the study's default is shown from the record.
    """
    common = dict(type=_click_type(p), multiple=p.multiple, default=None,
                  metavar=_METAVARS.get(p.type))
    options = [click.option(p.option, p.name, help=p.help, show_default=_default_text(p),
                            **common)]
    for alias in p.aliases:
        options.append(click.option(alias, f"{p.name}__{_alias_key(alias)}", hidden=True,
                                    help=f"Deprecated spelling of {p.option}.", **common))
    return options


def _alias_key(alias: str) -> str:
    return alias.lstrip("-").replace("-", "_")


def given_values(study: Study, values: dict) -> dict:
    """The parameters given on the command line (aliases merged, with a warning)."""
    given = {}
    for p in study.params:
        value = values.pop(p.name, None)
        for alias in p.aliases:
            old = values.pop(f"{p.name}__{_alias_key(alias)}", None)
            if old not in (None, ()):
                click.echo(f"warning: {alias} is deprecated; use {p.option}", err=True)
                if value in (None, ()):
                    value = old
        if value not in (None, ()):
            given[p.name] = value
    return given


def usage_error(study: Study, exc: ValueError) -> click.ClickException:
    """A ``ValueError`` of a study's validation as a usage error naming the option."""
    text = str(exc)
    for p in study.params:
        if re.match(rf"{re.escape(p.name)}\b", text):
            return click.BadParameter(text, param_hint=p.option)
    return click.UsageError(text)


# --- output paths -------------------------------------------------------------------------

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


# A bad path (a folder, a device, a symlink out of its folder, below a file, in an
# unwritable folder) is a usage error (exit 2) before any work. `check_out` also
# checks a result's JSON sidecar.
check_out = _path_callback("result")
check_out_file = _path_callback("file")
check_out_folder = _path_callback("folder")


def check_output_path(path: Path, param_hint: str, *, sidecar: bool = True) -> Path:
    """Refuse a file path that cannot be written, before any work is done."""
    problem = output_path_problem(path, sidecar=sidecar)
    if problem:
        raise click.BadParameter(problem, param_hint=param_hint)
    return path


def check_output_folder(folder: Path, param_hint: str) -> Path:
    """Refuse a folder (a cell store) in which files cannot be created, before any work."""
    problem = output_folder_problem(folder)
    if problem:
        raise click.BadParameter(problem, param_hint=param_hint)
    return folder


def results_option(**kwargs):
    """``--results DIR``: the folder of result CSVs a command reads."""
    return click.option("--results", "results_dir",
                        type=click.Path(file_okay=False, path_type=Path),
                        default=RESULTS_DIR, show_default=True,
                        help="Folder of result CSVs to read.", **kwargs)


# --- where cells run ----------------------------------------------------------------------

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
        except SchedulerLost as exc:  # during the run: not a bad parameter
            raise click.ClickException(str(exc)) from None
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


def stored(execution: Execution, results_dir: Path) -> Execution:
    """The execution, storing finished cells under ``results_dir/.cells``."""
    return dataclasses.replace(execution, store=Path(results_dir) / CELLS)


# --- help text ----------------------------------------------------------------------------

# One format for every option's default: "help.  [default: X; range]" (click puts a
# show_default string in parentheses, and a range apart).
_STATED = re.compile(r"\s*\[default: ([^\]]*)\](?:  \[([^\]]*)\])?$")
_SHOWN = re.compile(r"\[default: \((.*?)\)(;|\])")


def _help_text(text: str) -> str:
    text = _SHOWN.sub(r"[default: \1\2", text)
    found = _STATED.search(text)
    if found is None:
        return text
    extra = "; ".join(part for part in found.groups() if part)
    return f"{text[:found.start()]}  [default: {extra}]"


class Command(click.Command):
    def format_options(self, ctx, formatter):
        records = [r for p in self.get_params(ctx) if (r := p.get_help_record(ctx))]
        if records:
            with formatter.section("Options"):
                formatter.write_dl([(opts, _help_text(text)) for opts, text in records])
