"""Memory bounded by the chunk size whatever the last dropped layer's width (issue 22, item 1).

Measured as the peak resident set of a fresh process (``ru_maxrss``) beyond
its peak before the call: before the fix, ``exact_ensemble`` with a 24-unit
last dropped layer took 368 MB more (1.1 GB at 26, 4.3 GB at 28) whatever
``chunk_size``; the compiled kernels held two arrays of ``2**width`` doubles.
"""

import subprocess
import sys

import numpy as np
import pytest

from ensemble_study import MLP, DropoutConfig
from ensemble_study.kernels import backend, reference, shortcut_plan

PROBE = """
import resource, sys
import numpy as np
from ensemble_study import MLP, DropoutConfig, exact_ensemble, sample_ensemble
width, output, what = int(sys.argv[1]), sys.argv[2], sys.argv[3]
net = MLP.random([4, width, 1 if output == "sigmoid" else 3], "relu", output=output, rng=0)
cfg = DropoutConfig(keep_prob=0.5, layers=(0, 1))
X = np.random.default_rng(1).normal(size=(2, 4))
# Compile (or load from the cache) on a small network first: compilation is not the kernels'.
small = MLP.random([4, 6, net.sizes[-1]], "relu", output=output, rng=0)
exact_ensemble(small, cfg, X)
sample_ensemble(small, cfg, X, 4, rng=0, estimator="rb_mc")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if what == "exact":
    r = exact_ensemble(net, cfg, X, max_subnetworks=2**40, chunk_size=1024)
else:
    r = sample_ensemble(net, cfg, X, 2, rng=0, estimator="rb_mc", chunk_size=1)
assert np.isfinite(r.mean).all() and np.allclose(r.mean.sum(axis=1), 1) or r.mean.shape[1] == 1
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.slow
@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
@pytest.mark.parametrize("what", ["exact", "rb_mc"])
def test_a_wide_last_dropped_layer_stays_within_the_chunk_bound(what, output):
    grown = int(subprocess.run([sys.executable, "-c", PROBE, "24", output, what],
                               capture_output=True, text=True, check=True).stdout.split()[-1])
    # The chunked kernels hold tables of 2**12 rows and tiles of 2**19 doubles:
    # tens of MB. Two arrays of 2**24 doubles would be 256 MiB.
    assert grown < 100 * 2**20, f"{what} grew by {grown / 2**20:.0f} MiB"


def test_wide_inner_blocks_go_to_the_chunked_kernels_with_the_same_numbers(monkeypatch):
    if backend() != "numba":
        pytest.skip("the compiled kernels are not in use")
    from ensemble_study.kernels import compiled

    net = MLP.random([3, 8, 3], "tanh", output="softmax", rng=2)
    cfg = DropoutConfig(keep_prob=0.6, layers=(0, 1))
    plan = shortcut_plan(net, cfg)
    X = np.random.default_rng(0).normal(size=(4, 3))
    masks = np.array([[1, 0, 1], [1, 1, 1]], dtype=np.uint8)
    direct = compiled.conditional_moments(net, plan, X, masks)
    calls = []
    real = reference.conditional_moments

    def spy(*args, **kwargs):
        calls.append(kwargs.get("pairs_per_block"))
        return real(*args, **kwargs)

    monkeypatch.setattr(compiled, "COMPILED_MAX_INNER", 2**4)
    monkeypatch.setattr(compiled, "_reference_conditional_moments", spy)
    chunked = compiled.conditional_moments(net, plan, X, masks)
    assert calls == [1]
    for a, b in zip(direct, chunked):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
