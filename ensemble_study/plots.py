"""Figure machinery: the shared style and helpers.

The figures themselves live with their studies (``studies/<name>/show.py``)
and tables (:mod:`ensemble_study.tables`), registered with
``@TABLE.figure(png)``: one function per figure, a tidy DataFrame in, a
matplotlib Figure out. Nothing here changes matplotlib's global state:
styles are passed as keyword arguments, figures are created with
``matplotlib.figure.Figure`` (no pyplot, so no GUI backend and no figure
manager). :func:`ensemble_study.publish.render_all` draws them all.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .activations import ACTIVATIONS
from .results import write_files
from .stats import summarise


def median_band(ax, x, values_by_x, *, label, color=None, statistic="median",
                spread=(0.1, 0.9), **line_kw):
    """Draw a centre line, its bootstrap 95% CI, and the spread across units.

    The CI (the darker band) is the uncertainty of the centre line; the
    spread (the lighter band, ``spread`` quantiles, None for none) is how much
    the units (networks, seeds) differ, which no number of units shrinks.

    Parameters
    ----------
    ax : matplotlib Axes
    x : array_like, shape (n,)
        Sorted x positions.
    values_by_x : pandas SeriesGroupBy
        Values grouped by x, one per unit (e.g. per network).
    statistic : {"median", "mean"}
        The centre line and the statistic whose CI is drawn.
    spread : (low, high) quantiles, or None
    """
    frame = pd.concat([pd.DataFrame({"x": key, "value": vals.to_numpy()})
                       for key, vals in values_by_x])
    table = summarise(frame, ["x"], "value", statistic, spread=spread).set_index("x").reindex(x)
    (line,) = ax.plot(x, table["estimate"].to_numpy(), label=label, color=color, **line_kw)
    ax.fill_between(x, table["ci_low"].to_numpy(), table["ci_high"].to_numpy(),
                    color=line.get_color(), alpha=0.3, linewidth=0)
    if spread is not None:
        ax.fill_between(x, table["spread_low"].to_numpy(), table["spread_high"].to_numpy(),
                        color=line.get_color(), alpha=0.08, linewidth=0)
    return line


def new_figure(nrows=1, ncols=1, *, width=4.2, height=3.4, **subplot_kw):
    """A Figure with a grid of Axes, sized per panel, constrained layout."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def save_figure(fig: Figure, path, *, dpi: int = 130) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (temporary name, then rename)."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    write_files([(path, buffer.getvalue())])
    return path


# --- the shared style -------------------------------------------------------------------

ACTIVATION_COLORS = {name: a.color for name, a in ACTIVATIONS.items()}
STATISTIC_LABELS = {"arithmetic_mean": "arithmetic mean", "nwgm": "NWGM"}
BAND = ("line: median over networks; dark band: its bootstrap 95% CI; "
        "light band: 10-90% of networks")
SEED_BAND = ("median over training seeds; dark band: its bootstrap 95% CI; "
             "light band: 10-90% of seeds")
EXACT = 1e-9  # a relative gap below this is rounding error: the two sides are equal


def networks_text(df) -> str:
    """Setup text: the architectures and how many random networks each curve summarises."""
    archs = " and ".join(sorted(df["architecture"].unique()))
    return f"{archs}; {df['seed'].nunique()} random networks per curve"


def activation_handles(activations):
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=ACTIVATION_COLORS[a], label=a) for a in activations]


def predictor_line(name: str, **extra) -> dict:
    """Line keywords (label, colour, line style) of a registered predictor, for every figure."""
    from .predictors import get

    pred = get(name)
    return {"label": pred.label, "color": pred.style["color"], "ls": pred.style["ls"], **extra}
