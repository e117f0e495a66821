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
  integral does not.

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


def moment_propagation(net: MLP, cfg: DropoutConfig, X) -> MomentPrediction:
    """Predict the ensemble's mean and variance in one deterministic pass.

    The rules for each layer, the approximations they make and where they
    are exact are in the module docstring; in short, units are treated as
    independent through every affine map, and pre-activations as Gaussian
    through every nonlinearity.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)

    Returns
    -------
    MomentPrediction
        ``mean`` and ``variance``, each of shape ``(n_examples, n_outputs)``.
    """
    mu, s2 = logit_moments(net, cfg, X)
    mean, var = _MOMENTS[net.output](mu, s2)
    return MomentPrediction(mean=mean, variance=var)


def nwgm_correction(nwgm, variance, output: str) -> np.ndarray:
    """Baldi & Sadowski's second-order estimate of the mean from the NWGM.

    For one sigmoid unit ``E - NWGM ~ V (1 - 2E) / (1 - 2V)`` (Baldi &
    Sadowski 2014), with ``V`` the variance of the subnetworks' outputs; ``E``
    on the right is replaced by the NWGM, giving
    ``NWGM + V (1 - 2 NWGM) / (1 - 2 V)``, clipped to [0, 1]. For a softmax
    the same is applied to each class against the rest and the result is
    renormalised to sum to 1 (a heuristic: the derivation is for one unit).

    Parameters
    ----------
    nwgm : array_like, shape (n_examples, n_outputs)
    variance : array_like, shape (n_examples, n_outputs)
        ``V``, at most 1/4 for [0, 1] outputs (so ``1 - 2V >= 1/2``).
    output : {"sigmoid", "softmax"}

    Returns
    -------
    ndarray, shape (n_examples, n_outputs)
    """
    if output not in ("sigmoid", "softmax"):
        raise ValueError(f"output must be one of ('sigmoid', 'softmax'); got {output!r}")
    g, v = np.asarray(nwgm, dtype=np.float64), np.asarray(variance, dtype=np.float64)
    v = np.clip(v, 0.0, 0.25)
    corrected = np.clip(g + v * (1.0 - 2.0 * g) / (1.0 - 2.0 * v), 0.0, 1.0)
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
