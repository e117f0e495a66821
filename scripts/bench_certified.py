"""Certified estimator against plain MC at equal half-width, on 784-512-512-10 networks.

The networks: 784-512-512-10, softmax, ``trained:ACT:KEEP`` trained on the MNIST 5k
training split (3,750 images, ``load_dataset("mnist")``) by ``ensemble_study.train``
with inverted dropout at keep_prob KEEP on both hidden layers (Adam, step 1e-3,
batches of 64, ``--epochs`` epochs from the initialisation), ``random:ACT:KEEP`` at
the initialisation itself (He for ReLU, Glorot otherwise). Inputs: ``--images``
MNIST test images. The ensemble is the one the network was (or would be) trained
for: inverted dropout at KEEP on hidden layers 1 and 2 (1,024 dropped units).

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

Networks are given as ``kind:activation:keep_prob`` (``trained:relu:0.5``,
``random:tanh:0.8``; a bare ``trained`` or ``random`` is ReLU at 0.5). Each network
is run twice by the certified estimator on the same masks: with the Taylor control
variates alone (``control_variates = taylor``) and with the gated-linear surrogate's
added (``taylor+surrogate``, the default of ``certified_ensemble``); its extra products
(:func:`certified.surrogate_passes` of a pass) are counted in its passes.

Throughput of the sampled forward passes (issue #21 item 5): on one batch of
``max_rows`` images, the certified sampler's draw of ``--pairs`` pairs (forward passes,
targets and control variates) and its passes alone are timed against a 1024 x 1024
float64 GEMM, alternately, ``--repeats`` times, best of each, on one BLAS thread in
CPU seconds (so that the other jobs of a loaded machine do not enter the ratio).
Columns: ``subnetwork_examples_per_s`` (sampled masks x images per CPU second, draw),
``sampled_gflops`` (2 x the multiply-adds of the layers from the first dropped one on,
the mask-dependent work, per subnetwork-example), ``gemm_peak_gflops`` and
``peak_share`` (draw), ``passes_peak_share`` (passes alone).

``load_average`` is the 1-minute load average at the start of the run,
``load_average_max`` the larger of it before the network and after its runs.

One CSV row per (network, control variates, criterion), to ``--out``
(``results/bench_certified.csv``, with its JSON sidecar).

Usage::

    python scripts/bench_certified.py --images 1000 --pairs 128 --epochs 3 \\
        --network trained:relu:0.5 --network random:relu:0.5 --network trained:relu:0.8 \\
        --network random:relu:0.8 --network random:tanh:0.5 --network trained:tanh:0.8 \\
        --network random:tanh:0.8 --network random:sigmoid:0.8
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ensemble_study.certified import (
    _Sampler,
    certified_ensemble,
    derivative_cost,
    surrogate_passes,
)
from ensemble_study.dropout import DropoutConfig
from ensemble_study.ensemble import certified_rows, sample_ensemble
from ensemble_study.network import MLP
from ensemble_study.results import save_result

SIZES = (784, 512, 512, 10)
Z95 = 1.959963984540054


def network(spec: str, epochs: int, seed: int, data) -> tuple[MLP, DropoutConfig, str]:
    kind, act, keep = (spec.split(":") + ["relu", "0.5"])[:3] if ":" in spec else (spec, "relu",
                                                                                   "0.5")
    if kind not in ("trained", "random"):
        raise ValueError(f"--network is kind:activation:keep_prob with kind trained or random; "
                         f"got {spec!r}")
    keep = float(keep)
    cfg = DropoutConfig(keep, layers=[1, 2])
    net = MLP.random(SIZES, act, "softmax", rng=seed)
    init = "He" if act == "relu" else "Glorot"
    if kind == "random":
        return net, cfg, f"random {act} ({init} initialisation)"
    from ensemble_study.train import TrainConfig, train

    t0 = time.perf_counter()
    net, hist = train(net, cfg, data.X_train, data.y_train, rng=seed + 1,
                      train_cfg=TrainConfig(learning_rate=1e-3, batch_size=64, epochs=epochs),
                      eval_set=(data.X_test, data.y_test))
    err = float(hist["eval_error"].iloc[-1])
    print(f"trained {spec} {epochs} epochs in {time.perf_counter() - t0:.0f} s: test error of "
          f"the scaled pass {err:.4f}", flush=True)
    return net, cfg, f"trained {act} with dropout ({epochs} epochs, test error {err:.4f})"


def throughput(net, cfg, X, pairs: int, repeats: int, seed: int) -> dict:
    """The sampled passes' throughput against the GEMM peak, alternately, one BLAS thread,
    CPU seconds (see the module docstring)."""
    gen = np.random.default_rng(seed)
    a, b = gen.normal(size=(1024, 1024)), gen.normal(size=(1024, 1024))
    first = min(cfg.layers)
    macs = sum(x * y for x, y in zip(net.sizes[first:-1], net.sizes[first + 1:]))
    work = 2 * pairs * X.shape[0]
    gemm, draw, passes = [], [], []
    with threadpool_limits(1):
        sampler = _Sampler(net, cfg, X, 2)
        lay = sampler.lay
        r = gen.random((pairs, lay.q.size))
        u = np.concatenate([(r < lay.q) * lay.scale, ((1.0 - r) < lay.q) * lay.scale])
        a @ b
        for _ in range(repeats):
            t0 = time.process_time()
            a @ b
            gemm.append(time.process_time() - t0)
            t0 = time.process_time()
            sampler.draw(np.random.default_rng(seed), pairs)
            draw.append(time.process_time() - t0)
            t0 = time.process_time()
            sampler.targets(u, surrogate=sampler.surrogate)
            passes.append(time.process_time() - t0)
    peak = 2 * 1024**3 / min(gemm) / 1e9
    rate = work / min(draw)
    return dict(throughput_rows=X.shape[0], subnetwork_examples_per_s=rate,
                sampled_gflops=2 * macs * rate / 1e9, gemm_peak_gflops=peak,
                peak_share=2 * macs * rate / 1e9 / peak,
                passes_peak_share=2 * macs * work / min(passes) / 1e9 / peak)


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
    ap.add_argument("--network", action="append",
                    help="kind:activation:keep_prob, e.g. trained:relu:0.5 (repeatable)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="alternating timings of the throughput measurement")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/bench_certified.csv"))
    args = ap.parse_args(argv)
    from ensemble_study.datasets import load_dataset

    data = load_dataset("mnist", rng=args.seed)
    gen = np.random.default_rng(args.seed)
    X = data.X_test[gen.choice(len(data.X_test), args.images, replace=False)]
    h = args.tolerance
    load = os.getloadavg()[0]
    print(f"784-512-512-10, softmax, inverted dropout on layers 1-2; "
          f"{args.images} MNIST test images; 95% half-width {h}; load average {load:.1f} on "
          f"{os.cpu_count()} cores", flush=True)
    rows = []
    for spec in args.network or ["trained:relu:0.5"]:
        load_before = os.getloadavg()[0]
        net, cfg, what = network(spec, args.epochs, args.seed, data)
        kind = spec.split(":")[0]
        batch = certified_rows(net, cfg, args.images, 2 * args.pairs)
        tp = throughput(net, cfg, X[:batch], args.pairs, args.repeats, args.seed)
        print(f"{spec}: sampled passes on {batch} images, one thread: "
              f"{tp['subnetwork_examples_per_s']:,.0f} subnetwork-examples per CPU second, "
              f"{tp['sampled_gflops']:.1f} GFLOP/s = {tp['peak_share']:.0%} of the float64 "
              f"GEMM peak {tp['gemm_peak_gflops']:.1f} GFLOP/s (passes alone "
              f"{tp['passes_peak_share']:.0%})", flush=True)
        # One-off costs (compilation, imports, first-touch) kept out of the timings.
        sample_ensemble(net, cfg, X[:2], 2, np.random.default_rng(0))
        certified_ensemble(net, cfg, X[:2], 0, n_pairs=2, n_pilot=8, max_passes=math.inf)
        t0 = time.perf_counter()
        sample_ensemble(net, cfg, X, 2 * args.pairs, np.random.default_rng(args.seed + 3))
        t_mc = time.perf_counter() - t0
        sec_plain = t_mc / (2 * args.pairs)
        for surrogate in (False, True):
            t0 = time.perf_counter()
            r = certified_ensemble(net, cfg, X, np.random.default_rng(args.seed + 2),
                                   n_pairs=args.pairs, max_passes=math.inf, max_rows=batch,
                                   surrogate=surrogate)
            t_cert = time.perf_counter() - t0
            sd_plain = np.sqrt(r.variance)                       # per pass
            sd_cert = np.sqrt(2 * r.n_pairs * r.stderr ** 2)     # per pass (a pair is 2)
            extra = surrogate_passes(net, cfg) if surrogate else 0.0
            overhead = derivative_cost(net, cfg) + 2 * r.n_pilot * (1 + extra)
            sec_cert = t_cert / r.n_passes
            cv = "taylor+surrogate" if surrogate else "taylor"
            # the 1-minute load average, before this network and after its runs (the
            # machine is shared: the seconds depend on it, the passes do not)
            load_net = max(load_before, os.getloadavg()[0])
            for criterion in ("coordinate", "tv"):
                n_plain = needed(sd_plain, h, criterion)
                n_main = needed(sd_cert, h, criterion) * (1 + extra)
                n_cert = n_main + overhead
                row = dict(network=kind, activation=net.hidden[0], description=what,
                           keep_prob=cfg.keep_prob, images=args.images, control_variates=cv,
                           criterion=criterion, half_width=h, pairs=args.pairs,
                           plain_passes=n_plain, certified_passes=n_cert,
                           certified_main_passes=n_main, certified_overhead_passes=overhead,
                           pass_ratio=n_plain / n_cert,
                           median_variance_ratio=float(np.median(r.variance_ratio)),
                           plain_seconds_per_pass=sec_plain,
                           certified_seconds_per_pass=sec_cert,
                           plain_seconds=n_plain * sec_plain,
                           certified_seconds=n_cert * sec_cert,
                           seconds_ratio=n_plain * sec_plain / (n_cert * sec_cert),
                           **tp, load_average=load, load_average_max=load_net,
                           seed=args.seed)
                rows.append(row)
                print(f"{spec}, {cv}, {criterion}: plain MC {n_plain:,.0f} passes "
                      f"({row['plain_seconds']:,.0f} s), certified {n_cert:,.0f} passes "
                      f"({n_main:,.0f} + {overhead:,.0f} derivatives and pilot; "
                      f"{row['certified_seconds']:,.0f} s): {row['pass_ratio']:.2f}x fewer "
                      f"passes, {row['seconds_ratio']:.2f}x fewer seconds; median "
                      f"per-coordinate variance ratio {row['median_variance_ratio']:.2f}",
                      flush=True)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print(f"wrote {save_result(pd.DataFrame(rows), args.out, params)}")


if __name__ == "__main__":
    main()
