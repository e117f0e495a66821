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
