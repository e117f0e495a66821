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
draw). ``predictor`` names a record of :mod:`ensemble_study.predictors`:
``exact`` (the exact arithmetic mean, ``n_subnetworks`` of them), ``nwgm``
(their NWGM), ``scaled`` or ``mc`` (the arithmetic mean of ``n_samples`` = K
sampled subnetworks, ``draw`` numbering independent ensembles; 0 for the
deterministic predictors).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from ...datasets import DATASETS, check_loadable, load_dataset
from ...dropout import SCHEMES, DropoutConfig, scaled_forward
from ...ensemble import exact_ensemble, sample_ensemble
from ...metrics import gap_metrics
from ...network import HIDDEN_ACTIVATIONS, MLP
from ...study import Param, Study
from ...train import OPTIMIZERS, TrainConfig, error_rate, negative_log_likelihood, train
from .. import _common as c

ID_COLUMNS = ["dataset", "architecture", "state", "scheme", "keep_prob", "seed", "predictor",
              "n_subnetworks", "n_samples", "draw"]
METRIC_COLUMNS = ["error", "nll", "max_abs_gap", "mean_abs_gap", "relative_gap", "kl",
                  "total_variation", "disagreement"]
DEFAULT_TRAIN = TrainConfig(optimizer="adam", learning_rate=0.01, batch_size=32, epochs=40)
# exact_ensemble's default limit: the exact ensemble of every cell must fit it.
MAX_DROPPED = 24


def _stream(seed: int, *key: int) -> np.random.SeedSequence:
    """The child ``key`` of ``SeedSequence(seed)``, as ``spawn`` would number it."""
    return np.random.SeedSequence(seed, spawn_key=key)


def train_config(p: dict) -> TrainConfig:
    """The training configuration of the study's parameters."""
    return TrainConfig(optimizer=p["optimizer"], learning_rate=p["learning_rate"],
                       batch_size=p["batch_size"], epochs=p["epochs"],
                       weight_decay=p["weight_decay"], max_norm=p["max_norm"])


def check(p: dict) -> dict:
    """Across parameters: the training config, the fixed layers and the exact ensemble's size."""
    train_config(p)
    check_loadable(p["datasets"])
    n_hidden = len(p["hidden"])
    bad = [layer for layer, _ in p["layer_keep_probs"] if layer > n_hidden]
    if bad:
        raise ValueError(f"layer_keep_probs: layer {bad[0]} is not a hidden layer: the network "
                         f"has {n_hidden} (1..{n_hidden})")
    for name in p["datasets"]:
        n_inputs = (load_dataset(name, rng=0).n_features if p["input_keep_prob"] < 1 else 0)
        c.check_exact_size(sum(p["hidden"]) + n_inputs, MAX_DROPPED,
                           f"dataset {name!r}: hidden units"
                           + (" + input units (input_keep_prob < 1)" if n_inputs else ""))
    return p


def _score(net, cfg, X, y, sample_sizes, n_draws, ss) -> list[dict]:
    """Rows (predictor, n_samples, draw, metrics) for one network and dropout config."""
    exact = exact_ensemble(net, cfg, X)
    std = np.sqrt(exact.variance)
    preds = [("exact", 0, 0, exact.mean), ("nwgm", 0, 0, exact.geometric_mean),
             ("scaled", 0, 0, scaled_forward(net, cfg, X))]
    for k, draw in itertools.product(sample_sizes, range(n_draws)):
        # Keyed by K and the draw, not by their place in the grid.
        stream = np.random.SeedSequence(ss.entropy, spawn_key=ss.spawn_key + (k, draw))
        preds.append(("mc", k, draw, sample_ensemble(net, cfg, X, k, stream).mean))
    rows = []
    for predictor, k, draw, probs in preds:
        rows.append({"predictor": predictor, "n_samples": k, "draw": draw,
                     "n_subnetworks": exact.n_subnetworks if predictor in ("exact", "nwgm")
                     else 0,
                     "error": error_rate(net.output, probs, y),
                     "nll": negative_log_likelihood(net.output, probs, y),
                     **gap_metrics(exact.mean, probs, std=std, output=net.output)})
    return rows


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
    fixed = dict(p["layer_keep_probs"])
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
    net, _ = train(net0, cfg, ds.X_train, ds.y_train, train_cfg=train_config(p),
                   rng=train_ss)
    ids = {"dataset": name, "architecture": net.architecture, "scheme": scheme,
           "keep_prob": q, "seed": seed}
    rows = []
    for state, model, ss in (("init", net0, score0_ss), ("trained", net, score_ss)):
        for row in _score(model, cfg, X, y, p["n_samples"], p["n_draws"], ss):
            rows.append({**ids, "state": state, **row})
    return rows


def tidy(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows, columns=ID_COLUMNS + METRIC_COLUMNS)


def record(params: dict) -> dict:
    return {**params, "layer_keep_probs": dict(params["layer_keep_probs"])}


STUDY = Study(
    "trained",
    title="Train with dropout over a grid; score exact, NWGM, scaled and sampled predictors.",
    params=(
        Param("datasets", "str", ("digits", "digits_2v3"), "Dataset; repeat for several.",
              multiple=True, choices=DATASETS, flag="--dataset"),
        Param("hidden", "int", (10, 10), "Width of a hidden layer; repeat once per layer. "
              "Every hidden layer is dropped: 2**(sum of widths) subnetworks.",
              quick=(6, 6), multiple=True, low=1, high=MAX_DROPPED),
        Param("keep_probs", "keep_prob", (0.2, 0.35, 0.5, 0.7, 0.9),
              "Keep probability of the hidden units; repeat for several.", quick=(0.5, 0.9),
              multiple=True, flag="--keep-prob"),
        Param("schemes", "str", SCHEMES, "Dropout scheme; repeat for both.", multiple=True,
              choices=SCHEMES, flag="--scheme"),
        Param("seeds", "int", (0, 1, 2), "Training seed (initial network, masks, sampled "
              "ensembles); repeat for several.", quick=(0,), multiple=True, low=0,
              flag="--seed"),
        Param("activation", "str", "relu", "Activation of every hidden layer.",
              choices=HIDDEN_ACTIVATIONS),
        Param("input_keep_prob", "keep_prob", 1.0, "Keep probability of the input units in "
              "every cell (1: no input dropout; the inputs then join the exact ensemble, so "
              "only 2-D datasets fit)."),
        Param("layer_keep_probs", "layer_keep_prob", (), "Fix the keep probability of one "
              "hidden layer (1 = the first) in every cell, e.g. 2=0.8; the other hidden "
              "layers take the grid's keep_prob. Repeat for several layers.", multiple=True,
              min_count=0, flag="--layer-keep-prob"),
        Param("epochs", "int", 40, "Passes over the training split.", quick=10, low=1,
              high=100_000),
        Param("optimizer", "str", "adam", "Adam, or mini-batch SGD with momentum 0.9.",
              choices=OPTIMIZERS),
        Param("learning_rate", "float", 0.01, "Step size.", low=0, low_open=True),
        Param("batch_size", "int", 32, "Examples per step (each with its own fresh mask).",
              low=1),
        Param("weight_decay", "float", 0.0, "L2 penalty 0.5 * wd * ||W||^2 on the weights.",
              low=0),
        Param("max_norm", "float", None, "Bound on each hidden unit's incoming weight norm.",
              low=0, low_open=True, optional=True),
        Param("n_test", "int", 200, "Score the first N test examples (the exact ensemble's "
              "cost grows with N).", quick=60, low=1, high=c.MAX_INPUTS),
        Param("n_samples", "int", (1, 10, 100, 1000), "K of a sampled ensemble; repeat for "
              "several.", quick=(1, 10, 100), multiple=True, unique=True, low=1,
              high=c.MAX_SAMPLES, aliases=("--sample-size",)),
        Param("n_draws", "int", 3, "Independent K-member ensembles per K.", quick=2, low=1,
              high=10_000),
        Param("split_seed", "int", 0, "Seeds the train/test split, the same for every cell.",
              low=0),
    ),
    cells=cells, run_cell=run_cell, tidy=tidy, check=check, record=record, order=50,
    cost="about 1.5 minutes on 2 cores",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
