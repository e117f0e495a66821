"""Study ``approximations``: every way of approximating the ensemble, against the exact one.

Three parts, one tidy table (``part`` column):

* ``random``: random networks drawn as the sweep draws them
  (``dataset="gaussian"``: inputs X ~ N(0, 1)), in the sweep's cell order,
  so that with the sweep's outputs, activations, widths and ``n_networks`` they
  are its very networks; both hidden layers dropped, at each keep_prob;
* ``trained``: small networks trained with dropout on the digits tasks
  (:func:`ensemble_study.train.train`, as in the ``trained`` study), scored
  on held-out examples, against both exact ensembles and on the labels;
* ``reliability``: the trained networks' reliability diagrams (see below);
* ``baldi``: Baldi & Sadowski's estimate ``E(1-E)|1-2E| / (1-2E(1-E))`` of
  ``|E - NWGM|`` against the measured one, on random sigmoid-output
  networks by hidden activation and weight scale (weights multiplied by
  ``weight_scale`` after the standard initialisation); one row per input.

Predictors (``predictor``; ``n_samples`` is K for the sampled ones and 0 for
the deterministic ones; ``draw`` numbers independent draws):

* ``scaled``: the scheme's scaled pass;
* ``nwgm``: the exact NWGM read as an estimate of the arithmetic mean;
* ``nwgm_corrected``: the NWGM plus Baldi & Sadowski's second-order
  correction with ``V`` from moment propagation
  (:func:`ensemble_study.approximations.nwgm_correction`; for a softmax,
  per class against the rest, renormalised);
* ``moment_propagation``: :func:`ensemble_study.moment_propagation` (mean and
  variance);
* ``mc``: plain Monte Carlo dropout with K masks (mean, and for K >= 2 the
  members' variance);
* ``rb_mc``: Rao-Blackwellised Monte Carlo with K outer masks (mean and
  variance);
* ``exact``: the exact ensemble itself (zero error; its cost is the price of
  the truth).

Scores against the exact ensemble (identity outputs have no total variation):
``mean_abs_error`` (mean over inputs and outputs of |predicted - exact
mean|), ``total_variation`` (mean over inputs), and where the predictor gives
a variance, ``variance_rel_error`` (mean of |V - V_exact| / V_exact) and
``variance_log_ratio`` (mean of log(V / V_exact): > 0 over-predicts), both
over the entries where both variances are positive; ``variance_exact`` and
``variance_predicted`` are the two variances averaged over inputs and outputs.
Against the exact NWGM (probability outputs): ``nwgm_abs_error`` (mean
|predicted - exact NWGM|) and ``nwgm_total_variation``. On the test labels
(trained part): ``error``, ``nll``, ``brier`` and ``ece`` of
:mod:`ensemble_study.metrics` (ECE over 15 equal-width bins of the top-label
confidence), the predicted probabilities clipped to [0, 1] (and a softmax's
renormalised) first. Rows of part ``reliability`` hold, for each trained
network, deterministic predictor and sampled one at K = 10 and 100 (draw 0),
one row per non-empty confidence bin: ``bin``, ``bin_count``,
``bin_confidence``, ``bin_accuracy`` (``bin`` is -1 on the other rows).
``cost_passes`` counts forward-pass equivalents: multiply-adds divided by those of one forward
pass (scaled 1; moment propagation 2, a mean and a variance pass; plain MC K;
RB MC ``K (1 + 2**h n_out / M)`` for probability outputs, a prefix pass plus
one multiply-add per inner subnetwork and output of the shortcut kernel,
with h the last hidden width and M the multiply-adds of one pass; the NWGM
one pass per outer mask, ``2**n_outer``; its correction that plus 2; exact
``2**n_outer`` RB samples). Seconds vary from run to run, so they are not in
this table: :func:`timing` measures them into ``results/approximations_timing.csv``.

The study is a list of independent cells (:func:`cells`), each with its own
``SeedSequence`` stream named by its identity (never its position in the
grid), and :func:`run_cell` scores one.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...approximations import baldi_bound
from ...datasets import DATASETS, check_loadable, load_dataset
from ...dropout import DropoutConfig
from ...ensemble import exact_ensemble
from ...metrics import ECE_BINS, LABEL_SCORES, reliability_curve, total_variation
from ...network import MLP
from ...predictors import PREDICTORS, Case
from ...study import Param, Study
from ...train import train
from .. import _common as c
from ..trained import DEFAULT_TRAIN

MAX_DROPPED = 16
PARTS = ("random", "trained", "baldi")
ID_COLUMNS = ["part", "dataset", "architecture", "activation", "output", "scheme",
              "weight_scale", "keep_prob", "seed", "input", "predictor", "n_samples", "draw"]
METRIC_COLUMNS = ["mean_abs_error", "total_variation", "variance_rel_error",
                  "variance_log_ratio", "variance_exact", "variance_predicted", "cost_passes"]
BALDI_COLUMNS = ["exact_mean", "nwgm_value", "baldi_bound", "nwgm_abs_gap", "breaks_bound"]
# Distances to the exact NWGM (random and trained parts; probability outputs), and the
# scores on the test labels (trained part): metrics.LABEL_SCORES, ECE over ECE_BINS bins.
NWGM_COLUMNS = ["nwgm_abs_error", "nwgm_total_variation"]
LABEL_COLUMNS = ["error", "nll", "brier", "ece"]
# The trained part's reliability diagram: rows of part "reliability", one per
# (network, predictor, K, non-empty top-label confidence bin), draw 0 only.
RELIABILITY_COLUMNS = ["bin", "bin_count", "bin_confidence", "bin_accuracy"]
RELIABILITY_KS = (10, 100)
COLUMNS = (ID_COLUMNS + METRIC_COLUMNS + NWGM_COLUMNS + LABEL_COLUMNS + BALDI_COLUMNS
           + RELIABILITY_COLUMNS)
# The baldi part's networks: n_features inputs, two dropped hidden layers, one sigmoid.
BALDI_INPUTS = 8


@dataclass(frozen=True)
class Cell:
    """One independent unit of work: a network (and for ``trained``, its training).

    ``stream`` is the cell's own ``SeedSequence``, named by the cell's identity
    under ``SeedSequence(seed)``.
    """

    part: str
    activation: str
    seed: int
    stream: np.random.SeedSequence
    output: str = ""
    dataset: str = ""
    keep_prob: float = float("nan")
    weight_scale: float = 1.0


def check(p: dict) -> dict:
    """Across parameters: every exact ensemble stays enumerable, every dataset loadable."""
    check_loadable(p["datasets"])
    c.check_exact_size(p["width"] * p["depth"], MAX_DROPPED, "width * depth")
    c.check_exact_size(2 * p["trained_width"], MAX_DROPPED, "2 * trained_width")
    c.check_exact_size(2 * p["baldi_width"], MAX_DROPPED, "2 * baldi_width")
    return p


def cells(params: dict) -> list[Cell]:
    """Every cell of the grid, in order: random, then trained, then baldi.

    Each cell's stream is named by its identity
    (:func:`ensemble_study.studies._common.stream`); a random cell's is the
    stream of :func:`~ensemble_study.studies._common.network_stream`, so that
    with the sweep's sizes it draws the sweep's very network.
    """
    p = params
    keys = ([("random", dict(output=o, activation=a, seed=s)) for o in p["outputs"]
             for a in p["activations"] for s in range(p["n_networks"])]
            + [("trained", dict(dataset=d, activation=a, seed=s, keep_prob=q))
               for d in p["datasets"] for a in p["trained_activations"]
               for s in range(p["n_trained"]) for q in p["trained_keep_probs"]]
            + [("baldi", dict(activation=a, weight_scale=w, seed=s, output="sigmoid"))
               for a in p["activations"] for w in p["weight_scales"]
               for s in range(p["baldi_networks"])])
    return [Cell(part, stream=_cell_stream(part, key, p), **key) for part, key in keys]


def _cell_stream(part: str, key: dict, p: dict) -> np.random.SeedSequence:
    if part == "random":
        sizes = (p["n_features"], *(p["width"],) * p["depth"], c.N_OUTPUTS[key["output"]])
        return c.network_stream(p["seed"], key["output"], key["activation"], key["seed"], sizes)
    if part == "trained":
        return c.stream(p["seed"], "approximations trained", key["dataset"], key["activation"],
                        key["seed"], key["keep_prob"], p["trained_width"], p["epochs"])
    return c.stream(p["seed"], "approximations baldi", key["activation"], key["weight_scale"],
                    key["seed"], p["n_features"], p["baldi_width"])


def _child(stream: np.random.SeedSequence, *key) -> np.random.SeedSequence:
    """The child of ``stream`` named by ``key`` (values, hashed as in ``_common.stream``)."""
    named = c.stream(0, *key)
    return np.random.SeedSequence(stream.entropy, spawn_key=stream.spawn_key + named.spawn_key)


def _macs(net: MLP) -> int:
    return sum(w.size for w in net.weights)


def _variance_scores(predicted, exact) -> dict:
    out = {"variance_rel_error": np.nan, "variance_log_ratio": np.nan,
           "variance_exact": float(np.mean(exact)),
           "variance_predicted": np.nan if predicted is None else float(np.mean(predicted))}
    ok = (exact > 0) & (predicted > 0) if predicted is not None else False
    if np.any(ok):
        out["variance_rel_error"] = float(np.mean(np.abs(predicted[ok] - exact[ok]) / exact[ok]))
        out["variance_log_ratio"] = float(np.mean(np.log(predicted[ok] / exact[ok])))
    return out


def _scores(exact, mean, variance, output) -> dict:
    prob = output != "identity"
    return {"mean_abs_error": float(np.mean(np.abs(mean - exact.mean))),
            "total_variation": (float(total_variation(exact.mean, mean, output).mean())
                                if prob else np.nan),
            "nwgm_abs_error": (float(np.mean(np.abs(mean - exact.geometric_mean)))
                               if prob else np.nan),
            "nwgm_total_variation": (float(total_variation(exact.geometric_mean, mean,
                                                           output).mean())
                                     if prob else np.nan),
            **_variance_scores(variance, exact.variance)}


def label_scores(probs, labels) -> dict:
    """``error, nll, brier, ece`` of predicted probabilities on the labels
    (:data:`ensemble_study.metrics.LABEL_SCORES`; ECE over ``ECE_BINS`` equal-width
    top-label confidence bins). Probabilities are clipped to [0, 1] first: the
    corrected NWGMs and the closures may step outside by rounding or by their
    expansion."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    if p.ndim == 2 and p.shape[1] > 1:
        p = p / p.sum(axis=1, keepdims=True)
    return {"error": LABEL_SCORES["error_rate"](p, labels),
            **{k: LABEL_SCORES[k](p, labels) for k in ("nll", "brier", "ece")}}


def reliability_rows(probs, labels) -> list[dict]:
    """One row per non-empty confidence bin (``RELIABILITY_COLUMNS``), probabilities as
    in :func:`label_scores`."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    if p.ndim == 2 and p.shape[1] > 1:
        p = p / p.sum(axis=1, keepdims=True)
    r = reliability_curve(p, labels, ECE_BINS)
    return [{"bin": b, "bin_count": int(r["count"][b]),
             "bin_confidence": float(r["confidence"][b]),
             "bin_accuracy": float(r["accuracy"][b])}
            for b in range(ECE_BINS) if r["count"][b] > 0]


def score_predictors(net: MLP, cfg: DropoutConfig, X, ks, n_draws: int,
                     stream: np.random.SeedSequence, y=None) -> list[dict]:
    """Rows (predictor, n_samples, draw, scores, cost) of every predictor, for one network.

    With labels ``y`` (a probability output), each row also holds the label
    scores (:func:`label_scores`), and rows of part ``"reliability"``
    (:func:`reliability_rows`) follow for the deterministic predictors and the
    sampled ones at ``RELIABILITY_KS``, draw 0.
    """
    case = Case(net, cfg, X)
    reliability = []
    rows = []
    for name, pred in PREDICTORS.items():
        if not pred.applies_to(net, cfg):
            continue
        if not pred.samples:
            runs = [(0, 0, None)]
        else:
            runs = [(k, draw, _child(stream, name, k, draw))
                    for k, draw in itertools.product(ks, range(n_draws))]
        for k, draw, rng in runs:
            out = pred.predict(case, k, rng)
            ids = {"predictor": name, "n_samples": k, "draw": draw}
            labels = label_scores(out.mean, y) if y is not None else {}
            rows.append({**ids, **_scores(case.exact, out.mean, out.variance, net.output),
                         **labels, "cost_passes": pred.cost(case, k)})
            if y is not None and draw == 0 and (k == 0 or k in RELIABILITY_KS):
                reliability += [{"part": "reliability", **ids, **r}
                                for r in reliability_rows(out.mean, y)]
    return rows + reliability


def _random_rows(cell: Cell, p: dict) -> list[dict]:
    sizes = (p["n_features"], *(p["width"],) * p["depth"], c.N_OUTPUTS[cell.output])
    net, X = c.draw_cell(cell.stream, sizes, cell.activation, cell.output, p["n_inputs"])
    layers = list(range(1, p["depth"] + 1))
    rows = []
    for q in p["keep_probs"]:
        cfg = DropoutConfig(q, layers=layers, scheme=p["scheme"])
        ids = dict(part="random", dataset="gaussian", architecture=net.architecture,
                   activation=cell.activation, output=cell.output, scheme=p["scheme"],
                   weight_scale=1.0, keep_prob=q, seed=cell.seed, input=-1)
        rows += [{**ids, **r} for r in score_predictors(net, cfg, X, p["n_samples"], p["n_draws"],
                                                        _child(cell.stream, "keep_prob", q))]
    return rows


def _trained_rows(cell: Cell, p: dict) -> list[dict]:
    ds = load_dataset(cell.dataset, rng=0)  # the trained study's split
    sizes = (ds.n_features, p["trained_width"], p["trained_width"], ds.n_outputs)
    net0 = MLP.random(sizes, cell.activation, ds.output,
                      rng=_child(cell.stream, "initial network"))
    cfg = DropoutConfig(cell.keep_prob, layers=[1, 2], scheme=p["scheme"])
    train_cfg = dataclasses.replace(DEFAULT_TRAIN, epochs=p["epochs"])
    net, _ = train(net0, cfg, ds.X_train, ds.y_train, train_cfg=train_cfg,
                   rng=_child(cell.stream, "training"))
    ids = dict(part="trained", dataset=cell.dataset, architecture=net.architecture,
               activation=cell.activation, output=ds.output, scheme=p["scheme"],
               weight_scale=1.0, keep_prob=cell.keep_prob, seed=cell.seed, input=-1)
    X, y = ds.X_test[:p["n_test"]], ds.y_test[:p["n_test"]]
    return [{**ids, **r} for r in score_predictors(net, cfg, X, p["n_samples"], p["n_draws"],
                                                   _child(cell.stream, "scoring"), y=y)]


def _baldi_rows(cell: Cell, p: dict) -> list[dict]:
    sizes = (p["n_features"], p["baldi_width"], p["baldi_width"], 1)
    net, X = c.draw_cell(cell.stream, sizes, cell.activation, "sigmoid", BALDI_INPUTS)
    net = MLP.from_arrays([w * cell.weight_scale for w in net.weights], net.biases,
                          net.hidden, "sigmoid")
    rows = []
    for q in p["baldi_keep_probs"]:
        ens = exact_ensemble(net, DropoutConfig(q, layers=[1, 2], scheme=p["scheme"]), X)
        E, G = ens.mean[:, 0], ens.geometric_mean[:, 0]
        bound, gap = baldi_bound(E), np.abs(E - G)
        for j in range(X.shape[0]):
            rows.append(dict(part="baldi", dataset="gaussian", architecture=net.architecture,
                             activation=cell.activation, output="sigmoid",
                             scheme=p["scheme"], weight_scale=cell.weight_scale, keep_prob=q,
                             seed=cell.seed, input=j, predictor="nwgm", n_samples=0, draw=0,
                             exact_mean=E[j], nwgm_value=G[j], baldi_bound=bound[j],
                             nwgm_abs_gap=gap[j],
                             # A margin of 1e-12 for rounding of E and the NWGM.
                             breaks_bound=bool(gap[j] > bound[j] + 1e-12)))
    return rows


_PARTS = {"random": _random_rows, "trained": _trained_rows, "baldi": _baldi_rows}


def run_cell(cell: Cell, params: dict) -> list[dict]:
    """Score one cell: its rows (a function of the cell and the grid alone)."""
    return _PARTS[cell.part](cell, params)


def tidy(rows: list[dict]) -> pd.DataFrame:
    """Rows to the study's table: ``COLUMNS`` in order, integer identifiers."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.insert(0, "study", STUDY.name)
    df["bin"] = df["bin"].fillna(-1)
    df = df.astype({"seed": int, "input": int, "n_samples": int, "draw": int, "bin": int})
    df["breaks_bound"] = df["breaks_bound"].astype("boolean")
    return df


# --- Seconds, measured apart (they vary from run to run) ---------------------

def timing(params: dict, *, repeats: int = 3) -> pd.DataFrame:
    """Seconds per predictor on one random network per (output, activation).

    At keep_prob 0.5 (or the grid's first keep_prob), the best of
    ``repeats`` runs of each predictor on the random part's inputs, each run
    from scratch (nothing shared between predictors). Not byte-reproducible
    by nature: kept out of the main table.

    Returns
    -------
    DataFrame
        ``output, activation, architecture, keep_prob, predictor, n_samples,
        seconds``.
    """
    p = params
    q = 0.5 if 0.5 in p["keep_probs"] else p["keep_probs"][0]
    rows = []
    for cell in (x for x in cells(p) if x.part == "random" and x.seed == 0):
        sizes = (p["n_features"], *(p["width"],) * p["depth"], c.N_OUTPUTS[cell.output])
        net, X = c.draw_cell(cell.stream, sizes, cell.activation, cell.output, p["n_inputs"])
        cfg = DropoutConfig(q, layers=list(range(1, p["depth"] + 1)), scheme=p["scheme"])
        for name, pred in PREDICTORS.items():
            if not pred.applies_to(net, cfg):
                continue
            for k in p["n_samples"] if pred.samples else (0,):
                best = np.inf
                for _ in range(repeats):
                    start = time.perf_counter()
                    pred.predict(Case(net, cfg, X), k, 0)
                    best = min(best, time.perf_counter() - start)
                rows.append(dict(output=cell.output, activation=cell.activation,
                                 architecture=net.architecture, keep_prob=q, predictor=name,
                                 n_samples=k, seconds=best))
    return pd.DataFrame(rows)


STUDY = Study(
    "approximations",
    title="Every approximation of the ensemble against the exact one.",
    params=(
        c.activations(quick=("relu", "tanh")),
        Param("outputs", "str", ("sigmoid", "softmax"), "Output function of the random "
              "networks (softmax has 3 units); repeat for both.", multiple=True,
              choices=("sigmoid", "softmax"), flag="--output"),
        Param("keep_probs", "keep_prob", (0.2, 0.5, 0.8, 0.95), "keep_prob of the random "
              "networks' hidden units; repeat for several.", quick=(0.5, 0.8), multiple=True,
              flag="--keep-prob"),
        c.scheme(),
        c.width(8, quick=4, high=MAX_DROPPED),
        c.depth(2, high=MAX_DROPPED),
        c.n_features(4),
        c.n_inputs(32, quick=8),
        c.n_networks(30, quick=1, help="Random networks per (output, activation)."),
        Param("n_samples", "int", (1, 2, 5, 10, 20, 50, 100, 1000), "K of the plain and "
              "Rao-Blackwellised MC estimates; repeat for several.", quick=(1, 10, 100),
              multiple=True, unique=True, low=1, high=c.MAX_SAMPLES, aliases=("--k",)),
        Param("n_draws", "int", 2, "Independent estimates per K.", low=1, high=10_000),
        Param("datasets", "str", ("digits", "digits_2v3"), "Dataset of the trained "
              "networks; repeat for several.", quick=("digits_2v3",), multiple=True,
              min_count=0, choices=DATASETS, flag="--dataset"),
        Param("trained_activations", "str", ("relu", "tanh"), "Hidden activation of the "
              "trained networks; repeat for several.", quick=("relu",), multiple=True,
              choices=c.HIDDEN_ACTIVATIONS, flag="--trained-activation"),
        Param("trained_keep_probs", "keep_prob", (0.5, 0.8), "keep_prob the trained networks "
              "are trained and scored at; repeat for several.", quick=(0.5,), multiple=True,
              flag="--trained-keep-prob"),
        Param("n_trained", "int", 10, "Trained networks (training seeds) per (dataset, "
              "activation, keep_prob); 0 skips the trained part.", quick=1, low=0,
              high=c.MAX_NETWORKS,
              aliases=("--trained-seeds",)),
        Param("trained_width", "int", 6, "Units per hidden layer of the trained networks.",
              quick=4, low=1, high=MAX_DROPPED),
        Param("n_test", "int", 200, "Test examples each trained network is scored on "
              "(at most the dataset's test split).",
              quick=30, low=1, high=c.MAX_INPUTS),
        Param("epochs", "int", 20, "Training epochs of the trained networks.", quick=3, low=1,
              high=100_000),
        Param("baldi_networks", "int", 25, "Networks per (activation, weight scale) for "
              "Baldi's bound; 0 skips it.", quick=3, low=0, high=c.MAX_NETWORKS),
        Param("weight_scales", "float", (1.0, 2.0, 4.0), "Weight multipliers of the baldi "
              "part's networks; repeat for several.", quick=(1.0, 4.0), multiple=True, low=0,
              low_open=True, high=1e6, flag="--weight-scale"),
        Param("baldi_keep_probs", "keep_prob", (0.5, 0.8), "keep_prob of the baldi part; "
              "repeat for several.", quick=(0.5,), multiple=True, flag="--baldi-keep-prob"),
        Param("baldi_width", "int", 6, "Units per hidden layer of the baldi part's networks.",
              quick=4, low=1, high=MAX_DROPPED),
        c.seed(),
    ),
    cells=cells, run_cell=run_cell, tidy=tidy, check=check, measure=timing, order=70,
    cost="about 1.5 minutes of wall time with --jobs 2 on a nearly idle 2-core machine "
         "(93 s measured)",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
