"""The regularizer_mlp study: its fast exact regularizer, its training in segments, its rows."""

import numpy as np
import pandas as pd
import pytest

from ensemble_study import regularizer as reg
from ensemble_study.dropout import DropoutConfig
from ensemble_study.network import MLP
from ensemble_study.studies import regularizer_mlp as study
from ensemble_study.studies.regularizer_mlp import show
from ensemble_study.train import TrainConfig, train


@pytest.mark.parametrize("scheme", ["inverted", "vanilla"])
@pytest.mark.parametrize("layers, hidden", [((1,), ("tanh",)), ((1, 2), ("tanh", "sigmoid")),
                                            ((0, 2), ("relu", "tanh")),
                                            ({0: 0.8, 1: 0.3, 2: 0.6}, ("tanh", "tanh"))])
def test_exact_softmax_regularizer_is_mlp_regularizer(scheme, layers, hidden):
    sizes = (3, 4, 10) if len(hidden) == 1 else (3, 4, 3, 4)
    net = MLP.random(sizes, hidden, "softmax", rng=1, bias_scale=0.5)
    cfg = (DropoutConfig(layers, scheme=scheme) if isinstance(layers, dict)
           else DropoutConfig(0.4, layers=layers, scheme=scheme))
    X = np.random.default_rng(2).normal(size=(6, 3))
    y = np.random.default_rng(3).integers(0, sizes[-1], 6)
    ref = reg.mlp_regularizer(net, cfg, X, y)
    for group in (1, 5):
        got = study.exact_softmax_regularizer(net, cfg, X, y, group=group)
        for part in ref:
            assert got[part] == pytest.approx(ref[part], rel=1e-11, abs=1e-13)


def test_exact_softmax_regularizer_shifts_large_logits():
    """Logits beyond exp's range take the shifted path and still match enumeration."""
    net = MLP.random((3, 4, 3), "tanh", "softmax", rng=4)
    big = MLP(tuple(w * (400.0 if l == 1 else 1.0) for l, w in enumerate(net.weights)),
              net.biases, net.hidden, net.output)
    cfg = DropoutConfig(0.5, layers=(1,))
    X = np.random.default_rng(5).normal(size=(4, 3))
    y = np.array([0, 1, 2, 0])
    ref = reg.mlp_regularizer(big, cfg, X, y)
    got = study.exact_softmax_regularizer(big, cfg, X, y)
    assert np.isfinite(got["total"])
    assert got["total"] == pytest.approx(ref["total"], rel=1e-11)


def test_exact_softmax_regularizer_refuses_other_layouts():
    net = MLP.random((3, 4, 3, 3), "tanh", "softmax", rng=6)
    with pytest.raises(ValueError, match="last dropped layer feeding it"):
        study.exact_softmax_regularizer(net, DropoutConfig(0.5, layers=(1,)),
                                        np.zeros((2, 3)), np.array([0, 1]))


def test_training_in_segments_is_one_run():
    """Plain SGD has no optimiser state: two segments drawing from one generator are one
    uninterrupted run (the study's checkpoints do not perturb training)."""
    g = np.random.default_rng(7)
    X, y = g.normal(size=(40, 5)), g.integers(0, 3, 40)
    net0 = MLP.random((5, 4, 3), "tanh", "softmax", rng=8)
    cfg = DropoutConfig(0.5, layers=(1,))
    tc = {"optimizer": "sgd", "momentum": 0.0, "learning_rate": 0.1, "batch_size": 8}
    one, _ = train(net0, cfg, X, y, train_cfg=TrainConfig(epochs=3, **tc),
                   rng=np.random.default_rng(9))
    gen = np.random.default_rng(9)
    mid, _ = train(net0, cfg, X, y, train_cfg=TrainConfig(epochs=1, **tc), rng=gen)
    two, _ = train(mid, cfg, X, y, train_cfg=TrainConfig(epochs=2, **tc), rng=gen)
    for a, b in zip(one.weights + one.biases, two.weights + two.biases):
        np.testing.assert_array_equal(a, b)


def test_quick_rows_are_consistent_and_the_blocks_read_them():
    params = study.STUDY.check_params(quick=True, epochs=(0, 1))
    rows = study.run_cell(((3,), 0), params) + study.run_cell(((3,), 1), params) \
        + study.run_cell(((2, 2), 0), params) + study.run_cell(((2, 2), 1), params)
    df = study.STUDY.tidy(rows)
    assert set(df.epoch) == {0, 1} and len(df) == 8
    np.testing.assert_allclose(df.R_exact, df.R_exact_free + df.R_exact_dependent, rtol=1e-12)
    np.testing.assert_allclose(df.ratio_full, df.R2_full / df.R_exact, rtol=1e-12)
    one = df[df.n_dropped == 3]
    # Fact 10: one dropped layer feeding the softmax output.
    assert np.all(np.abs(one.share_dependent) < 1e-12)
    np.testing.assert_allclose(one.R2_gauss_newton, one.R2_full, rtol=1e-12)
    # The checkpoint at epoch 0 is the initial network, drawn from the cell's stream.
    again = study.run_cell(((3,), 0), params)
    pd.testing.assert_frame_equal(study.STUDY.tidy(again), df.iloc[:2].reset_index(drop=True))
    # Logits linear in the masks: the linearised noise is the exact std of the logits.
    from ensemble_study.datasets import load_dataset
    from ensemble_study.ensemble import subnetwork_outputs
    from ensemble_study.masks import enumerate_masks
    from ensemble_study.studies import _common as c

    split = np.random.default_rng(c.stream(params["seed"], "split", 0))
    ds = load_dataset("digits", rng=split)
    Xe = ds.X_train[np.sort(split.permutation(len(ds.y_train))[:params["n_eval"]])]
    net = MLP.random((64, 3, 10), "tanh", "softmax", rng=c.stream(params["seed"], "init",
                                                                   (3,), 0))
    cfg = DropoutConfig(params["keep_prob"], layers=(1,))
    masks, logp = next(enumerate_masks(np.full(3, params["keep_prob"]), 8))
    z = subnetwork_outputs(net, cfg, Xe, masks, logits=True)
    w = np.exp(logp)[:, None, None]
    var = np.sum(w * (z - np.sum(w * z, axis=0)) ** 2, axis=0).sum(axis=1)
    first = df[(df.n_dropped == 3) & (df.seed == 0) & (df.epoch == 0)]
    assert float(first.logit_noise.iloc[0]) == pytest.approx(np.sqrt(var).mean(), rel=1e-12)
    for fn in study.STUDY.blocks.values():
        assert fn(df).strip()
    assert "0 (fact 10)" in show.ratio_table(df)
    assert show.figure(df).axes


def test_too_many_dropped_units_is_refused_before_any_work():
    with pytest.raises(ValueError, match="at most 20 dropped units"):
        study.STUDY.check_params(architectures=((12, 12),))
