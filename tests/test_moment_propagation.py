"""moment_propagation against brute force where it is exact (DESIGN fact 11), sane elsewhere."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import assert_close, brute_force

import ensemble_study
from ensemble_study import MLP, DropoutConfig, exact_ensemble, moment_propagation
from ensemble_study.approximations import baldi_bound, nwgm_correction
from ensemble_study.network import HIDDEN_ACTIVATIONS, OUTPUTS

ANY_HIDDEN, ANY_OUTPUT = st.sampled_from(HIDDEN_ACTIVATIONS), st.sampled_from(OUTPUTS)


@st.composite
def cases(draw, hidden=ANY_HIDDEN, output=ANY_OUTPUT, max_units=9):
    """A random small network, dropout config (dropped layers, per-layer keep_prob,
    scheme) and inputs, with at most ``max_units`` dropped units."""
    n_hidden = draw(st.integers(0, 2))
    out = draw(output)
    n_out = draw(st.integers(2, 3)) if out == "softmax" else draw(st.integers(1, 2))
    sizes = [draw(st.integers(1, 3))] + [draw(st.integers(1, 3)) for _ in range(n_hidden)]
    names = [draw(hidden) for _ in range(n_hidden)]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.5, 1.0, 3.0]))
    net = MLP.random((*sizes, n_out), names, out, rng=rng)
    net = MLP.from_arrays([w * scale for w in net.weights], net.biases, names, out)
    layers = draw(st.lists(st.integers(0, n_hidden), min_size=1, unique=True)
                  .filter(lambda ls: sum(sizes[l] for l in ls) <= max_units))
    keep = {l: draw(st.sampled_from([0.1, 0.5, 0.8, 1.0])) for l in layers}
    cfg = DropoutConfig(keep, scheme=draw(st.sampled_from(["vanilla", "inverted"])))
    X = rng.normal(scale=draw(st.sampled_from([1.0, 5.0])), size=(2, sizes[0]))
    return net, cfg, X


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_exported_at_the_top_level():
    assert ensemble_study.moment_propagation is moment_propagation
    assert "moment_propagation" in ensemble_study.__all__


@SETTINGS
@given(cases(hidden=st.just("identity"), output=st.just("identity")))
def test_mean_exact_for_identity_activations_everywhere(case):
    net, cfg, X = case
    assert_close(moment_propagation(net, cfg, X).mean, brute_force(net, cfg, X).mean, 1e-10)


@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
def test_mean_exact_when_identity_after_the_first_dropped_layer(hidden, scheme, seed):
    # Fact 11: nonlinear layers before the first dropped layer are allowed.
    net = MLP.random((3, 4, 3, 3, 2), (hidden, "identity", "identity"), "identity", rng=seed)
    cfg = DropoutConfig({2: 0.3, 3: 0.6}, scheme=scheme)
    X = np.random.default_rng(seed).normal(size=(4, 3))
    assert_close(moment_propagation(net, cfg, X).mean, brute_force(net, cfg, X).mean)


@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
@pytest.mark.parametrize("layer", [0, 2])
def test_mean_and_variance_exact_for_one_dropped_layer_feeding_an_identity_output(
        hidden, scheme, layer, seed):
    if layer == 0:  # input dropout straight into the output: no hidden layer
        net = MLP.random((5, 2), [], "identity", rng=seed)
    else:
        net = MLP.random((3, 4, 5, 2), hidden, "identity", rng=seed)
    cfg = DropoutConfig(0.35, [layer], scheme=scheme)
    X = np.random.default_rng(seed).normal(size=(4, net.sizes[0]))
    ref = brute_force(net, cfg, X)
    pred = moment_propagation(net, cfg, X)
    assert pred.mean.shape == pred.variance.shape == (4, 2)
    assert_close(pred.mean, ref.mean)
    assert_close(pred.variance, ref.variance)


@SETTINGS
@given(cases())
def test_finite_and_variance_non_negative_everywhere(case):
    net, cfg, X = case
    pred = moment_propagation(net, cfg, X)
    n_out = net.sizes[-1]
    assert pred.mean.shape == pred.variance.shape == (2, n_out)
    assert np.all(np.isfinite(pred.mean)) and np.all(np.isfinite(pred.variance))
    assert np.all(pred.variance >= 0)
    if net.output != "identity":
        # Probability outputs: means in [0, 1] and variances at most E (1 - E),
        # the largest variance of a [0, 1] variable with mean E.
        assert np.all((pred.mean >= 0) & (pred.mean <= 1))
        assert np.all(pred.variance <= pred.mean * (1 - pred.mean) + 1e-15)
    if net.output == "softmax":
        np.testing.assert_allclose(pred.mean.sum(axis=1), 1.0, rtol=1e-12)


def test_relu_moments_of_a_rectified_gaussian():
    # One input unit x = 1 with inverted input dropout at q = 0.5 gives S = 2 w m
    # (not Gaussian); moment propagation uses N(mu, s2) with the exact mu, s2 of
    # S. Check the rectified-Gaussian formulas against numerical quadrature.
    from scipy import integrate, stats

    from ensemble_study.activations import ACTIVATIONS

    _relu_moments = ACTIVATIONS["relu"].moments

    for mu, s in [(0.3, 1.2), (-1.0, 0.5), (2.0, 0.1), (0.0, 1.0)]:
        m, v = _relu_moments(np.array(mu), np.array(s * s))
        pdf = stats.norm(mu, s).pdf
        e1 = integrate.quad(lambda x, pdf=pdf: x * pdf(x), 0, np.inf)[0]
        e2 = integrate.quad(lambda x, pdf=pdf: x * x * pdf(x), 0, np.inf)[0]
        np.testing.assert_allclose([m, v], [e1, e2 - e1**2], rtol=1e-8, atol=1e-12)


def test_sigmoid_probit_rule_against_quadrature():
    # The probit rule is an approximation; MacKay's error bound is about 0.02
    # on the mean over all (mu, s). Check the implementation is that rule and
    # that it is close to the true Gaussian integral.
    from scipy import integrate, stats
    from scipy.special import expit

    from ensemble_study.activations import sigmoid_moments as _sigmoid_moments

    for mu, s in [(0.5, 1.0), (-2.0, 3.0), (1.0, 0.2)]:
        m, _ = _sigmoid_moments(np.array(mu), np.array(s * s))
        np.testing.assert_allclose(m, 1 / (1 + np.exp(-mu / np.sqrt(1 + np.pi * s * s / 8))))
        pdf = stats.norm(mu, s).pdf
        true = integrate.quad(lambda x, pdf=pdf: pdf(x) * expit(x), -np.inf, np.inf)[0]
        assert abs(m - true) < 0.02


def test_design_fact_13_baldis_bound_is_not_an_inequality():
    # One logistic unit: w = 3.563, b = -2.944, x = 1, input keep_prob 0.75,
    # vanilla. Kept: sigmoid(0.619); dropped: sigmoid(-2.944); E = 0.5.
    net = MLP.from_arrays([[[3.563]]], [[-2.944]], [], "sigmoid")
    cfg = DropoutConfig(0.75, [0], scheme="vanilla")
    ens = exact_ensemble(net, cfg, [[1.0]])
    E, nwgm = ens.mean[0, 0], ens.geometric_mean[0, 0]
    assert abs(E - 0.5) < 1e-4
    assert abs(nwgm - 0.4325) < 5e-5
    assert baldi_bound(E) < 1e-5  # |1 - 2E| < 1e-5
    assert abs(E - nwgm) > 0.06 > baldi_bound(E)


def test_nwgm_correction_formula():
    # E - NWGM ~ V (1 - 2E) / (1 - 2V), E replaced by the NWGM on the right.
    np.testing.assert_allclose(nwgm_correction([[0.3]], [[0.1]], "sigmoid"),
                               [[0.3 + 0.1 * 0.4 / 0.8]])
    # On the fact-3 case the NWGM equals the scaled pass and a sigmoid's mean
    # is pulled towards 1/2: the correction moves the NWGM towards the mean.
    net = MLP.random((3, 6, 1), "relu", "sigmoid", rng=0)
    net = MLP.from_arrays([w * 3 for w in net.weights], net.biases, net.hidden, "sigmoid")
    cfg = DropoutConfig(0.5, [1])
    X = np.random.default_rng(0).normal(size=(8, 3))
    ens = exact_ensemble(net, cfg, X)
    corrected = nwgm_correction(ens.geometric_mean, ens.variance, "sigmoid")
    assert (np.abs(corrected - ens.mean).mean()
            < np.abs(ens.geometric_mean - ens.mean).mean())
    soft = nwgm_correction([[0.2, 0.3, 0.5]], [[0.05, 0.05, 0.1]], "softmax")
    np.testing.assert_allclose(soft.sum(), 1.0)
    with pytest.raises(ValueError, match="output must be one of"):
        nwgm_correction([[0.2]], [[0.1]], "identity")
