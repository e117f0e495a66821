"""The training recipe's pieces: learning-rate schedule, validation split, early stopping."""

import numpy as np
import pytest

import ensemble_study.train as train_module
from ensemble_study import MLP, DropoutConfig
from ensemble_study.datasets import load_dataset
from ensemble_study.dropout import scaled_forward
from ensemble_study.train import (
    TrainConfig,
    learning_rate_at,
    loss_and_gradients,
    negative_log_likelihood,
    train,
    validation_split,
)


def test_cosine_schedule_takes_the_documented_steps():
    # Plain full-batch SGD (no momentum): epoch e moves W by -lr_e * grad, with
    # lr_e = lr * (1 + cos(pi (e - 1) / 3)) / 2 = lr, 3 lr / 4, lr / 4 over 3 epochs.
    rng = np.random.default_rng(3)
    net = MLP.random((3, 4, 1), "tanh", "identity", rng=rng)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal(8)
    lr = 0.1
    tc = TrainConfig(optimizer="sgd", learning_rate=lr, momentum=0.0, batch_size=8, epochs=3,
                     lr_schedule="cosine")
    trained, hist = train(net, None, X, y, rng=0, train_cfg=tc)
    np.testing.assert_allclose(hist["learning_rate"], [lr, 0.75 * lr, 0.25 * lr], rtol=1e-15)
    expected = net
    for step in (lr, 0.75 * lr, 0.25 * lr):
        _, gW, gb = loss_and_gradients(expected, X, y[:, None], loss="squared_error")
        expected = MLP(tuple(W - step * G for W, G in zip(expected.weights, gW)),
                       tuple(b - step * G for b, G in zip(expected.biases, gb)),
                       net.hidden, net.output)
    for W, E in zip(trained.weights, expected.weights):
        np.testing.assert_allclose(W, E, rtol=1e-12, atol=1e-14)
    constant = TrainConfig(learning_rate=lr, epochs=3)
    assert [learning_rate_at(constant, e) for e in (1, 2, 3)] == [lr, lr, lr]
    assert learning_rate_at(TrainConfig(learning_rate=lr, epochs=4, lr_schedule="cosine"),
                            3) == pytest.approx(lr / 2, rel=1e-15)


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons", rng=0, n_samples=300, noise=0.3)


def test_best_epoch_is_restored(moons):
    # Noisy labels and a large step: the validation loss goes up and down, so
    # the best epoch is not the last, and the returned weights must be its.
    net = MLP.random((2, 16, 1), "relu", "sigmoid", rng=0)
    cfg = DropoutConfig(0.5, layers=[1])
    tc = TrainConfig(learning_rate=0.05, epochs=25, validation_fraction=0.3)
    seed = 11
    trained, hist = train(net, cfg, moons.X_train, moons.y_train, train_cfg=tc, rng=seed)
    assert len(hist) == 25
    best = int(hist["val_loss"].idxmin())
    assert best < len(hist) - 1
    # train draws the split first from its rng, so the same seed gives it back.
    _, held = validation_split(len(moons.y_train), 0.3, np.random.default_rng(seed))
    probs = scaled_forward(trained, cfg, moons.X_train[held])
    val_loss = negative_log_likelihood("sigmoid", probs, moons.y_train[held])
    assert val_loss == pytest.approx(hist["val_loss"].min(), rel=1e-13)
    assert val_loss == hist["val_loss"].min()


def test_patience_stops_training(moons):
    net = MLP.random((2, 16, 1), "relu", "sigmoid", rng=0)
    tc = TrainConfig(learning_rate=0.05, epochs=200, validation_fraction=0.3, patience=4)
    _, hist = train(net, DropoutConfig(0.5, layers=[1]), moons.X_train, moons.y_train,
                    train_cfg=tc, rng=11)
    best = int(hist["val_loss"].idxmin())
    assert len(hist) < 200
    assert len(hist) == best + 1 + 4  # four epochs without a new lowest loss
    assert np.all(hist["val_loss"].iloc[best + 1:] >= hist["val_loss"].iloc[best])


def test_validation_split_is_never_trained_on(monkeypatch):
    # Column 0 holds each example's index: record every row a gradient step sees.
    n = 50
    rng = np.random.default_rng(0)
    X = np.c_[np.arange(n, dtype=np.float64), rng.standard_normal((n, 2))]
    y = rng.integers(0, 2, n)
    seen = []
    original = train_module.loss_and_gradients

    def recording(net, Xb, *args, **kwargs):
        seen.extend(Xb[:, 0].astype(int).tolist())
        return original(net, Xb, *args, **kwargs)

    monkeypatch.setattr(train_module, "loss_and_gradients", recording)
    net = MLP.random((3, 4, 1), "relu", "sigmoid", rng=0)
    tc = TrainConfig(epochs=3, batch_size=8, validation_fraction=0.2)
    _, hist = train(net, DropoutConfig(0.5, layers=[1]), X, y, train_cfg=tc, rng=5)
    fit, held = validation_split(n, 0.2, np.random.default_rng(5))
    assert held.size == 10 and fit.size == 40
    assert set(seen) == set(fit.tolist())
    assert not set(seen) & set(held.tolist())
    assert len(seen) == 3 * 40  # every training example once per epoch
    assert {"val_loss", "val_error"} <= set(hist.columns)


@pytest.mark.parametrize("fraction,match", [(-0.2, "validation_fraction must be a"),
                                            (1.0, "validation_fraction must be in"),
                                            (0.99, "leaves no training example out of 5")])
def test_validation_split_refuses_bad_fractions(fraction, match):
    with pytest.raises(ValueError, match=match):
        validation_split(5, fraction, 0)


def test_validation_split_without_fraction_draws_nothing():
    gen = np.random.default_rng(0)
    fit, held = validation_split(5, 0.0, gen)
    np.testing.assert_array_equal(fit, np.arange(5))
    assert held.size == 0
    assert gen.random() == np.random.default_rng(0).random()


@pytest.mark.parametrize("kwargs,match", [
    ({"lr_schedule": "step"}, r"lr_schedule must be one of \('constant', 'cosine'\); got 'step'"),
    ({"validation_fraction": 1.0}, r"validation_fraction must be in \[0, 1\); got 1"),
    ({"validation_fraction": -0.1}, "validation_fraction must be a"),
    ({"validation_fraction": 0.1, "patience": 0}, "patience"),
    ({"patience": 5}, "patience=5 needs a validation split"),
])
def test_recipe_fields_validate(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)
