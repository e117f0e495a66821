"""The second-order (explicit) dropout regularizer of an MLP, by exact forward-mode jets.

Write the train-time pass of a network as a function of the *multipliers* of its
dropped units (``mult_j = m_j`` under vanilla, ``m_j / q_j`` under inverted dropout;
``m_j ~ Bernoulli(q_j)`` independent). Their means ``mu_j`` (``q_j``, resp. 1) are the
multipliers of the scheme's scaled pass, and their variances are

    Var(mult_j) = q_j (1 - q_j)  (vanilla),   (1 - q_j) / q_j  (inverted).

Expanding a per-example loss ``L(mult) = A(z(mult)) - t(y).z(mult)`` to second order
around ``mu`` and taking the expectation, the first-order term and (independence) every
off-diagonal second-order term vanish:

    E L(mult) - L(mu)  ~  1/2 sum_j Var(mult_j) d2L/dmult_j^2,

the explicit regularizer of Wei, Kakade & Ma (2020, "The implicit and explicit
regularization effects of dropout", ICML) and the control variate of DESIGN fact 18.
With ``J_j = dz/dmult_j`` and ``K_j = d2z/dmult_j^2`` (both at ``mu``), and the loss
written as in :func:`ensemble_study.regularizer.mlp_regularizer`,

    d2L/dmult_j^2 = J_j' H_A(z) J_j  +  grad A(z).K_j  -  t(y).K_j .

* ``kind="full"`` keeps all three terms; its **label-free** part is the first two
  (the second-order term of ``E[A(z~)] - A(z)``) and its **label-dependent** part the
  third (the second-order term of ``-t(y).(E[z~] - z)``), the same split as
  :func:`~ensemble_study.regularizer.mlp_regularizer`'s.
* ``kind="gauss_newton"`` keeps ``J' H_A J`` only (the network's own second
  derivatives dropped): it is label-free and ``>= 0`` (``A`` is convex).

``K_j = 0`` whenever ``z`` is linear in ``mult_j``: when every activation after the first
dropped layer is the identity (DESIGN fact 10), the two kinds agree and the
label-dependent part is exactly 0. With one dropped layer so placed and a squared-error
output (``A = |z|^2 / 2``), ``L`` is quadratic in the multipliers and the expansion is
the exact regularizer.

The derivatives are exact: one forward pass carrying, for every dropped unit, the
first and second derivatives of every pre-activation with respect to its multiplier
(a second-order forward-mode jet; through an activation ``f``,
``a' = f'(Z) Z'`` and ``a'' = f''(Z) Z'^2 + f'(Z) Z''``), vectorised over units and
examples.

Shapes: ``X`` (n_examples, n_features); the dropped units are ordered as in a joint
mask (by layer, then by unit), ``D`` of them; ``k`` outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logsumexp

from ._checks import check_positive_int
from .activations import get as get_activation
from .dropout import DropoutConfig, check_config, unit_keep_probs
from .network import MLP, check_input

__all__ = ["KINDS", "MaskJets", "multiplier_moments", "mask_jets", "mlp_second_order"]

KINDS = ("full", "gauss_newton")


@dataclass(frozen=True)
class MaskJets:
    """The logits of the scaled pass and their derivatives in each dropped unit's multiplier.

    Attributes
    ----------
    logits : ndarray, shape (n_examples, k)
        ``z`` at the mean multipliers (the scheme's scaled pass).
    first : ndarray, shape (D, n_examples, k)
        ``dz / dmult_j`` for each dropped unit ``j``.
    second : ndarray, shape (D, n_examples, k)
        ``d2z / dmult_j^2`` (the diagonal of the Hessian in the multipliers).
    mean : ndarray, shape (D,)
        The mean multipliers (``q_j`` vanilla, 1 inverted).
    variance : ndarray, shape (D,)
        ``Var(mult_j)``: ``q_j (1 - q_j)`` vanilla, ``(1 - q_j) / q_j`` inverted.
    """

    logits: np.ndarray
    first: np.ndarray
    second: np.ndarray
    mean: np.ndarray
    variance: np.ndarray


def multiplier_moments(net: MLP, cfg: DropoutConfig) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each dropped unit's multiplier, each of shape ``(D,)``.

    Vanilla: ``mult = m``, mean ``q``, variance ``q (1 - q)``; inverted: ``mult = m / q``,
    mean 1, variance ``(1 - q) / q``.
    """
    q = unit_keep_probs(net, cfg)
    if cfg.scheme == "vanilla":
        return q.copy(), q * (1.0 - q)
    return np.ones_like(q), (1.0 - q) / q


def _second_derivative(name: str):
    f2 = get_activation(name).second_derivative
    if f2 is None:
        raise ValueError(f"activation {name!r} declares no second_derivative in "
                         f"ensemble_study.activations, so its second-order expansion is "
                         f"unknown; add one to its record")
    return f2


def mask_jets(net: MLP, cfg: DropoutConfig, X) -> MaskJets:
    """Exact first and second derivatives of the logits in every dropped unit's multiplier.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)

    Returns
    -------
    MaskJets
        ``first`` and ``second`` of shape ``(D, n_examples, k)``, at the mean multipliers.
    """
    X = check_input(net, X)
    check_config(net, cfg)
    mean, var = multiplier_moments(net, cfg)
    for name in net.hidden:
        _second_derivative(name)
    L, n = net.n_layers, X.shape[0]
    dropped = set(cfg.layers)
    A = X
    # Jets of the activations entering the current layer, for the units dropped so far:
    # (D_so_far, n, width); they start empty (nothing before the first dropped layer
    # depends on a multiplier).
    J1 = np.zeros((0, n, X.shape[1]))
    J2 = np.zeros((0, n, X.shape[1]))
    start = 0
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        if l in dropped:
            width = net.sizes[l]
            mu = mean[start:start + width]
            start += width
            # Multipliers of earlier layers reach this layer scaled by this layer's means;
            # the layer's own unit u adds d(mu_u a_u)/dmult_u = a_u to its input only,
            # with no second derivative (a_u does not depend on its own multiplier).
            Z1 = np.concatenate([(J1 * mu) @ W, A.T[:, :, None] * W[:, None, :]])
            Z2 = np.concatenate([(J2 * mu) @ W, np.zeros((width, n, W.shape[1]))])
            Z = (A * mu) @ W + b
        else:
            Z1, Z2 = J1 @ W, J2 @ W
            Z = A @ W + b
        if l == L - 1:
            return MaskJets(Z, Z1, Z2, mean, var)
        act = get_activation(net.hidden[l])
        d1, d2 = act.derivative(Z), _second_derivative(net.hidden[l])(Z)
        A = act.forward(Z)
        J1 = d1 * Z1
        J2 = d2 * Z1 * Z1 + d1 * Z2
    raise AssertionError("unreachable: the loop returns at the output layer")


def _check_labels(net: MLP, y, n: int) -> np.ndarray:
    """``y`` as :func:`~ensemble_study.regularizer.mlp_regularizer` takes it, or ValueError."""
    y = np.asarray(y)
    output, k = net.output, net.sizes[-1]
    if output == "softmax":
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or \
                y.max() >= k:
            raise ValueError(f"y must hold one class index in 0..{k - 1} per row of X for a "
                             f"softmax output; got shape {y.shape}, dtype {y.dtype}")
        return y
    if output == "sigmoid":
        if y.shape != (n,) or not np.all(np.isin(y, (0, 1))):
            raise ValueError(f"y must hold one label in {{0, 1}} per row of X for a sigmoid "
                             f"output; got shape {y.shape}")
        return y.astype(np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n, k) or not np.all(np.isfinite(y)):
        raise ValueError(f"y must hold finite targets of shape (n_examples, n_outputs) = "
                         f"({n}, {k}) for an identity output; got shape {y.shape}")
    return y


def _loss_terms(output: str, z, J1, J2, y):
    """Per unit and example: ``J' H_A J``, ``grad A.K`` and ``t(y).K``, each (D, n)."""
    if output == "softmax":
        p = np.exp(z - logsumexp(z, axis=1, keepdims=True))
        pj = np.sum(p * J1, axis=2)
        quad = np.sum(p * J1 * J1, axis=2) - pj * pj
        curv = np.sum(p * J2, axis=2)
        label = np.take_along_axis(J2, np.broadcast_to(y[None, :, None], J2.shape[:2] + (1,)),
                                   axis=2)[..., 0]
    elif output == "sigmoid":
        s = expit(z[:, 0])
        quad = s * (1.0 - s) * J1[..., 0] ** 2
        curv = s * J2[..., 0]
        label = y * J2[..., 0]
    else:
        quad = np.sum(J1 * J1, axis=2)
        curv = np.sum(z * J2, axis=2)
        label = np.sum(y * J2, axis=2)
    return quad, curv, label


def mlp_second_order(net: MLP, cfg: DropoutConfig, X, y, *, kind: str = "full",
                     chunk_size: int = 1024) -> dict:
    """The second-order dropout regularizer of an MLP and its two parts, summed over examples.

    ``1/2 sum_i sum_j Var(mult_j) d2L_i/dmult_j^2`` at the mean multipliers (module
    docstring), the expansion of :func:`ensemble_study.regularizer.mlp_regularizer`.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)
    y : ndarray
        softmax: class indices, shape (n_examples,); sigmoid: {0, 1}, shape
        (n_examples,); identity: targets, shape (n_examples, n_outputs).
    kind : {"full", "gauss_newton"}
        ``"full"``: every term of the loss's second derivative; ``"gauss_newton"``:
        ``J' H_A J`` only (the network's second derivatives dropped).
    chunk_size : int
        Examples per block of the jets (memory ``~ 3 D chunk_size max_width`` floats).

    Returns
    -------
    dict
        ``total``, ``label_free``, ``label_dependent`` (floats, summed over examples);
        ``label_dependent`` is 0 for ``"gauss_newton"``, which has no label term.
    """
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r} (use 'full' for the "
                         f"whole second derivative, 'gauss_newton' for J' H J only)")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    X = check_input(net, X)
    check_config(net, cfg)
    y = _check_labels(net, y, X.shape[0])
    quad_sum = curv_sum = label_sum = 0.0
    for s in range(0, X.shape[0], chunk_size):
        jets = mask_jets(net, cfg, X[s:s + chunk_size])
        quad, curv, label = _loss_terms(net.output, jets.logits, jets.first, jets.second,
                                        y[s:s + chunk_size])
        v = jets.variance
        quad_sum += 0.5 * float(v @ quad.sum(axis=1))
        if kind == "full":
            curv_sum += 0.5 * float(v @ curv.sum(axis=1))
            label_sum -= 0.5 * float(v @ label.sum(axis=1))
    free = quad_sum + curv_sum
    return {"total": free + label_sum, "label_free": free, "label_dependent": label_sum}
