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

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ._checks import check_positive_int
from .dropout import DropoutConfig, check_config, scaled_forward
from .ensemble import (
    CHOICES,
    check_max_subnetworks,
    choose_estimator,
    exact_ensemble,
    sample_ensemble,
)
from .metrics import gap_metrics
from .network import MLP, check_input
from .train import error_rate, negative_log_likelihood

logger = logging.getLogger(__name__)


# The estimator names evaluate accepts (ensemble.choose_estimator decides "auto").
ESTIMATORS = {name: name for name in CHOICES}
ID_COLUMNS = ["architecture", "output", "scheme", "layers", "keep_prob", "method",
              "n_subnetworks", "n_samples", "predictor", "reference"]
METRIC_COLUMNS = ["error", "nll", "mean_stderr", "max_abs_gap", "mean_abs_gap",
                  "relative_gap", "kl", "total_variation", "disagreement"]


def load_network(path, *, output: str | None = None):
    """Read a network from an ``.npz`` of :meth:`MLP.save` or a ``.pt`` of PyTorch.

    A ``.pt`` file must hold a whole pickled ``nn.Sequential`` (``torch.save(model,
    path)``); it is read with ``torch.load(weights_only=False)``, which runs
    the pickle's code: **load only files you trust**.

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
        if not isinstance(module, torch.nn.Sequential):
            raise ValueError(f"{path} holds a {type(module).__name__} object, not an "
                             f"nn.Sequential; save the whole model with torch.save(model, path) (a "
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
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes:
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
    report=None,
    progress: bool = False,
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
    estimator : {"auto", "exact", "rb_mc", "mc"}
        ``"auto"``: :func:`ensemble_study.ensemble.choose_estimator` picks
        from the cost model (exact within ``max_subnetworks`` and the
        budget, ``rb_mc`` where its samples are cheap, else ``mc``, with K
        lowered to fit ``time_budget``). An explicit name out of reach
        (memory, time, or not applicable) is refused before any work, naming
        the cheaper option.
    rng : int, SeedSequence or Generator
        Required only when the ensemble is estimated.
    time_budget : float or None
        Seconds the ensemble's computation may take by the cost model's
        (upper) estimate; None: no limit.
    report : callable, optional
        Called with one line (the choice and its estimated cost) before the
        work starts.
    progress : bool
        Progress on stderr while the ensemble is computed.

    Returns
    -------
    DataFrame
        ``ID_COLUMNS + METRIC_COLUMNS`` (module docstring). ``method`` is
        ``"exact"`` or the estimator's name; ``n_subnetworks`` counts the
        enumerated subnetworks (exact), ``n_samples`` the sampled masks K
        (estimated); ``mean_stderr`` (estimated ensembles only, on the
        ``mean`` row) is the mean over examples and outputs of the standard
        error of the estimated mean. ``df.attrs["choice"]`` is the
        :class:`~ensemble_study.ensemble.Cost` of the choice.
    """
    X = check_input(net, X)
    check_config(net, cfg)
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
    if method == "exact":
        ens = exact_ensemble(net, cfg, X, max_subnetworks=max_subnetworks, progress=progress)
    else:
        ens = sample_ensemble(net, cfg, X, choice.count, rng, estimator=method,
                              progress=progress)
    scaled = scaled_forward(net, cfg, X)
    std = np.sqrt(ens.variance)
    ids = {"architecture": net.architecture, "output": net.output, **_describe_cfg(cfg),
           "method": method,
           "n_subnetworks": ens.n_subnetworks if method == "exact" else None,
           "n_samples": ens.n_subnetworks if method != "exact" else None}
    preds = {"mean": ens.mean, "scaled": scaled}
    pairs = [("mean", None)]
    if ens.geometric_mean is not None:
        preds["nwgm"] = ens.geometric_mean
        pairs += [("nwgm", "mean"), ("scaled", "mean"), ("scaled", "nwgm")]
    else:
        pairs += [("scaled", "mean")]
    rows = []
    for predictor, reference in pairs:
        row = {**ids, "predictor": predictor, "reference": reference}
        if labelled:
            row["error"] = error_rate(net.output, preds[predictor], y)
            row["nll"] = negative_log_likelihood(net.output, preds[predictor], y)
        if predictor == "mean" and ens.stderr is not None:
            row["mean_stderr"] = float(np.mean(ens.stderr))
        if reference is not None:
            row.update(gap_metrics(preds[reference], preds[predictor], std=std,
                                   output=net.output))
        rows.append(row)
    df = pd.DataFrame(rows).reindex(columns=ID_COLUMNS + METRIC_COLUMNS)
    df["n_subnetworks"] = df["n_subnetworks"].astype("Int64")
    df["n_samples"] = df["n_samples"].astype("Int64")
    df.attrs["choice"] = choice
    return df
