"""The softmax_fits study's data preparation and one quick cell."""

import numpy as np
import pandas as pd
import pytest

from ensemble_study import regularizer as reg
from ensemble_study.studies import softmax_fits as sf


def test_pca_is_fitted_on_the_training_part_alone():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6))
    Xt = rng.normal(size=(15, 6))
    Z, Zt = sf.pca_reduce(X, Xt, 3)
    np.testing.assert_allclose(Z.std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.corrcoef(Z.T), np.eye(3), atol=1e-10)
    # the test inputs do not move the map ...
    Z2, Zt2 = sf.pca_reduce(X, 10 * Xt + 3, 3)
    np.testing.assert_array_equal(Z, Z2)
    # ... and it is affine: the same map applied to a training row and a test row
    Z3, Zt3 = sf.pca_reduce(X, X[:5], 3)
    np.testing.assert_allclose(Zt3, Z[:5], atol=1e-12)
    # the first component is the direction of largest variance of the centred X
    u = np.linalg.svd(X - X.mean(0), full_matrices=False)[2][0]
    c = (X - X.mean(0)) @ u
    assert abs(np.corrcoef(c, Z[:, 0])[0, 1]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.slow
def test_quick_cell_exact_fit_minimises_the_dropout_loss():
    p = sf.STUDY.check_params(quick=True)
    rows = sf.run_cell(("digits", 0), p)
    assert [r["method"] for r in rows] == list(sf.METHODS)
    loss = {r["method"]: r["dropout_loss"] for r in rows}
    # The exact fit minimises the expected dropout loss: no other fit does better on it.
    assert all(loss["exact"] <= v + 1e-9 for v in loss.values())
    ex = rows[0]
    assert ex["cosine_exact"] == pytest.approx(1.0)
    X, y, _, _, K = sf._data("digits", 0, p)
    W, c, _ = reg.fit_softmax(X, y, p["keep_prob"], "exact", n_classes=K)
    assert ex["R_exact"] == pytest.approx(reg.softmax_exact(X, W, p["keep_prob"], c), rel=1e-12)
    again = pd.DataFrame(sf.run_cell(("digits", 0), p))
    pd.testing.assert_frame_equal(again, pd.DataFrame(rows))     # deterministic
