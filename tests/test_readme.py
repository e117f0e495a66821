"""The README's API example prints exactly what the README says it prints."""

import contextlib
import io
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_api_example_output_matches_the_readme():
    text = README.read_text()
    section = text[text.index("## The API in ten lines"):]
    code, printed = re.findall(r"```(?:python)?\n(.*?)```", section, flags=re.S)[:2]
    out = io.StringIO()
    # The example sets numpy's print options; the context restores them.
    with np.printoptions(), contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue() == printed
