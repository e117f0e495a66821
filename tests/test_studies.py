"""The study functions on tiny grids: exact identities, brute-force rows, tidy tables."""

import numpy as np
import pandas as pd
import pytest
from reference import brute_force, scaled_pass

from ensemble_study import MLP, DropoutConfig
from ensemble_study.studies import depth, mc, spread, sweep
from ensemble_study.studies._common import ID_COLUMNS, METRIC_COLUMNS, network_stream
from ensemble_study.studies.mc.show import network_crossings
from ensemble_study.studies.sweep.show import network_slopes

TINY_SWEEP = dict(activations=("identity", "tanh"), outputs=("identity", "sigmoid", "softmax"),
                  keep_probs=(0.3, 0.8, 1.0), width=2, depth=2, n_features=3, n_inputs=4,
                  n_networks=2)
KEYS = ["output", "activation", "keep_prob", "seed", "statistic"]


@pytest.fixture(scope="module")
def tiny_sweep():
    return sweep.STUDY.run(**TINY_SWEEP, seed=7)


def assert_tidy(df):
    ids = [c for c in df.columns if c in ID_COLUMNS]
    metrics = [c for c in df.columns if c in METRIC_COLUMNS]
    assert list(df.columns[: len(ids)]) == ids, "identifier columns come first"
    assert list(df.columns[len(ids): len(ids) + len(metrics)]) == metrics
    assert {"study", "architecture", "activation", "output", "scheme", "keep_prob",
            "seed"} <= set(df.columns)


def test_sweep_is_tidy_with_both_statistics(tiny_sweep):
    assert_tidy(tiny_sweep)
    for col in ("statistic", "weights", "mean_abs_gap", "max_abs_gap", "relative_gap", "kl",
                "disagreement"):
        assert col in tiny_sweep.columns
    stats = tiny_sweep.groupby("output")["statistic"].unique()
    assert set(stats["identity"]) == {"arithmetic_mean"}  # no NWGM of an identity output
    assert set(stats["sigmoid"]) == set(stats["softmax"]) == {"arithmetic_mean", "nwgm"}
    variants = set(zip(tiny_sweep["scheme"], tiny_sweep["weights"]))
    assert variants == {("vanilla", "original"), ("inverted", "original"),
                        ("vanilla", "equivalent")}
    # 3 outputs x 2 activations x 2 seeds x 3 keep_probs x 3 variants, 1 or 2 statistics each
    assert len(tiny_sweep) == (1 + 2 + 2) * 2 * 2 * 3 * 3
    assert set(tiny_sweep["architecture"]) == {"3-2-2-1", "3-2-2-3"}


def test_sweep_gap_is_zero_for_identity_activations(tiny_sweep):
    """DESIGN fact 2 (identity output) and its NWGM form: logits are multilinear in the masks."""
    ident = tiny_sweep[tiny_sweep["activation"] == "identity"]
    exact = ident[(ident["output"] == "identity") | (ident["statistic"] == "nwgm")]
    assert len(exact) > 0 and set(exact["scheme"]) == {"vanilla", "inverted"}
    assert exact[["mean_abs_gap", "max_abs_gap"]].to_numpy().max() < 1e-12
    # The arithmetic mean of a sigmoid/softmax output is not the scaled pass (Jensen).
    jensen = ident[(ident["output"] != "identity") & (ident["statistic"] == "arithmetic_mean")
                   & (ident["keep_prob"] < 1)]
    assert jensen["max_abs_gap"].min() > 1e-6


def test_sweep_gap_is_zero_without_dropout(tiny_sweep):
    full = tiny_sweep[tiny_sweep["keep_prob"] == 1.0]
    assert set(full["scheme"]) == {"vanilla", "inverted"} and (full["n_subnetworks"] == 1).all()
    assert full[["mean_abs_gap", "max_abs_gap", "relative_gap"]].to_numpy().max() < 1e-12
    assert full[["kl", "disagreement"]].abs().max().max() < 1e-12
    dropped = tiny_sweep[(tiny_sweep["keep_prob"] < 1) & (tiny_sweep["activation"] == "tanh")]
    assert (dropped["n_subnetworks"] == 2**4).all() and dropped["max_abs_gap"].min() > 1e-6


def test_vanilla_with_equivalent_weights_equals_inverted(tiny_sweep):
    """DESIGN fact 5: same family, so the same ensemble and the same scaled pass."""
    inv = tiny_sweep[tiny_sweep["scheme"] == "inverted"].set_index(KEYS).sort_index()
    eq = tiny_sweep[tiny_sweep["weights"] == "equivalent"].set_index(KEYS).sort_index()
    van = tiny_sweep[(tiny_sweep["scheme"] == "vanilla")
                     & (tiny_sweep["weights"] == "original")].set_index(KEYS).sort_index()
    assert inv.index.equals(eq.index)
    cols = ["mean_abs_gap", "max_abs_gap", "kl", "total_variation", "disagreement"]
    np.testing.assert_allclose(eq[cols].to_numpy(), inv[cols].to_numpy(), rtol=1e-9, atol=1e-12)
    # ... whereas vanilla on the same weights is a different family (tanh, keep_prob < 1).
    differ = (inv.index.get_level_values("activation") == "tanh") & (
        inv.index.get_level_values("keep_prob") < 1)
    assert np.all(np.abs(van["mean_abs_gap"] - inv["mean_abs_gap"])[differ] > 1e-6)


@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
def test_sweep_row_matches_brute_force(scheme):
    params = dict(activations=("relu",), outputs=("softmax",), keep_probs=(0.6,), width=3,
                  depth=2, n_features=2, n_inputs=5, n_networks=1, seed=11)
    df = sweep.STUDY.run(**params)
    row = df[(df["scheme"] == scheme) & (df["weights"] == "original")].set_index("statistic")
    # The cell's stream, as documented: the network stream named by its identity.
    gen = np.random.default_rng(network_stream(11, "softmax", "relu", 0, (2, 3, 3, 3)))
    net = MLP.random((2, 3, 3, 3), "relu", "softmax", rng=gen)
    X = gen.normal(size=(5, 2))
    cfg = DropoutConfig(0.6, layers=[1, 2], scheme=scheme)
    ref, single = brute_force(net, cfg, X), scaled_pass(net, cfg, X)
    for stat, ens in (("arithmetic_mean", ref.mean), ("nwgm", ref.geometric_mean)):
        gap = np.abs(ens - single)
        np.testing.assert_allclose(row.loc[stat, "mean_abs_gap"], gap.mean(), rtol=1e-10)
        np.testing.assert_allclose(row.loc[stat, "max_abs_gap"], gap.max(), rtol=1e-10)
        np.testing.assert_allclose(row.loc[stat, "relative_gap"],
                                   (gap / np.sqrt(ref.variance)).mean(), rtol=1e-8)


def test_sweep_is_reproducible_and_cells_are_independent():
    params = dict(TINY_SWEEP, activations=("relu",), outputs=("sigmoid",), keep_probs=(0.5,))
    a, b = sweep.STUDY.run(**params, seed=3), sweep.STUDY.run(**params, seed=3)
    pd.testing.assert_frame_equal(a, b)
    gaps = a[a["scheme"] == "inverted"].groupby("seed")["mean_abs_gap"].first()
    assert gaps[0] != gaps[1]  # two seeds, two different networks
    assert not sweep.STUDY.run(**params, seed=4)["mean_abs_gap"].equals(a["mean_abs_gap"])


@pytest.mark.parametrize("slope", [0.5, 1.0, 2.0])
def test_network_slopes_recover_a_power_law(slope):
    q = np.array([0.5, 0.8, 0.9, 0.95, 0.99, 1.0])
    rows = [dict(output="sigmoid", activation="tanh", scheme="inverted", weights="original",
                 statistic="nwgm", seed=s, keep_prob=qi,
                 mean_abs_gap=(s + 1) * ((1 - qi) / qi) ** slope)
            for s in range(3) for qi in q]
    out = network_slopes(pd.DataFrame(rows), q_min=0.8)
    assert len(out) == 3 and set(out["seed"]) == {0, 1, 2}
    np.testing.assert_allclose(out["slope"], slope, rtol=1e-9)


def test_mc_rows_and_convergence():
    df = mc.STUDY.run(activations=("tanh",), output="sigmoid", scheme="inverted", keep_prob=0.5,
                width=3, depth=2, n_features=3, n_inputs=6, n_networks=2, n_samples=(4, 400),
                n_draws=6, seed=1)
    assert_tidy(df)
    scaled, sampled = df[df["predictor"] == "scaled"], df[df["predictor"] == "mc"]
    assert len(scaled) == 2 * 2 and (scaled["n_samples"] == 0).all()
    assert len(sampled) == 2 * 2 * 6 * 2 and set(sampled["n_samples"]) == {4, 400}
    # The error of a K-sample mean shrinks like 1/sqrt(K): 10x from K=4 to K=400. Medians of
    # 12 draws each; a factor 3 leaves room for their spread.
    med = sampled.groupby(["statistic", "n_samples"])["mean_abs_gap"].median()
    for stat in ("arithmetic_mean", "nwgm"):
        assert med[(stat, 400)] < med[(stat, 4)] / 3


def test_mc_network_crossings_on_a_known_table():
    def rows(seed, predictor, ks, gaps):
        return [dict(activation="relu", statistic="nwgm", seed=seed, predictor=predictor,
                     n_samples=k, mean_abs_gap=g) for k, g in zip(ks, gaps)]

    df = pd.DataFrame(rows(0, "scaled", [0] * 3, [0.1, 0.2, 0.3])  # median 0.2
                      + rows(0, "mc", [1, 10, 100, 1000], [0.5, 0.15, 0.25, 0.05])
                      + rows(1, "scaled", [0], [0.2])
                      + rows(1, "mc", [1, 10, 100, 1000], [1.0] * 4))
    out = network_crossings(df).set_index("seed")["k"]
    assert out[0] == 1000  # 10 wins, but 100 loses: only from 1000 on does every K win
    assert np.isnan(out[1])  # no K of the grid wins


def test_spread_summaries_match_the_subnetworks():
    df = spread.STUDY.run(activations=("relu", "sigmoid"), output="sigmoid", scheme="vanilla",
                    keep_prob=0.3, width=2, depth=2, n_features=3, n_inputs=2, seed=5)
    assert_tidy(df)
    for _, g in df.groupby(["activation", "input"]):
        sub = g[g["quantity"] == "subnetwork"]
        assert len(sub) == 2**4 == sub["n_subnetworks"].iloc[0]
        p, y = sub["probability"].to_numpy(), sub["value"].to_numpy()
        assert p.sum() == pytest.approx(1.0, abs=1e-13)
        value = g.set_index("quantity")["value"]
        assert value["arithmetic_mean"] == pytest.approx(p @ y, abs=1e-12)
        # NWGM = G / (G + G') for one sigmoid unit, from the subnetworks' outputs.
        log_g, log_g1 = p @ np.log(y), p @ np.log1p(-y)
        assert value["nwgm"] == pytest.approx(1 / (1 + np.exp(log_g1 - log_g)), abs=1e-12)
        assert 0 < value["scaled"] < 1


def test_spread_nwgm_is_the_scaled_pass_with_one_dropped_layer():
    """DESIGN fact 3: dropout only on the last hidden layer, sigmoid output."""
    df = spread.STUDY.run(activations=("tanh",), output="sigmoid", scheme="inverted", keep_prob=0.4,
                    width=4, depth=1, n_features=3, n_inputs=3, seed=2)
    value = df[df["quantity"] != "subnetwork"].pivot(index="input", columns="quantity",
                                                     values="value")
    np.testing.assert_allclose(value["nwgm"], value["scaled"], atol=1e-12)
    assert np.abs(value["arithmetic_mean"] - value["scaled"]).max() > 1e-6


def test_depth_grid_and_one_layer_nwgm():
    df = depth.STUDY.run(activations=("relu",), output="softmax", scheme="inverted", keep_prob=0.5,
                   depths=(1, 2, 3), widths=(2, 3, 5), max_dropped=6, n_features=3,
                   n_inputs=4, n_networks=2, seed=0)
    assert_tidy(df)
    shapes = set(zip(df["depth"], df["width"]))
    assert shapes == {(1, 2), (1, 3), (1, 5), (2, 2), (2, 3), (3, 2)}
    assert (df["n_dropped"] == df["depth"] * df["width"]).all()
    assert (df["n_subnetworks"] == 2 ** df["n_dropped"]).all()
    expected = ["-".join(["3", *[str(w)] * d, "3"]) for d, w in zip(df["depth"], df["width"])]
    assert df["architecture"].tolist() == expected
    nwgm = df[df["statistic"] == "nwgm"]
    assert nwgm.loc[nwgm["depth"] == 1, "max_abs_gap"].max() < 1e-12  # DESIGN fact 3
    # Deeper, the NWGM is not the scaled pass, except on a network whose first
    # layer is dead on every input (two ReLU units can be): some network shows it.
    deep = nwgm[nwgm["depth"] > 1].groupby(["depth", "width"])["max_abs_gap"].max()
    assert (deep > 1e-8).all()


@pytest.mark.parametrize("study, bad, match", [
    (sweep, dict(keep_probs=(0.5, 0.0)), "keep_probs"),
    (sweep, dict(activations=("relu", "gelu")), "activations"),
    (sweep, dict(width=11, depth=2), "dropped units"),
    (mc, dict(keep_prob=1.5), "keep_prob"),
    (mc, dict(n_samples=(10, 0)), "n_samples"),
    (spread, dict(output="softmax"), "output"),
    (depth, dict(scheme="dropconnect"), "scheme"),
    (depth, dict(depths=(3,), widths=(8,), max_dropped=12), "depth \\* width"),
])
def test_bad_parameters_raise_before_any_work(study, bad, match):
    with pytest.raises(ValueError, match=match):
        study.STUDY.run(quick=True, **bad)
