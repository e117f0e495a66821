"""The regularizer study's figure and documentation blocks, from its saved table only."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from ... import stats
from ...plots import new_figure
from ...report import ci, table
from . import STUDY

RATIOS = {"ratio_quadratic": ("Wager's R^q", "tab:red", "o"),
          "ratio_gaussian": ("Gaussian (Wang & Manning)", "tab:blue", "s"),
          "ratio_mcf": ("MCF bound (van der Maaten)", "tab:green", "^")}


def _geo_ci(values) -> str:
    """Geometric mean of positive ratios with the t-interval of the mean log (over splits)."""
    m, lo, hi = stats.t_interval(np.log(np.asarray(values, dtype=float)))
    return ci(float(np.exp(m)), float(np.exp(lo)), float(np.exp(hi)))


@STUDY.block("regularizer-ratios")
def ratios_table(df: pd.DataFrame) -> str:
    qs = sorted(df.keep_prob.unique())
    rows = []
    for (name, scale), g in df.groupby(["dataset", "scale"], sort=True):
        cont = g.groupby("split").max_contribution.mean()
        rows.append([name, f"{scale:g}", f"{np.median(cont):.3g}",
                     *[_geo_ci(g.loc[g.keep_prob == q, "ratio_quadratic"]) for q in qs]])
    n = df.split.nunique()
    return (f"R^q / R (Wager's quadratic approximation over the exact dropout regularizer of "
            f"logistic regression), geometric mean over {n} splits [95% t-interval of the mean "
            f"log ratio], at a fraction `scale` of an L2 fit's weights (l2 = "
            f"{df.l2.iloc[0]:g}, {df.n_train.iloc[0]} training examples); `max |x_j beta_j|/q` "
            f"is the median over splits of the largest per-feature contribution at "
            f"keep_prob {qs[0]:g}.\n\n"
            + table(["dataset", "scale", f"max contribution (q={qs[0]:g})",
                     *[f"keep_prob {q:g}" for q in qs]], rows))


@STUDY.block("regularizer-surrogates")
def surrogates_table(df: pd.DataFrame) -> str:
    full = df[df.scale == df.scale.max()]
    rows = []
    for (name, q), g in full.groupby(["dataset", "keep_prob"], sort=True):
        rows.append([name, f"{q:g}", *[_geo_ci(g[col]) for col in RATIOS]])
    return (f"Each surrogate over the exact regularizer at the fitted weights (scale "
            f"{df.scale.max():g}), geometric mean over {df.split.nunique()} splits [95% "
            f"t-interval of the mean log ratio]. The MCF column is an upper bound on the "
            f"expected loss minus the loss at x, so it is >= 1 by construction.\n\n"
            + table(["dataset", "keep_prob", *[v[0] for v in RATIOS.values()]], rows))


# The image source of a dataset (its name's prefix): label and median line style.
SOURCES = {"digits": ("digits (8 x 8)", "-"), "mnist": ("MNIST (28 x 28)", "--")}


def _source(names: pd.Series) -> pd.Series:
    return names.str.split("_").str[0]


@STUDY.figure("regularizer")
def figure(df: pd.DataFrame):
    """Each surrogate over the exact regularizer against the largest per-feature contribution.

    One panel per surrogate (three columns), every (dataset, split, scale) point coloured
    by keep_prob, with the median over the pairs and splits of each image source (digits
    8 x 8: solid; MNIST 28 x 28: dashed) per (keep_prob, scale) joined by a line.
    """
    fig, axes = new_figure(1, 3, width=3.6, height=3.5, sharey=True)
    qs = sorted(df.keep_prob.unique())
    cmap = matplotlib.colormaps["viridis"]
    colors = {q: cmap(i / max(len(qs) - 1, 1)) for i, q in enumerate(qs)}
    source = _source(df.dataset)
    sources = [s for s in SOURCES if s in set(source)] + sorted(set(source) - set(SOURCES))
    styles = {s: SOURCES.get(s, (s, ":")) for s in sources}
    for ax, (col, (label, _, marker)) in zip(axes[0], RATIOS.items()):
        for q in qs:
            g = df[df.keep_prob == q]
            ax.scatter(g.max_contribution, g[col], s=8, alpha=0.35, color=colors[q],
                       marker=marker)
            for s in sources:
                med = g[source[g.index] == s].groupby("scale")[
                    [col, "max_contribution"]].median().sort_values("max_contribution")
                ax.plot(med.max_contribution, med[col], color=colors[q], linewidth=1.5,
                        linestyle=styles[s][1],
                        label=f"keep_prob {q:g}" if s == sources[0] else None)
        ax.axhline(1.0, color="k", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{label} / exact R", fontsize=10)
        ax.set_xlabel("largest contribution max |x_ij beta_j| / q")
        ax.grid(True, alpha=0.3)
    axes[0, 0].yaxis.set_major_locator(FixedLocator([0.25, 0.5, 1, 2, 4, 8]))
    axes[0, 0].yaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes[0, 0].yaxis.set_minor_formatter(NullFormatter())
    axes[0, 0].set_ylabel("surrogate / exact regularizer")
    axes[0, 0].legend(fontsize=8, frameon=False)
    if len(sources) > 1:
        axes[0, 1].legend(handles=[Line2D([], [], color="0.3", linewidth=1.5, linestyle=ls,
                                          label=f"median over {name} pairs and splits")
                                   for name, ls in styles.values()],
                          fontsize=8, frameon=False, loc="upper left")
    fig.suptitle(f"Dropout regularizer of logistic regression on "
                 f"{' and '.join(styles[s][0] for s in sources)} pairs: surrogates over the "
                 f"exact value (lines: medians)", fontsize=10)
    return fig


@STUDY.block("regularizer-margin")
def margin_block(df: pd.DataFrame) -> str:
    """The separability of the training sets, from the margin column."""
    full = df[df.scale == df.scale.max()]
    per = full.groupby(["dataset", "split"]).margin.first()
    sep = int((per > 0).sum())
    return (f"At the L2 fit's weights the training margin min_i y_i z_i ranges from "
            f"{per.min():.3g} to {per.max():.3g}; {sep} of {len(per)} training sets are "
            f"separated by the fit (margin > 0). The margin grows in proportion to the scale, "
            f"so on these data separability is not varied apart from the contribution on "
            f"the x-axis.")


# The declared family of the claims block: every (dataset, keep_prob, scale) cell's
# test of mean log(R^q / R) = 0 over splits, Holm-corrected together.
WITHIN = 0.05


@STUDY.block("regularizer-claims")
def claims(df: pd.DataFrame) -> str:
    keys = ["dataset", "keep_prob", "scale"]
    groups = list(df.groupby(keys, sort=True))
    logs = [np.log(g.ratio_quadratic.to_numpy()) for _, g in groups]
    p = stats.holm([stats.t_test_mean(v) for v in logs])
    ivals = [stats.t_interval(v) for v in logs]
    under = [k for k, (m, _, _), pk in zip(groups, ivals, p) if pk < 0.05 and m < 0]
    over = [k for k, (m, _, _), pk in zip(groups, ivals, p) if pk < 0.05 and m > 0]
    close = [k for k, (_, lo, hi) in zip(groups, ivals)
             if np.exp(lo) >= 1 - WITHIN and np.exp(hi) <= 1 + WITHIN]
    n = len(groups)
    full = df[df.scale == df.scale.max()]
    g_full = full.groupby(keys[:2]).ratio_quadratic.apply(lambda v: np.exp(np.mean(np.log(v))))
    inv = 1.0 / g_full
    source = _source(inv.index.get_level_values("dataset").to_series(index=inv.index))
    if source.nunique() == 1:
        ranges = (f"{inv.min():.3g} to {inv.max():.3g} times R^q (geometric means over splits, "
                  f"across {len(inv)} dataset x keep_prob cells)")
    else:
        ranges = " and ".join(
            f"{inv[source == s].min():.3g} to {inv[source == s].max():.3g} times R^q on "
            f"{SOURCES.get(s, (s,))[0]} pairs ({int((source == s).sum())} dataset x keep_prob "
            f"cells)" for s in dict.fromkeys(source)) + " (geometric means over splits)"
    close_scales = sorted({k[0][2] for k in close})
    big_contrib = df.groupby(keys).max_contribution.median()
    close_max = max((big_contrib[k[0]] for k in close), default=float("nan"))
    return "\n".join([
        f"- Over the family of {n} cells (dataset x keep_prob x scale; one-sample t-test of "
        f"the mean log ratio over {df.split.nunique()} splits, Holm-corrected within the "
        f"family), R^q is smaller than the exact R in {len(under)} cells and larger in "
        f"{len(over)}; {n - len(under) - len(over)} are undecided.",
        f"- R^q lies within {WITHIN:.0%} of R (the whole 95% t-interval of the geometric mean "
        f"ratio inside [{1 - WITHIN:g}, {1 + WITHIN:g}]) in {len(close)} of {n} cells, at "
        f"scales {', '.join(f'{s:g}' for s in close_scales) or 'none'} of the L2 fit's "
        f"weights; the largest per-feature contribution max |x_j beta_j|/q in those cells is "
        f"at most {close_max:.3g} (median over splits).",
        f"- At the fitted weights (scale {df.scale.max():g}) the exact R is {ranges}.",
    ])
