"""Monte Carlo convergence: K sampled subnetworks against the exact ensemble.

For every random network (one per hidden activation and seed), the exact
ensemble is the reference. Each K of a log grid is drawn ``n_repeats`` times
(``method="sampled"``, ``n_subnetworks=K``); the scheme's scaled pass is
compared with the same reference once (``method="scaled"``, no
``n_subnetworks``). ``statistic`` says which statistic both sides use: the
arithmetic mean (sampled mean vs exact mean, scaled pass vs exact mean) or
the NWGM (sampled NWGM vs exact NWGM, scaled pass vs exact NWGM). This is the
question of Srivastava et al. 2014 (Fig. 11), with an exact reference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._checks import check_keep_prob
from ..dropout import SCHEMES, DropoutConfig, scaled_forward
from ..ensemble import exact_ensemble, sample_ensemble
from ..executor import map_cells
from . import _common as c

NAME = "mc"
MAX_DROPPED = 20
DEFAULTS = dict(
    activations=("relu", "tanh", "sigmoid"), output="softmax", scheme="inverted",
    keep_prob=0.5, width=8, depth=2, n_features=4, n_inputs=32, n_seeds=20,
    ks=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000), n_repeats=20, seed=0,
)
QUICK = dict(DEFAULTS, width=4, n_inputs=16, n_seeds=2, ks=(1, 10, 100, 1000), n_repeats=5)


def check_params(*, activations, output, scheme, keep_prob, width, depth, n_features,
                 n_inputs, n_seeds, ks, n_repeats, seed) -> dict:
    """Validate the grid before any work; return it normalised (``ValueError`` if bad)."""
    c.check_common(n_inputs=n_inputs, n_seeds=n_seeds, n_features=n_features, seed=seed)
    for value, name in ((width, "width"), (depth, "depth"), (n_repeats, "n_repeats")):
        c.check_positive_int(value, name)
    c.check_exact_size(width * depth, MAX_DROPPED, "width * depth")
    ks = tuple(sorted({c.check_positive_int(k, "ks") for k in ks}))
    if not ks:
        raise ValueError("ks must list at least one ensemble size K >= 1; got none")
    return dict(
        activations=c.check_choices(activations, c.HIDDEN_ACTIVATIONS, "activations"),
        output=c.check_choices(output, c.OUTPUTS, "output")[0],
        scheme=c.check_choices(scheme, SCHEMES, "scheme")[0],
        keep_prob=check_keep_prob(keep_prob), width=width, depth=depth, n_features=n_features,
        n_inputs=n_inputs, n_seeds=n_seeds, ks=ks, n_repeats=n_repeats, seed=seed,
    )


def run(*, progress=False, execution=None, **params) -> pd.DataFrame:
    """Run the Monte Carlo study.

    Parameters
    ----------
    activations : sequence of str
    output : str
    scheme : {"vanilla", "inverted"}
    keep_prob : float in (0, 1]
    width, depth : int
        Hidden layers, all dropped.
    n_features, n_inputs, n_seeds, seed : int
        As in :func:`ensemble_study.studies.sweep.run`.
    ks : sequence of int
        Ensemble sizes K.
    n_repeats : int
        Independent K-member ensembles per K and network.
    progress, execution
        As in :func:`ensemble_study.studies.sweep.run`.

    Returns
    -------
    DataFrame
        One row per (network, method, K, repeat, statistic).
    """
    p = check_params(**params)
    return c.tidy(map_cells(NAME, run_cell, cells(p), p, execution=execution,
                            progress=progress))


def cells(params: dict) -> list[tuple]:
    """``(position, activation, seed)`` per network, in grid order."""
    grid = [(a, s) for a in params["activations"] for s in range(params["n_seeds"])]
    return [(i, *cell) for i, cell in enumerate(grid)]


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The rows of one network: the scaled pass, then every K and repeat."""
    i, activation, s = cell
    p = params
    cfg = DropoutConfig(p["keep_prob"], layers=list(range(1, p["depth"] + 1)),
                        scheme=p["scheme"])
    sizes = (p["n_features"], *(p["width"],) * p["depth"], c.N_OUTPUTS[p["output"]])
    net_stream, *draws = c.stream(p["seed"], i).spawn(1 + len(p["ks"]) * p["n_repeats"])
    net, X = c.draw_cell(net_stream, sizes, activation, p["output"], p["n_inputs"])
    exact = exact_ensemble(net, cfg, X)
    ident = dict(study=NAME, architecture=net.architecture, activation=activation,
                 output=p["output"], scheme=p["scheme"], keep_prob=p["keep_prob"], seed=s)
    rows = [{**ident, "method": "scaled", "n_subnetworks": np.nan, "repeat": 0, **r}
            for r in c.gap_rows(exact, scaled_forward(net, cfg, X), p["output"])]
    for j, draw in enumerate(draws):
        k, rep = p["ks"][j // p["n_repeats"]], j % p["n_repeats"]
        sampled = c.ensemble_statistics(sample_ensemble(net, cfg, X, k, draw))
        rows += [{**ident, "method": "sampled", "n_subnetworks": k, "repeat": rep, **r}
                 for r in c.gap_rows(exact, sampled, p["output"])]
    return rows


def run_default(quick: bool, progress=False, execution=None):
    """The default grid (``QUICK`` when ``quick``): ``(DataFrame, params)``."""
    params = QUICK if quick else DEFAULTS
    return run(progress=progress, execution=execution, **params), dict(params)


def crossover(df: pd.DataFrame, *, metric: str = "mean_abs_gap") -> pd.DataFrame:
    """The smallest K from which sampling beats the scaled pass, per activation and statistic.

    Compares the median over networks and repeats of the sampled ensembles'
    ``metric`` at each K with the median over networks of the scaled pass's;
    the crossover is the smallest K of the grid from which every larger K is
    at least as close to the exact ensemble (NaN if none is).

    Returns
    -------
    DataFrame
        ``activation, statistic, scaled`` (median scaled gap), ``k`` and
        ``sampled_at_k`` (median sampled gap there).
    """
    out = []
    for (act, stat), g in df.groupby(["activation", "statistic"], sort=False):
        scaled = g.loc[g["method"] == "scaled", metric].median()
        med = g[g["method"] == "sampled"].groupby("n_subnetworks")[metric].median().sort_index()
        beats = (med <= scaled).to_numpy()
        # Index of the first K after the last K that loses.
        first = len(beats) - int(np.argmin(beats[::-1])) if not beats.all() else 0
        k = med.index[first] if first < len(beats) else np.nan
        out.append({"activation": act, "statistic": stat, "scaled": scaled, "k": k,
                    "sampled_at_k": med.iloc[first] if first < len(beats) else np.nan})
    return pd.DataFrame(out, columns=["activation", "statistic", "scaled", "k", "sampled_at_k"])
