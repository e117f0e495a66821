"""The softmax dropout regularizer (fact 16): enumeration, R^q, gradients and fits."""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from ensemble_study import regularizer as reg


def _data(seed, n=9, d=5, K=3, scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)), scale * rng.normal(size=(d, K)),
            0.5 * rng.normal(size=K), rng.integers(0, K, n))


def _brute(X, W, q, c):
    """A plain loop over every mask and every example."""
    n, d = X.shape
    total = 0.0
    for bits in itertools.product((0, 1), repeat=d):
        m = np.array(bits, dtype=float)
        p = q ** m.sum() * (1 - q) ** (d - m.sum())
        for i in range(n):
            total += p * logsumexp((m * X[i] / q) @ W + c)
    return total - sum(logsumexp(X[i] @ W + c) for i in range(n))


@pytest.mark.parametrize("q", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("scale", [0.1, 1.0, 4.0])
def test_exact_against_a_loop_over_masks(q, scale):
    X, W, c, _ = _data(1, scale=scale)
    brute = _brute(X, W, q, c)
    assert reg.softmax_exact(X, W, q, c) == pytest.approx(brute, rel=1e-10)
    assert brute > 0


@pytest.mark.parametrize("max_elements", [1, 7, 40, 10 ** 6])
def test_exact_chunking_changes_nothing(max_elements):
    """Chunks of one logit up to everything at once: same value and gradient."""
    X, W, c, _ = _data(2, n=11, d=6, K=4)
    ref = reg.softmax_exact(X, W, 0.4, c, return_grad=True, max_elements=10 ** 6)
    got = reg.softmax_exact(X, W, 0.4, c, return_grad=True, max_elements=max_elements)
    assert got[0] == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-11, atol=1e-13)


def test_quadratic_against_its_definition():
    """``1/2 sum_i tr(H_i Cov(z~_i))`` with H_i and Cov built as matrices."""
    X, W, c, _ = _data(3, d=6, K=4)
    q = 0.3
    total = 0.0
    for x in X:
        z = x @ W + c
        p = np.exp(z - logsumexp(z))
        H = np.diag(p) - np.outer(p, p)
        # Cov of x~ W: independent inputs, Var(m_j x_j / q) = (1-q)/q x_j^2.
        cov = sum((1 - q) / q * x[j] ** 2 * np.outer(W[j], W[j]) for j in range(len(x)))
        total += 0.5 * np.trace(H @ cov)
    assert reg.softmax_quadratic(X, W, q, c) == pytest.approx(total, rel=1e-12)
    # Cov is the enumerated covariance of the logits (checks the formula itself).
    m, p = reg._mask_probs(6, q)
    Z = (m / q) @ (X[0][:, None] * W)
    mu = p @ Z
    cov_enum = (Z - mu).T @ ((Z - mu) * p[:, None])
    cov = sum((1 - q) / q * X[0, j] ** 2 * np.outer(W[j], W[j]) for j in range(6))
    np.testing.assert_allclose(cov_enum, cov, rtol=1e-10, atol=1e-12)


def test_quadratic_is_the_small_weight_limit():
    X, W, c, _ = _data(4, d=6, K=4)
    c = 0 * c
    err = [abs(reg.softmax_quadratic(X, s * W, 0.5, c) / reg.softmax_exact(X, s * W, 0.5, c) - 1)
           for s in (0.01, 0.1)]
    assert err[0] < 1e-3
    assert err[1] > 10 * err[0]      # the third-order error grows with the weights


@pytest.mark.parametrize("fn", [reg.softmax_exact, reg.softmax_quadratic])
def test_gradients_central_differences(fn):
    X, W, c, _ = _data(5, n=8, d=5, K=3, scale=0.8)
    q = 0.6
    _, gW, gc = fn(X, W, q, c, return_grad=True)
    eps = 1e-6
    for j, k in itertools.product(range(5), range(3)):
        E = np.zeros_like(W)
        E[j, k] = eps
        num = (fn(X, W + E, q, c) - fn(X, W - E, q, c)) / (2 * eps)
        assert gW[j, k] == pytest.approx(num, rel=1e-6, abs=1e-9)
    for k in range(3):
        e = np.zeros(3)
        e[k] = eps
        num = (fn(X, W, q, c + e) - fn(X, W, q, c - e)) / (2 * eps)
        assert gc[k] == pytest.approx(num, rel=1e-6, abs=1e-9)
    # Shift invariance (adding one vector to every column): rows of the gradient sum to 0.
    np.testing.assert_allclose(gW.sum(axis=1), 0, atol=1e-10)
    assert abs(gc.sum()) < 1e-10


def test_nonnegative_and_label_free():
    """R >= 0 (Jensen), and E[loss] - loss(x) is the same for every label (E x~ = x)."""
    rng = np.random.default_rng(6)
    for _ in range(20):
        X, W, c, _ = _data(int(rng.integers(1 << 30)), n=4, d=4, K=3,
                           scale=float(rng.uniform(0.1, 5)))
        q = float(rng.uniform(0.05, 1.0))
        assert reg.softmax_exact(X, W, q, c) >= 0
        assert reg.softmax_quadratic(X, W, q, c) >= 0
    X, W, c, _ = _data(7, n=3, d=5, K=4)
    q = 0.35
    m, p = reg._mask_probs(5, q)
    for i in range(3):
        Zt = (m * X[i] / q) @ W + c
        z = X[i] @ W + c
        gaps = [p @ (logsumexp(Zt, axis=1) - Zt[:, y]) - (logsumexp(z) - z[y]) for y in range(4)]
        np.testing.assert_allclose(gaps, gaps[0], rtol=1e-12)
        assert gaps[0] > 0


def test_q_one_is_zero():
    X, W, c, _ = _data(8)
    assert reg.softmax_exact(X, W, 1.0, c) == 0.0
    assert reg.softmax_quadratic(X, W, 1.0, c) == 0.0


@pytest.mark.parametrize("q", [0.3, 0.7])
def test_two_classes_reduce_to_logistic(q):
    X, W, c, _ = _data(9, n=12, d=6, K=1)
    beta, b = W[:, 0], 0.4
    W2, c2 = np.column_stack([np.zeros(6), beta]), np.array([0.0, b])
    R, gW, gc = reg.softmax_exact(X, W2, q, c2, return_grad=True)
    Rl, gl, gbl = reg.logistic_exact(X, beta, q, b, return_grad=True)
    assert R == pytest.approx(Rl, rel=1e-10)
    np.testing.assert_allclose(gW[:, 1], gl, rtol=1e-8, atol=1e-12)
    assert gc[1] == pytest.approx(gbl, rel=1e-8)
    R, gW, gc = reg.softmax_quadratic(X, W2, q, c2, return_grad=True)
    Rl, gl, gbl = reg.logistic_quadratic(X, beta, q, b, return_grad=True)
    assert R == pytest.approx(Rl, rel=1e-12)
    np.testing.assert_allclose(gW[:, 1], gl, rtol=1e-10, atol=1e-14)
    assert gc[1] == pytest.approx(gbl, rel=1e-10)
    S = reg.softmax_fisher_ridge_strengths(X, W2, q, c2)
    np.testing.assert_allclose(S[:, 1, 1], reg.fisher_ridge_strengths(X, beta, q, b),
                               rtol=1e-12)


def test_fisher_ridge_strengths_reproduce_quadratic_at_the_frozen_point():
    X, W, c, _ = _data(10, d=6, K=4)
    S = reg.softmax_fisher_ridge_strengths(X, W, 0.3, c)
    assert 0.5 * np.einsum("jk,jkl,jl->", W, S, W) == pytest.approx(
        reg.softmax_quadratic(X, W, 0.3, c), rel=1e-12)
    np.testing.assert_allclose(S @ np.ones(4), 0, atol=1e-12)   # H_i 1 = 0
    assert np.all(np.linalg.eigvalsh(S) > -1e-12)


@pytest.mark.parametrize("bad, match", [
    (dict(X=np.ones((2, 17)), W=np.ones((17, 2))), "at most n_features = 16"),
    (dict(X=np.ones((2, 3)), W=np.ones((4, 2))), "shape"),
    (dict(X=np.ones((2, 3)), W=np.ones((3, 2)), c=np.ones(3)), "c must have shape"),
    (dict(X=np.ones((2, 3)), W=np.ones((3, 2)), q=0.0), "keep_prob"),
    (dict(X=np.ones((2, 3)), W=np.ones((3, 2)), max_elements=0), "max_elements"),
])
def test_bad_inputs(bad, match):
    kw = {"q": 0.5, **bad}
    with pytest.raises(ValueError, match=match):
        reg.softmax_exact(kw.pop("X"), kw.pop("W"), kw.pop("q"), **kw)


def test_limit_message_suggests_pca():
    with pytest.raises(ValueError, match="PCA"):
        reg.softmax_exact(np.ones((2, 20)), np.ones((20, 3)), 0.5)
    with pytest.raises(ValueError, match="at most n_features = 16"):
        reg.fit_softmax(np.ones((4, 20)), np.array([0, 1, 2, 0]), 0.5, "exact")


# --- fits --------------------------------------------------------------------------------

def _task(seed, n=60, d=4, K=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Z = X @ rng.normal(size=(d, K))
    y = np.array([rng.choice(K, p=np.exp(z - logsumexp(z))) for z in Z])
    return X, y


def _objective(X, y, q, penalty, W, c, l2=0.0, ridge=None):
    Z = X @ W + c
    val = np.sum(logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]) + 0.5 * l2 * np.sum(W ** 2)
    if ridge is not None:
        val += 0.5 * np.einsum("jk,jkl,jl->", W, ridge, W)
    if penalty == "exact":
        val += _brute(X, W, q, c)
    elif penalty == "quadratic":
        val += reg.softmax_quadratic(X, W, q, c)
    return val


@pytest.mark.parametrize("penalty, kw", [("exact", {}), ("quadratic", {}),
                                         ("none", {"l2": 2.0}), ("none", {"ridge": True})])
def test_fits_are_local_minima_of_their_objectives(penalty, kw):
    """No small random perturbation lowers the objective (the exact one by brute force)."""
    X, y = _task(11, n=40, d=4)
    q = 0.5
    if kw.get("ridge"):
        W0, c0, _ = reg.fit_softmax(X, y, q, "exact")
        kw = {"ridge": reg.softmax_fisher_ridge_strengths(X, W0, q, c0)}
    W, c, ok = reg.fit_softmax(X, y, q, penalty, **kw)
    assert ok
    best = _objective(X, y, q, penalty, W, c, **kw)
    rng = np.random.default_rng(0)
    for _ in range(10):
        dW, dc = 1e-3 * rng.normal(size=W.shape), 1e-3 * rng.normal(size=c.shape)
        assert _objective(X, y, q, penalty, W + dW, c + dc, **kw) >= best - 1e-9
    # the gauge: rows of W and c sum to 0 when started from zeros
    np.testing.assert_allclose(W.sum(axis=1), 0, atol=1e-8)


def test_fit_is_deterministic_and_two_classes_match_logistic():
    X, y = _task(12, n=50, d=4, K=2)
    W, c, ok = reg.fit_softmax(X, y, 0.5, "exact", gtol=1e-9)
    W2, c2, _ = reg.fit_softmax(X, y, 0.5, "exact", gtol=1e-9)
    np.testing.assert_array_equal(W, W2)
    beta, b, _ = reg.fit_logistic(X, y, 0.5, "exact", gtol=1e-9)
    # two-class softmax = logistic on the difference of the columns
    np.testing.assert_allclose(W[:, 1] - W[:, 0], beta, rtol=1e-4, atol=1e-5)
    assert c[1] - c[0] == pytest.approx(b, rel=1e-4, abs=1e-5)


def test_fisher_ridge_wrapper_and_l2_validation():
    X, y = _task(13, n=60, d=4)
    W0, c0, _ = reg.fit_softmax(X, y, 0.5, "exact")
    Wr, cr, ok = reg.softmax_fisher_ridge(X, y, 0.5, W0, c0)
    S = reg.softmax_fisher_ridge_strengths(X, W0, 0.5, c0)
    Wd, cd, _ = reg.fit_softmax(X, y, 0.5, "none", ridge=S)
    np.testing.assert_array_equal(Wr, Wd)
    lams = [1e-3, 0.1, 1.0, 10.0, 100.0]
    W, c, lam = reg.fit_softmax_l2_validated(X, y, lams, rng=5)
    order = np.random.default_rng(5).permutation(60)
    val, fit = order[:15], order[15:]
    scores = [reg.softmax_nll(X[val], y[val], *reg.fit_softmax(X[fit], y[fit], 1.0, "none",
                                                                  n_classes=3, l2=lm)[:2])
              for lm in lams]
    assert lam == lams[int(np.argmin(scores))]
    np.testing.assert_array_equal(W, reg.fit_softmax(X, y, 1.0, "none", l2=lam)[0])
    with pytest.raises(ValueError, match="lams must be"):
        reg.fit_softmax_l2_validated(X, y, [], rng=0)
    with pytest.raises(ValueError, match="val_fraction"):
        reg.fit_softmax_l2_validated(X, y, lams, rng=0, val_fraction=1.0)


def test_nll_against_a_loop():
    X, W, c, y = _data(14, n=7, d=3, K=4)
    ref = np.mean([logsumexp(X[i] @ W + c) - (X[i] @ W + c)[y[i]] for i in range(7)])
    assert reg.softmax_nll(X, y, W, c) == pytest.approx(ref, rel=1e-13)


@pytest.mark.parametrize("kw, match", [
    (dict(penalty="gaussian"), "penalty must be one of"),
    (dict(l2=-1.0), "l2 must be"),
    (dict(ridge=np.ones((4, 3))), "ridge must hold 4"),
    (dict(y=np.array([0, 1, 5] * 4)), "class indices in 0..2"),
    (dict(y=np.zeros(12)), "integer class index"),
    (dict(x0=(np.zeros((4, 2)), np.zeros(3))), "x0 must be"),
    (dict(n_classes=1), "n_classes must be"),
])
def test_fit_bad_inputs(kw, match):
    args = dict(X=np.ones((12, 4)), y=np.array([0, 1, 2] * 4), q=0.5, penalty="none")
    args.update(kw)
    if "y" in kw and "n_classes" not in kw and match.startswith("class"):
        args["n_classes"] = 3
    with pytest.raises(ValueError, match=match):
        reg.fit_softmax(args.pop("X"), args.pop("y"), args.pop("q"), args.pop("penalty"),
                        **args)
