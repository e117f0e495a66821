#!/usr/bin/env python
"""Bring your own PyTorch network: train with dropout in torch, then take its exact ensemble.

    python scripts/torch_example.py            # ~10 s; writes results/torch_example.csv

A 64-8-8-10 ReLU network with ``nn.Dropout`` after both hidden layers is
trained in PyTorch (float64, one thread, seeded: the CSV is the same on every
run) on scikit-learn's bundled digits, standardised and split as ``train
--seed 0`` splits it. It is saved whole with ``torch.save`` (``--model``),
read back with :func:`ensemble_study.from_torch`, and on the 450 test images
every one of its 2**16 subnetworks is averaged. The table compares, against
that exact ensemble, the NWGM, the model's own ``eval()`` pass and MC dropout
done the PyTorch way (``model.train()``, K stochastic passes, averaged
softmax; 5 independent draws per K). Paired columns compare each predictor
with the exact mean on the same test images: the mean per-image NLL
difference with its paired bootstrap 95% interval
(:func:`ensemble_study.stats.paired_bootstrap_ci`), and the error
difference with McNemar's exact test (:func:`ensemble_study.stats.mcnemar`).
The README's numbers are printed from this CSV by ``ensemble-study report``.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
import pandas as pd

DROPOUT = (0.3, 0.2)  # PyTorch's p (drop probabilities) after hidden layers 1 and 2
HIDDEN = (8, 8)
KS = (1, 10, 100, 1000)
N_DRAWS = 5


def run(model_path: Path, seed: int, epochs: int) -> pd.DataFrame:
    import torch
    from torch import nn

    from ensemble_study import exact_ensemble, from_torch, scaled_forward, stats
    from ensemble_study.datasets import load_dataset
    from ensemble_study.metrics import gap_metrics

    torch.set_num_threads(1)  # a float64 sum in another order is another last bit
    data_ss = np.random.SeedSequence(seed).spawn(3)[0]  # the split of `train --seed`
    ds = load_dataset("digits", rng=data_ss)

    # --- plain PyTorch: a model with dropout, trained with Adam and CrossEntropyLoss ---
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(64, HIDDEN[0]), nn.ReLU(), nn.Dropout(DROPOUT[0]),
        nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(), nn.Dropout(DROPOUT[1]),
        nn.Linear(HIDDEN[1], 10),
    ).double()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    X, y = torch.tensor(ds.X_train), torch.tensor(ds.y_train)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    model_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model, model_path)

    # --- this package: read it back, enumerate every subnetwork ---
    net, cfg = from_torch(torch.load(model_path, weights_only=False), output="softmax")
    Xt, yt = ds.X_test, ds.y_test
    start = time.perf_counter()
    exact = exact_ensemble(net, cfg, Xt)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        eval_pass = model.eval()(torch.tensor(Xt)).softmax(-1).numpy()
    assert np.abs(eval_pass - scaled_forward(net, cfg, Xt)).max() < 1e-12

    def per_example(probs):
        p_true = np.maximum(probs[np.arange(len(yt)), yt], 1e-12)
        return -np.log(p_true), (probs.argmax(1) != yt).astype(np.float64)

    ref_nll, ref_err = per_example(exact.mean)
    preds = [("exact_mean", exact.n_subnetworks, 0, exact.mean),
             ("exact_nwgm", exact.n_subnetworks, 0, exact.geometric_mean),
             ("eval", 1, 0, eval_pass)]
    torch.manual_seed(seed + 1)
    model.train()
    with torch.no_grad():
        for k in KS:
            for draw in range(N_DRAWS):
                probs = sum(model(torch.tensor(Xt)).softmax(-1) for _ in range(k)) / k
                preds.append(("mc_dropout", k, draw, probs.numpy()))
    rows = []
    std = np.sqrt(exact.variance)
    for predictor, k, draw, probs in preds:
        nll, err = per_example(probs)
        d_nll, low, high = stats.paired_bootstrap_ci(nll, ref_nll)
        test = stats.mcnemar(ref_err == 0, err == 0)
        rows.append({"dataset": "digits", "architecture": net.architecture,
                     "keep_prob": ",".join(f"{cfg.layer_keep_prob(l):g}" for l in cfg.layers),
                     "n_test": len(yt), "predictor": predictor, "n_samples": k, "draw": draw,
                     "error": err.mean(), "nll": nll.mean(),
                     "nll_minus_exact": d_nll, "nll_minus_exact_low": low,
                     "nll_minus_exact_high": high, "error_minus_exact": err.mean() - ref_err.mean(),
                     "only_exact_right": test["only_a"], "only_predictor_right": test["only_b"],
                     "mcnemar_p": test["pvalue"],
                     **gap_metrics(exact.mean, probs, std=std, output="softmax")})
    click.echo(f"exact ensemble of {exact.n_subnetworks:,} subnetworks on {len(yt)} test "
               f"images in {seconds:.1f} s", err=True)
    return pd.DataFrame(rows)


@click.command()
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("results/torch_example/model.pt"), show_default=True,
              help="Where torch.save writes the trained model (not committed: a pickle).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seeds the split (as `train --seed`), torch's initialisation, batches "
                   "and the MC dropout masks.")
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True,
              help="Passes of Adam over the training split.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("results/torch_example.csv"), show_default=True,
              help="Result CSV (with a JSON sidecar).")
def main(model_path, seed, epochs, out):
    """Train a dropout network in PyTorch, then compare its exact ensemble with eval() and MC."""
    from ensemble_study.results import save_result

    df = run(model_path, seed, epochs)
    params = {"seed": seed, "epochs": epochs, "dropout_p": list(DROPOUT),
              "hidden": list(HIDDEN), "ks": list(KS), "n_draws": N_DRAWS,
              "model": str(model_path)}
    click.echo(f"wrote {save_result(df, out, params)} ({len(df)} rows)")
    summary = (df.groupby(["predictor", "n_samples"], sort=False)
               [["error", "nll", "nll_minus_exact", "mcnemar_p", "total_variation"]].mean())
    click.echo(summary.round(4).to_string())


if __name__ == "__main__":
    main()
