"""The numpy reference of the exact kernels behind :func:`~ensemble_study.exact_ensemble`.

``compiled`` implements the same algorithms in numba and is the default;
``ENSEMBLE_STUDY_KERNELS=numpy`` runs this module instead (see
``ensemble_study.kernels``). What follows describes both.

Let ``k`` be the last dropped layer with ``keep_prob < 1`` (the *inner*
layer) and suppose it feeds the output layer directly (``k == L - 1``; this
includes input dropout in a network with no hidden layer). Then, for a fixed
mask of the other dropped layers (an *outer* mask) and a fixed example, the
logits are affine in the inner mask ``m``::

    z(m) = b + sum_j m_j v_j,   v_j = c * a_j * W[L-1][j, :]

with ``a`` the activation of layer ``L-1`` and ``c = 1`` (vanilla) or
``1 / keep_prob`` (inverted). This gives exact shortcuts (DESIGN fact 9):

* ``E[z] = b + q sum_j v_j`` and ``Var(z) = q (1 - q) sum_j v_j**2``
  (independent Bernoulli units): the identity output's mean and variance and
  the NWGM (``softmax(E[z])``, ``sigmoid(E[z])``) need only the outer masks.
* ``exp(z_i(m)) = exp(b_i) prod_j exp(m_j v_ji)``. Split the inner units into
  two halves ``(s, t)``; the tables ``T1[s, i]``, ``T2[t, i]`` of the two
  halves' products give every denominator as one matrix product
  ``D = T1 @ T2.T`` and the softmax mean as a second contraction,
  ``E[y_i] = sum_s P1[s] T1[s, i] sum_t P2[t] T2[t, i] / D[s, t]``, and
  ``E[y_i^2]`` likewise with ``1 / D**2``: a few tens of flops per
  subnetwork and no exp. Each unit's factor is shifted by its largest class
  contribution, so every table entry is <= 1 (softmax is unchanged by a
  shift common to the classes of one subnetwork).
* a sigmoid unit is ``1 / (1 + a[s] c[t])`` with ``a``, ``c`` the two
  halves' products of ``exp(-m_j v_j)``: an outer product and a reciprocal
  per subnetwork; its outputs are formed, so its variance is centred.

Guards keep this exact to float precision:

* softmax underflow: when some table product could fall below
  ``exp(-340)`` (a logit spread of a few hundred inside one subnetwork),
  ``1 / D**2`` could overflow or an entry lose precision; that (outer mask,
  example) pair is recomputed with one max-shifted softmax per subnetwork;
* softmax cancellation: the variance ``E[y^2] - E[y]^2`` of one pair loses
  ``log10(E[y^2] / Var)`` digits; when that ratio exceeds ``1e4`` the pair's
  variance is recomputed centred, from the tables (no exp);
* sigmoid overflow: where a half's logit passes +-350, ``sigmoid(z)`` is
  evaluated directly.

A pair's inner block is tiled by rows of ``T1`` when it is larger than
``_BLOCK_ELEMENTS``, so memory stays bounded for a wide last layer.

Everything else takes the generic path: every joint mask's full forward
pass, in chunks. That covers a last dropped layer below ``L - 1``
(including input dropout under hidden layers, where a nonlinearity sits
between the mask and the output) and configs whose dropped layers all have
``keep_prob = 1``. Statistics are accumulated in float64, hierarchically: per
pair (a sum over the inner block), per chunk of outer masks, then merged
across chunks with Chan et al.'s pairwise update. Chunks run on a few
threads with BLAS held to one thread each (the matrix products are small;
numpy releases the GIL inside them), and are merged in chunk order, so the
result does not depend on the number of threads.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from ..dropout import DropoutConfig
from ..masks import enumerate_masks
from ..network import ACTIVATION_FUNCTIONS, MLP, OUTPUT_FUNCTIONS, forward, sigmoid

# Elements of one (pair x inner block) array in the softmax kernel (4 MiB). Smaller
# blocks were measured slower, and slower still on two threads (more numpy calls
# per subnetwork: Python overhead and GIL hand-offs); 2**20 gained nothing more.
_BLOCK_ELEMENTS = 2**19
# Inner blocks of more masks than this run on these chunked kernels even when
# the compiled ones are selected: the compiled softmax and sigmoid kernels hold
# two arrays of 2**width doubles per (outer mask, example) pair, 64 MiB at
# 2**22, which no chunk size bounds (1.2 GB at 26 units, 4.3 GB at 28).
COMPILED_MAX_INNER = 2**22
# Below exp(-340) a table product could make 1 / D**2 overflow (e^680 < 1.8e308).
_MIN_LOG_FACTOR = -340.0
# Recompute a pair directly when E[y^2] / Var exceeds this (cancellation).
_MAX_CANCELLATION = 1e4


def default_threads() -> int:
    """Threads used over chunks: the CPUs this process may run on, at most 2.

    The environment variable ``ENSEMBLE_STUDY_THREADS`` (a positive integer)
    overrides it; the study executor sets it to 1 in its worker processes,
    which already share the cores between them. Results never depend on it.
    """
    env = os.environ.get("ENSEMBLE_STUDY_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"ENSEMBLE_STUDY_THREADS must be a positive integer; got {env!r}")
        return int(env)
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(2, n))


class Moments:
    """Weighted mean and spread of batches of outputs, merged pairwise.

    Each batch contributes its weighted mean and its weighted sum of squared
    deviations (plus, optionally, a within-member variance: each member is
    then itself a group, e.g. an inner block summarised analytically).
    Batches are merged with Chan et al.'s update, exact in exact arithmetic
    and free of the cancellation of ``E[y^2] - E[y]^2``.
    """

    def __init__(self):
        self.weight = 0.0
        self.mean = self.m2 = self.mean_logits = None

    def add(self, w, y, z, within=None) -> None:
        """Add a batch: weights ``(c,)``, outputs and logits ``(c, n, k)``.

        ``within`` (``(c, n, k)``), if given, is each member's own variance.
        """
        wc = float(w.sum())
        if wc == 0.0:
            return
        batch = Moments()
        batch.weight = wc
        batch.mean = np.tensordot(w, y, axes=1) / wc
        batch.m2 = np.tensordot(w, (y - batch.mean) ** 2, axes=1)
        if within is not None:
            batch.m2 += np.tensordot(w, within, axes=1)
        batch.mean_logits = np.tensordot(w, z, axes=1) / wc
        self.merge(batch)

    def merge(self, other: Moments) -> None:
        """Merge another accumulator into this one."""
        if other.mean is None:
            return
        if self.mean is None:
            self.weight, self.mean, self.m2, self.mean_logits = (
                other.weight, other.mean, other.m2, other.mean_logits)
            return
        total = self.weight + other.weight
        share = other.weight / total
        delta = other.mean - self.mean
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + other.m2 + delta**2 * (self.weight * share)
        self.mean_logits = self.mean_logits + (other.mean_logits - self.mean_logits) * share
        self.weight = total


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    # Built once: inspecting the loaded libraries costs ~0.2 ms, a limit then 3 us.
    return ThreadpoolController()


def run_chunks(task: Callable, chunks: Iterable, n_threads: int, progress=None, *,
               limit_blas: bool = True) -> Moments:
    """``task(chunk) -> Moments`` over every chunk, merged in chunk order.

    At most ``2 * n_threads`` chunks are in flight, so memory is bounded by
    the chunk size whatever the number of chunks. BLAS is held to one thread
    (threadpoolctl) unless ``limit_blas`` is False: the products are small,
    and on them BLAS threads were measured to lose, up to 50x on a busy
    machine, against one BLAS thread inside threads over chunks.
    """
    acc = Moments()

    def done(result):
        acc.merge(result)
        if progress is not None:
            progress(1)

    limits = (_blas_controller().limit(limits=1, user_api="blas") if limit_blas
              else nullcontext())
    with limits:
        if n_threads <= 1:
            for chunk in chunks:
                done(task(chunk))
            return acc
        with ThreadPoolExecutor(n_threads) as pool:
            pending = deque()
            for chunk in chunks:
                pending.append(pool.submit(task, chunk))
                if len(pending) >= 2 * n_threads:
                    done(pending.popleft().result())
            while pending:
                done(pending.popleft().result())
    return acc


# ---------------------------------------------------------------------------
# Inner block: moments over the inner layer's mask for a batch of pairs.


@lru_cache(maxsize=64)
def _bits(n: int) -> np.ndarray:
    """Every 0/1 row of length n in binary counting order, shape ``(2**n, n)``."""
    bits = ((np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)) & 1).astype(np.float64)
    bits.setflags(write=False)
    return bits


@lru_cache(maxsize=64)
def _mask_probs(n: int, q: float) -> np.ndarray:
    """Probability of mask ``s`` of n units of keep_prob q, shape ``(2**n,)``.

    It depends only on how many units ``s`` keeps (its popcount), so it fits
    both :func:`_bits` and :func:`_product_table`, whatever their bit order.
    """
    kept = np.arange(n + 1)
    by_count = np.exp(kept * math.log(q) + (n - kept) * math.log1p(-q))
    probs = by_count[_bits(n).sum(axis=1).astype(np.int64)]
    probs.setflags(write=False)
    return probs


def _product_table(E: np.ndarray, out: np.ndarray, scratch: np.ndarray,
                   first=1.0) -> np.ndarray:
    """Products of every subset of factors, by doubling (no exp).

    ``E`` has shape ``(B, m, K)``; entry ``s`` of ``out``, shape
    ``(B, 2**m, K)``, becomes ``first`` times the product of the factors
    ``E[:, j]`` over the set bits ``j`` of ``s``. The doubling runs in
    ``scratch``, shape ``(2**m, B, K)``, where each step is one contiguous
    block (measured 2x faster than strided steps, transposing copy included).
    """
    scratch[0] = first
    for j in range(E.shape[1]):
        np.multiply(scratch[:2**j], E[:, j], out=scratch[2**j:2**(j + 1)])
    np.copyto(out, scratch.transpose(1, 0, 2))
    return out


_local = threading.local()


def _workspace(B: int, rows: int, S1: int, S2: int, K: int) -> dict:
    """Per-thread scratch arrays of the softmax kernel, reused across blocks.

    Fresh multi-megabyte arrays for every block cost page faults that were
    measured to double the kernel's time.
    """
    ws = getattr(_local, "ws", None)
    if ws is None or ws["key"] != (rows, S1, S2, K) or ws["B"] < B:
        ws = {"key": (rows, S1, S2, K), "B": B}
        for name, shape in (("T1", (S1, K)), ("T2", (S2, K)), ("T2w", (S2, K)),
                            ("T2w2", (S2, K)), ("M", (rows, K)), ("R", (rows, S2))):
            ws[name] = np.empty((B,) + shape)
        ws["T1s"], ws["T2s"] = np.empty((S1, B, K)), np.empty((S2, B, K))
        _local.ws = ws
    return ws


def _scratch(*shape) -> np.ndarray:
    """A per-thread scratch array of at least this shape (see :func:`_workspace`)."""
    buf = getattr(_local, "scratch", None)
    if buf is None or buf.size < math.prod(shape):
        buf = _local.scratch = np.empty(math.prod(shape))
    return buf[:math.prod(shape)].reshape(shape)


def _tiles(B: int, S1: int, S2: int, width: int):
    """Split a ``(B, S1, S2, width)`` computation into pieces of at most about
    ``_BLOCK_ELEMENTS`` elements: whole pairs when they fit, else rows of one
    pair. Rows come in powers of two, so every piece has the same shape.

    Yields ``(pairs, rows)`` slices.
    """
    per_pair = S1 * S2 * width
    if per_pair <= _BLOCK_ELEMENTS:
        step = _BLOCK_ELEMENTS // per_pair
        for b0 in range(0, B, step):
            yield slice(b0, b0 + step), slice(0, S1)
        return
    rows = 2 ** int(math.log2(max(1, _BLOCK_ELEMENTS // (S2 * width))))
    for b0 in range(B):
        for s0 in range(0, S1, rows):
            yield slice(b0, b0 + 1), slice(s0, s0 + rows)


def _direct_block(V: np.ndarray, bias: np.ndarray, q: float, variance: bool):
    """Softmax mean and variance over every inner mask, one softmax each.

    The path for pairs whose tables could underflow: each subnetwork's logits
    ``Z1[s] + Z2[t] + bias`` (the two halves' sums) are shifted by their own
    maximum. Two passes: the mean, then the centred variance. ``V``
    ``(F, n, K)``, ``bias`` ``(F, K)``; returns mean and variance ``(F, K)``.
    """
    F, n, K = V.shape
    n1 = n // 2
    P1, P2 = _mask_probs(n1, q), _mask_probs(n - n1, q)
    Z1 = np.matmul(_bits(n1), V[:, :n1]) + bias[:, None, :]
    Z2 = np.matmul(_bits(n - n1), V[:, n1:])
    mean, var = np.zeros((F, K)), (np.zeros((F, K)) if variance else None)
    for centre in ((None, mean),) + (((mean, var),) if variance else ()):
        c, into = centre
        for b, r in _tiles(F, len(P1), len(P2), K):
            z = Z1[b, r, None, :] + Z2[b, None, :, :]
            z -= z.max(axis=-1, keepdims=True)
            y = np.exp(z, out=z)
            y /= y.sum(axis=-1, keepdims=True)
            if c is not None:
                y -= c[b, None, None, :]
                y *= y
            into[b] += np.matmul(P1[r], np.matmul(P2, y))
    return mean, var


def _softmax_block(V: np.ndarray, bias: np.ndarray, q: float, variance: bool, shifted=None):
    """Softmax mean (and variance) over the inner masks of a batch of pairs.

    Parameters
    ----------
    V : ndarray, shape (B, n, K)
        Per-unit logit contributions ``v_j`` of each pair.
    bias : ndarray, shape (K,) or (B, K)
    q : float
        Keep probability of the inner units.
    variance : bool
    shifted : ndarray, shape (B, n, K), optional
        ``V - V.max(axis=2, keepdims=True)`` if the caller has it cheaper.

    Returns
    -------
    mean, var : ndarray, shape (B, K) (var is None unless ``variance``)
    """
    B, n, K = V.shape
    n1 = n // 2
    S1, S2 = 2**n1, 2**(n - n1)
    P1, P2 = _mask_probs(n1, q), _mask_probs(n - n1, q)
    bias = np.broadcast_to(bias, (B, K))
    # Rows of T1 per product: all of them unless one pair's block is too big.
    rows = S1 if S1 * S2 <= _BLOCK_ELEMENTS else next(_tiles(1, S1, S2, 1))[1].stop
    ws = _workspace(B, rows, S1, S2, K)
    with np.errstate(all="ignore"):  # guarded pairs are recomputed below
        if shifted is None:
            shifted = V - V.max(axis=2, keepdims=True)
        log_bias = bias - bias.max(axis=-1, keepdims=True)
        # The smallest log of any table product is with every unit kept.
        underflow = (np.matmul(np.ones(n), shifted) + log_bias).min(axis=1) < _MIN_LOG_FACTOR
        E = np.exp(shifted)
        T1 = _product_table(E[:, :n1], ws["T1"][:B], ws["T1s"][:, :B], np.exp(log_bias))
        T2 = _product_table(E[:, n1:], ws["T2"][:B], ws["T2s"][:, :B])
        if variance:
            T2w = np.multiply(T2, P2[:, None], out=ws["T2w"][:B])
            T2w2 = np.multiply(T2w, T2, out=ws["T2w2"][:B])
        mean = np.zeros((B, K))
        second = np.zeros((B, K)) if variance else None
        for s0 in range(0, S1, rows):
            t1, p1 = T1[:, s0:s0 + rows], P1[s0:s0 + rows]
            R = np.matmul(t1, T2.transpose(0, 2, 1), out=ws["R"][:B])  # D
            if variance:
                np.reciprocal(R, out=R)
                M = np.matmul(R, T2w, out=ws["M"][:B])
            else:  # P2 / D: the weights ride on the reciprocal's pass
                M = np.matmul(np.divide(P2, R, out=R), T2, out=ws["M"][:B])
            M *= t1
            mean += np.matmul(p1, M)
            if variance:
                np.matmul(np.multiply(R, R, out=R), T2w2, out=M)
                M *= t1
                M *= t1
                second += np.matmul(p1, M)
        var = None
        if variance:
            var = second - mean**2
            cancel = np.flatnonzero(~underflow & ~np.all(var * _MAX_CANCELLATION >= second, axis=1))
            if cancel.size:
                var[cancel] = _centred_variance(T1[cancel], T2[cancel], P1, P2, mean[cancel])
    redo = np.flatnonzero(underflow)
    if redo.size:
        m, v = _direct_block(V[redo], bias[redo], q, variance)
        mean[redo] = m
        if variance:
            var[redo] = v
    return mean, var


def _sigmoid_block(V: np.ndarray, bias: np.ndarray, q: float, variance: bool):
    """Mean (and variance) of independent sigmoid units over the inner masks.

    ``y = 1 / (1 + exp(-z))`` and ``exp(-z) = a[s] * c[t]``, the two halves'
    factors ``exp(-Z1[s])`` (bias included) and ``exp(-Z2[t])``: one outer
    product, an add and a reciprocal per subnetwork, no exp. The subnetworks'
    outputs are formed, so the variance is the centred two-pass one. Where a
    half's logit passes +-350 (a product could overflow), ``sigmoid(z)`` is
    evaluated instead.

    ``V`` ``(B, n, K)``, ``bias`` ``(K,)``; returns mean and variance ``(B, K)``.
    """
    B, n, K = V.shape
    F, n1 = B * K, n // 2
    v = V.transpose(0, 2, 1).reshape(F, n)
    P1, P2 = _mask_probs(n1, q), _mask_probs(n - n1, q)
    Z1 = np.matmul(v[:, :n1], _bits(n1).T) + np.tile(bias, B)[:, None]  # (F, S1)
    Z2 = np.matmul(v[:, n1:], _bits(n - n1).T)  # (F, S2)
    with np.errstate(over="ignore"):
        a, c = np.exp(-Z1), np.exp(-Z2)
    unsafe = (np.abs(Z1).max(axis=1) > 350) | (np.abs(Z2).max(axis=1) > 350)

    tiles = list(_tiles(F, len(P1), len(P2), 1))
    b0, r0 = tiles[0]
    scratch = _scratch(len(range(F)[b0]), len(range(len(P1))[r0]), len(P2))

    def outputs(b, r):
        y = scratch[:len(range(F)[b])]
        with np.errstate(over="ignore", invalid="ignore"):  # unsafe rows are replaced
            np.multiply(a[b, r, None], c[b, None, :], out=y)
            y += 1.0
            np.reciprocal(y, out=y)
        bad = np.flatnonzero(unsafe[b])
        if bad.size:
            y[bad] = sigmoid(Z1[b][bad][:, r, None] + Z2[b][bad][:, None, :])
        return y

    def expect(y, r):  # sum over (s, t) of P1[s] P2[t] y[:, s, t]
        return np.matmul(np.matmul(y, P2), P1[r])

    mean = np.zeros(F)
    var = np.zeros(F) if variance else None
    whole = len(P1) * len(P2) <= _BLOCK_ELEMENTS  # each tile holds whole pairs
    for b, r in tiles:
        y = outputs(b, r)
        mean[b] += expect(y, r)
        if variance and whole:
            y -= mean[b, None, None]
            var[b] += expect(np.square(y, out=y), r)
    if variance and not whole:
        for b, r in tiles:
            y = outputs(b, r)
            y -= mean[b, None, None]
            var[b] += expect(np.square(y, out=y), r)
    return mean.reshape(B, K), (var.reshape(B, K) if variance else None)


def _centred_variance(T1, T2, P1, P2, mean) -> np.ndarray:
    """The two-pass ``E[(y - E y)^2]`` from the tables, shape ``(F, K)``.

    Each subnetwork's output ``y = T1 * T2 / D`` is formed (products, no
    exp), so this costs a few flops per subnetwork and class.
    """
    F, S1, K = T1.shape
    var = np.zeros((F, K))
    for b, r in _tiles(F, S1, T2.shape[1], K):
        t1, t2 = T1[b, r], T2[b]
        y = t1[:, :, None, :] * t2[:, None, :, :]
        y /= np.matmul(t1, t2.transpose(0, 2, 1))[..., None]
        y -= mean[b, None, None, :]
        y *= y
        var[b] += np.matmul(P1[r], np.matmul(P2, y))
    return var


# ---------------------------------------------------------------------------
# The shortcut path.


@dataclass(frozen=True)
class _Plan:
    """How the shortcut path splits the dropped layers."""

    inner_q: float
    inner_scale: float  # c: 1 (vanilla) or 1 / q (inverted)
    outer: DropoutConfig | None  # the other dropped layers (None: none)
    outer_q: np.ndarray  # keep_prob of every outer unit
    prefix: MLP | None  # layers 0..L-2, identity output (None when L == 1)
    n_inner: int


def shortcut_plan(net: MLP, cfg: DropoutConfig) -> _Plan | None:
    """The shortcut split, or None when the generic path must be used.

    The shortcut applies when the last dropped layer with ``keep_prob < 1``
    is ``L - 1``, the layer that feeds the output (for a network with no
    hidden layer: the input).
    """
    L = net.n_layers
    free = [l for l in cfg.layers if cfg.layer_keep_prob(l) < 1]
    if not free or free[-1] != L - 1:
        return None
    q = cfg.layer_keep_prob(L - 1)
    outer_layers = [l for l in cfg.layers if l != L - 1]
    outer = (DropoutConfig({l: cfg.layer_keep_prob(l) for l in outer_layers},
                           scheme=cfg.scheme) if outer_layers else None)
    outer_q = (np.concatenate([np.full(net.sizes[l], cfg.layer_keep_prob(l))
                               for l in outer_layers]) if outer_layers else np.ones(0))
    prefix = (MLP(net.weights[:-1], net.biases[:-1], net.hidden[:-1], "identity")
              if L > 1 else None)
    return _Plan(q, 1.0 if cfg.scheme == "vanilla" else 1.0 / q, outer, outer_q,
                 prefix, net.sizes[L - 1])


def _outer_multipliers(net: MLP, plan: _Plan, masks: np.ndarray) -> dict:
    """The outer masks ``(c, n_outer)`` as each outer layer's multipliers, ``{l: (c, width)}``."""
    mults, start = {}, 0
    for l in plan.outer.layers if plan.outer is not None else ():
        width = net.sizes[l]
        m = masks[:, start:start + width].astype(np.float64)
        start += width
        mults[l] = m / plan.outer.layer_keep_prob(l) if plan.outer.scheme == "inverted" else m
    return mults


def _last_hidden(net: MLP, plan: _Plan, X: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Activation ``L-1`` under each outer mask, shape ``(c, n_examples, width)``."""
    if plan.prefix is None:
        return np.broadcast_to(X, (masks.shape[0],) + X.shape)
    Z = forward(plan.prefix, X, _outer_multipliers(net, plan, masks), logits=True)
    A = ACTIVATION_FUNCTIONS[net.hidden[-1]](Z)
    return A if A.ndim == 3 else np.broadcast_to(A, (masks.shape[0],) + A.shape)


def conditional_moments(net: MLP, plan: _Plan, X: np.ndarray, masks: np.ndarray, *,
                        arithmetic: bool = True, variance: bool = True,
                        pairs_per_block: int | None = None):
    """Exact moments over the inner layer's mask, one set per given outer mask.

    This is the shortcut path's unit of work: the exact chunks weight these
    by the outer masks' probabilities, and the Rao-Blackwellised Monte Carlo
    estimator averages them over sampled outer masks.

    Parameters
    ----------
    net : MLP
    plan : from :func:`shortcut_plan`
    X : ndarray, shape (n_examples, n_features), validated
    masks : ndarray, shape (c, n_outer_units)
        Outer masks (0/1), ordered by layer then unit.
    arithmetic : bool
        Compute the arithmetic mean of sigmoid/softmax outputs; if False,
        ``mean`` (and ``within``) are the logits' moments.
    variance : bool
        Compute ``within``; if False it is None.
    pairs_per_block : int, optional
        (outer mask, example) pairs per inner block (memory); by default the
        block stays near ``_BLOCK_ELEMENTS`` elements.

    Returns
    -------
    mean : ndarray, shape (c, n_examples, n_outputs)
        ``E[y | outer mask]`` over the inner mask.
    within : ndarray, shape (c, n_examples, n_outputs), or None
        ``Var[y | outer mask]`` over the inner mask.
    mean_logits : ndarray, shape (c, n_examples, n_outputs)
        ``E[z | outer mask]``.
    """
    W, b = net.weights[-1], net.biases[-1]
    scaled_W = plan.inner_scale * W
    q = plan.inner_q
    output = net.output
    A = _last_hidden(net, plan, X, masks)  # (c, n, h)
    c, n, h = A.shape
    mean_logits = q * (A @ scaled_W) + b
    if output == "identity" or not arithmetic:
        within = None
        if variance and output == "identity":
            within = (q * (1 - q)) * ((A * A) @ (scaled_W * scaled_W))
        return mean_logits, within, mean_logits
    if pairs_per_block is None:
        pairs_per_block = max(1, _BLOCK_ELEMENTS // 2**plan.n_inner)
    w_max, w_min = scaled_W.max(axis=1), scaled_W.min(axis=1)
    w_from_max = scaled_W - w_max[:, None]
    flat = A.reshape(c * n, h)
    mean = np.empty((c * n, W.shape[1]))
    var = np.empty_like(mean) if variance else None
    for start in range(0, c * n, pairs_per_block):
        a = flat[start:start + pairs_per_block]
        V = a[:, :, None] * scaled_W
        if output == "sigmoid":
            m, v = _sigmoid_block(V, b, q, variance)
        else:
            # v_jk - max_k v_jk = a_j (w_jk - max_k w_jk) when a_j >= 0 (ReLU,
            # sigmoid): one product, no reduction over k.
            shifted = (a[:, :, None] * w_from_max if a.min() >= 0
                       else V - np.where(a >= 0, a * w_max, a * w_min)[:, :, None])
            m, v = _softmax_block(V, b, q, variance, shifted)
        mean[start:start + len(a)] = m
        if variance:
            var[start:start + len(a)] = v
    shape = (c, n, W.shape[1])
    return mean.reshape(shape), (var.reshape(shape) if variance else None), mean_logits


def _shortcut_task(net, plan, X, arithmetic, variance, pairs_per_block):
    def task(chunk) -> Moments:
        masks, log_probs = chunk
        mean, within, mean_logits = conditional_moments(
            net, plan, X, masks, arithmetic=arithmetic, variance=variance,
            pairs_per_block=pairs_per_block)
        acc = Moments()
        acc.add(np.exp(log_probs), mean, mean_logits, within)
        return acc

    return task


def shortcut_moments(
    net: MLP,
    cfg: DropoutConfig,
    X: np.ndarray,
    plan: _Plan,
    *,
    chunk_size: int | None = None,
    arithmetic: bool = True,
    variance: bool = True,
    n_threads: int | None = None,
    progress=None,
    limit_blas: bool = True,
) -> Moments:
    """Exact moments by the shortcut path (see the module docstring).

    Parameters
    ----------
    X : ndarray, shape (n_examples, n_features), validated
    plan : from :func:`shortcut_plan`
    chunk_size : int, optional
        Sets the memory, which grows with ``chunk_size * n_examples``: a chunk
        holds ``max(1, chunk_size // 2**n_inner)`` outer masks when the inner
        masks are enumerated (else ``max(1, chunk_size // (width + 4 n_out))``),
        and one softmax block ``max(1, chunk_size * n_examples // 2**n_inner)``
        (outer mask, example) pairs.
    arithmetic : bool
        Compute the arithmetic mean of sigmoid/softmax outputs (the only
        statistic that needs the inner masks enumerated); if False, ``mean``
        and ``m2`` of the result hold the logits' statistics only.
    variance : bool
        Compute the variance (``m2``); if False ``m2`` is meaningless.
    progress : callable, optional
        Called with the number of chunks done.
    limit_blas : bool
        Hold BLAS to one thread (see :func:`run_chunks`).

    Returns
    -------
    Moments
    """
    n = X.shape[0]
    block = 2**plan.n_inner
    chunk_size = shortcut_chunk(plan, n, chunk_size)
    pairs_per_block = max(1, chunk_size * n // block)
    if _compiled():
        from . import compiled

        task = compiled.shortcut_task(net, plan, X, arithmetic, variance)
    else:
        task = _shortcut_task(net, plan, X, arithmetic, variance, pairs_per_block)
    chunks = enumerate_masks(plan.outer_q, _outer_per_chunk(net, plan, chunk_size, arithmetic))
    n_threads = default_threads() if n_threads is None else n_threads
    n_chunks = n_outer_chunks(net, plan, chunk_size, arithmetic)
    try:
        return run_chunks(task, chunks, n_threads if n_chunks > 1 else 1, progress,
                          limit_blas=limit_blas)
    finally:
        _local.__dict__.pop("ws", None)  # the caller's thread keeps no scratch
        _local.__dict__.pop("scratch", None)


def shortcut_chunk(plan: _Plan, n_examples: int, chunk_size: int | None = None) -> int:
    """``chunk_size`` for :func:`shortcut_moments`: the default keeps one block
    array near ``_BLOCK_ELEMENTS`` elements (the compiled kernels hold no
    such block; their chunks are 32 times larger: fewer Python calls)."""
    if chunk_size is not None:
        return chunk_size
    return max(1, (_BLOCK_ELEMENTS * (32 if _compiled() else 1)) // n_examples)


def _compiled() -> bool:
    from . import backend

    return backend() == "numba"


def _outer_per_chunk(net: MLP, plan: _Plan, chunk_size: int, arithmetic: bool) -> int:
    if arithmetic and net.output != "identity":  # each outer mask is a block of 2^n_inner
        per = max(1, chunk_size // 2**plan.n_inner)
    else:  # analytic over the inner layer: activations, logits and moments per outer mask
        per = max(1, chunk_size // (plan.n_inner + 4 * net.sizes[-1]))
    # Compiled: a power of two, so that 2^n outer masks split into equal chunks
    # (two threads then finish together).
    return 2 ** int(math.log2(per)) if _compiled() else per


def n_outer_chunks(net: MLP, plan: _Plan, chunk_size: int, arithmetic: bool = True) -> int:
    """Chunks :func:`shortcut_moments` runs (for a progress bar)."""
    n_outer = 2 ** int(np.count_nonzero(plan.outer_q < 1))
    return math.ceil(n_outer / _outer_per_chunk(net, plan, chunk_size, arithmetic))


def generic_task(net: MLP, X: np.ndarray, multipliers_of: Callable):
    """A chunk task for the generic path: full forward pass of each mask.

    ``multipliers_of(masks)`` turns joint masks into per-layer multipliers;
    a chunk is ``(masks, weights)``.
    """
    output = OUTPUT_FUNCTIONS[net.output]

    def task(chunk) -> Moments:
        masks, weights = chunk
        z = forward(net, X, multipliers_of(masks), logits=True)
        acc = Moments()
        acc.add(weights, output(z), z)
        return acc

    return task
