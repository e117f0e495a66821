"""The compiled kernels against the numpy reference and brute force.

The brute-force tests of test_kernels.py run on the compiled kernels (the
default); these add what those networks are too small to reach (the
register-blocked softmax contraction needs 16 or more low-half masks), the
entry points the Monte Carlo estimators call with sampled masks, the
guards, the backend switch and the vector exp. Tolerances are those of
test_kernels.py: 1e-10 relative, no absolute floor.
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import brute_force

from ensemble_study import MLP, DropoutConfig, exact_ensemble, kernels
from ensemble_study.dropout import mask_multipliers, unit_keep_probs
from ensemble_study.kernels import compiled, reference
from ensemble_study.masks import sample_masks
from ensemble_study.network import sigmoid, softmax

RTOL = 1e-10


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0)


def _block_reference(A, sW, bias, q, output):
    """Mean and two-pass variance over every inner mask, one loop step each."""
    B, n = A.shape
    masks = np.array(list(itertools.product((0, 1), repeat=n)), dtype=float)
    probs = np.prod(np.where(masks == 1, q, 1 - q), axis=1)
    mean, var = np.zeros((B, sW.shape[1])), np.zeros((B, sW.shape[1]))
    f = softmax if output == "softmax" else sigmoid
    for b in range(B):
        ys = f(bias + (masks * A[b]) @ sW)
        mean[b] = probs @ ys
        var[b] = probs @ (ys - mean[b]) ** 2
    return mean, var


# 8, 16 and 32 low-half masks: reciprocals one vector at a time, or four
# (with 4 or 8 lanes), and the blocked contraction
@pytest.mark.parametrize("n", [7, 8, 9])
@pytest.mark.parametrize("scale", [1.0, 300.0, 1e-4])  # ordinary, underflow, cancellation
@pytest.mark.parametrize("K", [3, 4])  # an odd number of classes, and an even one
def test_softmax_pairs_match_brute_force(n, scale, K):
    rng = np.random.default_rng(n * 10 + K)
    A, sW, bias = rng.normal(size=(3, n)), rng.normal(size=(n, K)) * scale, rng.normal(size=K)
    mean, var = np.empty((3, K)), np.empty((3, K))
    compiled._softmax_pairs(A, sW, bias, 0.4, True, mean, var)
    ref_mean, ref_var = _block_reference(A, sW, bias, 0.4, "softmax")
    close(mean, ref_mean)
    close(var, ref_var)
    mean_only = np.empty((3, K))
    compiled._softmax_pairs(A, sW, bias, 0.4, False, mean_only, np.empty((3, K)))
    close(mean_only, ref_mean)


@pytest.mark.parametrize("scale", [1.0, 300.0, 1e-4])
def test_sigmoid_pairs_match_brute_force(scale):
    rng = np.random.default_rng(7)
    A, sW, bias = rng.normal(size=(3, 8)), rng.normal(size=(8, 2)) * scale, rng.normal(size=2)
    mean, var = np.empty((3, 2)), np.empty((3, 2))
    compiled._sigmoid_pairs(A, sW, bias, 0.3, True, mean, var)
    ref_mean, ref_var = _block_reference(A, sW, bias, 0.3, "sigmoid")
    close(mean, ref_mean)
    floor = (1e-14 * np.abs(ref_mean)) ** 2
    assert np.all(np.abs(var - ref_var) <= RTOL * np.abs(ref_var) + floor)


def _net(sizes, output, seed, hidden="relu"):
    rng = np.random.default_rng(seed)
    return (MLP.random(sizes, hidden, output, rng=rng, bias_scale=0.3),
            rng.normal(size=(6, sizes[0])))  # 6 examples: not a multiple of the lanes


@pytest.mark.parametrize("output", ["identity", "softmax", "sigmoid"])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid"])
def test_conditional_moments_on_sampled_outer_masks(output, hidden, seed):
    # What the Rao-Blackwellised estimator calls: arbitrary outer masks, in any order.
    net, X = _net((3, 5, 4, 3), output, seed, hidden)
    cfg = DropoutConfig({1: 0.6, 2: 0.4}, scheme="inverted")
    plan = kernels.shortcut_plan(net, cfg)
    masks = sample_masks(plan.outer_q, 40, np.random.default_rng(seed))
    for arithmetic in (True, False):
        got = compiled.conditional_moments(net, plan, X, masks, arithmetic=arithmetic)
        want = reference.conditional_moments(net, plan, X, masks, arithmetic=arithmetic)
        close(got[0], want[0])
        close(got[2], want[2])
        # A variance that is zero (no inner unit reaches the output) is rounding
        # in both: below (1e-14 |E y|)**2, far beneath any variance that is not.
        if want[1] is None:
            assert got[1] is None
            continue
        floor = (1e-14 * np.abs(want[0])) ** 2
        assert np.all(np.abs(got[1] - want[1]) <= RTOL * np.abs(want[1]) + floor)


@pytest.mark.parametrize("layers", [{0: 0.5, 1: 0.7}, {1: 0.6, 2: 0.5}, {0: 0.8}])
@pytest.mark.parametrize("output", ["identity", "softmax", "sigmoid"])
def test_generic_task_on_sampled_masks_matches_the_reference(layers, output, seed):
    # sample_ensemble's plain estimator: masks in random order, repeated, some weights zero.
    net, X = _net((3, 4, 5, 2), output, seed)
    cfg = DropoutConfig(layers, scheme="vanilla")
    masks = sample_masks(unit_keep_probs(net, cfg), 50, np.random.default_rng(seed))
    weights = np.random.default_rng(seed + 1).random(50)
    weights[::7] = 0.0
    def multipliers_of(m):
        return mask_multipliers(net, cfg, m)

    got = compiled.generic_task(net, X, multipliers_of)((masks, weights))
    want = reference.generic_task(net, X, multipliers_of)((masks, weights))
    close(got.weight, want.weight)
    close(got.mean, want.mean)
    close(got.mean_logits, want.mean_logits)
    floor = (1e-14 * np.abs(want.mean)) ** 2 * want.weight
    assert np.all(np.abs(got.m2 - want.m2) <= RTOL * np.abs(want.m2) + floor)


def test_generic_path_half_tables_match_brute_force(seed):
    # Enumerated masks with long runs of one outer mask: the half-table lookup is used.
    net, X = _net((3, 4, 6, 3), "softmax", seed)
    cfg = DropoutConfig({0: 0.6, 1: 0.5}, scheme="inverted")
    ref = brute_force(net, cfg, X)
    for chunk_size in (None, 7, 64):
        res = exact_ensemble(net, cfg, X, chunk_size=chunk_size)
        close(res.mean, ref.mean)
        close(res.variance, ref.variance)
        close(res.geometric_mean, ref.geometric_mean)


def test_generic_threads_do_not_change_a_bit():
    net, X = _net((3, 4, 5, 3), "softmax", 0)
    cfg = DropoutConfig({0: 0.5, 1: 0.5}, scheme="inverted")
    task = kernels.generic_task(net, X, lambda m: mask_multipliers(net, cfg, m))
    from ensemble_study.masks import enumerate_masks

    def chunks():
        return ((m, np.exp(lp)) for m, lp in enumerate_masks(unit_keep_probs(net, cfg), 37))

    one, two = kernels.run_chunks(task, chunks(), 1), kernels.run_chunks(task, chunks(), 2)
    for a, b in [(one.mean, two.mean), (one.m2, two.m2), (one.mean_logits, two.mean_logits)]:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("output", ["identity", "softmax", "sigmoid"])
def test_numpy_and_numba_backends_agree(monkeypatch, output):
    net, X = _net((3, 5, 4, 2), output, 3)
    for cfg in (DropoutConfig({1: 0.5, 2: 0.6}), DropoutConfig({0: 0.5, 1: 0.6})):
        monkeypatch.setenv("ENSEMBLE_STUDY_KERNELS", "numpy")
        assert kernels.backend() == "numpy"
        a = exact_ensemble(net, cfg, X)
        monkeypatch.setenv("ENSEMBLE_STUDY_KERNELS", "numba")
        b = exact_ensemble(net, cfg, X)
        close(b.mean, a.mean)
        close(b.variance, a.variance)


def test_unknown_backend_is_refused(monkeypatch):
    monkeypatch.setenv("ENSEMBLE_STUDY_KERNELS", "fortran")
    with pytest.raises(ValueError, match=r"ENSEMBLE_STUDY_KERNELS must be one of numba, numpy; "
                                         r"got 'fortran'"):
        kernels.backend()


def test_vector_exp_is_within_two_ulps_and_keeps_the_edges():
    from numba import njit

    from ensemble_study.kernels._simd import LANES, vexp, vload, vstore

    @njit
    def exp_all(x, out):
        for i in range(0, x.size, LANES):
            vstore(out, i, vexp(vload(x, i)))

    x = np.concatenate([np.linspace(-708, 709, 20000), np.random.default_rng(0).normal(size=4000),
                        [0.0, -0.0, 1e-300, -1e-300, np.nan, np.inf, -np.inf, 710.0, -746.0]])
    x = np.concatenate([x, np.zeros(-x.size % LANES)])
    out = np.empty_like(x)
    exp_all(x, out)
    with np.errstate(over="ignore"):
        ref = np.exp(x)
    finite = np.isfinite(ref) & (ref > 0)
    assert np.all(np.abs(out[finite] - ref[finite]) <= 2 * np.spacing(ref[finite]))
    edge = ~finite
    np.testing.assert_array_equal(out[edge], ref[edge])  # inf, 0 and NaN where exp has them


@pytest.mark.parametrize("name", ["vtanh", "vsigmoid"])
def test_vector_activations_are_within_a_few_ulps_and_keep_the_edges(name):
    from numba import njit

    from ensemble_study.kernels import _simd

    f = getattr(_simd, name)
    LANES, vload, vstore = _simd.LANES, _simd.vload, _simd.vstore

    @njit
    def apply(x, out):
        for i in range(0, x.size, LANES):
            vstore(out, i, f(vload(x, i)))

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=20000) * s for s in (1e-8, 0.1, 0.25, 1.0, 5.0, 40.0)]
                       + [np.linspace(-0.3, 0.3, 6001),  # both sides of tanh's series cut
                          [0.0, -0.0, 1e-310, -1e-310, np.nan, np.inf, -np.inf, 800.0, -800.0]])
    x = np.concatenate([x, np.zeros(-x.size % LANES)])
    out = np.empty_like(x)
    apply(x, out)
    e = np.exp(-np.abs(x))  # the scalar kernels' logistic: no overflow on either side
    ref = np.tanh(x) if name == "vtanh" else np.where(x >= 0, 1.0, e) / (1 + e)
    ok = np.isfinite(ref) & (ref != 0)
    assert np.all(np.abs(out[ok] - ref[ok]) <= 8 * np.spacing(np.abs(ref[ok])))
    np.testing.assert_array_equal(out[~ok], ref[~ok])  # zeros (with their sign), NaN
    assert np.array_equal(np.signbit(out), np.signbit(ref))
    assert np.all(np.abs(out[np.isfinite(x)]) <= 1)


def test_lanes_follow_the_features_numba_compiles_for(monkeypatch):
    import llvmlite.binding as llvm
    from numba.core import config

    from ensemble_study.kernels._simd import LANES, host_lanes

    assert LANES == host_lanes()
    # numba's NUMBA_CPU_FEATURES, where set, and the host's features otherwise
    for features, lanes in (("+avx,+avx2,+fma,-avx512f", 4), ("+avx2,+avx512f", 8),
                            ("+sse2,-avx", 2)):
        monkeypatch.setattr(config, "CPU_FEATURES", features)
        assert host_lanes() == lanes
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    host = llvm.get_host_cpu_features()
    assert host_lanes() == (8 if host.get("avx512f") else 4 if host.get("avx") else 2)


def test_changed_units_are_listed_per_mask():
    rng = np.random.default_rng(0)
    mults = {0: rng.integers(0, 2, size=(30, 3)) * 2.0, 2: rng.integers(0, 2, size=(30, 4)) * 1.0}
    first, chg = compiled._first_changed(mults, 30, 3)
    assert first[0] == 0
    for i in range(1, 30):
        changed = {l: np.flatnonzero(m[i] != m[i - 1]) for l, m in mults.items()}
        layers = [l for l in sorted(changed) if changed[l].size]
        assert first[i] == (layers[0] if layers else 3)
        if layers:
            units = changed[layers[0]]
            assert chg[i, 0] == units.size
            np.testing.assert_array_equal(chg[i, 1:1 + units.size], units)


def test_gray_order_changes_one_unit_per_step():
    order = compiled._gray_order(64)
    assert sorted(order) == list(range(64))
    assert all(bin(int(a) ^ int(b)).count("1") == 1 for a, b in zip(order[1:], order[:-1]))
    np.testing.assert_array_equal(compiled._gray_order(6), np.arange(6))


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
@pytest.mark.parametrize("output", ["identity", "softmax"])
def test_long_gray_runs_match_the_numpy_backend(monkeypatch, hidden, output):
    # 2^9 outer masks in Gray order: runs of one-unit steps that cross the
    # full refresh every 64 masks and the co-moment batch of 16, with
    # examples that do not fill the last vector of lanes.
    net, X = _net((3, 9, 3, 2), output, 5, hidden)
    cfg = DropoutConfig({1: 0.7, 2: 0.6})
    plan = kernels.shortcut_plan(net, cfg)
    runs = {}
    for backend in ("numpy", "numba"):
        monkeypatch.setenv("ENSEMBLE_STUDY_KERNELS", backend)
        logits = kernels.shortcut_moments(net, cfg, X, plan, arithmetic=False)  # outer masks only
        runs[backend] = exact_ensemble(net, cfg, X), logits
    (a, a_logits), (b, b_logits) = runs["numpy"], runs["numba"]
    close(b.mean, a.mean)
    close(b.variance, a.variance)
    if output != "identity":  # (the geometric mean of an identity output is undefined)
        close(b.geometric_mean, a.geometric_mean)
    close(b_logits.mean_logits, a_logits.mean_logits)
    close(b_logits.m2, a_logits.m2)


@settings(deadline=None, max_examples=25)
@given(data=st.data())
def test_generic_path_with_input_dropout_matches_brute_force_and_numpy(data):
    # Input dropout under hidden layers (the generic path): masks whose first changed
    # layer is the half-tabled one run in a loop of their own (_table_step); chunks of
    # any size cut those runs anywhere. Both schemes, every output, against the brute
    # force and the numpy backend, to 1e-12 relative (variances: a floor of 1e-13 of
    # the squared mean, the cancellation of two nearly equal outputs).
    depth = data.draw(st.integers(1, 2), label="hidden layers")
    sizes = (data.draw(st.integers(2, 4), label="inputs"),
             *data.draw(st.lists(st.integers(2, 4), min_size=depth, max_size=depth),
                        label="widths"),
             data.draw(st.integers(1, 3), label="outputs"))
    output = data.draw(st.sampled_from(["identity", "softmax", "sigmoid"]), label="output")
    hidden = data.draw(st.sampled_from(["relu", "tanh"]), label="hidden")
    scheme = data.draw(st.sampled_from(["vanilla", "inverted"]), label="scheme")
    keep = st.sampled_from([0.3, 0.5, 0.8])
    layers = {0: data.draw(keep, label="input keep_prob")}
    if data.draw(st.booleans(), label="first hidden layer dropped too") and depth > 1:
        layers[1] = data.draw(keep, label="hidden keep_prob")
    chunk = data.draw(st.sampled_from([None, 3, 16]), label="chunk_size")
    net, X = _net(sizes, output, data.draw(st.integers(0, 2**16), label="seed"), hidden)
    cfg = DropoutConfig(layers, scheme=scheme)
    assert kernels.shortcut_plan(net, cfg) is None  # the generic path
    ref = brute_force(net, cfg, X)
    got = exact_ensemble(net, cfg, X, chunk_size=chunk)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENSEMBLE_STUDY_KERNELS", "numpy")
        numpy_path = exact_ensemble(net, cfg, X, chunk_size=chunk)
    for res in (got, numpy_path):
        np.testing.assert_allclose(res.mean, ref.mean, rtol=1e-12, atol=0)
        if output != "identity":
            np.testing.assert_allclose(res.geometric_mean, ref.geometric_mean, rtol=1e-12,
                                       atol=0)
        floor = 1e-13 * ref.mean**2
        assert np.all(np.abs(res.variance - ref.variance)
                      <= 1e-12 * np.abs(ref.variance) + floor)
