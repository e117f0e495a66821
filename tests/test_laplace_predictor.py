"""The exact wide-sigmoid integral as a registered predictor (issue 21, item 2)."""

import numpy as np
import pytest

from ensemble_study import MLP, DropoutConfig, exact_ensemble
from ensemble_study.certified import certified_ensemble
from ensemble_study.evaluate import evaluate_network
from ensemble_study.predictors import PREDICTORS, Case, get, laplace_sigmoid


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("keep_prob", [0.3, 0.5, 0.9])
def test_matches_enumeration_to_1e_10(scheme, activation, keep_prob):
    # Depths 0..2 hidden layers before the dropped one; the last hidden layer (or the
    # input of a network without one) feeds the sigmoid output.
    for seed, sizes in enumerate([(12, 1), (5, 12, 1), (4, 6, 10, 1)]):
        base = MLP.random(sizes, activation, "sigmoid", rng=seed, bias_scale=0.5)
        net = MLP.from_arrays([2.0 * w for w in base.weights], base.biases, activation,
                              "sigmoid")  # far from linear: gaps of order 0.01-0.1
        last = len(sizes) - 2
        cfg = DropoutConfig(keep_prob, layers=[last], scheme=scheme)
        X = np.random.default_rng(seed + 10).normal(size=(7, sizes[0]))
        pred = get("laplace_sigmoid").predict(Case(net, cfg, X), 0, None).mean
        exact = exact_ensemble(net, cfg, X).mean
        assert pred.shape == exact.shape == (7, 1)
        np.testing.assert_allclose(pred, exact, rtol=1e-10, atol=1e-13)


def test_inside_the_certified_interval_at_width_2048():
    net = MLP.random((16, 2048, 1), "relu", "sigmoid", rng=4)
    cfg = DropoutConfig(0.5, layers=[1])
    X = np.random.default_rng(5).normal(size=(10, 16))
    exact = laplace_sigmoid(net, cfg, X)[:, 0]
    r = certified_ensemble(net, cfg, X, 0, n_pairs=500)
    err = np.abs(r.mean[:, 0] - exact)
    # 10 nominal-95% intervals: at least 8 cover (P >= 0.98 at the nominal rate), none
    # beyond twice the half-width.
    assert (err <= r.mean_half_width[:, 0]).sum() >= 8
    assert np.all(err <= 2 * r.mean_half_width[:, 0])


@pytest.mark.parametrize("sizes, output, layers, match", [
    ((4, 6, 1), "sigmoid", [0, 1], r"drops layers \[0, 1\]"),
    ((4, 6, 5, 1), "sigmoid", [1], r"exactly one layer, the one feeding the output \(layer 2\)"),
    ((4, 6, 3), "softmax", [1], r"one sigmoid output unit; this network has 3 softmax"),
    ((4, 6, 2), "sigmoid", [1], r"one sigmoid output unit; this network has 2 sigmoid"),
])
def test_other_shapes_are_refused_clearly_and_skipped_by_the_callers(sizes, output, layers,
                                                                      match):
    net = MLP.random(sizes, "tanh", output, rng=0)
    cfg = DropoutConfig(0.5, layers=layers)
    X = np.ones((2, sizes[0]))
    pred = PREDICTORS["laplace_sigmoid"]
    assert not pred.applies_to(net, cfg)
    with pytest.raises(ValueError, match="laplace_sigmoid predictor does not apply: .*" + match):
        laplace_sigmoid(net, cfg, X)
    df = evaluate_network(net, cfg, X, rng=0, ks=(2,), n_draws=1)
    assert "laplace_sigmoid" not in set(df.predictor)


def test_evaluate_scores_it_where_it_applies():
    net = MLP.random((3, 6, 1), "tanh", "sigmoid", rng=5)
    cfg = DropoutConfig(0.5, layers=[1])
    X = np.random.default_rng(6).normal(size=(8, 3))
    df = evaluate_network(net, cfg, X, ks=(2,), n_draws=1)
    row = df[df.predictor == "laplace_sigmoid"].iloc[0]
    assert row.max_abs_gap < 1e-10  # against the exact (enumerated) mean
    assert PREDICTORS["laplace_sigmoid"].applies_to(net, cfg)
