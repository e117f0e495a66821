"""Subnetwork spread: every subnetwork's output for a few inputs.

For one random network per hidden activation, every one of the ``2**n``
subnetworks (all masks of the hidden layers) is evaluated on a few inputs.
``quantity="subnetwork"`` rows hold one subnetwork's output (``value``) and
its mask's ``probability`` (``subnetwork`` is the mask's index in
enumeration order); ``quantity`` ``"arithmetic_mean"``, ``"nwgm"`` and
``"scaled"`` rows hold the ensemble statistics and the scheme's scaled pass
for the same input. Outputs have one unit (identity or sigmoid).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...dropout import DropoutConfig, scaled_forward, unit_keep_probs
from ...ensemble import exact_ensemble, subnetwork_outputs
from ...masks import enumerate_masks
from ...study import Study
from .. import _common as c

OUTPUTS = ("sigmoid", "identity")
MAX_DROPPED = 14


def check(p: dict) -> dict:
    """Across parameters: every mask's output fits one table."""
    c.check_exact_size(p["width"] * p["depth"], MAX_DROPPED, "width * depth")
    return p


def cells(params: dict) -> list[tuple]:
    """One network per activation, in grid order."""
    return list(params["activations"])


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """Every subnetwork's output on every input, then the summary rows."""
    activation = cell
    p = params
    cfg = DropoutConfig(p["keep_prob"], layers=list(range(1, p["depth"] + 1)),
                        scheme=p["scheme"])
    sizes = (p["n_features"], *(p["width"],) * p["depth"], 1)
    net, X = c.draw_cell(c.network_stream(p["seed"], p["output"], activation, 0, sizes), sizes,
                         activation, p["output"], p["n_inputs"])
    # One chunk holds every mask: at most 2**MAX_DROPPED rows.
    ((masks, log_probs),) = enumerate_masks(unit_keep_probs(net, cfg), 2**MAX_DROPPED)
    values = subnetwork_outputs(net, cfg, X, masks)[:, :, 0]  # (n_masks, n_inputs)
    ens = exact_ensemble(net, cfg, X)
    summary = {"arithmetic_mean": ens.mean, "scaled": scaled_forward(net, cfg, X)}
    if ens.geometric_mean is not None:
        summary["nwgm"] = ens.geometric_mean
    ident = dict(study=STUDY.name, architecture=net.architecture, activation=activation,
                 output=p["output"], scheme=p["scheme"], keep_prob=p["keep_prob"], seed=0,
                 n_subnetworks=len(masks))
    n_masks, n_in = values.shape
    subnetworks = pd.DataFrame({
        **ident, "input": np.tile(np.arange(n_in), n_masks),
        "quantity": "subnetwork", "subnetwork": np.repeat(np.arange(n_masks), n_in),
        "probability": np.repeat(np.exp(log_probs), n_in), "value": values.ravel(),
    })
    return subnetworks.to_dict("records") + [
        {**ident, "input": j, "quantity": name, "subnetwork": -1, "probability": np.nan,
         "value": float(v[j, 0])}
        for name, v in summary.items() for j in range(n_in)
    ]


STUDY = Study(
    "spread",
    title="Every subnetwork's output for a few inputs, with the ensemble's statistics.",
    params=(
        c.activations(("relu", "tanh", "sigmoid")),
        c.output("sigmoid", choices=OUTPUTS),
        c.scheme(),
        c.keep_prob(0.5),
        c.width(5, quick=3, high=MAX_DROPPED),
        c.depth(2, high=MAX_DROPPED),
        c.n_features(4),
        c.n_inputs(3, quick=2),
        c.seed(),
    ),
    cells=cells, run_cell=run_cell, tidy=c.tidy, check=check, order=30,
    cost="a second",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
