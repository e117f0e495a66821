"""Kill a small study at random points; the rerun is byte-identical and nothing is left (issue 22, item 7).

Each trial starts ``ensemble-study sweep`` (a 12-cell grid, one process or a
pool of two) in its own session, waits a random time drawn from a fixed
stream (between the start and the uninterrupted run's duration), then sends
SIGKILL to the main process alone (its pool's workers must notice by
themselves) or SIGINT to the whole group (a terminal's Ctrl-C), at a time
counted from the run's first line (its imports done). Then: every
process of the run is gone within 10 s; the rerun exits 0 and writes the
uninterrupted run's CSV to the byte; no temporary file is left anywhere.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ARGS = ["sweep", "--width", "3", "--n-networks", "3", "--n-inputs", "4", "--keep-prob", "0.5",
        "--activation", "relu", "--activation", "tanh", "--out", "r/s.csv"]
MAIN = "from ensemble_study.cli import main; main()"


def _run(folder: Path, jobs: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, ENSEMBLE_STUDY_OVERSUBSCRIBE="1", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", MAIN, *ARGS, "--jobs", jobs], cwd=folder,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


def _descendants(pid: int) -> set[int]:
    found = set()
    for child in subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                                text=True).stdout.split():
        found |= {int(child)} | _descendants(int(child))
    return found


def _session(sid: int) -> set[int]:
    """Every live (non-zombie) process of session ``sid`` (the run's own session)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True,
                         text=True).stdout
    return {int(pid) for pid, s, stat in (line.split() for line in out.splitlines())
            if int(s) == sid and not stat.startswith("Z")}


def _wait_gone(sid: int, timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := _session(sid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    proc = _run(folder, "1")
    proc.stderr.readline()  # "[sweep] 12 cells": the imports are done, the run starts
    start = time.monotonic()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return (folder / "r" / "s.csv").read_bytes(), time.monotonic() - start


TRIALS = [(sig, jobs) for sig in ("SIGKILL", "SIGINT") for jobs in ("1", "2")] * 2


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(len(TRIALS)))
def test_a_killed_study_reruns_to_the_same_bytes_and_leaves_nothing(trial, reference, tmp_path):
    sig, jobs = TRIALS[trial]
    want, duration = reference
    delay = np.random.default_rng([22, trial]).uniform(0.0, 1.2 * duration)
    proc = _run(tmp_path, jobs)
    # From the run's first line: a Ctrl-C during Python's own start-up (the
    # imports, before the package's code runs) is Python's traceback.
    proc.stderr.readline()
    time.sleep(delay)
    if proc.poll() is None:
        if sig == "SIGKILL":
            os.kill(proc.pid, signal.SIGKILL)  # the main process alone
        else:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
    out, err = proc.communicate(timeout=120)
    assert _wait_gone(proc.pid) == set(), f"left running after {sig} at {delay:.1f}s"
    if sig == "SIGINT" and proc.returncode != 0:
        assert "Traceback" not in err, err
        # 130: interrupted, one line; -SIGINT: the signal came while the
        # interpreter was exiting, after the run had written its table.
        assert proc.returncode == 130 or (proc.returncode == -signal.SIGINT
                                          and "wrote r/s.csv" in out), (proc.returncode, err)
    rerun = _run(tmp_path, jobs)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert (tmp_path / "r" / "s.csv").read_bytes() == want, f"{sig} at {delay:.1f}s"
    assert _wait_gone(rerun.pid) == set()
    assert sorted(str(p) for p in tmp_path.rglob("*.tmp")) == []
