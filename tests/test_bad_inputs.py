"""A sweep of bad inputs to the public API: each is a clear ValueError/TypeError.

Every case asserts the exception type, that the message names the parameter
(or the file) at fault, that numpy emitted no warning on the way (a complex
value used to lose its imaginary part with only a ComplexWarning), and that
no file in the working folder changed. Count the cases with
``python -m pytest --collect-only -q tests/test_bad_inputs.py | tail -1``.
"""

import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble_study import (
    MLP,
    DropoutConfig,
    convert_scheme,
    exact_ensemble,
    sample_ensemble,
    scaled_forward,
    subnetwork_outputs,
)
from ensemble_study.bench import run_bench
from ensemble_study.datasets import load_dataset
from ensemble_study.dropout import dropout_step
from ensemble_study.masks import (
    enumerate_masks,
    mask_log_probs,
    n_free_units,
    n_masks,
    sample_masks,
)
from ensemble_study.metrics import (
    disagreement,
    gap_metrics,
    kl_divergence,
    relative_gap,
    total_variation,
)
from ensemble_study.publish import render_all
from ensemble_study.results import (
    check_output_folder,
    check_output_path,
    load_result,
    save_result,
)
from ensemble_study.train import (
    TrainConfig,
    error_rate,
    negative_log_likelihood,
    targets,
    train,
)

NET = MLP.random((3, 4, 2), "relu", "softmax", rng=0)  # L = 2
SIG = MLP.random((2, 3, 1), "relu", "sigmoid", rng=0)
IDN = MLP.random((2, 3, 1), "tanh", "identity", rng=0)
CFG = DropoutConfig(0.5, [0, 1])
X = np.zeros((2, 3))
X2 = np.zeros((4, 2))
Y01 = np.array([0, 1, 1, 0])
TC = TrainConfig(epochs=1, batch_size=4)
W, B = [np.ones((2, 3)), np.ones((3, 1))], [np.zeros(3), np.zeros(1)]
P = np.full((2, 3), 1 / 3)


def _arrays(w0=None, b0=None, **kw):
    w, b = list(W), list(B)
    if w0 is not None:
        w[0] = w0
    if b0 is not None:
        b[0] = b0
    return lambda d: MLP.from_arrays(w, b, **kw)


def _train(net=SIG, cfg=None, X=X2, y=Y01, **kw):
    kw = {"train_cfg": TC, "rng": 0, **kw}
    return lambda d: train(net, cfg, X, y, **kw)


def _results(d: Path):
    """A results folder holding one good pair (the tests check it is left alone)."""
    folder = d / "results"
    if not (folder / "x.csv").exists():
        save_result(pd.DataFrame({"a": [1.0, 2.0]}), folder / "x.csv", {"seed": 0})
    return folder


def _fifo(d):
    if not (d / "pipe.csv").exists():
        os.mkfifo(d / "pipe.csv")
    return d / "pipe.csv"


def _device(d):
    """A character device (a null device) made inside the temporary folder.

    Never a real one such as /dev/null: code without the check would replace
    the machine's device node with a CSV (it did, as root).
    """
    node = d / "null.csv"
    if not node.exists():
        try:
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")
    return node


def _link_out(d):
    (d / "results").mkdir(exist_ok=True)
    outside = d / "elsewhere.csv"
    outside.write_text("precious\n")
    if not (d / "results" / "link.csv").is_symlink():
        (d / "results" / "link.csv").symlink_to(outside)
    return d / "results" / "link.csv"


def _file(d, name="afile"):
    (d / name).write_text("not a folder\n")
    return d / name


def _csv(d, text, name="sweep.csv"):
    folder = d / "bad_results"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def _bad_sidecar(d):
    folder = _csv(d, "a\n1\n", "s.csv")
    (folder / "s.json").write_text("{")
    return folder / "s.csv"


def _tampered(d):
    folder = _results(d)
    target = folder / "y.csv"
    if not target.exists():
        save_result(pd.DataFrame({"a": [1.0]}), target, {})
        target.write_text("a\n2\n")  # new CSV beside the old sidecar
    return target


# (id, call taking the temporary folder, text the message must contain)
CASES = [
    # MLP.from_arrays: zero widths, complex, strings, ragged, not a sequence
    ("from_arrays zero-width hidden",
     lambda d: MLP.from_arrays([np.ones((2, 0)), np.ones((0, 1))], [np.ones(0), np.ones(1)]),
     "weights[0]"),
    ("from_arrays zero-width output",
     lambda d: MLP.from_arrays([np.ones((2, 0))], [np.ones(0)], []), "weights[0]"),
    ("from_arrays zero inputs", lambda d: MLP.from_arrays([np.ones((0, 1))], [np.ones(1)], []),
     "weights[0]"),
    ("from_arrays complex weights", _arrays(np.ones((2, 3)) * (1 + 1j)), "weights[0]"),
    ("from_arrays complex biases", _arrays(b0=np.zeros(3) + 1j), "biases[0]"),
    ("from_arrays string weights", _arrays([["a", "b", "c"], ["d", "e", "f"]]), "weights[0]"),
    ("from_arrays numeric strings", _arrays([["1", "2", "3"], ["4", "5", "6"]]), "weights[0]"),
    ("from_arrays ragged weights", _arrays([[1.0, 2.0, 3.0], [4.0]]), "weights[0]"),
    ("from_arrays object weights", _arrays(np.array([[object()] * 3] * 2)), "weights[0]"),
    ("from_arrays string biases", _arrays(b0=["a", "b", "c"]), "biases[0]"),
    ("from_arrays inf weights", _arrays(np.full((2, 3), np.inf)), "weights[0]"),
    ("from_arrays weights None", lambda d: MLP.from_arrays(None, B), "weights"),
    ("from_arrays weights one array", lambda d: MLP.from_arrays(np.ones((2, 1)), [np.ones(1)]),
     "weights"),
    ("from_arrays weights string", lambda d: MLP.from_arrays("abc", B), "weights"),
    ("from_arrays biases None", lambda d: MLP.from_arrays(W, None), "biases"),
    ("from_arrays biases int", lambda d: MLP.from_arrays(W, 0), "biases"),
    ("from_arrays hidden None", _arrays(hidden=None), "hidden"),
    ("from_arrays hidden 5", _arrays(hidden=5), "hidden"),
    ("from_arrays hidden [None]", _arrays(hidden=[None]), "hidden"),
    ("from_arrays hidden [['relu']]", _arrays(hidden=[["relu"]]), "hidden"),
    ("from_arrays output None", _arrays(output=None), "output"),
    ("from_arrays output list", _arrays(output=["softmax"]), "output"),
    ("from_arrays output 'linear'", _arrays(output="linear"), "output"),
    # MLP.random
    ("random sizes 2.7", lambda d: MLP.random((4, 2.7, 1), rng=0), "sizes"),
    ("random sizes 2.0", lambda d: MLP.random((4, 2.0, 1), rng=0), "sizes"),
    ("random sizes 'abc'", lambda d: MLP.random("abc", rng=0), "sizes"),
    ("random sizes None", lambda d: MLP.random(None, rng=0), "sizes"),
    ("random sizes 5", lambda d: MLP.random(5, rng=0), "sizes"),
    ("random sizes -1", lambda d: MLP.random((4, -1, 1), rng=0), "sizes"),
    ("random sizes True", lambda d: MLP.random((4, True, 1), rng=0), "sizes"),
    ("random sizes 0", lambda d: MLP.random((4, 0, 1), rng=0), "sizes"),
    ("random sizes one", lambda d: MLP.random((4,), [], rng=0), "sizes"),
    ("random sizes strings", lambda d: MLP.random(("4", "1"), [], rng=0), "sizes"),
    # more weights than MLP.random draws: refused before numpy allocates (1e30 made numpy
    # raise "Maximum allowed dimension exceeded"; 2**15 x 2**14 would take 4 GiB)
    ("random sizes 1e30", lambda d: MLP.random((1, 10**30), rng=0), "sizes"),
    ("random sizes 4 GiB", lambda d: MLP.random((2**15, 2**14, 1), rng=0), "sizes"),
    ("random bias_scale -1", lambda d: MLP.random((4, 2, 1), rng=0, bias_scale=-1), "bias_scale"),
    ("random bias_scale nan", lambda d: MLP.random((4, 2, 1), rng=0, bias_scale=np.nan),
     "bias_scale"),
    ("random bias_scale inf", lambda d: MLP.random((4, 2, 1), rng=0, bias_scale=np.inf),
     "bias_scale"),
    ("random bias_scale str", lambda d: MLP.random((4, 2, 1), rng=0, bias_scale="0.1"),
     "bias_scale"),
    ("random rng -1", lambda d: MLP.random((4, 2, 1), rng=-1), "rng"),
    ("random rng None", lambda d: MLP.random((4, 2, 1), rng=None), "rng"),
    ("random rng 0.5", lambda d: MLP.random((4, 2, 1), rng=0.5), "rng"),
    ("random rng RandomState", lambda d: MLP.random((4, 2, 1), rng=np.random.RandomState(0)),
     "rng"),
    ("random hidden None", lambda d: MLP.random((4, 2, 1), None, rng=0), "hidden"),
    ("random hidden 5", lambda d: MLP.random((4, 2, 1), 5, rng=0), "hidden"),
    ("random hidden two names", lambda d: MLP.random((4, 2, 1), ["relu", "tanh"], rng=0),
     "hidden"),
    ("random output 'relu'", lambda d: MLP.random((4, 2, 1), "relu", "relu", rng=0), "output"),
    # DropoutConfig
    ("config layers 5.5", lambda d: DropoutConfig(0.5, layers=5.5), "layers"),
    ("config layers '1'", lambda d: DropoutConfig(0.5, layers="1"), "layers"),
    ("config layers None", lambda d: DropoutConfig(0.5), "layers"),
    ("config layers [-1]", lambda d: DropoutConfig(0.5, [-1]), "layers"),
    ("config layers [1.0]", lambda d: DropoutConfig(0.5, [1.0]), "layers"),
    ("config layers []", lambda d: DropoutConfig(0.5, []), "layers"),
    ("config layers {1: 2}", lambda d: DropoutConfig(0.5, {1: 2}), "layers"),
    ("config layers repeated", lambda d: DropoutConfig(0.5, [1, 1]), "layers"),
    ("config keep_prob list", lambda d: DropoutConfig([0.5, 0.5], [0, 1]), "mapping"),
    ("config keep_prob tuple", lambda d: DropoutConfig((0.5,), [0]), "keep_prob"),
    ("config keep_prob array", lambda d: DropoutConfig(np.array([0.5]), [0]), "keep_prob"),
    ("config keep_prob nan", lambda d: DropoutConfig(np.nan, [0]), "keep_prob"),
    ("config keep_prob inf", lambda d: DropoutConfig(np.inf, [0]), "keep_prob"),
    ("config keep_prob None", lambda d: DropoutConfig(None, [0]), "keep_prob"),
    ("config keep_prob 0", lambda d: DropoutConfig(0, [0]), "keep_prob"),
    ("config keep_prob '0.5'", lambda d: DropoutConfig("0.5", [0]), "keep_prob"),
    ("config keep_prob complex", lambda d: DropoutConfig(0.5 + 0j, [0]), "keep_prob"),
    ("config keep_prob {0: 2}", lambda d: DropoutConfig({0: 2}), "keep_prob[0]"),
    ("config keep_prob {0: nan}", lambda d: DropoutConfig({0: np.nan}), "keep_prob[0]"),
    ("config keep_prob key 'a'", lambda d: DropoutConfig({"a": 0.5}), "layers"),
    ("config keep_prob {}", lambda d: DropoutConfig({}), "keep_prob"),
    ("config scheme 'Vanilla'", lambda d: DropoutConfig(0.5, [0], scheme="Vanilla"), "scheme"),
    ("config scheme None", lambda d: DropoutConfig(0.5, [0], scheme=None), "scheme"),
    ("config scheme list", lambda d: DropoutConfig(0.5, [0], scheme=["vanilla"]), "scheme"),
    # exact_ensemble
    ("exact net None", lambda d: exact_ensemble(None, CFG, X), "net"),
    ("exact net {}", lambda d: exact_ensemble({}, CFG, X), "net"),
    ("exact cfg None", lambda d: exact_ensemble(NET, None, X), "cfg"),
    ("exact cfg 0.5", lambda d: exact_ensemble(NET, 0.5, X), "cfg"),
    ("exact layer out of range", lambda d: exact_ensemble(NET, DropoutConfig(0.5, [5]), X),
     "layers"),
    ("exact X complex", lambda d: exact_ensemble(NET, CFG, X + 1j), "X"),
    ("exact X numeric strings", lambda d: exact_ensemble(NET, CFG, [["1", "2", "3"]]), "X"),
    ("exact X ragged", lambda d: exact_ensemble(NET, CFG, [[1.0, 2.0, 3.0], [1.0]]), "X"),
    ("exact X None", lambda d: exact_ensemble(NET, CFG, None), "X"),
    ("exact X string", lambda d: exact_ensemble(NET, CFG, "abc"), "X"),
    ("exact X wrong width", lambda d: exact_ensemble(NET, CFG, np.zeros((2, 4))), "X"),
    ("exact X nan", lambda d: exact_ensemble(NET, CFG, np.full((2, 3), np.nan)), "X"),
    ("exact max_subnetworks 'abc'", lambda d: exact_ensemble(NET, CFG, X, max_subnetworks="abc"),
     "max_subnetworks"),
    ("exact max_subnetworks None", lambda d: exact_ensemble(NET, CFG, X, max_subnetworks=None),
     "max_subnetworks"),
    ("exact max_subnetworks 0", lambda d: exact_ensemble(NET, CFG, X, max_subnetworks=0),
     "max_subnetworks"),
    ("exact max_subnetworks 2.5", lambda d: exact_ensemble(NET, CFG, X, max_subnetworks=2.5),
     "max_subnetworks"),
    ("exact max_subnetworks too few", lambda d: exact_ensemble(NET, CFG, X, max_subnetworks=4),
     "max_subnetworks"),
    ("exact chunk_size 'a'", lambda d: exact_ensemble(NET, CFG, X, chunk_size="a"), "chunk_size"),
    ("exact chunk_size 0", lambda d: exact_ensemble(NET, CFG, X, chunk_size=0), "chunk_size"),
    # sample_ensemble (its validation at the top; the chunked draw is issue 9's)
    ("sample rng -1", lambda d: sample_ensemble(NET, CFG, X, 4, rng=-1), "rng"),
    ("sample rng np.int64(-1)", lambda d: sample_ensemble(NET, CFG, X, 4, rng=np.int64(-1)),
     "rng"),
    ("sample rng None", lambda d: sample_ensemble(NET, CFG, X, 4, rng=None), "rng"),
    ("sample rng '0'", lambda d: sample_ensemble(NET, CFG, X, 4, rng="0"), "rng"),
    ("sample n_samples 0", lambda d: sample_ensemble(NET, CFG, X, 0, rng=0), "n_samples"),
    ("sample n_samples 2.5", lambda d: sample_ensemble(NET, CFG, X, 2.5, rng=0), "n_samples"),
    ("sample n_samples '10'", lambda d: sample_ensemble(NET, CFG, X, "10", rng=0), "n_samples"),
    ("sample net None", lambda d: sample_ensemble(None, CFG, X, 4, rng=0), "net"),
    ("sample X inf", lambda d: sample_ensemble(NET, CFG, np.full((1, 3), np.inf), 4, rng=0), "X"),
    ("sample X complex", lambda d: sample_ensemble(NET, CFG, X + 1j, 4, rng=0), "X"),
    # scaled_forward, subnetwork_outputs, convert_scheme, dropout_step
    ("scaled net None", lambda d: scaled_forward(None, CFG, X), "net"),
    ("scaled cfg str", lambda d: scaled_forward(NET, "inverted", X), "cfg"),
    ("scaled X complex", lambda d: scaled_forward(NET, CFG, X + 1j), "X"),
    ("subnetworks masks complex",
     lambda d: subnetwork_outputs(NET, CFG, X, np.ones((1, 7)) + 0j), "masks"),
    ("subnetworks masks strings", lambda d: subnetwork_outputs(NET, CFG, X, [["1"] * 7]), "masks"),
    ("subnetworks masks 0.5", lambda d: subnetwork_outputs(NET, CFG, X, np.full((1, 7), 0.5)),
     "masks"),
    ("subnetworks masks shape", lambda d: subnetwork_outputs(NET, CFG, X, np.ones((1, 6))),
     "masks"),
    ("subnetworks masks None", lambda d: subnetwork_outputs(NET, CFG, X, None), "masks"),
    ("subnetworks masks nan", lambda d: subnetwork_outputs(NET, CFG, X, np.full((1, 7), np.nan)),
     "masks"),
    ("subnetworks masks ragged", lambda d: subnetwork_outputs(NET, CFG, X, [[1] * 7, [1]]),
     "masks"),
    ("convert scheme 'x'", lambda d: convert_scheme(NET, CFG, "x"), "scheme"),
    ("convert net None", lambda d: convert_scheme(None, CFG, "vanilla"), "net"),
    ("convert cfg None", lambda d: convert_scheme(NET, None, "vanilla"), "cfg"),
    ("dropout_step A complex",
     lambda d: dropout_step(np.ones(3) + 1j, 0.5, "inverted", mode="test"), "A"),
    ("dropout_step A strings", lambda d: dropout_step(["a"], 0.5, "inverted", mode="test"), "A"),
    ("dropout_step A ragged",
     lambda d: dropout_step([[1.0], [1.0, 2.0]], 0.5, "inverted", mode="test"), "A"),
    ("dropout_step A inf",
     lambda d: dropout_step(np.full(3, np.inf), 0.5, "inverted", mode="train", rng=0), "A"),
    ("dropout_step A / keep_prob overflows",
     lambda d: dropout_step(np.full(64, 1e308), 0.5, "inverted", mode="train", rng=0), "A"),
    ("load_dataset noise 1e308", lambda d: load_dataset("xor", rng=0, n_samples=40, noise=1e308),
     "noise"),
    ("load_dataset n_samples 1 (empty split)", lambda d: load_dataset("xor", rng=0, n_samples=1),
     "n_samples"),
    ("random bias_scale 1e308", lambda d: MLP.random((4, 2, 1), rng=0, bias_scale=1e308),
     "bias_scale"),
    ("random sizes 0-d array", lambda d: MLP.random(np.array(3), rng=0), "sizes"),
    ("random hidden 0-d array", lambda d: MLP.random((4, 2, 1), np.array("relu"), rng=0),
     "hidden"),
    ("config scheme empty array", lambda d: DropoutConfig(0.5, [0], scheme=np.array([])),
     "scheme"),
    ("dropout_step mode empty array",
     lambda d: dropout_step(np.ones(3), 0.5, "inverted", mode=np.array([])), "mode"),
    ("train eval_set (None, None)", _train(eval_set=(None, None)), "eval_set[0]"),
    ("dropout_step keep_prob 2", lambda d: dropout_step(np.ones(3), 2, "inverted", mode="test"),
     "keep_prob"),
    ("dropout_step mode 'eval'", lambda d: dropout_step(np.ones(3), 0.5, "inverted", mode="eval"),
     "mode"),
    ("dropout_step rng -1",
     lambda d: dropout_step(np.ones(3), 0.5, "inverted", mode="train", rng=-1), "rng"),
    ("dropout_step rng None", lambda d: dropout_step(np.ones(3), 0.5, "inverted", mode="train"),
     "rng"),
    ("dropout_step scheme None", lambda d: dropout_step(np.ones(3), 0.5, None, mode="test"),
     "scheme"),
    # masks
    ("enumerate keep_probs complex", lambda d: next(enumerate_masks([0.5 + 1j], 4)),
     "keep_probs"),
    ("enumerate keep_probs 0", lambda d: next(enumerate_masks([0.0], 4)), "keep_probs"),
    ("enumerate keep_probs strings", lambda d: next(enumerate_masks(["0.5"], 4)), "keep_probs"),
    ("enumerate chunk_size 0", lambda d: next(enumerate_masks([0.5], 0)), "chunk_size"),
    ("sample_masks rng -1", lambda d: sample_masks([0.5], 3, -1), "rng"),
    ("sample_masks n_samples 0", lambda d: sample_masks([0.5], 0, 0), "n_samples"),
    ("sample_masks keep_probs 'abc'", lambda d: sample_masks("abc", 3, 0), "keep_probs"),
    ("mask_log_probs masks shape", lambda d: mask_log_probs(np.ones((2, 3)), [0.5, 0.5]),
     "masks"),
    ("mask_log_probs masks 2", lambda d: mask_log_probs(np.full((1, 2), 2), [0.5, 0.5]), "masks"),
    ("mask_log_probs masks complex", lambda d: mask_log_probs(np.ones((1, 2)) + 1j, [0.5, 0.5]),
     "masks"),
    ("n_free_units 2-D", lambda d: n_free_units(np.full((2, 2), 0.5)), "keep_probs"),
    ("n_masks nan", lambda d: n_masks([np.nan]), "keep_probs"),
    # metrics
    ("gap_metrics output 'tanh'", lambda d: gap_metrics(P, P, output="tanh"), "output"),
    ("gap_metrics shapes", lambda d: gap_metrics(P, P[:1, :2]), "ensemble"),
    ("gap_metrics complex", lambda d: gap_metrics(P + 1j, P), "ensemble"),
    ("gap_metrics single strings", lambda d: gap_metrics(P, [["a"] * 3] * 2), "single"),
    ("gap_metrics std shape", lambda d: gap_metrics(P, P, std=np.ones(5)), "std"),
    ("gap_metrics empty", lambda d: gap_metrics(np.zeros((0, 3)), np.zeros((0, 3))), "ensemble"),
    ("kl_divergence output None", lambda d: kl_divergence(P, P, None), "output"),
    ("total_variation output identity", lambda d: total_variation(P, P, "identity"), "output"),
    ("disagreement single ragged", lambda d: disagreement(P, [[1.0], [1.0, 2.0]], "softmax"),
     "single"),
    ("relative_gap std complex", lambda d: relative_gap(P, P, P + 1j), "std"),
    # train and its helpers
    ("train sigmoid labels 2", _train(y=np.array([0, 1, 2, 0])), "y"),
    ("train sigmoid labels -1", _train(y=np.array([0, 1, -1, 0])), "y"),
    ("train sigmoid labels 0.5", _train(y=np.array([0, 1, 0.5, 0])), "y"),
    ("train empty labels", _train(y=np.array([], dtype=int)), "y"),
    ("train string labels", _train(y=np.array(["a", "b", "a", "b"])), "y"),
    ("train NaN labels", _train(y=np.array([0, 1, np.nan, 0])), "y"),
    ("train inf targets", _train(net=IDN, y=np.array([0.0, 1.0, np.inf, 0.0])), "y"),
    ("train complex targets", _train(net=IDN, y=np.zeros(4) + 1j), "y"),
    ("train y scalar", _train(y=5), "y"),
    ("train y None", _train(y=None), "y"),
    ("train softmax float labels", _train(net=NET, X=np.zeros((4, 3)), y=np.array([0.0, 1, 1, 0])),
     "y"),
    ("train softmax label 2 of 2", _train(net=NET, X=np.zeros((4, 3)), y=np.array([0, 1, 2, 0])),
     "y"),
    ("train softmax targets not probabilities",
     _train(net=NET, X=np.zeros((4, 3)), y=np.full((4, 2), 3.0)), "y"),
    ("train X y mismatch", _train(y=np.array([0, 1])), "X and y"),
    ("train X complex", _train(X=X2 + 1j), "X"),
    ("train eval labels out of range", _train(eval_set=(X2, np.array([0, 1, 5, 0]))),
     "eval_set"),
    ("train eval_set=X", _train(eval_set=X2), "eval_set"),
    ("train eval_set triple", _train(eval_set=(X2, Y01, Y01)), "eval_set"),
    ("train eval X wrong width", _train(eval_set=(np.zeros((4, 3)), Y01)), "eval_set[0]"),
    ("train eval sizes differ", _train(eval_set=(X2, Y01[:2])), "eval_set"),
    ("train eval string labels", _train(eval_set=(X2, np.array(list("abab")))), "eval_set"),
    ("train train_cfg None", _train(train_cfg=None), "train_cfg"),
    ("train rng -1", _train(rng=-1), "rng"),
    ("train cfg 'x'", _train(cfg="x"), "cfg"),
    ("train net None", _train(net=None), "net"),
    ("TrainConfig learning_rate inf", lambda d: TrainConfig(learning_rate=np.inf),
     "learning_rate"),
    ("TrainConfig learning_rate nan", lambda d: TrainConfig(learning_rate=np.nan),
     "learning_rate"),
    ("TrainConfig learning_rate str", lambda d: TrainConfig(learning_rate="0.1"),
     "learning_rate"),
    ("TrainConfig weight_decay inf", lambda d: TrainConfig(weight_decay=np.inf), "weight_decay"),
    ("TrainConfig weight_decay nan", lambda d: TrainConfig(weight_decay=np.nan), "weight_decay"),
    ("TrainConfig max_norm nan", lambda d: TrainConfig(max_norm=np.nan), "max_norm"),
    ("TrainConfig max_norm inf", lambda d: TrainConfig(max_norm=np.inf), "max_norm"),
    ("TrainConfig momentum nan", lambda d: TrainConfig(momentum=np.nan), "momentum"),
    ("TrainConfig beta1 1", lambda d: TrainConfig(beta1=1), "beta1"),
    ("TrainConfig batch_size 1.5", lambda d: TrainConfig(batch_size=1.5), "batch_size"),
    ("TrainConfig epochs '3'", lambda d: TrainConfig(epochs="3"), "epochs"),
    ("TrainConfig loss 'x'", lambda d: TrainConfig(loss="x"), "loss"),
    ("TrainConfig optimizer None", lambda d: TrainConfig(optimizer=None), "optimizer"),
    ("error_rate output identity", lambda d: error_rate("identity", P, [0, 1]), "output"),
    ("error_rate y length", lambda d: error_rate("softmax", P, [0, 1, 2]), "y"),
    ("error_rate y out of range", lambda d: error_rate("softmax", P, [0, 3]), "y"),
    ("error_rate probs 1-D", lambda d: error_rate("softmax", [0.5, 0.5], [0, 1]), "probs"),
    ("negative_log_likelihood label 3", lambda d: negative_log_likelihood("softmax", P, [0, 3]),
     "y"),
    ("negative_log_likelihood sigmoid 2",
     lambda d: negative_log_likelihood("sigmoid", np.full((2, 1), 0.5), [0, 2]), "y"),
    ("targets y scalar", lambda d: targets(SIG, 5), "y"),
    ("targets net None", lambda d: targets(None, [0, 1]), "net"),
    # datasets
    ("load_dataset name None", lambda d: load_dataset(None, rng=0), "name"),
    ("load_dataset name list", lambda d: load_dataset(["moons"], rng=0), "name"),
    ("load_dataset test_fraction 'a'", lambda d: load_dataset("moons", rng=0, test_fraction="a"),
     "test_fraction"),
    ("load_dataset test_fraction nan",
     lambda d: load_dataset("moons", rng=0, test_fraction=np.nan), "test_fraction"),
    ("load_dataset noise inf", lambda d: load_dataset("moons", rng=0, noise=np.inf), "noise"),
    ("load_dataset noise nan", lambda d: load_dataset("moons", rng=0, noise=np.nan), "noise"),
    ("load_dataset noise str", lambda d: load_dataset("moons", rng=0, noise="0.1"), "noise"),
    ("load_dataset n_samples 2.5", lambda d: load_dataset("moons", rng=0, n_samples=2.5),
     "n_samples"),
    ("load_dataset rng -1", lambda d: load_dataset("moons", rng=-1), "rng"),
    # result files: bad targets are refused before anything is written
    ("save_result path a fifo", lambda d: save_result(pd.DataFrame({"a": [1]}), _fifo(d), {}),
     "pipe.csv"),
    ("save_result path a folder",
     lambda d: save_result(pd.DataFrame({"a": [1]}), _results(d), {}), "results"),
    ("save_result parent a file",
     lambda d: save_result(pd.DataFrame({"a": [1]}), _file(d) / "x.csv", {}), "afile"),
    ("save_result symlink outside",
     lambda d: save_result(pd.DataFrame({"a": [1]}), _link_out(d), {}), "link.csv"),
    ("save_result sidecar a folder",
     lambda d: save_result(pd.DataFrame({"a": [1]}), _results(d) / "z.csv",
                           {} if (_results(d) / "z.json").mkdir(exist_ok=True) else {}), "z.json"),
    ("save_result path None", lambda d: save_result(pd.DataFrame({"a": [1]}), None, {}), "path"),
    ("save_result a device", lambda d: save_result(pd.DataFrame({"a": [1]}), _device(d), {}),
     "null.csv"),
    ("check_output_path a device", lambda d: check_output_path(_device(d), "--out"), "--out"),
    ("check_output_path 42", lambda d: check_output_path(42, "--out"), "--out"),
    ("check_output_folder a file", lambda d: check_output_folder(_file(d), "--figures"),
     "--figures"),
    ("check_output_folder below a file",
     lambda d: check_output_folder(_file(d) / "sub", "--figures"), "--figures"),
    ("load_result hash mismatch", lambda d: load_result(_tampered(d)), "y.csv"),
    ("load_result empty file", lambda d: load_result(_csv(d, "", "x.csv") / "x.csv"), "x.csv"),
    ("load_result bad sidecar", lambda d: load_result(_bad_sidecar(d)), "s.json"),
    ("render_all empty CSV", lambda d: render_all(_csv(d, ""), d / "figs"), "sweep.csv"),
    ("render_all header only", lambda d: render_all(_csv(d, "study,keep_prob\n"), d / "figs"),
     "sweep.csv"),
    ("render_all missing columns", lambda d: render_all(_csv(d, "a,b\n1,2\n"), d / "figs"),
     "sweep.csv"),
    ("render_all binary garbage",
     lambda d: render_all(_csv(d, "\x00\xff\xfe garbage"), d / "figs"), "sweep.csv"),
    ("render_all ragged rows",
     lambda d: render_all(_csv(d, 'a,b\n1,2,3,4\n"unterminated\n'), d / "figs"), "sweep.csv"),
    # bench (refused before any timing)
    ("run_bench naive_budget nan", lambda d: run_bench(True, naive_budget=np.nan),
     "naive_budget"),
    ("run_bench naive_budget -1", lambda d: run_bench(True, naive_budget=-1), "naive_budget"),
    ("run_bench naive_budget '3'", lambda d: run_bench(True, naive_budget="3"), "naive_budget"),
]


def _snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its kind and bytes (a file changed = a new value)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p)] = ("link", os.readlink(p))
        elif p.is_file():
            out[str(p)] = ("file", p.read_bytes())
        else:
            out[str(p)] = ("other", None)
    return out


@pytest.mark.parametrize("call, names", [pytest.param(c, n, id=i) for i, c, n in CASES])
def test_bad_input_is_a_clear_error(call, names, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _results(tmp_path)  # an existing pair that no failure may touch
    try:
        call(tmp_path)  # a first call makes the case's files (idempotently)
    except Exception:
        pass  # judged by the second call
    before = _snapshot(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. numpy's ComplexWarning: no silent conversion
        with pytest.raises((ValueError, TypeError)) as info:
            call(tmp_path)
    assert names in str(info.value), str(info.value)
    assert "\n" not in str(info.value).strip(), "one line"
    assert _snapshot(tmp_path) == before
