"""The srivastava study's figures and documentation blocks, from its saved table only.

(Over 500 lines: one figure or block per claim of the page, each with its
declared family.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ...dropout import SCHEMES
from ...plots import (
    new_figure,
)
from ...report import ci, names, pvalue, table
from ...stats import Family, bootstrap_ci, paired_t, t_interval, welch_test
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


def _t(values) -> tuple[float, float, float]:
    """Mean and Student-t 95% interval (NaN ends with fewer than 2 values)."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return float(v.mean()), np.nan, np.nan
    return t_interval(v)


def errors(df: pd.DataFrame) -> pd.DataFrame:
    """Mean test error over seeds per architecture, scheme, keep_prob and predictor,
    with a Student-t 95% CI over seeds, and the paired difference from the baseline.

    ``sampled`` rows are left out (see :func:`crossings`). ``minus_baseline``
    is the mean over seeds of (error - the same seed's no-dropout error),
    with its paired t interval (``diff_low``, ``diff_high``) and the paired
    t-test's ``pvalue`` (DESIGN: t-intervals at n <= 30 networks, never a
    percentile bootstrap of a handful of seeds).
    """
    keys = ["architecture", "scheme", "keep_prob", "predictor"]
    single = df[df["predictor"] != "mc"]
    base = df[df["predictor"] == "no_dropout"].set_index(["architecture", "seed"])["error"]
    rows = []
    for key, g in single.groupby(keys, sort=False):
        err = g["error"].to_numpy()
        b = base.loc[list(zip(g["architecture"], g["seed"], strict=True))].to_numpy()
        est, lo, hi = _t(err)
        if err.size >= 2:
            t = paired_t(err, b)
            diff = (t["mean_difference"], t["low"], t["high"], t["pvalue"])
        else:
            diff = (float((err - b).mean()), np.nan, np.nan, np.nan)
        rows.append(dict(zip(keys, key, strict=True), error=est, ci_low=lo, ci_high=hi,
                         n_seeds=int(err.size), minus_baseline=diff[0], diff_low=diff[1],
                         diff_high=diff[2], pvalue=diff[3]))
    return pd.DataFrame(rows)


def hinton_family(df: pd.DataFrame) -> pd.DataFrame:
    """One Wilcoxon test per network (across its test images) of Hinton et al.'s claim.

    The family is every dropout network of the table (every architecture,
    scheme and keep_prob); Holm within it. ``higher``: the scaled pass's
    median difference is positive.
    """
    scaled = df[df["predictor"] == "scaled"]
    fam = Family("srivastava: Hinton et al.'s claim, one Wilcoxon test across images per "
                 "network")
    for r in scaled.itertuples():
        fam.add(f"{r.architecture} {r.scheme} {r.keep_prob:g} {r.seed}", r.hinton_pvalue,
                architecture=r.architecture, scheme=r.scheme, keep_prob=r.keep_prob,
                seed=r.seed, higher=r.hinton_median_diff > 0)
    return fam.table()


def hinton(df: pd.DataFrame) -> pd.DataFrame:
    """Hinton et al.'s claim per architecture, scheme and keep_prob, over seeds.

    ``share`` is the mean over networks of the share of test images where
    the scaled pass gives the correct class at least the subnetworks' mean
    log-probability (``min_share`` the lowest network, ``min_diff`` the most
    negative difference of any image and network);
    ``mean_diff`` the mean over networks of the mean difference (nats), with
    a Student-t 95% CI over seeds; ``n_significant`` the networks whose
    Wilcoxon signed-rank test across images survives Holm within
    :func:`hinton_family` with the scaled pass higher (positive median
    difference), ``max_holm`` their largest adjusted p; ``nwgm_share`` as
    ``share`` for the NWGM.
    """
    fam = hinton_family(df)
    rows = []
    scaled = df[(df["predictor"] == "scaled")]
    for key, g in scaled.groupby(["architecture", "scheme", "keep_prob"], sort=True):
        est, lo, hi = _t(g["hinton_mean_diff"])
        f = fam[(fam.architecture == key[0]) & (fam.scheme == key[1])
                & (fam.keep_prob == key[2])]
        rows.append(dict(zip(("architecture", "scheme", "keep_prob"), key),
                         share=g["hinton_share"].mean(), min_share=g["hinton_share"].min(),
                         min_diff=g["hinton_min_diff"].min(),
                         mean_diff=est, ci_low=lo, ci_high=hi,
                         n_significant=int((f.survives & f.higher).sum()), n_networks=len(g),
                         max_holm=f["holm"].max(), n_family=len(fam),
                         nwgm_share=g["nwgm_share"].mean()))
    return pd.DataFrame(rows)


def exact_minus_scaled(df: pd.DataFrame) -> pd.DataFrame:
    """Test error of the exact ensemble minus the scaled pass's, paired over seeds.

    Per (architecture, scheme, keep_prob) with an exact arithmetic mean: the
    mean over seeds of the same network's difference, its paired t 95% CI,
    and the paired t-test's p-value across networks.
    """
    rows = []
    single = df[df["predictor"].isin(["exact", "scaled"])]
    for key, g in single.groupby(["architecture", "scheme", "keep_prob"], sort=True):
        wide = g.pivot_table("error", "seed", "predictor")
        if "exact" not in wide:
            continue
        d = (wide["exact"] - wide["scaled"]).to_numpy()
        if d.size >= 2:
            t = paired_t(wide["exact"], wide["scaled"])
            est, lo, hi, p = t["mean_difference"], t["low"], t["high"], t["pvalue"]
        else:
            est, lo, hi, p = float(d.mean()), np.nan, np.nan, np.nan
        rows.append(dict(zip(("architecture", "scheme", "keep_prob"), key), difference=est,
                         ci_low=lo, ci_high=hi, n_exact_better=int((d < 0).sum()),
                         n_tied=int((d == 0).sum()), pvalue=p, n_seeds=int(d.size)))
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
    rows.append(["exact minus scaled (paired t)", *cells])
    return (f"Test error of {arch} networks, mean over {int(base.n_seeds)} seeds [Student-t "
            f"95% CI]; the no-dropout baseline errs on "
            f"{ci(base.error, base.ci_low, base.ci_high)}. Differences are paired by seed "
            f"(paired t interval; the p-values are not adjusted: the verdict below is).\n\n"
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
             f"{int(r.n_significant)} of {int(r.n_networks)} (largest Holm p {r.max_holm:.1e})",
             f"{r.nwgm_share:.4f}"] for r in h.itertuples()]
    return table(["network, scheme, keep_prob", "share of images (mean over networks; lowest)",
                  "most negative difference", "mean difference, nats [t 95% CI over seeds]",
                  f"networks whose Wilcoxon test survives Holm (family of "
                  f"{int(h.n_family.iloc[0])} networks)", "share for the NWGM version"], rows)


@STUDY.block("srivastava-deep-errors")
def srivastava_deep_errors(df: pd.DataFrame) -> str:
    deep = [a for a in dict.fromkeys(df.architecture) if a.count("-") > 2]
    if not deep:
        return "No network with more than one hidden layer in this table."
    e = errors(df)
    e = e[(e.architecture == deep[0]) & (e.predictor.isin(["scaled", "no_dropout"]))]
    rows = [[("no dropout" if r.predictor == "no_dropout" else f"{r.scheme}, {r.keep_prob:g}"),
             ci(r.error, r.ci_low, r.ci_high),
             "" if r.predictor == "no_dropout" else ci(r.minus_baseline, r.diff_low, r.diff_high)]
            for r in e.itertuples()]
    return (f"Test error of the {deep[0]} networks' scaled pass (mean over seeds [Student-t 95% "
            "CI]), of their no-dropout baseline, and the difference from the same seed's "
            "baseline [paired t 95% CI]:\n\n"
            + table(["scheme, keep_prob", "test error", "minus no-dropout"], rows))



def error_family(df: pd.DataFrame) -> pd.DataFrame:
    """The exact ensemble's test error against the baseline and against the scaled pass.

    One declared family for the one-hidden-layer networks: per (scheme,
    keep_prob), the paired t-test over seeds of exact minus no-dropout
    (``kind = "baseline"``) and of exact minus scaled (``kind = "scaled"``);
    Holm within it.
    """
    arch = _shallow(df)
    e = errors(df)
    e = e[(e.architecture == arch) & (e.predictor == "exact")]
    d = exact_minus_scaled(df)
    d = d[d.architecture == arch]
    fam = Family(f"srivastava: {arch} test error, exact ensemble against the no-dropout "
                 f"baseline and against the scaled pass, per scheme and keep_prob")
    for r in e.itertuples():
        fam.add(f"baseline {r.scheme} {r.keep_prob:g}", 1.0 if np.isnan(r.pvalue) else r.pvalue,
                kind="baseline", scheme=r.scheme, keep_prob=r.keep_prob,
                difference=r.minus_baseline)
    for r in d.itertuples():
        fam.add(f"scaled {r.scheme} {r.keep_prob:g}", 1.0 if np.isnan(r.pvalue) else r.pvalue,
                kind="scaled", scheme=r.scheme, keep_prob=r.keep_prob, difference=r.difference)
    return fam.table()


def error_verdict(res: pd.DataFrame) -> str:
    """Sentences from :func:`error_family`'s table: only what survives Holm is claimed."""
    def cells(rows):
        return names([f"{r.scheme} {r.keep_prob:g}" for r in rows.itertuples()])

    out = []
    b = res[res.kind == "baseline"]
    worse, better = b[b.survives & (b.difference > 0)], b[b.survives & (b.difference < 0)]
    rest = b[~b.survives]
    if len(better) == len(b):
        out.append("The exact ensemble errs less than the same seed's no-dropout network in "
                   "every cell")
    elif len(worse) == len(b):
        out.append("The exact ensemble errs more than the same seed's no-dropout network in "
                   "every cell: dropout does not beat the baseline here")
    else:
        parts = []
        if len(worse):
            parts.append(f"errs more than the same seed's no-dropout network at {cells(worse)}")
        if len(better):
            parts.append(f"errs less at {cells(better)}")
        if len(rest):
            parts.append(f"shows no difference that survives Holm at {cells(rest)}")
        out.append("The exact ensemble " + "; it ".join(parts))
    sc = res[res.kind == "scaled"]
    diff = sc[sc.survives]
    if diff.empty:
        out.append("no difference between the exact ensemble and the scaled pass survives Holm "
                   "(every cell)")
    else:
        out.append("the exact ensemble and the scaled pass differ at " + names(
            [f"{r.scheme} {r.keep_prob:g} (exact {'lower' if r.difference < 0 else 'higher'})"
             for r in diff.itertuples()]))
    return "; ".join(out) + "."


@STUDY.block("srivastava-verdict")
def srivastava_verdict(df: pd.DataFrame) -> str:
    res = error_family(df)
    return (error_verdict(res) + f" (Test error; paired t-tests over seeds, Holm within the "
            f"family of {len(res)}: *{res['family'].iloc[0]}*; adjusted p: "
            + ", ".join(f"{r.key} {pvalue(r.holm)}" for r in res.itertuples()) + ".)")


def crossing_verdict(c: pd.DataFrame, keep_prob: float = 0.5, published: float = 50) -> str:
    """The sentence on the K that matches the scaled pass, from :func:`crossings`' table."""
    c = c[(c.reference == "scaled") & (c.keep_prob == keep_prob)]
    if c.empty:
        return f"No cell at keep_prob {keep_prob:g}."
    parts = []
    for r in c.itertuples():
        k = "no K of the grid" if not np.isfinite(r.k) else f"K = {_k(r.k)}"
        bound = ("the seeds bound it from above" if np.isfinite(r.ci_high)
                 else "the seeds do not bound it from above")
        holds = "holds" if r.ci_low <= published <= r.ci_high else "does not hold"
        parts.append(f"under {r.scheme} dropout {k} [{_k(r.ci_low)}, {_k(r.ci_high)}] ({bound}; "
                     f"the interval {holds} Srivastava et al.'s K = {published:g})")
    return (f"At keep_prob {keep_prob:g}, the first K of the grid where Monte Carlo's mean test "
            f"error is at most the scaled pass's is " + "; ".join(parts)
            + f" (percentile bootstrap over {int(c.n_seeds.iloc[0])} seeds).")


@STUDY.block("srivastava-crossing-verdict")
def srivastava_crossing_verdict(df: pd.DataFrame) -> str:
    c = crossings(df)
    fam = error_family(df)
    sc = fam[fam.kind == "scaled"]
    same = ("the two references' errors do not differ significantly in any cell (above), so "
            "the order of the two crossings is not a finding" if not sc.survives.any() else
            "the two references differ where the verdict above says so")
    return (crossing_verdict(c) + f" Monte Carlo converges to the exact ensemble as K grows "
            f"(it is unbiased); {same}.")


def margin_family(df: pd.DataFrame) -> pd.DataFrame:
    """Comparisons of Hinton's margin (mean log-probability difference per network).

    One declared family of Welch t-tests over networks: keep_prob 0.5
    against the largest keep_prob per (architecture, scheme)
    (``kind = "keep_prob"``), and the deeper architecture against the
    one-hidden-layer one per (scheme, keep_prob) (``kind = "depth"``). Holm
    within it.
    """
    scaled = df[df["predictor"] == "scaled"]
    fam = Family("srivastava: Hinton's margin between cells (Welch t over networks)")
    archs = list(dict.fromkeys(scaled.architecture))
    for (arch, sc), g in scaled.groupby(["architecture", "scheme"], sort=False):
        qs = sorted(g.keep_prob.unique())
        if len(qs) < 2:
            continue
        lo, hi = (g.loc[g.keep_prob == q, "hinton_mean_diff"] for q in (qs[0], qs[-1]))
        t = welch_test(lo, hi)
        fam.add(f"{arch} {sc} {qs[0]:g} vs {qs[-1]:g}", t["pvalue"], kind="keep_prob",
                architecture=arch, scheme=sc, keep_prob=qs[0], other=f"{qs[-1]:g}",
                difference=t["difference"])
    if len(archs) >= 2:
        shallow, deep = archs[0], archs[-1]
        for (sc, q), g in scaled.groupby(["scheme", "keep_prob"], sort=False):
            a = g.loc[g.architecture == deep, "hinton_mean_diff"]
            b = g.loc[g.architecture == shallow, "hinton_mean_diff"]
            if len(a) >= 2 and len(b) >= 2:
                t = welch_test(a, b)
                fam.add(f"{deep} vs {shallow} {sc} {q:g}", t["pvalue"], kind="depth",
                        architecture=deep, scheme=sc, keep_prob=q, other=shallow,
                        difference=t["difference"])
    return fam.table()


def margin_verdict(res: pd.DataFrame) -> str:
    """Sentences from :func:`margin_family`: "every" only when every test survives."""
    out = []
    for kind in ("keep_prob", "depth"):
        r = res[res.kind == kind] if len(res) else res
        if r.empty:
            continue
        up = r[r.survives & (r.difference > 0)]
        down = r[r.survives & (r.difference < 0)]
        if kind == "keep_prob":
            what = (f"the margin at keep_prob {r.keep_prob.iloc[0]:g} is larger than at "
                    f"{r.other.iloc[0]}")
            cells = [f"{x.architecture} {x.scheme}" for x in up.itertuples()]
        else:
            what = (f"the margin of the {r.architecture.iloc[0]} networks is larger than that "
                    f"of the {r.other.iloc[0]} networks")
            cells = [f"{x.scheme} {x.keep_prob:g}" for x in up.itertuples()]
        if len(up) == len(r):
            out.append(f"{what} in every cell ({len(r)} of {len(r)} survive Holm)")
        elif len(up):
            out.append(f"{what} at {names(cells)} only"
                       + (f" (smaller in {len(down)})" if len(down) else ""))
        else:
            out.append(f"no test of whether {what} survives Holm"
                       + (f" in that direction ({len(down)} in the other)" if len(down) else ""))
    return "; ".join(out)


@STUDY.block("srivastava-hinton-verdict")
def srivastava_hinton_verdict(df: pd.DataFrame) -> str:
    h = hinton(df)
    fam = hinton_family(df)
    parts = []
    for arch, g in h.groupby("architecture", sort=False):
        f = fam[fam.architecture == arch]
        n_ok = int((f.survives & f.higher).sum())
        every = bool((g.min_share >= 1).all())
        fails = int((df[(df.predictor == "scaled") & (df.architecture == arch)]
                     .hinton_share < 1).sum())
        holds = ("holds on every test image of every network" if every else
                 f"fails on some test images in {fails} of {len(f)} networks (lowest share "
                 f"{g.min_share.min():.4f})")
        test = ("every network's test survives Holm with the scaled pass higher"
                if n_ok == len(f) else
                f"{n_ok} of {len(f)} networks' tests survive Holm with the scaled pass higher")
        parts.append(f"{arch}: the claim {holds}; {test}")
    res = margin_family(df)
    margins = margin_verdict(res)
    text = ("; ".join(parts) + f" (family of {len(fam)}: *{fam['family'].iloc[0]}*).")
    if margins:
        text += (f" On the mean difference (nats), {margins} (Welch t over networks, Holm "
                 f"within the family of {len(res)}: *{res['family'].iloc[0]}*).")
    return text


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
