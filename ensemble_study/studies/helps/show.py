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
from . import METRIC_COLUMNS, STUDY

METRIC_NAMES = {"error": "test error", "nll": "test NLL", "brier": "Brier score",
                "ece": "ECE (15 bins)"}
PREDICTOR_NAMES = {"scaled": "scaled pass", "mc": "MC dropout", "moment_propagation":
                   "moment propagation", "exact": "exact ensemble mean", "nwgm": "exact NWGM",
                   "certified": "ensemble mean (certified)"}
ORDER = ["scaled", "exact", "nwgm", "certified", "moment_propagation", "mc"]


def _label(predictor: str, k: int) -> str:
    name = PREDICTOR_NAMES.get(predictor, predictor)
    return f"{name}, K = {k}" if predictor == "mc" else name


def paired_differences(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, keep_prob, dropout predictor and metric: baseline minus dropout.

    Returns one row each with ``n`` (seeds), ``mean_difference``, ``low``,
    ``high`` (t-interval) and the paired t-test's ``pvalue``.
    """
    rows = []
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
    diffs = paired_differences(df)
    out = []
    for (ds, m), g in diffs.groupby(["dataset", "metric"], sort=False):
        fam = stats.Family(f"helps: {ds}, {METRIC_NAMES[m]}, baseline minus dropout")
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
                 "better)\nmean over seeds, bars: t 95% CI", fontsize=9)
    return fig
