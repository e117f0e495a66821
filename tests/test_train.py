"""Backpropagation through masked networks, the optimisers and the training loop."""

import numpy as np
import pytest

from ensemble_study import MLP, DropoutConfig
from ensemble_study.datasets import load_dataset
from ensemble_study.dropout import mask_multipliers, scaled_forward
from ensemble_study.network import HIDDEN_ACTIVATIONS, forward
from ensemble_study.train import (
    TrainConfig,
    error_rate,
    loss_and_gradients,
    negative_log_likelihood,
    targets,
    train,
)

# (output, loss) pairs the library accepts.
OUTPUT_LOSSES = [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"),
                 ("identity", "squared_error"), ("sigmoid", "squared_error"),
                 ("softmax", "squared_error")]


def reference_loss(net, X, T, masks, cfg, loss, weight_decay):
    """The objective one example at a time through network.forward (no backprop code)."""
    mult = mask_multipliers(net, cfg, masks)
    total = 0.0
    for i in range(X.shape[0]):
        z = forward(net, X[i:i + 1], {l: m[i] for l, m in mult.items()}, logits=True)[0]
        t = T[i]
        if loss == "cross_entropy":
            total += -np.sum(t * (z - np.log(np.sum(np.exp(z)))))
        elif loss == "binary_cross_entropy":
            p = 1 / (1 + np.exp(-z))
            total += -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p))
        else:
            y = {"identity": z, "sigmoid": 1 / (1 + np.exp(-z)),
                 "softmax": np.exp(z) / np.sum(np.exp(z))}[net.output]
            total += 0.5 * np.sum((y - t) ** 2)
    return total / X.shape[0] + 0.5 * weight_decay * sum(np.sum(W**2) for W in net.weights)


def with_param(net, which, l, idx, value):
    weights, biases = [np.array(W) for W in net.weights], [np.array(b) for b in net.biases]
    (weights if which == "W" else biases)[l][idx] = value
    return MLP(tuple(weights), tuple(biases), net.hidden, net.output)


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
@pytest.mark.parametrize("output,loss", OUTPUT_LOSSES)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_backprop_matches_central_differences(activation, output, loss, scheme):
    rng = np.random.default_rng(0)
    k = 1 if output == "sigmoid" else 3
    net = MLP.random((3, 4, 3, k), activation, output, rng=rng, bias_scale=0.5)
    cfg = DropoutConfig({0: 0.7, 1: 0.6, 2: 0.5}, scheme=scheme)
    n = 5
    X = rng.standard_normal((n, 3))
    T = rng.uniform(0, 1, (n, k))
    if output == "softmax":
        T /= T.sum(axis=1, keepdims=True)
    # One fixed mask per example; every example drops something somewhere.
    masks = rng.random((n, 3 + 4 + 3)) < 0.6
    wd = 0.03
    value, gW, gb = loss_and_gradients(net, X, T, loss=loss, weight_decay=wd,
                                       multipliers=mask_multipliers(net, cfg, masks))
    assert value == pytest.approx(reference_loss(net, X, T, masks, cfg, loss, wd), rel=1e-12)
    h = 1e-5
    analytic, numeric = [], []
    for which, arrays, grads in (("W", net.weights, gW), ("b", net.biases, gb)):
        for l, (P, G) in enumerate(zip(arrays, grads)):
            assert G.shape == P.shape
            for idx in np.ndindex(P.shape):
                plus = reference_loss(with_param(net, which, l, idx, P[idx] + h), X, T, masks,
                                      cfg, loss, wd)
                minus = reference_loss(with_param(net, which, l, idx, P[idx] - h), X, T, masks,
                                       cfg, loss, wd)
                numeric.append((plus - minus) / (2 * h))
                analytic.append(G[idx])
    analytic, numeric = np.array(analytic), np.array(numeric)
    rel = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
    assert rel < 1e-7


def test_dropped_unit_gets_no_gradient():
    # A unit dropped for every example neither feeds the output nor learns:
    # its outgoing weights get only the weight-decay term and its incoming
    # weights and bias get exactly zero.
    rng = np.random.default_rng(1)
    net = MLP.random((3, 4, 2), "tanh", "softmax", rng=rng)
    cfg = DropoutConfig(0.5, layers=[1], scheme="inverted")
    masks = np.ones((6, 4), dtype=bool)
    masks[:, 2] = False
    X, T = rng.standard_normal((6, 3)), np.eye(2)[rng.integers(0, 2, 6)]
    _, gW, gb = loss_and_gradients(net, X, T, loss="cross_entropy",
                                   multipliers=mask_multipliers(net, cfg, masks))
    assert np.all(gW[1][2] == 0)
    assert np.all(gW[0][:, 2] == 0) and gb[0][2] == 0
    assert np.any(gW[1][1] != 0)


@pytest.mark.parametrize("output,loss", [("sigmoid", "cross_entropy"),
                                         ("softmax", "binary_cross_entropy"),
                                         ("identity", "cross_entropy")])
def test_mismatched_loss_is_refused(output, loss):
    net = MLP.random((2, 3, 2), "relu", output, rng=0)
    with pytest.raises(ValueError, match="needs a"):
        train(net, None, np.zeros((4, 2)), np.zeros((4, 2)),
              train_cfg=TrainConfig(loss=loss, epochs=1), rng=0)


@pytest.mark.parametrize("kwargs,match", [
    ({"loss": "hinge"}, "loss must be"),
    ({"optimizer": "rmsprop"}, "optimizer must be"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"momentum": 1.0}, "momentum"),
    ({"beta2": -0.1}, "beta2"),
    ({"batch_size": 0}, "batch_size"),
    ({"epochs": 2.5}, "epochs"),
    ({"weight_decay": -1e-3}, "weight_decay"),
    ({"max_norm": 0.0}, "max_norm"),
])
def test_train_config_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_targets_one_hot_and_bad_labels():
    net = MLP.random((2, 3), [], "softmax", rng=0)
    np.testing.assert_array_equal(targets(net, np.array([2, 0])), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="class labels in 0..2"):
        targets(net, np.array([0, 3]))


def test_first_adam_step_is_a_signed_step():
    # With bias correction, Adam's first step is lr * g / (|g| + eps): about
    # lr * sign(g) for every parameter whose gradient is not tiny.
    rng = np.random.default_rng(2)
    net = MLP.random((3, 4, 1), "tanh", "identity", rng=rng)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal(8)
    lr = 1e-3
    trained, _ = train(net, None, X, y, rng=0, train_cfg=TrainConfig(
        learning_rate=lr, batch_size=8, epochs=1, optimizer="adam"))
    _, gW, _ = loss_and_gradients(net, X, y[:, None], loss="squared_error")
    for W0, W1, G in zip(net.weights, trained.weights, gW):
        np.testing.assert_allclose(W1, W0 - lr * G / (np.abs(G) + 1e-8), rtol=0, atol=1e-15)


def test_sgd_momentum_steps():
    # Two full-batch steps: v1 = -lr g0, v2 = mu v1 - lr g1.
    rng = np.random.default_rng(3)
    net = MLP.random((3, 4, 1), "tanh", "identity", rng=rng)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal(8)
    lr, mu = 0.1, 0.9
    trained, _ = train(net, None, X, y, rng=0, train_cfg=TrainConfig(
        optimizer="sgd", learning_rate=lr, momentum=mu, batch_size=8, epochs=2))
    _, g0, g0b = loss_and_gradients(net, X, y[:, None], loss="squared_error")
    step1 = MLP(tuple(W - lr * G for W, G in zip(net.weights, g0)),
                tuple(b - lr * G for b, G in zip(net.biases, g0b)), net.hidden, net.output)
    _, g1, _ = loss_and_gradients(step1, X, y[:, None], loss="squared_error")
    expected = [W - lr * G0 + mu * (-lr * G0) - lr * G1
                for W, G0, G1 in zip(net.weights, g0, g1)]
    for W, E in zip(trained.weights, expected):
        np.testing.assert_allclose(W, E, rtol=1e-12, atol=1e-14)


@pytest.fixture(scope="module")
def diamond():
    return load_dataset("diamond", rng=0, n_samples=600, noise=0.0)


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
def test_training_learns_the_diamond(diamond, scheme):
    # Bayes error is 0 (noise-free labels); a 2-16-16-1 ReLU net trained with
    # dropout for 60 epochs gets under 10% test error from every seed we
    # tried (typical: 2-5%). The loss must fall well below its start.
    net = MLP.random((2, 16, 16, 1), "relu", "sigmoid", rng=1)
    cfg = DropoutConfig(0.8, layers=[1, 2], scheme=scheme)
    trained, hist = train(net, cfg, diamond.X_train, diamond.y_train, rng=2,
                          train_cfg=TrainConfig(epochs=60, learning_rate=0.01),
                          eval_set=(diamond.X_test, diamond.y_test))
    assert list(hist.columns) == ["epoch", "train_loss", "eval_loss", "eval_error"]
    assert hist["train_loss"].iloc[-5:].mean() < 0.6 * hist["train_loss"].iloc[0]
    probs = scaled_forward(trained, cfg, diamond.X_test)
    assert error_rate("sigmoid", probs, diamond.y_test) < 0.10
    assert hist["eval_error"].iloc[-1] == error_rate("sigmoid", probs, diamond.y_test)


def test_training_is_reproducible_from_its_seed(diamond):
    net = MLP.random((2, 6, 1), "relu", "sigmoid", rng=0)
    cfg = DropoutConfig(0.5, layers=[1])
    tc = TrainConfig(epochs=3, optimizer="sgd", learning_rate=0.05)
    a, ha = train(net, cfg, diamond.X_train, diamond.y_train, train_cfg=tc, rng=7)
    b, hb = train(net, cfg, diamond.X_train, diamond.y_train, train_cfg=tc,
                  rng=np.random.default_rng(7))
    c, _ = train(net, cfg, diamond.X_train, diamond.y_train, train_cfg=tc, rng=8)
    for Wa, Wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(Wa, Wb)
    assert not np.array_equal(a.weights[0], c.weights[0])
    assert ha.equals(hb)


def test_max_norm_bounds_each_hidden_unit(diamond):
    net = MLP.random((2, 8, 8, 1), "relu", "sigmoid", rng=0)
    trained, _ = train(net, DropoutConfig(0.5, layers=[1, 2]), diamond.X_train,
                       diamond.y_train, rng=0,
                       train_cfg=TrainConfig(epochs=5, learning_rate=0.05, max_norm=0.7))
    for W in trained.weights[:-1]:
        norms = np.linalg.norm(W, axis=0)
        assert np.all(norms <= 0.7 * (1 + 1e-12))
        assert np.any(norms > 0.7 * (1 - 1e-9))  # the constraint was active
    # The output layer is not constrained: nothing clips it.
    assert np.linalg.norm(trained.weights[-1]) > 0.7


def test_regression_history_scores_the_scaled_pass():
    # Identity output: eval_loss is half the mean squared error of the
    # scheme's scaled pass, and there is no error column.
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((30, 3)), rng.standard_normal((30, 2))
    net = MLP.random((3, 5, 2), "tanh", "identity", rng=0)
    cfg = DropoutConfig(0.6, layers=[1], scheme="vanilla")
    trained, hist = train(net, cfg, X, y, rng=1, eval_set=(X[:10], y[:10]),
                          train_cfg=TrainConfig(epochs=2, batch_size=7))
    assert list(hist.columns) == ["epoch", "train_loss", "eval_loss"]
    pred = 0.6 * np.tanh(X[:10] @ trained.weights[0] + trained.biases[0]) @ trained.weights[1]
    pred += trained.biases[1]
    assert hist["eval_loss"].iloc[-1] == pytest.approx(0.5 * np.mean(np.sum((pred - y[:10]) ** 2,
                                                                             axis=1)))


def test_error_and_nll_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    y = np.array([0, 1])
    assert error_rate("softmax", probs, y) == 0.5
    assert negative_log_likelihood("softmax", probs, y) == pytest.approx(
        -(np.log(0.7) + np.log(0.3)) / 2)
    p = np.array([[0.9], [0.4], [0.0]])
    yb = np.array([1, 1, 0])
    assert error_rate("sigmoid", p, yb) == pytest.approx(1 / 3)
    assert negative_log_likelihood("sigmoid", p, yb) == pytest.approx(
        -(np.log(0.9) + np.log(0.4) + np.log(1.0)) / 3)
