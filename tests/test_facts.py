"""The mathematical facts of DESIGN.md (1-8), one test each.

Fact 9 (the exact shortcuts) is tested with the code that implements them.
"""

import itertools
import math

import numpy as np
import pytest
from reference import all_masks, assert_close, brute_force

from ensemble_study import (
    MLP,
    DropoutConfig,
    convert_scheme,
    exact_ensemble,
    sample_ensemble,
    scaled_forward,
    subnetwork_outputs,
)
from ensemble_study.masks import enumerate_masks, mask_log_probs

SCHEMES = ("vanilla", "inverted")


def _X(n_features, seed, n=5):
    return 1.5 * np.random.default_rng(seed + 100).normal(size=(n, n_features))


# ------------------------------------------------------------------ fact 1

@pytest.mark.parametrize("keep_probs", [
    [0.5] * 10,
    [0.9, 0.1, 0.3, 0.7, 0.25, 0.6, 0.05],
    [1.0, 0.4, 1.0, 0.8, 0.5],  # units that cannot be dropped
])
def test_fact1_mask_probabilities_sum_to_one(keep_probs):
    q = np.array(keep_probs)
    total, seen = 0.0, set()
    for masks, log_probs in enumerate_masks(q, chunk_size=7):
        assert masks.shape[0] <= 7
        total += np.exp(log_probs).sum()
        # Each mask's log-probability is the sum over units of log q or log(1 - q).
        for m, lp in zip(masks, log_probs):
            expected = math.prod(qi if keep else 1 - qi for qi, keep in zip(keep_probs, m))
            assert math.isclose(math.exp(lp), expected, rel_tol=1e-12)
            seen.add(tuple(int(v) for v in m))
    assert abs(total - 1.0) < 1e-12
    # Every mask of non-zero probability is listed, exactly once.
    possible = {m for m in itertools.product((0, 1), repeat=q.size)
                if all(keep or qi < 1 for qi, keep in zip(keep_probs, m))}
    assert seen == possible
    # mask_log_probs over all 2**n masks: those that drop a keep_prob = 1 unit
    # have probability 0 and the rest still sum to 1.
    all_ = np.array(list(itertools.product((0, 1), repeat=q.size)))
    assert abs(np.exp(mask_log_probs(all_, q)).sum() - 1.0) < 1e-12


# ------------------------------------------------------------------ fact 2

@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("sizes, keep_prob", [
    ((4, 2), {0: 0.3}),
    ((3, 4, 2), {0: 0.6, 1: 0.2}),
    ((2, 3, 3, 1), {0: 0.5, 1: 0.7, 2: 0.4}),
    ((2, 2, 2, 2, 2), {1: 0.5, 3: 0.35}),
])
def test_fact2_linear_network_ensemble_mean_is_the_scaled_pass(sizes, keep_prob, scheme, seed):
    net = MLP.random(sizes, "identity", "identity", rng=seed)
    cfg = DropoutConfig(keep_prob, scheme=scheme)
    X = _X(sizes[0], seed)
    res = exact_ensemble(net, cfg, X)
    assert_close(res.mean, scaled_forward(net, cfg, X))
    assert np.all(res.variance > 0)  # the subnetworks do differ


# ------------------------------------------------------------------ fact 3

@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("output, n_out", [("sigmoid", 2), ("softmax", 3)])
@pytest.mark.parametrize("sizes, hidden", [
    ((6,), []),  # no hidden layer: dropout on the input
    ((3, 6), ["relu"]),
    ((3, 3, 5), ["tanh", "relu"]),
    ((2, 2, 3, 4), ["sigmoid", "relu", "tanh"]),
])
def test_fact3_nwgm_is_the_scaled_pass_when_only_the_last_layer_drops(
    sizes, hidden, output, n_out, scheme, seed
):
    net = MLP.random(sizes + (n_out,), hidden, output, rng=seed)
    cfg = DropoutConfig(0.4, [len(sizes) - 1], scheme)
    X = _X(sizes[0], seed)
    res = exact_ensemble(net, cfg, X)
    single = scaled_forward(net, cfg, X)
    assert_close(res.geometric_mean, single)
    # The NWGM by its definition (the reference's E[log y], normalised).
    assert_close(brute_force(net, cfg, X).geometric_mean, single)
    # The arithmetic mean is a different average.
    assert np.max(np.abs(res.mean - single)) > 1e-6


def test_fact3_needs_the_last_layer_only():
    # Dropping an earlier layer of a non-linear network breaks the identity.
    net = MLP.random((3, 4, 4, 3), "tanh", "softmax", rng=0)
    cfg = DropoutConfig(0.4, [1])
    X = _X(3, 0)
    gap = exact_ensemble(net, cfg, X).geometric_mean - scaled_forward(net, cfg, X)
    assert np.max(np.abs(gap)) > 1e-6


# ------------------------------------------------------------------ fact 4

@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("side", ["below", "above", "both"])
def test_fact4_ky_fan_inequality(side, scheme, seed):
    # Sigmoid hidden units are positive whatever the masks, so an output
    # layer with weights and bias all <= 0 puts every subnetwork's logit at
    # <= 0 (output <= 0.5), and all >= 0 puts it at >= 0.
    net = MLP.random((3, 4, 1), "sigmoid", "sigmoid", rng=seed)
    W, b = net.weights[1], net.biases[1]
    sign = {"below": -1.0, "above": 1.0, "both": None}[side]
    if sign is not None:
        W, b = sign * np.abs(W), sign * np.abs(b)
    net = MLP.from_arrays([net.weights[0], W], [net.biases[0], b], "sigmoid", "sigmoid")
    cfg = DropoutConfig({0: 0.7, 1: 0.4}, scheme=scheme)
    X = _X(3, seed)
    ref = brute_force(net, cfg, X)
    res = exact_ensemble(net, cfg, X)
    outputs = np.array(ref.outputs)
    slack = 1e-15  # rounding only: both sides are O(1)
    if side == "below":
        assert np.all(outputs <= 0.5)
        assert np.all(res.geometric_mean <= res.mean + slack)
    elif side == "above":
        assert np.all(outputs >= 0.5)
        assert np.all(res.geometric_mean >= res.mean - slack)
    # Away from equality: the subnetworks disagree, so the means differ.
    assert np.max(np.abs(res.geometric_mean - res.mean)) > 1e-9
    # The plain geometric mean G = exp(E[log y]) never exceeds the mean.
    assert np.all(np.exp(ref.log_g) <= res.mean + slack)


# ------------------------------------------------------------------ fact 5

def _converted_weights_expected(net, cfg, to):
    out = []
    for l, W in enumerate(net.weights):
        if l in cfg.layers:
            q = cfg.layer_keep_prob(l)
            W = W / q if to == "vanilla" else W * q
        out.append(W)
    return out


@pytest.mark.parametrize("source, target", [("inverted", "vanilla"), ("vanilla", "inverted")])
def test_fact5_vanilla_inverted_equivalence(source, target, seed):
    net = MLP.random((3, 3, 2, 3), ["relu", "tanh"], "softmax", rng=seed)
    cfg = DropoutConfig({0: 0.8, 1: 1.0, 2: 0.3}, scheme=source)
    X = _X(3, seed)
    net2, cfg2 = convert_scheme(net, cfg, target)
    assert cfg2.scheme == target and cfg2.layers == cfg.layers
    assert all(cfg2.layer_keep_prob(l) == cfg.layer_keep_prob(l) for l in cfg.layers)
    # theta': only the weights leaving a dropped layer change, by its keep_prob.
    for W2, W in zip(net2.weights, _converted_weights_expected(net, cfg, target)):
        assert_close(W2, W, tol=1e-15)
    for b2, b in zip(net2.biases, net.biases):
        np.testing.assert_array_equal(b2, b)
    assert (net2.hidden, net2.output) == (net.hidden, net.output)

    # Same mask, same subnetwork output.
    masks = np.array([np.concatenate([lm[l] for l in cfg.layers])
                      for _, lm in all_masks(net, cfg)])
    assert_close(subnetwork_outputs(net2, cfg2, X, masks), subnetwork_outputs(net, cfg, X, masks))
    # Same ensemble, same scaled pass.
    a, b = exact_ensemble(net, cfg, X), exact_ensemble(net2, cfg2, X)
    for field in ("mean", "variance", "geometric_mean"):
        assert_close(getattr(b, field), getattr(a, field))
    assert_close(scaled_forward(net2, cfg2, X), scaled_forward(net, cfg, X))
    # ... which is not what the same weights give under the other scheme.
    other = DropoutConfig(dict(cfg.keep_prob), scheme=target)
    assert np.max(np.abs(exact_ensemble(net, other, X).mean - a.mean)) > 1e-6
    # Converting back recovers the original network.
    net3, cfg3 = convert_scheme(net2, cfg2, source)
    assert cfg3.scheme == source
    for W3, W in zip(net3.weights, net.weights):
        assert_close(W3, W, tol=1e-15)


# ------------------------------------------------------------------ fact 6

@pytest.mark.parametrize("scheme, mean, variance, kept_output", [
    # Masks (1,1), (1,0), (0,1), (0,0) give relu(0), relu(1 / s), relu(-1 / s),
    # relu(0) with s = 1 (vanilla) or q = 0.5 (inverted), each with prob 1/4.
    ("vanilla", 0.25, 0.25 * 1 - 0.25**2, 1.0),
    ("inverted", 0.5, 0.25 * 4 - 0.5**2, 2.0),
])
def test_fact6_hand_example(scheme, mean, variance, kept_output):
    net = MLP.from_arrays([[[1.0], [1.0]], [[1.0]]], [[0.0], [0.0]], "relu", "identity")
    cfg = DropoutConfig(0.5, [0], scheme)
    X = np.array([[1.0, -1.0]])
    res = exact_ensemble(net, cfg, X)
    assert res.n_subnetworks == 4
    assert res.geometric_mean is None
    assert abs(res.mean[0, 0] - mean) < 1e-15
    assert abs(res.variance[0, 0] - variance) < 1e-15
    assert scaled_forward(net, cfg, X)[0, 0] == 0.0
    out = subnetwork_outputs(net, cfg, X, [[1, 1], [1, 0], [0, 1], [0, 0]])
    np.testing.assert_array_equal(out[:, 0, 0], [0.0, kept_output, 0.0, 0.0])


# ------------------------------------------------------------------ fact 7

def _one_unit(f, w, b):
    """``f(S)``, ``S = w . x~ + b``: a sigmoid output, or a tanh unit read out by 1."""
    if f == "sigmoid":
        return MLP.from_arrays([w[:, None]], [[b]], [], "sigmoid")
    return MLP.from_arrays([w[:, None], [[1.0]]], [[b], [0.0]], "tanh", "identity")


def _derivatives(f, t):
    if f == "sigmoid":
        s = 1 / (1 + math.exp(-t))
        return s, s * (1 - s), s * (1 - s) * (1 - 2 * s), 1 / 8  # f, f', f'', max|f'''|
    th = math.tanh(t)
    return th, 1 - th**2, -2 * th * (1 - th**2), 2.0


@pytest.mark.parametrize("f", ["sigmoid", "tanh"])
def test_fact7_small_noise_limit(f, seed):
    gen = np.random.default_rng(seed)
    n = 8
    x = gen.choice([-1.0, 1.0], size=n)
    w = gen.normal(0.0, 0.05, size=n)  # small contributions a_i = w_i x_i
    a = w * x
    ES = 0.6  # away from the inflection point, where f''(ES) = 0
    b = ES - a.sum()
    X = x[None, :]
    f0, f1, f2, max_f3 = _derivatives(f, ES)

    # Var(S) = ((1 - q) / q) * sum_i w_i^2 x_i^2, exactly.
    linear = MLP.from_arrays([w[:, None]], [[b]], [], "identity")
    for q in (0.3, 0.5, 0.9, 0.999):
        res = exact_ensemble(linear, DropoutConfig(q, [0]), X)
        assert_close(res.mean[0, 0], ES)
        np.testing.assert_allclose(res.variance[0, 0], (1 - q) / q * np.sum(a**2), rtol=1e-10)

    # As q -> 1 a unit is dropped with probability 1 - q, so to first order
    # the gap is (1 - q) * C with C = sum_i [f(ES - a_i) - f(ES) + a_i f'(ES)]
    # (one unit dropped at a time). The next order comes from pairs of
    # dropped units: relative size at most ~n (1 - q); we allow 2 n (1 - q).
    fn = (lambda t: 1 / (1 + np.exp(-t))) if f == "sigmoid" else np.tanh
    C = np.sum(fn(ES - a) - f0 + a * f1)
    net = _one_unit(f, w, b)
    for q in (0.99, 0.999, 0.9999):
        cfg = DropoutConfig(q, [0])
        gap = exact_ensemble(net, cfg, X).mean[0, 0] - scaled_forward(net, cfg, X)[0, 0]
        first_order = abs(gap / ((1 - q) / q * C) - 1)
        assert first_order <= 2 * n * (1 - q)

    # C is 0.5 f''(ES) sum a_i^2 up to Taylor remainders |f'''| |a_i|^3 / 6,
    # so gap / (0.5 f''(ES) Var(S)) -> 1 within that bound (small a_i).
    var = (1 - q) / q * np.sum(a**2)
    taylor = max_f3 * np.sum(np.abs(a) ** 3) / (3 * abs(f2) * np.sum(a**2))
    ratio = gap / (0.5 * f2 * var)
    assert abs(ratio - 1) <= (1 + taylor) * (1 + 2 * n * (1 - q)) - 1


# ------------------------------------------------------------------ fact 8

def test_fact8_monte_carlo_is_unbiased_and_its_stderr_calibrated(seed):
    # tanh units and keep_prob 0.5: the output has no point mass at one value
    # and light tails, so with K = 64 the interval mean +- 1.96 SE has
    # coverage close to its nominal 95% (about 94.5% for Gaussian outputs,
    # from the t distribution with 63 degrees of freedom).
    net = MLP.random((3, 8, 1), "tanh", "identity", rng=seed)
    cfg = DropoutConfig(0.5, [1])
    X = _X(3, seed, n=1)
    exact = exact_ensemble(net, cfg, X)
    R, K = 1000, 64
    streams = np.random.SeedSequence(seed).spawn(R)
    means = np.empty(R)
    covered = 0
    for i, stream in enumerate(streams):
        res = sample_ensemble(net, cfg, X, K, rng=np.random.default_rng(stream))
        means[i] = res.mean[0, 0]
        covered += abs(res.mean[0, 0] - exact.mean[0, 0]) <= 1.96 * res.stderr[0, 0]
    # Unbiased: the average of R independent estimates is within 4.5 of its
    # standard errors sqrt(Var / (R K)) (fails with probability < 1e-5).
    assert abs(means.mean() - exact.mean[0, 0]) <= 4.5 * np.sqrt(exact.variance[0, 0] / (R * K))
    # Calibrated: the count is Binomial(R, p) with p near 0.95; its standard
    # deviation is sqrt(0.95 * 0.05 / R) = 0.0069. We allow 0.03, i.e. more
    # than 4 standard deviations plus the ~0.5% finite-K shortfall.
    assert abs(covered / R - 0.95) <= 0.03
