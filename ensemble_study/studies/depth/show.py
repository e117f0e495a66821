"""The depth study's figures and documentation blocks, from its saved table only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ... import stats
from ...plots import (
    BAND,
    EXACT,
    median_band,
    new_figure,
)
from ...report import ci, median_ci, names, table, trend_sentence
from . import STUDY


@STUDY.block("depth-table")
def depth_table(df: pd.DataFrame) -> str:
    # The largest number of dropped units that every depth reaches.
    reach = df.groupby("n_dropped")["depth"].nunique()
    budget = int(reach[reach == reach.max()].index.max())
    d = df[df.n_dropped == budget]
    depths = sorted(d.depth.unique())
    rows = []
    for act, g in d.groupby("activation", sort=False):
        for stat in ("arithmetic_mean", "nwgm"):
            s = g[g.statistic == stat]
            cells = []
            for dep in depths:
                v = s.loc[s.depth == dep, "relative_gap"]
                cells.append("0 (exact)" if v.max() < EXACT else median_ci(v))
            lo, hi = (s.loc[s.depth == dep, "relative_gap"].to_numpy() for dep in
                      (depths[0], depths[-1]))
            diff = _difference_of_medians(hi, lo, seed=stats.group_seed((act, stat)))
            rows.append([act, stat.replace("arithmetic_mean", "arithmetic mean")
                         .replace("nwgm", "NWGM"), *cells, diff])
    n = d.seed.nunique()
    return (
        f"Relative gap at {budget} dropped units, median over {n} networks per cell "
        f"[bootstrap 95% CI]; last column: the median at {depths[-1]} hidden layers minus "
        f"the median at {depths[0]} [bootstrap 95% CI of the difference; different networks, "
        f"so not paired].\n\n"
        + table(["hidden units", "statistic",
                 *[f"{k} layer{'s' if k > 1 else ''}" for k in depths],
                 f"{depths[-1]} minus {depths[0]} layers"], rows))


def _difference_of_medians(a, b, *, seed: int, n_resamples: int = stats.N_RESAMPLES) -> str:
    """median(a) - median(b) with a bootstrap CI, resampling each sample on its own."""
    a, b = np.sort(a), np.sort(b)
    g = np.random.default_rng(seed)
    da = np.median(a[g.integers(0, a.size, (n_resamples, a.size))], axis=1)
    db = np.median(b[g.integers(0, b.size, (n_resamples, b.size))], axis=1)
    low, high = np.quantile(da - db, [0.025, 0.975])
    return ci(float(np.median(a) - np.median(b)), float(low), float(high))


@STUDY.block("depth-width")
def depth_width(df: pd.DataFrame) -> str:
    """Does width matter at fixed depth? The gap at the widest against the narrowest layers."""
    d = df[df.statistic == "arithmetic_mean"]
    rows = []
    for (act, dep), g in d.groupby(["activation", "depth"], sort=False):
        widths = sorted(g.width.unique())
        if len(widths) < 2:
            continue
        lo, hi = (g.loc[g.width == w, "relative_gap"].to_numpy() for w in (widths[0],
                                                                             widths[-1]))
        rows.append([act, str(dep), f"{widths[0]} to {widths[-1]}", median_ci(lo),
                     median_ci(hi),
                     _difference_of_medians(hi, lo, seed=stats.group_seed((act, dep)))])
    return (
        "Arithmetic-mean relative gap at the narrowest and the widest hidden layers of each "
        "depth, median over networks [bootstrap 95% CI], and their difference [bootstrap 95% "
        "CI].\n\n"
        + table(["hidden units", "hidden layers", "width", "narrowest", "widest",
                 "widest minus narrowest"], rows))


METRICS = {"relative_gap": "relative gap", "mean_abs_gap": "mean absolute gap",
           "total_variation": "total variation", "kl": "KL divergence"}


def _budget(df: pd.DataFrame) -> int:
    """The largest number of dropped units that every depth reaches."""
    reach = df.groupby("n_dropped")["depth"].nunique()
    return int(reach[reach == reach.max()].index.max())



def depth_family(df: pd.DataFrame) -> pd.DataFrame:
    """Does the arithmetic-mean gap differ between the deepest and the shallowest networks?

    At the largest number of dropped units every depth reaches; one
    Mann-Whitney test (different networks: not paired) per activation and
    metric of :data:`METRICS`; Holm within this one family.
    """
    budget = _budget(df)
    d = df[(df.n_dropped == budget) & (df.statistic == "arithmetic_mean")]
    lo_d, hi_d = d.depth.min(), d.depth.max()
    fam = stats.Family(f"depth: arithmetic-mean gap at {hi_d} against {lo_d} hidden layers, "
                       f"{budget} dropped units, per activation and metric")
    for act, g in d.groupby("activation", sort=False):
        for metric in METRICS:
            t = stats.mannwhitney(g.loc[g.depth == hi_d, metric], g.loc[g.depth == lo_d, metric])
            fam.add(f"{act} {metric}", t["pvalue"], activation=act, metric=metric,
                    grows=t["median_difference"] > 0, n=t["n_a"])
    return fam.table()


def width_family(df: pd.DataFrame) -> pd.DataFrame:
    """Does the arithmetic-mean gap differ between the widest and the narrowest layers?

    Per activation, depth and metric: one Mann-Whitney test (different
    networks); Holm within this one family.
    """
    d = df[df.statistic == "arithmetic_mean"]
    fam = stats.Family("depth: arithmetic-mean gap at the widest against the narrowest hidden "
                       "layers, per activation, depth and metric")
    for (act, dep), g in d.groupby(["activation", "depth"], sort=False):
        widths = sorted(g.width.unique())
        if len(widths) < 2:
            continue
        for metric in METRICS:
            t = stats.mannwhitney(g.loc[g.width == widths[-1], metric],
                                  g.loc[g.width == widths[0], metric])
            fam.add(f"{act} {dep} {metric}", t["pvalue"], activation=act, depth=int(dep),
                    metric=metric, grows=t["median_difference"] > 0,
                    widths=f"{widths[0]} to {widths[-1]}")
    return fam.table()


def depth_sentence(res: pd.DataFrame, metric: str) -> str:
    """The depth verdict on one metric: "every activation" only when every test survives."""
    r = res[res.metric == metric]
    up = [x.activation for x in r.itertuples() if x.survives and x.grows]
    down = [x.activation for x in r.itertuples() if x.survives and not x.grows]
    name = METRICS.get(metric, metric)
    if len(up) == len(r):
        return f"on the {name} it grows for every activation"
    parts = []
    if up:
        parts.append(f"grows for {names(up)} only")
    if down:
        parts.append(f"shrinks for {names(down)}")
    return f"on the {name} it " + ("; it ".join(parts) if parts else
                                   "shows no difference that survives Holm")


def width_sentence(res: pd.DataFrame, metric: str) -> str:
    """The width verdict on one metric, naming each (activation, depth) that survives."""
    r = res[res.metric == metric]
    name = METRICS.get(metric, metric)
    up = [f"{x.activation} at {x.depth} layer{'s' if x.depth > 1 else ''}"
          for x in r.itertuples() if x.survives and x.grows]
    down = [f"{x.activation} at {x.depth} layer{'s' if x.depth > 1 else ''}"
            for x in r.itertuples() if x.survives and not x.grows]
    return trend_sentence(name, up, down, len(r))


@STUDY.block("depth-verdict")
def depth_verdict(df: pd.DataFrame) -> str:
    res = depth_family(df)
    wid = width_family(df)
    budget = _budget(df)
    d = df[(df.n_dropped == budget) & (df.statistic == "nwgm")]
    lo_d, hi_d = d.depth.min(), d.depth.max()
    shallow = d.loc[d.depth == lo_d, "relative_gap"]
    deep = d.loc[d.depth == hi_d, "relative_gap"]
    nwgm = (f"The NWGM gap is exactly 0 at {lo_d} hidden layer ({shallow.max():.1e} at most, "
            f"rounding) and positive in {int((deep > EXACT).sum())} of the {len(deep)} networks "
            f"(every activation) at {hi_d}." if lo_d == 1 and shallow.max() < EXACT else "")
    n = int(res["n"].iloc[0])
    return (f"From {lo_d} to {hi_d} hidden layers at {budget} dropped units ({n} networks per "
            f"cell, Mann-Whitney tests, Holm within the family of {len(res)}: "
            f"*{res['family'].iloc[0]}*), the arithmetic-mean gap: "
            + "; ".join(depth_sentence(res, m) for m in METRICS) + ". " + nwgm
            + f"\n\nFrom the narrowest to the widest layers of each depth (Mann-Whitney, Holm "
            f"within the family of {len(wid)}: *{wid['family'].iloc[0]}*), the arithmetic-mean "
            f"gap: " + "; ".join(width_sentence(wid, m) for m in METRICS) + ".")


@STUDY.figure("depth")
def plot_depth(df: pd.DataFrame) -> Figure:
    """Relative gap against depth (fixed dropped units) and width (per depth).

    Columns: activation. Top row: the gap against the number of hidden
    layers for the numbers of dropped units reached by several depths.
    Bottom row: the gap against the width, one line per depth. Solid lines
    (with bands) compare the arithmetic mean, dashed lines the NWGM.
    """
    from matplotlib.lines import Line2D

    activations = list(dict.fromkeys(df["activation"]))
    depths_per_budget = df.groupby("n_dropped")["depth"].nunique()
    budgets = depths_per_budget[depths_per_budget == depths_per_budget.max()].index
    budgets = sorted(budgets)[-2:]
    colors = ["tab:purple", "tab:brown", "tab:cyan", "tab:olive", "tab:pink"]
    fig, axes = new_figure(2, len(activations), width=3.4, height=3.2)
    for j, act in enumerate(activations):
        sub = df[df["activation"] == act]
        rows = [("depth", "n_dropped", budgets, "{} dropped units", "number of hidden layers"),
                ("width", "depth", sorted(sub["depth"].unique()), "{} hidden layers",
                 "hidden width (units per layer)")]
        for i, (x, key, values, label, xlabel) in enumerate(rows):
            ax = axes[i, j]
            for value, color in zip(values, colors, strict=False):
                cell = sub[sub[key] == value]
                mean = cell[cell["statistic"] == "arithmetic_mean"]
                xs = sorted(mean[x].unique())
                text = label.format(value).replace("1 hidden layers", "1 hidden layer")
                median_band(ax, xs, mean.groupby(x)["relative_gap"], label=text,
                            color=color, marker="o", markersize=4)
                nwgm = cell[cell["statistic"] == "nwgm"]
                if not nwgm.empty:
                    median_band(ax, sorted(nwgm[x].unique()), nwgm.groupby(x)["relative_gap"],
                                label=None, color=color, spread=None, linestyle="--",
                                marker="x", markersize=4, linewidth=1)
            if x == "width":
                ax.set_xscale("log", base=2)
                ax.xaxis.set_major_formatter("{x:g}")
            else:
                ax.set_xticks(sorted(sub["depth"].unique()))
            ax.set_ylim(bottom=0)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("relative gap  |ensemble - scaled| / std")
            ax.set_title(f"{act} hidden units", fontsize=10)
            ax.grid(True, alpha=0.3)
            if j == len(activations) - 1:  # the same legend holds for every column
                handles, _ = ax.get_legend_handles_labels()
                ax.legend(handles=handles + [
                    Line2D([], [], color="k", label="arithmetic mean"),
                    Line2D([], [], color="k", linestyle="--", marker="x", linewidth=1,
                           label="NWGM"),
                ], fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    first = df.iloc[0]
    fig.suptitle(
        f"Depth and width: {first['output']} output, {first['scheme']} dropout on every hidden "
        f"unit, keep_prob {first['keep_prob']:g}; {df['seed'].nunique()} random networks per "
        f"point\n{BAND}",
        fontsize=10,
    )
    return fig
