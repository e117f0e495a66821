"""Benchmark of exact enumeration: the package's paths against the naive loop.

One run measures, on the same machine: the naive per-mask loop (one full
forward pass per mask, the way a course's forward pass would be extended),
the package's path, float64 matrix-multiply throughput (the machine's
practical peak) and peak memory, for the cases of issue 4:

* ``a``: Warde-Farley et al. 2014's 2-10-10-1 ReLU network, sigmoid output,
  both hidden layers dropped (2^20 subnetworks): mean, NWGM and variance;
* ``b``: 8-10-10-10 (2^20) and 8-12-12-10 (2^24) ReLU, softmax output, both
  hidden layers dropped: arithmetic mean, NWGM and variance of the
  probabilities (``all``), and the mean and NWGM alone (``mean+nwgm``);
* ``c``: 8-12-12-10: the NWGM alone (``nwgm``, softmax output) and the
  identity output's mean and variance (``identity``), both analytic over the
  last dropped layer, against enumerating its 2^24 subnetworks;
* ``g``: the generic path: 8-10-10-10 softmax with the input and the first
  hidden layer dropped (2^18), where the last dropped layer does not feed
  the output;
* ``sweep``: 8-h-h-10 softmax, ``all``, for the figure of time against the
  number of dropped units.

Hand-written C kernels (``benchmarks/reference_kernels.c``, compiled here
with ``gcc -O3 -march=native -fopenmp``; skipped with a message when no
compiler is found) run in the same process, interleaved with the package:
the softmax mean and NWGM over the last dropped layer (cases ``b``) and a
Gray-code kernel of the expected last hidden layer (case ``c`` identity).
Column ``vs_c`` is package time over C time.

Besides the naive-equivalent GFLOP/s, ``kernel_gflops`` counts the
operations the package's algorithm performs (additions and multiplications;
a division or an exp counts 1), and ``limit`` names the resource closest to
its measured peak (a roofline: fused multiply-add throughput from the
matmul peak, division and exp throughput and memory bandwidth from
micro-benchmarks run here), with its share.

Each row records the host (``host``: CPU model and the kernels' vector
ISA), the 1-minute load average when its case started (``load_1min``: on a
shared machine other processes slow every timing) and the softmax kernel's
shape (``kernel_shape``, :mod:`ensemble_study.kernels.shape`, calibrated
once per host before the first case). ``ensemble-study bench`` keeps the
rows of other hosts already in its CSV (:func:`merge_hosts`), so the table
shows every host kind measured.

Always 256 inputs (64 with ``quick``), keep_prob 0.5, inverted dropout.
Where the naive loop would take too long it runs on the first masks only
and its time per subnetwork is extrapolated (column ``extrapolated``).

Effective GFLOP/s counts the flops of the naive computation, two per weight
per subnetwork and example (``2 * sum(fan_in * fan_out)``), divided by the
time taken; above the matmul peak it means algebra replaced arithmetic.
"""

from __future__ import annotations

import math
import os
import resource
import time
import tracemalloc
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info

from . import _bench_c as reference_c
from . import _roofline as roofline
from ._checks import check_real
from .dropout import DropoutConfig, dropped_units, unit_keep_probs
from .ensemble import exact_ensemble
from .kernels import default_threads, shortcut_moments, shortcut_plan
from .kernels import shape as kernel_shape
from .masks import enumerate_masks
from .network import MLP, OUTPUT_FUNCTIONS, forward, log_softmax, softmax

STATISTICS = ("all", "mean+nwgm", "nwgm", "identity")


@dataclass(frozen=True)
class Case:
    """One benchmark case: a network shape, an output and the statistics asked for."""

    case: str
    sizes: tuple
    output: str
    statistics: str
    compare_threads: bool = False  # also time one thread with BLAS threads
    layers: tuple = (1, 2)  # dropped activation layers

    @property
    def n_dropped(self) -> int:
        return sum(self.sizes[l] for l in self.layers)


def default_cases(quick: bool = False) -> list[Case]:
    """The cases of issue 4 (smaller networks when ``quick``)."""
    h20, h24, wf = ((6, 6), (7, 7), 6) if quick else ((10, 10), (12, 12), 10)
    cases = [
        Case("a", (2, wf, wf, 1), "sigmoid", "all"),
        Case("b", (8, *h20, 10), "softmax", "all", compare_threads=True),
        Case("b", (8, *h20, 10), "softmax", "mean+nwgm"),
        Case("b", (8, *h24, 10), "softmax", "all"),
        Case("b", (8, *h24, 10), "softmax", "mean+nwgm"),
        Case("c", (8, *h24, 10), "softmax", "nwgm"),
        Case("c", (8, *h24, 10), "identity", "identity"),
        Case("g", (8, *h20, 10) if not quick else (4, 5, 5, 10), "softmax", "all",
             layers=(0, 1)),
    ]
    widths = (4, 5, 6) if quick else (8, 9, 10, 11, 12)
    cases += [Case("sweep", (8, h, h, 10), "softmax", "all") for h in widths]
    return cases


def blas_info() -> tuple[str, int]:
    """The BLAS library numpy calls and its default thread count."""
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    # scipy may load an OpenBLAS of its own; numpy's is the one the naive loop calls.
    blas.sort(key=lambda i: "numpy" not in i.get("filepath", ""))
    if not blas:
        return "unknown", -1
    return f"{blas[0]['internal_api']} {blas[0]['version']}", int(blas[0]["num_threads"])


def matmul_gflops(n: int = 1024, repeat: int = 5, *, rng=0) -> float:
    """Float64 GEMM throughput of ``n x n`` matrices (best of ``repeat``), in GFLOP/s."""
    gen = np.random.default_rng(rng)
    a, b = gen.normal(size=(n, n)), gen.normal(size=(n, n))
    a @ b  # warm up: threads started, pages touched
    best = min(_seconds(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _best_seconds(fn, budget: float = 5.0, max_repeat: int = 3) -> float:
    """Best of up to ``max_repeat`` runs, repeating only while under ``budget`` seconds.

    A shared 2-core VM shows run-to-run noise of tens of percent; the best
    run is the one least disturbed by it.
    """
    best = _seconds(fn)
    for _ in range(max_repeat - 1):
        if best * 2 > budget:
            break
        best = min(best, _seconds(fn))
    return best


def naive_ensemble(net: MLP, cfg: DropoutConfig, X: np.ndarray, masks, log_probs):
    """The reference loop: per mask, its multipliers and one full forward pass.

    Written as DESIGN.md defines the statistics, the way a course's forward
    pass would be extended: running sums of the outputs, their squares, and
    the log-outputs for the NWGM (``log y``; for sigmoid also ``log(1 - y)``).

    Parameters
    ----------
    masks : ndarray of bool, shape (n_masks, n_dropped_units)
    log_probs : ndarray, shape (n_masks,)

    Returns
    -------
    mean, variance : ndarray, shape (n_examples, n_out)
        Probability-weighted over the given masks (not normalised).
    nwgm : ndarray, shape (n_examples, n_out), or None for an identity output
    """
    output = OUTPUT_FUNCTIONS[net.output]
    slices = dropped_units(net, cfg)
    scale = {l: 1.0 / cfg.layer_keep_prob(l) if cfg.scheme == "inverted" else 1.0
             for l in slices}
    s1 = s2 = slog = slog1 = 0.0
    for mask, lp in zip(masks, log_probs):
        mult = {l: mask[sl] * scale[l] for l, sl in slices.items()}
        z = forward(net, X, mult, logits=True)
        y = output(z)
        w = math.exp(lp)
        s1, s2 = s1 + w * y, s2 + w * y * y
        if net.output == "softmax":
            slog = slog + w * log_softmax(z)
        elif net.output == "sigmoid":
            slog, slog1 = slog - w * np.logaddexp(0.0, -z), slog1 - w * np.logaddexp(0.0, z)
    nwgm = None
    if net.output == "softmax":
        nwgm = softmax(slog)
    elif net.output == "sigmoid":
        nwgm = np.exp(slog - np.logaddexp(slog, slog1))
    return s1, s2 - s1 * s1, nwgm


def naive_seconds_per_subnetwork(net, cfg, X, budget: float) -> tuple[float, int, bool]:
    """Time the naive loop for about ``budget`` seconds.

    Returns
    -------
    seconds_per_subnetwork : float
    n_timed : int
        Masks actually run.
    extrapolated : bool
        True when fewer than all masks were run.
    """
    q = unit_keep_probs(net, cfg)
    total = 2 ** int(np.count_nonzero(q < 1))

    def run(masks, log_probs):
        return _seconds(lambda: naive_ensemble(net, cfg, X, masks, log_probs))

    masks, log_probs = next(enumerate_masks(q, min(total, 16)))
    n = int(min(total, max(16, budget / (run(masks, log_probs) / len(masks)))))
    done, elapsed = 0, 0.0
    for masks, log_probs in enumerate_masks(q, min(n, 4096)):
        take = min(len(masks), n - done)
        elapsed += run(masks[:take], log_probs[:take])
        done += take
        if done >= n:
            break
    return elapsed / done, done, done < total


def package_run(net: MLP, cfg: DropoutConfig, X: np.ndarray, statistics: str,
                n_threads: int | None = None):
    """The package's path for one set of statistics (what a user would call).

    ``n_threads=1`` runs the chunks on one thread with BLAS at its default
    thread count: the alternative to threads over chunks, for comparison.
    """
    if statistics in ("all", "identity") and n_threads is None:
        return exact_ensemble(net, cfg, X, max_subnetworks=2**30)
    return shortcut_moments(net, cfg, X, shortcut_plan(net, cfg), n_threads=n_threads,
                            limit_blas=n_threads is None,
                            arithmetic=statistics in ("all", "mean+nwgm"),
                            variance=statistics in ("all", "identity"))


def measure_package(net, cfg, X, statistics, c_run=None):
    """Seconds of the best clean run, the peak of traced allocations (MB) of a
    second, and the best time of ``c_run`` (None without it), interleaved with
    the package's runs so that both see the same machine."""
    seconds, c_seconds = math.inf, None
    for _ in range(3):
        seconds = min(seconds, _seconds(lambda: package_run(net, cfg, X, statistics)))
        if c_run is not None:
            c = _seconds(c_run)
            c_seconds = c if c_seconds is None else min(c_seconds, c)
        if seconds > 2.5:
            break
    tracemalloc.start()
    try:
        package_run(net, cfg, X, statistics)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seconds, peak / 2**20, c_seconds


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def host_description() -> str:
    """The host as the bench table names it: CPU model, family/model numbers, vector ISA.

    The vector ISA is the kernels' (``LANES``: AVX-512 for 8 doubles, AVX2 or
    AVX for 4, SSE2 for 2), so that rows of one host kind group together; where
    numba is told to compile for another CPU (``NUMBA_CPU_FEATURES``), the name says
    so (the C reference is then built for ``NUMBA_CPU_NAME`` too).
    """
    from .kernels._simd import LANES

    info = {}
    try:
        for line in open("/proc/cpuinfo"):
            name, _, value = line.partition(":")
            info.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    model = info.get("model name") or (os.uname().machine if hasattr(os, "uname") else "?")
    if "cpu family" in info and "model" in info:
        model += f" (family {info['cpu family']} model {info['model']})"
    flags = set(info.get("flags", "").split())
    isa = {8: "AVX-512", 4: "AVX2" if "avx2" in flags else "AVX"}.get(LANES, "SSE2")
    from numba.core import config

    if config.CPU_FEATURES is not None:  # numba told to compile for another CPU
        isa += f" (numba and C compiling for {config.CPU_NAME or 'the host'})"
    return f"{model}, {isa}"


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none): the bench records it
    per case, as other processes on a shared host slow every timing."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


def merge_hosts(new: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """``new`` with the rows of ``previous`` measured on other hosts (column ``host``)
    kept before it, so that one CSV holds the table of every host kind measured."""
    if previous is None or previous.empty or "host" not in previous:
        return new
    other = previous[~previous["host"].isin(set(new["host"]))]
    if other.empty:
        return new
    return pd.concat([other, new], ignore_index=True)[list(new.columns)]


def run_bench(quick: bool = False, *, naive_budget: float | None = None, echo=None,
              rng=0) -> tuple[pd.DataFrame, dict]:
    """Run every case; return the tidy table and its parameters.

    Parameters
    ----------
    quick : bool
        Small networks and 64 inputs: a smoke run of a few seconds.
    naive_budget : float, optional
        Seconds of naive loop timed per case (default 3, 0.3 when quick).
    echo : callable, optional
        Called with one formatted line per measured row.
    rng : int
        Seed of the networks and inputs.

    Returns
    -------
    DataFrame
        One row per (case, network, statistics, method); identifier columns
        first, then the measurements.
    dict
        Parameters and the machine (BLAS, threads, peaks).
    """
    from . import kernels

    n_examples = 64 if quick else 256
    naive_budget = ((0.3 if quick else 3.0) if naive_budget is None
                    else check_real(naive_budget, "naive_budget", low=0, low_open=True))
    blas, blas_threads = blas_info()
    peak = matmul_gflops(512 if quick else 1024)
    peaks = roofline.machine_peaks(peak, quick=quick)
    threads = default_threads()
    lib, c_message = reference_c.build()
    host = host_description()
    if kernels.backend() == "numba":  # calibrates here (once per host) unless cached or set
        kernel_shape.current(work=kernel_shape.CALIBRATE_WORK)
    shape_line = kernel_shape.describe() if kernels.backend() == "numba" else ""
    if echo is not None:
        echo(f"host: {host}, {os.cpu_count()} logical CPU(s), 1-minute load average "
             f"{load_average():.2f}")
        if shape_line:
            echo(shape_line)
        echo(f"BLAS: {blas}, {blas_threads} thread(s) by default; the package runs "
             f"{threads} thread(s) over chunks with 1 BLAS thread each; kernels: "
             f"{kernels.backend()}; float64 matmul peak {peak:.1f} GFLOP/s; "
             + roofline.describe(peaks))
        echo(c_message)
    rows, naive_cache, package_cache = [], {}, {}
    for case in default_cases(quick):
        # One network and input per shape, so that repeated shapes share them.
        gen = np.random.default_rng([rng, *case.sizes])
        net = MLP.random(case.sizes, "relu", case.output, rng=gen)
        X = gen.normal(size=(n_examples, case.sizes[0]))
        cfg = DropoutConfig(0.5, layers=list(case.layers), scheme="inverted")
        n_sub = 2**case.n_dropped
        flops = 2 * sum(a * b for a, b in zip(case.sizes[:-1], case.sizes[1:]))
        work = n_sub * n_examples
        load = load_average()
        ident = {"case": case.case, "architecture": net.architecture, "output": case.output,
                 "statistics": case.statistics, "n_dropped": case.n_dropped,
                 "n_subnetworks": n_sub, "n_examples": n_examples}
        key = (case.sizes, case.output, case.layers)
        if key not in naive_cache:
            naive_cache[key] = naive_seconds_per_subnetwork(net, cfg, X, naive_budget)
        per, n_timed, extrapolated = naive_cache[key]
        naive_s = per * n_sub
        key = (case.sizes, case.output, case.layers, case.statistics)
        c_run = reference_c.runner(lib, case, net, cfg, X)
        if key not in package_cache:  # the sweep repeats two networks of case b
            package_run(net, cfg, X[:8], case.statistics)  # warm-up: compile or load kernels
            package_cache[key] = measure_package(net, cfg, X, case.statistics, c_run)
        seconds, peak_mb, c_seconds = package_cache[key]
        counts = roofline.kernel_counts(case, net, cfg, n_examples)
        # The C softmax kernel computes the mean and NWGM only: its own counts.
        c_counts = (roofline.kernel_counts(replace(case, statistics="mean+nwgm"), net, cfg,
                                           n_examples) if case.case == "b" else None)
        runs = [("naive", naive_s, n_timed, extrapolated, np.nan),
                ("package", seconds, n_sub, False, peak_mb)]
        if case.compare_threads:
            one = _best_seconds(partial(package_run, net, cfg, X, case.statistics, n_threads=1))
            runs.append(("package_1thread", one, n_sub, False, np.nan))
        if c_seconds is not None:
            runs.append(("c_reference", c_seconds, n_sub, False, np.nan))
        for method, s, timed, extra, mem in runs:
            package = method.startswith("package")
            own = counts if package else c_counts if method == "c_reference" else None
            use = roofline.utilisation(own, s, peaks) if own is not None else {}
            limit = max(use, key=use.get) if use else ""
            rows.append({**ident, "method": method, "seconds": s, "masks_timed": timed,
                         "extrapolated": extra,
                         "subnet_examples_per_s": work / s,
                         "effective_gflops": flops * work / s / 1e9,
                         "kernel_gflops": own["flops"] / s / 1e9 if own is not None else np.nan,
                         "limit": limit,
                         "limit_share": use.get(limit, np.nan),
                         # exps run on the multiply-add pipes: their shares add up
                         "fma_exp_share": (use["fma"] + use["exp"] if use else np.nan),
                         "matmul_peak_gflops": peak,
                         "speedup_vs_naive": naive_s / s,
                         "vs_c": (s / c_seconds if package and c_seconds is not None
                                  else np.nan),
                         "peak_mb": mem, "max_rss_mb": _max_rss_mb(),
                         "blas": blas,
                         "blas_threads": 1 if method == "package" else blas_threads,
                         "threads": (threads if method in ("package", "c_reference") else 1),
                         "host": host, "load_1min": load,
                         "kernel_shape": (str(kernel_shape.current()) if package
                                          and kernels.backend() == "numba" else "")})
            if echo is not None:
                echo(format_row(rows[-1]))
        if echo is not None and counts["flops"]:
            echo("    limit: " + roofline.limit_line(counts, seconds, peaks))
            if c_counts is not None and c_seconds is not None:
                echo("    C's limit (its mean and NWGM): "
                     + roofline.limit_line(c_counts, c_seconds, peaks))
    params = {"quick": quick, "n_examples": n_examples, "naive_budget": naive_budget,
              "rng": rng, "keep_prob": 0.5, "scheme": "inverted", "blas": blas,
              "blas_threads": blas_threads, "threads": threads, "matmul_peak_gflops": peak,
              "kernels": kernels.backend(), "c_reference": c_message, "host": host,
              "kernel_shape": shape_line, "load_1min_end": load_average(),
              **{f"peak_{k}": v for k, v in peaks.items()}}
    return pd.DataFrame(rows), params


def format_row(row: dict) -> str:
    """One printed line of the benchmark table."""
    naive = row["method"] != "package"
    time_s = f"{row['seconds']:9.3g} s" + ("*" if row["extrapolated"] else " ")
    mem = "" if naive else f"  peak {row['peak_mb']:6.1f} MB"
    if not math.isnan(row["vs_c"]):
        mem += f"  {row['vs_c']:.2f}x C"
    if not math.isnan(row["kernel_gflops"]):
        mem += f"  kernel {row['kernel_gflops']:.3g} GFLOP/s"
    return (f"({row['case']}) {row['architecture']:>10} {row['output']:>8} "
            f"{row['statistics']:>9} 2^{row['n_dropped']:<2} {row['method']:>15}: {time_s} "
            f"{row['subnet_examples_per_s']:9.3g} subnet*ex/s "
            f"{row['effective_gflops']:8.3g} naive-equivalent GFLOP/s "
            f"({row['effective_gflops'] / row['matmul_peak_gflops']:7.2%} of matmul peak)"
            + ("" if row["method"] in ("naive", "c_reference")
               else f"  x{row['speedup_vs_naive']:,.0f} vs naive")
            + mem)


FOOTNOTE = ("* naive loop timed on the first masks only and extrapolated per subnetwork. "
            "Naive-equivalent GFLOP/s: the naive loop's flops over the time taken (above "
            "the matmul peak, algebra replaced arithmetic). Package times: best of up to 3. "
            "Threads: naive and package_1thread = 1 Python thread, default BLAS threads; "
            "package = threads over chunks, 1 BLAS thread each; c_reference = OpenMP "
            "threads. Kernel GFLOP/s: the package algorithm's own operation count. "
            "Limit: the resource nearest its measured peak (roofline estimate); "
            "fma_exp_share (CSV): the fma and exp shares added, as the vector exp runs on the "
            "multiply-add pipes.")


def save_figure(df: pd.DataFrame, path, *, dpi: int = 130):
    """Draw the registered ``bench`` figure from ``df`` to ``path`` (written atomically)."""
    from .plots import save_figure as write_png
    from .tables import BENCH

    return write_png(BENCH.figures["bench"](df), path, dpi=dpi)


def warm_up() -> float:
    """Seconds to run every compiled path once on tiny networks.

    In a process whose numba cache (``NUMBA_CACHE_DIR``) is empty this is
    the first-call compile cost; with the cache filled, its load cost.
    """
    start = time.perf_counter()
    X = np.random.default_rng(0).normal(size=(3, 2))
    for output, layers in (("softmax", [1, 2]), ("sigmoid", [1, 2]), ("identity", [1, 2]),
                           ("softmax", [0, 1])):
        net = MLP.random((2, 3, 3, 2), "relu", output, rng=0)
        cfg = DropoutConfig(0.5, layers=layers)
        exact_ensemble(net, cfg, X)
        if output == "softmax" and layers == [1, 2]:
            shortcut_moments(net, cfg, X, shortcut_plan(net, cfg), arithmetic=False)
    return time.perf_counter() - start
