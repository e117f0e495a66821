"""One-pass predictors of the dropout ensemble: moment propagation and the NWGM correction.

:func:`moment_propagation` pushes each unit's mean and variance through the
network in one deterministic pass (fast dropout, Wang & Manning 2013; the
"single shot" approximation of MC dropout, Brach, Sick & Duerr 2020):

* **dropout** on a unit ``a`` with mean ``mu`` and variance ``s2``:
  ``a~ = c m a`` with ``m ~ Bernoulli(q)`` independent of ``a`` and ``c = 1``
  (vanilla) or ``1 / q`` (inverted), so
  ``E[a~] = c q mu`` and ``Var[a~] = c**2 (q s2 + q (1 - q) mu**2)``: exact;
* **affine maps** ``z = a @ W + b``: ``E[z] = E[a] @ W + b`` (exact) and
  ``Var[z] = Var[a] @ W**2``, which treats the units of a layer as
  independent (the usual assumption; they are not when they share an earlier
  mask, so this is where the method approximates);
* **activations**, with the pre-activation treated as Gaussian
  ``N(mu, s2)``:

  - identity: unchanged (exact);
  - ReLU: the rectified Gaussian's moments in closed form,
    ``E = mu Phi(t) + s phi(t)``, ``E[y^2] = (mu^2 + s2) Phi(t) + mu s phi(t)``
    with ``t = mu / s``;
  - sigmoid: the probit approximation ``sigmoid(x) ~ Phi(x sqrt(pi / 8))``
    (MacKay 1992), giving ``E ~ sigmoid(mu / sqrt(1 + pi s2 / 8))``, and the
    variance ``E (1 - E) (1 - 1 / sqrt(1 + pi s2 / 8))`` (of the form of
    Daunizeau 2017): 0 when ``s2 = 0``, and tending to ``E (1 - E)``, the
    largest variance of a [0, 1] variable of mean E, as ``s2`` grows;
  - tanh: through ``tanh(x) = 2 sigmoid(2x) - 1`` and the sigmoid rules;

* **outputs**: identity exact; sigmoid as the hidden sigmoid; softmax by the
  mean-field approximation ``E[y_i] ~ softmax(mu / sqrt(1 + pi s2 / 8))_i``
  (each logit's mean shrunk by its own variance, as the probit rule does for
  one sigmoid unit) with the variance of the sigmoid rule applied to each
  class against the rest. It ignores the correlation of the logits (they
  share every hidden unit), so it is known to be poor when the logits'
  variances are large or differ much between classes, where the shrinkage
  of one class's logit moves probability to the others in a way the true
  integral does not. ``closure="quadrature"`` replaces these output rules by
  the Gaussian integrals themselves (:func:`gaussian_sigmoid_moments`,
  :func:`gaussian_softmax_moments`, the logits taken as independent).

Exactness (DESIGN fact 11, tested against brute force): the mean is exact
when every activation after the first dropped layer is the identity (any
dropped layers, any output that is the identity); mean and variance are
exact when one dropped layer feeds an identity output. Elsewhere it is an
approximation, measured by the ``approximations`` study.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import ACTIVATIONS, sigmoid_moments
from .dropout import DropoutConfig, check_config
from .network import MLP, check_input

_PROBIT = np.pi / 8.0
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


@dataclass(frozen=True, eq=False)
class MomentPrediction:
    """Predicted moments of the ensemble's outputs.

    Attributes
    ----------
    mean : ndarray, shape (n_examples, n_outputs)
        Predicted ensemble (arithmetic) mean.
    variance : ndarray, shape (n_examples, n_outputs)
        Predicted variance of the subnetworks' outputs, >= 0.
    """

    mean: np.ndarray
    variance: np.ndarray


def _softmax_moments(mu, s2):
    z = mu / np.sqrt(1.0 + _PROBIT * s2)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    mean = e / e.sum(axis=-1, keepdims=True)
    return mean, mean * (1.0 - mean) * (1.0 - 1.0 / np.sqrt(1.0 + _PROBIT * s2))


# Hidden activations' rules from their records; outputs' closures.
_MOMENTS = {**{name: a.moments for name, a in ACTIVATIONS.items()},
            "sigmoid": sigmoid_moments, "softmax": _softmax_moments}


def logit_moments(net: MLP, cfg: DropoutConfig, X) -> tuple[np.ndarray, np.ndarray]:
    """Propagated mean and variance of the output pre-activations (logits).

    Returns
    -------
    mean, variance : ndarray, shape (n_examples, n_outputs)
    """
    X = check_input(net, X)
    check_config(net, cfg)
    mu, s2 = X, np.zeros_like(X)
    last = net.n_layers - 1
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        if l in cfg.layers:
            q = cfg.layer_keep_prob(l)
            c = 1.0 if cfg.scheme == "vanilla" else 1.0 / q
            mu, s2 = c * q * mu, c * c * (q * s2 + q * (1.0 - q) * mu * mu)
        mu, s2 = mu @ W + b, s2 @ (W * W)
        if l < last:
            mu, s2 = _MOMENTS[net.hidden[l]](mu, s2)
    return mu, s2


CLOSURES = ("probit", "quadrature")
"""Output closures of :func:`moment_propagation` (DESIGN fact 15)."""

_N_NODES = 96


def gaussian_sigmoid_moments(mu, s2, n_nodes: int = _N_NODES):
    """Mean and variance of ``sigmoid(z)`` for ``z ~ N(mu, s2)``, by quadrature.

    With ``z = mu + s x``, ``x ~ N(0, 1)``: where ``s <= 2``, Gauss-Hermite
    quadrature, ``E f = pi**-0.5 sum_k w_k f(mu + sqrt(2) s x_k)`` with the
    ``n_nodes`` nodes of :func:`numpy.polynomial.hermite.hermgauss`; where
    ``s > 2`` the sigmoid's step (width 1 in z, 1/s in x) is too sharp for
    a fixed Hermite rule (96 nodes are off by 9e-4 at ``s = 10``), so a
    composite 8-point Gauss-Legendre rule on ``x`` in [-12, 12] with panels
    of width at most ``0.5 / s`` is used instead. The variance is
    ``sum_k w_k (f_k - E)**2`` (no cancellation). Agreement with adaptive
    integration is tested to 1e-9 (mean) for ``s`` up to 20.

    Parameters
    ----------
    mu, s2 : array_like, same shape
        The logits' means and variances (``s2 >= 0``).
    n_nodes : int
        Gauss-Hermite nodes for ``s <= 2``.

    Returns
    -------
    mean, variance : ndarray, the shape of ``mu``
    """
    mu, s2 = np.broadcast_arrays(np.asarray(mu, dtype=np.float64),
                                 np.asarray(s2, dtype=np.float64))
    s = np.sqrt(np.clip(s2, 0.0, None))
    mean, var = np.empty_like(mu), np.empty_like(mu)
    small = s <= 2.0
    x, w = np.polynomial.hermite.hermgauss(n_nodes)
    _moments_by_rule(mu[small], s[small], np.sqrt(2.0) * x, w / np.sqrt(np.pi),
                     mean, var, small)
    if (~small).any():
        n_panels = int(np.ceil(24.0 * 2.0 * min(s[~small].max(), 200.0)))
        gx, gw = np.polynomial.legendre.leggauss(8)
        edges = np.linspace(-12.0, 12.0, n_panels + 1)
        half = 0.5 * np.diff(edges)
        nodes = ((edges[:-1] + half)[:, None] + half[:, None] * gx).ravel()
        weights = (half[:, None] * gw).ravel() * np.exp(-0.5 * nodes**2) / np.sqrt(2 * np.pi)
        _moments_by_rule(mu[~small], s[~small], nodes, weights, mean, var, ~small)
    return mean, var


def _moments_by_rule(mu, s, nodes, weights, mean, var, where, chunk: int = 256):
    m_out, v_out = np.empty_like(mu), np.empty_like(mu)
    for start in range(0, mu.size, chunk):
        sl = slice(start, start + chunk)
        f = _sigmoid(mu[sl, None] + s[sl, None] * nodes)
        m = f @ weights
        m_out[sl], v_out[sl] = m, ((f - m[:, None]) ** 2) @ weights
    mean[where], var[where] = m_out, v_out


def _sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


# Lattice step of the softmax closure's integrals (in logit units) and the
# Gaussian widths below which a class is integrated on its own nodes.
_SOFTMAX_STEP = 0.25
_SOFTMAX_NARROW = 0.5
_TAIL_SIGMAS = 9.0            # N(0, 1) mass beyond 9 sigma: 2e-19
_LEFT, _RIGHT = 4.0, 37.0     # the Gumbel kernels' tails: exp(-e^4) = 2e-24, e^-37 = 9e-17


def gaussian_softmax_moments(mu, s2, *, step: float = _SOFTMAX_STEP):
    """Mean and variance of ``softmax(z)`` for independent Gaussian logits, by a 1-D integral.

    Each row holds ``C`` independent logits ``z_c ~ N(mu_c, s2_c)``. From
    ``1 / S = int_0^inf exp(-t S) dt`` and ``1 / S**2 = int_0^inf t exp(-t S) dt``
    with ``S = sum_k exp(z_k)``, the substitution ``t = exp(-v)`` and the
    independence of the logits,

        ``E[softmax_c] = int F1_c(v) prod_{k != c} F0_k(v) dv``,
        ``E[softmax_c**2] = int F2_c(v) prod_{k != c} F0_k(v) dv``,

    where ``F_j,k(v) = E[K_j(z_k - v)]`` with the Gumbel kernels
    ``K_j(d) = exp(j d - e**d)`` (``F0_k`` is the law of ``z_k + G``, ``G``
    standard Gumbel, at ``v``, and ``F1_c`` its density: this is the
    Gumbel-max identity ``softmax_c(z) = P(z_c + G_c is the largest)``). Every
    integrand is analytic in the strip ``|Im v| < pi / 2`` and decays at both
    ends, so the trapezoid rule with step ``h`` converges like
    ``exp(-pi**2 / h)`` (about 7e-18 at the default ``h = 0.25``). The outer
    integral over ``v`` and the inner ones over each ``z_k`` use one lattice of
    step ``h`` per row, so that the inner sums are products with a Toeplitz
    matrix of kernel values (the Gaussian density is sampled on the lattice,
    which resolves it where ``s_k >= 0.5``: error ``exp(-2 pi**2 s_k**2 / h**2)``);
    a narrower class (``s_k < 0.5``) is integrated on its own trapezoid nodes
    in ``x = (z - mu) / s``, step 0.25 on [-9, 9], and ``s_k = 0`` is the
    kernel itself. Rows where every variance is 0 return ``softmax(mu)`` and 0.

    Accuracy (``tests/test_softmax_closure.py``): for three classes the mean and
    ``E[softmax**2]`` agree to 1e-15 with a brute-force 3-D trapezoid product rule
    summed exactly (:func:`math.fsum`) where ``s <= 1.5``; for two classes mean and
    variance agree to 1e-14 with :func:`gaussian_sigmoid_moments` of the logit
    difference (``s`` up to 20); halving ``h`` changes nothing above 1e-14 (at
    ``s`` up to 6). The variance is ``E[softmax**2] - E**2``, so its error is
    absolute, about 1e-15 (relative error about 1e-15 / variance); it is clipped at 0.

    Parameters
    ----------
    mu : array_like, shape (n, C)
        The logits' means, one row per example, ``C >= 1`` classes.
    s2 : array_like, shape (n, C)
        The logits' variances (``>= 0``), the logits independent.
    step : float
        The lattice step ``h`` (in logit units), in (0, 0.5].

    Returns
    -------
    mean, variance : ndarray, shape (n, C)
        ``E[softmax(z)]`` (rows sum to 1 up to the quadrature error) and
        ``Var[softmax(z)_c]`` per class.

    Raises
    ------
    ValueError
        If ``mu`` and ``s2`` are not 2-D of the same shape, are not finite, or
        ``s2`` has a negative entry, or ``step`` is outside (0, 0.5].
    """
    mu = np.asarray(mu, dtype=np.float64)
    s2 = np.asarray(s2, dtype=np.float64)
    if mu.ndim != 2 or s2.shape != mu.shape:
        raise ValueError(f"mu and s2 must be 2-D arrays of the same shape (n, C); got mu of "
                         f"shape {mu.shape} and s2 of shape {s2.shape}: pass one row per "
                         "example and one column per class")
    if mu.shape[1] < 1:
        raise ValueError(f"mu and s2 need at least one class (column); got shape {mu.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(s2).all()):
        raise ValueError("mu and s2 must be finite; got NaN or infinite entries")
    if (s2 < 0).any():
        raise ValueError(f"s2 holds variances, which must be >= 0; got a minimum of "
                         f"{s2.min():g}: check the moments passed in")
    if not 0 < step <= 0.5:
        raise ValueError(f"step must be in (0, 0.5]; got {step!r}")
    n, n_classes = mu.shape
    mean, var = np.empty_like(mu), np.zeros_like(mu)
    s = np.sqrt(s2)
    lo = (mu - _TAIL_SIGMAS * s).min(axis=1) - _LEFT
    hi = (mu + _TAIL_SIGMAS * s).max(axis=1) + _RIGHT
    sizes = np.ceil((hi - lo) / step).astype(int) + 1
    # The kernels on the lags d = z - v = l h that matter: K_j(d) < 2e-22 beyond
    # d = 4; below d = -37, K_1 and K_2 are < 9e-17 and K_0 = 1 - e**d is 1 to 9e-17,
    # so those lags enter F0 as a prefix sum of the density.
    band = np.arange(-int(np.ceil(_RIGHT / step)), int(np.ceil(_LEFT / step)) + 1)
    with np.errstate(over="ignore"):
        kernels = [np.exp(j * band * step - np.exp(band * step)) for j in (0, 1, 2)]
    below, above = -int(band[0]), int(band[-1])
    x = np.arange(-36, 37) * 0.25
    wx = 0.25 * np.exp(-0.5 * x * x) * _INV_SQRT_2PI
    for r in range(n):
        if not s[r].any():
            z = mu[r] - mu[r].max()
            mean[r] = np.exp(z) / np.exp(z).sum()
            continue
        m = int(sizes[r])
        t = lo[r] + step * np.arange(m)
        # F[j][k, i] = E[K_j(z_k - t_i)]
        F = np.empty((3, n_classes, m))
        for k in range(n_classes):
            if s[r, k] >= _SOFTMAX_NARROW:
                dens = (step / s[r, k]) * _INV_SQRT_2PI * np.exp(
                    -0.5 * ((t - mu[r, k]) / s[r, k]) ** 2)
                padded = np.concatenate([np.zeros(below), dens, np.zeros(above)])
                for j in range(3):
                    # sum over the band: F[j, k, i] = sum_l dens[i + l] K_j(l h)
                    F[j, k] = np.correlate(padded, kernels[j], "valid")
                prefix = np.cumsum(dens)[:max(m - below - 1, 0)]
                F[0, k, below + 1:] += prefix
            else:
                nodes, w = ((mu[r, k] + s[r, k] * x, wx) if s[r, k] > 0
                            else (mu[r, k:k + 1], np.ones(1)))
                d = nodes[None, :] - t[:, None]
                with np.errstate(over="ignore"):
                    ed = np.exp(d)
                    for j in range(3):
                        F[j, k] = np.exp(j * d - ed) @ w
        # prod over k != c of F0_k, by prefix and suffix products (no division).
        f0 = F[0]
        before = np.vstack([np.ones((1, m)), np.cumprod(f0[:-1], axis=0)])
        after = np.vstack([np.cumprod(f0[:0:-1], axis=0)[::-1], np.ones((1, m))])
        others = before * after
        mean[r] = step * np.einsum("ci,ci->c", F[1], others)
        second = step * np.einsum("ci,ci->c", F[2], others)
        var[r] = np.clip(second - mean[r] ** 2, 0.0, None)
    return mean, var


def moment_propagation(net: MLP, cfg: DropoutConfig, X, *,
                       closure: str = "probit") -> MomentPrediction:
    """Predict the ensemble's mean and variance in one deterministic pass.

    The rules for each layer, the approximations they make and where they
    are exact are in the module docstring; in short, units are treated as
    independent through every affine map, and pre-activations as Gaussian
    through every nonlinearity.

    ``closure`` says how a sigmoid or softmax output's mean and variance are
    read off the Gaussian logits ``N(mu, s2)``: ``"probit"`` (the default;
    MacKay's probit mean and the variance ``E(1-E)(1 - 1/sqrt(1 + pi s2/8))``,
    which overshoots the true variance of a Gaussian logit 14-75x at
    ``mu = 6``, DESIGN fact 15; for a softmax, the mean-field rule of the
    module docstring) or ``"quadrature"`` (the Gaussian integrals themselves:
    :func:`gaussian_sigmoid_moments`, and for a softmax
    :func:`gaussian_softmax_moments`, which takes the logits as independent,
    as the propagation does: it carries no covariances between them, though
    they share every hidden unit). The hidden layers are the same in both.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)
    closure : {"probit", "quadrature"}

    Returns
    -------
    MomentPrediction
        ``mean`` and ``variance``, each of shape ``(n_examples, n_outputs)``.
    """
    if closure not in CLOSURES:
        raise ValueError(f"closure must be one of {CLOSURES}; got {closure!r}")
    mu, s2 = logit_moments(net, cfg, X)
    if closure == "quadrature" and net.output == "sigmoid":
        mean, var = gaussian_sigmoid_moments(mu, s2)
    elif closure == "quadrature" and net.output == "softmax":
        mean, var = gaussian_softmax_moments(mu, s2)
    else:
        mean, var = _MOMENTS[net.output](mu, s2)
    return MomentPrediction(mean=mean, variance=var)


CORRECTIONS = ("baldi", "delta")
"""Forms of :func:`nwgm_correction`."""


def nwgm_correction(nwgm, variance, output: str, form: str = "baldi") -> np.ndarray:
    """A second-order estimate of the arithmetic mean from the NWGM and the variance V.

    ``form="baldi"``: Baldi & Sadowski's (2014) ``E - NWGM ~ V (1 - 2E) / (1 - 2V)``
    for one sigmoid unit, an expansion around ``E = 1/2``; ``E`` on the right
    is replaced by the NWGM, giving ``NWGM + V (1 - 2 NWGM) / (1 - 2 V)``,
    clipped to [0, 1]. For a softmax the same is applied to each class
    against the rest and the result renormalised (a heuristic).

    ``form="delta"``: the consistent delta-method form (DESIGN fact 14).
    From ``E[log O] ~ log E - V / (2 E**2)``, linearised,
    ``exp E[log O] ~ E - V / (2E)`` and the same for ``1 - O``, so
    ``NWGM ~ (E - V/(2E)) / (1 - V/(2E(1-E)))``, that is
    ``E - NWGM ~ V (1 - 2E) / (2E(1-E) - V)``; Baldi & Sadowski's term is
    smaller by about ``2E(1-E) <= 1/2``. Softmax analogue (derived the same
    way for every class, ``exp E[log y_i] ~ E_i - V_i / (2 E_i)``, then
    normalised): with ``S = sum_j V_j / (2 E_j)``,

        ``E_i - NWGM_i ~ (V_i / (2 E_i) - E_i S) / (1 - S)``,

    whose terms sum to 0 over the classes and which, for two classes, is
    the sigmoid form exactly. ``E`` on the right is replaced by the NWGM
    (an error of order ``V**2``). The expansion is in ``V / (E(1-E))``, and
    is nonsense where that ratio nears 1 (the sigmoid form then maps E to
    about 1 - E). Guards: ``V`` is clipped to ``[0, NWGM (1 - NWGM) / 2]``
    (the largest variance of a [0, 1] variable of that mean is
    ``E(1-E)``), so the sigmoid's correction is at most ``|1 - 2E| / 3``; for
    a softmax ``S`` is capped at 1/4 (which is the same cap for two
    classes) and ``V_i`` at ``NWGM_i (1 - NWGM_i) / 2``; the result is
    clipped to [0, 1] and, for a softmax, renormalised. Where the caps act,
    the correction is not to be trusted; the ``approximations`` study
    measures it.

    Parameters
    ----------
    nwgm : array_like, shape (n_examples, n_outputs)
    variance : array_like, shape (n_examples, n_outputs)
        ``V``, the variance of the subnetworks' outputs (e.g. moment
        propagation's).
    output : {"sigmoid", "softmax"}
    form : {"baldi", "delta"}

    Returns
    -------
    ndarray, shape (n_examples, n_outputs)
    """
    if output not in ("sigmoid", "softmax"):
        raise ValueError(f"output must be one of ('sigmoid', 'softmax'); got {output!r}")
    if form not in CORRECTIONS:
        raise ValueError(f"form must be one of {CORRECTIONS}; got {form!r}")
    g, v = np.asarray(nwgm, dtype=np.float64), np.asarray(variance, dtype=np.float64)
    if form == "baldi":
        v = np.clip(v, 0.0, 0.25)
        corrected = np.clip(g + v * (1.0 - 2.0 * g) / (1.0 - 2.0 * v), 0.0, 1.0)
    else:
        spread = g * (1.0 - g)
        v = np.clip(v, 0.0, 0.5 * spread)
        with np.errstate(divide="ignore", invalid="ignore"):
            if output == "sigmoid":
                delta = np.where(spread > 0, v * (1.0 - 2.0 * g) / (2.0 * spread - v), 0.0)
            else:
                r = np.where(g > 0, v / (2.0 * g), 0.0)
                big_s = np.minimum(r.sum(axis=-1, keepdims=True), 0.25)
                delta = (r - g * big_s) / (1.0 - big_s)
        corrected = np.clip(g + delta, 0.0, 1.0)
    if output == "softmax":
        corrected /= corrected.sum(axis=-1, keepdims=True)
    return corrected


def baldi_bound(mean) -> np.ndarray:
    """Baldi & Sadowski's estimate ``E (1 - E) |1 - 2E| / (1 - 2 E (1 - E))`` of |E - NWGM|.

    Derived from a second-order expansion, it is not an inequality (DESIGN
    fact 13): the ``approximations`` study measures how often it fails.
    """
    e = np.asarray(mean, dtype=np.float64)
    spread = e * (1.0 - e)
    return spread * np.abs(1.0 - 2.0 * e) / (1.0 - 2.0 * spread)
