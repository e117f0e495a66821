"""The fast exact paths against brute force (tests/reference.py).

Every path must agree with the plain loop over masks to 1e-10 *relative*
error (no absolute floor): the shortcuts are exact algebra, so anything
larger is a bug, not rounding. Networks are tiny (at most ~11 dropped units)
so that the reference stays fast.
"""

import itertools
import shutil

import numpy as np
import pytest
from reference import brute_force

from ensemble_study import MLP, DropoutConfig, exact_ensemble, kernels, sample_ensemble
from ensemble_study.ensemble import subnetwork_outputs
from ensemble_study.kernels import reference
from ensemble_study.network import sigmoid, softmax

RTOL = 1e-10


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0)


def close_variance(actual, expected, mean):
    """Relative, except that a variance that is exactly zero (no dropped unit
    reaches that output) comes out of the reference as (rounding of y - E y)**2:
    below (1e-14 |E y|)**2, far beneath any variance that is not zero."""
    floor = (1e-14 * np.abs(mean)) ** 2
    assert np.all(np.abs(actual - expected) <= RTOL * np.abs(expected) + floor), (
        actual, expected)


def assert_matches(result, ref):
    close(result.mean, ref.mean)
    close_variance(result.variance, ref.variance, ref.mean)
    if ref.geometric_mean is None:
        assert result.geometric_mean is None
    else:
        close(result.geometric_mean, ref.geometric_mean)


def make(sizes, output, seed, hidden="relu", scale=1.0):
    rng = np.random.default_rng(seed)
    net = MLP.random(sizes, hidden, output, rng=rng, bias_scale=0.3)
    if scale != 1.0:
        net = MLP.from_arrays([w * scale for w in net.weights], net.biases, net.hidden, output)
    return net, rng.normal(size=(4, sizes[0]))


# (sizes, keep_prob per layer, which path): every case has <= 11 dropped units.
CASES = [
    ((3, 4, 3), {1: 0.5}, "shortcut"),  # only the last hidden layer
    ((3, 4, 3, 3), {1: 0.6, 2: 0.3}, "shortcut"),  # outer + inner
    ((3, 3), {0: 0.7}, "shortcut"),  # input dropout, no hidden layer
    ((2, 3, 3, 2, 3), {0: 0.8, 2: 1.0, 3: 0.4}, "shortcut"),  # keep_prob=1 outer layer
    ((2, 3, 3, 3), {1: 0.5, 2: 1.0}, "generic"),  # last dropped layer has keep_prob=1
    ((3, 4, 3, 3), {0: 0.5}, "generic"),  # input dropout under hidden layers
    ((2, 3, 3, 3, 3), {1: 0.7, 2: 0.4}, "generic"),  # last dropped layer is not L-1
]
OUTPUTS = [("identity", None), ("softmax", None), ("sigmoid", 1), ("sigmoid", 2)]


@pytest.mark.parametrize("sizes,keep_prob,path", CASES)
@pytest.mark.parametrize("output,n_out", OUTPUTS)
@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
def test_exact_ensemble_matches_brute_force(sizes, keep_prob, path, output, n_out, scheme, seed):
    if n_out is not None:
        sizes = sizes[:-1] + (n_out,)
    net, X = make(sizes, output, seed, hidden=["relu", "tanh", "sigmoid"][: len(sizes) - 2])
    cfg = DropoutConfig(keep_prob, scheme=scheme)
    assert (kernels.shortcut_plan(net, cfg) is not None) == (path == "shortcut")
    ref = brute_force(net, cfg, X)
    for chunk_size in (None, 1, 5, 64):
        assert_matches(exact_ensemble(net, cfg, X, chunk_size=chunk_size), ref)


@pytest.mark.parametrize("output", ["identity", "softmax", "sigmoid"])
def test_threads_do_not_change_a_bit(output):
    # Chunks are merged in chunk order whatever finishes first.
    net, X = make((3, 5, 4, 2 if output != "softmax" else 3), output, 0)
    cfg = DropoutConfig({1: 0.5, 2: 0.6}, scheme="inverted")
    plan = kernels.shortcut_plan(net, cfg)
    one = kernels.shortcut_moments(net, cfg, X, plan, chunk_size=16, n_threads=1)
    two = kernels.shortcut_moments(net, cfg, X, plan, chunk_size=16, n_threads=2)
    for a, b in [(one.mean, two.mean), (one.m2, two.m2), (one.mean_logits, two.mean_logits)]:
        np.testing.assert_array_equal(a, b)


def test_mean_logits_alone_match_brute_force(seed):
    # arithmetic=False enumerates only the outer masks: E[z] and hence the NWGM.
    net, X = make((3, 4, 4, 3), "softmax", seed)
    cfg = DropoutConfig({1: 0.6, 2: 0.3}, scheme="vanilla")
    ref = brute_force(MLP.from_arrays(net.weights, net.biases, net.hidden, "identity"), cfg, X)
    acc = kernels.shortcut_moments(net, cfg, X, kernels.shortcut_plan(net, cfg),
                                   arithmetic=False, variance=False)
    close(acc.mean_logits, ref.mean)
    close(softmax(acc.mean_logits), brute_force(net, cfg, X).geometric_mean)


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_mean_without_variance_matches_brute_force(output, seed):
    net, X = make((3, 4, 5, 3 if output == "softmax" else 2), output, seed)
    cfg = DropoutConfig({1: 0.7, 2: 0.4}, scheme="inverted")
    acc = kernels.shortcut_moments(net, cfg, X, kernels.shortcut_plan(net, cfg), variance=False,
                                   chunk_size=8)
    close(acc.mean, brute_force(net, cfg, X).mean)


# --- DESIGN.md fact 9: the last dropped layer's mask can be replaced by its mean.


def _last_layer_replaced_by_its_mean(net, cfg):
    """The network whose layer L-1 is always kept at its expected multiplier,
    and the config of the other dropped layers (vanilla: E[m] = q; inverted:
    E[m / q] = 1)."""
    L = net.n_layers
    q = cfg.layer_keep_prob(L - 1)
    weights = list(net.weights)
    if cfg.scheme == "vanilla":
        weights[-1] = weights[-1] * q
    mean_net = MLP.from_arrays(weights, net.biases, net.hidden, net.output)
    others = {l: cfg.layer_keep_prob(l) for l in cfg.layers if l != L - 1}
    return mean_net, (DropoutConfig(others, scheme=cfg.scheme) if others else None)


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
@pytest.mark.parametrize("keep_prob", [{2: 0.3}, {1: 0.5, 2: 0.7}, {0: 0.6, 1: 1.0, 2: 0.4}])
def test_fact9_identity_mean_is_analytic_over_the_last_dropped_layer(scheme, keep_prob, seed):
    net, X = make((3, 4, 3, 2), "identity", seed)
    cfg = DropoutConfig(keep_prob, scheme=scheme)
    mean_net, others = _last_layer_replaced_by_its_mean(net, cfg)
    expected = (brute_force(mean_net, others, X).mean if others is not None
                else brute_force(mean_net, DropoutConfig(1.0, layers=[0]), X).mean)
    close(brute_force(net, cfg, X).mean, expected)  # the fact itself
    close(exact_ensemble(net, cfg, X).mean, expected)  # and the package's use of it


@pytest.mark.parametrize("output,n_out", [("softmax", 3), ("sigmoid", 1), ("sigmoid", 2)])
@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
@pytest.mark.parametrize("keep_prob", [{2: 0.3}, {1: 0.5, 2: 0.7}, {0: 0.6, 2: 0.4}])
def test_fact9_nwgm_is_the_output_of_the_expected_logits(output, n_out, scheme, keep_prob, seed):
    net, X = make((3, 4, 3, n_out), output, seed)
    cfg = DropoutConfig(keep_prob, scheme=scheme)
    mean_net, others = _last_layer_replaced_by_its_mean(net, cfg)
    logits_net = MLP.from_arrays(mean_net.weights, mean_net.biases, mean_net.hidden, "identity")
    others = others if others is not None else DropoutConfig(1.0, layers=[0])
    expected_logits = brute_force(logits_net, others, X).mean
    f = softmax if output == "softmax" else sigmoid
    close(brute_force(net, cfg, X).geometric_mean, f(expected_logits))
    close(exact_ensemble(net, cfg, X).geometric_mean, f(expected_logits))


# --- The softmax block on its own: guards and fallbacks.


def _block_reference(V, bias, q):
    """Mean and two-pass variance over every inner mask, one loop step each."""
    B, n, K = V.shape
    mean, var = np.zeros((B, K)), np.zeros((B, K))
    masks = list(itertools.product((0, 1), repeat=n))
    probs = [np.prod([q if m else 1 - q for m in mask]) for mask in masks]
    for b in range(B):
        ys = [softmax(bias[b] + np.array(mask) @ V[b]) for mask in masks]
        mean[b] = sum(p * y for p, y in zip(probs, ys))
        var[b] = sum(p * (y - mean[b]) ** 2 for p, y in zip(probs, ys))
    return mean, var


def test_underflow_falls_back_to_log_space():
    # Logit spreads above 700 inside one subnetwork: exp(-700) is near the
    # bottom of float64, and 1 / D**2 would overflow without the guard.
    rng = np.random.default_rng(3)
    V = rng.normal(size=(6, 5, 4)) * 300.0
    bias = rng.normal(size=(6, 4))
    z = bias[:, None, :] + reference._bits(5) @ V
    assert (z.max(axis=-1) - z.min(axis=-1)).max() > 700
    mean, var = reference._softmax_block(V, bias, 0.4, variance=True)
    ref_mean, ref_var = _block_reference(V, bias, 0.4)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(var))
    close(mean, ref_mean)
    close(var, ref_var)


def test_underflow_through_exact_ensemble(seed):
    net, X = make((3, 4, 4, 3), "softmax", seed, scale=40.0)
    cfg = DropoutConfig({1: 0.5, 2: 0.5}, scheme="inverted")
    logits = subnetwork_outputs(net, cfg, X, np.ones((1, 8), dtype=bool), logits=True)
    assert np.ptp(logits, axis=-1).max() > 700
    assert_matches(exact_ensemble(net, cfg, X), brute_force(net, cfg, X))


def test_small_variance_avoids_cancellation():
    # Tiny logit contributions: Var(y) / E[y^2] ~ 1e-8, where E[y^2] - E[y]^2
    # would lose about 8 of 16 digits; the guard recomputes it centred.
    rng = np.random.default_rng(4)
    V = rng.normal(size=(5, 6, 3)) * 1e-4
    bias = rng.normal(size=(5, 3))
    mean, var = reference._softmax_block(V, bias, 0.5, variance=True)
    ref_mean, ref_var = _block_reference(V, bias, 0.5)
    assert (ref_var / ref_mean**2).max() < 1e-6
    close(mean, ref_mean)
    close(var, ref_var)


def test_block_matches_reference_on_ordinary_logits(seed):
    rng = np.random.default_rng(seed)
    V, bias = rng.normal(size=(7, 7, 5)), rng.normal(size=5)
    for variance in (True, False):
        mean, var = reference._softmax_block(V, bias, 0.3, variance=variance)
        ref_mean, ref_var = _block_reference(V, np.broadcast_to(bias, (7, 5)), 0.3)
        close(mean, ref_mean)
        if variance:
            close(var, ref_var)


@pytest.mark.parametrize("budget", [8, 64])
def test_tiny_memory_budget_tiles_the_block_exactly(monkeypatch, budget):
    # A block of one pair larger than the budget is split into rows of T1
    # (what keeps memory bounded for a wide last layer); same numbers.
    monkeypatch.setattr(reference, "_BLOCK_ELEMENTS", budget)
    rng = np.random.default_rng(5)
    for V in (rng.normal(size=(3, 7, 4)), rng.normal(size=(3, 7, 4)) * 300.0,
              rng.normal(size=(3, 7, 4)) * 1e-4):
        bias = rng.normal(size=(3, 4))
        mean, var = reference._softmax_block(V, bias, 0.6, variance=True)
        ref_mean, ref_var = _block_reference(V, bias, 0.6)
        close(mean, ref_mean)
        close(var, ref_var)
        close(reference._softmax_block(V, bias, 0.6, variance=False)[0], ref_mean)
    net, X = make((3, 4, 5, 3), "softmax", 1)
    cfg = DropoutConfig({1: 0.5, 2: 0.5}, scheme="vanilla")
    assert_matches(exact_ensemble(net, cfg, X), brute_force(net, cfg, X))


def _sigmoid_reference(V, bias, q):
    B, n, K = V.shape
    masks = list(itertools.product((0, 1), repeat=n))
    probs = [np.prod([q if m else 1 - q for m in mask]) for mask in masks]
    ys = [sigmoid(bias + np.einsum("j,bjk->bk", np.array(mask, float), V)) for mask in masks]
    mean = sum(p * y for p, y in zip(probs, ys))
    return mean, sum(p * (y - mean) ** 2 for p, y in zip(probs, ys))


@pytest.mark.parametrize("scale", [1.0, 300.0, 1e-4])  # ordinary, |z| > 700, tiny spread
@pytest.mark.parametrize("budget", [None, 8])
def test_sigmoid_block_matches_reference(monkeypatch, scale, budget):
    if budget is not None:
        monkeypatch.setattr(reference, "_BLOCK_ELEMENTS", budget)
    rng = np.random.default_rng(6)
    V, bias = rng.normal(size=(4, 7, 3)) * scale, rng.normal(size=3)
    mean, var = reference._sigmoid_block(V, bias, 0.3, variance=True)
    ref_mean, ref_var = _sigmoid_reference(V, bias, 0.3)
    close(mean, ref_mean)
    close_variance(var, ref_var, ref_mean)


def test_sigmoid_underflow_through_exact_ensemble(seed):
    net, X = make((3, 4, 4, 2), "sigmoid", seed, scale=40.0)
    cfg = DropoutConfig({1: 0.5, 2: 0.5}, scheme="vanilla")
    logits = subnetwork_outputs(net, cfg, X, np.ones((1, 8), dtype=bool), logits=True)
    assert np.abs(logits).max() > 700
    assert_matches(exact_ensemble(net, cfg, X), brute_force(net, cfg, X))


# --- sample_ensemble reuses the chunked, threaded generic kernel.


@pytest.mark.parametrize("output", ["identity", "softmax", "sigmoid"])
def test_sampled_ensemble_is_the_mean_of_its_members(output):
    net, X = make((3, 4, 3, 3 if output == "softmax" else 1), output, 0)
    cfg = DropoutConfig({1: 0.5, 2: 0.6}, scheme="vanilla")
    K = 37
    from ensemble_study.dropout import unit_keep_probs
    from ensemble_study.masks import sample_masks

    masks = sample_masks(unit_keep_probs(net, cfg), K, np.random.default_rng(9))
    y = subnetwork_outputs(net, cfg, X, masks)
    for chunk_size in (None, 4):
        res = sample_ensemble(net, cfg, X, K, np.random.default_rng(9), chunk_size=chunk_size)
        close(res.mean, y.mean(axis=0))
        close_variance(res.variance, y.var(axis=0), y.mean(axis=0))


# --- The benchmark: its naive loop is a second reference, and the command runs.


@pytest.mark.parametrize("output,n_out", [("softmax", 3), ("sigmoid", 2), ("identity", 2)])
def test_bench_naive_loop_computes_the_package_statistics(output, n_out, seed):
    from ensemble_study.bench import naive_ensemble
    from ensemble_study.dropout import unit_keep_probs
    from ensemble_study.masks import enumerate_masks

    net, X = make((3, 4, 3, n_out), output, seed)
    cfg = DropoutConfig({1: 0.6, 2: 0.4}, scheme="inverted")
    masks, log_probs = next(enumerate_masks(unit_keep_probs(net, cfg), 2**7))
    mean, var, nwgm = naive_ensemble(net, cfg, X, masks, log_probs)
    res = exact_ensemble(net, cfg, X)
    close(res.mean, mean)
    if output == "identity":
        assert nwgm is None
    else:
        close(res.geometric_mean, nwgm)
    # E[y^2] - E[y]^2 cancels (the naive loop's way): only to ~1e-12 of E[y^2].
    np.testing.assert_allclose(res.variance, var, rtol=0, atol=1e-12 * (var + mean**2).max())


def test_bench_command_quick(tmp_path):
    from click.testing import CliRunner

    from ensemble_study.cli import main
    from ensemble_study.results import load_result

    out, png = tmp_path / "bench.csv", tmp_path / "bench.png"
    result = CliRunner().invoke(main, ["bench", "--quick", "--naive-budget", "0.01",
                                       "--out", str(out), "--figure", str(png)])
    assert result.exit_code == 0, result.output
    df = load_result(out)
    assert list(df.columns[:8]) == ["case", "architecture", "output", "statistics", "n_dropped",
                                    "n_subnetworks", "n_examples", "method"]
    assert set(df["case"]) == {"a", "b", "c", "g", "sweep"}
    methods = df.groupby(["case", "architecture", "statistics"])["method"].agg(set)
    assert all({"naive", "package"} <= m for m in methods)
    assert {"threads", "kernel_gflops", "limit", "vs_c"} <= set(df.columns)
    if shutil.which("gcc"):  # C rows beside the softmax and identity cases
        assert {"b", "c"} <= set(df.loc[df["method"] == "c_reference", "case"])
    assert png.stat().st_size > 0
