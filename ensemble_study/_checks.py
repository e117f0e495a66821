"""Input validation shared by the modules.

Every check raises ``ValueError`` whose message names the parameter, what is
allowed and what was received, so that a bad call fails at the boundary and
never as a traceback from deep inside numpy.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_keep_prob(value, name: str = "keep_prob") -> float:
    """Return ``value`` as a float in (0, 1], or raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in (0, 1]; got {value!r}")
    value = float(value)
    if not (0.0 < value <= 1.0):
        raise ValueError(
            f"{name} must be in (0, 1] (the probability of keeping a unit; "
            f"1 means no dropout); got {value!r}"
        )
    return value


def check_rng(rng, name: str = "rng") -> np.random.Generator:
    """Normalise an int seed, a SeedSequence or a Generator to a Generator.

    ``None`` is refused on purpose: a draw without an explicit seed cannot be
    reproduced, so the caller must say which stream to use.
    """
    if rng is None:
        raise ValueError(
            f"{name} is required: pass an int seed or a numpy Generator, "
            f"e.g. {name}=0 or {name}=np.random.default_rng(0); got None"
        )
    if isinstance(rng, bool) or not isinstance(
        rng, (numbers.Integral, np.random.Generator, np.random.SeedSequence)
    ):
        raise ValueError(
            f"{name} must be an int seed, a numpy SeedSequence or Generator; "
            f"got {type(rng).__name__}"
        )
    return np.random.default_rng(rng)


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int >= 1, or raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


def check_X(X, n_features: int) -> np.ndarray:
    """Return ``X`` as a float64 array of shape ``(n_examples, n_features)``.

    Parameters
    ----------
    X : array_like, shape (n_examples, n_features)
    n_features : int
        The width of the network's input layer.
    """
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must be a numeric array; could not convert it ({exc})") from None
    if arr.ndim != 2:
        raise ValueError(
            f"X must be 2-D with shape (n_examples, {n_features}); got an array "
            f"with {arr.ndim} dimension(s), shape {arr.shape}"
        )
    if arr.shape[1] != n_features:
        raise ValueError(
            f"X must have {n_features} features (columns) to match the network's "
            f"input layer; got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError("X must hold at least one example; got shape " f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("X must contain only finite values; got NaN or inf")
    return arr
