"""The scale study's figure and documentation blocks, from its saved table only.

Intervals are Student-t over networks (the unit; a few per cell, so no
bootstrap), differences between widths Welch t (different networks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ... import stats
from ...plots import new_figure, predictor_line
from ...report import ci, num, table
from . import STUDY

GROUP = ["input", "activation", "weights", "scheme", "keep_prob"]


def _tci(values) -> str:
    return ci(*stats.t_interval(np.asarray(values, dtype=float)))


def _mean_gaps(df):
    return df[df.statistic == "arithmetic_mean"]


@STUDY.block("scale-width")
def width_block(df: pd.DataFrame) -> str:
    """The scaled pass's and moment propagation's TV at the narrowest and widest layers."""
    d = _mean_gaps(df)
    rows = []
    for key, g in d.groupby(GROUP + ["depth"], sort=True):
        widths = sorted(g.width.unique())
        if len(widths) < 2:
            continue
        for pred in ("scaled", "moment_propagation"):
            s = g[g.predictor == pred]
            lo = s.loc[s.width == widths[0], "total_variation"].to_numpy()
            hi = s.loc[s.width == widths[-1], "total_variation"].to_numpy()
            rows.append([*(str(k) for k in key), pred.replace("_", " "),
                         f"{widths[0]} / {widths[-1]}", _tci(lo), _tci(hi),
                         ci(*stats.welch_interval(hi, lo))])
    n = int(d.groupby(GROUP + ["depth", "width"]).seed.nunique().min())
    return (f"Total variation between each one-pass predictor and the certified ensemble "
            f"mean at the narrowest and the widest layers, mean over {n}+ random networks "
            f"per cell [t 95% CI]; last column: widest minus narrowest [Welch 95% CI].\n\n"
            + table(["input", "hidden", "init", "scheme", "keep_prob", "depth", "predictor",
                     "widths", "narrowest", "widest", "widest minus narrowest"], rows))


@STUDY.block("scale-depth")
def depth_block(df: pd.DataFrame) -> str:
    """The scaled pass's TV at the shallowest and deepest networks, per width."""
    d = _mean_gaps(df)
    d = d[d.predictor == "scaled"]
    rows = []
    for key, g in d.groupby(GROUP + ["width"], sort=True):
        depths = sorted(g.depth.unique())
        if len(depths) < 2:
            continue
        lo = g.loc[g.depth == depths[0], "total_variation"].to_numpy()
        hi = g.loc[g.depth == depths[-1], "total_variation"].to_numpy()
        rows.append([*(str(k) for k in key), f"{depths[0]} / {depths[-1]}", _tci(lo),
                     _tci(hi), ci(*stats.welch_interval(hi, lo))])
    return ("Total variation between the scaled pass and the certified ensemble mean at the "
            "shallowest and the deepest networks of each width [t 95% CI]; last column: "
            "deepest minus shallowest [Welch 95% CI].\n\n"
            + table(["input", "hidden", "init", "scheme", "keep_prob", "width", "depths",
                     "shallowest", "deepest", "deepest minus shallowest"], rows))


@STUDY.block("scale-mc-match")
def mc_match(df: pd.DataFrame) -> str:
    """The smallest K of the grid whose MC mean TV is at most each one-pass method's."""
    d = _mean_gaps(df)
    ks = sorted(int(k) for k in d.loc[d.predictor == "mc", "n_samples"].dropna().unique())
    rows = []
    for key, g in d.groupby(GROUP + ["depth", "width"], sort=True):
        tv = {p: g.loc[g.predictor == p, "total_variation"].mean()
              for p in ("scaled", "moment_propagation")}
        mc = {k: g.loc[(g.predictor == "mc") & (g.n_samples == k), "total_variation"].mean()
              for k in ks}
        cells = []
        for p in ("scaled", "moment_propagation"):
            match = [k for k in ks if mc[k] <= tv[p]]
            cells.append(f"K = {match[0]}" if match else f"more than {ks[-1]}")
        rows.append([*(str(k) for k in key), num(tv["scaled"]), num(tv["moment_propagation"]),
                     *(num(mc[k]) for k in ks), *cells])
    return ("Mean total variation to the certified ensemble mean, and the smallest K of the "
            "grid at which Monte Carlo dropout's mean TV is at most the scaled pass's and "
            "moment propagation's (means over networks; point estimates).\n\n"
            + table(["input", "hidden", "init", "scheme", "keep_prob", "depth", "width",
                     "scaled", "moment prop.", *(f"MC K={k}" for k in ks),
                     "MC matches scaled at", "MC matches moment prop. at"], rows))


@STUDY.block("scale-certified")
def certified_block(df: pd.DataFrame) -> str:
    """Where the reference's half-width is at most a tenth of the gap it measures."""
    exact = df.total_variation < 1e-12  # the NWGM's scaled pass at depth 1 (DESIGN fact 3)
    n_exact = int(exact.sum())
    df = df[~exact]
    rows = []
    for (pred, stat), g in df.groupby(["predictor", "statistic"], sort=True):
        ok = g.hw_over_gap <= 0.1
        rows.append([pred.replace("_", " "), stat.replace("arithmetic_mean", "mean"),
                     str(len(g)), f"{ok.mean():.0%}", num(float(g.hw_over_gap.median())),
                     num(float(g.hw_over_gap.max()))])
    bad = df[df.hw_over_gap > 0.1]
    where = ""
    if len(bad):
        worst = bad.groupby(["predictor", "depth", "width"]).size().sort_values(
            ascending=False).head(6)
        where = ("\n\nWhere it is not (rows per predictor, depth, width, most first): "
                 + "; ".join(f"{p} depth {d} width {w}: {n}" for (p, d, w), n in worst.items())
                 + ".")
    return ("The certified reference's TV half-width (95%) over the gap it measures: share of "
            "rows with the half-width at most a tenth of the gap, median and largest ratio; "
            f"median variance reduction of the reference per pass over plain MC "
            f"{num(float(df.ref_variance_ratio.median()))}.\n\n"
            + table(["predictor", "statistic", "rows", "half-width <= gap / 10", "median ratio",
                     "largest ratio"], rows) + where
            + (f"\n\n{n_exact} rows with a gap of 0 to rounding (the scaled pass against the "
               f"NWGM with one dropped layer, exact by DESIGN fact 3) are left out."
               if n_exact else ""))


@STUDY.figure("scale")
def plot_scale(df: pd.DataFrame) -> Figure:
    """TV to the certified ensemble mean against width, one line per depth.

    Rows: input x predictor (scaled pass, moment propagation); columns:
    activation and initialisation; the first scheme and keep_prob of the table.
    """
    d = _mean_gaps(df)
    scheme, q = d.scheme.iloc[0], d.keep_prob.iloc[0]
    d = d[(d.scheme == scheme) & (d.keep_prob == q)]
    combos = list(dict.fromkeys(zip(d.activation, d.weights)))
    inputs = list(dict.fromkeys(d.input))
    preds = ("scaled", "moment_propagation")
    fig, axes = new_figure(len(inputs) * 2, len(combos), width=3.6, height=2.8)
    depths = sorted(d.depth.unique())
    cmap = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
            "tab:gray", "tab:olive"]
    for i, inp in enumerate(inputs):
        for r, pred in enumerate(preds):
            for j, (act, init) in enumerate(combos):
                ax = axes[2 * i + r, j]
                s = d[(d.input == inp) & (d.activation == act) & (d.weights == init)
                      & (d.predictor == pred)]
                for dep, color in zip(depths, cmap, strict=False):
                    g = s[s.depth == dep].groupby("width").total_variation
                    if not len(g):
                        continue
                    m = g.mean()
                    ax.plot(m.index, m.to_numpy(), marker="o", markersize=3, color=color,
                            label=f"depth {dep}")
                ax.set_xscale("log", base=2)
                ax.xaxis.set_major_formatter("{x:g}")
                ax.set_ylim(bottom=0)
                ax.grid(True, alpha=0.3)
                ax.set_title(f"{inp}, {act} ({init}): {predictor_line(pred)['label']}",
                             fontsize=8)
                ax.set_xlabel("hidden width")
                ax.set_ylabel("TV to ensemble mean")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.suptitle(f"Scale: softmax output, {scheme} dropout on every hidden unit, keep_prob "
                 f"{q:g}; mean over {d.seed.nunique()} random networks per point", fontsize=9)
    return fig
