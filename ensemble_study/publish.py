"""From saved CSVs to published figures and documents.

Every registered figure (:func:`render_all`) and every generated block of
the documents (:func:`update`) comes from here: the registry of studies and
tables (:func:`ensemble_study.studies.tables`) supplies the functions, the
machinery of :mod:`ensemble_study.plots` and :mod:`ensemble_study.report`
the style, the atomic writes and the block syntax. Keeping the registry's
consumers here, above both, is what keeps the machinery free of the studies
that use it.
"""

from __future__ import annotations

from pathlib import Path

from .plots import save_figure
from .report import BLOCK
from .results import load_result
from .studies import tables

DRAW_ERRORS = (KeyError, ValueError, TypeError, IndexError, AttributeError, ArithmeticError)
"""What a figure or block function raises on a table whose content is not what its study
writes (a column dropped or renamed, a string among numbers, a missing identifier, no rows)."""


def explain(csv, df, what: str, exc: BaseException) -> str:
    """One line naming ``csv``, the figure or block ``what`` and what is wrong with the table."""
    missing = None
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        missing = exc.args[0]
    elif isinstance(exc, AttributeError) and getattr(exc, "name", None) and \
            type(getattr(exc, "obj", None)).__name__ in ("DataFrame", "Series", "Pandas"):
        missing = exc.name
    if missing is not None and missing.isidentifier() and missing not in df.columns:
        problem = f"lacks column {missing!r}"
    elif df.empty:
        problem = "has no rows"
    else:
        detail = " ".join(str(exc).split())[:200]
        problem = f"has content its study does not write ({type(exc).__name__}: {detail})"
    return (f"{csv} {problem}, so {what} cannot be made from it; is it the table of "
            f"study {Path(csv).stem!r}? Rerun the command that writes it")


def render_all(results_dir, figures_dir, *, dpi: int = 130) -> list[Path]:
    """Rebuild every registered PNG under ``figures_dir`` from the CSVs in ``results_dir``.

    CSVs without a registered figure are skipped. Every figure is drawn
    before any is written, so a malformed CSV writes nothing; each PNG is
    then written to a temporary name and renamed.

    Returns
    -------
    list of Path
        The PNGs written.

    Raises
    ------
    ValueError
        Naming the CSV and what is wrong with it (not a CSV, no rows, a
        missing column, a sidecar that does not match), before any PNG is
        written.
    """
    registered = tables()
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    drawn = []
    for csv in sorted(results_dir.glob("*.csv")):
        makers = registered[csv.stem].figures if csv.stem in registered else {}
        if not makers:
            continue
        df = load_result(csv)  # raises ValueError naming the file
        if df.empty:
            raise ValueError(f"{csv} has no rows (columns: {', '.join(df.columns) or 'none'}); "
                             f"rerun the study that writes it")
        for png, fn in makers.items():
            try:
                fig = fn(df)
            except DRAW_ERRORS as exc:
                raise ValueError(explain(csv, df, f"figure {png}.png", exc)) from None
            drawn.append((figures_dir / f"{png}.png", fig))
    for out, fig in drawn:
        save_figure(fig, out, dpi=dpi)
    return [out for out, _ in drawn]


def blocks() -> dict:
    """Every registered block: name -> (table, function)."""
    out = {}
    for tab in tables().values():
        for name, fn in tab.blocks.items():
            if name in out:
                raise ValueError(f"block {name!r} is registered by {out[name][0].name!r} and "
                                 f"{tab.name!r}")
            out[name] = (tab, fn)
    return out


def render(name: str, results_dir, *, cache: dict | None = None) -> str:
    """The Markdown of one block, ending with a newline.

    ``cache`` (table name -> DataFrame) lets several blocks share one read of a CSV.
    """
    known = blocks()
    if name not in known:
        raise ValueError(f"unknown report block {name!r}; known: {sorted(known)}")
    tab, fn = known[name]
    cache = {} if cache is None else cache
    if tab.name not in cache:
        cache[tab.name] = tab.load(results_dir)
    df = cache[tab.name]
    try:
        return fn(df).rstrip("\n") + "\n"
    except DRAW_ERRORS as exc:
        raise ValueError(explain(tab.csv(results_dir), df, f"block {name!r}", exc)) from None


def update(text: str, results_dir) -> tuple[str, list[str]]:
    """``text`` with every block regenerated, and the names of the blocks that changed."""
    changed, cache = [], {}

    def replace(match):
        head, name, old, tail = match.groups()
        new = render(name, results_dir, cache=cache)
        if new != old:
            changed.append(name)
        return head + new + tail

    return BLOCK.sub(replace, text), changed
