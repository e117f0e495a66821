"""The 4-lane (AVX2) build of the compiled kernels, tested on an AVX-512 host.

The kernels' vector width follows the features numba compiles for
(``_simd.host_lanes``), so on an AVX-512 host the suite runs the 8-lane build
only. This test asks numba for Haswell code (``NUMBA_CPU_NAME`` and
``NUMBA_CPU_FEATURES``, numba's own switches; its cache is keyed by them, and
this one lives in a temporary folder) and, in that process, checks that the
kernels are 4 lanes wide with no 512-bit instruction, then reruns the kernel
tests on that build: brute force, the numpy reference, every shape.
"""

import os
import subprocess
import sys
from pathlib import Path

import llvmlite.binding as llvm
import pytest

ROOT = Path(__file__).resolve().parents[1]
# LLVM's "haswell": AVX2 and FMA, no AVX-512
HASWELL = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fsgsbase,+fxsr,"
           "+invpcid,+lzcnt,+mmx,+movbe,+pclmul,+popcnt,+rdrnd,+sahf,+sse,+sse2,+sse3,"
           "+sse4.1,+sse4.2,+ssse3,+xsave,+xsaveopt")
KERNEL_TESTS = ["tests/test_compiled.py", "tests/test_kernels.py", "tests/test_kernel_shape.py",
                "tests/test_laplace_kernel.py"]
CHECK_WIDTH = """
import numpy as np
from ensemble_study.kernels import compiled
from ensemble_study.kernels._simd import LANES
rng = np.random.default_rng(0)
A, sW, b = rng.normal(size=(3, 9)), rng.normal(size=(9, 4)), np.zeros(4)
compiled._softmax_pairs(A, sW, b, 0.4, True, np.empty((3, 4)), np.empty((3, 4)))
asm = "".join(text for name in dir(compiled) for d in [getattr(compiled, name)]
              if hasattr(d, "inspect_asm") and d.signatures for text in d.inspect_asm().values())
print(LANES, asm.count("ymm"), asm.count("zmm"))
"""


@pytest.mark.slow
def test_the_avx2_build_passes_the_kernel_tests(tmp_path):
    if not llvm.get_host_cpu_features().get("avx512f"):
        pytest.skip("this host has no AVX-512: the suite already runs the 4-lane kernels")
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": HASWELL,
           "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("ENSEMBLE_STUDY_KERNELS", None)
    width = subprocess.run([sys.executable, "-c", CHECK_WIDTH], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert width.returncode == 0, width.stderr[-2000:]
    lanes, ymm, zmm = map(int, width.stdout.split())
    assert (lanes, zmm) == (4, 0) and ymm > 0  # compiled fresh here, so inspectable
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-m", "not slow", *KERNEL_TESTS], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-4000:]
    assert " passed" in run.stdout.splitlines()[-1]
