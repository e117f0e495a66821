"""Writes are all-or-nothing: a result CSV and its sidecar, and every figure.

A failure is injected at each step of :func:`ensemble_study.results.save_result`
(the temporary files, their writes and fsyncs, the backup link, each rename)
and at each step the folder must hold either the old pair or the new pair,
byte for byte, and no temporary file. A writer killed between its two
renames (a subprocess that exits there) leaves a pair that ``load_result``
refuses, and the next write cleans up after it.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ensemble_study import plots, publish, results
from ensemble_study.results import load_params, load_result, save_result

OLD = pd.DataFrame({"study": ["s", "s"], "value": [1.0, 1 / 3]})
NEW = pd.DataFrame({"study": ["s", "s", "s"], "value": [2.0, np.pi, -0.0]})


def _pair(folder: Path, name: str = "x"):
    return ((folder / f"{name}.csv").read_bytes(), (folder / f"{name}.json").read_bytes())


def _expected(tmp_path, df, params) -> tuple:
    """The bytes of a clean write of ``df``: what an interrupted write must equal, if anything."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    save_result(df, folder / "x.csv", params)
    return _pair(folder)


def _fail_at(monkeypatch, owner, attr, n, exc):
    """Make the ``n``-th call of ``owner.attr`` raise ``exc`` (the others go through)."""
    real = getattr(owner, attr)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attr, wrapper, raising=False)


STEPS = [
    (pd.DataFrame, "to_csv", 1),       # formatting the CSV
    (results.json, "dumps", 1),        # the sidecar's text
    (os, "open", 1),                   # the folder's lock
    (os, "open", 2),                   # temporary CSV
    (os, "open", 3),                   # temporary sidecar
    (os, "open", 4),                   # backup name of the old CSV
    (os, "open", 5),                   # backup name of the old sidecar
    (os, "chmod", 1),
    (os, "chmod", 2),
    (results, "open", 1),              # writing the temporary CSV
    (results, "open", 2),              # writing the temporary sidecar
    (os, "link", 1),                   # backup of the old CSV (falls back to a copy)
    (os, "link", 2),
    (os, "replace", 1),                # CSV renamed into place
    (os, "replace", 2),                # sidecar renamed into place: the CSV is put back
    (os, "replace", 3),                # (no third rename unless rolling back)
]


def _step_id(step):
    owner, attr, n = step
    return f"{getattr(owner, '__name__', owner)}.{attr}#{n}"


@pytest.mark.parametrize("exc", [OSError("injected"), KeyboardInterrupt()],
                         ids=["OSError", "KeyboardInterrupt"])
@pytest.mark.parametrize("step", STEPS, ids=_step_id)
@pytest.mark.parametrize("had_old", [True, False], ids=["over-old-pair", "new-file"])
def test_interrupted_save_leaves_old_or_new_pair_and_no_temporary(step, exc, had_old, tmp_path,
                                                                   monkeypatch):
    old = _expected(tmp_path, OLD, {"seed": 0}) if had_old else None
    new = _expected(tmp_path, NEW, {"seed": 1})
    folder = tmp_path / "results"
    if had_old:
        save_result(OLD, folder / "x.csv", {"seed": 0})
    owner, attr, n = step
    if owner is results and attr == "open":
        monkeypatch.setattr(results, "open", open, raising=False)
    _fail_at(monkeypatch, owner, attr, n, exc)
    try:
        save_result(NEW, folder / "x.csv", {"seed": 1})
        raised = False
    except (OSError, KeyboardInterrupt):
        raised = True
    monkeypatch.undo()
    # Steps that never run: a third rename (no rollback), the backups of a new file;
    # a failed hard link falls back to a copy.
    skipped = ((attr == "replace" and n == 3)
               or (attr == "link" and (isinstance(exc, OSError) or not had_old))
               or (not had_old and owner is os and attr == "open" and n > 3))
    # the folder's lock is advisory: a failure to open the folder is not one to write
    skipped |= owner is os and attr == "open" and n == 1 and isinstance(exc, OSError)
    assert raised == (not skipped)
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert not [name for name in names if name.endswith(".tmp")], names
    if names:
        assert names == ["x.csv", "x.json"]
        assert _pair(folder) in ([old] if had_old else []) + [new]
        load_result(folder / "x.csv")  # the hash agrees
    else:
        assert not had_old


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_a_ctrl_c_just_after_a_temporary_is_created_leaves_none(n, tmp_path, monkeypatch):
    # The interrupt lands after the n-th temporary file exists and before the call
    # that made it returns: the window where a writer that learns the name only from
    # the call (tempfile.mkstemp) cannot remove it.
    folder = tmp_path / "results"
    save_result(OLD, folder / "x.csv", {"seed": 0})
    real, made = os.open, []

    def open_then_interrupt(path, *args, **kwargs):
        fd = real(path, *args, **kwargs)
        if str(path).endswith(".tmp"):
            made.append(path)
            if len(made) == n:
                os.close(fd)
                raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_result(NEW, folder / "x.csv", {"seed": 1})
    monkeypatch.undo()
    assert len(made) == n
    assert sorted(p.name for p in folder.iterdir()) == ["x.csv", "x.json"]
    assert _pair(folder) == _expected(tmp_path, OLD, {"seed": 0})


def test_sidecar_records_the_hash_and_load_checks_it(tmp_path):
    path = save_result(NEW, tmp_path / "x.csv", {"seed": 1})
    meta = load_params(path)
    assert meta["csv_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(path.read_bytes().replace(b"2", b"3"))
    with pytest.raises(ValueError, match=r"x\.csv does not match its sidecar .*x\.json"):
        load_result(path)


def test_older_sidecars_without_a_hash_are_refused_until_rehashed(tmp_path):
    # Issue 22: a sidecar without a hash cannot vouch for its CSV.
    from ensemble_study.results import rehash

    path = save_result(NEW, tmp_path / "x.csv", {})
    meta = json.loads((tmp_path / "x.json").read_text())
    del meta["csv_sha256"]
    (tmp_path / "x.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="records no csv_sha256"):
        load_result(path)
    rehash(path)
    pd.testing.assert_frame_equal(load_result(path), NEW)


KILLED_BETWEEN_RENAMES = """
import os, sys
import pandas as pd
from ensemble_study import results
real, calls = os.replace, [0]
def replace(*a):
    calls[0] += 1
    if calls[0] == 2:
        os._exit(9)  # killed after the CSV's rename, before the sidecar's
    real(*a)
os.replace = replace
results.save_result(pd.DataFrame({"value": [2.0, 3.0]}), sys.argv[1], {"seed": 1})
"""


def test_a_writer_killed_between_renames_is_detected_and_cleaned_up(tmp_path):
    path = save_result(OLD, tmp_path / "x.csv", {"seed": 0})
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(path)], env=env)
    assert done.returncode == 9
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers  # the killed writer could not clean up ...
    with pytest.raises(ValueError, match="does not match its sidecar"):
        load_result(path)  # ... and its half-published pair is refused
    save_result(NEW, path, {"seed": 2})  # the next write removes the dead writer's files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "x.json"]
    pd.testing.assert_frame_equal(load_result(path), NEW)


def test_stale_temporaries_are_removed_but_live_ones_kept(tmp_path):
    path = tmp_path / "x.csv"
    dead = tmp_path / ".x.csv.999999999.abcd.tmp"   # no such pid
    live = tmp_path / f".x.csv.{os.getppid()}.abcd.tmp"  # a running writer
    legacy_old = tmp_path / ".x.csv.k2j3h4g5.tmp"    # older naming, an hour old
    legacy_new = tmp_path / ".x.csv.z9y8x7w6.tmp"    # older naming, just written
    figure_old = tmp_path / ".x.png.tmp.png"
    for p in (dead, live, legacy_old, legacy_new, figure_old):
        p.write_text("partial")
    hour_ago = time.time() - 2 * 3600
    os.utime(legacy_old, (hour_ago, hour_ago))
    os.utime(figure_old, (hour_ago, hour_ago))
    save_result(NEW, path, {})
    plots.save_figure(Figure(), tmp_path / "x.png", dpi=10)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["x.csv", "x.json", "x.png", live.name, legacy_new.name])


@pytest.mark.parametrize("step", [(os, "replace", 1), (results, "open", 1), (os, "open", 2)],
                         ids=["replace", "open", "temporary"])  # os.open #1: the folder's lock
def test_interrupted_figure_keeps_the_old_png_and_no_temporary(step, tmp_path, monkeypatch):
    out = tmp_path / "fig.png"
    out.write_bytes(b"old png")
    if step[0] is results:
        monkeypatch.setattr(results, "open", open, raising=False)
    _fail_at(monkeypatch, *step, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        plots.save_figure(Figure(), out, dpi=10)
    monkeypatch.undo()
    assert out.read_bytes() == b"old png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_a_symlink_inside_the_folder_is_written_through(tmp_path):
    (tmp_path / "v2").mkdir()
    link = tmp_path / "x.csv"
    link.symlink_to(tmp_path / "v2" / "x.csv")
    save_result(NEW, link, {})
    assert link.is_symlink() and (tmp_path / "v2" / "x.json").exists()
    pd.testing.assert_frame_equal(load_result(link), NEW)


def test_render_all_draws_everything_before_writing_anything(tmp_path):
    good = tmp_path / "results"
    good.mkdir()
    # lacks the bench columns (saved with its sidecar: a CSV without one is refused)
    save_result(pd.DataFrame({"case": ["sweep"], "method": ["naive"]}), good / "bench.csv", {})
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "bench.png").write_bytes(b"old png")
    with pytest.raises(ValueError, match=r"bench\.csv lacks column"):
        publish.render_all(good, figures, dpi=10)
    assert sorted(p.name for p in figures.iterdir()) == ["bench.png"]
    assert (figures / "bench.png").read_bytes() == b"old png"
