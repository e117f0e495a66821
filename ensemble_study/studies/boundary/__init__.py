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

from ...datasets import GENERATED, load_dataset
from ...dropout import SCHEMES, DropoutConfig, scaled_forward
from ...ensemble import exact_ensemble
from ...network import MLP
from ...study import Param, Study
from ...train import TrainConfig, error_rate, train
from .. import _common as c

ID_COLUMNS = ["dataset", "architecture", "scheme", "keep_prob", "seed", "x1", "x2"]
METRIC_COLUMNS = ["exact_mean", "exact_nwgm", "scaled", "test_error_exact", "test_error_scaled"]
DEFAULT_TRAIN = TrainConfig(optimizer="adam", learning_rate=0.01, batch_size=32, epochs=60)
MAX_DROPPED = 24
# Grid points and generated examples: past these, memory grows without purpose.
MAX_GRID = 1001
MAX_EXAMPLES = 1_000_000


def train_config(p: dict) -> TrainConfig:
    return dataclasses.replace(DEFAULT_TRAIN, epochs=p["epochs"])


def check(p: dict) -> dict:
    if sum(p["hidden"]) > MAX_DROPPED:
        raise ValueError(f"hidden: {sum(p['hidden'])} dropped units would need "
                         f"2**{sum(p['hidden'])} subnetworks per exact ensemble; allowed at "
                         f"most {MAX_DROPPED} dropped units")
    return p


def cells(params: dict) -> list[tuple]:
    """``(scheme, keep_prob)`` per trained network, in grid order."""
    return list(itertools.product(params["schemes"], params["keep_probs"]))


def _setting(p: dict):
    """The data, the initial network and the standardised grid every cell shares.

    Streams (:func:`ensemble_study.studies._common.stream`): the data, the
    initial network, and each cell's training masks, each named by what it is for.
    """
    ds = load_dataset(p["dataset"], rng=c.stream(p["seed"], "boundary data", p["dataset"],
                                                    p["n_examples"], p["noise"]),
                      n_samples=p["n_examples"], noise=p["noise"])
    if ds.n_features != 2 or ds.n_classes != 2:
        raise ValueError(f"dataset must be a two-dimensional two-class task "
                         f"('diamond', 'moons', 'xor', 'spirals'); got {p['dataset']!r}")
    sizes = (2, *p["hidden"], 1)
    net0 = MLP.random(sizes, "relu", "sigmoid",
                      rng=c.stream(p["seed"], "boundary initial network", list(sizes)))
    axis = np.linspace(-p["extent"], p["extent"], p["grid_size"])
    g1, g2 = np.meshgrid(axis, axis, indexing="xy")
    grid_raw = np.c_[g1.ravel(), g2.ravel()]
    return ds, net0, grid_raw, ds.standardise(grid_raw)


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """Train one network; its three predictions at every grid point."""
    scheme, q = cell
    ds, net0, grid_raw, grid = _setting(params)
    cfg = DropoutConfig(q, layers=list(range(1, net0.n_layers)), scheme=scheme)
    net, _ = train(net0, cfg, ds.X_train, ds.y_train, train_cfg=train_config(params),
                   rng=c.stream(params["seed"], "boundary training", list(net0.sizes), scheme,
                                q))
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


def tidy(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)[ID_COLUMNS + METRIC_COLUMNS]


STUDY = Study(
    "boundary",
    title="Decision boundaries of the exact ensemble and the scaled pass on a 2-D task.",
    params=(
        Param("dataset", "str", "diamond", "Two-dimensional two-class task.",
              choices=GENERATED),
        Param("hidden", "int", (8, 8), "Width of a hidden ReLU layer (all dropped); repeat "
              "once per layer.", quick=(6, 6), multiple=True, low=1, high=MAX_DROPPED),
        Param("keep_probs", "keep_prob", (0.3, 0.6), "Keep probability of the hidden units; "
              "repeat for several.", quick=(0.5,), multiple=True, flag="--keep-prob"),
        Param("schemes", "str", SCHEMES, "Dropout scheme; repeat for both.", multiple=True,
              choices=SCHEMES, flag="--scheme"),
        Param("seed", "int", 0, "Seeds the data, the initial network and the training masks.",
              low=0),
        Param("n_examples", "int", 1000, "Generated examples (a quarter held out for the test "
              "error).", low=2, high=MAX_EXAMPLES, aliases=("--n-samples",)),
        Param("noise", "float", 0.1, "Standard deviation of the input noise.", low=0,
              high=1e6),
        Param("grid_size", "int", 61, "Points per axis of the grid over the plane.", quick=25,
              low=2, high=MAX_GRID),
        Param("extent", "float", 1.5, "The grid covers [-extent, extent]^2 (raw coordinates).",
              low=0, low_open=True, high=1e6),
        Param("epochs", "int", 60, "Passes over the training split.", quick=15, low=1,
              high=100_000),
    ),
    cells=cells, run_cell=run_cell, tidy=tidy, check=check, order=60,
    cost="a few seconds",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
