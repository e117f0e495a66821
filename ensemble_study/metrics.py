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

    Returns
    -------
    ndarray, shape (n_examples,)
        ``inf`` where the single pass gives probability 0 to an outcome the
        ensemble does not.
    """
    _check_output(output)
    p, q = _pair(ensemble, single)
    P, Q = _bernoulli_or_categorical(p, output), _bernoulli_or_categorical(q, output)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(P > 0, P * (np.log(P) - np.log(Q)), 0.0)
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


# --- scores on class labels (sigmoid: one unit, labels 0/1; softmax: labels 0..k-1) ----

ECE_BINS = 15
"""Equal-width confidence bins of :func:`ece` over [0, 1]."""


def _labelled(probs, y, output):
    _check_output(output)
    p = as_float_array(probs, "probs")
    y = np.asarray(y)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probs must have shape (n_examples, n_outputs) and y shape "
                         f"(n_examples,); got {p.shape} and {y.shape}")
    if output == "sigmoid":
        if p.shape[1] != 1:
            raise ValueError(f"sigmoid scores need one output unit; got {p.shape[1]}")
        p = np.concatenate([1.0 - p, p], axis=1)  # as a two-class categorical
    return p, y.astype(np.int64)


def error_rate(probs, y, output: str) -> float:
    """Fraction of examples whose most probable class is not the label."""
    p, y = _labelled(probs, y, output)
    return float(np.mean(p.argmax(axis=1) != y))


def nll(probs, y, output: str) -> float:
    """Mean ``-log p(label)`` (natural log), probabilities floored at 1e-12."""
    p, y = _labelled(probs, y, output)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12))))


def brier(probs, y, output: str) -> float:
    """Mean over examples of ``sum_k (p_k - [y == k])**2`` (two classes for a sigmoid)."""
    p, y = _labelled(probs, y, output)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def ece(probs, y, output: str, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-class confidence.

    The confidence ``max_k p_k`` is binned into ``n_bins`` equal-width bins
    of [0, 1] (right-closed, the first includes 0); ECE is
    ``sum_b (n_b / n) |accuracy_b - mean confidence_b|``.
    """
    p, y = _labelled(probs, y, output)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        sel = bins == b
        total += sel.sum() * abs(np.mean(pred[sel] == y[sel]) - np.mean(conf[sel]))
    return float(total / len(y))
