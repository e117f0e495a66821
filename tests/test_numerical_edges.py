"""Numerical edges (issue 22, item 6).

* An inverted keep_prob so small that the multipliers 1/keep_prob overflow
  (their product over the dropped layers past 1e150, so that second moments
  stay below 1e300) is refused, naming the smallest value that works.
  Before: keep_prob 1e-155 on two dropped layers gave NaN mean, NWGM and
  variance with RuntimeWarnings only (exact and rb_mc).
* No NaN is returned without an error: an ensemble whose statistics come out
  NaN raises FloatingPointError.
* KL at the boundary: an outcome whose ensemble probability is within the
  rounding of 0 contributes 0 where the single pass gives it exactly 0.
"""

import dataclasses
import warnings

import numpy as np
import pytest

from ensemble_study import MLP, DropoutConfig, exact_ensemble, sample_ensemble
from ensemble_study.dropout import INVERTED_MAX_LOG10, smallest_inverted_keep_prob
from ensemble_study.ensemble import EnsembleResult
from ensemble_study.metrics import kl_divergence


@pytest.mark.parametrize("kp, layers, smallest", [
    (1e-200, (1, 2), "1e-75"),
    (1e-155, (1, 2), "1e-75"),
    (5e-324, (1,), "1e-150"),
    (1e-60, (0, 1, 2), "1e-50"),
])
def test_an_overflowing_inverted_keep_prob_is_refused_naming_the_smallest(kp, layers, smallest):
    with pytest.raises(ValueError, match=rf"keep_prob.*{kp!r}.*smallest.*{smallest}"):
        DropoutConfig(kp, layers=layers, scheme="inverted")


def test_per_layer_keep_probs_are_refused_by_their_product():
    with pytest.raises(ValueError, match=r"keep_prob.*1e-75"):
        DropoutConfig({1: 1e-100, 2: 1e-60})
    DropoutConfig({1: 1e-100, 2: 1e-50})  # the product 1e-150: allowed


def test_the_smallest_value_is_accepted_and_finite_on_every_path():
    assert INVERTED_MAX_LOG10 == 150
    net = MLP.random([3, 4, 4, 2], "relu", output="softmax", rng=0)
    X = np.random.default_rng(1).normal(size=(2, 3))
    q = smallest_inverted_keep_prob(2)
    assert q == 1e-75
    cfg = DropoutConfig(q, layers=(1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for r in (exact_ensemble(net, cfg, X),
                  sample_ensemble(net, cfg, X, 20, rng=0, estimator="rb_mc"),
                  sample_ensemble(net, cfg, X, 20, rng=0)):
            for a in (r.mean, r.geometric_mean, r.variance):
                assert np.isfinite(a).all()


def test_vanilla_keeps_tiny_keep_probs():
    net = MLP.random([3, 4, 4, 2], "relu", output="softmax", rng=0)
    X = np.random.default_rng(1).normal(size=(2, 3))
    r = exact_ensemble(net, DropoutConfig(1e-200, layers=(1, 2), scheme="vanilla"), X)
    assert np.isfinite(r.mean).all() and np.isfinite(r.variance).all()


def test_a_nan_ensemble_is_an_error_not_a_result():
    net = MLP.random([3, 4, 4, 2], "relu", output="softmax", rng=0)
    huge = dataclasses.replace(net, weights=tuple(w * 1e120 for w in net.weights))
    X = np.random.default_rng(1).normal(size=(2, 3))
    cfg = DropoutConfig(1e-75, layers=(1, 2))
    for run in (lambda: exact_ensemble(huge, cfg, X),
                lambda: sample_ensemble(huge, cfg, X, 8, rng=0, estimator="rb_mc")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                r = run()
            except FloatingPointError as exc:
                assert "NaN" in str(exc) and "keep_prob" in str(exc)
                continue
        for a in (r.mean, r.geometric_mean, r.variance):
            assert not np.isnan(a).any()
    with pytest.raises(FloatingPointError, match="mean came out NaN"):
        EnsembleResult(mean=np.array([[np.nan]]), geometric_mean=None,
                       variance=np.zeros((1, 1)), n_subnetworks=2, method="exact")


def test_kl_at_the_boundary_is_defined():
    eps = np.finfo(float).eps
    ens = np.array([[1 - 2 * eps], [0.5], [4e-16]])
    single = np.array([[1.0], [1.0], [0.0]])
    kl = kl_divergence(ens, single, "sigmoid")
    assert kl[0] == pytest.approx(0, abs=1e-13) and kl[2] == pytest.approx(0, abs=1e-13)
    assert kl[1] == np.inf  # a real disagreement stays infinite
    soft = kl_divergence(np.array([[1 - 2e-16, 2e-16]]), np.array([[1.0, 0.0]]), "softmax")
    assert soft[0] == pytest.approx(0, abs=1e-13)
    assert kl_divergence(np.array([[0.9, 0.1]]), np.array([[1.0, 0.0]]), "softmax")[0] == np.inf


def test_a_nan_ensemble_in_a_command_is_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ensemble_study import cli

    def overflow(*args, **kwargs):
        EnsembleResult(mean=np.array([[np.nan]]), geometric_mean=None,
                       variance=np.zeros((1, 1)), n_subnetworks=2, method="exact")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ensemble_study.study.Study.run", overflow)
    result = CliRunner().invoke(cli.main, ["sweep", "--quick", "--jobs", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "came out NaN" in errors[0], result.output
