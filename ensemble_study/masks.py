"""Joint dropout masks: enumerate them all (in chunks) or sample them.

A joint mask is a 0/1 row over all dropped units (ordered by layer, then by
unit). Its probability is the product over units of ``keep_prob`` (kept) or
``1 - keep_prob`` (dropped), computed as a sum of logs.

Units with ``keep_prob == 1`` are always kept: a mask that drops one has
probability 0, so enumeration lists only the ``2**n_free`` masks of non-zero
probability, where ``n_free`` counts the units with ``keep_prob < 1``. Masks
are listed in binary counting order over the free units, the first free unit
being the most significant bit.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ._checks import as_float_array, check_positive_int, check_rng


def _check_unit_keep_probs(keep_probs) -> np.ndarray:
    q = as_float_array(keep_probs, "keep_probs")
    if q.ndim != 1 or not np.all((q > 0) & (q <= 1)):
        raise ValueError(
            f"keep_probs must be a 1-D array of keep probabilities in (0, 1]; got "
            f"{' '.join(repr(q).split()) if q.size <= 8 else f'shape {q.shape}'}"
        )
    return q


def n_free_units(keep_probs) -> int:
    """How many units can be dropped (``keep_prob < 1``)."""
    return int(np.count_nonzero(_check_unit_keep_probs(keep_probs) < 1))


def n_masks(keep_probs) -> int:
    """The number ``2**n_free`` of joint masks with non-zero probability."""
    return 2 ** n_free_units(keep_probs)


def mask_log_probs(masks, keep_probs) -> np.ndarray:
    """Log-probability of each joint mask.

    Parameters
    ----------
    masks : array_like of 0/1 or bool, shape (n_masks, n_units)
    keep_probs : array_like, shape (n_units,)

    Returns
    -------
    ndarray, shape (n_masks,)
        ``-inf`` for a mask that drops a unit whose keep_prob is 1.
    """
    q = _check_unit_keep_probs(keep_probs)
    m = as_float_array(masks, "masks")
    if m.ndim != 2 or m.shape[1] != q.size or not np.all((m == 0) | (m == 1)):
        raise ValueError(f"masks must be 0/1 of shape (n_masks, {q.size}), one column per "
                         f"unit of keep_probs; got shape {m.shape}")
    m = m.astype(bool)
    with np.errstate(divide="ignore"):
        log_keep, log_drop = np.log(q), np.log1p(-q)
    return np.where(m, log_keep, log_drop).sum(axis=1)


def enumerate_masks(keep_probs, chunk_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every joint mask of non-zero probability, ``chunk_size`` at a time.

    Memory is bounded by the chunk: the ``2**n_free`` masks are never held at
    once.

    Parameters
    ----------
    keep_probs : array_like, shape (n_units,)
    chunk_size : int
        Masks per chunk (the last chunk may be shorter).

    Yields
    ------
    masks : ndarray of bool, shape (n_chunk, n_units)
    log_probs : ndarray, shape (n_chunk,)
    """
    q = _check_unit_keep_probs(keep_probs)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    for index in range(n_chunks(q, chunk_size)):
        yield _chunk(q, chunk_size, index)


def n_chunks(keep_probs, chunk_size: int) -> int:
    """How many chunks :func:`enumerate_masks` yields."""
    return -(-n_masks(keep_probs) // check_positive_int(chunk_size, "chunk_size"))


def mask_chunk(keep_probs, chunk_size: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk ``index`` of :func:`enumerate_masks`, built directly from its index.

    A worker given only the index rebuilds the same masks and log-probabilities,
    bit for bit, without enumerating the chunks before it.

    Returns
    -------
    masks : ndarray of bool, shape (n_chunk, n_units)
    log_probs : ndarray, shape (n_chunk,)
    """
    q = _check_unit_keep_probs(keep_probs)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if not 0 <= index < n_chunks(q, chunk_size):
        raise ValueError(f"index must be in [0, {n_chunks(q, chunk_size)}) for "
                         f"chunk_size={chunk_size}; got {index!r}")
    return _chunk(q, chunk_size, index)


def _chunk(q: np.ndarray, chunk_size: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    free = np.flatnonzero(q < 1)
    n_free = free.size
    # Bit j of the mask index (most significant first) is free unit j.
    shifts = np.arange(n_free - 1, -1, -1, dtype=np.int64)
    log_keep, log_drop = np.log(q[free]), np.log1p(-q[free])
    start = index * chunk_size
    idx = np.arange(start, min(start + chunk_size, 2**n_free), dtype=np.int64)
    bits = ((idx[:, None] >> shifts) & 1).astype(bool)
    masks = np.ones((idx.size, q.size), dtype=bool)
    masks[:, free] = bits
    log_probs = np.where(bits, log_keep, log_drop).sum(axis=1)
    return masks, log_probs


def sample_masks(keep_probs, n_samples: int, rng) -> np.ndarray:
    """Draw joint masks, each unit kept independently with its keep_prob.

    Parameters
    ----------
    keep_probs : array_like, shape (n_units,)
    n_samples : int >= 1
    rng : int, SeedSequence or numpy.random.Generator

    Returns
    -------
    ndarray of bool, shape (n_samples, n_units)
    """
    q = _check_unit_keep_probs(keep_probs)
    n_samples = check_positive_int(n_samples, "n_samples")
    return check_rng(rng).random((n_samples, q.size)) < q
