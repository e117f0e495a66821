"""A certified estimate of the dropout ensemble for networks of any width and depth.

Plain Monte Carlo averages ``f(u)`` over sampled mask multipliers ``u`` (``m``
under vanilla, ``m / keep_prob`` under inverted). This estimator averages

    f(u) - b1 * L(u) - b2 * Q(u),
    L(u) = sum_j f_j (u_j - mu_j),
    Q(u) = 1/2 sum_j f_jj ((u_j - mu_j)^2 - v_j),

where ``mu_j`` and ``v_j`` are the multiplier's mean and variance and
``f_j``, ``f_jj`` the first and second derivatives of the target along
``u_j`` at ``u = mu`` (the scheme's scaled pass). ``E[L] = 0`` and
``E[Q] = 0`` exactly, for any network and either scheme, because the
multipliers are independent with known means and variances (DESIGN fact 18),
so the estimator is unbiased whatever the coefficients ``b1, b2``, as long as
they do not depend on the samples they multiply.

The targets, per example and output unit ``o``: the output ``y_o`` (the
ensemble mean), its square ``y_o^2`` (the variance is ``E[y^2] - E[y]^2``)
and the logit ``z_o`` (the NWGM of a sigmoid or softmax output is the output
function of ``E[z]``, see :mod:`ensemble_study.ensemble`).

How the derivatives are computed (no finite differences). Perturbing one
multiplier ``u_j`` of dropped layer ``l`` moves the next pre-activation along
``a_j W_l[j, :]`` exactly (the network is linear in ``u_j`` up to that point).
That tangent and its second-order companion (zero there) are pushed through
the rest of the network by forward-mode Taylor arithmetic:
``(t1, t2) -> (f'(Z) t1, f''(Z) t1^2 + f'(Z) t2)`` at each activation and
``t -> t @ W`` at each layer, one direction per dropped unit, batched. This
is exact second-order (Taylor-mode) differentiation: ``t1`` is ``dz/du_j`` and
``t2`` is ``d^2 z/du_j^2`` (the diagonal only: the multipliers are
independent, so only the diagonal enters ``E[Q]``). The output function's
first and second directional derivatives are closed forms (softmax:
``d log p = t1 - p.t1``, ``d^2 log p = t2 - p.t2 - (p.t1^2 - (p.t1)^2)``).
The cost is about one forward pass of the rest of the network per dropped
unit, paid once (``derivative_passes``; :func:`derivative_cost` counts it twice for
tanh and sigmoid, whose second tangent doubles the work, in ``max_passes`` as in
:func:`cost_model`).

Variance reduction on top:

* antithetic masks: a pair uses uniforms ``r`` and ``1 - r`` (``m = r < q``),
  so odd-order terms cancel within the pair (exactly at keep_prob 0.5, where
  the second mask is the complement of the first); a pair is one sample;
* the coefficients ``b1, b2`` (and the surrogate's) are the least-squares ones of a
  *pilot* batch of pairs, then held fixed for the main batch, which is independent of the
  pilot: the main batch's mean is unbiased and its t-interval
  (``n - 1`` degrees of freedom) is the usual one; the coefficients solve the
  pilot's least squares by the pseudo-inverse of the control variates' covariance,
  so one that does not move gets 0;
* a third control variate from a cheaper *surrogate* whose mean is exactly known
  (``surrogate=True``, the default): the network with every activation after the
  first dropped layer replaced by a fixed affine gate ``G Z + c`` (its statistical
  linearisation: ``G = E[f'(Z)]``, ``c = E[f(Z)] - G E[Z]`` for ``Z`` Gaussian with
  moment propagation's moments, :func:`_gates`). Its logits ``zg`` are multilinear in
  the independent multipliers, so ``E[zg]`` is ``zg`` at ``u = mu`` exactly (DESIGN
  fact 10), whatever the gates; the control variate is ``zg - E[zg]`` mapped through
  the output function's Jacobian at the scaled pass (and ``2 y`` times that for
  ``y^2``). It shares the sampled pass up to the first activation and costs one more
  product per later layer (:func:`surrogate_passes`; 0.8% of a pass on
  784-512-512-10). Why it matters: at keep_prob 0.5 the antithetic partner is the
  complement mask, so the pair's mean deviation ``u - mu`` is exactly 0 and the
  Taylor control variates (linear in it, and the diagonal second-order term is too
  for 0/1 masks: ``(m - q)^2 - q(1 - q) = (1 - 2q)(m - q)``) vanish from every pair;
  the surrogate carries the cross-layer products that survive.

Intervals and stopping. ``n_pairs`` fixed: a t-interval from the main batch.
``tolerance=h``: Stein's two-stage procedure -- the pilot's standard deviation
``s0`` (``n0 - 1`` degrees of freedom) fixes ``n = ceil((t_{n0-1} s0 / h)^2)``
for the worst coordinate *before* the main batch is drawn; the main batch is
then a fixed-size sample independent of the pilot, so its t-interval keeps its
nominal coverage (no sequential peeking), and under normality of the pair
means ``mean +- h`` has coverage at least the nominal level too (Stein 1945).
The reported half-width is the main batch's own t half-width, which is about
``h`` (not guaranteed below it).

Budget. ``max_passes`` bounds the forward passes (derivatives, pilot and main
batch); what cannot be reached within it is refused with the numbers before
the main batch is drawn (the derivatives' cost before anything).

The NWGM's interval is the delta method on ``E[z]`` (per-sample influence
``G (a_z - mean)``, ``G`` the output function's Jacobian at the estimate);
the variance's is the delta method on ``(E[y], E[y^2])``. Both are
asymptotic; the coverage study (``scripts/coverage_certified.py``) measures them.

Rao-Blackwellisation: for an identity output whose feeding layer is dropped,
that layer's multipliers are averaged exactly (held at their means, the
within-variance ``sum_j Var(u_j) (a_j W_j)^2`` added to the ``y^2`` target),
so with only that layer dropped the estimate is exact. For sigmoid and
softmax outputs the ``rb_mc`` estimator does it on its own where it applies
(``2**width`` inner masks); not here.

(Over 500 lines: the Taylor-mode derivatives, the control variates, the
pilot and its cost model are one estimator, tested together.)
"""

from __future__ import annotations

import concurrent.futures
import copy
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy import stats as _stats
from threadpoolctl import threadpool_limits

from ._checks import check_positive_int, check_real, check_rng
from .activations import ACTIVATIONS
from .dropout import DropoutConfig, check_config
from .network import ACTIVATION_FUNCTIONS, MLP, OUTPUT_FUNCTIONS, check_input, softmax

LEVEL = 0.95
# Elements of the largest tangent array held at once (32 MiB of float64).
_TANGENT_ELEMENTS = 2**22
# Default budget in forward passes of the network over X (derivatives included).
MAX_PASSES = 2_000_000
MIN_PILOT = 8
# Elements of one layer's block of sampled passes (masks x examples x units): 4 MiB of
# float64, so a block's activations stay in cache between its GEMMs.
_BLOCK_ELEMENTS = 2**19


def _d1(name, z):
    if name == "identity":
        return np.ones_like(z)
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "sigmoid":
        s = OUTPUT_FUNCTIONS["sigmoid"](z)
        return s * (1.0 - s)
    raise ValueError(f"the certified estimator knows the derivatives of "
                     f"{', '.join(DIFFERENTIABLE)} hidden layers; got {name!r}: add its "
                     f"second derivative to ensemble_study.certified")


def _d2(name, z):
    if name in ("identity", "relu"):  # relu'' = 0 almost everywhere
        return np.zeros_like(z)
    if name == "tanh":
        t = np.tanh(z)
        return -2.0 * t * (1.0 - t * t)
    if name == "sigmoid":
        s = OUTPUT_FUNCTIONS["sigmoid"](z)
        return s * (1.0 - s) * (1.0 - 2.0 * s)
    _d1(name, z)  # raises


@dataclass(frozen=True)
class _Layout:
    """Dropped layers, their multipliers' means and variances, in joint-mask order."""

    layers: tuple
    widths: tuple
    q: np.ndarray      # keep prob per dropped unit
    scale: np.ndarray  # multiplier = m * scale
    mu: np.ndarray     # E[u] = q * scale
    var: np.ndarray    # Var[u] = q (1 - q) scale^2

    @classmethod
    def of(cls, net: MLP, cfg: DropoutConfig) -> _Layout:
        layers = tuple(cfg.layers)
        widths = tuple(net.sizes[l] for l in layers)
        q = np.concatenate([np.full(w, cfg.layer_keep_prob(l)) for l, w in zip(layers, widths)])
        scale = 1.0 / q if cfg.scheme == "inverted" else np.ones_like(q)
        return cls(layers, widths, q, scale, q * scale, q * (1.0 - q) * scale**2)

    def split(self, u: np.ndarray) -> dict:
        """Joint multipliers (..., U) -> {layer: (..., width)}."""
        out, start = {}, 0
        for l, w in zip(self.layers, self.widths):
            out[l] = u[..., start:start + w]
            start += w
        return out


def derivative_passes(net: MLP, cfg: DropoutConfig) -> float:
    """The derivatives' cost in forward passes of ``net`` (flops of the layers after each
    dropped unit's layer, per direction, over the flops of one pass)."""
    flops = [a * b for a, b in zip(net.sizes[:-1], net.sizes[1:])]
    total = sum(flops)
    return float(sum(net.sizes[l] * sum(flops[l:]) / total for l in cfg.layers))


def derivative_cost(net: MLP, cfg: DropoutConfig) -> float:
    """The derivatives' cost in forward passes, as counted against ``max_passes`` and by
    :func:`cost_model`: :func:`derivative_passes`, doubled when a hidden activation is
    curved (tanh, sigmoid), whose Taylor-mode step carries a second tangent ``t2``
    through every later layer (relu and identity carry ``t1`` alone)."""
    curved = any(h in ("tanh", "sigmoid") for h in net.hidden)
    return derivative_passes(net, cfg) * (2.0 if curved else 1.0)


def surrogate_passes(net: MLP, cfg: DropoutConfig) -> float:
    """The surrogate's extra work per sampled pass, in forward passes of ``net``: the
    products of the layers after the first activation that follows the first dropped
    layer (the surrogate shares the pass up to there), over the flops of one pass."""
    flops = [a * b for a, b in zip(net.sizes[:-1], net.sizes[1:])]
    first = min(cfg.layers)
    return float(sum(flops[first + 1:]) / sum(flops))


DIFFERENTIABLE = ("identity", "relu", "tanh", "sigmoid")
"""Hidden activations whose first and second derivatives the estimator knows."""
PILOT = 64
"""The default pilot, in antithetic pairs (:func:`certified_ensemble`'s ``n_pilot``)."""
# Fixed working memory of a run whatever its rows: tangent blocks of _TANGENT_ELEMENTS,
# sampled chunks of 2**21 elements, and their temporaries (an upper estimate).
_FIXED_BYTES = 8 * (2 * _TANGENT_ELEMENTS + 4 * 2**21)


def cost_model(net: MLP, cfg: DropoutConfig, n_examples: int, n_samples: int,
               memory_bound: float) -> dict:
    """What :func:`certified_ensemble` with ``n_pairs = n_samples // 2`` would cost.

    From the sizes alone (upper estimates, used by
    :func:`ensemble_study.ensemble.choose_estimator`): ``macs`` multiply-adds,
    ``passes`` forward passes (derivatives, pilot, main batch), ``rows``
    examples per batch (``max_rows``) so that ``memory_bytes`` stays below
    ``memory_bound`` (0 when a single example does not fit), and ``why_not``,
    a reason it does not apply (an activation whose derivatives it does not
    know, or fewer than 4 samples), else None.
    """
    bad = [h for h in net.hidden if h not in DIFFERENTIABLE]
    why = None
    if bad:
        why = (f"the certified estimator knows the derivatives of {', '.join(DIFFERENTIABLE)} "
               f"hidden layers, not {', '.join(sorted(set(bad)))}")
    elif n_samples < 4:
        why = (f"the certified estimator needs at least 4 samples (2 antithetic pairs); "
               f"K={n_samples}")
    pairs = max(2, n_samples // 2)
    U = sum(net.sizes[l] for l in cfg.layers)
    k = net.sizes[-1]
    d_passes = derivative_cost(net, cfg)
    passes = d_passes + 2 * PILOT + 2 * pairs
    macs_pass = float(sum(w.size for w in net.weights))
    # per example: forward passes, and the two control-variate products (U x 3k) per sample
    per_row = passes * macs_pass + 2 * (pairs + PILOT) * 2 * U * 3 * k
    # per example, in doubles: derivative arrays (about 20 U k) and the stored pairs
    # (pilot and main batch, with their temporaries, about 18 k per pair)
    row_bytes = 8.0 * (20 * U * k + 18 * (pairs + PILOT) * k)
    n = int(n_examples)
    rows = int(min(n, max(0, (memory_bound - _FIXED_BYTES) // row_bytes)))
    return {"macs": per_row * n, "passes": passes, "rows": rows,
            "memory_bytes": int(_FIXED_BYTES + row_bytes * max(rows, 1)), "why_not": why}


def taylor_logits(net: MLP, cfg: DropoutConfig, X: np.ndarray):
    """First and diagonal second derivatives of the logits along every multiplier.

    Returns
    -------
    z : ndarray, shape (n, k)
        The scaled pass's logits (multipliers at their means).
    d1, d2 : ndarray, shape (n, U, k)
        ``dz_o/du_j`` and ``d^2 z_o/du_j^2`` at ``u = mu``, ``U`` dropped units
        in joint-mask order.
    """
    lay = _Layout.of(net, cfg)
    mu = lay.split(lay.mu)
    L = net.n_layers
    # Base pass, keeping each layer's (unscaled) input activation and pre-activations.
    A, acts, Zs = X, [], []
    for l in range(L):
        acts.append(A)
        At = A * mu[l] if l in mu else A
        Z = At @ net.weights[l] + net.biases[l]
        Zs.append(Z)
        if l < L - 1:
            A = ACTIVATION_FUNCTIONS[net.hidden[l]](Z)
    n, k = X.shape[0], net.sizes[-1]
    d1 = np.empty((n, lay.q.size, k))
    d2 = np.empty((n, lay.q.size, k))
    start = 0
    for l, w in zip(lay.layers, lay.widths):
        width_max = max(net.sizes[l + 1:])
        rows = max(1, _TANGENT_ELEMENTS // (w * width_max))
        for r0 in range(0, n, rows):
            r = slice(r0, min(n, r0 + rows))
            t1 = acts[l][r][:, :, None] * net.weights[l][None]  # (n, w, width_{l+1})
            t2 = None  # zero until an activation with curvature (none for relu/identity)
            for l2 in range(l + 1, L):
                Zp = Zs[l2 - 1][r][:, None, :]
                name = net.hidden[l2 - 1]
                f1 = _d1(name, Zp)
                if name in ("identity", "relu"):
                    t1, t2 = f1 * t1, (None if t2 is None else f1 * t2)
                else:
                    f2 = _d2(name, Zp)
                    t1, t2 = f1 * t1, f2 * t1 * t1 + (0.0 if t2 is None else f1 * t2)
                if l2 in mu:
                    t1 = t1 * mu[l2]
                    t2 = None if t2 is None else t2 * mu[l2]
                t1 = _mm(t1, net.weights[l2])
                t2 = None if t2 is None else _mm(t2, net.weights[l2])
            if t2 is None:
                t2 = np.zeros_like(t1)
            d1[r, start:start + w] = t1
            d2[r, start:start + w] = t2
        start += w
    return Zs[-1], d1, d2


def _output_taylor(output: str, z, t1, t2):
    """Value, first and second directional derivatives of the output function.

    z : (n, k); t1, t2 : (n, U, k). Returns y (n, k), dy, d2y (n, U, k).
    """
    if output == "identity":
        return z, t1, t2
    if output == "sigmoid":
        s = OUTPUT_FUNCTIONS["sigmoid"](z)[:, None, :]
        g1, g2 = s * (1 - s), s * (1 - s) * (1 - 2 * s)
        return s[:, 0], g1 * t1, g2 * t1 * t1 + g1 * t2
    p = softmax(z)[:, None, :]
    pt1 = (p * t1).sum(-1, keepdims=True)
    dlog = t1 - pt1
    d2log = t2 - (p * t2).sum(-1, keepdims=True) - ((p * t1 * t1).sum(-1, keepdims=True)
                                                     - pt1 * pt1)
    return p[:, 0], p * dlog, p * (dlog * dlog + d2log)


def _targets_taylor(output, z, t1, t2):
    """Columns [y, y^2, z] (n, 3k) and their derivatives (n, U, 3k)."""
    y, dy, d2y = _output_taylor(output, z, t1, t2)
    yy = y[:, None, :]
    return (np.concatenate([y, y * y, z], -1),
            np.concatenate([dy, 2 * yy * dy, t1], -1),
            np.concatenate([d2y, 2 * dy * dy + 2 * yy * d2y, t2], -1))


@dataclass(frozen=True, eq=False)
class CertifiedResult:
    """A certified estimate of the ensemble, with intervals at ``level``.

    Attributes
    ----------
    mean, mean_half_width : ndarray, shape (n_examples, n_outputs)
    geometric_mean, geometric_mean_half_width : ndarray or None
        The NWGM (sigmoid/softmax outputs); delta-method interval.
    variance, variance_half_width : ndarray, shape (n_examples, n_outputs)
        The ensemble's variance; delta-method interval.
    mean_logits, mean_logits_half_width : ndarray, shape (n_examples, n_outputs)
    stderr : ndarray
        Standard error of ``mean``.
    n_pairs, n_pilot : int
        Antithetic pairs in the main batch and in the pilot.
    n_passes : float
        Forward passes spent: derivatives, pilot and main batch.
    level : float
    variance_ratio : ndarray, shape (n_examples, n_outputs)
        Plain MC's variance per pass over this estimator's, per pass
        (derivatives excluded), from the main batch.
    """

    mean: np.ndarray
    mean_half_width: np.ndarray
    geometric_mean: np.ndarray | None
    geometric_mean_half_width: np.ndarray | None
    variance: np.ndarray
    variance_half_width: np.ndarray
    mean_logits: np.ndarray
    mean_logits_half_width: np.ndarray
    stderr: np.ndarray
    n_pairs: int
    n_pilot: int
    n_passes: float
    level: float
    variance_ratio: np.ndarray


class _Sampler:
    """Antithetic pairs of multipliers, the targets and the control variates on them."""

    def __init__(self, net, cfg, X, order, surrogate=True):
        self.net, self.X, self.lay = net, X, _Layout.of(net, cfg)
        self.order = order
        z0, t1, t2 = taylor_logits(net, cfg, X)
        self.f0, J, H = _targets_taylor(net.output, z0, t1, t2)
        self.k = net.sizes[-1]
        # (U, n * 3k) layouts: the control variates of a batch are two matrix products.
        n, U, c = J.shape
        self.J = np.ascontiguousarray(J.transpose(1, 0, 2).reshape(U, n * c))
        self.H = np.ascontiguousarray(0.5 * H.transpose(1, 0, 2).reshape(U, n * c))
        # Rao-Blackwellisation of an identity output's feeding layer: given the other
        # masks, the output is linear in that layer's multipliers, so its conditional
        # mean is the pass with them at their means, and its conditional variance is
        # sum_j Var(u_j) (a_j W_j)^2. Those multipliers are held at their means (their
        # control-variate terms vanish: dev = 0 and, below, a variance of 0).
        # The layers before the first dropped one do not depend on the masks.
        self.first = min(self.lay.layers)
        A = X
        for l in range(self.first):
            A = ACTIVATION_FUNCTIONS[net.hidden[l]](A @ net.weights[l] + net.biases[l])
        self.prefix = A
        # The gated-linear surrogate (see _gates): its logits are multilinear in the
        # multipliers, so their mean is exactly the surrogate at u = mu (DESIGN fact 10).
        self.surrogate = surrogate and any(l >= self.first for l in range(net.n_layers - 1)
                                           if net.hidden[l] != "identity")
        if self.surrogate:
            self.gates = _gates(net, cfg, X, self.first)
        self.var = self.lay.var
        self.rb = None
        last = net.n_layers - 1
        if net.output == "identity" and last in self.lay.layers:
            start = sum(w for l, w in zip(self.lay.layers, self.lay.widths) if l < last)
            self.rb = slice(start, start + net.sizes[last])
            self.var = self.lay.var.copy()
            self.var[self.rb] = 0.0
            self.within_w = net.weights[last] ** 2 * self.lay.var[self.rb][:, None]
        if self.surrogate:
            self.zg_mean = self.targets(self.lay.mu[None], surrogate=True)[1][0]

    def targets(self, u, surrogate=False):
        """u: (K, U) multipliers -> (K, n, 3k) targets (conditional ones under RB); with
        ``surrogate``, also the gated-linear surrogate's logits (K, n, k).

        The sampled forward passes: the layers before the first dropped one do not
        depend on the masks and were computed once (``self.prefix``); the rest runs
        over blocks of masks stacked into one GEMM per layer (``_BLOCK_ELEMENTS``
        elements a layer, cache-sized), with the mask, bias and activation applied in
        place. The blocks depend on the shapes alone, never on the threads, so the
        result is the same to the bit whatever the thread count.

        The surrogate shares the pass up to the first activation after the first
        dropped layer, then replaces every activation ``f(Z)`` by ``G Z + c`` with
        the fixed gates of :func:`_gates` (one more product per later layer)."""
        K = u.shape[0]
        n, k, L = self.X.shape[0], self.k, self.net.n_layers
        mults = self.lay.split(u)
        out = np.empty((K, n, 3 * k))
        zg = np.empty((K, n, k)) if surrogate else None
        block = max(1, _BLOCK_ELEMENTS // (n * max(self.net.sizes[self.first:])))
        for b0 in range(0, K, block):
            b = slice(b0, min(K, b0 + block))
            m = b.stop - b.start
            A = self.prefix
            Zg = None
            for l in range(self.first, L):
                if l == L - 1:
                    before = A
                if surrogate and Zg is not None:
                    Ag = self.gates[l - 1][0] * Zg + self.gates[l - 1][1]
                    if l in mults:
                        Ag *= mults[l][b, None, :]
                    Zg = _mm(Ag, self.net.weights[l])
                    Zg += self.net.biases[l]
                if l in mults:
                    A = A * mults[l][b, None, :]  # (m, n, w): a fresh block
                elif A.ndim == 2:
                    A = np.broadcast_to(A, (m,) + A.shape)
                Z = _mm(A, self.net.weights[l])
                Z += self.net.biases[l]
                if surrogate and Zg is None:
                    Zg = Z  # shared until the first activation
                if l < L - 1:
                    A = _activate_inplace(self.net.hidden[l], Z if Zg is not Z else Z.copy())
            o = out[b]
            o[..., 2 * k:] = Z
            y = OUTPUT_FUNCTIONS[self.net.output](Z)
            o[..., :k] = y
            np.multiply(y, y, out=o[..., k:2 * k])
            if self.rb is not None:
                if before.ndim == 2:
                    before = np.broadcast_to(before, (m,) + before.shape)
                o[..., k:2 * k] += _mm(before * before, self.within_w)
            if surrogate:
                zg[b] = Zg
        return (out, zg) if surrogate else out

    def draw(self, gen, n_pairs, chunk=None):
        """Pair means of the targets (n_pairs, n, 3k) and of the control variates
        (n_pairs, n, 3k, p): [L, Q] and, with the surrogate, S."""
        lay = self.lay
        n, c = self.X.shape[0], 3 * self.k
        chunk = chunk or max(1, 2**21 // (n * max(self.net.sizes)))
        F = np.empty((n_pairs, n, c))
        R = np.zeros((n_pairs, n, c, 3 if self.surrogate else 2))
        for s0 in range(0, n_pairs, chunk):
            m = min(chunk, n_pairs - s0)
            r = gen.random((m, lay.q.size))
            u = np.concatenate([(r < lay.q) * lay.scale, ((1.0 - r) < lay.q) * lay.scale])
            if self.rb is not None:
                u[:, self.rb] = lay.mu[self.rb]
            sl = slice(s0, s0 + m)
            if self.surrogate:
                f, zg = self.targets(u, surrogate=True)
                R[sl, ..., 2] = self._surrogate_cv(0.5 * (zg[:m] + zg[m:]))
            else:
                f = self.targets(u)
            F[sl] = 0.5 * (f[:m] + f[m:])
            # The control variates are linear in dev: the pair's mean dev, then one product.
            dev = u - lay.mu
            R[sl, ..., 0] = (0.5 * (dev[:m] + dev[m:]) @ self.J).reshape(m, n, c)
            if self.order >= 2:
                dq = dev * dev - self.var
                R[sl, ..., 1] = (0.5 * (dq[:m] + dq[m:]) @ self.H).reshape(m, n, c)
        return F, R

    def _surrogate_cv(self, zg):
        """Pair-mean surrogate logits (P, n, k) -> control variates (P, n, 3k) of exactly
        known mean 0: for ``z`` the surrogate's deviation ``s = zg - E[zg]``, for ``y``
        its image under the output function's Jacobian at the scaled pass, for ``y^2``
        that times ``2 y``."""
        d = zg - self.zg_mean
        k = self.k
        y0 = self.f0[:, :k]
        if self.net.output == "identity":
            dy = d
        elif self.net.output == "sigmoid":
            dy = y0 * (1.0 - y0) * d
        else:
            dy = y0 * (d - (y0 * d).sum(-1, keepdims=True))
        return np.concatenate([dy, 2.0 * y0 * dy, d], -1)


def _gates(net, cfg, X, first):
    """Statistical linearisation of every activation after the first dropped layer:
    ``{l: (G, c)}`` with ``G = E[f'(Z)]`` and ``c = E[f(Z)] - G E[Z]`` for the
    pre-activation ``Z`` of hidden layer ``l`` taken as Gaussian with the moments that
    moment propagation gives it (24-node Gauss-Hermite). The gates only shape a control
    variate: any fixed gates leave its mean exactly known and the estimate unbiased."""
    nodes, weights = np.polynomial.hermite.hermgauss(24)
    weights = weights / math.sqrt(math.pi)
    mu, s2 = X, np.zeros_like(X)
    out = {}
    for l in range(net.n_layers - 1):
        if l in cfg.layers:
            q = cfg.layer_keep_prob(l)
            sc = 1.0 if cfg.scheme == "vanilla" else 1.0 / q
            mu, s2 = sc * q * mu, sc * sc * (q * s2 + q * (1.0 - q) * mu * mu)
        mu, s2 = mu @ net.weights[l] + net.biases[l], s2 @ (net.weights[l] ** 2)
        name = net.hidden[l]
        if l >= first:
            sd = np.sqrt(2.0 * s2)
            G = np.zeros_like(mu)
            E = np.zeros_like(mu)
            for x, w in zip(nodes, weights):
                z = mu + sd * x
                G += w * _d1(name, z)
                E += w * ACTIVATION_FUNCTIONS[name](z)
            out[l] = (G, E - G * mu)
        mu, s2 = ACTIVATIONS[name].moments(mu, s2)
    return out


def _forward_logits(net, X, mults, *, last_input=False):
    """Logits (K, n, k) under multipliers {layer: (K, width)}; with ``last_input``, also
    the output layer's input activations before their multipliers (K, n, width)."""
    A = X
    L = net.n_layers
    for l in range(L):
        if l == L - 1:
            before = A
        if l in mults:
            A = A * mults[l][:, None, :]
        Z = _mm(A, net.weights[l]) + net.biases[l]
        if l < L - 1:
            A = ACTIVATION_FUNCTIONS[net.hidden[l]](Z)
    return (Z, before) if last_input else Z


def _activate_inplace(name, Z):
    """``ACTIVATION_FUNCTIONS[name](Z)``, in place where numpy can (the sampled passes)."""
    if name == "relu":
        return np.maximum(Z, 0.0, out=Z)
    if name == "tanh":
        return np.tanh(Z, out=Z)
    if name == "identity":
        return Z
    return ACTIVATION_FUNCTIONS[name](Z)


def _mm(A, W):
    """``A @ W`` for a stack ``A`` (..., m) as one 2-D product: numpy's stacked matmul
    loops over the stack outside BLAS (measured 35x slower for (64, 25, 512) @ (512, 512))."""
    if A.ndim <= 2:
        return A @ W
    return (np.ascontiguousarray(A).reshape(-1, A.shape[-1]) @ W).reshape(*A.shape[:-1],
                                                                         W.shape[1])


# A control variate whose pilot spread is below this times the target's magnitude (RMS)
# moves by rounding alone (see _coefficients).
_CV_RTOL = 1e-9


def _coefficients(F, R):
    """Least-squares coefficients per coordinate from a pilot: F (P, n, c) targets,
    R (P, n, c, p) control variates -> b (n, c, p). The pseudo-inverse of the p x p
    covariance gives 0 to a control variate that does not move (antithetic pairs cancel
    the linear ones exactly at keep_prob 0.5) and the minimum-norm solution to collinear
    ones.

    A control variate that moves by rounding alone gets 0 too: its pilot standard
    deviation at most ``_CV_RTOL`` times the target's RMS at that coordinate. Why: its mean
    is exactly 0 in exact arithmetic only. The surrogate's, on a network whose surrogate
    is linear in the masks of complement pairs (keep_prob 0.5, an identity output whose
    feeding layer is averaged exactly), is rounding noise of about 1e-16 with a mean of the
    same size; scaled to unit spread, it got a coefficient near 1e15, and the product
    with its float mean, a bias of the size of the target's spread (coverage of nominal
    95% intervals fell to 58% on one coordinate of a 2**10-mask network, tested)."""
    Fc = F - F.mean(0)
    Rc = R - R.mean(0)
    P = F.shape[0]
    rms = np.sqrt(np.einsum("pnc,pnc->nc", F, F) / P)
    moving = np.einsum("pnci,pnci->nci", Rc, Rc) / P > (_CV_RTOL * rms[..., None]) ** 2
    Rc = Rc * moving[None]
    S = np.einsum("pnci,pncj->ncij", Rc, Rc)
    r = np.einsum("pnci,pnc->nci", Rc, Fc)
    # Scaled by the trace, not per variate: the pseudo-inverse's minimum-norm solution
    # then gives little weight to a variate of small spread next to collinear larger
    # ones. That is protective: near keep_prob 0.5 the second-order variate of complement
    # pairs is constant but for rare pairs, and a coefficient fitted to its pilot spread
    # (1e3 by exact least squares on one 2**2-mask case, against 1e-4 here) put its
    # correction on pairs the main batch seldom draws: a 20-half-width miss.
    scale = np.maximum(np.einsum("ncii->nc", S), 1e-300)[..., None, None]
    inv = np.linalg.pinv(S / scale, rcond=1e-10) / scale
    return np.nan_to_num(np.einsum("ncij,ncj->nci", inv, r))


def certified_ensemble(net: MLP, cfg: DropoutConfig, X, rng, *, n_pairs: int | None = None,
                       tolerance: float | None = None, n_pilot: int = 64,
                       level: float = LEVEL, max_passes: float = MAX_PASSES,
                       order: int = 2, max_rows: int | None = None,
                       executor=None, threads: int | None = None,
                       surrogate: bool = True) -> CertifiedResult:
    """Estimate the ensemble's mean, NWGM and variance with calibrated intervals.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)
    rng : int, SeedSequence or numpy.random.Generator
    n_pairs : int, optional
        Antithetic pairs (2 forward passes each) in the main batch. Exactly one of
        ``n_pairs`` and ``tolerance`` is given.
    tolerance : float > 0, optional
        The requested half-width of the mean's interval, for every example and
        output (the worst coordinate sets the sample size; Stein's two-stage
        procedure, see the module docstring).
    n_pilot : int >= 8
        Pairs of the pilot batch (coefficients, and the sample size under ``tolerance``).
    level : float in (0, 1)
    max_passes : float >= 1, or math.inf
        Budget in forward passes over ``X``; what needs more is refused.
    order : {1, 2}
        Control variates up to this order in the multipliers.
    max_rows : int, optional
        Examples per batch (memory: the derivative arrays and the stored pairs grow
        with the rows of a batch). Every batch sees the same masks, so with
        ``n_pairs`` the result does not depend on it (up to rounding); with
        ``tolerance`` each batch sizes its own main batch (``n_pairs`` is then the
        largest). None: one batch.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run the batches of ``max_rows`` examples as tasks there (a process pool, or
        the workers of a Dask cluster) instead of one after another here. The batches
        are independent (each starts from a copy of the stream's state) and are
        merged in batch order, so the result equals the local one with the same
        ``max_rows`` to the last bit, whatever the number of workers and the order in
        which batches finish. Without ``max_rows`` there is one batch, run here.
    threads : int >= 1, optional
        BLAS threads of every batch's matrix products (``threadpoolctl``; in a worker
        process too). None: the library's default here, 1 in a process pool's workers.
        The blocks of the products depend on the shapes alone, so the result is the
        same to the bit whatever the threads (tested).
    surrogate : bool
        Add the gated-linear surrogate's control variate (see the module docstring).

    Returns
    -------
    CertifiedResult
    """
    X = check_input(net, X)
    check_config(net, cfg)
    gen = check_rng(rng)
    if (n_pairs is None) == (tolerance is None):
        raise ValueError("give exactly one of n_pairs (a fixed main batch) and tolerance "
                         f"(a requested half-width); got n_pairs={n_pairs!r}, "
                         f"tolerance={tolerance!r}")
    if n_pairs is not None:
        n_pairs = check_positive_int(n_pairs, "n_pairs")
        if n_pairs < 2:
            raise ValueError(f"n_pairs must be at least 2 (a t-interval needs two); got {n_pairs}")
    if tolerance is not None:
        tolerance = check_real(tolerance, "tolerance", low=0, low_open=True)
    n_pilot = check_positive_int(n_pilot, "n_pilot")
    if n_pilot < MIN_PILOT:
        raise ValueError(f"n_pilot must be at least {MIN_PILOT}; got {n_pilot}")
    level = check_real(level, "level", low=0, high=1, low_open=True, high_open=True)
    if max_passes != math.inf:  # inf: no budget
        max_passes = check_real(max_passes, "max_passes", low=1)
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2; got {order!r}")
    for name in net.hidden:
        _d1(name, np.zeros(1))
    cost_d = derivative_cost(net, cfg)
    cost_fixed = cost_d + 2 * n_pilot + (2 * n_pairs if n_pairs else 0)
    if cost_fixed > max_passes:
        raise ValueError(
            f"the certified estimate needs about {cost_fixed:,.0f} forward passes "
            f"({cost_d:,.0f} for the derivatives along {sum(net.sizes[l] for l in cfg.layers)} "
            f"dropped units, {2 * n_pilot} for the pilot"
            + (f", {2 * n_pairs} for the main batch" if n_pairs else "")
            + f"), more than max_passes={max_passes:,.0f}; raise max_passes or use "
            f"sample_ensemble(..., estimator='mc')")
    if threads is not None:
        threads = check_positive_int(threads, "threads")
    n = X.shape[0]
    rows = n if max_rows is None else check_positive_int(max_rows, "max_rows")
    if executor is not None and not (_is_dask(executor)
                                     or isinstance(executor, concurrent.futures.Executor)):
        raise TypeError(f"executor must be None, a concurrent.futures.Executor or a "
                        f"dask.distributed.Client; got {type(executor).__name__}")
    # Every batch of examples sees the same masks: each starts from a copy of the
    # stream's state, as one batch of all rows would; the stream then ends where the
    # last batch left it. Batches are fixed by max_rows alone, so the result is the
    # same to the bit whatever runs them (this process, a pool, Dask) and in any order.
    jobs = [_Batch(net, cfg, X[r0:r0 + rows], copy.deepcopy(gen), n_pairs, tolerance, n_pilot,
                   level, max_passes, order, cost_d, threads, bool(surrogate))
            for r0 in range(0, n, rows)]
    parts = _map_in_order(executor, jobs)
    gen.bit_generator.state = parts[-1].pop("state")
    for p in parts[:-1]:
        p.pop("state")
    cat = {key: (None if parts[0][key] is None
                 else np.concatenate([p[key] for p in parts], axis=0))
           for key in ("mean", "mean_half_width", "geometric_mean", "geometric_mean_half_width",
                       "variance", "variance_half_width", "mean_logits",
                       "mean_logits_half_width", "stderr", "variance_ratio")}
    main = max(p["n_pairs"] for p in parts)
    passes = sum(p["n_passes"] * p["mean"].shape[0] for p in parts) / n
    return CertifiedResult(**cat, n_pairs=main, n_pilot=n_pilot, n_passes=passes, level=level)


def _is_dask(executor) -> bool:
    return hasattr(executor, "scatter") and hasattr(executor, "submit")


@dataclass(frozen=True, eq=False)
class _Batch:
    """One batch of examples of a certified estimate, with its own copy of the stream
    (picklable: it runs in a worker process or on a Dask worker as it runs here)."""

    net: MLP
    cfg: DropoutConfig
    X: np.ndarray
    gen: np.random.Generator
    n_pairs: int | None
    tolerance: float | None
    n_pilot: int
    level: float
    max_passes: float
    order: int
    cost_d: float
    threads: int | None = None
    surrogate: bool = True


def _run_batch(job: _Batch) -> dict:
    """The batch's fields of :class:`CertifiedResult`, and its stream's final ``state``."""
    gen = copy.deepcopy(job.gen)  # a local executor shares the job: leave it untouched
    with threadpool_limits(job.threads):
        out = _certified_rows(job.net, job.cfg, job.X, gen, job.n_pairs, job.tolerance,
                              job.n_pilot, job.level, job.max_passes, job.order, job.cost_d,
                              job.surrogate)
    out["state"] = gen.bit_generator.state
    return out


def _map_in_order(executor, jobs: list) -> list[dict]:
    """``_run_batch`` of every job, in job order, here or as tasks on ``executor``
    (a few per worker in flight, so memory stays bounded whatever the batches)."""
    if executor is None or len(jobs) == 1:
        return [_run_batch(job) for job in jobs]
    if _is_dask(executor):
        workers = max(1, sum(executor.nthreads().values()))

        def submit(job):
            return executor.submit(_run_batch, job, pure=False)
    else:
        workers = getattr(executor, "_max_workers", None) or 1

        def submit(job):
            return executor.submit(_run_batch, job)
    out, pending = [], deque()
    try:
        for job in jobs:
            pending.append(submit(job))
            if len(pending) >= 2 * workers:
                out.append(pending.popleft().result())
        while pending:
            out.append(pending.popleft().result())
    finally:
        for future in pending:
            future.cancel()
    return out


def _certified_rows(net, cfg, X, gen, n_pairs, tolerance, n_pilot, level, max_passes, order,
                    cost_d, surrogate=True) -> dict:
    """The estimate on the examples ``X`` (one batch): the fields of :class:`CertifiedResult`."""
    sampler = _Sampler(net, cfg, X, order, surrogate)
    Fp, Rp = sampler.draw(gen, n_pilot)
    b = _coefficients(Fp, Rp)
    k = sampler.k
    if tolerance is not None:
        s0 = (Fp - np.einsum("pnci,nci->pnc", Rp, b))[..., :k].std(0, ddof=1).max()
        t0 = _stats.t.ppf(0.5 + level / 2, n_pilot - 1)
        n_pairs = max(2, n_pilot, math.ceil((t0 * s0 / tolerance) ** 2))
        needed = cost_d + 2 * n_pilot + 2 * n_pairs
        if needed > max_passes:
            reachable = t0 * s0 / math.sqrt(max(2.0, (max_passes - cost_d) / 2 - n_pilot))
            raise ValueError(
                f"tolerance={tolerance!r} needs about {2 * n_pairs:,} more forward passes "
                f"(pilot standard deviation {s0:.3g} per pair), {needed:,.0f} in all, more "
                f"than max_passes={max_passes:,.0f}; within that budget the half-width "
                f"would be about {reachable:.3g}: raise max_passes or the tolerance")
    F, R = sampler.draw(gen, n_pairs)
    A = F - np.einsum("pnci,nci->pnc", R, b)
    est = A.mean(0)
    t = _stats.t.ppf(0.5 + level / 2, n_pairs - 1)
    sd = A.std(0, ddof=1)
    se = sd / math.sqrt(n_pairs)
    mean, se_y = est[:, :k], se[:, :k]
    mean_z, se_z = est[:, 2 * k:], se[:, 2 * k:]
    # Variance: E[y^2] - E[y]^2 (+ se^2, the bias of squaring the estimate).
    infl_v = A[..., k:2 * k] - 2 * mean * A[..., :k]
    variance = np.maximum(est[:, k:2 * k] - mean**2 + se_y**2, 0.0)
    se_v = infl_v.std(0, ddof=1) / math.sqrt(n_pairs)
    gm = gm_hw = None
    if net.output != "identity":
        gm = OUTPUT_FUNCTIONS[net.output](mean_z)
        Az = A[..., 2 * k:]
        if net.output == "sigmoid":
            infl = gm * (1 - gm) * Az
        else:
            infl = gm * (Az - (gm * Az).sum(-1, keepdims=True))
        gm_hw = t * infl.std(0, ddof=1) / math.sqrt(n_pairs)
    raw = _plain_pass_variance(sampler, F)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = raw / (2 * sd[:, :k] ** 2)
    return dict(
        mean=mean, mean_half_width=t * se_y, geometric_mean=gm, geometric_mean_half_width=gm_hw,
        variance=variance, variance_half_width=t * se_v, mean_logits=mean_z,
        mean_logits_half_width=t * se_z, stderr=se_y, n_pairs=n_pairs,
        n_passes=cost_d + 2 * n_pilot + 2 * n_pairs, variance_ratio=ratio)




def _plain_pass_variance(sampler, F):
    """Var of one pass's output, from the main batch: E[y^2] - E[y]^2 averaged over pairs."""
    k = sampler.k
    return np.maximum(F[..., k:2 * k].mean(0) - F[..., :k].mean(0) ** 2, 0.0)
