"""Depth and width: the gap against the number of hidden layers and their width.

Every (depth, width) of the grid with ``depth * width <= max_dropped`` is a
random network whose hidden layers are all dropped, so ``n_dropped = depth *
width`` and networks with the same ``n_dropped`` (e.g. 1x12, 2x6, 3x4)
compare depth at a fixed number of dropped units. Each exact ensemble is
compared with the scaled pass for the arithmetic mean and the NWGM.
"""

from __future__ import annotations

from ...dropout import DropoutConfig, scaled_forward
from ...ensemble import exact_ensemble
from ...study import Param, Study
from .. import _common as c

MAX_DROPPED = 20


def check(p: dict) -> dict:
    """Across parameters: at least one network of the grid fits ``max_dropped``."""
    if not any(d * w <= p["max_dropped"] for d in p["depths"] for w in p["widths"]):
        raise ValueError(
            f"depths x widths must hold at least one network with depth * width <= "
            f"max_dropped={p['max_dropped']}; got depths={p['depths']}, widths={p['widths']}"
        )
    return p


def cells(params: dict) -> list[tuple]:
    """``(activation, depth, width, seed)`` per network, in grid order."""
    p = params
    return [(a, d, w, s) for a in p["activations"] for d in p["depths"] for w in p["widths"]
            if d * w <= p["max_dropped"] for s in range(p["n_networks"])]


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The rows of one network, one per statistic."""
    activation, d, w, s = cell
    p = params
    sizes = (p["n_features"], *(w,) * d, c.N_OUTPUTS[p["output"]])
    net, X = c.draw_cell(c.network_stream(p["seed"], p["output"], activation, s, sizes), sizes,
                         activation, p["output"], p["n_inputs"])
    cfg = DropoutConfig(p["keep_prob"], layers=list(range(1, d + 1)), scheme=p["scheme"])
    ens = exact_ensemble(net, cfg, X)
    ident = dict(study=STUDY.name, architecture=net.architecture, activation=activation,
                 output=p["output"], scheme=p["scheme"], keep_prob=p["keep_prob"],
                 depth=d, width=w, n_dropped=d * w, seed=s, predictor="scaled",
                 n_subnetworks=ens.n_subnetworks)
    return [{**ident, **r} for r in c.gap_rows(ens, scaled_forward(net, cfg, X), p["output"])]


STUDY = Study(
    "depth",
    title="The gap against the number of hidden layers and their width.",
    params=(
        c.activations(("relu", "tanh", "sigmoid")),
        c.output("softmax"),
        c.scheme(),
        c.keep_prob(0.5),
        Param("depths", "int", (1, 2, 3), "Number of hidden layers; repeat for several.",
              multiple=True, unique=True, low=1, high=MAX_DROPPED, flag="--depth"),
        Param("widths", "int", (2, 3, 4, 6, 8, 12, 16), "Units per hidden layer; repeat for "
              "several.", quick=(2, 3, 4, 6), multiple=True, unique=True, low=1,
              high=MAX_DROPPED, flag="--width"),
        Param("max_dropped", "int", 16, "Skip networks with more dropped units (depth * "
              "width) than this.", quick=12, low=1, high=MAX_DROPPED),
        c.n_features(4),
        c.n_inputs(32, quick=16),
        c.n_networks(50, quick=2),
        c.seed(),
    ),
    cells=cells, run_cell=run_cell, tidy=c.tidy, check=check, order=40,
    cost="about 15 seconds on 2 cores",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
