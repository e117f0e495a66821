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
``keep_prob`` 1), ``scaled``, ``exact_mean``, ``exact_nwgm`` or ``sampled``
(``n_samples`` = K, ``draw`` numbering the draws; for the others
``n_samples`` is the number of subnetworks averaged and ``draw`` 0).
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

from ..datasets import load_dataset
from ..dropout import SCHEMES, DropoutConfig, scaled_forward
from ..ensemble import exact_ensemble, sample_ensemble
from ..executor import map_cells
from ..log_ensemble import expected_log_softmax
from ..network import MLP, predict
from ..stats import bootstrap_ci, paired_bootstrap_ci, summarise, wilcoxon_paired
from ..train import TrainConfig, error_rate, negative_log_likelihood, train
from . import _common as c

NAME = "srivastava"
ID_COLUMNS = ["architecture", "scheme", "keep_prob", "seed", "predictor", "n_samples", "draw"]
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


def check_params(*, architectures, keep_probs, schemes, seeds, sample_sizes, n_draws,
                 recipe) -> dict:
    """Validate the grid before any work; return it normalised (``ValueError`` if bad)."""
    archs = tuple(tuple(c.check_positive_int(w, "architectures") for w in a)
                  for a in architectures)
    if not archs or any(len(a) == 0 for a in archs):
        raise ValueError(f"architectures must list one or more tuples of hidden widths; "
                         f"got {architectures!r}")
    for a in archs:
        c.check_exact_size(sum(a), 24, f"architecture {a}")
    seeds = tuple(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
                        for s in seeds):
        raise ValueError(f"seeds must list non-negative integers; got {seeds!r}")
    sizes = tuple(sorted({c.check_positive_int(k, "sample_sizes") for k in sample_sizes}))
    if not isinstance(recipe, TrainConfig):
        raise ValueError(f"recipe must be a TrainConfig; got {type(recipe).__name__}")
    return dict(architectures=archs, keep_probs=c.check_keep_probs(keep_probs),
                schemes=c.check_choices(schemes, SCHEMES, "schemes"), seeds=seeds,
                sample_sizes=sizes, n_draws=c.check_positive_int(n_draws, "n_draws"),
                recipe=recipe)


def run(*, progress=False, execution=None, **params) -> pd.DataFrame:
    """Train every cell, then score its predictors on the whole test split.

    Parameters
    ----------
    architectures : sequence of tuples of int
        Hidden widths; Fig. 11 (the sampled ensembles and the exact
        arithmetic mean) is computed for one-hidden-layer networks only.
    keep_probs, schemes, seeds : sequences
    sample_sizes : sequence of int
        K of the sampled ensembles.
    n_draws : int
        Independent draws of K masks per K and network.
    recipe : TrainConfig
    progress : bool or callable
    execution : ensemble_study.executor.Execution, optional
        Where the cells run (see :func:`ensemble_study.executor.map_cells`).

    Returns
    -------
    DataFrame
        Columns ``ID_COLUMNS + METRIC_COLUMNS`` (module docstring).
    """
    p = check_params(**params)
    rows = map_cells(NAME, run_cell, cells(p), p, execution=execution, progress=progress)
    df = pd.DataFrame(rows, columns=ID_COLUMNS + METRIC_COLUMNS)
    # Sorted by the identifiers, so that the table is the same whichever grid
    # (or subsets of seeds run separately and concatenated) produced its rows.
    return df.sort_values(ID_COLUMNS, kind="stable", ignore_index=True)


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
                                     hidden, recipe=p["recipe"], data=data)
    ids = {"architecture": net.architecture, "scheme": scheme, "keep_prob": q, "seed": seed,
           "best_epoch": int(history["epoch"][history["val_loss"].idxmin()])
           if "val_loss" in history else int(history["epoch"].iloc[-1])}
    if scheme == "none":
        rows.append({**ids, "predictor": "no_dropout", "n_samples": 1, "draw": 0,
                     **_scores(net.output, predict(net, X), y)})
        return rows
    hinton, nwgm = _hinton(net, cfg, X, y)
    n_sub = 2 ** sum(hidden)
    rows.append({**ids, "predictor": "scaled", "n_samples": 1, "draw": 0,
                 **_scores(net.output, scaled_forward(net, cfg, X), y), **hinton})
    rows.append({**ids, "predictor": "exact_nwgm", "n_samples": n_sub, "draw": 0,
                 **_scores(net.output, nwgm, y)})
    if len(hidden) > 1:
        return rows
    rows.append({**ids, "predictor": "exact_mean", "n_samples": n_sub, "draw": 0,
                 **_scores(net.output, exact_ensemble(net, cfg, X).mean, y)})
    # One stream per (K, draw) grid position.
    draws = _mc_stream(seed, hidden, scheme, q).spawn(len(p["sample_sizes"]) * p["n_draws"])
    for (k, draw), ss in zip(itertools.product(p["sample_sizes"], range(p["n_draws"])),
                             draws, strict=True):
        rows.append({**ids, "predictor": "sampled", "n_samples": k, "draw": draw,
                     **_scores(net.output, sample_ensemble(net, cfg, X, k, ss).mean, y)})
    return rows


# 20 (seed, keep_prob) pairs of 6 networks each: 15 to 32 minutes as two processes
# on the shared 2-core VM, so not in DEFAULT_STUDIES (budget: about 3 minutes).
DEFAULTS = dict(architectures=ARCHITECTURES, keep_probs=(0.5, 0.8), schemes=SCHEMES,
                seeds=tuple(range(10)), sample_sizes=SAMPLE_SIZES, n_draws=20, recipe=RECIPE)
QUICK = dict(architectures=((8,), (4, 4)), keep_probs=(0.5,), schemes=("inverted",),
             seeds=(0, 1), sample_sizes=(1, 10, 100), n_draws=3,
             recipe=dataclasses.replace(RECIPE, epochs=5, patience=None))


def run_default(quick: bool = False, progress=False, execution=None):
    """The default grid (``QUICK`` when ``quick``): ``(DataFrame, params)``."""
    params = QUICK if quick else DEFAULTS
    return (run(progress=progress, execution=execution, **params),
            {**params, "recipe": dataclasses.asdict(params["recipe"])})


# --- summaries (from the saved table) -----------------------------------------

def _first_crossing(mc: np.ndarray, ref, ks: np.ndarray) -> np.ndarray:
    """The first K whose error ``mc[..., K]`` is at most ``ref[...]`` (inf if none)."""
    hit = mc <= np.asarray(ref)[..., None] + 1e-12
    return np.where(hit.any(axis=-1), ks[np.argmax(hit, axis=-1)], np.inf)


def crossings(df: pd.DataFrame, *, n_resamples: int = 2000, level: float = 0.95,
              rng: int = 0) -> pd.DataFrame:
    """The first K at which Monte Carlo matches each reference, with a bootstrap CI over seeds.

    For each (architecture, scheme, keep_prob) and reference (``scaled``,
    ``exact_mean``): the mean over seeds of each seed's mean error over
    draws at K, against the mean over seeds of the reference's error; the
    crossing is the first K of the grid where the first is at most the
    second. Seeds are resampled with replacement (the same seeds for the
    sampled ensembles and the reference: a paired bootstrap); the interval
    holds the percentiles of the resampled crossings (inf: no K of the grid
    reaches the reference).

    Returns
    -------
    DataFrame
        ``architecture, scheme, keep_prob, reference, reference_error``,
        ``k`` and ``ci_low``, ``ci_high``, ``n_seeds``.
    """
    out = []
    sampled = df[df["predictor"] == "sampled"]
    for key, g in sampled.groupby(["architecture", "scheme", "keep_prob"], sort=True):
        by_seed = g.pivot_table("error", "seed", "n_samples", aggfunc="mean").sort_index()
        ks = by_seed.columns.to_numpy()
        seeds = by_seed.index.to_numpy()
        cell = df[(df["architecture"] == key[0]) & (df["scheme"] == key[1])
                  & (df["keep_prob"] == key[2])]
        for j, reference in enumerate(("scaled", "exact_mean")):
            ref = cell[cell["predictor"] == reference].set_index("seed")["error"].loc[seeds]
            M, r = by_seed.to_numpy(), ref.to_numpy()
            k = float(_first_crossing(M.mean(axis=0), r.mean(), ks))
            # A stream per group, whatever else the table holds.
            gen = np.random.default_rng([rng, round(key[2] * 1e6), SCHEMES.index(key[1]), j,
                                         sum(int(w) for w in key[0].split("-"))])
            idx = gen.integers(0, len(seeds), (n_resamples, len(seeds)))
            boot = _first_crossing(M[idx].mean(axis=1), r[idx].mean(axis=1), ks)
            # Crossings are grid values (or inf): the interval's ends are grid values too.
            lo = np.quantile(boot, (1 - level) / 2, method="lower")
            hi = np.quantile(boot, (1 + level) / 2, method="higher")
            out.append({"architecture": key[0], "scheme": key[1], "keep_prob": key[2],
                        "reference": reference, "reference_error": float(r.mean()),
                        "k": k, "ci_low": float(lo), "ci_high": float(hi),
                        "n_seeds": len(seeds)})
    return pd.DataFrame(out)


def errors(df: pd.DataFrame) -> pd.DataFrame:
    """Mean test error over seeds per architecture, scheme, keep_prob and predictor,
    with a bootstrap 95% CI over seeds, and the paired difference from the baseline.

    ``sampled`` rows are left out (see :func:`crossings`). ``minus_baseline``
    is the mean over seeds of (error - the same seed's no-dropout error),
    with its paired bootstrap CI (``diff_low``, ``diff_high``).
    """
    keys = ["architecture", "scheme", "keep_prob", "predictor"]
    single = df[df["predictor"] != "sampled"]
    out = summarise(single, keys, "error", "mean", spread=None)
    base = df[df["predictor"] == "no_dropout"].set_index(["architecture", "seed"])["error"]
    diffs = []
    for _, g in single.groupby(keys, sort=False):
        d = g["error"].to_numpy() - base.loc[list(zip(g["architecture"], g["seed"]))].to_numpy()
        diffs.append(bootstrap_ci(np.sort(d), "mean", rng=0))
    out["minus_baseline"], out["diff_low"], out["diff_high"] = np.array(diffs).T
    return out.drop(columns="statistic").rename(columns={"estimate": "error", "n": "n_seeds"})


def hinton(df: pd.DataFrame) -> pd.DataFrame:
    """Hinton et al.'s claim per architecture, scheme and keep_prob, over seeds.

    ``share`` is the mean over networks of the share of test images where
    the scaled pass gives the correct class at least the subnetworks' mean
    log-probability (``min_share`` the lowest network, ``min_diff`` the most
    negative difference of any image and network);
    ``mean_diff`` the mean over networks of the mean difference (nats), with
    a bootstrap 95% CI over seeds; ``n_significant`` the networks whose
    Wilcoxon signed-rank test across images gives p < 0.05 with the scaled
    pass higher (positive median difference); ``nwgm_share`` as ``share`` for
    the NWGM.
    """
    rows = []
    scaled = df[(df["predictor"] == "scaled")]
    for key, g in scaled.groupby(["architecture", "scheme", "keep_prob"], sort=True):
        est, lo, hi = bootstrap_ci(g["hinton_mean_diff"].sort_values(), "mean", rng=0)
        sig = (g["hinton_pvalue"] < 0.05) & (g["hinton_median_diff"] > 0)
        rows.append(dict(zip(("architecture", "scheme", "keep_prob"), key),
                         share=g["hinton_share"].mean(), min_share=g["hinton_share"].min(),
                         min_diff=g["hinton_min_diff"].min(),
                         mean_diff=est, ci_low=lo, ci_high=hi,
                         n_significant=int(sig.sum()), n_networks=len(g),
                         max_pvalue=g["hinton_pvalue"].max(),
                         nwgm_share=g["nwgm_share"].mean()))
    return pd.DataFrame(rows)


def exact_minus_scaled(df: pd.DataFrame) -> pd.DataFrame:
    """Test error of the exact ensemble minus the scaled pass's, paired over seeds.

    Per (architecture, scheme, keep_prob) with an exact arithmetic mean: the
    mean over seeds of the same network's difference, its bootstrap 95% CI,
    and the Wilcoxon signed-rank test across networks.
    """
    rows = []
    single = df[df["predictor"].isin(["exact_mean", "scaled"])]
    for key, g in single.groupby(["architecture", "scheme", "keep_prob"], sort=True):
        wide = g.pivot_table("error", "seed", "predictor")
        if "exact_mean" not in wide:
            continue
        est, lo, hi = paired_bootstrap_ci(wide["exact_mean"], wide["scaled"], rng=0)
        test = wilcoxon_paired(wide["exact_mean"], wide["scaled"])
        rows.append(dict(zip(("architecture", "scheme", "keep_prob"), key), difference=est,
                         ci_low=lo, ci_high=hi, n_exact_better=int(test["share_a_less"]
                                                                 * test["n"]),
                         n_tied=test["n"] - test["n_nonzero"], pvalue=test["pvalue"],
                         n_seeds=test["n"]))
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> str:
    """The README's tables: errors against the baseline, exact against scaled, Fig. 11's
    crossings, Hinton's claim."""
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        return "\n\n".join([
            "Test error (mean over seeds, bootstrap 95% CI), and minus the same seed's "
            "no-dropout error:\n" + errors(df).round(4).to_string(index=False),
            "First K where Monte Carlo's mean error <= the reference's (bootstrap 95% CI "
            "over seeds):\n" + crossings(df).round(4).to_string(index=False),
            "Exact ensemble minus scaled pass, test error paired over seeds (bootstrap 95% "
            "CI, Wilcoxon signed-rank):\n" + exact_minus_scaled(df).round(4).to_string(index=False),
            "Hinton et al.: log y_scaled[c] >= E[log y[c]] over subnetworks, per test image:\n"
            + hinton(df).assign(max_pvalue=lambda h: h["max_pvalue"].map("{:.1e}".format))
            .round(4).to_string(index=False),
        ])
