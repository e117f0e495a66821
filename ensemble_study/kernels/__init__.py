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
threads; they differ from each other by rounding only. What they share
(the plan, the accumulator, the chunk runner) is in ``plan``; the choice
between them is made here only. The same switch selects the Laplace integral
of :mod:`ensemble_study.laplace` (numpy reference there, numba kernel in
``laplace_compiled``).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..dropout import DropoutConfig
from ..masks import enumerate_masks
from ..network import MLP
from . import reference
from .plan import _BLOCK_ELEMENTS, Moments, _Plan, default_threads, run_chunks, shortcut_plan

BACKENDS = ("numba", "numpy")
ENV_VAR = "ENSEMBLE_STUDY_KERNELS"

__all__ = [
    "BACKENDS", "ENV_VAR", "Moments", "backend", "conditional_moments", "default_threads",
    "generic_chunk", "generic_task", "n_outer_chunks", "outer_per_chunk", "run_chunks",
    "shortcut_chunk", "shortcut_moments", "shortcut_plan", "shortcut_task",
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
    return reference.conditional_moments(net, plan, X, masks, arithmetic=arithmetic,
                                          variance=variance, pairs_per_block=pairs_per_block)


def generic_task(net, X, multipliers_of):
    """A chunk task of the generic path (see :func:`reference.generic_task`)."""
    if backend() == "numba":
        from . import compiled

        return compiled.generic_task(net, X, multipliers_of)
    return reference.generic_task(net, X, multipliers_of)


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


# --- the shortcut path's driver ------------------------------------------------------

def shortcut_moments(
    net: MLP,
    cfg: DropoutConfig,
    X: np.ndarray,
    plan: _Plan,
    *,
    chunk_size: int | None = None,
    arithmetic: bool = True,
    variance: bool = True,
    n_threads: int | None = None,
    progress=None,
    limit_blas: bool = True,
) -> Moments:
    """Exact moments by the shortcut path (see the module docstring).

    Parameters
    ----------
    X : ndarray, shape (n_examples, n_features), validated
    plan : from :func:`shortcut_plan`
    chunk_size : int, optional
        Sets the memory, which grows with ``chunk_size * n_examples``: a chunk
        holds ``max(1, chunk_size // 2**n_inner)`` outer masks when the inner
        masks are enumerated (else ``max(1, chunk_size // (width + 4 n_out))``),
        and one softmax block ``max(1, chunk_size * n_examples // 2**n_inner)``
        (outer mask, example) pairs.
    arithmetic : bool
        Compute the arithmetic mean of sigmoid/softmax outputs (the only
        statistic that needs the inner masks enumerated); if False, ``mean``
        and ``m2`` of the result hold the logits' statistics only.
    variance : bool
        Compute the variance (``m2``); if False ``m2`` is meaningless.
    progress : callable, optional
        Called with the number of chunks done.
    limit_blas : bool
        Hold BLAS to one thread (see :func:`run_chunks`).

    Returns
    -------
    Moments
    """
    chunk_size = shortcut_chunk(plan, X.shape[0], chunk_size)
    task = shortcut_task(net, plan, X, chunk_size, arithmetic, variance)
    chunks = enumerate_masks(plan.outer_q, outer_per_chunk(net, plan, chunk_size, arithmetic))
    n_threads = default_threads() if n_threads is None else n_threads
    n_chunks = n_outer_chunks(net, plan, chunk_size, arithmetic)
    if _compiled() and arithmetic and net.output == "softmax":
        from . import shape

        # Before the threads start: a calibration (once per host) is timed on a quiet pool.
        n_outer = 2 ** int(np.count_nonzero(plan.outer_q < 1))
        shape.current(work=float(n_outer) * X.shape[0] * 2**plan.n_inner)
    try:
        return run_chunks(task, chunks, n_threads if n_chunks > 1 else 1, progress,
                          limit_blas=limit_blas)
    finally:
        reference.release_scratch()  # the caller's thread keeps no scratch


def shortcut_chunk(plan: _Plan, n_examples: int, chunk_size: int | None = None) -> int:
    """``chunk_size`` for :func:`shortcut_moments`: the default keeps one block
    array near ``_BLOCK_ELEMENTS`` elements (the compiled kernels hold no
    such block; their chunks are 32 times larger: fewer Python calls)."""
    if chunk_size is not None:
        return chunk_size
    return max(1, (_BLOCK_ELEMENTS * (32 if _compiled() else 1)) // n_examples)


def _compiled() -> bool:
    return backend() == "numba"


def shortcut_task(net: MLP, plan: _Plan, X: np.ndarray, chunk_size: int,
                  arithmetic: bool = True, variance: bool = True):
    """The shortcut path's chunk task of the backend in use (chunks of :func:`shortcut_chunk`)."""
    if _compiled():
        from . import compiled

        return compiled.shortcut_task(net, plan, X, arithmetic, variance)
    pairs_per_block = max(1, chunk_size * X.shape[0] // 2**plan.n_inner)
    return reference.shortcut_task(net, plan, X, arithmetic, variance, pairs_per_block)


def outer_per_chunk(net: MLP, plan: _Plan, chunk_size: int, arithmetic: bool) -> int:
    """Outer masks per chunk of the shortcut path (each a block of inner masks)."""
    if arithmetic and net.output != "identity":  # each outer mask is a block of 2^n_inner
        per = max(1, chunk_size // 2**plan.n_inner)
    else:  # analytic over the inner layer: activations, logits and moments per outer mask
        per = max(1, chunk_size // (plan.n_inner + 4 * net.sizes[-1]))
    # Compiled: a power of two, so that 2^n outer masks split into equal chunks
    # (two threads then finish together).
    return 2 ** int(math.log2(per)) if _compiled() else per


def n_outer_chunks(net: MLP, plan: _Plan, chunk_size: int, arithmetic: bool = True) -> int:
    """Chunks :func:`shortcut_moments` runs (for a progress bar)."""
    n_outer = 2 ** int(np.count_nonzero(plan.outer_q < 1))
    return math.ceil(n_outer / outer_per_chunk(net, plan, chunk_size, arithmetic))
