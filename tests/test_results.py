"""Result files: exact round trip, sidecar, and no half-written file."""

import json
import os

import numpy as np
import pandas as pd
import pytest

import ensemble_study
from ensemble_study.results import load_params, load_result, save_result


def _table():
    gen = np.random.default_rng(0)
    return pd.DataFrame({"study": ["s"] * 5, "keep_prob": [0.1, 0.2, 0.3, 1 / 3, 1.0],
                         "gap": gen.normal(size=5) * 1e-13, "kl": [np.inf, 0, 1, 2, 3]})


def test_round_trip_is_exact_to_the_last_bit(tmp_path):
    df = _table()
    path = save_result(df, tmp_path / "x.csv", {"keep_probs": (0.1, 0.5), "seed": np.int64(3)})
    back = load_result(path)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    meta = load_params(path)
    assert meta["version"] == ensemble_study.__version__
    assert meta["params"] == {"keep_probs": [0.1, 0.5], "seed": 3}
    assert meta["rows"] == 5
    assert json.loads((tmp_path / "x.json").read_text()) == meta


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = save_result(_table(), tmp_path / "x.csv", {})
    before = path.read_bytes()

    class Boom(pd.DataFrame):
        def to_csv(self, fh, **kw):
            fh.write("study,keep_prob\nhalf")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_result(Boom(_table()), path, {})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "x.json"]


def test_result_files_get_the_umask_permissions_not_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_result(_table(), tmp_path / "x.csv", {})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
