"""MLP: construction, forward pass, initialisation."""

import dataclasses
import math
import warnings

import numpy as np
import pytest

from ensemble_study import MLP
from ensemble_study.network import forward, predict, sigmoid, softmax

HAND = {
    "identity": lambda z: z,
    "relu": lambda z: max(z, 0.0),
    "tanh": math.tanh,
    "sigmoid": lambda z: 1 / (1 + math.exp(-z)),
}


@pytest.mark.parametrize("hidden", sorted(HAND))
def test_forward_by_hand(hidden):
    # 2-2-1: h = g(x W0 + b0), y = h W1 + b1, computed with scalars.
    W0, b0 = [[1.0, -2.0], [0.5, 1.0]], [0.1, -0.3]
    W1, b1 = [[2.0], [-1.0]], [0.25]
    net = MLP.from_arrays([W0, W1], [b0, b1], hidden, "identity")
    X = [[1.0, 2.0], [-1.5, 0.5]]
    for x, y in zip(X, predict(net, X)):
        h = [HAND[hidden](x[0] * W0[0][j] + x[1] * W0[1][j] + b0[j]) for j in range(2)]
        assert math.isclose(y[0], h[0] * W1[0][0] + h[1] * W1[1][0] + b1[0], rel_tol=1e-14)


def test_outputs_by_hand():
    W, b = [[1.0, 0.0, -1.0]], [0.0, 0.5, 0.0]
    X = np.array([[2.0]])
    y = predict(MLP.from_arrays([W], [b], [], "softmax"), X)[0]
    e = [math.exp(2.0), math.exp(0.5), math.exp(-2.0)]
    np.testing.assert_allclose(y, [v / sum(e) for v in e], rtol=1e-14)
    y = predict(MLP.from_arrays([W], [b], [], "sigmoid"), X)[0]
    np.testing.assert_allclose(y, [1 / (1 + math.exp(-z)) for z in (2.0, 0.5, -2.0)], rtol=1e-14)


def test_output_functions_are_stable_in_the_tails():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow
        np.testing.assert_array_equal(sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])
        np.testing.assert_allclose(softmax(np.array([[1000.0, 1000.0, -1000.0]])),
                                   [[0.5, 0.5, 0.0]], rtol=1e-15)
    assert sigmoid(np.array([-40.0]))[0] > 0  # no 1 - 1 cancellation


def test_properties_and_repr():
    net = MLP.random((4, 8, 3, 2), ["relu", "tanh"], "softmax", rng=0)
    assert net.sizes == (4, 8, 3, 2) and net.n_layers == 3
    assert net.hidden == ("relu", "tanh")
    assert [w.shape for w in net.weights] == [(4, 8), (8, 3), (3, 2)]
    assert [b.shape for b in net.biases] == [(8,), (3,), (2,)]
    r = repr(net)
    assert "4-8-3-2" in r and "relu" in r and "softmax" in r
    flat = MLP.random((5, 1), [], "sigmoid", rng=0)
    assert flat.n_layers == 1 and flat.hidden == () and flat.sizes == (5, 1)
    assert predict(flat, np.ones((2, 5))).shape == (2, 1)


def test_network_is_immutable():
    W = np.array([[1.0, 2.0]])
    net = MLP.from_arrays([W, [[1.0], [1.0]]], [[0.0, 0.0], [0.0]])
    W[0, 0] = 100.0  # the network holds a copy
    assert net.weights[0][0, 0] == 1.0
    with pytest.raises(ValueError):
        net.weights[0][0, 0] = 5.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        net.output = "sigmoid"


def test_random_is_reproducible():
    a = MLP.random((3, 5, 2), "tanh", rng=11)
    b = MLP.random((3, 5, 2), "tanh", rng=np.random.default_rng(11))
    c = MLP.random((3, 5, 2), "tanh", rng=12)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_random_initialisation_scales():
    # He for a layer feeding a ReLU, Glorot otherwise. 60,000+ weights per
    # layer: the sample variance is within 3% of its target (about 5 sigma).
    net = MLP.random((300, 200, 300), "relu", rng=0)
    np.testing.assert_allclose(net.weights[0].var(), 2 / 300, rtol=0.03)
    np.testing.assert_allclose(net.weights[1].var(), 2 / (200 + 300), rtol=0.03)
    net = MLP.random((300, 200, 300), "tanh", rng=0)
    np.testing.assert_allclose(net.weights[0].var(), 2 / (300 + 200), rtol=0.03)
    assert abs(net.weights[0].mean()) < 5 * math.sqrt(2 / 500 / 60_000)
    assert np.all(net.biases[0] != 0)


def test_forward_evaluates_many_subnetworks_at_once():
    net = MLP.random((3, 4, 2), "relu", rng=1)
    X = np.random.default_rng(1).normal(size=(5, 3))
    m = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 2.0, 1.0, 0.5]])
    out = forward(net, X, {1: m})
    assert out.shape == (2, 5, 2)
    for row, y in zip(m, out):
        np.testing.assert_allclose(y, forward(net, X, {1: row}), rtol=1e-14)
