"""Width without confounds: the gap against the hidden width at a fixed number of
dropped units and at a fixed pre-activation scale.

The depth study widens layers whose every unit is dropped, under
``MLP.random``'s initialisation (He into ReLU units, Glorot elsewhere), so a
width difference there is confounded twice: with the number of dropped units
(the size of the family) and, for Glorot with 4 inputs, with the scale of the
first layer's pre-activations (Glorot's ``2 / (fan_in + fan_out)`` shrinks
like ``1 / width`` when ``fan_in = 4``). Here:

- ``dropped = "input"`` drops the ``n_features`` inputs only: every width
  has the same ``n_dropped`` (4 by default), so the family has the same size;
  ``dropped = "hidden"`` drops every hidden unit, as the depth study does
  (``n_dropped = depth * width``).
- ``weights`` states the initialisation of every layer, the output included:
  ``lecun`` ``W ~ N(0, 1 / fan_in)``, ``he`` ``N(0, 2 / fan_in)`` (fan-in
  rules: a pre-activation's scale does not depend on the width), ``glorot``
  ``N(0, 2 / (fan_in + fan_out))`` (the confound). Biases ``N(0, 0.1^2)``.

The network of a cell is drawn from ``network_stream(seed, output,
activation, index, sizes)``, the depth study's stream, and rescaled to the
stated initialisation: the three initialisations of one (activation, sizes,
index) share their standard-normal draws and their inputs (comparisons
between them are paired), and a ``glorot`` network with tanh or sigmoid units
is bit for bit the depth study's network of the same identity.
"""

from __future__ import annotations

import numpy as np

from ...dropout import DropoutConfig, scaled_forward
from ...ensemble import exact_ensemble
from ...network import MLP
from ...study import Param, Study
from .. import _common as c

MAX_DROPPED = 20
MAX_WIDTH = 256
WEIGHTS = ("lecun", "he", "glorot")
DROPPED = ("input", "hidden")


def weight_variance(weights: str, fan_in: int, fan_out: int) -> float:
    """The variance of a weight under the initialisation ``weights``.

    >>> weight_variance("lecun", 4, 16), weight_variance("he", 4, 16)
    (0.25, 0.5)
    >>> weight_variance("glorot", 4, 16)
    0.1
    """
    if weights == "lecun":
        return 1.0 / fan_in
    if weights == "he":
        return 2.0 / fan_in
    if weights == "glorot":
        return 2.0 / (fan_in + fan_out)
    raise ValueError(f"weights must be one of {WEIGHTS}; got {weights!r}")


def reinitialise(net: MLP, weights: str) -> MLP:
    """``net`` with every weight matrix rescaled from ``MLP.random``'s rule to ``weights``.

    ``MLP.random`` draws ``W[l] = sd_l * N(0, 1)`` with ``sd_l^2 = 2 / fan_in``
    into a ReLU layer and ``2 / (fan_in + fan_out)`` otherwise; multiplying by
    ``sd_new / sd_l`` gives the same standard-normal draws at the new scale.
    A layer whose rule is unchanged is returned untouched (bit for bit).
    """
    new = []
    for l, w in enumerate(net.weights):
        fan_in, fan_out = w.shape
        feeds_relu = l < len(net.hidden) and net.hidden[l] == "relu"
        old = 2.0 / fan_in if feeds_relu else 2.0 / (fan_in + fan_out)
        var = weight_variance(weights, fan_in, fan_out)
        new.append(w if var == old else w * (np.sqrt(var) / np.sqrt(old)))
    return MLP(tuple(new), net.biases, net.hidden, net.output)


def n_dropped(dropped: str, depth: int, width: int, n_features: int) -> int:
    return n_features if dropped == "input" else depth * width


def check(p: dict) -> dict:
    """Across parameters: at least one network fits ``max_dropped``."""
    if not any(n_dropped(k, d, w, p["n_features"]) <= p["max_dropped"]
               for k in p["dropped"] for d in p["depths"] for w in p["widths"]):
        raise ValueError(
            f"dropped x depths x widths must hold at least one network with at most "
            f"max_dropped={p['max_dropped']} dropped units (depth * width for 'hidden', "
            f"n_features={p['n_features']} for 'input'); got dropped={p['dropped']}, "
            f"depths={p['depths']}, widths={p['widths']}: raise --max-dropped or narrow")
    return p


def cells(params: dict) -> list[tuple]:
    """``(dropped, weights, activation, depth, width, seed)`` per network, in grid order."""
    p = params
    return [(k, i, a, d, w, s) for k in p["dropped"] for i in p["weights"]
            for a in p["activations"] for d in p["depths"] for w in p["widths"]
            if n_dropped(k, d, w, p["n_features"]) <= p["max_dropped"]
            for s in range(p["n_networks"])]


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The rows of one network, one per ensemble statistic."""
    dropped, weights, activation, d, w, s = cell
    p = params
    sizes = (p["n_features"], *(w,) * d, c.N_OUTPUTS[p["output"]])
    net, X = c.draw_cell(c.network_stream(p["seed"], p["output"], activation, s, sizes), sizes,
                         activation, p["output"], p["n_inputs"])
    net = reinitialise(net, weights)
    layers = [0] if dropped == "input" else list(range(1, d + 1))
    cfg = DropoutConfig(p["keep_prob"], layers=layers, scheme=p["scheme"])
    ens = exact_ensemble(net, cfg, X)
    # The scale of the first layer's pre-activations (no dropout): root mean square
    # over the inputs and the units. Fan-in rules keep it fixed across widths.
    preact = X @ net.weights[0] + net.biases[0]
    ident = dict(study=STUDY.name, architecture=net.architecture, activation=activation,
                 output=p["output"], scheme=p["scheme"], weights=weights,
                 keep_prob=p["keep_prob"], depth=d, width=w,
                 n_dropped=n_dropped(dropped, d, w, p["n_features"]), seed=s,
                 predictor="scaled", n_subnetworks=ens.n_subnetworks, dropped=dropped,
                 preact_rms=float(np.sqrt(np.mean(preact ** 2))))
    return [{**ident, **r} for r in c.gap_rows(ens, scaled_forward(net, cfg, X), p["output"])]


STUDY = Study(
    "width",
    title="The gap against the width at a fixed number of dropped units and a fixed "
          "pre-activation scale.",
    params=(
        c.activations(("relu", "tanh", "sigmoid")),
        c.output("softmax"),
        c.scheme(),
        c.keep_prob(0.5),
        Param("dropped", "str", DROPPED, "Which units are dropped: 'input' (the n_features "
              "inputs only: the same number at every width) or 'hidden' (every hidden unit: "
              "depth * width); repeat for both.", multiple=True, choices=DROPPED),
        Param("weights", "str", WEIGHTS, "Initialisation of every layer: lecun N(0, "
              "1/fan_in), he N(0, 2/fan_in), glorot N(0, 2/(fan_in + fan_out)); repeat for "
              "several.", quick=("lecun", "glorot"), multiple=True, choices=WEIGHTS,
              flag="--weights"),
        Param("depths", "int", (1, 2), "Number of hidden layers; repeat for several.",
              multiple=True, unique=True, low=1, high=MAX_DROPPED, flag="--depth"),
        Param("widths", "int", (2, 4, 8, 16, 32), "Units per hidden layer; repeat for "
              "several.", quick=(2, 8), multiple=True, unique=True, low=1, high=MAX_WIDTH,
              flag="--width"),
        Param("max_dropped", "int", 16, "Skip networks with more dropped units than this.",
              quick=8, low=1, high=MAX_DROPPED),
        c.n_features(4),
        c.n_inputs(32, quick=16),
        c.n_networks(30, quick=3, help="Random networks per point (means and t-intervals "
                     "are over them)."),
        c.seed(),
    ),
    cells=cells, run_cell=run_cell, tidy=c.tidy, check=check, order=41,
    reproduce=False, cost="about 1 minute of CPU (3 minutes on the loaded 2 cores)",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
