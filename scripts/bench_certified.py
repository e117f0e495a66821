"""Certified estimator against plain MC at equal half-width, on a 784-512-512-10 network.

The network: 784-512-512-10, ReLU, softmax, trained on the MNIST 5k training split
(3,750 images, ``load_dataset("mnist")``) by ``ensemble_study.train`` with inverted
dropout at keep_prob 0.5 on both hidden layers (Adam, step 1e-3, batches of 64,
``--epochs`` epochs from He initialisation); ``--network random`` benches the He
initialisation itself instead. Inputs: ``--images`` MNIST test images. The
ensemble is the one the network was trained for: inverted dropout, keep_prob 0.5,
hidden layers 1 and 2 (1,024 dropped units).

From one run of each estimator with ``--pairs`` antithetic pairs (certified) and
``2 * --pairs`` masks (plain MC), per image and class: plain MC's per-pass
variance ``Var(y)`` (the ensemble's variance) and the certified estimator's
per-pass variance (2 x the variance of its adjusted pair means). The forward
passes each needs for a 95% half-width ``h`` are then

    plain:     (z s_plain / h)^2
    certified: (z s_cert / h)^2 + derivatives + pilot,

with ``s`` the worst image's spread under two criteria:

* ``coordinate``: the interval of every (image, class) probability is at most ``h``;
* ``tv``: on every image, half the sum over classes of the half-widths is at most
  ``h`` -- an upper bound on the total variation between the estimate and the
  ensemble mean, at 95% per class.

Those are projections from the measured variances (the counts scale as 1/h^2),
not runs to ``h``. Compute is counted two ways:

* forward passes: the derivatives count as :func:`certified.derivative_cost`
  passes, the pilot and main batch 2 per pair;
* seconds: each estimator's measured seconds per pass of its run, times its
  projected passes (for certified, the seconds per pass include the derivatives,
  the pilot and the control variates' products). On a loaded machine the seconds
  are indicative; the ratio of passes does not depend on the load.

One CSV row per (network, criterion), to ``--out`` (``results/bench_certified.csv``,
with its JSON sidecar).

Usage::

    python scripts/bench_certified.py --images 1000 --pairs 128 --epochs 3 \\
        --network trained --network random
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble_study.certified import certified_ensemble, derivative_cost
from ensemble_study.dropout import DropoutConfig
from ensemble_study.ensemble import certified_rows, sample_ensemble
from ensemble_study.network import MLP
from ensemble_study.results import save_result

SIZES = (784, 512, 512, 10)
KEEP = 0.5
Z95 = 1.959963984540054


def network(kind: str, epochs: int, seed: int, data) -> tuple[MLP, str]:
    net = MLP.random(SIZES, "relu", "softmax", rng=seed)
    if kind == "random":
        return net, "random (He initialisation)"
    from ensemble_study.train import TrainConfig, train

    cfg = DropoutConfig(KEEP, layers=[1, 2])
    t0 = time.perf_counter()
    net, hist = train(net, cfg, data.X_train, data.y_train, rng=seed + 1,
                      train_cfg=TrainConfig(learning_rate=1e-3, batch_size=64, epochs=epochs),
                      eval_set=(data.X_test, data.y_test))
    err = float(hist["eval_error"].iloc[-1])
    print(f"trained {epochs} epochs in {time.perf_counter() - t0:.0f} s: test error of the "
          f"scaled pass {err:.4f}", flush=True)
    return net, f"trained with dropout ({epochs} epochs, test error {err:.4f})"


def needed(sd: np.ndarray, h: float, criterion: str) -> float:
    """Passes for a 95% half-width ``h`` from per-pass spreads ``sd`` (n_images, n_classes)."""
    worst = sd.max() if criterion == "coordinate" else 0.5 * sd.sum(1).max()
    return (Z95 * worst / h) ** 2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--tolerance", type=float, default=0.001)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--network", choices=("trained", "random"), action="append")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/bench_certified.csv"))
    args = ap.parse_args(argv)
    from ensemble_study.datasets import load_dataset

    data = load_dataset("mnist", rng=args.seed)
    gen = np.random.default_rng(args.seed)
    X = data.X_test[gen.choice(len(data.X_test), args.images, replace=False)]
    cfg = DropoutConfig(KEEP, layers=[1, 2])
    h = args.tolerance
    load = os.getloadavg()[0]
    print(f"784-512-512-10 ReLU, softmax, inverted dropout keep_prob {KEEP} on layers 1-2; "
          f"{args.images} MNIST test images; 95% half-width {h}; load average {load:.1f} on "
          f"{os.cpu_count()} cores", flush=True)
    rows = []
    for kind in args.network or ["trained"]:
        net, what = network(kind, args.epochs, args.seed, data)
        batch = certified_rows(net, cfg, args.images, 2 * args.pairs)
        t0 = time.perf_counter()
        r = certified_ensemble(net, cfg, X, np.random.default_rng(args.seed + 2),
                               n_pairs=args.pairs, max_passes=math.inf, max_rows=batch)
        t_cert = time.perf_counter() - t0
        t0 = time.perf_counter()
        sample_ensemble(net, cfg, X, 2 * args.pairs, np.random.default_rng(args.seed + 3))
        t_mc = time.perf_counter() - t0
        sd_plain = np.sqrt(r.variance)                       # per pass
        sd_cert = np.sqrt(2 * r.n_pairs * r.stderr ** 2)     # per pass (a pair is 2)
        overhead = derivative_cost(net, cfg) + 2 * r.n_pilot
        sec_plain = t_mc / (2 * args.pairs)
        sec_cert = t_cert / r.n_passes
        for criterion in ("coordinate", "tv"):
            n_plain = needed(sd_plain, h, criterion)
            n_main = needed(sd_cert, h, criterion)
            n_cert = n_main + overhead
            row = dict(network=kind, description=what, keep_prob=KEEP, images=args.images,
                       criterion=criterion, half_width=h, pairs=args.pairs,
                       plain_passes=n_plain, certified_passes=n_cert,
                       certified_main_passes=n_main, certified_overhead_passes=overhead,
                       pass_ratio=n_plain / n_cert,
                       median_variance_ratio=float(np.median(r.variance_ratio)),
                       plain_seconds_per_pass=sec_plain, certified_seconds_per_pass=sec_cert,
                       plain_seconds=n_plain * sec_plain, certified_seconds=n_cert * sec_cert,
                       seconds_ratio=n_plain * sec_plain / (n_cert * sec_cert),
                       load_average=load, seed=args.seed)
            rows.append(row)
            print(f"{kind}, {criterion}: plain MC {n_plain:,.0f} passes "
                  f"({row['plain_seconds']:,.0f} s), certified {n_cert:,.0f} passes "
                  f"({n_main:,.0f} + {overhead:,.0f} derivatives and pilot; "
                  f"{row['certified_seconds']:,.0f} s): {row['pass_ratio']:.2f}x fewer passes, "
                  f"{row['seconds_ratio']:.2f}x fewer seconds; median per-coordinate variance "
                  f"ratio {row['median_variance_ratio']:.2f}", flush=True)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print(f"wrote {save_result(pd.DataFrame(rows), args.out, params)}")


if __name__ == "__main__":
    main()
