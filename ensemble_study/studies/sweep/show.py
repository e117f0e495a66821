"""The sweep's figures and documentation blocks, from its saved table only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter

from ... import stats
from ...plots import (
    ACTIVATION_COLORS,
    BAND,
    EXACT,
    STATISTIC_LABELS,
    activation_handles,
    median_band,
    networks_text,
    new_figure,
)
from ...report import ci, median_ci, num, pvalue, table
from ...report import names as _names
from . import STUDY


@STUDY.block("sweep-table")
def sweep_table(df: pd.DataFrame) -> str:
    """Median relative gap at keep_prob 0.5 (inverted), with CIs and the paired test."""
    d = df[(df.keep_prob == 0.5) & (df.scheme == "inverted") & (df.weights == "original")]
    rows = []
    for (act, out), g in d.groupby(["activation", "output"], sort=False):
        piv = g.pivot_table(index="seed", columns="statistic", values="relative_gap")
        mean, nwgm = piv["arithmetic_mean"], piv["nwgm"]
        if nwgm.max() < EXACT:
            rows.append([act, out, median_ci(mean), "0 (exact)", "", ""])
            continue
        test = stats.wilcoxon_paired(nwgm.to_numpy(), mean.to_numpy())
        rows.append([act, out, median_ci(mean), median_ci(nwgm),
                     median_ci((mean / nwgm).to_numpy()),
                     f"{test['share_a_less']:.0%}, {pvalue(test['pvalue'])}"])
    n = d["seed"].nunique()
    return (
        f"Median over {n} networks [bootstrap 95% CI] of the relative gap to the scaled "
        "pass at keep_prob 0.5, inverted dropout. *Ratio*: the per-network ratio of the "
        "two gaps; *closer to NWGM*: the share of networks whose NWGM gap is the smaller, "
        "and the Wilcoxon signed-rank test of the paired gaps (unadjusted: the verdict below "
        "adjusts it within its family).\n\n"
        + table(["hidden units", "output", "arithmetic mean", "NWGM", "ratio mean / NWGM",
                 "closer to NWGM"], rows))


@STUDY.block("sweep-equivalence")
def sweep_equivalence(df: pd.DataFrame) -> str:
    """Vanilla dropout on the equivalent weights against inverted dropout (fact 5)."""
    k = ["output", "activation", "keep_prob", "seed", "statistic"]
    inv = df[df.scheme == "inverted"].set_index(k).sort_index()
    eq = df[df.weights == "equivalent"].set_index(k).sort_index()
    cols = ["mean_abs_gap", "max_abs_gap", "relative_gap"]
    diff = float((inv[cols] - eq[cols]).abs().to_numpy().max())
    return (f"Largest difference between the inverted rows and the vanilla rows on the "
            f"equivalent weights, over every network, keep_prob and gap measure: "
            f"**{num(diff, 2)}** ({len(inv):,} pairs of rows).")


def network_slopes(df: pd.DataFrame, q_min: float = 0.8, metric: str = "mean_abs_gap"):
    """Per network, the least-squares slope of log(gap) against log((1 - q)/q), q_min <= q < 1."""
    near = df[(df.keep_prob >= q_min) & (df.keep_prob < 1)]
    keys = ["output", "activation", "scheme", "weights", "statistic"]
    rows = []
    for key, g in near.groupby(keys + ["seed"], sort=False):
        gap = g[metric].to_numpy()
        if len(g) >= 2 and np.all(gap > 1e-12):
            q = g["keep_prob"].to_numpy()
            slope = np.polyfit(np.log((1 - q) / q), np.log(gap), 1)[0]
            rows.append(dict(zip(keys + ["seed"], key, strict=True), slope=slope))
    return pd.DataFrame(rows, columns=keys + ["seed", "slope"])


@STUDY.block("sweep-slopes")
def sweep_slopes(df: pd.DataFrame) -> str:
    """Fitted small-noise slopes per scheme, with CIs over networks."""
    slopes = network_slopes(df[df.weights == "original"])
    if slopes.empty:
        return "No keep_prob in [0.8, 1) was run: no slope to fit."
    qs = sorted(q for q in df.keep_prob.unique() if 0.8 <= q < 1)
    rows = []
    for (out, act, stat), g in slopes.groupby(["output", "activation", "statistic"], sort=False):
        cells = [median_ci(g.loc[g.scheme == s, "slope"]) for s in ("inverted", "vanilla")]
        rows.append([out, act, stat.replace("arithmetic_mean", "arithmetic mean")
                     .replace("nwgm", "NWGM"), *cells])
    summary = stats.bootstrap_ci(np.sort(slopes.loc[slopes.scheme == "inverted", "slope"]))
    return (
        f"Slope of log(mean absolute gap) against log((1-q)/q), fitted per network on "
        f"keep_prob {', '.join(f'{q:g}' for q in qs)}; median over networks [bootstrap 95% "
        f"CI]. Over every inverted-dropout curve the median slope is {ci(*summary)}.\n\n"
        + table(["output", "hidden units", "statistic", "inverted", "vanilla"], rows))


def closer_family(df: pd.DataFrame, metric: str = "relative_gap") -> pd.DataFrame:
    """Is the scaled pass closer to the NWGM than to the arithmetic mean? One declared family.

    One paired Wilcoxon test over networks per (scheme, keep_prob < 1, output,
    activation) of the original weights, where the NWGM gap is not exactly 0
    (with identity hidden units it is 0 by fact 10: no test); Holm within the
    family. ``closer`` is ``"nwgm"`` or ``"mean"`` (the smaller median gap).
    """
    d = df[(df.weights == "original") & (df.keep_prob < 1)]
    fam = stats.Family(f"sweep: scaled pass closer to the NWGM than to the arithmetic mean "
                       f"({metric}), per scheme, keep_prob, output and activation")
    for (sc, q, out, act), g in d.groupby(["scheme", "keep_prob", "output", "activation"],
                                          sort=True):
        piv = g.pivot_table(index="seed", columns="statistic", values=metric)
        if piv["nwgm"].max() < EXACT:
            continue
        test = stats.wilcoxon_paired(piv["nwgm"].to_numpy(), piv["arithmetic_mean"].to_numpy())
        fam.add(f"{sc} {q:g} {out} {act}", test["pvalue"], scheme=sc, keep_prob=q, output=out,
                activation=act, share_nwgm=test["share_a_less"], n=test["n"],
                closer="nwgm" if test["median_difference"] < 0 else "mean")
    return fam.table()


def closer_verdict(res: pd.DataFrame, scheme: str = "inverted", keep_prob: float = 0.5) -> str:
    """The sentence for one (scheme, keep_prob) of :func:`closer_family`'s table."""
    cell = res[(res.scheme == scheme) & (res.keep_prob == keep_prob)]
    if cell.empty:
        return f"No {scheme} cell at keep_prob {keep_prob:g} in the table."
    nwgm = cell[cell.survives & (cell.closer == "nwgm")]
    mean = cell[cell.survives & (cell.closer == "mean")]
    where = f"At keep_prob {keep_prob:g} under {scheme} dropout (relative gap)"
    if len(nwgm) == len(cell):
        return (f"{where}, the scaled pass is closer to the NWGM than to the arithmetic mean "
                f"for every nonlinear activation, for both outputs "
                f"({len(cell)} of {len(cell)} tests survive Holm).")
    parts = []
    if len(nwgm):
        parts.append("closer to the NWGM for " + _names(
            [f"{r.activation} units ({r.output})" for r in nwgm.itertuples()]))
    if len(mean):
        parts.append("closer to the arithmetic mean for " + _names(
            [f"{r.activation} units ({r.output})" for r in mean.itertuples()]))
    if not parts:
        return f"{where}, no difference survives Holm: the data do not say which is closer."
    rest = len(cell) - len(nwgm) - len(mean)
    return (f"{where}, the scaled pass is " + "; ".join(parts)
            + (f"; {rest} of {len(cell)} cells show no difference that survives Holm."
               if rest else "."))


@STUDY.block("sweep-closer")
def sweep_closer(df: pd.DataFrame) -> str:
    """The table's question over the whole grid, as one Holm family."""
    res = closer_family(df)
    n = int(res["n"].iloc[0]) if len(res) else 0
    text = [closer_verdict(res)]
    for sc in ("inverted", "vanilla"):
        sub = res[res.scheme == sc]
        if sub.empty:
            continue
        k = {c: sub[sub.survives & (sub.closer == c)] for c in ("nwgm", "mean")}
        line = (f"Over every keep_prob below 1 under {sc} dropout, the NWGM is significantly "
                f"closer in {len(k['nwgm'])} of {len(sub)} cells, the arithmetic mean in "
                f"{len(k['mean'])}")
        if len(k["mean"]):
            by = k["mean"].groupby(["output", "activation"], sort=False)["keep_prob"]
            line += " (" + "; ".join(
                f"{act} units, {out} output, keep_prob {', '.join(f'{q:g}' for q in qs)}"
                for (out, act), qs in by) + ")"
        text.append(line + ".")
    return (" ".join(text)
            + f" One family of {len(res)} paired Wilcoxon tests of the relative gap over {n} "
            f"networks (every "
            f"scheme, keep_prob below 1, output and nonlinear activation; the NWGM gap of "
            f"identity units is exactly 0), Holm-adjusted within it.")


def slope_families(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two declared families on the per-network small-noise slopes (original weights).

    ``scheme``: per (output, activation, statistic), is the vanilla slope of
    the mean absolute gap different from the inverted one (same networks,
    paired Wilcoxon)? ``relative``: under inverted dropout, is the slope of
    the relative gap different from that of the mean absolute gap? Holm
    within each.
    """
    d = df[df.weights == "original"]
    keys = ["output", "activation", "statistic"]
    absolute = network_slopes(d)
    relative = network_slopes(d, metric="relative_gap")
    fam_s = stats.Family("sweep: vanilla against inverted small-noise slope, mean absolute gap")
    fam_r = stats.Family("sweep: relative-gap slope against mean-absolute-gap slope, inverted")
    for key, g in absolute.groupby(keys, sort=False):
        piv = g.pivot_table(index="seed", columns="scheme", values="slope").dropna()
        if {"inverted", "vanilla"} <= set(piv.columns):
            t = stats.wilcoxon_paired(piv["vanilla"].to_numpy(), piv["inverted"].to_numpy())
            fam_s.add(" ".join(key), t["pvalue"], **dict(zip(keys, key, strict=True)),
                      lower=t["median_difference"] < 0)
        r = relative[(relative.scheme == "inverted")
                     & (relative[keys] == pd.Series(key, index=keys)).all(axis=1)]
        a = g[g.scheme == "inverted"]
        both = a.merge(r, on="seed", suffixes=("_abs", "_rel"))
        if len(both):
            t = stats.wilcoxon_paired(both["slope_rel"].to_numpy(), both["slope_abs"].to_numpy())
            fam_r.add(" ".join(key), t["pvalue"], **dict(zip(keys, key, strict=True)),
                      lower=t["median_difference"] < 0)
    return fam_s.table(), fam_r.table()


def _cells_text(res: pd.DataFrame, what: str, every: str) -> str:
    """``every`` when every claim survives in the stated direction; else the survivors named."""
    lower = res[res.survives & res.lower]
    higher = res[res.survives & ~res.lower]
    if len(res) and len(lower) == len(res):
        return f"{what} is lower {every} ({len(res)} of {len(res)} tests survive Holm"
    names = [f"{r.activation}/{r.output}/{r.statistic.replace('arithmetic_mean', 'mean')}"
             for r in lower.itertuples()]
    text = (f"{what} is lower in {len(lower)} of {len(res)} cells ("
            + (f"{_names(names)}; " if 0 < len(lower) <= 6 else ""))
    if len(higher):
        text += f"higher in {len(higher)}; "
    return text + "after Holm"  # the caller closes the parenthesis


@STUDY.block("sweep-slope-verdict")
def sweep_slope_verdict(df: pd.DataFrame) -> str:
    inv = network_slopes(df[(df.weights == "original") & (df.scheme == "inverted")])
    if inv.empty:
        return "No keep_prob in [0.8, 1) was run: no slope to compare."
    med = inv.groupby(["output", "activation", "statistic"])["slope"].median()
    cover = 0
    for _key, g in inv.groupby(["output", "activation", "statistic"]):
        _, lo, hi = stats.bootstrap_ci(np.sort(g["slope"].to_numpy()))
        cover += lo <= 1 <= hi
    fam_s, fam_r = slope_families(df)
    n = inv["seed"].nunique()
    return (f"Under inverted dropout the median slope (mean absolute gap) of a cell lies "
            f"between {med.min():.3g} and {med.max():.3g}; its bootstrap 95% interval holds 1 "
            f"in {cover} of {len(med)} cells. On the same {n} networks, "
            + _cells_text(fam_s, "the vanilla slope", "than the inverted one in every cell")
            + f"; family: {fam_s['family'].iloc[0]}, {len(fam_s)} paired Wilcoxon tests). "
            + "Under inverted dropout, "
            + _cells_text(fam_r, "the slope of the relative gap",
                          "than that of the mean absolute gap in every cell")
            + f"; family: {fam_r['family'].iloc[0]}, {len(fam_r)} paired Wilcoxon tests).")


@STUDY.figure("sweep")
def plot_sweep(df: pd.DataFrame) -> Figure:
    """Relative gap |ensemble - scaled pass| / std against keep_prob.

    Rows: output function and ensemble statistic; columns: inverted dropout,
    then vanilla dropout on the same weights. One median line per activation
    with its bootstrap 95% CI and the 10-90% spread across networks; on the
    inverted panels, vanilla dropout on the equivalent weights as hollow
    markers, which must sit on the inverted line (DESIGN fact 5).
    """
    from matplotlib.lines import Line2D

    outputs = list(dict.fromkeys(df["output"]))
    stats = [s for s in STATISTIC_LABELS if s in set(df["statistic"])]
    activations = list(dict.fromkeys(df["activation"]))
    panels = [(out, stat) for out in outputs for stat in stats]
    schemes = ("inverted", "vanilla")
    fig, axes = new_figure(len(panels), len(schemes), width=5.0, height=3.1)
    skipped = set()
    for i, (out, stat) in enumerate(panels):
        # Every gap is 0 at keep_prob = 1 (no dropout): nothing to draw on a log axis.
        sub = df[(df["output"] == out) & (df["statistic"] == stat) & (df["keep_prob"] < 1)]
        for j, scheme in enumerate(schemes):
            ax = axes[i, j]
            for act in activations:
                cell = sub[sub["activation"] == act]
                same = cell[(cell["scheme"] == scheme) & (cell["weights"] == "original")]
                if same.empty or same["relative_gap"].max() < EXACT:
                    skipped.add(act)  # zero up to rounding (identity activations, NWGM)
                    continue
                x = sorted(same["keep_prob"].unique())
                median_band(ax, x, same.groupby("keep_prob")["relative_gap"], label=act,
                            color=ACTIVATION_COLORS[act])
                eq = cell[cell["weights"] == "equivalent"]
                if scheme == "inverted" and not eq.empty:
                    med = eq.groupby("keep_prob")["relative_gap"].median()
                    ax.plot(med.index, med.to_numpy(), color=ACTIVATION_COLORS[act],
                            linestyle="none", marker="o", markerfacecolor="none", markersize=5)
            ax.set_yscale("log")
            ax.set_xlim(0, 1.02)
            ax.set_xlabel("keep_prob (probability of keeping a unit)")
            ax.set_ylabel("|ensemble - scaled| / std")
            weights = "same weights" if scheme == "vanilla" else "circles: vanilla, equivalent"
            ax.set_title(f"{out} output, {STATISTIC_LABELS[stat]}: {scheme} ({weights})",
                         fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
    handles = activation_handles(activations) + [
        Line2D([], [], color="k", linestyle="none", marker="o", markerfacecolor="none",
               label="vanilla dropout on the equivalent weights"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=9, frameon=False)
    note = (f"\nNot drawn (zero up to rounding): keep_prob 1, and the NWGM of "
            f"{', '.join(sorted(skipped))}-activation networks" if skipped else "")
    fig.suptitle(
        "Exact dropout ensemble vs the scaled pass, dropout on every hidden unit\n"
        f"{networks_text(df)}\n{BAND}{note}",
        fontsize=10,
    )
    return fig


@STUDY.figure("sweep_slope")
def plot_sweep_slope(df: pd.DataFrame) -> Figure:
    """Absolute gap against (1 - q)/q on log-log axes, inverted dropout.

    A reference line of slope 1 shows the small-noise prediction (DESIGN fact
    7); each legend entry gives the slope fitted for keep_prob >= 0.8.
    """
    q_min = 0.8
    inv = df[(df["scheme"] == "inverted") & (df["weights"] == "original") & (df["keep_prob"] < 1)]
    inv = inv.assign(noise=(1 - inv["keep_prob"]) / inv["keep_prob"])
    slopes = (network_slopes(inv, q_min=q_min)
              .groupby(["output", "activation", "scheme", "weights", "statistic"], sort=False)
              ["slope"].median().reset_index().set_index(["output", "activation", "statistic"]))
    if slopes.empty:
        fig, axes = new_figure(width=6.0, height=2.0)
        axes[0, 0].set_axis_off()
        axes[0, 0].text(0.5, 0.5, "No slope to draw: the sweep has no inverted-dropout run with "
                        f"{q_min} <= keep_prob < 1\n(at least two such keep_probs are needed; "
                        "ran: " + ", ".join(f"{q:g}" for q in sorted(df["keep_prob"].unique()))
                        + ")", ha="center", va="center", fontsize=9, wrap=True)
        return fig
    outputs = list(dict.fromkeys(inv["output"]))
    stats = [s for s in STATISTIC_LABELS if s in set(inv["statistic"])]
    fig, axes = new_figure(len(outputs), len(stats), width=5.0, height=3.6)
    for i, out in enumerate(outputs):
        for j, stat in enumerate(stats):
            ax = axes[i, j]
            sub = inv[(inv["output"] == out) & (inv["statistic"] == stat)]
            for act in dict.fromkeys(sub["activation"]):
                cell = sub[sub["activation"] == act]
                if (out, act, stat) not in slopes.index:
                    continue  # an exactly-zero gap has no slope
                slope = slopes.loc[(out, act, stat), "slope"]
                x = sorted(cell["noise"].unique())
                median_band(ax, x, cell.groupby("noise")["mean_abs_gap"],
                            label=f"{act} (slope {slope:.2f})", color=ACTIVATION_COLORS[act])
            # Slope-1 reference through the median gap at the smallest (1 - q)/q.
            x0 = sub["noise"].min()
            y0 = sub[sub["noise"] == x0]["mean_abs_gap"].median()
            xs = sorted(sub["noise"].unique())
            ax.plot(xs, [y0 * x / x0 for x in xs], color="k", linestyle=":", linewidth=1.5,
                    label="slope 1: (1-q)/q")
            ax.axvline((1 - q_min) / q_min, color="0.5", linewidth=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            # Decades only, labelled plainly: minor labels collided on this axis.
            ax.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.xaxis.set_major_formatter("{x:g}")
            ax.set_xlabel("(1 - keep_prob) / keep_prob")
            ax.set_ylabel("mean |ensemble - scaled|")
            ax.set_title(f"{out} output: {STATISTIC_LABELS[stat]}, inverted", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.suptitle(
        "Does the gap vanish like (1-q)/q as keep_prob q -> 1?  "
        f"Slopes fitted left of the grey line (q >= {q_min})\n{networks_text(df)}\n{BAND}",
        fontsize=10,
    )
    return fig
