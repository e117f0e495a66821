"""The bench's CSV holds one table per host: merging runs and the report block."""

from pathlib import Path

import numpy as np

from ensemble_study.bench import host_description, merge_hosts
from ensemble_study.kernels._simd import LANES
from ensemble_study.results import load_result
from ensemble_study.tables import bench_table

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "bench.csv"


def _two_hosts():
    old = load_result(COMMITTED)
    old = old[old["host"] == old["host"].iloc[0]].reset_index(drop=True)  # one host's rows
    new = old.copy()
    new["host"] = "Test CPU, AVX-512"
    new["load_1min"] = np.linspace(1.0, 3.0, len(new))
    new["kernel_shape"] = np.where(new["method"] == "package", "tile=1,fused=1", "")
    new["seconds"] = new["seconds"] * 2
    return old, new


def test_merge_keeps_other_hosts_and_replaces_this_one():
    old, new = _two_hosts()
    merged = merge_hosts(new, old)
    assert len(merged) == len(old) + len(new)
    assert list(merged["host"].unique()) == [old["host"].iloc[0], "Test CPU, AVX-512"]
    again = merge_hosts(new, merged)  # a second run on the same host replaces its rows
    assert len(again) == len(merged)
    np.testing.assert_array_equal(again["seconds"].to_numpy(), merged["seconds"].to_numpy())
    assert merge_hosts(new, None) is new


def test_block_has_one_table_per_host_with_its_load_and_shape():
    old, new = _two_hosts()
    text = bench_table(merge_hosts(new, old))
    assert text.count("| case | network |") == 2
    assert f"**{old['host'].iloc[0]}**: load not recorded" in text
    assert "**Test CPU, AVX-512**: 1-minute load average 1.0 to 3.0" in text
    assert "softmax kernel shape tile=1,fused=1" in text
    # the package / C column is each row's own, in each host's table
    first, second = text.split("**Test CPU, AVX-512**")
    assert first.count("1.60 |") == second.count("1.60 |") >= 1


def test_host_names_the_kernels_vector_isa():
    isa = {8: "AVX-512", 4: "AVX"}.get(LANES, "SSE2")
    assert isa in host_description()


def test_host_says_when_numba_compiles_for_another_cpu(monkeypatch):
    from numba.core import config

    monkeypatch.setattr(config, "CPU_FEATURES", None)  # the host's own
    assert "numba compiling for" not in host_description()
    monkeypatch.setattr(config, "CPU_NAME", "haswell")
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx,+avx2,+fma")
    assert host_description().endswith("(numba and C compiling for haswell)")
