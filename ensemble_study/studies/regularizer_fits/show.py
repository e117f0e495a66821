"""The regularizer_fits study's figure and documentation blocks, from its saved table only.

The claims are declared as :class:`ensemble_study.stats.Family` objects here, before
any p-value is seen: every method against exact-dropout training on every dataset and
metric (one family), and the rare-feature comparisons (another); only the claims
that survive Holm's correction within their family are stated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from ... import stats
from ...plots import new_figure
from ...report import ci, num, table
from . import L2_GRID, METHODS, STUDY

LABELS = {"exact": "exact dropout", "quadratic": "Wager's R^q", "gaussian": "Gaussian",
          "l2": "validated L2", "fisher_ridge": "Fisher-frozen ridge", "sgd": "dropout SGD"}
COLORS = {"exact": "k", "quadratic": "tab:red", "gaussian": "tab:blue", "l2": "tab:orange",
          "fisher_ridge": "tab:purple", "sgd": "tab:green"}
METRICS = {"test_error": ("test error", "difference"), "test_nll": ("test NLL (nats)",
                                                                       "difference"),
           "weight_norm": ("weight norm", "ratio")}
RARE = "rare_features"
PENALISED = ("exact", "quadratic", "gaussian", "fisher_ridge")
FITTED = ("exact", "quadratic", "gaussian", "fisher_ridge", "sgd")
ALPHA = 0.05
# The methods' names inside sentences ("the R^q fit", "the R^q penalty").
SENT = {"exact": "exact-dropout", "quadratic": "R^q", "gaussian": "Gaussian",
        "l2": "validated-L2", "fisher_ridge": "Fisher-frozen ridge", "sgd": "dropout-SGD"}


def _methods(df):
    return [m for m in METHODS if m in set(df.method)]


def _paired(df, dataset, method, metric):
    """``metric`` of ``method`` and of the exact fit, paired by split (finite pairs only)."""
    g = df[df.dataset == dataset].pivot(index="split", columns="method", values=metric)
    g = g[[method, "exact"]].dropna()
    return g[method].to_numpy(float), g["exact"].to_numpy(float)


def _geo(values) -> tuple[float, float, float]:
    m, lo, hi = stats.t_interval(np.log(np.asarray(values, dtype=float)))
    return float(np.exp(m)), float(np.exp(lo)), float(np.exp(hi))


def _mean_ci(values) -> str:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return ci(*stats.t_interval(v)) if v.size >= 2 else "n/a"


def comparison_family(df: pd.DataFrame) -> stats.Family:
    """Every method against exact dropout, per dataset and metric, paired over splits."""
    fam = stats.Family("regularizer_fits: each method against exact-dropout training "
                       "(paired t over splits)", alpha=ALPHA)
    for dataset in sorted(df.dataset.unique()):
        for method in _methods(df):
            if method == "exact":
                continue
            for metric, (words, kind) in METRICS.items():
                a, b = _paired(df, dataset, method, metric)
                if a.size < 2:
                    continue
                if kind == "ratio":
                    r = stats.paired_t(np.log(a), np.log(b))
                    est = ci(*np.exp([r["mean_difference"], r["low"], r["high"]]))
                    side = "larger" if r["mean_difference"] > 0 else "smaller"
                    text = (f"On {dataset}, the {SENT[method]} fit's {words} is {side} than "
                            f"the exact-dropout fit's: ratio {est} (geometric mean over "
                            f"{r['n']} splits, paired t-interval).")
                else:
                    r = stats.paired_t(a, b)
                    est = ci(r["mean_difference"], r["low"], r["high"])
                    side = "higher" if r["mean_difference"] > 0 else "lower"
                    text = (f"On {dataset}, the {SENT[method]} fit's {words} is {side} than "
                            f"the exact-dropout fit's: difference {est} (mean over {r['n']} "
                            f"splits, paired t-interval).")
                fam.add(f"{dataset}/{method}/{metric}", r["pvalue"], text)
    return fam


def rare_family(df: pd.DataFrame) -> stats.Family:
    """On the simulation: does each penalty pull less on the rare features than on the
    common ones (per unit squared weight), and do the fits weight rare features more
    than validated L2 does?"""
    fam = stats.Family("regularizer_fits: rare against common features (rare_features)",
                       alpha=ALPHA)
    sim = df[df.dataset == RARE]
    l2 = sim[sim.method == "l2"].set_index("split")
    for method in PENALISED:
        g = sim[sim.method == method].set_index("split")
        ratio = (g.pull_rare / g.pull_common).dropna().to_numpy(float)
        if len(ratio) >= 2:
            m, lo, hi = stats.t_interval(ratio)
            side = "less" if m < 1 else "more"
            fam.add(f"pull/{method}", stats.t_test_mean(ratio, 1.0),
                    f"At the validated-L2 weights, the {SENT[method]} penalty pulls {side} "
                    f"on the rare features than on the common ones per unit squared weight: "
                    f"rare/common {ci(m, lo, hi)} (mean over {len(ratio)} draws, t-interval; "
                    f"L2's is 1; below 0 the penalty falls as the rare weights grow).")
    for method in FITTED:
        g = sim[sim.method == method].set_index("split")
        w = (g.weight_rare / g.weight_common)
        w0 = (l2.weight_rare / l2.weight_common)
        both = pd.concat([w, w0], axis=1).dropna()
        if len(both) >= 2:
            r = stats.paired_t(np.log(both.iloc[:, 0]), np.log(both.iloc[:, 1]))
            side = "more" if r["mean_difference"] > 0 else "less"
            fam.add(f"weights/{method}", r["pvalue"],
                    f"The {SENT[method]} fit puts {side} weight on the rare features, "
                    f"relative to the common ones, than validated L2 does: (mean |beta| rare / "
                    f"common) over L2's is "
                    f"{ci(*np.exp([r['mean_difference'], r['low'], r['high']]))} (geometric "
                    f"mean over {r['n']} draws, paired t-interval).")
    return fam


def _survivors(fam: stats.Family) -> list[str]:
    t = fam.table()
    lines = [f"- Family *{fam.name}*: {len(t)} claims declared, Holm-corrected within the "
             f"family at {ALPHA:g}; {int(t.survives.sum())} survive and are stated, the "
             f"others are not claims."]
    return lines + [f"- {s}" for s in fam.sentences()]


@STUDY.block("regularizer-fits-table")
def fits_table(df: pd.DataFrame) -> str:
    rows = []
    for dataset in sorted(df.dataset.unique()):
        d = df[df.dataset == dataset]
        for method in _methods(d):
            g = d[d.method == method]
            rows.append([dataset, LABELS[method], _mean_ci(g.test_error), _mean_ci(g.test_nll),
                         ci(*_geo(g.weight_norm)), _mean_ci(g.cosine_exact),
                         _mean_ci(g.dropout_loss),
                         f"{int(g.converged.astype(bool).sum())}/{len(g)}"])
    n = df.split.nunique()
    lam = df[df.method == "l2"].groupby("dataset").l2.median()
    return (f"Each fit's test error and test NLL (mean over {n} splits [95% t-interval]), its "
            f"weight norm (geometric mean [t-interval of the mean log]), the cosine between "
            f"its weights and the exact-dropout fit's, and its exact expected dropout loss on "
            f"the training set per example (the objective the exact fit minimises); "
            f"keep_prob {df.keep_prob.iloc[0]:g}, {df.n_train.iloc[0]} training examples; "
            f"`converged`: fits whose optimiser reported convergence (the exact fit does "
            f"not when its integral cannot reach its accuracy at a trial step). "
            f"Validated L2's chosen strength (median over splits; the grid runs from "
            f"{L2_GRID[0]:g} to {L2_GRID[-1]:g}): "
            + ", ".join(f"{k} {num(v)}" for k, v in lam.items()) + ".\n\n"
            + table(["dataset", "method", "test error", "test NLL", "weight norm",
                     "cosine with exact", "dropout loss", "converged"], rows))


@STUDY.block("regularizer-fits-claims")
def fits_claims(df: pd.DataFrame) -> str:
    lines = _survivors(comparison_family(df))
    ex = df[(df.method == "exact") & np.isfinite(df.R_exact) & (df.R_quadratic > 0)]
    for dataset, g in ex.groupby("dataset"):
        lines.append(f"- At the exact-dropout solution on {dataset}, the exact regularizer is "
                     f"{ci(*_geo(g.R_exact / g.R_quadratic))} times R^q (geometric mean over "
                     f"{len(g)} splits, t-interval), with largest per-feature contribution "
                     f"max |x_j beta_j|/q {ci(*_geo(g.max_contribution))}.")
    fr = df[df.method == "fisher_ridge"]
    for dataset, g in fr.groupby("dataset"):
        lines.append(f"- The ridge with the diagonal Fisher frozen at the exact solution has "
                     f"cosine {_mean_ci(g.cosine_exact)} with it on {dataset} (mean over "
                     f"{len(g)} splits, t-interval).")
    qd = df[df.method == "quadratic"]
    for dataset, g in qd.groupby("dataset"):
        ex_nll = df[(df.dataset == dataset) & (df.method == "exact")].train_nll
        lines.append(f"- The R^q fit's training NLL on {dataset} is {_mean_ci(g.train_nll)} "
                     f"nats per example, against {_mean_ci(ex_nll)} for the exact fit (means "
                     f"over splits, t-intervals).")
    return "\n".join(lines)


@STUDY.block("regularizer-fits-rare")
def rare_block(df: pd.DataFrame) -> str:
    sim = df[df.dataset == RARE]
    if sim.empty:
        return "The rare-feature simulation is not in this table."
    rows = []
    for method in _methods(sim):
        g = sim[sim.method == method]
        rows.append([LABELS[method], _mean_ci(g.pull_rare / g.pull_common),
                     ci(*_geo(g.weight_rare / g.weight_common)),
                     _mean_ci(g.test_error_rare), _mean_ci(g.test_error), _mean_ci(g.test_nll)])
    return (f"Rare-feature simulation ({sim.n_features.iloc[0]} features: 10 rare, active "
            f"in 10% of examples and then equal to the label's sign, flipped with probability "
            f"0.1; 20 common, N(0.25 s, 1); {sim.n_train.iloc[0]} training examples, "
            f"{sim.split.nunique()} draws). `pull` is a penalty's `sum_j g_j beta_j / sum_j "
            f"beta_j^2` over a group at the validated-L2 weights (g its gradient; lam for "
            f"L2; dropout SGD's penalty is the exact one), rare over common, mean "
            f"[t-interval]; a negative pull means the penalty falls as those weights grow. "
            f"Rare features that separate their own active training examples (along "
            f"which the exact dropout loss only falls): "
            f"{_mean_ci(sim[sim.method == 'exact'].n_rare_separating)} of 10 per draw. "
            f"`weight` is mean |beta_j| rare over common. Test error on the test examples "
            f"with a rare feature active, and overall (means [t-intervals]).\n\n"
            + table(["method", "pull rare/common", "weight rare/common",
                     "test error (rare active)", "test error", "test NLL"], rows)
            + "\n\n" + "\n".join(_survivors(rare_family(df))))


MARKERS = "os^Dvp<>"  # one per dataset: five pairs and the simulation fit without repeats


@STUDY.figure("regularizer_fits")
def figure(df: pd.DataFrame):
    fig, axes = new_figure(1, 3, width=3.7, height=4.4)
    datasets = sorted(df.dataset.unique())
    methods = _methods(df)
    ax = axes[0, 0]
    spread = 0.8 / len(datasets)  # a method's datasets side by side within its slot
    for k, dataset in enumerate(datasets):
        for i, method in enumerate(methods):
            v = df[(df.dataset == dataset) & (df.method == method)].test_nll.to_numpy(float)
            m, lo, hi = stats.t_interval(v)
            x = i + (k - (len(datasets) - 1) / 2) * spread
            ax.errorbar([x], [m], yerr=[[m - lo], [hi - m]], fmt=MARKERS[k % len(MARKERS)],
                        color=COLORS[method], markersize=5, capsize=2,
                        label=dataset if i == 0 else None, markerfacecolor="white"
                        if k % 2 else COLORS[method])
    ax.set_xticks(range(len(methods)), [LABELS[m] for m in methods], rotation=40, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("test NLL (nats), mean and 95% CI")
    # below the panels: inside, six entries would cover the intervals
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=len(datasets),
               fontsize=8, frameon=False, title="datasets (markers in the left and middle "
               "panels)", title_fontsize=8)
    ax.grid(True, alpha=0.3)
    ax = axes[0, 1]
    for method in methods:
        for k, dataset in enumerate(datasets):
            g = df[(df.method == method) & (df.dataset == dataset)]
            ax.scatter(g.weight_norm, g.cosine_exact, s=14, alpha=0.7, color=COLORS[method],
                       marker=MARKERS[k % len(MARKERS)],
                       label=LABELS[method] if k == 0 else None)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title("markers: datasets (below)", fontsize=9)
    ax.set_xlabel("weight norm |beta|")
    ax.set_ylabel("cosine with the exact-dropout fit")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(True, alpha=0.3)
    ax = axes[0, 2]
    sim = df[df.dataset == RARE]
    others = [m for m in methods if m in PENALISED]
    for i, method in enumerate(others):
        g = sim[sim.method == method]
        s = (g.pull_rare / g.pull_common).dropna().to_numpy(float)
        if len(s) >= 2:
            m, lo, hi = stats.t_interval(s)
            ax.errorbar([i], [m], yerr=[[m - lo], [hi - m]], fmt="o", color=COLORS[method],
                        capsize=2)
    ax.axhline(1.0, color=COLORS["l2"], linewidth=1, label="validated L2 (= 1)")
    ax.axhline(0.0, color="k", linewidth=0.6)
    ax.set_xticks(range(len(others)), [LABELS[m] for m in others], rotation=40, ha="right")
    ax.set_ylabel("pull at the L2 weights, rare / common")
    ax.set_title("rare-feature simulation", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(True, alpha=0.3)
    fig.suptitle(f"Logistic regression fitted six ways (keep_prob {df.keep_prob.iloc[0]:g})",
                 fontsize=10)
    return fig
