"""The dropout regularizer of a GLM, exactly and by its approximations (fact 16).

A GLM with loss ``A(x.beta + b) - y (x.beta + b)`` trained under inverted input
dropout (``x~_j = m_j x_j / q``, ``m_j ~ Bernoulli(q)``, so ``E x~ = x``) has expected
loss equal to the loss at ``x`` plus

    R(beta) = sum_i E[A(x~_i.beta + b)] - A(x_i.beta + b)     (Wager, Wang & Liang 2013),

which is >= 0 (Jensen: A is convex) and does not depend on the labels (the term
linear in ``y`` has the same mean under the noise). Here:

* :func:`logistic_exact`: ``A = softplus``, exactly at any number of features by the
  Laplace integral of :mod:`ensemble_study.laplace`, with its gradient;
* :func:`logistic_quadratic`: Wager et al.'s delta-method ``R^q = 1/2 (1-q)/q sum_j
  beta_j^2 sum_i A''(z_i) x_ij^2`` and its gradient, including the dependence of
  ``A''(z_i)`` on beta;
* :func:`logistic_gaussian`: Wang & Manning's (2013) Gaussian surrogate, ``x~.beta``
  replaced by a Gaussian of the same mean and variance (Gauss-Hermite quadrature);
* :func:`logistic_mcf_bound`: van der Maaten et al.'s (2013) bound on the expected
  logistic loss, ``E log(1 + e^{-yZ}) <= log(1 + E e^{-yZ})`` (labels y in {-1, +1}),
  exact to compute since ``E e^{-yZ}`` factorises over the features;
* :func:`softmax_exact` and :func:`softmax_quadratic`: softmax regression,
  ``A = logsumexp``, by enumeration of every mask, and its quadratic term
  ``1/2 sum_i tr(H_i Cov(z~_i))``, ``H_i = diag(p_i) - p_i p_i'``;
* :func:`enumerate_regularizer`: the brute-force reference for any ``A``.

For squared loss (``A(z) = z^2 / 2``) ``R = R^q`` exactly (:func:`squared_quadratic`).

Shapes: ``X`` (n_examples, n_features); ``beta`` (n_features,); ``b`` a float;
softmax ``W`` (n_features, n_classes), ``c`` (n_classes,).

(Over 500 lines: the exact regularizer and each of its published
approximations, with their gradients, side by side as the tests compare them.)
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp

from .dropout import scaled_forward, unit_keep_probs
from .ensemble import subnetwork_outputs
from .laplace import expected_softplus
from .masks import enumerate_masks, n_masks

__all__ = ["logistic_exact", "logistic_quadratic", "logistic_gaussian", "logistic_mcf_bound",
           "softmax_exact", "softmax_quadratic", "softmax_fisher_ridge_strengths", "softmax_nll",
           "fit_softmax", "softmax_fisher_ridge", "fit_softmax_l2_validated", "center_classes",
           "squared_quadratic", "enumerate_regularizer",
           "all_masks", "fit_logistic", "fisher_ridge_strengths", "penalty_strengths", "nll",
           "fit_l2_validated", "fit_dropout_sgd", "rare_features", "mlp_regularizer"]

MAX_ENUMERATED = 16


def _check_q(q):
    if not 0.0 < float(q) <= 1.0:
        raise ValueError(f"q (keep_prob) must be in (0, 1]; got {q!r}")
    return float(q)


def _check_xb(X, beta):
    X = np.asarray(X, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    if X.ndim != 2 or beta.ndim != 1 or X.shape[1] != beta.shape[0]:
        raise ValueError(f"X must have shape (n_examples, n_features) and beta (n_features,); "
                         f"got {X.shape} and {beta.shape}")
    return X, beta


def all_masks(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every 0/1 mask over ``n`` units, shape (2^n, n), and its count of kept units."""
    if not 0 <= n <= MAX_ENUMERATED:
        raise ValueError(f"enumeration needs 0 <= n_features <= {MAX_ENUMERATED}; got {n}. "
                         "Reduce the features (PCA, pooling) or use logistic_exact.")
    m = ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)
    return m, m.sum(axis=1)


def _mask_probs(n, q):
    m, k = all_masks(n)
    if q == 1.0:
        return m, (k == n).astype(np.float64)
    return m, np.exp(k * np.log(q) + (n - k) * np.log1p(-q))


def logistic_exact(X, beta, q, b=0.0, *, return_grad=False):
    """Exact dropout regularizer of logistic regression, ``sum_i E softplus(z~_i) - softplus(z_i)``.

    Parameters
    ----------
    X : ndarray, shape (n_examples, n_features)
    beta : ndarray, shape (n_features,)
    q : float in (0, 1]
        keep_prob of the inputs (inverted scheme).
    b : float
        Intercept (never dropped).
    return_grad : bool

    Returns
    -------
    R : float
    grad_beta : ndarray, shape (n_features,)   (with ``return_grad``)
    grad_b : float                             (with ``return_grad``)
    """
    X, beta = _check_xb(X, beta)
    q = _check_q(q)
    z = X @ beta + b
    c = X * beta[None, :] / q
    bb = np.full(X.shape[0], float(b))
    if not return_grad:
        return float(np.sum(expected_softplus(bb, c, q)) - np.sum(np.logaddexp(0.0, z)))
    v, gb, gc = expected_softplus(bb, c, q, return_grad=True)
    s = expit(z)
    R = float(np.sum(v) - np.sum(np.logaddexp(0.0, z)))
    grad = np.sum(gc * X, axis=0) / q - s @ X
    return R, grad, float(np.sum(gb) - np.sum(s))


def logistic_quadratic(X, beta, q, b=0.0, *, return_grad=False):
    """Wager et al.'s ``R^q = 1/2 (1-q)/q sum_i A''(z_i) sum_j x_ij^2 beta_j^2``, A = softplus.

    Same parameters and returns as :func:`logistic_exact`; the gradient includes the
    dependence of ``A''(z_i) = s_i (1 - s_i)`` on beta and b.
    """
    X, beta = _check_xb(X, beta)
    q = _check_q(q)
    z = X @ beta + b
    s = expit(z)
    a2 = s * (1.0 - s)
    v = (X ** 2) @ (beta ** 2)                      # Var[z~_i] / ((1-q)/q)
    k = 0.5 * (1.0 - q) / q
    R = float(k * a2 @ v)
    if not return_grad:
        return R
    a3 = a2 * (1.0 - 2.0 * s)
    grad = k * (2.0 * beta * (a2 @ X ** 2) + (a3 * v) @ X)
    return R, grad, float(k * a3 @ v)


def squared_quadratic(X, beta, q):
    """``R^q`` of squared loss, ``A(z) = z^2/2``: ``1/2 (1-q)/q sum_ij x_ij^2 beta_j^2`` (exact)."""
    X, beta = _check_xb(X, beta)
    q = _check_q(q)
    return float(0.5 * (1.0 - q) / q * np.sum((X ** 2) @ (beta ** 2)))


def logistic_gaussian(X, beta, q, b=0.0, *, n_nodes=80, return_grad=False):
    """Wang & Manning's Gaussian surrogate: ``sum_i E softplus(N(z_i, s_i^2)) - softplus(z_i)``.

    ``s_i^2 = (1-q)/q sum_j x_ij^2 beta_j^2`` (the exact variance of ``z~_i``);
    Gauss-Hermite quadrature with ``n_nodes`` nodes. Same returns as
    :func:`logistic_exact`. The gradient uses Stein's identity
    ``d/ds E g(z + s t) = s E g''(z + s t)`` (t standard normal), so it has no ``1/s``.
    """
    X, beta = _check_xb(X, beta)
    q = _check_q(q)
    z = X @ beta + b
    k2 = (1.0 - q) / q
    sd = np.sqrt(k2 * (X ** 2) @ (beta ** 2))
    t, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    w = w / w.sum()
    zt = z[:, None] + sd[:, None] * t[None, :]
    R = float(np.sum(np.logaddexp(0.0, zt) @ w) - np.sum(np.logaddexp(0.0, z)))
    if not return_grad:
        return R
    st = expit(zt)
    g1 = st @ w - expit(z)                         # d/dz_i
    h = (st * (1.0 - st)) @ w                      # (d/d sd_i) / sd_i
    grad = g1 @ X + k2 * beta * (h @ X ** 2)
    return R, grad, float(np.sum(g1))


def logistic_mcf_bound(X, y, beta, q, b=0.0):
    """Van der Maaten et al.'s bound on the expected logistic loss, minus the loss at ``x``.

    ``E log(1 + e^{-y Z}) <= log(1 + E e^{-y Z})``, ``E e^{-yZ} = e^{-yb} prod_j
    (1 - q + q e^{-y x_j beta_j / q})``. Labels ``y`` in {0, 1} (mapped to -1, +1).
    The result is an upper bound on the exact regularizer and, unlike it, depends on y.
    """
    X, beta = _check_xb(X, beta)
    q = _check_q(q)
    y = np.asarray(y)
    if y.shape != (X.shape[0],) or not np.all(np.isin(y, (0, 1))):
        raise ValueError(f"y must hold one label in {{0, 1}} per row of X; got shape {y.shape}")
    sgn = 2.0 * y - 1.0
    c = -sgn[:, None] * X * beta[None, :] / q
    if q < 1.0:
        logm = -sgn * b + np.logaddexp(np.log1p(-q), np.log(q) + c).sum(axis=1)
    else:
        logm = -sgn * b + c.sum(axis=1)
    z = X @ beta + b
    return float(np.sum(np.logaddexp(0.0, logm)) - np.sum(np.logaddexp(0.0, -sgn * z)))


def enumerate_regularizer(A, X, beta, q, b=0.0):
    """Brute force: ``sum_i sum_m P(m) A(x~_i(m).beta + b) - A(x_i.beta + b)`` for any ``A``.

    ``A`` maps an array of logits to an array of the same shape.
    """
    X, beta = _check_xb(X, beta)
    q = _check_q(q)
    m, p = _mask_probs(X.shape[1], q)
    zt = (m / q) @ (X * beta[None, :]).T + b        # (2^n, n_examples)
    return float(np.sum(p @ A(zt)) - np.sum(A(X @ beta + b)))


def _check_xw(X, W, c):
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    if X.ndim != 2 or W.ndim != 2 or X.shape[1] != W.shape[0]:
        raise ValueError(f"X must have shape (n_examples, n_features) and W (n_features, "
                         f"n_classes); got {X.shape} and {W.shape}")
    c = np.zeros(W.shape[1]) if c is None else np.asarray(c, dtype=np.float64)
    if c.shape != (W.shape[1],):
        raise ValueError(f"c must have shape (n_classes,) = ({W.shape[1]},); got {c.shape}")
    return X, W, c


def _softmax_rows(Z):
    """``(logsumexp(Z), softmax(Z))`` along the last axis, stably."""
    mx = Z.max(axis=-1, keepdims=True)
    E = np.exp(Z - mx)
    s = E.sum(axis=-1, keepdims=True)
    return (mx + np.log(s))[..., 0], E / s


def softmax_exact(X, W, q, c=None, *, return_grad=False, max_elements=2 ** 20):
    """Exact dropout regularizer of softmax regression, by enumeration of every input mask.

    ``R = sum_i E logsumexp(x~_i W + c) - logsumexp(x_i W + c)``, ``x~_ij = m_j x_ij / q``
    (inverted input dropout; the intercept ``c`` is never dropped). The ``2^n_features``
    masks are enumerated in chunks of masks and of examples holding at most
    ``max_elements`` logits each, so memory stays bounded whatever the number of examples.

    Parameters
    ----------
    X : ndarray, shape (n_examples, n_features)
        At most ``MAX_ENUMERATED`` (16) features.
    W : ndarray, shape (n_features, n_classes)
    q : float in (0, 1]
        keep_prob of the inputs.
    c : ndarray, shape (n_classes,), optional
        Intercepts (zeros by default).
    return_grad : bool
    max_elements : int
        Largest chunk of logits held at once (masks x examples x classes).

    Returns
    -------
    R : float
    grad_W : ndarray, shape (n_features, n_classes)   (with ``return_grad``)
    grad_c : ndarray, shape (n_classes,)              (with ``return_grad``)

    Raises
    ------
    ValueError
        Above 16 features (``2^16`` masks): reduce the inputs first (PCA to at most 16
        components), or use :func:`softmax_quadratic`.
    """
    X, W, c = _check_xw(X, W, c)
    q = _check_q(q)
    n, d = X.shape
    K = W.shape[1]
    if d > MAX_ENUMERATED:
        raise ValueError(f"softmax_exact enumerates 2^n_features input masks and allows at "
                         f"most n_features = {MAX_ENUMERATED} inputs; got {d}. Reduce the "
                         f"inputs first (PCA to <= {MAX_ENUMERATED} components) or use "
                         f"softmax_quadratic.")
    if isinstance(max_elements, bool) or not isinstance(max_elements, (int, np.integer)) \
            or max_elements < 1:
        raise ValueError(f"max_elements must be an integer >= 1; got {max_elements!r}")
    if q == 1.0:
        # No noise: x~ = x, so R = 0 exactly (not a rounding of a difference).
        return 0.0 if not return_grad else (0.0, np.zeros_like(W), np.zeros(K))
    M, p = _mask_probs(d, q)
    lse0, P0 = _softmax_rows(X @ W + c)
    nb = max(1, min(n, max_elements // max(K, 1)))
    total = 0.0
    gW = np.zeros_like(W)
    gc = np.zeros(K)
    for i0 in range(0, n, nb):
        Xb = X[i0:i0 + nb]
        m = Xb.shape[0]
        # zt[mask, i, k] = sum_j (M_j / q) x_ij W_jk + c_k: one GEMM per chunk of masks.
        B = (Xb.T[:, :, None] * W[:, None, :]).reshape(d, m * K)
        mb = max(1, max_elements // (m * K))
        for s0 in range(0, len(p), mb):
            Mc, pc = M[s0:s0 + mb], p[s0:s0 + mb]
            Z = ((Mc / q) @ B).reshape(len(pc), m, K) + c
            lse, S = _softmax_rows(Z)
            # Subtract lse(z_i) inside the mean: R is a small difference of large terms.
            total += float(pc @ (lse - lse0[i0:i0 + m]).sum(axis=1))
            if return_grad:
                T = ((Mc * pc[:, None]).T @ S.reshape(len(pc), m * K)).reshape(d, m, K)
                gW += np.einsum("jik,ij->jk", T, Xb) / q
                gc += pc @ S.sum(axis=1)
    if not return_grad:
        return total
    gW -= X.T @ P0
    gc -= P0.sum(axis=0)
    return total, gW, gc


def softmax_quadratic(X, W, q, c=None, *, return_grad=False):
    """Wager et al.'s ``R^q = 1/2 sum_i tr(H_i Cov(z~_i))`` of softmax regression.

    ``H_i = diag(p_i) - p_i p_i'`` (the Hessian of logsumexp at ``z_i = x_i W + c``) and
    ``Cov(z~_i) = (1-q)/q sum_j x_ij^2 W_j W_j'`` (``W_j`` the j-th row of ``W``), so
    ``R^q = 1/2 (1-q)/q sum_ij x_ij^2 W_j' H_i W_j``.

    Same parameters and returns as :func:`softmax_exact` (any number of features); the
    gradient includes the dependence of ``H_i`` on ``W`` and ``c``.
    """
    X, W, c = _check_xw(X, W, c)
    q = _check_q(q)
    k = 0.5 * (1.0 - q) / q
    _, P = _softmax_rows(X @ W + c)
    X2 = X ** 2
    U = P @ W.T                                     # u_ij = sum_k p_ik W_jk
    # W_j' H_i W_j = sum_k p_ik W_jk^2 - u_ij^2
    R = float(k * np.sum(X2 * (P @ (W ** 2).T - U ** 2)))
    if not return_grad:
        return R
    # With p_i held fixed: d/dW_jk = 2 k sum_i x_ij^2 p_ik (W_jk - u_ij).
    gW = 2.0 * k * (W * (X2.T @ P) - (X2 * U).T @ P)
    # Through p_i: dR/dp_ik = k sum_j x_ij^2 (W_jk^2 - 2 u_ij W_jk), then the softmax's
    # Jacobian, dR/dz_ik = p_ik (g_ik - sum_l p_il g_il).
    G = k * (X2 @ W ** 2 - 2.0 * (X2 * U) @ W)
    Gz = P * (G - np.sum(P * G, axis=1, keepdims=True))
    return R, gW + X.T @ Gz, Gz.sum(axis=0)


def softmax_fisher_ridge_strengths(X, W, q, c=None):
    """``R^q``'s per-feature curvature blocks with ``H_i`` frozen at ``(W, c)``.

    ``S_j = (1-q)/q sum_i x_ij^2 H_i`` (the Fisher information, diagonal in the features,
    full in the classes), so that ``1/2 sum_j W_j' S_j W_j`` equals
    :func:`softmax_quadratic` at ``(W, c)``. Shape (n_features, n_classes, n_classes).
    """
    X, W, c = _check_xw(X, W, c)
    q = _check_q(q)
    _, P = _softmax_rows(X @ W + c)
    X2 = X ** 2
    diag = X2.T @ P                                 # (d, K)
    outer = np.einsum("ij,ik,il->jkl", X2, P, P)
    S = -outer
    idx = np.arange(W.shape[1])
    S[:, idx, idx] += diag
    return (1.0 - q) / q * S


def softmax_nll(X, y, W, c=None):
    """Mean softmax negative log-likelihood (nats) of class indices ``y``."""
    X, W, c = _check_xw(X, W, c)
    Z = X @ W + c
    lse, _ = _softmax_rows(Z)
    y = np.asarray(y)
    return float(np.mean(lse - Z[np.arange(len(y)), y]))


def _check_labels(y, n, n_classes):
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold one integer class index per row of X, shape ({n},); "
                         f"got dtype {y.dtype} and shape {y.shape}")
    if n_classes is None:
        n_classes = int(y.max()) + 1 if n else 2
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or \
            n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2; got {n_classes!r}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y must hold class indices in 0..{n_classes - 1} (n_classes = "
                         f"{n_classes}); got values from {y.min()} to {y.max()}")
    return y.astype(np.int64), int(n_classes)


SOFTMAX_PENALTIES = ("exact", "quadratic", "none")


def fit_softmax(X, y, q, penalty="exact", *, n_classes=None, l2=0.0, ridge=None, x0=None,
                maxiter=2000, gtol=1e-6):
    """Softmax regression minimising ``sum_i NLL_i + penalty`` by L-BFGS (deterministic).

    Parameters
    ----------
    X : ndarray, shape (n_examples, n_features)
    y : ndarray of int, shape (n_examples,)
        Class indices in ``0..n_classes - 1``.
    q : float in (0, 1]
        keep_prob of the inputs (inverted dropout); unused with ``penalty="none"``.
    penalty : {"exact", "quadratic", "none"}
        ``"exact"``: the expected dropout loss itself (NLL + :func:`softmax_exact`, at
        most 16 features); ``"quadratic"``: NLL + Wager's :func:`softmax_quadratic`.
    n_classes : int, optional
        Number of classes (``y.max() + 1`` by default; give it when a subset may lack
        a class).
    l2 : float >= 0
        Added ``l2/2 |W|^2`` (the intercepts are never penalised).
    ridge : ndarray, shape (n_features, n_classes, n_classes), optional
        Added ``1/2 sum_j W_j' S_j W_j`` with symmetric blocks ``S_j`` (for example
        :func:`softmax_fisher_ridge_strengths` frozen at a solution).
    x0 : tuple (W0, c0), optional
        Starting weights, shapes (n_features, n_classes) and (n_classes,); zeros by
        default.
    maxiter : int
    gtol : float
        L-BFGS-B's tolerance on the largest component of the projected gradient.

    Returns
    -------
    W : ndarray, shape (n_features, n_classes)
    c : ndarray, shape (n_classes,)
    converged : bool
        Whether L-BFGS reported convergence.

    Notes
    -----
    The loss and every penalty here are unchanged by adding one vector to every column
    of ``W`` (and a constant to ``c``) except L2, and their gradients have rows summing to
    0; started from zeros the iterates keep rows summing to 0, which is also where the L2
    minimiser lies. Compare solutions in that gauge (:func:`center_classes`).
    """
    from scipy.optimize import minimize

    if penalty not in SOFTMAX_PENALTIES:
        raise ValueError(f"penalty must be one of {SOFTMAX_PENALTIES}; got {penalty!r}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_examples, n_features); got {X.shape}")
    n, d = X.shape
    y, K = _check_labels(y, n, n_classes)
    q = _check_q(q)
    if penalty == "exact" and d > MAX_ENUMERATED:
        softmax_exact(X[:0], np.zeros((d, K)), q)   # raises the enumeration limit's error
    if isinstance(l2, bool) or not isinstance(l2, (int, float, np.floating, np.integer)) or \
            not (np.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
    if ridge is not None:
        ridge = np.asarray(ridge, dtype=np.float64)
        if ridge.shape != (d, K, K) or not np.all(np.isfinite(ridge)) or \
                not np.allclose(ridge, ridge.transpose(0, 2, 1)):
            raise ValueError(f"ridge must hold {d} finite symmetric ({K}, {K}) blocks, shape "
                             f"({d}, {K}, {K}); got shape {ridge.shape}")
    if x0 is None:
        start = np.zeros(d * K + K)
    else:
        W0, c0 = (np.asarray(a, dtype=np.float64) for a in x0)
        if W0.shape != (d, K) or c0.shape != (K,):
            raise ValueError(f"x0 must be (W0, c0) with shapes ({d}, {K}) and ({K},); got "
                             f"{W0.shape} and {c0.shape}")
        start = np.append(W0.ravel(), c0)
    Y = np.zeros((n, K))
    Y[np.arange(n), y] = 1.0
    fn = {"exact": softmax_exact, "quadratic": softmax_quadratic, "none": None}[penalty]

    def objective(w):
        W, c = w[:d * K].reshape(d, K), w[d * K:]
        Z = X @ W + c
        lse, P = _softmax_rows(Z)
        val = float(np.sum(lse) - np.sum(Y * Z)) + 0.5 * l2 * float(np.sum(W ** 2))
        gW = X.T @ (P - Y) + l2 * W
        gc = (P - Y).sum(axis=0)
        if ridge is not None:
            SW = np.einsum("jkl,jl->jk", ridge, W)
            val += 0.5 * float(np.sum(W * SW))
            gW = gW + SW
        if fn is not None:
            pv, pgW, pgc = fn(X, W, q, c, return_grad=True)
            val += pv
            gW = gW + pgW
            gc = gc + pgc
        return val, np.append(gW.ravel(), gc)

    res = minimize(objective, start, jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter, "gtol": gtol})
    return res.x[:d * K].reshape(d, K), res.x[d * K:].copy(), bool(res.success)


def center_classes(W, c=None):
    """``W`` (and ``c``) with each row's mean over the classes removed.

    The softmax is unchanged by it; it is the gauge in which norms and cosines between
    softmax solutions mean something. Returns ``W`` alone, or ``(W, c)`` when ``c`` is given.
    """
    W = np.asarray(W, dtype=np.float64)
    Wc = W - W.mean(axis=1, keepdims=True)
    if c is None:
        return Wc
    c = np.asarray(c, dtype=np.float64)
    return Wc, c - c.mean()


def softmax_fisher_ridge(X, y, q, W, c=None, *, n_classes=None, **fit_kw):
    """Softmax regression with ``R^q``'s Fisher frozen at ``(W, c)`` as a fixed ridge.

    ``fit_softmax(X, y, q, "none", ridge=softmax_fisher_ridge_strengths(X, W, q, c))``:
    Wager's quadratic penalty with ``H_i`` frozen at a given solution (the exact-dropout
    one in the study), i.e. a generalised ridge. Returns what :func:`fit_softmax` returns.
    """
    S = softmax_fisher_ridge_strengths(X, W, q, c)
    return fit_softmax(X, y, q, "none", n_classes=n_classes, ridge=S, **fit_kw)


def fit_softmax_l2_validated(X, y, lams, *, rng, n_classes=None, val_fraction=0.25, **fit_kw):
    """Plain L2 softmax regression, its strength chosen on a held-out part of ``X``.

    The rows are split once (``rng``) into a fitting part and a validation part
    (``val_fraction``); each ``lam`` in ``lams`` is fitted on the first and scored by the
    mean NLL on the second; the best (the first of ties) is refitted on all rows.

    Returns
    -------
    W : ndarray, shape (n_features, n_classes)
    c : ndarray, shape (n_classes,)
    lam : float
        The chosen strength.
    """
    lams = np.asarray(lams, dtype=np.float64).ravel()
    if lams.size == 0 or not np.all(np.isfinite(lams)) or np.any(lams < 0):
        raise ValueError(f"lams must be a non-empty list of finite strengths >= 0; got {lams!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction!r}")
    X = np.asarray(X, dtype=np.float64)
    y, K = _check_labels(y, X.shape[0], n_classes)
    rng = np.random.default_rng(rng)
    order = rng.permutation(len(y))
    n_val = max(1, int(round(val_fraction * len(y))))
    if n_val >= len(y):
        raise ValueError(f"val_fraction={val_fraction} of {len(y)} examples leaves no "
                         f"examples to fit")
    val, fit = order[:n_val], order[n_val:]
    scores = []
    for lam in lams:
        W, c, _ = fit_softmax(X[fit], y[fit], 1.0, "none", n_classes=K, l2=float(lam), **fit_kw)
        scores.append(softmax_nll(X[val], y[val], W, c))
    lam = float(lams[int(np.argmin(scores))])
    W, c, _ = fit_softmax(X, y, 1.0, "none", n_classes=K, l2=lam, **fit_kw)
    return W, c, lam


def fit_logistic(X, y, q, penalty="exact", *, maxiter=500, l2=0.0, ridge=None, x0=None,
                 gtol=1e-8):
    """Weights and intercept minimising ``sum_i NLL_i + penalty`` by L-BFGS.

    Parameters
    ----------
    X : ndarray, shape (n_examples, n_features)
    y : ndarray of {0, 1}, shape (n_examples,)
    q : float in (0, 1]
        keep_prob of the inputs (inverted dropout).
    penalty : {"exact", "quadratic", "gaussian", "none"}
        ``"exact"``: the expected dropout loss itself (NLL + exact R);
        ``"quadratic"``: NLL + Wager's R^q (which may have no finite minimiser on
        separable data: it tends to 0 along a separating ray);
        ``"gaussian"``: NLL + Wang & Manning's Gaussian surrogate.
    maxiter : int
    l2 : float >= 0
        Added ``l2/2 |beta|^2`` (the intercept is never penalised).
    ridge : ndarray, shape (n_features,), optional
        Added ``1/2 sum_j ridge_j beta_j^2`` (per-feature strengths, for example
        :func:`fisher_ridge_strengths` frozen at a solution).
    x0 : ndarray, shape (n_features + 1,), optional
        Starting weights and intercept (zeros by default).

    Returns
    -------
    beta : ndarray, shape (n_features,)
    b : float
    converged : bool
        False when L-BFGS stopped early, or when the exact integral could not reach its
        accuracy at some trial point (weights running away: the step was refused).
    """
    from scipy.optimize import minimize

    fns = {"exact": logistic_exact, "quadratic": logistic_quadratic,
           "gaussian": logistic_gaussian, "none": None}
    if penalty not in fns:
        raise ValueError(f"penalty must be one of {tuple(fns)}; got {penalty!r}")
    X, _ = _check_xb(X, np.zeros(np.shape(X)[1]))
    y = np.asarray(y, dtype=np.float64)
    d = X.shape[1]
    if not (np.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
    r2 = np.full(d, float(l2))
    if ridge is not None:
        ridge = np.asarray(ridge, dtype=np.float64)
        if ridge.shape != (d,) or not np.all(np.isfinite(ridge)) or np.any(ridge < 0):
            raise ValueError(f"ridge must hold {d} finite strengths >= 0, one per feature; "
                             f"got shape {ridge.shape}")
        r2 = r2 + ridge

    failed = []

    def objective(w):
        beta, b = w[:d], w[d]
        z = X @ beta + b
        r = expit(z) - y
        val = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(r2 * beta ** 2)
        g = np.append(X.T @ r + r2 * beta, r.sum())
        if fns[penalty] is not None:
            try:
                pv, pg, pb = fns[penalty](X, beta, q, b, return_grad=True)
            except ValueError:
                # The exact integral cannot reach its accuracy this far out: refuse the
                # step (the line search backs off) and report the fit as not converged.
                failed.append(True)
                return np.inf, np.zeros_like(w)
            val += pv
            g += np.append(pg, pb)
        return val, g

    start = np.zeros(d + 1) if x0 is None else np.asarray(x0, dtype=np.float64)
    res = minimize(objective, start, jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter, "gtol": gtol})
    return res.x[:d], float(res.x[d]), bool(res.success) and not failed


def fisher_ridge_strengths(X, beta, q, b=0.0):
    """Per-feature strengths of ``R^q`` with the diagonal Fisher frozen at ``(beta, b)``.

    ``s_j = (1-q)/q sum_i A''(z_i) x_ij^2``, so that ``1/2 sum_j s_j beta_j^2`` equals
    :func:`logistic_quadratic` at ``(beta, b)``. Shape (n_features,).
    """
    X, beta = _check_xb(X, beta)
    q = _check_q(q)
    s = expit(X @ beta + b)
    return (1.0 - q) / q * ((s * (1.0 - s)) @ X ** 2)


def penalty_strengths(penalty, X, beta, q, b=0.0):
    """How hard a penalty pulls on each weight at ``beta``: ``(dR/dbeta_j) / beta_j``.

    For an L2 penalty ``lam/2 |beta|^2`` this is ``lam`` for every feature; for a
    ridge with strengths ``s_j`` it is ``s_j``. ``penalty`` is "exact", "quadratic" or
    "gaussian". Shape (n_features,); ``nan`` where ``beta_j = 0``.
    """
    fns = {"exact": logistic_exact, "quadratic": logistic_quadratic,
           "gaussian": logistic_gaussian}
    if penalty not in fns:
        raise ValueError(f"penalty must be one of {tuple(fns)}; got {penalty!r}")
    X, beta = _check_xb(X, beta)
    _, g, _ = fns[penalty](X, beta, q, b, return_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(beta != 0, g / beta, np.nan)


def nll(X, y, beta, b=0.0):
    """Mean logistic negative log-likelihood (nats) of labels ``y`` in {0, 1}."""
    z = np.asarray(X, dtype=np.float64) @ beta + b
    return float(np.mean(np.logaddexp(0.0, z) - np.asarray(y, dtype=np.float64) * z))


def fit_l2_validated(X, y, lams, *, rng, val_fraction=0.25):
    """Plain L2 logistic regression, its strength chosen on a held-out part of ``X``.

    The rows are split once (``rng``) into a fitting part and a validation part
    (``val_fraction``); each ``lam`` in ``lams`` is fitted on the first and scored by
    the mean NLL on the second; the best is refitted on all rows.

    Returns
    -------
    beta : ndarray, shape (n_features,)
    b : float
    lam : float
        The chosen strength.
    """
    lams = np.asarray(lams, dtype=np.float64).ravel()
    if lams.size == 0 or not np.all(np.isfinite(lams)) or np.any(lams < 0):
        raise ValueError(f"lams must be a non-empty list of finite strengths >= 0; got {lams!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction!r}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    rng = np.random.default_rng(rng)
    order = rng.permutation(len(y))
    n_val = max(1, int(round(val_fraction * len(y))))
    val, fit = order[:n_val], order[n_val:]
    scores = []
    for lam in lams:
        beta, b, _ = fit_logistic(X[fit], y[fit], 1.0, "none", l2=lam)
        scores.append(nll(X[val], y[val], beta, b))
    lam = float(lams[int(np.argmin(scores))])
    beta, b, _ = fit_logistic(X, y, 1.0, "none", l2=lam)
    return beta, b, lam


def fit_dropout_sgd(X, y, q, *, rng, epochs=300, batch_size=10, lr=0.5):
    """Logistic regression trained by dropout SGD: the masks sampled, not integrated.

    Minibatch SGD on the mean NLL of ``x~ = m * x / q`` (inverted input dropout,
    fresh masks every step), step ``lr / sqrt(1 + epoch)``, and the average of the
    iterates over the second half of the epochs (Polyak-Ruppert), which estimates
    the minimiser of the expected dropout loss (the same minimiser as
    ``fit_logistic(..., "exact")``).

    Returns
    -------
    beta : ndarray, shape (n_features,)
    b : float
    """
    X, _ = _check_xb(X, np.zeros(np.shape(X)[1]))
    q = _check_q(q)
    y = np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(rng)
    n, d = X.shape
    w, b = np.zeros(d), 0.0
    avg_w, avg_b, n_avg = np.zeros(d), 0.0, 0
    for epoch in range(epochs):
        step = lr / np.sqrt(1.0 + epoch)
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xt = X[idx] * (rng.random((len(idx), d)) < q) / q
            r = expit(xt @ w + b) - y[idx]
            w -= step * (xt.T @ r) / len(idx)
            b -= step * float(r.mean())
            if epoch >= epochs // 2:
                n_avg += 1
                avg_w += (w - avg_w) / n_avg
                avg_b += (b - avg_b) / n_avg
    return avg_w, float(avg_b)


def rare_features(n, *, rng, n_rare=10, n_common=20, rare_rate=0.1, flip=0.1,
                  common_shift=0.25):
    """A simulation after Wager et al. (2013): rare discriminative against common weak features.

    ``y ~ Bernoulli(1/2)``, ``s = 2y - 1``. Each of the first ``n_rare`` features is active
    with probability ``rare_rate`` and then equals ``s`` (``-s`` with probability
    ``flip``), else 0; each of the ``n_common`` others is ``common_shift * s + N(0, 1)``.
    The features are not standardised (that would inflate the rare ones).

    Returns
    -------
    X : ndarray, shape (n, n_rare + n_common)
    y : ndarray of {0, 1}, shape (n,)
    """
    for name, v in (("n", n), ("n_rare", n_rare), ("n_common", n_common)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
    for name, v in (("rare_rate", rare_rate), ("flip", flip)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1]; got {v!r}")
    rng = np.random.default_rng(rng)
    y = rng.integers(0, 2, n)
    s = 2.0 * y - 1.0
    active = rng.random((n, n_rare)) < rare_rate
    sign = np.where(rng.random((n, n_rare)) < flip, -1.0, 1.0)
    rare = active * sign * s[:, None]
    common = common_shift * s[:, None] + rng.standard_normal((n, n_common))
    return np.hstack([rare, common]), y.astype(np.int64)


_A = {"identity": lambda z: 0.5 * np.sum(z ** 2, axis=-1),
      "sigmoid": lambda z: np.logaddexp(0.0, z[..., 0]),
      "softmax": lambda z: logsumexp(z, axis=-1)}


def _label_term(output, z, y):
    """``t(y) . z`` of the loss ``A(z) - t(y).z``, shape z.shape[:-1]."""
    if output == "softmax":
        return np.take_along_axis(z, y[:, None], axis=-1)[..., 0] if z.ndim == 2 else \
            np.take_along_axis(z, np.broadcast_to(y[None, :, None], z.shape[:-1] + (1,)),
                               axis=-1)[..., 0]
    if output == "sigmoid":
        return y * z[..., 0]
    return np.sum(y * z, axis=-1)


def mlp_regularizer(net, cfg, X, y, *, max_masks=2 ** 16, chunk_size=4096):
    """The exact dropout regularizer of an MLP, and its two parts, by enumeration.

    With the output loss written ``A(z) - t(y).z`` (softmax: ``A = logsumexp``,
    ``t(y)`` one-hot; sigmoid: ``A = softplus``, ``t(y) = y``; identity: ``A = |z|^2/2``,
    ``t(y) = y``), the regularizer summed over the examples is

        E_m[NLL(subnetwork)] - NLL(scaled pass)
          = sum_i (E[A(z~_i)] - A(z_i))  -  sum_i t(y_i).(E[z~_i] - z_i),

    the first part free of the labels, the second label-dependent; the second is
    exactly 0 when ``E[z~]`` equals the scaled logits, in particular when every
    activation after the first dropped layer is the identity (fact 10).

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : ndarray, shape (n_examples, n_features)
    y : ndarray
        softmax: class indices, shape (n_examples,); sigmoid: {0, 1}, shape
        (n_examples,); identity: targets, shape (n_examples, n_outputs).
    max_masks : int
        Refuse (``ValueError``) beyond this many masks.
    chunk_size : int

    Returns
    -------
    dict
        ``total``, ``label_free``, ``label_dependent`` (floats, summed over examples).
    """
    output = net.output
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    n = X.shape[0]
    if output == "softmax":
        k = net.sizes[-1]
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or \
                y.max() >= k:
            raise ValueError(f"y must hold one class index in 0..{k - 1} per row of X for a "
                             f"softmax output; got shape {y.shape}")
    elif output == "sigmoid":
        if y.shape != (n,) or not np.all(np.isin(y, (0, 1))):
            raise ValueError(f"y must hold one label in {{0, 1}} per row of X for a sigmoid "
                             f"output; got shape {y.shape}")
        y = y.astype(np.float64)
    else:
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (n, net.sizes[-1]):
            raise ValueError(f"y must have shape (n_examples, n_outputs) = "
                             f"({n}, {net.sizes[-1]}) for an identity output; got {y.shape}")
    q = unit_keep_probs(net, cfg)
    total_masks = n_masks(q)
    if total_masks > max_masks:
        raise ValueError(f"enumeration needs {total_masks} masks, more than max_masks = "
                         f"{max_masks}; drop fewer units or raise max_masks")
    A = _A[output]
    z_s = scaled_forward(net, cfg, X, logits=True)
    EA = np.zeros(n)
    Ez = np.zeros_like(z_s)
    for masks, logp in enumerate_masks(q, chunk_size):
        zt = subnetwork_outputs(net, cfg, X, masks, logits=True)      # (m, n, k)
        w = np.exp(logp)
        EA += np.tensordot(w, A(zt), axes=1)
        Ez += np.tensordot(w, zt, axes=1)
    free = float(np.sum(EA - A(z_s)))
    dep = -float(np.sum(_label_term(output, Ez, y) - _label_term(output, z_s, y)))
    return {"total": free + dep, "label_free": free, "label_dependent": dep}
