"""Issue 22: bad class labels (API check_labels and `evaluate --labels`) end in one line."""

import numpy as np
import pytest
from click.testing import CliRunner

from ensemble_study.cli import main
from ensemble_study.evaluate import check_labels
from ensemble_study.network import MLP

BAD = {
    "strings": np.array(["0", "1", "2", "0"]),
    "objects": np.array([0, "a", None, 1], dtype=object),
    "floats": np.array([0.0, 1.5, 2.0, 1.0]),
    "integral floats": np.array([0.0, 1.0, 2.0, 1.0]),
    "out of range": np.array([0, 1, 3, 1]),
    "negative": np.array([0, -1, 2, 1]),
    "wrong length": np.array([0, 1, 2]),
    "two dimensional": np.zeros((4, 1), dtype=int),
}


@pytest.fixture(scope="module")
def net():
    return MLP.random((3, 5, 3), "relu", "softmax", rng=1)


@pytest.mark.parametrize("kind", sorted(BAD))
def test_check_labels_is_a_value_error(net, kind):
    with pytest.raises(ValueError, match=r"^y must"):
        check_labels(net, BAD[kind], 4)


def test_empty_labels_for_no_examples_are_fine(net):
    assert check_labels(net, np.zeros(0, dtype=int), 0).shape == (0,)


@pytest.mark.parametrize("kind", ["strings", "floats", "out of range", "wrong length"])
def test_evaluate_labels_is_one_usage_line(net, tmp_path, kind):
    net.save(tmp_path / "net.npz")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(4, 3)))
    np.save(tmp_path / "y.npy", BAD[kind])
    r = CliRunner().invoke(main, ["evaluate", "--net", str(tmp_path / "net.npz"),
                                  "--inputs", str(tmp_path / "x.npy"),
                                  "--labels", str(tmp_path / "y.npy"),
                                  "--keep-prob", "0.5", "--out", str(tmp_path / "e.csv")])
    assert r.exit_code == 2, r.output
    assert "--labels" in r.output and "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_object_labels_file_is_one_usage_line(net, tmp_path):
    net.save(tmp_path / "net.npz")
    np.save(tmp_path / "x.npy", np.zeros((4, 3)))
    np.save(tmp_path / "y.npy", BAD["objects"], allow_pickle=True)
    r = CliRunner().invoke(main, ["evaluate", "--net", str(tmp_path / "net.npz"),
                                  "--inputs", str(tmp_path / "x.npy"),
                                  "--labels", str(tmp_path / "y.npy"),
                                  "--keep-prob", "0.5", "--out", str(tmp_path / "e.csv")])
    assert r.exit_code == 2, r.output
    assert "--labels" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
