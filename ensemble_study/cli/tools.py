"""Commands on one network: train it, or evaluate a network a user brings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ..datasets import DATASETS
from ..dropout import SCHEMES
from ..evaluate import ESTIMATORS
from ..network import HIDDEN_ACTIVATIONS, OUTPUTS
from ..results import save_result
from ..train import OPTIMIZERS, TrainConfig, seed_streams
from .options import KEEP_PROB, RESULTS_DIR, Command, FiniteFloat, check_out, check_output_path

# exact_ensemble's default limit; the commands that enumerate check it before training.
MAX_EXACT_UNITS = 24


def _check_enumerable(n_units: int, what: str, param_hint: str) -> None:
    if n_units > MAX_EXACT_UNITS:
        raise click.BadParameter(
            f"{what}: {n_units} dropped units would need 2**{n_units} subnetworks per exact "
            f"ensemble; allowed at most {MAX_EXACT_UNITS}", param_hint=param_hint)


def _train_dropout(n_hidden: int, keep_probs: tuple, input_keep_prob: float, scheme: str):
    """The DropoutConfig of ``train``: every hidden layer, and the input when q_in < 1."""
    from ..dropout import DropoutConfig

    if len(keep_probs) == 1:
        keep_probs = keep_probs * n_hidden
    if len(keep_probs) != n_hidden:
        raise click.BadParameter(
            f"give one keep probability for every hidden layer, or one per hidden layer "
            f"({n_hidden}); got {len(keep_probs)}: {keep_probs}", param_hint="--keep-prob")
    kp = {l + 1: q for l, q in enumerate(keep_probs)}
    if input_keep_prob < 1:
        kp[0] = input_keep_prob
    if len(set(kp.values())) == 1:
        return DropoutConfig(keep_probs[0], layers=sorted(kp), scheme=scheme)
    return DropoutConfig(kp, scheme=scheme)



@click.command(cls=Command)
@click.option("--dataset", type=click.Choice(DATASETS), default="digits", show_default=True,
              help="Offline dataset (two classes: one sigmoid output; more: softmax).")
@click.option("--keep-prob", type=KEEP_PROB, multiple=True, default=(0.5,), show_default=True,
              help="Probability of keeping a hidden unit during training: once for every "
                   "hidden layer, or repeated once per hidden layer.")
@click.option("--input-keep-prob", type=KEEP_PROB, default=1.0, show_default=True,
              help="Probability of keeping an input unit (1: no input dropout).")
@click.option("--scheme", type=click.Choice(SCHEMES), default="inverted", show_default=True,
              help="Dropout scheme (vanilla scales at test time, inverted at train time).")
@click.option("--hidden", type=click.IntRange(1), multiple=True, default=(10, 10),
              show_default=True, help="Width of a hidden layer; repeat once per layer. "
              "Every hidden layer is dropped: 2**(sum of widths) subnetworks.")
@click.option("--activation", type=click.Choice(HIDDEN_ACTIVATIONS), default="relu",
              show_default=True, help="Activation of every hidden layer.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True,
              help="Adam, or mini-batch SGD with momentum 0.9.")
@click.option("--learning-rate", type=FiniteFloat(0, min_open=True), default=0.01,
              show_default=True, help="Step size.")
@click.option("--epochs", type=click.IntRange(1), default=40, show_default=True,
              help="Passes over the training split.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Examples per step (each with its own fresh mask).")
@click.option("--weight-decay", type=FiniteFloat(0), default=0.0, show_default=True,
              help="L2 penalty 0.5 * wd * ||W||^2 on the weights.")
@click.option("--max-norm", type=FiniteFloat(0, min_open=True), default=None,
              help="Bound on each hidden unit's incoming weight norm. [default: none]")
@click.option("--exact/--no-exact", default=True, show_default=True,
              help="Also score the exact ensemble (every subnetwork) on the test split.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seeds the split, the initial network and the training masks.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "train.csv", show_default=True, callback=check_out,
              help="CSV of the training history (one row per epoch).")
@click.option("--save", "save_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the trained network to this .npz (MLP.save; "
              "read it back with MLP.load or `evaluate --net`). [default: not saved]")
def train(dataset, keep_prob, input_keep_prob, scheme, hidden, activation, optimizer,
          learning_rate, epochs, batch_size, weight_decay, max_norm, exact, seed, out,
          save_path):
    """Train one network with dropout; report the scaled pass (and exact ensemble) on test data."""
    from .. import MLP, exact_ensemble
    from ..datasets import load_dataset
    from ..masks import n_free_units
    from ..train import error_rate
    from ..train import train as train_network

    cfg = _train_dropout(len(hidden), keep_prob, input_keep_prob, scheme)
    check_output_path(out, "--out")
    if save_path is not None:
        if save_path.suffix != ".npz":
            raise click.BadParameter(f"must end in .npz; got {save_path}", param_hint="--save")
        check_output_path(save_path, "--save", sidecar=False)
    data_ss, init_ss, train_ss = seed_streams(seed)
    ds = load_dataset(dataset, rng=data_ss)
    net = MLP.random((ds.n_features, *hidden, ds.n_outputs), activation, ds.output,
                     rng=init_ss)
    if exact:
        from ..dropout import unit_keep_probs

        _check_enumerable(n_free_units(unit_keep_probs(net, cfg)), "--exact (or --no-exact)",
                          "--exact")
    tc = TrainConfig(optimizer=optimizer, learning_rate=learning_rate, epochs=epochs,
                     batch_size=batch_size, weight_decay=weight_decay, max_norm=max_norm)
    net, history = train_network(net, cfg, ds.X_train, ds.y_train, train_cfg=tc, rng=train_ss,
                                 eval_set=(ds.X_test, ds.y_test), progress=True)
    save_result(history, out, {"dataset": dataset, "architecture": net.architecture,
                               "activation": activation, "keep_prob": list(keep_prob),
                               "input_keep_prob": input_keep_prob, "scheme": scheme,
                               "seed": seed, "train_cfg": dataclasses.asdict(tc)})
    click.echo(f"wrote {out}; {net.architecture}, test error of the scaled pass: "
               f"{history['eval_error'].iloc[-1]:.4f}")
    if save_path is not None:
        click.echo(f"wrote {net.save(save_path)}")
    if exact:
        ens = exact_ensemble(net, cfg, ds.X_test, progress=True)
        click.echo(f"exact ensemble of {ens.n_subnetworks:,} subnetworks, test error: mean "
                   f"{error_rate(net.output, ens.mean, ds.y_test):.4f}, NWGM "
                   f"{error_rate(net.output, ens.geometric_mean, ds.y_test):.4f}")


def _load_npy(path: Path, param_hint: str):
    from ..budget import load_npy

    try:  # the header first: shape, dtype and size checked before reading the data
        return load_npy(path, param_hint)
    except (ValueError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None


@click.command(cls=Command)
@click.option("--net", "net_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True,
              help="The network: an .npz written by MLP.save or `train --save`, or a .pt "
                   "holding a whole pickled torch nn.Sequential (torch.save(model, path)), "
                   "read with torch.load(weights_only=False), which runs the pickle's code: "
                   "trusted files only.")
@click.option("--dataset", type=click.Choice(DATASETS), default=None,
              help="Score the test split of this dataset (with its labels), the split "
                   "`train --seed` held out.")
@click.option("--inputs", "inputs_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Or: inputs X of shape (n_examples, n_features) in a .npy file (read "
                   "without pickles).")
@click.option("--labels", "labels_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="With --inputs: integer class labels, shape (n_examples,), in a .npy file "
                   "(adds test error and NLL). [default: none]")
@click.option("--keep-prob", "keep_probs", type=KEEP_PROB, multiple=True,
              help="Probability of keeping a unit: once for every dropped layer, or once per "
                   "--layers value. [default: a .pt's nn.Dropout modules; required for .npz]")
@click.option("--layers", type=click.IntRange(0), multiple=True,
              help="Activation layer to drop (0 = input, 1..L-1 hidden); repeat for several. "
                   "[default: a .pt's dropped layers, else every hidden layer]")
@click.option("--scheme", type=click.Choice(SCHEMES), default=None,
              help="Dropout scheme the weights were trained under. [default: inverted, "
                   "PyTorch's]")
@click.option("--output", type=click.Choice(OUTPUTS), default=None,
              help="For a .pt ending in nn.Linear (logits): the output function, e.g. softmax "
                   "for a model trained with CrossEntropyLoss. [default: identity]")
@click.option("--max-subnetworks", type=click.IntRange(1), default=2**20, show_default=True,
              help="Enumerate the ensemble exactly up to this many subnetworks; beyond, "
                   "estimate it from --n-samples sampled ones (with standard errors).")
@click.option("--n-samples", type=click.IntRange(2), default=10_000, show_default=True,
              help="Sampled subnetworks K past the enumeration limit.")
@click.option("--estimator", type=click.Choice(tuple(ESTIMATORS)), default="auto",
              show_default=True,
              help="How to estimate the ensemble past the limit: rb_mc (sample the "
                   "outer dropped layers, average the last one exactly), mc (plain Monte "
                   "Carlo), auto (rb_mc where the last dropped layer feeds the "
                   "output, else mc).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="The seed given to `train` (the test split of --dataset); also seeds "
                   "the sampled masks.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "evaluate.csv", show_default=True,
              help="Result CSV; its parameters go to a JSON sidecar next to it.")
def evaluate(net_path, dataset, inputs_path, labels_path, keep_probs, layers, scheme, output,
             max_subnetworks, n_samples, estimator, seed, out):
    """A given network's dropout ensemble against its NWGM and scaled pass.

    Prints, and writes as a tidy CSV, the ensemble's arithmetic mean, its
    NWGM and the scheme's scaled pass, their gaps, and on a labelled dataset
    the test error and NLL of each.
    """
    import numpy as np

    from ..evaluate import check_labels, dropout_config, evaluate_network, load_network
    from ..network import check_input

    if (dataset is None) == (inputs_path is None):
        raise click.UsageError("give exactly one of --dataset and --inputs")
    if labels_path is not None and inputs_path is None:
        raise click.BadParameter("goes with --inputs (a --dataset has its own labels)",
                                 param_hint="--labels")
    if output is not None and net_path.suffix != ".pt":
        raise click.BadParameter(f"applies to a .pt network only (an .npz stores its output "
                                 f"function); got --net {net_path}", param_hint="--output")
    check_output_path(out, "--out")
    if net_path.suffix == ".pt":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise click.UsageError("reading a .pt network needs PyTorch: "
                                   "pip install -e '.[torch]'") from None
    try:
        net, default = load_network(net_path, output=output)
    except (ValueError, OSError) as exc:
        raise click.BadParameter(str(exc).replace("\n", " "), param_hint="--net") from None
    except Exception as exc:  # what unpickling a foreign .pt raises varies
        raise click.BadParameter(f"cannot read {net_path}: {type(exc).__name__}: "
                                 f"{exc}".replace("\n", " "), param_hint="--net") from None
    try:
        cfg = dropout_config(net, keep_probs, layers, scheme, default)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--keep-prob/--layers") from None
    data_ss, _, _ = seed_streams(seed)
    if dataset is not None:
        from ..datasets import load_dataset

        ds = load_dataset(dataset, rng=data_ss)
        X, y, hint = ds.X_test, ds.y_test, "--dataset"
        if net.output == "identity":
            raise click.BadParameter(f"{dataset} has class labels, but the network's output "
                                     f"is identity; pass --output for a .pt of logits, or "
                                     f"--inputs", param_hint="--dataset")
        if ds.n_outputs != net.sizes[-1]:
            raise click.BadParameter(f"{dataset} needs {ds.n_outputs} output unit(s); the "
                                     f"network {net.architecture} has {net.sizes[-1]}",
                                     param_hint="--dataset")
    else:
        X, hint = _load_npy(inputs_path, "--inputs"), "--inputs"
        y = None if labels_path is None else _load_npy(labels_path, "--labels")
    try:
        X = check_input(net, X)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} ({net.architecture})", param_hint=hint) from None
    if y is not None:
        try:
            y = check_labels(net, y, X.shape[0])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--labels") from None
    df = evaluate_network(net, cfg, X, y, max_subnetworks=max_subnetworks,
                          n_samples=n_samples, estimator=estimator,
                          rng=np.random.SeedSequence(seed, spawn_key=(3,)))
    shown = df.dropna(axis=1, how="all").drop(columns=["architecture", "output", "scheme",
                                                       "layers", "keep_prob"])
    shown["reference"] = shown["reference"].fillna("-")
    first = df.iloc[0]
    click.echo(f"{net.architecture} ({net.output} output), {cfg.scheme} dropout on layers "
               f"{first['layers']} at keep_prob {first['keep_prob']}, {len(X)} inputs:")
    click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    params = {"net": str(net_path), "dataset": dataset, "inputs": inputs_path,
              "keep_prob": (dict(cfg.keep_prob) if not isinstance(cfg.keep_prob, float)
                            else cfg.keep_prob), "layers": list(cfg.layers),
              "scheme": cfg.scheme, "output": net.output, "max_subnetworks": max_subnetworks,
              "n_samples": n_samples, "estimator": estimator, "seed": seed}
    click.echo(f"wrote {save_result(df, out, params)} ({len(df)} rows)")


COMMANDS = (train, evaluate)
