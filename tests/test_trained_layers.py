"""The trained study with per-layer keep probabilities (``layer_keep_probs``)."""

import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble_study.cli import main
from ensemble_study.studies import trained

TINY = dict(datasets=("digits_2v3",), hidden=(3, 2), keep_probs=(0.5,), schemes=("inverted",),
            seeds=(0,), n_test=10, n_samples=(2,), n_draws=1, epochs=1)


def test_a_fixed_layer_keeps_its_own_keep_prob(monkeypatch):
    seen = []
    real = trained.train

    def spy(net, cfg, *args, **kwargs):
        seen.append(cfg)
        return real(net, cfg, *args, **kwargs)

    monkeypatch.setattr(trained, "train", spy)
    df = trained.STUDY.run(TINY, layer_keep_probs={2: 0.8})
    (cfg,) = seen
    assert cfg.layer_keep_prob(1) == 0.5 and cfg.layer_keep_prob(2) == 0.8
    assert set(df.keep_prob) == {0.5}
    # The exact ensemble row is the ensemble of that config, not of q = 0.5 everywhere.
    assert set(df.loc[df.predictor == "exact", "n_subnetworks"]) == {2**5}


def test_without_fixed_layers_the_table_is_unchanged():
    a = trained.STUDY.run(TINY)
    b = trained.STUDY.run(TINY, layer_keep_probs={})
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("value, match", [
    ({3: 0.5}, r"layer_keep_probs: layer 3 is not a hidden layer: the network has 2 \(1..2\)"),
    ({0: 0.5}, r"layer_keep_probs must be values, each a pair \(hidden layer >= 1"),
    ({1: 1.5}, r"layer_keep_probs must be .*; got \(1, 1.5\)"),
])
def test_bad_layer_keep_probs(value, match):
    with pytest.raises(ValueError, match=match):
        trained.STUDY.run(TINY, layer_keep_probs=value)


def test_layer_keep_probs_must_be_layer_q_pairs():
    with pytest.raises(ValueError, match="layer_keep_probs must be values, each a pair"):
        trained.STUDY.run(TINY, layer_keep_probs=[0.5, 0.8])


@pytest.mark.parametrize("item, match", [
    ("2", "expected LAYER=Q"), ("x=0.5", "expected LAYER=Q"), ("2=1.5", "expected LAYER=Q"),
    ("0=0.5", "expected LAYER=Q"), ("3=0.5", "layer 3 is not a hidden layer"),
])
def test_cli_bad_layer_keep_prob(tmp_path, item, match):
    res = CliRunner().invoke(main, ["trained", "--quick", "--layer-keep-prob", item,
                                    "--out", str(tmp_path / "t.csv"), "--jobs", "1"])
    assert res.exit_code == 2 and match in res.output and "Traceback" not in res.output
    assert not list(tmp_path.iterdir())

