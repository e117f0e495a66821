"""Issue 22: report blocks and figures on a CSV edited with its hash updated end in one
ValueError naming the CSV and the block or figure, never a KeyError/TypeError/IndexError."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble_study import publish
from ensemble_study.results import rehash

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _edited(tmp_path, stem, kind):
    df = pd.read_csv(RESULTS / f"{stem}.csv")
    num = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    obj = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if kind == "dropcol":
        df = df.drop(columns=[num[-1]])
    elif kind == "renamecol":
        df = df.rename(columns={df.columns[0]: "zzz"})
    elif kind == "strnum":
        df[num[-1]] = df[num[-1]].astype(object)
        df.loc[0, num[-1]] = "abc"
    elif kind == "nanid":
        df[obj[0]] = df[obj[0]].astype(object)
        df.loc[0, obj[0]] = np.nan
    elif kind == "header":
        df = df.iloc[:0]
    df.to_csv(tmp_path / f"{stem}.csv", index=False)
    meta = json.loads((RESULTS / f"{stem}.json").read_text())
    meta.pop("csv_sha256", None)
    meta.pop("rows", None)
    (tmp_path / f"{stem}.json").write_text(json.dumps(meta))
    with contextlib.redirect_stderr(io.StringIO()):
        rehash(tmp_path / f"{stem}.csv")
    return tmp_path / f"{stem}.csv"


# Each of these ended in a KeyError, AttributeError, TypeError or IndexError traceback.
@pytest.mark.parametrize("stem,kind,block", [
    ("regularizer", "dropcol", "regularizer-surrogates"),
    ("reproduce_cost", "dropcol", "reproduce-cost"),
    ("reproduce_cost", "strnum", "reproduce-cost"),
    ("reproduce_cost", "nanid", "reproduce-cost"),
    ("reproduce_time", "renamecol", "reproduce-time"),
    ("trained", "renamecol", "trained-error"),
    ("trained", "header", "trained-error"),
    ("spread", "header", "spread-verdict"),
])
def test_block_on_an_edited_table_is_one_value_error(tmp_path, stem, kind, block):
    csv = _edited(tmp_path, stem, kind)
    with pytest.raises(ValueError) as info:
        publish.render(block, tmp_path)
    msg = str(info.value)
    assert str(csv) in msg and repr(block) in msg and "\n" not in msg
    if kind == "dropcol":
        assert "lacks column" in msg
    if kind == "header":
        assert "has no rows" in msg


def test_figure_on_an_edited_table_names_csv_and_figure(tmp_path):
    csv = _edited(tmp_path, "srivastava", "nanid")
    with pytest.raises(ValueError) as info:
        publish.render_all(tmp_path, tmp_path / "fig")
    msg = str(info.value)
    assert str(csv) in msg and ".png" in msg and "\n" not in msg
    assert not (tmp_path / "fig").exists() or not list((tmp_path / "fig").iterdir())


def test_report_command_is_one_line(tmp_path):
    from click.testing import CliRunner

    from ensemble_study import cli

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "p.md").write_text("<!-- report: reproduce-cost -->\nold\n<!-- /report -->\n")
    res_dir = tmp_path / "res"
    res_dir.mkdir()
    _edited(res_dir, "reproduce_cost", "strnum")
    r = CliRunner().invoke(cli.main, ["report", "--results", str(res_dir),
                                "--document", str(docs / "p.md")])
    assert r.exit_code == 2, r.output
    assert "reproduce_cost.csv" in r.output and "Traceback" not in r.output
