"""keep_prob sweep: the exact ensemble against the scaled pass, both schemes.

For every random network (one per output, hidden activation and seed) and
every keep_prob, three exact ensembles over all masks of the hidden layers:

* ``scheme="vanilla", weights="original"``: vanilla dropout on the drawn weights;
* ``scheme="inverted", weights="original"``: inverted dropout on the same weights;
* ``scheme="vanilla", weights="equivalent"``: vanilla dropout on the weights
  that make it the same family as the inverted rows (``convert_scheme``,
  DESIGN fact 5), so its gaps must equal the inverted rows'.

Each is compared with its scheme's scaled pass, once for the arithmetic mean
and once for the NWGM (probability outputs), in the ``statistic`` column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dropout import DropoutConfig, convert_scheme, scaled_forward
from ..ensemble import exact_ensemble
from ..executor import map_cells
from . import _common as c

NAME = "sweep"
MAX_DROPPED = 20
DEFAULTS = dict(
    activations=c.HIDDEN_ACTIVATIONS,
    outputs=("sigmoid", "softmax"),
    # Every 0.05 from 0.05 to 0.95, then the small-noise end (slopes are fitted on q >= 0.8).
    keep_probs=(*(round(0.05 * i, 2) for i in range(1, 20)), 0.98, 0.99, 1.0),
    width=8, depth=2, n_features=4, n_inputs=32, n_seeds=50, seed=0,
)
QUICK = dict(DEFAULTS, keep_probs=(0.1, 0.5, 0.9, 0.99, 1.0), width=4, n_inputs=16, n_seeds=2)


def check_params(*, activations, outputs, keep_probs, width, depth, n_features, n_inputs,
                 n_seeds, seed) -> dict:
    """Validate the grid before any work; return it normalised (``ValueError`` if bad)."""
    c.check_common(n_inputs=n_inputs, n_seeds=n_seeds, n_features=n_features, seed=seed)
    for value, name in ((width, "width"), (depth, "depth")):
        c.check_positive_int(value, name)
    c.check_exact_size(width * depth, MAX_DROPPED, "width * depth")
    return dict(
        activations=c.check_choices(activations, c.HIDDEN_ACTIVATIONS, "activations"),
        outputs=c.check_choices(outputs, c.OUTPUTS, "outputs"),
        keep_probs=c.check_keep_probs(keep_probs), width=width, depth=depth,
        n_features=n_features, n_inputs=n_inputs, n_seeds=n_seeds, seed=seed,
    )


def cells(params: dict) -> list[tuple]:
    """``(position, output, activation, seed)`` per network, in grid order."""
    grid = [(o, a, s) for o in params["outputs"] for a in params["activations"]
            for s in range(params["n_seeds"])]
    return [(i, *cell) for i, cell in enumerate(grid)]


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The rows of one network: every keep_prob, scheme/weights and statistic."""
    i, output, activation, s = cell
    p = params
    hidden = (p["width"],) * p["depth"]
    layers = list(range(1, p["depth"] + 1))
    sizes = (p["n_features"], *hidden, c.N_OUTPUTS[output])
    net, X = c.draw_cell(c.stream(p["seed"], i), sizes, activation, output, p["n_inputs"])
    rows = []
    for q in p["keep_probs"]:
        inverted = DropoutConfig(q, layers=layers, scheme="inverted")
        vanilla = DropoutConfig(q, layers=layers, scheme="vanilla")
        variants = [("vanilla", "original", net, vanilla),
                    ("inverted", "original", net, inverted),
                    ("vanilla", "equivalent", *convert_scheme(net, inverted, "vanilla"))]
        for scheme, weights, vnet, cfg in variants:
            ens = exact_ensemble(vnet, cfg, X)
            ident = dict(study=NAME, architecture=net.architecture, activation=activation,
                         output=output, scheme=scheme, weights=weights, keep_prob=q,
                         seed=s, method="exact", n_subnetworks=ens.n_subnetworks)
            rows += [{**ident, **r} for r in c.gap_rows(ens, scaled_forward(vnet, cfg, X),
                                                        output)]
    return rows


def run(*, progress=False, execution=None, **params) -> pd.DataFrame:
    """Run the sweep.

    Parameters
    ----------
    activations : sequence of str
        Hidden activations, each in ``HIDDEN_ACTIVATIONS``.
    outputs : sequence of str
        Output functions; softmax networks have 3 outputs, the others 1.
    keep_probs : sequence of float in (0, 1]
    width, depth : int
        Hidden layers: ``depth`` layers of ``width`` units, all dropped.
    n_features, n_inputs : int
        Input width and number of inputs ``X ~ N(0, 1)`` per network.
    n_seeds : int
        Networks per (output, activation); the ``seed`` column is the index.
    seed : int
        Root of ``SeedSequence(seed).spawn``: one stream per network.
    progress : bool or callable
        Progress on stderr (see :func:`ensemble_study.executor.map_cells`).
    execution : Execution, optional
        Where the cells run and where finished ones are stored (by default
        one after another in this process).

    Returns
    -------
    DataFrame
        One row per (network, keep_prob, scheme/weights, statistic).
    """
    p = check_params(**params)
    return c.tidy(map_cells(NAME, run_cell, cells(p), p, execution=execution,
                            progress=progress))


def run_default(quick: bool, progress=False, execution=None):
    """The default grid (``QUICK`` when ``quick``): ``(DataFrame, params)``."""
    params = QUICK if quick else DEFAULTS
    return run(progress=progress, execution=execution, **params), dict(params)


def small_noise_slopes(df: pd.DataFrame, *, metric: str = "mean_abs_gap",
                       q_min: float = 0.8) -> pd.DataFrame:
    """Slope of log(gap) against log((1 - q)/q) for ``q_min <= keep_prob < 1``.

    DESIGN fact 7 predicts slope 1 for the absolute gap (and 1/2 for the
    relative gap, whose denominator shrinks like sqrt((1 - q)/q)). A
    least-squares slope is fitted per network, then the median over networks
    is reported. Networks with a zero gap (identity activations for the NWGM)
    are skipped.

    Returns
    -------
    DataFrame
        One row per (output, activation, scheme, weights, statistic) with
        ``slope`` (median over networks) and ``n_networks``.
    """
    near = df[(df["keep_prob"] >= q_min) & (df["keep_prob"] < 1)]
    keys = ["output", "activation", "scheme", "weights", "statistic"]
    out = []
    for key, group in near.groupby(keys, sort=False):
        slopes = []
        for _, net in group.groupby("seed"):
            gap = net[metric].to_numpy()
            if len(net) >= 2 and np.all(gap > 1e-12):
                q = net["keep_prob"].to_numpy()
                slopes.append(np.polyfit(np.log((1 - q) / q), np.log(gap), 1)[0])
        if slopes:
            out.append({**dict(zip(keys, key, strict=True)), "slope": float(np.median(slopes)),
                        "n_networks": len(slopes)})
    return pd.DataFrame(out, columns=[*keys, "slope", "n_networks"])
