"""The certified estimator on a process pool and a Dask cluster: the same bits; its budget
counts the derivatives as its cost model does."""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ensemble_study.certified import (
    certified_ensemble,
    cost_model,
    derivative_cost,
    derivative_passes,
)
from ensemble_study.dropout import DropoutConfig
from ensemble_study.ensemble import CERTIFIED_BATCHES, certified_rows, sample_ensemble
from ensemble_study.executor import process_pool
from ensemble_study.network import MLP

FIELDS = ("mean", "mean_half_width", "geometric_mean", "geometric_mean_half_width",
          "variance", "variance_half_width", "mean_logits", "mean_logits_half_width",
          "stderr", "variance_ratio")


def _case(output="softmax", act="tanh"):
    net = MLP.random([6, 16, 12, 3], act, output, rng=5)
    cfg = DropoutConfig(0.6, layers=[0, 1, 2])
    X = np.random.default_rng(6).normal(size=(11, 6))
    return net, cfg, X


def _same_bits(a, b):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y), name
    assert (a.n_pairs, a.n_pilot, a.n_passes) == (b.n_pairs, b.n_pilot, b.n_passes)


@pytest.fixture(scope="module")
def pool():
    with process_pool(2) as p:
        yield p


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed", reason="needs the [dask] extra")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.mark.parametrize("kwargs", [dict(n_pairs=40), dict(tolerance=0.05)])
def test_same_bits_on_threads_and_a_process_pool(pool, kwargs):
    net, cfg, X = _case()
    local = certified_ensemble(net, cfg, X, 3, max_rows=3, **kwargs)
    assert local.mean.shape == (11, 3)
    with ThreadPoolExecutor(3) as threads:
        _same_bits(certified_ensemble(net, cfg, X, 3, max_rows=3, executor=threads, **kwargs),
                   local)
    _same_bits(certified_ensemble(net, cfg, X, 3, max_rows=3, executor=pool, **kwargs), local)


def test_stream_ends_where_the_local_run_leaves_it(pool):
    _, cfg, X = _case()
    net = MLP.random([6, 16, 12, 1], "relu", "sigmoid", rng=2)
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    a = certified_ensemble(net, cfg, X, g1, n_pairs=20, max_rows=4)
    b = certified_ensemble(net, cfg, X, g2, n_pairs=20, max_rows=4, executor=pool)
    _same_bits(a, b)
    assert g1.random() == g2.random()
    # and, up to rounding, the one-batch result (the batches share their masks)
    one = certified_ensemble(net, cfg, X, 9, n_pairs=20)
    np.testing.assert_allclose(a.mean, one.mean, rtol=0, atol=1e-12)


@pytest.mark.slow  # a LocalCluster of two worker processes: ~10 s on a busy machine
def test_same_bits_on_a_local_dask_cluster(cluster_client, pool):
    net, cfg, X = _case()
    local = certified_ensemble(net, cfg, X, 3, n_pairs=40, max_rows=3)
    _same_bits(certified_ensemble(net, cfg, X, 3, n_pairs=40, max_rows=3,
                                  executor=cluster_client), local)
    ref = sample_ensemble(net, cfg, X, 80, 4, estimator="certified")
    for executor in (pool, cluster_client):
        res = sample_ensemble(net, cfg, X, 80, 4, estimator="certified", executor=executor)
        for name in ("mean", "variance", "geometric_mean", "stderr"):
            assert np.array_equal(getattr(res, name), getattr(ref, name)), name


def test_sample_ensemble_certified_on_a_pool_is_the_serial_result(pool):
    net, cfg, X = _case("identity", "relu")
    assert certified_rows(net, cfg, X.shape[0], 60) == math.ceil(11 / CERTIFIED_BATCHES)
    ref = sample_ensemble(net, cfg, X, 60, 4, estimator="certified")
    res = sample_ensemble(net, cfg, X, 60, 4, estimator="certified", executor=pool)
    for name in ("mean", "variance", "stderr"):
        assert np.array_equal(getattr(res, name), getattr(ref, name)), name


def test_bad_executor_and_mc_with_an_executor_are_refused(pool):
    net, cfg, X = _case()
    with pytest.raises(TypeError, match=r"executor must be None, a concurrent.futures.Executor "
                                        r"or a dask.distributed.Client; got str"):
        certified_ensemble(net, cfg, X, 0, n_pairs=4, executor="tcp://localhost:8786")
    for estimator in ("mc", "rb_mc"):
        with pytest.raises(ValueError, match=rf"estimator='{estimator}' runs on this process"):
            sample_ensemble(net, cfg, X, 10, 0, estimator=estimator, executor=pool)


@pytest.mark.parametrize("act, factor", [("tanh", 2.0), ("sigmoid", 2.0), ("relu", 1.0),
                                         ("identity", 1.0)])
def test_max_passes_counts_the_derivatives_as_the_cost_model_does(act, factor):
    net = MLP.random([5, 40, 30, 2], act, "softmax", rng=1)
    cfg = DropoutConfig(0.5, layers=[1, 2])
    X = np.random.default_rng(0).normal(size=(3, 5))
    d = derivative_passes(net, cfg)
    assert derivative_cost(net, cfg) == pytest.approx(factor * d)
    n_pairs, n_pilot = 10, 8
    needed = factor * d + 2 * n_pilot + 2 * n_pairs
    model = cost_model(net, cfg, 3, 2 * n_pairs, 2**30)
    # the model's pilot is the default 64 pairs; the derivatives are counted alike
    assert model["passes"] - 2 * 64 - 2 * n_pairs == pytest.approx(factor * d)
    res = certified_ensemble(net, cfg, X, 0, n_pairs=n_pairs, n_pilot=n_pilot,
                             max_passes=needed + 0.5)
    assert res.n_passes == pytest.approx(needed)
    with pytest.raises(ValueError, match=r"more than max_passes"):
        certified_ensemble(net, cfg, X, 0, n_pairs=n_pairs, n_pilot=n_pilot,
                           max_passes=needed - 0.5)


def test_same_bits_whatever_the_blas_threads():
    """The sampled passes' blocks depend on the shapes alone: 1 or 2 BLAS threads give
    the same bits, on a network wide enough for OpenBLAS to split its products."""
    net = MLP.random([40, 96, 96, 4], "relu", "softmax", rng=8)
    cfg = DropoutConfig(0.5, layers=[1, 2])
    X = np.random.default_rng(9).normal(size=(64, 40))
    one = certified_ensemble(net, cfg, X, 4, n_pairs=40, n_pilot=8, threads=1)
    two = certified_ensemble(net, cfg, X, 4, n_pairs=40, n_pilot=8, threads=2)
    _same_bits(one, two)


def test_blocked_passes_equal_the_plain_forward_pass():
    """The sampled targets (prefix computed once, blocks of masks, in-place activations)
    equal the plain forward pass of every subnetwork, and the threads option is checked."""
    from ensemble_study.certified import _forward_logits, _Sampler
    from ensemble_study.network import OUTPUT_FUNCTIONS

    for act, out, layers in [("relu", "softmax", [1, 2]), ("tanh", "sigmoid", [0, 2]),
                             ("sigmoid", "identity", [2])]:
        net = MLP.random([5, 9, 7, 3], act, out, rng=1)
        cfg = DropoutConfig(0.7, layers=layers, scheme="vanilla")
        X = np.random.default_rng(2).normal(size=(4, 5))
        s = _Sampler(net, cfg, X, 2)
        u = (np.random.default_rng(3).random((33, s.lay.q.size)) < s.lay.q) * s.lay.scale
        if s.rb is not None:
            u[:, s.rb] = s.lay.mu[s.rb]
        got = s.targets(u)
        z = _forward_logits(net, X, s.lay.split(u))
        y = OUTPUT_FUNCTIONS[out](z)
        np.testing.assert_allclose(got[..., 6:], z, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(got[..., :3], y, rtol=1e-13, atol=1e-13)
        if s.rb is None:
            np.testing.assert_allclose(got[..., 3:6], y * y, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="threads"):
        certified_ensemble(net, cfg, X, 0, n_pairs=4, threads=0)


# --- evaluate --jobs / evaluate_network(executor=) --------------------------------------

def _past_the_limit():
    """14 dropped units forced past max_subnetworks=2**10: the certified estimator, on 13
    examples (8 batches of 2, the last of 1)."""
    net = MLP.random((6, 8, 8, 3), "tanh", "softmax", rng=3)
    cfg = DropoutConfig(0.7, layers=[0, 1])
    X = np.random.default_rng(4).normal(size=(13, 6))
    return net, cfg, X


def test_evaluate_network_on_a_pool_is_the_serial_table_to_the_bit(pool):
    import pandas as pd

    from ensemble_study.evaluate import evaluate_network

    net, cfg, X = _past_the_limit()
    y = np.arange(13) % 3
    kwargs = dict(max_subnetworks=2**10, n_samples=400, rng=11, ks=(4,), n_draws=2)
    ref = evaluate_network(net, cfg, X, y, **kwargs)
    assert set(ref.method) == {"certified"}
    assert certified_rows(net, cfg, 13, 400) == 2  # several batches: the pool has work
    for executor in (pool, ThreadPoolExecutor(3)):
        got = evaluate_network(net, cfg, X, y, executor=executor, **kwargs)
        pd.testing.assert_frame_equal(got, ref, check_exact=True)
        assert got.attrs["interval"] == ref.attrs["interval"]
    # and the table's mean is the certified estimate itself, batch for batch
    direct = certified_ensemble(net, cfg, X, 11, n_pairs=200, max_passes=math.inf,
                                max_rows=2)
    assert ref[ref.predictor == "mean"].max_half_width.iloc[0] == direct.mean_half_width.max()
    with pytest.raises(TypeError, match=r"executor must be None, a concurrent.futures.Executor "
                                        r"\(e.g. ensemble_study.executor.process_pool\(2\)\) "
                                        r"or a dask.distributed.Client; got int"):
        evaluate_network(net, cfg, X, executor=2, **kwargs)


def test_cli_evaluate_jobs_writes_the_same_bytes(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ensemble_study import executor as executor_module
    from ensemble_study.cli import main

    started = []

    def spy(n_workers):
        started.append(n_workers)
        return process_pool(n_workers)

    monkeypatch.setattr(executor_module, "process_pool", spy)

    net, cfg, X = _past_the_limit()
    net.save(tmp_path / "n.npz")
    np.save(tmp_path / "x.npy", X)
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"e{jobs}.csv"
        r = CliRunner().invoke(main, ["evaluate", "--net", str(tmp_path / "n.npz"),
                                      "--inputs", str(tmp_path / "x.npy"), "--keep-prob", "0.7",
                                      "--layers", "0", "--layers", "1", "--max-subnetworks",
                                      "1024", "--n-samples", "400", "--k", "4", "--draws", "2",
                                      "--jobs", jobs, "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert "ensemble: estimated by the certified estimator (200 antithetic pairs" in r.output
        outs.append(out.read_bytes())
    assert started == [2]  # --jobs 2 ran the certified batches on a pool of 2; --jobs 1 none
    assert outs[0] == outs[1]
    # enumerated (2**14 subnetworks): no pool starts, whatever --jobs
    r = CliRunner().invoke(main, ["evaluate", "--net", str(tmp_path / "n.npz"), "--inputs",
                                  str(tmp_path / "x.npy"), "--keep-prob", "0.7", "--layers",
                                  "0", "--layers", "1", "--k", "2", "--draws", "1", "--jobs",
                                  "2", "--out", str(tmp_path / "exact.csv")])
    assert r.exit_code == 0, r.output
    assert "estimator exact" in r.output and started == [2]
    help_text = CliRunner().invoke(main, ["evaluate", "--help"]).output
    assert "--jobs" in help_text and "same to the bit whatever --jobs" in " ".join(
        help_text.split())
