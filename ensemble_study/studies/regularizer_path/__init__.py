"""The exact dropout penalty of logistic regression along single weights (Helmbold & Long).

Helmbold & Long (JMLR 2015) show that the dropout penalty of logistic regression can be
non-monotone as an individual weight grows from 0, and non-convex. For each digits
problem and keep_prob, logistic regression is fitted by the exact expected dropout loss
(``fit_logistic(..., "exact")``, the solution ``beta*``, intercept ``b*``), and for single
weights ``j`` the exact penalty ``R`` and Wager's ``R^q`` are evaluated along

* path ``ray``: ``beta = t e_j`` (every other weight 0, intercept 0), where
  ``E softplus(m x_ij t / q) = q softplus(x_ij t / q) + (1 - q) log 2`` is closed form;
* path ``slice``: ``beta = beta* + (t - beta*_j) e_j`` (the other weights and the intercept
  held at the solution), by the Laplace integral of :mod:`ensemble_study.laplace`.

Each path is a uniform grid of ``t`` symmetric about 0. Non-convexity is a second
difference below ``-(d_{k-1} + 2 d_k + d_{k+1})``, non-monotonicity in ``|t|`` a fall of
more than ``d_peak + d_k`` below the running maximum walking out from 0 on either side,
where ``d_k`` bounds the absolute error of ``R(t_k)`` (:func:`path_penalty`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ... import regularizer as reg
from ...datasets import DIGIT_PAIRS, load_dataset
from ...laplace import expected_softplus
from ...study import Param, Study
from .. import _common as c

__all__ = ["path_penalty", "path_quadratic", "convexity", "monotonicity", "path_grid"]

EPS = np.finfo(np.float64).eps
OVR = "digits_ovr"
DATASETS = (*DIGIT_PAIRS, OVR)
PATHS = ("ray", "slice")
PENALTIES = ("exact", "quadratic")


def _path_inputs(X, beta, q, j, t):
    X = np.asarray(X, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if X.ndim != 2 or beta.shape != (X.shape[1],):
        raise ValueError(f"X must have shape (n_examples, n_features) and beta (n_features,); "
                         f"got {X.shape} and {beta.shape}")
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < X.shape[1]:
        raise ValueError(f"j must be a feature index in 0..{X.shape[1] - 1}; got {j!r}")
    if t.ndim != 1 or not np.all(np.isfinite(t)):
        raise ValueError(f"t must be a 1-d array of finite weights; got shape {t.shape}")
    if not 0.0 < float(q) <= 1.0:
        raise ValueError(f"q (keep_prob) must be in (0, 1]; got {q!r}")
    return X, beta, float(q), t


def path_penalty(X, beta, q, b, j, t, *, rtol=1e-10):
    """The exact regularizer ``R`` at ``beta`` with weight ``j`` set to each ``t``.

    ``R(t) = sum_i E softplus(z~_i(t)) - softplus(z_i(t))``, inverted input dropout at
    keep_prob ``q``, ``z_i(t) = b + sum_{k != j} x_ik beta_k + x_ij t``. When every other
    weight is 0 the expectation is the closed form ``q softplus(b + x_ij t / q) + (1 - q)
    softplus(b)``; otherwise the Laplace integral (all ``t`` in one batch).

    Parameters
    ----------
    X : ndarray, shape (n_examples, n_features)
    beta : ndarray, shape (n_features,)
        The other weights (``beta[j]`` is ignored).
    q : float in (0, 1]
    b : float
        Intercept (never dropped).
    j : int
        The weight varied.
    t : ndarray, shape (n_points,)
    rtol : float
        Relative accuracy asked of each example's integral.

    Returns
    -------
    R : ndarray, shape (n_points,)
    err : ndarray, shape (n_points,)
        A bound on ``|R computed - R|``: ``rtol`` (integral) or 4 eps (closed form) times
        ``S = sum_i E softplus(z~_i) + softplus(z_i)``, plus ``n eps S`` for the sums.
    """
    X, beta, q, t = _path_inputs(X, beta, q, j, t)
    n = X.shape[0]
    others = np.delete(np.arange(X.shape[1]), j)
    z0 = b + X[:, others] @ beta[others]                       # (n,)
    z = z0[None, :] + t[:, None] * X[None, :, j]              # (n_points, n)
    loss = np.logaddexp(0.0, z)
    if not np.any(X[:, others] * beta[others]):
        ev = q * np.logaddexp(0.0, z0[None, :] + t[:, None] * X[None, :, j] / q) \
            + (1.0 - q) * np.logaddexp(0.0, z0)[None, :]
        rel = 4.0 * EPS
    else:
        cm = np.broadcast_to(X * beta / q, (t.size,) + X.shape).copy()
        cm[:, :, j] = t[:, None] * X[None, :, j] / q
        ev = expected_softplus(np.full(t.size * n, float(b)), cm.reshape(t.size * n, -1), q,
                               rtol=rtol).reshape(t.size, n)
        rel = rtol
    S = ev.sum(axis=1) + loss.sum(axis=1)
    return ev.sum(axis=1) - loss.sum(axis=1), (rel + n * EPS) * S


def path_quadratic(X, beta, q, b, j, t):
    """Wager's ``R^q`` along the same path as :func:`path_penalty`, shape (n_points,)."""
    X, beta, q, t = _path_inputs(X, beta, q, j, t)
    others = np.delete(np.arange(X.shape[1]), j)
    z = (b + X[:, others] @ beta[others])[None, :] + t[:, None] * X[None, :, j]
    s = expit(z)
    v = ((X[:, others] ** 2) @ (beta[others] ** 2))[None, :] + t[:, None] ** 2 * X[None, :, j] ** 2
    return 0.5 * (1.0 - q) / q * np.sum(s * (1.0 - s) * v, axis=1)


def _check_seq(t, R, err):
    t = np.asarray(t, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    err = np.broadcast_to(np.asarray(err, dtype=np.float64), R.shape)
    if t.ndim != 1 or R.shape != t.shape or t.size < 3:
        raise ValueError(f"t and R must be 1-d of the same length >= 3; got {t.shape}, {R.shape}")
    h = np.diff(t)
    if not np.all(h > 0) or not np.allclose(h, h[0], rtol=1e-9, atol=0):
        raise ValueError("t must be an increasing uniform grid")
    if np.any(err < 0) or not np.all(np.isfinite(R)):
        raise ValueError("R must be finite and err >= 0")
    return t, R, err, float(h[0])


def convexity(t, R, err=0.0):
    """Non-convex stretches of ``R`` on a uniform grid, beyond the error bounds ``err``.

    A point ``k`` (interior) is a violation when ``R[k-1] - 2 R[k] + R[k+1] <
    -(err[k-1] + 2 err[k] + err[k+1])``: no function within ``err`` of the values there is
    convex.

    Returns
    -------
    dict
        ``convex`` (bool); ``violations`` (bool array, shape (n_points,)); ``first_t`` (the
        violation with the smallest ``|t|``, nan if none); ``min_curvature`` (the smallest
        second difference over ``h^2``); ``max_curvature``.
    """
    t, R, err, h = _check_seq(t, R, err)
    d2 = R[:-2] - 2.0 * R[1:-1] + R[2:]
    tol = err[:-2] + 2.0 * err[1:-1] + err[2:]
    bad = np.zeros(t.size, bool)
    bad[1:-1] = d2 < -tol
    first = t[bad][np.argmin(np.abs(t[bad]))] if bad.any() else np.nan
    return dict(convex=not bad.any(), violations=bad, first_t=float(first),
                min_curvature=float(d2.min() / h ** 2), max_curvature=float(d2.max() / h ** 2))


def monotonicity(t, R, err=0.0):
    """Falls of ``R`` as ``|t|`` grows from 0 (each side of 0 apart), beyond ``err``.

    Walking out from ``t = 0`` on each side, a point is a violation when ``R`` there is
    below the running maximum (from 0 to it) by more than the two points' error bounds.

    Returns
    -------
    dict
        ``monotone`` (bool); ``violations`` (bool array); ``first_t`` (violation with the
        smallest ``|t|``, nan if none); ``max_drop`` (largest fall below the running maximum,
        0 if none); ``drop_t`` (where it is reached); ``peak_t`` (the running maximum's
        point before it).
    """
    t, R, err, _ = _check_seq(t, R, err)
    zero = np.flatnonzero(t == 0.0)
    if zero.size != 1:
        raise ValueError("t must contain 0 exactly once (the walk starts there)")
    k0 = int(zero[0])
    bad = np.zeros(t.size, bool)
    drop = np.zeros(t.size)
    peak = np.full(t.size, k0)
    for side in (np.arange(k0, t.size), np.arange(k0, -1, -1)):
        best = side[0]
        for k in side:
            if R[k] >= R[best]:
                best = k
            drop[k] = R[best] - R[k]
            peak[k] = best
            bad[k] = drop[k] > err[best] + err[k]
    k = int(np.argmax(np.where(bad, drop, -1.0)))
    first = t[bad][np.argmin(np.abs(t[bad]))] if bad.any() else np.nan
    return dict(monotone=not bad.any(), violations=bad, first_t=float(first),
                max_drop=float(drop[k]) if bad.any() else 0.0,
                drop_t=float(t[k]) if bad.any() else np.nan,
                peak_t=float(t[peak[k]]) if bad.any() else np.nan)


def path_grid(half_width, n_half):
    """``t`` on a uniform grid from ``-half_width`` to ``half_width``, 0 included."""
    return half_width * np.arange(-n_half, n_half + 1) / n_half


def cells(params: dict) -> list[tuple]:
    """``(dataset, problem, keep_prob)`` per fit: splits of a pair, classes of one-vs-rest."""
    out = []
    for d in params["datasets"]:
        n = 10 if d == OVR else params["n_splits"]
        out += [(d, k, q) for k in range(n) for q in params["keep_probs"]]
    return out


def _data(name, k, p):
    rng = np.random.default_rng(c.stream(p["seed"], "split", name, k))
    ds = load_dataset("digits" if name == OVR else name, rng=rng)
    keep = np.sort(rng.permutation(len(ds.y_train))[:p["n_train"]])
    X, y = ds.X_train[keep], ds.y_train[keep]
    y = (y == k) if name == OVR else y
    return X, y.astype(np.float64), rng


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """One fit's paths: every non-constant weight's ray, a random subset's slices."""
    name, k, q = cell
    p = params
    X, y, rng = _data(name, k, p)
    g = reg.fit_logistic(X, y, q, "gaussian")
    beta, b, ok = reg.fit_logistic(X, y, q, "exact", x0=np.append(g[0], g[1]))
    live = np.flatnonzero(np.any(X != 0, axis=0))
    chosen = np.sort(rng.choice(live, size=min(p["n_slices"], live.size), replace=False))
    zero = np.zeros_like(beta)
    rows = []
    for j in live:
        xmax = float(np.max(np.abs(X[:, j])))
        todo = [("ray", zero, 0.0, p["ray_contribution"] * q / xmax, p["ray_points"])]
        if j in chosen:
            half = max(p["slice_span"] * abs(beta[j]), p["slice_contribution"] * q / xmax)
            todo.append(("slice", beta, b, half, p["slice_points"]))
        for path, base, b0, half, npts in todo:
            while True:
                t = path_grid(half, npts)
                try:
                    R, err = path_penalty(X, base, q, b0, int(j), t, rtol=p["rtol"])
                    break
                except ValueError:
                    # The integral cannot reach rtol this far out: shorten the slice (the
                    # half_width column records where it ended).
                    half *= 0.75
            Rq = path_quadratic(X, base, q, b0, int(j), t)
            for pen, vals, e in (("exact", R, err), ("quadratic", Rq, 4 * X.shape[0] * EPS
                                                      * np.abs(Rq))):
                cv, mo = convexity(t, vals, e), monotonicity(t, vals, e)
                rows.append(dict(
                    study=STUDY.name, dataset=name, problem=int(k), keep_prob=q, path=path,
                    penalty=pen, feature=int(j), n_train=len(y), converged=bool(ok),
                    beta_j=float(beta[j]), intercept=float(b0),
                    max_abs_x=xmax, half_width=float(half), n_points=t.size,
                    convex=cv["convex"], nonconvex_first_t=cv["first_t"],
                    nonconvex_share=float(cv["violations"].mean()),
                    min_curvature=cv["min_curvature"], max_curvature=cv["max_curvature"],
                    monotone=mo["monotone"], nonmonotone_first_t=mo["first_t"],
                    max_drop=mo["max_drop"], drop_t=mo["drop_t"], peak_t=mo["peak_t"],
                    R_range=float(vals.max() - vals.min()), R_at_zero=float(vals[t.size // 2]),
                    R_at_end=float(max(vals[0], vals[-1])), max_err=float(np.max(e)),
                    t=" ".join(f"{v:.6g}" for v in t),
                    R=" ".join(f"{v:.10g}" for v in vals)))
    return rows


STUDY = Study(
    "regularizer_path",
    title="The exact dropout penalty of logistic regression along single weights: "
          "convexity and monotonicity (Helmbold & Long).",
    params=(
        Param("datasets", "str", DATASETS, "Digits label pair, or digits_ovr (the "
              "ten one-vs-rest problems); repeat for several.", quick=("digits_2v3",),
              multiple=True, unique=True, choices=DATASETS, flag="--dataset"),
        Param("keep_probs", "keep_prob", (0.5, 0.8), "keep_prob of the inputs (inverted "
              "dropout); repeat for several.", quick=(0.5,), multiple=True, unique=True,
              flag="--keep-prob"),
        Param("n_train", "int", 40, "Training examples per fit (a random subset).",
              quick=20, low=10, high=1000),
        Param("n_splits", "int", 1, "Random splits per digits pair.", low=1, high=20),
        Param("n_slices", "int", 12, "Weights per fit whose slice through the solution is "
              "evaluated (a random subset of the non-constant pixels).", quick=2, low=1,
              high=64),
        Param("slice_points", "int", 10, "Grid points on each side of 0 along a slice.",
              quick=5, low=2, high=200),
        Param("slice_span", "float", 2.0, "A slice spans abs(t) up to this multiple of "
              "abs(beta*_j) (at least slice_contribution).", low=0.1, high=20.0),
        Param("slice_contribution", "float", 6.0, "A slice reaches at least this largest "
              "per-feature contribution max_i abs(x_ij t) / q.", low=0.1, high=50.0),
        Param("ray_points", "int", 100, "Grid points on each side of 0 along a ray.",
              quick=30, low=2, high=2000),
        Param("ray_contribution", "float", 20.0, "A ray reaches this largest per-feature "
              "contribution max_i abs(x_ij t) / q.", low=0.1, high=200.0),
        Param("rtol", "float", 1e-8, "Relative accuracy asked of each Laplace integral "
              "(it sets the error bounds of the detectors).", low=1e-13, high=1e-4),
        c.seed(),
    ),
    cells=cells, run_cell=run_cell, tidy=c.tidy, order=97, reproduce=False,
    cost="about 3 minutes with --jobs 2 on 2 cores (175 s measured)",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
