"""The dropout regularizer (fact 16) against brute force, identities and gradients."""

import numpy as np
import pytest
from scipy.special import logsumexp

from ensemble_study import regularizer as reg


def softplus(z):
    return np.logaddexp(0.0, z)


def data(seed, n=30, d=8, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    beta = rng.normal(size=d) * scale
    y = (rng.random(n) < 0.5).astype(int)
    return X, beta, y


@pytest.mark.parametrize("q", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0])
def test_logistic_exact_against_enumeration(q, scale):
    X, beta, _ = data(1, scale=scale)
    exact = reg.logistic_exact(X, beta, q, b=0.3)
    brute = reg.enumerate_regularizer(softplus, X, beta, q, b=0.3)
    assert exact == pytest.approx(brute, rel=1e-10)
    assert exact >= 0


def test_expected_loss_label_independent():
    """E[loss] - loss(x) is the same for either label: the brute-force expected loss with y."""
    X, beta, _ = data(2, n=5, d=6)
    q = 0.4
    m, p = reg._mask_probs(6, q)
    for i in range(5):
        zt = (m * X[i] / q) @ beta
        z = X[i] @ beta
        gaps = [p @ (softplus(zt) - y * zt) - (softplus(z) - y * z) for y in (0, 1)]
        assert gaps[0] == pytest.approx(gaps[1], rel=1e-12)


def test_squared_loss_quadratic_is_exact():
    X, beta, _ = data(3, d=10)
    for q in (0.1, 0.5, 0.9):
        brute = reg.enumerate_regularizer(lambda z: 0.5 * z ** 2, X, beta, q)
        assert reg.squared_quadratic(X, beta, q) == pytest.approx(brute, rel=1e-10)


def test_quadratic_is_the_small_weight_limit():
    X, beta, _ = data(4)
    ratios = [reg.logistic_quadratic(X, s * beta, 0.5) / reg.logistic_exact(X, s * beta, 0.5)
              for s in (0.01, 0.1)]
    assert abs(ratios[0] - 1) < 1e-3
    assert abs(ratios[1] - 1) < abs(ratios[0] - 1) * 200


@pytest.mark.parametrize("fn", [reg.logistic_exact, reg.logistic_quadratic])
def test_gradients_central_differences(fn):
    X, beta, _ = data(5, n=20, d=12, scale=0.8)
    b = -0.2
    _, g, gb = fn(X, beta, 0.6, b, return_grad=True)
    eps = 1e-6
    for j in range(12):
        e = np.zeros(12)
        e[j] = eps
        num = (fn(X, beta + e, 0.6, b) - fn(X, beta - e, 0.6, b)) / (2 * eps)
        assert g[j] == pytest.approx(num, rel=1e-6, abs=1e-9)
    num_b = (fn(X, beta, 0.6, b + eps) - fn(X, beta, 0.6, b - eps)) / (2 * eps)
    assert gb == pytest.approx(num_b, rel=1e-6, abs=1e-9)


def test_mcf_bounds_the_exact_expected_loss():
    X, beta, y = data(6, d=9, scale=1.5)
    q = 0.5
    exact = reg.logistic_exact(X, beta, q)
    assert reg.logistic_mcf_bound(X, y, beta, q) >= exact - 1e-12


def test_gaussian_matches_many_features_roughly():
    """64 small, similar contributions: the sum is nearly Gaussian (CLT)."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(10, 64))
    beta = rng.normal(size=64) * 0.1
    exact = reg.logistic_exact(X, beta, 0.5)
    assert reg.logistic_gaussian(X, beta, 0.5) == pytest.approx(exact, rel=0.05)


def test_softmax_against_brute_force_and_logistic():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(6, 7))
    W = rng.normal(size=(7, 3))
    q = 0.5
    m, p = reg._mask_probs(7, q)
    brute = sum(p @ logsumexp((m * X[i] / q) @ W, axis=1) - logsumexp(X[i] @ W)
                for i in range(6))
    assert reg.softmax_exact(X, W, q) == pytest.approx(brute, rel=1e-12)
    beta = W[:, 0]
    W2 = np.column_stack([np.zeros(7), beta])
    assert reg.softmax_exact(X, W2, q) == pytest.approx(reg.logistic_exact(X, beta, q), rel=1e-10)
    assert reg.softmax_quadratic(X, W2, q) == pytest.approx(
        reg.logistic_quadratic(X, beta, q), rel=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="keep_prob"):
        reg.logistic_exact(np.ones((2, 3)), np.ones(3), 0.0)
    with pytest.raises(ValueError, match="shape"):
        reg.logistic_quadratic(np.ones((2, 3)), np.ones(4), 0.5)
    with pytest.raises(ValueError, match="n_features"):
        reg.softmax_exact(np.ones((1, 17)), np.ones((17, 2)), 0.5)


def test_holm_and_t_interval():
    from ensemble_study import stats
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    m, lo, hi = stats.t_interval([1.0, 2.0, 3.0])
    assert m == 2.0
    assert hi - m == pytest.approx(4.302652729749462 * 1.0 / np.sqrt(3), rel=1e-12)
    assert stats.t_test_mean([1.0, 2.0, 3.0], 2.0) == pytest.approx(1.0)


def _separable(seed=0, n=30, d=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(4 * n, d))
    w = rng.normal(size=d)
    X = X[np.abs(X @ w) > np.linalg.norm(w)][:n]    # a margin of 1
    y = (X @ w > 0).astype(int)
    return X, y, w / np.linalg.norm(w)


def test_quadratic_surrogate_vanishes_along_a_separating_ray():
    """NLL + R^q -> 0 along a separating ray: no finite minimiser on separable data."""
    X, y, w = _separable()
    vals = []
    for t in (5.0, 20.0, 80.0):
        z = X @ (t * w)
        vals.append(np.sum(np.logaddexp(0, z) - y * z) + reg.logistic_quadratic(X, t * w, 0.5))
    assert vals[0] > vals[1] > vals[2]
    assert vals[2] < 1e-3 * vals[0]
    # the exact expected loss along the same ray stays bounded away from 0
    t = 20.0
    z = X @ (t * w)
    exact = np.sum(np.logaddexp(0, z) - y * z) + reg.logistic_exact(X, t * w, 0.5)
    assert exact > 1.0


@pytest.mark.slow
def test_fits_exact_finite_quadratic_runs_away():
    X, y, _ = _separable(1, n=40, d=8)
    be, _, ok = reg.fit_logistic(X, y, 0.5, "exact")
    bq, _, _ = reg.fit_logistic(X, y, 0.5, "quadratic", maxiter=3000)
    assert ok
    assert np.linalg.norm(bq) > 2 * np.linalg.norm(be)
