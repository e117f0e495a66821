"""The sweep, mc, spread, depth, figures and reproduce commands, through CliRunner."""

import contextlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import ensemble_study.studies as studies
from ensemble_study import cli

# Tiny grids: each command runs in well under a second (in this process: a pool's
# start-up would cost more than the grid; tests/test_executor.py runs pools).
COMMANDS = {
    "sweep": ["--jobs", "1", "--width", "2", "--n-seeds", "2", "--n-inputs", "3",
              "--keep-prob", "0.5", "--keep-prob", "1", "--activation", "relu",
              "--activation", "identity"],
    "mc": ["--jobs", "1", "--width", "2", "--n-seeds", "1", "--n-inputs", "3", "--k", "1",
           "--n-samples", "20", "--n-draws", "2", "--activation", "tanh"],
    "spread": ["--jobs", "1", "--width", "2", "--n-inputs", "2", "--activation", "sigmoid"],
    "depth": ["--jobs", "1", "--width", "2", "--width", "3", "--depth", "1", "--depth", "2",
              "--n-seeds", "1", "--n-inputs", "3", "--max-dropped", "6"],
}
COLUMNS = {
    "sweep": ["study", "architecture", "activation", "output", "scheme", "weights", "keep_prob",
              "seed", "predictor", "n_subnetworks", "statistic", "mean_abs_gap", "max_abs_gap",
              "relative_gap", "kl", "disagreement"],
    "mc": ["predictor", "n_samples", "draw", "statistic", "mean_abs_gap", "relative_gap"],
    "spread": ["input", "quantity", "subnetwork", "probability", "value"],
    "depth": ["depth", "width", "n_dropped", "statistic", "mean_abs_gap", "relative_gap"],
}


@contextlib.contextmanager
def fresh_folder(parent):
    """Run inside a new empty folder under ``parent`` (kept: the tests read its files)."""
    cwd, old = tempfile.mkdtemp(dir=parent), os.getcwd()
    os.chdir(cwd)
    try:
        yield cwd
    finally:
        os.chdir(old)


def invoke(args, folder):
    with fresh_folder(folder) as cwd:
        result = CliRunner().invoke(cli.main, args)
        files = sorted(str(p) for p in Path().rglob("*") if p.is_file())
    return result, files, Path(cwd)


def without_cells(files):
    """The files outside the cell stores (``.cells/`` next to each CSV)."""
    return [f for f in files if ".cells" not in Path(f).parts]


@pytest.mark.parametrize("name", COMMANDS)
def test_study_command_writes_csv_and_sidecar(name, tmp_path):
    result, files, cwd = invoke([name, *COMMANDS[name], "--out", "out/table.csv"], tmp_path)
    assert result.exit_code == 0, result.output
    assert without_cells(files) == ["out/table.csv", "out/table.json"]
    assert any(f.startswith("out/.cells/") for f in files)
    df = pd.read_csv(cwd / "out/table.csv")
    assert set(COLUMNS[name]) <= set(df.columns) and len(df) > 0
    assert (df["study"] == name).all()
    meta = json.loads((cwd / "out/table.json").read_text())
    assert meta["params"]["seed"] == 0 and meta["rows"] == len(df)


def test_default_out_is_under_results(tmp_path):
    result, files, _ = invoke(["spread", *COMMANDS["spread"]], tmp_path)
    assert result.exit_code == 0, result.output
    assert without_cells(files) == ["results/spread.csv", "results/spread.json"]


def test_options_reach_the_study(tmp_path):
    result, _, cwd = invoke(["sweep", *COMMANDS["sweep"], "--output", "identity", "--seed",
                             "5", "--out", "s.csv"], tmp_path)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(cwd / "s.csv")
    assert set(df["output"]) == {"identity"} and set(df["keep_prob"]) == {0.5, 1.0}
    assert set(df["activation"]) == {"relu", "identity"} and set(df["seed"]) == {0, 1}
    assert set(df["architecture"]) == {"4-2-2-1"}


@pytest.mark.parametrize("name, bad", [
    ("sweep", ["--keep-prob", "0"]),
    ("sweep", ["--keep-prob", "1.2"]),
    ("mc", ["--keep-prob", "-0.5"]),
    ("spread", ["--keep-prob", "0"]),
    ("depth", ["--keep-prob", "2"]),
    ("sweep", ["--activation", "gelu"]),
    ("mc", ["--activation", "swish"]),
    ("spread", ["--activation", "softplus"]),
    ("depth", ["--activation", "elu"]),
    ("spread", ["--output", "softmax"]),
    ("mc", ["--scheme", "dropconnect"]),
    ("sweep", ["--width", "11"]),  # 22 dropped units: too many to enumerate
])
def test_bad_input_exits_2_with_usage_and_writes_nothing(name, bad, tmp_path):
    result, files, _ = invoke([name, *COMMANDS[name], *bad, "--out", "out/x.csv"], tmp_path)
    assert result.exit_code == 2
    assert "Usage:" in result.output and "Error" in result.output
    assert files == []


def test_every_option_has_help():
    for name in COMMANDS:
        for param in cli.main.commands[name].params:
            assert getattr(param, "help", None), f"{name} {param.name}"


def test_figures_after_the_studies(tmp_path):
    runner = CliRunner()
    with fresh_folder(tmp_path):
        for name, args in COMMANDS.items():
            assert runner.invoke(cli.main, [name, *args]).exit_code == 0
        result = runner.invoke(cli.main, ["figures"])
        assert result.exit_code == 0, result.output
        pngs = {p.name for p in Path("figures").glob("*.png")}
    assert pngs == {"sweep.png", "sweep_slope.png", "mc.png", "spread.png", "depth.png"}


@pytest.mark.slow  # ~14 s: four studies and their figures
def test_reproduce_quick_runs_these_studies(tmp_path, monkeypatch):
    monkeypatch.setattr(studies, "default_studies", lambda: ["sweep", "mc", "spread", "depth"])
    runner = CliRunner()
    with fresh_folder(tmp_path):
        result = runner.invoke(cli.main, ["reproduce", "--quick", "--jobs", "1"])
        assert result.exit_code == 0, result.output
        # A smoke run never touches the committed results/ and figures/.
        assert not Path("results").exists() and not Path("figures").exists()
        csvs = {p.name for p in Path("quick/results").glob("*.csv")}
        pngs = {p.name for p in Path("quick/figures").glob("*.png")}
    assert csvs == {"sweep.csv", "mc.csv", "spread.csv", "depth.csv", "reproduce_cost.csv"}
    assert {"sweep.png", "sweep_slope.png", "mc.png", "spread.png", "depth.png"} <= pngs


def test_reproduce_records_what_each_study_cost(tmp_path, monkeypatch):
    monkeypatch.setattr(studies, "default_studies", lambda: ["spread", "depth"])
    result = CliRunner().invoke(cli.main, ["reproduce", "--quick", "--jobs", "1", "--results",
                                           str(tmp_path / "r"), "--figures", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    cost = pd.read_csv(tmp_path / "r" / "reproduce_cost.csv")
    assert list(cost.study) == ["spread", "depth"] and (cost.seconds > 0).all()
    assert list(cost.rows) == [len(pd.read_csv(tmp_path / "r" / f"{s}.csv"))
                               for s in ("spread", "depth")]
