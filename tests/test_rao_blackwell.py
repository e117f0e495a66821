"""Rao-Blackwellised Monte Carlo (DESIGN fact 12) and sample_ensemble's chunked draws."""

import numpy as np
import pytest
from reference import assert_close, brute_force

from ensemble_study import MLP, DropoutConfig, exact_ensemble, sample_ensemble
from ensemble_study.ensemble import MAX_SAMPLES

RB = "rb_mc"


def _X(n_features, seed, n=3):
    return np.random.default_rng(seed + 100).normal(size=(n, n_features))


@pytest.mark.parametrize("output", ["identity", "sigmoid", "softmax"])
@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
@pytest.mark.parametrize("keep_prob", [
    {2: 0.4},            # only the last hidden layer dropped
    {1: 1.0, 2: 0.3},    # an outer layer that is never dropped
    {0: 1.0, 2: 0.7},
])
def test_one_free_layer_one_sample_is_exact(output, scheme, keep_prob, seed):
    net = MLP.random((3, 4, 5, 3 if output == "softmax" else 1), "tanh", output, rng=seed)
    cfg = DropoutConfig(keep_prob, scheme=scheme)
    X = _X(3, seed)
    ref = brute_force(net, cfg, X)
    res = sample_ensemble(net, cfg, X, 1, rng=seed, estimator=RB)
    assert res.n_subnetworks == 1 and res.method == "sampled"
    assert_close(res.mean, ref.mean)
    assert_close(res.variance, ref.variance)
    if output != "identity":
        assert_close(res.geometric_mean, ref.geometric_mean)
    # With more samples every conditional moment is the same: stderr 0.
    res = sample_ensemble(net, cfg, X, 5, rng=seed, estimator=RB)
    assert_close(res.mean, ref.mean)
    assert np.all(res.stderr <= 1e-15)


def _calibration_case(seed):
    # tanh units, an identity output and 8 outer units: the conditional mean
    # takes 256 values without a dominant point mass, so the CLT interval is
    # close to nominal at K = 64, as in the plain test of DESIGN fact 8.
    net = MLP.random((3, 8, 4, 1), "tanh", "identity", rng=seed)
    return net, DropoutConfig(0.5, [1, 2]), _X(3, seed, n=1)


def test_unbiased_and_stderr_calibrated(seed):
    net, cfg, X = _calibration_case(seed)
    exact = exact_ensemble(net, cfg, X).mean[0, 0]
    R, K = 1000, 64
    means, covered = np.empty(R), 0
    for i, stream in enumerate(np.random.SeedSequence(seed).spawn(R)):
        res = sample_ensemble(net, cfg, X, K, rng=stream, estimator=RB)
        means[i] = res.mean[0, 0]
        covered += abs(res.mean[0, 0] - exact) <= 1.96 * res.stderr[0, 0]
    # Unbiased: the average of R independent estimates is within 4.5 of its
    # standard errors (estimated from the R estimates; fails with p < 1e-5).
    assert abs(means.mean() - exact) <= 4.5 * means.std(ddof=1) / np.sqrt(R)
    # Calibrated: Binomial(R, ~0.95) has sd 0.0069; 0.03 is more than 4 sd
    # plus the ~0.5% finite-K shortfall of the t distribution.
    assert abs(covered / R - 0.95) <= 0.03


def _between_variance(net, cfg, X):
    """Var over outer masks of E[y | outer], from the brute-force subnetworks.

    The reference lists masks with the first dropped layer's bits most
    significant, so the inner (last) layer's masks of one outer mask are a
    contiguous run.
    """
    ref = brute_force(net, cfg, X)
    n_inner = net.weights[-1].shape[0]
    p = np.array(ref.probs).reshape(-1, 2**n_inner)
    y = np.array(ref.outputs).reshape(p.shape + ref.mean.shape)
    p_outer = p.sum(axis=1)
    cond = np.einsum("oi,oi...->o...", p, y) / p_outer[:, None, None]
    return np.einsum("o,o...->...", p_outer, (cond - ref.mean) ** 2), ref


def test_smaller_spread_than_plain_at_equal_k():
    # Two dropped layers, a sigmoid output. The law of total variance gives
    # the per-sample variances exactly: plain Var(y), RB Var(E[y | outer]).
    net = MLP.random((3, 5, 5, 1), "relu", "sigmoid", rng=4)
    cfg = DropoutConfig(0.5, [1, 2])
    X = _X(3, 4, n=1)
    between, ref = _between_variance(net, cfg, X)
    true_ratio = between[0, 0] / ref.variance[0, 0]
    assert true_ratio < 0.6  # the case is informative
    R, K = 400, 16
    streams = np.random.SeedSequence(11).spawn(2 * R)
    plain = [sample_ensemble(net, cfg, X, K, s).mean[0, 0] for s in streams[:R]]
    rb = [sample_ensemble(net, cfg, X, K, s, estimator=RB).mean[0, 0] for s in streams[R:]]
    ratio = np.var(rb, ddof=1) / np.var(plain, ddof=1)
    # log of a ratio of two sample variances of R = 400 near-Gaussian means has
    # sd about sqrt(2/R + 2/R) = 0.1; the margin 0.4 is 4 sd.
    assert abs(np.log(ratio) - np.log(true_ratio)) <= 0.4
    assert ratio < 1


def test_variance_estimate_converges():
    net = MLP.random((3, 5, 5, 3), "relu", "softmax", rng=2)
    cfg = DropoutConfig({1: 0.6, 2: 0.5}, scheme="vanilla")
    X = _X(3, 2)
    ref = brute_force(net, cfg, X)
    res = sample_ensemble(net, cfg, X, 4000, rng=0, estimator=RB)
    # K = 4000 outer samples of 32 outer masks: mean within 5 stderr; the
    # variance (a mean of within-variances plus a between term) within 5%.
    assert np.all(np.abs(res.mean - ref.mean) <= 5 * res.stderr + 1e-15)
    np.testing.assert_allclose(res.variance, ref.variance, rtol=0.05)


@pytest.mark.parametrize("estimator", ["mc", RB])
def test_same_seed_same_result_and_chunk_size_changes_only_rounding(estimator):
    net = MLP.random((3, 5, 4, 3), "relu", "softmax", rng=0)
    cfg = DropoutConfig(0.5, [1, 2])
    X = _X(3, 0)
    a = sample_ensemble(net, cfg, X, 50, rng=7, estimator=estimator)
    b = sample_ensemble(net, cfg, X, 50, rng=7, estimator=estimator)
    c = sample_ensemble(net, cfg, X, 50, rng=7, estimator=estimator, chunk_size=3)
    d = sample_ensemble(net, cfg, X, 50, rng=8, estimator=estimator)
    for field in ("mean", "variance", "stderr", "geometric_mean"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_allclose(getattr(c, field), getattr(a, field), rtol=1e-13, atol=1e-16)
    assert not np.array_equal(a.mean, d.mean)


def test_rao_blackwell_refuses_a_last_layer_that_does_not_feed_the_output():
    net = MLP.random((3, 4, 4, 1), "relu", "sigmoid", rng=0)
    for cfg in (DropoutConfig(0.5, [0, 1]), DropoutConfig({1: 0.5, 2: 1.0})):
        with pytest.raises(ValueError, match=r'last dropped layer .* estimator="mc"'):
            sample_ensemble(net, cfg, _X(3, 0), 4, rng=0, estimator=RB)


@pytest.mark.parametrize("estimator", ["rao-blackwell", "RB", None, 1])
def test_bad_estimator(estimator):
    net = MLP.random((3, 4, 1), "relu", "sigmoid", rng=0)
    with pytest.raises(ValueError, match=r"estimator must be one of \('mc', 'rb_mc', 'certified', 'auto'\); got"):
        sample_ensemble(net, DropoutConfig(0.5, [1]), _X(3, 0), 4, rng=0, estimator=estimator)


@pytest.mark.parametrize("n_samples", [MAX_SAMPLES + 1, 10**12])
def test_absurd_n_samples_refused_before_any_work(n_samples):
    net = MLP.random((3, 4, 1), "relu", "sigmoid", rng=0)
    with pytest.raises(ValueError, match=r"n_samples must be at most MAX_SAMPLES = 1,000,000,000"):
        sample_ensemble(net, DropoutConfig(0.5, [1]), _X(3, 0), n_samples, rng=0)


@pytest.mark.parametrize("estimator", ["mc", RB])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_huge_inputs_give_a_finite_nwgm_where_exact_does(estimator, output):
    # Input dropout, no hidden layer, inverted: m * x / q overflows at
    # x = 1e308 if the scale is applied to the activation; the exact path
    # folds it into the weights. So does sample_ensemble.
    net = MLP.random((2, 3 if output == "softmax" else 1), [], output, rng=0)
    cfg = DropoutConfig(0.5, [0])
    X = np.array([[1e308, -1e308]])
    exact = exact_ensemble(net, cfg, X)
    assert np.all(np.isfinite(exact.geometric_mean)) and np.all(np.isfinite(exact.mean))
    res = sample_ensemble(net, cfg, X, 20, rng=0, estimator=estimator)
    assert np.all(np.isfinite(res.geometric_mean)) and np.all(np.isfinite(res.mean))
    # Every subnetwork's logits are huge: its output is (almost) one-hot, and
    # so is the NWGM of the exact and the sampled ensembles alike.
    np.testing.assert_allclose(res.geometric_mean, exact.geometric_mean, atol=1e-12)


@pytest.mark.parametrize("old, new", [("plain", "mc"), ("rao_blackwell", "rb_mc")])
def test_the_old_estimator_names_warn_and_give_the_same_numbers(old, new):
    net = MLP.random((3, 4, 4, 2), "relu", "softmax", rng=1)
    cfg = DropoutConfig(0.5, layers=[1, 2])
    X = np.random.default_rng(2).normal(size=(3, 3))
    with pytest.warns(DeprecationWarning, match=f"estimator='{old}' is deprecated; use "
                                                f"estimator='{new}'"):
        a = sample_ensemble(net, cfg, X, 20, 5, estimator=old)
    b = sample_ensemble(net, cfg, X, 20, 5, estimator=new)
    np.testing.assert_array_equal(a.mean, b.mean)
