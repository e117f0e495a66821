"""Numba kernels of the exact paths (the algorithms of ``reference``).

Every kernel is serial, releases the GIL (``nogil``) and is compiled once
per process, cached on disk (``cache=True``). Threads run over chunks
(:func:`plan.run_chunks`), each chunk's numbers computed by the same
code in the same order whatever thread runs it, so results do not depend on
the number of threads. Activations and outputs are passed as integer codes
and the network as flat arrays with offsets, so each kernel has one
specialisation whatever the network.

Kernels:

* ``_softmax_pairs``: the softmax mean, variance (and hence, with the mean
  logits, the NWGM) over the last dropped layer's mask, per (outer mask,
  example) pair, from two half-tables of products. The reference's guards
  are kept: a pair whose tables could underflow (``_MIN_LOG_FACTOR``) is
  recomputed with one max-shifted softmax per subnetwork; a variance that
  cancels (``_MAX_CANCELLATION``) is recomputed centred from the tables.
* ``_sigmoid_pairs``: ``1 / (1 + a[s] c[t])`` per subnetwork, centred
  variance, ``sigmoid(z)`` itself where a half's logit passes +-350.
* ``_advance``: one example's forward pass from the first dropped layer
  whose mask changed since the previous mask (earlier layers are cached).
  The first changed layer is updated by rank-one steps (one per changed
  unit, recomputed in full every ``_REFRESH`` masks, which bounds the
  rounding drift); the last dropped layer of the generic path is read from
  two half-tables of sums (the next layer's pre-activation is affine in its
  mask: an addition per unit instead of a matrix-vector product).
* ``_generic_moments``: the generic path, the rest of the network fused,
  each example's moments accumulated over the chunk's masks with West's
  weighted update (stable; merged across chunks with Chan's).
* ``_outer_moments``: identity output and NWGM: over the outer masks only
  the mean and the centred co-moment matrix of the last hidden layer are
  needed (the output is affine in it), accumulated the same way.

(Over 500 lines: every kernel here uses the same inlined per-subnetwork
helpers, activation codes and flat network layout, and each is checked
against its sibling in ``reference``; one module keeps them read, compiled
and cached together.)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..activations import ACTIVATIONS
from ..network import MLP
from . import reference
from ._simd import (
    LANES,
    vadd,
    vdiv,
    vexp,
    vfma,
    vload,
    vmax,
    vmul,
    vsigmoid,
    vsplat,
    vstore,
    vsub,
    vsum,
    vtanh,
)
from .plan import (
    _MAX_CANCELLATION,
    _MIN_LOG_FACTOR,
    COMPILED_MAX_INNER,
    Moments,
    _outer_multipliers,
    _Plan,
)
from .reference import conditional_moments as _reference_conditional_moments

# Multiply-add contraction and reciprocal approximations of divisions are
# allowed; reassociation is not (it changes summation orders), nor are the
# finite-math assumptions the guards rely on.
_FASTMATH = {"contract", "arcp", "nsz"}
_JIT = {"cache": True, "nogil": True, "fastmath": _FASTMATH, "error_model": "numpy"}
# Helpers called per subnetwork are inlined in numba IR: a call would pass every
# array by value and touch its reference count (measured 10x slower).
_INLINE = {**_JIT, "inline": "always"}

_HIDDEN_CODES = {name: a.kernel_code for name, a in ACTIVATIONS.items()}
_OUTPUT_CODES = {"identity": 0, "sigmoid": 1, "softmax": 2}
# Rank-one updates between full recomputations of the first changed layer.
_REFRESH = 64
# Outer masks whose rank-one co-moment terms are summed as one product.
_BATCH = 16
# Largest last dropped layer read from half-tables on the generic path.
_MAX_TABLE_UNITS = 24


def _pack(net: MLP):
    """The network as flat float arrays with offsets (one kernel signature)."""
    w = [np.ascontiguousarray(W).ravel() for W in net.weights]
    woff = np.concatenate([[0], np.cumsum([x.size for x in w])]).astype(np.int64)
    boff = np.concatenate([[0], np.cumsum([b.size for b in net.biases])]).astype(np.int64)
    hidden = np.array([_HIDDEN_CODES[h] for h in net.hidden] + [0], dtype=np.int64)
    return (np.concatenate(w), woff, np.concatenate(net.biases), boff,
            np.array(net.sizes, dtype=np.int64), hidden)


@njit(**_JIT)
def _sigmoid1(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(**_INLINE)
def _activate(code, zs, acts, l, stop):
    """``acts[l, :stop] = f(zs[l, :stop])`` for hidden activation ``code``
    (``stop`` a multiple of ``LANES``)."""
    if code == 1:
        zero, base = vsplat(0.0), l * zs.shape[1]
        for o in range(0, stop, LANES):
            vstore(acts, base + o, vmax(vload(zs, base + o), zero))
    elif code == 2:
        base = l * zs.shape[1]
        for o in range(0, stop, LANES):
            vstore(acts, base + o, vtanh(vload(zs, base + o)))
    elif code == 3:
        base = l * zs.shape[1]
        for o in range(0, stop, LANES):
            vstore(acts, base + o, vsigmoid(vload(zs, base + o)))
    else:
        for o in range(stop):
            acts[l, o] = zs[l, o]


@njit(**_INLINE)
def _matvec(src, s0, M, i, off, dst, d0, Wf, w0, bf, b0, nin, nout):
    """``dst[o] = b[o] + sum_j m_j src[j] W[j, o]``, each a vector of ``LANES`` examples.

    ``src`` and ``dst`` rows start at flat offsets ``s0``, ``d0``; ``m_j`` is
    ``M[i, off + j]`` (1 when ``off < 0``). Dropped units are multiplied by
    zero, not skipped: a branch per unit on random masks mispredicted often
    enough to cost a third of the generic path's time.
    Outputs in blocks of four: four independent accumulation chains.
    """
    o = 0
    while o + 4 <= nout:
        c0, c1 = vsplat(bf[b0 + o]), vsplat(bf[b0 + o + 1])
        c2, c3 = vsplat(bf[b0 + o + 2]), vsplat(bf[b0 + o + 3])
        for j in range(nin):
            a = vload(src, s0 + j * LANES)
            if off >= 0:
                a = vmul(a, vsplat(M[i, off + j]))
            w = w0 + j * nout + o
            c0, c1 = vfma(a, vsplat(Wf[w]), c0), vfma(a, vsplat(Wf[w + 1]), c1)
            c2, c3 = vfma(a, vsplat(Wf[w + 2]), c2), vfma(a, vsplat(Wf[w + 3]), c3)
        vstore(dst, d0 + o * LANES, c0)
        vstore(dst, d0 + (o + 1) * LANES, c1)
        vstore(dst, d0 + (o + 2) * LANES, c2)
        vstore(dst, d0 + (o + 3) * LANES, c3)
        o += 4
    while o < nout:
        c0 = vsplat(bf[b0 + o])
        for j in range(nin):
            a = vload(src, s0 + j * LANES)
            if off >= 0:
                a = vmul(a, vsplat(M[i, off + j]))
            c0 = vfma(a, vsplat(Wf[w0 + j * nout + o]), c0)
        vstore(dst, d0 + o * LANES, c0)
        o += 1


@njit(**_INLINE)
def _matvec_free2(src, src2, s0, dst, dst2, d0, Wf, w0, bf, b0, nin, nout):
    """:func:`_matvec` of two masks at once (``src`` into ``dst``, ``src2`` into
    ``dst2``) for a layer with no mask (above the last dropped one): eight
    independent chains per pass, each weight loaded once for both; each
    output's chain is :func:`_matvec`'s (bias, then ``j`` in order), so the
    same bits."""
    o = 0
    while o + 4 <= nout:
        c0, c1 = vsplat(bf[b0 + o]), vsplat(bf[b0 + o + 1])
        c2, c3 = vsplat(bf[b0 + o + 2]), vsplat(bf[b0 + o + 3])
        d0_, d1, d2, d3 = c0, c1, c2, c3
        for j in range(nin):
            a, b = vload(src, s0 + j * LANES), vload(src2, s0 + j * LANES)
            w = w0 + j * nout + o
            w_0, w_1, w_2, w_3 = vsplat(Wf[w]), vsplat(Wf[w + 1]), vsplat(Wf[w + 2]), \
                vsplat(Wf[w + 3])
            c0, c1, c2, c3 = vfma(a, w_0, c0), vfma(a, w_1, c1), vfma(a, w_2, c2), \
                vfma(a, w_3, c3)
            d0_, d1, d2, d3 = vfma(b, w_0, d0_), vfma(b, w_1, d1), vfma(b, w_2, d2), \
                vfma(b, w_3, d3)
        vstore(dst, d0 + o * LANES, c0)
        vstore(dst, d0 + (o + 1) * LANES, c1)
        vstore(dst, d0 + (o + 2) * LANES, c2)
        vstore(dst, d0 + (o + 3) * LANES, c3)
        vstore(dst2, d0 + o * LANES, d0_)
        vstore(dst2, d0 + (o + 1) * LANES, d1)
        vstore(dst2, d0 + (o + 2) * LANES, d2)
        vstore(dst2, d0 + (o + 3) * LANES, d3)
        o += 4
    while o < nout:
        c0 = vsplat(bf[b0 + o])
        d0_ = c0
        for j in range(nin):
            w_0 = vsplat(Wf[w0 + j * nout + o])
            c0 = vfma(vload(src, s0 + j * LANES), w_0, c0)
            d0_ = vfma(vload(src2, s0 + j * LANES), w_0, d0_)
        vstore(dst, d0 + o * LANES, c0)
        vstore(dst2, d0 + o * LANES, d0_)
        o += 1


@njit(**_INLINE)
def _table_pair(i, Wf, woff, bf, boff, sizes, hidden, tab, S, T, acts, zs, acts2, zs2, Z1, Z2):
    """Masks ``i`` (into ``acts``, ``zs``) and ``i + 1`` (into ``acts2``,
    ``zs2``), whose first changed layer is ``tab``, at once: the two are
    independent (each reads the half-tables), so their chains interleave.
    The same operations per mask as :func:`_advance`'s layer by layer, so the
    same bits. Only the layers above ``tab`` are written."""
    L = sizes.size - 1
    row, trow = acts.shape[1], Z1.shape[1]
    nout, b0, z0 = sizes[tab + 1], boff[tab], (tab + 1) * row
    s1, t1 = S[i] * trow, T[i] * trow
    s2, t2 = S[i + 1] * trow, T[i + 1] * trow
    for o in range(nout):
        bias = vsplat(bf[b0 + o])
        vstore(zs, z0 + o * LANES,
               vadd(vadd(bias, vload(Z1, s1 + o * LANES)), vload(Z2, t1 + o * LANES)))
        vstore(zs2, z0 + o * LANES,
               vadd(vadd(bias, vload(Z1, s2 + o * LANES)), vload(Z2, t2 + o * LANES)))
    for l in range(tab + 1, L):
        for b in range(2):  # one inlined copy of _activate (compile cost)
            _activate(hidden[l - 1], zs if b == 0 else zs2, acts if b == 0 else acts2, l,
                      sizes[l] * LANES)
        _matvec_free2(acts, acts2, l * row, zs, zs2, (l + 1) * row, Wf, woff[l], bf, boff[l],
                      sizes[l], sizes[l + 1])


@njit(**_INLINE)
def _rank_one(i, l, Wf, woff, sizes, M, moff, chg, acts, zs):
    """``zs[l + 1] += (m_i - m_{i-1})_j acts[l, j] W[l][j, :]`` for each unit ``j``
    of layer ``l`` that mask ``i`` changed (``chg[i]``)."""
    nout, w0, off, row = sizes[l + 1], woff[l], moff[l], acts.shape[1]
    z0 = (l + 1) * row
    for u in range(1, chg[i, 0] + 1):
        j = chg[i, u]
        a = vmul(vload(acts, l * row + j * LANES), vsplat(M[i, off + j] - M[i - 1, off + j]))
        for o in range(nout):
            at = z0 + o * LANES
            vstore(zs, at, vfma(a, vsplat(Wf[w0 + j * nout + o]), vload(zs, at)))


@njit(**_INLINE)
def _advance(i, Wf, woff, bf, boff, sizes, hidden, Xb, M, moff, first, chg, top, tab, tabc,
             S, T, acts, zs, Z1, Z2, built):
    """Bring a block of ``LANES`` examples up to date for mask ``i``.

    Rows are flat, unit-major: ``acts[l, j * LANES + e]`` is activation ``l``
    of unit ``j``, example ``e``; ``zs`` likewise the pre-activations. They
    hold the previous mask's values; layers from ``first[i]`` are recomputed
    up to ``zs[top]`` (and ``acts[top]`` when ``top`` is a hidden layer).
    The first changed layer is updated by rank-one steps when few of its
    units changed (recomputed in full every ``_REFRESH`` masks); layer
    ``tab`` (if >= 0) is read from the half-tables ``Z1``, ``Z2``.
    """
    L = sizes.size - 1
    l0 = first[i]
    if l0 >= top:
        return
    row = acts.shape[1]
    if l0 == 0:
        for j in range(Xb.size):
            acts[0, j] = Xb[j]
    for l in range(l0, top):
        nin, nout = sizes[l], sizes[l + 1]
        w0, b0, off = woff[l], boff[l], moff[l]
        a0, z0 = l * row, (l + 1) * row
        if l == tab:
            n1 = nin // 2
            trow = Z1.shape[1]
            if l0 < l or built[0] == 0:
                built[0] = 1
                for o in range(trow):
                    Z1[0, o] = 0.0
                    Z2[0, o] = 0.0
                for j in range(nin):
                    a = vmul(vload(acts, a0 + j * LANES), vsplat(tabc[j]))
                    if j < n1:
                        h, Zt = 1 << j, Z1
                    else:
                        h, Zt = 1 << (j - n1), Z2
                    for s in range(h):
                        for o in range(nout):
                            vstore(Zt, (s + h) * trow + o * LANES,
                                   vfma(a, vsplat(Wf[w0 + j * nout + o]),
                                        vload(Zt, s * trow + o * LANES)))
            s1, t1 = S[i] * trow, T[i] * trow
            for o in range(nout):
                vstore(zs, z0 + o * LANES,
                       vadd(vadd(vsplat(bf[b0 + o]), vload(Z1, s1 + o * LANES)),
                            vload(Z2, t1 + o * LANES)))
        else:
            if (l == l0 and off >= 0 and i > 0 and i % _REFRESH != 0
                    and 4 * chg[i, 0] <= nin):
                _rank_one(i, l, Wf, woff, sizes, M, moff, chg, acts, zs)
            else:
                _matvec(acts, a0, M, i, off, zs, z0, Wf, w0, bf, b0, nin, nout)
        if l + 1 < L:
            _activate(hidden[l], zs, acts, l + 1, nout * LANES)


@njit(**_INLINE)
def _one_step(i, c, first, chg, moff, top):
    """Whether mask ``i`` changes one unit of layer ``top - 1`` only, between refreshes."""
    return (i < c and i % _REFRESH != 0 and first[i] == top - 1 and chg[i, 0] == 1
            and moff[top - 1] >= 0)


@njit(**_INLINE)
def _rank_one_top(i, Wf, woff, sizes, hidden, M, moff, chg, top, acts, zs):
    """:func:`_advance` for a mask that passes :func:`_one_step`: one rank-one
    update of ``zs[top]``, then ``acts[top]``.

    Callers run these masks in a loop of their own, apart from
    :func:`_advance`: its general paths in the same loop body cost the
    register allocator enough to slow this one down fourfold.
    """
    _rank_one(i, top - 1, Wf, woff, sizes, M, moff, chg, acts, zs)
    _activate(hidden[top - 1], zs, acts, top, sizes[top] * LANES)


@njit(**_JIT)
def _state(sizes, tab):
    L = sizes.size - 1
    width = 0
    for l in range(L + 1):
        width = max(width, sizes[l])
    acts = np.zeros((L + 1, width * LANES))
    zs = np.zeros((L + 1, width * LANES))
    if tab >= 0:
        n1 = sizes[tab] // 2
        Z1 = np.zeros((1 << n1, sizes[tab + 1] * LANES))
        Z2 = np.zeros((1 << (sizes[tab] - n1), sizes[tab + 1] * LANES))
    else:
        Z1 = np.zeros((1, LANES))
        Z2 = np.zeros((1, LANES))
    return acts, zs, Z1, Z2, np.zeros(1, dtype=np.int64)


@njit(**_JIT)
def _block_of(X, e0):
    """Examples ``e0 .. e0 + LANES - 1`` unit-major (zeros past the end)."""
    n, d = X.shape
    Xb = np.zeros(d * LANES)
    for e in range(e0, min(e0 + LANES, n)):
        for j in range(d):
            Xb[j * LANES + e - e0] = X[e, j]
    return Xb


@njit(**_INLINE)
def _output_west(i, output, zs, y, mu, sq, mz, r, w, L, K):
    """Mask ``i``'s output (from ``zs[L]``) into the running moments ``mu``, ``sq``, ``mz``."""
    z0 = L * zs.shape[1]
    if output == 2:
        top = vload(zs, z0)
        for k in range(1, K):
            top = vmax(top, vload(zs, z0 + k * LANES))
        total = vsplat(0.0)
        for k in range(K):
            ek = vexp(vsub(vload(zs, z0 + k * LANES), top))
            vstore(y, k * LANES, ek)
            total = vadd(total, ek)
        inv = vdiv(vsplat(1.0), total)  # one division per example, not per class
        for k in range(K):
            vstore(y, k * LANES, vmul(vload(y, k * LANES), inv))
    elif output == 1:
        for k in range(K * LANES):
            y[k] = _sigmoid1(zs[L, k])
    else:
        for k in range(K * LANES):
            y[k] = zs[L, k]
    ri, wi = vsplat(r[i]), vsplat(w[i])
    for k in range(0, K * LANES, LANES):
        yk = vload(y, k)
        d = vsub(yk, vload(mu, k))
        m = vfma(ri, d, vload(mu, k))
        vstore(mu, k, m)
        vstore(sq, k, vfma(vmul(wi, d), vsub(yk, m), vload(sq, k)))
        zk = vload(zs, z0 + k)
        vstore(mz, k, vfma(ri, vsub(zk, vload(mz, k)), vload(mz, k)))


@njit(**_JIT)
def _generic_moments(Wf, woff, bf, boff, sizes, hidden, output, X, M, moff, first, chg, tab,
                     tabc, S, T, r, w, dense):
    """Per example and output: weighted mean, co-moment and mean logit over the masks.

    West's update with ``r[i] = w[i] / (w[0] + ... + w[i])``; ``w > 0``.
    Examples run ``LANES`` at a time, one per vector lane. ``dense``: most
    masks change too many units for rank-one updates (sampled masks), so
    each recomputes its layers from the first changed one, in a loop without
    :func:`_advance`'s other paths (see :func:`_rank_one_top`).
    """
    L = sizes.size - 1
    n, K, c = X.shape[0], sizes[L], M.shape[0]
    mean, m2, mean_z = np.zeros((n, K)), np.zeros((n, K)), np.zeros((n, K))
    y = np.empty(K * LANES)
    mu, sq, mz = np.empty(K * LANES), np.empty(K * LANES), np.empty(K * LANES)
    for e0 in range(0, n, LANES):
        acts, zs, Z1, Z2, built = _state(sizes, tab)
        acts2, zs2 = np.zeros_like(acts), np.zeros_like(zs)
        Xb = _block_of(X, e0)
        mu[:] = 0.0
        sq[:] = 0.0
        mz[:] = 0.0
        row = acts.shape[1]
        i = 0
        while i < c:  # one copy of _advance; the dense masks in a loop of their own
            _advance(i, Wf, woff, bf, boff, sizes, hidden, Xb, M, moff, first, chg, L, tab,
                     tabc, S, T, acts, zs, Z1, Z2, built)
            _output_west(i, output, zs, y, mu, sq, mz, r, w, L, K)
            i += 1
            # The common masks (their first changed layer is the tabled one), two at a
            # time (_table_pair): mask i into the second buffer, i + 1 into the first,
            # which then holds the last mask's layers, as a mask that changes none (a
            # repeated sampled mask) reads.
            while tab >= 0 and i + 1 < c and first[i] == tab and first[i + 1] == tab:
                _table_pair(i, Wf, woff, bf, boff, sizes, hidden, tab, S, T, acts2, zs2, acts,
                            zs, Z1, Z2)
                for b in range(2):  # one inlined copy (compile cost); an odd mask out: _advance
                    _output_west(i + b, output, zs2 if b == 0 else zs, y, mu, sq, mz, r, w, L, K)
                i += 2
            while dense and tab < 0 and i < c:
                l0 = first[i]
                for l in range(l0, L):
                    nin, nout, off = sizes[l], sizes[l + 1], moff[l]
                    if l == l0 and off >= 0 and i % _REFRESH != 0 and 4 * chg[i, 0] <= nin:
                        # the few masks that change few units: _advance's rank-one steps
                        _rank_one(i, l, Wf, woff, sizes, M, moff, chg, acts, zs)
                    else:
                        _matvec(acts, l * row, M, i, off, zs, (l + 1) * row, Wf, woff[l], bf,
                                boff[l], nin, nout)
                    if l + 1 < L:
                        _activate(hidden[l], zs, acts, l + 1, nout * LANES)
                _output_west(i, output, zs, y, mu, sq, mz, r, w, L, K)
                i += 1
        for e in range(e0, min(e0 + LANES, n)):
            for k in range(K):
                mean[e, k] = mu[k * LANES + e - e0]
                m2[e, k] = sq[k * LANES + e - e0]
                mean_z[e, k] = mz[k * LANES + e - e0]
    return mean, m2, mean_z


@njit(**_JIT)
def _prefix_acts(Wf, woff, bf, boff, sizes, hidden, X, M, moff, first, chg):
    """Activation ``L-1`` of each example under each mask, ``(c, n, sizes[L-1])``."""
    L = sizes.size - 1
    n, c, h = X.shape[0], M.shape[0], sizes[L - 1]
    A = np.empty((c, n, h))
    none_i = np.zeros(1, dtype=np.int64)
    none_f = np.zeros(1)
    for e0 in range(0, n, LANES):
        acts, zs, Z1, Z2, built = _state(sizes, -1)
        Xb = _block_of(X, e0)
        i = 0
        while i < c:
            _advance(i, Wf, woff, bf, boff, sizes, hidden, Xb, M, moff, first, chg, L - 1, -1,
                     none_f, none_i, none_i, acts, zs, Z1, Z2, built)
            _store_acts(A, i, e0, acts, L - 1, h)
            i += 1
            while _one_step(i, c, first, chg, moff, L - 1):
                _rank_one_top(i, Wf, woff, sizes, hidden, M, moff, chg, L - 1, acts, zs)
                _store_acts(A, i, e0, acts, L - 1, h)
                i += 1
    return A


@njit(**_INLINE)
def _store_acts(A, i, e0, acts, l, h):
    for e in range(e0, min(e0 + LANES, A.shape[1])):
        for j in range(h):
            A[i, e, j] = acts[l, j * LANES + e - e0]


@njit(**_JIT)
def _outer_moments(Wf, woff, bf, boff, sizes, hidden, X, M, moff, first, chg, r, w,
                   variance):
    """Weighted mean ``(n, h)`` and centred co-moment ``(n, h, h)`` of activation L-1.

    West's update ``C += w_i (a_i - mu_{i-1}) (a_i - mu_i)'``; the rank-one
    terms of ``_BATCH`` masks are summed as one rank-``_BATCH`` product,
    register-blocked (2 x 4 entries of ``C`` per pass over the batch).
    """
    L = sizes.size - 1
    n, c, h = X.shape[0], M.shape[0], sizes[L - 1]
    hp = (h + 3) // 4 * 4  # padded: blocks of 4 columns
    mu = np.zeros((n, h))
    C = np.zeros((n, h, h))
    none_i = np.zeros(1, dtype=np.int64)
    none_f = np.zeros(1)
    m = np.empty(h * LANES)
    U = np.zeros(_BATCH * hp * LANES)  # w_i (a_i - mu_{i-1}), mask-major
    Vd = np.zeros(_BATCH * hp * LANES)  # a_i - mu_i
    Cb = np.empty(hp * hp * LANES)
    for e0 in range(0, n, LANES):
        acts, zs, Z1, Z2, built = _state(sizes, -1)
        Xb = _block_of(X, e0)
        m[:] = 0.0
        Cb[:] = 0.0
        filled = 0
        a0 = (L - 1) * acts.shape[1]
        i = 0
        while i < c:  # the masks :func:`_one_step` admits run in tight loops of their own
            _advance(i, Wf, woff, bf, boff, sizes, hidden, Xb, M, moff, first, chg, L - 1, -1,
                     none_f, none_i, none_i, acts, zs, Z1, Z2, built)
            if not variance:
                _west_mean(i, r, acts, a0, h, m)
                i += 1
                while _one_step(i, c, first, chg, moff, L - 1):
                    _rank_one_top(i, Wf, woff, sizes, hidden, M, moff, chg, L - 1, acts, zs)
                    _west_mean(i, r, acts, a0, h, m)
                    i += 1
                continue
            filled = _west_push(i, r, w, acts, a0, h, m, U, Vd, filled, hp)
            i += 1
            while filled < _BATCH and _one_step(i, c, first, chg, moff, L - 1):
                _rank_one_top(i, Wf, woff, sizes, hidden, M, moff, chg, L - 1, acts, zs)
                filled = _west_push(i, r, w, acts, a0, h, m, U, Vd, filled, hp)
                i += 1
            if filled == _BATCH or i == c:
                _rank_update(U, Vd, Cb, filled, hp)
                filled = 0
        for e in range(e0, min(e0 + LANES, n)):
            for j in range(h):
                mu[e, j] = m[j * LANES + e - e0]
                for k in range(j, h):
                    C[e, j, k] = C[e, k, j] = Cb[(j * hp + k) * LANES + e - e0]
    return mu, C


@njit(**_INLINE)
def _west_mean(i, r, acts, a0, h, m):
    """Mask ``i`` into the running mean ``m``."""
    ri = vsplat(r[i])
    for j in range(0, h * LANES, LANES):
        mj = vload(m, j)
        vstore(m, j, vfma(ri, vsub(vload(acts, a0 + j), mj), mj))


@njit(**_INLINE)
def _west_push(i, r, w, acts, a0, h, m, U, Vd, filled, hp):
    """Mask ``i`` into the running mean ``m`` and its rank-one term of the
    co-moment into row ``filled`` of the batch ``U``, ``Vd``; returns ``filled + 1``."""
    ri, wi = vsplat(r[i]), vsplat(w[i])
    base = filled * hp * LANES
    for j in range(0, h * LANES, LANES):
        aj = vload(acts, a0 + j)
        dj = vsub(aj, vload(m, j))
        mj = vfma(ri, dj, vload(m, j))
        vstore(m, j, mj)
        vstore(U, base + j, vmul(wi, dj))
        vstore(Vd, base + j, vsub(aj, mj))
    return filled + 1


@njit(**_INLINE)
def _rank_update(U, Vd, Cb, count, hp):
    """``Cb[j, k] += sum_b U[b, j] Vd[b, k]`` over ``count`` masks (vectors of examples),
    for ``k >= j`` (blocks below the diagonal are skipped: the caller reads the
    upper triangle)."""
    stride = hp * LANES
    for j in range(0, hp, 2):
        for k in range(j // 4 * 4, hp, 4):  # blocks that reach the upper triangle
            c00 = vload(Cb, (j * hp + k) * LANES)
            c01 = vload(Cb, (j * hp + k + 1) * LANES)
            c02 = vload(Cb, (j * hp + k + 2) * LANES)
            c03 = vload(Cb, (j * hp + k + 3) * LANES)
            c10 = vload(Cb, ((j + 1) * hp + k) * LANES)
            c11 = vload(Cb, ((j + 1) * hp + k + 1) * LANES)
            c12 = vload(Cb, ((j + 1) * hp + k + 2) * LANES)
            c13 = vload(Cb, ((j + 1) * hp + k + 3) * LANES)
            for b in range(count):
                u0 = vload(U, b * stride + j * LANES)
                u1 = vload(U, b * stride + (j + 1) * LANES)
                v = vload(Vd, b * stride + k * LANES)
                c00, c10 = vfma(u0, v, c00), vfma(u1, v, c10)
                v = vload(Vd, b * stride + (k + 1) * LANES)
                c01, c11 = vfma(u0, v, c01), vfma(u1, v, c11)
                v = vload(Vd, b * stride + (k + 2) * LANES)
                c02, c12 = vfma(u0, v, c02), vfma(u1, v, c12)
                v = vload(Vd, b * stride + (k + 3) * LANES)
                c03, c13 = vfma(u0, v, c03), vfma(u1, v, c13)
            vstore(Cb, (j * hp + k) * LANES, c00)
            vstore(Cb, (j * hp + k + 1) * LANES, c01)
            vstore(Cb, (j * hp + k + 2) * LANES, c02)
            vstore(Cb, (j * hp + k + 3) * LANES, c03)
            vstore(Cb, ((j + 1) * hp + k) * LANES, c10)
            vstore(Cb, ((j + 1) * hp + k + 1) * LANES, c11)
            vstore(Cb, ((j + 1) * hp + k + 2) * LANES, c12)
            vstore(Cb, ((j + 1) * hp + k + 3) * LANES, c13)


# ---------------------------------------------------------------------------
# Inner blocks: moments over the last dropped layer's mask, per pair.


@njit(**_JIT)
def _softmax_direct(V, bias, P1, P2, n1, variance, mean, var):
    """One max-shifted softmax per subnetwork (pairs whose tables could underflow)."""
    n, K = V.shape
    S1, S2 = 1 << n1, 1 << (n - n1)
    Z1, Z2 = np.empty((S1, K)), np.empty((S2, K))
    for k in range(K):
        Z1[0, k] = bias[k]
        Z2[0, k] = 0.0
    for j in range(n):
        h, Zt = (1 << j, Z1) if j < n1 else (1 << (j - n1), Z2)
        for s in range(h):
            for k in range(K):
                Zt[s + h, k] = Zt[s, k] + V[j, k]
    y = np.empty(K)
    inner = np.empty(K)
    for k in range(K):
        mean[k] = 0.0
        var[k] = 0.0
    for rnd in range(2 if variance else 1):
        for s in range(S1):
            for k in range(K):
                inner[k] = 0.0
            for t in range(S2):
                top = Z1[s, 0] + Z2[t, 0]
                for k in range(1, K):
                    top = max(top, Z1[s, k] + Z2[t, k])
                total = 0.0
                for k in range(K):
                    y[k] = math.exp(Z1[s, k] + Z2[t, k] - top)
                    total += y[k]
                for k in range(K):
                    yk = y[k] / total
                    if rnd == 0:
                        inner[k] += P2[t] * yk
                    else:
                        inner[k] += P2[t] * (yk - mean[k]) ** 2
            for k in range(K):
                if rnd == 0:
                    mean[k] += P1[s] * inner[k]
                else:
                    var[k] += P1[s] * inner[k]


def _softmax_pairs(A, sW, bias, q, variance, mean, var, shape=None):
    """Softmax mean (and variance) over the inner masks of each pair.

    ``A`` ``(B, n)``: activation L-1 of each pair; ``sW`` ``(n, K)`` the
    scaled last weights; ``mean``, ``var`` ``(B, K)`` are filled.
    ``shape``: a :class:`~ensemble_study.kernels.shape.Shape` (default: the
    host's, :func:`~ensemble_study.kernels.shape.current`); every shape gives
    the same bits.
    """
    if shape is None:
        from .shape import current

        shape = current()
    _softmax_pairs_kernel(A, sW, bias, q, variance, mean, var, shape.tile, shape.fused)


@njit(**_JIT)
def _softmax_pairs_kernel(A, sW, bias, q, variance, mean, var, tile, fused):
    """:func:`_softmax_pairs` with its shape (``tile``, ``fused``) as integers."""
    B, n = A.shape
    K = sW.shape[1]
    n1 = n // 2
    S1, S2 = 1 << n1, 1 << (n - n1)
    P1, P2 = _probs(n1, q), _probs(n - n1, q)
    V, sh = np.empty((n, K)), np.empty((n, K))
    E = np.empty(n * K + LANES)
    T1, T2T = np.empty((S1, K)), np.empty((K, S2))
    T2w, T2w2 = np.empty((K, S2)), np.empty((K, S2))
    G, G2 = np.empty((K, S2)), np.empty((K, S2))
    D, R = np.empty(S2), np.empty(S2)
    lb, second = np.empty(K), np.empty(K)
    R1, R2 = np.empty(S1 * S2), np.empty(S1 * S2)
    C1, C2 = np.empty((S1, K)), np.empty((S1, K))
    btop = bias[0]
    for k in range(1, K):
        btop = max(btop, bias[k])
    elb = np.empty(K)
    for k in range(K):
        lb[k] = bias[k] - btop
        elb[k] = math.exp(lb[k])
    for b in range(B):
        low = np.inf
        for k in range(K):
            second[k] = lb[k]
        for j in range(n):
            top = -np.inf
            for k in range(K):
                V[j, k] = A[b, j] * sW[j, k]
                top = max(top, V[j, k])
            for k in range(K):
                sh[j, k] = V[j, k] - top
                second[k] += sh[j, k]
        for k in range(K):
            low = min(low, second[k])
        if not low >= _MIN_LOG_FACTOR:  # the smallest table product; NaN goes direct too
            _softmax_direct(V, bias, P1, P2, n1, variance, mean[b], var[b])
            continue
        for k in range(K):
            T1[0, k] = elb[k]
            T2T[k, 0] = 1.0
        _exp_into(sh, E)
        for j in range(n):
            if j < n1:
                h = 1 << j
                for k in range(K):
                    f = E[j * K + k]
                    for s in range(h):
                        T1[s + h, k] = T1[s, k] * f
            else:
                h = 1 << (j - n1)
                for k in range(K):
                    f = E[j * K + k]
                    for t in range(h):
                        T2T[k, t + h] = T2T[k, t] * f
        for k in range(K):
            for t in range(S2):
                T2w[k, t] = P2[t] * T2T[k, t]
        if variance:  # the squared tables only when the variance is asked for
            for k in range(K):
                for t in range(S2):
                    T2w2[k, t] = T2w[k, t] * T2T[k, t]
        if S2 % LANES == 0:
            _softmax_contract(T1, T2T, T2w, T2w2, P1, variance, R1, R2, C1, C2, mean[b], second,
                              tile, fused)
        else:
            _softmax_contract_scalar(T1, T2T, T2w, T2w2, P1, variance, G, G2, D, R, mean[b],
                                     second)
        cancel = False
        if variance:
            for k in range(K):
                v = second[k] - mean[b, k] * mean[b, k]
                var[b, k] = v
                cancel = cancel or not v * _MAX_CANCELLATION >= second[k]
        if cancel:
            _centred_from_tables(T1, T2T, P1, P2, mean[b], var[b], D)


@njit(**_INLINE)
def _exp_into(x, out):
    """``out.flat[:x.size] = exp(x.flat)``, ``LANES`` at a time (``out`` padded)."""
    m = x.size
    flat = x.reshape(m)
    i = 0
    while i + LANES <= m:
        vstore(out, i, vexp(vload(flat, i)))
        i += LANES
    for r in range(i, m):
        out[r] = math.exp(flat[r])


@njit(**_INLINE)
def _softmax_contract(T1, T2T, T2w, T2w2, P1, variance, R1, R2, C1, C2, mean, second, tile,
                      fused):
    """``mean[k] = sum_s,t P1 P2 T1 T2 / D`` (and ``second`` with squares), vectorised over t.

    Reciprocals ``1 / D[s, t]`` first (``K`` fused multiply-adds and one
    division per ``LANES`` subnetworks), then register blocks of two
    classes by ``4 LANES`` low-half masks, the high half innermost.

    The shape (:mod:`.shape`) sets only the order in which independent work
    is done, never an operation: ``tile`` steps of ``4 LANES`` low-half masks
    have their reciprocals formed and contracted together (so that they stay
    in the first-level cache), and ``fused`` contracts the mean and the second
    moment in one pass over the reciprocals (16 accumulators: for 32-register
    hosts). Each class's sums run over ``s`` then ``t`` in the same order
    whatever the shape, so every shape gives the same bits.
    """
    S1, K = T1.shape
    S2 = T2T.shape[1]
    one = vsplat(1.0)
    step = 4 * LANES
    for s in range(S1):
        p = P1[s]
        for k in range(K):
            C1[s, k] = p * T1[s, k]
        if variance:
            for k in range(K):
                C2[s, k] = C1[s, k] * T1[s, k]
    if S2 % step != 0:
        for s in range(S1):
            for t in range(0, S2, LANES):
                d = vmul(vsplat(T1[s, 0]), vload(T2T, t))
                for k in range(1, K):
                    d = vfma(vsplat(T1[s, k]), vload(T2T, k * S2 + t), d)
                r = vdiv(one, d)
                vstore(R1, s * S2 + t, r)
                if variance:
                    vstore(R2, s * S2 + t, vmul(r, r))
        _contract_narrow(C1, R1, T2w, S1, S2, K, mean)
        if variance:
            _contract_narrow(C2, R2, T2w2, S1, S2, K, second)
        return
    for k in range(K):
        mean[k] = 0.0
        second[k] = 0.0
    width = min(S2, max(1, tile) * step)
    for t0 in range(0, S2, width):
        # Four independent chains per step: one chain of K dependent FMAs per
        # vector would leave the loop waiting on FMA latency, not throughput.
        for s in range(S1):
            for u in range(0, width, step):
                t = t0 + u
                f = vsplat(T1[s, 0])
                d0, d1 = vmul(f, vload(T2T, t)), vmul(f, vload(T2T, t + LANES))
                d2, d3 = vmul(f, vload(T2T, t + 2 * LANES)), vmul(f, vload(T2T, t + 3 * LANES))
                for k in range(1, K):
                    f = vsplat(T1[s, k])
                    w = k * S2 + t
                    d0, d1 = vfma(f, vload(T2T, w), d0), vfma(f, vload(T2T, w + LANES), d1)
                    d2 = vfma(f, vload(T2T, w + 2 * LANES), d2)
                    d3 = vfma(f, vload(T2T, w + 3 * LANES), d3)
                w = s * width + u
                r0, r1, r2, r3 = vdiv(one, d0), vdiv(one, d1), vdiv(one, d2), vdiv(one, d3)
                vstore(R1, w, r0)
                vstore(R1, w + LANES, r1)
                vstore(R1, w + 2 * LANES, r2)
                vstore(R1, w + 3 * LANES, r3)
                if variance:
                    vstore(R2, w, vmul(r0, r0))
                    vstore(R2, w + LANES, vmul(r1, r1))
                    vstore(R2, w + 2 * LANES, vmul(r2, r2))
                    vstore(R2, w + 3 * LANES, vmul(r3, r3))
        if variance and fused:
            _contract_both(C1, C2, R1, R2, T2w, T2w2, S1, S2, K, t0, width, mean, second)
        else:
            _contract(C1, R1, T2w, S1, S2, K, t0, width, mean)
            if variance:
                _contract(C2, R2, T2w2, S1, S2, K, t0, width, second)


@njit(**_INLINE)
def _contract_narrow(C, R, Tw, S1, S2, K, out):
    """``out[k] = sum_t Tw[k, t] sum_s C[s, k] R[s, t]``, one vector of ``t`` at a time."""
    for k in range(K):
        total = 0.0
        for t in range(0, S2, LANES):
            a = vsplat(0.0)
            for s in range(S1):
                a = vfma(vsplat(C[s, k]), vload(R, s * S2 + t), a)
            total += vsum(vmul(a, vload(Tw, k * S2 + t)))
        out[k] = total


@njit(**_INLINE)
def _dot4(a0, a1, a2, a3, Tw, w):
    """The lanes' sum of ``a * Tw[w : w + 4 LANES]``, paired as ``(0 + 1) + (2 + 3)``."""
    return vsum(vadd(vadd(vmul(a0, vload(Tw, w)), vmul(a1, vload(Tw, w + LANES))),
                     vadd(vmul(a2, vload(Tw, w + 2 * LANES)),
                          vmul(a3, vload(Tw, w + 3 * LANES)))))


@njit(**_INLINE)
def _contract(C, R, Tw, S1, S2, K, t0, width, out):
    """``out[k] += sum_t Tw[k, t] sum_s C[s, k] R[s, t]`` over the tile ``t0 .. t0 + width``
    (``R`` holds the tile's columns, ``width`` a row)."""
    step = 4 * LANES
    for k in range(0, K, 2):
        k2 = min(k + 1, K - 1)  # an odd last class is computed twice, kept once
        for u in range(0, width, step):
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = vsplat(0.0)
            for s in range(S1):
                base = s * width + u
                r0, r1 = vload(R, base), vload(R, base + LANES)
                r2, r3 = vload(R, base + 2 * LANES), vload(R, base + 3 * LANES)
                c = vsplat(C[s, k])
                a0, a1, a2, a3 = vfma(c, r0, a0), vfma(c, r1, a1), vfma(c, r2, a2), vfma(c, r3, a3)
                c = vsplat(C[s, k2])
                b0, b1, b2, b3 = vfma(c, r0, b0), vfma(c, r1, b1), vfma(c, r2, b2), vfma(c, r3, b3)
            out[k] += _dot4(a0, a1, a2, a3, Tw, k * S2 + t0 + u)
            if k2 != k:
                out[k2] += _dot4(b0, b1, b2, b3, Tw, k2 * S2 + t0 + u)


@njit(**_INLINE)
def _contract_both(C1, C2, R1, R2, Tw, Tw2, S1, S2, K, t0, width, mean, second):
    """:func:`_contract` of the mean and the second moment in one pass (the same sums)."""
    step = 4 * LANES
    for k in range(0, K, 2):
        k2 = min(k + 1, K - 1)
        for u in range(0, width, step):
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = vsplat(0.0)
            e0 = e1 = e2 = e3 = g0 = g1 = g2 = g3 = vsplat(0.0)
            for s in range(S1):
                base = s * width + u
                r0, r1 = vload(R1, base), vload(R1, base + LANES)
                r2, r3 = vload(R1, base + 2 * LANES), vload(R1, base + 3 * LANES)
                c = vsplat(C1[s, k])
                a0, a1, a2, a3 = vfma(c, r0, a0), vfma(c, r1, a1), vfma(c, r2, a2), vfma(c, r3, a3)
                c = vsplat(C1[s, k2])
                b0, b1, b2, b3 = vfma(c, r0, b0), vfma(c, r1, b1), vfma(c, r2, b2), vfma(c, r3, b3)
                r0, r1 = vload(R2, base), vload(R2, base + LANES)
                r2, r3 = vload(R2, base + 2 * LANES), vload(R2, base + 3 * LANES)
                c = vsplat(C2[s, k])
                e0, e1, e2, e3 = vfma(c, r0, e0), vfma(c, r1, e1), vfma(c, r2, e2), vfma(c, r3, e3)
                c = vsplat(C2[s, k2])
                g0, g1, g2, g3 = vfma(c, r0, g0), vfma(c, r1, g1), vfma(c, r2, g2), vfma(c, r3, g3)
            w = t0 + u
            mean[k] += _dot4(a0, a1, a2, a3, Tw, k * S2 + w)
            second[k] += _dot4(e0, e1, e2, e3, Tw2, k * S2 + w)
            if k2 != k:
                mean[k2] += _dot4(b0, b1, b2, b3, Tw, k2 * S2 + w)
                second[k2] += _dot4(g0, g1, g2, g3, Tw2, k2 * S2 + w)


@njit(**_JIT)
def _softmax_contract_scalar(T1, T2T, T2w, T2w2, P1, variance, G, G2, D, R, mean, second):
    """:func:`_softmax_contract` for fewer than ``LANES`` low-half masks."""
    S1, K = T1.shape
    S2 = T2T.shape[1]
    for k in range(K):
        for t in range(S2):
            G[k, t] = 0.0
            G2[k, t] = 0.0
    for s in range(S1):
        for t in range(S2):
            D[t] = T1[s, 0] * T2T[0, t]
        for k in range(1, K):
            f = T1[s, k]
            for t in range(S2):
                D[t] += f * T2T[k, t]
        for t in range(S2):
            R[t] = 1.0 / D[t]
        for k in range(K):
            f = P1[s] * T1[s, k]
            for t in range(S2):
                G[k, t] += f * R[t]
        if variance:
            for t in range(S2):
                R[t] *= R[t]
            for k in range(K):
                f = P1[s] * T1[s, k] * T1[s, k]
                for t in range(S2):
                    G2[k, t] += f * R[t]
    for k in range(K):
        m = 0.0
        m2 = 0.0
        for t in range(S2):
            m += T2w[k, t] * G[k, t]
            m2 += T2w2[k, t] * G2[k, t]
        mean[k] = m
        second[k] = m2


@njit(**_JIT)
def _centred_from_tables(T1, T2T, P1, P2, mean, var, D):
    """Two-pass ``E[(y - E y)^2]`` with ``y = T1[s] T2[t] / D[s, t]`` formed.

    Vectorised over ``t`` when ``LANES`` divides the low-half masks: one
    reciprocal per subnetwork, then a fused multiply-add per class.
    """
    S1, K = T1.shape
    S2 = T2T.shape[1]
    for k in range(K):
        var[k] = 0.0
    if S2 % LANES != 0:
        inner = np.empty(K)
        for s in range(S1):
            for t in range(S2):
                D[t] = 0.0
            for k in range(K):
                for t in range(S2):
                    D[t] += T1[s, k] * T2T[k, t]
            for k in range(K):
                acc = 0.0
                for t in range(S2):
                    d = T1[s, k] * T2T[k, t] / D[t] - mean[k]
                    acc += P2[t] * d * d
                inner[k] = acc
            for k in range(K):
                var[k] += P1[s] * inner[k]
        return
    G = np.zeros(K * LANES)
    step = 4 * LANES
    for s in range(S1 if S2 % step == 0 else 0):
        # Four denominators' chains at once (one chain waits on FMA latency); each
        # class's sum still takes the t-vectors in order: the same bits as below.
        p1 = vsplat(P1[s])
        for t in range(0, S2, step):
            f = vsplat(T1[s, 0])
            d0, d1 = vmul(f, vload(T2T, t)), vmul(f, vload(T2T, t + LANES))
            d2, d3 = vmul(f, vload(T2T, t + 2 * LANES)), vmul(f, vload(T2T, t + 3 * LANES))
            for k in range(1, K):
                f = vsplat(T1[s, k])
                w = k * S2 + t
                d0, d1 = vfma(f, vload(T2T, w), d0), vfma(f, vload(T2T, w + LANES), d1)
                d2 = vfma(f, vload(T2T, w + 2 * LANES), d2)
                d3 = vfma(f, vload(T2T, w + 3 * LANES), d3)
            one = vsplat(1.0)
            r0, r1, r2, r3 = vdiv(one, d0), vdiv(one, d1), vdiv(one, d2), vdiv(one, d3)
            q0, q1 = vmul(p1, vload(P2, t)), vmul(p1, vload(P2, t + LANES))
            q2, q3 = vmul(p1, vload(P2, t + 2 * LANES)), vmul(p1, vload(P2, t + 3 * LANES))
            for k in range(K):
                c, m = vsplat(T1[s, k]), vsplat(-mean[k])
                w = k * S2 + t
                g = vload(G, k * LANES)
                y = vfma(vmul(c, vload(T2T, w)), r0, m)
                g = vfma(vmul(q0, y), y, g)
                y = vfma(vmul(c, vload(T2T, w + LANES)), r1, m)
                g = vfma(vmul(q1, y), y, g)
                y = vfma(vmul(c, vload(T2T, w + 2 * LANES)), r2, m)
                g = vfma(vmul(q2, y), y, g)
                y = vfma(vmul(c, vload(T2T, w + 3 * LANES)), r3, m)
                vstore(G, k * LANES, vfma(vmul(q3, y), y, g))
    for s in range(S1 if S2 % step != 0 else 0):
        for t in range(0, S2, LANES):
            d = vmul(vsplat(T1[s, 0]), vload(T2T, t))
            for k in range(1, K):
                d = vfma(vsplat(T1[s, k]), vload(T2T, k * S2 + t), d)
            r = vdiv(vsplat(1.0), d)
            p2 = vmul(vsplat(P1[s]), vload(P2, t))
            for k in range(K):
                y = vfma(vmul(vsplat(T1[s, k]), vload(T2T, k * S2 + t)), r, vsplat(-mean[k]))
                vstore(G, k * LANES, vfma(vmul(p2, y), y, vload(G, k * LANES)))
    for k in range(K):
        var[k] = vsum(vload(G, k * LANES))


@njit(**_JIT)
def _probs(n, q):
    """Probability of each mask of n units by its popcount, ``(2**n,)``."""
    by_count = np.empty(n + 1)
    for kept in range(n + 1):
        by_count[kept] = math.exp(kept * math.log(q) + (n - kept) * math.log1p(-q))
    P = np.empty(1 << n)
    for s in range(1 << n):
        count, x = 0, s
        while x:
            count += x & 1
            x >>= 1
        P[s] = by_count[count]
    return P


@njit(**_JIT)
def _sigmoid_pairs(A, sW, bias, q, variance, mean, var):
    """Mean (and centred variance) of independent sigmoid units over the inner masks."""
    B, n = A.shape
    K = sW.shape[1]
    n1 = n // 2
    S1, S2 = 1 << n1, 1 << (n - n1)
    P1, P2 = _probs(n1, q), _probs(n - n1, q)
    Z1, Z2 = np.empty(S1), np.empty(S2)
    a, c = np.empty(S1), np.empty(S2)
    Y = np.empty((S1, S2))
    G = np.empty(S2)
    for b in range(B):
        for k in range(K):
            Z1[0] = bias[k]
            Z2[0] = 0.0
            for j in range(n):
                v = A[b, j] * sW[j, k]
                if j < n1:
                    h = 1 << j
                    for s in range(h):
                        Z1[s + h] = Z1[s] + v
                else:
                    h = 1 << (j - n1)
                    for t in range(h):
                        Z2[t + h] = Z2[t] + v
            unsafe = False
            for s in range(S1):
                unsafe = unsafe or abs(Z1[s]) > 350
                a[s] = math.exp(-Z1[s])
            for t in range(S2):
                unsafe = unsafe or abs(Z2[t]) > 350
                c[t] = math.exp(-Z2[t])
            if unsafe:
                for s in range(S1):
                    for t in range(S2):
                        Y[s, t] = _sigmoid1(Z1[s] + Z2[t])
            else:
                for s in range(S1):
                    f = a[s]
                    for t in range(S2):
                        Y[s, t] = 1.0 / (1.0 + f * c[t])
            for t in range(S2):
                G[t] = 0.0
            for s in range(S1):
                f = P1[s]
                for t in range(S2):
                    G[t] += f * Y[s, t]
            m = 0.0
            for t in range(S2):
                m += P2[t] * G[t]
            mean[b, k] = m
            if variance:
                for t in range(S2):
                    G[t] = 0.0
                for s in range(S1):
                    f = P1[s]
                    for t in range(S2):
                        d = Y[s, t] - m
                        G[t] += f * d * d
                v = 0.0
                for t in range(S2):
                    v += P2[t] * G[t]
                var[b, k] = v


# ---------------------------------------------------------------------------
# Python side: masks to multipliers, the entry points of ``kernels``.


def _first_changed(mults: dict, n_masks: int, L: int):
    """Per mask, the first layer whose multipliers differ from the previous mask's
    (``L``: none), and the units of that layer that changed: ``chg[i, 0]`` of
    them, ``chg[i, 1:]`` their indices."""
    first = np.full(n_masks, L, dtype=np.int64)
    width = max((m.shape[1] for m in mults.values()), default=0)
    chg = np.zeros((n_masks, width + 1), dtype=np.int64)
    for l in sorted(mults, reverse=True):
        m = mults[l]
        differs = m[1:] != m[:-1]
        rows = np.flatnonzero(differs.any(axis=1)) + 1
        first[rows] = l
        chg[rows, 0] = differs[rows - 1].sum(axis=1)
        r, j = np.nonzero(differs[rows - 1])
        pos = np.arange(r.size) - np.repeat(np.cumsum(chg[rows, 0]) - chg[rows, 0], chg[rows, 0])
        chg[rows[r], 1 + pos] = j
    if n_masks:
        first[0] = 0
    return first, chg


def _flat_multipliers(mults: dict, n_masks: int, L: int):
    layers = sorted(mults)
    moff = np.full(L, -1, dtype=np.int64)
    start = 0
    for l in layers:
        moff[l] = start
        start += mults[l].shape[1]
    M = (np.concatenate([np.asarray(mults[l], dtype=np.float64) for l in layers], axis=1)
         if layers else np.zeros((n_masks, 0)))
    return np.ascontiguousarray(M), moff


def _west_ratios(w: np.ndarray) -> np.ndarray:
    return w / np.cumsum(w)


def _half_indices(m: np.ndarray):
    """Each row's two halves as integers (unit j of a half is bit j)."""
    kept = m != 0
    n1 = m.shape[1] // 2
    S = kept[:, :n1].astype(np.int64) @ (1 << np.arange(n1, dtype=np.int64))
    T = kept[:, n1:].astype(np.int64) @ (1 << np.arange(m.shape[1] - n1, dtype=np.int64))
    return S, T


def generic_task(net: MLP, X: np.ndarray, multipliers_of):
    """The compiled chunk task of the generic path (see ``reference.generic_task``)."""
    packed = _pack(net)
    X = np.require(X, np.float64, ["C", "W"])  # one specialisation: see conditional_moments
    L = net.n_layers
    output = _OUTPUT_CODES[net.output]
    # One subnetwork (e.g. keep_prob = 1 everywhere) gains nothing from the
    # kernel; numpy's forward pass makes it bit-identical to the scaled pass.
    single = reference.generic_task(net, X, multipliers_of)

    def task(chunk) -> Moments:
        masks, weights = chunk
        w = np.asarray(weights, dtype=np.float64)
        keep = w > 0
        acc = Moments()
        if not keep.any():
            return acc
        if not keep.all():
            masks, w = masks[keep], w[keep]
        c = w.size
        if c == 1:
            return single((masks, w))
        mults = {l: np.asarray(m, dtype=np.float64) for l, m in multipliers_of(masks).items()}
        M, moff = _flat_multipliers(mults, c, L)
        first, chg = _first_changed(mults, c, L)
        tab, tabc, S, T = -1, np.zeros(1), np.zeros(1, np.int64), np.zeros(1, np.int64)
        if mults:
            k = max(mults)
            m = mults[k]
            kept_value = m.max(axis=0)
            n_k = m.shape[1]
            runs = 1 + int(np.count_nonzero(first[1:] < k))
            table_cost = runs * (2 ** (n_k // 2) + 2 ** (n_k - n_k // 2))
            if (2 <= n_k <= _MAX_TABLE_UNITS and table_cost < c * n_k
                    and np.all((m == 0) | (m == kept_value))):
                tab, tabc = k, np.ascontiguousarray(kept_value)
                S, T = _half_indices(m)
        # The rank-one test of _advance, on the first changed layer's width.
        changed = first[1:] < L
        widths = packed[4][first[1:][changed]]
        dense = bool(2 * np.count_nonzero(4 * chg[1:, 0][changed] > widths) > c)
        mean, m2, mean_z = _generic_moments(*packed, output, X, M, moff, first, chg, tab, tabc,
                                            S, T, _west_ratios(w), w, dense)
        acc.weight, acc.mean, acc.m2, acc.mean_logits = float(w.sum()), mean, m2, mean_z
        return acc

    return task


def _prefix_inputs(net: MLP, plan: _Plan, masks: np.ndarray):
    L = net.n_layers
    mults = _outer_multipliers(net, plan, masks)
    M, moff = _flat_multipliers(mults, masks.shape[0], L)
    return (M, moff, *_first_changed(mults, masks.shape[0], L))


def _last_hidden(net: MLP, plan: _Plan, X: np.ndarray, masks: np.ndarray) -> np.ndarray:
    if plan.prefix is None:
        return np.broadcast_to(X, (masks.shape[0],) + X.shape)
    M, moff, first, chg = _prefix_inputs(net, plan, masks)
    return _prefix_acts(*_pack(net), np.require(X, np.float64, ["C", "W"]), M, moff, first,
                        chg)


def conditional_moments(net: MLP, plan: _Plan, X: np.ndarray, masks: np.ndarray, *,
                        arithmetic: bool = True, variance: bool = True):
    """Compiled ``reference.conditional_moments`` (same parameters and results).

    Above :data:`~ensemble_study.kernels.plan.COMPILED_MAX_INNER` inner
    masks the compiled kernels' two arrays of ``2**width`` doubles per pair
    (1 GiB at 26 units) would not be bounded by any chunk size: such blocks
    run on the chunked numpy kernels instead (tables of ``2**(width/2)`` rows,
    tiles of a fixed size).
    """
    if net.output != "identity" and arithmetic and 2**plan.n_inner > COMPILED_MAX_INNER:
        return _reference_conditional_moments(net, plan, X, masks, arithmetic=arithmetic,
                                              variance=variance, pairs_per_block=1)
    W, b = net.weights[-1], net.biases[-1]
    scaled_W = plan.inner_scale * W
    q = plan.inner_q
    A = _last_hidden(net, plan, X, masks)
    c, n, h = A.shape
    mean_logits = q * (A @ scaled_W) + b
    if net.output == "identity" or not arithmetic:
        within = None
        if variance and net.output == "identity":
            within = (q * (1 - q)) * ((A * A) @ (scaled_W * scaled_W))
        return mean_logits, within, mean_logits
    K = W.shape[1]
    # Writable C arrays only: numba compiles one specialisation per read-only
    # flag, and a read-only bias (the network's own) tripled the compile cost.
    flat = np.require(A.reshape(c * n, h), np.float64, ["C", "W"])
    mean = np.empty((c * n, K))
    var = np.empty((c * n, K))
    kernel = _sigmoid_pairs if net.output == "sigmoid" else _softmax_pairs
    kernel(flat, np.require(scaled_W, np.float64, ["C", "W"]), np.array(b, dtype=np.float64), q,
           variance, mean, var)
    shape = (c, n, K)
    return mean.reshape(shape), (var.reshape(shape) if variance else None), mean_logits


def shortcut_task(net: MLP, plan: _Plan, X: np.ndarray, arithmetic: bool, variance: bool):
    """The compiled chunk task of the shortcut path: ``(masks, log_probs) -> Moments``."""
    X = np.require(X, np.float64, ["C", "W"])
    analytic = net.output == "identity" or not arithmetic

    def task(chunk) -> Moments:
        masks, log_probs = chunk
        w = np.exp(log_probs)
        acc = Moments()
        if not analytic:
            mean, within, mean_logits = conditional_moments(
                net, plan, X, masks, arithmetic=arithmetic, variance=variance)
            acc.add(w, mean, mean_logits, within)
            return acc
        keep = w > 0
        if not keep.any():
            return acc
        masks, w = masks[keep], w[keep]
        acc.weight = float(w.sum())
        acc.mean, acc.mean_logits, acc.m2 = _affine_moments(net, plan, X, masks, w, variance)
        return acc

    return task


def _gray_order(c: int) -> np.ndarray:
    """Gray-code order of ``c`` consecutive masks when ``c`` is a power of two.

    A chunk of ``2^b`` aligned masks in counting order differs only in its
    last ``b`` free units, so visiting ``i ^ (i >> 1)`` changes one unit per
    step. Otherwise (a short last chunk), counting order.
    """
    i = np.arange(c)
    return i ^ (i >> 1) if c & (c - 1) == 0 else i


def _affine_moments(net, plan, X, masks, w, variance):
    """Mean, mean logits and co-moment of an output affine in activation L-1.

    ``E[z | o] = q a(o) @ sW + b`` and ``Var[z | o] = q (1 - q) a(o)^2 @ sW^2``,
    so over the outer masks ``o`` only the mean ``mu`` and the centred
    co-moment ``C`` of ``a`` are needed: the spread of ``E[z | o]`` is
    ``q^2 sW' C sW`` and the within part ``q (1 - q) (diag C + W mu^2) @ sW^2``.
    """
    sW = plan.inner_scale * net.weights[-1]
    q, b = plan.inner_q, net.biases[-1]
    if plan.prefix is None:
        mu, C = X, np.zeros((X.shape[0], X.shape[1], X.shape[1]))
    else:
        # Gray-code order: consecutive masks then differ in one unit (one rank-one step).
        order = _gray_order(masks.shape[0])
        masks, w = masks[order], w[order]
        M, moff, first, chg = _prefix_inputs(net, plan, masks)
        mu, C = _outer_moments(*_pack(net), X, M, moff, first, chg, _west_ratios(w), w,
                               variance)
    mean = q * (mu @ sW) + b
    if not variance:
        return mean, mean, np.zeros_like(mean)
    m2 = q * q * ((C @ sW) * sW).sum(axis=1)  # sW' C sW per example, diagonal only
    if net.output == "identity":
        second = np.einsum("nii->ni", C) + w.sum() * mu * mu
        m2 += (q * (1 - q)) * (second @ (sW * sW))
    return mean, mean, m2
