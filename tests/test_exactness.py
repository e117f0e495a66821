"""DESIGN fact 10: when the scaled pass is exact.

If every activation after the first dropped layer is the identity, the logits
are multilinear in independent masks, so ``E[z]`` is the scaled pass's logits:
the mean of an identity output and the NWGM of a sigmoid or softmax output
equal the scaled pass, whatever the dropped layers, however many, and
whatever nonlinearities come before the first of them. Fact 3 is the special
case of one dropped layer.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import assert_close, brute_force

from ensemble_study import MLP, DropoutConfig, exact_ensemble, scaled_forward

NONLINEAR = ("relu", "tanh", "sigmoid")
N_OUT = {"identity": 2, "sigmoid": 2, "softmax": 3}


def _statistic(res, output):
    """The ensemble statistic the scaled pass must equal (fact 10)."""
    return res.mean if output == "identity" else res.geometric_mean


@st.composite
def exact_cases(draw):
    """A network whose activations after its first dropped layer are identities.

    Sizes stay small (at most 10 dropped units) so the brute force is quick.
    """
    n_hidden = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 3)) for _ in range(n_hidden + 1)]
    first = draw(st.integers(0, n_hidden))  # first dropped activation layer
    later = draw(st.sets(st.integers(first + 1, n_hidden), max_size=n_hidden - first)
                 if first < n_hidden else st.just(set()))
    layers = sorted({first} | later)
    if sum(sizes[l] for l in layers) > 10:
        layers = [first]
    # Hidden layer h (activation index h + 1) comes after the first dropped
    # layer when h + 1 > first; before it, anything goes.
    hidden = [draw(st.sampled_from(NONLINEAR)) if h + 1 <= first else "identity"
              for h in range(n_hidden)]
    output = draw(st.sampled_from(("identity", "sigmoid", "softmax")))
    keep = {l: draw(st.floats(0.05, 0.95)) for l in layers}
    scheme = draw(st.sampled_from(("vanilla", "inverted")))
    seed = draw(st.integers(0, 2**32 - 1))
    return sizes, hidden, output, keep, scheme, seed


@settings(deadline=None, max_examples=60)
@given(exact_cases())
def test_fact10_scaled_pass_is_exact_after_the_first_dropped_layer(case):
    sizes, hidden, output, keep, scheme, seed = case
    gen = np.random.default_rng(seed)
    net = MLP.random(tuple(sizes) + (N_OUT[output],), hidden, output, rng=gen)
    # Scale the weights up so that the nonlinear layers before the dropped
    # ones are far from linear (a weak test would pass by near-linearity).
    net = MLP.from_arrays([2 * w for w in net.weights], net.biases, net.hidden, net.output)
    cfg = DropoutConfig(keep, scheme=scheme)
    X = gen.normal(size=(4, sizes[0]))
    single = scaled_forward(net, cfg, X)
    assert_close(_statistic(exact_ensemble(net, cfg, X), output), single, tol=1e-10)
    assert_close(_statistic(brute_force(net, cfg, X), output), single, tol=1e-10)


@pytest.mark.parametrize("scheme", ("vanilla", "inverted"))
@pytest.mark.parametrize("output", ("identity", "sigmoid", "softmax"))
def test_fact10_several_dropped_layers_behind_nonlinear_ones(output, scheme, seed):
    # relu, tanh before the first dropped layer (2); layers 2, 3, 4 dropped,
    # identities after layer 2.
    sizes = (3, 4, 3, 3, 2, N_OUT[output])
    net = MLP.random(sizes, ["relu", "tanh", "identity", "identity"], output, rng=seed)
    cfg = DropoutConfig({2: 0.3, 3: 0.6, 4: 0.8}, scheme=scheme)
    X = np.random.default_rng(seed).normal(size=(5, 3))
    res = exact_ensemble(net, cfg, X)
    assert_close(_statistic(res, output), scaled_forward(net, cfg, X))
    # The subnetworks do differ, and the arithmetic mean of a probability
    # output is another average.
    assert np.all(res.variance > 1e-8)
    if output != "identity":
        assert np.max(np.abs(res.mean - scaled_forward(net, cfg, X))) > 1e-6


@pytest.mark.parametrize("nonlinear", NONLINEAR)
@pytest.mark.parametrize("output", ("identity", "sigmoid", "softmax"))
def test_fact10_fails_with_a_nonlinearity_after_the_first_dropped_layer(nonlinear, output):
    # The same shape, one nonlinear layer between two dropped layers.
    sizes = (3, 4, 3, 3, 2, N_OUT[output])
    net = MLP.random(sizes, ["relu", "tanh", nonlinear, "identity"], output, rng=0)
    net = MLP.from_arrays([3 * w for w in net.weights], net.biases, net.hidden, net.output)
    cfg = DropoutConfig({2: 0.3, 4: 0.8})
    X = np.random.default_rng(0).normal(size=(5, 3))
    gap = _statistic(exact_ensemble(net, cfg, X), output) - scaled_forward(net, cfg, X)
    assert np.max(np.abs(gap)) > 1e-6
