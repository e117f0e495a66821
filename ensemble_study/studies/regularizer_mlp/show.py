"""The regularizer_mlp study's figure and documentation blocks, from its saved table only.

Intervals are Student-t over training seeds (the unit of replication); ratios are
averaged arithmetically, because the second-order expansion can be negative. The
claims are one declared :class:`~ensemble_study.stats.Family`, Holm-corrected within
it (:func:`claims_family`); only the survivors are stated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

from ... import stats
from ...plots import new_figure
from ...report import ci, num, table
from . import STUDY

ALPHA = 0.05
KINDS = {"ratio_full": ("full", "tab:red"),
         "ratio_gauss_newton": ("Gauss-Newton", "tab:blue")}
STYLE = {"ratio_full": "-", "ratio_gauss_newton": "--"}
SENT = {"ratio_full": "full second-order expansion",
        "ratio_gauss_newton": "Gauss-Newton second-order expansion"}
# Below this |label-dependent share| on every row, the part is 0 up to rounding (fact 10:
# one dropped layer feeding the softmax output, the logits linear in its masks).
ROUNDING = 1e-9


def _archs(df: pd.DataFrame) -> list[str]:
    return sorted(df.architecture.unique(), key=lambda a: (a.count("-"), a))


def _t(values) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=float)
    return stats.t_interval(v)


def _at(df: pd.DataFrame, arch: str, epoch: int) -> pd.DataFrame:
    return df[(df.architecture == arch) & (df.epoch == epoch)].sort_values("seed")


def _label_free_by_design(g: pd.DataFrame) -> bool:
    return bool(np.all(np.abs(g.share_dependent) < ROUNDING))


@STUDY.block("regularizer-mlp-design")
def design(df: pd.DataFrame) -> str:
    """The grid the table holds: architectures, masks, dropout, schedule, seeds."""
    first = df.iloc[0]
    archs = ", ".join(f"`{a}` (2^{int(df[df.architecture == a].n_dropped.iloc[0])} masks)"
                      for a in _archs(df))
    epochs = ", ".join(str(e) for e in sorted(df.epoch.unique()))
    return (f"Architectures {archs}; tanh hidden layers, softmax output; {first.scheme} "
            f"dropout at keep_prob {first.keep_prob:g} on every hidden unit, the input not "
            f"dropped. Plain SGD, step {first.learning_rate:g}, no momentum, batches of "
            f"{first.batch_size}; checkpoints at epochs {epochs} (0: the initial network). "
            f"The regularizers are sums over a fixed random subset of {first.n_eval} "
            f"training examples per seed, reported per example; {df.seed.nunique()} "
            f"training seeds per architecture.")


@STUDY.block("regularizer-mlp-table")
def ratio_table(df: pd.DataFrame) -> str:
    rows = []
    for arch in _archs(df):
        for epoch in sorted(df.epoch.unique()):
            g = _at(df, arch, epoch)
            if _label_free_by_design(g):
                share = share2 = "0 (fact 10)"
            else:
                share = ci(*_t(g.share_dependent))
                share2 = ci(*_t(g.R2_full_dependent / g.R2_full))
            rows.append([arch, str(epoch), ci(*_t(g.R_exact)), ci(*_t(g.ratio_full)),
                         ci(*_t(g.ratio_gauss_newton)), share, share2,
                         ci(*_t(g.logit_noise)), ci(*_t(g.test_error))])
    first = df.iloc[0]
    return (f"Per architecture and epoch: the exact dropout regularizer R (nats per example "
            f"of a fixed subset of {first.n_eval} training examples), the second-order "
            f"expansion over R (full, and Gauss-Newton), the label-dependent part's share "
            f"of R and of the full expansion, the linearised logit noise "
            f"sqrt(sum_j Var(mult_j) |dz/dmult_j|^2) (mean over the subset), and the "
            f"scaled pass's test error; means over {df.seed.nunique()} "
            f"training seeds [95% t-intervals]. tanh hidden layers, softmax output, "
            f"{first.scheme} dropout at keep_prob {first.keep_prob:g} on every hidden "
            f"unit, SGD step {first.learning_rate:g}, batches of {first.batch_size}.\n\n"
            + table(["architecture", "epoch", "exact R", "full / exact",
                     "Gauss-Newton / exact", "label-dependent share of R",
                     "label-dependent share of full", "logit noise", "test error"], rows))


def claims_family(df: pd.DataFrame) -> stats.Family:
    """Declared before the p-values: per architecture, at the first and the last epoch,
    each second-order kind's ratio against 1 (one-sample t over seeds; Gauss-Newton
    left out where it equals the full expansion by construction), the change of the
    full ratio from the first to the last epoch (paired t), and the label-dependent
    share against 0 where it is not 0 by construction."""
    fam = stats.Family("regularizer_mlp: second order against the exact MLP regularizer",
                       alpha=ALPHA)
    start, end = int(df.epoch.min()), int(df.epoch.max())
    for arch in _archs(df):
        a, b = _at(df, arch, start), _at(df, arch, end)
        n = len(b)
        same = _label_free_by_design(df[df.architecture == arch])
        for col in KINDS:
            if same and col == "ratio_gauss_newton":
                continue  # equal to the full expansion by construction (fact 10)
            for epoch, g in ((start, a), (end, b)):
                m, lo, hi = _t(g[col])
                side = "below" if m < 1 else "above"
                fam.add(f"{arch}/{col}/{epoch}", stats.t_test_mean(g[col], 1.0),
                        f"On {arch} at epoch {epoch}, the {SENT[col]} is {side} the "
                        f"exact regularizer: ratio {ci(m, lo, hi)} (mean over {len(g)} "
                        f"seeds, t-interval).")
        r = stats.paired_t(b.ratio_full.to_numpy(), a.ratio_full.to_numpy())
        side = "rises" if r["mean_difference"] > 0 else "falls"
        fam.add(f"{arch}/change", r["pvalue"],
                f"On {arch}, the full second-order ratio {side} from epoch {start} to epoch "
                f"{end}: change {ci(r['mean_difference'], r['low'], r['high'])} (mean over "
                f"{r['n']} seeds, paired t-interval).")
        for epoch, g in ((start, a), (end, b)):
            if _label_free_by_design(g):
                continue
            m, lo, hi = _t(g.share_dependent)
            side = "positive" if m > 0 else "negative"
            fam.add(f"{arch}/share/{epoch}", stats.t_test_mean(g.share_dependent, 0.0),
                    f"On {arch} at epoch {epoch}, the label-dependent part of the exact "
                    f"regularizer is {side}: {ci(m, lo, hi)} of R (mean over {n} seeds, "
                    f"t-interval).")
    return fam


@STUDY.block("regularizer-mlp-claims")
def claims(df: pd.DataFrame) -> str:
    fam = claims_family(df)
    t = fam.table()
    lines = [f"- Family *{fam.name}*: {len(t)} claims declared, Holm-corrected within the "
             f"family at {ALPHA:g}; {int(t.survives.sum())} survive and are stated, the "
             f"others are not claims."]
    lines += [f"- {s}" for s in fam.sentences()]
    for arch in _archs(df):
        g = df[df.architecture == arch]
        if _label_free_by_design(g):
            lines.append(f"- On {arch} the label-dependent part is 0 at every epoch and seed "
                         f"(largest |share| {num(np.abs(g.share_dependent).max())}), and "
                         f"the Gauss-Newton expansion equals the full one (largest relative "
                         f"difference {num(_gn_gap(g))}), so its claims are not repeated: "
                         f"the only dropped layer feeds the softmax, so the logits are "
                         f"linear in its masks (fact 10).")
    return "\n".join(lines)


def _gn_gap(g: pd.DataFrame) -> float:
    return float(np.max(np.abs(g.R2_gauss_newton - g.R2_full) / np.abs(g.R2_full)))


@STUDY.block("regularizer-mlp-ends")
def ends(df: pd.DataFrame) -> str:
    """The ratio and the label-dependent share at the first and the last checkpoint."""
    start, end = int(df.epoch.min()), int(df.epoch.max())
    lines = []
    for arch in _archs(df):
        a, b = _at(df, arch, start), _at(df, arch, end)
        parts = []
        for col, (words, _) in KINDS.items():
            parts.append(f"{words} / exact {ci(*_t(a[col]))} at epoch {start} and "
                         f"{ci(*_t(b[col]))} at epoch {end}")
        if _label_free_by_design(df[df.architecture == arch]):
            share = "the label-dependent part of the exact R is 0 by construction"
        else:
            share = (f"label-dependent share of the exact R {ci(*_t(a.share_dependent))} at "
                     f"epoch {start} and {ci(*_t(b.share_dependent))} at epoch {end}, its "
                     f"label-free part {ci(*_t(a.R_exact_free))} and "
                     f"{ci(*_t(b.R_exact_free))} nats per example")
        lines.append(f"- {arch}: second order over exact R, " + "; ".join(parts)
                     + f"; {share} (means over {len(b)} seeds, 95% t-intervals).")
    return "\n".join(lines)


@STUDY.figure("regularizer_mlp")
def figure(df: pd.DataFrame):
    """Second order over exact against epoch, one panel per architecture (top row), and
    the label-dependent share of the exact R (bottom row); means over seeds with their
    95% t-interval bands."""
    archs = _archs(df)
    fig, axes = new_figure(2, len(archs), width=4.0, height=2.9, sharex=True)
    epochs = np.array(sorted(df.epoch.unique()))
    for j, arch in enumerate(archs):
        ax, ax2 = axes[0, j], axes[1, j]
        g = df[df.architecture == arch]
        for col, (label, color) in KINDS.items():
            m, lo, hi = np.array([_t(g[g.epoch == e][col]) for e in epochs]).T
            ax.plot(epochs, m, color=color, marker="o", markersize=3, label=label,
                    linestyle=STYLE[col])
            ax.fill_between(epochs, lo, hi, color=color, alpha=0.25, linewidth=0)
        ax.axhline(1.0, color="k", linewidth=0.8)
        ax.set_title(f"{arch} (tanh, {g.scheme.iloc[0]}, keep_prob "
                     f"{g.keep_prob.iloc[0]:g})", fontsize=10)
        ax.grid(True, alpha=0.3)
        m, lo, hi = np.array([_t(g[g.epoch == e].share_dependent) for e in epochs]).T
        ax2.plot(epochs, m, color="tab:purple", marker="o", markersize=3,
                 label="exact R: label-dependent share")
        ax2.fill_between(epochs, lo, hi, color="tab:purple", alpha=0.25, linewidth=0)
        ax2.axhline(0.0, color="k", linewidth=0.8)
        ax2.grid(True, alpha=0.3)
        ax2.set_xscale("symlog", linthresh=1.0)
        ax2.xaxis.set_major_locator(FixedLocator(epochs))
        ax2.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax2.xaxis.set_minor_locator(NullLocator())
        ax2.set_xlabel("epoch")
        if _label_free_by_design(g):
            ax2.text(0.5, 0.6, "0 by construction (fact 10):\nthe only dropped layer feeds "
                     "the softmax", transform=ax2.transAxes, ha="center", fontsize=8)
            ax.text(0.05, 0.05, "Gauss-Newton = full here (fact 10)",
                    transform=ax.transAxes, fontsize=8)
    axes[0, 0].set_ylabel("second-order R / exact R")
    axes[1, 0].set_ylabel("label-dependent part / R")
    axes[0, 0].legend(fontsize=8, frameon=False)
    axes[1, 0].legend(fontsize=8, frameon=False)
    fig.suptitle(f"MLPs trained on digits: second-order dropout regularizer over the exact "
                 f"one\n(means over {df.seed.nunique()} seeds, 95% t-interval bands)",
                 fontsize=10)
    return fig
