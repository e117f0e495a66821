"""exact_ensemble, sample_ensemble and subnetwork_outputs against brute force."""

import numpy as np
import pytest
from reference import all_masks, assert_close, brute_force

from ensemble_study import (
    MLP,
    DropoutConfig,
    exact_ensemble,
    sample_ensemble,
    subnetwork_outputs,
)
from ensemble_study.network import HIDDEN_ACTIVATIONS, OUTPUTS, predict

N_OUT = {"identity": 2, "sigmoid": 2, "softmax": 3}


def _X(net, seed, n=5):
    return 1.5 * np.random.default_rng(seed + 100).normal(size=(n, net.sizes[0]))


def _check_against_reference(net, cfg, X, **kwargs):
    res = exact_ensemble(net, cfg, X, **kwargs)
    ref = brute_force(net, cfg, X)
    assert_close(res.mean, ref.mean)
    assert_close(res.variance, ref.variance)
    if net.output == "identity":
        assert res.geometric_mean is None
    else:
        assert_close(res.geometric_mean, ref.geometric_mean)
    assert res.n_subnetworks == ref.n_subnetworks
    assert res.mean.shape == res.variance.shape == (X.shape[0], net.sizes[-1])
    return res, ref


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_exact_matches_brute_force_each_activation(hidden, output, scheme, seed):
    # Input and both hidden layers dropped, each with its own keep_prob: 8 units.
    net = MLP.random((3, 3, 2, N_OUT[output]), hidden, output, rng=seed)
    cfg = DropoutConfig({0: 0.8, 1: 0.5, 2: 0.3}, scheme=scheme)
    _check_against_reference(net, cfg, _X(net, seed))


# (sizes without the output width, hidden activations, keep_prob, layers)
DEPTH_CASES = {
    0: ((4,), [], {0: 0.6}, None),
    1: ((3, 4), ["tanh"], {0: 1.0, 1: 0.4}, None),  # a layer with keep_prob = 1
    2: ((2, 3, 3), ["relu", "sigmoid"], 0.7, [1, 2]),
    3: ((2, 2, 3, 2), ["tanh", "relu", "sigmoid"], {0: 0.9, 1: 1.0, 2: 0.5, 3: 0.25}, None),
}


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("depth", sorted(DEPTH_CASES))
def test_exact_matches_brute_force_each_depth(depth, output, scheme, seed):
    sizes, hidden, keep_prob, layers = DEPTH_CASES[depth]
    net = MLP.random(sizes + (N_OUT[output],), hidden, output, rng=seed)
    cfg = DropoutConfig(keep_prob, layers, scheme)
    _check_against_reference(net, cfg, _X(net, seed))


def test_n_subnetworks_counts_only_droppable_units():
    net = MLP.random((3, 4, 2), "relu", rng=0)
    # 3 input units at keep_prob 1 cannot be dropped; 4 hidden units can.
    cfg = DropoutConfig({0: 1.0, 1: 0.5})
    assert exact_ensemble(net, cfg, np.ones((1, 3))).n_subnetworks == 2**4


def test_keep_prob_one_everywhere_is_the_plain_network(seed):
    net = MLP.random((3, 4, 4, 2), "tanh", "softmax", rng=seed)
    X = _X(net, seed)
    for scheme in ("vanilla", "inverted"):
        res = exact_ensemble(net, DropoutConfig(1.0, [0, 1, 2], scheme), X)
        assert res.n_subnetworks == 1
        assert_close(res.mean, predict(net, X))
        assert_close(res.geometric_mean, predict(net, X))
        assert np.all(res.variance == 0)


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
def test_subnetwork_outputs_match_reference_per_mask(scheme, seed):
    # Joint masks are ordered by layer, then by unit.
    net = MLP.random((2, 3, 2, 3), ["relu", "tanh"], "softmax", rng=seed)
    cfg = DropoutConfig({0: 0.5, 2: 0.7}, scheme=scheme)
    X = _X(net, seed)
    masks, expected = [], []
    ref = brute_force(net, cfg, X)
    for (_, layer_masks), y in zip(all_masks(net, cfg), ref.outputs):
        masks.append(np.concatenate([layer_masks[l] for l in cfg.layers]))
        expected.append(y)
    out = subnetwork_outputs(net, cfg, X, np.array(masks))
    assert out.shape == (2**4, X.shape[0], 3)
    assert_close(out, np.array(expected))
    # Boolean masks and a single 1-D mask are accepted too.
    assert_close(subnetwork_outputs(net, cfg, X, np.array(masks, dtype=bool)), out)
    assert_close(subnetwork_outputs(net, cfg, X, masks[5])[0], out[5])


@pytest.mark.parametrize("output", OUTPUTS)
def test_chunk_size_invariance(output, seed):
    net = MLP.random((3, 3, 2, N_OUT[output]), ["tanh", "relu"], output, rng=seed)
    cfg = DropoutConfig({0: 0.6, 1: 0.3, 2: 0.8}, scheme="vanilla")  # 2**8 subnetworks
    X = _X(net, seed)
    ref = brute_force(net, cfg, X)
    first = None
    for chunk_size in [1, 7] + [2**k for k in range(1, 9)] + [1000]:
        res = exact_ensemble(net, cfg, X, chunk_size=chunk_size)
        assert_close(res.mean, ref.mean)
        assert_close(res.variance, ref.variance)
        if first is None:
            first = res
            continue
        assert_close(res.mean, first.mean)
        assert_close(res.variance, first.variance)
        if output != "identity":
            assert_close(res.geometric_mean, ref.geometric_mean)
            assert_close(res.geometric_mean, first.geometric_mean)


def test_progress_bar_does_not_change_the_result(capsys):
    net = MLP.random((2, 3, 1), "relu", "sigmoid", rng=0)
    cfg = DropoutConfig(0.5, [0, 1])
    X = _X(net, 0)
    quiet = exact_ensemble(net, cfg, X)
    loud = exact_ensemble(net, cfg, X, progress=True, chunk_size=4)
    np.testing.assert_array_equal(quiet.n_subnetworks, loud.n_subnetworks)
    assert_close(loud.mean, quiet.mean)


def test_too_many_subnetworks_names_the_count_and_the_alternative():
    # The Warde-Farley et al. setup: 2-10-10-1, both hidden layers dropped.
    net = MLP.random((2, 10, 10, 1), "relu", "sigmoid", rng=0)
    cfg = DropoutConfig(0.5, [1, 2])
    with pytest.raises(ValueError, match=r"(?s)1,048,576.*max_subnetworks.*sample_ensemble"):
        exact_ensemble(net, cfg, np.zeros((1, 2)), max_subnetworks=2**19)
    # Past the default limit it refuses at once instead of running for hours.
    big = MLP.random((30, 1), [], "sigmoid", rng=0)
    with pytest.raises(ValueError, match="sample_ensemble"):
        exact_ensemble(big, DropoutConfig(0.5, [0]), np.zeros((1, 30)))


# ---------------------------------------------------------------- Monte Carlo

def _mc_case(seed):
    # tanh units and keep_prob 0.5 keep the output's distribution free of
    # point masses and heavy tails, so the CLT-based bounds below are sound.
    net = MLP.random((3, 6, 3), "tanh", "softmax", rng=seed)
    cfg = DropoutConfig(0.5, [0, 1])  # 2**9 subnetworks
    return net, cfg, _X(net, seed, n=4)


def test_sample_ensemble_converges_to_the_exact_mean(seed):
    net, cfg, X = _mc_case(seed)
    exact = exact_ensemble(net, cfg, X)
    for K in (2**8, 2**14):
        res = sample_ensemble(net, cfg, X, K, rng=seed)
        assert res.n_subnetworks == K
        # Each of the 12 entries is a mean of K iid draws with the exact
        # variance: a 5-sigma bound fails with probability < 1e-5, and it
        # shrinks 8-fold from K = 2**8 to 2**14.
        sigma = np.sqrt(exact.variance / K)
        assert np.all(np.abs(res.mean - exact.mean) <= 5 * sigma)
    # At K = 2**14 the sample spread is within 10% of the exact one (the
    # relative error of a sample variance is about sqrt(kurtosis / K) < 3%).
    np.testing.assert_allclose(res.variance, exact.variance, rtol=0.1)
    np.testing.assert_allclose(res.stderr, sigma, rtol=0.1)
    # The NWGM is the softmax of the mean logits (exact: over all masks;
    # sampled: over the K members). Each mean logit is within 5 sigma of the
    # exact one, sigma from the logits' exact variance; the softmax's
    # Jacobian has 2-norm <= 1/2, which bounds the change of each output.
    logits = MLP.from_arrays(net.weights, net.biases, net.hidden, "identity")
    z_sigma = np.sqrt(exact_ensemble(logits, cfg, X).variance / K)
    bound = 0.5 * np.linalg.norm(5 * z_sigma, axis=1, keepdims=True)
    assert np.all(np.abs(res.geometric_mean - exact.geometric_mean) <= bound)


def test_sample_ensemble_same_seed_same_result_different_seed_differs():
    net, cfg, X = _mc_case(0)
    a = sample_ensemble(net, cfg, X, 64, rng=7)
    b = sample_ensemble(net, cfg, X, 64, rng=7)
    c = sample_ensemble(net, cfg, X, 64, rng=8)
    for field in ("mean", "variance", "stderr", "geometric_mean"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.mean, c.mean)


def test_sample_ensemble_of_one_member():
    net, cfg, X = _mc_case(1)
    res = sample_ensemble(net, cfg, X, 1, rng=3)
    assert res.n_subnetworks == 1
    assert np.all(np.isnan(res.stderr))
    assert np.all(res.variance == 0)
    # One member: its output is the output of one of the exact subnetworks.
    outputs = np.array(brute_force(net, cfg, X).outputs)
    assert np.min(np.abs(outputs - res.mean).max(axis=(1, 2))) < 1e-12
