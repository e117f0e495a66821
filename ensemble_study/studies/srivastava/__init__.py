"""Study ``srivastava``: Srivastava et al. 2014 Fig. 11 on digits, and Hinton et al.'s claim.

Networks are trained on scikit-learn's digits (1,348 training images, the
whole held-out split of 449 test images) by one documented recipe,
:data:`RECIPE`, with dropout on every hidden layer, and for each training
seed a no-dropout baseline of the same architecture by the same recipe.

* **Fig. 11.** Test error of K sampled subnetworks (``sample_ensemble``,
  K = 1 ... 1000, ``n_draws`` independent draws of K masks per K) against
  the scaled pass and the exact ensemble's arithmetic mean (every one of the
  2**20 subnetworks), which the paper could not compute.
  :func:`crossings` gives the first K whose mean error over networks is at
  most the reference's, with a bootstrap interval over seeds.
* **Hinton et al. 2012** claim that the mean network (the scaled pass) gives
  the correct class a higher log-probability than the dropout networks do on
  average: ``log y_scaled[c] >= E[log y[c]]`` over every subnetwork (exact,
  :func:`ensemble_study.log_ensemble.expected_log_softmax`). With one dropped
  layer feeding the softmax it is a theorem (the scaled pass's logits are
  ``E[z]`` and log-softmax is concave); with two dropped ReLU layers it is
  measured. The NWGM version ``log NWGM[c] >= E[log y[c]]`` holds at any
  depth (the NWGM's normaliser is at most 1).

Architectures (``ARCHITECTURES``): ``64-20-10``, a single hidden layer
whose exact arithmetic mean over 449 images takes seconds (the softmax mean
enumerates 2**H subnetworks per image: 24 units would be 16 times the
work), and ``64-8-8-10``, two dropped
layers (2**16 subnetworks, so that its ``E[log y]`` costs a sixteenth of the
first's), for the depth question of Hinton's claim (scored by the scaled
pass and the NWGM; no Fig. 11).

One row per (architecture, scheme, keep_prob, seed, predictor, n_samples,
draw). ``predictor`` is ``no_dropout`` (the baseline; ``scheme`` "none",
``keep_prob`` 1), ``scaled``, ``exact`` (the exact arithmetic mean),
``nwgm`` or ``mc`` (``n_samples`` = K, ``draw`` numbering the draws; 0 for
the others); ``n_subnetworks`` counts the subnetworks enumerated by
``exact`` and ``nwgm``.
``error`` and ``nll`` are over the test split. ``best_epoch`` is the epoch
whose weights were kept. On ``scaled`` rows of dropout networks the Hinton
columns compare, per test image, ``log y_scaled[c]`` with ``E[log y[c]]``
(``c`` the correct class): ``hinton_share`` of images where the scaled pass
is at least as high (ties within 1e-12 nats count: an image whose hidden
units are all zero gives every subnetwork the same output), the smallest
difference ``hinton_min_diff``, the mean and median difference, and the
Wilcoxon signed-rank p-value across images; ``nwgm_share`` is the same share
for ``log NWGM[c]``, and ``mean_log_scaled`` / ``mean_expected_log`` the
two means.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ...datasets import load_dataset
from ...dropout import SCHEMES, DropoutConfig, scaled_forward
from ...ensemble import exact_ensemble, sample_ensemble
from ...log_ensemble import expected_log_softmax
from ...network import MLP, predict
from ...stats import wilcoxon_paired
from ...study import Param, Study
from ...train import TrainConfig, error_rate, negative_log_likelihood, train
from .. import _common as c

ID_COLUMNS = ["architecture", "scheme", "keep_prob", "seed", "predictor", "n_subnetworks",
              "n_samples", "draw"]
METRIC_COLUMNS = ["error", "nll", "best_epoch", "hinton_share", "hinton_min_diff",
                  "hinton_mean_diff",
                  "hinton_median_diff", "hinton_pvalue", "nwgm_share", "mean_log_scaled",
                  "mean_expected_log"]
SAMPLE_SIZES = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 200, 500, 1000)
ARCHITECTURES = ((20,), (8, 8))
SPLIT_SEED = 0
# Differences of log-probabilities within this of 0 are ties: both sides are
# exact to ~1e-15 relative, and an image whose hidden units are all zero
# gives every subnetwork the same output (difference 0 up to rounding).
_TIE = 1e-12

RECIPE = TrainConfig(
    optimizer="adam", learning_rate=0.003, batch_size=32, epochs=100,
    weight_decay=1e-4, max_norm=3.0, lr_schedule="cosine",
    validation_fraction=0.15,
)
"""The training recipe of every network of this study (dropout or not).

Adam (lr 0.003, batches of 32, one fresh mask per example) for 100 epochs
under a cosine learning-rate schedule; weight decay 1e-4 and the max-norm
constraint 3 on each hidden unit's incoming weights (Srivastava et al. 2014
used max-norm with c between 3 and 4); 15% of the training images (drawn
from the run's seed, never the test split) held out for early stopping: the
weights of the epoch with the lowest validation loss of the scaled pass are
kept. No patience: with 40 epochs of patience the best validation loss of
a 64-20-10 network at keep_prob 0.5 came near epoch 20, before the schedule
had annealed, while the full schedule found lower ones after epoch 50.
"""


def _stream(seed: int, *key: int) -> np.random.SeedSequence:
    """The child ``key`` of ``SeedSequence(seed)``, as ``spawn`` would number it."""
    return np.random.SeedSequence(seed, spawn_key=key)


def train_digits(seed: int, keep_prob: float, scheme: str, hidden=(20,), *,
                 recipe: TrainConfig = RECIPE, data=None):
    """Train one ReLU network on digits by ``recipe``, every hidden layer dropped.

    The initial network depends on ``(seed, hidden)`` only, so the dropout
    networks of a seed and its no-dropout baseline (``keep_prob == 1``)
    start from the same weights; the training stream (masks, shuffles,
    validation split) depends on the whole cell.

    Parameters
    ----------
    seed : int >= 0
    keep_prob : float in (0, 1]
        1 trains without dropout.
    scheme : {"vanilla", "inverted"}
    hidden : sequence of int
        Hidden widths.
    recipe : TrainConfig
    data : Dataset, optional
        ``load_dataset("digits", rng=SPLIT_SEED)`` when None.

    Returns
    -------
    net : MLP
    cfg : DropoutConfig
        The dropout of every hidden layer (at keep_prob 1 for the baseline).
    history : DataFrame
        From :func:`ensemble_study.train.train`.
    """
    data = load_dataset("digits", rng=SPLIT_SEED) if data is None else data
    hidden = tuple(hidden)
    sizes = (data.n_features, *hidden, data.n_outputs)
    net0 = MLP.random(sizes, "relu", data.output, rng=_stream(seed, 0, len(hidden), *hidden))
    cfg = DropoutConfig(keep_prob, layers=list(range(1, len(sizes) - 1)), scheme=scheme)
    cell = _stream(seed, 1, len(hidden), *hidden, SCHEMES.index(scheme),
                   round(keep_prob * 10**6))
    net, history = train(net0, cfg if keep_prob < 1 else None, data.X_train, data.y_train,
                         train_cfg=recipe, rng=cell)
    return net, cfg, history


def _mc_stream(seed: int, hidden, scheme: str, keep_prob: float) -> np.random.SeedSequence:
    return _stream(seed, 2, len(hidden), *hidden, SCHEMES.index(scheme), round(keep_prob * 10**6))


def _hinton(net, cfg, X, y) -> tuple[dict, np.ndarray]:
    """Per-image comparison of the scaled pass (and NWGM) with E[log y] at the correct class.

    Returns the Hinton columns and the NWGM, shape ``(n_examples, n_classes)``.
    """
    e_log = expected_log_softmax(net, cfg, X)
    log_nwgm = e_log - np.logaddexp.reduce(e_log, axis=1, keepdims=True)
    rows = np.arange(len(y))
    log_scaled = np.log(scaled_forward(net, cfg, X))[rows, y]
    expected = e_log[rows, y]
    d = log_scaled - expected
    test = wilcoxon_paired(log_scaled, expected)
    return {"hinton_share": float(np.mean(d >= -_TIE)), "hinton_min_diff": float(d.min()),
            "hinton_mean_diff": float(d.mean()),
            "hinton_median_diff": float(np.median(d)), "hinton_pvalue": test["pvalue"],
            "nwgm_share": float(np.mean(log_nwgm[rows, y] - expected >= -_TIE)),
            "mean_log_scaled": float(log_scaled.mean()),
            "mean_expected_log": float(expected.mean())}, np.exp(log_nwgm)


def _scores(output, probs, y) -> dict:
    return {"error": error_rate(output, probs, y), "nll": negative_log_likelihood(output, probs, y)}


def recipe(p: dict) -> TrainConfig:
    """:data:`RECIPE` at the parameters' number of epochs."""
    return dataclasses.replace(RECIPE, epochs=p["epochs"])


def check(p: dict) -> dict:
    for a in p["architectures"]:
        c.check_exact_size(sum(a), 24, f"architecture {'-'.join(map(str, a))}")
    return p


def cells(params: dict) -> list[tuple]:
    """``(hidden, seed, scheme, keep_prob)`` per network: the baselines, then the grid.

    A cell's streams depend on its identity, not on its position, so a cell
    gives the same rows whatever grid it is run in.
    """
    out = [(h, s, "none", 1.0) for h in params["architectures"] for s in params["seeds"]]
    return out + list(itertools.product(params["architectures"], params["seeds"],
                                        params["schemes"], params["keep_probs"]))


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The rows of one network (see the module docstring)."""
    data = load_dataset("digits", rng=SPLIT_SEED)
    # The matrix products are small: one BLAS thread each is faster, and the
    # numbers do not depend on it.
    with threadpool_limits(1, "blas"):
        return _cell(*cell, params, data.X_test, data.y_test, data)


def _cell(hidden, seed, scheme, q, p, X, y, data) -> list[dict]:
    """Train one grid cell's network and score its predictors: its rows."""
    rows = []
    net, cfg, history = train_digits(seed, q, "inverted" if scheme == "none" else scheme,
                                     hidden, recipe=recipe(p), data=data)
    ids = {"architecture": net.architecture, "scheme": scheme, "keep_prob": q, "seed": seed,
           "best_epoch": int(history["epoch"][history["val_loss"].idxmin()])
           if "val_loss" in history else int(history["epoch"].iloc[-1])}
    if scheme == "none":
        rows.append({**ids, "predictor": "no_dropout", "n_subnetworks": 0, "n_samples": 0,
                     "draw": 0,
                     **_scores(net.output, predict(net, X), y)})
        return rows
    hinton, nwgm = _hinton(net, cfg, X, y)
    n_sub = 2 ** sum(hidden)
    rows.append({**ids, "predictor": "scaled", "n_subnetworks": 0, "n_samples": 0, "draw": 0,
                 **_scores(net.output, scaled_forward(net, cfg, X), y), **hinton})
    rows.append({**ids, "predictor": "nwgm", "n_subnetworks": n_sub, "n_samples": 0, "draw": 0,
                 **_scores(net.output, nwgm, y)})
    if len(hidden) > 1:
        return rows
    rows.append({**ids, "predictor": "exact", "n_subnetworks": n_sub, "n_samples": 0, "draw": 0,
                 **_scores(net.output, exact_ensemble(net, cfg, X).mean, y)})
    # One stream per (K, draw) grid position.
    mc = _mc_stream(seed, hidden, scheme, q)
    # Keyed by K and the draw, not by their place in the grid.
    draws = [np.random.SeedSequence(mc.entropy, spawn_key=mc.spawn_key + (k, draw))
             for k, draw in itertools.product(p["n_samples"], range(p["n_draws"]))]
    for (k, draw), ss in zip(itertools.product(p["n_samples"], range(p["n_draws"])),
                             draws, strict=True):
        rows.append({**ids, "predictor": "mc", "n_subnetworks": 0, "n_samples": k, "draw": draw,
                     **_scores(net.output, sample_ensemble(net, cfg, X, k, ss).mean, y)})
    return rows


def tidy(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=ID_COLUMNS + METRIC_COLUMNS)
    # Sorted by the identifiers, so that the table is the same whichever grid
    # (or subsets of seeds run separately and concatenated) produced its rows.
    return df.sort_values(ID_COLUMNS, kind="stable", ignore_index=True)


STUDY = Study(
    "srivastava",
    title="Srivastava et al. 2014 Fig. 11 on digits with the exact ensemble; Hinton et al.'s "
          "claim.",
    params=(
        Param("architectures", "widths", ARCHITECTURES, "Hidden widths of one architecture, "
              "comma-separated (8,8: two layers of 8); repeat for several. Fig. 11 is drawn "
              "for one-hidden-layer networks.", quick=((8,), (4, 4)), multiple=True,
              flag="--architecture"),
        Param("keep_probs", "keep_prob", (0.5, 0.8), "Keep probability of the hidden units; "
              "repeat for several.", quick=(0.5,), multiple=True, flag="--keep-prob"),
        Param("schemes", "str", SCHEMES, "Dropout scheme; repeat for both.",
              quick=("inverted",), multiple=True, choices=SCHEMES, flag="--scheme"),
        Param("seeds", "int", tuple(range(10)), "Training seed; repeat for several.",
              quick=(0, 1), multiple=True, low=0, flag="--seed"),
        Param("n_samples", "int", SAMPLE_SIZES, "K of the sampled ensembles; repeat for "
              "several.", quick=(1, 10, 100), multiple=True, unique=True, low=1,
              high=c.MAX_SAMPLES, aliases=("--k",)),
        Param("n_draws", "int", 20, "Independent draws of K masks per K and network.",
              quick=3, low=1, high=10_000),
        Param("epochs", "int", 100, "Epochs of the training recipe.", quick=5, low=1,
              high=100_000),
    ),
    cells=cells, run_cell=run_cell, tidy=tidy, check=check, reproduce=False, order=80,
    cost="15 to 32 minutes as two processes on 2 cores (20 seed and keep_prob pairs of "
         "6 networks each); --quick takes seconds",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
