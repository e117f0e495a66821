"""Figures: one function per figure, a tidy DataFrame in, a matplotlib Figure out.

Nothing here changes matplotlib's global state: styles are passed as keyword
arguments, figures are created with ``matplotlib.figure.Figure`` (no pyplot,
so no GUI backend and no figure manager). Each function is registered under
the CSV it reads (``results/<csv>.csv``) and the PNG it makes
(``figures/<png>.png``); :func:`render_all` rebuilds every PNG from the CSVs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .results import load_result

# csv stem -> {png stem -> plot function}
FIGURES: dict[str, dict[str, Callable[[pd.DataFrame], Figure]]] = {}


def figure(csv: str, png: str):
    """Register a plot function as the maker of ``figures/<png>.png`` from ``results/<csv>.csv``."""

    def register(fn):
        FIGURES.setdefault(csv, {})[png] = fn
        return fn

    return register


def median_band(ax, x, values_by_x, *, label, color=None, quantiles=(0.1, 0.9), **line_kw):
    """Draw the median line and a quantile band of ``values_by_x`` (a groupby over x).

    Parameters
    ----------
    ax : matplotlib Axes
    x : array_like, shape (n,)
        Sorted x positions.
    values_by_x : pandas SeriesGroupBy
        Values grouped by x (e.g. over seeds).
    """
    med = values_by_x.median().reindex(x).to_numpy()
    lo = values_by_x.quantile(quantiles[0]).reindex(x).to_numpy()
    hi = values_by_x.quantile(quantiles[1]).reindex(x).to_numpy()
    (line,) = ax.plot(x, med, label=label, color=color, **line_kw)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def new_figure(nrows=1, ncols=1, *, width=4.2, height=3.4, **subplot_kw):
    """A Figure with a grid of Axes, sized per panel, constrained layout."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def render_all(results_dir, figures_dir, *, dpi: int = 130) -> list[Path]:
    """Rebuild every registered PNG under ``figures_dir`` from the CSVs in ``results_dir``.

    CSVs without a registered figure are skipped. Each PNG is written to a
    temporary name and renamed.

    Returns
    -------
    list of Path
        The PNGs written.
    """
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for csv in sorted(results_dir.glob("*.csv")):
        for png, fn in FIGURES.get(csv.stem, {}).items():
            fig = fn(load_result(csv))
            out = figures_dir / f"{png}.png"
            tmp = out.with_name(f".{out.name}.tmp.png")
            fig.savefig(tmp, dpi=dpi)
            tmp.replace(out)
            written.append(out)
    return written


# Figure functions follow, one section per study; each is registered with
# @figure(csv_stem, png_stem).
