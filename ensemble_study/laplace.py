"""Exact expectations of softplus and sigmoid of a Bernoulli-masked sum, at any width.

For ``Z = b + sum_j m_j c_j`` with independent ``m_j ~ Bernoulli(q)`` (fact 17),

    E f(Z) = (1 / 2 pi) int_{-inf}^{inf} F(c0 + i t) M(c0 + i t) dt,

where ``M(s) = E e^{sZ} = e^{s b} prod_j (1 - q + q e^{s c_j})`` and ``F`` is the
bilateral Laplace transform of ``f``, valid for ``0 < Re s < 1``:

* ``f = softplus``: ``F(s) = pi / (s sin(pi s))``;
* ``f = sigmoid``:  ``F(s) = pi / sin(pi s)``.

(Both follow from ``int sigma(z) e^{-sz} dz = B(s, 1 - s) = pi / sin(pi s)`` and
``softplus' = sigma``, integrating by parts; the inversion formula
``f(z) = (1/2 pi i) int F(s) e^{sz} ds`` along ``Re s = c0`` averaged over the
masks gives the integral above.)

Numerics. Everything is computed from ``log M`` and ``log F`` (no overflow at
large weights). Since ``|M(c0 + it)| <= M(c0)`` and ``|F(c0 + it)| <= |F(c0)|``,
the integrand is bounded by ``M(c0) |F(c0)|``; ``c0`` is chosen per example to
minimise that bound (a saddle point), which keeps the cancellation between the
bound and the result small. The integral is taken on ``t = a sinh(u)`` (``a`` the
distance from ``c0`` to the nearest pole), by the trapezoidal rule in ``u``, halving
the step until two successive estimates agree; the rounding error is estimated from
the integral of ``|integrand|``. Where the estimated relative error exceeds ``rtol``
(weights so extreme that the cancellation eats the digits), a ``ValueError`` says
which examples and what to do.

The scaling of inverted dropout is the caller's: for ``x~_j = m_j x_j / q`` pass
``c_j = x_j beta_j / q``.

Implementations. The numpy code below (``_choose_c0``, ``_laplace``,
``_laplace_block``) is the reference and documents the algorithm; it works on
arrays of ``(examples, points, features)`` in blocks of examples. By default the
integral runs on a numba kernel of the same algorithm,
:mod:`ensemble_study.kernels.laplace_compiled` (same ``c0``, points, levels,
stopping rule, blocks and error estimate; loops fused per example, threads over
examples, results independent of the number of threads); the environment
variable ``ENSEMBLE_STUDY_KERNELS=numpy`` selects the reference, as for the other
kernels (:func:`ensemble_study.kernels.backend`). ``tests/test_laplace_kernel.py``
holds the two to 1e-13 relative (or the reference's own rounding estimate where
that is larger), to the same accepted and rejected examples, and the kernel to
enumeration of every mask.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit as _expit

from .kernels import backend

__all__ = ["expected_softplus", "expected_sigmoid", "enumerate_expectation"]

_KINDS = ("softplus", "sigmoid")
_EPS = np.finfo(np.float64).eps
_T_MAX = 16.0          # |F(c0 + it)| / |F(c0)| < 4 e^{-pi t}: e^{-16 pi} ~ 1e-22
_H0 = 0.25             # first step in u
_MAX_LEVELS = 9        # step halved at most this many times (h = 0.25 / 512)
_CHUNK = 2_000_000     # complex numbers per block (batch x points x features)
_C0_GRID = 1.0 / (1.0 + np.exp(-np.linspace(-7.0, 7.0, 141)))


def _check(b, c, q, rtol):
    try:
        c = np.asarray(c, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("b and c must be arrays of numbers") from None
    if c.ndim not in (1, 2):
        raise ValueError("c must have shape (n_features,) or (batch, n_features); "
                         f"got shape {c.shape}")
    single = c.ndim == 1
    c2 = c[None, :] if single else c
    if b.ndim == 0:
        b1 = np.full(c2.shape[0], float(b))
    elif b.shape == (c2.shape[0],) and not single:
        b1 = b
    else:
        raise ValueError(f"b must be a scalar or have shape (batch,) = ({c2.shape[0]},) "
                         f"matching c; got shape {b.shape}")
    if not (np.all(np.isfinite(c2)) and np.all(np.isfinite(b1))):
        raise ValueError("b and c must be finite; got NaN or inf")
    try:
        q = float(q)
    except (TypeError, ValueError):
        raise TypeError(f"q (keep_prob) must be a number in (0, 1]; got {q!r}") from None
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q (keep_prob) must be in (0, 1]; got {q!r}")
    if not 0.0 < rtol < 1.0:
        raise ValueError(f"rtol must be in (0, 1); got {rtol!r}")
    return b1, c2, q, single


def _f_and_prime(kind, z):
    sig = _expit(z)
    if kind == "softplus":
        return np.logaddexp(0.0, z), sig
    return sig, sig * _expit(-z)


def _log_f_transform(kind, s):
    """log F(s) for Im s >= 0 (complex), stable at large Im s."""
    # sin(pi s) = (i/2) e^{-i pi s} (1 - e^{2 i pi s})
    logsin = np.log(0.5) + 0.5j * np.pi - 1j * np.pi * s + np.log1p(-np.exp(2j * np.pi * s))
    out = np.log(np.pi) - logsin
    if kind == "softplus":
        out = out - np.log(s)
    return out


def _log_m_real(b, c, q, c0):
    """log M(c0) for real c0: shapes b (B,), c (B, n), c0 (B, G) -> (B, G)."""
    w = c0[:, :, None] * c[:, None, :]
    terms = np.logaddexp(np.log1p(-q), np.log(q) + w)
    return c0 * b[:, None] + terms.sum(axis=2)


def _choose_c0(kind, b, c, q):
    grid = np.broadcast_to(_C0_GRID, (b.shape[0], _C0_GRID.size))
    logm = np.empty(grid.shape)
    rows = max(1, _CHUNK // max(1, c.shape[1] * grid.shape[1]))
    for i in range(0, b.shape[0], rows):
        logm[i:i + rows] = _log_m_real(b[i:i + rows], c[i:i + rows], q, grid[i:i + rows])
    logf = np.log(np.pi) - np.log(np.sin(np.pi * grid))
    if kind == "softplus":
        logf = logf - np.log(grid)
    bound = logm + logf
    k = np.argmin(bound, axis=1)
    rows_idx = np.arange(b.shape[0])
    return grid[rows_idx, k], bound[rows_idx, k]


def _integrand(kind, b, c, q, c0, a, u, logscale, grad):
    """Integrand G(u) = F M (dt/du) / bound at the points u (K,), per example.

    Returns G (B, K) and, with grad, Gs (B, K) = G * s and Gc (B, K, n) = G * s * w_j(s).
    """
    t = a[:, None] * np.sinh(u)[None, :]                     # (B, K)
    jac = a[:, None] * np.cosh(u)[None, :]
    s = c0[:, None] + 1j * t
    w = s[:, :, None] * c[:, None, :]                         # (B, K, n)
    if q < 1.0:
        r = np.log1p(-q) - np.log(q)                          # log((1-q)/q)
        pos = w.real > r
        e = np.exp(np.where(pos, -w, w))
        lterm = np.where(pos, np.log(q) + w + np.log1p(np.exp(r) * e),
                         np.log1p(-q) + np.log1p(np.exp(-r) * e))
    else:
        lterm = w
    logm = s * b[:, None] + lterm.sum(axis=2)
    logg = _log_f_transform(kind, s) + logm - logscale[:, None]
    g = np.exp(logg) * jac
    # rounding: each term's relative error ~ eps times the magnitudes summed into its log
    phase = 1.0 + np.abs(lterm).sum(axis=2) + np.abs(s * b[:, None]) + np.abs(logg)
    if not grad:
        return g, None, None, phase
    gs = g * s
    wj = np.exp(np.log(q) + w - lterm)                        # q e^{sc}/(1-q+q e^{sc})
    gc = gs[:, :, None] * wj
    return g, gs, gc, phase


def _laplace(kind, b, c, q, rtol, grad):
    n_batch, n = c.shape
    c0, logscale = _choose_c0(kind, b, c, q)
    a = np.minimum(c0, 1.0 - c0)
    u_max = np.arcsinh(_T_MAX / a.min())
    value = np.empty(n_batch)
    gb = np.empty(n_batch) if grad else None
    gc = np.empty((n_batch, n)) if grad else None
    err = np.empty(n_batch)
    k_guess = int(np.ceil(u_max / (_H0 / 2 ** 4)))
    rows = max(1, _CHUNK // max(1, (n + 1) * k_guess))
    for i in range(0, n_batch, rows):
        sl = slice(i, i + rows)
        out = _laplace_block(kind, b[sl], c[sl], q, c0[sl], a[sl], logscale[sl], u_max, rtol, grad)
        value[sl], err[sl] = out[0], out[1]
        if grad:
            gb[sl], gc[sl] = out[2], out[3]
    return value, gb, gc, err


def _sum_points(kind, b, c, q, c0, a, logscale, u, grad):
    """Sums of the integrand (and its gradient parts) over the points u, in chunks."""
    n_batch, n = c.shape
    step = max(1, _CHUNK // max(1, n_batch * (n + 1)))
    sg = np.zeros(n_batch, complex)
    sabs = np.zeros(n_batch)
    sgs = np.zeros(n_batch, complex) if grad else None
    sgc = np.zeros((n_batch, n), complex) if grad else None
    phase = np.zeros(n_batch)   # sum over points of |g| (rounding weight)
    for k in range(0, u.size, step):
        uk = u[k:k + step]
        wts = np.where(uk == 0.0, 0.5, 1.0)
        g, gs, gcj, ph = _integrand(kind, b, c, q, c0, a, uk, logscale, grad)
        sg += (g * wts).sum(axis=1)
        sabs += (np.abs(g) * wts).sum(axis=1)
        phase += (np.abs(g) * ph * wts).sum(axis=1)
        if grad:
            sgs += (gs * wts).sum(axis=1)
            sgc += np.einsum("bkn,k->bn", gcj, wts)
    return sg, sabs, sgs, sgc, phase


def _laplace_block(kind, b, c, q, c0, a, logscale, u_max, rtol, grad):
    h = _H0
    u = np.arange(0.0, u_max + h, h)
    sg, sabs, sgs, sgc, phase = _sum_points(kind, b, c, q, c0, a, logscale, u, grad)
    est = (h / np.pi) * sg.real
    est_gs = (h / np.pi) * sgs.real if grad else None
    est_gc = (h / np.pi) * sgc.real if grad else None
    done = np.zeros(b.shape[0], bool)
    quad_err = np.full(b.shape[0], np.inf)
    for _ in range(_MAX_LEVELS):
        h /= 2.0
        u_new = np.arange(h, u_max + h, 2.0 * h)
        ng, nabs, ngs, ngc, ph = _sum_points(kind, b, c, q, c0, a, logscale, u_new, grad)
        sg, sabs = sg + ng, sabs + nabs
        phase = phase + ph
        new = (h / np.pi) * sg.real
        diff = np.abs(new - est)
        if grad:
            sgs, sgc = sgs + ngs, sgc + ngc
            new_gs = (h / np.pi) * sgs.real
            new_gc = (h / np.pi) * sgc.real
            scale_g = np.maximum(np.abs(new_gs), np.abs(new_gc).max(axis=1))
            diff_g = np.maximum(np.abs(new_gs - est_gs), np.abs(new_gc - est_gc).max(axis=1))
            rel = np.maximum(diff / np.maximum(np.abs(new), 1e-300),
                             diff_g / np.maximum(scale_g, 1e-300))
            est_gs, est_gc = new_gs, new_gc
        else:
            rel = diff / np.maximum(np.abs(new), 1e-300)
        est = new
        quad_err = np.where(done, quad_err, rel)
        done |= rel < 1e-3 * rtol
        if done.all():
            break
    # rounding: relative error of each term ~ eps (1 + |phase|); relative to the result
    rounding = 2.0 * _EPS * (h / np.pi) * phase / np.maximum(np.abs(est), 1e-300)
    err = np.maximum(np.where(done, 0.0, quad_err), rounding)
    scale = np.exp(logscale)
    out_v = est * scale
    if not grad:
        return out_v, err, None, None
    # the gradients share the value's integrand bound: their rounding error relative to them
    scale_g = np.maximum(np.abs(est_gs), np.abs(est_gc).max(axis=1))
    err = np.maximum(err, rounding * np.abs(est) / np.maximum(scale_g, 1e-300))
    return out_v, err, est_gs * scale, est_gc * scale[:, None]


def _expect(kind, b, c, q, return_grad, rtol):
    b1, c2, q, single = _check(b, c, q, rtol)
    if q == 1.0 or c2.shape[1] == 0:
        z = b1 + c2.sum(axis=1)
        v, d = _f_and_prime(kind, z)
        gb, gc, err = d, np.broadcast_to(d[:, None], c2.shape).copy(), np.zeros_like(v)
    else:
        # orient each example so that Z is mostly negative: the computed side is the small
        # one (sigmoid(z) = 1 - sigmoid(-z), softplus(z) = z + softplus(-z))
        mean_z = b1 + q * c2.sum(axis=1)
        flip = mean_z > 0
        sign = np.where(flip, -1.0, 1.0)
        if backend() == "numba":
            from .kernels.laplace_compiled import laplace as compiled_laplace

            v, gb, gc, err = compiled_laplace(kind, sign * b1, sign[:, None] * c2, q, rtol,
                                              return_grad)
        else:
            with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
                v, gb, gc, err = _laplace(kind, sign * b1, sign[:, None] * c2, q, rtol,
                                          return_grad)
        if kind == "sigmoid":
            v = np.where(flip, 1.0 - v, v)
            err = np.where(flip, err * np.abs(1.0 - v) / np.maximum(np.abs(v), 1e-300), err)
        else:
            err = np.where(flip, err * np.abs(v) / np.maximum(np.abs(mean_z + v), 1e-300), err)
            v = np.where(flip, mean_z + v, v)
            if return_grad:
                gb = np.where(flip, 1.0 - gb, gb)
                gc = np.where(flip[:, None], q - gc, gc)
    bad = ~(err <= rtol) | ~np.isfinite(v)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise ValueError(
            f"expected_{kind}: the Laplace integral cannot reach relative error rtol={rtol:g} "
            f"for {idx.size} example(s) (first indices {idx[:5].tolist()}, estimated errors "
            f"{np.asarray(err)[idx[:5]].tolist()}); the weights are too extreme (the largest "
            f"|c_j| there is {np.abs(c2[idx]).max():.3g}). Reduce the weights, loosen rtol, or "
            "enumerate the masks (enumerate_expectation) when there are few features.")
    if single:
        v = v[0]
        if return_grad:
            gb, gc = gb[0], gc[0]
    if return_grad:
        return v, gb, gc
    return v


def expected_softplus(b, c, q, *, return_grad=False, rtol=1e-10):
    """Exact ``E[softplus(Z)]``, ``Z = b + sum_j m_j c_j``, ``m_j ~ Bernoulli(q)`` iid.

    Parameters
    ----------
    b : float or ndarray, shape (batch,)
        Offsets (not dropped).
    c : ndarray, shape (n_features,) or (batch, n_features)
        Contributions of the dropped features (for inverted dropout, ``x_j beta_j / q``).
    q : float in (0, 1]
        Keep probability of every feature.
    return_grad : bool
        Also return the gradients with respect to ``b`` and ``c``.
    rtol : float
        Largest estimated relative error accepted; beyond it a ValueError.

    Returns
    -------
    value : float or ndarray, shape (batch,)
    grad_b : float or ndarray, shape (batch,)
        ``E[sigmoid(Z)]`` (only with ``return_grad``).
    grad_c : ndarray, shape (n_features,) or (batch, n_features)
        ``q E[sigmoid(Z) | m_j = 1]`` (only with ``return_grad``).
    """
    return _expect("softplus", b, c, q, return_grad, rtol)


def expected_sigmoid(b, c, q, *, return_grad=False, rtol=1e-10):
    """Exact ``E[sigmoid(Z)]``, ``Z = b + sum_j m_j c_j``, ``m_j ~ Bernoulli(q)`` iid.

    Same parameters and shapes as :func:`expected_softplus`; the gradients are
    ``E[sigmoid'(Z)]`` and ``q E[sigmoid'(Z) | m_j = 1]``.
    """
    return _expect("sigmoid", b, c, q, return_grad, rtol)


def enumerate_expectation(kind, b, c, q, *, max_features=20):
    """Brute force: ``E f(Z)`` summed over all ``2^n`` masks (the reference).

    Parameters
    ----------
    kind : {"softplus", "sigmoid"}
    b : float
    c : ndarray, shape (n_features,), n_features <= max_features
    q : float in (0, 1]

    Returns
    -------
    value, grad_b, grad_c : float, float, ndarray of shape (n_features,)
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}; got {kind!r}")
    c = np.asarray(c, dtype=np.float64)
    n = c.size
    if n > max_features:
        raise ValueError(f"enumeration needs n_features <= {max_features}; got {n}")
    masks = ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)
    k = masks.sum(axis=1)
    with np.errstate(divide="ignore"):
        logp = k * np.log(q) + (n - k) * np.log1p(-q) if q < 1 else np.where(k == n, 0.0, -np.inf)
    p = np.exp(logp)
    z = float(b) + masks @ c
    f, d = _f_and_prime(kind, z)
    return float(p @ f), float(p @ d), (p * d) @ masks
