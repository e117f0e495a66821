"""The mc study's figures and documentation blocks, from its saved table only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ...plots import (
    BAND,
    STATISTIC_LABELS,
    median_band,
    networks_text,
    new_figure,
)
from ...report import median_ci, pvalue, table
from ...stats import Family, wilcoxon_paired
from . import STUDY


def network_crossings(df: pd.DataFrame, metric: str = "mean_abs_gap") -> pd.DataFrame:
    """Per network: the smallest K from which the median over draws beats the scaled pass.

    NaN when no K of the grid does (every larger K must beat it too).
    """
    rows = []
    for (act, stat, seed), g in df.groupby(["activation", "statistic", "seed"], sort=False):
        scaled = g.loc[g.predictor == "scaled", metric].median()
        med = g[g.predictor == "mc"].groupby("n_samples")[metric].median().sort_index()
        beats = (med <= scaled).to_numpy()
        first = 0 if beats.all() else len(beats) - int(np.argmin(beats[::-1]))
        k = float(med.index[first]) if first < len(beats) else np.nan
        rows.append({"activation": act, "statistic": stat, "seed": seed, "k": k})
    return pd.DataFrame(rows)


@STUDY.block("mc-crossover")
def mc_crossover(df: pd.DataFrame) -> str:
    cross = network_crossings(df)
    ks = sorted(df.loc[df.predictor == "mc", "n_samples"].unique())
    rows = []
    for act, g in cross.groupby("activation", sort=False):
        cells = []
        for stat in ("arithmetic_mean", "nwgm"):
            k = g.loc[g.statistic == stat, "k"]
            never = int(k.isna().sum())
            # Networks where no K of the grid wins count as beyond the grid's largest K.
            cells.append(f"K = {median_ci(k.fillna(np.inf).clip(upper=2 * max(ks)))}"
                         + (f" ({never} never)" if never else ""))
        rows.append([act, *cells])
    first = df.iloc[0]
    return (
        f"Per network, the smallest K from which the median over {df['draw'].nunique()} "
        f"draws of a K-member ensemble is closer to the exact ensemble than the scaled pass "
        f"({first['architecture']}, {first['output']} output, {first['scheme']} dropout, "
        f"keep_prob {first['keep_prob']:g}; K on the grid {', '.join(f'{k:g}' for k in ks)}); "
        f"median over {df['seed'].nunique()} networks [bootstrap 95% CI].\n\n"
        + table(["hidden units", "arithmetic mean", "NWGM"], rows))


@STUDY.block("mc-headline")  # the README's
@STUDY.block("mc-mean-vs-nwgm")  # the same sentence on the study's page
def mc_headline(df: pd.DataFrame) -> str:
    """Per activation, is the crossing K smaller for the mean than for the NWGM?

    One family (this study's networks, the question "fewer samples beat the
    scaled pass on the mean than on the NWGM"), one paired Wilcoxon test per
    activation over networks, Holm within the family; a network no K of the
    grid beats counts as beyond the grid's largest K.
    """
    cross = network_crossings(df)
    ks = sorted(df.loc[df.predictor == "mc", "n_samples"].unique())
    beyond = 2 * max(ks)
    fam = Family("mc: crossing K, arithmetic mean against NWGM, per activation")
    medians = {}
    for act, g in cross.groupby("activation", sort=False):
        wide = g.pivot(index="seed", columns="statistic", values="k").fillna(beyond)
        test = wilcoxon_paired(wide["arithmetic_mean"], wide["nwgm"])
        medians[act] = (wide["arithmetic_mean"].median(), wide["nwgm"].median())
        fam.add(act, test["pvalue"], share=test["share_a_less"], n=test["n"])
    res = fam.table()
    ks_text = ", ".join(f"{r.key} {medians[r.key][0]:g} / {medians[r.key][1]:g}"
                        for r in res.itertuples())
    fewer = [r for r in res.itertuples() if r.survives and medians[r.key][0] < medians[r.key][1]]
    if len(fewer) == len(res):
        verdict = "For every activation the mean needs fewer samples"
    elif fewer:
        verdict = ("The mean needs fewer samples for " + ", ".join(r.key for r in fewer)
                   + " units only")
    else:
        verdict = "No activation needs significantly fewer samples for the mean"
    tests = ", ".join(f"{r.key}: smaller in {r.share:.0%} of networks, {pvalue(r.holm)}"
                      for r in res.itertuples())
    first = df.iloc[0]
    return (f"Smallest K from which Monte Carlo dropout beats the scaled pass (mean absolute "
            f"gap to the exact ensemble, median over {df['draw'].nunique()} draws; "
            f"{first['architecture']}, {first['output']} output, {first['scheme']} dropout, "
            f"keep_prob {first['keep_prob']:g}), median over {df['seed'].nunique()} networks, "
            f"arithmetic mean / NWGM: {ks_text}. {verdict} (paired Wilcoxon over networks, "
            f"Holm-adjusted within this family of {len(res)}; {tests}).\n")


@STUDY.figure("mc")
def plot_mc(df: pd.DataFrame) -> Figure:
    """Error of a K-member sampled ensemble against the exact one, vs K.

    Rows: statistic; columns: activation. The scaled pass's error is the
    horizontal line; the dotted vertical line marks, as the README's table
    does, the median over networks of each network's smallest K from which
    sampling (median over draws) is closer to the exact ensemble.
    """
    # The statistic of the README's table: per network the first K that beats
    # the scaled pass, then the median over networks (never = beyond the grid).
    per_network = network_crossings(df).fillna({"k": np.inf})
    cross = per_network.groupby(["activation", "statistic"])["k"].median().to_frame()
    stats = [s for s in STATISTIC_LABELS if s in set(df["statistic"])]
    activations = list(dict.fromkeys(df["activation"]))
    fig, axes = new_figure(len(stats), len(activations), width=3.4, height=3.2)
    for i, stat in enumerate(stats):
        for j, act in enumerate(activations):
            ax = axes[i, j]
            sub = df[(df["statistic"] == stat) & (df["activation"] == act)]
            sampled = sub[sub["predictor"] == "mc"]
            ks = sorted(sampled["n_samples"].unique())
            median_band(ax, ks, sampled.groupby("n_samples")["mean_abs_gap"],
                        label="K sampled subnetworks", color="tab:blue", marker=".")
            # Reference K^(-1/2) through the median error at the smallest K.
            y0 = sampled.loc[sampled["n_samples"] == ks[0], "mean_abs_gap"].median()
            ax.plot(ks, [y0 * (k / ks[0]) ** -0.5 for k in ks], color="k", linestyle=":",
                    linewidth=1, label="K^(-1/2) reference")
            scaled = sub.loc[sub["predictor"] == "scaled", "mean_abs_gap"]
            ax.axhline(scaled.median(), color="tab:red", linewidth=1.5, label="scaled pass")
            ax.axhspan(scaled.quantile(0.1), scaled.quantile(0.9), color="tab:red", alpha=0.1,
                       linewidth=0)
            k = cross.loc[(act, stat), "k"]
            if np.isfinite(k):
                ax.axvline(k, color="k", linestyle=":", linewidth=1)
                right = k > np.sqrt(min(ks) * max(ks))  # label on the roomier side
                ax.text(k, 0.97, f"K = {k:g} " if right else f" K = {k:g}", va="top",
                        ha="right" if right else "left", transform=ax.get_xaxis_transform(),
                        fontsize=9)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("K (sampled subnetworks)")
            ax.set_ylabel("mean |error| vs exact ensemble")
            ax.set_title(f"{act} hidden units: {STATISTIC_LABELS[stat]}", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=4,
               fontsize=8, frameon=False)
    first = df.iloc[0]
    fig.suptitle(
        f"Monte Carlo dropout vs the scaled pass, both against the exact ensemble\n"
        f"{networks_text(df)}, {first['output']} output, {first['scheme']} dropout, "
        f"keep_prob {first['keep_prob']:g}; {df['draw'].nunique()} draws per K\n{BAND}",
        fontsize=10,
    )
    return fig
