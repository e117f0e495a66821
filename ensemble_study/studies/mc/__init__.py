"""Monte Carlo convergence: K sampled subnetworks against the exact ensemble.

For every random network (one per hidden activation and seed), the exact
ensemble is the reference. Each K of a log grid is drawn ``n_draws`` times
(``predictor="mc"``, ``n_samples=K``, ``draw``); the scheme's scaled pass is
compared with the same reference once (``predictor="scaled"``,
``n_samples=0``). ``statistic`` says which statistic both sides use: the
arithmetic mean (sampled mean vs exact mean, scaled pass vs exact mean) or
the NWGM (sampled NWGM vs exact NWGM, scaled pass vs exact NWGM). This is the
question of Srivastava et al. 2014 (Fig. 11), with an exact reference.
"""

from __future__ import annotations

from ...dropout import DropoutConfig, scaled_forward
from ...ensemble import exact_ensemble, sample_ensemble
from ...study import Param, Study
from .. import _common as c

MAX_DROPPED = 20


def check(p: dict) -> dict:
    """Across parameters: every exact ensemble stays enumerable."""
    c.check_exact_size(p["width"] * p["depth"], MAX_DROPPED, "width * depth")
    return p


def cells(params: dict) -> list[tuple]:
    """``(activation, seed)`` per network, in grid order."""
    return [(a, s) for a in params["activations"] for s in range(params["n_networks"])]


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The rows of one network: the scaled pass, then every K and draw."""
    activation, s = cell
    p = params
    cfg = DropoutConfig(p["keep_prob"], layers=list(range(1, p["depth"] + 1)),
                        scheme=p["scheme"])
    sizes = (p["n_features"], *(p["width"],) * p["depth"], c.N_OUTPUTS[p["output"]])
    net, X = c.draw_cell(c.network_stream(p["seed"], p["output"], activation, s, sizes), sizes,
                         activation, p["output"], p["n_inputs"])
    exact = exact_ensemble(net, cfg, X)
    ident = dict(study=STUDY.name, architecture=net.architecture, activation=activation,
                 output=p["output"], scheme=p["scheme"], keep_prob=p["keep_prob"], seed=s)
    rows = [{**ident, "predictor": "scaled", "n_samples": 0, "draw": 0, **r}
            for r in c.gap_rows(exact, scaled_forward(net, cfg, X), p["output"])]
    for k in p["n_samples"]:
        for draw in range(p["n_draws"]):
            # Keyed by the network, K and the draw: another K or draw count in the
            # grid leaves these masks as they are.
            masks = c.stream(p["seed"], "mc masks", p["output"], activation, s,
                             list(sizes), p["scheme"], p["keep_prob"], k, draw)
            sampled = c.ensemble_statistics(sample_ensemble(net, cfg, X, k, masks))
            rows += [{**ident, "predictor": "mc", "n_samples": k, "draw": draw, **r}
                     for r in c.gap_rows(exact, sampled, p["output"])]
    return rows


STUDY = Study(
    "mc",
    title="Monte Carlo ensembles of K subnetworks against the exact one.",
    params=(
        c.activations(("relu", "tanh", "sigmoid")),
        c.output("softmax"),
        c.scheme(),
        c.keep_prob(0.5),
        c.width(8, quick=4, high=MAX_DROPPED),
        c.depth(2, high=MAX_DROPPED),
        c.n_features(4),
        c.n_inputs(32, quick=16),
        c.n_networks(20, quick=2),
        Param("n_samples", "int", (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
              "Number K of sampled subnetworks; repeat for several.",
              quick=(1, 10, 100, 1000), multiple=True, unique=True, low=1,
              high=c.MAX_SAMPLES, aliases=("--k",)),
        Param("n_draws", "int", 20, "Independent K-member ensembles per K and network.",
              quick=5, low=1, high=10_000, aliases=("--n-repeats",)),
        c.seed(),
    ),
    cells=cells, run_cell=run_cell, tidy=c.tidy, check=check, order=20,
    cost="about 1 minute on 2 cores",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
