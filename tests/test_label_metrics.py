"""The label scores of metrics.py against hand computations."""

import numpy as np
import pytest

from ensemble_study.metrics import brier, ece, error_rate, nll


def test_softmax_scores_by_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.45, 0.05]])
    y = np.array([0, 1, 0])
    assert error_rate(p, y) == pytest.approx(1 / 3)
    assert nll(p, y) == pytest.approx(-(np.log(0.7) + np.log(0.3) + np.log(0.5)) / 3)
    b = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.7**2 + 0.6**2)
         + (0.5**2 + 0.45**2 + 0.05**2)) / 3
    assert brier(p, y) == pytest.approx(b)
    # bins of width 1/15: 0.7 -> bin 10, 0.6 -> bin 8, 0.5 -> bin 7, one example each
    assert ece(p, y) == pytest.approx((0.3 + 0.6 + 0.5) / 3)


def test_sigmoid_is_a_two_class_categorical():
    p = np.array([[0.9], [0.2], [0.6]])
    y = np.array([1, 1, 0])
    q = np.concatenate([1 - p, p], axis=1)
    for f in (error_rate, nll, brier, ece):
        assert f(p, y) == pytest.approx(f(q, y))


def test_perfectly_calibrated_bins_have_zero_ece():
    p = np.tile([[0.75, 0.25]], (4, 1))
    assert ece(p, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
