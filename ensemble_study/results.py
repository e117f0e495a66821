"""Saving and loading study results: one CSV plus a JSON sidecar each.

The sidecar ``NAME.json`` records what is needed to rerun the CSV (the
package version, the study's parameters, the command line) and the SHA-256
of the CSV's bytes. A CSV and its sidecar are published together or not at
all: both are written in full to temporary names in the target folder, then
renamed into place; if anything fails before both renames are done, the old
pair is put back. Only a process killed between the two renames (a window
of two system calls) can leave a new CSV beside the old sidecar, and
:func:`load_result` refuses such a pair because the hash disagrees.

Temporary files are named ``.NAME.<pid>.<random>.tmp`` (ignored by git);
each write removes them on every exit path, and the next write into the
same folder removes those left by a killed process.

Outputs are checked before any work (:func:`check_output_path`): a target
that is a folder, a device, a pipe, or a symbolic link pointing outside its
folder is never replaced, and the folder must be creatable and writable.

(About 500 lines: the CSV, its sidecar, their hashes and the folder lock
are one publication rule.)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import platform
import secrets
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

try:
    import fcntl
except ImportError:  # not on a POSIX system: no cross-process lock
    fcntl = None

# A temporary file whose writer's pid cannot be read (older naming) is removed
# once it is this old: no write takes that long.
_STALE_SECONDS = 3600


def sidecar_path(csv_path) -> Path:
    """``results/NAME.csv`` -> ``results/NAME.json``."""
    return Path(csv_path).with_suffix(".json")


def _target_problem(path: Path) -> str | None:
    """Why ``path`` may not be replaced by a new regular file, or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None  # a parent is a file: reported by _folder_problem
    if stat.S_ISLNK(st.st_mode):
        target = Path(os.path.realpath(path))
        folder = Path(os.path.realpath(path.parent))
        if not target.is_relative_to(folder):
            return (f"{path} is a symbolic link to {target}, outside its folder {folder}; "
                    f"refusing to write through it")
        return _target_problem(target) if target != path else None
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return (f"{path} exists and is not a regular file (a device, pipe or socket); "
                f"refusing to replace it")
    return None


def _folder_problem(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (creating it if needed), or None."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create folder {folder}: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "folder" if existing == folder else f"folder {folder}: its parent"
        return f"cannot write into {what} {existing} (permission denied)"
    return None


def output_path_problem(path, *, sidecar: bool = True) -> str | None:
    """Why writing ``path`` (and its sidecar) would fail or do harm, or None if it is fine."""
    path = Path(path)
    if str(path) == "" or path.name in ("", ".", ".."):
        return f"{str(path)!r} is not a file name"
    for target in (path, sidecar_path(_resolve(path))) if sidecar else (path,):
        problem = _target_problem(target)
        if problem:
            return problem
    return _folder_problem(_resolve(path).parent)


def check_output_path(path, name: str = "path", *, sidecar: bool = True) -> Path:
    """Check, before any work, that ``path`` can be written; return it as a Path.

    Parameters
    ----------
    path : str or Path
        The file to be written (a result CSV, a figure).
    name : str
        The parameter named in the error (e.g. ``"--out"``).
    sidecar : bool
        Also check the JSON sidecar that :func:`save_result` writes beside it.

    Raises
    ------
    ValueError
        If ``path`` (or its sidecar) is a folder, a device, a pipe, a socket
        or a symbolic link pointing outside its folder, or if its folder is
        below a file or not writable.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{name} must be a file path; got {type(path).__name__}")
    problem = output_path_problem(path, sidecar=sidecar)
    if problem:
        raise ValueError(f"{name}: {problem}")
    return Path(path)


def output_folder_problem(folder) -> str | None:
    """Why files cannot be created in ``folder`` (created if missing), or None."""
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        return f"{folder} exists and is not a folder"
    return _folder_problem(folder)


def check_output_folder(folder, name: str = "folder") -> Path:
    """Check that files can be created in ``folder`` (created if missing); return it."""
    if not isinstance(folder, (str, os.PathLike)):
        raise ValueError(f"{name} must be a folder path; got {type(folder).__name__}")
    problem = output_folder_problem(folder)
    if problem:
        raise ValueError(f"{name}: {problem}")
    return Path(folder)


def _resolve(path: Path) -> Path:
    """A symbolic link (already checked to stay in its folder) is written through."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(path) -> list[Path]:
    """Remove temporary files of ``path`` left by a killed writer; return those removed.

    A temporary ``.NAME.<pid>.<random>.tmp`` is stale when its process is gone;
    one of the older namings (``.NAME.<random>.tmp``, ``.NAME.tmp.png``) when
    it is more than an hour old. Temporaries of running writers are left alone.
    """
    path = Path(path)
    removed = []
    candidates = list(path.parent.glob(f".{_glob_escape(path.name)}.*.tmp"))
    candidates += list(path.parent.glob(f".{_glob_escape(path.name)}.tmp{path.suffix}"))
    for tmp in candidates:
        rest = tmp.name[len(path.name) + 2:]
        pid = rest.split(".", 1)[0]
        try:
            stale = (not _pid_alive(int(pid))) if pid.isdigit() and rest.count(".") >= 2 else (
                time.time() - tmp.lstat().st_mtime > _STALE_SECONDS)
            if stale:
                tmp.unlink()
                removed.append(tmp)
        except (FileNotFoundError, ValueError):
            pass  # removed meanwhile by another process
    return removed


def _glob_escape(name: str) -> str:
    """``name`` with glob's special characters escaped."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


# Failures of the machine, not of the code: reported in one line naming the file.
_ENVIRONMENTAL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.EIO, errno.EFBIG, errno.EMFILE, errno.ENFILE,
                            errno.ENAMETOOLONG, errno.ENOTDIR, errno.ENOENT})


def environmental(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of the machine (space, a read-only file
    system, permission, a lost disk), to be reported in one line."""
    return isinstance(exc, WriteError) or (isinstance(exc, OSError)
                                           and exc.errno in _ENVIRONMENTAL)


def one_line(exc: OSError) -> str:
    """An environmental ``OSError`` in one line naming its file."""
    if isinstance(exc, WriteError):
        return str(exc)
    name = errno.errorcode.get(exc.errno, "") if exc.errno else ""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}" + (f" ({name})" if name else "")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_files(files: list[tuple[Path, bytes]]) -> None:
    """Publish several files together: all of them or none.

    Each is written in full to a temporary name in its folder, then the
    temporaries are renamed into place one after the other; if a write or a
    rename fails, the files already renamed are put back as they were (the
    old version, or no file). Temporary files are removed on every exit path.
    """
    folders = sorted({Path(target).parent for target, _ in files})
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WriteError(folder, exc, "create folder") from None
    with contextlib.ExitStack() as locks:
        for folder in folders:  # in one order: no deadlock between two writers
            locks.enter_context(folder_lock(folder))
        _write_files(files)


class WriteError(OSError):
    """A write that failed for an environmental reason (no space, a read-only
    file system, permission), in one line naming the file."""

    def __init__(self, path, exc: OSError, what: str = "write"):
        name = errno.errorcode.get(exc.errno, "") if exc.errno else ""
        reason = exc.strerror or str(exc)
        super().__init__(exc.errno, f"cannot {what} {path}: {reason}"
                                    + (f" ({name})" if name else ""))
        self.filename = str(path)

    def __str__(self):
        return self.strerror


@contextlib.contextmanager
def folder_lock(folder, *, shared: bool = False):
    """Hold an advisory lock on ``folder`` (``flock`` on the folder itself, so
    no lock file is left behind): exclusive for a writer, shared for a reader.

    Every :func:`write_files` into a folder holds it exclusively from its
    first temporary to its last rename, and :func:`load_result` holds it
    shared while it reads a CSV and its sidecar: writers from several
    threads or processes publish their pairs one after the other, and a
    reader never sees half of one. Where folders cannot be locked (no
    ``fcntl``, a file system without ``flock``), nothing is held.
    """
    fd = None
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            except OSError:
                pass
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _write_files(files: list[tuple[Path, bytes]]) -> None:
    temporaries: list[Path] = []
    committed: list[tuple[Path, Path | None]] = []  # (target, backup of the old one)

    def temporary(target: Path) -> Path:
        while True:
            tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            # Listed before it exists: a Ctrl-C between its creation and its listing
            # would leave it behind (the cleanup below skips a name never created).
            temporaries.append(tmp)
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                temporaries.pop()  # not ours to remove
                continue
            return tmp

    target = None
    try:
        staged = []
        for target, data in files:
            clean_stale_temporaries(target)
            tmp = temporary(target)
            # The temporary is created private (0600); a result file gets the
            # usual permissions of a new file under the user's umask.
            os.chmod(tmp, 0o666 & ~_umask())
            # No fsync: a file emptied by a power cut is caught by the sidecar's hash.
            with open(tmp, "wb") as fh:
                fh.write(data)
            staged.append((target, tmp))
        for target, tmp in staged:
            backup = None
            if os.path.lexists(target):
                backup = temporary(target)
                _link_over(target, backup)
            os.replace(tmp, target)
            committed.append((target, backup))
    except BaseException as exc:
        for done, backup in reversed(committed):
            if backup is None:
                os.unlink(done)
            else:
                os.replace(backup, done)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError) \
                and exc.errno in _ENVIRONMENTAL:
            raise WriteError(target, exc) from None
        raise
    finally:
        for tmp in temporaries:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _atomic_write(path: Path, write, mode: str = "w") -> None:
    """Publish one file that ``write(fh)`` fills, text or (``mode="wb"``) binary
    (see :func:`write_files`)."""
    buffer = io.BytesIO() if "b" in mode else io.StringIO(newline="")
    write(buffer)
    data = buffer.getvalue()
    write_files([(Path(path), data if isinstance(data, bytes) else data.encode())])


def _link_over(target: Path, backup: Path) -> None:
    """Make ``backup`` a second name of ``target``'s current file (a copy if links fail)."""
    os.unlink(backup)
    try:
        os.link(target, backup)
    except OSError:
        with open(target, "rb") as src, open(backup, "wb") as dst:
            dst.write(src.read())


def atomic_write_bytes(path, data: bytes) -> Path:
    """Replace ``path`` by ``data`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    write_files([(path, data)])
    return path


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
        return _jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # JSON has no NaN or inf; "nan", "inf" read back unambiguously
    if isinstance(value, Path):
        return str(value)
    return value


def save_result(df: pd.DataFrame, path, params: dict) -> Path:
    """Write ``df`` to ``path`` (CSV) and its parameters to the JSON sidecar, together.

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

    path = check_output_path(path, "path")
    target = _resolve(path)
    buffer = io.StringIO(newline="")
    df.to_csv(buffer, index=False, float_format="%.17g")
    data = buffer.getvalue().encode()
    meta = {
        "package": "ensemble_study",
        "version": __version__,
        "params": _jsonable(params),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rows": int(len(df)),
        "csv_sha256": hashlib.sha256(data).hexdigest(),
    }
    side = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False).encode()
    write_files([(target, data), (sidecar_path(target), side)])
    return path


def load_result(path) -> pd.DataFrame:
    """Read a result CSV written by :func:`save_result`, checked against its sidecar.

    Raises
    ------
    ValueError
        If the CSV has no sidecar, or a sidecar that records no SHA-256 (it
        cannot be checked: rerun the command that wrote it, or, if you trust
        the CSV, record its hash with :func:`rehash`); if the CSV's SHA-256
        or row count is not the one its sidecar records (a write was
        interrupted between its two renames, or the file was edited); or if
        it is not a readable CSV.
    """
    path = Path(path)
    side = sidecar_path(_resolve(path))
    with folder_lock(_resolve(path).parent, shared=True):
        data = path.read_bytes()
        if not side.exists():
            raise ValueError(f"{path} has no sidecar {side.name}: it cannot be checked; rerun "
                             f"the command that writes it")
        meta = load_params(path)
    expected = meta.get("csv_sha256")
    if expected is None:
        raise ValueError(
            f"{side} records no csv_sha256, so {path.name} cannot be checked: rerun the "
            f"command that wrote it ({meta.get('command', 'see the sidecar')}), or, if you "
            f"trust the CSV, record its hash: python -c \"from ensemble_study.results import "
            f"rehash; rehash('{path}')\"")
    if hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(
            f"{path} does not match its sidecar {side} (the CSV's "
            f"SHA-256 differs from the one recorded): a write was interrupted or the file was "
            f"edited; rerun the command that made it"
        )
    df = _read_csv(path, data)
    rows = meta.get("rows")
    if rows is not None and rows != len(df):
        raise ValueError(f"{path} holds {len(df)} rows but its sidecar {side} records {rows}; "
                         f"rerun the command that made it")
    return df


def _read_csv(path: Path, data: bytes) -> pd.DataFrame:
    try:
        # One pass over each column: a column empty in some rows (NaN) and boolean in
        # others gets one dtype, not one per block of rows (and no DtypeWarning).
        return pd.read_csv(io.BytesIO(data), low_memory=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable CSV: {exc}") from None


def rehash(path) -> Path:
    """Record the SHA-256 and row count of the CSV at ``path`` in its sidecar, as it is now.

    For a CSV whose sidecar predates the hash (or lost it): the CSV is
    trusted as it stands, with a one-line warning on stderr saying so; its
    bytes are not changed. A sidecar that already records a hash is checked
    and left alone (``ValueError`` if the CSV does not match it).
    """
    path = Path(path)
    side = sidecar_path(_resolve(path))
    with folder_lock(_resolve(path).parent):
        data = path.read_bytes()
        meta = load_params(path)
        if meta.get("csv_sha256") is not None:
            if hashlib.sha256(data).hexdigest() != meta["csv_sha256"]:
                raise ValueError(f"{path} does not match the SHA-256 its sidecar {side} "
                                 f"records; rehash only records a missing hash")
            return path
        meta = dict(meta, csv_sha256=hashlib.sha256(data).hexdigest(),
                    rows=int(len(_read_csv(path, data))))
        print(f"warning: {side} had no csv_sha256; recorded the hash of {path.name} as it "
              f"is now, trusting its content", file=sys.stderr, flush=True)
        _write_files([(side, json.dumps(meta, indent=2, sort_keys=True,
                                        allow_nan=False).encode())])
    return path


def load_params(path) -> dict:
    """The sidecar of a result CSV (empty dict if there is none)."""
    side = sidecar_path(_resolve(Path(path)))
    if not side.exists():
        return {}
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{side} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{side} must hold a JSON object; got {type(meta).__name__}")
    return meta
