"""The benchmark's hand-written C reference kernels: compile, load, run.

``benchmarks/reference_kernels.c`` (in the source tree) is compiled at run
time with ``gcc -O3 -march=native -fopenmp`` and loaded with ctypes, so
the ratios package / C are measured in one run on one machine. Without a
compiler or the source, the C rows are skipped with a message.

The softmax kernel follows the package's order of operations (four
independent chains of fused multiply-adds per reciprocal block, the same
two-class register-blocked contraction), at the widest vector the host
has (AVX-512 when ``-march=native`` finds it, else AVX2), so the ratio
package / C compares like with like.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .kernels import default_threads, shortcut_plan
from .kernels.compiled import _last_hidden
from .masks import enumerate_masks

SOURCE = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_kernels.c"
FLAGS = ("-O3", "-march=native", "-ffp-contract=fast", "-fopenmp", "-shared", "-fPIC")
_D = ctypes.POINTER(ctypes.c_double)


def build(defines: tuple = ()):
    """Compile and load the C kernels: ``(library or None, message)``.

    ``defines``: macro names passed as ``-D`` (the source's ablation switches,
    for ``scripts/softmax_ablation.py``; none in the bench)."""
    compiler = shutil.which("gcc")
    if compiler is None:
        return None, "C reference skipped: no gcc on PATH"
    if not SOURCE.exists():
        return None, f"C reference skipped: {SOURCE} not found (run from a source checkout)"
    out = Path(tempfile.mkdtemp(prefix="ensemble_study_c_")) / "reference_kernels.so"
    flags = [f"-march={target_cpu()}" if f == "-march=native" else f for f in FLAGS]
    cmd = [compiler, *flags, *(f"-D{d}" for d in defines), "-o", str(out), str(SOURCE), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"C reference skipped: {' '.join(cmd)} failed: {done.stderr.strip()[:300]}"
    lib = ctypes.CDLL(str(out))
    lib.set_threads(default_threads())
    lanes = lib.vector_lanes()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True)
    message = (f"C reference: {' '.join(cmd[1:])} ({version.stdout.splitlines()[0]}), "
               f"{lanes} doubles per vector, {default_threads()} OpenMP thread(s)")
    if lanes < host_lanes() and target_cpu() == "native":
        message += f" (the host has {host_lanes()}-double vectors the compiler did not use)"
    return lib, message


def target_cpu() -> str:
    """The CPU the C kernels are built for: the one numba compiles the package's
    kernels for (``NUMBA_CPU_NAME``, e.g. ``haswell`` for AVX2 code on an AVX-512
    host), so that the ratio package / C stays like for like; else ``native``."""
    from numba.core import config

    name = config.CPU_NAME
    return name if name and name not in ("host", "generic") else "native"


def host_lanes() -> int:
    """Doubles per vector register from the host's CPU flags (8 AVX-512, 4 AVX, else 2)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return 2
    return 8 if "avx512f" in flags else 4 if "avx" in flags else 2


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(_D)


def runner(lib, case, net, cfg, X):
    """A no-argument callable running the C kernel of ``case``, or None.

    Cases ``b`` (softmax; C computes the mean and the NWGM over the last
    dropped layer for every outer mask, given the last hidden layer, which is
    computed here untimed) and ``c`` identity (the expected last hidden
    layer over the outer masks by Gray code).
    """
    if lib is None:
        return None
    plan = shortcut_plan(net, cfg)
    q = plan.inner_q if plan is not None else None
    if case.case == "b" and case.statistics in ("all", "mean+nwgm"):
        masks, _ = next(enumerate_masks(plan.outer_q, 2**30))
        A = np.ascontiguousarray(_last_hidden(net, plan, X, masks).reshape(-1, plan.n_inner))
        sW = np.ascontiguousarray(plan.inner_scale * net.weights[-1])
        b = np.ascontiguousarray(net.biases[-1])
        n_pairs, K = A.shape[0], sW.shape[1]
        mean, nwgm = np.empty((n_pairs, K)), np.empty((n_pairs, K))
        return lambda: lib.softmax_mean_nwgm(
            _ptr(A), _ptr(sW), _ptr(b), ctypes.c_double(q), n_pairs, plan.n_inner, K,
            _ptr(mean), _ptr(nwgm))
    if case.case == "c" and case.output == "identity" and len(net.hidden) == 2:
        H = np.ascontiguousarray(np.maximum(X @ net.weights[0] + net.biases[0], 0.0))
        W = np.ascontiguousarray(net.weights[1])
        b = np.ascontiguousarray(net.biases[1])
        outer_q = cfg.layer_keep_prob(1)
        scale = 1.0 / outer_q if cfg.scheme == "inverted" else 1.0
        out = np.empty((X.shape[0], W.shape[1]))
        return lambda: lib.gray_expected_hidden(
            _ptr(H), _ptr(W), _ptr(b), ctypes.c_double(outer_q), ctypes.c_double(scale),
            X.shape[0], W.shape[0], W.shape[1], _ptr(out))
    return None
