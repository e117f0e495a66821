"""Brute-force dropout ensemble, written from DESIGN.md and nothing else.

Independent of the package on purpose: it reads only the public attributes of
an ``MLP`` (weights, biases, hidden, output) and of a ``DropoutConfig``
(layers, scheme, ``layer_keep_prob``), and re-implements the forward pass,
the masks, their probabilities and every statistic with plain loops. It is
slow (one forward pass per mask) and meant for networks with at most ~12
dropped units.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


def _hidden(name, z):
    if name == "identity":
        return z
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        with np.errstate(over="ignore"):  # exp(-z) = inf gives the right 0.0
            return 1.0 / (1.0 + np.exp(-z))
    raise AssertionError(name)


def _log_output(output, z):
    """Log of the output probabilities from logits ``z``, shape (n, k)."""
    if output == "sigmoid":
        return -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)  # log y, log(1 - y)
    if output == "softmax":
        zmax = z.max(axis=1, keepdims=True)
        return z - zmax - np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)), None
    raise AssertionError(output)


def forward(net, X, layer_masks, scheme, keep_probs):
    """Logits of one subnetwork.

    ``layer_masks[l]`` is a 0/1 vector for each dropped activation layer
    ``l``; vanilla multiplies the activation by it, inverted by it / q.
    """
    A = np.asarray(X, dtype=np.float64)
    L = len(net.weights)
    for l in range(L):
        if l in layer_masks:
            m = np.asarray(layer_masks[l], dtype=np.float64)
            A = A * m if scheme == "vanilla" else A * m / keep_probs[l]
        Z = A @ net.weights[l] + net.biases[l]
        if l < L - 1:
            A = _hidden(net.hidden[l], Z)
    return Z


def output_of(output, z):
    if output == "identity":
        return z
    if output == "sigmoid":
        with np.errstate(over="ignore"):  # exp(-z) = inf gives the right 0.0
            return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def scaled_pass(net, cfg, X):
    """Test-time pass: vanilla multiplies each dropped layer by q, inverted does nothing."""
    layers = {l: np.full(net.weights[l].shape[0], cfg.layer_keep_prob(l)) for l in cfg.layers}
    if cfg.scheme == "inverted":
        layers = {}
    return output_of(net.output, forward(net, X, layers, "vanilla", None))


@dataclass
class Reference:
    mean: np.ndarray
    variance: np.ndarray
    geometric_mean: np.ndarray | None  # NWGM
    log_g: np.ndarray | None  # E[log y], the unnormalised geometric mean in log space
    outputs: list  # every subnetwork's output (probability-0 masks included)
    probs: list  # and its probability
    n_subnetworks: int  # masks of non-zero probability


def all_masks(net, cfg):
    """Every joint mask as ``(probability, {layer: 0/1 tuple})``, by plain product."""
    widths = [net.weights[l].shape[0] for l in cfg.layers]
    n_units = sum(widths)
    for bits in itertools.product((0, 1), repeat=n_units):
        prob, layer_masks, start = 1.0, {}, 0
        for l, w in zip(cfg.layers, widths):
            q = cfg.layer_keep_prob(l)
            m = bits[start:start + w]
            for kept in m:
                prob *= q if kept else 1.0 - q
            layer_masks[l] = m
            start += w
        yield prob, layer_masks


def brute_force(net, cfg, X) -> Reference:
    X = np.asarray(X, dtype=np.float64)
    q = {l: cfg.layer_keep_prob(l) for l in cfg.layers}
    probs, outputs, logs = [], [], []
    for prob, layer_masks in all_masks(net, cfg):
        z = forward(net, X, layer_masks, cfg.scheme, q)
        probs.append(prob)
        outputs.append(output_of(net.output, z))
        if net.output != "identity":
            logs.append(_log_output(net.output, z))
    assert math.isclose(math.fsum(probs), 1.0, rel_tol=1e-13)
    mean = sum(p * y for p, y in zip(probs, outputs))
    variance = sum(p * (y - mean) ** 2 for p, y in zip(probs, outputs))  # two-pass
    nwgm = log_g = None
    if net.output == "sigmoid":
        log_g = sum(p * ly for p, (ly, _) in zip(probs, logs))
        log_g1 = sum(p * l1y for p, (_, l1y) in zip(probs, logs))
        nwgm = np.exp(log_g - np.logaddexp(log_g, log_g1))  # G / (G + G')
    elif net.output == "softmax":
        log_g = sum(p * ly for p, (ly, _) in zip(probs, logs))
        top = log_g.max(axis=1, keepdims=True)
        nwgm = np.exp(log_g - top) / np.exp(log_g - top).sum(axis=1, keepdims=True)
    return Reference(mean, variance, nwgm, log_g, outputs, probs,
                     sum(1 for p in probs if p > 0))


def assert_close(actual, expected, tol=1e-12):
    """Equal to float precision: ``|a - e| <= tol * (1 + |e|)`` elementwise."""
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)
