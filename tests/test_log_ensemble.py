"""expected_log_softmax (E[log y] over every subnetwork) against brute force."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import assert_close, brute_force

from ensemble_study import MLP, DropoutConfig, exact_ensemble, scaled_forward
from ensemble_study.log_ensemble import expected_log_softmax
from ensemble_study.network import HIDDEN_ACTIVATIONS

# (sizes, dropped layers with their keep_probs): the two-half path (last hidden
# layer dropped, with and without outer layers, odd and even widths, a layer
# at keep_prob 1) and the plain path (the last dropped layer is not L - 1).
CASES = [
    ((3, 5, 4), {1: 0.5}),
    ((3, 6, 4), {0: 0.7, 1: 0.4}),
    ((3, 3, 4, 3), {1: 0.6, 2: 0.3}),
    ((3, 3, 4, 3), {0: 0.8, 1: 1.0, 2: 0.5}),
    ((4, 3), {0: 0.5}),
    ((3, 4, 3), {0: 0.6}),
    ((3, 3, 3, 4), {0: 0.5, 1: 0.7}),
    ((3, 4, 3), {1: 1.0}),
]


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
@pytest.mark.parametrize("sizes,layers", CASES)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_expected_log_softmax_matches_brute_force(activation, sizes, layers, scheme):
    rng = np.random.default_rng(len(sizes) + sum(sizes))
    net = MLP.random(sizes, activation, "softmax", rng=rng, bias_scale=0.5)
    cfg = DropoutConfig(layers, scheme=scheme)
    X = 1.5 * rng.standard_normal((4, sizes[0]))
    ref = brute_force(net, cfg, X)
    for chunk_size in (None, 1, 3):
        assert_close(expected_log_softmax(net, cfg, X, chunk_size=chunk_size), ref.log_g)


def test_large_logit_spread_takes_the_direct_path():
    # Logits spread by thousands inside one half: D would underflow to 0.
    rng = np.random.default_rng(3)
    net = MLP.random((2, 6, 3), "relu", "softmax", rng=rng)
    net = MLP(net.weights[:1] + (net.weights[1] * 400.0,), net.biases, net.hidden, net.output)
    cfg = DropoutConfig({1: 0.5})
    X = 3 * rng.standard_normal((3, 2))
    ref = brute_force(net, cfg, X)
    assert np.ptp(ref.log_g) > 1000
    assert_close(expected_log_softmax(net, cfg, X), ref.log_g)


@st.composite
def networks(draw):
    n_hidden = draw(st.integers(1, 2))
    sizes = [draw(st.integers(1, 4)) for _ in range(n_hidden + 1)] + [draw(st.integers(2, 4))]
    layers = draw(st.sets(st.integers(0, n_hidden), min_size=1))
    keep = {l: draw(st.floats(0.05, 1.0)) for l in sorted(layers)}
    seed = draw(st.integers(0, 2**32 - 1))
    activation = draw(st.sampled_from(HIDDEN_ACTIVATIONS))
    scheme = draw(st.sampled_from(("vanilla", "inverted")))
    net = MLP.random(sizes, activation, "softmax", rng=seed, bias_scale=1.0)
    X = 2 * np.random.default_rng(seed).standard_normal((3, sizes[0]))
    return net, DropoutConfig(keep, scheme=scheme), X


@settings(max_examples=60, deadline=None)
@given(networks())
def test_expected_log_softmax_property(case):
    net, cfg, X = case
    e_log = expected_log_softmax(net, cfg, X)
    assert_close(e_log, brute_force(net, cfg, X).log_g, tol=1e-11)
    # The NWGM's normaliser sum_k exp(E[log y_k]) is at most 1 (each G_k <= E[y_k]):
    # log NWGM >= E[log y] for every class, at any depth.
    nwgm = exact_ensemble(net, cfg, X).geometric_mean
    assert np.all(np.log(nwgm) >= e_log - 1e-12)


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
def test_one_dropped_layer_scaled_pass_beats_expected_log(scheme):
    # Hinton et al.'s claim as a theorem: one dropped layer feeding a softmax,
    # the scaled pass's logits are E[z] and log-softmax is concave.
    rng = np.random.default_rng(5)
    net = MLP.random((4, 9, 5), "relu", "softmax", rng=rng, bias_scale=0.5)
    cfg = DropoutConfig({1: 0.5}, scheme=scheme)
    X = rng.standard_normal((20, 4))
    gap = np.log(scaled_forward(net, cfg, X)) - expected_log_softmax(net, cfg, X)
    assert np.all(gap >= -1e-12) and gap.max() > 1e-3


def test_refuses_other_outputs():
    net = MLP.random((2, 3, 1), "relu", "sigmoid", rng=0)
    with pytest.raises(ValueError, match="softmax output; got 'sigmoid'"):
        expected_log_softmax(net, DropoutConfig({1: 0.5}), np.zeros((1, 2)))
