"""The second-order MLP dropout regularizer: exact jets, known answers and limits.

References are independent of the jets: central finite differences of the plain forward
pass (:func:`ensemble_study.network.forward` with explicit multipliers), enumeration of
every mask (:func:`ensemble_study.regularizer.mlp_regularizer`), and the GLM formulas of
DESIGN fact 16 (:func:`~ensemble_study.regularizer.logistic_quadratic`,
:func:`~ensemble_study.regularizer.softmax_quadratic`).
"""

import dataclasses

import numpy as np
import pytest
from scipy.special import logsumexp

from ensemble_study import regularizer as reg
from ensemble_study import regularizer_taylor as rt
from ensemble_study.activations import ACTIVATIONS
from ensemble_study.dropout import DropoutConfig, convert_scheme, unit_keep_probs
from ensemble_study.network import MLP, forward


def _net(hidden, output, seed, sizes):
    return MLP.random(sizes, hidden, output, rng=seed, bias_scale=0.3)


def _labels(output, n, k, seed):
    g = np.random.default_rng(seed)
    if output == "softmax":
        return g.integers(0, k, n)
    if output == "sigmoid":
        return g.integers(0, 2, n)
    return g.normal(size=(n, k))


def _mults(net, cfg, values):
    """Per-layer 1-D multipliers from one flat vector over the dropped units."""
    out, s = {}, 0
    for l in cfg.layers:
        w = net.sizes[l]
        out[l] = values[s:s + w]
        s += w
    return out


def _loss(net, cfg, X, y, values):
    """Per-example loss ``A(z) - t(y).z`` at the multipliers ``values``, shape (n,)."""
    z = forward(net, X, _mults(net, cfg, values), logits=True)
    if net.output == "softmax":
        return logsumexp(z, axis=1) - z[np.arange(len(y)), y]
    if net.output == "sigmoid":
        return np.logaddexp(0.0, z[:, 0]) - y * z[:, 0]
    return 0.5 * np.sum(z ** 2, axis=1) - np.sum(y * z, axis=1)


CASES = [  # (hidden, sizes, dropped layers)
    (("tanh", "sigmoid"), (3, 4, 3, 3), (0, 1, 2)),
    (("relu", "tanh"), (3, 4, 3, 3), (1,)),
    (("sigmoid", "identity"), (3, 4, 3, 3), (0, 2)),
    (("tanh",), (4, 5, 3), (1,)),
]


@pytest.mark.parametrize("hidden, sizes, layers", CASES)
@pytest.mark.parametrize("scheme", ["inverted", "vanilla"])
def test_jets_are_central_differences_of_the_forward_pass(hidden, sizes, layers, scheme):
    net = _net(hidden, "identity", 3, sizes)
    cfg = DropoutConfig(0.7, layers=layers, scheme=scheme)
    X = np.random.default_rng(4).normal(size=(5, sizes[0]))
    jets = rt.mask_jets(net, cfg, X)
    q = unit_keep_probs(net, cfg)
    mu = q if scheme == "vanilla" else np.ones_like(q)
    np.testing.assert_array_equal(jets.mean, mu)
    np.testing.assert_allclose(jets.variance, q * (1 - q) if scheme == "vanilla"
                               else (1 - q) / q, rtol=1e-15)
    np.testing.assert_allclose(jets.logits, forward(net, X, _mults(net, cfg, mu), logits=True),
                               rtol=1e-13, atol=1e-14)
    D = mu.size
    assert jets.first.shape == jets.second.shape == (D, 5, sizes[-1])
    h1, h2 = 1e-6, 1e-4
    for j in range(D):
        e = np.zeros(D)
        e[j] = 1.0

        def z(t, e=e):
            return forward(net, X, _mults(net, cfg, mu + t * e), logits=True)

        d1 = (z(h1) - z(-h1)) / (2 * h1)
        d2 = (z(h2) - 2 * z(0.0) + z(-h2)) / h2 ** 2
        np.testing.assert_allclose(jets.first[j], d1, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(jets.second[j], d2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_loss_second_derivative_is_the_central_difference(output):
    """``1/2 sum_j Var_j d2L/dmult_j^2`` summed over examples, against a second difference
    of the loss itself; Gauss-Newton against the second difference with the network
    linearised (z replaced by z + t J_j)."""
    k = 1 if output == "sigmoid" else 3
    net = _net(("tanh", "sigmoid"), output, 8, (3, 4, 3, k))
    cfg = DropoutConfig({0: 0.6, 2: 0.8}, scheme="inverted")
    X = np.random.default_rng(9).normal(size=(6, 3))
    y = _labels(output, 6, k, 10)
    v = (1 - unit_keep_probs(net, cfg)) / unit_keep_probs(net, cfg)
    D, h = v.size, 1e-4
    ones = np.ones(D)
    ref = 0.0
    for j in range(D):
        e = np.eye(D)[j]
        d2 = (_loss(net, cfg, X, y, ones + h * e) - 2 * _loss(net, cfg, X, y, ones)
              + _loss(net, cfg, X, y, ones - h * e)) / h ** 2
        ref += 0.5 * v[j] * d2.sum()
    got = rt.mlp_second_order(net, cfg, X, y)
    assert got["total"] == pytest.approx(ref, rel=1e-6)
    assert got["total"] == pytest.approx(got["label_free"] + got["label_dependent"], rel=1e-14)


@pytest.mark.parametrize("output", ["identity", "sigmoid", "softmax"])
@pytest.mark.parametrize("scheme", ["inverted", "vanilla"])
def test_identity_after_the_dropped_layers_kills_the_label_part_and_gauss_newton_is_full(
        output, scheme):
    """Fact 10: z is multilinear in the multipliers, so d2z/dmult_j^2 = 0 exactly."""
    k = 1 if output == "sigmoid" else 3
    net = _net(("tanh", "identity"), output, 11, (3, 4, 3, k))
    X = np.random.default_rng(12).normal(size=(6, 3))
    y = _labels(output, 6, k, 13)
    for layers in ((1,), (2,), (1, 2)):
        cfg = DropoutConfig(0.5, layers=layers, scheme=scheme)
        jets = rt.mask_jets(net, cfg, X)
        assert np.all(jets.second == 0.0)
        full = rt.mlp_second_order(net, cfg, X, y)
        gn = rt.mlp_second_order(net, cfg, X, y, kind="gauss_newton")
        assert full["label_dependent"] == 0.0
        assert full["total"] == gn["total"] == full["label_free"]
        assert reg.mlp_regularizer(net, cfg, X, y)["label_dependent"] == pytest.approx(
            0.0, abs=1e-12)


@pytest.mark.parametrize("scheme", ["inverted", "vanilla"])
@pytest.mark.parametrize("hidden, layer", [(("tanh", "relu"), 2), (("sigmoid", "identity"), 1)])
def test_quadratic_loss_in_the_masks_second_order_is_exact(scheme, hidden, layer):
    """One dropped layer followed by identities only, and squared loss: the loss is a
    quadratic in the multipliers, so its second-order expansion is the exact regularizer."""
    net = _net(hidden, "identity", 14, (3, 5, 4, 2))
    X = np.random.default_rng(15).normal(size=(7, 3))
    y = _labels("identity", 7, 2, 16)
    cfg = DropoutConfig(0.35, layers=(layer,), scheme=scheme)
    exact = reg.mlp_regularizer(net, cfg, X, y)
    for kind in rt.KINDS:
        approx = rt.mlp_second_order(net, cfg, X, y, kind=kind)
        for part in ("total", "label_free", "label_dependent"):
            assert approx[part] == pytest.approx(exact[part], rel=1e-11, abs=1e-12)


def test_two_dropped_layers_quadratic_loss_misses_only_the_product_of_variances():
    """Two dropped layers (identity after both), squared loss: z = b + sum_uv c_uv m_u n_v
    is bilinear and E A(z~) - A(z) has, beyond the diagonal second-order term, exactly
    ``1/2 sum_{u,v} Var(m_u) Var(n_v) sum_i |c_uv,i|^2`` (the fourth-order term)."""
    net = _net(("identity", "identity"), "identity", 17, (3, 3, 2, 2))
    X = np.random.default_rng(18).normal(size=(4, 3))
    y = _labels("identity", 4, 2, 19)
    cfg = DropoutConfig({1: 0.4, 2: 0.7}, scheme="inverted")
    exact = reg.mlp_regularizer(net, cfg, X, y)["total"]
    approx = rt.mlp_second_order(net, cfg, X, y)["total"]
    A1 = X @ net.weights[0] + net.biases[0]                      # (n, 3), layer 1
    W1, W2 = net.weights[1], net.weights[2]
    # c_uv,i = A1[i, u] W1[u, v] W2[v, :] (inverted: multipliers at mean 1)
    c = A1[:, :, None, None] * W1[None, :, :, None] * W2[None, None, :, :]
    v1, v2 = (1 - 0.4) / 0.4, (1 - 0.7) / 0.7
    fourth = 0.5 * v1 * v2 * np.sum(c ** 2)
    assert exact - approx == pytest.approx(fourth, rel=1e-10)


@pytest.mark.parametrize("q", [0.3, 0.8])
def test_logistic_regression_is_wagers_quadratic(q):
    """No hidden layer, inverted input dropout: fact 16's R^q."""
    X, beta, y = np.random.default_rng(20).normal(size=(9, 5)), \
        np.random.default_rng(21).normal(size=5), np.random.default_rng(22).integers(0, 2, 9)
    net = MLP.from_arrays([beta[:, None]], [np.array([0.3])], hidden=(), output="sigmoid")
    cfg = DropoutConfig(q, layers=(0,))
    ref = reg.logistic_quadratic(X, beta, q, 0.3)
    for kind in rt.KINDS:
        got = rt.mlp_second_order(net, cfg, X, y, kind=kind)
        assert got["total"] == pytest.approx(ref, rel=1e-12)
        assert got["label_dependent"] == 0.0


def test_softmax_regression_is_the_trace_formula():
    g = np.random.default_rng(23)
    X, W, c = g.normal(size=(8, 4)), g.normal(size=(4, 3)), g.normal(size=3)
    net = MLP.from_arrays([W], [c], hidden=(), output="softmax")
    got = rt.mlp_second_order(net, DropoutConfig(0.6, layers=(0,)), X, g.integers(0, 3, 8))
    assert got["total"] == pytest.approx(reg.softmax_quadratic(X, W, 0.6, c), rel=1e-12)


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_vanilla_and_inverted_agree_on_equivalent_networks(output):
    """Fact 5: the same function family, so the same expansion."""
    k = 1 if output == "sigmoid" else 3
    net = _net(("tanh", "relu"), output, 24, (3, 4, 3, k))
    cfg = DropoutConfig({0: 0.6, 1: 0.4}, scheme="inverted")
    X = np.random.default_rng(25).normal(size=(5, 3))
    y = _labels(output, 5, k, 26)
    net_v, cfg_v = convert_scheme(net, cfg, "vanilla")
    for kind in rt.KINDS:
        a = rt.mlp_second_order(net, cfg, X, y, kind=kind)
        b = rt.mlp_second_order(net_v, cfg_v, X, y, kind=kind)
        for part in a:
            assert a[part] == pytest.approx(b[part], rel=1e-10, abs=1e-13)


def test_keep_prob_to_one_limit_is_the_one_drop_taylor_remainder():
    """As q -> 1 both R and its expansion are O(1 - q), but a dropped unit is a jump of
    its multiplier from 1 to 0, not a small step: R / (1 - q) tends to
    ``sum_j L(drop j) - L(1) + dL/dmult_j`` (the exact Taylor remainder of each one-unit
    drop), the expansion / (1 - q) to ``1/2 sum_j d2L/dmult_j^2``. Their ratio tends to
    1 only when the loss is quadratic along each multiplier."""
    net = _net(("tanh", "tanh"), "softmax", 27, (3, 4, 3, 3))
    X = np.random.default_rng(28).normal(size=(6, 3))
    y = _labels("softmax", 6, 3, 29)
    layers = (1, 2)
    D = sum(net.sizes[l] for l in layers)
    probe = DropoutConfig(0.5, layers=layers)
    ones, h = np.ones(D), 1e-5
    L1 = _loss(net, probe, X, y, ones).sum()
    jump = quad = 0.0
    for j in range(D):
        e = np.eye(D)[j]
        Lp, Lm = _loss(net, probe, X, y, ones + h * e).sum(), \
            _loss(net, probe, X, y, ones - h * e).sum()
        jump += _loss(net, probe, X, y, ones - e).sum() - L1 + (Lp - Lm) / (2 * h)
        quad += 0.5 * (Lp - 2 * L1 + Lm) / h ** 2
    gaps = []
    for eps in (1e-3, 1e-4):
        cfg = DropoutConfig(1 - eps, layers=layers, scheme="inverted")
        exact = reg.mlp_regularizer(net, cfg, X, y)["total"]
        approx = rt.mlp_second_order(net, cfg, X, y)["total"]
        assert exact / eps == pytest.approx(jump, rel=2 * eps)
        assert approx / eps == pytest.approx(quad, rel=1e-3)
        gaps.append(abs(approx / exact - quad / jump))
    assert abs(quad / jump - 1) > 0.05      # the limit is not 1 for this network
    assert gaps[1] < 0.2 * gaps[0]          # and the ratio converges to it, like 1 - q


@pytest.mark.parametrize("scheme", ["inverted", "vanilla"])
def test_small_contributions_limit_ratio_tends_to_one(scheme):
    """Scaling the weights leaving every dropped layer by eps makes each multiplier's
    effect on the next pre-activations O(eps): the k-th order term is O(eps^k), so
    second order / exact = 1 + O(eps), at any keep_prob."""
    base = _net(("tanh", "sigmoid"), "softmax", 30, (3, 4, 3, 3))
    X = np.random.default_rng(31).normal(size=(6, 3))
    y = _labels("softmax", 6, 3, 32)
    cfg = DropoutConfig(0.5, layers=(1, 2), scheme=scheme)
    errors, label_errors = [], []
    for eps in (0.1, 0.01):
        W = [w * (eps if l in cfg.layers else 1.0) for l, w in enumerate(base.weights)]
        net = MLP(tuple(W), base.biases, base.hidden, base.output)
        exact = reg.mlp_regularizer(net, cfg, X, y)
        approx = rt.mlp_second_order(net, cfg, X, y)
        errors.append(abs(approx["total"] / exact["total"] - 1))
        label_errors.append(abs(approx["label_dependent"] / exact["label_dependent"] - 1))
    assert errors[1] < 1e-3 and label_errors[1] < 1e-3
    assert errors[1] < 0.1 * errors[0] and label_errors[1] < 0.1 * label_errors[0]


def test_gauss_newton_is_nonnegative_and_label_free():
    net = _net(("tanh", "sigmoid"), "softmax", 33, (3, 4, 3, 3))
    X = np.random.default_rng(34).normal(size=(6, 3))
    cfg = DropoutConfig(0.5, layers=(0, 1, 2))
    values = {rt.mlp_second_order(net, cfg, X, _labels("softmax", 6, 3, s),
                                  kind="gauss_newton")["total"] for s in (35, 36, 37)}
    assert len(values) == 1 and min(values) > 0


def test_chunks_do_not_change_the_result():
    net = _net(("tanh", "relu"), "softmax", 38, (3, 4, 3, 3))
    X = np.random.default_rng(39).normal(size=(7, 3))
    y = _labels("softmax", 7, 3, 40)
    cfg = DropoutConfig(0.5, layers=(1, 2))
    a = rt.mlp_second_order(net, cfg, X, y, chunk_size=2)
    b = rt.mlp_second_order(net, cfg, X, y)
    for part in a:
        assert a[part] == pytest.approx(b[part], rel=1e-13, abs=1e-15)


def test_bad_inputs(monkeypatch):
    net = _net(("tanh", "tanh"), "softmax", 41, (3, 4, 3, 3))
    X = np.zeros((2, 3))
    cfg = DropoutConfig(0.5, layers=(1,))
    with pytest.raises(ValueError, match="kind must be one of"):
        rt.mlp_second_order(net, cfg, X, np.array([0, 1]), kind="diag")
    with pytest.raises(ValueError, match="class index"):
        rt.mlp_second_order(net, cfg, X, np.array([0, 3]))
    with pytest.raises(ValueError, match="layers: cannot drop layer 3"):
        rt.mask_jets(net, DropoutConfig(0.5, layers=(3,)), X)
    with pytest.raises(ValueError, match="chunk_size"):
        rt.mlp_second_order(net, cfg, X, np.array([0, 1]), chunk_size=0)
    monkeypatch.setitem(ACTIVATIONS, "tanh",
                        dataclasses.replace(ACTIVATIONS["tanh"], second_derivative=None))
    with pytest.raises(ValueError, match="declares no second_derivative"):
        rt.mask_jets(net, cfg, X)
