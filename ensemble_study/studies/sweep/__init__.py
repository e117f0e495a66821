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

from ...dropout import DropoutConfig, convert_scheme, scaled_forward
from ...ensemble import exact_ensemble
from ...study import Param, Study
from .. import _common as c

MAX_DROPPED = 20


def check(p: dict) -> dict:
    """Across parameters: every exact ensemble stays enumerable."""
    c.check_exact_size(p["width"] * p["depth"], MAX_DROPPED, "width * depth")
    return p


def cells(params: dict) -> list[tuple]:
    """``(output, activation, seed)`` per network, in grid order."""
    return [(o, a, s) for o in params["outputs"] for a in params["activations"]
            for s in range(params["n_networks"])]


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The rows of one network: every keep_prob, scheme/weights and statistic."""
    output, activation, s = cell
    p = params
    hidden = (p["width"],) * p["depth"]
    layers = list(range(1, p["depth"] + 1))
    sizes = (p["n_features"], *hidden, c.N_OUTPUTS[output])
    net, X = c.draw_cell(c.network_stream(p["seed"], output, activation, s, sizes), sizes,
                         activation, output, p["n_inputs"])
    rows = []
    for q in p["keep_probs"]:
        inverted = DropoutConfig(q, layers=layers, scheme="inverted")
        vanilla = DropoutConfig(q, layers=layers, scheme="vanilla")
        variants = [("vanilla", "original", net, vanilla),
                    ("inverted", "original", net, inverted),
                    ("vanilla", "equivalent", *convert_scheme(net, inverted, "vanilla"))]
        for scheme, weights, vnet, cfg in variants:
            ens = exact_ensemble(vnet, cfg, X)
            ident = dict(study=STUDY.name, architecture=net.architecture, activation=activation,
                         output=output, scheme=scheme, weights=weights, keep_prob=q,
                         seed=s, predictor="scaled", n_subnetworks=ens.n_subnetworks)
            rows += [{**ident, **r} for r in c.gap_rows(ens, scaled_forward(vnet, cfg, X),
                                                        output)]
    return rows


STUDY = Study(
    "sweep",
    title="Exact ensemble against the scaled pass across keep_prob, both schemes.",
    params=(
        c.activations(),
        Param("outputs", "str", ("sigmoid", "softmax"), "Output function (softmax has 3 "
              "units, the others 1); repeat for several.", multiple=True, choices=c.OUTPUTS,
              flag="--output"),
        # Every 0.05 from 0.05 to 0.95, then the small-noise end (slopes are fitted on q >= 0.8).
        Param("keep_probs", "keep_prob", (*(round(0.05 * i, 2) for i in range(1, 20)), 0.98,
                                          0.99, 1.0),
              "Probability of keeping a hidden unit; repeat for several.",
              quick=(0.1, 0.5, 0.9, 0.99, 1.0), multiple=True, flag="--keep-prob"),
        c.width(8, quick=4, high=MAX_DROPPED),
        c.depth(2, high=MAX_DROPPED),
        c.n_features(4),
        c.n_inputs(32, quick=16),
        c.n_networks(50, quick=2),
        c.seed(),
    ),
    cells=cells, run_cell=run_cell, tidy=c.tidy, check=check, order=10,
    cost="about 4 minutes on 2 cores",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
