"""Gap measures against hand-computed values."""

import math

import numpy as np
import pytest

from ensemble_study.metrics import (
    disagreement,
    gap_metrics,
    kl_divergence,
    relative_gap,
    total_variation,
)

# Two examples, softmax over three classes.
P = np.array([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]])
Q = np.array([[0.25, 0.25, 0.5], [0.2, 0.5, 0.3]])
KL_SOFTMAX = [0.5 * math.log(2) + 0.25 * math.log(0.5),
              0.3 * math.log(0.3 / 0.5) + 0.5 * math.log(0.5 / 0.3)]

# Two examples, two independent sigmoid units.
PS = np.array([[0.5, 0.9], [0.2, 0.6]])
QS = np.array([[0.25, 0.9], [0.4, 0.4]])


def _bernoulli_kl(p, q):
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def test_kl_softmax():
    np.testing.assert_allclose(kl_divergence(P, Q, "softmax"), KL_SOFTMAX, rtol=1e-14)
    np.testing.assert_allclose(kl_divergence(P, P, "softmax"), [0.0, 0.0], atol=1e-16)


def test_kl_sigmoid_sums_over_units():
    expected = [_bernoulli_kl(0.5, 0.25) + 0.0, _bernoulli_kl(0.2, 0.4) + _bernoulli_kl(0.6, 0.4)]
    np.testing.assert_allclose(kl_divergence(PS, QS, "sigmoid"), expected, rtol=1e-14)


def test_kl_zero_probabilities():
    # 0 log 0 = 0 where the ensemble gives an outcome no mass ...
    np.testing.assert_allclose(kl_divergence([[0.0, 1.0]], [[0.5, 0.5]], "softmax"),
                               [math.log(2)], rtol=1e-15)
    # ... and infinity where the single pass gives none to a possible outcome.
    assert kl_divergence([[0.5, 0.5]], [[0.0, 1.0]], "softmax")[0] == np.inf


def test_total_variation():
    np.testing.assert_allclose(total_variation(P, Q, "softmax"), [0.25, 0.2], rtol=1e-14)
    # Per sigmoid unit |p - q|, averaged over the units.
    np.testing.assert_allclose(total_variation(PS, QS, "sigmoid"), [0.125, 0.2], rtol=1e-14)


def test_disagreement():
    np.testing.assert_array_equal(disagreement(P, Q, "softmax"), [1.0, 1.0])
    np.testing.assert_array_equal(disagreement(P, P, "softmax"), [0.0, 0.0])
    # Units: (0.5 vs 0.25: both <= 0.5), (0.9 vs 0.9); (0.2 vs 0.4), (0.6 vs 0.4).
    np.testing.assert_array_equal(disagreement(PS, QS, "sigmoid"), [0.0, 0.5])


def test_relative_gap_and_its_zero_std_guard():
    ens = np.array([[1.0, 2.0, 3.0, 4.0]])
    single = np.array([[1.5, 2.0, 3.0, 4.5]])
    std = np.array([[0.25, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(relative_gap(ens, single, std), [[2.0, 0.0, 0.0, np.inf]])
    # A gap of one rounding error with no spread counts as no gap.
    one_ulp = np.nextafter(3.0, 4.0)
    assert relative_gap([[3.0]], [[one_ulp]], [[0.0]])[0, 0] == 0.0
    # A spread of rounding size is no spread either: one rounding error over
    # another is not a ratio (0.3 vs 0.30000000000000004 over 1e-17 was 5.55).
    assert relative_gap([[0.3]], [[0.1 + 0.2]], [[1e-17]])[0, 0] == 0.0
    assert relative_gap([[0.3]], [[0.31]], [[1e-17]])[0, 0] == np.inf
    # A scalar std broadcasts.
    np.testing.assert_array_equal(relative_gap(ens, single, 0.5), [[1.0, 0.0, 0.0, 1.0]])


def test_gap_metrics_summary():
    m = gap_metrics(P, Q, std=np.full(P.shape, 0.1), output="softmax")
    assert m["max_abs_gap"] == pytest.approx(0.25, rel=1e-14)
    assert m["mean_abs_gap"] == pytest.approx((0.25 + 0 + 0.25 + 0 + 0.2 + 0.2) / 6, rel=1e-14)
    assert m["relative_gap"] == pytest.approx((2.5 + 2.5 + 2 + 2) / 6, rel=1e-12)
    assert m["kl"] == pytest.approx(sum(KL_SOFTMAX) / 2, rel=1e-14)
    assert m["total_variation"] == pytest.approx(0.225, rel=1e-14)
    assert m["disagreement"] == 1.0
    plain = gap_metrics(P, Q)
    assert math.isnan(plain["relative_gap"]) and "kl" not in plain


@pytest.mark.parametrize("fn", [kl_divergence, total_variation, disagreement])
def test_probability_metrics_refuse_other_outputs(fn):
    with pytest.raises(ValueError, match=r"output must be one of.*'identity'"):
        fn(P, Q, "identity")


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match=r"shape \(n_examples, n_outputs\).*\(2, 3\).*\(3,\)"):
        total_variation(P, Q[0], "softmax")
    with pytest.raises(ValueError, match="output must be one of"):
        gap_metrics(P, Q, output="tanh")


# --- scores on the labels ------------------------------------------------------

def test_label_scores_by_hand():
    from ensemble_study.metrics import brier, ece, error_rate, nll, reliability_curve
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.05, 0.05, 0.9]])
    y = np.array([0, 2, 2, 2])
    assert error_rate(p, y) == 0.25
    np.testing.assert_allclose(nll(p, y), -np.mean(np.log([0.7, 0.3, 0.4, 0.9])))
    np.testing.assert_allclose(
        brier(p, y), np.mean([0.09 + 0.04 + 0.01, 0.01 + 0.36 + 0.49,
                              0.09 + 0.09 + 0.36, 0.0025 + 0.0025 + 0.01]))
    # 2 bins: confidences 0.7, 0.6, 0.4, 0.9; [0, .5) holds 0.4 (correct),
    # [.5, 1] holds 0.7 (correct), 0.6 (wrong), 0.9 (correct).
    r = reliability_curve(p, y, n_bins=2)
    np.testing.assert_array_equal(r["count"], [1, 3])
    np.testing.assert_allclose(r["confidence"], [0.4, (0.7 + 0.6 + 0.9) / 3])
    np.testing.assert_allclose(r["accuracy"], [1.0, 2 / 3])
    np.testing.assert_allclose(ece(p, y, n_bins=2),
                               0.25 * 0.6 + 0.75 * abs(2 / 3 - 2.2 / 3))


def test_sigmoid_column_is_two_classes():
    from ensemble_study.metrics import brier, ece, error_rate, nll
    rng = np.random.default_rng(0)
    q = rng.uniform(size=50)
    y = (rng.uniform(size=50) < q).astype(int)
    two = np.c_[1 - q, q]
    for f in (error_rate, nll, brier, ece):
        assert f(q, y) == f(q[:, None], y) == f(two, y)
    np.testing.assert_allclose(brier(q, y), 2 * np.mean((q - y) ** 2))


def test_ece_of_calibrated_predictions_is_small_and_of_overconfident_large():
    from ensemble_study.metrics import ece
    rng = np.random.default_rng(1)
    q = rng.uniform(size=200_000)
    y = (rng.uniform(size=q.size) < q).astype(int)
    assert ece(q, y) < 0.01
    sharp = np.where(q > 0.5, 1.0, 0.0)  # always confident, right 75% of the time
    np.testing.assert_allclose(ece(sharp, y), 0.25, atol=0.01)


def test_label_score_bad_inputs():
    from ensemble_study.metrics import ece, nll
    with pytest.raises(ValueError, match="labels must lie in"):
        nll([[0.5, 0.5]], [2])
    with pytest.raises(ValueError, match="labels must be integers"):
        nll([[0.5, 0.5]], [0.5])
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        nll([[3.0, -2.0]], [0])
    with pytest.raises(ValueError, match="n_bins"):
        ece([[0.5, 0.5]], [0], n_bins=0)
