"""Intervals and paired tests (ensemble_study.stats) against independent values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from ensemble_study import stats


@pytest.mark.parametrize("statistic, draw, truth", [
    # Exponential(1): median ln 2; Normal(3, 2): mean 3.
    ("median", lambda g, n: g.exponential(size=n), math.log(2)),
    ("mean", lambda g, n: g.normal(3.0, 2.0, size=n), 3.0),
])
def test_bootstrap_ci_covers_the_true_value_about_95_percent_of_the_time(statistic, draw, truth):
    # 300 samples of 60: the coverage's binomial sd at 0.95 is 1.3 points;
    # the percentile bootstrap undercovers a little at this n. Accept
    # [0.90, 0.99], about 4 sd either side.
    g = np.random.default_rng(12345)
    hits = 0
    for rep in range(300):
        _, low, high = stats.bootstrap_ci(draw(g, 60), statistic, n_resamples=1000, rng=rep)
        hits += low <= truth <= high
    assert 0.90 <= hits / 300 <= 0.99


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    v = np.random.default_rng(0).normal(size=40)
    est, low, high = stats.bootstrap_ci(v)
    assert est == np.median(v) and low < est < high
    assert stats.bootstrap_ci(v, rng=7) == stats.bootstrap_ci(v, rng=7)
    # Wider at 99% than at 80%.
    _, l99, h99 = stats.bootstrap_ci(v, level=0.99)
    _, l80, h80 = stats.bootstrap_ci(v, level=0.80)
    assert l99 < l80 < h80 < h99


@pytest.mark.parametrize("values", [[0.25], [0.0] * 7])
def test_bootstrap_ci_of_constant_values_is_the_value(values):
    assert stats.bootstrap_ci(values) == (values[0],) * 3


def test_summarise_groups_do_not_depend_on_the_rest_of_the_table():
    g = np.random.default_rng(1)
    df = pd.DataFrame({"a": np.repeat(["x", "y", "z"], 30), "v": g.normal(size=90)})
    full = stats.summarise(df, ["a"], "v").set_index("a")
    alone = stats.summarise(df[df.a == "y"], ["a"], "v").set_index("a")
    shuffled = stats.summarise(df.iloc[::-1], ["a"], "v").set_index("a")
    pd.testing.assert_series_equal(full.loc["y"], alone.loc["y"])
    assert full.loc["y", "ci_low"] == shuffled.loc["y", "ci_low"]
    y = df[df.a == "y"].v
    assert full.loc["y", "estimate"] == np.median(y)
    assert full.loc["y", "spread_low"] == np.quantile(y, 0.1)
    assert full.loc["y", "n"] == 30


def _exact_wilcoxon_p(d):
    """Two-sided exact p-value by every sign assignment (distinct |d|, no zeros)."""
    ranks = np.argsort(np.argsort(np.abs(d))) + 1
    w_plus = ranks[d > 0].sum()
    total = ranks.sum()
    dist = [sum(r for r, s in zip(ranks, signs) if s)
            for signs in itertools.product((0, 1), repeat=len(d))]
    dist = np.array(dist)
    extreme = min(w_plus, total - w_plus)
    return min(1.0, 2 * np.mean(dist <= extreme))


def test_wilcoxon_matches_the_exact_permutation_p_value():
    a = np.array([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30])
    b = np.array([0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29])
    res = stats.wilcoxon_paired(a, b)
    assert res["pvalue"] == pytest.approx(_exact_wilcoxon_p(a - b), rel=1e-12)
    assert res["n"] == 9 and res["median_difference"] == np.median(a - b)
    assert res["share_a_less"] == pytest.approx(2 / 9)


def test_wilcoxon_of_identical_values_is_not_significant():
    a = np.arange(5.0)
    assert stats.wilcoxon_paired(a, a)["pvalue"] == 1.0


def test_mcnemar_exact_p_value_from_the_binomial():
    # 10 examples only A gets right, 2 only B: p = 2 P(X <= 2), X ~ Bin(12, 1/2).
    ca = np.array([True] * 10 + [False] * 2 + [True] * 30 + [False] * 5)
    cb = np.array([False] * 10 + [True] * 2 + [True] * 30 + [False] * 5)
    res = stats.mcnemar(ca, cb)
    expected = 2 * sum(math.comb(12, k) for k in range(3)) / 2**12
    assert (res["only_a"], res["only_b"], res["n"]) == (10, 2, 47)
    assert res["pvalue"] == pytest.approx(expected, rel=1e-12)
    assert stats.mcnemar(ca, ca)["pvalue"] == 1.0


def test_paired_bootstrap_removes_what_the_pairs_share():
    g = np.random.default_rng(3)
    shared = g.normal(0, 10, size=50)  # large between-network variation
    a, b = shared + 0.5 + g.normal(0, 0.1, 50), shared + g.normal(0, 0.1, 50)
    est, low, high = stats.paired_bootstrap_ci(a, b)
    assert 0.4 < low < est < high < 0.6


@pytest.mark.parametrize("call, match", [
    (lambda: stats.bootstrap_ci([]), "values must be a non-empty 1-D array"),
    (lambda: stats.bootstrap_ci([1.0, np.nan]), "values must be finite"),
    (lambda: stats.bootstrap_ci([1.0, 2.0], "mode"), r"statistic must be one of \('median', 'mean'\); got 'mode'"),
    (lambda: stats.bootstrap_ci([1.0, 2.0], level=1.5), r"level must be in \(0, 1\); got 1.5"),
    (lambda: stats.wilcoxon_paired([1.0, 2.0], [1.0]), "a and b must be paired"),
    (lambda: stats.mcnemar([True], [True, False]), "correct_a and correct_b must be 1-D and paired"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mcnemar_wants_booleans():
    with pytest.raises(TypeError, match="must be boolean arrays"):
        stats.mcnemar([1, 0], [0, 1])


# --- t-intervals, BCa, paired t, Holm, families --------------------------------

def test_t_interval_by_hand_and_coverage():
    from scipy import stats as st

    from ensemble_study.stats import t_interval
    m, lo, hi = t_interval([1.0, 2.0, 3.0, 4.0])
    h = st.t.ppf(0.975, 3) * np.std([1, 2, 3, 4], ddof=1) / 2
    np.testing.assert_allclose([m, lo, hi], [2.5, 2.5 - h, 2.5 + h])
    # Calibrated at n = 3 (where a percentile bootstrap is not): 95% coverage.
    rng = np.random.default_rng(0)
    hits = sum(lo <= 0 <= hi for _, lo, hi in
               (t_interval(rng.normal(size=3)) for _ in range(4000)))
    assert 0.94 < hits / 4000 < 0.96
    assert t_interval([2.0, 2.0]) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([1.0])


def test_bca_refuses_small_samples_and_covers():
    from ensemble_study.stats import bca_interval
    with pytest.raises(ValueError, match="at least 10 .*t_interval"):
        bca_interval(np.arange(9.0))
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(300):
        _, lo, hi = bca_interval(rng.normal(size=30), n_resamples=500, rng=i)
        hits += lo <= 0 <= hi
    assert 0.89 < hits / 300 < 0.99


def test_paired_t_matches_scipy():
    from scipy import stats as st

    from ensemble_study.stats import paired_t
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=12), rng.normal(size=12) + 0.3
    r = paired_t(a, b)
    np.testing.assert_allclose(r["pvalue"], st.ttest_rel(a, b).pvalue)
    assert r["low"] < r["mean_difference"] < r["high"]
    assert paired_t(a, a)["pvalue"] == 1.0


def test_holm_by_hand():
    from ensemble_study.stats import holm
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.2]), [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(holm([0.5, 0.5]), [1.0, 1.0])


def test_family_states_only_what_survives():
    from ensemble_study.stats import Family
    fam = Family("demo")
    fam.add("strong", 0.001, "A beats B.")
    fam.add("weak", 0.03, "C beats D.")
    fam.add("null", 0.4, "E beats F.")
    assert fam.sentences() == ["A beats B."]
    assert fam.survives("strong") and not fam.survives("weak")
    t = fam.table()
    np.testing.assert_allclose(t["holm"], [0.003, 0.06, 0.4])
    with pytest.raises(ValueError, match="already"):
        fam.add("strong", 0.2)
    with pytest.raises(ValueError, match="no claim"):
        fam.survives("absent")
