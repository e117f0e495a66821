"""The approximations study on a tiny grid: API, CliRunner, figures, summaries."""

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble_study import cli
from ensemble_study.predictors import PREDICTORS
from ensemble_study.results import load_result, save_result
from ensemble_study.studies import approximations as study
from ensemble_study.studies import sweep
from ensemble_study.studies._common import network_stream
from ensemble_study.studies.approximations import summary

STUDY = study.STUDY
TINY = dict(STUDY.defaults(quick=True), activations=("relu", "tanh"), keep_probs=(0.5, 0.8),
            width=3, n_inputs=4, n_networks=2, n_samples=(1, 2, 5), n_draws=2,
            trained_width=3, n_test=10, epochs=1, baldi_networks=2, weight_scales=(1.0, 4.0),
            baldi_width=3)
ARGS = ["--quick", "--activation", "relu", "--keep-prob", "0.5", "--n-networks", "1",
        "--n-samples", "1", "--n-samples", "5", "--n-draws", "1", "--n-trained", "1",
        "--baldi-networks", "2"]


def _every_predictor(names) -> bool:
    """Every registered predictor, those that apply to some shapes only (a ``shape``
    hook, e.g. laplace_sigmoid: one dropped layer feeding a sigmoid) where they apply."""
    always = {n for n, p in PREDICTORS.items() if p.shape is None}
    return always <= set(names) <= set(PREDICTORS)


@pytest.fixture(scope="module")
def table():
    return STUDY.run(TINY)


def test_columns_and_rows_for_every_predictor(table):
    assert list(table.columns) == ["study", *study.COLUMNS]
    for part in ("random", "trained"):
        rows = table[table["part"] == part]
        assert _every_predictor(rows["predictor"])
        for name in summary.SAMPLED:
            got = rows[rows["predictor"] == name].groupby("n_samples")["draw"].nunique()
            assert dict(got) == {k: TINY["n_draws"] for k in TINY["n_samples"]}
    exact = table[(table["predictor"] == "exact") & table["part"].isin(["random", "trained"])]
    assert np.all(exact["mean_abs_error"] == 0) and np.all(exact["variance_rel_error"] == 0)
    baldi = table[table["part"] == "baldi"]
    n_baldi = 2 * 2 * TINY["baldi_networks"] * len(TINY["baldi_keep_probs"]) * study.BALDI_INPUTS
    assert len(baldi) == n_baldi
    assert set(baldi["breaks_bound"].astype(bool)) <= {True, False}
    # Deterministic predictors give no variance except moment propagation (both closures);
    # plain MC gives none at K = 1 (one member).
    has_var = table[table["part"] != "reliability"].dropna(subset=["variance_predicted"])
    assert set(has_var["predictor"]) == {"exact", "moment_propagation", "moment_quadrature",
                                        "mc", "rb_mc"}
    assert not ((has_var["predictor"] == "mc") & (has_var["n_samples"] == 1)).any()
    scored = table[table["part"] != "reliability"]
    assert (scored.loc[scored["predictor"] == "scaled", "cost_passes"] == 1).all()


def test_rb_at_one_free_layer_and_costs(table):
    rb, mc = (table[(table["part"] == "random") & (table["predictor"] == p)] for p in
              ("rb_mc", "mc"))
    # Costs: K passes for plain MC, more per sample for RB (the inner block).
    assert np.all(mc["cost_passes"] == mc["n_samples"])
    assert np.all(rb["cost_passes"] > rb["n_samples"])


def test_byte_reproducible_and_cells_independent(table, tmp_path):
    again = STUDY.run(TINY)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    save_result(table, a, TINY)
    save_result(again, b, TINY)
    assert a.read_bytes() == b.read_bytes()
    # Each cell is picklable and scores the same alone, in any order.
    p = STUDY.check_params(TINY)
    cells = study.cells(p)
    last = pickle.loads(pickle.dumps(cells[-1]))
    alone = pd.DataFrame(study.run_cell(last, p) + study.run_cell(cells[0], p))
    n_last = len(study.run_cell(cells[-1], p))
    pd.testing.assert_frame_equal(
        study.tidy(alone.iloc[n_last:].to_dict("records")).reset_index(drop=True),
        table.iloc[:len(alone) - n_last].reset_index(drop=True))


def test_random_cells_get_the_sweeps_networks():
    # With the sweep's grid, the random part's cells are the sweep's cells.
    p = STUDY.check_params(n_networks=3)
    random = [x for x in study.cells(p) if x.part == "random"]
    grid = sweep.STUDY.check_params(activations=p["activations"], outputs=p["outputs"],
                                    n_networks=3)
    sweep_cells = [(o, a, s) for o in grid["outputs"] for a in grid["activations"]
                   for s in range(grid["n_networks"])]
    assert [(x.output, x.activation, x.seed) for x in random] == sweep_cells
    for x in random:  # the stream sweep.run_cell draws the same cell's network from
        sizes = (grid["n_features"], grid["width"], grid["width"], 3 if x.output == "softmax" else 1)
        assert x.stream.spawn_key == network_stream(grid["seed"], x.output, x.activation,
                                                    x.seed, sizes).spawn_key


def test_summaries(table):
    s = summary.summary(table, keep_probs=(0.5,), ks=(5,))
    assert _every_predictor(s["predictor"])
    assert (s.loc[(s["predictor"] == "exact") & (s["part"] == "random"), ["relu", "tanh"]] == 0).all().all()
    assert {"relu", "tanh"} <= set(s.columns)
    pair = summary.paired(table, "moment_propagation", "scaled")
    assert set(pair["part"]) == {"random", "trained"} and (pair["n_pairs"] > 0).all()
    cross = summary.crossovers(table)
    assert set(cross["sampler"]) == set(summary.SAMPLED)
    bald = summary.baldi_summary(table)
    assert ((bald["ci_low"] <= bald["share_breaking"])
            & (bald["share_breaking"] <= bald["ci_high"])).all()
    for name, block in STUDY.blocks.items():
        assert block(table).strip(), name


def test_figures(table):
    for name, fn in STUDY.figures.items():
        fig = fn(table)
        assert fig.get_suptitle(), name
        for ax in fig.axes:
            if ax.get_visible():
                assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title(), name


def test_bad_params_are_value_errors():
    for key, bad, match in [("n_samples", (0,), "n_samples must be one or more values, each "
                                                "an integer >= 1"),
                            ("baldi_networks", -1, "baldi_networks must be an integer >= 0"),
                            ("weight_scales", (0.0,), "weight_scales must be one or more"),
                            ("width", 9, r"width \* depth")]:
        with pytest.raises(ValueError, match=match):
            STUDY.check_params({key: bad})


def test_command_writes_csv_timing_and_summary(tmp_path):
    runner = CliRunner()
    out = tmp_path / "out" / "approximations.csv"
    result = runner.invoke(cli.main, ["approximations", *ARGS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    df = load_result(out)
    assert list(df.columns) == ["study", *study.COLUMNS]
    assert _every_predictor(df.loc[df["part"] == "random", "predictor"])
    assert _every_predictor(df.loc[df["part"] == "trained", "predictor"])
    timing = load_result(out.with_name("approximations_timing.csv"))
    assert {"predictor", "n_samples", "seconds"} <= set(timing.columns)
    assert (timing["seconds"] > 0).all()
    result = runner.invoke(cli.main, ["approximations", "--summary", "--results",
                                      str(out.parent)])
    assert result.exit_code == 0, result.output
    assert all(f"## {name}" in result.output for name in STUDY.blocks)


@pytest.mark.parametrize("bad", [["--n-samples", "0"], ["--keep-prob", "0"], ["--activation", "elu"],
                                 ["--baldi-networks", "-1"]])
def test_bad_option_exits_2_and_writes_nothing(bad, tmp_path):
    result = CliRunner().invoke(cli.main, ["approximations", "--quick", *bad,
                                           "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_out_that_cannot_be_written_exits_2_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker / "a.csv", tmp_path):
        result = CliRunner().invoke(cli.main, ["approximations", "--quick", "--out", str(out)])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.slow  # ~8 s: a whole reproduce --quick
def test_reproduce_quick_runs_the_study(tmp_path, monkeypatch):
    import ensemble_study.studies as studies

    monkeypatch.setattr(studies, "default_studies", lambda: ["approximations"])
    monkeypatch.setattr(STUDY, "params", tuple(dataclasses.replace(p, quick=TINY[p.name])
                                               for p in STUDY.params))
    result = CliRunner().invoke(cli.main, ["reproduce", "--quick", "--results",
                                           str(tmp_path / "r"), "--figures", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    assert {p.name for p in Path(tmp_path / "r").glob("*.csv")} == {
        "approximations.csv", "approximations_timing.csv", "reproduce_cost.csv"}
    assert {p.stem for p in Path(tmp_path / "f").glob("*.png")} == set(STUDY.figures)


def test_label_scores_by_hand():
    # Two sigmoid outputs, both labelled 1: 0.8 (right, confidence 0.8) and 0.3 (wrong,
    # confidence 0.7 in class 0). Error 1/2; NLL -(log 0.8 + log 0.3)/2; Brier counts both
    # classes: (2 * 0.2**2 + 2 * 0.7**2) / 2 = 0.53; ECE: bins of 0.8 (acc 1) and 0.7
    # (acc 0), each half the examples: 0.5 * 0.2 + 0.5 * 0.7 = 0.45.
    got = study.label_scores(np.array([[0.8], [0.3]]), np.array([1, 1]))
    assert got["error"] == 0.5
    assert np.isclose(got["nll"], -(np.log(0.8) + np.log(0.3)) / 2)
    assert np.isclose(got["brier"], 0.53)
    assert np.isclose(got["ece"], 0.45)
    rows = study.reliability_rows(np.array([[0.8], [0.3]]), np.array([1, 1]))
    assert [(r["bin"], r["bin_count"], r["bin_accuracy"]) for r in rows] == [(10, 1, 0.0),
                                                                            (12, 1, 1.0)]


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_study_rows_score_the_labels_as_metrics_does(output):
    from ensemble_study import metrics
    from ensemble_study.dropout import DropoutConfig, scaled_forward
    from ensemble_study.ensemble import exact_ensemble
    from ensemble_study.network import MLP

    rng = np.random.default_rng(5)
    net = MLP.random((3, 4, 4, 1 if output == "sigmoid" else 3), "tanh", output, rng=1)
    X = rng.normal(size=(40, 3))
    y = rng.integers(0, 2 if output == "sigmoid" else 3, size=40)
    cfg = DropoutConfig(0.5, layers=[1, 2])
    rows = study.score_predictors(net, cfg, X, (10,), 1, np.random.SeedSequence(0), y=y)
    scored = {r["predictor"]: r for r in rows if r.get("part") != "reliability"}
    ens = exact_ensemble(net, cfg, X)
    for name, probs in (("exact", ens.mean), ("nwgm", ens.geometric_mean),
                        ("scaled", scaled_forward(net, cfg, X))):
        r = scored[name]
        assert r["error"] == metrics.error_rate(probs, y)
        assert np.isclose(r["nll"], metrics.nll(probs, y))
        assert np.isclose(r["brier"], metrics.brier(probs, y))
        assert np.isclose(r["ece"], metrics.ece(probs, y))
    # Distances to the exact NWGM: zero for the NWGM itself, the mean's gap for the exact mean.
    assert scored["nwgm"]["nwgm_abs_error"] == 0
    assert np.isclose(scored["exact"]["nwgm_abs_error"],
                      np.mean(np.abs(ens.mean - ens.geometric_mean)))
    assert np.isclose(scored["exact"]["nwgm_abs_error"], scored["nwgm"]["mean_abs_error"])
    # Reliability rows: each predictor's bins hold every example once, and their
    # count-weighted |accuracy - confidence| is its ECE.
    rel = pd.DataFrame([r for r in rows if r.get("part") == "reliability"])
    for (name, k), g in rel.groupby(["predictor", "n_samples"]):
        assert g["bin_count"].sum() == len(y)
        ece = np.sum(g["bin_count"] * np.abs(g["bin_accuracy"] - g["bin_confidence"])) / len(y)
        assert np.isclose(ece, [r for r in rows if r.get("part") != "reliability"
                                and r["predictor"] == name and r["n_samples"] == k][0]["ece"])


def _synthetic(diff_a: float, diff_b: float, n: int = 10) -> pd.DataFrame:
    """Trained rows of two cells: 'nwgm' worse than 'scaled' by diff_a (cell relu) and
    by diff_b (cell tanh), with small seed-to-seed noise; same networks paired."""
    rng = np.random.default_rng(0)
    rows = []
    for act, diff in (("relu", diff_a), ("tanh", diff_b)):
        for seed in range(n):
            base = 0.5 + 0.1 * rng.normal()
            for pred, value in (("scaled", base), ("nwgm", base + diff + 0.01 * rng.normal())):
                rows.append(dict(part="trained", dataset="digits", output="softmax",
                                 activation=act, keep_prob=0.5, seed=seed, predictor=pred,
                                 n_samples=0, nll=value))
    return pd.DataFrame(rows)


def test_paired_family_states_only_holm_survivors():
    from ensemble_study import stats

    d = _synthetic(0.2, 0.0)
    fam = summary.paired_family(d, "test", "nll", [("nwgm", 0, "scaled", 0)],
                                ("activation", "keep_prob"))
    t = fam.table()
    assert list(t["activation"]) == ["relu", "tanh"]
    assert list(t["survives"]) == [True, False]
    # The interval is the paired t-interval of the differences, the p-value Holm's.
    relu = d[d.activation == "relu"].pivot(index="seed", columns="predictor", values="nll")
    res = stats.paired_t(relu["nwgm"].to_numpy(), relu["scaled"].to_numpy())
    assert np.isclose(t["mean_difference"].iloc[0], res["mean_difference"])
    assert np.isclose(t["low"].iloc[0], res["low"]) and np.isclose(t["high"].iloc[0], res["high"])
    assert np.allclose(t["holm"], stats.holm(t["pvalue"]))
    from ensemble_study.studies.approximations import show
    lines = show._survivors(fam, lower="lower", higher="higher")
    assert len(lines) == 1 and "higher in relu q=0.5" in lines[0] and "tanh" not in \
        lines[0].split("(1 of 2")[0]
    # A tiny shift in both cells survives in neither.
    fam = summary.paired_family(_synthetic(1e-4, 1e-4), "test", "nll",
                                [("nwgm", 0, "scaled", 0)], ("activation", "keep_prob"))
    assert not fam.table()["survives"].any()
    assert show._survivors(fam, lower="lower", higher="higher")[0].endswith(
        "no difference survives.")


def test_a_family_does_not_test_rounding_differences():
    """Two predictors equal to rounding (fact 10's NWGM and scaled pass) make no claim,
    however many networks agree on the sign of their 1e-17 differences."""
    from ensemble_study.studies.approximations.summary import paired_family

    rng = np.random.default_rng(0)
    base = rng.uniform(0.01, 0.1, 30)
    rows = [dict(cell="c", seed=s, predictor=p, n_samples=0, err=v)
            for s, (x, y) in enumerate(zip(base, base * (1 - 1e-15), strict=True))
            for p, v in (("nwgm", y), ("scaled", x))]
    per = pd.DataFrame(rows)
    fam = paired_family(per, "rounding", "err", [("nwgm", 0, "scaled", 0)], ("cell",))
    t = fam.table()
    assert t["pvalue"].tolist() == [1.0] and not t["survives"].any()
    # A real difference of the same sign still survives.
    per.loc[per.predictor == "nwgm", "err"] *= 0.9
    fam = paired_family(per, "real", "err", [("nwgm", 0, "scaled", 0)], ("cell",))
    assert fam.table()["survives"].all()
