"""Input validation shared by the modules.

Every check raises ``ValueError`` whose message names the parameter, what is
allowed and what was received, so that a bad call fails at the boundary and
never as a traceback from deep inside numpy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping

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
    if isinstance(rng, numbers.Integral) and rng < 0:
        # numpy's own message ("expected non-negative integer") does not say which argument.
        raise ValueError(f"{name} must be a non-negative int seed (or a Generator); got {rng!r}")
    return np.random.default_rng(rng)


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int >= 1, or raise ``ValueError``."""
    return check_int(value, name, low=1)


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int in ``[low, high]``, or raise ``ValueError``.

    Only integers are accepted (numpy's included): a float such as 2.7 or
    2.0 is refused rather than truncated, and so is a bool.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer{_int_range(low, high)}; got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{_int_range(low, high)}; got {value!r}")
    return int(value)


def _int_range(low, high) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    return "" if high is None else f" <= {high}"


def check_real(value, name: str, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a finite float in the given interval, or raise ``ValueError``.

    NaN and infinities are refused whatever the interval: a NaN compares
    False with every bound and would slip through a plain range check.
    """
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok:
        v = float(value)
        ok = (math.isfinite(v)
              and (low is None or (low < v if low_open else low <= v))
              and (high is None or (v < high if high_open else v <= high)))
    if not ok:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        bracket = f"{'(' if low_open or low is None else '['}{lo}, {hi}" \
                  f"{')' if high_open or high is None else ']'}"
        raise ValueError(f"{name} must be a finite number in {bracket}; got {value!r}")
    return v


def is_sequence(value) -> bool:
    """Whether ``value`` is a sequence of items (not a string, a mapping or a 0-d array)."""
    if isinstance(value, (str, bytes, Mapping)):
        return False
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    return isinstance(value, Iterable)


def check_choice(value, allowed, name: str):
    """Return ``value`` if it is one of ``allowed`` (compared as strings), else ``ValueError``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}; got {value!r}")
    return value


def as_float_array(value, name: str) -> np.ndarray:
    """``value`` as a float64 array, refusing what ``np.asarray`` would silently mangle.

    Complex values (numpy drops the imaginary part with only a warning),
    strings (numpy parses ``"1.5"``), ragged nesting and other objects raise
    a ``ValueError`` naming ``name``. Finiteness is left to the caller.
    """
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a numeric array; got a string {value!r}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a numeric array of a regular shape (not ragged nested "
            f"lists); got {_describe(value)}"
        ) from None
    if arr.dtype.kind == "c":
        raise ValueError(f"{name} must be real; got a complex array of shape {arr.shape}")
    if arr.dtype.kind == "O" and arr.size:
        kinds = {np.asarray(v).dtype.kind for v in arr.ravel()}
        if kinds <= set("biuf"):  # a plain list of Python numbers that numpy kept as objects
            arr = arr.astype(np.float64)
    if arr.dtype.kind not in "biuf" and not (arr.dtype.kind == "O" and arr.size == 0):
        raise ValueError(
            f"{name} must be a numeric array (int, float or bool); got dtype {arr.dtype} "
            f"from {_describe(value)}"
        )
    return arr.astype(np.float64)


def _describe(value) -> str:
    text = " ".join(repr(value).split())
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def check_X(X, n_features: int, name: str = "X") -> np.ndarray:
    """Return ``X`` as a float64 array of shape ``(n_examples, n_features)``.

    Parameters
    ----------
    X : array_like, shape (n_examples, n_features)
    n_features : int
        The width of the network's input layer.
    name : str
        The parameter named in errors.
    """
    arr = as_float_array(X, name)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n_examples, {n_features}); got an array "
            f"with {arr.ndim} dimension(s), shape {arr.shape}"
        )
    if arr.shape[1] != n_features:
        raise ValueError(
            f"{name} must have {n_features} features (columns) to match the network's "
            f"input layer; got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example; got shape " f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values; got NaN or inf")
    return arr
