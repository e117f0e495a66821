"""Study ``boundary``: decision boundaries of the exact ensemble and the scaled pass.

A small ReLU network with one sigmoid output is trained with dropout on both
hidden layers on a two-dimensional task; then the exact ensemble's mean and
NWGM and the scaled pass are evaluated on a regular grid of the input plane
(raw, un-standardised coordinates). One row per (scheme, keep_prob, grid
point).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd

from ..datasets import load_dataset
from ..dropout import SCHEMES, DropoutConfig, scaled_forward
from ..ensemble import exact_ensemble
from ..executor import map_cells
from ..network import MLP
from ..train import TrainConfig, error_rate, train

NAME = "boundary"
ID_COLUMNS = ["dataset", "architecture", "scheme", "keep_prob", "seed", "x1", "x2"]
METRIC_COLUMNS = ["exact_mean", "exact_nwgm", "scaled", "test_error_exact", "test_error_scaled"]
DEFAULT_TRAIN = TrainConfig(optimizer="adam", learning_rate=0.01, batch_size=32, epochs=60)


def run(
    *,
    dataset: str = "diamond",
    hidden=(8, 8),
    keep_probs=(0.5,),
    schemes=SCHEMES,
    seed: int = 0,
    n_samples: int = 1000,
    noise: float = 0.1,
    grid_size: int = 61,
    extent: float = 1.5,
    train_cfg: TrainConfig = DEFAULT_TRAIN,
    progress=False,
    execution=None,
) -> pd.DataFrame:
    """Train one network per (scheme, keep_prob) and map its predictions over the plane.

    Parameters
    ----------
    dataset : str
        A two-dimensional, two-class task: ``"diamond"``, ``"moons"``,
        ``"xor"`` or ``"spirals"``.
    hidden : sequence of int
        Hidden widths, all dropped (``2**sum(hidden)`` subnetworks).
    keep_probs, schemes : sequences
        One trained network per pair, all from the same initial network.
    seed : int
        Data, initialisation and training masks.
    n_samples, noise : generated-data size and input noise.
    grid_size : int
        Points per axis of the grid over ``[-extent, extent]^2``.
    train_cfg : TrainConfig
    progress : bool or callable
        Progress over networks on stderr (see :func:`ensemble_study.executor.map_cells`).
    execution : Execution, optional
        Where the cells run and where finished ones are stored (by default
        one after another in this process).

    Returns
    -------
    DataFrame
        Columns ``ID_COLUMNS + METRIC_COLUMNS``: the three predicted
        probabilities of class 1 at each grid point, and the test errors of
        the exact ensemble mean and the scaled pass (repeated on every row of
        a network).
    """
    params = dict(dataset=dataset, hidden=tuple(hidden), keep_probs=tuple(keep_probs),
                  schemes=tuple(schemes), seed=seed, n_samples=n_samples, noise=noise,
                  grid_size=grid_size, extent=extent, train_cfg=train_cfg)
    _setting(params)  # a bad dataset fails here, before any cell runs
    rows = map_cells(NAME, run_cell, cells(params), params, execution=execution,
                     progress=progress)
    return pd.DataFrame(rows)[ID_COLUMNS + METRIC_COLUMNS]


# The name it had before every study's ``run``.
run_boundary = run


def cells(params: dict) -> list[tuple]:
    """``(position, scheme, keep_prob)`` per trained network, in grid order."""
    return [(i, *cell) for i, cell in
            enumerate(itertools.product(params["schemes"], params["keep_probs"]))]


def _setting(p: dict):
    """The data, the initial network and the standardised grid every cell shares.

    Streams: ``SeedSequence(seed).spawn`` child 0 draws the data, child 1 the
    initial network, child ``2 + position`` the training masks of a cell.
    """
    ds = load_dataset(p["dataset"], rng=np.random.default_rng(_child(p["seed"], 0)),
                      n_samples=p["n_samples"], noise=p["noise"])
    if ds.n_features != 2 or ds.n_classes != 2:
        raise ValueError(f"dataset must be a two-dimensional two-class task "
                         f"('diamond', 'moons', 'xor', 'spirals'); got {p['dataset']!r}")
    sizes = (2, *p["hidden"], 1)
    net0 = MLP.random(sizes, "relu", "sigmoid", rng=np.random.default_rng(_child(p["seed"], 1)))
    axis = np.linspace(-p["extent"], p["extent"], p["grid_size"])
    g1, g2 = np.meshgrid(axis, axis, indexing="xy")
    grid_raw = np.c_[g1.ravel(), g2.ravel()]
    return ds, net0, grid_raw, ds.standardise(grid_raw)


def _child(seed: int, position: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(position,))


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """Train one network; its three predictions at every grid point."""
    i, scheme, q = cell
    ds, net0, grid_raw, grid = _setting(params)
    cfg = DropoutConfig(q, layers=list(range(1, net0.n_layers)), scheme=scheme)
    net, _ = train(net0, cfg, ds.X_train, ds.y_train, train_cfg=params["train_cfg"],
                   rng=np.random.default_rng(_child(params["seed"], 2 + i)))
    both = np.r_[grid, ds.X_test]
    ens = exact_ensemble(net, cfg, both)
    scaled = scaled_forward(net, cfg, both)
    n = grid.shape[0]
    return pd.DataFrame({
        "dataset": params["dataset"], "architecture": net.architecture, "scheme": scheme,
        "keep_prob": q, "seed": params["seed"], "x1": grid_raw[:, 0], "x2": grid_raw[:, 1],
        "exact_mean": ens.mean[:n, 0], "exact_nwgm": ens.geometric_mean[:n, 0],
        "scaled": scaled[:n, 0],
        "test_error_exact": error_rate("sigmoid", ens.mean[n:], ds.y_test),
        "test_error_scaled": error_rate("sigmoid", scaled[n:], ds.y_test),
    }).to_dict("records")


def default_params(quick: bool) -> dict:
    """The default grid (coarser and smaller when ``quick``)."""
    if quick:
        return {"dataset": "diamond", "hidden": (6, 6), "keep_probs": (0.5,),
                "schemes": SCHEMES, "seed": 0, "grid_size": 25,
                "train_cfg": dataclasses.replace(DEFAULT_TRAIN, epochs=15)}
    return {"dataset": "diamond", "hidden": (8, 8), "keep_probs": (0.3, 0.6),
            "schemes": SCHEMES, "seed": 0, "grid_size": 61, "train_cfg": DEFAULT_TRAIN}


def run_default(quick: bool = False, progress=False, execution=None):
    params = default_params(quick)
    df = run(**params, progress=progress, execution=execution)
    return df, {**params, "train_cfg": dataclasses.asdict(params["train_cfg"])}
