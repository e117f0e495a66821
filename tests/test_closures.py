"""Consistent closures (DESIGN facts 14 and 15): the delta-method NWGM correction,
its softmax analogue, and the Gauss-Hermite output closure of moment propagation."""

import numpy as np
import pytest
from reference import brute_force
from scipy import integrate

from ensemble_study import MLP, DropoutConfig
from ensemble_study.activations import sigmoid_moments
from ensemble_study.approximations import (
    gaussian_sigmoid_moments,
    logit_moments,
    moment_propagation,
    nwgm_correction,
)
from ensemble_study.predictors import PREDICTORS, Case


def _two_point(E, V):
    """O = E +- sqrt(V) with probability 1/2 each: (true E - NWGM, NWGM)."""
    o = np.array([E - np.sqrt(V), E + np.sqrt(V)])
    log_g, log_g1 = np.log(o).mean(), np.log1p(-o).mean()
    nwgm = np.exp(log_g - np.logaddexp(log_g, log_g1))
    return E - nwgm, nwgm


def test_two_point_case_of_the_issue():
    # Issue 19's case: E = 0.119, V = 2.749e-5 (quoted there rounded as 2.8e-5).
    E, V = 0.119, 2.749e-5
    true_gap, g = _two_point(E, V)
    np.testing.assert_allclose(true_gap, 9.995e-5, rtol=5e-4)
    np.testing.assert_allclose(V * (1 - 2 * E) / (2 * E * (1 - E) - V), 9.990e-5, rtol=5e-4)
    np.testing.assert_allclose(V * (1 - 2 * E) / (1 - 2 * V), 2.10e-5, rtol=5e-3)
    delta = nwgm_correction([[g]], [[V]], "sigmoid", form="delta")[0, 0]
    baldi = nwgm_correction([[g]], [[V]], "sigmoid", form="baldi")[0, 0]
    assert abs(delta - E) < 1e-6 < 7e-5 < abs(baldi - E)
    # The default form is still Baldi & Sadowski's.
    assert nwgm_correction([[g]], [[V]], "sigmoid")[0, 0] == baldi


@pytest.mark.parametrize("E", [0.02, 0.119, 0.3, 0.45, 0.7, 0.95])
def test_delta_form_is_second_order_on_two_points(E):
    # The remaining error shrinks like V**2: halving V quarters it (roughly).
    errs = []
    for V in (1e-4 * E * (1 - E), 0.5e-4 * E * (1 - E)):
        _, g = _two_point(E, V)
        errs.append(abs(nwgm_correction([[g]], [[V]], "sigmoid", form="delta")[0, 0] - E))
    assert errs[1] < 0.35 * errs[0] + 1e-15


def test_softmax_analogue_with_two_classes_is_the_sigmoid_form():
    rng = np.random.default_rng(0)
    g = rng.uniform(0.05, 0.95, size=20)
    v = rng.uniform(0, 0.2, size=20) * g * (1 - g)
    sig = nwgm_correction(g[:, None], v[:, None], "sigmoid", form="delta")[:, 0]
    soft = nwgm_correction(np.c_[1 - g, g], np.c_[v, v], "softmax", form="delta")
    np.testing.assert_allclose(soft[:, 1], sig, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)


def _errors_in_regime(net, cfg, X):
    # Enumeration with the exact V; the delta expansion is in V / E**2 and
    # V / (1 - E)**2, so it is compared where both are below 0.1.
    ref = brute_force(net, cfg, X)
    E, V = ref.mean, ref.variance
    ok = V < 0.1 * np.minimum(E, 1 - E) ** 2
    assert ok.sum() >= 10
    err = {f: np.abs(nwgm_correction(ref.geometric_mean, V, net.output, f) - E)[ok]
           for f in ("baldi", "delta")}
    err["nwgm"] = np.abs(ref.geometric_mean - E)[ok]
    return err


@pytest.mark.parametrize("sizes, hidden, output, layers", [
    ((3, 8, 1), "tanh", "sigmoid", [1]),
    ((3, 6, 4), "relu", "softmax", [0, 1]),
    ((12, 1), None, "sigmoid", [0]),
    ((12, 3), None, "softmax", [0]),
])
def test_delta_form_against_enumeration(sizes, hidden, output, layers):
    # Where the outputs' distribution over masks is skewed (a few masks far
    # from the rest: ReLU with dropped inputs, a small tanh softmax) the cubic
    # term the expansion drops can dominate and the delta form is not always
    # closer than the NWGM (seen with rng=3 on (3, 8, 1) relu [0, 1] and
    # (3, 8, 3) tanh [1]); these cases, and sums of many small terms, are
    # where the second-order expansion holds.
    net = MLP.random(sizes, hidden or "relu", output, rng=3)
    X = np.random.default_rng(4).normal(size=(30, sizes[0]))
    err = _errors_in_regime(net, DropoutConfig(0.95, layers), X)
    assert np.median(err["delta"]) < 0.6 * np.median(err["nwgm"])
    assert np.median(err["delta"]) < np.median(err["baldi"])


def test_bad_form():
    with pytest.raises(ValueError, match="form must be one of"):
        nwgm_correction([[0.2]], [[0.01]], "sigmoid", form="exact")


def _integral(f, mu, s):
    dens = lambda z: np.exp(-0.5 * ((z - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))  # noqa: E731
    return integrate.quad(lambda z: f(z) * dens(z), mu - 40 * s, mu + 40 * s,
                          epsabs=1e-14, epsrel=1e-13, limit=400)[0]


@pytest.mark.parametrize("mu", [-6.0, -1.0, 0.0, 2.5, 6.0])
@pytest.mark.parametrize("s", [0.05, 0.5, 1.0, 3.0, 10.0, 20.0])
def test_quadrature_against_adaptive_integration(mu, s):
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    m, v = gaussian_sigmoid_moments(np.array([mu]), np.array([s * s]))
    true_m = _integral(sig, mu, s)
    true_v = _integral(lambda z: (sig(z) - true_m) ** 2, mu, s)
    np.testing.assert_allclose(m[0], true_m, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(v[0], true_v, rtol=1e-7, atol=1e-12)


def test_quadrature_zero_variance_and_symmetry():
    mu = np.array([-3.0, 0.0, 1.5])
    m, v = gaussian_sigmoid_moments(mu, np.zeros(3))
    np.testing.assert_allclose(m, 1 / (1 + np.exp(-mu)), rtol=1e-14)
    np.testing.assert_allclose(v, 0.0, atol=1e-16)
    m1, v1 = gaussian_sigmoid_moments(np.array([2.0]), np.array([4.0]))
    m2, v2 = gaussian_sigmoid_moments(np.array([-2.0]), np.array([4.0]))
    np.testing.assert_allclose(m1 + m2, 1.0, rtol=1e-13)
    np.testing.assert_allclose(v1, v2, rtol=1e-12)


@pytest.mark.parametrize("s", [0.3, 0.5, 1.0])
def test_probit_variance_closure_against_the_true_gaussian_one(s):
    # DESIGN fact 15: 0.80-0.92x the true variance at mu = 0, 14-75x at mu = 6.
    ratios = {}
    for mu in (0.0, 6.0):
        _, pv = sigmoid_moments(np.array([mu]), np.array([s * s]))
        _, tv = gaussian_sigmoid_moments(np.array([mu]), np.array([s * s]))
        ratios[mu] = pv[0] / tv[0]
    assert 0.79 < ratios[0.0] < 0.92
    assert 14 < ratios[6.0] < 76


def test_moment_propagation_quadrature_closure():
    net = MLP.random((4, 6, 1), "relu", "sigmoid", rng=5)
    cfg = DropoutConfig(0.5, [0, 1])
    X = np.random.default_rng(6).normal(size=(7, 4))
    mu, s2 = logit_moments(net, cfg, X)
    quad = moment_propagation(net, cfg, X, closure="quadrature")
    m, v = gaussian_sigmoid_moments(mu, s2)
    np.testing.assert_allclose(quad.mean, m)
    np.testing.assert_allclose(quad.variance, v)
    probit = moment_propagation(net, cfg, X)
    np.testing.assert_allclose(probit.mean, moment_propagation(net, cfg, X, closure="probit").mean)
    # Identity output: the closure does not matter.
    lin = MLP.from_arrays(net.weights, net.biases, net.hidden, "identity")
    np.testing.assert_allclose(moment_propagation(lin, cfg, X, closure="quadrature").variance,
                               moment_propagation(lin, cfg, X).variance)
    with pytest.raises(ValueError, match="closure must be one of"):
        moment_propagation(net, cfg, X, closure="gauss")


def test_quadrature_closure_on_one_wide_dropped_layer():
    # One dropped layer of 14 inputs feeds a sigmoid output: the logit is a
    # sum of 14 independent terms (nearly Gaussian), and its mean and variance
    # are exact (fact 11), so the quadrature closure's variance is near the
    # exact one, and nearer than the probit closure's at confident outputs.
    rng = np.random.default_rng(7)
    net = MLP.from_arrays([rng.normal(size=(14, 1)) * 0.8], [np.array([4.0])], [], "sigmoid")
    cfg = DropoutConfig(0.5, [0])
    X = rng.normal(size=(6, 14))
    ref = brute_force(net, cfg, X)
    quad = moment_propagation(net, cfg, X, closure="quadrature")
    probit = moment_propagation(net, cfg, X)
    lq = np.abs(np.log(quad.variance / ref.variance)).mean()
    lp = np.abs(np.log(probit.variance / ref.variance)).mean()
    assert lq < 0.5 * lp


def test_registered_predictors():
    assert {"nwgm_corrected", "nwgm_delta", "moment_quadrature"} <= set(PREDICTORS)
    assert PREDICTORS["moment_quadrature"].applies("softmax")  # tests/test_softmax_closure.py
    net = MLP.random((3, 4, 1), "tanh", "sigmoid", rng=8)
    cfg = DropoutConfig(0.5, [1])
    case = Case(net, cfg, np.random.default_rng(9).normal(size=(5, 3)))
    d = PREDICTORS["nwgm_delta"].predict(case, 0, None).mean
    np.testing.assert_allclose(d, nwgm_correction(case.exact.geometric_mean,
                                                   case.moments.variance, "sigmoid", "delta"))
    q = PREDICTORS["moment_quadrature"].predict(case, 0, None)
    assert q.mean.shape == (5, 1) and q.variance.shape == (5, 1)
