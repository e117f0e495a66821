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


def agreement(df: pd.DataFrame) -> pd.DataFrame:
    """Per (scheme, keep_prob): the share of grid points where two predictors' classes differ.

    The class is ``p >= 0.5``; ``mean_vs_nwgm`` compares the exact mean with
    the exact NWGM, ``mean_vs_scaled`` the exact mean with the scaled pass.
    """
    rows = []
    for (sc, q), g in df.groupby(["scheme", "keep_prob"], sort=True):
        mean = g["exact_mean"] >= 0.5
        rows.append(dict(scheme=sc, keep_prob=q, n_points=len(g),
                         mean_vs_nwgm=float((mean != (g["exact_nwgm"] >= 0.5)).mean()),
                         mean_vs_scaled=float((mean != (g["scaled"] >= 0.5)).mean()),
                         max_abs_mean_minus_scaled=float((g["exact_mean"] - g["scaled"])
                                                         .abs().max())))
    return pd.DataFrame(rows)


@STUDY.block("boundary-agreement")
def boundary_agreement(df: pd.DataFrame) -> str:
    a = agreement(df)
    def share(x, n):
        return f"{round(x * n):,} ({x:.1%})"

    rows = [[r.scheme, f"{r.keep_prob:g}", share(r.mean_vs_nwgm, r.n_points),
             share(r.mean_vs_scaled, r.n_points), f"{r.max_abs_mean_minus_scaled:.3f}"]
            for r in a.itertuples()]
    return (f"Share of the {int(a.n_points.iloc[0]):,} grid points where the exact mean's class "
            f"(p >= 0.5) differs from the NWGM's and from the scaled pass's (points and share), "
            f"and the largest absolute difference p(exact mean) - p(scaled pass) on the grid. "
            f"One trained network per cell: exact values that describe it, not a comparison "
            f"between cells.\n\n"
            + table(["scheme", "keep_prob", "mean vs NWGM", "mean vs scaled pass",
                     "largest abs(mean - scaled)"], rows))


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
