"""The regularizer_path study: path evaluator against enumeration, detectors on known cases."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble_study import regularizer as reg
from ensemble_study.results import load_result
from ensemble_study.studies import regularizer_path as rp
from ensemble_study.studies.regularizer_path import show

CSV = Path(__file__).resolve().parent.parent / "results" / "regularizer_path.csv"


def softplus(z):
    return np.logaddexp(0.0, z)


def _problem(seed, n=7, d=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=d) * 1.5


@pytest.mark.parametrize("q", [0.3, 0.5, 0.8])
@pytest.mark.parametrize("others", ["zero", "held"])
def test_path_penalty_against_enumeration(q, others):
    X, beta = _problem(int(q * 10) + (others == "held"))
    if others == "zero":
        beta = np.zeros_like(beta)
    b, j = 0.4, 2
    t = rp.path_grid(3.0, 6)
    R, err = rp.path_penalty(X, beta, q, b, j, t)
    for k, tk in enumerate(t):
        w = beta.copy()
        w[j] = tk
        brute = reg.enumerate_regularizer(softplus, X, w, q, b=b)
        assert R[k] == pytest.approx(brute, rel=1e-10, abs=1e-12)
        assert abs(R[k] - brute) <= err[k] + 1e-15


def test_path_quadratic_against_logistic_quadratic():
    X, beta = _problem(3)
    t = rp.path_grid(2.0, 4)
    Rq = rp.path_quadratic(X, beta, 0.6, -0.3, 1, t)
    for k, tk in enumerate(t):
        w = beta.copy()
        w[1] = tk
        assert Rq[k] == pytest.approx(reg.logistic_quadratic(X, w, 0.6, -0.3), rel=1e-13)


@pytest.mark.parametrize("b", [0.0, 1.3, -2.0])
def test_ray_is_monotone_bounded_and_not_convex(b):
    """The closed form along a ray (docs): R rises with |t| to (1-q) sum_i softplus(-+b)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(9, 3))
    X[0, 0] = 0.0
    q = 0.5
    t = rp.path_grid(40.0, 400)
    R, err = rp.path_penalty(X, np.zeros(3), q, b, 0, t)
    assert rp.monotonicity(t, R, err)["monotone"]
    assert not rp.convexity(t, R, err)["convex"]
    x = X[:, 0]
    big, _ = rp.path_penalty(X, np.zeros(3), q, b, 0, np.array([-1e4, 0.0, 1e4]))
    up = (1 - q) * np.sum(np.where(x > 0, softplus(-b), np.where(x < 0, softplus(b), 0.0)))
    down = (1 - q) * np.sum(np.where(x < 0, softplus(-b), np.where(x > 0, softplus(b), 0.0)))
    assert big[2] == pytest.approx(up, rel=1e-9)
    assert big[0] == pytest.approx(down, rel=1e-9)
    assert np.all(R <= max(up, down) + 1e-12)


def test_convexity_detector_known_answers():
    t = np.arange(-4.0, 5.0)
    assert rp.convexity(t, t ** 2)["convex"]
    assert rp.convexity(t, np.abs(t))["convex"]
    res = rp.convexity(t, -t ** 2)
    assert not res["convex"] and res["violations"][1:-1].all()
    assert res["min_curvature"] == pytest.approx(-2.0)
    # min(t^2, 4): second difference -3 at t = +-2 and nowhere else
    res = rp.convexity(t, np.minimum(t ** 2, 4.0))
    assert np.flatnonzero(res["violations"]).tolist() == [2, 6]
    assert abs(res["first_t"]) == 2.0
    # t^2 with a bump of 1.5 at t = 1
    r = t ** 2 + np.where(t == 1, 1.5, 0.0)          # second difference at t = 1: 2 - 3 = -1
    assert not rp.convexity(t, r)["convex"]
    assert rp.convexity(t, r, err=0.26)["convex"]      # tolerance 4 * 0.26 > 1
    assert not rp.convexity(t, r, err=0.24)["convex"]


def test_monotonicity_detector_known_answers():
    t = np.arange(-3.0, 4.0)
    assert rp.monotonicity(t, t ** 2)["monotone"]
    assert rp.monotonicity(t, np.abs(t) ** 0.5)["monotone"]
    # (t - 1)^2 falls from 1 to 0 as t goes from 0 to 1
    res = rp.monotonicity(t, (t - 1.0) ** 2)
    assert not res["monotone"]
    assert (res["max_drop"], res["drop_t"], res["peak_t"], res["first_t"]) == (1.0, 1.0, 0.0, 1.0)
    assert np.flatnonzero(res["violations"]).tolist() == [4]
    assert rp.monotonicity(t, (t - 1.0) ** 2, err=0.51)["monotone"]
    assert not rp.monotonicity(t, (t - 1.0) ** 2, err=0.49)["monotone"]
    # a fall far from 0 on the negative side: peak at t = -2, drop 2 at t = -3
    r = np.array([1.0, 3.0, 2.0, 0.0, 1.0, 2.0, 3.0])
    res = rp.monotonicity(t, r)
    assert (res["max_drop"], res["drop_t"], res["peak_t"]) == (2.0, -3.0, -2.0)


def test_bad_inputs():
    X, beta = _problem(0)
    with pytest.raises(ValueError, match="j must be"):
        rp.path_penalty(X, beta, 0.5, 0.0, 9, np.zeros(3))
    with pytest.raises(ValueError, match="keep_prob"):
        rp.path_penalty(X, beta, 1.5, 0.0, 0, np.zeros(3))
    with pytest.raises(ValueError, match="uniform"):
        rp.convexity([0.0, 1.0, 3.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="contain 0"):
        rp.monotonicity([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])


def test_tiny_study_end_to_end():
    study = rp.STUDY
    df = study.run(datasets=("digits_2v3",), keep_probs=(0.5,), n_train=12, n_slices=1,
                   slice_points=3, ray_points=40, ray_contribution=30.0)
    ray = df[(df.path == "ray") & (df.penalty == "exact")]
    assert len(ray) > 0 and ray.monotone.all() and not ray.convex.any()   # the closed form
    assert (df.path == "slice").sum() == 2                                   # exact, quadratic
    for name, fn in study.blocks.items():
        assert fn(df).strip(), name
    for name, fn in study.figures.items():
        assert fn(df).axes, name


def _slice(dataset, penalty, R, *, beta_j=1.0, monotone=True, convex=True, **extra):
    # a 5-point slice, t = -2, -1, 0, 1, 2 (half-width 2), as the study's table holds it
    R = np.asarray(R, dtype=float)
    return dict(dataset=dataset, keep_prob=0.5, path="slice", penalty=penalty, beta_j=beta_j,
                half_width=2.0, n_points=5, monotone=monotone, convex=convex,
                R_range=float(R.max() - R.min()), R=" ".join(map(str, R)),
                **{"max_drop": 0.0, "drop_t": np.nan, "max_err": 0.0, **extra})


def test_slice_curve_puts_the_fitted_weight_at_one_and_divides_by_the_range():
    row = pd.Series(_slice("a", "exact", [4.0, 1.0, 0.0, -0.5, 0.25], beta_j=-1.0))
    # x = t / beta*_j = 2, 1, 0, -1, -2; R - R(0) over the range 4.5; linear between points
    got = show.slice_curve(row, np.array([-2.0, -1.5, 0.0, 1.0, 2.0, 2.5]))
    want = np.array([0.25, (0.25 - 0.5) / 2, 0.0, 1.0, 4.0, np.nan]) / 4.5
    np.testing.assert_allclose(got, want, rtol=1e-12)
    zero = row.copy()
    zero["beta_j"] = 0.0
    assert np.isnan(show.slice_curve(zero, np.array([0.5]))).all()   # no fitted weight, no unit
    flat = pd.Series(_slice("a", "exact", [0.0] * 5))
    np.testing.assert_array_equal(show.slice_curve(flat, np.array([-1.0, 1.0])), [0.0, 0.0])


def test_slice_summary_on_a_hand_made_table():
    df = pd.DataFrame([
        # falls 0.3 below R(0) = 0 at t = 1 = beta*_j; tolerance 2 * 0.05 -> margin 3
        _slice("a", "exact", [1.0, 0.2, 0.0, -0.3, 0.1], monotone=False, max_drop=0.3,
               drop_t=1.0, max_err=0.05),
        # counted monotone, but the computed values fall by 1e-9 (within the bounds); grid
        # past 2 |beta*_j| = 1; non-convex
        _slice("a", "exact", [1.0, 0.5, 0.0, -1e-9, 0.5], beta_j=0.5, convex=False),
        _slice("a", "quadratic", [1.0, 0.5, 0.0, 0.5, 1.0]),
        _slice("a", "quadratic", [1.0, 0.5, 0.0, -0.5, 1.0], beta_j=0.5, monotone=False),
        _slice("a", "exact", [0.0, 0.0, 0.0, 0.0, 0.0]) | {"path": "ray"},   # not a slice
    ])
    s = show.slice_summary(df).iloc[0]
    assert (s.dataset, s.keep_prob, s.n, s.widened) == ("a", 0.5, 2, 1)
    assert (s.exact_nonmonotone_k, s.exact_nonmonotone) == (1, 0.5)
    assert (s.quadratic_nonmonotone_k, s.exact_nonconvex_k) == (1, 1)
    # Clopper-Pearson for 1 of 2: [1 - 0.975 ** 0.5, 0.975 ** 0.5]
    assert s.exact_nonmonotone_low == pytest.approx(1 - 0.975 ** 0.5, rel=1e-6)
    assert s.exact_nonmonotone_high == pytest.approx(0.975 ** 0.5, rel=1e-6)
    assert s.fall_over_range == pytest.approx(0.3 / 1.3)
    assert s.fall_over_bound_min == s.fall_over_bound_median == pytest.approx(3.0)
    assert (s.fall_at_fit, s.exact_fall_within_bound) == (1, 1)


@pytest.mark.skipif(not CSV.exists(), reason="no committed regularizer_path.csv")
def test_slices_figure_from_the_committed_table_counts_what_the_rows_say():
    df = load_result(CSV)
    fig = show.slices_figure(df)
    sl = df[df.path == "slice"]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(":")[0] for ax in panels] == sorted(sl.dataset.unique())
    for ax in panels:
        d = ax.get_title().split(":")[0]
        shown = [t.get_text() for t in ax.get_legend().get_texts()]
        want = []
        for q in sorted(sl.keep_prob.unique()):
            for pen, name in (("exact", "exact R"), ("quadratic", "R^q")):
                rows = sl[(sl.dataset == d) & (sl.keep_prob == q) & (sl.penalty == pen)]
                # by hand: the paths whose detector found a fall, over the paths
                want.append(f"{name}, q={q:g}: {int((rows.monotone == False).sum())}"  # noqa: E712
                            f"/{len(rows)}")
        assert shown == want, d
