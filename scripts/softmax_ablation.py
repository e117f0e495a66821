#!/usr/bin/env python
"""What the softmax kernels' time goes to, on this host: C ablations and the package's shapes.

    python scripts/softmax_ablation.py [--rounds 41] [--pairs 256] [--out CSV]

On one thread, in alternating rounds (every variant once per round, so that
a loaded machine slows them alike), on ``--pairs`` (outer mask, example)
pairs of the bench's softmax networks (8-10-10-10 and 8-12-12-10, both
hidden layers dropped, 256 inputs, keep_prob 0.5: the last hidden layer of
randomly chosen pairs, as the bench's C runner forms it), times:

* ``c``: the bench's C kernel (mean and NWGM);
* ``c_no_division``: the same with the reciprocals replaced by the
  denominators (``-DES_ABLATE_DIVISION``);
* ``c_no_contraction``: the same without the contraction after the
  reciprocals (``-DES_ABLATE_CONTRACTION``);
* ``package_mean``: the package's kernel, mean only, in its default shape;
* ``package_all tile=T,fused=F``: mean and variance, in every candidate shape.

Rows are tidy: one per (host, network, variant, round), with the 1-minute
load average at the start of the run. The ``softmax-ablation`` block of
docs/results/bench.md reads them.
"""

import ctypes
import os
import time
from functools import partial
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ensemble_study import _bench_c
from ensemble_study.bench import host_description, load_average
from ensemble_study.dropout import DropoutConfig
from ensemble_study.kernels import shape as kshape
from ensemble_study.kernels import shortcut_plan
from ensemble_study.kernels.compiled import _last_hidden, _softmax_pairs_kernel
from ensemble_study.masks import enumerate_masks
from ensemble_study.network import MLP
from ensemble_study.results import save_result

NETWORKS = ((8, 10, 10, 10), (8, 12, 12, 10))


def _pairs(sizes, n_pairs, rng=0):
    gen = np.random.default_rng([rng, *sizes])  # the bench's network and inputs
    net = MLP.random(sizes, "relu", "softmax", rng=gen)
    X = gen.normal(size=(256, sizes[0]))
    plan = shortcut_plan(net, DropoutConfig(0.5, layers=[1, 2], scheme="inverted"))
    masks, _ = next(enumerate_masks(plan.outer_q, 2**30))
    A = _last_hidden(net, plan, X, masks).reshape(-1, plan.n_inner)
    pick = np.random.default_rng(1).permutation(A.shape[0])[:n_pairs]
    return (np.ascontiguousarray(A[pick]), np.ascontiguousarray(plan.inner_scale * net.weights[-1]),
            np.array(net.biases[-1], dtype=np.float64), plan.inner_q)


@click.command()
@click.option("--rounds", type=click.IntRange(3, None), default=41, show_default=True)
@click.option("--pairs", type=click.IntRange(1, None), default=256, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("results/softmax_ablation.csv"), show_default=True)
def main(rounds, pairs, out):
    """Time the C softmax kernel's ablations and the package's shapes, one thread
    (default --out results/softmax_ablation.csv)."""
    libs = {}
    for name, defines in (("c", ()), ("c_no_division", ("ES_ABLATE_DIVISION",)),
                          ("c_no_contraction", ("ES_ABLATE_CONTRACTION",))):
        lib, message = _bench_c.build(defines)
        if lib is None:
            raise click.ClickException(message)
        lib.set_threads(1)
        libs[name] = lib
    host, load = host_description(), load_average()
    click.echo(f"host: {host}; 1-minute load average {load:.2f}; {rounds} rounds")
    P, rows = _bench_c._ptr, []
    for sizes in NETWORKS:
        A, sW, b, q = _pairs(sizes, pairs)
        B, n = A.shape
        K = sW.shape[1]
        mean, nwgm, var = np.empty((B, K)), np.empty((B, K)), np.empty((B, K))

        c_args = (P(A), P(sW), P(b), ctypes.c_double(q), B, n, K, P(mean), P(nwgm))
        variants = {name: partial(lib.softmax_mean_nwgm, *c_args) for name, lib in libs.items()}
        s = kshape.default_shape()
        variants["package_mean"] = partial(_softmax_pairs_kernel, A, sW, b, q, False, mean, var,
                                           s.tile, s.fused)
        for s in kshape.CANDIDATES:
            variants[f"package_all {s}"] = partial(_softmax_pairs_kernel, A, sW, b, q, True,
                                                   mean, var, s.tile, s.fused)
        for fn in variants.values():  # compile or load, warm the caches
            fn()
        for r in range(rounds):
            for name, fn in variants.items():
                start = time.perf_counter()
                fn()
                seconds = time.perf_counter() - start
                rows.append({"host": host, "architecture": "-".join(map(str, sizes)),
                             "n_inner": n, "n_classes": K, "pairs": B, "variant": name,
                             "round": r, "seconds": seconds,
                             "ns_per_subnetwork": seconds * 1e9 / (B * 2**n),
                             "load_1min": load})
        best = pd.DataFrame(rows).query("architecture == @rows[-1]['architecture']")
        click.echo(best.groupby("variant", sort=False)["ns_per_subnetwork"].median()
                   .round(3).to_string())
    df = pd.DataFrame(rows)
    params = {"rounds": rounds, "pairs": pairs, "threads": 1, "host": host,
              "load_1min_start": load, "load_1min_end": load_average(),
              "cpus": os.cpu_count(), "c_flags": " ".join(_bench_c.FLAGS)}
    click.echo(f"wrote {save_result(df, out, params)} ({len(df)} rows)")


if __name__ == "__main__":
    main()
