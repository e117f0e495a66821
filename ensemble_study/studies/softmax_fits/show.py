"""The softmax_fits study's figure and documentation blocks, from its saved table only.

One family of claims is declared here before any p-value is seen: every method
against exact-dropout training, on every dataset, on test error, test NLL and weight
norm (paired t over splits); only the claims that survive Holm's correction within the
family are stated. The other blocks print intervals, not tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ... import stats
from ...plots import new_figure
from ...report import ci, num, table
from . import L2_GRID, METHODS, STUDY

LABELS = {"exact": "exact dropout", "quadratic": "Wager's R^q", "l2": "validated L2",
          "fisher_ridge": "Fisher-frozen ridge", "none": "no penalty"}
COLORS = {"exact": "k", "quadratic": "tab:red", "l2": "tab:orange",
          "fisher_ridge": "tab:purple", "none": "tab:gray"}
SENT = {"exact": "exact-dropout", "quadratic": "R^q", "l2": "validated-L2",
        "fisher_ridge": "Fisher-frozen ridge", "none": "unpenalised"}
METRICS = {"test_error": ("test error", "difference"),
           "test_nll": ("test NLL (nats per example)", "difference"),
           "weight_norm": ("weight norm", "ratio")}
ALPHA = 0.05
COMMAND = ("python -m ensemble_study softmax_fits --jobs 2 && python -m ensemble_study "
           "figures && python -m ensemble_study report --document docs/results/softmax_fits.md")


def _methods(df):
    return [m for m in METHODS if m in set(df.method)]


def _others(df):
    return [m for m in _methods(df) if m != "exact"]


def _paired(df, dataset, method, metric):
    """``metric`` of ``method`` and of the exact fit, paired by split (finite pairs only)."""
    g = df[df.dataset == dataset].pivot(index="split", columns="method", values=metric)
    g = g[[method, "exact"]].replace([np.inf, -np.inf], np.nan).dropna()
    return g[method].to_numpy(float), g["exact"].to_numpy(float)


def _geo(values) -> tuple[float, float, float]:
    m, lo, hi = stats.t_interval(np.log(np.asarray(values, dtype=float)))
    return float(np.exp(m)), float(np.exp(lo)), float(np.exp(hi))


def _mean_ci(values) -> str:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return ci(*stats.t_interval(v)) if v.size >= 2 else "n/a"


def paired_difference(df, dataset, method, metric) -> dict:
    """Mean of ``method - exact`` over splits, its t-interval and p (the figure's and the
    family's one statistic); for ``weight_norm`` on the log scale."""
    a, b = _paired(df, dataset, method, metric)
    if METRICS[metric][1] == "ratio":
        return stats.paired_t(np.log(a), np.log(b))
    return stats.paired_t(a, b)


def comparison_family(df: pd.DataFrame) -> stats.Family:
    """Every method against exact dropout, per dataset and metric, paired over splits."""
    fam = stats.Family("softmax_fits: each method against exact-dropout training "
                       "(paired t over splits)", alpha=ALPHA)
    for dataset in sorted(df.dataset.unique()):
        for method in _others(df):
            for metric, (words, kind) in METRICS.items():
                a, _ = _paired(df, dataset, method, metric)
                if a.size < 2:
                    continue
                r = paired_difference(df, dataset, method, metric)
                if kind == "ratio":
                    est = ci(*np.exp([r["mean_difference"], r["low"], r["high"]]))
                    side = "larger" if r["mean_difference"] > 0 else "smaller"
                    text = (f"On {dataset}, the {SENT[method]} fit's {words} is {side} than "
                            f"the exact-dropout fit's: ratio {est} (geometric mean over "
                            f"{r['n']} splits, paired t-interval).")
                else:
                    est = ci(r["mean_difference"], r["low"], r["high"])
                    side = "higher" if r["mean_difference"] > 0 else "lower"
                    text = (f"On {dataset}, the {SENT[method]} fit's {words} is {side} than "
                            f"the exact-dropout fit's: difference {est} (mean over {r['n']} "
                            f"splits, paired t-interval).")
                fam.add(f"{dataset}/{method}/{metric}", r["pvalue"], text)
    return fam


def _setup(df) -> str:
    d = df.iloc[0]
    return (f"keep_prob {d.keep_prob:g} on the inputs, inverted dropout; {d.n_train} "
            f"training examples per split reduced to {d.n_features} PCA components (fitted "
            f"on them alone), {df.split.nunique()} splits per dataset")


@STUDY.block("softmax-fits-table")
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
    lam = df[df.method == "l2"].groupby("dataset").l2.median()
    return (f"Setup: {_setup(df)}. Each fit's test error and test NLL (nats per example; "
            f"mean over splits [95% t-interval]), its weight norm (rows of W centred over "
            f"the classes; geometric mean [t-interval of the mean log]), the cosine between "
            f"its centred weights and the exact-dropout fit's, and its exact expected "
            f"dropout loss on the training set per example (the objective the exact fit "
            f"minimises; mean [t-interval]); `converged`: fits whose L-BFGS reported "
            f"convergence. Validated L2's chosen strength (median over splits; the grid "
            f"runs from {L2_GRID[0]:g} to {L2_GRID[-1]:g}): "
            + ", ".join(f"{k} {num(v)}" for k, v in lam.items()) + ".\n\n"
            + table(["dataset", "method", "test error", "test NLL", "weight norm",
                     "cosine with exact", "dropout loss", "converged"], rows))


@STUDY.block("softmax-fits-ratio")
def ratio_block(df: pd.DataFrame) -> str:
    ex = df[(df.method == "exact") & (df.R_exact > 0) & (df.R_quadratic > 0)]
    lines = []
    for dataset, g in ex.groupby("dataset"):
        r = g.R_quadratic / g.R_exact
        m, lo, hi = stats.t_interval(r.to_numpy(float))
        lines.append(f"- At the exact-dropout solution on {dataset}, R^q / R (Wager's "
                     f"quadratic term over the exact regularizer, both summed over the "
                     f"training set) is {ci(m, lo, hi)} (mean over {len(g)} splits, "
                     f"t-interval; range {num(r.min())} to {num(r.max())}).")
    return "\n".join(lines) if lines else "No exact-dropout rows in this table."


@STUDY.block("softmax-fits-claims")
def fits_claims(df: pd.DataFrame) -> str:
    fam = comparison_family(df)
    t = fam.table()
    lines = [f"- Family *{fam.name}*: {len(t)} claims declared (each method other than exact "
             f"dropout x dataset x {{test error, test NLL, weight norm}}), Holm-corrected "
             f"within the family at {ALPHA:g}; {int(t.survives.sum())} survive and are "
             f"stated, the others are not claims."]
    return "\n".join(lines + [f"- {s}" for s in fam.sentences()])


@STUDY.block("softmax-fits-runaway")
def runaway_block(df: pd.DataFrame) -> str:
    lines = []
    for dataset in sorted(df.dataset.unique()):
        d = df[df.dataset == dataset]
        for method in ("quadratic", "none"):
            a, b = _paired(d, dataset, method, "weight_norm")
            if a.size < 2:
                continue
            g = d[d.method == method]
            r = stats.paired_t(np.log(a), np.log(b))
            est = ci(*np.exp([r["mean_difference"], r["low"], r["high"]]))
            lines.append(
                f"- On {dataset}, the {SENT[method]} fit's weight norm over the exact-dropout "
                f"fit's is {est} (geometric mean over {r['n']} splits, paired t-interval; "
                f"largest single ratio {num(float(np.max(a / b)))}); L-BFGS reported "
                f"convergence on {int(g.converged.astype(bool).sum())} of {len(g)} splits "
                f"(limit 2000 iterations).")
        q = d[d.method == "quadratic"]
        if len(q) >= 2:
            lines.append(f"- On {dataset}, at the R^q fit the exact regularizer R is "
                         f"{ci(*_geo(q.R_exact / q.R_quadratic))} times R^q (geometric mean "
                         f"over {len(q)} splits, t-interval): the surrogate the fit minimised "
                         f"against the penalty dropout would have charged there.")
    return "\n".join(lines) if lines else "No R^q fits in this table."


@STUDY.block("softmax-fits-command")
def command_block(df: pd.DataFrame) -> str:
    return (f"Regenerate this page's table, figure and blocks ({_setup(df)}; run apart "
            f"from `reproduce`):\n\n```bash\n{COMMAND}\n```")


@STUDY.figure("softmax_fits")
def figure(df: pd.DataFrame):
    datasets = sorted(df.dataset.unique())
    others = _others(df)
    fig, axes = new_figure(2, len(datasets), width=4.0, height=3.0)
    for col, dataset in enumerate(datasets):
        for row, metric in enumerate(("test_nll", "test_error")):
            ax = axes[row, col]
            for i, method in enumerate(others):
                a, _ = _paired(df, dataset, method, metric)
                if a.size < 2:
                    continue
                r = paired_difference(df, dataset, method, metric)
                m = r["mean_difference"]
                ax.errorbar([i], [m], yerr=[[m - r["low"]], [r["high"] - m]], fmt="o",
                            color=COLORS[method], markersize=6, capsize=3)
            ax.axhline(0.0, color=COLORS["exact"], linewidth=1)
            if metric == "test_nll":
                ax.set_yscale("symlog", linthresh=0.1)
            ax.set_xticks(range(len(others)), [LABELS[m] for m in others], rotation=30,
                          ha="right", fontsize=9)
            ax.set_xlim(-0.5, len(others) - 0.5)
            words = "test NLL (nats)" if metric == "test_nll" else "test error"
            ax.set_ylabel(f"{words}\nminus exact dropout's", fontsize=9)
            if row == 0:
                ax.set_title(f"{dataset} (PCA {df.n_features.iloc[0]}), "
                             f"{df[df.dataset == dataset].split.nunique()} splits", fontsize=10)
            ax.grid(True, alpha=0.3)
    fig.suptitle(f"Softmax regression fitted five ways against exact-dropout training "
                 f"(keep_prob {df.keep_prob.iloc[0]:g})\npaired mean difference and 95% "
                 f"t-interval over splits; NLL axis symlog (linear within +-0.1)", fontsize=9)
    return fig
