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
from . import METRIC_COLUMNS, STUDY, distance_rows, reliability, scores

METRIC_NAMES = {"error": "test error", "nll": "test NLL", "brier": "Brier score",
                "ece": "ECE (15 bins)"}
PREDICTOR_NAMES = {"scaled": "scaled pass", "mc": "MC dropout", "moment_propagation":
                   "moment propagation", "exact": "exact ensemble mean", "nwgm": "exact NWGM",
                   "certified": "ensemble mean (certified)",
                   "certified_nwgm": "NWGM (certified)", "plain": "no-dropout baseline",
                   "nwgm_corrected": "NWGM + B&S correction",
                   "nwgm_delta": "NWGM + delta correction"}
ORDER = ["scaled", "exact", "nwgm", "certified", "certified_nwgm", "nwgm_corrected",
         "nwgm_delta", "moment_propagation", "mc"]
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


def pooled_bins(rel: pd.DataFrame) -> pd.DataFrame:
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
                b = pooled_bins(g)
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


# --- Which ensemble does each approximation approximate (issue 19, item 1) -----------

DISTANCE_NAMES = {"total_variation": "TV", "kl": "KL", "mean_abs_gap": "mean absolute gap"}
REFERENCE_NAMES = {"mean": "the ensemble mean", "nwgm": "the NWGM"}
# The distance each reference's half-width bounds (the KL has no such bound).
HALF_WIDTHS = {"total_variation": "reference_tv_half_width",
               "mean_abs_gap": "reference_half_width"}
ENSEMBLES = ("exact", "nwgm", "certified", "certified_nwgm")
ONE_PASS = ("scaled", "moment_propagation")
PRECISION = 0.1
"""A distance is flagged where the bound its reference's intervals put on it exceeds this
share of it, in some seed."""


def _sorted_keys(d: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted({(p, int(k)) for p, k in zip(d.predictor, d.n_samples)},
                  key=lambda t: (ORDER.index(t[0]) if t[0] in ORDER else 99, t[1]))


def _by_seed(d: pd.DataFrame, predictor: str, k: int, reference: str) -> pd.DataFrame:
    return d[(d.predictor == predictor) & (d.n_samples == k)
             & (d.reference == reference)].set_index("seed").sort_index()


def closer_differences(df: pd.DataFrame, metric: str = "total_variation") -> pd.DataFrame:
    """Per dataset, keep_prob and approximation (not the ensembles themselves): its
    distance to the ensemble mean minus its distance to the NWGM, paired over seeds.

    Negative: closer to the mean. One row each with ``n``, ``mean_difference``, ``low``,
    ``high`` and the paired t-test's ``pvalue``.
    """
    rows = []
    for (ds, q), g in distance_rows(df).groupby(["dataset", "keep_prob"], sort=False):
        for pred, k in _sorted_keys(g):
            if pred in ENSEMBLES:
                continue
            a, b = _by_seed(g, pred, k, "mean"), _by_seed(g, pred, k, "nwgm")
            seeds = a.index.intersection(b.index)
            if len(seeds) < 2:
                continue
            t = stats.paired_t(a.loc[seeds, metric].to_numpy(), b.loc[seeds, metric].to_numpy())
            rows.append({"dataset": ds, "keep_prob": q, "predictor": pred, "n_samples": k,
                         "label": _label(pred, k), "metric": metric, **t})
    return pd.DataFrame(rows)


def _families(diffs: pd.DataFrame, title: str) -> pd.DataFrame:
    """One declared family per dataset (every keep_prob and predictor of ``diffs`` a claim),
    Holm within it; ``title`` names it."""
    out = []
    for ds, g in diffs.groupby("dataset", sort=False):
        fam = stats.Family(title.format(ds=ds))
        for r in g.itertuples():
            fam.add(f"{r.keep_prob:g} {r.label}", r.pvalue, dataset=ds, keep_prob=r.keep_prob,
                    label=r.label, predictor=r.predictor, n_samples=r.n_samples,
                    mean_difference=r.mean_difference, low=r.low, high=r.high, n=r.n)
        out.append(fam.table())
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def closer_families(df: pd.DataFrame) -> pd.DataFrame:
    """Holm within each dataset: for every keep_prob and approximation, is its TV to the
    ensemble mean different from its TV to the NWGM?"""
    return _families(closer_differences(df), "helps-distances: {ds}, TV to the ensemble mean "
                     "minus TV to the NWGM")


def closer_verdicts(df: pd.DataFrame) -> list[str]:
    """Which ensemble each approximation is closer to, in TV, where that survives Holm."""
    fam = closer_families(df)
    lines = []
    if fam.empty:
        return lines
    for (ds, q), g in fam.groupby(["dataset", "keep_prob"], sort=False):
        n = int(g.n.max())
        for r in g[g.survives].itertuples():
            near, far = (("the ensemble mean", "the NWGM") if r.mean_difference < 0
                         else ("the NWGM", "the ensemble mean"))
            who = "the scaled pass" if r.predictor == "scaled" else r.label
            lines.append(f"On {ds} at keep_prob {q:g}, {who} is closer in TV to {near} "
                         f"than to {far}: TV to the mean minus TV to the NWGM "
                         f"{ci(r.mean_difference, r.low, r.high)} (paired t, n = {n} seeds, "
                         f"Holm p = {num(r.holm, 2)}).")
        rest = g[~g.survives]
        if len(rest):
            said = "; ".join(f"{r.label} {ci(r.mean_difference, r.low, r.high)} "
                             f"(Holm p = {num(r.holm, 2)})" for r in rest.itertuples())
            lines.append(f"On {ds} at keep_prob {q:g}, TV does not tell which ensemble these "
                         f"are closer to after Holm (TV to the mean minus TV to the NWGM, "
                         f"paired t, n = {n} seeds): {said}.")
    return lines


def _summary(values: np.ndarray) -> str:
    """Mean over seeds [t 95% CI]; an infinite value (a KL against a zero probability) is
    counted, not averaged."""
    v = np.asarray(values, dtype=float)
    bad = ~np.isfinite(v)
    if bad.any():
        return f"inf in {int(bad.sum())} of {v.size} seeds"
    if v.size < 2:
        return num(float(v[0])) if v.size else ""
    return ci(*stats.t_interval(v))


def imprecise(df: pd.DataFrame) -> pd.DataFrame:
    """The distances whose reference is too imprecise to measure them: per dataset,
    keep_prob, predictor, reference and distance (TV, mean absolute gap), the largest
    ratio over seeds of the bound the reference's intervals put on the distance to the
    distance, where it exceeds :data:`PRECISION`."""
    rows = []
    d = distance_rows(df)
    for (ds, q, pred, k, ref), g in d.groupby(["dataset", "keep_prob", "predictor",
                                               "n_samples", "reference"], sort=False):
        for metric, hw in HALF_WIDTHS.items():
            gap, bound = g[metric].to_numpy(float), g[hw].to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(bound > 0, bound / gap, 0.0)
            worst = float(np.max(ratio)) if ratio.size else 0.0
            if worst > PRECISION:
                rows.append({"dataset": ds, "keep_prob": q, "predictor": pred, "n_samples": k,
                             "reference": ref, "metric": metric, "ratio": worst})
    return pd.DataFrame(rows, columns=["dataset", "keep_prob", "predictor", "n_samples",
                                       "reference", "metric", "ratio"])


def precision_sentences(df: pd.DataFrame) -> list[str]:
    """The reference's half-widths, and where they are not at most a tenth of the gap."""
    d = distance_rows(df)
    if d.empty:
        return []
    if not (d[list(HALF_WIDTHS.values())].to_numpy(float) > 0).any():
        return ["The ensembles are enumerated: every distance is exact."]
    lines = []
    for (ds, q), g in d.groupby(["dataset", "keep_prob"], sort=False):
        parts = []
        for ref in ("mean", "nwgm"):
            h = g[g.reference == ref].drop_duplicates("seed")
            if len(h):
                parts.append(f"{REFERENCE_NAMES[ref]} "
                             f"{_summary(h.reference_tv_half_width.to_numpy())}")
        lines.append(f"On {ds} at keep_prob {q:g}, the bound the reference's intervals put on "
                     f"a TV (half the summed half-widths, mean over images; mean over seeds "
                     f"[t 95% CI]): {'; '.join(parts)}.")
    bad = imprecise(df)
    if bad.empty:
        lines.append(f"Every TV and mean absolute gap above is at least {1 / PRECISION:g} "
                     f"times the bound its reference's intervals put on it, in every seed.")
    for (ds, q), g in bad.groupby(["dataset", "keep_prob"], sort=False):
        said = "; ".join(f"{_label(r.predictor, r.n_samples)} to {REFERENCE_NAMES[r.reference]}"
                         f" ({DISTANCE_NAMES[r.metric]}, up to {num(r.ratio, 2)})"
                         for r in g.itertuples())
        lines.append(f"On {ds} at keep_prob {q:g}, the reference's interval is more than a "
                     f"tenth of the distance it measures in some seed (largest bound / "
                     f"distance over seeds), so these distances are not measured to 10%: "
                     f"{said}.")
    lines.append("The KL divergence has no such bound and is not checked.")
    return lines


@STUDY.block("helps-distances")
def helps_distances(df: pd.DataFrame) -> str:
    """Each dropout predictor's distance to the ensemble mean and to the NWGM, which of the
    two it is closer to (Holm per dataset), and the reference's precision."""
    d = distance_rows(df)
    if d.empty:
        return "No distance rows in the table (a table written before they were added)."
    fam = closer_families(df)
    bad = imprecise(df)
    flagged = {(r.dataset, r.keep_prob, r.predictor, r.n_samples, r.reference, r.metric)
               for r in bad.itertuples()}
    rows = []
    for (ds, q), g in d.groupby(["dataset", "keep_prob"], sort=False):
        for pred, k in _sorted_keys(g):
            cells = []
            for metric in ("total_variation", "kl", "mean_abs_gap"):
                for ref in ("mean", "nwgm"):
                    s = _by_seed(g, pred, k, ref)
                    if s.empty:
                        cells.append("(itself)")
                        continue
                    mark = "†" if (ds, q, pred, k, ref, metric) in flagged else ""
                    cells.append(_summary(s[metric].to_numpy()) + mark)
                if metric == "total_variation":
                    f = fam[(fam.dataset == ds) & (fam.keep_prob == q)
                            & (fam.label == _label(pred, k))] if len(fam) else fam
                    cells.append("" if f.empty else
                                 f"{ci(f.mean_difference.iloc[0], f.low.iloc[0], f.high.iloc[0])}"
                                 f"{'*' if f.survives.iloc[0] else ''}")
            rows.append([ds, f"{q:g}", _label(pred, k), *cells])
    n = int(d.seed.nunique())
    return ("Distance of each dropout predictor to the ensemble mean and to the NWGM on the "
            f"test images, mean over seeds [t 95% CI] (n = {n} training seeds): total "
            "variation (TV) and KL(ensemble || predictor), means over images, and the mean "
            "absolute gap over images and classes. *TV, mean minus NWGM*: the paired "
            "difference of the two TVs (negative: closer to the mean); `*`: survives Holm "
            "within its dataset's family (every keep_prob and approximation). `†`: the "
            "reference's intervals bound that distance to no better than a tenth of it in "
            "some seed. The NWGM corrections use moment propagation's variance and the NWGM "
            "estimate; (itself): the ensemble against itself.\n\n"
            + table(["dataset", "keep_prob", "predictor", "TV to mean", "TV to NWGM",
                     "TV, mean minus NWGM", "KL to mean", "KL to NWGM", "abs gap to mean",
                     "abs gap to NWGM"], rows)
            + "\n\n" + "\n".join(f"- {s}" for s in closer_verdicts(df)
                                   + precision_sentences(df)))


def approximation_differences(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and keep_prob: TV to the ensemble mean of moment propagation and of MC
    at each K, minus the scaled pass's, paired over seeds (negative: closer than the
    scaled pass)."""
    rows = []
    for (ds, q), g in distance_rows(df).groupby(["dataset", "keep_prob"], sort=False):
        ref = _by_seed(g, "scaled", 0, "mean")
        for pred, k in _sorted_keys(g):
            if pred not in ("moment_propagation", "mc"):
                continue
            a = _by_seed(g, pred, k, "mean")
            seeds = a.index.intersection(ref.index)
            if len(seeds) < 2:
                continue
            t = stats.paired_t(a.loc[seeds, "total_variation"].to_numpy(),
                               ref.loc[seeds, "total_variation"].to_numpy())
            rows.append({"dataset": ds, "keep_prob": q, "predictor": pred, "n_samples": k,
                         "label": _label(pred, k), "metric": "total_variation", **t})
    return pd.DataFrame(rows)


def approximation_families(df: pd.DataFrame) -> pd.DataFrame:
    """Holm within each dataset: moment propagation and MC at each K against the scaled
    pass, TV to the ensemble mean, at every keep_prob."""
    return _families(approximation_differences(df), "helps-approximations: {ds}, TV to the "
                     "ensemble mean, predictor minus scaled pass")


def approximation_verdicts(df: pd.DataFrame) -> list[str]:
    """Which one-pass method is closest to the ensemble mean, and at which K MC beats the
    scaled pass, where that survives Holm."""
    fam = approximation_families(df)
    lines = []
    if fam.empty:
        return lines

    def said(rows):
        return "; ".join(f"{r.label} {ci(r.mean_difference, r.low, r.high)} "
                         f"(Holm p = {num(r.holm, 2)})" for r in rows.itertuples())

    for (ds, q), g in fam.groupby(["dataset", "keep_prob"], sort=False):
        n = int(g.n.max())
        head = f"On {ds} at keep_prob {q:g}"
        tail = f"(predictor minus scaled pass, TV to the ensemble mean, paired t, n = {n} seeds)"
        mp = g[g.predictor == "moment_propagation"]
        if len(mp):
            r = mp.iloc[0]
            if r.survives:
                best = "moment propagation" if r.mean_difference < 0 else "the scaled pass"
                lines.append(f"{head}, the one-pass method closest to the ensemble mean in TV "
                             f"is {best} {tail}: {said(mp)}.")
            else:
                lines.append(f"{head}, neither one-pass method (scaled pass, moment "
                             f"propagation) is closer to the ensemble mean in TV after Holm "
                             f"{tail}: {said(mp)}.")
        mc = g[g.predictor == "mc"].sort_values("n_samples")
        if mc.empty:
            continue
        ks = ", ".join(str(int(k)) for k in mc.n_samples)
        beats = mc[mc.survives & (mc.mean_difference < 0)]
        if len(beats):
            k0 = int(beats.n_samples.min())
            after = mc[mc.n_samples > k0]
            text = (f"{head}, MC dropout is closer to the ensemble mean in TV than the scaled "
                    f"pass from K = {k0}, the smallest of the K tested ({ks}) at which it is "
                    f"after Holm")
            if len(after) and not (after.survives & (after.mean_difference < 0)).all():
                text = (f"{head}, MC dropout is closer to the ensemble mean in TV than the "
                        f"scaled pass at K = {', '.join(str(int(k)) for k in beats.n_samples)} "
                        f"of the K tested ({ks}), not at every larger K")
        else:
            text = (f"{head}, MC dropout is not closer to the ensemble mean in TV than the "
                    f"scaled pass at any K tested ({ks}) after Holm")
        lines.append(f"{text} {tail}: {said(mc)}.")
    return lines


@STUDY.block("helps-approximations")
def helps_approximations(df: pd.DataFrame) -> str:
    """Moment propagation and MC at each K against the scaled pass, in TV to the mean."""
    fam = approximation_families(df)
    if fam.empty:
        return "No distance rows in the table (a table written before they were added)."
    rows = [[r.dataset, f"{r.keep_prob:g}", r.label,
             f"{ci(r.mean_difference, r.low, r.high)}{'*' if r.survives else ''}",
             num(r.holm, 2)] for r in fam.itertuples()]
    return ("TV to the ensemble mean of the predictor minus that of the scaled pass on the "
            "same dropout network, mean over seeds of the paired difference [t 95% CI]; "
            "negative: the predictor is closer to the mean. `*`: survives Holm within its "
            "dataset's family (every keep_prob, moment propagation and MC at every K).\n\n"
            + table(["dataset", "keep_prob", "predictor", "TV to mean, minus scaled pass's",
                     "Holm p"], rows)
            + "\n\n" + "\n".join(f"- {s}" for s in approximation_verdicts(df)))
