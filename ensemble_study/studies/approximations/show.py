"""The approximations study's figures and documentation blocks, from its saved table only.

(Over 500 lines: one figure or block per question of the study, each
reading the one CSV; the statistics they share are in ``summary.py``.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ... import stats
from ...plots import (
    ACTIVATION_COLORS,
    median_band,
    networks_text,
    new_figure,
)
from ...predictors import PREDICTORS
from ...report import ci, num, table
from ...stats import bootstrap_ci
from . import STUDY
from . import summary as study

_APPROX_ACTS = ("identity", "relu", "tanh", "sigmoid")


def _approx_name(predictor: str, k: int = 0) -> str:
    return PREDICTORS[predictor].label + (f", K = {k}" if k else "")


@STUDY.block("approximations-tables")
def approximations_tables(df: pd.DataFrame) -> str:
    """Median error of the mean and median cost per predictor, keep_prob and activation."""
    s = study.summary(df)
    parts = []
    for part in ("random", "trained"):
        t = s[s.part == part]
        if t.empty:
            continue
        qs = sorted(t.keep_prob.unique())
        acts = [a for a in _APPROX_ACTS if a in t.columns and t[a].notna().any()]
        rows = []
        for (pred, k), g in t.groupby(["predictor", "n_samples"], sort=False):
            g = g.set_index("keep_prob")
            rows.append([_approx_name(pred, k), num(g["cost_passes"].iloc[0])]
                        + [num(g.loc[q, a]) if q in g.index else "" for q in qs for a in acts])
        header = ["predictor", "cost"] + [f"q={q:g} {a}" if i == 0 else a
                                          for q in qs for i, a in enumerate(acts)]
        n = df[df.part == part].groupby(["dataset", "output", "seed"]).ngroups
        what = ("random networks" if part == "random"
                else "trained networks (one per dataset, seed and keep_prob)")
        parts.append(f"{what.capitalize()}, {n} per hidden activation and keep_prob:\n\n"
                     + table(header, rows))
    return ("Median over networks of the mean |predicted - exact mean| (over inputs and "
            "outputs; sigmoid and softmax outputs pooled; sampled predictors averaged over "
            f"{df['draw'].max() + 1} draws), and the median cost in forward-pass "
            "equivalents.\n\n" + "\n\n".join(parts))


PAIRED_PAIRS = [("moment_propagation", 0, "scaled", 0),
                ("moment_propagation", 0, "nwgm_corrected", 0),
                ("nwgm", 0, "scaled", 0), ("nwgm_corrected", 0, "nwgm", 0),
                ("rb_mc", 10, "mc", 10), ("rb_mc", 10, "mc", 50), ("rb_mc", 20, "mc", 100)]


def _by_output_families(df, metric, pairs, what, *, lower, higher) -> str:
    """One declared family per (part, output) of paired t-tests of ``metric`` over
    networks, per (activation, keep_prob) cell; only Holm survivors are stated."""
    keys = ["part", "dataset", "output", "activation", "keep_prob", "seed", "predictor",
            "n_samples"]
    d = df[df.part.isin(["random", "trained"])]
    have = set(zip(d.predictor, d.n_samples, strict=True))
    pairs = [x for x in pairs if (x[0], x[1]) in have and (x[2], x[3]) in have]
    per = d.groupby(keys, as_index=False, sort=False)[metric].mean()
    out = []
    for (part, output), g in per.groupby(["part", "output"], sort=False):
        fam = study.paired_family(g, f"{what}: {part} {output}-output networks, "
                                     f"{study.METRIC_NAMES.get(metric, metric)}",
                                  metric, pairs, ("activation", "keep_prob"))
        lines = _survivors(fam, lower=lower, higher=higher)
        out.append(_family_header(fam) + "\n\n" + "\n".join(f"* {x}" for x in lines))
    return "\n\n".join(out)


@STUDY.block("approximations-paired")
def approximations_paired(df: pd.DataFrame) -> str:
    """Paired comparisons of the mean's error across networks, Holm per (part, output)."""
    return ("Each network's mean |predicted - exact mean| (sampled predictors averaged over "
            "their draws), paired across networks in each (hidden activation, keep_prob) "
            "cell; one family per part and output kind (never pooled):\n\n"
            + _by_output_families(df, "mean_abs_error", PAIRED_PAIRS, "paired",
                                  lower="closer to the exact mean",
                                  higher="farther from the exact mean"))


@STUDY.block("approximations-crossover")
def approximations_crossover(df: pd.DataFrame) -> str:
    """The smallest K from which plain and RB MC beat each one-pass method."""
    cross = study.crossovers(df)
    dets = [d for d in study.DETERMINISTIC if d in set(cross.against)]
    rows = []
    for (part, output, act, sampler), g in cross.groupby(
            ["part", "output", "activation", "sampler"], sort=False):
        k = g.drop_duplicates("against").set_index("against")["k"]
        rows.append([part, output, act, PREDICTORS[sampler].label]
                    + ["never" if not k.get(d, np.nan) == k.get(d, np.nan) else f"{k[d]:g}"
                       for d in dets])
    ks = sorted(df.loc[df.predictor == "mc", "n_samples"].unique())
    rb = df[(df.predictor == "rb_mc") & (df.part == "random")]
    per_sample = (rb.cost_passes / rb.n_samples).median()
    exact = (df[(df.predictor == "exact") & df.part.isin(["random", "trained"])]
             .groupby("part")["cost_passes"].median())
    return ("Smallest K of the grid (" + ", ".join(f"{k:g}" for k in ks) + ") from which "
            "every larger K has a negative mean paired difference in mean |predicted - exact "
            "mean| to the method that survives Holm within its family (one family per part "
            "and output kind: every activation, sampler, K and method of it; paired t over "
            "networks, a random network's keep_probs averaged); *never*: no K of the grid "
            "does.\n\n"
            + table(["part", "output", "hidden units", "sampler"]
                    + [PREDICTORS[d].label for d in dets], rows)
            + f"\n\nAn RB MC sample costs {num(per_sample)} forward-pass equivalents on the "
            "random networks; the exact ensemble costs " + " and ".join(
                f"{num(v)} ({p})" for p, v in exact.items()) + ".")


@STUDY.block("approximations-variance")
def approximations_variance(df: pd.DataFrame) -> str:
    """Median relative error and log-ratio of the predicted variance, and paired tests."""
    v = study.variance_summary(df, ks=(10, 100))
    cols = [(p, k) for p, k in (("moment_propagation", 0), ("mc", 10), ("mc", 100),
                                 ("rb_mc", 10), ("rb_mc", 100))
            if ((v.predictor == p) & (v.n_samples == k)).any()]
    rows = []
    for (part, act), g in v.groupby(["part", "activation"], sort=False):
        g = g.set_index(["predictor", "n_samples"])
        rows.append([part, act] + [
            f"{num(g.loc[c, 'variance_rel_error'])} ({num(g.loc[c, 'variance_log_ratio'], 2)})"
            if c in g.index else "" for c in cols])
    sentences = _by_output_families(
        df, "variance_rel_error", [("moment_propagation", 0, "mc", 10), ("rb_mc", 10, "mc", 10),
                                   ("rb_mc", 10, "mc", 100)], "variance",
        lower="smaller error", higher="larger error")
    return ("Median over networks of the relative error |V - V_exact| / V_exact of the "
            "predicted variance (in brackets the median log-ratio log(V / V_exact): "
            "negative under-predicts; sigmoid and softmax outputs pooled in these "
            "descriptive medians). Plain MC's variance is its K members' (ddof = 0).\n\n"
            + table(["part", "hidden units"] + [_approx_name(*c) for c in cols], rows)
            + "\n\nPaired across networks, the relative error of the predicted variance:\n\n"
            + sentences)


@STUDY.block("approximations-baldi")
def approximations_baldi(df: pd.DataFrame) -> str:
    """Share of cases breaking Baldi & Sadowski's bound, by activation and weight scale."""
    b = study.baldi_summary(df)
    scales = sorted(b.weight_scale.unique())
    rows = []
    for act, g in b.groupby("activation", sort=False):
        g = g.set_index("weight_scale")
        rows.append([act] + [f"{g.loc[s, 'share_breaking']:.1%} "
                             f"[{g.loc[s, 'ci_low']:.1%}, {g.loc[s, 'ci_high']:.1%}]"
                             for s in scales])
    d = df[df.part == "baldi"]
    first = d.iloc[0]
    return (f"Share of (network, input) cases with |E - NWGM| above the bound, "
            f"{first['architecture']} sigmoid-output networks with both hidden layers "
            f"dropped at keep_prob {', '.join(f'{q:g}' for q in sorted(d.keep_prob.unique()))}, "
            f"{d.groupby(['activation', 'weight_scale', 'seed']).ngroups // len(scales)} "
            f"networks per weight scale and {d.input.nunique()} inputs each "
            "[95% bootstrap CI over networks]:\n\n"
            + table(["hidden units"] + [f"weights x {s:g}" for s in scales], rows))


def _approx_style() -> dict:
    """(predictor, K) -> line keywords: one-pass predictors, and MC and RB MC at K = 10
    (dashed) and 100, each in its registered colour."""
    out = {}
    for name, pred in PREDICTORS.items():
        if name == "exact":
            continue
        for k, ls in (((10, "--"), (100, "-")) if pred.samples else ((0, "-"),)):
            out[(name, k)] = {"label": pred.title(k), "color": pred.style["color"],
                              "marker": pred.style["marker"], "ls": ls}
    return out


_APPROX_STYLE = _approx_style()


_APPROX_BAND = "median over networks, band: bootstrap 95% CI of the median"


def _median_ci(values) -> tuple[float, float, float]:
    """Median of the finite values and its bootstrap 95% CI (``stats.bootstrap_ci``)."""
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)])
    return bootstrap_ci(v) if v.size else (np.nan, np.nan, np.nan)


def _approx_networks(df) -> pd.DataFrame:
    """One value per network, keep_prob, predictor and K: the mean over draws."""
    keys = ["part", "dataset", "architecture", "activation", "output", "keep_prob", "seed",
            "predictor", "n_samples"]
    cols = ["mean_abs_error", "cost_passes", "variance_exact", "variance_predicted"]
    d = df[df["part"].isin(["random", "trained"])]
    return d.groupby(keys, as_index=False, sort=False, dropna=False)[cols].mean()


@STUDY.figure("approximations_keep_prob")
def plot_approximations_keep_prob(df: pd.DataFrame) -> Figure:
    """Error of each predictor's mean against keep_prob, random networks.

    Rows: hidden activation; columns: output (two columns, so that the text
    stays legible at the documentation's width); one line per predictor (MC
    and RB MC at K = 10 and 100), the median over networks with its bootstrap CI.
    """
    per = _approx_networks(df[df["part"] == "random"])
    outputs = list(dict.fromkeys(per["output"]))
    activations = list(dict.fromkeys(per["activation"]))
    fig, axes = new_figure(len(activations), len(outputs), width=4.0, height=2.8,
                           sharey="col")
    handles = {}
    for i, out in enumerate(outputs):
        for j, act in enumerate(activations):
            ax = axes[j, i]
            sub = per[(per["output"] == out) & (per["activation"] == act)]
            for (name, k), style in _APPROX_STYLE.items():
                g = sub[(sub["predictor"] == name) & (sub["n_samples"] == k)]
                if g.empty:
                    continue
                x = sorted(g["keep_prob"].unique())
                handles[style["label"]] = median_band(
                    ax, x, g.groupby("keep_prob")["mean_abs_error"], spread=None,
                    markersize=4, **style)
            ax.set_yscale("log")
            ax.set_xlabel("keep_prob")
            ax.set_ylabel("mean |predicted - exact mean|", fontsize=9)
            ax.set_title(f"{out} output, {act} hidden", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncol=3,
               fontsize=9, frameon=False)
    fig.suptitle("Error of each approximation of the ensemble mean,\nagainst the exact "
                 f"ensemble; {networks_text(per)};\nboth hidden layers dropped; {_APPROX_BAND}",
                 fontsize=10)
    return fig


@STUDY.figure("approximations_pareto")
def plot_approximations_pareto(df: pd.DataFrame) -> Figure:
    """Error against cost (forward-pass equivalents): MC and RB MC over K, each
    deterministic method a point, the exact ensemble's cost a vertical line.

    One panel per (part, activation): random networks first, then trained
    ones, at keep_prob 0.5, two panels per row.
    """
    per = _approx_networks(df)
    q = 0.5 if (per["keep_prob"] == 0.5).any() else per["keep_prob"].min()
    per = per[per["keep_prob"] == q]
    parts = [p for p in ("random", "trained") if (per["part"] == p).any()]
    activations = list(dict.fromkeys(per["activation"]))
    panels = [(part, act) for part in parts for act in activations
              if ((per["part"] == part) & (per["activation"] == act)).any()]
    ncols = min(2, len(panels))
    fig, axes = new_figure(-(-len(panels) // ncols), ncols, width=4.0, height=3.1)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    handles = {}
    for ax, (part, act) in zip(axes.flat, panels, strict=False):
        sub = per[(per["part"] == part) & (per["activation"] == act)]
        for name, color, label in (("mc", "tab:blue", "plain MC (K marked)"),
                                   ("rb_mc", "tab:orange", "RB MC (K marked)")):
            g = sub[sub["predictor"] == name]
            # Every network's cost at one K is the same (one architecture per part).
            g = g.assign(cost=g.groupby("n_samples")["cost_passes"].transform("median"))
            by_cost = g.groupby("cost")
            cost = sorted(by_cost.groups)
            handles[label] = median_band(ax, cost, by_cost["mean_abs_error"], spread=None,
                                         label=label, color=color, marker=".")
            medians = by_cost["mean_abs_error"].median()
            for c, k in by_cost["n_samples"].first().items():
                if k in (1, 10, 100, 1000):
                    ax.annotate(f"{k}", (c, medians[c]), fontsize=8, color=color,
                                xytext=(2, 3), textcoords="offset points")
        for (name, k), style in _APPROX_STYLE.items():
            g = sub[(sub["predictor"] == name) & (sub["n_samples"] == k)]
            if k or g.empty:
                continue
            med, lo, hi = _median_ci(g["mean_abs_error"])
            handles[style["label"]] = ax.errorbar(
                g["cost_passes"].median(), med, yerr=[[med - lo], [hi - med]],
                color=style["color"], marker=style["marker"], ls="none",
                label=style["label"])
        exact_cost = sub.loc[sub["predictor"] == "exact", "cost_passes"].median()
        handles["exact ensemble's cost"] = ax.axvline(
            exact_cost, color="k", ls=":", lw=1, label="exact ensemble's cost")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cost (forward-pass equivalents)")
        ax.set_ylabel("mean |predicted - exact mean|", fontsize=9)
        ax.set_title(f"{part}: {act} hidden, keep_prob {q:g}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncol=3,
               fontsize=9, frameon=False)
    fig.suptitle("Error against cost: from which K does Monte Carlo\n(plain or "
                 "Rao-Blackwellised) beat each one-pass method?\n"
                 f"sigmoid and softmax outputs pooled;\n{_APPROX_BAND}", fontsize=10)
    return fig


@STUDY.figure("approximations_variance")
def plot_approximations_variance(df: pd.DataFrame) -> Figure:
    """Predicted against exact ensemble variance (mean over inputs), one point per
    network and keep_prob; columns: moment propagation, MC K = 10, RB MC K = 10."""
    per = _approx_networks(df)
    panels = [("moment_propagation", 0, "moment propagation"), ("mc", 10, "plain MC, K = 10"),
              ("rb_mc", 10, "RB MC, K = 10"), ("mc", 100, "plain MC, K = 100")]
    panels = [p for p in panels if ((per["predictor"] == p[0]) & (per["n_samples"] == p[1])).any()]
    ncols = min(2, len(panels))
    fig, axes = new_figure(-(-len(panels) // ncols), ncols, width=4.0, height=3.6)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    markers = {"random": "o", "trained": "x"}
    for ax, (name, k, title) in zip(axes.flat, panels, strict=False):
        sub = per[(per["predictor"] == name) & (per["n_samples"] == k)
                  & (per["variance_exact"] > 0) & (per["variance_predicted"] > 0)]
        for part, marker in markers.items():
            for act in dict.fromkeys(sub["activation"]):
                g = sub[(sub["part"] == part) & (sub["activation"] == act)]
                if g.empty:
                    continue
                ax.scatter(g["variance_exact"], g["variance_predicted"], s=10, marker=marker,
                           color=ACTIVATION_COLORS[act], alpha=0.6, linewidths=0.8,
                           label=f"{act} ({part})")
        lims = [sub[["variance_exact", "variance_predicted"]].min().min(),
                sub[["variance_exact", "variance_predicted"]].max().max()]
        ax.plot(lims, lims, color="k", lw=1, ls="--", label="predicted = exact")
        ratio = np.log(sub["variance_predicted"] / sub["variance_exact"])
        ax.text(0.03, 0.97, f"median |log ratio| {np.median(np.abs(ratio)):.2f}",
                transform=ax.transAxes, va="top", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("exact ensemble variance")
        ax.set_ylabel("predicted variance")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle("How well each method predicts the ensemble's variance\n(one point per "
                 "network and keep_prob, variances averaged over inputs and outputs)",
                 fontsize=10)
    return fig


@STUDY.figure("approximations_baldi")
def plot_approximations_baldi(df: pd.DataFrame) -> Figure:
    """Baldi & Sadowski's estimate of |E - NWGM| against the measured one, one point
    per (network, input), one panel per weight scale; points above the diagonal
    break the "bound"."""
    d = df[df["part"] == "baldi"]
    share = study.baldi_summary(df).set_index(["activation", "weight_scale"])
    scales = sorted(d["weight_scale"].unique())
    fig, axes = new_figure(1, len(scales), width=3.8, height=3.8)
    values = d[["baldi_bound", "nwgm_abs_gap"]].to_numpy()
    # The few cases below the floor (a bound of 0 when E = 1/2) are drawn on it.
    floor = (np.quantile(values[values > 0], 0.002) if (values > 0).any() else 1e-10)
    for j, scale in enumerate(scales):
        ax = axes[0, j]
        sub = d[d["weight_scale"] == scale]
        for act in dict.fromkeys(sub["activation"]):
            g = sub[sub["activation"] == act]
            s = share.loc[(act, scale)]
            ax.scatter(np.maximum(g["baldi_bound"], floor), np.maximum(g["nwgm_abs_gap"], floor),
                       s=6, alpha=0.5, color=ACTIVATION_COLORS[act],
                       label=f"{act}: {s['share_breaking']:.0%} break "
                             f"[{s['ci_low']:.0%}, {s['ci_high']:.0%}]")
        ax.plot([floor, 1], [floor, 1], color="k", lw=1, ls="--", label="measured = bound")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(floor / 1.5, 1)
        ax.set_ylim(floor / 1.5, 1)
        ax.set_xlabel("Baldi's bound  E(1-E)|1-2E| / (1-2E(1-E))")
        ax.set_ylabel("measured |E - NWGM|")
        ax.set_title(f"weights x {scale:g}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    first = d.iloc[0]
    qs = ", ".join(f"{q:g}" for q in sorted(d["keep_prob"].unique()))
    fig.suptitle(f"Baldi & Sadowski's |E - NWGM| bound is an estimate: above the diagonal "
                 f"it fails\n{first['architecture']} sigmoid-output networks, both hidden "
                 f"layers dropped, keep_prob {qs}\nshare of (network, input) cases breaking "
                 "it, with a 95% bootstrap CI over networks", fontsize=10)
    return fig


# --- On the labels, against both ensembles, and claims that survive Holm -----------------

def _cell_name(r) -> str:
    part = f"{r.part} " if hasattr(r, "part") else ""
    return f"{part}{r.activation} q={r.keep_prob:g}"


def _survivors(fam, *, lower: str, higher: str, units: str = "") -> list[str]:
    """One line per claim pair (a against b) of a family: the cells where a is
    significantly lower, and where higher, after Holm within the family, with the mean
    paired difference [95% t-interval]; nothing stated for the rest."""
    t = fam.table()
    if t.empty:
        return []
    lines = []
    for (a, k_a, b, k_b), g in t.groupby(["a", "k_a", "b", "k_b"], sort=False):
        ok = g[g["survives"]]
        parts = []
        for sign, word in ((-1, lower), (1, higher)):
            s = ok[np.sign(ok["mean_difference"]) == sign]
            if len(s):
                parts.append(f"{word} in " + ", ".join(
                    f"{_cell_name(r)} ({num(r.mean_difference)} "
                    f"[{num(r.low)}, {num(r.high)}]{units})" for r in s.itertuples()))
        na, nb = _approx_name(a.split(":")[0], k_a), _approx_name(b.split(":")[0], k_b)
        what = (f"{na}, its distance to the exact NWGM against to the exact mean"
                if ":" in a and na == nb else f"{na} against {nb}")
        rest = len(g) - len(ok)
        lines.append(f"{what}: " + ("; ".join(parts) if parts else
                                               "no difference survives")
                     + (f" ({rest} of {len(g)} cells: no difference survives)"
                        if parts and rest else "") + ".")
    return lines


def _family_header(fam) -> str:
    t = fam.table()
    lo, hi = (int(t["n"].min()), int(t["n"].max())) if not t.empty else (0, 0)
    n = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return (f"Family *{fam.name}* ({len(t)} paired t-tests over networks, n = {n} per cell; "
            f"Holm within the family, alpha = {fam.alpha:g}; differences a - b with 95% "
            "t-intervals):")


@STUDY.block("approximations-deploy")
def approximations_deploy(df: pd.DataFrame) -> str:
    """Which predictor to deploy after dropout training: label scores with t-intervals
    over training seeds, and each predictor against the scaled pass, Holm per family."""
    out = []
    fams = study.deploy_families(df)
    for ds in dict.fromkeys(df.loc[df.part == "trained", "dataset"]):
        d = df[(df.part == "trained") & (df.dataset == ds)]
        arch, output = d.architecture.iloc[0], d.output.iloc[0]
        out.append(f"**{ds}** ({arch}, {output} output; {d.seed.nunique()} training seeds per "
                   "cell):")
        for metric in study.LABEL_METRICS:
            t = study.label_table(d, metric)
            cells = list(dict.fromkeys(zip(t.activation, t.keep_prob, strict=True)))
            rows = []
            for (name, k), g in t.groupby(["predictor", "n_samples"], sort=False):
                g = g.set_index(["activation", "keep_prob"])
                rows.append([_approx_name(name, k)] + [
                    ci(g.loc[c, "mean"], g.loc[c, "low"], g.loc[c, "high"])
                    if c in g.index else "" for c in cells])
            out.append(f"{study.METRIC_NAMES[metric]}, mean over seeds [95% t-interval]:\n\n"
                       + table(["predictor"] + [f"{a} q={q:g}" for a, q in cells], rows))
            fam = fams[(ds, metric)]
            lines = _survivors(fam, lower="lower", higher="higher")
            out.append(_family_header(fam) + "\n\n" + "\n".join(f"* {x}" for x in lines))
    return ("Scored on the first test examples of each dataset's held-out split "
            "(the probabilities clipped to [0, 1] and a softmax's renormalised first; "
            "sampled predictors averaged over their draws); the unit is the trained "
            "network (one training seed).\n\n" + "\n\n".join(out))


@STUDY.block("approximations-target")
def approximations_target(df: pd.DataFrame) -> str:
    """Which ensemble does each approximation approximate: its distance to the exact
    NWGM against its distance to the exact mean, Holm per (part, output)."""
    out = []
    for fam in study.target_families(df).values():
        lines = _survivors(fam, lower="closer to the exact NWGM",
                           higher="closer to the exact mean")
        out.append(_family_header(fam) + "\n\n" + "\n".join(f"* {x}" for x in lines))
    return ("Each predictor's mean |predicted - exact NWGM| minus its mean |predicted - "
            "exact mean| on the same network (negative: closer to the NWGM), per cell "
            "(trained: activation and keep_prob; random: activation and keep_prob, the same "
            "networks at each keep_prob). The exact mean and the exact NWGM themselves are "
            "left out.\n\n" + "\n\n".join(out))


@STUDY.block("approximations-closure")
def approximations_closure(df: pd.DataFrame) -> str:
    """Moment propagation's variance with the probit closure against quadrature of the
    same Gaussian logits, sigmoid outputs."""
    keys = ["part", "activation", "keep_prob", "seed", "predictor"]
    d = df[df.part.isin(["random", "trained"]) & (df.output == "sigmoid")
           & df.predictor.isin(["moment_propagation", "moment_quadrature"])]
    per = d.groupby(keys, as_index=False, sort=False)["variance_log_ratio"].mean()
    rows = []
    for (part, act, q), g in per.groupby(["part", "activation", "keep_prob"], sort=False):
        cells = []
        for name in ("moment_propagation", "moment_quadrature"):
            v = g.loc[g.predictor == name, "variance_log_ratio"].dropna().to_numpy()
            cells.append(ci(*stats.t_interval(v)) if v.size >= 2 else "")
        rows.append([part, act, f"{q:g}", str(g.seed.nunique()), *cells])
    fam = study.closure_family(df)
    lines = _survivors(fam, lower="lower", higher="higher")
    t = fam.table()
    trained = t[t["part"] == "trained"] if not t.empty else t
    if len(trained) and (trained["survives"] & (trained["mean_difference"] > 0)).all():
        quad = per[(per.part == "trained") & (per.predictor == "moment_quadrature")]
        cells = quad.groupby(["activation", "keep_prob"])["variance_log_ratio"].mean()
        lines.append(
            f"In every one of the {len(trained)} trained cells the probit closure's "
            "log-ratio is above the quadrature closure's fed the same Gaussian logits (by "
            f"{num(trained['mean_difference'].min(), 2)} to "
            f"{num(trained['mean_difference'].max(), 2)}): that much of moment "
            "propagation's over-prediction after training is made at the output; with "
            f"quadrature the cell means of the log-ratio run from {num(cells.min(), 2)} to "
            f"{num(cells.max(), 2)}, the error left in the Gaussian logits' moments.")
    return ("Mean log(V / V_exact) of the output variance over networks [95% t-interval] "
            "(> 0 over-predicts), sigmoid outputs: moment propagation with its probit "
            "closure, and with Gauss-Hermite quadrature of the same Gaussian logits (the "
            "two differ only at the output).\n\n"
            + table(["part", "hidden units", "keep_prob", "networks", "probit closure",
                     "quadrature closure"], rows)
            + "\n\n" + _family_header(fam) + "\n\n" + "\n".join(f"* {x}" for x in lines))


# Table labels of the closure metrics (a Markdown cell cannot hold "|").
_CLOSURE_LABELS = {"mean_abs_error": "mean abs. error of the mean",
                   "total_variation": "total variation",
                   "variance_rel_error": "relative error of V"}


def _closure_cells(s: pd.DataFrame, part: str) -> str:
    return ", ".join(
        f"{r.dataset + ' ' if part == 'trained' else ''}{r.activation} q={r.keep_prob:g} "
        f"({num(r.mean_difference)} [{num(r.low)}, {num(r.high)}])" for r in s.itertuples())


@STUDY.block("approximations-closure-outputs")
def approximations_closure_outputs(df: pd.DataFrame) -> str:
    """Quadrature against probit closure per output kind, part and metric: counts of
    surviving cells, then the cells with their differences."""
    fams = study.closure_output_families(df)
    rows, details = [], []
    for (part, output, metric), fam in fams.items():
        t = fam.table()
        if t.empty:
            continue
        ok = t[t["survives"]]
        quad, probit = ok[ok["mean_difference"] < 0], ok[ok["mean_difference"] > 0]
        rows.append([part, output, _CLOSURE_LABELS[metric], str(len(t)), str(len(quad)),
                     str(len(probit)), str(len(t) - len(ok))])

        said = [f"quadrature closer in {_closure_cells(quad, part)}" if len(quad) else "",
                f"probit closer in {_closure_cells(probit, part)}" if len(probit) else ""]
        said = "; ".join(x for x in said if x) or "no difference survives"
        lo, hi = int(t["n"].min()), int(t["n"].max())
        details.append(f"* *{fam.name}* ({len(t)} cells, n = "
                       f"{lo if lo == hi else f'{lo}-{hi}'} networks per cell): {said}.")
    if not rows:
        return "No network has both closures: no comparison.\n"
    return ("Moment propagation's two output closures fed the same Gaussian logits: the "
            "quadrature closure (Gauss-Hermite for a sigmoid, the one-dimensional Gumbel "
            "integral of independent Gaussian logits for a softmax) against the probit "
            "closure, each network's distance to the exact ensemble, paired over networks "
            "in each (dataset, hidden activation, keep_prob) cell. One family per part, "
            "output kind and metric (paired t-tests, Holm within the family, alpha = 0.05); "
            "differences quadrature - probit with 95% t-intervals (negative: the "
            "quadrature closure is closer).\n\n"
            + table(["part", "output", "metric", "cells", "quadrature closer",
                     "probit closer", "no difference survives"], rows)
            + "\n\n" + "\n".join(details))


RECOMMEND_PAIRS = [("moment_quadrature", 0, "moment_propagation", 0),
                   ("moment_propagation", 0, "scaled", 0),
                   ("nwgm_delta", 0, "nwgm_corrected", 0),
                   ("nwgm_delta", 0, "moment_propagation", 0),
                   ("nwgm_corrected", 0, "moment_propagation", 0)]


@STUDY.block("approximations-recommend")
def approximations_recommend(df: pd.DataFrame) -> str:
    """The cheap estimates of the exact mean compared, Holm per (part, output)."""
    return ("The one-pass estimates of the exact arithmetic mean, paired on the same "
            "networks per (hidden activation, keep_prob) cell; a predictor that does not "
            "apply to an output has no claim there.\n\n"
            + _by_output_families(df, "mean_abs_error", RECOMMEND_PAIRS, "recommend",
                                  lower="closer to the exact mean",
                                  higher="farther from the exact mean"))


RELIABILITY_MIN_COUNT = 10  # pooled examples a bin needs to be drawn
RELIABILITY_LINES = (("exact", 0), ("nwgm", 0), ("scaled", 0), ("moment_propagation", 0),
                     ("mc", 10))


@STUDY.figure("approximations_reliability")
def plot_approximations_reliability(df: pd.DataFrame) -> Figure:
    """Reliability diagrams of the trained networks: accuracy against top-label
    confidence, the 15 equal-width bins pooled over networks (both hidden activations,
    every training seed); rows: dataset, columns: keep_prob; one line per predictor,
    its mean ECE over networks in the legend."""
    rel = df[df["part"] == "reliability"]
    per = df[df["part"] == "trained"]
    datasets = list(dict.fromkeys(rel["dataset"]))
    qs = sorted(rel["keep_prob"].unique())
    fig, axes = new_figure(len(datasets), len(qs), width=4.2, height=4.0)
    for i, ds in enumerate(datasets):
        for j, q in enumerate(qs):
            ax = axes[i, j]
            ax.plot([0, 1], [0, 1], color="k", lw=1, ls=":", label="calibrated")
            sub = rel[(rel["dataset"] == ds) & (rel["keep_prob"] == q)]
            for name, k in RELIABILITY_LINES:
                g = sub[(sub["predictor"] == name) & (sub["n_samples"] == k)]
                if g.empty:
                    continue
                b = g.assign(c=g["bin_count"] * g["bin_confidence"],
                             a=g["bin_count"] * g["bin_accuracy"]).groupby("bin")[
                    ["bin_count", "c", "a"]].sum()
                b = b[b["bin_count"] >= RELIABILITY_MIN_COUNT]
                ece = per.loc[(per["dataset"] == ds) & (per["keep_prob"] == q)
                              & (per["predictor"] == name) & (per["n_samples"] == k),
                              "ece"].mean()
                style = PREDICTORS[name].style
                ax.plot(b["c"] / b["bin_count"], b["a"] / b["bin_count"],
                        color=style["color"], marker=style["marker"], markersize=4,
                        label=f"{_approx_name(name, k)} (ECE {ece:.2f})")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("top-label confidence")
            ax.set_ylabel("accuracy")
            ax.set_title(f"{ds}, keep_prob {q:g}", fontsize=10)
            ax.grid(True, alpha=0.3)
            # Binary confidences are >= 0.5: the upper left is empty there.
            binary = (per.loc[per["dataset"] == ds, "output"] == "sigmoid").all()
            ax.legend(fontsize=7.5, loc="upper left" if binary else "lower right",
                      frameon=False)
    n = per.groupby(["dataset", "activation", "keep_prob", "seed"]).ngroups
    fig.suptitle("Reliability after dropout training\n15 equal-width confidence bins, "
                 f"pooled over\n{n // max(len(datasets) * len(qs), 1)} trained networks per "
                 "panel (relu and tanh, every seed), bins of\n"
                 f"{RELIABILITY_MIN_COUNT}+ examples drawn; legend: mean ECE over those networks",
                 fontsize=10)
    return fig


def _tally(fam, *, lower: str, higher: str) -> list[str]:
    """Per (a, b) pair of a family: in how many cells a is significantly lower or higher
    than b after Holm within the family."""
    t = fam.table()
    if t.empty:
        return ["no cell has two networks: no test"]
    out = []
    for (a, k_a, b, k_b), g in t.groupby(["a", "k_a", "b", "k_b"], sort=False):
        ok = g[g["survives"]]
        n_lo, n_hi = int((ok["mean_difference"] < 0).sum()), int((ok["mean_difference"] > 0).sum())
        out.append(f"{_approx_name(a, k_a)} against {_approx_name(b, k_b)}: {lower} in "
                   f"{n_lo} of {len(g)} cells, {higher} in {n_hi}")
    return out


@STUDY.block("approximations-which")
def approximations_which(df: pd.DataFrame) -> str:
    """The answer in counts of surviving cells: on the labels (against the scaled pass)
    and for the exact mean (the recommend pairs), each family named."""
    fams = study.deploy_families(df)
    out = []
    for ds in dict.fromkeys(ds for ds, _ in fams):
        counts = {}
        for metric in study.LABEL_METRICS:
            t = fams[(ds, metric)].table()
            if t.empty:
                continue
            for (a, k_a), g in t.groupby(["a", "k_a"], sort=False):
                ok = g[g["survives"]]
                counts.setdefault((a, k_a), []).append(
                    f"{int((ok['mean_difference'] < 0).sum())} / "
                    f"{int((ok['mean_difference'] > 0).sum())} of {len(g)}")
        rows = [[_approx_name(a, k)] + c for (a, k), c in counts.items()
                if len(c) == len(study.LABEL_METRICS)]
        better = {}
        for metric in study.LABEL_METRICS:
            t = fams[(ds, metric)].table()
            if t.empty:
                continue
            for r in t[t["survives"] & (t["mean_difference"] < 0)].itertuples():
                better.setdefault(_approx_name(r.a, r.k_a), []).append(
                    f"{study.METRIC_NAMES[metric].split(' (')[0]} at {_cell_name(r)}")
        if better:
            out.append(f"On {ds}, better than the scaled pass somewhere: " + "; ".join(
                f"{name} ({', '.join(v)})" for name, v in better.items())
                       + "; no other predictor is better than it in any cell on any of the "
                       "four scores.")
        else:
            out.append(f"On {ds}, no predictor is better than the scaled pass in any cell "
                       "on any of the four scores.")
        out.append(f"**{ds}**, against the scaled pass, cells where the predictor is "
                   "better / worse (families *deploy: " + ds + ", <metric>, against the "
                   "scaled pass*):\n\n"
                   + table(["predictor"] + [study.METRIC_NAMES[m].split(" (")[0]
                                            for m in study.LABEL_METRICS], rows))
    mean = ["**As estimates of the exact arithmetic mean** (mean |predicted - exact "
            "mean|; cells are (activation, keep_prob) pairs):"]
    keys = ["part", "dataset", "output", "activation", "keep_prob", "seed", "predictor",
            "n_samples"]
    d = df[df.part.isin(["random", "trained"]) & (df.output != "identity")]
    per = d.groupby(keys, as_index=False, sort=False)["mean_abs_error"].mean()
    for (part, output), g in per.groupby(["part", "output"], sort=False):
        fam = study.paired_family(
            g, f"recommend: {part} {output}-output networks, mean |predicted - exact mean|",
            "mean_abs_error", RECOMMEND_PAIRS, ("activation", "keep_prob"))
        mean.append(f"* family *{fam.name}*: " + "; ".join(_tally(fam, lower="closer",
                                                                  higher="farther")) + ".")
    return ("In how many cells (an activation and a keep_prob) a difference survives Holm "
            "within its family; the families, differences and intervals are those of the "
            "blocks above.\n\n" + "\n\n".join(out) + "\n\n" + "\n".join(mean))
