"""DropoutConfig, the dropout step of each scheme, and the scaled pass."""

import dataclasses

import numpy as np
import pytest
from reference import assert_close, scaled_pass

from ensemble_study import MLP, DropoutConfig, scaled_forward
from ensemble_study.dropout import dropout_step, mask_multipliers
from ensemble_study.network import predict


@pytest.fixture(scope="module")
def X_cs231n():
    # The CS231n notes' check: inputs far from zero, so that a wrong scaling
    # moves the mean by much more than the tolerance.
    return 10 + np.random.default_rng(231).normal(size=(500, 500))


@pytest.mark.parametrize("keep_prob", [0.25, 0.4, 0.7])
@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
def test_dropout_step_train_mode_cs231n(X_cs231n, keep_prob, scheme):
    out, mask = dropout_step(X_cs231n, keep_prob, scheme, mode="train", rng=0)
    # 250,000 units: the zero fraction has standard deviation <= 0.001, so
    # 0.005 is a 5-sigma bound.
    assert abs(np.mean(out == 0) - (1 - keep_prob)) < 0.005
    np.testing.assert_array_equal(out == 0, ~mask)
    expected = X_cs231n * mask / keep_prob if scheme == "inverted" else X_cs231n * mask
    np.testing.assert_array_equal(out, expected)
    if scheme == "inverted":
        # The train-time mean matches the input mean (about 10); its standard
        # error is about 10 * sqrt((1 - q) / q / 250000) < 0.04.
        assert abs(out.mean() - X_cs231n.mean()) < 0.15
    else:
        assert abs(out.mean() - keep_prob * X_cs231n.mean()) < 0.15


@pytest.mark.parametrize("keep_prob", [0.25, 0.4, 0.7])
def test_dropout_step_test_mode(X_cs231n, keep_prob):
    out, mask = dropout_step(X_cs231n, keep_prob, "inverted", mode="test")
    assert mask is None
    np.testing.assert_array_equal(out, X_cs231n)  # the input, unchanged
    assert out is not X_cs231n
    out, mask = dropout_step(X_cs231n, keep_prob, "vanilla", mode="test")
    np.testing.assert_array_equal(out, keep_prob * X_cs231n)


def test_dropout_step_same_seed_same_mask():
    A = np.ones((20, 30))
    _, m1 = dropout_step(A, 0.5, "inverted", mode="train", rng=5)
    _, m2 = dropout_step(A, 0.5, "inverted", mode="train", rng=5)
    _, m3 = dropout_step(A, 0.5, "inverted", mode="train", rng=6)
    np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(m1, m3)


def test_inverted_scaled_pass_is_the_plain_network(seed):
    net = MLP.random((3, 5, 4, 2), "relu", "softmax", rng=seed)
    X = np.random.default_rng(seed).normal(size=(6, 3))
    cfg = DropoutConfig({0: 0.3, 1: 0.5, 2: 0.9}, scheme="inverted")
    np.testing.assert_array_equal(scaled_forward(net, cfg, X), predict(net, X))


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
@pytest.mark.parametrize("output", ["identity", "sigmoid", "softmax"])
def test_scaled_forward_matches_reference(scheme, output, seed):
    net = MLP.random((3, 4, 4, 2), ["tanh", "relu"], output, rng=seed)
    X = np.random.default_rng(seed).normal(size=(6, 3))
    cfg = DropoutConfig({0: 0.8, 2: 0.3}, scheme=scheme)
    assert_close(scaled_forward(net, cfg, X), scaled_pass(net, cfg, X))
    # Logits too: the output function undoes them.
    z = scaled_forward(net, cfg, X, logits=True)
    if output == "identity":
        assert_close(z, scaled_forward(net, cfg, X))


def test_vanilla_scaled_pass_by_hand():
    # 1-2-1 identity network, input dropped at q = 0.5: 0.5 * x * w.
    net = MLP.from_arrays([[[2.0, -1.0]], [[1.0], [3.0]]], [[0.0, 0.0], [1.0]], "identity")
    X = np.array([[4.0]])
    assert scaled_forward(net, DropoutConfig(0.5, [0], "vanilla"), X)[0, 0] == 1 + 0.5 * 4 * (2 - 3)
    assert scaled_forward(net, DropoutConfig(0.25, [1], "vanilla"), X)[0, 0] == 1 + 0.25 * 4 * (2 - 3)
    assert scaled_forward(net, DropoutConfig(0.25, [1], "inverted"), X)[0, 0] == 1 + 4 * (2 - 3)


def test_mask_multipliers_of_each_scheme():
    net = MLP.random((2, 3, 1), "relu", rng=0)
    masks = np.array([[1, 0, 1, 1, 0], [0, 1, 0, 0, 1]])
    cfg = DropoutConfig({0: 0.5, 1: 0.25}, scheme="inverted")
    m = mask_multipliers(net, cfg, masks)
    np.testing.assert_array_equal(m[0], [[2, 0], [0, 2]])
    np.testing.assert_array_equal(m[1], [[4, 4, 0], [0, 0, 4]])
    m = mask_multipliers(net, DropoutConfig({0: 0.5, 1: 0.25}, scheme="vanilla"), masks)
    np.testing.assert_array_equal(m[1], [[1, 1, 0], [0, 0, 1]])


def test_dropout_config_forms():
    cfg = DropoutConfig(0.5, layers=[2, 0])
    assert cfg.layers == (0, 2) and cfg.scheme == "inverted"
    assert cfg.layer_keep_prob(2) == 0.5
    per_layer = DropoutConfig({1: 0.8, 0: 0.5}, scheme="vanilla")
    assert per_layer.layers == (0, 1)
    assert per_layer.layer_keep_prob(0) == 0.5 and per_layer.layer_keep_prob(1) == 0.8
    assert DropoutConfig({0: 0.5, 1: 0.8}, layers=[1, 0]).layers == (0, 1)
    assert DropoutConfig(1, layers=1).layers == (1,)  # keep_prob = 1: no dropout
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.keep_prob = 0.9
    # Equal configs are interchangeable as dictionary keys.
    same = DropoutConfig({0: 0.5, 1: 0.8}, scheme="vanilla")
    assert same == per_layer and hash(same) == hash(per_layer)
    assert {per_layer: 1, cfg: 2}[same] == 1
    assert DropoutConfig({0: 0.5, 1: 0.9}, scheme="vanilla") != per_layer
