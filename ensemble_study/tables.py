"""Saved tables that no study writes: benchmarks and measurements, with their blocks.

Each is a :class:`~ensemble_study.study.Table` naming the command or script
that writes it; its figures and documentation blocks read only the saved
CSV, as a study's do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import stats
from .plots import new_figure
from .report import ci, names, num, pvalue, table
from .study import Table

BENCH = Table("bench", writer="ensemble-study bench")
COMPILE_COST = Table("compile_cost", writer="python scripts/compile_cost.py")
REPRODUCE_COST = Table("reproduce_cost", writer="ensemble-study reproduce")
REPRODUCE_TIME = Table("reproduce_time", writer="python scripts/time_reproduce.py")
RESUME = Table("resume", writer="python scripts/resume_demo.py")
BENCH_CERTIFIED = Table("bench_certified", writer="python scripts/bench_certified.py")
SOFTMAX_ABLATION = Table("softmax_ablation", writer="python scripts/softmax_ablation.py")
TORCH_EXAMPLE = Table("torch_example", writer="python scripts/torch_example.py")
TORCH_EVALUATE = Table("torch_example_evaluate",
                       writer="ensemble-study evaluate --net results/torch_example/model.pt "
                              "--dataset digits --output softmax "
                              "--out results/torch_example_evaluate.csv")


@TORCH_EXAMPLE.block("torch-example")
def torch_example(df: pd.DataFrame) -> str:
    rows = []
    names = {"exact_mean": "exact mean", "exact_nwgm": "exact NWGM", "eval": "`eval()` pass"}
    for (p, k), g in df.groupby(["predictor", "n_samples"], sort=False):
        label = names.get(p, f"MC dropout, K = {k}")
        if len(g) == 1:
            r = g.iloc[0]
            nll_diff = ("0" if p == "exact_mean" else
                        ci(r.nll_minus_exact, r.nll_minus_exact_low, r.nll_minus_exact_high))
            err_diff = ("0" if p == "exact_mean" else
                        f"{num(r.error_minus_exact)} ({r.only_exact_right:.0f} vs "
                        f"{r.only_predictor_right:.0f} images, McNemar {pvalue(r.mcnemar_p)})")
            cells = [num(r.error), num(r.nll), nll_diff, err_diff, num(r.total_variation)]
        else:  # independent draws: their mean, and the range over draws
            def spread(col, g=g):
                return f"{num(g[col].mean())} ({num(g[col].min())} to {num(g[col].max())})"

            covered = int(((g.nll_minus_exact_low <= 0) & (g.nll_minus_exact_high >= 0)).sum())
            cells = [spread("error"), spread("nll"),
                     f"{spread('nll_minus_exact')}; CI holds 0 in {covered}/{len(g)}",
                     spread("error_minus_exact"), spread("total_variation")]
        rows.append([label, *cells])
    first = df.iloc[0]
    n_draws = int(df[df.predictor == "mc_dropout"].draw.nunique())
    return (
        f"PyTorch {first.architecture} network on digits (keep_prob {first.keep_prob} on the "
        f"hidden layers), {first.n_test} test images, against the exact mean of all "
        f"{int(df[df.predictor == 'exact_mean'].n_samples.iloc[0]):,} subnetworks: per-image "
        f"NLL difference [paired bootstrap 95% CI] and error difference (images only the "
        f"exact mean / only the predictor gets right, McNemar's exact test); total variation "
        f"from the exact mean. MC dropout: mean over {n_draws} independent draws (range).\n\n"
        + table(["predictor", "test error", "NLL (nats)", "NLL minus exact mean",
                 "error minus exact mean", "TV from exact mean"], rows))


def interval_pvalue(estimate: float, low: float, high: float, level: float = 0.95) -> float:
    """Two-sided p-value of ``estimate = 0`` read off its interval (normal approximation).

    The standard error is taken from the half of the interval that faces 0
    (the wider one when 0 lies inside), the conservative choice for a
    skewed bootstrap interval.
    """
    if estimate == 0:
        return 1.0
    half = (high - estimate) if estimate < 0 else (estimate - low)
    if half <= 0:
        return 0.0
    from scipy.stats import norm

    se = half / norm.ppf(0.5 + level / 2)
    return float(2 * norm.sf(abs(estimate) / se))


def torch_family(df: pd.DataFrame) -> pd.DataFrame:
    """The single predictors against the exact mean, on the one network's test images.

    One declared family: per predictor (``eval``, ``exact_nwgm``), the NLL
    difference (p from its paired bootstrap interval, :func:`interval_pvalue`)
    and the error difference (McNemar's exact test); Holm within it.
    """
    fam = stats.Family("torch_example: eval() pass and exact NWGM against the exact mean, "
                       "NLL and test error, one network's test images")
    for r in df[df.predictor.isin(["eval", "exact_nwgm"])].itertuples():
        fam.add(f"{r.predictor} nll", interval_pvalue(r.nll_minus_exact, r.nll_minus_exact_low,
                                                      r.nll_minus_exact_high),
                predictor=r.predictor, metric="NLL", difference=r.nll_minus_exact)
        fam.add(f"{r.predictor} error", r.mcnemar_p, predictor=r.predictor, metric="test error",
                difference=r.error_minus_exact)
    return fam.table()


def torch_verdict(res: pd.DataFrame) -> str:
    """One clause per predictor and metric; a difference is stated only if it survives Holm."""
    names = {"eval": "the `eval()` pass", "exact_nwgm": "the exact NWGM"}
    out = []
    for pred, g in res.groupby("predictor", sort=False):
        parts = []
        for r in g.itertuples():
            if r.survives:
                word = "lower" if r.difference < 0 else "higher"
                parts.append(f"a {word} {r.metric} than the exact mean (Holm {pvalue(r.holm)})")
            else:
                parts.append(f"no {r.metric} difference from the exact mean that survives Holm "
                             f"(Holm {pvalue(r.holm)})")
        out.append(f"{names.get(pred, pred)} has " + " and ".join(parts))
    return "; ".join(out)


def mc_slope(df: pd.DataFrame, metric: str = "total_variation") -> tuple[float, float, float, int]:
    """Per draw, the least-squares slope of log(metric) against log K; t-interval over draws."""
    mc = df[df.predictor == "mc_dropout"]
    slopes = [np.polyfit(np.log(g.n_samples), np.log(g[metric]), 1)[0]
              for _, g in mc.groupby("draw") if g.n_samples.nunique() >= 2]
    est, lo, hi = stats.t_interval(slopes)
    return est, lo, hi, len(slopes)


@TORCH_EXAMPLE.block("torch-example-verdict")
def torch_example_verdict(df: pd.DataFrame) -> str:
    res = torch_family(df)
    est, lo, hi, n = mc_slope(df)
    holds = "holds" if lo <= -0.5 <= hi else "does not hold"
    mc = df[df.predictor == "mc_dropout"]
    kmax = mc.n_samples.max()
    last = mc[mc.n_samples == kmax].total_variation
    tv_eval = float(df.loc[df.predictor == "eval", "total_variation"].iloc[0])
    first = df.iloc[0]
    return (f"On this one network's {first.n_test} test images, " + torch_verdict(res)
            + f" (family of {len(res)}: *{res['family'].iloc[0]}*; NLL p-values from the paired "
            f"bootstrap intervals by a normal approximation, error p-values from McNemar's "
            f"exact test). MC dropout's total variation from the exact mean falls with K with a "
            f"log-log slope of {ci(est, lo, hi)} (least squares per draw over K = "
            f"{', '.join(f'{k:g}' for k in sorted(mc.n_samples.unique()))}, t-interval over "
            f"{n} draws; the interval {holds} the K^(-1/2) rate, slope -0.5); at K = {kmax:g} it "
            f"is {num(last.mean())} ({num(last.min())} to {num(last.max())} over draws), against "
            f"{num(tv_eval)} for the `eval()` pass.")


@TORCH_EVALUATE.block("torch-evaluate")
def torch_evaluate(df: pd.DataFrame) -> str:
    tv = {(r.predictor, r.reference): r.total_variation for r in df.itertuples()}
    return (f"`ensemble-study evaluate` on that model: the `eval()` (scaled) pass is "
            f"{num(tv['scaled', 'nwgm'])} (total variation) from the NWGM and "
            f"{num(tv['scaled', 'mean'])} from the arithmetic mean; the NWGM is "
            f"{num(tv['nwgm', 'mean'])} from the mean.")


_STATISTICS = {"all": "mean, NWGM, variance", "mean+nwgm": "mean and NWGM", "nwgm": "NWGM only",
               "identity": "mean, variance"}


def _seconds(s: float) -> str:
    return f"{s:.3g} s"


@BENCH.block("bench-table")
def bench_table(df: pd.DataFrame) -> str:
    """The benchmark's rows and the targets of issues 8 and 23, one table per host
    (column ``host``; older CSVs without it make one table), from results/bench.csv."""
    if "host" not in df:
        return _bench_host_table(df)
    return "\n\n".join(_bench_host_table(g, host) for host, g in df.groupby("host", sort=False))


def _bench_host_table(df: pd.DataFrame, host: str | None = None) -> str:
    runs = df
    df = df[df.case != "sweep"]
    keys = ["case", "architecture", "output", "statistics", "n_dropped"]
    rows, ratio, shares, share_of = [], {}, {}, {}
    for key, g in df.groupby(keys, sort=False):
        case, arch, out, stat, n = key
        by = g.set_index("method")
        pkg, naive = by.loc["package"], by.loc["naive"]
        c = by.loc["c_reference"]["seconds"] if "c_reference" in by.index else np.nan
        one = by.loc["package_1thread"]["seconds"] if "package_1thread" in by.index else np.nan
        vs_c = pkg["vs_c"]
        ratio[case, out, stat, n] = (vs_c, pkg["speedup_vs_naive"])
        if isinstance(pkg["limit"], str) and pkg["limit"]:
            shares[case, f"{out} {stat}", n] = (pkg["limit"], float(pkg["limit_share"]))
            # fma + exp where the bench recorded it: the vector exp runs on the fma pipes
            share_of.setdefault(case, float(pkg.get("fma_exp_share", pkg["limit_share"])))
        rows.append([
            case, f"{arch} {out}", "input, hidden 1" if case == "g" else "hidden 1, 2",
            _STATISTICS.get(stat, stat), f"2^{n}", str(int(pkg["threads"])),
            _seconds(naive["seconds"]) + ("*" if bool(naive["extrapolated"]) else ""),
            _seconds(pkg["seconds"]), "" if np.isnan(one) else _seconds(one),
            "" if np.isnan(c) else _seconds(c), "" if np.isnan(vs_c) else f"{vs_c:.2f}",
            f"{pkg['speedup_vs_naive']:,.0f}x", f"{pkg['kernel_gflops']:.3g}",
            f"{pkg['limit']} {pkg['limit_share']:.0%}" if isinstance(pkg["limit"], str)
            and pkg["limit"] else ""])
    header = ["case", "network", "dropped", "statistics", "subnetworks", "threads",
              "naive loop", "package", "package, 1 thread", "C", "package / C",
              "speedup vs naive", "kernel GFLOP/s", "limit (share of its peak)"]

    def met(value, ok):
        return f"{value} ({'met' if ok else 'not met'})"

    # Issue 23's targets: softmax <= 1.2x the host's C kernel, generic path >= 30x the
    # naive loop and >= 60% of its binding peak, identity <= 4x the C Gray-code kernel.
    targets = []
    for n in (20, 24):
        r = ratio.get(("b", "softmax", "all", n))
        if r is not None and np.isfinite(r[0]):
            targets.append(met(f"softmax mean, NWGM and variance at 2^{n}: {r[0]:.2f}x the C "
                               f"kernel's time for the mean and NWGM", r[0] <= 1.2))
    g = next((v for k, v in ratio.items() if k[0] == "g"), None)
    if g is not None:
        targets.append(met(f"generic path: {g[1]:.1f}x faster than the naive loop", g[1] >= 30))
        share = share_of.get("g", np.nan)
        if np.isfinite(share):
            targets.append(met(f"generic path: {share:.0%} of its binding peak"
                               + (" (fma + exp)" if "fma_exp_share" in df else ""),
                               share >= 0.6))
    ident = ratio.get(("c", "identity", "identity", 24))
    if ident is not None and np.isfinite(ident[0]):
        targets.append(met(f"identity output's mean and variance at 2^24: {ident[0]:.1f}x the "
                           f"C Gray-code kernel", ident[0] <= 4))
    below = [f"{case} {stat} 2^{n} ({limit} {share:.0%})"
             for (case, stat, n), (limit, share) in shares.items() if share < 0.6]
    if below:
        targets.append("below 60% of their binding peak (see \"What limits each path\" "
                       "below): " + ", ".join(below))
    first = df.iloc[0]
    head = f"**{host}**: " if host else ""
    load = runs["load_1min"].dropna() if "load_1min" in runs else pd.Series(dtype=float)
    if not load.empty:
        head += (f"1-minute load average {load.min():.1f} to {load.max():.1f} while the cases "
                 f"ran (timings of a loaded host are slower and noisier); ")
    elif host:
        head += "load not recorded; "
    shapes = (sorted({s for s in runs["kernel_shape"].dropna().astype(str) if s})
              if "kernel_shape" in runs else [])
    if shapes:
        head += f"softmax kernel shape {', '.join(shapes)}; "
    return (
        head + f"{first['n_examples']} inputs; {first['blas']}; float64 matmul peak "
        f"{first['matmul_peak_gflops']:.0f} GFLOP/s in this run.\n\n" + table(header, rows)
        + "\n\n\\* extrapolated from the first masks. The kernels' targets in this run: "
        + "; ".join(targets) + ".")


@SOFTMAX_ABLATION.block("softmax-ablation")
def softmax_ablation(df: pd.DataFrame) -> str:
    """Per host and network: each variant's time per subnetwork and its ratio to the C
    kernel's, paired by round (mean with its t interval), and what the ablations say."""
    def median_interval(values):
        # A preempted round gives one ratio far out: the median, with its BCa interval
        # (a t interval of the mean below 10 rounds).
        values = np.asarray(values, dtype=float)
        if values.size < 10:
            return stats.t_interval(values)
        return stats.bca_interval(values, "median")

    parts = []
    for (host, arch), g in df.groupby(["host", "architecture"], sort=False):
        by = g.pivot(index="round", columns="variant", values="ns_per_subnetwork")
        order = list(dict.fromkeys(g["variant"]))
        K, n = int(g["n_classes"].iloc[0]), int(g["n_inner"].iloc[0])
        rows = [[v.replace("package_all ", "package, mean and variance, "),
                 f"{by[v].median():.3g}", ci(*median_interval(by[v] / by["c"]))]
                for v in order]
        parts.append(
            f"**{host}**, {arch} (2^{n} inner masks per pair, K = {K}), "
            f"{int(g['pairs'].iloc[0])} pairs, {by.shape[0]} rounds, one thread, 1-minute load "
            f"average {g['load_1min'].iloc[0]:.1f} at the start:\n\n"
            + table(["variant", "ns per subnetwork (median)",
                     "time / C's, paired by round (median [95% BCa])"], rows))
        no_div = median_interval(1 - by["c_no_division"] / by["c"])
        no_con = median_interval(1 - by["c_no_contraction"] / by["c"])
        best = min((v for v in order if v.startswith("package_all")),
                   key=lambda v: by[v].median())
        ratio = median_interval(by[best] / by["c"])
        mean_only = median_interval(by["package_mean"] / by["c"])
        parts.append(
            f"Removing the division takes {ci(*no_div, digits=2)} of the C kernel's time "
            f"away, removing the contraction {ci(*no_con, digits=2)}. The variance's second "
            f"contraction is as large as the mean's ({K} multiply-adds per subnetwork, against "
            f"C's {2 * K}: {K} for the denominator, {K} for the mean), so the package's mean "
            f"and variance cannot take less than about {1 + no_con[0]:.2f} times C's time "
            f"with the same arithmetic. Measured: {ci(*ratio)} in its fastest shape here "
            f"({best.split(' ', 1)[1]}), and {ci(*mean_only)} for the mean alone (the "
            f"like-for-like ratio).")
    return "\n\n".join(parts)


@COMPILE_COST.block("compile-cost")
def compile_cost(df: pd.DataFrame) -> str:
    df = df.set_index("cache")
    return (f"The first call of every compiled kernel in a fresh environment costs "
            f"{df.loc['empty', 'warm_up_s']:.1f} s of compilation; in a new process with the "
            f"cache filled, {df.loc['filled', 'warm_up_s']:.1f} s "
            f"(`python scripts/compile_cost.py`, which writes `results/compile_cost.csv`).")


@REPRODUCE_COST.block("reproduce-cost")
def reproduce_cost(df: pd.DataFrame) -> str:
    total = df.seconds.sum()
    rows = [[r.study, f"{r.seconds / 60:.1f} min", f"{r.seconds / total:.0%}"]
            for r in df.itertuples()]
    return (f"The studies of `ensemble-study reproduce` at the default grids took "
            f"{total / 60:.1f} min on 2 cores, the figures apart (`results/reproduce_cost.csv`, "
            f"which it writes):\n\n"
            + table(["study", "wall time", "share"], rows))


@REPRODUCE_TIME.block("reproduce-time")
def reproduce_time(df: pd.DataFrame) -> str:
    df = df.set_index("run")
    one, every = df.loc["one core"], df.loc["every core"]
    return (f"`reproduce --fresh` took {one.wall_s / 60:.1f} min on one core and "
            f"{every.wall_s / 60:.1f} min on every core ({int(every.cpus)} here, "
            f"`--jobs {int(every.jobs)}`): {every.speedup:.2f} times as fast, one run of "
            f"each in turn (`results/reproduce_time.csv`; this VM's run-to-run noise is up "
            f"to 30%).")


@RESUME.block("resume")
def resume(df: pd.DataFrame) -> str:
    r = df.iloc[0]
    same = "byte-identical to" if r.identical else "different from"
    return (f"Interrupted once {r.stored_at_interrupt} of its {r.cells} cells were stored, the "
            f"sweep resumed with {r.from_store} cells from the store and recomputed "
            f"{r.recomputed}; it took {r.resumed_s:.0f} s, against {r.uninterrupted_s:.0f} s "
            f"for the uninterrupted run (one run of each), and its CSV was {same} the "
            f"uninterrupted one's (`python scripts/resume_demo.py`, which writes "
            f"`results/resume.csv`).")


@BENCH_CERTIFIED.block("bench-certified")
def bench_certified(df: pd.DataFrame) -> str:
    """Certified estimator against plain MC at equal half-width: passes and seconds, ratios;
    the sampled passes' throughput against the float64 GEMM peak."""
    target = 10.0
    df = df.copy()
    if "control_variates" not in df:
        df["control_variates"] = "taylor"
    r0 = df.iloc[0]
    if "load_average_max" in df:
        load = (f"the machine's 1-minute load average was {r0.load_average:.1f} at the start "
                f"and up to {df.load_average_max.max():.1f} during the runs, on 2 cores "
                f"shared with other jobs")
    else:
        load = (f"the machine's load average was {r0.load_average:.1f} on 2 cores, shared "
                f"with other jobs")
    lines = [f"One run of `python scripts/bench_certified.py` on {int(r0.images)} MNIST test "
             f"images, inverted dropout on both hidden layers of 784-512-512-10 softmax "
             f"networks; {load}, so the timings (seconds, and the ratio in seconds) are "
             f"indicative only under that load; the passes do not "
             f"depend on the load. The counts are projected from the "
             f"per-pass variances measured with {int(r0.pairs)} antithetic pairs (certified) "
             f"and {2 * int(r0.pairs)} masks (plain MC), for a 95% half-width of "
             f"{num(r0.half_width)}: on every (image, class) probability (`coordinate`), or "
             f"on an upper bound of the total variation, half the sum of the classes' "
             f"half-widths, on every image (`tv`). Control variates: `taylor` (first and "
             f"second order in the masks) or `taylor+surrogate` (and the gated-linear "
             f"surrogate's, the estimator's default; its extra products are counted in its "
             f"passes).", "",
             "| network | keep_prob | control variates | criterion | plain MC passes | "
             "certified passes (derivatives and pilot) | ratio in passes | "
             "ratio in seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.description} | {num(r.keep_prob)} | {r.control_variates} | "
                     f"{r.criterion} | {r.plain_passes:,.0f} | "
                     f"{r.certified_passes:,.0f} ({r.certified_overhead_passes:,.0f}) | "
                     f"{r.pass_ratio:.2f}x | {r.seconds_ratio:.2f}x |")
    best = df[df.control_variates == df.control_variates.iloc[-1]]
    groups = best.groupby(["description", "keep_prob"], sort=False)
    met = [f"{d} at keep_prob {num(k)} ({g.pass_ratio.min():.2f}-{g.pass_ratio.max():.2f}x)"
           for (d, k), g in groups if g.pass_ratio.min() >= target]
    near = [f"{d} at keep_prob {num(k)}: {g.pass_ratio.min():.2f}-{g.pass_ratio.max():.2f}x"
            for (d, k), g in groups if g.pass_ratio.min() < target]
    lines += ["", f"The issue's target, at least {target:.0f}x fewer forward passes than plain "
              f"MC for the same half-width on both criteria, is "
              + (f"met on {names(met)}" if met else "met on none of the networks")
              + (f"; not met on {'; '.join(near)}" if near else "") + ". Each ratio is a "
              f"point estimate from one run of {int(r0.pairs)} pairs, without an interval: "
              f"a ratio within a few tenths of the target does not settle it."]
    if df.control_variates.nunique() > 1:
        pairs = []
        for (d, k), g in df.groupby(["description", "keep_prob"], sort=False):
            by = {cv: h.pass_ratio for cv, h in g.groupby("control_variates")}
            if set(by) >= {"taylor", "taylor+surrogate"}:
                a, b = by["taylor"], by["taylor+surrogate"]
                pairs.append(f"{d} at keep_prob {num(k)}: {a.min():.2f}-{a.max():.2f}x with "
                             f"the Taylor control variates alone, {b.min():.2f}-{b.max():.2f}x "
                             f"with the surrogate's added")
        lines += ["", "Passes saved against plain MC (ratio in passes, over the two "
                  "criteria), per network: " + "; ".join(pairs) + "."]
    hours = df.plain_seconds / 3600
    lines += ["", f"At the measured seconds per pass, plain MC would need "
              f"{hours.min():,.1f} to {hours.max():,.0f} hours on this machine to reach the "
              f"half-width over these networks and criteria; neither estimator was run to "
              f"it (the counts are projections)."]
    if "peak_share" in df:
        tp = df.drop_duplicates(["description", "keep_prob"])
        shares = "; ".join(f"{r.description}, keep_prob {num(r.keep_prob)}: "
                           f"{r.subnetwork_examples_per_s:,.0f} subnetwork-examples per s, "
                           f"{r.peak_share:.1%} of the peak (passes alone "
                           f"{r.passes_peak_share:.1%})" for r in tp.itertuples())
        lines += ["", f"Throughput of the certified estimator's sampled forward passes "
                  f"(forward passes, targets and control variates of {int(r0.pairs)} pairs on "
                  f"one batch of {int(r0.throughput_rows)} images, one BLAS thread, CPU "
                  f"seconds, timed alternately with a 1024 x 1024 float64 GEMM whose best "
                  f"was {tp.gemm_peak_gflops.min():.1f}-{tp.gemm_peak_gflops.max():.1f} "
                  f"GFLOP/s; the work counted is the mask-dependent products, from the first "
                  f"dropped layer on): {shares}. The issue's target, 50% of the peak for "
                  f"the sampled forward passes, is "
                  + ("met on every network" if (tp.peak_share >= 0.5).all() else
                     "not met on any network with the control variates' products counted"
                     if (tp.peak_share < 0.5).all() else
                     f"met on {(tp.peak_share >= 0.5).sum()} of {len(tp)} networks")
                  + (" (passes alone: met on "
                     + ("every network" if (tp.passes_peak_share >= 0.5).all() else
                        f"{(tp.passes_peak_share >= 0.5).sum()} of {len(tp)}")
                     + ")." if (tp.passes_peak_share >= 0.5).any() else
                     " (nor on the passes alone).")]
    return "\n".join(lines)


@BENCH.figure("bench")
def plot_bench(df: pd.DataFrame) -> Figure:
    """Seconds against the number of dropped units: naive per-mask loop vs the package."""
    fig, axes = new_figure(width=7.2, height=4.4)
    ax = axes[0, 0]
    if "host" in df:  # the last host measured (its rows come last)
        df = df[df["host"] == df["host"].iloc[-1]]
    sweep = df[df["case"] == "sweep"].sort_values("n_dropped")
    arch = "8-h-h-10 softmax"
    # Each legend entry is drawn exactly as its points are: the naive line
    # without markers, then its measured points filled and its extrapolated
    # ones hollow (an entry with no point is not drawn).
    naive = sweep[sweep["method"] == "naive"]
    ax.plot(naive["n_dropped"], naive["seconds"], color="0.35", ls="--",
            label=f"naive loop: mean, NWGM, variance ({arch})")
    guessed = naive["extrapolated"].astype(bool)
    for points, style, label in ((naive[~guessed], {"mfc": "0.35"}, "naive, measured"),
                                 (naive[guessed], {"mfc": "white"},
                                  "naive, extrapolated from the first masks")):
        if not points.empty:
            ax.plot(points["n_dropped"], points["seconds"], ls="none", marker="o", mec="0.35",
                    label=label, **style)
    rows = sweep[sweep["method"] == "package"]
    ax.plot(rows["n_dropped"], rows["seconds"], color="C0", ls="-", marker="o",
            label=f"package: mean, NWGM, variance ({arch})")
    package = df[df["method"] == "package"]
    for stat, marker, color, label in (
        ("mean+nwgm", "s", "C1", "package: mean and NWGM only (softmax)"),
        ("nwgm", "^", "C2", "package: NWGM only (softmax)"),
        ("identity", "v", "C3", "package: identity output, mean and variance"),
    ):
        rows = package[package["statistics"] == stat]
        ax.plot(rows["n_dropped"], rows["seconds"], ls="none", marker=marker, color=color,
                label=label)
    rows = package[package["case"] == "g"]
    ax.plot(rows["n_dropped"], rows["seconds"], ls="none", marker="D", color="C4",
            label="package: generic path, input and first hidden layer dropped")
    rows = package[package["case"] == "a"]
    ax.plot(rows["n_dropped"], rows["seconds"], ls="none", marker="P", color="C5",
            label="package: sigmoid 2-10-10-1, mean, NWGM, variance")
    c_rows = df[(df["method"] == "c_reference") & (df["case"] != "sweep")]
    ax.plot(c_rows["n_dropped"], c_rows["seconds"], ls="none", marker="x", color="k",
            label="hand-written C (softmax: mean and NWGM; identity: Gray-code E[hidden])")
    ax.set_yscale("log")
    ax.set_xlabel("dropped units n (2^n subnetworks)")
    ax.set_ylabel("seconds")
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=2, fontsize=7)
    first = df.iloc[0]
    ax.set_title(f"Exact ensemble of {first['n_examples']} inputs, both hidden layers dropped\n"
                 + f"{first['blas']}, matmul peak {first['matmul_peak_gflops']:.0f} GFLOP/s"
                 + (f"\n{first['host']}" if "host" in df else ""),
                 fontsize=9)
    return fig
