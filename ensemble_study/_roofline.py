"""A roofline estimate for the benchmark: what limits each kernel, measured.

``perf stat`` is not available on every machine (not on the shared VM this
was written on), so the benchmark measures the peaks it compares against:
fused multiply-add throughput (the float64 matmul peak), vector division
and exp throughput (micro-benchmarks of the kernels' own vector
operations, on the package's threads), and memory bandwidth (a large
copy). Each kernel's operation counts come from its algorithm; the share
of each peak it reaches says which resource binds (the largest share), or,
when every share is small, that latency or Python overhead does.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from .kernels import default_threads, shortcut_plan
from .kernels._simd import LANES, vadd, vdiv, vexp, vload, vsplat, vstore


@njit(nogil=True, cache=True)
def _divisions(n):
    """``8 LANES n`` divisions in 8 independent chains; returns their sum."""
    one = vsplat(1.0)
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = vsplat(1.5)
    for _ in range(n):
        a0, a1, a2, a3 = vdiv(one, vadd(a0, one)), vdiv(one, vadd(a1, one)), \
            vdiv(one, vadd(a2, one)), vdiv(one, vadd(a3, one))
        a4, a5, a6, a7 = vdiv(one, vadd(a4, one)), vdiv(one, vadd(a5, one)), \
            vdiv(one, vadd(a6, one)), vdiv(one, vadd(a7, one))
    out = np.empty(LANES)
    vstore(out, 0, vadd(vadd(vadd(a0, a1), vadd(a2, a3)), vadd(vadd(a4, a5), vadd(a6, a7))))
    return out.sum()


@njit(nogil=True, cache=True)
def _exps(x, out, n):
    """``n x.size`` exps of an array in L1."""
    for _ in range(n):
        for i in range(0, x.size, LANES):
            vstore(out, i, vexp(vload(x, i)))
    return out[0]


def _rate(fn, ops_per_call: float, threads: int) -> float:
    fn()  # compile or load
    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        list(pool.map(lambda _: fn(), range(threads)))
        return ops_per_call * threads / (time.perf_counter() - start)


def machine_peaks(matmul_gflops: float, *, quick: bool = False) -> dict:
    """Measured peaks: ``fma_gflops``, ``divisions_per_s``, ``exps_per_s``, ``memory_gbs``."""
    threads = default_threads()
    n = 2**16 if quick else 2**20
    x = np.random.default_rng(0).normal(size=1024)
    out = np.empty_like(x)
    src = np.ones(2**23 if not quick else 2**21)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    start = time.perf_counter()
    np.copyto(dst, src)
    memory = 2 * src.nbytes / (time.perf_counter() - start) / 1e9
    return {"fma_gflops": matmul_gflops,
            "divisions_per_s": _rate(lambda: _divisions(n), 8 * LANES * n, threads),
            "exps_per_s": _rate(lambda: _exps(x, out, n // 256), x.size * (n // 256), threads),
            "memory_gbs": memory}


def describe(peaks: dict) -> str:
    return (f"measured peaks: {peaks['divisions_per_s'] / 1e9:.2f} G divisions/s, "
            f"{peaks['exps_per_s'] / 1e9:.2f} G exps/s, memory {peaks['memory_gbs']:.1f} GB/s")


def kernel_counts(case, net, cfg, n_examples: int) -> dict:
    """Operations of the package's algorithm on one benchmark case.

    ``flops`` counts additions and multiplications (a fused multiply-add is
    2; divisions and exps are counted apart), for the inner loops only:
    per subnetwork and example on the two-half paths, per outer mask and
    example on the analytic ones.
    """
    plan = shortcut_plan(net, cfg)
    sizes, K = net.sizes, net.sizes[-1]
    n_sub = 2**case.n_dropped
    work = n_sub * n_examples
    if plan is None:  # generic: half-table lookup, the rest of the network, outputs, moments
        k = max(cfg.layers)
        rest = sum(2 * a * b for a, b in zip(sizes[k + 1:-1], sizes[k + 2:]))
        per = 2 * sizes[k + 1] + sizes[k + 1] + rest + 4 * K + 12 * K
        return {"flops": per * work, "divisions": work, "exps": K * work,
                "bytes": 0.0}
    n_outer = 2 ** int(np.count_nonzero(plan.outer_q < 1))
    h = plan.n_inner
    pairs = n_outer * n_examples
    if case.statistics in ("all", "mean+nwgm"):
        variance = case.statistics == "all"
        if net.output == "sigmoid":
            per, exps = (5 + 4 * variance) * K, 2 * 2 ** (h - h // 2) * K
        else:
            per, exps = (4 + 2 * variance) * K + variance, h * K
        return {"flops": per * work, "divisions": work * (1 if net.output != "sigmoid" else K),
                "exps": exps * pairs, "bytes": 16.0 * pairs * h}
    variance = case.statistics == "identity"
    per = 2 * 2 * h + h + 4 * h + (h * (h + 1) if variance else 0)
    return {"flops": per * pairs, "divisions": 0, "exps": 0, "bytes": 0.0}


def utilisation(counts: dict, seconds: float, peaks: dict) -> dict:
    """Share of each measured peak the run reaches."""
    return {"fma": counts["flops"] / seconds / (peaks["fma_gflops"] * 1e9),
            "division": counts["divisions"] / seconds / peaks["divisions_per_s"],
            "exp": counts["exps"] / seconds / peaks["exps_per_s"],
            "memory": counts["bytes"] / seconds / (peaks["memory_gbs"] * 1e9)}


def limit_line(counts: dict, seconds: float, peaks: dict) -> str:
    use = utilisation(counts, seconds, peaks)
    shares = ", ".join(f"{k} {v:.0%}" for k, v in sorted(use.items(), key=lambda kv: -kv[1]))
    top = max(use.values())
    verdict = ("" if top >= 0.3 else
               "; no resource above 30% of its peak: latency, branches or Python overhead")
    return (f"{shares} of the measured peaks; fma + exp {use['fma'] + use['exp']:.0%} (the "
            f"vector exp runs on the multiply-add pipes){verdict}")
