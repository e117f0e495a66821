"""The dropout regularizer of trained MLPs, exactly and to second order, along training.

For each architecture (hidden widths, tanh, softmax output on the ten digits classes)
and each training seed (the unit of replication), a network is trained with inverted
dropout on every hidden layer by plain mini-batch SGD (no momentum, constant step, so
that training in segments is one uninterrupted run), and at several epochs the
study records, on a fixed random subset of the training examples:

* the exact regularizer ``R = E_m[NLL(subnetwork)] - NLL(scaled pass)`` summed over
  the subset, by enumeration of every mask, with its label-free and label-dependent
  parts (:func:`exact_softmax_regularizer`, the same quantity as
  :func:`ensemble_study.regularizer.mlp_regularizer`, faster when the last dropped
  layer feeds the output);
* its second-order expansion in the mask multipliers, full and Gauss-Newton
  (:func:`ensemble_study.regularizer_taylor.mlp_second_order`), and their ratios to R;
* the scaled pass's test error, the subset's scaled-pass NLL, and the linearised
  logit noise ``sqrt(sum_j Var(mult_j) |dz/dmult_j|^2)`` (mean over the subset).

Every quantity is reported per example of the subset.
"""

from __future__ import annotations

import numpy as np

from ... import regularizer_taylor as rt
from ...activations import get as get_activation
from ...datasets import load_dataset
from ...dropout import DropoutConfig, mask_multipliers, scaled_forward, unit_keep_probs
from ...masks import enumerate_masks
from ...network import MLP, forward
from ...study import Param, Study
from ...train import TrainConfig, train
from .. import _common as c

MAX_DROPPED = 20        # 2**20 masks per exact regularizer
N_FEATURES, N_CLASSES = 64, 10
# Above this bound on |z| exp could overflow: the logsumexp is then shifted by its max.
_EXP_SAFE = 600.0


def exact_softmax_regularizer(net: MLP, cfg: DropoutConfig, X, y, *, group: int = 32) -> dict:
    """``mlp_regularizer`` for a softmax output whose last dropped layer feeds the output.

    The logits are linear in the last dropped layer's multipliers, so for each mask of
    the other dropped layers (enumerated through the network up to that layer) the
    logits of all ``2**width`` masks of the last one are one matrix product; the
    expected logits over the last layer are analytic (DESIGN fact 9).

    Parameters
    ----------
    net : MLP
        Softmax output; ``cfg.layers[-1] == net.n_layers - 1``.
    cfg : DropoutConfig
    X : ndarray, shape (n_examples, n_features)
    y : ndarray of int, shape (n_examples,)
    group : int
        Outer masks per matrix product (memory ``~ group * 2**width * n * k`` floats).

    Returns
    -------
    dict
        ``total``, ``label_free``, ``label_dependent``, summed over the examples, as
        :func:`ensemble_study.regularizer.mlp_regularizer` returns them.
    """
    L = net.n_layers
    if net.output != "softmax" or cfg.layers[-1] != L - 1:
        raise ValueError(f"exact_softmax_regularizer needs a softmax output and the last "
                         f"dropped layer feeding it (layer {L - 1}); got output "
                         f"{net.output!r} and layers {cfg.layers}: use "
                         f"ensemble_study.regularizer.mlp_regularizer")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    n = X.shape[0]
    last = L - 1
    inner = MLP(net.weights[:-1], net.biases[:-1], net.hidden[:-1], "identity")
    f = get_activation(net.hidden[-1]).forward
    outer = cfg.layers[:-1]
    if outer:
        ocfg = DropoutConfig({l: cfg.layer_keep_prob(l) for l in outer}, scheme=cfg.scheme)
        masks, logp = next(enumerate_masks(unit_keep_probs(inner, ocfg), 2 ** MAX_DROPPED))
        acts = f(forward(inner, X, mask_multipliers(inner, ocfg, masks), logits=True))
        p_outer = np.exp(logp)
    else:
        acts = f(forward(inner, X, logits=True))[None]
        p_outer = np.ones(1)
    q = cfg.layer_keep_prob(last)
    w = net.sizes[last]
    lm, llogp = next(enumerate_masks(np.full(w, q), 2 ** w))
    mult = lm * (1.0 / q if cfg.scheme == "inverted" else 1.0)
    mean_mult = 1.0 if cfg.scheme == "inverted" else q
    M = np.hstack([mult, np.ones((mult.shape[0], 1))])   # the last column carries the bias
    p_last = np.exp(llogp)
    W, b = net.weights[-1], net.biases[-1]
    k = W.shape[1]
    EA = np.zeros(n)
    Ez = np.einsum("o,oni->ni", p_outer, (acts * mean_mult) @ W) + b
    for s in range(0, acts.shape[0], group):
        a = acts[s:s + group]
        g = a.shape[0]
        C = np.empty((w + 1, k, g, n))
        C[:w] = W[:, :, None, None] * a.transpose(2, 0, 1)[:, None]
        C[w] = b[:, None, None]
        z = (M @ C.reshape(w + 1, -1)).reshape(M.shape[0], k, g, n)
        bound = np.abs(C[:w]).sum(axis=0).max() * mult.max() + np.abs(b).max()
        if bound < _EXP_SAFE:
            np.exp(z, out=z)
            A = np.log(z.sum(axis=1))
        else:
            zmax = z.max(axis=1, keepdims=True)
            z -= zmax
            np.exp(z, out=z)
            A = np.log(z.sum(axis=1)) + zmax[:, 0]
        EA += (p_last @ A.reshape(M.shape[0], -1)).reshape(g, n).T @ p_outer[s:s + g]
    z_s = scaled_forward(net, cfg, X, logits=True)
    zmax = z_s.max(axis=1, keepdims=True)
    A_s = np.log(np.exp(z_s - zmax).sum(axis=1)) + zmax[:, 0]
    free = float(np.sum(EA - A_s))
    rows = np.arange(n)
    dep = -float(np.sum(Ez[rows, y] - z_s[rows, y]))
    return {"total": free + dep, "label_free": free, "label_dependent": dep}


def cells(params: dict) -> list[tuple]:
    """``(hidden widths, seed)`` per trained network, in grid order."""
    return [(tuple(h), s) for h in params["architectures"] for s in range(params["n_seeds"])]


def train_config(params: dict, epochs: int) -> TrainConfig:
    return TrainConfig(optimizer="sgd", momentum=0.0, learning_rate=params["learning_rate"],
                       batch_size=params["batch_size"], epochs=epochs)


def run_cell(cell: tuple, params: dict) -> list[dict]:
    """One network trained along the checkpoints: one row per checkpoint epoch."""
    hidden, seed = cell
    p = params
    split = np.random.default_rng(c.stream(p["seed"], "split", seed))
    ds = load_dataset("digits", rng=split)
    subset = np.sort(split.permutation(len(ds.y_train))[:p["n_eval"]])
    Xe, ye = ds.X_train[subset], ds.y_train[subset]
    sizes = (ds.n_features, *hidden, ds.n_outputs)
    net = MLP.random(sizes, "tanh", "softmax", rng=c.stream(p["seed"], "init", hidden, seed))
    cfg = DropoutConfig(p["keep_prob"], layers=tuple(range(1, len(sizes) - 1)),
                        scheme=p["scheme"])
    gen = np.random.default_rng(c.stream(p["seed"], "masks", hidden, seed))
    n = len(ye)
    rows, done, train_loss = [], 0, float("nan")
    for epoch in p["epochs"]:
        if epoch > done:
            net, hist = train(net, cfg, ds.X_train, ds.y_train,
                              train_cfg=train_config(p, epoch - done), rng=gen)
            train_loss = float(hist.train_loss.iloc[-1])
            done = epoch
        exact = exact_softmax_regularizer(net, cfg, Xe, ye)
        full = rt.mlp_second_order(net, cfg, Xe, ye)
        gn = rt.mlp_second_order(net, cfg, Xe, ye, kind="gauss_newton")
        jets = rt.mask_jets(net, cfg, Xe)
        # The linearised logit noise: sum_j Var(mult_j) |dz/dmult_j|^2 per example, the
        # scale on which the loss must be quadratic for the expansion to hold.
        noise = np.sqrt(np.einsum("j,jnk->n", jets.variance, jets.first ** 2))
        z_s = scaled_forward(net, cfg, Xe, logits=True)
        zmax = z_s.max(axis=1, keepdims=True)
        nll = np.log(np.exp(z_s - zmax).sum(axis=1)) + zmax[:, 0] - z_s[np.arange(n), ye]
        test_pred = scaled_forward(net, cfg, ds.X_test, logits=True).argmax(axis=1)
        rows.append(dict(
            study=STUDY.name, architecture=net.architecture, activation="tanh",
            output="softmax", scheme=cfg.scheme, keep_prob=p["keep_prob"],
            n_dropped=int(sum(hidden)), seed=seed, epoch=int(epoch), n_eval=n,
            learning_rate=p["learning_rate"], batch_size=p["batch_size"],
            train_loss=train_loss if epoch > 0 else float("nan"),
            eval_nll=float(nll.mean()), logit_noise=float(noise.mean()),
            test_error=float(np.mean(test_pred != ds.y_test)),
            R_exact=exact["total"] / n, R_exact_free=exact["label_free"] / n,
            R_exact_dependent=exact["label_dependent"] / n,
            R2_full=full["total"] / n, R2_full_free=full["label_free"] / n,
            R2_full_dependent=full["label_dependent"] / n, R2_gauss_newton=gn["total"] / n,
            ratio_full=full["total"] / exact["total"],
            ratio_gauss_newton=gn["total"] / exact["total"],
            share_dependent=exact["label_dependent"] / exact["total"]))
    return rows


def check(params: dict) -> dict:
    for h in params["architectures"]:
        c.check_exact_size(sum(h), MAX_DROPPED, f"architectures: hidden widths {h}")
    return params


STUDY = Study(
    "regularizer_mlp",
    title="The exact dropout regularizer of trained tanh MLPs on digits against its "
          "second-order expansion (full and Gauss-Newton), along training.",
    params=(
        Param("architectures", "widths", ((10,), (10, 10)), "Hidden widths of one "
              "architecture (every hidden layer dropped; at most 20 units in all); repeat "
              "for several.", quick=((4,), (4, 4)), multiple=True, flag="--hidden"),
        Param("epochs", "int", (0, 1, 2, 5, 10, 20, 40, 80), "Checkpoint epochs at which the "
              "regularizer is measured; repeat for several.", quick=(0, 2), multiple=True,
              unique=True, low=0, high=1000, flag="--epoch"),
        Param("keep_prob", "keep_prob", 0.5, "keep_prob of every hidden unit."),
        c.scheme(),
        Param("n_eval", "int", 20, "Training examples (a fixed random subset per seed) on "
              "which the regularizers are computed.", quick=8, low=2, high=500),
        Param("n_seeds", "int", 10, "Training seeds per architecture (the unit of "
              "replication).", quick=2, low=2, high=100),
        Param("learning_rate", "float", 0.1, "SGD step size (constant, no momentum).",
              low=1e-6, high=10.0),
        Param("batch_size", "int", 32, "Mini-batch size.", low=1, high=2000),
        c.seed(),
    ),
    cells=cells, run_cell=run_cell, tidy=c.tidy, check=check, order=97, reproduce=False,
    cost="about 3 to 4 minutes with --jobs 2 on the loaded 2-core machine (measured twice)",
)

from . import show  # noqa: E402,F401  (registers the figures and blocks)
