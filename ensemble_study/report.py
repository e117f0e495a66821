"""The documentation's numbers, generated from the committed CSVs.

The documents (README.md and the Markdown pages under ``docs/``, see
:func:`documents`) hold blocks between ``<!-- report: NAME -->`` and
``<!-- /report -->``. Each NAME is a function here (registered with
:func:`block`) that reads CSVs under ``results/`` and returns the block's
Markdown: tables, and the sentences that quote numbers, each comparison with
its bootstrap 95% confidence interval or its paired test
(:mod:`ensemble_study.stats`). ``ensemble-study report`` rewrites the blocks
of every document; ``--check`` (and a test) fails when a block differs from
what the CSVs give. Prose outside the blocks quotes no number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .results import load_result

BLOCKS: dict[str, Callable[[Path], str]] = {}
_BLOCK = re.compile(r"(<!-- report: ([\w-]+) -->\n)(.*?)(<!-- /report -->)", re.S)


def block(name: str):
    """Register ``fn(results_dir) -> markdown`` as the block ``name``."""

    def register(fn):
        BLOCKS[name] = fn
        return fn

    return register


def render(name: str, results_dir) -> str:
    """The Markdown of one block, ending with a newline."""
    if name not in BLOCKS:
        raise ValueError(f"unknown report block {name!r}; known: {sorted(BLOCKS)}")
    text = BLOCKS[name](Path(results_dir)).rstrip("\n") + "\n"
    return text


def update(text: str, results_dir) -> tuple[str, list[str]]:
    """``text`` with every block regenerated, and the names of the blocks that changed."""
    changed = []

    def replace(match):
        head, name, old, tail = match.groups()
        new = render(name, results_dir)
        if new != old:
            changed.append(name)
        return head + new + tail

    return _BLOCK.sub(replace, text), changed


def blocks_in(text: str) -> list[str]:
    """Names of the blocks in ``text``, in order."""
    return [m.group(2) for m in _BLOCK.finditer(text)]


def documents(root=".") -> list[Path]:
    """The documents under ``root`` that hold a generated block.

    ``README.md``, then every ``docs/**/*.md`` in sorted order; folders whose
    name starts with ``_`` or ``.`` (a docs build, generated pages) are
    skipped, and so is ``docs/auto_examples`` (the gallery's output).

    Parameters
    ----------
    root : str or Path
        The repository's folder.

    Returns
    -------
    list of Path
        Paths under ``root`` (relative if ``root`` is).
    """
    root = Path(root)
    docs = root / "docs"
    candidates = [root / "README.md"]
    if docs.is_dir():
        candidates += sorted(
            path for path in docs.rglob("*.md")
            if not any(part.startswith(("_", ".")) or part == "auto_examples"
                       for part in path.relative_to(docs).parts[:-1]))
    return [path for path in candidates if path.is_file() and blocks_in(path.read_text())]


# --- formatting ---------------------------------------------------------------------------

def num(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits (0 stays 0)."""
    if x == 0:
        return "0"
    if not np.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 else f"{x:.{digits - 1}e}"


def ci(est: float, low: float, high: float, digits: int = 3) -> str:
    """``est [low, high]``."""
    if low == high == est:
        return num(est, digits)
    return f"{num(est, digits)} [{num(low, digits)}, {num(high, digits)}]"


def pvalue(p: float) -> str:
    return "p < 1e-4" if p < 1e-4 else f"p = {p:.2g}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _median_ci(values) -> str:
    return ci(*stats.bootstrap_ci(np.sort(np.asarray(values, dtype=float))))


# The CSVs that no study command of the same name writes.
_WRITERS = {"resume": "python scripts/resume_demo.py",
            "reproduce_time": "python scripts/time_reproduce.py",
            "compile_cost": "python scripts/compile_cost.py",
            "reproduce_cost": "ensemble-study reproduce"}


def _load(results_dir: Path, name: str) -> pd.DataFrame:
    path = results_dir / f"{name}.csv"
    if not path.exists():
        writer = _WRITERS.get(name, f"ensemble-study {name}")
        raise FileNotFoundError(f"report needs {path}; run `{writer}` first")
    return load_result(path)


EXACT = 1e-9  # a gap below this is rounding error


# --- sweep ----------------------------------------------------------------------------------

@block("sweep-table")
def sweep_table(results_dir: Path) -> str:
    """Median relative gap at keep_prob 0.5 (inverted), with CIs and the paired test."""
    df = _load(results_dir, "sweep")
    d = df[(df.keep_prob == 0.5) & (df.scheme == "inverted") & (df.weights == "original")]
    rows = []
    for (act, out), g in d.groupby(["activation", "output"], sort=False):
        piv = g.pivot_table(index="seed", columns="statistic", values="relative_gap")
        mean, nwgm = piv["arithmetic_mean"], piv["nwgm"]
        if nwgm.max() < EXACT:
            rows.append([act, out, _median_ci(mean), "0 (exact)", "", ""])
            continue
        test = stats.wilcoxon_paired(nwgm.to_numpy(), mean.to_numpy())
        rows.append([act, out, _median_ci(mean), _median_ci(nwgm),
                     _median_ci((mean / nwgm).to_numpy()),
                     f"{test['share_a_less']:.0%}, {pvalue(test['pvalue'])}"])
    n = d["seed"].nunique()
    return (
        f"Median over {n} networks [bootstrap 95% CI] of the relative gap to the scaled "
        "pass at keep_prob 0.5, inverted dropout. *Ratio*: the per-network ratio of the "
        "two gaps; *closer to NWGM*: the share of networks whose NWGM gap is the smaller, "
        "and the Wilcoxon signed-rank test of the paired gaps.\n\n"
        + table(["hidden units", "output", "arithmetic mean", "NWGM", "ratio mean / NWGM",
                 "closer to NWGM"], rows))


@block("sweep-equivalence")
def sweep_equivalence(results_dir: Path) -> str:
    """Vanilla dropout on the equivalent weights against inverted dropout (fact 5)."""
    df = _load(results_dir, "sweep")
    k = ["output", "activation", "keep_prob", "seed", "statistic"]
    inv = df[df.scheme == "inverted"].set_index(k).sort_index()
    eq = df[df.weights == "equivalent"].set_index(k).sort_index()
    cols = ["mean_abs_gap", "max_abs_gap", "relative_gap"]
    diff = float((inv[cols] - eq[cols]).abs().to_numpy().max())
    return (f"Largest difference between the inverted rows and the vanilla rows on the "
            f"equivalent weights, over every network, keep_prob and gap measure: "
            f"**{num(diff, 2)}** ({len(inv):,} pairs of rows).")


def network_slopes(df: pd.DataFrame, q_min: float = 0.8, metric: str = "mean_abs_gap"):
    """Per network, the least-squares slope of log(gap) against log((1 - q)/q), q_min <= q < 1."""
    near = df[(df.keep_prob >= q_min) & (df.keep_prob < 1)]
    keys = ["output", "activation", "scheme", "weights", "statistic"]
    rows = []
    for key, g in near.groupby(keys + ["seed"], sort=False):
        gap = g[metric].to_numpy()
        if len(g) >= 2 and np.all(gap > 1e-12):
            q = g["keep_prob"].to_numpy()
            slope = np.polyfit(np.log((1 - q) / q), np.log(gap), 1)[0]
            rows.append(dict(zip(keys + ["seed"], key, strict=True), slope=slope))
    return pd.DataFrame(rows, columns=keys + ["seed", "slope"])


@block("sweep-slopes")
def sweep_slopes(results_dir: Path) -> str:
    """Fitted small-noise slopes per scheme, with CIs over networks."""
    df = _load(results_dir, "sweep")
    slopes = network_slopes(df[df.weights == "original"])
    if slopes.empty:
        return "No keep_prob in [0.8, 1) was run: no slope to fit."
    qs = sorted(q for q in df.keep_prob.unique() if 0.8 <= q < 1)
    rows = []
    for (out, act, stat), g in slopes.groupby(["output", "activation", "statistic"], sort=False):
        cells = [_median_ci(g.loc[g.scheme == s, "slope"]) for s in ("inverted", "vanilla")]
        rows.append([out, act, stat.replace("arithmetic_mean", "arithmetic mean")
                     .replace("nwgm", "NWGM"), *cells])
    summary = stats.bootstrap_ci(np.sort(slopes.loc[slopes.scheme == "inverted", "slope"]))
    return (
        f"Slope of log(mean absolute gap) against log((1-q)/q), fitted per network on "
        f"keep_prob {', '.join(f'{q:g}' for q in qs)}; median over networks [bootstrap 95% "
        f"CI]. Over every inverted-dropout curve the median slope is {ci(*summary)}.\n\n"
        + table(["output", "hidden units", "statistic", "inverted", "vanilla"], rows))


# --- Monte Carlo ------------------------------------------------------------------------------

def network_crossings(df: pd.DataFrame, metric: str = "mean_abs_gap") -> pd.DataFrame:
    """Per network: the smallest K from which the median over draws beats the scaled pass.

    NaN when no K of the grid does (every larger K must beat it too).
    """
    rows = []
    for (act, stat, seed), g in df.groupby(["activation", "statistic", "seed"], sort=False):
        scaled = g.loc[g.method == "scaled", metric].median()
        med = g[g.method == "sampled"].groupby("n_subnetworks")[metric].median().sort_index()
        beats = (med <= scaled).to_numpy()
        first = 0 if beats.all() else len(beats) - int(np.argmin(beats[::-1]))
        k = float(med.index[first]) if first < len(beats) else np.nan
        rows.append({"activation": act, "statistic": stat, "seed": seed, "k": k})
    return pd.DataFrame(rows)


@block("mc-crossover")
def mc_crossover(results_dir: Path) -> str:
    df = _load(results_dir, "mc")
    cross = network_crossings(df)
    ks = sorted(df.loc[df.method == "sampled", "n_subnetworks"].unique())
    rows = []
    for act, g in cross.groupby("activation", sort=False):
        cells = []
        for stat in ("arithmetic_mean", "nwgm"):
            k = g.loc[g.statistic == stat, "k"]
            never = int(k.isna().sum())
            # Networks where no K of the grid wins count as beyond the grid's largest K.
            cells.append(f"K = {_median_ci(k.fillna(np.inf).clip(upper=2 * max(ks)))}"
                         + (f" ({never} never)" if never else ""))
        rows.append([act, *cells])
    first = df.iloc[0]
    return (
        f"Per network, the smallest K from which the median over {df['repeat'].nunique()} "
        f"draws of a K-member ensemble is closer to the exact ensemble than the scaled pass "
        f"({first['architecture']}, {first['output']} output, {first['scheme']} dropout, "
        f"keep_prob {first['keep_prob']:g}; K on the grid {', '.join(f'{k:g}' for k in ks)}); "
        f"median over {df['seed'].nunique()} networks [bootstrap 95% CI].\n\n"
        + table(["hidden units", "arithmetic mean", "NWGM"], rows))


# --- spread -----------------------------------------------------------------------------------

@block("spread")
def spread(results_dir: Path) -> str:
    df = _load(results_dir, "spread")
    rows = []
    for (act, inp), g in df.groupby(["activation", "input"], sort=False):
        sub = g[g.quantity == "subnetwork"]["value"]
        val = {q: g.loc[g.quantity == q, "value"].iloc[0] for q in ("arithmetic_mean", "nwgm",
                                                                     "scaled")}
        rows.append([act, str(inp), f"{sub.min():.3f} to {sub.max():.3f}",
                     f"{val['arithmetic_mean']:.3f}", f"{val['nwgm']:.3f}",
                     f"{val['scaled']:.3f}"])
    return table(["hidden units", "input", "subnetwork outputs", "arithmetic mean", "NWGM",
                  "scaled pass"], rows)


# --- depth ------------------------------------------------------------------------------------

@block("depth-table")
def depth_table(results_dir: Path) -> str:
    df = _load(results_dir, "depth")
    # The largest number of dropped units that every depth reaches.
    reach = df.groupby("n_dropped")["depth"].nunique()
    budget = int(reach[reach == reach.max()].index.max())
    d = df[df.n_dropped == budget]
    depths = sorted(d.depth.unique())
    rows = []
    for act, g in d.groupby("activation", sort=False):
        for stat in ("arithmetic_mean", "nwgm"):
            s = g[g.statistic == stat]
            cells = []
            for dep in depths:
                v = s.loc[s.depth == dep, "relative_gap"]
                cells.append("0 (exact)" if v.max() < EXACT else _median_ci(v))
            lo, hi = (s.loc[s.depth == dep, "relative_gap"].to_numpy() for dep in
                      (depths[0], depths[-1]))
            diff = _difference_of_medians(hi, lo, seed=hash_key(act, stat))
            rows.append([act, stat.replace("arithmetic_mean", "arithmetic mean")
                         .replace("nwgm", "NWGM"), *cells, diff])
    n = d.seed.nunique()
    return (
        f"Relative gap at {budget} dropped units, median over {n} networks per cell "
        f"[bootstrap 95% CI]; last column: the median at {depths[-1]} hidden layers minus "
        f"the median at {depths[0]} [bootstrap 95% CI of the difference; different networks, "
        f"so not paired].\n\n"
        + table(["hidden units", "statistic",
                 *[f"{k} layer{'s' if k > 1 else ''}" for k in depths],
                 f"{depths[-1]} minus {depths[0]} layers"], rows))


def hash_key(*key) -> int:
    import zlib

    return zlib.crc32(repr(key).encode())


def _difference_of_medians(a, b, *, seed: int, n_resamples: int = stats.N_RESAMPLES) -> str:
    """median(a) - median(b) with a bootstrap CI, resampling each sample on its own."""
    a, b = np.sort(a), np.sort(b)
    g = np.random.default_rng(seed)
    da = np.median(a[g.integers(0, a.size, (n_resamples, a.size))], axis=1)
    db = np.median(b[g.integers(0, b.size, (n_resamples, b.size))], axis=1)
    low, high = np.quantile(da - db, [0.025, 0.975])
    return ci(float(np.median(a) - np.median(b)), float(low), float(high))


@block("depth-width")
def depth_width(results_dir: Path) -> str:
    """Does width matter at fixed depth? The gap at the widest against the narrowest layers."""
    df = _load(results_dir, "depth")
    d = df[df.statistic == "arithmetic_mean"]
    rows = []
    for (act, dep), g in d.groupby(["activation", "depth"], sort=False):
        widths = sorted(g.width.unique())
        if len(widths) < 2:
            continue
        lo, hi = (g.loc[g.width == w, "relative_gap"].to_numpy() for w in (widths[0],
                                                                             widths[-1]))
        rows.append([act, str(dep), f"{widths[0]} to {widths[-1]}", _median_ci(lo),
                     _median_ci(hi), _difference_of_medians(hi, lo, seed=hash_key(act, dep))])
    return (
        "Arithmetic-mean relative gap at the narrowest and the widest hidden layers of each "
        "depth, median over networks [bootstrap 95% CI], and their difference [bootstrap 95% "
        "CI].\n\n"
        + table(["hidden units", "hidden layers", "width", "narrowest", "widest",
                 "widest minus narrowest"], rows))


# --- trained ----------------------------------------------------------------------------------

def _trained_predictor(d: pd.DataFrame) -> pd.Series:
    return d.predictor.where(d.predictor != "sampled", "K = " + d.n_samples.astype(str))


@block("trained-error")
def trained_error(results_dir: Path) -> str:
    df = _load(results_dir, "trained")
    d = df[(df.dataset == "digits") & (df.state == "trained")]
    d = d.assign(p=_trained_predictor(d))
    per_seed = d.groupby(["scheme", "keep_prob", "p", "seed"], as_index=False)["error"].mean()
    preds = ["exact_mean", "exact_nwgm", "scaled"] + sorted(
        (p for p in per_seed.p.unique() if p.startswith("K = ")), key=lambda p: int(p[4:]))
    rows = []
    for (scheme, q), g in per_seed.groupby(["scheme", "keep_prob"]):
        cells = []
        for p in preds:
            v = np.sort(g.loc[g.p == p, "error"].to_numpy())
            cells.append(ci(*stats.bootstrap_ci(v, "mean")))
        a = g[g.p == "scaled"].set_index("seed")["error"]
        b = g[g.p == "exact_mean"].set_index("seed")["error"].reindex(a.index)
        diff = ci(*stats.paired_bootstrap_ci(a.to_numpy(), b.to_numpy()))
        rows.append([scheme, f"{q:g}", *cells, diff])
    n_seeds = d.seed.nunique()
    header = ["scheme", "keep_prob", "exact mean", "NWGM", "scaled pass", *preds[3:],
              "scaled minus exact mean"]
    return (
        f"Test error on digits ({d.architecture.iloc[0]}), mean over {n_seeds} training "
        f"seeds [bootstrap 95% CI over seeds]; the last column is the paired difference "
        f"(same seed, same test images) [paired bootstrap 95% CI].\n\n" + table(header, rows))


@block("trained-nll")
def trained_nll(results_dir: Path) -> str:
    df = _load(results_dir, "trained")
    d = df[(df.state == "trained") & df.predictor.isin(["exact_mean", "exact_nwgm", "scaled"])]
    rows = []
    for (ds, scheme, q), g in d.groupby(["dataset", "scheme", "keep_prob"], sort=False):
        piv = g.pivot_table(index="seed", columns="predictor", values="nll")
        cells = [ci(*stats.bootstrap_ci(np.sort(piv[p].to_numpy()), "mean"))
                 for p in ("exact_mean", "exact_nwgm", "scaled")]
        diff = ci(*stats.paired_bootstrap_ci(piv["scaled"].to_numpy(),
                                             piv["exact_mean"].to_numpy()))
        rows.append([ds, scheme, f"{q:g}", *cells, diff])
    return (
        "Test negative log-likelihood (nats), mean over training seeds [bootstrap 95% CI]; "
        "last column: the paired difference [paired bootstrap 95% CI].\n\n"
        + table(["dataset", "scheme", "keep_prob", "exact mean", "NWGM", "scaled pass",
                 "scaled minus exact mean"], rows))


@block("trained-gap")
def trained_gap(results_dir: Path) -> str:
    df = _load(results_dir, "trained")
    d = df[(df.predictor == "scaled") & (df.dataset == "digits")]
    rows = []
    for (scheme, q), g in d.groupby(["scheme", "keep_prob"], sort=False):
        piv = {m: g.pivot_table(index="seed", columns="state", values=m)
               for m in ("total_variation", "disagreement")}
        cells = []
        for m in ("total_variation", "disagreement"):
            cells += [_median_ci(piv[m]["trained"]), _median_ci(piv[m]["init"])]
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


# --- boundary ---------------------------------------------------------------------------------

@block("boundary")
def boundary(results_dir: Path) -> str:
    df = _load(results_dir, "boundary")
    first = df.groupby(["scheme", "keep_prob"], sort=True)[
        ["test_error_exact", "test_error_scaled"]].first()
    rows = [[s, f"{q:g}", f"{r.test_error_exact:.3f}", f"{r.test_error_scaled:.3f}"]
            for (s, q), r in first.iterrows()]
    return table(["scheme", "keep_prob", "test error, exact mean", "test error, scaled pass"],
                 rows)


# --- a PyTorch network (scripts/torch_example.py, ensemble-study evaluate) -----------------

@block("torch-example")
def torch_example(results_dir: Path) -> str:
    df = _load(results_dir, "torch_example")
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


@block("torch-evaluate")
def torch_evaluate(results_dir: Path) -> str:
    df = _load(results_dir, "torch_example_evaluate")
    tv = {(r.predictor, r.reference): r.total_variation for r in df.itertuples()}
    return (f"`ensemble-study evaluate` on that model: the `eval()` (scaled) pass is "
            f"{num(tv['scaled', 'nwgm'])} (total variation) from the NWGM and "
            f"{num(tv['scaled', 'mean'])} from the arithmetic mean; the NWGM is "
            f"{num(tv['nwgm', 'mean'])} from the mean.")


# --- approximations ---------------------------------------------------------------------------

_APPROX_LABELS = {"exact": "exact ensemble", "scaled": "scaled pass", "nwgm": "NWGM",
                  "nwgm_corrected": "NWGM + correction",
                  "moment_propagation": "moment propagation", "mc": "MC", "rb_mc": "RB MC"}
_APPROX_ACTS = ("identity", "relu", "tanh", "sigmoid")


def _approx_name(predictor: str, k: int = 0) -> str:
    return _APPROX_LABELS[predictor] + (f", K = {k}" if k else "")


def _approx(results_dir: Path):
    from .studies import approximations

    return approximations, _load(results_dir, "approximations")


@block("approximations-tables")
def approximations_tables(results_dir: Path) -> str:
    """Median error of the mean and median cost per predictor, keep_prob and activation."""
    study, df = _approx(results_dir)
    s = study.summary(df)
    parts = []
    for part in ("random", "trained"):
        t = s[s.part == part]
        if t.empty:
            continue
        qs = sorted(t.keep_prob.unique())
        acts = [a for a in _APPROX_ACTS if a in t.columns and t[a].notna().any()]
        rows = []
        for (pred, k), g in t.groupby(["predictor", "n_samples"], sort=False):
            g = g.set_index("keep_prob")
            rows.append([_approx_name(pred, k), num(g["cost_passes"].iloc[0])]
                        + [num(g.loc[q, a]) if q in g.index else "" for q in qs for a in acts])
        header = ["predictor", "cost"] + [f"q={q:g} {a}" if i == 0 else a
                                          for q in qs for i, a in enumerate(acts)]
        n = df[df.part == part].groupby(["dataset", "output", "seed"]).ngroups
        what = ("random networks" if part == "random"
                else "trained networks (one per dataset, seed and keep_prob)")
        parts.append(f"{what.capitalize()}, {n} per hidden activation and keep_prob:\n\n"
                     + table(header, rows))
    return ("Median over networks of the mean |predicted - exact mean| (over inputs and "
            "outputs; sigmoid and softmax outputs pooled; sampled predictors averaged over "
            f"{df['draw'].max() + 1} draws), and the median cost in forward-pass "
            "equivalents.\n\n" + "\n\n".join(parts))


def _paired_sentence(study, df, a, b, k_a=0, k_b=0, metric="mean_abs_error",
                     parts=("random", "trained")) -> str:
    """'a is closer than b for ...; b for ...; no significant difference for ...'."""
    res = study.paired(df, a, b, metric=metric, k_a=k_a, k_b=k_b)
    res = res[res.part.isin(parts)]
    groups = {"a": [], "b": [], "none": []}
    for r in res.itertuples():
        better = round(r.share_a_better * r.n_pairs)
        cell = f"{r.part} {r.activation} ({better}/{r.n_pairs}, {pvalue(r.p_value)})"
        side = ("none" if not r.p_value < 0.05
                else "a" if r.median_difference < 0 else "b")
        groups[side].append(cell)
    na, nb = _approx_name(a, k_a), _approx_name(b, k_b)
    out = []
    if groups["a"]:
        out.append(f"{na} is closer than {nb} for " + ", ".join(groups["a"]))
    if groups["b"]:
        out.append(f"{nb} is closer than {na} for " + ", ".join(groups["b"]))
    if groups["none"]:
        out.append(f"{na} against {nb}: no significant difference for "
                   + ", ".join(groups["none"]))
    return "; ".join(out) + "."


@block("approximations-paired")
def approximations_paired(results_dir: Path) -> str:
    """Paired comparisons of the mean's error across networks (Wilcoxon signed-rank)."""
    study, df = _approx(results_dir)
    ks = set(df.loc[df.predictor == "mc", "n_samples"])
    pairs = [("moment_propagation", 0, "scaled", 0), ("moment_propagation", 0,
                                                     "nwgm_corrected", 0),
             ("nwgm", 0, "scaled", 0), ("nwgm_corrected", 0, "nwgm", 0),
             ("rb_mc", 10, "mc", 10)]
    lines = [f"* {_paired_sentence(study, df, a, b, ka, kb)}" for a, ka, b, kb in pairs
             if {ka, kb} - {0} <= ks]
    for k_rb, k_mc in ((10, 50), (20, 100)):
        if {k_rb, k_mc} <= ks:
            lines.append("* At about equal cost on the random networks: "
                         + _paired_sentence(study, df, "rb_mc", "mc", k_rb, k_mc,
                                            parts=("random",)))
    return ("Each network's error (a random network's averaged over its keep_probs, which "
            "share it), paired across networks; in brackets the networks on which the "
            "first is closer, and the Wilcoxon signed-rank p (p < 0.05 counts):\n\n"
            + "\n".join(lines))


@block("approximations-crossover")
def approximations_crossover(results_dir: Path) -> str:
    """The smallest K from which plain and RB MC beat each one-pass method."""
    study, df = _approx(results_dir)
    cross = study.crossovers(df)
    dets = [d for d in study.DETERMINISTIC if d in set(cross.against)]
    rows = []
    for (part, act, sampler), g in cross.groupby(["part", "activation", "sampler"],
                                                 sort=False):
        k = g.set_index("against")["k"]
        rows.append([part, act, _APPROX_LABELS[sampler]]
                    + ["never" if not k[d] == k[d] else f"{k[d]:g}" for d in dets])
    ks = sorted(df.loc[df.predictor == "mc", "n_samples"].unique())
    rb = df[(df.predictor == "rb_mc") & (df.part == "random")]
    per_sample = (rb.cost_passes / rb.n_samples).median()
    exact = df[df.predictor == "exact"].groupby("part")["cost_passes"].median()
    return ("Smallest K of the grid (" + ", ".join(f"{k:g}" for k in ks) + ") from which "
            "every larger K has a negative median paired difference to the method with "
            "Wilcoxon p < 0.05 (networks as above); *never*: no K of the grid does.\n\n"
            + table(["part", "hidden units", "sampler"] + [_APPROX_LABELS[d] for d in dets],
                    rows)
            + f"\n\nAn RB MC sample costs {num(per_sample)} forward-pass equivalents on the "
            "random networks; the exact ensemble costs " + " and ".join(
                f"{num(v)} ({p})" for p, v in exact.items()) + ".")


@block("approximations-variance")
def approximations_variance(results_dir: Path) -> str:
    """Median relative error and log-ratio of the predicted variance, and paired tests."""
    study, df = _approx(results_dir)
    v = study.variance_summary(df, ks=(10, 100))
    cols = [(p, k) for p, k in (("moment_propagation", 0), ("mc", 10), ("mc", 100),
                                 ("rb_mc", 10), ("rb_mc", 100))
            if ((v.predictor == p) & (v.n_samples == k)).any()]
    rows = []
    for (part, act), g in v.groupby(["part", "activation"], sort=False):
        g = g.set_index(["predictor", "n_samples"])
        rows.append([part, act] + [
            f"{num(g.loc[c, 'variance_rel_error'])} ({num(g.loc[c, 'variance_log_ratio'], 2)})"
            if c in g.index else "" for c in cols])
    lines = [f"* {_paired_sentence(study, df, a, b, ka, kb, metric='variance_rel_error')}"
             for a, ka, b, kb in (("moment_propagation", 0, "mc", 10), ("rb_mc", 10, "mc", 10),
                                  ("rb_mc", 10, "mc", 100))
             if ((df.predictor == a) & (df.n_samples == ka)).any()
             and ((df.predictor == b) & (df.n_samples == kb)).any()]
    return ("Median over networks of the relative error |V - V_exact| / V_exact of the "
            "predicted variance (in brackets the median log-ratio log(V / V_exact): "
            "negative under-predicts). Plain MC's variance is its K members' (ddof = 0).\n\n"
            + table(["part", "hidden units"] + [_approx_name(*c) for c in cols], rows)
            + "\n\nPaired across networks, the relative error of the predicted variance:\n\n"
            + "\n".join(lines))


@block("approximations-baldi")
def approximations_baldi(results_dir: Path) -> str:
    """Share of cases breaking Baldi & Sadowski's bound, by activation and weight scale."""
    study, df = _approx(results_dir)
    b = study.baldi_summary(df)
    scales = sorted(b.weight_scale.unique())
    rows = []
    for act, g in b.groupby("activation", sort=False):
        g = g.set_index("weight_scale")
        rows.append([act] + [f"{g.loc[s, 'share_breaking']:.1%} "
                             f"[{g.loc[s, 'ci_low']:.1%}, {g.loc[s, 'ci_high']:.1%}]"
                             for s in scales])
    d = df[df.part == "baldi"]
    first = d.iloc[0]
    return (f"Share of (network, input) cases with |E - NWGM| above the bound, "
            f"{first['architecture']} sigmoid-output networks with both hidden layers "
            f"dropped at keep_prob {', '.join(f'{q:g}' for q in sorted(d.keep_prob.unique()))}, "
            f"{d.groupby(['activation', 'weight_scale', 'seed']).ngroups // len(scales)} "
            f"networks per weight scale and {d.input.nunique()} inputs each "
            "[95% bootstrap CI over networks]:\n\n"
            + table(["hidden units"] + [f"weights x {s:g}" for s in scales], rows))


# --- speed --------------------------------------------------------------------------------

_STATISTICS = {"all": "mean, NWGM, variance", "mean+nwgm": "mean and NWGM", "nwgm": "NWGM only",
               "identity": "mean, variance"}


def _seconds(s: float) -> str:
    return f"{s:.3g} s"


@block("bench-table")
def bench_table(results_dir: Path) -> str:
    """The benchmark's rows and the issue-8 targets, from results/bench.csv."""
    df = _load(results_dir, "bench")
    df = df[df.case != "sweep"]
    keys = ["case", "architecture", "output", "statistics", "n_dropped"]
    rows, ratio = [], {}
    for key, g in df.groupby(keys, sort=False):
        case, arch, out, stat, n = key
        by = g.set_index("method")
        pkg, naive = by.loc["package"], by.loc["naive"]
        c = by.loc["c_reference"]["seconds"] if "c_reference" in by.index else np.nan
        one = by.loc["package_1thread"]["seconds"] if "package_1thread" in by.index else np.nan
        vs_c = pkg["vs_c"]
        ratio[case, out, stat, n] = (vs_c, pkg["speedup_vs_naive"])
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

    targets = []
    for n in (20, 24):
        r = ratio.get(("b", "softmax", "all", n))
        if r is not None and np.isfinite(r[0]):
            targets.append(met(f"softmax mean, NWGM and variance at 2^{n}: {r[0]:.2f}x the C "
                               f"kernel's time for the mean and NWGM", r[0] <= 1.5))
    g = next((v for k, v in ratio.items() if k[0] == "g"), None)
    if g is not None:
        targets.append(met(f"generic path: {g[1]:.1f}x faster than the naive loop", g[1] >= 10))
    ident = ratio.get(("c", "identity", "identity", 24))
    if ident is not None and np.isfinite(ident[0]):
        targets.append(met(f"identity output's mean and variance at 2^24: {ident[0]:.1f}x the "
                           f"C Gray-code kernel", ident[0] <= 4))
    first = df.iloc[0]
    return (
        f"{first['n_examples']} inputs; {first['blas']}; float64 matmul peak "
        f"{first['matmul_peak_gflops']:.0f} GFLOP/s in this run.\n\n" + table(header, rows)
        + "\n\n\\* extrapolated from the first masks. The kernels' targets in this run: "
        + "; ".join(targets) + ".")


@block("compile-cost")
def compile_cost(results_dir: Path) -> str:
    df = _load(results_dir, "compile_cost").set_index("cache")
    return (f"The first call of every compiled kernel in a fresh environment costs "
            f"{df.loc['empty', 'warm_up_s']:.1f} s of compilation; in a new process with the "
            f"cache filled, {df.loc['filled', 'warm_up_s']:.1f} s "
            f"(`python scripts/compile_cost.py`, which writes `results/compile_cost.csv`).")



@block("reproduce-cost")
def reproduce_cost(results_dir: Path) -> str:
    df = _load(results_dir, "reproduce_cost")
    total = df.seconds.sum()
    rows = [[r.study, f"{r.seconds / 60:.1f} min", f"{r.seconds / total:.0%}"]
            for r in df.itertuples()]
    return (f"The studies of `ensemble-study reproduce` at the default grids took "
            f"{total / 60:.1f} min on 2 cores, the figures apart (`results/reproduce_cost.csv`, "
            f"which it writes):\n\n"
            + table(["study", "wall time", "share"], rows))


@block("reproduce-time")
def reproduce_time(results_dir: Path) -> str:
    df = _load(results_dir, "reproduce_time").set_index("run")
    one, every = df.loc["one core"], df.loc["every core"]
    return (f"`reproduce --fresh` took {one.wall_s / 60:.1f} min on one core and "
            f"{every.wall_s / 60:.1f} min on every core ({int(every.cpus)} here, "
            f"`--jobs {int(every.jobs)}`): {every.speedup:.2f} times as fast, one run of "
            f"each in turn (`results/reproduce_time.csv`; this VM's run-to-run noise is up "
            f"to 30%).")


@block("resume")
def resume(results_dir: Path) -> str:
    r = _load(results_dir, "resume").iloc[0]
    same = "byte-identical to" if r.identical else "different from"
    return (f"Interrupted once {r.stored_at_interrupt} of its {r.cells} cells were stored, the "
            f"sweep resumed with {r.from_store} cells from the store and recomputed "
            f"{r.recomputed}; it took {r.resumed_s:.0f} s, against {r.uninterrupted_s:.0f} s "
            f"for the uninterrupted run (one run of each), and its CSV was {same} the "
            f"uninterrupted one's (`python scripts/resume_demo.py`, which writes "
            f"`results/resume.csv`).")


# --- Srivastava et al. Fig. 11 and Hinton et al.'s claim (studies.srivastava) ------------

def _srivastava(results_dir: Path):
    from .studies import srivastava

    return srivastava, _load(results_dir, "srivastava")


def _k(k: float) -> str:
    return "> 1000" if not np.isfinite(k) else f"{k:g}"


@block("srivastava-errors")
def srivastava_errors(results_dir: Path) -> str:
    s, df = _srivastava(results_dir)
    e = s.errors(df)
    e = e[e.architecture == "64-20-10"]
    base = e[e.predictor == "no_dropout"].iloc[0]
    cols = [(sc, q) for sc, q in (("inverted", 0.5), ("vanilla", 0.5), ("inverted", 0.8),
                                  ("vanilla", 0.8))]
    rows = []
    for pred, label in (("exact_mean", "exact ensemble"), ("scaled", "scaled pass")):
        cells = []
        for sc, q in cols:
            r = e[(e.scheme == sc) & (e.keep_prob == q) & (e.predictor == pred)].iloc[0]
            cells.append(ci(r.error, r.ci_low, r.ci_high))
        rows.append([label, *cells])
    cells = []
    for sc, q in cols:
        r = e[(e.scheme == sc) & (e.keep_prob == q) & (e.predictor == "exact_mean")].iloc[0]
        cells.append(ci(r.minus_baseline, r.diff_low, r.diff_high))
    rows.append(["exact minus no-dropout", *cells])
    d = s.exact_minus_scaled(df)
    d = d[d.architecture == "64-20-10"]
    cells = []
    for sc, q in cols:
        r = d[(d.scheme == sc) & (d.keep_prob == q)].iloc[0]
        # Error rates differ by whole images: a mean difference of 1e-19 is a zero.
        diff = 0.0 if abs(r.difference) < 1e-12 else r.difference
        cells.append(f"{ci(diff, r.ci_low, r.ci_high)}, {pvalue(r.pvalue)}")
    rows.append(["exact minus scaled (paired; Wilcoxon)", *cells])
    return (f"Test error of 64-20-10 networks, mean over {int(base.n_seeds)} seeds [bootstrap "
            f"95% CI]; the no-dropout baseline errs on "
            f"{ci(base.error, base.ci_low, base.ci_high)}. Differences are paired by seed.\n\n"
            + table(["predictor", *[f"{sc}, {q:g}" for sc, q in cols]], rows))


@block("srivastava-crossings")
def srivastava_crossings(results_dir: Path) -> str:
    s, df = _srivastava(results_dir)
    c = s.crossings(df)
    rows = []
    for (sc, q), g in c.groupby(["scheme", "keep_prob"], sort=False):
        cells = []
        for ref in ("scaled", "exact_mean"):
            r = g[g.reference == ref].iloc[0]
            k = "not reached by 1000" if not np.isfinite(r.k) else _k(r.k)
            cells.append(f"{k} [{_k(r.ci_low)}, {_k(r.ci_high)}]")
        rows.append([f"{sc}, {q:g}", *cells])
    return ("First K of the grid where the mean Monte Carlo error is at most the reference's "
            "[bootstrap 95% CI over seeds; > 1000: some resamples never get there].\n\n"
            + table(["scheme, keep_prob", "K matching the scaled pass",
                     "K matching the exact ensemble"], rows))


@block("srivastava-hinton")
def srivastava_hinton(results_dir: Path) -> str:
    s, df = _srivastava(results_dir)
    h = s.hinton(df)
    rows = [[f"{r.architecture}, {r.scheme}, {r.keep_prob:g}", f"{r.share:.4f}; {r.min_share:.4f}",
             f"{r.min_diff:+.4f}", ci(r.mean_diff, r.ci_low, r.ci_high, 4),
             f"{int(r.n_significant)} of {int(r.n_networks)} (largest p {r.max_pvalue:.1e})",
             f"{r.nwgm_share:.4f}"] for r in h.itertuples()]
    return table(["network, scheme, keep_prob", "share of images (mean over networks; lowest)",
                  "most negative difference", "mean difference, nats [95% CI over seeds]",
                  "networks with Wilcoxon p < 0.05", "share for the NWGM version"], rows)


@block("srivastava-deep-errors")
def srivastava_deep_errors(results_dir: Path) -> str:
    s, df = _srivastava(results_dir)
    e = s.errors(df)
    e = e[(e.architecture == "64-8-8-10") & (e.predictor.isin(["scaled", "no_dropout"]))]
    rows = [[("no dropout" if r.predictor == "no_dropout" else f"{r.scheme}, {r.keep_prob:g}"),
             ci(r.error, r.ci_low, r.ci_high)] for r in e.itertuples()]
    return ("Test error of the 64-8-8-10 networks' scaled pass (mean over seeds [bootstrap 95% "
            "CI]), and of their no-dropout baseline:\n\n"
            + table(["scheme, keep_prob", "test error"], rows))
