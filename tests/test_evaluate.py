"""evaluate_network and the evaluate command; train --save, trained and boundary options."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from reference import brute_force

from ensemble_study import MLP, DropoutConfig, sample_ensemble, scaled_forward
from ensemble_study.cli import main
from ensemble_study.datasets import load_dataset
from ensemble_study.evaluate import (
    ID_COLUMNS,
    METRIC_COLUMNS,
    dropout_config,
    evaluate_network,
)
from ensemble_study.train import seed_streams


def _row(df, predictor, reference=None):
    same = df.reference.isna() if reference is None else df.reference == reference
    rows = df[(df.predictor == predictor) & same]
    assert len(rows) == 1
    return rows.iloc[0]


# --- the library function ------------------------------------------------------------

def test_rows_against_brute_force():
    net = MLP.random((3, 4, 3, 3), "tanh", "softmax", rng=0)
    cfg = DropoutConfig({0: 0.75, 2: 0.5})
    gen = np.random.default_rng(1)
    X, y = gen.normal(size=(20, 3)), gen.integers(0, 3, 20)
    df = evaluate_network(net, cfg, X, y)
    assert list(df.columns) == ID_COLUMNS + METRIC_COLUMNS
    assert list(zip(df.predictor, df.reference.fillna(""))) == [
        ("mean", ""), ("scaled", "mean"), ("nwgm", "mean"), ("nwgm_corrected", "mean"),
        ("nwgm_delta", "mean"), ("moment_propagation", "mean"),
        ("moment_quadrature", "mean"),  # softmax outputs too, since the Gumbel integral
        ("mc", "mean"), ("rb_mc", "mean"), ("scaled", "nwgm")]
    assert set(df.method) == {"exact"} and set(df.n_subnetworks) == {2**6}
    assert set(df.layers) == {"0,2"} and set(df.keep_prob) == {"0.75,0.5"}
    ref = brute_force(net, cfg, X)
    scaled = scaled_forward(net, cfg, X)
    for name, probs in (("mean", ref.mean), ("nwgm", ref.geometric_mean)):
        r = _row(df, name, None if name == "mean" else "mean")
        # error and NLL from the reference's probabilities, by hand
        assert r.error == np.mean(probs.argmax(1) != y)
        assert r.nll == pytest.approx(-np.mean(np.log(probs[np.arange(20), y])), rel=1e-12)
    r = _row(df, "scaled", "nwgm")
    assert r.max_abs_gap == pytest.approx(np.abs(scaled - ref.geometric_mean).max(), rel=1e-10)
    r = _row(df, "nwgm", "mean")
    tv = 0.5 * np.abs(ref.geometric_mean - ref.mean).sum(1).mean()
    assert r.total_variation == pytest.approx(tv, rel=1e-10)
    assert np.isnan(df.mean_stderr).all()


def test_scaled_pass_equals_nwgm_when_only_the_last_hidden_layer_is_dropped():
    # DESIGN fact 3: a gap that must be 0 to rounding, next to one that is not.
    net = MLP.random((4, 5, 6, 3), "relu", "softmax", rng=2)
    X = np.random.default_rng(3).normal(size=(10, 4))
    df = evaluate_network(net, DropoutConfig(0.5, layers=[2]), X)
    assert _row(df, "scaled", "nwgm").max_abs_gap < 1e-14
    assert _row(df, "scaled", "mean").max_abs_gap > 1e-3
    assert np.isnan(df.error).all() and np.isnan(df.nll).all()


def test_rows_of_every_registered_predictor_against_direct_calls():
    from ensemble_study.approximations import moment_propagation
    from ensemble_study.metrics import brier, ece, total_variation
    from ensemble_study.studies._common import stream

    net = MLP.random((3, 5, 4, 3), "relu", "softmax", rng=2)
    cfg = DropoutConfig(0.5, layers=[1, 2])
    gen = np.random.default_rng(4)
    X, y = gen.normal(size=(12, 3)), gen.integers(0, 3, 12)
    df = evaluate_network(net, cfg, X, y, ks=(3, 10), n_draws=4, rng=11)
    ref = brute_force(net, cfg, X)
    mp = moment_propagation(net, cfg, X)
    r = _row(df, "moment_propagation", "mean")
    assert r.total_variation == pytest.approx(
        total_variation(ref.mean, mp.mean, "softmax").mean(), rel=1e-9)
    assert r.brier == pytest.approx(brier(mp.mean, y))
    mc = df[(df.predictor == "mc")]
    assert list(mc.k) == [3, 10] and set(mc.n_draws) == {4}
    tvs = [total_variation(ref.mean, sample_ensemble(
        net, cfg, X, 3, stream(11, "evaluate", "mc", 3, d)).mean, "softmax").mean()
        for d in range(4)]
    r = mc[mc.k == 3].iloc[0]
    assert r.total_variation == pytest.approx(np.mean(tvs), rel=1e-9)
    assert r.tv_spread == pytest.approx(np.std(tvs, ddof=1), rel=1e-9)
    assert _row(df, "mean").ece == pytest.approx(ece(ref.mean, y), rel=1e-9)


def test_identity_output_has_no_nwgm_rows_and_its_mean_is_the_scaled_pass():
    # DESIGN fact 2: identity everywhere, the ensemble mean is the scaled pass.
    net = MLP.random((3, 4, 2), "identity", "identity", rng=4)
    df = evaluate_network(net, DropoutConfig(0.5, layers=[0, 1], scheme="vanilla"),
                          np.ones((2, 3)))
    assert "nwgm" not in set(df.predictor)
    assert list(df.predictor)[:3] == ["mean", "scaled", "moment_propagation"]
    assert _row(df, "scaled", "mean").max_abs_gap < 1e-14
    assert df.kl.isna().all()


def test_past_the_limit_the_ensemble_is_sampled_with_stderr():
    net = MLP.random((3, 6, 1), "relu", "sigmoid", rng=5)
    cfg = DropoutConfig(0.5, layers=[1])
    X = np.random.default_rng(6).normal(size=(8, 3))
    df = evaluate_network(net, cfg, X, max_subnetworks=32, n_samples=500, estimator="mc",
                          rng=7)
    assert set(df.method) == {"mc"} and set(df.n_samples) == {500}
    direct = sample_ensemble(net, cfg, X, 500, 7)
    assert _row(df, "mean").mean_stderr == np.mean(direct.stderr)
    exact = evaluate_network(net, cfg, X)
    # the sampled mean row's gaps to the scaled pass are within a few SE of the exact ones
    gap_mc, gap_exact = _row(df, "scaled", "mean"), _row(exact, "scaled", "mean")
    assert abs(gap_mc.mean_abs_gap - gap_exact.mean_abs_gap) < 5 * direct.stderr.max()
    with pytest.raises(ValueError, match=r"rng is required"):
        evaluate_network(net, cfg, X, max_subnetworks=32)


@pytest.mark.parametrize("kwargs,match", [
    ({"y": np.array([0, 1])}, r"y must hold one label per example, shape \(3,\); got shape \(2,\)"),
    ({"y": np.array([0, 1, 2])}, r"integer labels in 0..1; got dtype int64, range \[0, 2\]"),
    ({"estimator": "qmc"}, r"estimator must be one of \('auto', 'exact', 'rb_mc', 'certified', 'mc'\); got 'qmc'"),
    ({"n_samples": 1}, r"n_samples must be >= 2"),
    ({"max_subnetworks": 0}, r"max_subnetworks must be an integer >= 1; got 0"),
])
def test_bad_arguments(kwargs, match):
    net = MLP.random((2, 3, 1), "relu", "sigmoid", rng=0)
    with pytest.raises(ValueError, match=match):
        evaluate_network(net, DropoutConfig(0.5, layers=[1]), np.ones((3, 2)), **kwargs)


def test_dropout_config_from_options():
    net = MLP.random((2, 3, 3, 1), rng=0)
    assert dropout_config(net, [0.5]) == DropoutConfig(0.5, layers=[1, 2])
    assert dropout_config(net, [0.8, 0.5], [0, 2], "vanilla") == DropoutConfig(
        {0: 0.8, 2: 0.5}, scheme="vanilla")
    torch_cfg = DropoutConfig({0: 0.9, 1: 0.5})
    assert dropout_config(net, (), (), None, torch_cfg) == torch_cfg
    assert dropout_config(net, [0.7], (), None, torch_cfg) == DropoutConfig(0.7, [0, 1])
    assert dropout_config(MLP.random((2, 1), rng=0), [0.5]).layers == (0,)
    with pytest.raises(ValueError, match=r"keep_prob is required"):
        dropout_config(net, ())
    with pytest.raises(ValueError, match=r"once per layer \(2: \(0, 1\)\); got 3 values"):
        dropout_config(net, [0.5, 0.5, 0.5], [0, 1])
    with pytest.raises(ValueError, match=r"cannot drop layer 3"):
        dropout_config(net, [0.5], [3])


# --- the commands --------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A 64-4-3-1 tanh network trained by `train --save` on digits 2 vs 3."""
    folder = tmp_path_factory.mktemp("saved")
    result = CliRunner().invoke(main, [
        "train", "--dataset", "digits_2v3", "--hidden", "4", "--hidden", "3", "--epochs", "2",
        "--activation", "tanh", "--keep-prob", "0.8", "--keep-prob", "0.5", "--seed", "4",
        "--out", str(folder / "history.csv"), "--save", str(folder / "net.npz")])
    assert result.exit_code == 0, result.output
    assert "exact ensemble of 128 subnetworks" in result.output
    return folder


def _run(args, folder):
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(main, args)
    finally:
        os.chdir(cwd)


def test_train_save_writes_the_trained_network(saved):
    net = MLP.load(saved / "net.npz")
    assert net.architecture == "64-4-3-1" and net.hidden == ("tanh", "tanh")
    meta = json.loads((saved / "history.json").read_text())["params"]
    assert meta["keep_prob"] == [0.8, 0.5] and meta["activation"] == "tanh"
    # the history's last scaled-pass error is the saved network's, on the same split
    ds = load_dataset("digits_2v3", rng=seed_streams(4)[0])
    cfg = DropoutConfig({1: 0.8, 2: 0.5})
    err = np.mean((scaled_forward(net, cfg, ds.X_test)[:, 0] > 0.5) != ds.y_test)
    assert pd.read_csv(saved / "history.csv").eval_error.iloc[-1] == err


def test_evaluate_on_a_dataset_with_labels(saved):
    result = _run(["evaluate", "--net", "net.npz", "--dataset", "digits_2v3", "--seed", "4",
                   "--keep-prob", "0.8", "--keep-prob", "0.5", "--layers", "1", "--layers", "2",
                   "--out", "ev/labels.csv"], saved)
    assert result.exit_code == 0, result.output
    assert "64-4-3-1 (sigmoid output), inverted dropout on layers 1,2" in result.output
    df = pd.read_csv(saved / "ev/labels.csv")
    assert list(df.columns) == ID_COLUMNS + METRIC_COLUMNS and len(df) == 10
    net = MLP.load(saved / "net.npz")
    ds = load_dataset("digits_2v3", rng=seed_streams(4)[0])
    ref = brute_force(net, DropoutConfig({1: 0.8, 2: 0.5}), ds.X_test)
    assert _row(df, "mean").error == np.mean((ref.mean[:, 0] > 0.5) != ds.y_test)
    assert _row(df, "mean").n_subnetworks == 128
    meta = json.loads((saved / "ev/labels.json").read_text())
    assert meta["params"]["keep_prob"] == {"1": 0.8, "2": 0.5} and meta["rows"] == 10


def test_evaluate_on_inputs(saved):
    X = np.random.default_rng(8).normal(size=(5, 64))
    np.save(saved / "X.npy", X)
    result = _run(["evaluate", "--net", "net.npz", "--inputs", "X.npy", "--keep-prob", "0.5",
                   "--scheme", "vanilla", "--out", "ev/inputs.csv"], saved)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(saved / "ev/inputs.csv")
    assert df.error.isna().all() and df.nll.isna().all()
    y = np.array([0, 1, 1, 0, 1])
    np.save(saved / "y.npy", y)
    result = _run(["evaluate", "--net", "net.npz", "--inputs", "X.npy", "--labels", "y.npy",
                   "--keep-prob", "0.5", "--scheme", "vanilla", "--out", "ev/lab.csv"], saved)
    assert result.exit_code == 0, result.output
    labelled = pd.read_csv(saved / "ev/lab.csv")
    ref_mean = brute_force(MLP.load(saved / "net.npz"), DropoutConfig(0.5, [1, 2], "vanilla"),
                           X).mean[:, 0]
    assert _row(labelled, "mean").error == np.mean((ref_mean > 0.5) != y)
    assert set(df.scheme) == {"vanilla"} and set(df.layers) == {"1,2"}
    net = MLP.load(saved / "net.npz")
    scaled = scaled_forward(net, DropoutConfig(0.5, [1, 2], "vanilla"), X)
    ref = brute_force(net, DropoutConfig(0.5, [1, 2], "vanilla"), X)
    assert _row(df, "scaled", "mean").max_abs_gap == pytest.approx(
        np.abs(scaled - ref.mean).max(), rel=1e-9)


def test_evaluate_a_pickled_torch_model(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    from torch import nn

    from ensemble_study import exact_ensemble, from_torch

    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(4, 2))
    torch.save(model, tmp_path / "model.pt")
    X = np.random.default_rng(9).normal(size=(6, 3))
    np.save(tmp_path / "X.npy", X)
    result = _run(["evaluate", "--net", "model.pt", "--inputs", "X.npy", "--output", "softmax",
                   "--out", "ev.csv"], tmp_path)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / "ev.csv")
    assert set(df.layers) == {"0,1"} and set(df.keep_prob) == {"0.8,0.5"}
    net, cfg = from_torch(model, output="softmax")
    nwgm = exact_ensemble(net, cfg, X).geometric_mean
    with torch.no_grad():
        eval_pass = model.eval()(torch.tensor(X, dtype=torch.float32)).softmax(-1).numpy()
    assert _row(df, "scaled", "nwgm").max_abs_gap == pytest.approx(
        np.abs(eval_pass - nwgm).max(), abs=1e-6)


def _one_line_usage_error(result):
    lines = result.output.strip().splitlines()
    return (result.exit_code == 2 and "Traceback" not in result.output
            and lines[-1].startswith("Error:") and lines[0].startswith("Usage:"))


@pytest.mark.parametrize("args,match", [
    (["--dataset", "digits_2v3", "--keep-prob", "0"], "0<x<=1"),
    (["--dataset", "digits_2v3", "--keep-prob", "0.5", "--layers", "3"], "cannot drop layer 3"),
    (["--dataset", "digits_2v3", "--keep-prob", "0.5", "--keep-prob", "0.5", "--keep-prob",
      "0.5"], "once per layer"),
    (["--dataset", "digits_2v3", "--layers", "1"], "give keep_prob for them too"),
    (["--keep-prob", "0.5"], "exactly one of --dataset and --inputs"),
    (["--dataset", "digits_2v3", "--inputs", "X.npy", "--keep-prob", "0.5"], "exactly one"),
    (["--dataset", "digits", "--keep-prob", "0.5"], "digits needs 10 output unit(s)"),
    (["--inputs", "X3.npy", "--keep-prob", "0.5"], "X must have 64 features"),
    (["--inputs", "objects.npy", "--keep-prob", "0.5"], "objects.npy"),
    (["--dataset", "digits_2v3", "--keep-prob", "0.5", "--output", "softmax"],
     "applies to a .pt network only"),
    (["--dataset", "digits_2v3", "--keep-prob", "0.5", "--n-samples", "1"], "x>=2"),
    (["--inputs", "X.npy", "--labels", "y3.npy", "--keep-prob", "0.5"],
     "labels in 0..1; got dtype int64, range [0, 2]"),
    (["--inputs", "X.npy", "--labels", "X.npy", "--keep-prob", "0.5"], "shape (2,); got shape"),
    (["--dataset", "digits_2v3", "--labels", "y3.npy", "--keep-prob", "0.5"], "goes with"),
    (["--dataset", "digits_2v3", "--keep-prob", "0.5", "--out", "folder"], "is a directory"),
])
def test_evaluate_bad_values_exit_2_in_one_line(saved, args, match):
    np.save(saved / "X.npy", np.zeros((2, 64)))
    np.save(saved / "X3.npy", np.zeros((2, 3)))
    np.save(saved / "y3.npy", np.array([0, 2]))
    np.save(saved / "objects.npy", np.array([{}, 1], dtype=object), allow_pickle=True)
    (saved / "folder").mkdir(exist_ok=True)
    before = sorted(p.name for p in saved.rglob("*"))
    out = [] if "--out" in args else ["--out", "bad.csv"]
    result = _run(["evaluate", "--net", "net.npz", *args, *out], saved)
    assert _one_line_usage_error(result), result.output
    assert match in result.output
    assert sorted(p.name for p in saved.rglob("*")) == before


@pytest.mark.parametrize("name,content,match", [
    ("text.npz", b"hello", "not a zip archive"),
    ("net.txt", b"hello", "must end in .npz (MLP.save) or .pt"),
])
def test_evaluate_bad_network_files(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    result = _run(["evaluate", "--net", name, "--dataset", "xor", "--keep-prob", "0.5"],
                  tmp_path)
    assert _one_line_usage_error(result), result.output
    assert match in result.output and "--net" in result.output


def test_evaluate_refuses_a_state_dict_and_a_foreign_pickle(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")

    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 1)).state_dict(), tmp_path / "sd.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    for name, match in (("sd.pt", "holds a OrderedDict object, not an nn.Module; save the whole"),
                        ("junk.pt", "cannot read junk.pt")):
        result = _run(["evaluate", "--net", name, "--dataset", "xor", "--keep-prob", "0.5"],
                      tmp_path)
        assert _one_line_usage_error(result), result.output
        assert match in result.output


def test_evaluate_pt_without_torch_is_a_usage_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    (tmp_path / "model.pt").write_bytes(b"")
    result = _run(["evaluate", "--net", "model.pt", "--dataset", "xor"], tmp_path)
    assert _one_line_usage_error(result), result.output
    assert "needs PyTorch: pip install -e '.[torch]'" in result.output


@pytest.mark.parametrize("args,match", [
    (["train", "--hidden", "3", "--keep-prob", "0.5", "--keep-prob", "0.5", "--keep-prob",
      "0.5"], "one per hidden layer (1); got 3"),
    (["train", "--save", "net.pt"], "must end in .npz"),
    (["train", "--input-keep-prob", "0.8"], "--exact (or --no-exact): 84 dropped units"),
    (["train", "--activation", "gelu"], "gelu"),
    (["trained", "--input-keep-prob", "0.8"], "84 dropped units"),
    (["trained", "--optimizer", "lbfgs"], "lbfgs"),
    (["trained", "--learning-rate", "0"], "x>0"),
    (["boundary", "--hidden", "13", "--hidden", "12"], "25 dropped units"),
    (["boundary", "--dataset", "digits"], "digits"),
])
def test_bad_training_options_exit_2_before_any_work(tmp_path, args, match):
    result = _run([*args, "--out", "x.csv"], tmp_path)
    assert _one_line_usage_error(result), result.output
    assert match in result.output and list(tmp_path.iterdir()) == []


def test_train_with_input_dropout_counts_every_mask(tmp_path):
    result = _run(["train", "--dataset", "xor", "--hidden", "4", "--epochs", "1",
                   "--input-keep-prob", "0.8", "--out", "h.csv"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "exact ensemble of 64 subnetworks" in result.output  # 2**(2 inputs + 4 hidden)


def test_trained_passes_the_new_options(tmp_path):
    result = _run(["trained", "--dataset", "xor", "--hidden", "3", "--keep-prob", "0.5",
                   "--scheme", "inverted", "--seed", "0", "--n-test", "10", "--sample-size",
                   "2", "--epochs", "1", "--activation", "sigmoid", "--input-keep-prob", "0.5",
                   "--optimizer", "sgd", "--learning-rate", "0.05", "--batch-size", "16",
                   "--weight-decay", "0.001", "--max-norm", "3", "--out", "t.csv"], tmp_path)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / "t.csv")
    assert set(df[df.predictor == "exact"].n_subnetworks) == {2**5}  # 2 inputs + 3 hidden
    params = json.loads((tmp_path / "t.json").read_text())["params"]
    assert params["activation"] == "sigmoid" and params["input_keep_prob"] == 0.5
    assert params == {**params, "optimizer": "sgd", "learning_rate": 0.05, "batch_size": 16,
                      "weight_decay": 0.001, "max_norm": 3.0, "epochs": 1}


def test_boundary_command(tmp_path):
    result = _run(["boundary", "--quick", "--hidden", "3", "--keep-prob", "0.5", "--scheme",
                   "vanilla", "--grid-size", "4", "--epochs", "1", "--dataset", "moons",
                   "--out", "b.csv"], tmp_path)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / "b.csv")
    assert len(df) == 16 and set(df.dataset) == {"moons"} and set(df.scheme) == {"vanilla"}
    assert set(df.architecture) == {"2-3-1"}
    params = json.loads((tmp_path / "b.json").read_text())["params"]
    assert params["grid_size"] == 4 and params["epochs"] == 1


@pytest.mark.parametrize("name", ["evaluate", "boundary", "train", "trained"])
def test_every_option_has_help(name):
    for param in main.commands[name].params:
        assert getattr(param, "help", None), f"{name} {param.name}"


def test_auto_estimator_is_rb_mc_where_it_applies_and_certified_elsewhere():
    X = np.random.default_rng(6).normal(size=(8, 3))
    # The last dropped layer feeds the output: Rao-Blackwellised, and with only
    # that layer dropped a single sample is the exact ensemble (DESIGN fact 12).
    net = MLP.random((3, 6, 1), "relu", "sigmoid", rng=5)
    cfg = DropoutConfig(0.5, layers=[1])
    df = evaluate_network(net, cfg, X, max_subnetworks=32, n_samples=2, rng=7)
    assert set(df.method) == {"rb_mc"}
    exact = evaluate_network(net, cfg, X)
    np.testing.assert_allclose(_row(df, "scaled", "mean").mean_abs_gap,
                               _row(exact, "scaled", "mean").mean_abs_gap, rtol=1e-12)
    # Input dropout under a hidden layer: the certified estimator (issue 21); plain
    # Monte Carlo when K is too small for two antithetic pairs.
    cfg = DropoutConfig(0.5, layers=[0])
    df = evaluate_network(net, cfg, X, max_subnetworks=4, n_samples=50, rng=7)
    assert set(df.method) == {"certified"}
    df = evaluate_network(net, cfg, X, max_subnetworks=4, n_samples=3, rng=7)
    assert set(df.method) == {"mc"}
