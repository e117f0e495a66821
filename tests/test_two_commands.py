"""The README's two commands hold in sequence: `reproduce`, then the tests.

`reproduce` rewrites the committed CSVs. Their wall times always differ from
the committed ones, and on another host the last bits of a trained network
can move; the README's generated blocks must follow, or `test_report` fails
after the README's first command. The test runs `reproduce` in a copy of the
repository's documents (README.md and the pages under docs/) and results, with every study replaced by its
committed table perturbed as another machine might perturb it, and checks
that every block then matches the new CSVs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from ensemble_study import cli, publish, report
from ensemble_study.cli import maintenance
from ensemble_study.results import load_result
from ensemble_study.studies import default_studies, get

ROOT = Path(__file__).resolve().parent.parent


def _perturbed(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every float column moved by a few percent (zeros stay zero)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == float:
            out[col] = out[col] * 1.03
    return out


def test_reproduce_leaves_every_generated_block_matching_its_csv(tmp_path, monkeypatch):
    documents = report.documents(ROOT)
    assert len(documents) > 1, documents  # the results pages under docs/, at least
    for doc in documents:
        copy = tmp_path / doc.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(doc, copy)
    shutil.copytree(ROOT / "results", tmp_path / "results",
                    ignore=shutil.ignore_patterns(".cells"))
    for name in default_studies():
        study = get(name)
        committed = load_result(ROOT / "results" / f"{name}.csv")
        monkeypatch.setattr(study, "run", lambda *a, committed=committed, **kw:
                            _perturbed(committed))
        if study.measure is not None:
            timing = load_result(ROOT / "results" / f"{name}_timing.csv")
            monkeypatch.setattr(study, "measure", lambda params, t=timing: _perturbed(t))
    monkeypatch.setattr(maintenance, "draw_figures", lambda *args, **kw: [])
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.main, ["reproduce", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    changed_csvs = [name for name in default_studies()
                    if (tmp_path / "results" / f"{name}.csv").read_bytes()
                    != (ROOT / "results" / f"{name}.csv").read_bytes()]
    assert changed_csvs, "the perturbation must change what reproduce writes"
    assert report.documents(tmp_path) == [tmp_path / doc.relative_to(ROOT) for doc in documents]
    for doc in report.documents(tmp_path):
        assert publish.update(doc.read_text(), tmp_path / "results")[1] == [], doc
    assert np.isfinite(load_result(tmp_path / "results" / "reproduce_cost.csv")["seconds"]).all()
