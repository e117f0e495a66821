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


@pytest.mark.parametrize("fn", [reg.logistic_exact, reg.logistic_quadratic,
                                reg.logistic_gaussian])
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


# --- training by the surrogates (the regularizer_fits study) ------------------------------

def test_gaussian_surrogate_against_adaptive_quadrature():
    from scipy.integrate import quad
    from scipy.stats import norm

    X, beta, _ = data(11, n=3, d=5, scale=1.2)
    q, b = 0.4, 0.3
    z = X @ beta + b
    sd = np.sqrt((1 - q) / q * (X ** 2) @ (beta ** 2))
    brute = sum(quad(lambda t, zi=zi, si=si: softplus(zi + si * t) * norm.pdf(t), -40, 40,
                     epsabs=1e-13, epsrel=1e-13)[0] - softplus(zi) for zi, si in zip(z, sd))
    assert reg.logistic_gaussian(X, beta, q, b) == pytest.approx(brute, rel=1e-10)


def test_fisher_ridge_strengths_reproduce_quadratic_at_the_frozen_point():
    X, beta, _ = data(12, d=7, scale=0.9)
    q, b = 0.3, -0.4
    s = reg.fisher_ridge_strengths(X, beta, q, b)
    assert 0.5 * s @ beta ** 2 == pytest.approx(reg.logistic_quadratic(X, beta, q, b),
                                                rel=1e-12)


def test_penalty_strengths_small_weight_limit_and_l2_definition():
    """At small weights every penalty's pull per unit weight is R^q's frozen Fisher."""
    X, beta, _ = data(13, n=25, d=6, scale=0.01)
    q = 0.5
    ridge = reg.fisher_ridge_strengths(X, beta, q)
    for kind in ("exact", "quadratic", "gaussian"):
        np.testing.assert_allclose(reg.penalty_strengths(kind, X, beta, q), ridge, rtol=2e-3)
    with pytest.raises(ValueError, match="penalty must be one of"):
        reg.penalty_strengths("l1", X, beta, q)


@pytest.mark.parametrize("kw", [{"l2": 0.7}, {"ridge": "fisher"}])
def test_fit_logistic_penalised_fits_are_stationary(kw):
    X, beta0, y = data(14, n=40, d=5)
    if kw.get("ridge") == "fisher":
        kw = {"ridge": reg.fisher_ridge_strengths(X, beta0, 0.5)}
    strengths = np.full(5, kw.get("l2", 0.0)) + kw.get("ridge", np.zeros(5))
    beta, b, ok = reg.fit_logistic(X, y, 1.0, "none", **kw)
    r = 1 / (1 + np.exp(-(X @ beta + b))) - y
    assert ok
    np.testing.assert_allclose(X.T @ r + strengths * beta, 0, atol=1e-4)
    assert abs(r.sum()) < 1e-4


def test_fit_logistic_gaussian_minimises_its_objective():
    X, _, y = data(15, n=40, d=4)
    q = 0.5
    beta, b, ok = reg.fit_logistic(X, y, q, "gaussian")
    assert ok

    def obj(w, c):
        z = X @ w + c
        return np.sum(softplus(z) - y * z) + reg.logistic_gaussian(X, w, q, c)

    best = obj(beta, b)
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert obj(beta + 0.01 * rng.normal(size=4), b + 0.01 * rng.normal()) >= best - 1e-9


def test_fit_logistic_bad_penalties():
    X, _, y = data(16, n=10, d=3)
    with pytest.raises(ValueError, match="l2 must be"):
        reg.fit_logistic(X, y, 0.5, "none", l2=-1.0)
    with pytest.raises(ValueError, match="ridge must hold 3"):
        reg.fit_logistic(X, y, 0.5, "none", ridge=np.ones(4))


def test_fit_l2_validated_picks_the_best_validation_nll():
    X, _, y = data(17, n=60, d=6)
    lams = [1e-3, 0.1, 1.0, 10.0, 100.0]
    beta, b, lam = reg.fit_l2_validated(X, y, lams, rng=5)
    order = np.random.default_rng(5).permutation(60)
    val, fit = order[:15], order[15:]
    scores = []
    for lm in lams:
        w, c, _ = reg.fit_logistic(X[fit], y[fit], 1.0, "none", l2=lm)
        scores.append(reg.nll(X[val], y[val], w, c))
    assert lam == lams[int(np.argmin(scores))]
    w, c, _ = reg.fit_logistic(X, y, 1.0, "none", l2=lam)
    np.testing.assert_allclose(beta, w)
    with pytest.raises(ValueError, match="lams must be"):
        reg.fit_l2_validated(X, y, [], rng=0)
    with pytest.raises(ValueError, match="val_fraction"):
        reg.fit_l2_validated(X, y, lams, rng=0, val_fraction=1.0)


def test_dropout_sgd_reaches_the_exact_dropout_minimiser():
    """Sampled masks, averaged iterates: the minimiser of E[loss] is the exact fit's."""
    rng = np.random.default_rng(18)
    X = rng.normal(size=(60, 4))
    y = (rng.random(60) < 1 / (1 + np.exp(-(X @ [1.0, -1.0, 0.5, 0.0])))).astype(int)
    q = 0.6
    beta, b, _ = reg.fit_logistic(X, y, q, "exact")
    sgd, sgd_b = reg.fit_dropout_sgd(X, y, q, rng=3, epochs=400, batch_size=10, lr=0.5)
    assert np.linalg.norm(sgd - beta) < 0.1 * np.linalg.norm(beta)
    assert abs(sgd_b - b) < 0.1
    # ... and not the unregularised fit's (dropout shrinks here).
    plain, _, _ = reg.fit_logistic(X, y, q, "none")
    assert np.linalg.norm(plain - beta) > 3 * np.linalg.norm(sgd - beta)
    again, _ = reg.fit_dropout_sgd(X, y, q, rng=3, epochs=400, batch_size=10, lr=0.5)
    np.testing.assert_array_equal(again, sgd)


def test_rare_features_simulation_rates():
    n, n_rare, rate, flip = 4000, 10, 0.1, 0.1
    X, y = reg.rare_features(n, rng=2, n_rare=n_rare, n_common=5, rare_rate=rate, flip=flip)
    assert X.shape == (n, 15) and set(np.unique(y)) == {0, 1}
    active = X[:, :n_rare] != 0
    k, m = active.sum(), n * n_rare
    assert abs(k - m * rate) < 4 * np.sqrt(m * rate * (1 - rate))
    s = (2 * y - 1)[:, None]
    wrong = (X[:, :n_rare] * s < 0)[active].sum()
    assert abs(wrong - k * flip) < 4 * np.sqrt(k * flip * (1 - flip))
    shift = (X[:, n_rare:] * s).mean()
    assert abs(shift - 0.25) < 4 / np.sqrt(n * 5)
    with pytest.raises(ValueError, match="rare_rate"):
        reg.rare_features(10, rng=0, rare_rate=1.5)
    with pytest.raises(ValueError, match="n_rare"):
        reg.rare_features(10, rng=0, n_rare=0)


def test_exact_dropout_loss_only_falls_along_a_rare_separating_feature():
    """A feature nonzero on a few examples, always with their label's sign: the expected
    dropout loss (NLL + exact R) decreases as its weight grows (no finite minimiser),
    checked against enumeration at 4 features."""
    rng = np.random.default_rng(19)
    n = 40
    y = rng.integers(0, 2, n)
    s = 2.0 * y - 1
    rare = np.where(np.arange(n) < 5, s, 0.0)
    X = np.c_[rare, rng.normal(size=(n, 3)) + 0.3 * s[:, None]]
    base = np.array([0.0, 0.4, 0.4, 0.4])
    q = 0.5

    def loss(w):
        z = X @ w
        return np.sum(softplus(z) - y * z) + reg.logistic_exact(X, w, q)

    vals = []
    for t in np.linspace(0, 6, 7):
        w = base + np.array([t, 0, 0, 0])
        vals.append(loss(w))
        z = X @ w
        brute = np.sum(softplus(z) - y * z) + reg.enumerate_regularizer(softplus, X, w, q)
        assert vals[-1] == pytest.approx(brute, rel=1e-10)
    assert np.all(np.diff(vals) < 0)


def test_fit_reports_not_converged_when_the_integral_fails(monkeypatch):
    X, _, y = data(20, n=20, d=3)

    def refuse(*args, **kwargs):
        raise ValueError("integral cannot reach its accuracy")

    monkeypatch.setattr(reg, "logistic_exact", refuse)
    beta, b, ok = reg.fit_logistic(X, y, 0.5, "exact")
    assert not ok and np.all(np.isfinite(beta))


# --- the exact MLP regularizer and its two parts (issue 20, item 1; fact 10) --------------

def _mlp_brute(net, cfg, X, y):
    """A plain loop over every mask: E_m[NLL(subnetwork)] - NLL(scaled pass)."""
    import itertools

    from ensemble_study.dropout import scaled_forward, unit_keep_probs
    from ensemble_study.ensemble import subnetwork_outputs

    q = unit_keep_probs(net, cfg)

    def nll(z):
        if net.output == "softmax":
            return np.sum(logsumexp(z, axis=1) - z[np.arange(len(y)), y])
        if net.output == "sigmoid":
            return np.sum(softplus(z[:, 0]) - y * z[:, 0])
        return np.sum(0.5 * (z - y) ** 2 - 0.5 * y ** 2)

    total = 0.0
    for bits in itertools.product((0, 1), repeat=len(q)):
        m = np.array(bits, dtype=float)
        p = np.prod(np.where(m == 1, q, 1 - q))
        total += p * nll(subnetwork_outputs(net, cfg, X, m[None, :], logits=True)[0])
    return total - nll(scaled_forward(net, cfg, X, logits=True))


def _net(hidden, output, seed, sizes=(3, 4, 3, 3)):
    from ensemble_study.network import MLP

    return MLP.random(sizes, hidden, output, rng=seed)


def _labels(output, n, k, seed):
    rng = np.random.default_rng(seed)
    if output == "softmax":
        return rng.integers(0, k, n)
    if output == "sigmoid":
        return rng.integers(0, 2, n)
    return rng.normal(size=(n, k))


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
@pytest.mark.parametrize("scheme", ["inverted", "vanilla"])
def test_mlp_regularizer_against_brute_force(output, scheme):
    from ensemble_study.dropout import DropoutConfig

    k = 1 if output == "sigmoid" else 3
    net = _net(("tanh", "relu"), output, 1, sizes=(3, 4, 3, k))
    cfg = DropoutConfig(0.6, layers=(0, 1), scheme=scheme)
    X = np.random.default_rng(2).normal(size=(7, 3))
    y = _labels(output, 7, k, 3)
    r = reg.mlp_regularizer(net, cfg, X, y, chunk_size=5)
    assert r["total"] == pytest.approx(_mlp_brute(net, cfg, X, y), rel=1e-10, abs=1e-12)
    assert r["total"] == pytest.approx(r["label_free"] + r["label_dependent"], abs=1e-12)


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_mlp_label_dependent_part_vanishes_after_identity_activations(output):
    """Fact 10: every activation after the first dropped layer is the identity (a tanh
    before it is allowed): E[z~] equals the scaled logits, so the label-dependent part is
    0, the regularizer is free of the labels and >= 0 (Jensen)."""
    from ensemble_study.dropout import DropoutConfig

    k = 1 if output == "sigmoid" else 3
    net = _net(("tanh", "identity"), output, 4, sizes=(3, 4, 3, k))
    X = np.random.default_rng(5).normal(size=(6, 3))
    for scheme in ("inverted", "vanilla"):
        cfg = DropoutConfig(0.5, layers=(1, 2), scheme=scheme)
        totals = []
        for seed in (6, 7):
            r = reg.mlp_regularizer(net, cfg, X, _labels(output, 6, k, seed))
            assert abs(r["label_dependent"]) < 1e-12
            assert r["label_free"] > 0
            totals.append(r["total"])
        assert totals[0] == pytest.approx(totals[1], rel=1e-12)
    # ... and with a tanh after the first dropped layer it is not 0.
    net = _net(("tanh", "tanh"), output, 4, sizes=(3, 4, 3, k))
    r = reg.mlp_regularizer(net, DropoutConfig(0.5, layers=(1,)), X, _labels(output, 6, k, 6))
    assert abs(r["label_dependent"]) > 1e-6


def test_mlp_regularizer_matches_logistic_exact_without_hidden_layer():
    from ensemble_study.dropout import DropoutConfig
    from ensemble_study.network import MLP

    X, beta, y = data(21, n=9, d=5)
    net = MLP.from_arrays([beta[:, None]], [np.array([0.3])], hidden=(), output="sigmoid")
    r = reg.mlp_regularizer(net, DropoutConfig(0.4, layers=(0,)), X, y)
    assert r["label_dependent"] == pytest.approx(0.0, abs=1e-12)
    assert r["total"] == pytest.approx(reg.logistic_exact(X, beta, 0.4, 0.3), rel=1e-10)


def test_mlp_regularizer_bad_inputs():
    from ensemble_study.dropout import DropoutConfig

    net = _net("relu", "softmax", 8)
    X = np.zeros((2, 3))
    with pytest.raises(ValueError, match="class index"):
        reg.mlp_regularizer(net, DropoutConfig(0.5, layers=(1,)), X, np.array([0, 5]))
    with pytest.raises(ValueError, match="max_masks"):
        reg.mlp_regularizer(net, DropoutConfig(0.5, layers=(0, 1, 2)), X, np.array([0, 1]),
                            max_masks=100)
