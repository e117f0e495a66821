"""Statistics of the approximations study's table, shared by its figures and blocks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ... import stats
from ...network import HIDDEN_ACTIVATIONS
from ...predictors import PREDICTORS
from ...stats import wilcoxon_paired

# The predictors compared, in table order: the deterministic ones and the samplers.
DETERMINISTIC = tuple(n for n, p in PREDICTORS.items() if not p.samples and n != "exact")
SAMPLED = tuple(n for n, p in PREDICTORS.items() if p.samples)
PREDICTOR_ORDER = tuple(PREDICTORS)


def _per_network(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One value per (network, keep_prob, predictor, K): the mean over draws."""
    keys = ["part", "dataset", "activation", "output", "keep_prob", "seed", "predictor",
            "n_samples"]
    return df.groupby(keys, as_index=False, sort=False, dropna=False)[
        [metric, "cost_passes"]].mean()


def summary(df: pd.DataFrame, *, keep_probs=(0.5, 0.8), metric: str = "mean_abs_error",
            ks=(10, 100)) -> pd.DataFrame:
    """Median error and cost per predictor, keep_prob, hidden activation and part.

    Sampled predictors appear at each K of ``ks``; ``exact`` (zero error)
    shows the exact ensemble's cost. Medians are over networks
    (random part) or trained networks (trained part: datasets and seeds),
    each network's value being its mean over draws.

    Returns
    -------
    DataFrame
        ``part, keep_prob, predictor, n_samples, cost_passes`` (median) and one
        column of median ``metric`` per hidden activation.
    """
    d = df[df["part"].isin(["random", "trained"]) & df["keep_prob"].isin(keep_probs)]
    d = d[(d["n_samples"] == 0) | d["n_samples"].isin(ks)]
    per = _per_network(d, metric)
    keys = ["part", "keep_prob", "predictor", "n_samples"]
    table = per.pivot_table(index=keys, columns="activation", values=metric,
                            aggfunc="median")
    cost = per.groupby(keys)["cost_passes"].median().rename("cost_passes")
    order = {name: i for i, name in enumerate(PREDICTOR_ORDER)}
    out = table.join(cost).reset_index()
    out = out.sort_values(["part", "keep_prob", "predictor", "n_samples"],
                          key=lambda s: s.map(order) if s.name == "predictor" else s)
    activations = [a for a in HIDDEN_ACTIVATIONS if a in table.columns]
    return out[keys + ["cost_passes"] + activations].reset_index(drop=True)


def paired(df: pd.DataFrame, a: str, b: str, *, metric: str = "mean_abs_error",
           k_a: int = 0, k_b: int = 0, by=("part", "activation")) -> pd.DataFrame:
    """Paired comparison of predictors ``a`` and ``b`` across networks.

    The unit is a network: a random network's value of ``metric`` is its
    mean over draws and keep_probs (one network serves every keep_prob, so
    its keep_probs are not independent pairs) unless ``keep_prob`` is in
    ``by``; a trained network is trained at one keep_prob. Within each group
    of ``by`` the pairs are compared with the Wilcoxon signed-rank test
    (:func:`ensemble_study.stats.wilcoxon_paired`, two-sided; NaN below 6
    pairs, where p cannot reach 0.05).

    Returns
    -------
    DataFrame
        ``by`` columns, ``n_pairs``, ``median_a``, ``median_b``,
        ``median_difference`` (a - b), ``share_a_better`` and ``p_value``.
    """
    per = _per_network(df[df["part"].isin(["random", "trained"])], metric)
    per["network"] = np.where(per["part"] == "trained",
                              per["dataset"] + "/" + per["seed"].astype(str) + "/"
                              + per["keep_prob"].astype(str),
                              per["output"] + "/" + per["seed"].astype(str))
    keys = list(dict.fromkeys([*by, "part", "activation", "network"]))
    side = {}
    for name, pred, k in (("a", a, k_a), ("b", b, k_b)):
        rows = per[(per["predictor"] == pred) & (per["n_samples"] == k)]
        side[name] = rows.groupby(keys, sort=False)[metric].mean()
    both = pd.concat(side, axis=1).dropna().reset_index()
    rows = []
    for key, g in both.groupby(list(by), sort=False):
        diff = (g["a"] - g["b"]).to_numpy()
        p_value = (wilcoxon_paired(g["a"], g["b"])["pvalue"] if len(g) >= 6 else np.nan)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                     "n_pairs": len(g), "median_a": g["a"].median(),
                     "median_b": g["b"].median(), "median_difference": float(np.median(diff)),
                     "share_a_better": float(np.mean(diff < 0)), "p_value": p_value})
    return pd.DataFrame(rows)


def crossovers(df: pd.DataFrame, *, metric: str = "mean_abs_error", alpha: float = 0.05,
               by=("part", "output", "activation")) -> pd.DataFrame:
    """The smallest K at which plain and RB Monte Carlo beat each deterministic method.

    The unit is a network (a random network's value averaged over its keep_probs, which
    share it; a trained network is trained at one keep_prob). One family per (part,
    output) (:class:`ensemble_study.stats.Family`) holds the paired t-test of every
    (activation, sampler, K, method) comparison; "beats" means a negative mean paired
    difference surviving Holm within that family, at that K and every larger K of the
    grid. NaN when no K of the grid does.

    Returns
    -------
    DataFrame
        ``by`` columns, ``sampler`` (mc or rb_mc), ``against``, ``k``, ``family``.
    """
    per = _per_network(df[df["part"].isin(["random", "trained"])], metric)
    per["network"] = np.where(per["part"] == "trained",
                              per["dataset"] + "/" + per["seed"].astype(str) + "/"
                              + per["keep_prob"].astype(str),
                              per["output"] + "/" + per["seed"].astype(str))
    per = per.groupby(list(by) + ["network", "predictor", "n_samples"], as_index=False,
                      sort=False)[metric].mean()
    ks = sorted(k for k in df.loc[df["predictor"] == "mc", "n_samples"].unique())
    against = [m for m in DETERMINISTIC if (df["predictor"] == m).any()]
    pairs = [(s, k, m, 0) for s in SAMPLED for k in ks for m in against]
    rows = []
    for fam_key, g in per.groupby(list(by[:-1]), sort=False):
        name = ("crossover: " + " ".join(map(str, fam_key)) + "-output networks, "
                + METRIC_NAMES.get(metric, metric))
        fam = paired_family(g, name, metric, pairs, (by[-1],), unit="network")
        t = fam.table()
        if t.empty:  # fewer than two networks per cell: no test
            continue
        t["beats"] = t["survives"] & (t["mean_difference"] < 0)
        for (act, sampler, m), h in t.groupby([by[-1], "a", "b"], sort=False):
            beats = h.set_index("k_a")["beats"].reindex(ks, fill_value=False).tolist()
            first = next((i for i in range(len(ks)) if all(beats[i:])), None)
            rows.append({**dict(zip(by, (*fam_key, act), strict=True)), "sampler": sampler,
                         "against": m, "k": ks[first] if first is not None else np.nan,
                         "family": name})
    return pd.DataFrame(rows, columns=[*by, "sampler", "against", "k", "family"])


def variance_summary(df: pd.DataFrame, *, ks=(10, 100, 1000)) -> pd.DataFrame:
    """Median relative error and log-ratio of the predicted variance, per predictor.

    Over networks and keep_probs (random and trained parts), per hidden
    activation; sampled predictors at each K of ``ks``.
    """
    d = df[df["variance_rel_error"].notna() & (df["predictor"] != "exact")]
    d = d[(d["n_samples"] == 0) | d["n_samples"].isin(ks)]
    return (d.groupby(["part", "predictor", "n_samples", "activation"])
            [["variance_rel_error", "variance_log_ratio"]].median().reset_index())


def baldi_summary(df: pd.DataFrame, *, n_boot: int = 2000) -> pd.DataFrame:
    """Share of (network, input) cases where |E - NWGM| exceeds Baldi's estimate.

    Per hidden activation (and ``all`` of them) and weight scale, with a 95%
    interval from a bootstrap over networks (the inputs of one network are
    not independent cases; a fixed seed keeps the table reproducible), and
    the median of measured / bound.
    """
    d = df[df["part"] == "baldi"]
    d = d.assign(network=d["activation"] + "/" + d["seed"].astype(str),
                 breaks=d["breaks_bound"].astype(bool))
    d = pd.concat([d, d.assign(activation="all")])
    rng = np.random.default_rng(0)
    rows = []
    for (act, scale), g in d.groupby(["activation", "weight_scale"], sort=False):
        per = g.groupby("network")["breaks"].agg(["sum", "count"]).to_numpy()
        pick = rng.integers(0, len(per), size=(n_boot, len(per)))
        boot = per[pick, 0].sum(axis=1) / per[pick, 1].sum(axis=1)
        lo, hi = np.quantile(boot, [0.025, 0.975])
        rows.append({"activation": act, "weight_scale": scale, "n_cases": len(g),
                     "n_networks": len(per), "share_breaking": float(g["breaks"].mean()),
                     "ci_low": float(lo), "ci_high": float(hi),
                     "median_ratio": float((g["nwgm_abs_gap"] / g["baldi_bound"]).median())})
    return pd.DataFrame(rows)


def _wide(cross: pd.DataFrame) -> pd.DataFrame:
    """Crossovers with one column per deterministic method."""
    wide = cross.pivot(index=["part", "output", "activation", "sampler"], columns="against",
                       values="k")
    return wide[[m for m in DETERMINISTIC if m in wide.columns]].reset_index()


# --- The labels, the two ensembles, and claims that survive Holm --------------------------

LABEL_METRICS = ("error", "nll", "brier", "ece")
METRIC_NAMES = {"error": "test error", "nll": "NLL", "brier": "Brier score",
                "ece": "ECE (15 equal-width top-label bins)",
                "mean_abs_error": "mean |predicted - exact mean|",
                "total_variation": "mean total variation to the exact mean",
                "nwgm_abs_error": "mean |predicted - exact NWGM|",
                "variance_log_ratio": "mean log(V / V_exact)",
                "variance_rel_error": "mean |V - V_exact| / V_exact"}
DEPLOY_KS = (10, 100)


def candidates(df: pd.DataFrame, ks=DEPLOY_KS) -> list[tuple[str, int]]:
    """(predictor, K) pairs of the trained part, in registry order: every deterministic
    predictor (the exact mean included) and each sampler at each K of ``ks``."""
    t = df[df["part"] == "trained"]
    have = set(zip(t["predictor"], t["n_samples"], strict=True))
    out = []
    for name in PREDICTOR_ORDER:
        for k in (ks if name in SAMPLED else (0,)):
            if (name, k) in have:
                out.append((name, k))
    return out


def trained_networks(df: pd.DataFrame, metrics) -> pd.DataFrame:
    """One row per trained network (dataset, activation, keep_prob, seed), predictor and
    K: ``metrics`` averaged over the sampled predictors' draws."""
    keys = ["dataset", "output", "activation", "keep_prob", "seed", "predictor", "n_samples"]
    t = df[df["part"] == "trained"]
    return t.groupby(keys, as_index=False, sort=False)[list(metrics)].mean()


def label_table(df: pd.DataFrame, metric: str, ks=DEPLOY_KS) -> pd.DataFrame:
    """Mean of ``metric`` over training seeds with its 95% t-interval, per dataset,
    hidden activation, keep_prob, predictor and K (the unit: one trained network)."""
    per = trained_networks(df, [metric])
    rows = []
    for name, k in candidates(df, ks):
        g0 = per[(per["predictor"] == name) & (per["n_samples"] == k)]
        for (ds, out, act, q), g in g0.groupby(["dataset", "output", "activation",
                                                "keep_prob"], sort=False):
            v = g[metric].dropna().to_numpy()
            m, lo, hi = stats.t_interval(v) if v.size >= 2 else (np.nan,) * 3
            rows.append(dict(dataset=ds, output=out, activation=act, keep_prob=q,
                             predictor=name, n_samples=k, n=v.size, mean=m, low=lo, high=hi))
    return pd.DataFrame(rows)


# Paired values within this relative distance of each other differ by rounding only.
ROUNDING = 1e-9


def paired_family(per: pd.DataFrame, name: str, metric: str, pairs, cell_keys,
                  unit: str = "seed") -> stats.Family:
    """A declared family: for each cell of ``cell_keys`` and each ``(a, k_a, b, k_b)``
    of ``pairs``, the paired t-test of ``metric`` between predictors a and b over
    ``unit`` (networks), Holm within the family. Each claim's details: the cell,
    ``a``, ``b``, ``n``, ``mean_difference`` (a - b), ``low``, ``high``."""
    fam = stats.Family(name)
    for cell, g in per.groupby(list(cell_keys), sort=False):
        cell = cell if isinstance(cell, tuple) else (cell,)
        for a, k_a, b, k_b in pairs:
            side = {}
            for s, pred, k in (("a", a, k_a), ("b", b, k_b)):
                side[s] = g[(g["predictor"] == pred) & (g["n_samples"] == k)].set_index(
                    unit)[metric]
            both = pd.concat(side, axis=1).dropna()
            if len(both) < 2:
                continue
            va, vb = both["a"].to_numpy(), both["b"].to_numpy()
            res = stats.paired_t(va, vb)
            if np.all(np.abs(va - vb) <= ROUNDING * np.maximum(np.abs(va), np.abs(vb))):
                # Equal to rounding (e.g. the NWGM and the scaled pass after identity
                # units, DESIGN fact 10): a t-test on 1e-17 differences is no finding.
                res = {**res, "pvalue": 1.0, "mean_difference": 0.0, "low": 0.0, "high": 0.0}
            key = "/".join(map(str, cell)) + f": {a}{k_a or ''} vs {b}{k_b or ''}"
            fam.add(key, res["pvalue"], **dict(zip(cell_keys, cell, strict=True)),
                    a=a, k_a=k_a, b=b, k_b=k_b, n=res["n"],
                    mean_difference=res["mean_difference"], low=res["low"], high=res["high"])
    return fam


def deploy_families(df: pd.DataFrame, ks=DEPLOY_KS) -> dict:
    """Per (dataset, label metric): every candidate against the scaled pass (what
    people deploy), paired over training seeds in each (activation, keep_prob) cell.
    Datasets (and so outputs and tasks) are never pooled."""
    per = trained_networks(df, LABEL_METRICS)
    pairs = [(n, k, "scaled", 0) for n, k in candidates(df, ks) if n != "scaled"]
    out = {}
    for ds, g in per.groupby("dataset", sort=False):
        for metric in LABEL_METRICS:
            out[(ds, metric)] = paired_family(
                g, f"deploy: {ds}, {METRIC_NAMES[metric]}, against the scaled pass", metric,
                pairs, ("activation", "keep_prob"))
    return out


def target_families(df: pd.DataFrame, ks=DEPLOY_KS) -> dict:
    """Per part and output kind: is each predictor closer to the exact NWGM than to the
    exact arithmetic mean? Paired t of nwgm_abs_error against mean_abs_error (same
    network), per (dataset or output, activation, keep_prob) cell; the unit is the
    network (a random network's keep_probs are separate cells: Holm holds under any
    dependence)."""
    cols = ["mean_abs_error", "nwgm_abs_error"]
    keys = ["part", "dataset", "output", "activation", "keep_prob", "seed", "predictor",
            "n_samples"]
    d = df[df["part"].isin(["random", "trained"]) & (df["output"] != "identity")]
    d = d[(d["n_samples"] == 0) | d["n_samples"].isin(ks)]
    d = d[~d["predictor"].isin(["exact", "nwgm"])]
    per = d.groupby(keys, as_index=False, sort=False)[cols].mean()
    long = pd.concat([per.assign(target="nwgm", distance=per["nwgm_abs_error"]),
                      per.assign(target="mean", distance=per["mean_abs_error"])])
    long["predictor"] = long["predictor"] + ":" + long["target"]
    out = {}
    for (part, output), g in long.groupby(["part", "output"], sort=False):
        preds = list(dict.fromkeys(zip(per.loc[(per.part == part) & (per.output == output),
                                               "predictor"],
                                       per.loc[(per.part == part) & (per.output == output),
                                               "n_samples"], strict=True)))
        pairs = [(f"{n}:nwgm", k, f"{n}:mean", k) for n, k in preds]
        out[(part, output)] = paired_family(
            g, f"target: {part} {output}-output networks, mean |predicted - exact NWGM| "
               "against mean |predicted - exact mean|", "distance", pairs,
            ("dataset", "activation", "keep_prob"))
    return out


def closure_family(df: pd.DataFrame) -> stats.Family:
    """Sigmoid-output networks (random and trained): the log-ratio of moment
    propagation's output variance to the exact one, probit closure against
    Gauss-Hermite quadrature of the same Gaussian logits, paired over networks per
    (part, activation, keep_prob); plus each closure's log-ratio against 0."""
    keys = ["part", "dataset", "activation", "keep_prob", "seed", "predictor"]
    d = df[df["part"].isin(["random", "trained"]) & (df["output"] == "sigmoid")
           & df["predictor"].isin(["moment_propagation", "moment_quadrature"])]
    per = d.groupby(keys, as_index=False, sort=False)["variance_log_ratio"].mean()
    per = per.assign(n_samples=0)
    fam = paired_family(per, "closure: sigmoid outputs, mean log(V / V_exact), probit "
                        "against quadrature", "variance_log_ratio",
                        [("moment_propagation", 0, "moment_quadrature", 0)],
                        ("part", "activation", "keep_prob"))
    return fam


CLOSURE_METRICS = ("mean_abs_error", "total_variation", "variance_rel_error")
"""The distances to the exact ensemble on which the two output closures are compared."""


def closure_output_families(df: pd.DataFrame) -> dict:
    """Per (part, output kind, metric of ``CLOSURE_METRICS``): moment propagation with
    the quadrature closure against the probit closure (the same Gaussian logits),
    paired over networks per (dataset, activation, keep_prob) cell, Holm within the
    family. Outputs, parts and metrics are never pooled."""
    keys = ["part", "dataset", "output", "activation", "keep_prob", "seed", "predictor"]
    d = df[df["part"].isin(["random", "trained"]) & df["output"].isin(["sigmoid", "softmax"])
           & df["predictor"].isin(["moment_propagation", "moment_quadrature"])]
    per = d.groupby(keys, as_index=False, sort=False)[list(CLOSURE_METRICS)].mean()
    per = per.assign(n_samples=0)
    out = {}
    for (part, output), g in per.groupby(["part", "output"], sort=False):
        for metric in CLOSURE_METRICS:
            out[(part, output, metric)] = paired_family(
                g, f"closures: {part} {output}-output networks, {METRIC_NAMES[metric]}, "
                   "quadrature against probit", metric,
                [("moment_quadrature", 0, "moment_propagation", 0)],
                ("dataset", "activation", "keep_prob"))
    return out
