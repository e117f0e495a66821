"""The activation registry: each record's derivative and moment rule, and unknown names."""

import numpy as np
import pytest

from ensemble_study.activations import ACTIVATIONS, get
from ensemble_study.train import _activation_grad

Z = np.linspace(-6, 6, 241) + 1e-3  # off the kink of ReLU


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_derivative_is_the_central_difference(name):
    a, h = get(name), 1e-6
    numeric = (a.forward(Z + h) - a.forward(Z - h)) / (2 * h)
    np.testing.assert_allclose(a.derivative(Z), numeric, rtol=1e-6, atol=1e-8)


def _gaussian_moments(f, mu, s2):
    """E f(z) and Var f(z) for z ~ N(mu, s2), by adaptive quadrature (kinks split at 0)."""
    from scipy import integrate, stats

    s = np.sqrt(s2)

    def expect(g):
        return integrate.quad(lambda z: g(z) * stats.norm.pdf(z, mu, s), mu - 12 * s,
                              mu + 12 * s, points=[0.0], epsabs=1e-12, limit=200)[0]

    mean = expect(lambda z: float(f(np.array(z))))
    return mean, expect(lambda z: (float(f(np.array(z))) - mean) ** 2)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("mu, s2", [(0.0, 1.0), (1.5, 0.3), (-2.0, 4.0), (0.7, 0.0)])
def test_moment_rule_against_quadrature(name, mu, s2):
    a = get(name)
    mean, var = (float(v) for v in a.moments(np.array(mu), np.array(s2)))
    ref_mean, ref_var = _gaussian_moments(a.forward, mu, s2) if s2 else (a.forward(mu), 0.0)
    if a.name in ("identity", "relu") or s2 == 0:  # exact rules
        assert mean == pytest.approx(ref_mean, abs=1e-6) and var == pytest.approx(ref_var, abs=1e-6)
    else:  # the probit closure: close, not exact (see moment_propagation)
        assert mean == pytest.approx(ref_mean, abs=0.03) and var == pytest.approx(ref_var, abs=0.06)


def test_unknown_activation_is_an_error_everywhere():
    with pytest.raises(ValueError, match="unknown activation 'gelu'; known: identity, relu"):
        get("gelu")
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        _activation_grad("gelu", Z)


def test_kernel_codes_and_torch_modules_are_distinct():
    codes = [a.kernel_code for a in ACTIVATIONS.values()]
    assert len(set(codes)) == len(codes)
    torch = pytest.importorskip("torch")
    for a in ACTIVATIONS.values():
        module = getattr(torch.nn, a.torch)()
        z = torch.tensor(Z, dtype=torch.float64)
        np.testing.assert_allclose(module(z).numpy(), a.forward(Z), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_second_derivative_is_the_central_difference_of_the_derivative(name):
    a, h = get(name), 1e-5
    assert a.second_derivative is not None, f"{name} declares no second derivative"
    numeric = (a.derivative(Z + h) - a.derivative(Z - h)) / (2 * h)
    np.testing.assert_allclose(a.second_derivative(Z), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name, z, expected", [
    ("tanh", 0.0, 0.0), ("sigmoid", 0.0, 0.0), ("relu", 1.3, 0.0), ("identity", -2.0, 0.0),
    # tanh'' = -2 tanh sech^2 and sigmoid'' = s(1-s)(1-2s), at z = log 3: s = 3/4.
    ("sigmoid", np.log(3.0), 0.75 * 0.25 * -0.5),
    ("tanh", np.arctanh(0.5), -2 * 0.5 * 0.75)])
def test_second_derivative_known_values(name, z, expected):
    assert float(get(name).second_derivative(np.array(z))) == pytest.approx(expected, abs=1e-15)
