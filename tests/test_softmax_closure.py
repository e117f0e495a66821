"""The softmax output closure of moment propagation (issue 19, "consistent closures"):
``gaussian_softmax_moments`` against independent references, its use by the
``moment_quadrature`` predictor, and the softmax delta-method NWGM correction on a
known answer."""

import math
import warnings

import numpy as np
import pytest
from reference import brute_force
from scipy import integrate, stats

from ensemble_study import MLP, DropoutConfig
from ensemble_study.approximations import (
    gaussian_sigmoid_moments,
    gaussian_softmax_moments,
    logit_moments,
    moment_propagation,
    nwgm_correction,
)
from ensemble_study.predictors import PREDICTORS, Case


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _tensor_trapezoid(mu, s, h=0.25):
    """E[softmax(z)] and E[softmax(z)**2] for three independent Gaussian logits by a
    3-D trapezoid product rule in x = (z - mu) / s on [-9, 9]**3, summed exactly
    (math.fsum): a brute force that shares nothing with the 1-D Gumbel integral."""
    x = np.arange(-round(9 / h), round(9 / h) + 1) * h
    w = h * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    z = np.stack(np.meshgrid(*[mu[k] + s[k] * x for k in range(3)], indexing="ij"), axis=-1)
    p = _softmax(z)
    W = w[:, None, None] * w[None, :, None] * w[None, None, :]
    first = np.array([math.fsum((p[..., k] * W).ravel()) for k in range(3)])
    second = np.array([math.fsum((p[..., k] ** 2 * W).ravel()) for k in range(3)])
    return first, second


@pytest.mark.parametrize("seed", range(4))
def test_three_classes_against_a_brute_force_product_rule(seed):
    rng = np.random.default_rng(seed)
    mu, s = rng.normal(size=3) * 2.0, rng.uniform(0.0, 1.5, size=3)
    s[seed % 3] = 0.7  # one class on the lattice (s >= 0.5) at least
    m, v = gaussian_softmax_moments(mu[None], s[None] ** 2)
    first, second = _tensor_trapezoid(mu, s)
    np.testing.assert_allclose(m[0], first, rtol=0, atol=1e-15)
    np.testing.assert_allclose(v[0], second - first**2, rtol=0, atol=2e-15)


def _adaptive(f, mu, s):
    """E f(z), z ~ N(mu, s**2), by adaptive integration on 24 panels of width s."""
    dens = lambda z: np.exp(-0.5 * ((z - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    edges = np.linspace(mu - 12 * s, mu + 12 * s, 25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)  # asks for 1e-17
        return math.fsum(integrate.quad(lambda z: f(z) * dens(z), a, b, epsabs=1e-17,
                                        epsrel=1e-15, limit=200)[0]
                         for a, b in zip(edges[:-1], edges[1:]))


@pytest.mark.parametrize("mu1, mu2, sd1, sd2", [
    (0.3, -1.0, 0.7, 1.2), (2.0, 0.0, 3.0, 4.0), (5.0, -3.0, 10.0, 15.0), (0.0, 0.0, 0.1, 0.2),
    (1.0, 0.0, 0.0, 0.3), (0.0, 0.0, 20.0, 1.0), (-8.0, 4.0, 0.4, 0.6), (3.0, 2.5, 2.0, 0.0),
])
def test_two_classes_are_the_sigmoid_closure_of_the_logit_difference(mu1, mu2, sd1, sd2):
    # softmax(z)_1 = sigmoid(z1 - z2), z1 - z2 ~ N(mu1 - mu2, sd1**2 + sd2**2): against
    # adaptive integration of that 1-D integral, and against gaussian_sigmoid_moments
    # (96-node Gauss-Hermite where s <= 2, which is off by 3e-13 at s = 2, the last
    # case; composite Gauss-Legendre above).
    m, v = gaussian_softmax_moments([[mu1, mu2]], [[sd1**2, sd2**2]])
    mu, s = mu1 - mu2, math.hypot(sd1, sd2)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    true_m = _adaptive(sig, mu, s)
    true_v = _adaptive(lambda z: (sig(z) - true_m) ** 2, mu, s)
    np.testing.assert_allclose(m[0], [true_m, 1 - true_m], rtol=0, atol=2e-15)
    np.testing.assert_allclose(v[0], [true_v, true_v], rtol=0, atol=2e-15)
    ms, vs = gaussian_sigmoid_moments(np.array([mu]), np.array([s * s]))
    tol = 1e-12 if s == 2.0 else 1e-14
    np.testing.assert_allclose(m[0], [ms[0], 1 - ms[0]], rtol=0, atol=tol)
    np.testing.assert_allclose(v[0], [vs[0], vs[0]], rtol=0, atol=tol)


def test_zero_variance_is_the_softmax_of_the_means():
    mu = np.array([[1.0, -2.0, 0.5, 3.0], [0.0, 0.0, 0.0, 0.0], [700.0, 0.0, -700.0, 1.0]])
    m, v = gaussian_softmax_moments(mu, np.zeros_like(mu))
    np.testing.assert_array_equal(m, _softmax(mu))
    np.testing.assert_array_equal(v, 0.0)
    # Continuity: a tiny variance in one class (integrated, not short-cut).
    s2 = np.zeros_like(mu)
    s2[:, 0] = 1e-20
    m, v = gaussian_softmax_moments(mu, s2)
    np.testing.assert_allclose(m, _softmax(mu), rtol=0, atol=1e-15)
    np.testing.assert_allclose(v, 0.0, rtol=0, atol=1e-15)


def test_equal_logits_give_one_over_c_and_permutations_commute():
    rng = np.random.default_rng(3)
    for n_classes in (2, 3, 5, 10):
        for sd in (0.3, 1.0, 4.0):
            m, _ = gaussian_softmax_moments(np.full((1, n_classes), 0.7),
                                            np.full((1, n_classes), sd**2))
            np.testing.assert_allclose(m, 1.0 / n_classes, rtol=0, atol=1e-15)
    mu, s2 = rng.normal(size=(6, 5)) * 3, rng.uniform(0, 3, size=(6, 5)) ** 2
    m, v = gaussian_softmax_moments(mu, s2)
    perm = rng.permutation(5)
    mp, vp = gaussian_softmax_moments(mu[:, perm], s2[:, perm])
    np.testing.assert_allclose(mp, m[:, perm], rtol=0, atol=4e-15)
    np.testing.assert_allclose(vp, v[:, perm], rtol=0, atol=4e-15)
    # Shifting every logit of a row by the same constant changes nothing (but the
    # lattice's offset, hence rounding).
    ms, _ = gaussian_softmax_moments(mu + 13.0, s2)
    np.testing.assert_allclose(ms, m, rtol=0, atol=4e-15)
    # Rows are independent: one row alone is the same as in the batch.
    m1, v1 = gaussian_softmax_moments(mu[2:3], s2[2:3])
    np.testing.assert_allclose(m1[0], m[2], rtol=0, atol=1e-16)


def test_sums_to_one_and_variance_bounds():
    rng = np.random.default_rng(4)
    mu, s2 = rng.normal(size=(40, 7)) * 4, rng.uniform(0, 8, size=(40, 7)) ** 2
    m, v = gaussian_softmax_moments(mu, s2)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    assert (m >= 0).all() and (v >= 0).all()
    # Var of a [0, 1] variable of mean E is at most E(1 - E).
    assert (v <= m * (1 - m) + 1e-15).all()
    # Jensen against the mean-free softmax: E[softmax] is pulled toward 1/C.
    top = np.argmax(mu, axis=1)
    assert (m[np.arange(40), top] <= _softmax(mu)[np.arange(40), top] + 1e-15).all()


@pytest.mark.parametrize("step", [0.25])
def test_step_halving_changes_nothing(step):
    rng = np.random.default_rng(5)
    mu, s2 = rng.normal(size=(30, 4)) * 3, rng.uniform(0, 6, size=(30, 4)) ** 2
    a, b = gaussian_softmax_moments(mu, s2, step=step), gaussian_softmax_moments(
        mu, s2, step=step / 2)
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-14)


def test_against_monte_carlo():
    # 4 classes, wide and narrow logits; 1e6 seeded samples: every mean and second
    # moment within 5 standard errors (a false alarm about once in 10**5 entries).
    rng = np.random.default_rng(6)
    mu = np.array([[1.0, -0.5, 2.0, 0.0], [0.0, 3.0, -2.0, 1.0]])
    sd = np.array([[2.0, 0.3, 5.0, 1.0], [0.0, 4.0, 0.6, 2.5]])
    m, v = gaussian_softmax_moments(mu, sd**2)
    for r in range(2):
        y = _softmax(mu[r] + sd[r] * rng.standard_normal((1_000_000, 4)))
        for stat, got in ((y, m[r]), (y**2, v[r] + m[r] ** 2)):
            se = stat.std(axis=0) / math.sqrt(len(stat))
            assert (np.abs(stat.mean(axis=0) - got) <= 5 * se).all()


def _binomial_softmax(b, a, m, q):
    """Exact E[softmax(z)] for z_k = b_k + (a_k / q) B_k, B_k ~ Binomial(m, q)
    independent: the sum over every (B_1, B_2, B_3)."""
    k = np.arange(m + 1)
    pmf = stats.binom.pmf(k, m, q)
    z = [b[c] + a[c] / q * k for c in range(3)]
    total = np.zeros(3)
    for i in range(m + 1):  # one slice of the 3-D sum at a time
        zz = np.stack(np.broadcast_arrays(z[0][i], z[1][:, None], z[2][None, :]), axis=-1)
        total += pmf[i] * np.einsum("j,k,jkc->c", pmf, pmf, _softmax(zz))
    return total


def _block_network(m, b, sd, q):
    """No hidden layer; class k reads only inputs k*m .. (k+1)*m - 1 (all x = 1), with
    weights that give its logit the standard deviation sd[k] under inverted input
    dropout, and biases that keep its mean at b[k]. Returns (net, weights, biases)."""
    a = sd * q / np.sqrt(m * q * (1 - q))  # Var((a/q) B) = a**2 m (1 - q) / q = sd**2
    W = np.zeros((3 * m, 3))
    for c in range(3):
        W[c * m:(c + 1) * m, c] = a[c]
    bias = np.asarray(b, dtype=float) - a * m  # E[(a / q) B] = a m
    return MLP.from_arrays([W], [bias], [], "softmax"), a, bias


def test_block_network_enumeration_matches_the_binomial_sum():
    # The binomial reference against enumeration of all 2**12 masks.
    b, sd, q = np.array([0.5, -1.0, 0.0]), np.array([1.0, 2.0, 0.5]), 0.5
    net, a, bias = _block_network(4, b, sd, q)
    ref = brute_force(net, DropoutConfig(q, [0]), np.ones((1, 12)))
    np.testing.assert_allclose(ref.mean[0], _binomial_softmax(bias, a, 4, q), rtol=0,
                               atol=1e-14)


def test_quadrature_closure_is_exact_in_the_gaussian_limit():
    # Disjoint blocks of m dropped inputs: the logits are independent sums of m
    # Bernoulli terms and their moments are propagated exactly (DESIGN fact 11), so the
    # only error of the quadrature closure is the logits' non-Gaussianity, which
    # vanishes like 1/m (q = 1/2: no skew). The probit closure's error does not vanish.
    b, sd, q = np.array([0.5, -1.0, 1.5]), np.array([2.0, 3.0, 0.5]), 0.5
    err_quad, err_probit = {}, {}
    for m in (32, 128):
        net, a, bias = _block_network(m, b, sd, q)
        cfg, X = DropoutConfig(q, [0]), np.ones((1, 3 * m))
        exact = _binomial_softmax(bias, a, m, q)
        mu, s2 = logit_moments(net, cfg, X)
        np.testing.assert_allclose(mu[0], b, rtol=0, atol=1e-12)
        np.testing.assert_allclose(s2[0], sd**2, rtol=1e-12)
        err_quad[m] = np.abs(moment_propagation(net, cfg, X, closure="quadrature").mean[0]
                             - exact).max()
        err_probit[m] = np.abs(moment_propagation(net, cfg, X).mean[0] - exact).max()
    assert 3.5 < err_quad[32] / err_quad[128] < 4.5  # 1/m: a quarter at 4x m
    assert err_quad[128] < 1e-3 and err_probit[128] > 100 * err_quad[128]
    assert err_probit[128] > 0.9 * err_probit[32]


def test_moment_quadrature_predictor_on_a_softmax_network():
    net = MLP.random((4, 8, 8, 3), "tanh", "softmax", rng=1)
    cfg = DropoutConfig(0.5, [1, 2])
    X = np.random.default_rng(2).normal(size=(9, 4))
    mu, s2 = logit_moments(net, cfg, X)
    m, v = gaussian_softmax_moments(mu, s2)
    got = PREDICTORS["moment_quadrature"].predict(Case(net, cfg, X), 0, None)
    np.testing.assert_array_equal(got.mean, m)
    np.testing.assert_array_equal(got.variance, v)
    assert PREDICTORS["moment_quadrature"].applies_to(net, cfg)
    # keep_prob 1: no noise, and every closure is the plain softmax of the logits.
    one = DropoutConfig(1.0, [1, 2])
    exact = Case(net, one, X).exact.mean
    np.testing.assert_allclose(moment_propagation(net, one, X, closure="quadrature").mean,
                               exact, rtol=0, atol=1e-15)


@pytest.mark.parametrize("mu, s2, match", [
    (np.zeros(3), np.zeros(3), "2-D"),
    (np.zeros((2, 3)), np.zeros((2, 4)), "same shape"),
    (np.zeros((2, 0)), np.zeros((2, 0)), "at least one class"),
    (np.zeros((1, 3)), np.array([[0.1, -0.2, 0.3]]), "must be >= 0"),
    (np.array([[0.0, np.nan]]), np.zeros((1, 2)), "finite"),
    (np.zeros((1, 2)), np.array([[np.inf, 0.0]]), "finite"),
])
def test_bad_inputs(mu, s2, match):
    with pytest.raises(ValueError, match=match):
        gaussian_softmax_moments(mu, s2)


@pytest.mark.parametrize("step", [0.0, -0.1, 0.6])
def test_bad_step(step):
    with pytest.raises(ValueError, match="step must be in"):
        gaussian_softmax_moments(np.zeros((1, 2)), np.ones((1, 2)), step=step)


def _two_point_softmax(z0, u, d):
    """Logits z0 +- d u with probability 1/2: (E, V, NWGM) of the softmax outputs.
    E[log y_i] = z0_i - mean(logsumexp), so the NWGM is softmax(z0) (DESIGN fact 9)."""
    y = _softmax(np.stack([z0 - d * u, z0 + d * u]))
    E = y.mean(axis=0)
    log_g = np.log(y).mean(axis=0)
    return E, ((y - E) ** 2).mean(axis=0), _softmax(log_g)


@pytest.mark.parametrize("z0, u", [
    ([0.2, -1.0, 0.7], [1.0, -0.5, 0.3]),
    ([2.0, 0.0, -1.5, 0.5], [0.0, 1.0, -1.0, 2.0]),
])
def test_softmax_delta_correction_known_answer_on_two_points(z0, u):
    # The NWGM is softmax(z0) exactly; the delta-method correction recovers the
    # arithmetic mean up to O(V**2): halving V (d -> d / sqrt 2) quarters its error,
    # while the NWGM's own error only halves.
    z0, u = np.array(z0), np.array(u)
    errs, nwgm_errs = [], []
    for d in (0.2, 0.2 / math.sqrt(2)):
        E, V, G = _two_point_softmax(z0, u, d)
        np.testing.assert_allclose(G, _softmax(z0), rtol=1e-14)
        corrected = nwgm_correction(G[None], V[None], "softmax", form="delta")[0]
        errs.append(np.abs(corrected - E).max())
        nwgm_errs.append(np.abs(G - E).max())
    assert errs[0] < 0.05 * nwgm_errs[0]
    assert errs[1] < 0.3 * errs[0]
    assert 0.4 < nwgm_errs[1] / nwgm_errs[0] < 0.6
