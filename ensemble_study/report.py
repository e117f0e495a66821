"""Block machinery: the documents' numbers, generated from the committed CSVs.

A document (README.md, a Markdown page under ``docs/``; :func:`documents`) holds blocks between
``<!-- report: NAME -->`` and ``<!-- /report -->``. Each NAME is a function
registered on a study or table (``@STUDY.block(NAME)``, ``fn(df) -> str``)
that reads its saved CSV and returns the block's Markdown: tables, and the
sentences that quote numbers, each comparison with its interval or its
paired test (:mod:`ensemble_study.stats`). ``ensemble-study report``
rewrites the blocks (:mod:`ensemble_study.publish`); ``--check`` (and a
test) fails when a block differs from what the CSVs give. Prose outside the blocks quotes no number.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import stats

BLOCK = re.compile(r"(<!-- report: ([\w-]+) -->\n)(.*?)(<!-- /report -->)", re.S)


def blocks_in(text: str) -> list[str]:
    """Names of the blocks in ``text``, in order."""
    return [m.group(2) for m in BLOCK.finditer(text)]


def documents(root=".") -> list[Path]:
    """The documents under ``root`` that hold a generated block.

    ``README.md``, then every ``docs/**/*.md`` in sorted order; folders whose
    name starts with ``_`` or ``.`` (a docs build, generated pages) are
    skipped, and so is ``docs/auto_examples`` (the gallery's output).

    Parameters
    ----------
    root : str or Path
        The repository's folder.

    Returns
    -------
    list of Path
        Paths under ``root`` (relative if ``root`` is).
    """
    root = Path(root)
    docs = root / "docs"
    candidates = [root / "README.md"]
    if docs.is_dir():
        candidates += sorted(
            path for path in docs.rglob("*.md")
            if not any(part.startswith(("_", ".")) or part == "auto_examples"
                       for part in path.relative_to(docs).parts[:-1]))
    return [path for path in candidates if path.is_file() and blocks_in(path.read_text())]


# --- formatting ---------------------------------------------------------------------------

def num(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits (0 stays 0)."""
    if x == 0:
        return "0"
    if not np.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 else f"{x:.{digits - 1}e}"


def ci(est: float, low: float, high: float, digits: int = 3) -> str:
    """``est [low, high]``."""
    if low == high == est:
        return num(est, digits)
    return f"{num(est, digits)} [{num(low, digits)}, {num(high, digits)}]"


def pvalue(p: float) -> str:
    return "p < 1e-4" if p < 1e-4 else f"p = {p:.2g}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def median_ci(values) -> str:
    return ci(*stats.bootstrap_ci(np.sort(np.asarray(values, dtype=float))))


def names(items) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def trend_sentence(metric_name: str, up: list[str], down: list[str], total: int,
                   along: str = "width") -> str:
    """One verdict on one metric: the cells where the gap grows or shrinks along
    ``along`` (those that survive their family's correction), and how many showed none."""
    if not up and not down:
        return f"on the {metric_name}, no {along} difference survives Holm"
    parts = ([f"grows with {along} for {names(up)}"] if up else []) + (
        [f"shrinks with {along} for {names(down)}"] if down else [])
    rest = total - len(up) - len(down)
    return (f"on the {metric_name} it " + "; it ".join(parts)
            + (f" (no difference in the other {rest})" if rest else ""))
