"""Issue 18, step 1: the estimator chooser never hangs or crashes (each "Why" defect)."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ensemble_study import MLP, DropoutConfig, exact_ensemble, sample_ensemble
from ensemble_study.ensemble import MEMORY_BOUND, choose_estimator, estimate_cost
from ensemble_study.evaluate import evaluate_network


def _net(sizes, rng=0):
    return MLP.random(sizes, "relu", "softmax", rng=rng)


@pytest.mark.parametrize("sizes", [(64, 32, 32, 10), (64, 100, 10), (64, 16, 16, 10),
                                   (64, 30, 30, 10)])
def test_auto_picks_certified_not_rb_mc_for_wide_last_layers(sizes):
    # Defect: auto picked rb_mc whatever the width (MemoryError, or 12 minutes).
    # Past the enumeration limit it now picks the certified estimator (issue 21).
    net = _net(sizes)
    cfg = DropoutConfig(0.5, layers=range(1, len(sizes) - 1))
    choice = choose_estimator(net, cfg, n_examples=360, n_samples=10_000)
    assert choice.name == "certified"
    assert choice.seconds < 120 and choice.memory_bytes <= MEMORY_BOUND
    X = np.random.default_rng(1).normal(size=(5, sizes[0]))
    df = evaluate_network(net, cfg, X, n_samples=20, rng=3)
    assert set(df.method) == {"certified"}


def test_auto_keeps_rb_mc_where_it_is_cheap_and_exact_where_it_fits():
    net = _net((3, 6, 4))
    cfg = DropoutConfig(0.5, layers=[0, 1])
    assert choose_estimator(net, cfg, 8, 100, max_subnetworks=2**20).name == "exact"
    assert choose_estimator(net, cfg, 8, 100, max_subnetworks=8).name == "rb_mc"
    assert choose_estimator(net, DropoutConfig(0.5, layers=[0]), 8, 100,
                            max_subnetworks=2).name == "certified"
    assert choose_estimator(net, DropoutConfig(0.5, layers=[0]), 8, 3,
                            max_subnetworks=2).name == "mc"  # too few for 2 pairs


def test_sample_ensemble_auto_and_refusals_name_the_cheaper_option():
    net = _net((4, 100, 10))
    cfg = DropoutConfig(0.5, layers=[1])
    X = np.ones((3, 4))
    res = sample_ensemble(net, cfg, X, 5, 0, estimator="auto")  # certified: 2 pairs
    assert res.method == "sampled" and res.n_subnetworks == 4
    with pytest.raises(ValueError, match=r"rb_mc.*estimator='mc'"):
        sample_ensemble(net, cfg, X, 5, 0, estimator="rb_mc")
    with pytest.raises(ValueError, match=r"rb_mc.*estimator='mc'"):
        evaluate_network(net, cfg, X, n_samples=5, estimator="rb_mc", rng=0)


def test_max_subnetworks_above_2_to_the_24_is_refused():
    net = _net((3, 4, 2))
    cfg = DropoutConfig(0.5, layers=[1])
    with pytest.raises(ValueError, match=r"max_subnetworks must be at most 2\*\*24"):
        evaluate_network(net, cfg, np.ones((2, 3)), max_subnetworks=2**32)
    with pytest.raises(ValueError, match=r"max_subnetworks must be at most 2\*\*24"):
        choose_estimator(net, cfg, 2, 10, max_subnetworks=2**24 + 1)


def test_columns_say_what_was_counted():
    net = _net((3, 6, 2))
    cfg = DropoutConfig(0.5, layers=[0, 1])
    X = np.random.default_rng(0).normal(size=(4, 3))
    exact = evaluate_network(net, cfg, X)
    assert set(exact.n_subnetworks) == {2**9} and exact.n_samples.isna().all()
    sampled = evaluate_network(net, cfg, X, max_subnetworks=8, n_samples=40, estimator="mc",
                               rng=1)
    assert sampled.n_subnetworks.isna().all() and set(sampled.n_samples) == {40}


def test_rb_mc_memory_is_chunked_past_the_compiled_tables(monkeypatch):
    # A last layer of 26 units: the compiled kernel would hold 2 * 2**26 doubles per
    # thread; the chunked path holds 2**13-row tables, within the bound.
    from ensemble_study import ensemble

    wide = MLP.random((2, 26, 3), "relu", "softmax", rng=2)
    cost = estimate_cost(wide, DropoutConfig(0.5, layers=[1]), 1, 1, "rb_mc")
    assert cost.memory_bytes <= MEMORY_BOUND
    # The chunked path gives the exact mean (only the last layer dropped).
    monkeypatch.setattr(ensemble, "_RB_COMPILED_MAX_INNER", 2**4)
    net = MLP.random((2, 12, 3), "relu", "softmax", rng=2)
    cfg = DropoutConfig(0.5, layers=[1])
    X = np.random.default_rng(3).normal(size=(3, 2))
    res = sample_ensemble(net, cfg, X, 2, 0, estimator="rb_mc")
    exact = exact_ensemble(net, cfg, X)
    np.testing.assert_allclose(res.mean, exact.mean, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 512), min_size=1, max_size=3), st.integers(1, 10_000),
       st.sampled_from([0.5, 0.8]))
@example(hidden=[346, 462], k=971, p=0.5)  # the affine guess of K overshot by 1e-5 s
def test_auto_stays_within_its_stated_time_and_memory(hidden, k, p):
    net_sizes = (64, *hidden, 10)
    net = MLP.random(net_sizes, "relu", "softmax", rng=0)
    cfg = DropoutConfig(p, layers=range(0, len(net_sizes) - 1))
    choice = choose_estimator(net, cfg, 360, k, time_budget=120.0)
    assert choice.memory_bytes <= MEMORY_BOUND
    assert choice.seconds <= 120.0
    assert choice.n_samples <= k and choice.n_samples >= 1


def _cli(args, tmp_path):
    from click.testing import CliRunner

    from ensemble_study.cli import main

    return CliRunner().invoke(main, ["evaluate", *args, "--out", str(tmp_path / "e.csv")])


def test_cli_refuses_2_to_the_32_subnetworks_and_out_of_reach_rb_mc(tmp_path):
    net = MLP.random((4, 100, 10), "relu", "softmax", rng=0)
    net.save(tmp_path / "n.npz")
    np.save(tmp_path / "x.npy", np.ones((3, 4)))
    base = ["--net", str(tmp_path / "n.npz"), "--inputs", str(tmp_path / "x.npy"),
            "--keep-prob", "0.5"]
    r = _cli([*base, "--max-subnetworks", "4294967296"], tmp_path)
    assert r.exit_code == 2 and "16777216" in r.output
    r = _cli([*base, "--estimator", "rb_mc"], tmp_path)
    assert r.exit_code == 2 and "use --estimator mc" in r.output
    r = _cli([*base, "--n-samples", "20"], tmp_path)
    assert r.exit_code == 0, r.output
    assert "ensemble: estimator certified (20 samples): estimated at most" in r.output


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_cli_formats_and_legend(tmp_path, fmt):
    import io
    import json

    import pandas as pd

    net = MLP.random((4, 3, 2), "relu", "softmax", rng=0)
    net.save(tmp_path / "n.npz")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(3, 4)))
    np.save(tmp_path / "y.npy", np.array([0, 1, 1]))
    from click.testing import CliRunner

    from ensemble_study.cli import main

    r = CliRunner().invoke(main, ["evaluate", "--net", str(tmp_path / "n.npz"), "--inputs",
                                  str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                                  "--keep-prob", "0.5", "--k", "2", "--k", "5",
                                  "--format", fmt, "--out", str(tmp_path / "e.csv")])
    assert r.exit_code == 0, r.output
    saved = pd.read_csv(tmp_path / "e.csv")
    assert list(saved[saved.predictor == "mc"].k) == [2, 5]
    if fmt == "csv":
        assert pd.read_csv(io.StringIO(r.stdout)).shape == saved.shape
    elif fmt == "json":
        assert len(json.loads(r.stdout)) == len(saved)
    elif fmt == "markdown":
        assert r.stdout.splitlines()[1].startswith("|---|")
    else:
        assert "kl: KL(reference || predictor)" in r.stdout
        assert "ece: expected calibration error" in r.stdout
