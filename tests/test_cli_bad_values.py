"""Every command with each kind of bad option value: a usage error, nothing written.

Each case runs through click's CliRunner in a fresh temporary folder that
already holds a results/ pair and a figures/ PNG, and asserts exit code 2,
no traceback (the only exception is click's SystemExit), a one-line
``Error:`` message naming the option, and the folder byte-for-byte unchanged.
The base arguments are tiny grids, so a value that slipped through would
still finish quickly (and fail the test). Count the cases with
``python -m pytest --collect-only -q tests/test_cli_bad_values.py | tail -1``.
"""

import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble_study import cli
from ensemble_study.results import save_result
from ensemble_study.studies import registry

# Study commands take their options from the registry (below); the others are listed.
BASE = {
    "train": ["--dataset", "xor", "--epochs", "1", "--hidden", "2"],
    "bench": ["--quick", "--naive-budget", "0.01"],
    "figures": [],
    "reproduce": ["--quick"],
}

# Kinds of bad value for each kind of option.
INT1 = ["0", "-1", "1.5", "abc", "nan", ""]
INT0 = ["-1", "1.5", "abc", "nan", ""]
KEEP_PROB = ["nan", "inf", "-inf", "0", "-0.5", "1.5", "abc", ""]
POSITIVE = ["nan", "inf", "-inf", "0", "-1", "abc", ""]
NON_NEGATIVE = ["nan", "inf", "-inf", "-1", "abc", ""]
CHOICE = ["bogus", ""]
# A device or a pipe is made inside the temporary folder, never a real /dev node:
# code without the check replaced the machine's device with a CSV (it did, as root).
OUT = ["below-a-file", "a-folder", "a-device", "a-fifo", "symlink-outside", "sidecar-a-folder",
       "", "unwritable-folder"]
FILE = ["below-a-file", "a-folder", "a-device", "a-fifo", "symlink-outside", "unwritable-folder"]
FOLDER = ["a-file", "below-a-file", "unwritable-folder"]



def _kinds(p) -> list[str]:
    """The bad values of a study parameter's kind, from its record."""
    if p.type == "str":
        return CHOICE
    if p.type == "keep_prob":
        return KEEP_PROB
    over = [] if p.high is None else [str(int(p.high) + 1) if p.type == "int"
                                      else repr(p.high * 2 + 1)]  # past the budget
    if p.type == "int":
        return (INT1 if p.low == 1 else INT0 if p.low == 0 else ["abc", "nan", ""]) + over
    if p.type == "float":
        return (POSITIVE if p.low_open else NON_NEGATIVE) + over
    if p.type == "layer_keep_prob":
        return ["0=0.5", "1=1.5", "x", ""]
    if p.type == "widths":
        return ["0", "8,-1", "a", ""]
    return []


for _name, _study in registry().items():
    BASE[_name] = ["--quick", "--jobs", "1"]
OPTIONS = {
    **{name: {**{p.option: _kinds(p) for p in study.params}, "--out": OUT}
       for name, study in registry().items()},
    "train": {"--dataset": CHOICE, "--keep-prob": KEEP_PROB, "--scheme": CHOICE,
              "--hidden": INT1, "--optimizer": CHOICE, "--learning-rate": POSITIVE,
              "--epochs": INT1, "--batch-size": INT1, "--weight-decay": NON_NEGATIVE,
              "--max-norm": POSITIVE, "--seed": INT0, "--out": OUT},
    "bench": {"--naive-budget": POSITIVE, "--out": OUT, "--figure": FILE},
    "figures": {"--results": ["a-file", "missing"], "--out": FOLDER},
    "reproduce": {"--results": FOLDER, "--figures": FOLDER},
}

# Values that are fine one by one but not together, or files that are malformed.
SPECIAL = [
    ("sweep", ["--width", "11"]),  # 22 dropped units
    ("mc", ["--width", "7", "--depth", "3"]),
    ("spread", ["--width", "8", "--depth", "2"]),
    ("depth", ["--max-dropped", "21"]),
    ("train", ["--hidden", "13", "--hidden", "12"]),  # found only after training, before
    ("trained", ["--hidden", "13", "--hidden", "12"]),
    ("sweep", ["--keep-prob", "0.5", "--keep-prob", "nan"]),
    ("train", ["--seed", "-1"]),
    ("train", ["--keep-prob", "nan"]),
    ("bench", ["--out", "results/b.csv", "--figure", "afile/b.png"]),
    ("figures", ["malformed:empty"]),
    ("figures", ["malformed:header-only"]),
    ("figures", ["malformed:missing-columns"]),
    ("figures", ["malformed:hash-mismatch"]),
    ("figures", ["malformed:binary"]),
]


def _setup(kind: str, option: str) -> str:
    """Make the file system state of a bad path ``kind``; return the option's value."""
    name = "x.png" if option == "--figure" else "x.csv"
    if kind == "below-a-file":
        Path("afile").write_text("a file\n")
        return f"afile/{name}" if option not in FOLDER_OPTIONS else "afile/sub"
    if kind == "a-file":
        Path("afile").write_text("a file\n")
        return "afile"
    if kind == "a-folder":
        Path("afolder").mkdir()
        return "afolder"
    if kind == "a-device":
        try:
            os.mknod("null.csv", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")
        return "null.csv"
    if kind == "a-fifo":
        os.mkfifo("pipe.csv")
        return "pipe.csv"
    if kind == "symlink-outside":
        Path("outside.csv").write_text("precious\n")
        Path("results/link.csv").symlink_to(Path("outside.csv").resolve())
        return "results/link.csv"
    if kind == "sidecar-a-folder":
        Path("results/side.json").mkdir()
        return "results/side.csv"
    if kind == "unwritable-folder":
        Path("locked").mkdir()
        os.chmod("locked", 0o555)
        return f"locked/{name}" if option not in FOLDER_OPTIONS else "locked/sub"
    if kind == "missing":
        return "no_such_folder"
    return kind


FOLDER_OPTIONS = ("--results", "--figures")


def _malformed(kind: str) -> str:
    folder = Path("bad_results")
    folder.mkdir()
    csv = folder / "sweep.csv"
    if kind == "hash-mismatch":
        save_result(pd.DataFrame({"a": [1.0]}), csv, {})
        csv.write_text("a\n2\n")
    else:
        csv.write_bytes({"empty": b"", "header-only": b"study,keep_prob\n",
                         "missing-columns": b"a,b\n1,2\n", "binary": b"\x00\xff\xfe\x00"}[kind])
    return str(folder)


def _cases():
    for command, options in OPTIONS.items():
        for option, values in options.items():
            for value in values:
                yield pytest.param(command, option, value,
                                   id=f"{command} {option} {value or 'empty'}")
    for command, args in SPECIAL:
        yield pytest.param(command, None, args, id=f"{command} {' '.join(args)}")


def _snapshot(folder: Path) -> dict:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p)] = ("link", os.readlink(p))
        elif p.is_file():
            out[str(p)] = ("file", p.read_bytes(), p.stat().st_mtime_ns)
        else:
            out[str(p)] = ("folder",)
    return out


@pytest.mark.parametrize("command, option, value", list(_cases()))
def test_bad_value_exits_2_before_any_work(command, option, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_result(pd.DataFrame({"a": [1.0]}), Path("results/old.csv"), {"seed": 0})
    Path("figures").mkdir()
    Path("figures/old.png").write_bytes(b"png")
    if option is None:
        Path("afile").write_text("a file\n")
        args = [a for v in value for a in (["--results", _malformed(v.split(":")[1])]
                                          if v.startswith("malformed:") else [v])]
    else:
        if "unwritable" in str(value) and os.geteuid() == 0:
            # Root may write anywhere; the check asks os.access, so deny it as a user would be.
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
                False if Path(p).resolve() == (tmp_path / "locked").resolve() else real(p, mode,
                                                                                       **kw)))
        bad = _setup(value, option) if option in ("--out", "--figure", "--results",
                                                  "--figures") else value
        args = [option, bad]
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(cli.main, [command, *BASE[command], *args])
    try:
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert "Traceback" not in result.output
        lines = result.output.strip().splitlines()
        assert lines[-1].startswith("Error: ") and sum("Error" in line for line in lines) == 1
        assert _snapshot(tmp_path) == before
    finally:
        if Path("locked").exists():
            os.chmod("locked", 0o755)
