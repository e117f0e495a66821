"""The documentation renders what its sources say.

Fast tests read the Markdown sources: every relative link of README.md and
of the pages under docs/ points at a file that exists, and at a heading or
label that exists there. Slow tests build the site (``docs_site``) and parse
every page: no Markdown left raw in a code block where a heading, a figure, a
table or a generated block should be (an unclosed fence swallows everything
after it), no broken internal link or image, an API page for every public
name, a page for every command.
"""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from docs_site import DOCS, ROOT, built_site, pages

import ensemble_study
from ensemble_study import report
from ensemble_study.cli import main

SOURCES = [ROOT / "README.md"] + sorted(
    p for p in DOCS.rglob("*.md")
    if not any(part.startswith(("_", ".")) or part in ("auto_examples", "generated", "cli")
               for part in p.relative_to(DOCS).parts[:-1]))
_FENCE = re.compile(r"^(`{3,}|~{3,})", re.M)
_LINK = re.compile(r"(?<!\\)!?\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1", re.S)


def _outside_fences(text: str) -> str:
    """``text`` with every fenced block blanked (an unclosed fence blanks the rest)."""
    out, fence = [], None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
            out.append("")
        elif fence is not None:
            if line.strip().startswith(fence) and not line.strip()[len(fence):].strip():
                fence = None
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """A heading's anchor, as MyST (myst_heading_anchors) and Markdown forges make it."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = _outside_fences(path.read_text())
    found = {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}
    found |= set(re.findall(r"^\(([\w-]+)\)=$", text, re.M))
    return found


def fence_defects(text: str) -> list[str]:
    """Fences that swallow what follows them: one never closed, or one still open
    where a new fenced block (a fence with a language) or a heading starts."""
    defects, opened = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if opened is None:
            if match:
                opened = (number, match.group(1), line[len(match.group(1)):].strip())
            continue
        start, fence, language = opened
        if line.strip() == fence[0] * len(line.strip()) and len(line.strip()) >= len(fence):
            opened = None
        elif match and match.group(1)[0] == fence[0] and line[len(match.group(1)):].strip():
            defects.append(f"the fence of line {start} is still open at line {number}, "
                           f"where a new fenced block starts")
        elif re.match(r"^#{2,6} [A-Z0-9]", line) and language not in ("markdown", "md", "text"):
            defects.append(f"the fence of line {start} holds a heading at line {number}")
    if opened is not None:
        defects.append(f"the fence of line {opened[0]} is never closed")
    return defects


def test_fence_defects_finds_what_broke_a_results_section():
    broken = "text\n```bash\nensemble-study mc\n### 10. A section\n\n```bash\nx\n```\n"
    assert len(fence_defects(broken)) == 2
    assert fence_defects("```bash\nx\n```\n# A\n~~~~python\n```\n~~~~\n") == []
    assert fence_defects("```\nnever closed\n") == ["the fence of line 1 is never closed"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_fence_of_any_source_swallows_what_follows_it(source):
    assert fence_defects(source.read_text()) == [], source


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_of_every_source_resolves(source):
    broken = []
    for target in _LINK.findall(_CODE_SPAN.sub("", _outside_fences(source.read_text()))):
        url = urlparse(target)
        if url.scheme or target.startswith("mailto:"):
            continue
        path = (source.parent / unquote(url.path)).resolve() if url.path else source
        if url.path.startswith("../auto_examples/") or "/auto_examples/" in url.path:
            name = Path(url.path).stem  # a gallery page, generated from its script
            if not (DOCS / "examples" / f"{name}.py").is_file() and name != "index":
                broken.append(target)
            continue
        if not path.exists():
            broken.append(target)
        elif url.fragment and path.suffix == ".md" and url.fragment not in anchors(path):
            broken.append(f"{target} (no such heading or label)")
    assert not broken, f"{source}: broken links {broken}"


def test_the_readme_cites_no_design_notes_outside_the_repository():
    text = (ROOT / "README.md").read_text()
    assert "DESIGN" not in text and "shared/" not in text


# --- the built site -------------------------------------------------------------------

_MARKDOWN_IN_CODE = [
    (re.compile(r"^#{2,6} \S", re.M), "a Markdown heading"),
    (re.compile(r"^!\[[^\]]*\]\([^)]*\)\s*$", re.M), "a Markdown image"),
    (re.compile(r"^\|.*\|\s*\n\|[-:| ]+\|\s*$", re.M), "a Markdown table"),
    (re.compile(r"^<!-- report: (?:" + "|".join(map(re.escape, report.BLOCKS)) + r") -->",
                re.M), "a generated block"),
    (re.compile(r"^(```|~~~)", re.M), "a Markdown fence"),
]


@pytest.fixture(scope="module")
def site():
    bs4 = pytest.importorskip("bs4", reason="the docs extra: pip install -e '.[docs]'")
    html = built_site()
    return html, {page: bs4.BeautifulSoup(page.read_text(), "html.parser")
                  for page in pages(html)}


@pytest.mark.slow
def test_no_page_shows_markdown_raw_in_a_code_block(site):
    html, soups = site
    found = []
    for page, soup in soups.items():
        for pre in soup.select("article pre"):
            text = pre.get_text()
            found += [f"{page.relative_to(html)}: {what}: {m.group(0)[:60]!r}"
                      for pattern, what in _MARKDOWN_IN_CODE if (m := pattern.search(text))]
        article = soup.select_one("article")
        if article is not None:
            for pre in article.select("pre"):
                pre.decompose()
            if "```" in article.get_text():
                found.append(f"{page.relative_to(html)}: a raw ``` fence in the text")
            if (m := re.search(r"^\.\. [\w:-]+::", article.get_text(), re.M)):
                found.append(f"{page.relative_to(html)}: raw reStructuredText {m.group(0)!r}")
    assert not found, "\n".join(found)


@pytest.mark.slow
def test_every_internal_link_and_image_resolves(site):
    html, soups = site
    ids = {page: {tag["id"] for tag in soup.find_all(id=True)} for page, soup in soups.items()}
    broken = []
    for page, soup in soups.items():
        for tag, attr in [("a", "href"), ("img", "src")]:
            for element in soup.select(f"article {tag}[{attr}]"):
                url = urlparse(element[attr])
                if url.scheme or element[attr].startswith("mailto:"):
                    continue
                target = (page.parent / unquote(url.path)).resolve() if url.path else page
                where = f"{page.relative_to(html)} -> {element[attr]}"
                if not target.is_file() or target.stat().st_size == 0:
                    broken.append(where)
                elif url.fragment and target.suffix == ".html" and target in ids \
                        and url.fragment not in ids[target]:
                    broken.append(f"{where} (no such anchor)")
    assert not broken, "\n".join(broken)


@pytest.mark.slow
def test_every_results_page_shows_its_figures_tables_and_headings(site):
    html, soups = site
    for source in sorted((DOCS / "results").glob("*.md")):
        soup = soups[html / "results" / f"{source.stem}.html"]
        article = soup.select_one("article")
        text = _outside_fences(source.read_text())
        images = len(re.findall(r"^!\[", text, re.M))
        headings = len(re.findall(r"^#{1,6} ", text, re.M))
        blocks = report.blocks_in(source.read_text())
        tables = sum(bool(re.search(r"^\|.*\|\s*\n\|[-:| ]+\|", report.render(name, ROOT / "results"),
                                    re.M)) for name in blocks)
        assert len(article.select("img")) == images, source.name
        assert len(article.select("h1, h2, h3, h4, h5, h6")) == headings, source.name
        assert len(article.select("table")) >= tables, source.name


@pytest.mark.slow
def test_every_public_name_and_module_and_command_has_a_page(site):
    html, _ = site
    generated = html / "reference" / "generated"
    missing = [name for name in ensemble_study.__all__ if name != "__version__"
               and not (generated / f"ensemble_study.{name}.html").is_file()]
    # Modules a user does not import: the command line (its own pages), the
    # compiled kernels and the studies' modules (reached through the CLI).
    internal = {"ensemble_study.cli", "ensemble_study.kernels"}
    for module in pkgutil.iter_modules(ensemble_study.__path__, "ensemble_study."):
        if module.name.rsplit(".", 1)[1].startswith("_") or module.name in internal:
            continue
        if not (generated / f"{module.name}.html").is_file():
            missing.append(module.name)
    missing += [f"command {name}" for name in main.commands
                if not (html / "reference" / "cli" / f"{name}.html").is_file()]
    assert not missing, f"not in the documentation: {missing}"
