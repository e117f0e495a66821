"""The predictors of the dropout ensemble: one record each, in one place.

A :class:`Predictor` says what a method is called in tables (``name``, the
``predictor`` column) and in figures and documents (``label``, ``style``),
whether it samples masks (and so takes K and a stream), what it costs in
forward-pass equivalents, and how to call it. The studies, ``evaluate``,
the figures and the documentation blocks take the list from
:data:`PREDICTORS`: a new approximation is one :func:`register` call here
(plus its science tests).

Each predictor is called on a :class:`Case` (one network, dropout config
and batch of inputs), which computes what several predictors share (the
exact ensemble, moment propagation) once, when first asked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .approximations import moment_propagation, nwgm_correction
from .dropout import DropoutConfig, scaled_forward
from .ensemble import exact_ensemble, sample_ensemble
from .laplace import expected_sigmoid
from .network import ACTIVATION_FUNCTIONS, MLP


@dataclass(frozen=True, eq=False)
class Prediction:
    """What a predictor says of the ensemble.

    Attributes
    ----------
    mean : ndarray, shape (n_examples, n_outputs)
        The predicted arithmetic mean.
    variance : ndarray, shape (n_examples, n_outputs), or None
        The predicted variance of the subnetworks' outputs, if the method
        gives one.
    """

    mean: np.ndarray
    variance: np.ndarray | None = None


class Case:
    """One network, dropout config and batch of inputs, with shared quantities cached.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : ndarray, shape (n_examples, n_features)
    """

    def __init__(self, net: MLP, cfg: DropoutConfig, X):
        self.net, self.cfg, self.X = net, cfg, X

    @functools.cached_property
    def exact(self):
        """The exact ensemble (:func:`ensemble_study.exact_ensemble`)."""
        return exact_ensemble(self.net, self.cfg, self.X)

    @functools.cached_property
    def moments(self):
        """Moment propagation's prediction (:func:`ensemble_study.moment_propagation`)."""
        return moment_propagation(self.net, self.cfg, self.X)

    @functools.cached_property
    def moments_quadrature(self):
        """Moment propagation with the quadrature output closure (any output)."""
        return moment_propagation(self.net, self.cfg, self.X, closure="quadrature")

    @functools.cached_property
    def passes(self) -> dict:
        """Sizes of the cost model: multiply-adds of one pass, outer masks, RB's cost.

        ``rb`` is one Rao-Blackwellised sample in forward-pass equivalents: a
        prefix pass plus one multiply-add per inner subnetwork and output of
        the shortcut kernel (``2**h`` inner masks, ``h`` the last hidden
        width) for probability outputs.
        """
        net, cfg = self.net, self.cfg
        macs = sum(w.size for w in net.weights)
        h, k_out = net.sizes[-2], net.sizes[-1]
        n_outer = 2 ** sum(net.sizes[l] for l in cfg.layers
                           if l != net.n_layers - 1 and cfg.layer_keep_prob(l) < 1)
        rb = 1.0 + (2**h * k_out / macs if net.output != "identity" else 0.0)
        return {"macs": macs, "n_outer": n_outer, "rb": rb}


@dataclass(frozen=True, eq=False)
class Predictor:
    """One way of predicting the ensemble (see the module docstring).

    Attributes
    ----------
    name : str
        The ``predictor`` column's value.
    label : str
        Its name in figures and documents.
    style : dict
        Matplotlib keywords of its line or marker (``color``, ``marker``, ``ls``).
    samples : bool
        Whether it draws K masks (``predict`` then takes ``n_samples`` and ``rng``).
    predict : callable
        ``predict(case, n_samples, rng) -> Prediction``.
    cost : callable
        ``cost(case, n_samples) -> float``: forward-pass equivalents.
    outputs : tuple of str
        The output functions it applies to.
    description : str
        One sentence for legends of tables and ``--help``.
    shape : callable, optional
        ``shape(net, cfg) -> str | None``: why it does not apply to this network
        and dropout config (None: it applies). For a predictor that needs more
        than an output function; callers ask :meth:`applies_to`.
    """

    name: str
    label: str
    style: dict
    samples: bool
    predict: Callable
    cost: Callable
    outputs: tuple = ("identity", "sigmoid", "softmax")
    description: str = ""
    extra: dict = field(default_factory=dict)
    shape: Callable | None = None

    def applies(self, output: str) -> bool:
        return output in self.outputs

    def applies_to(self, net: MLP, cfg: DropoutConfig) -> bool:
        """Whether it applies to this network and config (output, and ``shape``)."""
        return self.applies(net.output) and (self.shape is None or self.shape(net, cfg) is None)

    def title(self, n_samples: int = 0) -> str:
        """The label, with K for a sampled predictor (``"MC, K = 10"``)."""
        return self.label + (f", K = {n_samples}" if self.samples and n_samples else "")


PREDICTORS: dict[str, Predictor] = {}
"""Every predictor, by name, in the order studies and tables list them."""


def register(predictor: Predictor) -> Predictor:
    if predictor.name in PREDICTORS:
        raise ValueError(f"predictor {predictor.name!r} is registered twice")
    PREDICTORS[predictor.name] = predictor
    return predictor


def get(name: str) -> Predictor:
    """The predictor ``name`` (``ValueError`` listing the known ones)."""
    if name not in PREDICTORS:
        raise ValueError(f"unknown predictor {name!r}; known: {', '.join(PREDICTORS)}")
    return PREDICTORS[name]


_PROBABILITY = ("sigmoid", "softmax")

register(Predictor(
    "exact", "exact ensemble", {"color": "black", "marker": "*", "ls": "-"}, False,
    predict=lambda case, k, rng: Prediction(case.exact.mean, case.exact.variance),
    cost=lambda case, k: case.passes["n_outer"] * case.passes["rb"],
    description="every subnetwork, enumerated (the truth; its cost is the price of it)",
))
register(Predictor(
    "scaled", "scaled pass", {"color": "tab:red", "marker": "o", "ls": "--"}, False,
    predict=lambda case, k, rng: Prediction(scaled_forward(case.net, case.cfg, case.X)),
    cost=lambda case, k: 1.0,
    description="one deterministic pass with the scheme's test-time scaling (`eval()`)",
))
register(Predictor(
    "nwgm", "NWGM", {"color": "tab:purple", "marker": "s", "ls": ":"}, False,
    predict=lambda case, k, rng: Prediction(case.exact.geometric_mean),
    cost=lambda case, k: float(case.passes["n_outer"]),
    outputs=_PROBABILITY,
    description="the exact normalized weighted geometric mean, read as an estimate of the mean",
))
register(Predictor(
    "nwgm_corrected", "NWGM + B&S correction",
    {"color": "tab:pink", "marker": "D", "ls": "-."}, False,
    predict=lambda case, k, rng: Prediction(
        nwgm_correction(case.exact.geometric_mean, case.moments.variance, case.net.output)),
    cost=lambda case, k: case.passes["n_outer"] + 2.0,
    outputs=_PROBABILITY,
    description="the NWGM plus Baldi & Sadowski's second-order correction V(1-2E)/(1-2V), "
                "V from moment propagation",
))
register(Predictor(
    "nwgm_delta", "NWGM + delta correction",
    {"color": "tab:brown", "marker": "d", "ls": "-."}, False,
    predict=lambda case, k, rng: Prediction(
        nwgm_correction(case.exact.geometric_mean, case.moments.variance, case.net.output,
                        form="delta")),
    cost=lambda case, k: case.passes["n_outer"] + 2.0,
    outputs=_PROBABILITY,
    description="the NWGM plus the delta-method correction V(1-2E)/(2E(1-E)-V) (its softmax "
                "analogue for a softmax), V from moment propagation",
))
register(Predictor(
    "moment_propagation", "moment propagation", {"color": "tab:green", "marker": "^", "ls": "-"},
    False,
    predict=lambda case, k, rng: Prediction(case.moments.mean, case.moments.variance),
    cost=lambda case, k: 2.0,
    description="one pass of means and variances (Wang & Manning 2013)",
))
register(Predictor(
    "moment_quadrature", "moment propagation (quadrature)",
    {"color": "tab:olive", "marker": "v", "ls": "--"}, False,
    predict=lambda case, k, rng: Prediction(case.moments_quadrature.mean,
                                            case.moments_quadrature.variance),
    cost=lambda case, k: 2.0,
    description="moment propagation with the output's mean and variance integrated over its "
                "Gaussian logits (Gauss-Hermite for a sigmoid, the one-dimensional Gumbel "
                "integral for a softmax) instead of the probit closure",
))
register(Predictor(
    "mc", "MC", {"color": "tab:blue", "marker": ".", "ls": "-"}, True,
    predict=lambda case, k, rng: _sampled(case, k, rng, "mc"),
    cost=lambda case, k: float(k),
    description="Monte Carlo dropout: the mean (and variance) of K sampled subnetworks",
))
register(Predictor(
    "rb_mc", "RB MC", {"color": "tab:orange", "marker": ".", "ls": "-"}, True,
    predict=lambda case, k, rng: _sampled(case, k, rng, "rb_mc"),
    cost=lambda case, k: k * case.passes["rb"],
    description="Rao-Blackwellised MC: K sampled outer masks, the last dropped layer averaged "
                "exactly",
))


def _one_layer_to_sigmoid(net: MLP, cfg: DropoutConfig) -> str | None:
    """Why the exact wide-sigmoid integral does not apply (None when it does)."""
    dropped = [l for l in cfg.layers if cfg.layer_keep_prob(l) < 1]
    last = net.n_layers - 1
    if net.output != "sigmoid" or net.sizes[-1] != 1:
        return (f"it needs one sigmoid output unit; this network has {net.sizes[-1]} "
                f"{net.output} output(s)")
    if dropped != [last]:
        return (f"it needs dropout on exactly one layer, the one feeding the output (layer "
                f"{last}); this config drops layers {dropped} (keep_prob < 1)")
    return None


def laplace_sigmoid(net: MLP, cfg: DropoutConfig, X, *, rtol: float = 1e-10) -> np.ndarray:
    """The exact ensemble mean of a sigmoid output fed by the one dropped layer, any width.

    ``E[sigmoid(b + sum_j m_j c_j)]`` with ``c_j = a_j W[j] * scale`` (``a`` the
    dropped layer's activations, ``scale`` 1 under vanilla or ``1/keep_prob``
    under inverted dropout) is a one-dimensional integral
    (:func:`ensemble_study.laplace.expected_sigmoid`, DESIGN fact 17).

    Returns
    -------
    ndarray, shape (n_examples, 1)

    Raises
    ------
    ValueError
        For any other shape (naming what it needs and what it got), or where the
        integral cannot reach ``rtol`` (extreme weights).
    """
    why = _one_layer_to_sigmoid(net, cfg)
    if why is not None:
        raise ValueError(f"the laplace_sigmoid predictor does not apply: {why}. Use the exact "
                         f"ensemble (enumeration) or the certified estimator instead")
    A = np.asarray(X, dtype=np.float64)
    last = net.n_layers - 1
    for l in range(last):
        A = ACTIVATION_FUNCTIONS[net.hidden[l]](A @ net.weights[l] + net.biases[l])
    q = float(cfg.layer_keep_prob(last))
    scale = 1.0 / q if cfg.scheme == "inverted" else 1.0
    c = A * (net.weights[last][:, 0] * scale)
    b = np.full(A.shape[0], float(net.biases[last][0]))
    return np.asarray(expected_sigmoid(b, c, q, rtol=rtol), dtype=np.float64).reshape(-1, 1)


register(Predictor(
    "laplace_sigmoid", "exact wide sigmoid", {"color": "tab:gray", "marker": "x", "ls": ":"},
    False,
    predict=lambda case, k, rng: Prediction(laplace_sigmoid(case.net, case.cfg, case.X)),
    # a pass, then (roughly) a few hundred quadrature nodes of one term per dropped unit
    cost=lambda case, k: 1.0 + 256.0 * case.net.sizes[-2] / case.passes["macs"],
    outputs=("sigmoid",),
    shape=_one_layer_to_sigmoid,
    description="the exact mean of a sigmoid output fed by one dropped layer, at any width, "
                "as a one-dimensional Laplace-transform integral (DESIGN fact 17)",
))


def _sampled(case: Case, k: int, rng, estimator: str) -> Prediction:
    res = sample_ensemble(case.net, case.cfg, case.X, k, rng, estimator=estimator)
    # One plain sample has no spread to estimate a variance from.
    has_variance = k >= 2 or estimator == "rb_mc"
    return Prediction(res.mean, res.variance if has_variance else None)
