"""Gaps between an ensemble prediction and a single forward pass.

All functions take the ensemble (the reference) first and the single pass
second, both of shape ``(n_examples, n_outputs)``. Sigmoid outputs are read
as independent Bernoulli probabilities (one per unit), softmax outputs as one
categorical distribution per example.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_float_array

PROBABILITY_OUTPUTS = ("sigmoid", "softmax")
BOUNDARY_ROUNDING = 8 * np.finfo(np.float64).eps
"""Probabilities at most this far from 0 are rounding of 0 (:func:`kl_divergence`)."""


def _pair(ensemble, single):
    p, q = as_float_array(ensemble, "ensemble"), as_float_array(single, "single")
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(
            f"ensemble and single must both have shape (n_examples, n_outputs); "
            f"got {p.shape} and {q.shape}"
        )
    return p, q


def _check_output(output):
    if not isinstance(output, str) or output not in PROBABILITY_OUTPUTS:
        raise ValueError(f"output must be one of {PROBABILITY_OUTPUTS}; got {output!r}")


def relative_gap(ensemble, single, std) -> np.ndarray:
    """``|ensemble - single| / std`` elementwise, shape ``(n_examples, n_outputs)``.

    Where the ensemble has no spread beyond rounding (``std`` at most 8 ulps
    of the values) the ratio is 0 if the gap is rounding noise too and
    ``inf`` otherwise: dividing one rounding error by another would report
    an arbitrary number.
    """
    p, q = _pair(ensemble, single)
    std = as_float_array(std, "std")
    try:
        std = np.broadcast_to(std, p.shape)
    except ValueError:
        raise ValueError(f"std must have the shape of ensemble {p.shape} (or broadcast to "
                         f"it); got shape {std.shape}") from None
    gap = np.abs(p - q)
    noise = 8 * np.finfo(np.float64).eps * np.maximum(np.abs(p), np.abs(q))
    out = np.where(gap <= noise, 0.0, np.inf)
    np.divide(gap, std, out=out, where=std > noise)
    return out


def _bernoulli_or_categorical(p, output):
    """Per-example distributions: ``(n, k, 2)`` for sigmoid, ``(n, k)`` for softmax."""
    return np.stack([p, 1.0 - p], axis=-1) if output == "sigmoid" else p


def kl_divergence(ensemble, single, output: str) -> np.ndarray:
    """KL(ensemble || single) per example, summed over sigmoid units.

    At the boundary: an outcome to which the single pass gives probability
    exactly 0 contributes 0 when the ensemble's probability of it is within
    rounding of 0 (at most :data:`BOUNDARY_ROUNDING` = 8 ulps of 1, about
    1.8e-15: a sigmoid of 1 - 4e-16 against a saturated 1.0), and ``inf``
    otherwise (a real disagreement).

    Returns
    -------
    ndarray, shape (n_examples,)
        ``inf`` where the single pass gives probability 0 to an outcome the
        ensemble gives more than rounding.
    """
    _check_output(output)
    p, q = _pair(ensemble, single)
    P, Q = _bernoulli_or_categorical(p, output), _bernoulli_or_categorical(q, output)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(P > 0, P * (np.log(P) - np.log(Q)), 0.0)
    terms = np.where((Q == 0) & (P <= BOUNDARY_ROUNDING), 0.0, terms)
    return terms.reshape(p.shape[0], -1).sum(axis=1)


def total_variation(ensemble, single, output: str) -> np.ndarray:
    """Total variation distance per example (mean over sigmoid units).

    Returns
    -------
    ndarray, shape (n_examples,)
    """
    _check_output(output)
    p, q = _pair(ensemble, single)
    if output == "sigmoid":
        return np.abs(p - q).mean(axis=1)
    return 0.5 * np.abs(p - q).sum(axis=1)


def disagreement(ensemble, single, output: str) -> np.ndarray:
    """Whether the predicted class differs, per example (0.0 or 1.0).

    Softmax: argmax. Sigmoid: the 0.5 threshold, averaged over units.

    Returns
    -------
    ndarray, shape (n_examples,)
    """
    _check_output(output)
    p, q = _pair(ensemble, single)
    if output == "sigmoid":
        return ((p > 0.5) != (q > 0.5)).mean(axis=1)
    return (p.argmax(axis=1) != q.argmax(axis=1)).astype(np.float64)


def gap_metrics(ensemble, single, *, std=None, output: str = "identity") -> dict:
    """Summary gaps between an ensemble prediction and a single pass.

    Parameters
    ----------
    ensemble, single : array_like, shape (n_examples, n_outputs)
    std : array_like, shape (n_examples, n_outputs), optional
        The ensemble's standard deviation; without it ``relative_gap`` is NaN.
    output : {"identity", "sigmoid", "softmax"}

    Returns
    -------
    dict
        ``max_abs_gap``, ``mean_abs_gap``, ``relative_gap`` (mean over
        examples and outputs), and for probability outputs the means over
        examples of ``kl``, ``total_variation`` and ``disagreement``.
    """
    if not isinstance(output, str) or output not in ("identity", *PROBABILITY_OUTPUTS):
        raise ValueError(
            f"output must be one of ('identity', {PROBABILITY_OUTPUTS[0]!r}, "
            f"{PROBABILITY_OUTPUTS[1]!r}); got {output!r}"
        )
    p, q = _pair(ensemble, single)
    if p.size == 0:
        raise ValueError(f"ensemble and single must hold at least one value; got shape {p.shape}")
    gap = np.abs(p - q)
    out = {
        "max_abs_gap": float(gap.max()),
        "mean_abs_gap": float(gap.mean()),
        "relative_gap": (float("nan") if std is None
                         else float(relative_gap(p, q, std).mean())),
    }
    if output in PROBABILITY_OUTPUTS:
        out["kl"] = float(kl_divergence(p, q, output).mean())
        out["total_variation"] = float(total_variation(p, q, output).mean())
        out["disagreement"] = float(disagreement(p, q, output).mean())
    return out


# ---------------------------------------------------------------------------
# Scores on the labels: ``f(probs, labels) -> float``.
#
# ``probs`` is ``(n, k)`` (a softmax's class probabilities, rows summing to 1)
# or ``(n,)`` / ``(n, 1)`` (one sigmoid unit: the probability of class 1);
# ``labels`` is ``(n,)`` integers in ``0..k-1`` (``0/1`` for a sigmoid).

ECE_BINS = 15
"""Default number of equal-width confidence bins of :func:`ece` and :func:`reliability_curve`."""

_EPS = 1e-12


def _probs_labels(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """Class-probability matrix ``(n, k)`` (a sigmoid column becomes two) and labels."""
    p = as_float_array(probs, "probs")
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must have shape (n, k) or (n,) with n >= 1; got {p.shape}")
    if (p < -1e-9).any() or (p > 1 + 1e-9).any():
        raise ValueError("probs must lie in [0, 1]; got values outside: pass probabilities, "
                         "not logits")
    y = np.asarray(labels)
    if y.shape != (p.shape[0],) or not np.issubdtype(y.dtype, np.integer) and not (
            np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
        raise ValueError(f"labels must be integers of shape ({p.shape[0]},); got dtype "
                         f"{y.dtype} and shape {y.shape}")
    y = y.astype(np.int64)
    if (y < 0).any() or (y >= p.shape[1]).any():
        raise ValueError(f"labels must lie in 0..{p.shape[1] - 1}; got {y.min()}..{y.max()}")
    return p, y


def error_rate(probs, labels) -> float:
    """Fraction of examples whose most probable class is not the label (ties: lowest index)."""
    p, y = _probs_labels(probs, labels)
    return float(np.mean(p.argmax(axis=1) != y))


def nll(probs, labels) -> float:
    """Mean negative log-likelihood ``-mean log p[label]`` (natural log; p clipped at 1e-12)."""
    p, y = _probs_labels(probs, labels)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], _EPS, None))))


def brier(probs, labels) -> float:
    """Mean over examples of ``sum_k (p_k - onehot_k)**2`` (a sigmoid counts both classes,
    so its score is twice the one-column ``(p - y)**2``)."""
    p, y = _probs_labels(probs, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(((p - onehot) ** 2).sum(axis=1)))


def reliability_curve(probs, labels, n_bins: int = ECE_BINS) -> dict:
    """Top-label reliability: per confidence bin, mean confidence, accuracy and count.

    Confidence is the largest class probability; bins are ``n_bins`` equal-width
    intervals of [0, 1] (the last closed: ``[1 - 1/n_bins, 1]``). Empty bins are
    reported with count 0 and NaN confidence and accuracy.

    Returns
    -------
    dict of ndarray, each of length ``n_bins``:
        ``lower``, ``upper`` (bin edges), ``confidence``, ``accuracy``, ``count``.
    """
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}")
    p, y = _probs_labels(probs, labels)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(idx, conf, n_bins) / count
        accuracy = np.bincount(idx, correct, n_bins) / count
    return {"lower": edges[:-1], "upper": edges[1:], "confidence": confidence,
            "accuracy": accuracy, "count": count}


def ece(probs, labels, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top label, ``sum_b (n_b / n) |acc_b - conf_b|``.

    Binning: ``n_bins`` (15 by default) equal-width bins of the top-label
    confidence on [0, 1], as :func:`reliability_curve`.
    """
    r = reliability_curve(probs, labels, n_bins)
    used = r["count"] > 0
    n = r["count"].sum()
    return float(np.sum(r["count"][used] / n
                        * np.abs(r["accuracy"][used] - r["confidence"][used])))


LABEL_SCORES = {"error_rate": error_rate, "nll": nll, "brier": brier, "ece": ece}
"""The label scores by name, each ``f(probs, labels) -> float``."""
