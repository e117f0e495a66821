"""Numba kernel of the Laplace integral of :mod:`ensemble_study.laplace`.

Same algorithm as the numpy reference ``ensemble_study.laplace._laplace`` (its
module docstring describes it): the same grid search for ``c0``, the same
``t = a sinh(u)`` points, the same step-halving levels, stopping rule and error
estimate, and the same blocks of examples (an example keeps being refined until
every example of its reference block has converged, as in the reference, so
that both stop at the same level). What differs:

* the loops over points and features are fused per example, so nothing of size
  ``batch * points * features`` is allocated (the reference's temporaries);
* sums run in point and feature order (the reference sums pairwise in chunks),
  and ``q e^{s c} / (1 - q + q e^{s c})`` is formed as ``E / (1 + E)``
  from the ``log1p`` argument instead of ``exp(log q + w - lterm)`` (equal in
  exact arithmetic; one complex ``exp`` less per point and feature). The two
  implementations therefore differ by rounding only, within the rounding error
  the reference estimates.

Threads run over chunks of whole reference blocks (``default_threads``, so
``ENSEMBLE_STUDY_THREADS`` and the study executor's workers are honoured), each
example computed by the same serial code in the same order whatever thread
runs it: results do not depend on the number of threads. No fastmath: the
error estimate and the NaN checks rely on IEEE arithmetic.
"""

from __future__ import annotations

import cmath
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_INLINE = {**_JIT, "inline": "always"}
_KIND_CODES = {"softplus": 0, "sigmoid": 1}
_LOG_HALF = math.log(0.5)
_LOG_PI = math.log(math.pi)
_EPS = float(np.finfo(np.float64).eps)


@njit(**_INLINE)
def _max(x, y):
    """``np.maximum``: NaN if either is NaN (the reference's error checks rely on it)."""
    if x != x or y != y:
        return math.nan
    return x if x >= y else y


@njit(**_INLINE)
def _logaddexp(x, y):
    """``np.logaddexp`` for finite reals, by numpy's formula."""
    if x == y:
        return x + math.log(2.0)
    d = x - y
    if d > 0:
        return x + math.log1p(math.exp(-d))
    return y + math.log1p(math.exp(d))


@njit(**_JIT)
def _choose_c0(b, c, q, grid, logf, lo, hi, c0, bound):
    """``c0[i]``, ``bound[i]`` for rows ``lo:hi``: the grid point minimising
    ``log M(c0) + log F(c0)`` (the first one on ties, as ``np.argmin``).

    b (B,), c (B, n), grid and logf (G,); writes c0 (B,), bound (B,).
    """
    log_q, log_1mq = math.log(q), math.log1p(-q)
    n = c.shape[1]
    for i in range(lo, hi):
        best, k_best = math.inf, 0
        for g in range(grid.size):
            x = grid[g]
            acc = 0.0
            for j in range(n):
                acc += _logaddexp(log_1mq, log_q + x * c[i, j])
            v = (x * b[i] + acc) + logf[g]
            if v < best or (v != v and best == best):
                best, k_best = v, g
                if v != v:  # np.argmin stops at the first NaN
                    break
        c0[i], bound[i] = grid[k_best], best


@njit(**_INLINE)
def _prepare(ci, q, c0, pos, ereal):
    """Per feature, what does not depend on the point: ``Re w_j = c0 c_j`` is the
    same at every point, so the reference's branch ``Re w_j > log((1-q)/q)`` and
    the modulus ``e^{-+Re w_j}`` of its ``exp(-+w_j)`` are computed once."""
    r = math.log1p(-q) - math.log(q)
    for j in range(ci.size):
        wr = c0 * ci[j]
        pos[j] = wr > r
        ereal[j] = math.exp(-wr) if pos[j] else math.exp(wr)


@njit(**_INLINE)
def _level(kind, bi, ci, q, c0, a, logscale, u, lo, hi, grad, pos, ereal, wbuf, sgc, i, acc):
    """Adds one level's points ``u[lo:hi]`` of example ``i`` into ``acc`` and ``sgc[i]``.

    ``acc`` (6,): Re, Im of sum g; sum |g|; sum |g| phase; Re, Im of sum g s
    (each point weighted by the trapezoid: 1/2 at u = 0). The level's sums are
    formed first and then added, as the reference adds one level at a time.
    ``pos``, ``ereal`` from :func:`_prepare`; ``wbuf`` (n,) complex scratch.
    """
    n = ci.size
    log_q, log_1mq = math.log(q), math.log1p(-q)
    r = log_1mq - log_q                      # log((1-q)/q)
    exp_r, exp_mr = math.exp(r), math.exp(-r)
    sg = 0j
    sabs = 0.0
    sph = 0.0
    sgs = 0j
    for k in range(lo, hi):
        uk = u[k]
        wt = 0.5 if uk == 0.0 else 1.0
        t = a * math.sinh(uk)
        jac = a * math.cosh(uk)
        s = complex(c0, t)
        lre = 0.0
        lim = 0.0
        labs = 0.0
        for j in range(n):
            wi = t * ci[j]
            cs, sn = math.cos(wi), math.sin(wi)
            # log(1 + x) for |x| <= 1 as numpy's complex log1p (log |1 + x| + i arg(1 + x)),
            # x = e^{r} e^{-w} (Re w > r) or e^{-r} e^{w}
            if pos[j]:
                xr, xi = exp_r * (ereal[j] * cs), exp_r * (ereal[j] * -sn)
            else:
                xr, xi = exp_mr * (ereal[j] * cs), exp_mr * (ereal[j] * sn)
            yr = 1.0 + xr
            d = yr * yr + xi * xi
            l1r, l1i = 0.5 * math.log(d), math.atan2(xi, yr)
            if pos[j]:
                ltr, lti = (log_q + c0 * ci[j]) + l1r, wi + l1i
            else:
                ltr, lti = log_1mq + l1r, l1i
            if grad:
                # q e^{w} / (1 - q + q e^{w}): 1 / (1 + x) (Re w > r), else x / (1 + x)
                inv = complex(yr / d, -xi / d)
                wbuf[j] = inv if pos[j] else complex(xr, xi) * inv
            lre += ltr
            lim += lti
            labs += math.sqrt(ltr * ltr + lti * lti)
        sb = complex(c0 * bi, t * bi)
        logm = sb + complex(lre, lim)
        # log F(s): sin(pi s) = (i/2) e^{-i pi s} (1 - e^{2 i pi s})
        e2 = math.exp(-2.0 * math.pi * t)
        xr, xi = -(e2 * math.cos(2.0 * math.pi * c0)), -(e2 * math.sin(2.0 * math.pi * c0))
        logsin = (complex(_LOG_HALF, 0.5 * math.pi) - complex(-math.pi * t, math.pi * c0)) \
            + complex(math.log(math.hypot(1.0 + xr, xi)), math.atan2(xi, 1.0 + xr))
        logf = _LOG_PI - logsin
        if kind == 0:
            logf = logf - cmath.log(s)
        logg = (logf + logm) - logscale
        g = cmath.exp(logg) * jac
        ag = abs(g)
        ph = ((1.0 + labs) + abs(sb)) + abs(logg)
        sg += g * wt
        sabs += ag * wt
        sph += ag * ph * wt
        if grad:
            gs = g * s
            sgs += gs * wt
            for j in range(n):
                sgc[i, j] += (gs * wbuf[j]) * wt
    acc[0] += sg.real
    acc[1] += sg.imag
    acc[2] += sabs
    acc[3] += sph
    acc[4] += sgs.real
    acc[5] += sgs.imag


@njit(**_JIT)
def _integrate(kind, b, c, q, c0, a, logscale, u, offsets, h0, rtol, grad, block_lo, block_hi,
               max_levels, value, gb, est_gc, sgc, err):
    """The reference's ``_laplace_block`` on rows ``block_lo:block_hi`` (one block).

    Level ``l`` has the points ``u[offsets[l]:offsets[l + 1]]`` (level 0 from
    u = 0 by ``h0``, level ``l`` the odd multiples of ``h0 / 2^l``). Each example
    first runs until its own estimates agree; then those that stopped early
    are refined up to the block's last level, which is where the reference
    stops every example of the block. Writes value, gb (B,), est_gc (B, n)
    (unscaled), sgc (B, n) (scratch, zero on entry) and err (B,).
    """
    n = c.shape[1]
    nb = block_hi - block_lo
    accs = np.zeros((nb, 6))
    est = np.empty(nb)
    est_gs = np.empty(nb)
    levels = np.zeros(nb, np.int64)
    done = np.zeros(nb, np.bool_)
    quad_err = np.full(nb, math.inf)
    wbuf = np.empty(n, np.complex128)
    pos = np.empty(n, np.bool_)
    ereal = np.empty(n)
    tol = 1e-3 * rtol
    # Pass 0: each example to its own convergence. Pass 1: to the block's last level
    # (the reference halves the step for the whole block until all of it has converged).
    for p in range(2):
        target = max_levels if p == 0 or not done.all() else levels.max()
        for ii in range(nb):
            i = block_lo + ii
            acc = accs[ii]
            _prepare(c[i], q, c0[i], pos, ereal)
            if p == 0:
                h = h0
                _level(kind, b[i], c[i], q, c0[i], a[i], logscale[i], u, offsets[0], offsets[1],
                       grad, pos, ereal, wbuf, sgc, i, acc)
                est[ii] = (h / math.pi) * acc[0]
                if grad:
                    est_gs[ii] = (h / math.pi) * acc[4]
                    for j in range(n):
                        est_gc[i, j] = (h / math.pi) * sgc[i, j].real
            while levels[ii] < target:
                if p == 0 and done[ii]:
                    break
                lev = levels[ii] + 1
                h = h0 / 2.0 ** lev
                _level(kind, b[i], c[i], q, c0[i], a[i], logscale[i], u, offsets[lev],
                       offsets[lev + 1], grad, pos, ereal, wbuf, sgc, i, acc)
                new = (h / math.pi) * acc[0]
                diff = abs(new - est[ii])
                rel = diff / _max(abs(new), 1e-300)
                if grad:
                    new_gs = (h / math.pi) * acc[4]
                    scale_g = abs(new_gs)
                    diff_g = abs(new_gs - est_gs[ii])
                    for j in range(n):
                        new_gc = (h / math.pi) * sgc[i, j].real
                        scale_g = _max(scale_g, abs(new_gc))
                        diff_g = _max(diff_g, abs(new_gc - est_gc[i, j]))
                        est_gc[i, j] = new_gc
                    rel = _max(rel, diff_g / _max(scale_g, 1e-300))
                    est_gs[ii] = new_gs
                est[ii] = new
                if not done[ii]:
                    quad_err[ii] = rel
                    done[ii] = rel < tol
                levels[ii] = lev
    for ii in range(nb):
        i = block_lo + ii
        h = h0 / 2.0 ** levels[ii]
        rounding = 2.0 * _EPS * (h / math.pi) * accs[ii, 3] / _max(abs(est[ii]), 1e-300)
        e = _max(0.0 if done[ii] else quad_err[ii], rounding)
        scale = math.exp(logscale[i])
        value[i] = est[ii] * scale
        if grad:
            scale_g = abs(est_gs[ii])
            for j in range(n):
                scale_g = _max(scale_g, abs(est_gc[i, j]))
            e = _max(e, rounding * abs(est[ii]) / _max(scale_g, 1e-300))
            gb[i] = est_gs[ii] * scale
            for j in range(n):
                est_gc[i, j] *= scale
        err[i] = e


@njit(**_JIT)
def _integrate_blocks(kind, b, c, q, c0, a, logscale, u, offsets, h0, rtol, grad, starts,
                      first, last, max_levels, value, gb, est_gc, sgc, err):
    """:func:`_integrate` on blocks ``first:last`` (block ``k`` is rows
    ``starts[k]:starts[k + 1]``), one after the other."""
    for k in range(first, last):
        _integrate(kind, b, c, q, c0, a, logscale, u, offsets, h0, rtol, grad, starts[k],
                   starts[k + 1], max_levels, value, gb, est_gc, sgc, err)


def _run(task, n_items, n_threads, per_chunk):
    """``task(lo, hi)`` over ``range(n_items)`` in chunks of ``per_chunk``, on threads."""
    bounds = [(lo, min(n_items, lo + per_chunk)) for lo in range(0, n_items, per_chunk)]
    if n_threads <= 1 or len(bounds) == 1:
        for lo, hi in bounds:
            task(lo, hi)
        return
    with ThreadPoolExecutor(n_threads) as pool:
        for f in [pool.submit(task, lo, hi) for lo, hi in bounds]:
            f.result()


def laplace(kind, b, c, q, rtol, grad, *, n_threads=None):
    """The compiled ``_laplace``: value, grad_b, grad_c, estimated relative error.

    Parameters
    ----------
    kind : {"softplus", "sigmoid"}
    b : ndarray, shape (batch,)
    c : ndarray, shape (batch, n_features), n_features >= 1
    q : float in (0, 1)
    rtol : float
    grad : bool
    n_threads : int, optional
        Threads over chunks of examples (default ``default_threads()``); the
        results are the same bits whatever it is.

    Returns
    -------
    value, grad_b, err : ndarray, shape (batch,) (grad_b None without grad)
    grad_c : ndarray, shape (batch, n_features) or None
    """
    from .. import laplace as ref
    from .plan import default_threads

    n_threads = default_threads() if n_threads is None else n_threads
    b = np.ascontiguousarray(b, dtype=np.float64)
    c = np.ascontiguousarray(c, dtype=np.float64)
    n_batch, n = c.shape
    kind_code = _KIND_CODES[kind]
    grid = np.ascontiguousarray(ref._C0_GRID)
    logf = np.log(np.pi) - np.log(np.sin(np.pi * grid))   # the reference's expression
    if kind == "softplus":
        logf = logf - np.log(grid)
    c0, logscale = np.empty(n_batch), np.empty(n_batch)
    # about 2e5 logaddexp per chunk: a few ms, so thread start-up is small beside it
    rows = max(1, 200_000 // (grid.size * n))
    _run(lambda lo, hi: _choose_c0(b, c, q, grid, logf, lo, hi, c0, logscale),
         n_batch, n_threads, rows)
    a = np.minimum(c0, 1.0 - c0)
    # The reference's points and blocks (u_max and the blocks depend on the whole batch).
    u_max = np.arcsinh(ref._T_MAX / a.min())
    h = ref._H0
    us = [np.arange(0.0, u_max + h, h)]
    for _ in range(ref._MAX_LEVELS):
        h /= 2.0
        us.append(np.arange(h, u_max + h, 2.0 * h))
    offsets = np.concatenate([[0], np.cumsum([x.size for x in us])]).astype(np.int64)
    u = np.concatenate(us)
    k_guess = int(np.ceil(u_max / (ref._H0 / 2 ** 4)))
    rows = max(1, ref._CHUNK // max(1, (n + 1) * k_guess))
    starts = np.append(np.arange(0, n_batch, rows), n_batch).astype(np.int64)
    n_blocks = starts.size - 1
    value, err = np.empty(n_batch), np.empty(n_batch)
    gb = np.empty(n_batch) if grad else np.empty(0)
    est_gc = np.zeros((n_batch, n)) if grad else np.zeros((0, n))
    sgc = np.zeros((n_batch, n), np.complex128) if grad else np.zeros((0, n), np.complex128)
    # blocks per chunk: a few chunks per thread (blocks differ in cost) and at most
    # a few thousand examples per Python call
    per = max(1, min(n_blocks // (4 * n_threads), max(1, 4096 // rows)))

    def task(first, last):
        _integrate_blocks(kind_code, b, c, q, c0, a, logscale, u, offsets, ref._H0, rtol, grad,
                          starts, first, last, ref._MAX_LEVELS, value, gb, est_gc, sgc, err)

    _run(task, n_blocks, n_threads, per)
    if not grad:
        return value, None, None, err
    return value, gb, est_gc, err
