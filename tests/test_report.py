"""The README's generated blocks, and the report command that writes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ensemble_study import report
from ensemble_study.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "results"


def test_readme_blocks_equal_what_the_committed_csvs_give():
    text = README.read_text()
    names = report.blocks_in(text)
    assert names, "README.md has no generated block"
    assert len(names) == len(set(names)), "a block appears twice"
    new, changed = report.update(text, RESULTS)
    assert changed == [], f"run `ensemble-study report`: out of date: {changed}"
    assert new == text


def test_every_registered_block_is_in_the_readme():
    assert set(report.blocks()) <= set(report.blocks_in(README.read_text()))


def test_update_rewrites_only_the_blocks(tmp_path):
    text = ("Prose 1.5 stays.\n<!-- report: boundary -->\nstale 0.999\n<!-- /report -->\n"
            "tail\n")
    new, changed = report.update(text, RESULTS)
    assert changed == ["boundary"]
    assert new.startswith("Prose 1.5 stays.\n<!-- report: boundary -->\n| scheme |")
    assert new.endswith("<!-- /report -->\ntail\n") and "stale" not in new
    assert report.update(new, RESULTS) == (new, [])


def test_unknown_block_and_missing_csv_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown report block 'nope'; known: "):
        report.update("<!-- report: nope -->\n<!-- /report -->\n", RESULTS)
    with pytest.raises(FileNotFoundError, match="sweep.csv is missing; run `ensemble-study sweep` first"):
        report.render("sweep-table", tmp_path)


def test_report_command_check_and_rewrite(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- report: spread -->\nold\n<!-- /report -->\n")
    runner = CliRunner()
    args = ["report", "--readme", str(readme), "--results", str(RESULTS)]
    res = runner.invoke(main, args + ["--check"])
    assert res.exit_code == 1 and "out of date: spread" in res.output
    assert readme.read_text().endswith("old\n<!-- /report -->\n")  # --check writes nothing
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "1 block(s) rewritten: spread" in res.output
    assert runner.invoke(main, args + ["--check"]).exit_code == 0


def test_report_command_on_a_folder_without_the_csv(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- report: depth-table -->\n<!-- /report -->\n")
    res = CliRunner().invoke(main, ["report", "--readme", str(readme), "--results",
                                    str(tmp_path)])
    assert res.exit_code == 2 and "run `ensemble-study depth` first" in res.output
    assert "Traceback" not in res.output


def test_number_formatting():
    assert report.num(0.35512) == "0.355" and report.num(0) == "0"
    assert report.num(2.2e-15, 2) == "2.2e-15"
    assert report.ci(0.5, 0.4, 0.6) == "0.5 [0.4, 0.6]" and report.ci(1, 1, 1) == "1"
    assert report.pvalue(3e-5) == "p < 1e-4" and report.pvalue(0.0312) == "p = 0.031"
