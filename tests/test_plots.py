"""Figures of the sweep, mc, spread and depth studies, drawn from tiny saved tables."""

import pytest
from matplotlib.figure import Figure

from ensemble_study import plots, publish
from ensemble_study.results import load_result, save_result
from ensemble_study.studies import depth, mc, spread, sweep

TINY = {
    "sweep": dict(activations=("identity", "relu", "tanh"), outputs=("sigmoid", "softmax"),
                  keep_probs=(0.2, 0.5, 0.9, 0.95, 1.0), width=2, depth=2, n_features=3,
                  n_inputs=4, n_networks=3, seed=0),
    "mc": dict(activations=("relu", "sigmoid"), output="softmax", scheme="inverted",
               keep_prob=0.5, width=2, depth=2, n_features=3, n_inputs=4, n_networks=2,
               n_samples=(1, 10, 100), n_draws=3, seed=0),
    "spread": dict(activations=("relu", "tanh"), output="sigmoid", scheme="inverted",
                   keep_prob=0.5, width=2, depth=2, n_features=3, n_inputs=3, seed=0),
    "depth": dict(activations=("relu", "tanh"), output="softmax", scheme="inverted",
                  keep_prob=0.5, depths=(1, 2, 3), widths=(2, 3, 4, 6), max_dropped=6,
                  n_features=3, n_inputs=4, n_networks=3, seed=0),
}
MODULES = {"sweep": sweep, "mc": mc, "spread": spread, "depth": depth}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Tiny tables saved and read back, as the figures command sees them."""
    folder = tmp_path_factory.mktemp("results")
    for name, params in TINY.items():
        save_result(MODULES[name].STUDY.run(params), folder / f"{name}.csv", params)
    return folder


def labelled(fig):
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    assert fig.get_suptitle()


def legend_labels(ax):
    return {line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")}


def ticks_labelled(fig):
    """Every panel shows its own tick labels (no panel relies on a neighbour's)."""
    for ax in fig.axes:
        if ax.axison:
            assert ax.xaxis.get_tick_params()["labelbottom"] is not False
            assert any(t.get_text() for t in ax.get_xticklabels(minor=False)) or \
                ax.get_xscale() == "log"


def test_sweep_figure_has_one_line_and_two_bands_per_activation(results):
    df = load_result(results / "sweep.csv")
    fig = sweep.STUDY.figures["sweep"](df)
    # (output x statistic) rows, (inverted, vanilla) columns
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 2 * 2
    labelled(fig)
    ticks_labelled(fig)
    for ax in fig.axes:
        assert ax.get_yscale() == "log"
        # The NWGM of identity-activation networks equals the scaled pass: not drawn.
        expected = ({"relu", "tanh"} if "NWGM" in ax.get_title()
                    else {"identity", "relu", "tanh"})
        assert legend_labels(ax) == expected
        assert len(ax.collections) == 2 * len(expected)  # CI and spread, each
        # Inverted panels also carry the equivalent-weights markers.
        per_activation = 2 if "inverted" in ax.get_title() else 1
        assert len(ax.get_lines()) == per_activation * len(expected)


def test_median_band_draws_the_bootstrap_ci_of_the_median():
    import numpy as np
    import pandas as pd

    from ensemble_study.stats import bootstrap_ci

    g = np.random.default_rng(0)
    df = pd.DataFrame({"x": np.repeat([1.0, 2.0], 40), "v": g.normal(size=80)})
    fig = Figure()
    ax = fig.subplots()
    line = plots.median_band(ax, [1.0, 2.0], df.groupby("x")["v"], label="v")
    assert list(line.get_ydata()) == list(df.groupby("x")["v"].median())
    ci, spread = ax.collections
    for x in (1.0, 2.0):
        v = np.sort(df.loc[df.x == x, "v"].to_numpy())
        _, low, high = bootstrap_ci(v, rng=plots_seed(x))
        ys = ci.get_paths()[0].vertices[:, 1]
        assert np.isclose(ys, low).any() and np.isclose(ys, high).any()
        ys = spread.get_paths()[0].vertices[:, 1]
        assert np.isclose(ys, np.quantile(v, 0.9)).any()


def plots_seed(x):
    from ensemble_study.stats import group_seed

    return group_seed((x,))


def test_sweep_slope_figure_has_a_reference_slope(results):
    fig = sweep.STUDY.figures["sweep_slope"](load_result(results / "sweep.csv"))
    labelled(fig)
    for ax in fig.axes:
        assert ax.get_xscale() == ax.get_yscale() == "log"
        labels = legend_labels(ax)
        assert "slope 1: (1-q)/q" in labels
        acts = {label.split(" (slope")[0] for label in labels if "(slope" in label}
        assert acts == ({"relu", "tanh"} if "NWGM" in ax.get_title()
                        else {"identity", "relu", "tanh"})
        assert len(ax.collections) == 2 * len(acts)


def test_sweep_slope_figure_says_why_when_there_is_nothing_to_fit(results):
    df = load_result(results / "sweep.csv")
    fig = sweep.STUDY.figures["sweep_slope"](df[df["keep_prob"] < 0.8])
    (ax,) = fig.axes
    assert not ax.axison and "No slope to draw" in ax.texts[0].get_text()


def test_mc_figure_marks_the_scaled_pass(results):
    fig = mc.STUDY.figures["mc"](load_result(results / "mc.csv"))
    assert len(fig.axes) == 2 * 2  # statistics x activations
    labelled(fig)
    for ax in fig.axes:
        assert {"K sampled subnetworks", "scaled pass"} <= legend_labels(ax)
        assert ax.get_xscale() == "log"
        sampled = next(line for line in ax.get_lines()
                       if line.get_label() == "K sampled subnetworks")
        assert list(sampled.get_xdata()) == [1, 10, 100]
        ref = next(line for line in ax.get_lines() if line.get_label() == "K^(-1/2) reference")
        x, y = ref.get_xdata(), ref.get_ydata()
        assert y[0] / y[-1] == pytest.approx((x[-1] / x[0]) ** 0.5)


def test_spread_figure_marks_mean_nwgm_and_scaled(results):
    fig = spread.STUDY.figures["spread"](load_result(results / "spread.csv"))
    assert len(fig.axes) == 2 * 3  # activations x inputs
    labelled(fig)
    for ax in fig.axes:
        assert legend_labels(ax) == {"arithmetic mean", "NWGM", "scaled pass"}
        assert len(ax.patches) == 40  # the histogram's bars
        heights = sum(p.get_height() for p in ax.patches)
        assert heights == pytest.approx(1.0)  # weighted by mask probabilities
        assert ax.get_xlim() == (0, 1)  # comparable panels


def test_depth_figure_has_a_line_per_budget_and_per_depth(results):
    df = load_result(results / "depth.csv")
    fig = depth.STUDY.figures["depth"](df)
    assert len(fig.axes) == 2 * 2  # (vs depth, vs width) x activations
    labelled(fig)
    top, bottom = fig.axes[0], fig.axes[2]  # subplots are laid out row by row
    # 6 dropped units is the only budget reached by all three depths (1x6, 2x3, 3x2).
    assert legend_labels(top) == {"6 dropped units"}
    assert legend_labels(bottom) == {"1 hidden layer", "2 hidden layers", "3 hidden layers"}
    # Per depth: the arithmetic mean's CI and spread, the NWGM's CI.
    assert len(bottom.collections) == 3 * 3


@pytest.mark.slow  # ~10 s: every figure written at full resolution
def test_render_all_writes_every_png(results, tmp_path):
    written = publish.render_all(results, tmp_path)
    assert {p.name for p in written} == {"sweep.png", "sweep_slope.png", "mc.png",
                                        "spread.png", "depth.png"}
    assert all(p.stat().st_size > 10_000 for p in written)
