"""Every environmental failure a one-line message (issue 22, item 5).

A read-only or full output folder (a cell store included) and Ctrl-C end a
command with one line naming the file (or saying how to resume), never a
traceback. Read-only folders and full disks are real: a read-only bind
mount or a small tmpfs where the test may mount one (root), a folder
without write permission otherwise; skipped with a message when neither
is possible.
"""

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble_study import cli
from ensemble_study.results import WriteError, save_result

SWEEP = ["sweep", "--width", "2", "--n-networks", "2", "--n-inputs", "3", "--keep-prob", "0.5",
         "--activation", "relu", "--jobs", "1"]


def _mount(*args) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made read-only: a read-only bind mount (root), or mode 0555."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if not (_mount("--bind", str(folder), str(folder))
            and _mount("-o", "remount,bind,ro", str(folder))):
        _mount_cleanup(folder)
        pytest.skip("running as root and cannot mount a read-only bind mount here")
    try:
        yield
    finally:
        _mount_cleanup(folder)


def _mount_cleanup(folder):
    subprocess.run(["umount", str(folder)], capture_output=True)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "48k"):
    """A tmpfs of ``size`` at ``folder`` (skipped where none can be mounted)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)):
        pytest.skip("cannot mount a small tmpfs here (needs root): no real full disk to test")
    try:
        yield
    finally:
        _mount_cleanup(folder)


def _one_line_error(result, *names):
    assert result.exit_code != 0
    text = result.output
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, text
    for name in names:
        assert name in errors[0], errors[0]
    assert not isinstance(result.exception, OSError) or result.exit_code in (1, 2), text


@pytest.mark.parametrize("study", ["sweep", "srivastava", "approximations", "reproduce"])
def test_a_read_only_cell_store_is_refused_before_any_work(study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cells = tmp_path / "quick" / "results" / ".cells"
    with read_only(cells):
        result = CliRunner().invoke(cli.main, [study, "--quick", "--jobs", "1"])
    _one_line_error(result, ".cells")
    assert result.exit_code == 2  # a usage error, before any cell ran
    assert not (tmp_path / "quick" / "results" / f"{study}.csv").exists()


def test_a_read_only_output_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    for study in ("srivastava", "approximations"):
        with read_only(out):
            result = CliRunner().invoke(cli.main, [study, "--quick", "--jobs", "1",
                                                   "--out", "out/x.csv"])
        _one_line_error(result, "out")
        assert result.exit_code == 2


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    disk = tmp_path / "disk"
    monkeypatch.chdir(tmp_path)
    with small_disk(disk):
        (disk / "filler").write_bytes(b"\0" * 40_000)
        result = CliRunner().invoke(cli.main, [*SWEEP, "--out", "disk/s.csv"])
        _one_line_error(result, "No space left on device", "disk/")
        leftovers = [p.name for p in disk.rglob("*.tmp")]
        assert leftovers == [] and not (disk / "s.csv").exists()


def test_a_full_disk_in_save_result_keeps_the_old_pair(tmp_path):
    disk = tmp_path / "disk"
    old = pd.DataFrame({"a": [1, 2]})
    with small_disk(disk):
        save_result(old, disk / "r.csv", {})
        before = (disk / "r.csv").read_bytes(), (disk / "r.json").read_bytes()
        big = pd.DataFrame({"a": range(20_000)})
        with pytest.raises(WriteError, match=r"cannot write .*disk/r\.(csv|json).*ENOSPC") as info:
            save_result(big, disk / "r.csv", {})
        assert info.value.errno == errno.ENOSPC and "\n" not in str(info.value)
        assert ((disk / "r.csv").read_bytes(), (disk / "r.json").read_bytes()) == before
        assert sorted(p.name for p in disk.iterdir()) == ["r.csv", "r.json"]


def test_environmental_oserror_anywhere_in_a_command_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied", "some/file.csv")

    monkeypatch.setattr("ensemble_study.cli.study_commands.save_result", full)
    result = CliRunner().invoke(cli.main, [*SWEEP, "--out", "s.csv"])
    _one_line_error(result, "some/file.csv", "Permission denied")


# --- Ctrl-C ------------------------------------------------------------------------------

def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout.split()
    found = {int(p) for p in out}
    for child in list(found):
        found |= _children(child)
    return found


def _gone(pids, timeout=10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if _exists(p)}
        time.sleep(0.1)
    return alive


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("where", [["--jobs", "1"], ["--jobs", "2"],
                                   ["--jobs", "2", "--scheduler", "local"]])
def test_ctrl_c_ends_cleanly_and_leaves_nothing_running(where, tmp_path):
    if "local" in where:
        pytest.importorskip("distributed", reason="needs the [dask] extra")
    env = dict(os.environ, ENSEMBLE_STUDY_OVERSUBSCRIBE="1")
    args = [sys.executable, "-c", "from ensemble_study.cli import main; main()", "sweep",
            "--quick", *where, "--width", "6", "--n-networks", "6"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until some cell is stored
        if list(tmp_path.glob("quick/results/.cells/*/cell-*.csv")):
            break
        time.sleep(0.05)
    family = _children(proc.pid) | {proc.pid}
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    assert len([line for line in err.splitlines() if "interrupted" in line]) == 1, err
    assert _gone(family) == set()
    assert list(tmp_path.rglob("*.tmp")) == []


# --- a lost Dask scheduler ---------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_lost_scheduler_is_one_line_and_the_stored_cells_resume(tmp_path):
    pytest.importorskip("distributed", reason="needs the [dask] extra")
    address = f"tcp://127.0.0.1:{_free_port()}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", address.rsplit(":")[-1],
                                  "--dashboard-address", ":0"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                               "--nthreads", "1", "--nworkers", "1", "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        args = [sys.executable, "-c", "from ensemble_study.cli import main; main()", "sweep",
                "--quick", "--width", "6", "--n-networks", "6", "--scheduler", address]
        time.sleep(5)
        proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("quick/results/.cells/*/cell-*.csv")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        scheduler.kill()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        assert "Traceback" not in err, err
        errors = [line for line in err.splitlines() if line.startswith("Error")]
        assert len(errors) == 1 and "lost the dask scheduler" in errors[0], err
        stored = len(list(tmp_path.glob("quick/results/.cells/*/cell-*.csv")))
        assert stored >= 1
    finally:
        for p in (scheduler, worker):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)
