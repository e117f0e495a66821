"""Faults, hostile files and impossible requests (issue 22): refused cheaply, named."""

import io
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npformat

from ensemble_study import MLP, budget


def _hostile_npy(path, shape, data=b"") -> None:
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                          "shape": shape})
    path.write_bytes(buf.getvalue() + data)


def _saved(tmp_path):
    net = MLP.random((2, 3, 1), "tanh", "sigmoid", rng=0)
    return net, net.save(tmp_path / "net.npz")


def _add_member(src, dst, name, payload: bytes):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        zout.writestr(name, payload)


def test_budget_env_override_and_refusal(monkeypatch):
    monkeypatch.setenv(budget.BUDGET_ENV, "1M")
    assert budget.memory_budget() == 2**20
    with pytest.raises(ValueError, match=r"grid would need 2.0 MiB.*budget of 1.0 MiB"
                                         r".*ENSEMBLE_STUDY_MEMORY_BUDGET.*use fewer"):
        budget.check_bytes(2**21, "grid", "use fewer")
    budget.check_bytes(2**19, "grid")
    monkeypatch.setenv(budget.BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match="ENSEMBLE_STUDY_MEMORY_BUDGET must be a positive"):
        budget.memory_budget()


def test_npy_declaring_a_huge_shape_is_refused_from_its_header(tmp_path):
    path = tmp_path / "huge.npy"
    _hostile_npy(path, (2**40, 8))  # 64 TiB declared, a few bytes held
    with pytest.raises(ValueError, match=r"--inputs .*huge.npy.*would need 64.0 TiB"):
        budget.check_npy(path, "--inputs")


def test_truncated_npy_is_named(tmp_path, monkeypatch):
    path = tmp_path / "short.npy"
    _hostile_npy(path, (10, 4), data=b"\0" * 80)
    with pytest.raises(ValueError, match=r"short.npy: truncated: .*\(10, 4\).*320 bytes.*80"):
        budget.load_npy(path, "--inputs")


def test_npy_round_trip(tmp_path):
    X = np.arange(12.0).reshape(3, 4)
    np.save(tmp_path / "x.npy", X)
    assert np.array_equal(budget.load_npy(tmp_path / "x.npy"), X)


def test_load_refuses_an_oversized_unexpected_member_before_inflating(tmp_path):
    net, path = _saved(tmp_path)
    hostile = tmp_path / "hostile.npz"
    # A member whose zip entry claims 4 GiB would be refused from the directory alone;
    # here a small one with an unexpected name: refused without reading its data.
    _add_member(path, hostile, "junk.npy", b"x" * 1000)
    with pytest.raises(ValueError, match=r"hostile.npz: unexpected member 'junk.npy'"):
        MLP.load(hostile)


def test_load_refuses_a_member_whose_header_declares_a_huge_shape(tmp_path):
    net, path = _saved(tmp_path)
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                          "shape": (2**40, 7)})
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp_path / "big.npz", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info.filename, buf.getvalue() if info.filename == "W0.npy" else data)
    with pytest.raises(ValueError, match=r"big.npz: member 'W0.npy' declares shape "
                                         r"\(1099511627776, 7\).*truncated or damaged"):
        MLP.load(tmp_path / "big.npz")


def test_load_names_a_crc_failure(tmp_path):
    net, path = _saved(tmp_path)
    raw = bytearray(path.read_bytes())
    # Flip one byte of W0's stored data (stored uncompressed by np.savez): CRC fails.
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("W0.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + info.file_size - 1] ^= 0xFF
    bad = tmp_path / "crc.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"crc.npz: damaged"):
        MLP.load(bad)


def test_load_still_reads_a_good_file_and_a_meta_member(tmp_path):
    net, path = _saved(tmp_path)
    back = MLP.load(path)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, back.weights))
    buf = io.BytesIO()
    np.save(buf, np.array('{"dropout": null}'))
    _add_member(path, tmp_path / "meta.npz", "meta.npy", buf.getvalue())
    with zipfile.ZipFile(tmp_path / "meta.npz") as zf:
        assert "meta.npy" in zf.namelist()
    budget.check_npz_members(tmp_path / "meta.npz", __import__(
        "ensemble_study.network", fromlist=["_SAVED_MEMBERS"])._SAVED_MEMBERS)


def test_evaluate_refuses_an_npy_declaring_a_huge_shape(tmp_path):
    from click.testing import CliRunner

    from ensemble_study.cli import main

    net, path = _saved(tmp_path)
    _hostile_npy(tmp_path / "x.npy", (2**40, 2))
    result = CliRunner().invoke(main, ["evaluate", "--net", str(path), "--inputs",
                                       str(tmp_path / "x.npy"), "--keep-prob", "0.5",
                                       "--out", str(tmp_path / "e.csv")])
    assert result.exit_code == 2, result.output
    assert "--inputs" in result.output and "16.0 TiB" in result.output
    assert "Traceback" not in result.output


def test_jobs_capped_at_usable_cores_unless_insisted(monkeypatch, capsys):
    from ensemble_study.executor import Execution, available_cores

    cores = available_cores()
    monkeypatch.delenv("ENSEMBLE_STUDY_OVERSUBSCRIBE", raising=False)
    assert Execution(jobs=cores + 4).n_workers == cores
    assert "capped" in capsys.readouterr().err
    monkeypatch.setenv("ENSEMBLE_STUDY_OVERSUBSCRIBE", "1")
    assert Execution(jobs=cores + 4).n_workers == cores + 4
    assert Execution(jobs=cores + 4, scheduler="tcp://h:1").n_workers == cores + 4
