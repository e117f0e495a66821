"""Budgets checked before work, and files read header-first.

The memory bound is a fraction of the memory available when the check runs
(``MemAvailable`` in ``/proc/meminfo``; ``os.sysconf`` elsewhere): half of it
by default. The environment variable ``ENSEMBLE_STUDY_MEMORY_BUDGET``
overrides it, as bytes or with a suffix (``512M``, ``4G``, ``1T``).

A request that would exceed the bound is refused with a ``ValueError`` that
names the parameter, the bytes it would take, the bound and the cheaper
option, before any array is allocated. Files (``.npy``, the members of an
``.npz``) are read header-first: their declared shape and dtype are checked
against the file's size and against the bound before anything is inflated.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

BUDGET_ENV = "ENSEMBLE_STUDY_MEMORY_BUDGET"
DEFAULT_FRACTION = 0.5
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``), or physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def memory_budget() -> int:
    """The memory bound, in bytes (see the module's docstring)."""
    env = os.environ.get(BUDGET_ENV, "").strip()
    if env:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", env, flags=re.IGNORECASE)
        if not m or float(m.group(1)) <= 0:
            raise ValueError(f"{BUDGET_ENV} must be a positive size such as 4G, 512M or "
                             f"1000000 (bytes); got {env!r}")
        return int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    return int(DEFAULT_FRACTION * available_memory())


def human(n: float) -> str:
    """``n`` bytes in words: ``'4.0 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_bytes(nbytes: float, what: str, cheaper: str = "") -> None:
    """Refuse ``what`` if it needs more than :func:`memory_budget` bytes."""
    bound = memory_budget()
    if nbytes > bound:
        hint = f"; {cheaper}" if cheaper else ""
        raise ValueError(f"{what} would need {human(nbytes)} of memory, past the budget of "
                         f"{human(bound)} (half the available memory; set {BUDGET_ENV} to "
                         f"change it){hint}")


def _header(fh, name: str):
    """``(shape, dtype, header_bytes)`` of an open ``.npy`` stream, or ValueError."""
    try:
        version = npformat.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npformat.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError) as exc:
        raise ValueError(f"{name}: not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise ValueError(f"{name}: holds pickled (object) arrays, which are never loaded")
    if any(d < 0 for d in shape):
        raise ValueError(f"{name}: declares a negative shape {shape}")
    return tuple(shape), dtype, fh.tell()


def npy_nbytes(shape, dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def check_npy(path, param: str = "file") -> tuple:
    """Check an ``.npy`` file's header against its size and the budget.

    Returns ``(shape, dtype)``; raises ``ValueError`` naming the file when the
    file is not an ``.npy`` array, holds objects, is truncated (its data are
    shorter than its header declares) or declares more bytes than the budget.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        shape, dtype, start = _header(fh, str(path))
    declared = npy_nbytes(shape, dtype)
    held = path.stat().st_size - start
    check_bytes(declared, f"{param} {path} (shape {shape}, dtype {dtype})",
                "pass a smaller array")
    if held < declared:
        raise ValueError(f"{path}: truncated: its header declares shape {shape} of {dtype} "
                         f"({declared} bytes) but it holds {held} bytes of data")
    return shape, dtype


def load_npy(path, param: str = "file") -> np.ndarray:
    """:func:`numpy.load` of an ``.npy`` file after :func:`check_npy`."""
    check_npy(path, param)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def check_npz_members(path, allowed: re.Pattern | None = None) -> dict:
    """Read every member's ``.npy`` header of an ``.npz`` without inflating its data.

    Returns ``{name: (shape, dtype)}``. Raises ``ValueError`` naming the file
    and the reason: a member not matching ``allowed`` (refused before it is
    decompressed), a member whose declared size disagrees with the zip
    directory (truncated or padded), a total past the budget, a damaged zip.
    """
    out, total = {}, 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if allowed is not None and not allowed.fullmatch(name):
                    raise ValueError(f"{path}: unexpected member {info.filename!r} "
                                     f"({human(info.file_size)}), refused before reading it")
                with zf.open(info) as fh:
                    shape, dtype, start = _header(fh, str(path))
                declared = npy_nbytes(shape, dtype)
                if declared + start != info.file_size:
                    raise ValueError(f"{path}: member {info.filename!r} declares shape "
                                     f"{shape} of {dtype} ({declared} bytes) but holds "
                                     f"{info.file_size - start} bytes (truncated or damaged)")
                total += declared
                out[name] = (shape, dtype)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: damaged zip archive ({exc})") from None
    check_bytes(total, f"loading {path}", "this file's arrays are larger than expected")
    return out


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
