"""Saving and loading study results: one CSV plus a JSON sidecar each.

A result file is written to a temporary name in the same folder and renamed
into place, so an interrupted run never leaves a half-written file. The
sidecar ``NAME.json`` records what is needed to rerun the CSV: the package
version, the study's parameters and the command line.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def _atomic_write(path: Path, write, mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file private (0600); a result file gets the usual
        # permissions of a new file under the user's umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> Path:
    """Replace ``path`` by ``text`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    _atomic_write(path, lambda fh: fh.write(text))
    return path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def sidecar_path(csv_path) -> Path:
    """``results/NAME.csv`` -> ``results/NAME.json``."""
    return Path(csv_path).with_suffix(".json")


def save_result(df: pd.DataFrame, path, params: dict) -> Path:
    """Write ``df`` to ``path`` (CSV) and its parameters to the JSON sidecar.

    Parameters
    ----------
    df : DataFrame
        One tidy table: identifier columns first, then metrics.
    path : str or Path
        Where the CSV goes; the sidecar is the same name with ``.json``.
    params : dict
        The study's parameters (JSON-serialisable after numpy scalars and
        paths are converted).

    Returns
    -------
    Path
        The CSV path.
    """
    from . import __version__

    path = Path(path)
    meta = {
        "package": "ensemble_study",
        "version": __version__,
        "params": _jsonable(params),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rows": int(len(df)),
    }
    _atomic_write(path, lambda fh: df.to_csv(fh, index=False, float_format="%.17g"))
    _atomic_write(sidecar_path(path), lambda fh: json.dump(meta, fh, indent=2, sort_keys=True))
    return path


def load_result(path) -> pd.DataFrame:
    """Read a result CSV written by :func:`save_result`."""
    return pd.read_csv(path)


def load_params(path) -> dict:
    """The sidecar of a result CSV (empty dict if there is none)."""
    side = sidecar_path(path)
    return json.loads(side.read_text()) if side.exists() else {}
