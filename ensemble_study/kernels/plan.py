"""What the exact kernels share: the shortcut plan, the moment accumulator, the chunk runner.

:mod:`~ensemble_study.kernels.reference` (numpy) and
:mod:`~ensemble_study.kernels.compiled` (numba) are two implementations of
the same algorithms on top of this module; neither imports the other's
kernels, and :mod:`ensemble_study.kernels` chooses between them.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from ..dropout import DropoutConfig
from ..network import MLP

# Elements of one (pair x inner block) array in the softmax kernel (4 MiB). Smaller
# blocks were measured slower, and slower still on two threads (more numpy calls
# per subnetwork: Python overhead and GIL hand-offs); 2**20 gained nothing more.
_BLOCK_ELEMENTS = 2**19
# Inner blocks of more masks than this run on the chunked numpy kernels even when
# the compiled ones are selected: the compiled softmax and sigmoid kernels hold
# two arrays of 2**width doubles per (outer mask, example) pair, 64 MiB at
# 2**22, which no chunk size bounds (1.2 GB at 26 units, 4.3 GB at 28).
COMPILED_MAX_INNER = 2**22
# Below exp(-340) a table product could make 1 / D**2 overflow (e^680 < 1.8e308).
_MIN_LOG_FACTOR = -340.0
# Recompute a pair directly when E[y^2] / Var exceeds this (cancellation).
_MAX_CANCELLATION = 1e4


def default_threads() -> int:
    """Threads used over chunks: the CPUs this process may run on, at most 2.

    The environment variable ``ENSEMBLE_STUDY_THREADS`` (a positive integer)
    overrides it; the study executor sets it to 1 in its worker processes,
    which already share the cores between them. Results never depend on it.
    """
    env = os.environ.get("ENSEMBLE_STUDY_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"ENSEMBLE_STUDY_THREADS must be a positive integer; got {env!r}")
        return int(env)
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(2, n))


class Moments:
    """Weighted mean and spread of batches of outputs, merged pairwise.

    Each batch contributes its weighted mean and its weighted sum of squared
    deviations (plus, optionally, a within-member variance: each member is
    then itself a group, e.g. an inner block summarised analytically).
    Batches are merged with Chan et al.'s update, exact in exact arithmetic
    and free of the cancellation of ``E[y^2] - E[y]^2``.
    """

    def __init__(self):
        self.weight = 0.0
        self.mean = self.m2 = self.mean_logits = None

    def add(self, w, y, z, within=None) -> None:
        """Add a batch: weights ``(c,)``, outputs and logits ``(c, n, k)``.

        ``within`` (``(c, n, k)``), if given, is each member's own variance.
        """
        wc = float(w.sum())
        if wc == 0.0:
            return
        batch = Moments()
        batch.weight = wc
        batch.mean = np.tensordot(w, y, axes=1) / wc
        batch.m2 = np.tensordot(w, (y - batch.mean) ** 2, axes=1)
        if within is not None:
            batch.m2 += np.tensordot(w, within, axes=1)
        batch.mean_logits = np.tensordot(w, z, axes=1) / wc
        self.merge(batch)

    def merge(self, other: Moments) -> None:
        """Merge another accumulator into this one."""
        if other.mean is None:
            return
        if self.mean is None:
            self.weight, self.mean, self.m2, self.mean_logits = (
                other.weight, other.mean, other.m2, other.mean_logits)
            return
        total = self.weight + other.weight
        share = other.weight / total
        delta = other.mean - self.mean
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + other.m2 + delta**2 * (self.weight * share)
        self.mean_logits = self.mean_logits + (other.mean_logits - self.mean_logits) * share
        self.weight = total


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    # Built once: inspecting the loaded libraries costs ~0.2 ms, a limit then 3 us.
    return ThreadpoolController()


def run_chunks(task: Callable, chunks: Iterable, n_threads: int, progress=None, *,
               limit_blas: bool = True) -> Moments:
    """``task(chunk) -> Moments`` over every chunk, merged in chunk order.

    At most ``2 * n_threads`` chunks are in flight, so memory is bounded by
    the chunk size whatever the number of chunks. BLAS is held to one thread
    (threadpoolctl) unless ``limit_blas`` is False: the products are small,
    and on them BLAS threads were measured to lose, up to 50x on a busy
    machine, against one BLAS thread inside threads over chunks.
    """
    acc = Moments()

    def done(result):
        acc.merge(result)
        if progress is not None:
            progress(1)

    limits = (_blas_controller().limit(limits=1, user_api="blas") if limit_blas
              else nullcontext())
    with limits:
        if n_threads <= 1:
            for chunk in chunks:
                done(task(chunk))
            return acc
        with ThreadPoolExecutor(n_threads) as pool:
            pending = deque()
            for chunk in chunks:
                pending.append(pool.submit(task, chunk))
                if len(pending) >= 2 * n_threads:
                    done(pending.popleft().result())
            while pending:
                done(pending.popleft().result())
    return acc


# ---------------------------------------------------------------------------
# The shortcut path's split.


@dataclass(frozen=True)
class _Plan:
    """How the shortcut path splits the dropped layers."""

    inner_q: float
    inner_scale: float  # c: 1 (vanilla) or 1 / q (inverted)
    outer: DropoutConfig | None  # the other dropped layers (None: none)
    outer_q: np.ndarray  # keep_prob of every outer unit
    prefix: MLP | None  # layers 0..L-2, identity output (None when L == 1)
    n_inner: int


def shortcut_plan(net: MLP, cfg: DropoutConfig) -> _Plan | None:
    """The shortcut split, or None when the generic path must be used.

    The shortcut applies when the last dropped layer with ``keep_prob < 1``
    is ``L - 1``, the layer that feeds the output (for a network with no
    hidden layer: the input).
    """
    L = net.n_layers
    free = [l for l in cfg.layers if cfg.layer_keep_prob(l) < 1]
    if not free or free[-1] != L - 1:
        return None
    q = cfg.layer_keep_prob(L - 1)
    outer_layers = [l for l in cfg.layers if l != L - 1]
    outer = (DropoutConfig({l: cfg.layer_keep_prob(l) for l in outer_layers},
                           scheme=cfg.scheme) if outer_layers else None)
    outer_q = (np.concatenate([np.full(net.sizes[l], cfg.layer_keep_prob(l))
                               for l in outer_layers]) if outer_layers else np.ones(0))
    prefix = (MLP(net.weights[:-1], net.biases[:-1], net.hidden[:-1], "identity")
              if L > 1 else None)
    return _Plan(q, 1.0 if cfg.scheme == "vanilla" else 1.0 / q, outer, outer_q,
                 prefix, net.sizes[L - 1])


def _outer_multipliers(net: MLP, plan: _Plan, masks: np.ndarray) -> dict:
    """The outer masks ``(c, n_outer)`` as each outer layer's multipliers, ``{l: (c, width)}``."""
    mults, start = {}, 0
    for l in plan.outer.layers if plan.outer is not None else ():
        width = net.sizes[l]
        m = masks[:, start:start + width].astype(np.float64)
        start += width
        mults[l] = m / plan.outer.layer_keep_prob(l) if plan.outer.scheme == "inverted" else m
    return mults
