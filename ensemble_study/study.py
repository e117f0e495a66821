"""A study, declared once: its parameters as data, its cells, its figures and blocks.

A study is a package under ``ensemble_study/studies/`` whose ``__init__``
defines ``STUDY``, a :class:`Study`, and the study's compute: ``cells(params)``
(small picklable cell descriptors) and ``run_cell(cell, params) -> list[dict]``
(one cell's rows, drawing only from that cell's own stream, so that cells
run anywhere and in any order). Its ``show`` module registers on ``STUDY``
the figures (``@STUDY.figure("png_stem")``, ``fn(df) -> Figure``) and the
documentation blocks (``@STUDY.block("name")``, ``fn(df) -> str``), each
reading only the study's saved CSV; a statistic that a figure and a block
both show is one function there that both call.

Everything else comes from the declaration: the ``ensemble-study NAME``
command and its options (types, ranges, defaults and help from the
:class:`Param` records), the validation of a parameter set (before any
work), the study's place in ``ensemble-study reproduce``, its ``--summary``,
and its contract tests (``tests/test_study_contracts.py`` iterates over the
registry, :func:`ensemble_study.studies.registry`).

A saved CSV that is not a study's (a benchmark, a script's measurement) is a
:class:`Table`: the same registry of figures and blocks, and the command that
writes it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

TYPES = ("int", "float", "keep_prob", "str", "bool", "layer_keep_prob", "widths")


class _Same:
    def __repr__(self):
        return "the default"


SAME = _Same()
"""``Param.quick``'s default: the quick grid keeps the default value."""


@dataclass(frozen=True)
class Param:
    """One parameter of a study: its type, range, default, quick value and help.

    Attributes
    ----------
    name : str
        The key in the study's parameter dict (``keep_probs``).
    type : {"int", "float", "keep_prob", "str", "bool", "layer_keep_prob"}
        ``keep_prob`` is a float in (0, 1]; ``str`` needs ``choices``;
        ``layer_keep_prob`` is a pair ``(hidden layer >= 1, keep_prob)``
        (``LAYER=Q`` on the command line); ``widths`` a non-empty tuple of
        hidden widths (``8,8`` on the command line).
    default
        The value of the default grid (a tuple when ``multiple``).
    help : str
        One sentence for ``--help`` and the docs; the default and the range
        are added from the record, never typed into it.
    quick
        The value of the small smoke-test grid (``--quick``); ``SAME`` keeps
        the default.
    multiple : bool
        A non-empty tuple of values (the CLI option is repeated).
    choices : tuple of str, optional
        Allowed values of a ``str`` parameter.
    low, high : number, optional
        Inclusive bounds of an ``int`` or ``float`` (``high`` is also the
        budget: a value past it would cost more memory or time than the study
        allows).
    low_open, high_open : bool
        Make a float bound exclusive.
    flag : str, optional
        The CLI option (``--keep-prob``); by default ``--`` and the name with
        dashes.
    aliases : tuple of str
        Older CLI spellings, still accepted with a deprecation warning.
    unique : bool
        For ``multiple``: sort and deduplicate the values (grids of K, widths).
    optional : bool
        ``None`` is allowed too (no value: "none" on the command line).
    min_count : int
        For ``multiple``: the fewest values allowed (0: the empty tuple is allowed).
    """

    name: str
    type: str
    default: Any
    help: str
    quick: Any = SAME
    multiple: bool = False
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    flag: str | None = None
    aliases: tuple = ()
    unique: bool = False
    optional: bool = False
    min_count: int = 1

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"Param {self.name!r}: type must be one of {TYPES}; "
                             f"got {self.type!r}")
        if self.type == "str" and not self.choices:
            raise ValueError(f"Param {self.name!r}: a str parameter needs choices")
        # A declaration whose own default or quick value is invalid is a bug
        # of the study: refuse it when the package is imported.
        self.check(self.default)
        if self.quick is not SAME:
            self.check(self.quick)

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def allowed(self) -> str:
        """The allowed values, in words: ``"an integer >= 1"``."""
        if self.type == "keep_prob":
            return "a keep probability in (0, 1]"
        if self.type == "bool":
            return "true or false"
        if self.type == "str":
            return "one of " + ", ".join(map(repr, self.choices))
        if self.type == "layer_keep_prob":
            return "a pair (hidden layer >= 1, keep probability in (0, 1]), LAYER=Q"
        if self.type == "widths":
            return "a tuple of hidden widths >= 1, e.g. 8,8"
        kind = "an integer" if self.type == "int" else "a finite number"
        lo = None if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = None if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        return " ".join([kind, " and ".join(b for b in (lo, hi) if b)]).strip()

    def _fail(self, value, why: str = ""):
        many = ""
        if self.multiple:
            many = "one or more values, each " if self.min_count else "values, each "
        none = " (or None)" if self.optional else ""
        raise ValueError(f"{self.name} must be {many}{self.allowed()}{none}{why}; "
                         f"got {value!r}")

    def check_one(self, value):
        """One value, normalised (``ValueError`` naming the parameter if it is bad)."""
        t = self.type
        if t == "widths":
            if isinstance(value, str) or not isinstance(value, Sequence) or not value or any(
                    isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1
                    for w in value):
                self._fail(value)
            return tuple(int(w) for w in value)
        if t == "layer_keep_prob":
            if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
                self._fail(value)
            layer, q = value
            if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or layer < 1:
                self._fail(value)
            if (isinstance(q, bool) or not isinstance(q, numbers.Real)
                    or not 0 < float(q) <= 1):
                self._fail(value)
            return (int(layer), float(q))
        if t == "bool":
            if not isinstance(value, bool):
                self._fail(value)
            return value
        if t == "str":
            if not isinstance(value, str) or value not in self.choices:
                self._fail(value)
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            self._fail(value)
        if t == "int":
            if not isinstance(value, numbers.Integral):
                self._fail(value)
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                self._fail(value)
        low, high, low_open, high_open = self.low, self.high, self.low_open, self.high_open
        if t == "keep_prob":
            low, high, low_open, high_open = 0.0, 1.0, True, False
        if low is not None and (value < low or (low_open and value == low)):
            self._fail(value)
        if high is not None and (value > high or (high_open and value == high)):
            self._fail(value, "" if t == "keep_prob" else " (a larger value would exceed the "
                              "study's memory and time budget)")
        return value

    def check(self, value):
        """The parameter's value, normalised: a tuple when ``multiple``."""
        if value is None and self.optional:
            return None
        if not self.multiple:
            return self.check_one(value)
        if isinstance(value, dict) and self.type == "layer_keep_prob":
            values = tuple(value.items())
        elif isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            values = (value,)
        else:
            values = tuple(value)
        if len(values) < self.min_count:
            self._fail(value)
        values = tuple(self.check_one(v) for v in values)
        return tuple(sorted(set(values))) if self.unique else values

    def value(self, quick: bool):
        return self.default if not quick or self.quick is SAME else self.quick


@dataclass(eq=False)
class Table:
    """A saved CSV under ``results/`` with the figures and blocks drawn from it.

    Attributes
    ----------
    name : str
        The CSV's stem (``results/NAME.csv``).
    writer : str
        The command that writes the CSV (named in errors when it is missing).
    figures : dict
        PNG stem -> ``fn(df) -> matplotlib Figure``.
    blocks : dict
        Block name -> ``fn(df) -> Markdown str``.
    """

    name: str
    writer: str = ""
    figures: dict = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.writer:
            raise ValueError(f"table {self.name!r}: say which command writes it (writer=)")
        TABLES.setdefault(self.name, self)

    def figure(self, png: str):
        """Register ``fn(df) -> Figure`` as the maker of ``figures/<png>.png``."""

        def register(fn):
            if png in self.figures:
                raise ValueError(f"{self.name}: figure {png!r} registered twice")
            self.figures[png] = fn
            return fn

        return register

    def block(self, name: str):
        """Register ``fn(df) -> str`` as the documentation block ``name``."""

        def register(fn):
            if name in self.blocks:
                raise ValueError(f"{self.name}: block {name!r} registered twice")
            self.blocks[name] = fn
            return fn

        return register

    def csv(self, results_dir) -> Path:
        return Path(results_dir) / f"{self.name}.csv"

    def load(self, results_dir) -> pd.DataFrame:
        """The saved table (``FileNotFoundError`` naming the command that writes it)."""
        from .results import load_result

        path = self.csv(results_dir)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; run `{self.writer}` first")
        return load_result(path)


TABLES: dict[str, Table] = {}
"""Every table with figures or blocks, by CSV stem (studies included)."""


@dataclass(eq=False)
class Study(Table):
    """A study's declaration (see the module docstring).

    Attributes
    ----------
    title : str
        One line: what the study measures (the command's short help).
    params : tuple of Param
    cells : callable
        ``cells(params) -> list`` of picklable cell descriptors, in grid order.
    run_cell : callable
        Top-level ``run_cell(cell, params) -> list[dict]``.
    tidy : callable
        ``tidy(rows) -> DataFrame``: the rows to the study's table.
    check : callable, optional
        ``check(params) -> params``: validation across parameters (sizes,
        budgets) and derived values, after each parameter is checked; raises
        ``ValueError`` naming the parameters and the fix.
    record : callable, optional
        ``record(params) -> dict``: the parameters as JSON for the sidecar.
    reproduce : bool
        Whether ``ensemble-study reproduce`` runs it (False: its full grid
        costs more than the main job allows; it runs apart).
    order : int
        Its place in ``reproduce`` and in listings.
    cost : str
        The default grid's measured cost, in words, for ``--help``.
    measure : callable, optional
        ``measure(params) -> DataFrame`` of seconds on this machine, saved
        beside the study's table as ``NAME_timing.csv`` (not byte-reproducible
        by nature, so never in the table itself).
    """

    title: str = ""
    params: tuple = ()
    cells: Callable | None = None
    run_cell: Callable | None = None
    tidy: Callable = None
    check: Callable | None = None
    record: Callable | None = None
    reproduce: bool = True
    order: int = 100
    cost: str = ""
    measure: Callable | None = None

    def __post_init__(self):
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"study {self.name!r}: a parameter is declared twice: {names}")
        if not self.writer:
            self.writer = f"ensemble-study {self.name}"
        super().__post_init__()

    @property
    def param(self) -> dict:
        return {p.name: p for p in self.params}

    def defaults(self, quick: bool = False) -> dict:
        """The default grid's parameters (the small one when ``quick``)."""
        return {p.name: p.value(quick) for p in self.params}

    def check_params(self, params: dict | None = None, /, *, quick: bool = False,
                     **overrides) -> dict:
        """A full, validated parameter set: the defaults, updated by the given values.

        Raises
        ------
        ValueError
            Naming the first bad or unknown parameter, what it allows and the
            value received; nothing has run.
        """
        given = {**(params or {}), **overrides}
        unknown = sorted(set(given) - set(self.param))
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {unknown}; the study takes "
                             f"{sorted(self.param)}")
        merged = {**self.defaults(quick), **given}
        checked = {name: self.param[name].check(value) for name, value in merged.items()}
        return self.check(checked) if self.check is not None else checked

    def run(self, params: dict | None = None, /, *, quick: bool = False, progress=False,
            execution=None, **overrides) -> pd.DataFrame:
        """Run the study on every cell; its tidy table.

        Parameters
        ----------
        params : dict, optional
            Parameter values (the rest from the defaults, or from the quick
            grid when ``quick``); keywords work too.
        progress : bool or callable
            Progress on stderr (:func:`ensemble_study.executor.map_cells`).
        execution : Execution, optional
            Where the cells run and where finished cells are stored.
        """
        from .executor import map_cells

        p = self.check_params(params, quick=quick, **overrides)
        rows = map_cells(self.name, self.run_cell, self.cells(p), p, execution=execution,
                         progress=progress, depends=self.depends)
        return self.tidy(rows)

    def sidecar(self, params: dict) -> dict:
        """The parameters as recorded in the sidecar."""
        return self.record(params) if self.record is not None else _jsonable(params)

    @property
    def depends(self) -> tuple[str, ...]:
        """The modules whose source keys the stored cells: the study's compute."""
        return (self.run_cell.__module__,)


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value
