"""Math as MathML, rendered at build time: no JavaScript, nothing fetched.

Sphinx's default math renderer (MathJax) loads a script from a CDN, which an
offline reader (or the headless browser of the docs check) cannot reach. The
browsers render MathML Core natively; docutils converts the LaTeX. A formula
it cannot convert is a build warning (an error under ``-W``), never a silent
raw string.
"""

from __future__ import annotations

from docutils import nodes
from docutils.utils.math import MathError
from docutils.utils.math.latex2mathml import tex2mathml
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _render(self, node, latex: str, block: bool) -> str:
    try:
        return tex2mathml(latex, as_block=block)
    except MathError as exc:
        logger.warning("cannot render math %r: %s", latex, exc, location=node)
        return f"<code>{self.encode(latex)}</code>"


def visit_inline(self, node):
    self.body.append(_render(self, node, node.astext(), block=False))
    raise nodes.SkipNode


def visit_block(self, node):
    latex = node.astext()
    html = _render(self, node, latex, block=True)
    if node.get("label"):  # numbered equations keep Sphinx's anchor and number
        self.body.append(f'<div class="math-wrapper" id="{node["ids"][0]}">'
                         f'<span class="eqno">({node["number"]})</span>{html}</div>')
    else:
        self.body.append(f'<div class="math-wrapper">{html}</div>')
    raise nodes.SkipNode


def setup(app):
    app.add_html_math_renderer("mathml", (visit_inline, None), (visit_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
