"""evaluate past the enumeration limit: the certified estimator, and it says so (issue 21)."""

import numpy as np
import pytest
from click.testing import CliRunner

from ensemble_study import MLP, DropoutConfig, exact_ensemble
from ensemble_study.certified import certified_ensemble, cost_model
from ensemble_study.cli import main
from ensemble_study.dropout import scaled_forward
from ensemble_study.ensemble import MEMORY_BOUND, certified_rows, choose_estimator
from ensemble_study.evaluate import evaluate_network
from ensemble_study.laplace import expected_sigmoid


def _wide(width=512, d=32, seed=0):
    """A d-width-1 sigmoid network, its hidden layer dropped: exact by the Laplace integral."""
    net = MLP.random((d, width, 1), "tanh", "sigmoid", rng=seed)
    cfg = DropoutConfig(0.5, layers=[1], scheme="inverted")
    X = np.random.default_rng(seed + 1).normal(size=(12, d))
    return net, cfg, X


def _laplace_mean(net, cfg, X):
    q = cfg.layer_keep_prob(1)
    H = np.tanh(X @ net.weights[0] + net.biases[0])
    c = H * net.weights[1][:, 0] / q  # inverted: kept units scaled by 1/q
    return expected_sigmoid(np.full(len(X), net.biases[1][0]), c, q)


def test_auto_picks_certified_for_a_wide_network_and_evaluate_says_so():
    net, cfg, X = _wide()
    choice = choose_estimator(net, cfg, len(X), 2000)
    assert choice.name == "certified" and "2**512 subnetworks" in choice.reason
    lines = []
    df = evaluate_network(net, cfg, X, n_samples=2000, rng=7, report=lines.append)
    assert set(df.method) == {"certified"}
    assert lines[0].startswith("ensemble: estimator certified (2,000 samples)")
    assert lines[1].startswith("ensemble: estimated by the certified estimator (1,000 "
                               "antithetic pairs after a 64-pair pilot")
    assert "95% t-interval half-width of the mean at most" in lines[1]
    # The printed half-width is the certified estimate's own (same stream: rng=7).
    direct = certified_ensemble(net, cfg, X, 7, n_pairs=1000, max_passes=np.inf)
    top = df[df.predictor == "mean"].max_half_width.iloc[0]
    assert top == pytest.approx(direct.mean_half_width.max(), rel=1e-12)
    assert f"at most {top:.3g}" in lines[1]
    assert df.attrs["interval"] == lines[1]


def test_evaluates_certified_mean_is_within_its_interval_of_the_laplace_exact_mean():
    net, cfg, X = _wide()
    exact = _laplace_mean(net, cfg, X)
    r = certified_ensemble(net, cfg, X, 7, n_pairs=1000, max_passes=np.inf,
                           max_rows=certified_rows(net, cfg, len(X), 2000))
    err = np.abs(r.mean[:, 0] - exact)
    # 12 nominal-95% intervals: fail only if fewer than 9 cover (P < 0.02 under 0.95),
    # and nothing outside twice its half-width (P(|t| > 3.9) < 1e-4 each).
    assert (err <= r.mean_half_width[:, 0]).sum() >= 9, (err, r.mean_half_width[:, 0])
    assert np.all(err <= 2 * r.mean_half_width[:, 0])
    # The interval is informative: far narrower than the scaled pass's gap.
    gap = np.abs(scaled_forward(net, cfg, X)[:, 0] - exact)
    assert np.median(r.mean_half_width[:, 0]) < 0.2 * np.median(gap)


def test_evaluate_past_the_limit_agrees_with_enumeration_within_the_interval():
    # Input and first hidden layer dropped (14 units; rb_mc does not apply): forced past
    # a tiny max_subnetworks, compared with the exact ensemble of 2**14 subnetworks.
    net = MLP.random((6, 8, 8, 3), "tanh", "softmax", rng=3)
    cfg = DropoutConfig(0.7, layers=[0, 1])
    X = np.random.default_rng(4).normal(size=(6, 6))
    assert choose_estimator(net, cfg, 6, 1000, max_subnetworks=2**10).name == "certified"
    df = evaluate_network(net, cfg, X, max_subnetworks=2**10, n_samples=1000, rng=11)
    assert set(df.method) == {"certified"}
    r = certified_ensemble(net, cfg, X, 11, n_pairs=500, max_passes=np.inf)
    ex = exact_ensemble(net, cfg, X)
    inside = np.abs(r.mean - ex.mean) <= r.mean_half_width
    # 18 coordinates (correlated within an example): at least 14 inside.
    assert inside.sum() >= 14 and np.all(np.abs(r.mean - ex.mean) <= 2 * r.mean_half_width)


def test_batches_of_examples_share_the_masks():
    net = MLP.random((4, 7, 6, 3), "sigmoid", "softmax", rng=1)
    cfg = DropoutConfig(0.6, layers=[0, 1, 2], scheme="vanilla")
    X = np.random.default_rng(2).normal(size=(7, 4))
    a = certified_ensemble(net, cfg, X, 3, n_pairs=40)
    b = certified_ensemble(net, cfg, X, 3, n_pairs=40, max_rows=3)
    for name in ("mean", "mean_half_width", "geometric_mean", "variance",
                 "variance_half_width", "mean_logits"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-10, atol=1e-15)
    assert a.n_passes == pytest.approx(b.n_passes)
    with pytest.raises(ValueError, match="max_rows"):
        certified_ensemble(net, cfg, X, 3, n_pairs=40, max_rows=0)


def test_cost_model_keeps_a_wide_run_within_the_memory_bound():
    net = MLP.random((784, 512, 512, 10), "relu", "softmax", rng=0)
    cfg = DropoutConfig(0.5, layers=[1, 2])
    model = cost_model(net, cfg, 1000, 10_000, MEMORY_BOUND)
    assert 1 <= model["rows"] < 1000 and model["memory_bytes"] <= MEMORY_BOUND
    choice = choose_estimator(net, cfg, 1000, 10_000, time_budget=600.0)
    assert choice.name == "certified" and choice.seconds <= 600.0
    assert "K lowered from 10,000" in choice.reason
    # Its derivatives (about 200 passes) and pilot (128) do not fit one minute on 1000
    # images: plain Monte Carlo, and the reason says why.
    choice = choose_estimator(net, cfg, 1000, 10_000, time_budget=60.0)
    assert choice.name == "mc" and "not certified: its derivatives and pilot" in choice.reason
    # an activation it cannot differentiate, or K < 4: not certified
    assert cost_model(net, cfg, 10, 3, MEMORY_BOUND)["why_not"].startswith(
        "the certified estimator needs at least 4")


def test_cli_evaluate_prints_the_estimator_and_its_half_width(tmp_path):
    net, cfg, X = _wide(width=256)
    net.save(tmp_path / "n.npz")
    np.save(tmp_path / "x.npy", X[:4])
    r = CliRunner().invoke(main, ["evaluate", "--net", str(tmp_path / "n.npz"), "--inputs",
                                  str(tmp_path / "x.npy"), "--keep-prob", "0.5",
                                  "--n-samples", "400", "--out", str(tmp_path / "e.csv")])
    assert r.exit_code == 0, r.output
    assert "ensemble: estimator certified (400 samples)" in r.output
    assert "ensemble: estimated by the certified estimator (200 antithetic pairs" in r.output
    assert "half-width of the mean at most" in r.output
    assert r.output.count("note: ") <= 1  # the notes print once, not per report line


# --- Rao-Blackwellisation of an identity output's feeding layer -------------------------

@pytest.mark.parametrize("scheme", ["vanilla", "inverted"])
def test_identity_output_with_only_its_feeding_layer_dropped_is_exact(scheme):
    net = MLP.random((5, 7, 3), "tanh", "identity", rng=2)
    cfg = DropoutConfig(0.6, layers=[1], scheme=scheme)
    X = np.random.default_rng(3).normal(size=(4, 5))
    r = certified_ensemble(net, cfg, X, 0, n_pairs=4, n_pilot=8)
    ex = exact_ensemble(net, cfg, X)
    np.testing.assert_allclose(r.mean, ex.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.variance, ex.variance, rtol=1e-10, atol=1e-12)
    assert np.all(r.mean_half_width < 1e-10)


@pytest.mark.slow  # about 10-30 s on the loaded machine
def test_identity_output_rao_blackwellised_intervals_cover_the_enumerated_mean():
    # 60 networks (two dropped layers, 4 + 6 units), one random coordinate each; nominal
    # 95%: fail when fewer than 51 cover (P(Binomial(60, 0.94) <= 50) = 0.003).
    covered = 0
    for seed in range(60):
        gen = np.random.default_rng(seed)
        act = ("relu", "tanh", "sigmoid")[seed % 3]
        net = MLP.random((4, 6, 2), act, "identity", rng=seed)
        cfg = DropoutConfig(float(gen.choice([0.5, 0.8])), layers=[0, 1],
                            scheme=("vanilla", "inverted")[seed % 2])
        X = gen.normal(size=(3, 4))
        r = certified_ensemble(net, cfg, X, seed, n_pairs=60, n_pilot=16)
        ex = exact_ensemble(net, cfg, X)
        i, o = gen.integers(3), gen.integers(2)
        covered += abs(r.mean[i, o] - ex.mean[i, o]) <= r.mean_half_width[i, o]
    assert covered >= 51, covered
