"""Intervals and paired tests for the studies' comparisons.

Every comparison the README makes ("closer", "grows", "beats") is backed by
one of these, computed from a committed CSV:

* :func:`bootstrap_ci`: a percentile bootstrap 95% confidence interval of a
  median (or mean) over networks or seeds (scipy.stats.bootstrap);
* :func:`summarise`: that interval per group of a tidy table, each group
  resampled from its own stream, so a group's interval does not depend on
  which other groups the table holds;
* :func:`wilcoxon_paired`: the Wilcoxon signed-rank test of paired values on
  the same networks (scipy.stats.wilcoxon);
* :func:`mcnemar`: McNemar's exact test of two predictors scored on the same
  test examples (a binomial test on the discordant pairs);
* :func:`paired_bootstrap_ci`: a bootstrap interval of the mean (or median)
  of paired differences.

Resampling is seeded; the same input gives the same interval to the byte.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _stats

STATISTICS = {"median": np.median, "mean": np.mean}
N_RESAMPLES = 2000
LEVEL = 0.95


def _statistic(name: str):
    if name not in STATISTICS:
        raise ValueError(f"statistic must be one of {tuple(STATISTICS)}; got {name!r}")
    return STATISTICS[name]


def _finite_1d(values, name: str) -> np.ndarray:
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers; got {values!r:.80}") from None
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; got {int(np.sum(~np.isfinite(a)))} NaN/inf")
    return a


def bootstrap_ci(values, statistic: str = "median", *, level: float = LEVEL,
                 n_resamples: int = N_RESAMPLES, rng=0) -> tuple[float, float, float]:
    """The statistic of ``values`` and its percentile bootstrap interval.

    Parameters
    ----------
    values : array_like, shape (n,)
        One value per independent unit (network, seed).
    statistic : {"median", "mean"}
    level : float in (0, 1)
        Confidence level of the interval.
    n_resamples : int
    rng : int or numpy.random.Generator

    Returns
    -------
    estimate, low, high : float
        With one value, or all values equal, the interval is that value.
    """
    a = _finite_1d(values, "values")
    fn = _statistic(statistic)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    estimate = float(fn(a))
    if a.size == 1 or np.all(a == a[0]):
        return estimate, estimate, estimate
    res = _stats.bootstrap((a,), fn, n_resamples=n_resamples, confidence_level=level,
                           method="percentile", vectorized=True, axis=-1,
                           rng=np.random.default_rng(rng))
    return estimate, float(res.confidence_interval.low), float(res.confidence_interval.high)


def group_seed(key) -> int:
    """A stable seed for a group key (CRC-32 of its repr)."""
    # A stable seed per group (not Python's salted hash): a group's interval
    # is the same whatever else the table holds and in whatever order.
    return zlib.crc32(repr(key).encode())


def summarise(df: pd.DataFrame, keys: Sequence[str], value: str, statistic: str = "median",
              *, level: float = LEVEL, n_resamples: int = N_RESAMPLES,
              spread: tuple[float, float] | None = (0.1, 0.9)) -> pd.DataFrame:
    """Per group: the statistic of ``value``, its bootstrap CI, and its spread.

    Parameters
    ----------
    df : DataFrame
        One row per independent unit within each group (e.g. one per network).
    keys : sequence of str
        The grouping columns.
    value : str
    statistic : {"median", "mean"}
    spread : (low, high) quantiles, or None
        Dispersion across units (not an uncertainty), reported separately.

    Returns
    -------
    DataFrame
        ``keys``, ``statistic`` (its name), ``estimate``, ``ci_low``,
        ``ci_high``, ``n`` and, with ``spread``, ``spread_low``/``spread_high``.
    """
    keys = list(keys)
    rows = []
    for key, group in df.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        # Sorted, so the interval does not depend on the order of the rows either.
        v = np.sort(group[value].to_numpy(dtype=np.float64))
        est, low, high = bootstrap_ci(v, statistic, level=level, n_resamples=n_resamples,
                                      rng=group_seed(key))
        row = dict(zip(keys, key, strict=True), statistic=statistic, estimate=est,
                   ci_low=low, ci_high=high, n=int(v.size))
        if spread is not None:
            row["spread_low"], row["spread_high"] = (float(x) for x in np.quantile(v, spread))
        rows.append(row)
    columns = keys + ["statistic", "estimate", "ci_low", "ci_high", "n"]
    if spread is not None:
        columns += ["spread_low", "spread_high"]
    return pd.DataFrame(rows, columns=columns)


def wilcoxon_paired(a, b) -> dict:
    """Wilcoxon signed-rank test of ``a - b`` (paired, two-sided).

    Parameters
    ----------
    a, b : array_like, shape (n,)
        Paired values (the same networks under two predictors).

    Returns
    -------
    dict
        ``n`` (pairs), ``n_nonzero``, ``median_difference`` (of ``a - b``),
        ``share_a_less`` (share of pairs with ``a < b``), ``statistic`` and
        ``pvalue`` (1.0 when every difference is zero).
    """
    a, b = _finite_1d(a, "a"), _finite_1d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired (same length); got {a.size} and {b.size}")
    d = a - b
    out = dict(n=int(d.size), n_nonzero=int(np.count_nonzero(d)),
               median_difference=float(np.median(d)), share_a_less=float(np.mean(d < 0)))
    if out["n_nonzero"] == 0:
        return {**out, "statistic": 0.0, "pvalue": 1.0}
    res = _stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    return {**out, "statistic": float(res.statistic), "pvalue": float(res.pvalue)}


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's exact test: do two predictors err on the same examples equally often?

    Parameters
    ----------
    correct_a, correct_b : array_like of bool, shape (n,)
        Whether each predictor got each (shared) test example right.

    Returns
    -------
    dict
        ``n``, ``only_a`` (a right, b wrong), ``only_b``, and the two-sided
        exact ``pvalue`` (a binomial test of ``only_a`` among the discordant
        pairs at 1/2; 1.0 when there are none).
    """
    ca = np.asarray(correct_a)
    cb = np.asarray(correct_b)
    if ca.dtype != bool or cb.dtype != bool:
        raise TypeError(f"correct_a and correct_b must be boolean arrays; got {ca.dtype}, "
                        f"{cb.dtype}")
    if ca.shape != cb.shape or ca.ndim != 1:
        raise ValueError(f"correct_a and correct_b must be 1-D and paired; got shapes "
                         f"{ca.shape} and {cb.shape}")
    only_a, only_b = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
    n_disc = only_a + only_b
    p = 1.0 if n_disc == 0 else float(_stats.binomtest(only_a, n_disc, 0.5).pvalue)
    return dict(n=int(ca.size), only_a=only_a, only_b=only_b, pvalue=p)


def paired_bootstrap_ci(a, b, statistic: str = "mean", *, level: float = LEVEL,
                        n_resamples: int = N_RESAMPLES, rng=0) -> tuple[float, float, float]:
    """The statistic of the paired differences ``a - b`` and its bootstrap CI.

    Pairs are resampled together, so what the units share cancels.
    """
    a, b = _finite_1d(a, "a"), _finite_1d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired (same length); got {a.size} and {b.size}")
    return bootstrap_ci(a - b, statistic, level=level, n_resamples=n_resamples, rng=rng)


def t_interval(values, *, level: float = LEVEL) -> tuple[float, float, float]:
    """The mean of ``values`` and its Student-t interval (n >= 2; the rule at n <= 30).

    Returns
    -------
    mean, low, high : float
        With all values equal, the interval is that value.
    """
    a = _finite_1d(values, "values")
    if a.size < 2:
        raise ValueError(f"t_interval needs at least 2 values; got {a.size}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    mean = float(a.mean())
    half = float(_stats.t.ppf(0.5 + level / 2, a.size - 1) * a.std(ddof=1) / np.sqrt(a.size))
    return mean, mean - half, mean + half


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values of one declared family (same order as given)."""
    p = _finite_1d(pvalues, "pvalues")
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"pvalues must lie in [0, 1]; got {p[(p < 0) | (p > 1)][:3].tolist()}")
    order = np.argsort(p, kind="stable")
    m = p.size
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def t_test_mean(values, null: float = 0.0) -> float:
    """Two-sided one-sample t-test p-value of mean(values) = null (scipy.stats.ttest_1samp)."""
    a = _finite_1d(values, "values")
    if np.all(a == a[0]):
        return 0.0 if a[0] != null else 1.0
    return float(_stats.ttest_1samp(a, null).pvalue)


def welch_interval(a, b, *, level: float = LEVEL) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` and its Welch t interval (independent samples, n >= 2 each)."""
    a, b = _finite_1d(a, "a"), _finite_1d(b, "b")
    d = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return d, float("nan"), float("nan")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = float(np.sqrt(va + vb))
    if se == 0:
        return d, d, d
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    h = float(_stats.t.ppf(0.5 + level / 2, df) * se)
    return d, d - h, d + h


def welch_test(a, b, *, level: float = LEVEL) -> dict:
    """Welch's two-sample t-test of ``mean(a) - mean(b)`` with its interval.

    Returns
    -------
    dict
        ``difference``, ``low``, ``high`` (:func:`welch_interval`) and the
        two-sided ``pvalue`` (scipy.stats.ttest_ind, ``equal_var=False``; 1.0
        when both samples are constant and equal, 0.0 when constant and not).
    """
    d, lo, hi = welch_interval(a, b, level=level)
    a, b = _finite_1d(a, "a"), _finite_1d(b, "b")
    if a.var() == 0 and b.var() == 0:
        p = 1.0 if d == 0 else 0.0
    else:
        p = float(_stats.ttest_ind(a, b, equal_var=False).pvalue)
    return {"difference": d, "low": lo, "high": hi, "pvalue": p}


def slope_interval(x, y, *, level: float = LEVEL) -> dict:
    """Least-squares slope of ``y`` on ``x`` with its t interval (``n - 2`` df) and p-value.

    For independent units (each ``(x, y)`` one network, say): the p-value is
    the two-sided test of a zero slope (scipy.stats.linregress).

    Returns
    -------
    dict
        ``slope``, ``low``, ``high``, ``pvalue``, ``n``.
    """
    x, y = _finite_1d(x, "x"), _finite_1d(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length; got {x.size} and {y.size}")
    if x.size < 3 or np.all(x == x[0]):
        raise ValueError(f"slope_interval needs at least 3 points and 2 distinct x; got "
                         f"{x.size} points, {np.unique(x).size} distinct x")
    res = _stats.linregress(x, y)
    h = float(_stats.t.ppf(0.5 + level / 2, x.size - 2) * res.stderr)
    p = float(res.pvalue) if np.isfinite(res.pvalue) else (0.0 if res.slope != 0 else 1.0)
    return {"slope": float(res.slope), "low": float(res.slope) - h,
            "high": float(res.slope) + h, "pvalue": p, "n": int(x.size)}


MIN_BOOTSTRAP_N = 10
"""Smallest sample a bootstrap interval is computed for (below it, use :func:`t_interval`)."""


def bca_interval(values, statistic: str = "mean", *, level: float = LEVEL,
                 n_resamples: int = N_RESAMPLES, rng=0) -> tuple[float, float, float]:
    """The statistic and its BCa bootstrap interval (scipy.stats.bootstrap, ``method="BCa"``).

    Refuses ``n < 10`` (:data:`MIN_BOOTSTRAP_N`): a bootstrap of a handful of
    values undercovers badly (at n = 3 a percentile interval excludes 0 in
    about 25% of null samples); use :func:`t_interval` there.
    """
    a = _finite_1d(values, "values")
    fn = _statistic(statistic)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    if a.size < MIN_BOOTSTRAP_N:
        raise ValueError(f"values must hold at least {MIN_BOOTSTRAP_N} numbers for a bootstrap "
                         f"interval; got {a.size}: use t_interval")
    estimate = float(fn(a))
    if np.all(a == a[0]):
        return estimate, estimate, estimate
    res = _stats.bootstrap((a,), fn, n_resamples=n_resamples, confidence_level=level,
                           method="BCa", vectorized=True, axis=-1,
                           rng=np.random.default_rng(rng))
    return estimate, float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_t(a, b, *, level: float = LEVEL) -> dict:
    """Paired t-test of ``a - b`` (two-sided) with the t-interval of the mean difference.

    Returns
    -------
    dict
        ``n``, ``mean_difference``, ``low``, ``high`` and ``pvalue`` (1.0 when
        every difference is zero).
    """
    a, b = _finite_1d(a, "a"), _finite_1d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired (same length); got {a.size} and {b.size}")
    d = a - b
    m, lo, hi = t_interval(d, level=level)
    if np.all(d == d[0]):
        p = 1.0 if d[0] == 0 else 0.0
    else:
        p = float(_stats.ttest_1samp(d, 0.0).pvalue)
    return {"n": int(d.size), "mean_difference": m, "low": lo, "high": hi, "pvalue": p}


class Family:
    """A family of claims tested together, with Holm's correction within it.

    Declare the family in code, add one test per claim (a name, a p-value and
    the sentence to state if it survives), then ask which survive::

        fam = Family("approximations: random sigmoid networks, abs gap", alpha=0.05)
        fam.add("mp_vs_scaled", paired_t(a, b)["pvalue"], "Moment propagation is ...")
        fam.sentences()   # only the claims whose Holm-adjusted p < alpha

    Claims of different output kinds or tasks belong to different families
    (never pooled in one test); the family is decided before looking at the
    p-values (all comparisons made are added, significant or not).
    """

    def __init__(self, name: str, alpha: float = 0.05):
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1); got {alpha!r}")
        self.name, self.alpha = name, alpha
        self._claims: list[dict] = []

    def add(self, key: str, pvalue: float, sentence: str = "", **detail) -> None:
        if any(c["key"] == key for c in self._claims):
            raise ValueError(f"claim {key!r} is already in family {self.name!r}")
        p = float(pvalue)
        if not 0 <= p <= 1:
            raise ValueError(f"pvalue of {key!r} must lie in [0, 1]; got {pvalue!r}")
        self._claims.append({"key": key, "pvalue": p, "sentence": sentence, **detail})

    def table(self) -> pd.DataFrame:
        """One row per claim: key, pvalue, holm (adjusted), survives, sentence, details."""
        df = pd.DataFrame(self._claims)
        if df.empty:
            return pd.DataFrame(columns=["key", "pvalue", "holm", "survives", "sentence"])
        df["holm"] = holm(df["pvalue"].to_numpy())
        df["survives"] = df["holm"] < self.alpha
        df.insert(0, "family", self.name)
        return df

    def survives(self, key: str) -> bool:
        t = self.table()
        row = t.loc[t["key"] == key]
        if row.empty:
            raise ValueError(f"no claim {key!r} in family {self.name!r}")
        return bool(row["survives"].iloc[0])

    def sentences(self) -> list[str]:
        """The sentences of the claims that survive Holm, in the order added."""
        t = self.table()
        return [s for s, ok in zip(t["sentence"], t["survives"]) if ok and s]


def mannwhitney(a, b) -> dict:
    """Mann-Whitney U test of two independent samples (two-sided; scipy.stats.mannwhitneyu).

    For medians of different networks (no pairing). Returns ``n_a``, ``n_b``,
    ``median_difference`` (median(a) - median(b)), ``share_a_greater`` (the
    common-language effect size, P(a > b) + P(a = b)/2) and ``pvalue`` (1.0
    when every value is equal).
    """
    a, b = _finite_1d(a, "a"), _finite_1d(b, "b")
    out = dict(n_a=int(a.size), n_b=int(b.size),
               median_difference=float(np.median(a) - np.median(b)))
    if np.all(a == a[0]) and np.all(b == a[0]):
        return {**out, "share_a_greater": 0.5, "statistic": 0.0, "pvalue": 1.0}
    res = _stats.mannwhitneyu(a, b, alternative="two-sided")
    return {**out, "share_a_greater": float(res.statistic) / (a.size * b.size),
            "statistic": float(res.statistic), "pvalue": float(res.pvalue)}

