"""The softmax kernel's shapes: the same bits whatever the shape, the choice and its cache.

Every shape only reorders independent work, so the tests ask for equality to
the bit between shapes, and 1e-12 relative against brute force over every
inner mask (the blocked contraction needs 32 or more low-half masks with 8
lanes: n >= 10; with n = 12 and 14 the tiles split the low half).
"""

import itertools
import json

import numpy as np
import pytest

from ensemble_study.kernels import compiled, shape
from ensemble_study.kernels._simd import LANES
from ensemble_study.network import softmax

SHAPES = [shape.Shape(t, f) for t in (0, 1, 2) for f in (0, 1)]


def _brute(A, sW, bias, q):
    n = A.shape[1]
    masks = np.array(list(itertools.product((0, 1), repeat=n)), dtype=float)
    probs = np.prod(np.where(masks == 1, q, 1 - q), axis=1)
    mean, var = np.zeros((A.shape[0], sW.shape[1])), np.zeros((A.shape[0], sW.shape[1]))
    for b in range(A.shape[0]):
        ys = softmax(bias + (masks * A[b]) @ sW)
        mean[b] = probs @ ys
        var[b] = probs @ (ys - mean[b]) ** 2
    return mean, var


def _run(A, sW, bias, q, variance, s):
    mean, var = np.full((A.shape[0], sW.shape[1]), np.nan), np.full((A.shape[0], sW.shape[1]),
                                                                      np.nan)
    compiled._softmax_pairs(A, sW, bias, q, variance, mean, var, s)
    return mean, var


# n - n // 2 low-half units: 4 LANES low-half masks from n = 10 with 8 lanes (8 with 4)
@pytest.mark.parametrize("n", [9, 10, 12, 14])
@pytest.mark.parametrize("K", [3, 10])  # odd (the last class twice) and even
@pytest.mark.parametrize("scale", [1.0, 1e-4])  # ordinary, and a cancelling variance
def test_every_shape_gives_the_same_bits(n, K, scale):
    rng = np.random.default_rng(n * 100 + K)
    B = 2 if n == 14 else 3
    A = np.maximum(rng.normal(size=(B, n)), 0.0) + 0.1
    sW, bias = rng.normal(size=(n, K)) * scale, rng.normal(size=K)
    want_mean, want_var = _run(A, sW, bias, 0.4, True, shape.Shape(0, 0))
    for s in SHAPES:
        mean, var = _run(A, sW, bias, 0.4, True, s)
        np.testing.assert_array_equal(mean, want_mean, err_msg=str(s))
        np.testing.assert_array_equal(var, want_var, err_msg=str(s))
        mean_only, _ = _run(A, sW, bias, 0.4, False, s)
        np.testing.assert_array_equal(mean_only, want_mean, err_msg=str(s))
    if n <= 12:
        ref_mean, ref_var = _brute(A, sW, bias, 0.4)
        np.testing.assert_allclose(want_mean, ref_mean, rtol=1e-12, atol=0)
        np.testing.assert_allclose(want_var, ref_var, rtol=1e-10, atol=0)


def test_parse_and_bad_values():
    assert shape.parse("tile=2,fused=1") == shape.Shape(2, 1)
    assert shape.parse(" fused=1 ") == shape.Shape(0, 1)
    for bad in ("tile=-1", "tiles=1", "tile=x", "fused=2", "tile"):
        with pytest.raises(ValueError, match="ENSEMBLE_STUDY_KERNEL_SHAPE|Shape"):
            shape.parse(bad)
    with pytest.raises(ValueError, match="tile"):
        shape.Shape(tile=True)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No override, an empty cache in ``tmp_path``, nothing chosen in this process."""
    monkeypatch.delenv(shape.ENV_VAR, raising=False)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(shape, "_chosen", {})
    return tmp_path


def test_small_calls_and_the_test_suite_do_not_calibrate(fresh, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("calibrated")

    monkeypatch.setattr(shape, "calibrate", boom)
    assert shape.current(work=1e6) == shape.default_shape()
    assert shape.current(work=shape.CALIBRATE_WORK) == shape.default_shape()  # under pytest
    assert shape.default_shape().fused == (1 if LANES == 8 else 0)
    assert not shape.cache_path().exists()


def test_override(fresh, monkeypatch):
    monkeypatch.setenv(shape.ENV_VAR, "tile=1,fused=0")
    assert shape.current() == shape.Shape(1, 0)
    assert "from ENSEMBLE_STUDY_KERNEL_SHAPE" in shape.describe()
    monkeypatch.setenv(shape.ENV_VAR, "default")
    assert shape.current(work=2**40) == shape.default_shape()
    monkeypatch.setenv(shape.ENV_VAR, "tile=1,bad=2")
    with pytest.raises(ValueError, match="ENSEMBLE_STUDY_KERNEL_SHAPE"):
        shape.current()


def test_calibration_is_cached_by_host_and_source(fresh, monkeypatch):
    calls = []

    def fake(candidates=shape.CANDIDATES, rounds=0):
        calls.append(1)
        return shape.Shape(1, 1), {s: 1.0 + i for i, s in enumerate(candidates)}

    monkeypatch.setattr(shape, "calibrate", fake)
    monkeypatch.setenv(shape.ENV_VAR, "calibrate")
    assert shape.current() == shape.Shape(1, 1)
    assert shape.current() == shape.Shape(1, 1) and len(calls) == 1  # once per process
    data = json.loads(shape.cache_path().read_text())
    entry = data[shape.host_key()]
    assert entry["shape"] == {"tile": 1, "fused": 1} and entry["lanes"] == LANES
    # a new process (nothing chosen) reads the cache without measuring
    monkeypatch.delenv(shape.ENV_VAR)
    monkeypatch.setattr(shape, "_chosen", {})
    assert shape.current() == shape.Shape(1, 1) and len(calls) == 1
    assert "cached" in shape.describe()
    # another host or another kernel source: another key, so no cached shape
    monkeypatch.setattr(shape, "_chosen", {})
    monkeypatch.setattr(shape, "_key_parts", lambda: ("elsewhere", {}))
    assert shape.current() == shape.default_shape()


def test_calibrate_times_every_candidate():
    best, medians = shape.calibrate(rounds=1)
    assert set(medians) == set(shape.CANDIDATES) and best in shape.CANDIDATES
    assert medians[best] == min(medians.values()) and all(m > 0 for m in medians.values())
