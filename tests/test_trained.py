"""The trained and boundary studies, their figures and the train/trained commands."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble_study.cli import main
from ensemble_study.publish import render_all
from ensemble_study.results import save_result
from ensemble_study.studies import boundary, default_studies, trained


@pytest.fixture(scope="module")
def tiny():
    return trained.STUDY.run(datasets=("digits_2v3", "digits"), hidden=(3, 3),
                             keep_probs=(0.5, 1.0), seeds=(0,), n_test=25,
                             n_samples=(1, 4), n_draws=2, epochs=2)


def test_columns_and_grid(tiny):
    assert list(tiny.columns) == trained.ID_COLUMNS + trained.METRIC_COLUMNS
    # datasets x seeds x schemes x keep_probs x states, each with 3 + K x draws predictors.
    assert len(tiny) == 2 * 1 * 2 * 2 * 2 * (3 + 2 * 2)
    assert set(tiny["architecture"]) == {"64-3-3-1", "64-3-3-10"}
    exact = tiny[tiny["predictor"] == "exact"]
    assert set(exact.loc[exact["keep_prob"] == 0.5, "n_subnetworks"]) == {2**6}
    assert tiny[trained.METRIC_COLUMNS].notna().all().all()


def test_keep_prob_one_makes_every_predictor_the_same(tiny):
    # With nothing dropped there is one subnetwork: the exact ensemble, its
    # NWGM, the scaled pass and every sampled ensemble are the same network.
    cells = tiny[tiny["keep_prob"] == 1.0]
    assert (cells["n_subnetworks"][cells["predictor"].isin(["exact", "nwgm"])] == 1).all()
    for _, cell in cells.groupby(["dataset", "state", "scheme"]):
        assert cell["error"].nunique() == 1
        np.testing.assert_allclose(cell["nll"], cell["nll"].iloc[0], rtol=1e-12)
        np.testing.assert_allclose(cell[["max_abs_gap", "kl", "disagreement"]], 0, atol=1e-12)


def test_error_differences_are_bounded_by_disagreement(tiny):
    # A predictor can only change the error on examples where its predicted
    # class differs from the exact mean's.
    ref = tiny[tiny["predictor"] == "exact"].set_index(
        ["dataset", "state", "scheme", "keep_prob", "seed"])["error"]
    rows = tiny.join(ref.rename("ref_error"), on=ref.index.names)
    assert (abs(rows["error"] - rows["ref_error"]) <= rows["disagreement"] + 1e-12).all()
    assert (rows.loc[rows["predictor"] == "exact", "max_abs_gap"] == 0).all()


def test_training_helps_and_study_is_reproducible(tiny):
    again = trained.STUDY.run(datasets=("digits_2v3",), hidden=(3, 3), keep_probs=(0.5,),
                              seeds=(0,), n_test=25, n_samples=(1, 4), n_draws=2, epochs=2)
    first = tiny[(tiny["dataset"] == "digits_2v3") & (tiny["keep_prob"] == 0.5)]
    pd.testing.assert_frame_equal(first.reset_index(drop=True), again)
    # Two epochs of Adam on an easy pair beat the untrained network (chance
    # is about 0.5; the trained exact ensemble is typically below 0.1).
    exact = first[first["predictor"] == "exact"].set_index(["scheme", "state"])["error"]
    for scheme in ("vanilla", "inverted"):
        assert exact[(scheme, "trained")] < exact[(scheme, "init")]


def test_boundary_study_agrees_when_nothing_is_dropped():
    df = boundary.STUDY.run(hidden=(3, 3), keep_probs=(1.0, 0.5), schemes=("inverted",),
                            n_examples=120, grid_size=7, epochs=2)
    assert list(df.columns) == boundary.ID_COLUMNS + boundary.METRIC_COLUMNS
    assert len(df) == 2 * 7 * 7
    probs = df[["exact_mean", "exact_nwgm", "scaled"]].to_numpy()
    assert np.all((probs >= 0) & (probs <= 1))
    one = df[df["keep_prob"] == 1.0]
    np.testing.assert_allclose(one["exact_mean"], one["scaled"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(one["exact_nwgm"], one["scaled"], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="dataset must be one of 'moons'"):
        boundary.STUDY.run(dataset="digits_2v3", hidden=(2,), grid_size=3, epochs=2)


def test_studies_are_registered_with_figures(tiny, tmp_path):
    assert {"trained", "boundary"} <= set(default_studies())
    save_result(tiny, tmp_path / "trained.csv", {})
    df = boundary.STUDY.run(hidden=(2, 2), keep_probs=(0.5,), n_examples=80, grid_size=5,
                            epochs=2)
    save_result(df, tmp_path / "boundary.csv", {})
    written = render_all(tmp_path, tmp_path / "figures", dpi=40)
    expected = set(trained.STUDY.figures) | set(boundary.STUDY.figures)
    assert {p.stem for p in written} == expected and len(expected) == 4
    assert all(p.stat().st_size > 0 for p in written)


def test_trained_command_tiny_grid(tmp_path):
    out = tmp_path / "trained.csv"
    result = CliRunner().invoke(main, [
        "trained", "--dataset", "digits_2v3", "--hidden", "3", "--hidden", "2",
        "--keep-prob", "0.5", "--scheme", "vanilla", "--seed", "3", "--n-test", "10",
        "--sample-size", "2", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "--sample-size is deprecated; use --n-samples" in result.output
    df = pd.read_csv(out)
    assert list(df.columns) == trained.ID_COLUMNS + trained.METRIC_COLUMNS
    assert len(df) == 2 * (3 + 1 * 3)  # two states; exact, NWGM, scaled + K=2 x 3 draws
    assert set(df["seed"]) == {3} and set(df["architecture"]) == {"64-3-2-1"}
    params = json.loads(out.with_suffix(".json").read_text())["params"]
    assert params["epochs"] == 1 and params["keep_probs"] == [0.5]


def test_train_command(tmp_path):
    out = tmp_path / "train.csv"
    result = CliRunner().invoke(main, [
        "train", "--dataset", "xor", "--hidden", "4", "--epochs", "3", "--keep-prob", "0.8",
        "--optimizer", "sgd", "--max-norm", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "exact ensemble of 16 subnetworks" in result.output
    history = pd.read_csv(out)
    assert list(history["epoch"]) == [1, 2, 3]


@pytest.mark.parametrize("args,match", [
    (["train", "--keep-prob", "0"], "0<x<=1"),
    (["train", "--dataset", "cifar10"], "cifar10"),
    (["trained", "--scheme", "dropconnect"], "dropconnect"),
    (["train", "--max-norm", "-1"], "x>0"),
])
def test_bad_options_are_refused(args, match):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and match in result.output
