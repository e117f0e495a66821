"""Training a network with dropout: backpropagation through masked subnetworks.

Each example of a mini-batch gets its own fresh joint mask, drawn from an
explicit ``rng``. The mask multiplies the activations on the way forward
(``m`` under vanilla, ``m / keep_prob`` under inverted) and, by the chain
rule, the same multiplier multiplies the gradient on the way back: a dropped
unit neither contributes to the output nor receives gradient.

Losses are averages over examples of

* ``cross_entropy`` (softmax output): ``-sum_i t_i log softmax(z)_i``;
* ``binary_cross_entropy`` (sigmoid output): ``sum_i softplus(z_i) - t_i z_i``;
* ``squared_error`` (any output): ``0.5 * sum_i (y_i - t_i)**2``;

plus ``0.5 * weight_decay * sum_l ||W[l]||^2`` (weights only, not biases).
After each step the max-norm constraint (Srivastava et al. 2014) rescales the
incoming weight vector ``W[l][:, j]`` of every hidden unit whose norm
exceeds ``max_norm``.

Two optional pieces make a training recipe (all off by default):

* a learning-rate schedule: ``"cosine"`` anneals the step size of epoch
  ``e = 1..E`` to ``lr * 0.5 * (1 + cos(pi * (e - 1) / E))`` (Loshchilov &
  Hutter 2017, one cycle, no restart), from ``lr`` to near 0;
* early stopping: a share ``validation_fraction`` of the *training*
  examples is held out (drawn from the run's ``rng`` before anything else,
  see :func:`validation_split`) and never trained on; after each epoch the
  scheme's scaled pass is scored on it, the weights of the epoch with the
  lowest validation loss are restored at the end, and training stops after
  ``patience`` epochs without a new lowest loss.

(About 500 lines: backprop through masked networks, the optimisers and
early stopping are one training loop, read together.)
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._checks import (
    as_float_array,
    check_choice,
    check_positive_int,
    check_real,
    check_rng,
    check_X,
)
from .activations import get as get_activation
from .dropout import DropoutConfig, check_config, mask_multipliers, scaled_forward, unit_keep_probs
from .masks import sample_masks
from .network import (
    ACTIVATION_FUNCTIONS,
    MLP,
    OUTPUT_FUNCTIONS,
    check_net,
    log_softmax,
    predict,
)

LOSSES = ("cross_entropy", "binary_cross_entropy", "squared_error")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "cosine")
# The loss whose gradient with respect to the logits is simply y - t.
NATURAL_LOSS = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy",
                "identity": "squared_error"}
# Probabilities are clipped here before a log, so that one confident mistake
# gives a large but finite negative log-likelihood.
_PROB_FLOOR = 1e-12


def _activation_grad(name: str, z: np.ndarray) -> np.ndarray:
    return get_activation(name).derivative(z)


def _number(value, name, *, low, high=None, low_open=False, allow_none=False):
    if value is None and allow_none:
        return None
    try:
        # Finite only: learning_rate=inf would pass a range check and fail later
        # as "weights must be finite", blaming the wrong thing.
        return check_real(value, name, low=low, high=high, low_open=low_open)
    except ValueError as exc:
        raise ValueError(f"{exc}{' (or None)' if allow_none else ''}") from None


@dataclass(frozen=True)
class TrainConfig:
    """How to train: loss, optimiser, schedule and regularisation.

    Parameters
    ----------
    loss : {"auto", "cross_entropy", "binary_cross_entropy", "squared_error"}
        ``"auto"`` picks the output's natural loss (softmax -> cross-entropy,
        sigmoid -> binary cross-entropy, identity -> squared error).
    optimizer : {"sgd", "adam"}
        ``"sgd"`` is mini-batch SGD with (heavy-ball) momentum.
    learning_rate : float > 0
    momentum : float in [0, 1)
        SGD only.
    beta1, beta2 : float in [0, 1)
        Adam's decay rates (Kingma & Ba 2015).
    batch_size : int >= 1
    epochs : int >= 1
    weight_decay : float >= 0
        L2 penalty ``0.5 * weight_decay * ||W||^2`` on the weights.
    max_norm : float > 0 or None
        Bound on the L2 norm of each hidden unit's incoming weight vector.
    lr_schedule : {"constant", "cosine"}
        Step size per epoch (module docstring; :func:`learning_rate_at`).
    validation_fraction : float in [0, 1)
        Share of the training examples held out for early stopping; 0 trains
        on every example and keeps the last epoch's weights.
    patience : int >= 1 or None
        Stop after this many epochs without a lower validation loss (None:
        run every epoch, then restore the best). Needs a validation split.
    """

    loss: str = "auto"
    optimizer: str = "adam"
    learning_rate: float = 0.01
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    batch_size: int = 32
    epochs: int = 50
    weight_decay: float = 0.0
    max_norm: float | None = None
    lr_schedule: str = "constant"
    validation_fraction: float = 0.0
    patience: int | None = None

    def __post_init__(self):
        if not isinstance(self.loss, str) or (self.loss != "auto" and self.loss not in LOSSES):
            raise ValueError(f"loss must be 'auto' or one of {LOSSES}; got {self.loss!r}")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        _number(self.learning_rate, "learning_rate", low=0, low_open=True)
        for name in ("momentum", "beta1", "beta2"):
            if _number(getattr(self, name), name, low=0, high=1) == 1:
                raise ValueError(f"{name} must be in [0, 1); got 1")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.epochs, "epochs")
        _number(self.weight_decay, "weight_decay", low=0)
        _number(self.max_norm, "max_norm", low=0, low_open=True, allow_none=True)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; "
                             f"got {self.lr_schedule!r}")
        if _number(self.validation_fraction, "validation_fraction", low=0, high=1) == 1:
            raise ValueError("validation_fraction must be in [0, 1); got 1")
        if self.patience is not None:
            check_positive_int(self.patience, "patience")
            if self.validation_fraction == 0:
                raise ValueError(f"patience={self.patience!r} needs a validation split: "
                                 f"set validation_fraction in (0, 1) or patience=None")


def learning_rate_at(train_cfg: TrainConfig, epoch: int) -> float:
    """The step size of epoch ``epoch`` (1-based) under ``train_cfg.lr_schedule``."""
    lr = train_cfg.learning_rate
    if train_cfg.lr_schedule == "cosine":
        return lr * 0.5 * (1.0 + np.cos(np.pi * (epoch - 1) / train_cfg.epochs))
    return lr


def validation_split(n_examples: int, fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)`` of a random split of ``n_examples`` examples.

    ``round(fraction * n_examples)`` examples (at least 1 when ``fraction >
    0``) go to validation; both index arrays are sorted. With ``fraction ==
    0`` nothing is drawn and every example trains.
    """
    n_examples = check_positive_int(n_examples, "n_examples")
    if _number(fraction, "validation_fraction", low=0, high=1) == 1:
        raise ValueError("validation_fraction must be in [0, 1); got 1")
    if fraction == 0:
        return np.arange(n_examples), np.arange(0)
    n_val = max(1, round(fraction * n_examples))
    if n_val >= n_examples:
        raise ValueError(f"validation_fraction={fraction} leaves no training example "
                         f"out of {n_examples}")
    order = check_rng(rng).permutation(n_examples)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def resolve_loss(output: str, loss: str) -> str:
    """The loss to use for ``output``; raises if the pair does not fit."""
    check_choice(output, tuple(NATURAL_LOSS), "output")
    if not isinstance(loss, str) or (loss != "auto" and loss not in LOSSES):
        raise ValueError(f"loss must be 'auto' or one of {LOSSES}; got {loss!r}")
    loss = NATURAL_LOSS[output] if loss == "auto" else loss
    needs = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss)
    if needs is not None and output != needs:
        raise ValueError(f"loss {loss!r} needs a {needs} output; the network's output is "
                         f"{output!r} (use loss='squared_error' or 'auto')")
    return loss


def targets(net: MLP, y, name: str = "y") -> np.ndarray:
    """Training targets of shape ``(n_examples, n_outputs)``.

    Integer class labels ``y`` of shape ``(n_examples,)`` become one-hot rows
    for a softmax output; otherwise ``y`` must already have one column per
    output (a 1-D ``y`` is read as one column). Sigmoid targets must be 0/1
    labels, softmax target rows probability vectors, identity targets finite.
    """
    k = check_net(net).sizes[-1]
    arr = np.asarray(y) if isinstance(y, np.ndarray) else y
    arr = as_float_array(arr, name) if not (isinstance(arr, np.ndarray)
                                            and arr.dtype.kind in "iu") else arr
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} must hold one target per example (shape (n_examples,) or "
                         f"(n_examples, {k})); got shape {arr.shape}")
    if net.output == "softmax" and arr.ndim == 1:
        if arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() >= k:
            raise ValueError(f"{name} must hold integer class labels in 0..{k - 1} for a "
                             f"softmax output with {k} units; got dtype {arr.dtype}, "
                             f"range [{arr.min()}, {arr.max()}]")
        return np.eye(k)[arr]
    T = np.asarray(arr, dtype=np.float64).reshape(len(arr), -1)
    if T.shape[1] != k or arr.ndim > 2:
        raise ValueError(f"{name} must have {k} column(s) to match the network's output; "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{name} must contain only finite values; got NaN or inf")
    if net.output == "sigmoid" and not np.all((T == 0) | (T == 1)):
        raise ValueError(f"{name} must hold 0/1 labels for a sigmoid output; got values in "
                         f"[{T.min()}, {T.max()}]")
    if net.output == "softmax" and not (np.all(T >= 0)
                                        and np.allclose(T.sum(axis=1), 1, atol=1e-9)):
        raise ValueError(f"{name} with {k} columns must hold one probability vector per "
                         f"example for a softmax output (entries >= 0, rows summing to 1), "
                         f"or pass integer class labels of shape (n_examples,)")
    return T


def _labels(output: str, probs, y, name: str = "y"):
    """``probs`` and ``y`` as arrays after checking that they fit (error_rate, NLL)."""
    check_choice(output, ("sigmoid", "softmax"), "output")
    probs = as_float_array(probs, "probs")
    y = as_float_array(y, name).ravel()
    if probs.ndim != 2 or probs.shape[0] != y.size or y.size == 0:
        raise ValueError(f"probs must have shape (n_examples, n_outputs) and {name} one label "
                         f"per example; got shapes {probs.shape} and {np.shape(y)}")
    n_classes = probs.shape[1] if output == "softmax" else 2
    if not np.all((y == np.round(y)) & (y >= 0) & (y < n_classes)):
        raise ValueError(f"{name} must hold integer class labels in 0..{n_classes - 1}")
    return probs, y.astype(np.int64)


def loss_and_gradients(net: MLP, X, T, *, loss: str, multipliers=None,
                       weight_decay: float = 0.0):
    """The mean loss over the batch and its gradients, by backpropagation.

    Parameters
    ----------
    net : MLP
    X : ndarray, shape (n_examples, n_features)
    T : ndarray, shape (n_examples, n_outputs)
        Targets (see :func:`targets`).
    loss : str
        One of ``LOSSES`` (not ``"auto"``) that fits ``net.output``.
    multipliers : mapping int -> ndarray of shape (n_examples, width_l), optional
        Per-example multipliers of activation layer ``l`` (one joint mask per
        row, see :func:`ensemble_study.dropout.mask_multipliers`). Unlike
        :func:`ensemble_study.network.forward`, row ``i`` applies to example
        ``i`` only.
    weight_decay : float
        Adds ``0.5 * weight_decay * sum ||W[l]||^2`` to the loss.

    Returns
    -------
    loss : float
    grad_W : list of ndarray, shapes of ``net.weights``
    grad_b : list of ndarray, shapes of ``net.biases``
    """
    multipliers = multipliers or {}
    L = net.n_layers
    inputs, pre = [], []
    A = X
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        if l in multipliers:
            A = A * multipliers[l]
        inputs.append(A)
        Z = A @ W + b
        pre.append(Z)
        if l < L - 1:
            A = ACTIVATION_FUNCTIONS[net.hidden[l]](Z)
    Z, n = pre[-1], X.shape[0]
    if loss == "cross_entropy":
        value = -np.sum(T * log_softmax(Z))
        dZ = OUTPUT_FUNCTIONS["softmax"](Z) - T
    elif loss == "binary_cross_entropy":
        value = np.sum(np.logaddexp(0.0, Z) - T * Z)
        dZ = OUTPUT_FUNCTIONS["sigmoid"](Z) - T
    else:
        Y = OUTPUT_FUNCTIONS[net.output](Z)
        value = 0.5 * np.sum((Y - T) ** 2)
        dY = Y - T
        if net.output == "sigmoid":
            dZ = dY * Y * (1.0 - Y)
        elif net.output == "softmax":
            dZ = Y * (dY - np.sum(dY * Y, axis=1, keepdims=True))
        else:
            dZ = dY
    value /= n
    dZ = dZ / n
    grad_W, grad_b = [None] * L, [None] * L
    for l in range(L - 1, -1, -1):
        grad_W[l] = inputs[l].T @ dZ + weight_decay * net.weights[l]
        grad_b[l] = dZ.sum(axis=0)
        if l > 0:
            dA = dZ @ net.weights[l].T
            if l in multipliers:
                dA = dA * multipliers[l]
            dZ = dA * _activation_grad(net.hidden[l - 1], pre[l - 1])
    value += 0.5 * weight_decay * sum(np.sum(W**2) for W in net.weights)
    return float(value), grad_W, grad_b


def apply_max_norm(weights: list, max_norm: float) -> None:
    """Rescale, in place, each hidden unit's incoming weights to norm <= max_norm.

    ``weights[l][:, j]`` feeds hidden unit ``j`` of layer ``l + 1`` for every
    ``l`` but the last (which feeds the output).
    """
    for W in weights[:-1]:
        norms = np.sqrt(np.sum(W**2, axis=0))
        W *= np.minimum(1.0, max_norm / np.maximum(norms, np.finfo(np.float64).tiny))


def error_rate(output: str, probs, y) -> float:
    """Fraction of misclassified examples.

    ``probs`` has shape ``(n_examples, n_classes)`` for softmax (argmax) and
    ``(n_examples, 1)`` for a sigmoid (threshold 0.5); ``y`` holds labels.
    """
    probs, y = _labels(output, probs, y)
    pred = probs.argmax(axis=1) if output == "softmax" else (probs[:, 0] > 0.5).astype(int)
    return float(np.mean(pred != y))


def negative_log_likelihood(output: str, probs, y) -> float:
    """Mean ``-log p(true label)``, probabilities clipped below at 1e-12.

    Same shapes as :func:`error_rate`.
    """
    probs, y = _labels(output, probs, y)
    if output == "softmax":
        p_true = probs[np.arange(len(y)), y]
    else:
        p_true = np.where(y == 1, probs[:, 0], 1.0 - probs[:, 0])
    return float(-np.mean(np.log(np.maximum(p_true, _PROB_FLOOR))))


def train(
    net: MLP,
    cfg: DropoutConfig | None,
    X,
    y,
    *,
    train_cfg: TrainConfig,
    rng,
    eval_set: tuple | None = None,
    progress: bool = False,
):
    """Train ``net`` with dropout ``cfg`` by mini-batch gradient descent.

    Every step draws one fresh joint mask per example from ``rng`` (which
    also shuffles the examples each epoch), so a run is a function of its
    seed.

    Parameters
    ----------
    net : MLP
        The initial network (left unchanged).
    cfg : DropoutConfig or None
        Dropout during training; None trains without dropout.
    X : array_like, shape (n_examples, n_features)
    y : array_like, shape (n_examples,) or (n_examples, n_outputs)
        Class labels for softmax and sigmoid outputs (see :func:`targets`),
        real targets for an identity output.
    train_cfg : TrainConfig
    rng : int, SeedSequence or numpy.random.Generator
    eval_set : (X_eval, y_eval), optional
        Labels for a classifier: after each epoch the scheme's scaled pass is
        scored on it.
    progress : bool
        Show a progress bar over epochs on stderr.

    Returns
    -------
    net : MLP
        The trained network.
    history : DataFrame
        One row per epoch run: ``epoch``, ``train_loss`` (the mean over the
        epoch's steps of the dropout objective, weight decay included), under
        a schedule ``learning_rate`` (that epoch's step size), with a validation
        split ``val_loss`` and ``val_error``, and with ``eval_set``
        ``eval_loss`` and ``eval_error``, all of the scaled pass
        (``*_loss`` is the negative log-likelihood for sigmoid and softmax
        outputs, the squared error otherwise). With a validation split the
        returned network is that of the row with the lowest ``val_loss``
        (the first such row), not necessarily the last.
    """
    if not isinstance(train_cfg, TrainConfig):
        raise ValueError(f"train_cfg must be a TrainConfig; got {type(train_cfg).__name__}")
    gen = check_rng(rng)
    X = check_X(X, check_net(net).sizes[0])
    loss = resolve_loss(net.output, train_cfg.loss)
    T = targets(net, y)
    if T.shape[0] != X.shape[0]:
        raise ValueError(f"X and y must hold the same number of examples; "
                         f"got {X.shape[0]} and {T.shape[0]}")
    if eval_set is not None:
        eval_set = _check_eval_set(net, eval_set)
    if cfg is not None:
        check_config(net, cfg)
        keep = unit_keep_probs(net, cfg)
    tc = train_cfg
    # Drawn first, so the split is a function of the seed alone.
    fit, held = validation_split(X.shape[0], tc.validation_fraction, gen)
    X_val, y_val = X[held], np.asarray(y)[held]
    X, T = X[fit], T[fit]
    best_loss, best_params, since_best = np.inf, None, 0
    params = [np.array(W) for W in net.weights] + [np.array(b) for b in net.biases]
    L = net.n_layers
    velocity = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    step, rows = 0, []

    def current():
        return MLP(tuple(params[:L]), tuple(params[L:]), net.hidden, net.output)

    from .executor import Progress

    with (Progress("training", tc.epochs, report=progress, unit="epochs") if progress
          else nullcontext()) as bar:
        for epoch in range(1, tc.epochs + 1):
            order = gen.permutation(X.shape[0])
            lr = learning_rate_at(tc, epoch)
            losses = []
            for start in range(0, X.shape[0], tc.batch_size):
                idx = order[start:start + tc.batch_size]
                mult = (None if cfg is None else
                        mask_multipliers(net, cfg, sample_masks(keep, idx.size, gen)))
                value, gW, gb = loss_and_gradients(current(), X[idx], T[idx], loss=loss,
                                                   multipliers=mult,
                                                   weight_decay=tc.weight_decay)
                losses.append(value)
                step += 1
                for p, g, v, s in zip(params, gW + gb, velocity, second):
                    if tc.optimizer == "sgd":
                        v *= tc.momentum
                        v -= lr * g
                        p += v
                    else:
                        v += (1 - tc.beta1) * (g - v)
                        s += (1 - tc.beta2) * (g * g - s)
                        v_hat = v / (1 - tc.beta1**step)
                        s_hat = s / (1 - tc.beta2**step)
                        p -= lr * v_hat / (np.sqrt(s_hat) + 1e-8)
                if tc.max_norm is not None:
                    apply_max_norm(params[:L], tc.max_norm)
            row = {"epoch": epoch, "train_loss": float(np.mean(losses))}
            if tc.lr_schedule != "constant":
                row["learning_rate"] = lr
            if held.size:
                scores = _evaluate(current(), cfg, X_val, y_val)
                row.update({k.replace("eval", "val"): v for k, v in scores.items()})
            if eval_set is not None:
                row.update(_evaluate(current(), cfg, *eval_set))
            rows.append(row)
            if bar is not None:
                bar.advance()
            if held.size:
                if row["val_loss"] < best_loss:
                    best_loss, since_best = row["val_loss"], 0
                    best_params = [np.array(p) for p in params]
                else:
                    since_best += 1
                    if tc.patience is not None and since_best >= tc.patience:
                        break
    if best_params is not None:
        params = best_params
    return current(), pd.DataFrame(rows)


def _check_eval_set(net: MLP, eval_set) -> tuple:
    """``(X_eval, y_eval)`` checked before training, so that no epoch is wasted on it."""
    if not isinstance(eval_set, (tuple, list)) or len(eval_set) != 2:
        raise ValueError(f"eval_set must be a pair (X_eval, y_eval); got "
                         f"{type(eval_set).__name__}"
                         + (f" of length {len(eval_set)}" if isinstance(eval_set, (tuple, list))
                            else ""))
    X_eval = check_X(eval_set[0], net.sizes[0], "eval_set[0]")
    y_eval = eval_set[1]
    T = targets(net, y_eval, "eval_set[1]")
    if T.shape[0] != X_eval.shape[0]:
        raise ValueError(f"eval_set's X and y must hold the same number of examples; "
                         f"got {X_eval.shape[0]} and {T.shape[0]}")
    if net.output != "identity":  # scored as labels by error_rate and the NLL
        _labels(net.output, np.zeros(T.shape), y_eval, "eval_set[1]")
    return X_eval, y_eval


def _evaluate(net: MLP, cfg, X, y) -> dict:
    probs = scaled_forward(net, cfg, X) if cfg is not None else predict(net, X)
    if net.output == "identity":
        return {"eval_loss": float(0.5 * np.mean(np.sum((probs - targets(net, y)) ** 2, 1)))}
    return {"eval_loss": negative_log_likelihood(net.output, probs, y),
            "eval_error": error_rate(net.output, probs, y)}


def seed_streams(seed: int) -> list[np.random.SeedSequence]:
    """The three streams of ``ensemble-study train --seed SEED``.

    ``(split, init, masks)``: the train/test split of the dataset, the
    initial network and the training masks, ``SeedSequence(seed).spawn(3)``.
    ``load_dataset(name, rng=seed_streams(seed)[0])`` is the split that
    ``train --seed`` trains on and ``evaluate --dataset --seed`` scores.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return np.random.SeedSequence(int(seed)).spawn(3)
