"""Issue 18, step 3: a saved network carries its dropout and where it was trained."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble_study import MLP, DropoutConfig
from ensemble_study.cli import main
from ensemble_study.datasets import load_dataset
from ensemble_study.dropout import load_with_dropout
from ensemble_study.train import seed_streams


def test_save_and_load_with_dropout_round_trip(tmp_path):
    net = MLP.random((3, 4, 2), "relu", "softmax", rng=0)
    cfg = DropoutConfig({0: 0.8, 1: 0.5}, scheme="vanilla")
    net.save(tmp_path / "n.npz", dropout=cfg, provenance={"dataset": "digits", "seed": 3})
    plain = MLP.load(tmp_path / "n.npz")  # old callers: an MLP, as before
    assert isinstance(plain, MLP) and plain.architecture == "3-4-2"
    back, cfg2, info = load_with_dropout(tmp_path / "n.npz")
    assert cfg2 == cfg and info["dataset"] == "digits" and info["seed"] == 3
    np.testing.assert_array_equal(back.weights[0], net.weights[0])
    net.save(tmp_path / "old.npz")
    assert load_with_dropout(tmp_path / "old.npz")[1:] == (None, {})


def test_load_dataset_exposes_the_cli_split():
    a = load_dataset("digits_2v3", seed=4)
    b = load_dataset("digits_2v3", rng=seed_streams(4)[0])
    np.testing.assert_array_equal(a.X_test, b.X_test)
    with pytest.raises(ValueError, match=r"exactly one of rng and seed"):
        load_dataset("digits_2v3", rng=0, seed=4)


@pytest.fixture(scope="module")
def vanilla(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vanilla")
    r = CliRunner().invoke(main, [
        "train", "--dataset", "digits_2v3", "--hidden", "5", "--epochs", "2", "--scheme",
        "vanilla", "--keep-prob", "0.5", "--seed", "2", "--no-exact",
        "--out", str(folder / "h.csv"), "--save", str(folder / "net.npz")])
    assert r.exit_code == 0, r.output
    return folder


def _evaluate(folder, *extra):
    return CliRunner().invoke(main, ["evaluate", "--net", str(folder / "net.npz"),
                                     "--out", str(folder / "e.csv"), *extra])


def test_evaluate_uses_the_saved_scheme_and_says_so(vanilla):
    # Defect: a vanilla-trained network evaluated without --scheme was scored as inverted.
    r = _evaluate(vanilla, "--dataset", "digits_2v3", "--seed", "2")
    assert r.exit_code == 0, r.output
    assert "dropout from the file" in r.output and "vanilla" in r.output
    assert set(pd.read_csv(vanilla / "e.csv").scheme) == {"vanilla"}
    assert "overlap" not in r.output
    r = _evaluate(vanilla, "--dataset", "digits_2v3", "--seed", "2", "--scheme", "inverted")
    assert r.exit_code == 0 and "--scheme inverted overrides the file's vanilla" in r.output


def test_evaluate_warns_of_a_split_the_network_was_not_trained_on(vanilla):
    # Defect: --dataset silently used a split that overlaps the network's training data.
    r = _evaluate(vanilla, "--dataset", "digits_2v3", "--seed", "0")
    assert r.exit_code == 0, r.output
    assert "may overlap the network's training data" in r.output


def test_old_file_names_the_options_to_supply(tmp_path):
    MLP.random((64, 3, 1), "relu", "sigmoid", rng=0).save(tmp_path / "net.npz")
    r = _evaluate(tmp_path, "--dataset", "digits_2v3")
    assert r.exit_code == 2 and "--keep-prob" in r.output and "--scheme" in r.output
    r = _evaluate(tmp_path, "--dataset", "digits_2v3", "--keep-prob", "0.5")
    assert r.exit_code == 0, r.output
    assert "stores no dropout" in r.output and "--scheme vanilla" in r.output


def test_errors_name_the_fix(tmp_path):
    r = CliRunner().invoke(main, ["train", "--dataset", "digits", "--hidden", "30", "--hidden",
                                  "30", "--out", str(tmp_path / "h.csv")])
    assert r.exit_code == 2 and "--no-exact" in r.output
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(4, 2))
    torch.save(model, tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.ones((2, 3)))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    base = ["evaluate", "--net", str(tmp_path / "m.pt"), "--inputs", str(tmp_path / "x.npy"),
            "--out", str(tmp_path / "e.csv")]
    r = CliRunner().invoke(main, [*base, "--labels", str(tmp_path / "y.npy")])
    assert r.exit_code == 2 and "--output softmax" in r.output
    r = CliRunner().invoke(main, base)
    assert r.exit_code == 0 and "if they are logits, pass --output softmax" in r.output
