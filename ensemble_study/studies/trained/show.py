"""The trained study's figures and documentation blocks, from its saved table only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ... import stats
from ...plots import (
    SEED_BAND,
    median_band,
    new_figure,
    predictor_line,
)
from ...report import ci, median_ci, table
from . import STUDY


def _trained_predictor(d: pd.DataFrame) -> pd.Series:
    return d.predictor.where(d.predictor != "mc", "K = " + d.n_samples.astype(str))


@STUDY.block("trained-error")
def trained_error(df: pd.DataFrame) -> str:
    d = df[(df.dataset == "digits") & (df.state == "trained")]
    d = d.assign(p=_trained_predictor(d))
    per_seed = d.groupby(["scheme", "keep_prob", "p", "seed"], as_index=False)["error"].mean()
    preds = ["exact", "nwgm", "scaled"] + sorted(
        (p for p in per_seed.p.unique() if p.startswith("K = ")), key=lambda p: int(p[4:]))
    rows = []
    for (scheme, q), g in per_seed.groupby(["scheme", "keep_prob"]):
        cells = []
        for p in preds:
            v = np.sort(g.loc[g.p == p, "error"].to_numpy())
            cells.append(ci(*stats.bootstrap_ci(v, "mean")))
        a = g[g.p == "scaled"].set_index("seed")["error"]
        b = g[g.p == "exact"].set_index("seed")["error"].reindex(a.index)
        diff = ci(*stats.paired_bootstrap_ci(a.to_numpy(), b.to_numpy()))
        rows.append([scheme, f"{q:g}", *cells, diff])
    n_seeds = d.seed.nunique()
    header = ["scheme", "keep_prob", "exact mean", "NWGM", "scaled pass", *preds[3:],
              "scaled minus exact mean"]
    return (
        f"Test error on digits ({d.architecture.iloc[0]}), mean over {n_seeds} training "
        f"seeds [bootstrap 95% CI over seeds]; the last column is the paired difference "
        f"(same seed, same test images) [paired bootstrap 95% CI].\n\n" + table(header, rows))


@STUDY.block("trained-nll")
def trained_nll(df: pd.DataFrame) -> str:
    d = df[(df.state == "trained") & df.predictor.isin(["exact", "nwgm", "scaled"])]
    rows = []
    for (ds, scheme, q), g in d.groupby(["dataset", "scheme", "keep_prob"], sort=False):
        piv = g.pivot_table(index="seed", columns="predictor", values="nll")
        cells = [ci(*stats.bootstrap_ci(np.sort(piv[p].to_numpy()), "mean"))
                 for p in ("exact", "nwgm", "scaled")]
        diff = ci(*stats.paired_bootstrap_ci(piv["scaled"].to_numpy(),
                                             piv["exact"].to_numpy()))
        rows.append([ds, scheme, f"{q:g}", *cells, diff])
    return (
        "Test negative log-likelihood (nats), mean over training seeds [bootstrap 95% CI]; "
        "last column: the paired difference [paired bootstrap 95% CI].\n\n"
        + table(["dataset", "scheme", "keep_prob", "exact mean", "NWGM", "scaled pass",
                 "scaled minus exact mean"], rows))


@STUDY.block("trained-gap")
def trained_gap(df: pd.DataFrame) -> str:
    d = df[(df.predictor == "scaled") & (df.dataset == "digits")]
    rows = []
    for (scheme, q), g in d.groupby(["scheme", "keep_prob"], sort=False):
        piv = {m: g.pivot_table(index="seed", columns="state", values=m)
               for m in ("total_variation", "disagreement")}
        cells = []
        for m in ("total_variation", "disagreement"):
            cells += [median_ci(piv[m]["trained"]), median_ci(piv[m]["init"])]
        diff = ci(*stats.paired_bootstrap_ci(piv["total_variation"]["trained"].to_numpy(),
                                             piv["total_variation"]["init"].to_numpy(),
                                             "median"))
        rows.append([scheme, f"{q:g}", *cells, diff])
    return (
        "Scaled pass against the exact mean on digits, median over training seeds [bootstrap "
        "95% CI]: total variation distance and the share of test images whose predicted "
        "class differs, after training and at initialisation; last column: trained minus "
        "initial total variation, paired by seed [paired bootstrap 95% CI].\n\n"
        + table(["scheme", "keep_prob", "TV trained", "TV at init", "disagreement trained",
                 "disagreement at init", "TV trained minus init"], rows))


_PREDICTOR_STYLE = {name: predictor_line(name, lw=2) for name in ("exact", "nwgm", "scaled")}


_SAMPLED_COLORS = {1: "tab:red", 10: "tab:green", 100: "tab:blue", 1000: "tab:cyan"}


_DATASET_TITLE = {"digits": "digits, 10 classes", "digits_2v3": "digits 2 vs 3",
                  "digits_0v8": "digits 0 vs 8", "digits_1v7": "digits 1 vs 7"}


def _per_seed(df: pd.DataFrame, keys: list, value: str) -> pd.DataFrame:
    """Average ``value`` over draws, keeping one value per seed."""
    return df.groupby(keys + ["seed"], as_index=False)[value].mean()


def _title(dataset: str, arch: str) -> str:
    return f"{_DATASET_TITLE.get(dataset, dataset)} ({arch})"


def _metric_rows(df: pd.DataFrame) -> tuple[list, str]:
    """Panel rows (dataset, metric) and a note on the rows left out.

    A dataset gets a test-error row and an NLL row, except when the exact
    ensemble's error is at most 2% in every cell: a handful of test examples
    then decide the error, and only the NLL row is drawn.
    """
    rows, notes = [], []
    for ds, d in df.groupby("dataset", sort=False):
        worst = d.loc[d["predictor"] == "exact", "error"].max()
        if worst <= 0.02:
            notes.append(f"{_DATASET_TITLE.get(ds, ds)}: NLL only, the exact ensemble's "
                         f"test error is at most {worst:.1%} in every run")
        rows += [(ds, m) for m in (("nll",) if worst <= 0.02 else ("error", "nll"))]
    return rows, "; ".join(notes)


@STUDY.figure("trained_error")
def plot_trained_error(df: pd.DataFrame) -> Figure:
    """Test error and NLL against keep_prob for each predictor, after training with dropout."""
    df = df[df["state"] == "trained"]
    schemes = sorted(set(df["scheme"]))
    rows, note = _metric_rows(df)
    fig, axes = new_figure(len(rows), len(schemes), height=3.0)
    x = sorted(df["keep_prob"].unique())
    for i, (ds, metric) in enumerate(rows):
        for j, scheme in enumerate(schemes):
            ax, cell = axes[i, j], df[(df["dataset"] == ds) & (df["scheme"] == scheme)]
            sampled = cell[(cell["predictor"] == "mc") & cell["n_samples"].isin([10, 100])]
            for k, s in sampled.groupby("n_samples"):
                s = _per_seed(s, ["keep_prob"], metric)
                median_band(ax, x, s.groupby("keep_prob")[metric], lw=1.2, marker=".",
                            label=f"sampled, K={k}", color=_SAMPLED_COLORS.get(k),
                            statistic="mean", spread=None)
            for pred, style in _PREDICTOR_STYLE.items():
                s = cell[cell["predictor"] == pred]
                median_band(ax, x, s.groupby("keep_prob")[metric], statistic="mean",
                            spread=None, **style)
            ax.set_title(f"{_title(ds, cell['architecture'].iloc[0])}, {scheme} dropout",
                         fontsize=9)
            ax.set_ylabel("test error" if metric == "error" else "test NLL (nats)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("keep_prob (both hidden layers)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=4,
               fontsize=8, frameon=False)
    fig.suptitle("Trained with dropout: test error and negative log-likelihood of each "
                 "predictor\n(mean over training seeds, band: its bootstrap 95% CI)"
                 + (f"\n{note}" if note else ""), fontsize=10)
    return fig


@STUDY.figure("trained_gap")
def plot_trained_gap(df: pd.DataFrame) -> Figure:
    """Gap between the scaled pass and the exact ensemble mean, trained against untrained."""
    df = df[df["predictor"] == "scaled"]
    datasets = list(dict.fromkeys(df["dataset"]))
    # Total variation rather than KL: a trained scaled pass often saturates
    # (p = 1.0 in float), which makes KL(exact || scaled) infinite.
    metrics = [("total_variation", "total variation distance,\nexact mean vs scaled pass"),
               ("disagreement", "fraction of test examples\nwhere the predicted class differs")]
    fig, axes = new_figure(len(datasets), len(metrics))
    x = sorted(df["keep_prob"].unique())
    colors = {"vanilla": "tab:blue", "inverted": "tab:red"}
    for i, ds in enumerate(datasets):
        for j, (metric, label) in enumerate(metrics):
            ax = axes[i, j]
            for (scheme, state), s in df[df["dataset"] == ds].groupby(["scheme", "state"]):
                median_band(ax, x, s.groupby("keep_prob")[metric], color=colors.get(scheme),
                            ls="-" if state == "trained" else ":", marker=".",
                            label=f"{scheme}, {'trained' if state == 'trained' else 'at init'}")
            if metric == "total_variation":
                ax.set_yscale("log")
            ax.set_title(_title(ds, df.loc[df["dataset"] == ds, "architecture"].iloc[0]),
                         fontsize=10)
            ax.set_xlabel("keep_prob (both hidden layers)")
            ax.set_ylabel(label, fontsize=9)
            ax.grid(alpha=0.3, which="both")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=4,
               fontsize=8)
    fig.suptitle("Scaled pass against the exact ensemble: trained (solid) and at "
                 "initialisation (dotted)\n" + SEED_BAND,
                 fontsize=10)
    return fig


@STUDY.figure("trained_samples")
def plot_trained_samples(df: pd.DataFrame) -> Figure:
    """Sampled-ensemble test error against K, with the exact ensemble and scaled pass as lines."""
    df = df[(df["state"] == "trained") & (df["scheme"] == "inverted")]
    qs = sorted(df["keep_prob"].unique())
    rows, note = _metric_rows(df)
    # keep_prob down the rows, (dataset, metric) across: at most three columns,
    # so that the text stays legible at the documentation's width.
    fig, axes = new_figure(len(qs), len(rows), width=3.2, height=2.4)
    for j, (ds, metric) in enumerate(rows):
        for i, q in enumerate(qs):
            ax, cell = axes[i, j], df[(df["dataset"] == ds) & (df["keep_prob"] == q)]
            s = _per_seed(cell[cell["predictor"] == "mc"], ["n_samples"], metric)
            ks = sorted(s["n_samples"].unique())
            median_band(ax, ks, s.groupby("n_samples")[metric], color="tab:blue", marker="o",
                        label="sampled ensemble of K (mean over draws)")
            for pred, style in _PREDICTOR_STYLE.items():
                ax.axhline(cell.loc[cell["predictor"] == pred, metric].median(),
                           **{**style, "lw": 1.5})
            ax.set_xscale("log")
            ax.set_title(f"{_DATASET_TITLE.get(ds, ds)}, keep_prob={q:g}", fontsize=9)
            ax.set_ylabel("test error" if metric == "error" else "test NLL (nats)")
            ax.grid(alpha=0.3, which="both")
    for ax in axes[-1]:
        ax.set_xlabel("K (subnetworks sampled)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=2,
               fontsize=9)
    fig.suptitle("Inverted dropout, trained: Monte Carlo averaging against\nthe exact "
                 "ensemble and the scaled pass\n" + SEED_BAND
                 + (f"\n{note}" if note else ""), fontsize=10)
    return fig
