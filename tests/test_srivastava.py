"""The srivastava study: the training recipe on digits, Fig. 11's crossings, Hinton's claim."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble_study.cli import main
from ensemble_study.datasets import load_dataset
from ensemble_study.dropout import scaled_forward
from ensemble_study.studies import srivastava
from ensemble_study.studies.srivastava import show
from ensemble_study.train import error_rate


def test_a_short_training_run_reaches_a_stated_test_error():
    # 30 epochs of the recipe (instead of 100) on 64-20-10 at keep_prob 0.5:
    # the scaled pass must err on under 8% of the 449 test images. Why 8%: the
    # previous trained study's networks erred on 14% at keep_prob 0.5 (issue
    # 10), a plain MLP reaches about 3%, chance is 90%; six seeds of this run
    # were measured at 5.1-6.2%, so 8% leaves room for any seed.
    data = load_dataset("digits", rng=srivastava.SPLIT_SEED)
    recipe = dataclasses.replace(srivastava.RECIPE, epochs=30)
    net, cfg, history = srivastava.train_digits(0, 0.5, "inverted", (20,), recipe=recipe,
                                                data=data)
    assert net.architecture == "64-20-10" and cfg.layers == (1,)
    assert len(history) == 30
    assert error_rate("softmax", scaled_forward(net, cfg, data.X_test), data.y_test) < 0.08


def test_baseline_and_dropout_networks_share_their_initialisation():
    recipe = dataclasses.replace(srivastava.RECIPE, epochs=1, validation_fraction=0.0)
    tiny = dataclasses.replace(recipe, learning_rate=1e-12)
    a, _, _ = srivastava.train_digits(3, 1.0, "inverted", (5,), recipe=tiny)
    b, _, _ = srivastava.train_digits(3, 0.5, "vanilla", (5,), recipe=tiny)
    np.testing.assert_allclose(a.weights[0], b.weights[0], atol=1e-9)


TINY = dict(architectures=((6,), (3, 3)), keep_probs=(0.5,), schemes=("vanilla", "inverted"),
            seeds=(0, 1), n_samples=(1, 5), n_draws=2, epochs=2)
STUDY = srivastava.STUDY


@pytest.fixture(scope="module")
def tiny():
    return STUDY.run(TINY)


def test_table_layout(tiny):
    assert list(tiny.columns) == srivastava.ID_COLUMNS + srivastava.METRIC_COLUMNS
    counts = tiny.groupby(["architecture", "predictor"]).size().to_dict()
    # Per architecture: 2 seeds x (baseline | 2 schemes x predictors); Fig. 11
    # (exact mean, 2 K x 2 draws) for the one-hidden-layer network only.
    assert counts == {("64-6-10", "no_dropout"): 2, ("64-6-10", "scaled"): 4,
                      ("64-6-10", "nwgm"): 4, ("64-6-10", "exact"): 4,
                      ("64-6-10", "mc"): 16, ("64-3-3-10", "no_dropout"): 2,
                      ("64-3-3-10", "scaled"): 4, ("64-3-3-10", "nwgm"): 4}
    assert tiny[["architecture", "scheme", "keep_prob", "seed", "predictor", "n_samples",
                 "draw"]].duplicated().sum() == 0


def test_one_dropped_layer_hinton_is_a_theorem(tiny):
    scaled = tiny[tiny["predictor"] == "scaled"]
    one = scaled[scaled["architecture"] == "64-6-10"]
    # Fact 3: the scaled pass is the NWGM; Hinton's inequality holds on every image.
    nwgm = tiny[(tiny["predictor"] == "nwgm") & (tiny["architecture"] == "64-6-10")]
    np.testing.assert_array_equal(one["error"].to_numpy(), nwgm["error"].to_numpy())
    assert (one["hinton_share"] == 1).all() and (one["hinton_min_diff"] >= -1e-12).all()
    # The NWGM's version holds at any depth.
    assert (scaled["nwgm_share"] == 1).all()
    np.testing.assert_allclose(scaled["mean_log_scaled"] - scaled["mean_expected_log"],
                               scaled["hinton_mean_diff"], rtol=0, atol=1e-12)


def test_seeds_run_separately_give_the_same_table(tiny):
    parts = [STUDY.run({**TINY, "seeds": (s,)}) for s in (1, 0)]
    joined = pd.concat(parts).sort_values(srivastava.ID_COLUMNS, ignore_index=True)
    pd.testing.assert_frame_equal(joined, tiny)


def _synthetic(sampled_error, scaled, exact, n_seeds=5, ks=srivastava.SAMPLE_SIZES):
    rows = []
    for seed in range(n_seeds):
        ids = dict(architecture="64-20-10", scheme="inverted", keep_prob=0.5, seed=seed)
        rows += [{**ids, "predictor": "scaled", "n_samples": 0, "draw": 0, "error": scaled},
                 {**ids, "predictor": "exact", "n_subnetworks": 2**20, "n_samples": 0,
                  "draw": 0, "error": exact},
                 {**ids, "predictor": "no_dropout", "n_samples": 0, "draw": 0, "error": 0.03}]
        rows += [{**ids, "predictor": "mc", "n_samples": k, "draw": d,
                  "error": sampled_error(k) + (0.01 if d else -0.01)}
                 for k in ks for d in (0, 1)]
    return pd.DataFrame(rows)


def test_crossings_find_the_first_k_by_hand():
    # Mean MC error 0.1 + 0.1 / K: at most 0.125 from K = 4, so K = 5 on the grid;
    # it never reaches 0.09. Identical seeds: the bootstrap interval is the point.
    df = _synthetic(lambda k: 0.1 + 0.1 / k, scaled=0.125, exact=0.09)
    out = show.crossings(df).set_index("reference")
    assert out.loc["scaled", ["k", "ci_low", "ci_high"]].tolist() == [5, 5, 5]
    assert out.loc["scaled", "reference_error"] == pytest.approx(0.125)
    assert np.isinf(out.loc["exact", ["k", "ci_low", "ci_high"]].astype(float)).all()


def test_crossing_interval_widens_with_seed_to_seed_differences():
    # Seed s has scaled error 0.11 + 0.01 s: the crossing of 0.1 + 0.1 / K
    # moves from K = 10 (s = 0) to K = 3 (s = 4): the interval must cover both
    # sides of the point estimate (mean 0.13: K = 5).
    df = _synthetic(lambda k: 0.1 + 0.1 / k, scaled=0.0, exact=0.0)
    mask = df["predictor"] == "scaled"
    df.loc[mask, "error"] = 0.11 + 0.01 * df.loc[mask, "seed"]
    row = show.crossings(df).set_index("reference").loc["scaled"]
    assert row["k"] == 5
    assert row["ci_low"] < 5 < row["ci_high"] and row["ci_low"] >= 3 and row["ci_high"] <= 10


def test_summary_and_figure(tiny):
    for name, block in STUDY.blocks.items():
        assert block(tiny).strip(), name
    errors = show.errors(tiny)
    base = errors[errors["predictor"] == "no_dropout"]
    assert (base["minus_baseline"] == 0).all()
    fig = STUDY.figures["srivastava_fig11"](tiny)
    assert len(fig.axes) == 2  # schemes x keep_probs
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


@pytest.mark.parametrize("args,match", [
    (["--keep-prob", "0"], "--keep-prob"),
    (["--scheme", "dropconnect"], "--scheme"),
    (["--summary", "--results", "missing"], "run `ensemble-study srivastava` first"),
    (["--summary", "--seed", "3"], "--summary runs nothing"),
])
def test_cli_refuses_bad_input(args, match):
    result = CliRunner().invoke(main, ["srivastava", *args])
    assert result.exit_code == 2 and match in result.output


def test_cli_quick_writes_its_own_file():
    runner = CliRunner()
    with runner.isolated_filesystem():
        result = runner.invoke(main, ["srivastava", "--quick", "--seed", "0", "--jobs", "1"])
        assert result.exit_code == 0, result.output
        assert "quick/results/srivastava.csv" in result.output
        summary = runner.invoke(main, ["srivastava", "--quick", "--summary"])
        assert summary.exit_code == 0 and "## srivastava-hinton" in summary.output


@pytest.mark.parametrize("bad,match", [
    (dict(architectures=((30,),)), "30 dropped units"),
    (dict(architectures=((),)), "architectures must be one or more values, each a tuple"),
    (dict(seeds=(-1,)), "seeds must be one or more values, each an integer >= 0"),
    (dict(keep_probs=(0.5, 1.5)), "keep_probs"),
    (dict(schemes=("dropconnect",)), "schemes must be one or more values, each one of"),
    (dict(n_samples=(0,)), "n_samples"),
    (dict(recipe={"epochs": 3}), "unknown parameter"),
])
def test_bad_parameters_raise_before_any_work(bad, match):
    with pytest.raises(ValueError, match=match):
        STUDY.run(quick=True, **bad)
