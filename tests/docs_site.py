"""The built documentation site, shared by the tests that read it.

``ENSEMBLE_STUDY_DOCS_HTML`` names an HTML build to check (CI builds the site
with ``-W`` once and points the tests at it); without it the site is built
here, with ``-W``, into a temporary folder, once per test session.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


@functools.cache
def built_site() -> Path:
    given = os.environ.get("ENSEMBLE_STUDY_DOCS_HTML")
    if given:
        html = Path(given).resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"ENSEMBLE_STUDY_DOCS_HTML={given}: no index.html there")
        return html
    pytest.importorskip("sphinx", reason="the docs extra: pip install -e '.[docs]'")
    html = Path(tempfile.mkdtemp(prefix="ensemble-study-docs-")) / "html"
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                           "html", str(DOCS), str(html)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"the docs do not build with -W:\n{done.stdout[-3000:]}{done.stderr[-6000:]}")
    return html


def pages(html: Path) -> list[Path]:
    """Every page built from a source of ours (not the search, index or module-source pages)."""
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    return sorted(p for p in html.rglob("*.html")
                  if p.name not in skip and "_modules" not in p.parts
                  and "_static" not in p.parts)
