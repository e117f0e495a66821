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

from .._checks import check_keep_prob
from ..dropout import SCHEMES, DropoutConfig, scaled_forward, unit_keep_probs
from ..ensemble import exact_ensemble, subnetwork_outputs
from ..executor import map_cells
from ..masks import enumerate_masks
from . import _common as c

NAME = "spread"
OUTPUTS = ("sigmoid", "identity")
MAX_DROPPED = 14
DEFAULTS = dict(
    activations=("relu", "tanh", "sigmoid"), output="sigmoid", scheme="inverted",
    keep_prob=0.5, width=5, depth=2, n_features=4, n_inputs=3, seed=0,
)
QUICK = dict(DEFAULTS, width=3, n_inputs=2)


def check_params(*, activations, output, scheme, keep_prob, width, depth, n_features,
                 n_inputs, seed) -> dict:
    """Validate the grid before any work; return it normalised (``ValueError`` if bad)."""
    c.check_common(n_inputs=n_inputs, n_seeds=1, n_features=n_features, seed=seed)
    for value, name in ((width, "width"), (depth, "depth")):
        c.check_positive_int(value, name)
    c.check_exact_size(width * depth, MAX_DROPPED, "width * depth")
    return dict(
        activations=c.check_choices(activations, c.HIDDEN_ACTIVATIONS, "activations"),
        output=c.check_choices(output, OUTPUTS, "output")[0],
        scheme=c.check_choices(scheme, SCHEMES, "scheme")[0],
        keep_prob=check_keep_prob(keep_prob), width=width, depth=depth,
        n_features=n_features, n_inputs=n_inputs, seed=seed,
    )


def run(*, progress=False, execution=None, **params) -> pd.DataFrame:
    """Run the spread study.

    Parameters
    ----------
    activations : sequence of str
    output : {"sigmoid", "identity"}
    scheme : {"vanilla", "inverted"}
    keep_prob : float in (0, 1]
    width, depth : int
        Hidden layers, all dropped (at most ``MAX_DROPPED`` units: one row
        per subnetwork and input).
    n_features, n_inputs, seed : int
    progress, execution
        As in :func:`ensemble_study.studies.sweep.run`.

    Returns
    -------
    DataFrame
        One row per (activation, input, subnetwork) plus three summary rows
        per (activation, input).
    """
    p = check_params(**params)
    return c.tidy(map_cells(NAME, run_cell, cells(p), p, execution=execution,
                            progress=progress))


def cells(params: dict) -> list[tuple]:
    """``(position, activation)`` per network, in grid order."""
    return list(enumerate(params["activations"]))


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """Every subnetwork's output on every input, then the summary rows."""
    i, activation = cell
    p = params
    cfg = DropoutConfig(p["keep_prob"], layers=list(range(1, p["depth"] + 1)),
                        scheme=p["scheme"])
    sizes = (p["n_features"], *(p["width"],) * p["depth"], 1)
    net, X = c.draw_cell(c.stream(p["seed"], i), sizes, activation, p["output"], p["n_inputs"])
    # One chunk holds every mask: at most 2**MAX_DROPPED rows.
    ((masks, log_probs),) = enumerate_masks(unit_keep_probs(net, cfg), 2**MAX_DROPPED)
    values = subnetwork_outputs(net, cfg, X, masks)[:, :, 0]  # (n_masks, n_inputs)
    ens = exact_ensemble(net, cfg, X)
    summary = {"arithmetic_mean": ens.mean, "scaled": scaled_forward(net, cfg, X)}
    if ens.geometric_mean is not None:
        summary["nwgm"] = ens.geometric_mean
    ident = dict(study=NAME, architecture=net.architecture, activation=activation,
                 output=p["output"], scheme=p["scheme"], keep_prob=p["keep_prob"], seed=0,
                 method="exact", n_subnetworks=len(masks))
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


def run_default(quick: bool, progress=False, execution=None):
    """The default grid (``QUICK`` when ``quick``): ``(DataFrame, params)``."""
    params = QUICK if quick else DEFAULTS
    return run(progress=progress, execution=execution, **params), dict(params)
