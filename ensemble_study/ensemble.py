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

(Over 500 lines because the exact and the sampled ensembles share their
result type, their chunking, their executor hand-off and the estimator
chooser's cost model; split, each half would import the other's internals.)
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ._checks import check_positive_int, check_rng
from .certified import certified_ensemble
from .dropout import (
    DropoutConfig,
    check_config,
    convert_scheme,
    mask_multipliers,
    unit_keep_probs,
)
from .kernels import (
    Moments,
    conditional_moments,
    default_threads,
    generic_chunk,
    generic_task,
    n_outer_chunks,
    outer_per_chunk,
    run_chunks,
    shortcut_chunk,
    shortcut_moments,
    shortcut_plan,
    shortcut_task,
)
from .masks import enumerate_masks, mask_chunk, n_free_units
from .masks import n_chunks as n_mask_chunks
from .network import MLP, OUTPUT_FUNCTIONS, check_input, forward

# Elements of the largest intermediate array a sampled chunk may allocate
# (2 MiB): 16 MiB arrays were measured 1.7x slower per subnetwork on the numpy path.
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
        ensemble, the variance of its K members, ddof=0; Rao-Blackwellised:
        the mean within-variance plus the conditional means' variance, see
        :func:`sample_ensemble`).
    n_subnetworks : int
        Masks of non-zero probability (exact) or K (sampled).
    method : {"exact", "sampled"}
    stderr : ndarray, shape (n_examples, n_outputs), or None
        Sampled only: standard error of ``mean`` as an estimate of the exact
        mean, ``std(ddof=1) / sqrt(K)`` of the K members (Rao-Blackwellised:
        of the K conditional means); NaN when K = 1.
    """

    mean: np.ndarray
    geometric_mean: np.ndarray | None
    variance: np.ndarray
    n_subnetworks: int
    method: str
    stderr: np.ndarray | None = None

    def __post_init__(self):
        # No NaN is ever returned without an error (a NaN ``stderr`` at K = 1 is
        # documented and left alone).
        for name in ("mean", "geometric_mean", "variance"):
            value = getattr(self, name)
            if value is not None and np.isnan(value).any():
                raise FloatingPointError(
                    f"the {self.method} ensemble's {name} came out NaN: the forward pass "
                    f"overflowed (inputs, weights or the inverted multipliers 1/keep_prob "
                    f"past float range); scale the inputs or weights down, or raise keep_prob")


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


@contextmanager
def _progress_bar(progress, n_chunks: int, label: str):
    """Yield an ``update(n_done)`` callable reporting chunks on stderr (a bar on a
    terminal, a line every 10% or 30 s in a log), or None."""
    if not progress:
        yield None
        return
    from .executor import Progress

    with Progress(label, n_chunks, report=progress, unit="chunks") as bar:
        yield bar.advance


def exact_ensemble(
    net: MLP,
    cfg: DropoutConfig,
    X,
    *,
    chunk_size: int | None = None,
    max_subnetworks: int = 2**24,
    progress: bool = False,
    executor=None,
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
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run the chunks of outer masks as tasks there (a process pool, or the
        workers of a Dask cluster) instead of on this process's threads. Each
        task rebuilds its chunk's masks from the chunk's index, so memory per
        task is bounded by the chunk size; on Dask, net, cfg and X are
        scattered once. The chunks are the local path's and their moments
        are merged in chunk order, so the result equals the local one to the
        last bit.

    Returns
    -------
    EnsembleResult
        ``method == "exact"``; ``n_subnetworks == 2**n_free`` where
        ``n_free`` counts dropped units with ``keep_prob < 1``.
    """
    X = check_input(net, X)
    check_config(net, cfg)
    max_subnetworks = check_positive_int(max_subnetworks, "max_subnetworks")
    q = unit_keep_probs(net, cfg)
    n_free = n_free_units(q)
    total = 2**n_free
    if total > max_subnetworks:
        raise ValueError(
            f"exact_ensemble would enumerate 2**{n_free} = {total:,} subnetworks, more than "
            f"max_subnetworks={max_subnetworks:,}; raise max_subnetworks (and pass "
            f"executor=, a concurrent.futures executor or a dask.distributed Client, to "
            f"spread the chunks over processes or machines), or estimate the ensemble with "
            f"sample_ensemble(net, cfg, X, n_samples, rng)"
        )
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    label = f"{total:,} subnetworks"
    if executor is not None:
        job = _ExactJob(net, cfg, X, chunk_size)
        with _progress_bar(progress, job.n_chunks, label) as update:
            acc = _run_on_executor(executor, job, update)
        return _exact_result(net, acc, total)
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
    return _exact_result(net, acc, total)


def _exact_result(net: MLP, acc: Moments, total: int) -> EnsembleResult:
    # Masks of non-zero probability sum to 1 up to rounding; divide it out.
    return EnsembleResult(
        mean=acc.mean,
        geometric_mean=_geometric_mean(net.output, acc.mean_logits),
        variance=acc.m2 / acc.weight,
        n_subnetworks=total,
        method="exact",
    )


@dataclass(frozen=True, eq=False)
class _ExactJob:
    """One exact ensemble cut into the local path's chunks, rebuilt from indices.

    Picklable (a network, a config, validated inputs and a chunk size), so a
    process or a Dask worker can rebuild the kernel task and chunk ``i`` of
    the outer masks by itself, the same chunks :func:`exact_ensemble` runs
    locally.
    """

    net: MLP
    cfg: DropoutConfig
    X: np.ndarray
    chunk_size: int | None

    def _layout(self):
        """``(task, keep_probs of the enumerated units, masks per chunk, weights)``."""
        net, cfg, X = self.net, self.cfg, self.X
        plan = shortcut_plan(net, cfg)
        if plan is not None:  # as kernels.shortcut_moments cuts it
            size = shortcut_chunk(plan, X.shape[0], self.chunk_size)
            task = shortcut_task(net, plan, X, size)
            return task, plan.outer_q, outer_per_chunk(net, plan, size, True), False
        size = generic_chunk(net, X.shape[0], self.chunk_size)
        task = generic_task(net, X, functools.partial(mask_multipliers, net, cfg))
        return task, unit_keep_probs(net, cfg), size, True

    @property
    def n_chunks(self) -> int:
        _, q, per_chunk, _ = self._layout()
        return n_mask_chunks(q, per_chunk)

    def __call__(self, index: int) -> Moments:
        """The moments of chunk ``index`` (BLAS on one thread, as locally)."""
        task, q, per_chunk, weighted = self._layout()
        masks, log_probs = mask_chunk(q, per_chunk, index)
        chunk = (masks, np.exp(log_probs)) if weighted else (masks, log_probs)
        return run_chunks(task, [chunk], 1)


def _run_exact_chunk(job: _ExactJob, index: int) -> Moments:
    return job(index)


def _run_on_executor(executor, job: _ExactJob, progress) -> Moments:
    """Chunks as tasks, a bounded number in flight, merged in chunk order."""
    acc = Moments()
    if isinstance(executor, concurrent.futures.Executor):
        workers = getattr(executor, "_max_workers", None) or os.cpu_count() or 1

        def submit(i):
            return executor.submit(_run_exact_chunk, job, i)
    elif hasattr(executor, "scatter") and hasattr(executor, "submit"):  # a Dask Client
        [shared] = executor.scatter([job], broadcast=True, hash=False)
        workers = max(1, sum(executor.nthreads().values()))

        def submit(i):
            return executor.submit(_run_exact_chunk, shared, i, pure=False)
    else:
        raise TypeError(f"executor must be a concurrent.futures.Executor or a "
                        f"dask.distributed.Client; got {type(executor).__name__}")
    # A few chunks per worker in flight: the workers stay busy while the merge
    # waits for the oldest, and memory stays bounded whatever the number of chunks.
    pending = deque()
    try:
        for index in range(job.n_chunks):
            pending.append(submit(index))
            if len(pending) >= 4 * workers:
                acc.merge(pending.popleft().result())
                if progress is not None:
                    progress(1)
        while pending:
            acc.merge(pending.popleft().result())
            if progress is not None:
                progress(1)
    finally:
        for future in pending:
            future.cancel()
    return acc


ESTIMATORS = ("mc", "rb_mc", "certified")
CHOICES = ("auto", "exact", "rb_mc", "certified", "mc")
"""What :func:`choose_estimator` may be asked for (``auto``: it picks)."""

# --- the cost model -------------------------------------------------------------
# Stated bounds: the working arrays of any run stay below MEMORY_BOUND bytes
# (inputs and the (n_examples, n_outputs) results aside); no enumeration goes
# past MAX_SUBNETWORKS (the README's 2**24).
MEMORY_BOUND = 512 * 2**20
MAX_SUBNETWORKS = 2**24
# Multiply-adds per second assumed by the time estimates: a deliberately low
# figure (measured 2-3e9/s on 2 cores for the compiled kernels, 64-100-10 and
# 64-16-16-10 on digits), so that estimates are upper bounds on a loaded machine.
RATE = 1e9
# auto picks rb_mc only when one of its samples costs at most this many plain ones.
RB_CHEAP = 16.0
# Inner blocks of more than this many masks run on the chunked (numpy) kernels,
# whose tables hold 2**(width/2) rows per half, rather than the compiled ones,
# which hold two arrays of 2**width doubles per thread.
_RB_COMPILED_MAX_INNER = 2**22  # = kernels.plan.COMPILED_MAX_INNER


def check_max_subnetworks(value) -> int:
    """``max_subnetworks`` as an int in ``1..MAX_SUBNETWORKS`` (2**24), or ``ValueError``."""
    value = check_positive_int(value, "max_subnetworks")
    if value > MAX_SUBNETWORKS:
        raise ValueError(
            f"max_subnetworks must be at most 2**24 = {MAX_SUBNETWORKS:,} (more would run "
            f"for hours on one machine; spread an exact ensemble with exact_ensemble(..., "
            f"executor=) instead, or estimate it with estimator='mc'); got {value:,}")
    return value


@dataclass(frozen=True)
class Cost:
    """What one way of computing the ensemble would cost (an upper estimate).

    Attributes
    ----------
    name : {"exact", "rb_mc", "mc"}
    count : int
        Subnetworks enumerated (exact) or K samples (sampled).
    seconds : float
        Estimated wall time at :data:`RATE` multiply-adds per second.
    memory_bytes : int
        Estimated peak of the working arrays.
    reason : str
        Why this one was chosen (set by :func:`choose_estimator`).
    """

    name: str
    count: int
    seconds: float
    memory_bytes: int
    reason: str = ""

    @property
    def n_samples(self) -> int:
        return self.count

    def describe(self) -> str:
        what = "subnetworks" if self.name == "exact" else "samples"
        return (f"estimator {self.name} ({_count(self.count)} {what}): estimated at most "
                f"{_seconds(self.seconds)} and {self.memory_bytes / 2**20:,.0f} MiB"
                + (f"; {self.reason}" if self.reason else ""))


def _count(n: int) -> str:
    """``n`` with thousands separators, or ``2**k`` past 10**12."""
    return f"{n:,}" if n < 10**12 or n & (n - 1) else f"2**{n.bit_length() - 1}"


def _seconds(s: float) -> str:
    if s == math.inf:
        return "forever"
    return f"{s:.3g} s" if s < 120 else (f"{s / 60:.3g} min" if s < 7200
                                           else f"{s / 3600:.3g} h")


def _inner_cost(net: MLP, plan) -> float:
    """Multiply-adds per (outer mask, example) of the exact inner block."""
    if net.output == "identity":
        return 2.0 * net.sizes[-2] * net.sizes[-1]
    return 2.0 * 2.0**plan.n_inner * net.sizes[-1]


def _rb_memory(net: MLP, plan, n_examples: int) -> int:
    K, h = net.sizes[-1], plan.n_inner
    if net.output == "identity":
        return 8 * 4 * _CHUNK_ELEMENTS * 2 * default_threads()
    if 2**h <= _RB_COMPILED_MAX_INNER:  # compiled: R1, R2 of 2**h, tables of 2**(h/2)
        per_thread = 8 * (2 * 2**h + 8 * 2 ** (h - h // 2) * K)
    else:  # chunked numpy: tables of 2**(h/2) rows, tiles of _BLOCK_ELEMENTS
        per_thread = 8 * (16 * 2 ** (h - h // 2) * max(K, h) + 3 * 2**19)
    return int(per_thread * default_threads() + 8 * 4 * _CHUNK_ELEMENTS)


def _pow2(n: int) -> float:
    """``2.0 ** n``, or ``math.inf`` where that float would overflow."""
    return 2.0**n if n < 1000 else math.inf


def estimate_cost(net: MLP, cfg: DropoutConfig, n_examples: int, n_samples: int,
                  estimator: str) -> Cost:
    """Time and memory of one way of computing the ensemble, from the sizes alone.

    ``estimator`` is ``"exact"`` (``n_samples`` ignored), ``"rb_mc"``,
    ``"certified"`` (``n_samples // 2`` antithetic pairs after a pilot; see
    :func:`ensemble_study.certified.cost_model`) or ``"mc"``. The time is an
    upper estimate at :data:`RATE` multiply-adds per second; ``seconds`` and
    ``memory_bytes`` are ``inf``-like (``math.inf``, a huge int) for an
    ``rb_mc`` or ``certified`` that does not apply (``reason`` says why for
    ``certified``).
    """
    n = int(n_examples)
    macs = float(sum(w.size for w in net.weights))
    plan = shortcut_plan(net, cfg)
    if estimator == "exact":
        q = unit_keep_probs(net, cfg)
        n_free = n_free_units(q)
        if plan is not None:
            # 2.0 ** 1024 overflows a float: past 2**1000 masks the count is inf
            n_outer = _pow2(n_free_units(plan.outer_q))
            seconds = n_outer * n * (macs + _inner_cost(net, plan)) / RATE
            memory = _rb_memory(net, plan, n)
        else:
            seconds = _pow2(n_free) * n * macs / RATE
            memory = 8 * 4 * 2**22 + n_free * 2**16
        return Cost("exact", 2**n_free, seconds, int(memory))
    if estimator == "rb_mc":
        if plan is None:
            return Cost("rb_mc", n_samples, math.inf, 2**62)
        return Cost("rb_mc", n_samples, n_samples * n * (macs + _inner_cost(net, plan)) / RATE,
                    _rb_memory(net, plan, n))
    if estimator == "mc":
        return Cost("mc", n_samples, n_samples * n * macs / RATE,
                    8 * 4 * _CHUNK_ELEMENTS * 2 * default_threads())
    if estimator == "certified":
        from .certified import cost_model

        model = cost_model(net, cfg, n, n_samples, MEMORY_BOUND)
        if model["why_not"] is not None or model["rows"] < 1:
            return Cost("certified", n_samples, math.inf, 2**62, model["why_not"] or "")
        return Cost("certified", n_samples, model["macs"] / RATE, model["memory_bytes"])
    raise ValueError(f"estimator must be one of exact, rb_mc, certified, mc; got {estimator!r}")


def choose_estimator(net: MLP, cfg: DropoutConfig, n_examples: int, n_samples: int, *,
                     max_subnetworks: int = 2**20, time_budget: float | None = None,
                     estimator: str = "auto") -> Cost:
    """The way to compute the ensemble: exact enumeration, ``rb_mc``, ``certified`` or ``mc``.

    This is the one place that decides. With ``estimator="auto"``:

    1. ``exact`` when ``2**n_free <= max_subnetworks`` and it fits the time
       budget and :data:`MEMORY_BOUND`;
    2. else ``rb_mc`` when the last dropped layer feeds the output, fits the
       memory bound, and one of its samples costs at most :data:`RB_CHEAP`
       plain samples (its exact inner average of ``2**width`` masks is worth
       that much variance reduction, no more);
    3. else ``certified`` (:mod:`ensemble_study.certified`: control variates
       with exactly known means and antithetic pairs, a calibrated t-interval)
       when every hidden activation is one whose derivatives it knows, K >= 4
       and it fits the memory bound (examples in batches) and, with K lowered
       if need be, the time budget;
    4. else ``mc``.

    A sampled choice keeps K = ``n_samples`` unless that would exceed
    ``time_budget``; then K is lowered to what fits (at least 2) and the
    reason says so. An explicit ``estimator`` is checked, not replaced: when
    it does not apply, or its memory or time is out of reach, ``ValueError``
    names the cheaper option.

    Returns
    -------
    Cost
        Its ``name`` is the choice; ``describe()`` is the line to print
        before starting.
    """
    if estimator not in CHOICES:
        raise ValueError(f"estimator must be one of {CHOICES}; got {estimator!r}")
    n_samples = check_positive_int(n_samples, "n_samples")
    max_subnetworks = check_max_subnetworks(max_subnetworks)
    budget = math.inf if time_budget is None else float(time_budget)
    mc = estimate_cost(net, cfg, n_examples, n_samples, "mc")
    if estimator != "auto":
        cost = estimate_cost(net, cfg, n_examples, n_samples, estimator)
        cheaper = "estimator='mc'" + (f" with n_samples <= {_fits(mc, budget)}"
                                      if mc.seconds > budget else "")
        if estimator == "exact" and cost.count > max_subnetworks:
            raise ValueError(
                f"the exact ensemble has {_count(cost.count)} subnetworks, more than "
                f"max_subnetworks={max_subnetworks:,}; use {cheaper} (or estimator='auto')")
        if estimator == "certified" and cost.seconds == math.inf:
            raise ValueError(f"estimator='certified' does not apply here: "
                             f"{cost.reason or 'its memory exceeds the bound'}; use {cheaper}")
        if estimator == "rb_mc" and cost.seconds == math.inf:
            raise ValueError(
                "estimator='rb_mc' averages the last dropped layer exactly, which needs "
                f"that layer to feed the output layer; it does not here. Use {cheaper}")
        if cost.memory_bytes > MEMORY_BOUND or cost.seconds > budget:
            raise ValueError(
                f"{estimator} is out of reach here: {cost.describe()} (memory bound "
                f"{MEMORY_BOUND / 2**20:,.0f} MiB, time budget {_seconds(budget)}); use "
                f"{cheaper}, which costs about {_seconds(mc.seconds)}")
        return cost
    exact = estimate_cost(net, cfg, n_examples, n_samples, "exact")
    if (exact.count <= max_subnetworks and exact.seconds <= budget
            and exact.memory_bytes <= MEMORY_BOUND):
        return Cost(**{**exact.__dict__, "reason": f"{exact.count:,} subnetworks <= "
                       f"max_subnetworks={max_subnetworks:,}"})
    why = (f"{_count(exact.count)} subnetworks > max_subnetworks={max_subnetworks:,}"
           if exact.count > max_subnetworks else
           f"enumerating {_count(exact.count)} subnetworks would take about "
           f"{_seconds(exact.seconds)}")
    rb = estimate_cost(net, cfg, n_examples, n_samples, "rb_mc")
    ratio = rb.seconds / mc.seconds if mc.seconds > 0 else math.inf
    if rb.memory_bytes <= MEMORY_BOUND and ratio <= RB_CHEAP:
        pick, why = rb, why + f"; one rb_mc sample costs {ratio:.3g} plain ones"
    else:
        if rb.seconds < math.inf:
            why += f"; one rb_mc sample would cost {ratio:.3g} plain ones"
        cert = _certified_within(net, cfg, n_examples, n_samples, budget)
        if cert.seconds < math.inf:
            return Cost(**{**cert.__dict__, "reason": why + "; " + cert.reason
                           if cert.reason else why})
        pick = mc
        why += f"; not certified: {cert.reason}"
    if pick.seconds > budget:
        k = _fits(pick, budget)
        why += f"; K lowered from {n_samples:,} to {k:,} to fit the {_seconds(budget)} budget"
        pick = estimate_cost(net, cfg, n_examples, k, pick.name)
    return Cost(**{**pick.__dict__, "reason": why})


def _certified_within(net, cfg, n_examples, n_samples, budget) -> Cost:
    """The certified estimate at K = ``n_samples``, K lowered (to 4 at least) to fit
    ``budget``; ``seconds`` is ``math.inf`` and ``reason`` says why when it cannot."""
    cost = estimate_cost(net, cfg, n_examples, n_samples, "certified")
    if cost.seconds == math.inf:
        return Cost(**{**cost.__dict__, "reason": cost.reason or
                       f"its memory exceeds {MEMORY_BOUND / 2**20:,.0f} MiB"})
    if cost.seconds <= budget:
        return cost
    low = estimate_cost(net, cfg, n_examples, 4, "certified")
    if low.seconds > budget:
        return Cost("certified", n_samples, math.inf, cost.memory_bytes,
                    f"its derivatives and pilot alone take about {_seconds(low.seconds)}, "
                    f"over the {_seconds(budget)} budget")
    per = (cost.seconds - low.seconds) / (n_samples - 4)  # cost is nearly affine in K
    k = max(4, min(n_samples, 4 + int((budget - low.seconds) / per)))
    fitted = estimate_cost(net, cfg, n_examples, k, "certified")
    # Pairs, pilot and batches round: the affine guess can overshoot by a few K.
    while fitted.seconds > budget and k > 4:
        k -= 1
        fitted = estimate_cost(net, cfg, n_examples, k, "certified")
    return Cost(**{**fitted.__dict__,
                   "reason": f"K lowered from {n_samples:,} to {k:,} to fit the "
                             f"{_seconds(budget)} budget"})


def _fits(cost: Cost, budget: float) -> int:
    """The largest K (at least 2) whose cost fits ``budget``."""
    per = cost.seconds / cost.count
    return max(2, min(cost.count, int(budget / per))) if per > 0 else cost.count
# The names of an earlier release, accepted with a DeprecationWarning.
_OLD_ESTIMATORS = {"plain": "mc", "rao_blackwell": "rb_mc"}
# Refuse K above this: 10**9 forward passes of even the smallest network take
# hours, so a larger K is a typo (memory is bounded by the chunk whatever K).
MAX_SAMPLES = 10**9


def _vanilla_equivalent(net: MLP, cfg: DropoutConfig):
    """The same subnetwork family under vanilla dropout (DESIGN fact 5).

    Its multipliers are 0/1, so a train-time activation is never scaled by
    ``1 / keep_prob`` on its own, which overflows at X = 1e308 where the
    exact paths (that fold the scale into the weights) stay finite. Kept as
    it is when folding would overflow the weights instead.
    """
    if cfg.scheme == "vanilla":
        return net, cfg
    with np.errstate(over="ignore"):
        if not all(np.all(np.isfinite(net.weights[l] / cfg.layer_keep_prob(l)))
                   for l in cfg.layers):
            return net, cfg
    return convert_scheme(net, cfg, "vanilla")


def _drawn_chunks(gen: np.random.Generator, q: np.ndarray, n_samples: int, chunk_size: int):
    """``(masks, weights)`` chunks of K masks drawn in order, each weighted 1/K.

    The draws are consumed sequentially from one stream, so the masks are the
    same whatever the chunk size (``Generator.random`` fills arrays from the
    stream in order). Weights 1/K rather than 1 keep every weighted sum
    below the largest term, so huge logits average without overflow.
    """
    for start in range(0, n_samples, chunk_size):
        c = min(chunk_size, n_samples - start)
        yield gen.random((c, q.size)) < q, np.full(c, 1.0 / n_samples)


def sample_ensemble(
    net: MLP,
    cfg: DropoutConfig,
    X,
    n_samples: int,
    rng,
    *,
    estimator: str = "mc",
    chunk_size: int | None = None,
    progress: bool = False,
    executor=None,
) -> EnsembleResult:
    """A Monte Carlo estimate of the ensemble from K sampled masks.

    ``estimator="mc"`` (plain Monte Carlo dropout) draws K joint masks, shared
    by every example, so the result is the prediction of one K-member
    ensemble: ``mean`` is an unbiased estimate of the exact ensemble mean and
    ``variance`` is the K members' variance (ddof=0).

    ``estimator="rb_mc"`` (Rao-Blackwellised Monte Carlo) draws K masks of the
    *outer* dropped layers only and, for each, averages the last dropped layer (which must feed the
    output layer) exactly with the shortcut kernel
    (:func:`ensemble_study.kernels.conditional_moments`). Then

    * ``mean`` is the average of the K conditional means ``E[y | outer]``;
      unbiased, and by the law of total variance its variance never exceeds
      plain Monte Carlo's at equal K (DESIGN fact 12);
    * ``variance`` is the average within-variance ``Var[y | outer]`` plus the
      variance (ddof=0) of the conditional means: the Rao-Blackwellised
      estimate of the exact ensemble's variance (the within term is exact
      given each outer mask);
    * ``geometric_mean`` is the NWGM of the average conditional mean logits;
    * ``stderr`` is ``std(conditional means, ddof=1) / sqrt(K)``;
    * with only the last dropped layer free (keep_prob < 1 nowhere else),
      every conditional moment is the exact one (``stderr`` is 0, NaN at K = 1).

    Each of its samples costs one shortcut block (``2**width`` inner
    subnetworks for sigmoid/softmax outputs, one pass for identity) rather
    than one forward pass.

    Masks are drawn chunk by chunk from one stream: memory is bounded by the
    chunk size whatever K, the masks do not depend on the chunk size, and the
    statistics depend on it only through the rounding of their merges
    (about 1e-16 relative). Chunks are merged in order, so the number of
    threads does not matter.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)
    n_samples : int, 1 <= K <= MAX_SAMPLES (10**9)
        K, the number of (outer) masks drawn.
    rng : int, SeedSequence or numpy.random.Generator
    estimator : {"mc", "rb_mc", "certified", "auto"}
        ``"auto"``: :func:`choose_estimator` picks ``rb_mc``, ``certified`` or
        ``mc`` from their costs; an ``rb_mc`` beyond :data:`MEMORY_BOUND` is refused
        (naming ``mc``). ``"certified"``:
        :func:`ensemble_study.certified.certified_ensemble` with ``n_pairs =
        max(2, K // 2)`` antithetic pairs (its pilot and derivatives come on
        top; intervals, tolerance and budget there).
        (``"plain"`` and ``"rao_blackwell"``, the earlier names, still work
        with a ``DeprecationWarning``.)
    chunk_size : int, optional
        Masks evaluated per batch (see :func:`exact_ensemble`; for
        ``rb_mc``, outer masks per batch, each of which carries its
        inner block).
    progress : bool
        Show progress on stderr (a bar on a terminal, a line every 10% or
        30 s in a log).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        ``certified`` only: its batches of examples (:func:`certified_rows`) run as
        tasks there, merged in batch order, so the result is the local one to the
        last bit. ``mc`` and ``rb_mc`` run on this process's threads; asking for
        them with an executor is refused (``auto`` uses it only if it picks
        ``certified``).

    Returns
    -------
    EnsembleResult
        ``method == "sampled"``, ``n_subnetworks == K``, with ``stderr``.

    Raises
    ------
    ValueError
        On a bad parameter; for ``rb_mc``, when the last dropped
        layer with keep_prob < 1 does not feed the output layer.
    """
    X = check_input(net, X)
    check_config(net, cfg)
    n_samples = check_positive_int(n_samples, "n_samples")
    if n_samples > MAX_SAMPLES:
        raise ValueError(
            f"n_samples must be at most MAX_SAMPLES = {MAX_SAMPLES:,} (K forward passes; "
            f"a larger K would run for days); got {n_samples:,}"
        )
    if isinstance(estimator, str) and estimator in _OLD_ESTIMATORS:
        import warnings

        warnings.warn(f"estimator={estimator!r} is deprecated; use "
                      f"estimator={_OLD_ESTIMATORS[estimator]!r}", DeprecationWarning,
                      stacklevel=2)
        estimator = _OLD_ESTIMATORS[estimator]
    if not isinstance(estimator, str) or estimator not in ESTIMATORS + ("auto",):
        raise ValueError(f"estimator must be one of {ESTIMATORS + ('auto',)}; "
                         f"got {estimator!r}")
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    if executor is not None and estimator in ("mc", "rb_mc"):
        raise ValueError(f"executor= runs the batches of estimator='certified' (or 'auto' "
                         f"when it picks certified); estimator={estimator!r} runs on this "
                         f"process's threads: drop executor=, or use estimator='certified'")
    gen = check_rng(rng)
    if estimator == "auto":
        estimator = choose_estimator(net, cfg, X.shape[0], n_samples,
                                     max_subnetworks=1).name
    elif estimator == "rb_mc" and shortcut_plan(net, cfg) is not None:
        choose_estimator(net, cfg, X.shape[0], n_samples, estimator="rb_mc")  # memory
    if estimator == "rb_mc":
        return _rao_blackwell(net, cfg, X, n_samples, gen, chunk_size, progress)
    if estimator == "certified":  # control variates + antithetic pairs (certified.py)
        res = certified_ensemble(net, cfg, X, gen, n_pairs=max(2, n_samples // 2),
                                 max_passes=float("inf"),
                                 max_rows=certified_rows(net, cfg, X.shape[0], n_samples),
                                 executor=executor)
        return from_certified(res)
    vnet, vcfg = _vanilla_equivalent(net, cfg)
    # Kept at the numpy path's size (2 MiB arrays), not the compiled path's
    # larger chunks: the chunks fix the merge order, hence the last bits of
    # every committed sampled result.
    chunk_size = (max(1, _CHUNK_ELEMENTS // (X.shape[0] * max(net.sizes))) if chunk_size is None
                  else chunk_size)
    # The generic path's chunk task: K sampled subnetworks cost what K
    # enumerated ones cost on that path, on the same threads.
    task = generic_task(vnet, X, lambda m: mask_multipliers(vnet, vcfg, m))
    chunks = _drawn_chunks(gen, unit_keep_probs(net, cfg), n_samples, chunk_size)
    n_chunks = math.ceil(n_samples / chunk_size)
    with _progress_bar(progress, n_chunks, f"{n_samples:,} mc samples") as update:
        acc = run_chunks(task, chunks, default_threads() if n_chunks > 1 else 1, update)
    variance = acc.m2 / acc.weight
    return EnsembleResult(
        mean=acc.mean,
        geometric_mean=_geometric_mean(net.output, acc.mean_logits),
        variance=variance,
        n_subnetworks=n_samples,
        method="sampled",
        stderr=_stderr(variance, n_samples),
    )


def from_certified(res) -> EnsembleResult:
    """The :class:`EnsembleResult` of a :class:`~ensemble_study.certified.CertifiedResult`
    (its K is the number of masks of the main batch, two per antithetic pair)."""
    return EnsembleResult(mean=res.mean, geometric_mean=res.geometric_mean,
                          variance=res.variance, n_subnetworks=2 * res.n_pairs,
                          method="sampled", stderr=res.stderr)


CERTIFIED_BATCHES = 8
"""A certified estimate's examples are cut into at least this many batches (when there are
as many examples): the tasks an executor spreads over its workers. Fixed, not the number
of workers, so that the result does not depend on them."""


def certified_rows(net: MLP, cfg: DropoutConfig, n_examples: int, n_samples: int) -> int:
    """Examples per batch of a certified estimate with K = ``n_samples``: within
    :data:`MEMORY_BOUND`, and at most ``ceil(n_examples / CERTIFIED_BATCHES)`` (1 at least).
    The batches share their masks, so with a fixed K the estimate depends on this only
    through rounding."""
    from .certified import cost_model

    fits = cost_model(net, cfg, n_examples, n_samples, MEMORY_BOUND)["rows"]
    return max(1, min(fits, math.ceil(n_examples / CERTIFIED_BATCHES)))


def _stderr(variance: np.ndarray, n_samples: int) -> np.ndarray:
    """``std(ddof=1) / sqrt(K)`` from the ddof=0 variance; NaN when K = 1."""
    if n_samples == 1:
        return np.full_like(variance, np.nan)
    return np.sqrt(variance / (n_samples - 1))


def _rao_blackwell(net, cfg, X, n_samples, gen, chunk_size, progress=False) -> EnsembleResult:
    vnet, vcfg = _vanilla_equivalent(net, cfg)
    plan = shortcut_plan(vnet, vcfg)
    if plan is None:
        free = [l for l in cfg.layers if cfg.layer_keep_prob(l) < 1]
        why = (f"the last dropped layer with keep_prob < 1 is {free[-1]}, not "
               f"{net.n_layers - 1}, the layer that feeds the output" if free
               else "no dropped layer has keep_prob < 1")
        raise ValueError(
            f"estimator='rb_mc' averages the last dropped layer exactly, which "
            f"needs that layer to feed the output layer; here {why}. "
            f'Use estimator="mc"'
        )
    n, k = X.shape[0], net.sizes[-1]
    if chunk_size is None:
        inner = 2**plan.n_inner if net.output != "identity" else 1
        chunk_size = max(1, _CHUNK_ELEMENTS // (n * max(inner, *net.sizes)))

    def task(chunk):
        masks, weights = chunk
        if 2**plan.n_inner > _RB_COMPILED_MAX_INNER:
            # Chunked enumeration of the last layer: tables of 2**(width/2) rows
            # per half and tiles of a fixed size, never 2**width at once.
            from .kernels import reference

            mean, within, mean_logits = reference.conditional_moments(
                vnet, plan, X, masks, pairs_per_block=1)
        else:
            mean, within, mean_logits = conditional_moments(vnet, plan, X, masks)
        # Within-variances ride along as extra output columns, so that the
        # chunk merge averages them while m2 of the first k columns is the
        # spread of the conditional means alone (the stderr needs it apart).
        acc = Moments()
        acc.add(weights, np.concatenate([mean, within], axis=-1),
                np.concatenate([mean_logits, np.zeros_like(mean_logits)], axis=-1))
        return acc

    chunks = _drawn_chunks(gen, plan.outer_q, n_samples, chunk_size)
    n_chunks = math.ceil(n_samples / chunk_size)
    with _progress_bar(progress, n_chunks, f"{n_samples:,} rb_mc samples") as update:
        acc = run_chunks(task, chunks, default_threads() if n_chunks > 1 else 1, update)
    between = acc.m2[..., :k] / acc.weight
    return EnsembleResult(
        mean=acc.mean[..., :k],
        geometric_mean=_geometric_mean(net.output, acc.mean_logits[..., :k]),
        variance=acc.mean[..., k:] + between,
        n_subnetworks=n_samples,
        method="sampled",
        stderr=_stderr(between, n_samples),
    )
