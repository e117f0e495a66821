"""Depth and width: the gap against the number of hidden layers and their width.

Every (depth, width) of the grid with ``depth * width <= max_dropped`` is a
random network whose hidden layers are all dropped, so ``n_dropped = depth *
width`` and networks with the same ``n_dropped`` (e.g. 1x12, 2x6, 3x4)
compare depth at a fixed number of dropped units. Each exact ensemble is
compared with the scaled pass for the arithmetic mean and the NWGM.
"""

from __future__ import annotations

import pandas as pd

from .._checks import check_keep_prob
from ..dropout import SCHEMES, DropoutConfig, scaled_forward
from ..ensemble import exact_ensemble
from ..executor import map_cells
from . import _common as c

NAME = "depth"
MAX_DROPPED = 20
DEFAULTS = dict(
    activations=("relu", "tanh", "sigmoid"), output="softmax", scheme="inverted",
    keep_prob=0.5, depths=(1, 2, 3), widths=(2, 3, 4, 6, 8, 12, 16), max_dropped=16,
    n_features=4, n_inputs=32, n_seeds=50, seed=0,
)
QUICK = dict(DEFAULTS, widths=(2, 3, 4, 6), max_dropped=12, n_inputs=16, n_seeds=2)


def check_params(*, activations, output, scheme, keep_prob, depths, widths, max_dropped,
                 n_features, n_inputs, n_seeds, seed) -> dict:
    """Validate the grid before any work; return it normalised (``ValueError`` if bad)."""
    c.check_common(n_inputs=n_inputs, n_seeds=n_seeds, n_features=n_features, seed=seed)
    c.check_positive_int(max_dropped, "max_dropped")
    c.check_exact_size(max_dropped, MAX_DROPPED, "max_dropped")
    depths = tuple(sorted({c.check_positive_int(d, "depths") for d in depths}))
    widths = tuple(sorted({c.check_positive_int(w, "widths") for w in widths}))
    if not any(d * w <= max_dropped for d in depths for w in widths):
        raise ValueError(
            f"depths x widths must hold at least one network with depth * width <= "
            f"max_dropped={max_dropped}; got depths={depths}, widths={widths}"
        )
    return dict(
        activations=c.check_choices(activations, c.HIDDEN_ACTIVATIONS, "activations"),
        output=c.check_choices(output, c.OUTPUTS, "output")[0],
        scheme=c.check_choices(scheme, SCHEMES, "scheme")[0],
        keep_prob=check_keep_prob(keep_prob), depths=depths, widths=widths,
        max_dropped=max_dropped, n_features=n_features, n_inputs=n_inputs, n_seeds=n_seeds,
        seed=seed,
    )


def run(*, progress=False, execution=None, **params) -> pd.DataFrame:
    """Run the depth and width study.

    Parameters
    ----------
    activations : sequence of str
    output : str
    scheme : {"vanilla", "inverted"}
    keep_prob : float in (0, 1]
    depths, widths : sequence of int
        Numbers of hidden layers and their (common) width; pairs with
        ``depth * width > max_dropped`` are skipped.
    max_dropped : int
    n_features, n_inputs, n_seeds, seed : int
        As in :func:`ensemble_study.studies.sweep.run`.
    progress, execution
        As in :func:`ensemble_study.studies.sweep.run`.

    Returns
    -------
    DataFrame
        One row per (network, statistic), with ``depth``, ``width`` and
        ``n_dropped``.
    """
    p = check_params(**params)
    return c.tidy(map_cells(NAME, run_cell, cells(p), p, execution=execution,
                            progress=progress))


def cells(params: dict) -> list[tuple]:
    """``(position, activation, depth, width, seed)`` per network, in grid order."""
    p = params
    grid = [(a, d, w, s) for a in p["activations"] for d in p["depths"] for w in p["widths"]
            if d * w <= p["max_dropped"] for s in range(p["n_seeds"])]
    return [(i, *cell) for i, cell in enumerate(grid)]


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The rows of one network, one per statistic."""
    i, activation, d, w, s = cell
    p = params
    sizes = (p["n_features"], *(w,) * d, c.N_OUTPUTS[p["output"]])
    net, X = c.draw_cell(c.stream(p["seed"], i), sizes, activation, p["output"], p["n_inputs"])
    cfg = DropoutConfig(p["keep_prob"], layers=list(range(1, d + 1)), scheme=p["scheme"])
    ens = exact_ensemble(net, cfg, X)
    ident = dict(study=NAME, architecture=net.architecture, activation=activation,
                 output=p["output"], scheme=p["scheme"], keep_prob=p["keep_prob"],
                 depth=d, width=w, n_dropped=d * w, seed=s, method="exact",
                 n_subnetworks=ens.n_subnetworks)
    return [{**ident, **r} for r in c.gap_rows(ens, scaled_forward(net, cfg, X), p["output"])]


def run_default(quick: bool, progress=False, execution=None):
    """The default grid (``QUICK`` when ``quick``): ``(DataFrame, params)``."""
    params = QUICK if quick else DEFAULTS
    return run(progress=progress, execution=execution, **params), dict(params)
