"""The dropout ensemble: exact (every mask) or sampled (K masks).

The ensemble mean is the probability-weighted arithmetic mean of the
subnetworks' outputs. For sigmoid and softmax outputs the normalized weighted
geometric mean (NWGM) is reported too. In log space it needs only the mean
logits: for softmax ``E[log y_i] = E[z_i] - E[logsumexp(z)]`` and the second
term is the same for every class, so ``NWGM = softmax(E[z])``; for a sigmoid
unit ``log G - log G' = E[log y - log(1 - y)] = E[z]``, so
``NWGM = sigmoid(E[z])``. The tests check both against the definition.

:func:`exact_ensemble` picks the fastest exact path by itself (see
``ensemble_study.kernels``): when the last dropped layer with keep_prob < 1
feeds the output layer, the statistics are computed over that layer's mask
algebraically (analytic for the identity output and the NWGM, two-half
product tables for the softmax/sigmoid mean and variance) and only the other
dropped layers are enumerated; otherwise every mask's forward pass is run in
chunks. Chunks run on up to two threads; results do not depend on them.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ._checks import check_positive_int, check_rng
from .dropout import DropoutConfig, check_config, mask_multipliers, unit_keep_probs
from .kernels import (
    default_threads,
    generic_chunk,
    generic_task,
    n_outer_chunks,
    run_chunks,
    shortcut_chunk,
    shortcut_moments,
    shortcut_plan,
)
from .masks import enumerate_masks, n_free_units, sample_masks
from .network import MLP, OUTPUT_FUNCTIONS, check_input, forward

# Elements of the largest intermediate array a chunk may allocate (2 MiB):
# 16 MiB arrays were measured 1.7x slower per subnetwork (cache misses, page faults).
_CHUNK_ELEMENTS = 2**18


@dataclass(frozen=True, eq=False)
class EnsembleResult:
    """Statistics of the subnetworks' outputs.

    Attributes
    ----------
    mean : ndarray, shape (n_examples, n_outputs)
        Probability-weighted arithmetic mean (equal weights when sampled).
    geometric_mean : ndarray, shape (n_examples, n_outputs), or None
        NWGM for sigmoid (per unit) and softmax outputs; None for identity.
    variance : ndarray, shape (n_examples, n_outputs)
        Probability-weighted variance of the outputs (for a sampled
        ensemble, the variance of its K members, ddof=0).
    n_subnetworks : int
        Masks of non-zero probability (exact) or K (sampled).
    method : {"exact", "sampled"}
    stderr : ndarray, shape (n_examples, n_outputs), or None
        Sampled only: standard error of ``mean`` as an estimate of the exact
        mean, ``std(ddof=1) / sqrt(K)``; NaN when K = 1.
    """

    mean: np.ndarray
    geometric_mean: np.ndarray | None
    variance: np.ndarray
    n_subnetworks: int
    method: str
    stderr: np.ndarray | None = None


def subnetwork_outputs(net: MLP, cfg: DropoutConfig, X, masks, *, logits: bool = False):
    """Train-time forward pass of each given joint mask.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)
    masks : array_like of 0/1 or bool, shape (n_masks, n_dropped_units)
    logits : bool
        Return output pre-activations instead of outputs.

    Returns
    -------
    ndarray, shape (n_masks, n_examples, n_outputs)
    """
    X = check_input(net, X)
    return forward(net, X, mask_multipliers(net, cfg, masks), logits=logits)


def _geometric_mean(output: str, mean_logits: np.ndarray):
    return None if output == "identity" else OUTPUT_FUNCTIONS[output](mean_logits)


def _default_chunk(net: MLP, n_examples: int) -> int:
    return max(1, _CHUNK_ELEMENTS // (n_examples * max(net.sizes)))


@contextmanager
def _progress_bar(progress: bool, n_chunks: int, label: str):
    """Yield an ``update(n_done)`` callable drawing a bar on stderr, or None."""
    if not progress:
        yield None
        return
    import click

    with click.progressbar(length=n_chunks, label=label, file=sys.stderr) as bar:
        yield bar.update


def exact_ensemble(
    net: MLP,
    cfg: DropoutConfig,
    X,
    *,
    chunk_size: int | None = None,
    max_subnetworks: int = 2**24,
    progress: bool = False,
) -> EnsembleResult:
    """Average over every subnetwork, weighted by its mask's probability.

    Every path is exact (no sampling, no approximation); which one runs is
    chosen automatically (module docstring). Memory is bounded by the chunk
    size, whatever the number of subnetworks.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)
    chunk_size : int, optional
        Masks evaluated per batch; memory grows with
        ``chunk_size * n_examples * max(width)``. By default chosen so that
        one intermediate array stays near 2 MiB (on the shortcut path, the
        last dropped layer's 2**width masks of one outer mask and example
        are tiled to the same size).
    max_subnetworks : int
        Refuse to enumerate more subnetworks than this.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    EnsembleResult
        ``method == "exact"``; ``n_subnetworks == 2**n_free`` where
        ``n_free`` counts dropped units with ``keep_prob < 1``.
    """
    X = check_input(net, X)
    check_config(net, cfg)
    q = unit_keep_probs(net, cfg)
    n_free = n_free_units(q)
    total = 2**n_free
    if total > max_subnetworks:
        raise ValueError(
            f"exact_ensemble would enumerate 2**{n_free} = {total:,} subnetworks, more than "
            f"max_subnetworks={max_subnetworks:,}; raise max_subnetworks, or estimate the "
            f"ensemble with sample_ensemble(net, cfg, X, n_samples, rng)"
        )
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    label = f"{total:,} subnetworks"
    plan = shortcut_plan(net, cfg)
    if plan is not None:
        size = shortcut_chunk(plan, X.shape[0], chunk_size)
        with _progress_bar(progress, n_outer_chunks(net, plan, size), label) as update:
            acc = shortcut_moments(net, cfg, X, plan, chunk_size=size, progress=update)
    else:
        size = generic_chunk(net, X.shape[0], chunk_size)
        n_chunks = math.ceil(total / size)
        chunks = ((m, np.exp(lp)) for m, lp in enumerate_masks(q, size))
        task = generic_task(net, X, lambda m: mask_multipliers(net, cfg, m))
        with _progress_bar(progress, n_chunks, label) as update:
            acc = run_chunks(task, chunks, default_threads() if n_chunks > 1 else 1, update)
    # Masks of non-zero probability sum to 1 up to rounding; divide it out.
    return EnsembleResult(
        mean=acc.mean,
        geometric_mean=_geometric_mean(net.output, acc.mean_logits),
        variance=acc.m2 / acc.weight,
        n_subnetworks=total,
        method="exact",
    )


def sample_ensemble(
    net: MLP,
    cfg: DropoutConfig,
    X,
    n_samples: int,
    rng,
    *,
    chunk_size: int | None = None,
) -> EnsembleResult:
    """A K-member ensemble of sampled subnetworks (Monte Carlo dropout).

    The K masks are drawn once and shared by every example, so the result is
    the prediction of one K-member ensemble, and ``mean`` is an unbiased
    estimate of the exact ensemble mean.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)
    n_samples : int >= 1
        K, the number of subnetworks drawn.
    rng : int, SeedSequence or numpy.random.Generator
    chunk_size : int, optional
        Masks evaluated per batch (see :func:`exact_ensemble`).

    Returns
    -------
    EnsembleResult
        ``method == "sampled"``, ``n_subnetworks == K``, with ``stderr``.
    """
    X = check_input(net, X)
    check_config(net, cfg)
    n_samples = check_positive_int(n_samples, "n_samples")
    gen = check_rng(rng)
    masks = sample_masks(unit_keep_probs(net, cfg), n_samples, gen)
    chunk_size = (_default_chunk(net, X.shape[0]) if chunk_size is None
                  else check_positive_int(chunk_size, "chunk_size"))
    # The generic path's chunk task: K sampled subnetworks cost what K
    # enumerated ones cost on that path, on the same threads.
    task = generic_task(net, X, lambda m: mask_multipliers(net, cfg, m))
    chunks = ((masks[s:s + chunk_size], np.ones(min(chunk_size, n_samples - s)))
              for s in range(0, n_samples, chunk_size))
    n_chunks = math.ceil(n_samples / chunk_size)
    acc = run_chunks(task, chunks, default_threads() if n_chunks > 1 else 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        stderr = (np.sqrt(acc.m2 / (n_samples - 1) / n_samples) if n_samples > 1
                  else np.full_like(acc.mean, np.nan))
    return EnsembleResult(
        mean=acc.mean,
        geometric_mean=_geometric_mean(net.output, acc.mean_logits),
        variance=acc.m2 / n_samples,
        n_subnetworks=n_samples,
        method="sampled",
        stderr=stderr,
    )
