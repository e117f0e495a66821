"""The boundary study's figures and documentation blocks, from its saved table only."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from ...plots import (
    new_figure,
    predictor_line,
)
from ...report import table
from . import STUDY

# The table's columns and the predictors they hold.
_PREDICTOR_STYLE = {column: predictor_line(name, lw=2) for column, name in
                    (("exact_mean", "exact"), ("exact_nwgm", "nwgm"), ("scaled", "scaled"))}


@STUDY.block("boundary")
def boundary(df: pd.DataFrame) -> str:
    first = df.groupby(["scheme", "keep_prob"], sort=True)[
        ["test_error_exact", "test_error_scaled"]].first()
    rows = [[s, f"{q:g}", f"{r.test_error_exact:.3f}", f"{r.test_error_scaled:.3f}"]
            for (s, q), r in first.iterrows()]
    return table(["scheme", "keep_prob", "test error, exact mean", "test error, scaled pass"],
                 rows)


@STUDY.figure("boundary")
def plot_boundary(df: pd.DataFrame) -> Figure:
    """Decision boundaries (p = 0.5) of the exact ensemble, its NWGM and the scaled pass."""
    qs, schemes = sorted(df["keep_prob"].unique()), sorted(df["scheme"].unique())
    fig, axes = new_figure(len(qs), len(schemes), width=3.4, height=3.3)
    lim = max(float((df["exact_mean"] - df["scaled"]).abs().max()), 1e-3)
    for (q, scheme), cell in df.groupby(["keep_prob", "scheme"]):
        ax = axes[qs.index(q), schemes.index(scheme)]
        x1, x2 = sorted(cell["x1"].unique()), sorted(cell["x2"].unique())
        cell = cell.sort_values(["x2", "x1"])

        grid = {col: cell[col].to_numpy().reshape(len(x2), len(x1))
                for col in _PREDICTOR_STYLE}
        im = ax.pcolormesh(x1, x2, grid["exact_mean"] - grid["scaled"], cmap="RdBu_r",
                           vmin=-lim, vmax=lim, shading="nearest")
        for col, style in _PREDICTOR_STYLE.items():
            ax.contour(x1, x2, grid[col], levels=[0.5], colors=style["color"],
                       linestyles={"-": "solid", "--": "dashed", ":": "dotted"}[
                           style.get("ls", "-")], linewidths=1.8)
        if cell["dataset"].iloc[0] == "diamond":
            ax.plot([1, 0, -1, 0, 1], [0, 1, 0, -1, 0], color="0.5", lw=0.8)
        first = cell.iloc[0]
        ax.set_title(f"{scheme}, keep_prob={q:g}\ntest error: exact "
                     f"{first['test_error_exact']:.3f}, scaled {first['test_error_scaled']:.3f}",
                     fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    fig.colorbar(im, ax=axes[:, -1], label="p(exact mean) - p(scaled pass)", shrink=0.8)
    for style in _PREDICTOR_STYLE.values():  # legend proxies
        axes[0, 0].plot([], [], **{**style, "lw": 1.8})
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle(f"Decision boundary p = 0.5 on {df['dataset'].iloc[0]} "
                 f"({df['architecture'].iloc[0]}, every hidden layer dropped)\n"
                 "grey: the true boundary", fontsize=10)
    return fig
