"""The documents' generated blocks, and the report command that writes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ensemble_study import publish, report
from ensemble_study.cli import main

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
DOCUMENTS = report.documents(ROOT)


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_of_every_document_equals_what_the_committed_csvs_give(doc):
    text = doc.read_text()
    new, changed = publish.update(text, RESULTS)
    assert changed == [], f"run `ensemble-study report`: {doc} out of date: {changed}"
    assert new == text


def test_every_registered_block_is_in_exactly_one_document():
    where = [(name, doc) for doc in DOCUMENTS for name in report.blocks_in(doc.read_text())]
    names = [name for name, _ in where]
    assert sorted(set(names)) == sorted(publish.blocks()), "a block is missing from the docs"
    twice = {name for name in names if names.count(name) > 1}
    assert not twice, f"blocks in more than one place: {twice}"


def test_documents_finds_the_readme_and_the_pages_that_hold_blocks(tmp_path):
    (tmp_path / "README.md").write_text("<!-- report: spread -->\nx\n<!-- /report -->\n")
    for rel, text in {"docs/a.md": "<!-- report: boundary -->\n<!-- /report -->\n",
                      "docs/guide/b.md": "<!-- report: mc-crossover -->\n<!-- /report -->\n",
                      "docs/no_block.md": "# a page\n",
                      "docs/_build/html/c.md": "<!-- report: spread -->\n<!-- /report -->\n",
                      "docs/auto_examples/d.md": "<!-- report: spread -->\n<!-- /report -->\n"
                      }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert report.documents(tmp_path) == [tmp_path / "README.md", tmp_path / "docs/a.md",
                                          tmp_path / "docs/guide/b.md"]
    (tmp_path / "README.md").write_text("no block\n")
    assert report.documents(tmp_path)[0] == tmp_path / "docs/a.md"


def test_update_rewrites_only_the_blocks(tmp_path):
    text = ("Prose 1.5 stays.\n<!-- report: boundary -->\nstale 0.999\n<!-- /report -->\n"
            "tail\n")
    new, changed = publish.update(text, RESULTS)
    assert changed == ["boundary"]
    assert new.startswith("Prose 1.5 stays.\n<!-- report: boundary -->\n| scheme |")
    assert new.endswith("<!-- /report -->\ntail\n") and "stale" not in new
    assert publish.update(new, RESULTS) == (new, [])


def test_unknown_block_and_missing_csv_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown report block 'nope'; known: "):
        publish.update("<!-- report: nope -->\n<!-- /report -->\n", RESULTS)
    with pytest.raises(FileNotFoundError, match="sweep.csv is missing; run `ensemble-study sweep` first"):
        publish.render("sweep-table", tmp_path)


def test_report_command_check_and_rewrite_every_document_under_root(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- report: spread -->\nold\n<!-- /report -->\n")
    page = tmp_path / "docs" / "results" / "boundary.md"
    page.parent.mkdir(parents=True)
    page.write_text("# Boundary\n<!-- report: boundary -->\nold\n<!-- /report -->\n")
    runner = CliRunner()
    args = ["report", "--root", str(tmp_path), "--results", str(RESULTS)]
    res = runner.invoke(main, args + ["--check"])
    assert res.exit_code == 1
    assert "README.md: out of date: spread" in res.output
    assert "boundary.md: out of date: boundary" in res.output
    for doc in (readme, page):  # --check writes nothing
        assert doc.read_text().endswith("old\n<!-- /report -->\n")
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "1 block(s) rewritten: spread" in res.output
    assert "1 block(s) rewritten: boundary" in res.output
    assert runner.invoke(main, args + ["--check"]).exit_code == 0


def test_report_command_on_one_document_and_the_deprecated_readme_option(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- report: spread -->\nold\n<!-- /report -->\n")
    other = tmp_path / "other.md"
    other.write_text("<!-- report: boundary -->\nold\n<!-- /report -->\n")
    res = CliRunner().invoke(main, ["report", "--readme", str(readme), "--results", str(RESULTS)])
    assert res.exit_code == 0, res.output
    assert "--readme is deprecated" in res.output and "rewritten: spread" in res.output
    assert other.read_text() == "<!-- report: boundary -->\nold\n<!-- /report -->\n"
    res = CliRunner().invoke(main, ["report", "--document", str(other), "--results",
                                    str(RESULTS), "--check"])
    assert res.exit_code == 1 and "out of date: boundary" in res.output


def test_report_command_on_a_folder_without_the_csv(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- report: depth-table -->\n<!-- /report -->\n")
    res = CliRunner().invoke(main, ["report", "--document", str(readme), "--results",
                                    str(tmp_path)])
    assert res.exit_code == 2 and "run `ensemble-study depth` first" in res.output
    assert "Traceback" not in res.output


def test_number_formatting():
    assert report.num(0.35512) == "0.355" and report.num(0) == "0"
    assert report.num(2.2e-15, 2) == "2.2e-15"
    assert report.ci(0.5, 0.4, 0.6) == "0.5 [0.4, 0.6]" and report.ci(1, 1, 1) == "1"
    assert report.pvalue(3e-5) == "p < 1e-4" and report.pvalue(0.0312) == "p = 0.031"


def _cells(row: str) -> int:
    # A cell may hold an escaped pipe (\|); CommonMark tables split on the others.
    return len(row.strip().replace("\\|", "").strip("|").split("|"))


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_markdown_table_has_as_many_cells_in_its_header_as_in_its_rule(doc):
    # A header cell holding "||" (a KL written KL(p || q)) has more cells than the rule
    # below it, and the page then shows the table as a paragraph of pipes.
    lines = doc.read_text().splitlines()
    for i in range(1, len(lines)):
        rule = lines[i].strip()
        if rule.startswith("|") and set(rule) <= set("|-: ") and "-" in rule:
            assert _cells(lines[i - 1]) == _cells(rule), (
                f"{doc.name}:{i}: header {lines[i - 1]!r} against rule {rule!r}")


def test_the_table_guard_counts_an_unescaped_double_pipe_as_two_cells():
    assert _cells("| a | KL(p || q) |") == 4
    assert _cells("|---|---|") == 2
    assert _cells("| a | non-monotone in \\|t\\| |") == 2
