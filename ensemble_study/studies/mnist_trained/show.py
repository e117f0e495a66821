"""The mnist_trained study's figure and documentation blocks, from its saved table only.

The seed (one dropout network and its paired baseline) is the unit of replication:
each network's test examples are averaged first, and intervals are Student-t over
seeds. Declared families, Holm within each:

* ``mnist_trained: dropout vs baseline``: the dropout network's scaled pass against its
  no-dropout baseline, paired over seeds, on test error and test NLL (2 claims);
* ``mnist_trained: against the scaled pass, METRIC``: one family per metric (the four
  label scores, and the total variation to the certified ensemble mean and to its NWGM),
  one claim per other dropout predictor, predictor minus scaled pass, paired over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ... import stats
from ...plots import new_figure
from ...report import ci, num, table
from ..helps.show import RELIABILITY_LINES, RELIABILITY_MIN_COUNT, RELIABILITY_STYLE, pooled_bins
from . import (
    LABEL_COLUMNS,
    REFERENCE_PREDICTOR,
    RESOLUTION,
    STUDY,
    against,
    labels,
    reliability,
)

METRIC_NAMES = {"error": "test error", "nll": "test NLL", "brier": "Brier score",
                "ece": "ECE (15 bins)", "total_variation": "total variation",
                "kl": "KL(reference, predictor)", "mean_abs_gap": "absolute gap"}
REFERENCE_NAMES = {"mean": "certified ensemble mean", "nwgm": "certified NWGM"}
PREDICTOR_NAMES = {"plain": "no-dropout baseline", "scaled": "scaled pass", "mc": "MC dropout",
                   "moment_propagation": "moment propagation",
                   "nwgm_corrected": "NWGM + B&S correction",
                   "nwgm_delta": "NWGM + delta correction",
                   "certified": "ensemble mean (certified)",
                   "certified_nwgm": "NWGM (certified)"}
ORDER = ["plain", "scaled", "mc", "moment_propagation", "nwgm_corrected", "nwgm_delta",
         "certified", "certified_nwgm"]
PAIRED_METRICS = ("error", "nll")
REFERENCE = "scaled"
# The families against the scaled pass: metric name -> (reference of the rows, column).
VS_SCALED = {"error": ("labels", "error"), "nll": ("labels", "nll"),
             "brier": ("labels", "brier"), "ece": ("labels", "ece"),
             "total variation to the ensemble mean": ("mean", "total_variation"),
             "total variation to the NWGM": ("nwgm", "total_variation")}


def label(predictor: str, k: int) -> str:
    name = PREDICTOR_NAMES.get(predictor, predictor)
    return f"{name}, K = {int(k)}" if predictor == "mc" else name


def _keys(df: pd.DataFrame) -> list[tuple[str, int]]:
    """(predictor, K) pairs of a table, in display order."""
    keys = {(p, int(k)) for p, k in zip(df.predictor, df.n_samples)}
    return sorted(keys, key=lambda t: (ORDER.index(t[0]) if t[0] in ORDER else 99, t[1]))


def _series(df: pd.DataFrame, predictor: str, k: int, column: str) -> pd.Series:
    g = df[(df.predictor == predictor) & (df.n_samples == k)]
    return g.set_index("seed")[column].astype(float).sort_index()


def summary(df: pd.DataFrame, reference: str, columns) -> pd.DataFrame:
    """Per predictor and column: the mean over seeds and its t-interval.

    ``reference`` is ``"labels"`` (label scores, baseline included) or a certified
    reference (``"mean"``, ``"nwgm"``). One row each: ``predictor``, ``n_samples``,
    ``label``, ``metric``, ``n``, ``mean``, ``low``, ``high``.
    """
    d = labels(df) if reference == "labels" else against(df, reference)
    rows = []
    for pred, k in _keys(d):
        for m in columns:
            v = _series(d, pred, k, m).to_numpy()
            mean, lo, hi = stats.t_interval(v) if v.size >= 2 else (float(v.mean()),) * 3
            rows.append({"predictor": pred, "n_samples": k, "label": label(pred, k),
                         "metric": m, "n": v.size, "mean": mean, "low": lo, "high": hi})
    return pd.DataFrame(rows)


def dropout_vs_baseline(df: pd.DataFrame) -> pd.DataFrame:
    """Baseline minus dropout (each dropout predictor) on every label score, paired over
    seeds, with the family ``mnist_trained: dropout vs baseline`` (the scaled pass on
    error and NLL) Holm-corrected: columns ``holm`` and ``survives`` on its rows, NaN
    elsewhere."""
    d = labels(df)
    base = _series(d, "plain", 0, "error").index
    rows = []
    for pred, k in _keys(d[d.network == "dropout"]):
        for m in LABEL_COLUMNS:
            a = _series(d, "plain", 0, m)
            b = _series(d, pred, k, m)
            seeds = base.intersection(b.index)
            if len(seeds) < 2:
                continue
            rows.append({"predictor": pred, "n_samples": k, "label": label(pred, k),
                         "metric": m, **stats.paired_t(a[seeds].to_numpy(),
                                                       b[seeds].to_numpy())})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    fam = stats.Family("mnist_trained: dropout vs baseline")
    claim = (out.predictor == REFERENCE) & out.metric.isin(PAIRED_METRICS)
    for r in out[claim].itertuples():
        fam.add(r.metric, r.pvalue)
    t = fam.table().set_index("key")
    out["holm"] = np.where(claim, out.metric.map(t["holm"]), np.nan)
    out["survives"] = np.where(claim, out.metric.map(t["survives"]), np.nan)
    return out


def vs_scaled(df: pd.DataFrame) -> pd.DataFrame:
    """Every other dropout predictor minus the scaled pass, per family of ``VS_SCALED``,
    paired over seeds, Holm within each family."""
    out = []
    for name, (ref, column) in VS_SCALED.items():
        d = labels(df) if ref == "labels" else against(df, ref)
        d = d[d.network == "dropout"]
        if REFERENCE not in set(d.predictor):
            continue
        base = _series(d, REFERENCE, 0, column)
        fam = stats.Family(f"mnist_trained: against the scaled pass, {name}")
        for pred, k in _keys(d):
            if pred == REFERENCE:
                continue
            s = _series(d, pred, k, column)
            seeds = base.index.intersection(s.index)
            if len(seeds) < 2:
                continue
            t = stats.paired_t(s[seeds].to_numpy(), base[seeds].to_numpy())
            fam.add(label(pred, k), t["pvalue"], metric=name, predictor=pred, n_samples=k,
                    **{key: v for key, v in t.items() if key != "pvalue"})
        out.append(fam.table())
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


@STUDY.block("mnist-trained-recipe")
def recipe_block(df: pd.DataFrame) -> str:
    """The networks: architecture, examples, seeds, epochs run, test error of each network."""
    d = labels(df)
    base = d[d.predictor == "plain"]
    scaled = d[d.predictor == REFERENCE]
    row = [d.architecture.iloc[0], str(d.pixels.iloc[0]), f"{d.keep_prob.iloc[0]:g}",
           f"{d.input_keep_prob.iloc[0]:g}", str(int(d.n_train.iloc[0])),
           str(int(d.n_test.iloc[0])), str(d.seed.nunique()),
           num(float(base.epochs_run.median())), num(float(scaled.epochs_run.median())),
           ci(*stats.t_interval(base.error.to_numpy())),
           ci(*stats.t_interval(scaled.error.to_numpy()))]
    return ("The pairs: two ReLU hidden layers of width round(base_width / keep_prob), "
            "inverted dropout on both and on the inputs; pixels: unit (grey levels / 255) or "
            "standardised (per pixel, on the training split); epochs run before early stopping "
            "(median over seeds, the patience included); test error, mean over seeds "
            "[t 95% CI].\n\n"
            + table(["architecture", "pixels", "keep_prob", "input keep_prob", "training examples "
                     "(validation included)", "test examples", "seeds", "epochs, baseline",
                     "epochs, dropout", "error, baseline", "error, dropout scaled pass"],
                    [row]))


def paired_sentences(df: pd.DataFrame) -> list[str]:
    """The verdicts of the family ``mnist_trained: dropout vs baseline``."""
    out = dropout_vs_baseline(df)
    lines = []
    for m in PAIRED_METRICS:
        r = out[(out.predictor == REFERENCE) & (out.metric == m)]
        if r.empty:
            continue
        r = r.iloc[0]
        interval = ci(r.mean_difference, r.low, r.high)
        if r.survives and r.mean_difference > 0:
            lines.append(f"The dropout network's scaled pass has a lower {METRIC_NAMES[m]} "
                         f"than its no-dropout baseline: baseline minus dropout {interval} "
                         f"(paired t, n = {r.n} seeds, Holm p = {num(r.holm, 2)}).")
        elif r.survives:
            lines.append(f"The no-dropout baseline has a lower {METRIC_NAMES[m]} than the "
                         f"dropout network's scaled pass: baseline minus dropout {interval} "
                         f"(paired t, n = {r.n} seeds, Holm p = {num(r.holm, 2)}).")
        else:
            lines.append(f"On {METRIC_NAMES[m]}, dropout's scaled pass and the no-dropout "
                         f"baseline do not differ after Holm: baseline minus dropout "
                         f"{interval} (paired t, n = {r.n} seeds, Holm p = "
                         f"{num(r.holm, 2)}).")
    return lines


@STUDY.block("mnist-trained-paired")
def paired_block(df: pd.DataFrame) -> str:
    """Baseline minus dropout per dropout predictor on error and NLL, and the verdicts."""
    out = dropout_vs_baseline(df)
    rows = []
    for lab, g in out.groupby("label", sort=False):
        cells = []
        for m in PAIRED_METRICS:
            r = g[g.metric == m].iloc[0]
            mark = "*" if r.survives is True or r.survives == 1.0 else ""
            cells.append(f"{ci(r.mean_difference, r.low, r.high)}{mark}")
        rows.append([lab, *cells])
    return ("Baseline minus dropout, mean over seeds of the paired difference [t 95% CI]; "
            "positive: the dropout network's predictor scores better. The declared family is "
            "the scaled pass on error and NLL (2 claims, Holm); `*`: survives it. The other "
            "rows are intervals, not claims.\n\n"
            + table(["dropout predictor", *(METRIC_NAMES[m] for m in PAIRED_METRICS)], rows)
            + "\n\n" + "\n".join(f"- {s}" for s in paired_sentences(df)))


@STUDY.block("mnist-trained-scores")
def scores_block(df: pd.DataFrame) -> str:
    """Every predictor's label scores, mean over seeds [t 95% CI]."""
    s = summary(df, "labels", LABEL_COLUMNS)
    rows = []
    for lab, g in s.groupby("label", sort=False):
        rows.append([lab, *(ci(r["mean"], r.low, r.high) for r in
                            (g[g.metric == m].iloc[0] for m in LABEL_COLUMNS))])
    return ("Scores on the test labels, mean over seeds [t 95% CI] (lower is better on "
            "all four).\n\n"
            + table(["predictor", *(METRIC_NAMES[m] for m in LABEL_COLUMNS)], rows))


def resolution(df: pd.DataFrame) -> pd.DataFrame:
    """Per reference and predictor: seeds, seeds whose reference resolves the gap
    (``resolved``), the mean share of resolved coordinates, and the mean half-width."""
    rows = []
    for ref in REFERENCE_PREDICTOR:
        d = against(df, ref)
        for pred, k in _keys(d):
            g = d[(d.predictor == pred) & (d.n_samples == k)]
            rows.append({"reference": ref, "predictor": pred, "n_samples": k,
                         "label": label(pred, k), "n": len(g),
                         "resolved": int(g.resolved.astype(bool).sum()),
                         "resolved_share": float(g.resolved_share.mean()),
                         "ref_half_width": float(g.ref_half_width.mean())})
    return pd.DataFrame(rows)


@STUDY.block("mnist-trained-distances")
def distances_block(df: pd.DataFrame) -> str:
    """Each predictor's distance to the certified mean and NWGM, with the reference's
    half-width and whether it resolves the gap."""
    parts = []
    res = resolution(df)
    cols = ["total_variation", "kl", "mean_abs_gap"]
    for ref in REFERENCE_PREDICTOR:
        s = summary(df, ref, cols)
        r = res[res.reference == ref].set_index("label")
        rows = []
        for lab, g in s.groupby("label", sort=False):
            rows.append([lab, *(ci(x["mean"], x.low, x.high) for x in
                                (g[g.metric == m].iloc[0] for m in cols)),
                         num(r.loc[lab, "ref_half_width"]),
                         f"{r.loc[lab, 'resolved']}/{r.loc[lab, 'n']}",
                         num(r.loc[lab, "resolved_share"])])
        parts.append(f"Against the {REFERENCE_NAMES[ref]}:\n\n"
                     + table(["predictor", *(METRIC_NAMES[m] for m in cols),
                              "reference half-width", "seeds resolved",
                              "coordinates resolved"], rows))
    bad = res[res.resolved < res.n]
    if bad.empty:
        verdict = (f"On every seed the reference's mean half-width is at most "
                   f"{RESOLUTION:g} of the mean absolute gap, for every predictor and both "
                   f"references: the reference's own uncertainty does not blur these gaps.")
    else:
        verdict = ("Where the reference's mean half-width exceeds "
                   f"{RESOLUTION:g} of the mean absolute gap on some seeds (the gap is not "
                   "resolved: read its distance as an upper bound of order the half-width, "
                   "not as a measurement): "
                   + "; ".join(f"{r.label} against the {REFERENCE_NAMES[r.reference]} "
                               f"({r.n - r.resolved}/{r.n} seeds)" for r in bad.itertuples())
                   + ".")
    return ("Distance of each dropout predictor to the certified ensemble, means over the "
            "test examples, then mean over seeds [t 95% CI]. *Reference half-width*: the "
            "certified reference's 95% half-width, mean over examples, classes and seeds. "
            f"*Seeds resolved*: seeds on which that half-width is at most {RESOLUTION:g} of "
            "the mean absolute gap; *coordinates resolved*: the share of (example, class) "
            "coordinates whose half-width is at most a tenth of their own gap, mean over "
            "seeds.\n\n" + "\n\n".join(parts) + "\n\n" + verdict)


@STUDY.block("mnist-trained-vs-scaled")
def vs_scaled_block(df: pd.DataFrame) -> str:
    """Every dropout predictor minus the scaled pass, Holm within each metric's family."""
    fam = vs_scaled(df)
    if fam.empty:
        return "No dropout predictor besides the scaled pass in the table."
    metrics = list(VS_SCALED)
    res = resolution(df).set_index(["reference", "label"])

    def blurred(metric: str, lab: str) -> bool:
        # A distance whose reference does not resolve the predictor's (or the scaled
        # pass's) gap on some seed is partly the reference's own noise.
        ref = VS_SCALED[metric][0]
        if ref == "labels":
            return False
        return any((ref, x) in res.index and res.loc[(ref, x), "resolved"] < res.loc[
            (ref, x), "n"] for x in (lab, PREDICTOR_NAMES[REFERENCE]))

    rows = []
    for lab, g in fam.groupby("key", sort=False):
        cells = []
        for m in metrics:
            r = g[g.metric == m]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            cells.append(f"{ci(r.mean_difference, r.low, r.high)}{'*' if r.survives else ''}"
                         f"{' (u)' if blurred(m, lab) else ''}")
        rows.append([lab, *cells])
    lines = []
    for m in metrics:
        g = fam[fam.metric == m]
        better = g[g.survives & (g.mean_difference < 0)]
        worse = g[g.survives & (g.mean_difference > 0)]
        n = int(g.n.max()) if len(g) else 0
        said = []
        if len(better):
            said.append("lower than the scaled pass: " + "; ".join(
                f"{r.key} {ci(r.mean_difference, r.low, r.high)} (Holm p = {num(r.holm, 2)})"
                for r in better.itertuples()))
        if len(worse):
            said.append("higher than the scaled pass: " + "; ".join(
                f"{r.key} {ci(r.mean_difference, r.low, r.high)} (Holm p = {num(r.holm, 2)})"
                for r in worse.itertuples()))
        if not said:
            said.append(f"no predictor differs from the scaled pass after Holm ({len(g)} "
                        f"comparisons)")
        u = [k for k in g.key if blurred(m, k)]
        if u:
            said.append(f"of these, {len(u)} of {len(g)} are marked (u): partly the "
                        f"reference's noise")
        lines.append(f"{m} (predictor minus scaled pass, paired t over n = {n} seeds): "
                     + "; ".join(said) + ".")
    return ("Predictor minus the scaled pass on the same dropout network, mean over seeds of "
            "the paired difference [t 95% CI]; negative: the predictor scores lower (better "
            "on the labels, closer to the ensemble on the distances). One declared family per "
            "column, every predictor of the column a claim; `*`: survives Holm within it; `(u)`: "
            "on some seed the certified reference does not resolve the gap of this predictor "
            "or of the scaled pass (half-width above a tenth of the gap, see the distances): "
            "the difference compares distances that are partly the reference's own noise.\n\n"
            + table(["predictor", *metrics], rows)
            + "\n\n" + "\n".join(f"- {s}" for s in lines))


@STUDY.figure("mnist_trained")
def plot_mnist_trained(df: pd.DataFrame) -> Figure:
    """Top: every predictor's label scores; bottom: its distances to the certified
    ensemble mean and NWGM; means over seeds with t 95% intervals."""
    fig, axes = new_figure(2, 4, width=2.9, height=3.3)
    s = summary(df, "labels", LABEL_COLUMNS)
    labs = list(dict.fromkeys(s.label))
    for j, m in enumerate(LABEL_COLUMNS):
        ax = axes[0, j]
        g = s[s.metric == m].set_index("label").reindex(labs)
        y = np.arange(len(labs))
        colors = ["black" if lab == PREDICTOR_NAMES["plain"] else "tab:blue" for lab in labs]
        for yi, (_, r) in zip(y, g.iterrows()):
            ax.errorbar(r["mean"], yi, xerr=[[r["mean"] - r.low], [r.high - r["mean"]]],
                        fmt="o", ms=4, color=colors[yi])
        ax.set_yticks(y, labs if j == 0 else [""] * len(labs), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(METRIC_NAMES[m], fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3, axis="x")
    cols = ["total_variation", "kl", "mean_abs_gap"]
    styles = {"mean": ("tab:red", "o", -0.15), "nwgm": ("tab:purple", "s", 0.15)}
    dist = {ref: summary(df, ref, cols) for ref in REFERENCE_PREDICTOR}
    labs = list(dict.fromkeys(pd.concat(list(dist.values())).label))
    labs = [lab for lab in [label(p, k) for p, k in _keys(labels(df))] if lab in labs]
    res = resolution(df)
    for j, m in enumerate(cols):
        ax = axes[1, j]
        for ref, d in dist.items():
            color, marker, off = styles[ref]
            g = d[d.metric == m].set_index("label").reindex(labs)
            y = np.arange(len(labs)) + off
            ax.errorbar(g["mean"], y, xerr=[g["mean"] - g.low, g.high - g["mean"]], fmt=marker,
                        ms=4, color=color, label=f"to the {REFERENCE_NAMES[ref]}")
            if m == "mean_abs_gap":
                hw = res[res.reference == ref].set_index("label").reindex(labs).ref_half_width
                ax.plot(hw, y, "|", color=color, ms=8, alpha=0.6)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges
        ax.set_yticks(np.arange(len(labs)), labs if j == 0 else [""] * len(labs), fontsize=8)
        ax.invert_yaxis()
        title = METRIC_NAMES[m] + ("\n(|: reference half-width)" if m == "mean_abs_gap" else "")
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3, axis="x")
    ax = axes[1, 3]
    for ref in REFERENCE_PREDICTOR:
        color, marker, off = styles[ref]
        g = res[res.reference == ref].set_index("label").reindex(labs)
        ax.plot(g.resolved_share, np.arange(len(labs)) + off, marker, color=color, ms=5)
    ax.set_xlim(-0.05, 1.05)
    ax.set_yticks(np.arange(len(labs)), [""] * len(labs))
    ax.invert_yaxis()
    ax.set_title(f"coordinates resolved\n(half-width <= {RESOLUTION:g} gap)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(alpha=0.3, axis="x")
    fig.legend(*axes[1, 0].get_legend_handles_labels(), loc="outside lower center", ncols=2,
               fontsize=8, frameon=False)
    d = labels(df)
    fig.suptitle(f"Trained {d.architecture.iloc[0]} dropout networks on MNIST "
                 f"({d.seed.nunique()} seeds): scores on the labels (top) and distances to the "
                 "certified ensemble (bottom)\nmean over seeds, bars: t 95% CI", fontsize=9)
    return fig


@STUDY.figure("mnist_trained_reliability")
def plot_mnist_trained_reliability(df: pd.DataFrame) -> Figure:
    """Reliability diagram: accuracy against top-label confidence, 15 equal-width bins
    pooled over seeds, one line per predictor (the helps study's), its mean ECE over seeds
    in the legend; left the whole range, right the confident bins where most examples are."""
    rel, per = reliability(df), labels(df)
    fig, axes = new_figure(1, 2, width=4.4, height=4.4)
    for ax, lo in zip(axes[0], (0.0, 0.8)):
        ax.plot([0, 1], [0, 1], color="k", lw=1, ls=":", label="calibrated")
        for name, k in RELIABILITY_LINES:
            g = rel[rel.predictor == name]
            if g.empty:
                continue
            k = int(g.n_samples.max()) if k is None else k
            b = pooled_bins(g[g.n_samples == k])
            ece = per.loc[(per.predictor == name) & (per.n_samples == k), "ece"].mean()
            color, marker = RELIABILITY_STYLE[name]
            ax.plot(b.confidence, b.accuracy, color=color, marker=marker, markersize=4, lw=1.2,
                    label=f"{label(name, k)} (ECE {ece:.3f})")
        ax.set_xlim(lo, 1)
        ax.set_ylim(lo, 1)
        ax.set_xlabel("top-label confidence")
        ax.set_ylabel("accuracy")
        ax.set_title("every bin" if lo == 0 else f"confidence above {lo:g}", fontsize=10)
        ax.grid(True, alpha=0.3)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    d = labels(df)
    fig.suptitle(f"Reliability of the trained {d.architecture.iloc[0]} networks on MNIST "
                 f"({d.seed.nunique()} seeds)\n15 equal-width confidence bins pooled over "
                 f"seeds, bins of {RELIABILITY_MIN_COUNT}+ examples drawn; ECE: mean over "
                 "seeds", fontsize=10)
    return fig
