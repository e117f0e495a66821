"""ensemble_study.laplace against enumeration of every mask (fact 17)."""

import numpy as np
import pytest

from ensemble_study.laplace import enumerate_expectation, expected_sigmoid, expected_softplus

FUNCS = {"softplus": expected_softplus, "sigmoid": expected_sigmoid}


@pytest.mark.parametrize("kind", sorted(FUNCS))
@pytest.mark.parametrize("n", [1, 2, 5, 12, 16])
@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0, 20.0])
def test_matches_enumeration(kind, n, q, scale):
    rng = np.random.default_rng([n, int(q * 10), int(scale * 10), len(kind)])
    c = rng.normal(size=n) * scale
    b = rng.normal() * scale
    v, gb, gc = FUNCS[kind](b, c, q, return_grad=True)
    ev, egb, egc = enumerate_expectation(kind, b, c, q)
    assert abs(v - ev) <= 1e-10 * abs(ev)
    gscale = max(abs(egb), np.abs(egc).max())
    assert abs(gb - egb) <= 1e-10 * gscale
    assert np.abs(gc - egc).max() <= 1e-10 * gscale


@pytest.mark.parametrize("kind", sorted(FUNCS))
def test_batch_equals_rows(kind):
    rng = np.random.default_rng(3)
    c = rng.normal(size=(7, 9)) * 2
    b = rng.normal(size=7)
    v, gb, gc = FUNCS[kind](b, c, 0.6, return_grad=True)
    for i in range(7):
        vi, gbi, gci = FUNCS[kind](b[i], c[i], 0.6, return_grad=True)
        assert v[i] == pytest.approx(vi, rel=1e-12)
        np.testing.assert_allclose(gc[i], gci, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", sorted(FUNCS))
def test_gradient_central_differences(kind):
    rng = np.random.default_rng(5)
    c = rng.normal(size=40) * 0.7
    b = 0.3
    _, gb, gc = FUNCS[kind](b, c, 0.5, return_grad=True)
    eps = 1e-5
    num_b = (FUNCS[kind](b + eps, c, 0.5) - FUNCS[kind](b - eps, c, 0.5)) / (2 * eps)
    assert gb == pytest.approx(num_b, rel=1e-7)
    for j in (0, 7, 39):
        e = np.zeros_like(c)
        e[j] = eps
        num = (FUNCS[kind](b, c + e, 0.5) - FUNCS[kind](b, c - e, 0.5)) / (2 * eps)
        assert gc[j] == pytest.approx(num, rel=1e-6, abs=1e-10)


def test_wide_against_monte_carlo():
    """64 features: the exact value lies within the Monte Carlo interval."""
    rng = np.random.default_rng(11)
    c = rng.normal(size=64) * 0.5
    v = expected_softplus(0.1, c, 0.5)
    m = rng.random((200_000, 64)) < 0.5
    z = 0.1 + m @ c
    f = np.logaddexp(0, z)
    assert abs(f.mean() - v) < 4 * f.std() / np.sqrt(z.size)


def test_keep_prob_one_is_plain():
    c = np.array([1.0, -2.0, 0.5])
    assert expected_softplus(0.2, c, 1.0) == pytest.approx(np.logaddexp(0, 0.2 - 0.5), rel=1e-15)


@pytest.mark.parametrize("q", [0.0, 1.5, -0.1])
def test_bad_keep_prob(q):
    with pytest.raises(ValueError, match="keep_prob"):
        expected_softplus(0.0, np.ones(3), q)


def test_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        expected_sigmoid(np.zeros(3), np.ones((2, 4)), 0.5)


def test_extreme_weights_raise_clearly():
    """Weights in the hundreds on few features: the cancellation eats the digits; say so."""
    with pytest.raises(ValueError, match="too extreme"):
        expected_sigmoid(271.6, np.array([246.5, 99.1, -390.9]), 0.9, return_grad=True)


def test_large_weights_still_exact():
    c = np.array([300.0, -250.0])
    assert expected_sigmoid(-150.0, c, 0.9) == pytest.approx(
        enumerate_expectation("sigmoid", -150.0, c, 0.9)[0], rel=1e-10)
