"""Study ``trained``: the dropout ensemble against the scaled pass after training.

For each dataset, training seed, scheme and keep_prob, a small ReLU network
is trained with dropout on every hidden layer; then, on held-out test
examples, the exact ensemble (arithmetic mean and NWGM of all ``2**n``
subnetworks), the scheme's scaled pass and sampled ensembles of K
subnetworks are scored: test error, negative log-likelihood, and the gap
metrics of each predictor against the exact arithmetic mean. The untrained
network (its initialisation, with the same dropout) is scored the same way,
for contrast.

One row per (dataset, state, scheme, keep_prob, seed, predictor, n_samples,
draw). ``predictor`` is ``exact_mean``, ``exact_nwgm``, ``scaled`` or
``sampled`` (arithmetic mean of ``n_samples`` = K sampled subnetworks,
``draw`` numbering independent ensembles); for the others ``n_samples`` is
the number of subnetworks averaged (1 for the scaled pass) and ``draw`` is 0.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..datasets import load_dataset
from ..dropout import SCHEMES, DropoutConfig, scaled_forward
from ..ensemble import exact_ensemble, sample_ensemble
from ..executor import map_cells
from ..metrics import gap_metrics
from ..network import MLP
from ..train import TrainConfig, error_rate, negative_log_likelihood, train

NAME = "trained"
ID_COLUMNS = ["dataset", "architecture", "state", "scheme", "keep_prob", "seed", "predictor",
              "n_samples", "draw"]
METRIC_COLUMNS = ["error", "nll", "max_abs_gap", "mean_abs_gap", "relative_gap", "kl",
                  "total_variation", "disagreement"]
DEFAULT_TRAIN = TrainConfig(optimizer="adam", learning_rate=0.01, batch_size=32, epochs=40)


def _stream(seed: int, *key: int) -> np.random.SeedSequence:
    """The child ``key`` of ``SeedSequence(seed)``, as ``spawn`` would number it."""
    return np.random.SeedSequence(seed, spawn_key=key)


def _score(net, cfg, X, y, sample_sizes, n_draws, ss) -> list[dict]:
    """Rows (predictor, n_samples, draw, metrics) for one network and dropout config."""
    exact = exact_ensemble(net, cfg, X)
    std = np.sqrt(exact.variance)
    preds = [("exact_mean", exact.n_subnetworks, 0, exact.mean),
             ("exact_nwgm", exact.n_subnetworks, 0, exact.geometric_mean),
             ("scaled", 1, 0, scaled_forward(net, cfg, X))]
    streams = ss.spawn(len(sample_sizes) * n_draws)
    for (k, draw), stream in zip(itertools.product(sample_sizes, range(n_draws)), streams):
        preds.append(("sampled", k, draw, sample_ensemble(net, cfg, X, k, stream).mean))
    rows = []
    for predictor, k, draw, probs in preds:
        rows.append({"predictor": predictor, "n_samples": k, "draw": draw,
                     "error": error_rate(net.output, probs, y),
                     "nll": negative_log_likelihood(net.output, probs, y),
                     **gap_metrics(exact.mean, probs, std=std, output=net.output)})
    return rows


def run(
    *,
    datasets=("digits", "digits_2v3"),
    hidden=(10, 10),
    keep_probs=(0.2, 0.35, 0.5, 0.7, 0.9),
    schemes=SCHEMES,
    seeds=(0, 1, 2),
    n_test: int | None = 200,
    sample_sizes=(1, 10, 100, 1000),
    n_draws: int = 3,
    train_cfg: TrainConfig = DEFAULT_TRAIN,
    split_seed: int = 0,
    activation: str = "relu",
    input_keep_prob: float = 1.0,
    layer_keep_probs=None,
    progress=False,
    execution=None,
) -> pd.DataFrame:
    """Train with dropout on each grid cell, then score every predictor on test data.

    Parameters
    ----------
    datasets : sequence of str
        Names from :data:`ensemble_study.datasets.DATASETS`; two classes get
        one sigmoid output, more get a softmax.
    hidden : sequence of int
        Hidden widths; every hidden layer is dropped, so the exact ensemble
        has ``2**sum(hidden)`` subnetworks.
    keep_probs, schemes, seeds : sequences
        The grid. A seed fixes the initial network (shared by every cell of
        that seed), the masks drawn in training and the sampled ensembles.
    n_test : int or None
        Score only the first ``n_test`` test examples (all when None); the
        cost of the exact ensemble grows linearly with it.
    sample_sizes : sequence of int
        K for the sampled ensembles.
    n_draws : int
        Independent K-member ensembles per K.
    train_cfg : TrainConfig
    split_seed : int
        The train/test split, the same for every cell.
    activation : str
        The hidden activation, one of ``HIDDEN_ACTIVATIONS``.
    input_keep_prob : float in (0, 1]
        Keep probability of the input units in every cell (1: the input is
        not dropped; below 1 its units join the exact ensemble's masks).
    layer_keep_probs : mapping {hidden layer: keep_prob}, optional
        Per-layer keep probabilities fixed in every cell: the listed hidden
        layers (1..L-1) keep these, the others the cell's ``keep_prob``
        (the ``keep_prob`` column).
    progress : bool or callable
        Progress over cells on stderr (see :func:`ensemble_study.executor.map_cells`).
    execution : Execution, optional
        Where the cells run and where finished ones are stored (by default
        one after another in this process).

    Returns
    -------
    DataFrame
        Columns ``ID_COLUMNS + METRIC_COLUMNS`` (see the module docstring).
    """
    params = dict(datasets=tuple(datasets), hidden=tuple(hidden), keep_probs=tuple(keep_probs),
                  schemes=tuple(schemes), seeds=tuple(seeds), n_test=n_test,
                  sample_sizes=tuple(sample_sizes), n_draws=n_draws, train_cfg=train_cfg,
                  split_seed=split_seed, activation=activation,
                  input_keep_prob=input_keep_prob,
                  layer_keep_probs=_check_layer_keep_probs(layer_keep_probs, len(hidden)))
    rows = map_cells(NAME, run_cell, cells(params), params, execution=execution,
                     progress=progress)
    return pd.DataFrame(rows, columns=ID_COLUMNS + METRIC_COLUMNS)


# The name it had before every study's ``run``.
run_trained = run


def _check_layer_keep_probs(values, n_hidden: int) -> dict:
    """``{hidden layer: keep_prob}`` (sorted, possibly empty), or ``ValueError``."""
    from .._checks import check_keep_prob

    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise TypeError(f"layer_keep_probs must be a mapping {{hidden layer: keep_prob}}; "
                        f"got {type(values).__name__}")
    out = {}
    for layer, q in values.items():
        if (isinstance(layer, bool) or not isinstance(layer, (int, np.integer))
                or not 1 <= layer <= n_hidden):
            raise ValueError(f"layer_keep_probs: layers must be hidden layers 1..{n_hidden}; "
                             f"got {layer!r}")
        out[int(layer)] = check_keep_prob(q, f"layer_keep_probs[{layer}]")
    return dict(sorted(out.items()))


def cells(params: dict) -> list[tuple]:
    """``(dataset, seed, scheme, keep_prob)`` per trained network, in grid order."""
    p = params
    return list(itertools.product(p["datasets"], p["seeds"], p["schemes"], p["keep_probs"]))


@functools.lru_cache(maxsize=8)
def _dataset(name: str, split_seed: int):
    return load_dataset(name, rng=split_seed)


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """Train one network; score it and its initialisation."""
    name, seed, scheme, q = cell
    p = params
    ds = _dataset(name, p["split_seed"])
    X, y = ds.X_test[:p["n_test"]], ds.y_test[:p["n_test"]]
    sizes = (ds.n_features, *p["hidden"], ds.n_outputs)
    # One initial network per dataset and seed, shared by that seed's cells.
    net0 = MLP.random(sizes, p["activation"], ds.output, rng=_stream(seed, 0))
    hidden_layers = range(1, len(sizes) - 1)
    fixed = p.get("layer_keep_probs") or {}
    if p["input_keep_prob"] == 1 and not fixed:
        cfg = DropoutConfig(q, layers=list(hidden_layers), scheme=scheme)
    else:
        kp = {**dict.fromkeys(hidden_layers, q), **fixed}
        if p["input_keep_prob"] < 1:
            kp = {0: p["input_keep_prob"], **kp}
        cfg = DropoutConfig(kp, scheme=scheme)
    # Keyed by the cell, not by its position in the grid, so that a
    # cell gives the same numbers whatever grid it is run in.
    cell_ss = _stream(seed, 1 + SCHEMES.index(scheme), round(q * 10**6))
    train_ss, score0_ss, score_ss = cell_ss.spawn(3)
    net, _ = train(net0, cfg, ds.X_train, ds.y_train, train_cfg=p["train_cfg"], rng=train_ss)
    ids = {"dataset": name, "architecture": net.architecture, "scheme": scheme,
           "keep_prob": q, "seed": seed}
    rows = []
    for state, model, ss in (("init", net0, score0_ss), ("trained", net, score_ss)):
        for row in _score(model, cfg, X, y, p["sample_sizes"], p["n_draws"], ss):
            rows.append({**ids, "state": state, **row})
    return rows


def default_params(quick: bool) -> dict:
    """The default grid (a much smaller one when ``quick``).

    The default computes 120 exact ensembles of 2**20 subnetworks (2 datasets
    x 3 seeds x 2 schemes x 5 keep_probs x trained/untrained) on 200 (digits)
    or 90 (2 vs 3) test examples: about 2-3.5 minutes on 2 cores, most of it
    in ``exact_ensemble``; ``quick`` takes a few seconds.
    """
    if quick:
        return {"datasets": ("digits", "digits_2v3"), "hidden": (6, 6),
                "keep_probs": (0.5, 0.9), "schemes": SCHEMES, "seeds": (0,), "n_test": 60,
                "sample_sizes": (1, 10, 100), "n_draws": 2,
                "train_cfg": dataclasses.replace(DEFAULT_TRAIN, epochs=10)}
    return {"datasets": ("digits", "digits_2v3"), "hidden": (10, 10),
            "keep_probs": (0.2, 0.35, 0.5, 0.7, 0.9), "schemes": SCHEMES, "seeds": (0, 1, 2),
            "n_test": 200, "sample_sizes": (1, 10, 100, 1000), "n_draws": 3,
            "train_cfg": DEFAULT_TRAIN}


def run_default(quick: bool = False, progress=False, execution=None):
    params = default_params(quick)
    df = run(**params, progress=progress, execution=execution)
    record = {**params, "train_cfg": dataclasses.asdict(params["train_cfg"])}
    return df, record
