"""The bench's C reference kernels agree with the package (skipped without gcc)."""

import shutil

import numpy as np
import pytest

from ensemble_study import _bench_c
from ensemble_study.dropout import DropoutConfig
from ensemble_study.kernels.compiled import _softmax_pairs
from ensemble_study.masks import enumerate_masks
from ensemble_study.network import MLP

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or not _bench_c.SOURCE.exists(),
                                reason="no gcc or no benchmarks/reference_kernels.c")


@pytest.fixture(scope="module")
def lib():
    lib, message = _bench_c.build()
    if lib is None:
        pytest.skip(message)
    assert f"{lib.vector_lanes()} doubles per vector" in message
    return lib


@pytest.mark.parametrize("n", [5, 6, 10])  # scalar, one chain per vector, four chains
def test_softmax_mean_nwgm_matches_package(lib, n):
    rng = np.random.default_rng(n)
    K, q = 10, 0.5
    A = np.ascontiguousarray(np.maximum(rng.normal(size=(7, n)), 0.0))
    sW = np.ascontiguousarray(rng.normal(size=(n, K)) / q)
    b = rng.normal(size=K)
    mean, nwgm = np.empty((7, K)), np.empty((7, K))
    P = _bench_c._ptr
    lib.softmax_mean_nwgm(P(A), P(sW), P(b), _bench_c.ctypes.c_double(q), 7, n, K,
                          P(mean), P(nwgm))
    want, var = np.empty((7, K)), np.empty((7, K))
    _softmax_pairs(A, sW, b, q, False, want, var)
    np.testing.assert_allclose(mean, want, rtol=1e-12, atol=0)
    z = q * A @ sW + b
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(nwgm, e / e.sum(axis=1, keepdims=True), rtol=1e-12, atol=0)
    # and the mean against brute force over every inner mask
    masks, _ = next(enumerate_masks(q * np.ones(n), 2**30))
    logits = (A[:, None, :] * masks[None]) @ sW + b
    p = np.exp(logits - logits.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    w = np.prod(np.where(masks == 1, q, 1 - q), axis=1)
    np.testing.assert_allclose(mean, np.einsum("m,bmk->bk", w, p), rtol=1e-12, atol=0)


def test_gray_expected_hidden_matches_brute_force(lib):
    rng = np.random.default_rng(3)
    n, h, q = 6, 5, 0.7
    X, W, b = rng.normal(size=(4, n)), rng.normal(size=(n, h)), rng.normal(size=h)
    out = np.empty((4, h))
    P = _bench_c._ptr
    c = _bench_c.ctypes.c_double
    lib.gray_expected_hidden(P(X), P(W), P(b), c(q), c(1 / q), 4, n, h, P(out))
    masks, _ = next(enumerate_masks(q * np.ones(n), 2**30))
    z = np.maximum((X[:, None, :] * masks[None] / q) @ W + b, 0.0)
    w = np.prod(np.where(masks == 1, q, 1 - q), axis=1)
    np.testing.assert_allclose(out, np.einsum("m,bmh->bh", w, z), rtol=1e-12, atol=1e-15)


def test_runner_on_bench_case_matches_package(lib):
    from ensemble_study.bench import default_cases

    case = next(c for c in default_cases(quick=True) if c.case == "b")
    net = MLP.random(case.sizes, "relu", case.output, rng=0)
    cfg = DropoutConfig(keep_prob=0.5, layers=case.layers, scheme="inverted")
    X = np.random.default_rng(1).normal(size=(4, case.sizes[0]))
    assert _bench_c.runner(lib, case, net, cfg, X) is not None


def test_c_is_built_for_the_cpu_numba_compiles_for(monkeypatch):
    # numba told to compile for Haswell (AVX2): the C reference follows, so that the
    # bench's package / C ratio compares 4-lane code with 4-lane code
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", "haswell")
    lib, message = _bench_c.build()
    assert lib is not None, message
    assert "-march=haswell" in message and lib.vector_lanes() == 4
    assert "did not use" not in message
    monkeypatch.setattr(config, "CPU_NAME", None)
    assert _bench_c.target_cpu() == "native"
