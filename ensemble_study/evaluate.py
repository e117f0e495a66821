"""Evaluate a given network: its dropout ensemble against the NWGM and the scaled pass.

:func:`evaluate_network` computes the ensemble of a network a user brings
(saved with :meth:`MLP.save <ensemble_study.network.MLP.save>` or a PyTorch
``nn.Sequential``, see :func:`load_network`): exactly when its subnetworks
can be enumerated, otherwise by sampling (with standard errors). It returns
one tidy table with one row per (predictor, reference):

* ``mean``: the ensemble's arithmetic mean (exact, or sampled), the
  reference of the other rows (its own ``reference`` is empty);
* ``nwgm``: the normalized weighted geometric mean (sigmoid/softmax outputs);
* ``scaled``: the scheme's scaled pass, once against the mean and once
  against the NWGM (which it equals in the cases of DESIGN facts 3 and 10).

``error`` and ``nll`` describe the predictor on labelled inputs; the gap
columns (:func:`ensemble_study.metrics.gap_metrics`) compare it with its
reference, ``relative_gap`` in units of the subnetworks' standard deviation.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ._checks import check_positive_int, check_rng
from .dropout import DropoutConfig, check_config
from .ensemble import (
    CHOICES,
    RATE,
    certified_rows,
    check_max_subnetworks,
    choose_estimator,
    exact_ensemble,
    from_certified,
    sample_ensemble,
)
from .metrics import brier, ece, error_rate, gap_metrics, nll
from .network import MLP, check_input
from .predictors import PREDICTORS, Case
from .studies._common import stream

logger = logging.getLogger(__name__)


# The estimator names evaluate accepts (ensemble.choose_estimator decides "auto").
ESTIMATORS = {name: name for name in CHOICES}
ID_COLUMNS = ["architecture", "output", "scheme", "layers", "keep_prob", "method",
              "n_subnetworks", "n_samples", "predictor", "k", "n_draws", "reference"]
METRIC_COLUMNS = ["error", "nll", "brier", "ece", "mean_stderr", "max_half_width", "max_abs_gap",
                  "mean_abs_gap", "relative_gap", "kl", "total_variation", "disagreement",
                  "error_spread", "tv_spread"]

LEGEND = {
    "method": "how the ensemble mean (the reference) was computed: exact (every subnetwork "
              "enumerated), rb_mc, certified or mc (estimated from sampled masks)",
    "n_subnetworks": "subnetworks enumerated (exact ensemble only)",
    "n_samples": "masks K sampled to estimate the ensemble mean (estimated only)",
    "predictor": "mean: the ensemble mean itself; the others predict it (scaled = the "
                 "eval() pass; mc = MC dropout at K; see ensemble_study.predictors)",
    "k": "a sampled predictor's K",
    "n_draws": "independent draws of a sampled predictor; its metrics are their mean",
    "reference": "what the row is compared with (mean: the ensemble mean)",
    "error": "test error on the labels (argmax; sigmoid: threshold 0.5)",
    "nll": "mean -log p(label), natural log",
    "brier": "mean over examples of sum_k (p_k - [label = k])^2",
    "ece": "expected calibration error of the top-class confidence, 15 equal-width bins",
    "mean_stderr": "mean over entries of the estimated mean's standard error (its 95% "
                   "interval is +-1.96 of it; exact: empty)",
    "max_half_width": "largest half-width of the estimated mean's 95% interval over examples "
                      "and outputs (certified: t-interval; rb_mc, mc: 1.96 stderr; exact: empty)",
    "max_abs_gap": "largest abs(reference - predictor) over examples and outputs",
    "mean_abs_gap": "mean abs(reference - predictor)",
    "relative_gap": "mean abs(reference - predictor) / the subnetworks' standard deviation",
    "kl": "KL(reference || predictor), nats, mean over examples (sigmoid: summed over units)",
    "total_variation": "total variation distance, mean over examples",
    "disagreement": "fraction of examples whose argmax (sigmoid: 0.5 side) differs",
    "error_spread": "standard deviation of error over the draws (ddof=1)",
    "tv_spread": "standard deviation of total_variation over the draws (ddof=1)",
}
"""One line per column of :func:`evaluate_network`'s table (printed with it)."""


def legend_text(columns=None) -> str:
    """The legend of ``columns`` (all by default), one ``name: meaning`` per line."""
    names = [c for c in (columns if columns is not None else LEGEND) if c in LEGEND]
    return "\n".join(f"  {c}: {LEGEND[c]}" for c in names)


def load_network(path, *, output: str | None = None):
    """Read a network from an ``.npz`` of :meth:`MLP.save` or a ``.pt`` of PyTorch.

    A ``.pt`` file must hold a whole pickled ``nn.Sequential``, or a custom
    ``nn.Module`` whose forward is a chain of layers (``torch.save(model, path)``;
    its class must be importable where it is loaded); it is read with
    ``torch.load(weights_only=False)``, which runs the pickle's code: **load only files you trust**.

    Parameters
    ----------
    path : str or Path
    output : {"identity", "sigmoid", "softmax"}, optional
        ``.pt`` only: see :func:`ensemble_study.torch_io.from_torch`.

    Returns
    -------
    net : MLP
    cfg : DropoutConfig or None
        The ``.pt`` model's dropout (inverted); None for an ``.npz`` (which
        stores no dropout) or a model without ``nn.Dropout``.
    """
    path = Path(path)
    if path.suffix == ".npz":
        if output is not None:
            raise ValueError(f"output applies to a .pt network only; an .npz stores its "
                             f"output function ({path})")
        return MLP.load(path), None
    if path.suffix == ".pt":
        from .torch_io import _torch, from_torch

        torch = _torch()
        module = torch.load(path, weights_only=False, map_location="cpu")
        if not isinstance(module, torch.nn.Module):
            raise ValueError(f"{path} holds a {type(module).__name__} object, not an "
                             f"nn.Module; save the whole model with torch.save(model, path) (a "
                             f"state_dict alone does not say how its layers connect)")
        return from_torch(module, output=output)
    raise ValueError(f"a network file must end in .npz (MLP.save) or .pt (a pickled "
                     f"torch nn.Sequential); got {str(path)!r}")


def dropout_config(net: MLP, keep_probs=(), layers=(), scheme: str | None = None,
                   default: DropoutConfig | None = None) -> DropoutConfig:
    """The dropout config to evaluate ``net`` under, from command-line style values.

    Parameters
    ----------
    keep_probs : sequence of float
        One value for every dropped layer, or one per entry of ``layers``.
        Empty: ``default``'s.
    layers : sequence of int
        Activation layers to drop (0 = input). Empty: ``default``'s layers,
        or every hidden layer (the input when there is none).
    scheme : {"vanilla", "inverted"}, optional
        None: ``default``'s, else ``"inverted"``.
    default : DropoutConfig, optional
        The config the network came with (a PyTorch model's dropout).
    """
    keep_probs, layers = tuple(keep_probs), tuple(layers)
    scheme = scheme or (default.scheme if default is not None else "inverted")
    if not keep_probs:
        if default is None:
            raise ValueError("keep_prob is required: this network comes with no dropout "
                             "(an .npz, or a torch model without nn.Dropout)")
        if layers and tuple(sorted(layers)) != default.layers:
            raise ValueError(f"layers {layers} differ from the network's dropped layers "
                             f"{default.layers}; give keep_prob for them too")
        kp = default.keep_prob
        kp = dict(kp) if isinstance(kp, Mapping) else kp
        cfg = DropoutConfig(kp, None if isinstance(kp, dict) else default.layers, scheme)
    else:
        if not layers:
            layers = (default.layers if default is not None
                      else tuple(range(1, net.n_layers)) or (0,))
        if len(keep_probs) == 1:
            cfg = DropoutConfig(keep_probs[0], layers=layers, scheme=scheme)
        elif len(keep_probs) == len(layers):
            if len(set(layers)) != len(layers):
                raise ValueError(f"layers must not repeat an index; got {layers}")
            cfg = DropoutConfig(dict(zip(layers, keep_probs)), scheme=scheme)
        else:
            raise ValueError(f"keep_prob must be given once (for every dropped layer) or "
                             f"once per layer ({len(layers)}: {layers}); got {len(keep_probs)} "
                             f"values {keep_probs}")
    check_config(net, cfg)
    return cfg


def check_labels(net: MLP, y, n_examples: int) -> np.ndarray:
    """Class labels for ``net``'s output, shape ``(n_examples,)``, or ``ValueError``."""
    if net.output == "identity":
        raise ValueError("y (class labels) needs a sigmoid or softmax output; the "
                         "network's output is 'identity'")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_examples:
        raise ValueError(f"y must hold one label per example, shape ({n_examples},); got "
                         f"shape {y.shape}")
    n_classes = net.sizes[-1] if net.output == "softmax" else 2
    if not np.issubdtype(y.dtype, np.integer):
        # no min/max here: a string or object array has none (numpy raises a TypeError)
        raise ValueError(f"y must hold integer labels in 0..{n_classes - 1}; got dtype "
                         f"{y.dtype}: save them as integers (np.save(path, y.astype(int)))")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y must hold integer labels in 0..{n_classes - 1}; got dtype "
                         f"{y.dtype}, range [{y.min()}, {y.max()}]")
    return y


def _describe_cfg(cfg: DropoutConfig) -> dict:
    kp = cfg.keep_prob
    return {"scheme": cfg.scheme, "layers": ",".join(str(l) for l in cfg.layers),
            "keep_prob": (",".join(f"{cfg.layer_keep_prob(l):g}" for l in cfg.layers)
                          if isinstance(kp, Mapping) else kp)}


def evaluate_network(
    net: MLP,
    cfg: DropoutConfig,
    X,
    y=None,
    *,
    max_subnetworks: int = 2**20,
    n_samples: int = 10_000,
    estimator: str = "auto",
    rng=None,
    time_budget: float | None = 60.0,
    ks=(10,),
    n_draws: int = 5,
    report=None,
    progress: bool = False,
    executor=None,
) -> pd.DataFrame:
    """The ensemble, the NWGM and the scaled pass of ``net`` on ``X``, with their gaps.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)
    y : array_like of int, shape (n_examples,), optional
        Class labels (sigmoid or softmax output): adds test error and NLL.
    max_subnetworks : int, at most 2**24
        Enumerate the ensemble exactly up to this many subnetworks; past
        it, estimate it from ``n_samples`` masks.
    n_samples : int >= 2
        K of the estimator (two at least, for a standard error).
    estimator : {"auto", "exact", "rb_mc", "certified", "mc"}
        ``"auto"``: :func:`ensemble_study.ensemble.choose_estimator` picks
        from the cost model (exact within ``max_subnetworks`` and the
        budget, ``rb_mc`` where its samples are cheap, else ``certified``
        (:func:`ensemble_study.certified.certified_ensemble`, ``K // 2``
        antithetic pairs, examples in batches within the memory bound) where
        it applies, else ``mc``, with K lowered to fit ``time_budget``). An
        explicit name out of reach (memory, time, or not applicable) is refused
        before any work, naming the cheaper option.
    rng : int, SeedSequence or Generator
        Required only when the ensemble is estimated.
    time_budget : float or None
        Seconds the ensemble's computation may take by the cost model's
        (upper) estimate; None: no limit.
    ks : sequence of int
        K of each row of a sampled predictor (MC dropout, ...).
    n_draws : int
        Independent draws of each sampled predictor at each K (streams named
        ``("evaluate", predictor, K, draw)`` under the seed of ``rng``); its
        row holds the draws' mean metrics and their spread.
    report : callable, optional
        Called with one line (the choice and its estimated cost) before the
        work starts and, for an estimated ensemble, with a second line once it
        is computed: the estimator used and its 95% interval half-width.
    progress : bool
        Progress on stderr while the ensemble is computed.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where the certified estimator runs its batches of examples
        (:func:`ensemble_study.executor.process_pool`, or a Dask client). The
        batches are fixed by the sizes alone
        (:func:`ensemble_study.ensemble.certified_rows`) and merged in order, so
        the table is the same to the bit with or without it, whatever the number
        of workers. The other estimators and the predictors run in this process.

    Returns
    -------
    DataFrame
        ``ID_COLUMNS + METRIC_COLUMNS`` (module docstring). ``method`` is
        ``"exact"`` or the estimator's name; ``n_subnetworks`` counts the
        enumerated subnetworks (exact), ``n_samples`` the sampled masks K
        (estimated); ``mean_stderr`` (estimated ensembles only, on the
        ``mean`` row) is the mean over examples and outputs of the standard
        error of the estimated mean and ``max_half_width`` the largest
        half-width of its 95% interval. ``df.attrs["choice"]`` is the
        :class:`~ensemble_study.ensemble.Cost` of the choice;
        ``df.attrs["interval"]`` the second report line (estimated only).
    """
    X = check_input(net, X)
    check_config(net, cfg)
    if executor is not None and not isinstance(executor, concurrent.futures.Executor) and not (
            hasattr(executor, "scatter") and hasattr(executor, "submit")):
        raise TypeError(f"executor must be None, a concurrent.futures.Executor (e.g. "
                        f"ensemble_study.executor.process_pool(2)) or a dask.distributed.Client; "
                        f"got {type(executor).__name__}")
    labelled = y is not None
    if labelled:
        y = check_labels(net, y, X.shape[0])
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {tuple(ESTIMATORS)}; got {estimator!r}")
    max_subnetworks = check_max_subnetworks(max_subnetworks)
    n_samples = check_positive_int(n_samples, "n_samples")
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 (a standard error needs two); got {n_samples}")
    choice = choose_estimator(net, cfg, X.shape[0], n_samples, max_subnetworks=max_subnetworks,
                              time_budget=time_budget, estimator=estimator)
    method = choice.name
    if method != "exact" and rng is None:
        raise ValueError(f"rng is required: the ensemble is estimated ({choice.describe()}); "
                         f"pass rng= (an int seed)")
    line = f"ensemble: {choice.describe()}"
    logger.info(line)
    if report is not None:
        report(line)
    interval = None
    if method == "exact":
        ens = exact_ensemble(net, cfg, X, max_subnetworks=max_subnetworks, progress=progress)
    elif method == "certified":
        from .certified import certified_ensemble

        cert = certified_ensemble(net, cfg, X, rng, n_pairs=max(2, choice.count // 2),
                                  max_passes=float("inf"),
                                  max_rows=certified_rows(net, cfg, X.shape[0], choice.count),
                                  executor=executor)
        ens = from_certified(cert)
        interval = _interval_line(
            f"certified estimator ({cert.n_pairs:,} antithetic pairs after a "
            f"{cert.n_pilot}-pair pilot, {cert.n_passes:,.0f} forward passes in all; "
            f"control variates with exactly known means)", cert.mean_half_width, "t-interval")
    else:
        ens = sample_ensemble(net, cfg, X, choice.count, rng, estimator=method,
                              progress=progress)
        interval = _interval_line(f"{method} estimator ({choice.count:,} samples)",
                                  1.96 * ens.stderr, "mean +- 1.96 stderr")
    if interval is not None:
        line2 = f"ensemble: {interval[0]}"
        logger.info(line2)
        if report is not None:
            report(line2)
    ids = {"architecture": net.architecture, "output": net.output, **_describe_cfg(cfg),
           "method": method,
           "n_subnetworks": ens.n_subnetworks if method == "exact" else None,
           "n_samples": ens.n_subnetworks if method != "exact" else None}
    std = np.sqrt(ens.variance)
    scores = _scorer(net.output, ens.mean, std, y)
    mean_row = {**ids, "predictor": "mean", "reference": None, **scores(ens.mean, gaps=False)}
    if ens.stderr is not None:
        mean_row["mean_stderr"] = float(np.mean(ens.stderr))
    if interval is not None:
        mean_row["max_half_width"] = interval[1]
    rows = [mean_row]
    case = _EvalCase(net, cfg, X, ens if method == "exact" else None)
    seed = _seed_of(rng)
    preds = {}
    for p in PREDICTORS.values():
        if p.name == "exact" or not p.applies_to(net, cfg):
            continue
        if not p.samples:
            try:
                preds[p.name] = p.predict(case, 0, None).mean
            except _NotExact:
                logger.info("%s: skipped (needs the exact ensemble)", p.name)
                continue
            except ValueError as exc:  # e.g. an integral that cannot reach its precision
                logger.info("%s: skipped (%s)", p.name, exc)
                continue
            rows.append({**ids, "predictor": p.name, "reference": "mean",
                         **scores(preds[p.name])})
            continue
        for k in ks:
            cost = p.cost(case, k) * X.shape[0] * case.passes["macs"] * n_draws / RATE
            if time_budget is not None and cost > time_budget:
                logger.info("%s at K=%d: skipped (about %.3g s > budget)", p.name, k, cost)
                continue
            draws = []
            for draw in range(n_draws):
                ss = stream(seed, "evaluate", p.name, int(k), draw)
                try:
                    draws.append(scores(p.predict(case, k, ss).mean))
                except ValueError as exc:  # e.g. rb_mc where it does not apply
                    logger.info("%s at K=%d: skipped (%s)", p.name, k, exc)
                    break
            if len(draws) < n_draws:
                continue
            row = {**ids, "predictor": p.name, "k": int(k), "n_draws": n_draws,
                   "reference": "mean"}
            for col in draws[0]:
                row[col] = float(np.mean([d[col] for d in draws]))
            for col, spread in (("error", "error_spread"), ("total_variation", "tv_spread")):
                if col in draws[0] and n_draws > 1:
                    row[spread] = float(np.std([d[col] for d in draws], ddof=1))
            rows.append(row)
    if "scaled" in preds and "nwgm" in preds:
        rows.append({**ids, "predictor": "scaled", "reference": "nwgm",
                     **_scorer(net.output, preds["nwgm"], std, None)(preds["scaled"])})
    df = pd.DataFrame(rows).reindex(columns=ID_COLUMNS + METRIC_COLUMNS)
    for col in ("n_subnetworks", "n_samples", "k", "n_draws"):
        df[col] = df[col].astype("Int64")
    df.attrs["choice"] = choice
    if interval is not None:
        df.attrs["interval"] = f"ensemble: {interval[0]}"
    return df


def _interval_line(what: str, half_width, kind: str):
    """``(line, largest half-width)``: the estimator used and its 95% interval's half-width."""
    hw = np.asarray(half_width, dtype=np.float64)
    if not np.isfinite(hw).any():
        return f"estimated by the {what}; no interval (too few samples)", float("nan")
    top = float(np.nanmax(hw))
    return (f"estimated by the {what}; 95% {kind} half-width of the mean at most {top:.3g} "
            f"(median {float(np.nanmedian(hw)):.3g}) over {hw.size:,} example-outputs", top)


class _NotExact(Exception):
    """A predictor asked for the exact ensemble of a network that was only estimated."""


class _EvalCase(Case):
    """A :class:`~ensemble_study.predictors.Case` whose exact ensemble is the one
    already computed, or unavailable (``_NotExact``) when it was estimated."""

    def __init__(self, net, cfg, X, exact):
        super().__init__(net, cfg, X)
        self._exact = exact

    @property
    def exact(self):
        if self._exact is None:
            raise _NotExact
        return self._exact


def _seed_of(rng) -> int:
    """An int root seed for the sampled predictors' named streams."""
    if rng is None:
        return 0
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return int(rng)
    if isinstance(rng, np.random.SeedSequence):
        return int(rng.generate_state(1, np.uint64)[0])
    return int(check_rng(rng).integers(2**63))


def _scorer(output, reference, std, y):
    """``scores(prediction, gaps=True) -> dict`` of the metric columns."""
    def scores(pred, gaps=True):
        out = {}
        if y is not None:
            out.update(error=error_rate(pred, y), nll=nll(pred, y),
                       brier=brier(pred, y), ece=ece(pred, y))
        if gaps:
            out.update(gap_metrics(reference, pred, std=std, output=output))
        return out
    return scores
