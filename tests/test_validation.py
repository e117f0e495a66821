"""Every bad input raises ValueError naming the parameter, what is allowed and what came."""

import numpy as np
import pytest

from ensemble_study import (
    MLP,
    DropoutConfig,
    convert_scheme,
    exact_ensemble,
    sample_ensemble,
    scaled_forward,
    subnetwork_outputs,
)
from ensemble_study.dropout import dropout_step
from ensemble_study.masks import enumerate_masks, sample_masks

NET = MLP.random((3, 4, 2), "relu", "softmax", rng=0)  # L = 2
CFG = DropoutConfig(0.5, [0, 1])
X = np.zeros((2, 3))


@pytest.mark.parametrize("keep_prob, match", [
    (0.0, r"keep_prob must be in \(0, 1\].*got 0\.0"),
    (-0.2, r"keep_prob must be in \(0, 1\].*got -0\.2"),
    (1.5, r"keep_prob must be in \(0, 1\].*got 1\.5"),
    (float("nan"), r"keep_prob must be in \(0, 1\].*got nan"),
    ("0.5", r"keep_prob must be a number in \(0, 1\]; got '0\.5'"),
    (True, r"keep_prob must be a number in \(0, 1\]; got True"),
    ({0: 0.5, 1: 0.0}, r"keep_prob\[1\] must be in \(0, 1\].*got 0\.0"),
    ({}, r"keep_prob must map at least one layer"),
])
def test_bad_keep_prob(keep_prob, match):
    with pytest.raises(ValueError, match=match):
        DropoutConfig(keep_prob, layers=None if isinstance(keep_prob, dict) else [0])


@pytest.mark.parametrize("keep_prob", [0.0, 1.5])
def test_bad_keep_prob_in_dropout_step(keep_prob):
    with pytest.raises(ValueError, match=r"keep_prob must be in \(0, 1\]"):
        dropout_step(np.ones(3), keep_prob, "inverted", mode="train", rng=0)


@pytest.mark.parametrize("call", [
    lambda s: DropoutConfig(0.5, [0], scheme=s),
    lambda s: dropout_step(np.ones(3), 0.5, s, mode="test"),
    lambda s: convert_scheme(NET, CFG, s),
])
@pytest.mark.parametrize("scheme", ["standard", "Inverted", None])
def test_bad_scheme(call, scheme):
    with pytest.raises(ValueError, match=rf"scheme must be one of \('vanilla', 'inverted'\); "
                                         rf"got {scheme!r}"):
        call(scheme)


def test_bad_mode():
    with pytest.raises(ValueError, match=r"mode must be one of \('train', 'test'\); got 'eval'"):
        dropout_step(np.ones(3), 0.5, "inverted", mode="eval", rng=0)


@pytest.mark.parametrize("hidden", ["gelu", ["relu", "softmax"]])
def test_bad_hidden_activation(hidden):
    bad = hidden if isinstance(hidden, str) else hidden[1]
    with pytest.raises(ValueError, match=rf"hidden activation must be one of .*'relu'.*got '{bad}'"):
        MLP.random((2, 3, 3, 1), hidden, rng=0)


def test_wrong_number_of_hidden_names():
    with pytest.raises(ValueError, match=r"hidden must be one .* per hidden layer \(2\); got 1"):
        MLP.random((2, 3, 3, 1), ["relu"], rng=0)


@pytest.mark.parametrize("output", ["tanh", "relu", "linear"])
def test_bad_output(output):
    with pytest.raises(ValueError, match=rf"output must be one of .*'softmax'.*got '{output}'"):
        MLP.random((2, 3, 1), "relu", output, rng=0)


LAYER_CALLS = [
    lambda cfg: exact_ensemble(NET, cfg, X),
    lambda cfg: sample_ensemble(NET, cfg, X, 4, rng=0),
    lambda cfg: scaled_forward(NET, cfg, X),
    lambda cfg: subnetwork_outputs(NET, cfg, X, np.ones((1, 3 + 4 + 2))),
    lambda cfg: convert_scheme(NET, cfg, "vanilla"),
]


@pytest.mark.parametrize("call", LAYER_CALLS)
@pytest.mark.parametrize("layer", [2, 5])  # 2 is the output of NET
def test_layer_out_of_range_or_the_output(call, layer):
    cfg = DropoutConfig(0.5, [0, layer])
    with pytest.raises(ValueError, match=rf"layers: cannot drop layer {layer} .*allowed 0\.\.1"):
        call(cfg)


@pytest.mark.parametrize("keep_prob, layers, match", [
    (0.5, [-1], r"layers must be non-negative activation indices.*got -1"),
    (0.5, [1.0], r"layers must be non-negative activation indices.*got 1\.0"),
    (0.5, [], r"layers must name at least one layer"),
    (0.5, [1, 1], r"layers must not repeat an index; got \(1, 1\)"),
    (0.5, None, r"layers is required when keep_prob is a single number"),
    ({0: 0.5, 1: 0.5}, [0], r"layers must equal the keys of keep_prob.*\(0,\).*\(0, 1\)"),
])
def test_bad_layers(keep_prob, layers, match):
    with pytest.raises(ValueError, match=match):
        DropoutConfig(keep_prob, layers)


@pytest.mark.parametrize("weights, biases, match", [
    ([np.ones((3, 4)), np.ones((5, 2))], [np.ones(4), np.ones(2)],
     r"layer shapes do not chain: weights\[0\] has shape \(3, 4\) but weights\[1\] has shape \(5, 2\)"),
    ([np.ones((3, 4)), np.ones((4, 2))], [np.ones(4), np.ones(3)],
     r"biases\[1\] must have shape \(2,\).*got shape \(3,\)"),
    ([np.ones(3)], [np.ones(1)], r"weights\[0\] must be 2-D.*got shape \(3,\)"),
    ([np.ones((3, 4))], [np.ones(4), np.ones(1)], r"same number of layers; got 1 .* and 2"),
    ([], [], r"weights must hold at least one layer"),
    ([np.full((2, 1), np.nan)], [np.ones(1)], r"weights\[0\] and biases\[0\] must be finite"),
])
def test_bad_weights(weights, biases, match):
    with pytest.raises(ValueError, match=match):
        MLP.from_arrays(weights, biases, [] if len(weights) < 2 else "relu")


@pytest.mark.parametrize("sizes", [(3,), (3, 0, 1)])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match=r"sizes must list at least two positive layer widths"):
        MLP.random(sizes, [], rng=0)


X_CALLS = [
    lambda x: exact_ensemble(NET, CFG, x),
    lambda x: sample_ensemble(NET, CFG, x, 4, rng=0),
    lambda x: scaled_forward(NET, CFG, x),
    lambda x: subnetwork_outputs(NET, CFG, x, np.ones((1, 7))),
]


@pytest.mark.parametrize("call", X_CALLS)
@pytest.mark.parametrize("bad_X, match", [
    (np.zeros((2, 4)), r"X must have 3 features .*got shape \(2, 4\)"),
    (np.zeros(3), r"X must be 2-D with shape \(n_examples, 3\); got .*1 dimension"),
    (np.zeros((1, 2, 3)), r"X must be 2-D .*3 dimension"),
    (np.zeros((0, 3)), r"X must hold at least one example"),
    (np.array([[0.0, np.nan, 1.0]]), r"X must contain only finite values"),
    (np.array([[0.0, np.inf, 1.0]]), r"X must contain only finite values"),
    ([["a", "b", "c"]], r"X must be a numeric array"),
])
def test_bad_X(call, bad_X, match):
    with pytest.raises(ValueError, match=match):
        call(bad_X)


@pytest.mark.parametrize("n_samples", [0, -3, 2.5, True])
def test_bad_n_samples(n_samples):
    with pytest.raises(ValueError, match=rf"n_samples must be an integer >= 1; got {n_samples!r}"):
        sample_ensemble(NET, CFG, X, n_samples, rng=0)


@pytest.mark.parametrize("call", [
    lambda rng: sample_ensemble(NET, CFG, X, 4, rng),
    lambda rng: MLP.random((2, 1), [], rng=rng),
    lambda rng: sample_masks([0.5], 3, rng),
])
def test_missing_rng(call):
    with pytest.raises(ValueError, match=r"rng is required: pass an int seed or a numpy Generator"):
        call(None)


@pytest.mark.parametrize("rng", [0.5, "0", np.random.RandomState(0)])
def test_bad_rng(rng):
    with pytest.raises(ValueError, match=r"rng must be an int seed, a numpy SeedSequence or Generator"):
        sample_ensemble(NET, CFG, X, 4, rng)


def test_missing_rng_in_train_mode():
    with pytest.raises(ValueError, match=r"rng is required in train mode"):
        dropout_step(np.ones(3), 0.5, "inverted", mode="train")


@pytest.mark.parametrize("chunk_size", [0, -1, 1.5])
def test_bad_chunk_size(chunk_size):
    with pytest.raises(ValueError, match=rf"chunk_size must be an integer >= 1; got {chunk_size!r}"):
        exact_ensemble(NET, CFG, X, chunk_size=chunk_size)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        next(enumerate_masks([0.5], chunk_size))


@pytest.mark.parametrize("masks, match", [
    (np.ones((2, 6)), r"masks must have shape \(n_masks, 7\).*got shape \(2, 6\)"),
    (np.full((1, 7), 0.5), r"masks must contain only 0 and 1"),
])
def test_bad_masks(masks, match):
    with pytest.raises(ValueError, match=match):
        subnetwork_outputs(NET, CFG, X, masks)
