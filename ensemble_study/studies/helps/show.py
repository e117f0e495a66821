"""The helps study's figure and documentation blocks, from its saved table only.

Every comparison is the paired difference *baseline minus dropout* over seeds
(the same split, training examples and initial weights): positive means the
dropout network's predictor scores lower (better) than the no-dropout
baseline on that metric. Intervals are Student-t over seeds; claims are
tested in one :class:`~ensemble_study.stats.Family` per (dataset, metric),
with Holm's correction within it, and stated only where they survive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ... import stats
from ...plots import new_figure
from ...report import ci, num, table
from . import METRIC_COLUMNS, STUDY, reliability, scores

METRIC_NAMES = {"error": "test error", "nll": "test NLL", "brier": "Brier score",
                "ece": "ECE (15 bins)"}
PREDICTOR_NAMES = {"scaled": "scaled pass", "mc": "MC dropout", "moment_propagation":
                   "moment propagation", "exact": "exact ensemble mean", "nwgm": "exact NWGM",
                   "certified": "ensemble mean (certified)",
                   "certified_nwgm": "NWGM (certified)", "plain": "no-dropout baseline"}
ORDER = ["scaled", "exact", "nwgm", "certified", "certified_nwgm", "moment_propagation", "mc"]
# Predictors added after the baseline comparison was committed: left out of its families
# (helps-paired, helps-claims, the helps figure) so that those claims keep their Holm
# family; they are compared with the scaled pass in helps-deploy.
NOT_AGAINST_BASELINE = ("certified_nwgm",)


def _label(predictor: str, k: int) -> str:
    name = PREDICTOR_NAMES.get(predictor, predictor)
    return f"{name}, K = {k}" if predictor == "mc" else name


def paired_differences(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, keep_prob, dropout predictor and metric: baseline minus dropout.

    Returns one row each with ``n`` (seeds), ``mean_difference``, ``low``,
    ``high`` (t-interval) and the paired t-test's ``pvalue``.
    """
    rows = []
    df = scores(df)
    df = df[~df.predictor.isin(NOT_AGAINST_BASELINE)]
    for (ds, q), g in df.groupby(["dataset", "keep_prob"], sort=False):
        base = g[g.network == "baseline"].set_index("seed")
        drop = g[g.network == "dropout"]
        keys = sorted({(p, int(k)) for p, k in zip(drop.predictor, drop.n_samples)},
                      key=lambda t: (ORDER.index(t[0]) if t[0] in ORDER else 99, t[1]))
        for pred, k in keys:
            d = drop[(drop.predictor == pred) & (drop.n_samples == k)].set_index("seed")
            seeds = d.index.intersection(base.index)
            for m in METRIC_COLUMNS:
                if len(seeds) < 2:
                    continue
                t = stats.paired_t(base.loc[seeds, m].to_numpy(), d.loc[seeds, m].to_numpy())
                rows.append({"dataset": ds, "keep_prob": q, "predictor": pred, "n_samples": k,
                             "label": _label(pred, k), "metric": m, **t})
    return pd.DataFrame(rows)


def families(df: pd.DataFrame) -> pd.DataFrame:
    """Holm within each (dataset, metric): every keep_prob and predictor compared is a claim."""
    return _holm_per_dataset_metric(paired_differences(df), "helps: {ds}, {metric}, "
                                    "baseline minus dropout")


def _holm_per_dataset_metric(diffs: pd.DataFrame, title: str) -> pd.DataFrame:
    """One declared family per (dataset, metric) of the paired differences ``diffs``
    (one claim per keep_prob and predictor), Holm within it; ``title`` names it."""
    out = []
    for (ds, m), g in diffs.groupby(["dataset", "metric"], sort=False):
        fam = stats.Family(title.format(ds=ds, metric=METRIC_NAMES[m]))
        for r in g.itertuples():
            fam.add(f"{r.keep_prob:g} {r.label}", r.pvalue, dataset=ds, metric=m,
                    keep_prob=r.keep_prob, label=r.label, predictor=r.predictor,
                    mean_difference=r.mean_difference, low=r.low, high=r.high, n=r.n)
        out.append(fam.table())
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def verdicts(df: pd.DataFrame) -> list[str]:
    """The sentences that survive Holm, and per dataset the honest negative where none does."""
    fam = families(df)
    lines = []
    for ds, g in fam.groupby("dataset", sort=False):
        helps = g[g.survives & (g.mean_difference > 0)]
        hurts = g[g.survives & (g.mean_difference < 0)]
        for r in helps.itertuples():
            lines.append(f"On {ds} at keep_prob {r.keep_prob:g}, the dropout network's "
                         f"{r.label} has a lower {METRIC_NAMES[r.metric]} than the no-dropout "
                         f"baseline: baseline minus dropout {ci(r.mean_difference, r.low, r.high)}"
                         f" (paired t, n = {r.n} seeds, Holm p = {num(r.holm, 2)}).")
        for r in hurts.itertuples():
            lines.append(f"On {ds} at keep_prob {r.keep_prob:g}, the no-dropout baseline has a "
                         f"lower {METRIC_NAMES[r.metric]} than the dropout network's {r.label}: "
                         f"baseline minus dropout {ci(r.mean_difference, r.low, r.high)} "
                         f"(paired t, n = {r.n} seeds, Holm p = {num(r.holm, 2)}).")
        for m in METRIC_COLUMNS:
            gm = g[g.metric == m]
            if gm.empty or (gm.survives & (gm.mean_difference > 0)).any():
                continue
            lines.append(f"On {ds}, dropout does not beat the no-dropout baseline on "
                         f"{METRIC_NAMES[m]}: no predictor at any keep_prob survives Holm "
                         f"({len(gm)} comparisons).")
    return lines


@STUDY.block("helps-recipe")
def helps_recipe(df: pd.DataFrame) -> str:
    """Per dataset and keep_prob: architecture, training examples, epochs run, test error."""
    rows = []
    df = scores(df)
    for (ds, q), g in df.groupby(["dataset", "keep_prob"], sort=False):
        base = g[g.network == "baseline"]
        scaled = g[g.predictor == "scaled"]
        rows.append([ds, f"{q:g}", g.architecture.iloc[0], f"{g.input_keep_prob.iloc[0]:g}",
                     str(int(g.n_train.iloc[0])), str(g.seed.nunique()),
                     num(float(base.epochs_run.median())), num(float(scaled.epochs_run.median())),
                     ci(*stats.t_interval(base.error.to_numpy())),
                     ci(*stats.t_interval(scaled.error.to_numpy()))])
    return ("The pairs: one ReLU hidden layer of width round(base_width / keep_prob), inverted "
            "dropout; epochs run before early stopping (median over seeds); test error, mean "
            "over seeds [t 95% CI].\n\n"
            + table(["dataset", "keep_prob", "architecture", "input keep_prob", "training "
                     "examples", "seeds", "epochs, baseline", "epochs, dropout",
                     "error, baseline", "error, dropout scaled pass"], rows))


@STUDY.block("helps-paired")
def helps_paired(df: pd.DataFrame) -> str:
    """Baseline minus dropout per predictor and metric, with t-intervals and Holm p."""
    fam = families(df)
    rows = []
    for (ds, q, label), g in fam.groupby(["dataset", "keep_prob", "label"], sort=False):
        cells = []
        for m in METRIC_COLUMNS:
            r = g[g.metric == m].iloc[0]
            mark = "*" if r.survives else ""
            cells.append(f"{ci(r.mean_difference, r.low, r.high)}{mark}")
        rows.append([ds, f"{q:g}", label, *cells])
    return ("Baseline minus dropout, mean over seeds of the paired difference [t 95% CI]; "
            "positive: the dropout predictor scores better. `*`: survives Holm within its "
            "(dataset, metric) family.\n\n"
            + table(["dataset", "keep_prob", "dropout predictor",
                     *(METRIC_NAMES[m] for m in METRIC_COLUMNS)], rows))


@STUDY.block("helps-claims")
def helps_claims(df: pd.DataFrame) -> str:
    """The claims that survive Holm, and the honest negatives."""
    return "\n".join(f"- {s}" for s in verdicts(df))


@STUDY.figure("helps")
def plot_helps(df: pd.DataFrame) -> Figure:
    """Paired differences, baseline minus dropout, per predictor, for error, NLL and ECE."""
    diffs = paired_differences(df)
    metrics = ["error", "nll", "ece"]
    datasets = list(dict.fromkeys(diffs.dataset))
    qs = sorted(diffs.keep_prob.unique())
    colors = dict(zip(qs, ["tab:blue", "tab:red", "tab:green", "tab:purple"]))
    fig, axes = new_figure(len(datasets), len(metrics), width=3.3, height=2.9, sharey="row")
    for i, ds in enumerate(datasets):
        d = diffs[diffs.dataset == ds]
        labels = list(dict.fromkeys(d.label))
        for j, m in enumerate(metrics):
            ax = axes[i, j]
            for n, q in enumerate(qs):
                s = d[(d.metric == m) & (d.keep_prob == q)].set_index("label").reindex(labels)
                y = np.arange(len(labels)) + (n - (len(qs) - 1) / 2) * 0.25
                ax.errorbar(s.mean_difference, y, xerr=[s.mean_difference - s.low,
                                                         s.high - s.mean_difference],
                            fmt="o", ms=4, color=colors[q], label=f"keep_prob {q:g}")
            ax.axvline(0, color="black", lw=0.8)
            ax.set_yticks(np.arange(len(labels)), labels, fontsize=8)
            ax.invert_yaxis()
            ax.set_title(f"{ds}: {METRIC_NAMES[m]}", fontsize=9)
            ax.set_xlabel("baseline minus dropout", fontsize=8)
            ax.tick_params(axis="x", labelsize=8)
            ax.grid(alpha=0.3, axis="x")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center",
               ncols=len(qs), fontsize=8, frameon=False)
    fig.suptitle("Dropout against its paired no-dropout baseline (right of 0: dropout "
                 f"better)\nmean over {int(diffs['n'].max())} seeds, bars: t 95% CI",
                 fontsize=9)
    return fig


# --- Which predictor to deploy on these networks (issue 19) ---------------------------

DEPLOY_REFERENCE = "scaled"
# The reliability figure's lines: (predictor, K; None: the largest K of the table).
RELIABILITY_LINES = [("plain", 0), ("scaled", 0), ("mc", None), ("moment_propagation", 0),
                     ("certified", None), ("certified_nwgm", None)]
RELIABILITY_STYLE = {"plain": ("black", "s"), "scaled": ("tab:blue", "o"),
                     "mc": ("tab:orange", "^"), "moment_propagation": ("tab:green", "D"),
                     "certified": ("tab:red", "v"), "certified_nwgm": ("tab:purple", "P")}
RELIABILITY_MIN_COUNT = 10


def helped(df: pd.DataFrame) -> set:
    """The (dataset, keep_prob) cells whose dropout networks beat their no-dropout baseline
    on test error: some dropout predictor's gain survives Holm in :func:`families`."""
    fam = families(df)
    if fam.empty:
        return set()
    g = fam[(fam.metric == "error") & fam.survives & (fam.mean_difference > 0)]
    return {(r.dataset, r.keep_prob) for r in g.itertuples()}


def deploy_differences(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, keep_prob, dropout predictor and metric: predictor minus scaled pass.

    Paired over seeds (the same dropout network); negative means the predictor
    scores lower (better) than the scaled pass. One row each with ``n``,
    ``mean_difference``, ``low``, ``high`` and the paired t-test's ``pvalue``.
    """
    df = scores(df)
    rows = []
    for (ds, q), g in df.groupby(["dataset", "keep_prob"], sort=False):
        drop = g[g.network == "dropout"]
        ref = drop[drop.predictor == DEPLOY_REFERENCE].set_index("seed")
        keys = sorted({(p, int(k)) for p, k in zip(drop.predictor, drop.n_samples)
                       if p != DEPLOY_REFERENCE},
                      key=lambda t: (ORDER.index(t[0]) if t[0] in ORDER else 99, t[1]))
        for pred, k in keys:
            d = drop[(drop.predictor == pred) & (drop.n_samples == k)].set_index("seed")
            seeds = d.index.intersection(ref.index)
            if len(seeds) < 2:
                continue
            for m in METRIC_COLUMNS:
                t = stats.paired_t(d.loc[seeds, m].to_numpy(), ref.loc[seeds, m].to_numpy())
                rows.append({"dataset": ds, "keep_prob": q, "predictor": pred, "n_samples": k,
                             "label": _label(pred, k), "metric": m, **t})
    return pd.DataFrame(rows)


def deploy_families(df: pd.DataFrame) -> pd.DataFrame:
    """Holm within each (dataset, metric): every keep_prob and predictor against the
    scaled pass is a claim."""
    return _holm_per_dataset_metric(deploy_differences(df), "helps-deploy: {ds}, {metric}, "
                                    "predictor minus scaled pass")


def deploy_verdicts(df: pd.DataFrame) -> list[str]:
    """Per dataset, keep_prob and metric: which predictor to deploy, only where a claim
    survives Holm, and only on networks that beat their no-dropout baseline."""
    fam = deploy_families(df)
    if fam.empty:
        return []
    good = helped(df)
    lines = []
    for (ds, q), g in fam.groupby(["dataset", "keep_prob"], sort=False):
        if (ds, q) not in good:
            lines.append(f"On {ds} at keep_prob {q:g}, the dropout networks do not beat their "
                         f"no-dropout baseline on test error (no gain survives Holm in "
                         f"helps-claims): no predictor is recommended there.")
            continue
        for m in METRIC_COLUMNS:
            gm = g[g.metric == m]
            if gm.empty:
                continue
            better = gm[gm.survives & (gm.mean_difference < 0)].sort_values("mean_difference")
            worse = gm[gm.survives & (gm.mean_difference > 0)]
            head = f"On {ds} at keep_prob {q:g}, {METRIC_NAMES[m]}: "

            def said(rows):
                return "; ".join(f"{r.label} {ci(r.mean_difference, r.low, r.high)} "
                                 f"(Holm p = {num(r.holm, 2)})" for r in rows.itertuples())

            n = int(gm.n.iloc[0])
            if len(better):
                best = better.iloc[0]
                text = (head + f"deploy the {best.label}: it scores lower than the scaled "
                        f"pass (predictor minus scaled pass, paired t over n = {n} seeds: "
                        f"{said(better)})")
                if len(better) > 1:
                    text += (f"; of the {len(better)} that beat the scaled pass it has the "
                             f"lowest mean, not tested against the others")
            elif len(worse):
                text = (head + f"the scaled pass: no predictor scores lower after Holm, and "
                        f"these score higher (predictor minus scaled pass, paired t over "
                        f"n = {n} seeds): {said(worse)}")
            else:
                text = (head + f"no predictor differs from the scaled pass after Holm "
                        f"({len(gm)} comparisons at this keep_prob): the labels do not "
                        f"choose between them")
            if len(better) and len(worse):
                text += f"; worse than the scaled pass: {said(worse)}"
            lines.append(text + ".")
    return lines


@STUDY.block("helps-deploy")
def helps_deploy(df: pd.DataFrame) -> str:
    """Every dropout predictor against the scaled pass, per metric, and the verdicts."""
    fam = deploy_families(df)
    if fam.empty:
        return "No dropout predictor besides the scaled pass in the table."
    good = helped(df)
    rows = []
    for (ds, q, label), g in fam.groupby(["dataset", "keep_prob", "label"], sort=False):
        cells = []
        for m in METRIC_COLUMNS:
            r = g[g.metric == m]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            cells.append(f"{ci(r.mean_difference, r.low, r.high)}{'*' if r.survives else ''}")
        rows.append([ds, f"{q:g}", "yes" if (ds, q) in good else "no", label, *cells])
    return ("Predictor minus the scaled pass on the same dropout network, mean over seeds of "
            "the paired difference [t 95% CI]; negative: the predictor scores better. `*`: "
            "survives Holm within its (dataset, metric) family (every keep_prob and predictor "
            "of the dataset). *Beats baseline*: the cell's dropout networks have a lower test "
            "error than their no-dropout baseline (a gain that survives in helps-claims).\n\n"
            + table(["dataset", "keep_prob", "beats baseline", "predictor",
                     *(METRIC_NAMES[m] for m in METRIC_COLUMNS)], rows)
            + "\n\n" + "\n".join(f"- {s}" for s in deploy_verdicts(df)))


def _pooled(rel: pd.DataFrame) -> pd.DataFrame:
    """Bins pooled over seeds: count, mean confidence and accuracy weighted by count."""
    b = rel.assign(c=rel.bin_count * rel.bin_confidence, a=rel.bin_count * rel.bin_accuracy)
    b = b.groupby("bin")[["bin_count", "c", "a"]].sum()
    b = b[b.bin_count >= RELIABILITY_MIN_COUNT]
    return pd.DataFrame({"confidence": b.c / b.bin_count, "accuracy": b.a / b.bin_count,
                         "count": b.bin_count})


@STUDY.figure("helps_reliability")
def plot_helps_reliability(df: pd.DataFrame) -> Figure:
    """Reliability diagrams: accuracy against top-label confidence, the 15 equal-width
    bins pooled over seeds; rows: dataset, columns: keep_prob; one line per predictor,
    its mean ECE over seeds in the legend."""
    rel, per = reliability(df), scores(df)
    datasets = list(dict.fromkeys(rel.dataset))
    qs = sorted(rel.keep_prob.unique())[:3]
    good = helped(df)
    fig, axes = new_figure(len(datasets), len(qs), width=4.2, height=4.2)
    for i, ds in enumerate(datasets):
        for j, q in enumerate(qs):
            ax = axes[i, j]
            ax.plot([0, 1], [0, 1], color="k", lw=1, ls=":", label="calibrated")
            sub = rel[(rel.dataset == ds) & (rel.keep_prob == q)]
            sp = per[(per.dataset == ds) & (per.keep_prob == q)]
            eces = []
            for name, k in RELIABILITY_LINES:
                g = sub[sub.predictor == name]
                if g.empty:
                    continue
                k = int(g.n_samples.max()) if k is None else k
                g = g[g.n_samples == k]
                b = _pooled(g)
                ece = sp.loc[(sp.predictor == name) & (sp.n_samples == k), "ece"].mean()
                color, marker = RELIABILITY_STYLE[name]
                label = "no-dropout baseline" if name == "plain" else _label(name, k)
                ax.plot(b.confidence, b.accuracy, color=color, marker=marker, markersize=4,
                        lw=1.2, label=label)
                eces.append((f"{label}: {ece:.3f}", color))
            # Top-label confidence >= accuracy down there is rare: the corner is free.
            ax.text(0.98, 0.02 + 0.055 * len(eces), "mean ECE over seeds", ha="right",
                    va="bottom", fontsize=8, transform=ax.transAxes)
            for n, (text, color) in enumerate(reversed(eces)):
                ax.text(0.98, 0.02 + 0.055 * n, text, color=color, ha="right", va="bottom",
                        fontsize=8, transform=ax.transAxes)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("top-label confidence")
            ax.set_ylabel("accuracy")
            mark = "beats its baseline" if (ds, q) in good else "does not beat its baseline"
            ax.set_title(f"{ds}, keep_prob {q:g}\n(dropout {mark} on test error)", fontsize=10)
            ax.grid(True, alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=9,
               frameon=False)
    fig.suptitle("Reliability of the helps networks' predictors\n15 equal-width confidence "
                 f"bins pooled over seeds, bins of {RELIABILITY_MIN_COUNT}+ examples drawn",
                 fontsize=10)
    return fig
