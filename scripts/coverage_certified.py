"""Coverage of the certified estimator's 95% intervals against exact ensembles.

Each case draws an architecture (depth 1-3 hidden layers, widths 2-6, 2-5
inputs), a hidden activation (relu, tanh, sigmoid, identity), an output
(identity, sigmoid, softmax), the dropped layers, a keep_prob (0.3-0.9) and a
scheme, at most 2**12 subnetworks (enumerated exactly, ``exact_ensemble``),
from its own stream (``stream(seed, "coverage", case)``). The certified
estimate (``n_pairs`` antithetic pairs after a 32-pair pilot) of one random
coordinate (example, output) is scored: does its interval hold the exact
mean, NWGM, variance? One row per case (the case is the unit: one coordinate
each, so the rows are independent).

``--large`` cases (oracle ``enumeration_large``) reach 2**14 to 2**20
subnetworks: depth 1-2, widths 6-12, 3-8 inputs, 14 to 20 dropped units.

Cases where the ensemble does not move at that coordinate (exact spread
below 1e-12, e.g. a ReLU unit dead under every mask) are kept and reported
(``degenerate``); an interval of width 0 around the exact value counts as
covering.

Where ``ensemble_study.laplace.expected_sigmoid`` is on this branch, wide
sigmoid cases (one dropped hidden layer of width up to 2048 feeding one
sigmoid output) are added with that exact integral as the oracle of the mean.

Usage::

    python scripts/coverage_certified.py   # 1000 + 1000 large + 1000 wide -> results/coverage.csv
    python scripts/coverage_certified.py --cases 100 --out /tmp/c.csv
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _stats

from ensemble_study.certified import certified_ensemble
from ensemble_study.dropout import DropoutConfig
from ensemble_study.ensemble import exact_ensemble
from ensemble_study.network import MLP
from ensemble_study.studies._common import stream

ACTS = ("relu", "tanh", "sigmoid", "identity")
OUTS = ("identity", "sigmoid", "softmax")
MAX_FREE = 20


LARGE_MIN_FREE = 14  # the large cases: 2**14 to 2**20 subnetworks


def draw_case(seed: int, case: int, large: bool = False) -> dict:
    """One case's network, config and input, from its own stream.

    ``large``: depth 1-2, widths 6-12, 3-8 inputs, 14 to 20 dropped units
    (2**14 to 2**20 subnetworks), from the stream ``("coverage-large", case)``.
    """
    gen = np.random.default_rng(stream(seed, "coverage-large" if large else "coverage", case))
    while True:
        depth = int(gen.integers(1, 3 if large else 4))
        n_in = int(gen.integers(3, 9) if large else gen.integers(2, 6))
        widths = [int(gen.integers(6, 13) if large else gen.integers(2, 7))
                  for _ in range(depth)]
        out = OUTS[int(gen.integers(len(OUTS)))]
        k = {"identity": 2, "sigmoid": 1, "softmax": 3}[out]
        sizes = [n_in, *widths, k]
        n_drop = int(gen.integers(1, 3))
        layers = sorted(set(int(x) for x in gen.integers(0, depth + 1, size=n_drop)))
        free = sum(sizes[l] for l in layers)
        if free <= MAX_FREE and (not large or free >= LARGE_MIN_FREE):
            break
    act = ACTS[int(gen.integers(len(ACTS)))]
    keep = float(np.round(gen.uniform(0.3, 0.9), 2))
    scheme = ("vanilla", "inverted")[int(gen.integers(2))]
    net = MLP.random(sizes, act, out, rng=gen, bias_scale=0.5)
    X = gen.normal(size=(1, n_in)) * 1.5
    return dict(net=net, cfg=DropoutConfig(keep, layers=layers, scheme=scheme), X=X,
                activation=act, output=out, keep_prob=keep, scheme=scheme,
                layers="/".join(map(str, layers)), architecture=net.architecture,
                coordinate=int(gen.integers(k)), gen=gen)


def _covers(est, hw, exact):
    return bool(abs(est - exact) <= hw + 1e-12 * max(1.0, abs(exact)))


def run_case(seed: int, case: int, n_pairs: int | None = 100, n_pilot: int = 32,
             tolerance: float | None = None, large: bool = False) -> dict:
    """One case scored; ``tolerance`` (instead of ``n_pairs``): Stein's two-stage run;
    ``large``: a case of 2**14 to 2**20 subnetworks (oracle ``enumeration_large``)."""
    c = draw_case(seed, case, large)
    net, cfg, X, o = c["net"], c["cfg"], c["X"], c["coordinate"]
    ex = exact_ensemble(net, cfg, X)
    r = certified_ensemble(net, cfg, X, c["gen"], n_pairs=None if tolerance else n_pairs,
                           tolerance=tolerance, n_pilot=n_pilot, max_passes=math.inf)
    n_pairs = r.n_pairs
    row = {key: c[key] for key in ("architecture", "activation", "output", "keep_prob",
                                   "scheme", "layers", "coordinate")}
    row.update(case=case, oracle="enumeration_large" if large else "enumeration",
               tolerance=tolerance, n_subnetworks=ex.n_subnetworks,
               n_pairs=n_pairs, degenerate=bool(ex.variance[0, o] < 1e-24),
               mean_exact=ex.mean[0, o], mean_est=r.mean[0, o],
               mean_half_width=r.mean_half_width[0, o],
               mean_covered=_covers(r.mean[0, o], r.mean_half_width[0, o], ex.mean[0, o]),
               variance_exact=ex.variance[0, o], variance_est=r.variance[0, o],
               variance_half_width=r.variance_half_width[0, o],
               variance_covered=_covers(r.variance[0, o], r.variance_half_width[0, o],
                                        ex.variance[0, o]),
               variance_ratio=r.variance_ratio[0, o])
    if ex.geometric_mean is not None:
        row.update(nwgm_exact=ex.geometric_mean[0, o], nwgm_est=r.geometric_mean[0, o],
                   nwgm_half_width=r.geometric_mean_half_width[0, o],
                   nwgm_covered=_covers(r.geometric_mean[0, o],
                                        r.geometric_mean_half_width[0, o],
                                        ex.geometric_mean[0, o]))
    return row


def run_wide_case(seed: int, case: int, n_pairs: int = 100, n_pilot: int = 32) -> dict | None:
    """One dropped hidden layer feeding one sigmoid output, the exact integral as oracle."""
    try:
        from ensemble_study.laplace import expected_sigmoid
    except ImportError:
        return None
    gen = np.random.default_rng(stream(seed, "coverage-wide", case))
    width = int(2 ** gen.integers(6, 12))  # 64..2048
    n_in = int(gen.integers(4, 17))
    act = ACTS[int(gen.integers(3))]
    keep = float(np.round(gen.uniform(0.3, 0.9), 2))
    scheme = ("vanilla", "inverted")[int(gen.integers(2))]
    net = MLP.random([n_in, width, 1], act, "sigmoid", rng=gen, bias_scale=0.5)
    cfg = DropoutConfig(keep, layers=[1], scheme=scheme)
    X = gen.normal(size=(1, n_in))
    h = net.hidden[0]
    from ensemble_study.network import ACTIVATION_FUNCTIONS

    a = ACTIVATION_FUNCTIONS[h](X @ net.weights[0] + net.biases[0])[0]
    c = a * net.weights[1][:, 0] * (1.0 / keep if scheme == "inverted" else 1.0)
    exact = float(expected_sigmoid(float(net.biases[1][0]), c, keep))
    r = certified_ensemble(net, cfg, X, gen, n_pairs=n_pairs, n_pilot=n_pilot,
                           max_passes=math.inf)
    return dict(case=case, oracle="laplace", architecture=net.architecture, activation=act,
                output="sigmoid", keep_prob=keep, scheme=scheme, layers="1", coordinate=0,
                n_subnetworks=np.nan, n_pairs=n_pairs, degenerate=False,
                mean_exact=exact, mean_est=r.mean[0, 0], mean_half_width=r.mean_half_width[0, 0],
                mean_covered=_covers(r.mean[0, 0], r.mean_half_width[0, 0], exact),
                variance_ratio=r.variance_ratio[0, 0])


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Coverage per quantity with its Clopper-Pearson 95% interval."""
    rows = []
    for q in ("mean", "nwgm", "variance"):
        col = f"{q}_covered"
        if col not in df:
            continue
        for oracle, g in df.dropna(subset=[col]).groupby("oracle"):
            n, x = len(g), int(g[col].astype(bool).sum())
            ci = _stats.binomtest(x, n).proportion_ci(0.95, method="exact")
            rows.append(dict(quantity=q, oracle=oracle, n=n, covered=x, coverage=x / n,
                             ci_low=ci.low, ci_high=ci.high))
    return pd.DataFrame(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--wide", type=int, default=1000, help="wide sigmoid cases (Laplace oracle)")
    ap.add_argument("--large", type=int, default=1000,
                    help="cases of 2**14 to 2**20 subnetworks (enumerated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--tolerance", type=float, default=None,
                    help="Stein two-stage runs to this half-width instead of --pairs")
    ap.add_argument("--out", type=Path, default=Path("results/coverage.csv"))
    args = ap.parse_args(argv)
    t0 = time.time()
    rows = [run_case(args.seed, i, args.pairs, tolerance=args.tolerance)
            for i in range(args.cases)]
    rows += [run_case(args.seed, i, args.pairs, tolerance=args.tolerance, large=True)
             for i in range(args.large)]
    for i in range(args.wide):
        row = run_wide_case(args.seed, i, args.pairs)
        if row is None:
            print("ensemble_study.laplace is not on this branch: no wide sigmoid cases",
                  file=sys.stderr)
            break
        rows.append(row)
    df = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    print(summary(df).to_string(index=False))
    print(f"{len(df)} cases in {time.time() - t0:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
