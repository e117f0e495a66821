"""The width study: its initialisations, its streams (shared with the depth study and
across initialisations), and the wording of its verdicts on synthetic tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble_study.network import MLP
from ensemble_study.studies import depth, width
from ensemble_study.studies.width import show

METRIC_COLUMNS = ["mean_abs_gap", "max_abs_gap", "relative_gap", "kl", "total_variation",
                  "disagreement"]


def _params(**kw):
    base = dict(activations=("tanh",), dropped=("hidden",), weights=("glorot",), depths=(1, 2),
                widths=(2, 3), max_dropped=6, n_inputs=5, n_networks=2, seed=3)
    return width.STUDY.check_params({**base, **kw})


@pytest.mark.parametrize("init, fan_in, fan_out, var", [
    ("lecun", 4, 16, 0.25), ("he", 4, 16, 0.5), ("glorot", 4, 16, 0.1), ("lecun", 32, 3, 1 / 32),
])
def test_weight_variance_by_hand(init, fan_in, fan_out, var):
    assert width.weight_variance(init, fan_in, fan_out) == pytest.approx(var)


def test_weight_variance_refuses_an_unknown_rule():
    with pytest.raises(ValueError, match=r"weights must be one of .*'xavier'"):
        width.weight_variance("xavier", 4, 4)


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_reinitialise_rescales_the_same_draws(hidden):
    sizes = (4, 16, 16, 3)
    net = MLP.random(sizes, hidden, "softmax", rng=5)
    for init in width.WEIGHTS:
        new = width.reinitialise(net, init)
        for l, (w0, w1) in enumerate(zip(net.weights, new.weights, strict=True)):
            fan_in, fan_out = w0.shape
            old = 2 / fan_in if (l < 2 and hidden == "relu") else 2 / (fan_in + fan_out)
            ratio = np.sqrt(width.weight_variance(init, fan_in, fan_out) / old)
            np.testing.assert_allclose(w1, w0 * ratio, rtol=1e-14)
        for b0, b1 in zip(net.biases, new.biases, strict=True):
            assert np.array_equal(b0, b1)
    # The rule MLP.random already uses leaves the network untouched, bit for bit.
    same = width.reinitialise(net, "glorot" if hidden == "tanh" else "he")
    assert all(np.array_equal(a, b) for a, b in zip(net.weights[:2], same.weights[:2],
                                                   strict=True))


def test_fan_in_rules_keep_the_first_layer_scale_and_glorot_shrinks_it():
    # Over many draws: the variance of a first-layer weight by rule, measured.
    for w, expected in ((2, 1 / 4), (64, 1 / 4)):
        net = width.reinitialise(MLP.random((4, w, 3), "tanh", "softmax", rng=w), "lecun")
        assert np.var(net.weights[0]) == pytest.approx(expected, rel=0.6 if w == 2 else 0.25)
    glorot = MLP.random((4, 256, 3), "tanh", "softmax", rng=0)
    assert np.var(glorot.weights[0]) == pytest.approx(2 / 260, rel=0.15)


def test_glorot_hidden_rows_are_the_depth_studys_rows():
    """Same stream identity, same rule: the depth study's numbers, bit for bit."""
    p = _params()
    dp = depth.STUDY.check_params(dict(activations=("tanh",), depths=(1, 2), widths=(2, 3),
                                       max_dropped=6, n_inputs=5, n_networks=2, seed=3))
    ours = width.STUDY.run(p)
    theirs = depth.STUDY.run(dp)
    keys = ["activation", "depth", "width", "seed", "statistic"]
    m = ours.merge(theirs, on=keys, suffixes=("", "_depth"))
    assert len(m) == len(ours) == len(theirs) > 0
    for col in METRIC_COLUMNS + ["n_dropped", "n_subnetworks", "architecture"]:
        assert (m[col] == m[f"{col}_depth"]).all(), col


def test_adding_values_to_the_grid_leaves_every_other_row_unchanged():
    small = width.STUDY.run(_params(weights=("lecun",), dropped=("input",)))
    big = width.STUDY.run(_params(weights=("lecun", "he", "glorot"), dropped=("hidden", "input"),
                                  widths=(2, 3, 5), activations=("relu", "tanh")))
    keys = ["dropped", "weights", "activation", "depth", "width", "seed", "statistic"]
    m = small.merge(big, on=keys, suffixes=("", "_big"))
    assert len(m) == len(small)
    for col in METRIC_COLUMNS + ["preact_rms"]:
        assert (m[col] == m[f"{col}_big"]).all(), col


def test_input_dropout_drops_the_same_number_at_every_width():
    df = width.STUDY.run(_params(dropped=("input",), widths=(2, 9), weights=("lecun", "glorot"),
                                 n_features=3))
    assert set(df.n_dropped) == {3} and set(df.n_subnetworks) == {8}


def test_initialisations_share_their_inputs_and_draws():
    """He is LeCun with every weight times sqrt(2): with identity units and an identity
    output the network is linear in the weights (up to the biases), so the scaled pass is
    exact for both and the gaps are all zero (fact 2)."""
    df = width.STUDY.run(_params(activations=("identity",), output="identity",
                                 weights=("lecun", "he"), dropped=("input", "hidden")))
    assert df["mean_abs_gap"].max() < 1e-12
    lecun = df[df.weights == "lecun"].reset_index(drop=True)
    he = df[df.weights == "he"].reset_index(drop=True)
    # The first-layer pre-activations scale by sqrt(2) apart from the (shared) biases.
    assert (he.preact_rms > lecun.preact_rms).all()


def test_check_names_max_dropped():
    with pytest.raises(ValueError, match="max_dropped=2"):
        width.STUDY.check_params(dropped=("hidden",), depths=(2,), widths=(4,), max_dropped=2)


# --- verdict wording on synthetic tables ------------------------------------------------

def _table(effect: dict, n: int = 30, seed: int = 0) -> pd.DataFrame:
    """A synthetic width table: the gap is 0.1 * exp(noise) times ``effect[weights]`` at the
    widest width; every initialisation and design of a cell shares its noise (paired)."""
    g = np.random.default_rng(seed)
    rows = []
    for act in ("relu", "tanh"):
        for dep in (1, 2):
            for w in (2, 8):
                noise = g.normal(0, 0.1, n)
                for init in ("lecun", "he", "glorot"):
                    for dropped in ("input", "hidden"):
                        factor = effect.get((init, act), 1.0) if w == 8 else 1.0
                        v = 0.1 * factor * np.exp(noise)
                        for s in range(n):
                            for stat in ("arithmetic_mean", "nwgm"):
                                rows.append(dict(
                                    dropped=dropped, weights=init, activation=act, depth=dep,
                                    width=w, n_dropped=4 if dropped == "input" else dep * w,
                                    seed=s, statistic=stat, preact_rms=1.0,
                                    **{m: v[s] for m in show.METRICS}))
    return pd.DataFrame(rows)


def test_width_verdict_names_what_survives_and_nothing_else():
    df = _table({("lecun", "relu"): 2.0, ("he", "tanh"): 0.5})
    res = show.width_family(df, "input", show.FAN_IN)
    assert len(res) == 2 * 2 * 2 * 4  # init x activation x depth x metric
    text = show.width_sentence(res, "mean_abs_gap")
    assert text.startswith("on the mean absolute gap it grows with width for "
                           "relu (LeCun, 1 layer) and relu (LeCun, 2 layers)")
    assert "shrinks with width for tanh (He, 1 layer) and tanh (He, 2 layers)" in text
    assert "(no difference in the other 4)" in text
    null = show.width_family(_table({}), "hidden", show.FAN_IN)
    assert show.width_sentence(null, "kl") == "on the KL divergence, no width difference " \
                                              "survives Holm"


def test_width_family_is_holm_corrected():
    df = _table({})
    res = show.width_family(df, "input", show.FAN_IN)
    assert (res.holm >= res.pvalue).all()
    assert not res.survives.any()


def test_glorot_verdict_says_smaller_only_where_it_survives():
    df = _table({("glorot", "relu"): 0.6})
    res = show.glorot_family(df)
    assert len(res) == 2 * 2 * 4
    text = show.glorot_sentence(res, "relative_gap")
    assert text == "on the relative gap it is smaller under Glorot for relu at 1 layer and " \
                   "relu at 2 layers"
    assert show.glorot_sentence(show.glorot_family(_table({})), "kl") == \
        "on the KL divergence, no difference survives Holm"
    block = show.width_glorot(df)
    assert "Glorot's first-layer variance 2 / (4 + width)" in block
    assert "smaller under Glorot for relu at 1 layer" in block
