"""Exact-enumeration kernels: compiled (numba) beside the numpy reference.

Two implementations of the same algorithms (``reference`` documents them):

* ``compiled`` (the default): numba kernels, compiled on first use and
  cached on disk (``NUMBA_CACHE_DIR`` moves the cache);
* ``reference``: the numpy implementation the compiled kernels are tested
  against. Set the environment variable ``ENSEMBLE_STUDY_KERNELS=numpy`` to
  run it (for debugging, or where numba is not available: then it is used
  whatever the variable says).

The variable is read at every call, so it can be changed between calls.
Both are exact to float precision and neither depends on the number of
threads; they differ from each other by rounding only.
"""

from __future__ import annotations

import os

from .reference import (
    Moments,
    default_threads,
    n_outer_chunks,
    run_chunks,
    shortcut_chunk,
    shortcut_moments,
    shortcut_plan,
)
from .reference import conditional_moments as _reference_conditional_moments
from .reference import generic_task as _reference_generic_task

BACKENDS = ("numba", "numpy")
ENV_VAR = "ENSEMBLE_STUDY_KERNELS"

__all__ = [
    "BACKENDS", "ENV_VAR", "Moments", "backend", "conditional_moments", "default_threads",
    "generic_chunk", "generic_task", "n_outer_chunks", "run_chunks", "shortcut_chunk",
    "shortcut_moments", "shortcut_plan",
]


def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def backend() -> str:
    """The kernels in use: ``"numba"`` or ``"numpy"`` (from ``ENSEMBLE_STUDY_KERNELS``)."""
    name = os.environ.get(ENV_VAR, "numba").strip().lower() or "numba"
    if name not in BACKENDS:
        raise ValueError(f"{ENV_VAR} must be one of {', '.join(BACKENDS)}; got {name!r}")
    if name == "numba" and not _numba_available():
        return "numpy"
    return name


def conditional_moments(net, plan, X, masks, *, arithmetic: bool = True, variance: bool = True,
                        pairs_per_block: int | None = None):
    """Exact moments over the inner layer's mask, one set per given outer mask.

    See :func:`ensemble_study.kernels.reference.conditional_moments` for the
    parameters and the returned ``(mean, within, mean_logits)``, each
    ``(c, n_examples, n_outputs)``. ``pairs_per_block`` bounds the numpy
    path's memory; the compiled kernels hold one pair's tables at a time and
    ignore it.
    """
    if backend() == "numba":
        from . import compiled

        return compiled.conditional_moments(net, plan, X, masks, arithmetic=arithmetic,
                                            variance=variance)
    return _reference_conditional_moments(net, plan, X, masks, arithmetic=arithmetic,
                                          variance=variance, pairs_per_block=pairs_per_block)


def generic_task(net, X, multipliers_of):
    """A chunk task of the generic path (see :func:`reference.generic_task`)."""
    if backend() == "numba":
        from . import compiled

        return compiled.generic_task(net, X, multipliers_of)
    return _reference_generic_task(net, X, multipliers_of)


def generic_chunk(net, n_examples: int, chunk_size: int | None = None) -> int:
    """Joint masks per chunk of the generic path.

    The numpy path holds ``chunk_size * n_examples * max(width)`` elements
    (2 MiB by default); the compiled path holds only the chunk's masks and
    per-example state, so its default chunks are larger (fewer Python calls).
    """
    if chunk_size is not None:
        return chunk_size
    per = n_examples * max(net.sizes)
    return max(1, (2**22 if backend() == "numba" else 2**18) // per)
