"""Sphinx configuration of the ensemble_study documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``pip install -e '.[docs,torch]'`` first). The pages are MyST Markdown, so the
generated blocks ``<!-- report: NAME -->`` of ``ensemble_study.report`` sit in
them unchanged (an HTML comment renders as nothing).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# The checkout's package (not another installed copy), and the local extensions.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import ensemble_study  # noqa: E402
from ensemble_study.cli import main as cli_main  # noqa: E402

project = "ensemble_study"
author = "the ensemble_study developers"
copyright = "2024-2025, the ensemble_study developers"
version = release = ensemble_study.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_click",
    "sphinx_gallery.gen_gallery",
    "mathml",  # _ext/mathml.py: math as MathML at build time, nothing fetched
]
html_math_renderer = "mathml"

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.md5",
                    "auto_examples/*.json"]
nitpicky = False  # numpydoc's free-form types ("array_like, shape (n,)") are not targets
suppress_warnings = []

# --- MyST ---------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # "#fact-10" links work here and on a Markdown forge alike
myst_dmath_double_inline = True

# --- API reference --------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc docstrings state the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- gallery: runnable examples, executed at build time on small sizes ---------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "show_memory": False,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "first_notebook_cell": None,
}

# --- HTML -----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"ensemble_study {version}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_js_files = ["figures.js"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# Without a default the theme's script logs "Got invalid theme mode" on a first visit.
html_context = {"default_mode": "auto"}
# Results pages carry wide figures: no left sidebar, so the article is about 900 px
# wide (the width tests/test_figures_legible.py measures the figures' text at).
html_sidebars = {"index": [], "results/*": []}
html_show_sourcelink = False
html_copy_source = False


def _write_cli_pages() -> None:
    """One page per command of ``ensemble-study``, from its click definition.

    reStructuredText, not MyST: sphinx-click emits reStructuredText, which is
    parsed by the page's own parser.
    """
    folder = DOCS / "reference" / "cli"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for name in sorted(n for n, c in cli_main.commands.items() if not c.hidden):
        wanted[f"{name}.rst"] = (f".. click:: cli_commands:{name}\n"
                                 f"   :prog: ensemble-study {name}\n   :nested: full\n")
    for stale in list(folder.glob("*.md")) + list(folder.glob("*.rst")):
        if stale.name not in wanted:
            stale.unlink()
    for filename, text in wanted.items():
        path = folder / filename
        if not path.exists() or path.read_text() != text:  # unchanged: no rebuild
            path.write_text(text)


_write_cli_pages()


def _skip_top_level_names(app, what, name, obj, skip, options):
    """A module's page leaves out what the top level re-exports: that name has its
    own page (``ensemble_study.MLP``), and one description per object is enough."""
    if what == "module" and name in ensemble_study.__all__ \
            and getattr(ensemble_study, name, None) is obj:
        return True
    return None


# ``|x - y|`` in a docstring is an absolute value, not a reStructuredText
# substitution: escaped here, so that docstrings stay plain text to read.
_ABSOLUTE = re.compile(r"(?<![\\|`\w])\|([^|`\n]*[^|`\n\s_])\|(?![\w_])")


# "fact 10" or "DESIGN fact 10" in a docstring cites a numbered fact of the guide.
_FACT = re.compile(r"\b(?:DESIGN(?:\.md)?(?:'s)? )?([Ff]acts?) (\d{1,2})\b(?![^`]*``)")


def _process_docstring(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if not line.lstrip().startswith(("|", "+")):  # line blocks and grid tables stay
            line = _ABSOLUTE.sub(r"\\|\1\\|", line)
        lines[i] = _FACT.sub(lambda m: f":ref:`{m[1]} {m[2]} <fact-{m[2]}>`", line)


class _ResultsGlobMayBeEmpty(logging.Filter):
    """The results' table of contents lists the known pages, then ``*`` for any
    other study's page; until there is one, that ``*`` matches nothing, which is
    fine (Sphinx gives this warning no type that ``suppress_warnings`` could name)."""

    def filter(self, record):
        return not (record.getMessage() == "toctree glob pattern '*' didn't match any documents"
                    and "results" in str(getattr(record, "location", "")))


def setup(app):
    logging.getLogger("sphinx.sphinx.directives.other").addFilter(_ResultsGlobMayBeEmpty())
    app.connect("autodoc-skip-member", _skip_top_level_names)
    app.connect("autodoc-process-docstring", _process_docstring)
