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
            f"ensemble; allowed at most {MAX_EXACT_UNITS}; pass --no-exact to train without "
            f"the exact ensemble (evaluate estimates it later)", param_hint=param_hint)


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
        provenance = {"dataset": dataset, "seed": seed,
                      "split": "load_dataset(dataset, seed=seed)",
                      "standardise": {"mean": ds.mean.tolist(), "scale": ds.scale.tolist()}}
        click.echo(f"wrote {net.save(save_path, dropout=cfg, provenance=provenance)}")
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
                   "holding a whole pickled torch nn.Sequential or chain-like nn.Module "
                   "(torch.save(model, path)), "
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
@click.option("--max-subnetworks", type=click.IntRange(1, 2**24), default=2**20,
              show_default=True,
              help="Enumerate the ensemble exactly up to this many subnetworks (at most "
                   "2**24 = 16777216); beyond, estimate it from --n-samples sampled masks "
                   "(with standard errors).")
@click.option("--n-samples", type=click.IntRange(2), default=10_000, show_default=True,
              help="Sampled masks K when the ensemble is estimated (auto lowers K to fit "
                   "--time-budget, and says so).")
@click.option("--estimator", type=click.Choice(tuple(ESTIMATORS)), default="auto",
              show_default=True,
              help="How to compute the ensemble: exact (enumerate every subnetwork), rb_mc "
                   "(sample the outer dropped layers, average the last one exactly), "
                   "certified (control variates with exactly known means and antithetic "
                   "masks, with a calibrated t-interval), mc (plain Monte Carlo), auto (a "
                   "cost model picks: exact within --max-subnetworks and the budget, rb_mc "
                   "where a sample costs at most 16 plain ones, else certified where it "
                   "applies, else mc; the choice and its estimated time and memory print "
                   "before the work starts, the estimator used and its interval half-width "
                   "once it is done). An explicit choice out of reach (memory "
                   "over 512 MiB, time over the budget) is refused, naming the cheaper one.")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True,
              help="Seconds the ensemble may take by the cost model's (upper) estimate.")
@click.option("--k", "ks", type=click.IntRange(1), multiple=True,
              help="K of the MC dropout rows (and of every other sampled predictor); "
                   "repeat for several. [default: 10]")
@click.option("--draws", type=click.IntRange(1), default=5, show_default=True,
              help="Independent draws of each sampled predictor at each K; its row holds "
                   "their mean and spread.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]),
              default="table", show_default=True,
              help="How the rows print on stdout (the --out CSV is written either way).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="The seed given to `train` (the test split of --dataset); also seeds "
                   "the sampled masks.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=RESULTS_DIR / "evaluate.csv", show_default=True,
              help="Result CSV; its parameters go to a JSON sidecar next to it.")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True,
              help="Local worker processes for the certified estimator: its batches of "
                   "examples run on them (capped at the cores this process may use). The "
                   "batches are fixed by the sizes alone, so the table is the same to the "
                   "bit whatever --jobs; the other estimators and the predictors run in "
                   "this process, and no pool starts unless the certified estimator runs.")
def evaluate(net_path, dataset, inputs_path, labels_path, keep_probs, layers, scheme, output,
             max_subnetworks, n_samples, estimator, time_budget, ks, draws, fmt, seed, out,
             jobs):
    """A given network's dropout ensemble against every registered predictor.

    Prints, and writes as a tidy CSV, the ensemble's arithmetic mean (exact,
    or estimated with its standard error) and one row per predictor of
    ensemble_study.predictors (the scaled eval() pass, the exact NWGM and its
    correction where the ensemble is exact, moment propagation, MC dropout
    at each --k over --draws draws), each scored against the mean and, on
    labels, by error, NLL, Brier and ECE. The estimator's choice and
    estimated cost print on stderr before the work starts.
    """
    import numpy as np

    from ..evaluate import (
        check_labels,
        dropout_config,
        evaluate_network,
        legend_text,
        load_network,
    )
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
    info = {}
    if net_path.suffix == ".pt" and output is None and net.output == "identity":
        early_notes = ["note: the model ends in a Linear, so its outputs are averaged as they "
                       "are (identity); if they are logits, pass --output softmax or "
                       "--output sigmoid"]
    else:
        early_notes = []
    if net_path.suffix == ".npz":
        from ..dropout import load_with_dropout

        _, default, info = load_with_dropout(net_path)
        if default is None and not keep_probs:
            raise click.BadParameter(
                f"{net_path} stores no dropout (saved without MLP.save(dropout=) or by an "
                f"older version); give --keep-prob (and --layers, and --scheme vanilla if it "
                f"was trained with vanilla dropout), or re-save it with "
                f"MLP.save(path, dropout=cfg)", param_hint="--keep-prob")
    try:
        cfg = dropout_config(net, keep_probs, layers, scheme, default)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--keep-prob/--layers") from None
    notes = list(early_notes)  # printed once every input is validated (errors stay one line)

    def note(line, err=True):
        notes.append(line)

    if default is None:
        note(f"note: {net_path} stores no dropout: evaluating the options' keep_prob, "
             f"{cfg.scheme} scheme" + ("" if scheme else " (the default; pass --scheme "
                                        "vanilla if it was trained with vanilla dropout)"),
             err=True)
    else:
        src = "the file" if net_path.suffix == ".npz" else "the model's nn.Dropout"
        used = "options" if keep_probs or layers else f"dropout from {src}"
        note(f"dropout: {used} (keep_prob {_describe(cfg)}, {cfg.scheme})", err=True)
        if scheme and scheme != default.scheme:
            note(f"note: --scheme {scheme} overrides the file's {default.scheme}", err=True)
    data_ss, _, _ = seed_streams(seed)
    if dataset is not None and (info.get("dataset") != dataset or info.get("seed") != seed):
        trained = (f"it was trained on {info['dataset']} with --seed {info['seed']}"
                   if "dataset" in info else "its file does not say what it was trained on")
        note(f"warning: the test split of {dataset} for --seed {seed} may overlap the "
             f"network's training data ({trained}); score data it never saw with --inputs "
             f"and --labels, or pass the --seed it was trained with", err=True)
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
            fix = ("; for a .pt of logits pass --output softmax (CrossEntropyLoss) or "
                   "--output sigmoid (BCEWithLogitsLoss)"
                   if net.output == "identity" and net_path.suffix == ".pt" else "")
            raise click.BadParameter(str(exc) + fix, param_hint="--labels") from None
    def report(line):  # once the estimator is accepted: an error stays one line
        for note_line in notes:
            click.echo(note_line, err=True)
        notes.clear()  # printed once, before the first report line
        click.echo(line, err=True)

    from ..executor import Execution, connect

    pool = 1
    if jobs > 1:
        from ..ensemble import choose_estimator

        try:  # a pool only for the certified estimator (evaluate_network reports errors)
            chosen = choose_estimator(net, cfg, X.shape[0], n_samples,
                                      max_subnetworks=max_subnetworks,
                                      time_budget=time_budget, estimator=estimator).name
        except ValueError:
            chosen = None
        pool = jobs if chosen == "certified" else 1
    try:
        with connect(Execution(jobs=pool)) as execution:
            df = evaluate_network(net, cfg, X, y, max_subnetworks=max_subnetworks,
                                  n_samples=n_samples, estimator=estimator,
                                  rng=np.random.SeedSequence(seed, spawn_key=(3,)),
                                  time_budget=time_budget, ks=ks or (10,), n_draws=draws,
                                  report=report, progress=True, executor=execution.executor)
    except ValueError as exc:
        if "out of reach" in str(exc) or "estimator=" in str(exc):
            msg = str(exc)
            for name in ("mc", "exact", "auto", "rb_mc", "certified"):
                msg = msg.replace(f"estimator='{name}'", f"--estimator {name}")
            raise click.BadParameter(msg.replace("n_samples <=", "--n-samples <="),
                                     param_hint="--estimator") from None
        raise
    shown = df.dropna(axis=1, how="all").drop(columns=["architecture", "output", "scheme",
                                                       "layers", "keep_prob"])
    shown["reference"] = shown["reference"].fillna("-")
    first = df.iloc[0]
    click.echo(f"{net.architecture} ({net.output} output), {cfg.scheme} dropout on layers "
               f"{first['layers']} at keep_prob {first['keep_prob']}, {len(X)} inputs:",
               err=fmt != "table")
    if fmt == "table":
        click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}",
                                   na_rep=""))
    elif fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", indent=1))
    else:
        click.echo(_markdown(shown))
    click.echo("columns:\n" + legend_text(shown.columns), err=fmt != "table")
    params = {"ks": list(ks or (10,)), "draws": draws, "net": str(net_path),
              "dataset": dataset, "inputs": inputs_path,
              "keep_prob": (dict(cfg.keep_prob) if not isinstance(cfg.keep_prob, float)
                            else cfg.keep_prob), "layers": list(cfg.layers),
              "scheme": cfg.scheme, "output": net.output, "max_subnetworks": max_subnetworks,
              "n_samples": n_samples, "estimator": estimator, "time_budget": time_budget,
              "chosen": df.attrs["choice"].name, "seed": seed}
    click.echo(f"wrote {save_result(df, out, params)} ({len(df)} rows)", err=fmt != "table")


def _describe(cfg) -> str:
    return ", ".join(f"{l}: {cfg.layer_keep_prob(l):g}" for l in cfg.layers)


def _markdown(df) -> str:
    """A GitHub markdown table of ``df`` (numbers to 4 significant digits)."""
    def cell(v):
        if v is None or (isinstance(v, float) and v != v) or v is pd_na():
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def pd_na():
    import pandas as pd

    return pd.NA


import inspect  # noqa: E402


def _legend_help() -> str:
    from ..evaluate import legend_text

    return "\n\n\b\nColumns of the table:\n" + legend_text()


evaluate.help = inspect.cleandoc(evaluate.help or "") + _legend_help()

COMMANDS = (train, evaluate)
