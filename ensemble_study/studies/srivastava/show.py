"""The srivastava study's figures and documentation blocks, from its saved table only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ...dropout import SCHEMES
from ...plots import (
    new_figure,
)
from ...report import ci, pvalue, table
from ...stats import bootstrap_ci, paired_bootstrap_ci, summarise, wilcoxon_paired
from . import STUDY


def _first_crossing(mc: np.ndarray, ref, ks: np.ndarray) -> np.ndarray:
    """The first K whose error ``mc[..., K]`` is at most ``ref[...]`` (inf if none)."""
    hit = mc <= np.asarray(ref)[..., None] + 1e-12
    return np.where(hit.any(axis=-1), ks[np.argmax(hit, axis=-1)], np.inf)


def crossings(df: pd.DataFrame, *, n_resamples: int = 2000, level: float = 0.95,
              rng: int = 0) -> pd.DataFrame:
    """The first K at which Monte Carlo matches each reference, with a bootstrap CI over seeds.

    For each (architecture, scheme, keep_prob) and reference (``scaled``,
    ``exact``): the mean over seeds of each seed's mean error over
    draws at K, against the mean over seeds of the reference's error; the
    crossing is the first K of the grid where the first is at most the
    second. Seeds are resampled with replacement (the same seeds for the
    sampled ensembles and the reference: a paired bootstrap); the interval
    holds the percentiles of the resampled crossings (inf: no K of the grid
    reaches the reference).

    Returns
    -------
    DataFrame
        ``architecture, scheme, keep_prob, reference, reference_error``,
        ``k`` and ``ci_low``, ``ci_high``, ``n_seeds``.
    """
    out = []
    sampled = df[df["predictor"] == "mc"]
    for key, g in sampled.groupby(["architecture", "scheme", "keep_prob"], sort=True):
        by_seed = g.pivot_table("error", "seed", "n_samples", aggfunc="mean").sort_index()
        ks = by_seed.columns.to_numpy()
        seeds = by_seed.index.to_numpy()
        cell = df[(df["architecture"] == key[0]) & (df["scheme"] == key[1])
                  & (df["keep_prob"] == key[2])]
        for j, reference in enumerate(("scaled", "exact")):
            ref = cell[cell["predictor"] == reference].set_index("seed")["error"].loc[seeds]
            M, r = by_seed.to_numpy(), ref.to_numpy()
            k = float(_first_crossing(M.mean(axis=0), r.mean(), ks))
            # A stream per group, whatever else the table holds.
            gen = np.random.default_rng([rng, round(key[2] * 1e6), SCHEMES.index(key[1]), j,
                                         sum(int(w) for w in key[0].split("-"))])
            idx = gen.integers(0, len(seeds), (n_resamples, len(seeds)))
            boot = _first_crossing(M[idx].mean(axis=1), r[idx].mean(axis=1), ks)
            # Crossings are grid values (or inf): the interval's ends are grid values too.
            lo = np.quantile(boot, (1 - level) / 2, method="lower")
            hi = np.quantile(boot, (1 + level) / 2, method="higher")
            out.append({"architecture": key[0], "scheme": key[1], "keep_prob": key[2],
                        "reference": reference, "reference_error": float(r.mean()),
                        "k": k, "ci_low": float(lo), "ci_high": float(hi),
                        "n_seeds": len(seeds)})
    return pd.DataFrame(out)


def errors(df: pd.DataFrame) -> pd.DataFrame:
    """Mean test error over seeds per architecture, scheme, keep_prob and predictor,
    with a bootstrap 95% CI over seeds, and the paired difference from the baseline.

    ``sampled`` rows are left out (see :func:`crossings`). ``minus_baseline``
    is the mean over seeds of (error - the same seed's no-dropout error),
    with its paired bootstrap CI (``diff_low``, ``diff_high``).
    """
    keys = ["architecture", "scheme", "keep_prob", "predictor"]
    single = df[df["predictor"] != "mc"]
    out = summarise(single, keys, "error", "mean", spread=None)
    base = df[df["predictor"] == "no_dropout"].set_index(["architecture", "seed"])["error"]
    diffs = []
    for _, g in single.groupby(keys, sort=False):
        d = g["error"].to_numpy() - base.loc[list(zip(g["architecture"], g["seed"]))].to_numpy()
        diffs.append(bootstrap_ci(np.sort(d), "mean", rng=0))
    out["minus_baseline"], out["diff_low"], out["diff_high"] = np.array(diffs).T
    return out.drop(columns="statistic").rename(columns={"estimate": "error", "n": "n_seeds"})


def hinton(df: pd.DataFrame) -> pd.DataFrame:
    """Hinton et al.'s claim per architecture, scheme and keep_prob, over seeds.

    ``share`` is the mean over networks of the share of test images where
    the scaled pass gives the correct class at least the subnetworks' mean
    log-probability (``min_share`` the lowest network, ``min_diff`` the most
    negative difference of any image and network);
    ``mean_diff`` the mean over networks of the mean difference (nats), with
    a bootstrap 95% CI over seeds; ``n_significant`` the networks whose
    Wilcoxon signed-rank test across images gives p < 0.05 with the scaled
    pass higher (positive median difference); ``nwgm_share`` as ``share`` for
    the NWGM.
    """
    rows = []
    scaled = df[(df["predictor"] == "scaled")]
    for key, g in scaled.groupby(["architecture", "scheme", "keep_prob"], sort=True):
        est, lo, hi = bootstrap_ci(g["hinton_mean_diff"].sort_values(), "mean", rng=0)
        sig = (g["hinton_pvalue"] < 0.05) & (g["hinton_median_diff"] > 0)
        rows.append(dict(zip(("architecture", "scheme", "keep_prob"), key),
                         share=g["hinton_share"].mean(), min_share=g["hinton_share"].min(),
                         min_diff=g["hinton_min_diff"].min(),
                         mean_diff=est, ci_low=lo, ci_high=hi,
                         n_significant=int(sig.sum()), n_networks=len(g),
                         max_pvalue=g["hinton_pvalue"].max(),
                         nwgm_share=g["nwgm_share"].mean()))
    return pd.DataFrame(rows)


def exact_minus_scaled(df: pd.DataFrame) -> pd.DataFrame:
    """Test error of the exact ensemble minus the scaled pass's, paired over seeds.

    Per (architecture, scheme, keep_prob) with an exact arithmetic mean: the
    mean over seeds of the same network's difference, its bootstrap 95% CI,
    and the Wilcoxon signed-rank test across networks.
    """
    rows = []
    single = df[df["predictor"].isin(["exact", "scaled"])]
    for key, g in single.groupby(["architecture", "scheme", "keep_prob"], sort=True):
        wide = g.pivot_table("error", "seed", "predictor")
        if "exact" not in wide:
            continue
        est, lo, hi = paired_bootstrap_ci(wide["exact"], wide["scaled"], rng=0)
        test = wilcoxon_paired(wide["exact"], wide["scaled"])
        rows.append(dict(zip(("architecture", "scheme", "keep_prob"), key), difference=est,
                         ci_low=lo, ci_high=hi, n_exact_better=int(test["share_a_less"]
                                                                 * test["n"]),
                         n_tied=test["n"] - test["n_nonzero"], pvalue=test["pvalue"],
                         n_seeds=test["n"]))
    return pd.DataFrame(rows)


def _k(k: float) -> str:
    return "> 1000" if not np.isfinite(k) else f"{k:g}"


def _shallow(df: pd.DataFrame) -> str:
    """The first architecture whose exact arithmetic mean the table holds (one hidden layer)."""
    archs = df.loc[df.predictor == "exact", "architecture"]
    if archs.empty:
        raise ValueError("no one-hidden-layer network (exact rows) in the table")
    return archs.iloc[0]


def _columns(e: pd.DataFrame) -> list[tuple]:
    """(scheme, keep_prob) of the dropout cells, by keep_prob then scheme."""
    cells = e[e.predictor == "exact"]
    present = set(zip(cells.scheme, cells.keep_prob))
    return [(sc, q) for q in sorted(set(cells.keep_prob)) for sc in ("inverted", "vanilla")
            if (sc, q) in present]


@STUDY.block("srivastava-errors")
def srivastava_errors(df: pd.DataFrame) -> str:
    arch = _shallow(df)
    e = errors(df)
    e = e[e.architecture == arch]
    base = e[e.predictor == "no_dropout"].iloc[0]
    cols = _columns(e)
    rows = []
    for pred, label in (("exact", "exact ensemble"), ("scaled", "scaled pass")):
        cells = []
        for sc, q in cols:
            r = e[(e.scheme == sc) & (e.keep_prob == q) & (e.predictor == pred)].iloc[0]
            cells.append(ci(r.error, r.ci_low, r.ci_high))
        rows.append([label, *cells])
    cells = []
    for sc, q in cols:
        r = e[(e.scheme == sc) & (e.keep_prob == q) & (e.predictor == "exact")].iloc[0]
        cells.append(ci(r.minus_baseline, r.diff_low, r.diff_high))
    rows.append(["exact minus no-dropout", *cells])
    d = exact_minus_scaled(df)
    d = d[d.architecture == arch]
    cells = []
    for sc, q in cols:
        r = d[(d.scheme == sc) & (d.keep_prob == q)].iloc[0]
        # Error rates differ by whole images: a mean difference of 1e-19 is a zero.
        diff = 0.0 if abs(r.difference) < 1e-12 else r.difference
        cells.append(f"{ci(diff, r.ci_low, r.ci_high)}, {pvalue(r.pvalue)}")
    rows.append(["exact minus scaled (paired; Wilcoxon)", *cells])
    return (f"Test error of {arch} networks, mean over {int(base.n_seeds)} seeds [bootstrap "
            f"95% CI]; the no-dropout baseline errs on "
            f"{ci(base.error, base.ci_low, base.ci_high)}. Differences are paired by seed.\n\n"
            + table(["predictor", *[f"{sc}, {q:g}" for sc, q in cols]], rows))


@STUDY.block("srivastava-crossings")
def srivastava_crossings(df: pd.DataFrame) -> str:
    c = crossings(df)
    rows = []
    for (sc, q), g in c.groupby(["scheme", "keep_prob"], sort=False):
        cells = []
        for ref in ("scaled", "exact"):
            r = g[g.reference == ref].iloc[0]
            k = "not reached by 1000" if not np.isfinite(r.k) else _k(r.k)
            cells.append(f"{k} [{_k(r.ci_low)}, {_k(r.ci_high)}]")
        rows.append([f"{sc}, {q:g}", *cells])
    return ("First K of the grid where the mean Monte Carlo error is at most the reference's "
            "[bootstrap 95% CI over seeds; > 1000: some resamples never get there].\n\n"
            + table(["scheme, keep_prob", "K matching the scaled pass",
                     "K matching the exact ensemble"], rows))


@STUDY.block("srivastava-hinton")
def srivastava_hinton(df: pd.DataFrame) -> str:
    h = hinton(df)
    rows = [[f"{r.architecture}, {r.scheme}, {r.keep_prob:g}", f"{r.share:.4f}; {r.min_share:.4f}",
             f"{r.min_diff:+.4f}", ci(r.mean_diff, r.ci_low, r.ci_high, 4),
             f"{int(r.n_significant)} of {int(r.n_networks)} (largest p {r.max_pvalue:.1e})",
             f"{r.nwgm_share:.4f}"] for r in h.itertuples()]
    return table(["network, scheme, keep_prob", "share of images (mean over networks; lowest)",
                  "most negative difference", "mean difference, nats [95% CI over seeds]",
                  "networks with Wilcoxon p < 0.05", "share for the NWGM version"], rows)


@STUDY.block("srivastava-deep-errors")
def srivastava_deep_errors(df: pd.DataFrame) -> str:
    deep = [a for a in dict.fromkeys(df.architecture) if a.count("-") > 2]
    if not deep:
        return "No network with more than one hidden layer in this table."
    e = errors(df)
    e = e[(e.architecture == deep[0]) & (e.predictor.isin(["scaled", "no_dropout"]))]
    rows = [[("no dropout" if r.predictor == "no_dropout" else f"{r.scheme}, {r.keep_prob:g}"),
             ci(r.error, r.ci_low, r.ci_high)] for r in e.itertuples()]
    return (f"Test error of the {deep[0]} networks' scaled pass (mean over seeds [bootstrap 95% "
            "CI]), and of their no-dropout baseline:\n\n"
            + table(["scheme, keep_prob", "test error"], rows))


@STUDY.figure("srivastava_fig11")
def plot_srivastava_fig11(df: pd.DataFrame) -> Figure:
    """Test error against K sampled subnetworks, with the scaled pass and the exact ensemble.

    Rows: scheme; columns: keep_prob (networks with one hidden layer, the
    ones whose exact arithmetic mean the study computes). The Monte Carlo
    line is the mean over networks of each network's mean error over draws;
    its band is +-1 sd over draws (each network's sd, averaged over
    networks), as in Srivastava et al.'s figure. The horizontal lines are the
    means over networks of the scaled pass, the exact ensemble and the
    no-dropout baseline, each with its bootstrap 95% CI over networks (light
    band); dotted verticals mark the first K at which Monte Carlo's mean
    error is at most the reference's.
    """
    from matplotlib.ticker import FixedLocator, FormatStrFormatter


    sampled = df[df["predictor"] == "mc"]
    archs = list(dict.fromkeys(sampled["architecture"]))
    sampled = sampled[sampled["architecture"] == archs[0]]
    cells = df[df["architecture"] == archs[0]]
    schemes = sorted(set(sampled["scheme"]))
    qs = sorted(set(sampled["keep_prob"]))
    cross = crossings(df).set_index(["architecture", "scheme", "keep_prob", "reference"])
    base = cells.loc[cells["predictor"] == "no_dropout", "error"]
    fig, axes = new_figure(len(schemes), len(qs), width=4.4, height=3.5, sharey=True)
    n_exact = cells.loc[cells["predictor"] == "exact", "n_subnetworks"]
    n_exact = f"2^{int(np.log2(n_exact.iloc[0]))}" if len(n_exact) else "every"
    styles = {"scaled": ("tab:red", "--", "scaled pass"),
              "exact": ("k", "-", f"exact ensemble ({n_exact} subnetworks)")}
    for i, scheme in enumerate(schemes):
        for j, q in enumerate(qs):
            ax = axes[i, j]
            sub = cells[(cells["scheme"] == scheme) & (cells["keep_prob"] == q)]
            mc = sub[sub["predictor"] == "mc"]
            per_seed = mc.groupby(["n_samples", "seed"])["error"]
            mean = per_seed.mean().groupby("n_samples").mean()
            sd = per_seed.std(ddof=1).groupby("n_samples").mean()
            ks = mean.index.to_numpy()
            ax.plot(ks, mean.to_numpy(), color="tab:blue", marker=".",
                    label=f"K sampled subnetworks (+-1 sd over {mc['draw'].nunique()} draws)")
            ax.fill_between(ks, (mean - sd).to_numpy(), (mean + sd).to_numpy(),
                            color="tab:blue", alpha=0.2, linewidth=0)
            for ref, (color, style, label) in styles.items():
                est, lo, hi = bootstrap_ci(sub.loc[sub["predictor"] == ref, "error"], "mean")
                ax.axhline(est, color=color, linestyle=style, linewidth=1.3, label=label)
                ax.axhspan(lo, hi, color=color, alpha=0.08, linewidth=0)
                k = cross.loc[(archs[0], scheme, q, ref), "k"]
                if np.isfinite(k):
                    ax.axvline(k, color=color, linestyle=":", linewidth=1)
            if len(base):
                ax.axhline(base.mean(), color="tab:gray", linestyle=(0, (1, 2)), linewidth=1.3,
                           label="no-dropout baseline")
            ax.set_xscale("log")
            ax.set_yscale("log")
            # Plain decimal ticks on every panel (log minor labels collide or vanish).
            ax.yaxis.set_major_locator(FixedLocator([0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15,
                                                     0.2, 0.3, 0.5]))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("K (sampled subnetworks)")
            ax.set_ylabel("test error (whole test split)")
            ax.tick_params(labelleft=True)
            ax.set_title(f"{scheme} dropout, keep_prob {q:g}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Srivastava et al. 2014 Fig. 11 on digits: {archs[0]} ReLU networks, "
        f"{sampled['seed'].nunique()} training seeds (means over them)\n"
        "dotted verticals: first K where Monte Carlo's mean error <= the scaled pass "
        "(red) / exact ensemble (black)", fontsize=10)
    return fig
