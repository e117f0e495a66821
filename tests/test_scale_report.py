"""The scale study's answers (blocks), its figure, and the statistics they use."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ensemble_study import stats
from ensemble_study.studies.scale import show


def test_slope_interval_is_least_squares_with_a_calibrated_t_interval():
    x = np.repeat(np.log2([8, 16, 32, 64]), 3)
    rng = np.random.default_rng(0)
    y = 0.5 - 0.03 * x + rng.normal(0, 0.02, x.size)
    r = stats.slope_interval(x, y)
    X = np.column_stack([np.ones_like(x), x])
    beta, res, *_ = np.linalg.lstsq(X, y, rcond=None)
    s2 = res[0] / (x.size - 2)
    se = np.sqrt(s2 / ((x - x.mean()) ** 2).sum())
    assert r["slope"] == pytest.approx(beta[1], rel=1e-12)
    assert r["high"] - r["slope"] == pytest.approx(sps.t.ppf(0.975, x.size - 2) * se, rel=1e-10)
    # Coverage of the true slope over 2000 datasets: 95% nominal; fail outside [0.935, 0.965]
    # (P < 0.003 under the nominal rate).
    covered = 0
    for _ in range(2000):
        y = 0.5 - 0.03 * x + rng.normal(0, 0.02, x.size)
        r = stats.slope_interval(x, y)
        covered += r["low"] <= -0.03 <= r["high"]
    assert 0.935 <= covered / 2000 <= 0.965
    with pytest.raises(ValueError, match="at least 3 points and 2 distinct x"):
        stats.slope_interval([1, 1, 1], [1, 2, 3])


@pytest.mark.parametrize("seed", range(20))
def test_welch_test_p_and_interval_agree(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, 5), rng.normal(rng.uniform(0, 2), 2, 7)
    r = stats.welch_test(a, b)
    assert r["pvalue"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    assert (r["pvalue"] < 0.05) == (not r["low"] <= 0 <= r["high"])


def _synthetic(n_seeds=3):
    """Two cells: digits ReLU shrinks with width (TV = 0.2 - 0.02 log2 w + noise); digits
    tanh stays flat; depth 3 doubles the TV; MC at K = 100 is half the scaled pass's TV
    (so the matching K is 100 / 4 = 25), at K = 10 sqrt(10) times that."""
    rng = np.random.default_rng(1)
    rows = []
    for act in ("relu", "tanh"):
        for depth in (1, 3):
            for w in (8, 16, 32, 64, 128):
                for seed in range(n_seeds):
                    base = (0.2 - 0.02 * np.log2(w) if act == "relu" else 0.05)
                    tv = depth * (base + rng.normal(0, 0.002))
                    ident = dict(input="digits", activation=act, weights="he",
                                 scheme="inverted", keep_prob=0.5, depth=depth, width=w,
                                 seed=seed, statistic="arithmetic_mean", hw_over_gap=0.05)
                    rows += [{**ident, "predictor": "scaled", "n_samples": np.nan,
                              "total_variation": tv},
                             {**ident, "predictor": "moment_propagation",
                              "n_samples": np.nan, "total_variation": tv},
                             {**ident, "predictor": "mc", "n_samples": 100,
                              "total_variation": tv / 2},
                             {**ident, "predictor": "mc", "n_samples": 10,
                              "total_variation": tv / 2 * np.sqrt(10)}]
    return pd.DataFrame(rows)


def test_width_block_states_only_the_trends_that_survive():
    text = show.width_block(_synthetic())
    assert "**Scaled pass**: it shrinks in 2 of 4 cells and grows in 0; in the other 2 " \
        "nothing survives Holm's correction." in text
    # depth 1 relu: slope -0.02 per doubling, depth 3: -0.06
    assert "It shrinks in digits ReLU/He keep 0.5 depth 1: -0.02" in text
    assert "digits ReLU/He keep 0.5 depth 3: -0.06" in text and "tanh" not in text


def test_depth_block_and_the_matching_k():
    d = _synthetic()
    text = show.depth_block(d)
    assert "**Scaled pass**: it is larger deeper in 2 of 2 cells" in text
    text = show.mc_match(d)
    assert "which contains sqrt(100/10) = 3.16" in text
    parts = text.split("\n\n")
    assert parts[-4] == "**Scaled pass**: the matching K by depth."
    assert parts[-2] == "**Moment propagation**: the matching K by depth."
    for block in (parts[-3], parts[-1]):  # one table per predictor, a column per depth
        table = block.splitlines()
        assert table[0] == "| keep_prob | width | depth 1 | depth 3 |"
        assert table[2].startswith(("| 0.5 | 8 | 25 [", "| 0.5 | 8 | 25 |"))
        assert all(row.count("| 25") == 2 for row in table[2:])


def test_blocks_and_figure_survive_a_quick_table():
    d = _synthetic(n_seeds=1)
    d = d[d.width <= 16]
    for block in (show.width_block, show.depth_block, show.mc_match):
        assert block(d).strip()


def test_figure_has_at_most_three_columns_and_interval_bands():
    from matplotlib.collections import PolyCollection

    fig = show.plot_scale(_synthetic())
    boxes = {(round(ax.get_position().x0, 3)) for ax in fig.axes}
    assert len(boxes) <= 3
    assert any(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)
