"""MLP.save / MLP.load: a bit-exact round trip, and every malformed file refused."""

import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble_study import MLP, __version__
from ensemble_study.network import HIDDEN_ACTIVATIONS, OUTPUTS


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=5),
       data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_round_trip_is_bit_exact(tmp_path_factory, sizes, data, seed):
    hidden = data.draw(st.lists(st.sampled_from(HIDDEN_ACTIVATIONS),
                                min_size=len(sizes) - 2, max_size=len(sizes) - 2))
    output = data.draw(st.sampled_from(OUTPUTS))
    net = MLP.random(sizes, hidden, output, rng=seed)
    path = net.save(tmp_path_factory.mktemp("nets") / "net.npz")
    back = MLP.load(path)
    assert back.hidden == net.hidden and back.output == net.output
    assert len(back.weights) == len(net.weights)
    for a, b in zip(back.weights + back.biases, net.weights + net.biases):
        assert a.dtype == np.float64 and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


def test_file_holds_named_arrays_and_the_version(tmp_path):
    net = MLP.random((3, 2, 1), "tanh", "sigmoid", rng=0)
    path = net.save(tmp_path / "n.npz")
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["W0", "W1", "b0", "b1", "format", "hidden", "output",
                                   "version"]
        assert str(f["version"]) == __version__ and list(f["hidden"]) == ["tanh"]
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_save_refuses_another_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"path must end in .npz; got '.*net.pt'"):
        MLP.random((2, 1), rng=0).save(tmp_path / "net.pt")


def _write(path, **arrays):
    base = {"W0": np.ones((2, 3)), "b0": np.zeros(3), "W1": np.ones((3, 1)),
            "b1": np.zeros(1), "hidden": np.array(["relu"]), "output": np.array("identity"),
            "format": np.array(1), "version": np.array(__version__)}
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


@pytest.mark.parametrize("arrays,match", [
    ({"b1": None}, r"missing array\(s\) \['b1'\] for a network of 2 layers"),
    ({"hidden": None}, r"missing array\(s\) \['hidden'\]"),
    ({"W2": np.ones((1, 1))}, r"missing array\(s\) \['b2'\]"),
    ({"W3": np.ones((1, 1)), "b3": np.ones(1)}, r"unexpected array\(s\) \['W3', 'b3'\]"),
    ({"W1": np.ones((4, 1))}, r"layer shapes do not chain: weights\[0\] has shape \(2, 3\) "
                              r"but weights\[1\] has shape \(4, 1\)"),
    ({"b0": np.zeros(2)}, r"biases\[0\] must have shape \(3,\)"),
    ({"hidden": np.array(["gelu"])}, r"hidden activation must be one of .*got 'gelu'"),
    ({"hidden": np.array(["relu", "relu"])}, r"one per hidden layer \(1\); got 2"),
    ({"output": np.array("logsoftmax")}, r"output must be one of .*got 'logsoftmax'"),
    ({"W0": np.array([[1.0, np.nan, 0], [0, 0, 0]])}, r"weights\[0\] and biases\[0\] must "
                                                      r"be finite"),
    ({"b1": np.array([np.inf])}, r"biases\[1\] must be finite"),
    ({"W0": np.array([["a", "b", "c"]] * 2)}, r"W0 must be numeric; got dtype <U1"),
    ({"hidden": np.array([1])}, r"hidden must hold strings"),
    ({"format": np.array(2)}, r"format must be 1; got array\(2\)"),
])
def test_load_names_what_is_wrong(tmp_path, arrays, match):
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"bad.npz: .*" + match):
        MLP.load(path)


def test_load_refuses_pickles_and_other_files(tmp_path):
    pickled = _write(tmp_path / "obj.npz", hidden=np.array([{"relu": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"obj.npz: holds pickled \(object\) arrays, which are never loaded"):
        MLP.load(pickled)
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match=r"text.npz: not a zip archive, not an .npz file"):
        MLP.load(text)
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"one.npy: a single .npy array"):
        MLP.load(tmp_path / "one.npy")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(ValueError, match=r"empty.npz: missing array"):
        MLP.load(tmp_path / "empty.npz")
