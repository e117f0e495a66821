#!/usr/bin/env python
"""The Laplace integral: numpy reference against the compiled kernel, one run.

    python scripts/bench_laplace.py [--threads N] [--repeat R]

On the sizes the regularizer studies ask for (``ensemble_study.laplace``), each
case times ``expected_softplus`` (or ``expected_sigmoid``) under
``ENSEMBLE_STUDY_KERNELS=numpy`` and ``=numba`` in this process, best of
``--repeat`` runs after a warm-up (the kernel compiled or loaded from numba's
cache first), and prints both times and their ratio. Nothing is saved: ratios
measured on a shared machine are indicative, so the host, the threads and the
1-minute load average before and after are printed with them.

Cases (c = x beta / q, b the intercept; weights from an L2 logistic fit on the
digits 2-vs-3 training split, rows repeated to the batch size; 784 features are
synthetic MNIST-like rows, 20% of pixels on, weights N(0, 0.3^2)):

* ``regularizer``: 200 x 64, value (``logistic_exact``);
* ``regularizer_fits``: 200 x 64, value and gradient (each L-BFGS step);
* ``2000 x 64`` with gradient;
* ``regularizer_path`` slice: 21 points x 40 examples = 840 x 64, value;
* ``784 features``: 200 x 784 with gradient;
* ``laplace_sigmoid``: 200 x 64 sigmoid, value (the predictor).
"""

import os
import time

import click
import numpy as np

from ensemble_study import kernels
from ensemble_study.bench import host_description, load_average
from ensemble_study.datasets import load_dataset
from ensemble_study.laplace import expected_sigmoid, expected_softplus
from ensemble_study.studies.regularizer import l2_logistic


def _digits_case(n_batch, q, scale=1.0):
    ds = load_dataset("digits_2v3", rng=0)
    X, y = ds.X_train, ds.y_train.astype(float)
    beta, b = l2_logistic(X, y, 1.0)
    rows = X[np.arange(n_batch) % X.shape[0]]
    return np.full(n_batch, scale * b), rows * (scale * beta) / q


def _mnist_like(n_batch, q, rng=0):
    rng = np.random.default_rng(rng)
    X = rng.random((n_batch, 784)) * (rng.random((n_batch, 784)) < 0.2)
    beta = rng.normal(size=784) * 0.3
    return np.full(n_batch, -0.5), X * beta / q


def _cases():
    q = 0.5
    b200, c200 = _digits_case(200, q)
    b2k, c2k = _digits_case(2000, q)
    b840, c840 = _digits_case(840, q)
    b784, c784 = _mnist_like(200, q)
    return [
        ("regularizer 200 x 64, value", expected_softplus, b200, c200, q, False),
        ("regularizer_fits 200 x 64, grad", expected_softplus, b200, c200, q, True),
        ("2000 x 64, grad", expected_softplus, b2k, c2k, q, True),
        ("regularizer_path slice 840 x 64, value", expected_softplus, b840, c840, q, False),
        ("784 features 200 x 784, grad", expected_softplus, b784, c784, q, True),
        ("laplace_sigmoid 200 x 64, value", expected_sigmoid, b200, c200, q, False),
    ]


def _best(fn, args, grad, repeat):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args, return_grad=grad)
        best = min(best, time.perf_counter() - t)
    return best


@click.command()
@click.option("--threads", type=click.IntRange(1, 64), default=None,
              help="ENSEMBLE_STUDY_THREADS for the compiled kernel (default: the "
                   "package's default, at most 2).")
@click.option("--repeat", type=click.IntRange(1, 20), default=2, show_default=True,
              help="Runs per case and backend; the best is kept.")
def main(threads, repeat):
    """Print numpy-reference and compiled seconds and their ratio per case."""
    if threads is not None:
        os.environ["ENSEMBLE_STUDY_THREADS"] = str(threads)
    click.echo(f"host: {host_description()}, {os.cpu_count()} logical CPU(s), "
               f"1-minute load average {load_average():.2f}")
    click.echo(f"compiled kernel threads: {kernels.default_threads()}; best of {repeat}")
    os.environ[kernels.ENV_VAR] = "numba"
    t = time.perf_counter()
    expected_softplus(0.1, np.array([0.5, -0.3]), 0.5, return_grad=True)
    click.echo(f"first compiled call (compile, or load from the cache): "
               f"{time.perf_counter() - t:.2f} s")
    click.echo(f"{'case':42s} {'numpy s':>9s} {'numba s':>9s} {'ratio':>7s}")
    for name, fn, b, c, q, grad in _cases():
        secs = {}
        for backend in ("numpy", "numba"):
            os.environ[kernels.ENV_VAR] = backend
            fn(b[:2], c[:2], q, return_grad=grad)  # warm-up
            secs[backend] = _best(fn, (b, c, q), grad, repeat)
        click.echo(f"{name:42s} {secs['numpy']:9.3f} {secs['numba']:9.3f} "
                   f"{secs['numpy'] / secs['numba']:7.1f}")
    click.echo(f"1-minute load average at the end: {load_average():.2f}")


if __name__ == "__main__":
    main()
