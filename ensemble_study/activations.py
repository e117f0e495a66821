"""The hidden activations: one record each, in one place.

An :class:`Activation` holds everything the package needs of a hidden
nonlinearity: its forward function, its derivative (training), its
Gaussian moment rule (moment propagation), its code in the compiled kernels,
the PyTorch module it maps to, the colour figures draw it in, and whether it
is positively homogeneous (``f(c z) = c f(z)`` for ``c > 0``, so that a
dropout before it can be moved after it). The network, training, moment
propagation, the kernels, the PyTorch bridge and the figures read
:data:`ACTIVATIONS`; an unknown name is an error everywhere
(:func:`get`), never a silent default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

_PROBIT = np.pi / 8.0
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, accurate in both tails (no overflow, no 1 - 1)."""
    return np.exp(-np.logaddexp(0.0, -z))


def _identity(z):
    return z


def _relu(z):
    return np.maximum(z, 0.0)


def _relu_moments(mu, s2):
    """The rectified Gaussian's mean and variance, in closed form."""
    s = np.sqrt(s2)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(s > 0, mu / np.where(s > 0, s, 1.0), 0.0)
    cdf, pdf = ndtr(t), _INV_SQRT_2PI * np.exp(-0.5 * t * t)
    mean = np.where(s > 0, mu * cdf + s * pdf, np.maximum(mu, 0.0))
    second = (mu * mu + s2) * cdf + mu * s * pdf
    var = np.where(s > 0, np.maximum(second - mean * mean, 0.0), 0.0)
    return mean, var


def sigmoid_moments(mu, s2):
    """The probit closure: ``E ~ sigmoid(mu / sqrt(1 + pi s2 / 8))``, with
    ``Var ~ E (1 - E) (1 - 1 / sqrt(1 + pi s2 / 8))``."""
    k = 1.0 / np.sqrt(1.0 + _PROBIT * s2)
    mean = sigmoid(mu * k)
    return mean, mean * (1.0 - mean) * (1.0 - k)


def _tanh_moments(mu, s2):
    m, v = sigmoid_moments(2.0 * mu, 4.0 * s2)
    return 2.0 * m - 1.0, 4.0 * v


def _sigmoid_derivative(z):
    s = sigmoid(z)
    return s * (1.0 - s)


def _sigmoid_second_derivative(z):
    s = sigmoid(z)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


def _tanh_second_derivative(z):
    t = np.tanh(z)
    return -2.0 * t * (1.0 - t * t)


def _zero(z):
    return np.zeros_like(np.asarray(z, dtype=np.float64))


@dataclass(frozen=True, eq=False)
class Activation:
    """A hidden activation (see the module docstring).

    Attributes
    ----------
    name : str
    forward : callable
        ``forward(z) -> a``, elementwise.
    derivative : callable
        ``derivative(z) -> da/dz``, elementwise.
    moments : callable
        ``moments(mu, s2) -> (mean, variance)`` of ``forward(z)`` for
        ``z ~ N(mu, s2)`` (exact or a stated closure).
    kernel_code : int
        Its number in the compiled kernels (:mod:`ensemble_study.kernels.compiled`).
    torch : str
        The name of its ``torch.nn`` module.
    color : str
        Its colour in every figure.
    homogeneous : bool
        ``f(c z) = c f(z)`` for every ``c > 0``.
    second_derivative : callable
        ``second_derivative(z) -> d2a/dz2``, elementwise (second-order expansions,
        :mod:`ensemble_study.regularizer_taylor`); 0 for the piecewise-linear ReLU,
        whose second derivative is a point mass at the kink that no finite expansion
        sees. None (a record that has not declared it) makes second-order expansions
        refuse the activation rather than assume 0.
    """

    name: str
    forward: Callable
    derivative: Callable
    moments: Callable
    kernel_code: int
    torch: str
    color: str
    homogeneous: bool = False
    second_derivative: Callable | None = None


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("identity", _identity, np.ones_like, lambda mu, s2: (mu, s2), 0, "Identity",
               "tab:gray", homogeneous=True, second_derivative=_zero),
    Activation("relu", _relu, lambda z: (z > 0).astype(np.float64), _relu_moments, 1, "ReLU",
               "tab:blue", homogeneous=True, second_derivative=_zero),
    Activation("tanh", np.tanh, lambda z: 1.0 - np.tanh(z) ** 2, _tanh_moments, 2, "Tanh",
               "tab:orange", second_derivative=_tanh_second_derivative),
    Activation("sigmoid", sigmoid, _sigmoid_derivative, sigmoid_moments, 3, "Sigmoid",
               "tab:green", second_derivative=_sigmoid_second_derivative),
)}
"""Every hidden activation, by name, in the order tables and figures list them."""

HIDDEN_ACTIVATIONS = tuple(ACTIVATIONS)


def get(name: str) -> Activation:
    """The activation ``name`` (``ValueError`` listing the known ones)."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]
