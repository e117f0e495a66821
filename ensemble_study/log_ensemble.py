"""The dropout family's expected log-probabilities, ``E[log y]``, exactly.

For a softmax output ``log y_k = z_k - logsumexp(z)``, so
``E[log y_k] = E[z_k] - E[logsumexp(z)]``. The first term is what the NWGM
needs (:mod:`ensemble_study.ensemble`); the second is not a function of
``E[z]`` and is enumerated here. It is what Hinton et al. (2012) compare the
mean network with: the average over the dropout networks of the
log-probability they assign to a class.

When the last dropped layer with ``keep_prob < 1`` feeds the output layer
(the case of ``ensemble_study.kernels``), the other dropped layers' masks
are enumerated in chunks and, for each of them and each example, the logits
are affine in the last layer's mask ``m``: ``z(m) = b + sum_j m_j v_j``.
Split its units into two halves with partial sums ``Z1[s]`` and ``Z2[t]``
(bias in ``Z1``); with ``M1[s] = max_k Z1[s, k]`` and ``M2[t]`` likewise,

    logsumexp(z(s, t)) = M1[s] + M2[t] + log D[s, t],
    D = exp(Z1 - M1) @ exp(Z2 - M2).T,

a matrix product and one log per subnetwork. Every factor is <= 1, and
``D[s, t] >= exp(Z2[t, k] - M2[t])`` for the class ``k`` maximising
``Z1[s]``: ``D`` underflows only when one half's logits spread by more than
about 700; such (outer mask, example) pairs are recomputed with one
max-shifted logsumexp per subnetwork. Any other configuration runs every
joint mask's forward pass.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_positive_int
from .dropout import DropoutConfig, check_config, dropped_units, mask_multipliers, unit_keep_probs
from .masks import enumerate_masks
from .network import ACTIVATION_FUNCTIONS, MLP, check_input, forward

# Elements of one (pairs x S1 x S2) block of D (4 MiB).
_BLOCK_ELEMENTS = 2**19
# D below this could have lost its digits to underflow: recompute the pair directly.
_MIN_D = 1e-290


def _logsumexp(z: np.ndarray) -> np.ndarray:
    top = z.max(axis=-1)
    return top + np.log(np.exp(z - top[..., None]).sum(axis=-1))


def _halves(n: int, q: float):
    """Masks and probabilities of the two halves of ``n`` units of keep_prob ``q``."""
    n1 = n // 2
    (b1, lp1), = enumerate_masks(np.full(n1, q), 2**n1)
    (b2, lp2), = enumerate_masks(np.full(n - n1, q), 2**(n - n1))
    return n1, b1.astype(np.float64), np.exp(lp1), b2.astype(np.float64), np.exp(lp2)


def _inner_expected_lse(V: np.ndarray, bias: np.ndarray, q: float) -> np.ndarray:
    """``E[logsumexp(bias + sum_j m_j V[:, j])]`` over ``m``, per pair.

    ``V`` has shape ``(B, n, K)``, ``bias`` ``(K,)``; returns shape ``(B,)``.
    """
    B, n, _ = V.shape
    n1, bits1, P1, bits2, P2 = _halves(n, q)
    out = np.empty(B)
    step = max(1, _BLOCK_ELEMENTS // (P1.size * P2.size))
    for start in range(0, B, step):
        v = V[start:start + step]
        Z1 = np.matmul(bits1, v[:, :n1]) + bias  # (b, S1, K)
        Z2 = np.matmul(bits2, v[:, n1:])  # (b, S2, K)
        M1, M2 = Z1.max(axis=2), Z2.max(axis=2)
        D = np.matmul(np.exp(Z1 - M1[..., None]), np.exp(Z2 - M2[..., None]).transpose(0, 2, 1))
        small = D.min(axis=(1, 2)) < _MIN_D
        with np.errstate(divide="ignore"):
            logD = np.log(D, out=D)
        e = M1 @ P1 + M2 @ P2 + np.matmul(logD, P2) @ P1
        for i in np.flatnonzero(small):  # a logit spread of ~700 inside one half
            lse = _logsumexp(Z1[i][:, None, :] + Z2[i][None, :, :])
            e[i] = P1 @ lse @ P2
        out[start:start + len(v)] = e
    return out


def expected_log_softmax(net: MLP, cfg: DropoutConfig, X, *,
                         chunk_size: int | None = None) -> np.ndarray:
    """``E[log y]`` over every subnetwork, for a softmax output.

    Parameters
    ----------
    net : MLP
        Softmax output.
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)
    chunk_size : int, optional
        Masks of the enumerated layers per batch (memory grows with
        ``chunk_size * n_examples * max(width)``).

    Returns
    -------
    ndarray, shape (n_examples, n_outputs)
        The probability-weighted mean over masks of each subnetwork's
        log-softmax. ``softmax`` of it is the NWGM; it never exceeds the log
        of the NWGM (the NWGM's normaliser is at most 1).
    """
    if net.output != "softmax":
        raise ValueError(f"expected_log_softmax needs a softmax output; got {net.output!r}")
    X = check_input(net, X)
    check_config(net, cfg)
    q = unit_keep_probs(net, cfg)
    units = dropped_units(net, cfg)
    L = net.n_layers
    inner = L - 1 if L - 1 in units and cfg.layer_keep_prob(L - 1) < 1 else None
    outer_q = q.copy()
    if inner is not None:
        outer_q[units[inner]] = 1.0  # enumerated below by halves, not here
    width = max(net.sizes)
    if chunk_size is None:
        per_mask = X.shape[0] * (width if inner is None else 1)
        chunk_size = max(1, _BLOCK_ELEMENTS // per_mask)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    n, K = X.shape[0], net.sizes[-1]
    mean_logits, mean_lse, total = np.zeros((n, K)), np.zeros(n), 0.0
    if inner is not None:
        prefix = (MLP(net.weights[:-1], net.biases[:-1], net.hidden[:-1], "identity")
                  if L > 1 else None)
        W, b, q_in = net.weights[-1], net.biases[-1], cfg.layer_keep_prob(inner)
    for masks, log_probs in enumerate_masks(outer_q, chunk_size):
        w = np.exp(log_probs)
        mult = mask_multipliers(net, cfg, masks)
        if inner is None:
            z = forward(net, X, mult, logits=True)
            z = np.broadcast_to(z, (masks.shape[0], n, K))
            mean_logits += np.tensordot(w, z, axes=1)
            mean_lse += w @ _logsumexp(z)
        else:
            # The multiplier of the inner layer's kept units is its scale c (1 or 1/q).
            scale = mult.pop(inner)[:, None, :]
            if prefix is None:
                A = np.broadcast_to(X, (masks.shape[0], n, X.shape[1]))
            else:
                Z = forward(prefix, X, mult, logits=True)
                A = np.broadcast_to(ACTIVATION_FUNCTIONS[net.hidden[-1]](Z),
                                    (masks.shape[0],) + Z.shape[-2:])
            A = A * scale  # (c, n, h)
            mean_logits += np.tensordot(w, q_in * (A @ W) + b, axes=1)
            V = A.reshape(-1, A.shape[2])[:, :, None] * W  # (c * n, h, K)
            mean_lse += w @ _inner_expected_lse(V, b, q_in).reshape(masks.shape[0], n)
        total += w.sum()
    # The masks' probabilities sum to 1 up to rounding; divide it out.
    return (mean_logits - mean_lse[:, None]) / total
