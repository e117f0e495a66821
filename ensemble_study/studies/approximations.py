"""Study ``approximations``: every way of approximating the ensemble, against the exact one.

Three parts, one tidy table (``part`` column):

* ``random``: random networks drawn as the sweep draws them
  (``dataset="gaussian"``: inputs X ~ N(0, 1)), in the sweep's cell order,
  so that with the sweep's outputs, activations, widths and ``n_seeds`` they
  are its very networks; both hidden layers dropped, at each keep_prob;
* ``trained``: small networks trained with dropout on the digits tasks
  (:func:`ensemble_study.train.train`, as in the ``trained`` study), scored
  on held-out examples;
* ``baldi``: Baldi & Sadowski's estimate ``E(1-E)|1-2E| / (1-2E(1-E))`` of
  ``|E - NWGM|`` against the measured one, on random sigmoid-output
  networks by hidden activation and weight scale (weights multiplied by
  ``weight_scale`` after the standard initialisation); one row per input.

Predictors (``predictor``; ``n_samples`` is K for the sampled ones and 0 for
the deterministic ones; ``draw`` numbers independent draws):

* ``scaled``: the scheme's scaled pass;
* ``nwgm``: the exact NWGM read as an estimate of the arithmetic mean;
* ``nwgm_corrected``: the NWGM plus Baldi & Sadowski's second-order
  correction with ``V`` from moment propagation
  (:func:`ensemble_study.approximations.nwgm_correction`; for a softmax,
  per class against the rest, renormalised);
* ``moment_propagation``: :func:`ensemble_study.moment_propagation` (mean and
  variance);
* ``mc``: plain Monte Carlo dropout with K masks (mean, and for K >= 2 the
  members' variance);
* ``rb_mc``: Rao-Blackwellised Monte Carlo with K outer masks (mean and
  variance);
* ``exact``: the exact ensemble itself (zero error; its cost is the price of
  the truth).

Scores against the exact ensemble (identity outputs have no total variation):
``mean_abs_error`` (mean over inputs and outputs of |predicted - exact
mean|), ``total_variation`` (mean over inputs), and where the predictor gives
a variance, ``variance_rel_error`` (mean of |V - V_exact| / V_exact) and
``variance_log_ratio`` (mean of log(V / V_exact): > 0 over-predicts), both
over the entries where both variances are positive; ``variance_exact`` and
``variance_predicted`` are the two variances averaged over inputs and outputs.
``cost_passes`` counts forward-pass equivalents: multiply-adds divided by those of one forward
pass (scaled 1; moment propagation 2, a mean and a variance pass; plain MC K;
RB MC ``K (1 + 2**h n_out / M)`` for probability outputs, a prefix pass plus
one multiply-add per inner subnetwork and output of the shortcut kernel,
with h the last hidden width and M the multiply-adds of one pass; the NWGM
one pass per outer mask, ``2**n_outer``; its correction that plus 2; exact
``2**n_outer`` RB samples). Seconds vary from run to run, so they are not in
this table: :func:`timing` measures them into ``results/approximations_timing.csv``.

The study is a list of independent cells (:func:`cells`), each with its own
``SeedSequence`` stream from its position in the grid, and
:func:`run_cell` scores one; :func:`run` maps it over the cells in order.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..approximations import baldi_bound, moment_propagation, nwgm_correction
from ..datasets import DATASETS, load_dataset
from ..dropout import SCHEMES, DropoutConfig, scaled_forward
from ..ensemble import exact_ensemble, sample_ensemble
from ..executor import map_cells
from ..metrics import total_variation
from ..network import MLP
from ..stats import wilcoxon_paired
from ..train import train
from . import _common as c
from .trained import DEFAULT_TRAIN

NAME = "approximations"
MAX_DROPPED = 16
PARTS = ("random", "trained", "baldi")
PREDICTORS = ("exact", "scaled", "nwgm", "nwgm_corrected", "moment_propagation", "mc", "rb_mc")
DETERMINISTIC = ("scaled", "nwgm", "nwgm_corrected", "moment_propagation")
SAMPLED = ("mc", "rb_mc")
ID_COLUMNS = ["part", "dataset", "architecture", "activation", "output", "scheme",
              "weight_scale", "keep_prob", "seed", "input", "predictor", "n_samples", "draw"]
METRIC_COLUMNS = ["mean_abs_error", "total_variation", "variance_rel_error",
                  "variance_log_ratio", "variance_exact", "variance_predicted", "cost_passes"]
BALDI_COLUMNS = ["exact_mean", "nwgm_value", "baldi_bound", "nwgm_abs_gap", "breaks_bound"]
COLUMNS = ID_COLUMNS + METRIC_COLUMNS + BALDI_COLUMNS

DEFAULTS = dict(
    activations=c.HIDDEN_ACTIVATIONS, outputs=("sigmoid", "softmax"),
    keep_probs=(0.2, 0.5, 0.8, 0.95), scheme="inverted", width=8, depth=2, n_features=4,
    n_inputs=32, n_seeds=5, ks=(1, 2, 5, 10, 20, 50, 100, 1000), n_draws=2,
    datasets=("digits", "digits_2v3"), trained_activations=("relu", "tanh"),
    trained_keep_probs=(0.5, 0.8), trained_seeds=2, trained_width=6, n_test=50, epochs=20,
    baldi_networks=25, weight_scales=(1.0, 2.0, 4.0), baldi_keep_probs=(0.5, 0.8),
    baldi_width=6, seed=0,
)
QUICK = dict(
    DEFAULTS, activations=("relu", "tanh"), keep_probs=(0.5, 0.8), width=4, n_inputs=8,
    n_seeds=1, ks=(1, 10, 100), datasets=("digits_2v3",), trained_activations=("relu",),
    trained_keep_probs=(0.5,), trained_seeds=1, trained_width=4, n_test=30, epochs=3,
    baldi_networks=3, weight_scales=(1.0, 4.0), baldi_keep_probs=(0.5,), baldi_width=4,
)
# The baldi part's networks: n_features inputs, two dropped hidden layers, one sigmoid.
BALDI_INPUTS = 8


@dataclass(frozen=True)
class Cell:
    """One independent unit of work: a network (and for ``trained``, its training).

    ``stream`` is the cell's own ``SeedSequence``, the child of
    ``SeedSequence(seed)`` numbered by the cell's position in the grid.
    """

    part: str
    activation: str
    seed: int
    stream: np.random.SeedSequence
    output: str = ""
    dataset: str = ""
    keep_prob: float = float("nan")
    weight_scale: float = 1.0


def _non_negative_int(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    return int(value)


def _positive_floats(values, name) -> tuple:
    values = tuple(np.atleast_1d(values).tolist())
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                             and np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must list one or more finite numbers > 0; got {values!r}")
    return tuple(float(v) for v in values)


def check_params(*, activations, outputs, keep_probs, scheme, width, depth, n_features,
                 n_inputs, n_seeds, ks, n_draws, datasets, trained_activations,
                 trained_keep_probs, trained_seeds, trained_width, n_test, epochs,
                 baldi_networks, weight_scales, baldi_keep_probs, baldi_width, seed) -> dict:
    """Validate the grid before any work; return it normalised (``ValueError`` if bad)."""
    c.check_common(n_inputs=n_inputs, n_seeds=n_seeds, n_features=n_features, seed=seed)
    for value, name in ((width, "width"), (depth, "depth"), (n_draws, "n_draws"),
                        (trained_width, "trained_width"), (n_test, "n_test"),
                        (epochs, "epochs"), (baldi_width, "baldi_width")):
        c.check_positive_int(value, name)
    c.check_exact_size(width * depth, MAX_DROPPED, "width * depth")
    c.check_exact_size(2 * trained_width, MAX_DROPPED, "2 * trained_width")
    c.check_exact_size(2 * baldi_width, MAX_DROPPED, "2 * baldi_width")
    ks = tuple(sorted({c.check_positive_int(k, "ks") for k in np.atleast_1d(ks).tolist()}))
    if not ks:
        raise ValueError("ks must list at least one ensemble size K >= 1; got none")
    datasets = (c.check_choices(datasets, DATASETS, "datasets") if len(datasets) else ())
    return dict(
        activations=c.check_choices(activations, c.HIDDEN_ACTIVATIONS, "activations"),
        outputs=c.check_choices(outputs, ("sigmoid", "softmax"), "outputs"),
        keep_probs=c.check_keep_probs(keep_probs),
        scheme=c.check_choices(scheme, SCHEMES, "scheme")[0],
        width=width, depth=depth, n_features=n_features, n_inputs=n_inputs, n_seeds=n_seeds,
        ks=ks, n_draws=n_draws, datasets=datasets,
        trained_activations=c.check_choices(trained_activations, c.HIDDEN_ACTIVATIONS,
                                            "trained_activations"),
        trained_keep_probs=c.check_keep_probs(trained_keep_probs, "trained_keep_probs"),
        trained_seeds=_non_negative_int(trained_seeds, "trained_seeds"),
        trained_width=trained_width, n_test=n_test, epochs=epochs,
        baldi_networks=_non_negative_int(baldi_networks, "baldi_networks"),
        weight_scales=_positive_floats(weight_scales, "weight_scales"),
        baldi_keep_probs=c.check_keep_probs(baldi_keep_probs, "baldi_keep_probs"),
        baldi_width=baldi_width, seed=seed,
    )


def cells(params: dict) -> list[Cell]:
    """Every cell of the grid, in order: random, then trained, then baldi.

    The random cells come first and in the sweep's order, so that with the
    sweep's grid they get the sweep's streams (``spawn`` numbers children by
    position) and hence its networks.
    """
    p = params
    keys = ([("random", dict(output=o, activation=a, seed=s)) for o in p["outputs"]
             for a in p["activations"] for s in range(p["n_seeds"])]
            + [("trained", dict(dataset=d, activation=a, seed=s, keep_prob=q))
               for d in p["datasets"] for a in p["trained_activations"]
               for s in range(p["trained_seeds"]) for q in p["trained_keep_probs"]]
            + [("baldi", dict(activation=a, weight_scale=w, seed=s, output="sigmoid"))
               for a in p["activations"] for w in p["weight_scales"]
               for s in range(p["baldi_networks"])])
    streams = np.random.SeedSequence(p["seed"]).spawn(len(keys))
    return [Cell(part, stream=ss, **key) for (part, key), ss in zip(keys, streams, strict=True)]


def _child(stream: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    """A fixed child of ``stream`` (``spawn`` would depend on earlier calls)."""
    return np.random.SeedSequence(stream.entropy, spawn_key=stream.spawn_key + key)


def _macs(net: MLP) -> int:
    return sum(w.size for w in net.weights)


def _variance_scores(predicted, exact) -> dict:
    out = {"variance_rel_error": np.nan, "variance_log_ratio": np.nan,
           "variance_exact": float(np.mean(exact)),
           "variance_predicted": np.nan if predicted is None else float(np.mean(predicted))}
    ok = (exact > 0) & (predicted > 0) if predicted is not None else False
    if np.any(ok):
        out["variance_rel_error"] = float(np.mean(np.abs(predicted[ok] - exact[ok]) / exact[ok]))
        out["variance_log_ratio"] = float(np.mean(np.log(predicted[ok] / exact[ok])))
    return out


def _scores(exact, mean, variance, output) -> dict:
    return {"mean_abs_error": float(np.mean(np.abs(mean - exact.mean))),
            "total_variation": (float(total_variation(exact.mean, mean, output).mean())
                                if output != "identity" else np.nan),
            **_variance_scores(variance, exact.variance)}


def score_predictors(net: MLP, cfg: DropoutConfig, X, ks, n_draws: int,
                     stream: np.random.SeedSequence) -> list[dict]:
    """Rows (predictor, n_samples, draw, scores, cost) for one network and config."""
    exact = exact_ensemble(net, cfg, X)
    M, h, k_out = _macs(net), net.sizes[-2], net.sizes[-1]
    n_outer = 2 ** sum(net.sizes[l] for l in cfg.layers
                       if l != net.n_layers - 1 and cfg.layer_keep_prob(l) < 1)
    rb_cost = 1.0 + (2**h * k_out / M if net.output != "identity" else 0.0)
    mp = moment_propagation(net, cfg, X)
    preds = [("exact", 0, 0, exact.mean, exact.variance, n_outer * rb_cost),
             ("scaled", 0, 0, scaled_forward(net, cfg, X), None, 1.0)]
    if net.output != "identity":
        preds += [("nwgm", 0, 0, exact.geometric_mean, None, float(n_outer)),
                  ("nwgm_corrected", 0, 0,
                   nwgm_correction(exact.geometric_mean, mp.variance, net.output), None,
                   n_outer + 2.0)]
    preds.append(("moment_propagation", 0, 0, mp.mean, mp.variance, 2.0))
    for e, (estimator, name) in enumerate((("plain", "mc"), ("rao_blackwell", "rb_mc"))):
        for i, (k, draw) in enumerate(itertools.product(ks, range(n_draws))):
            res = sample_ensemble(net, cfg, X, k, _child(stream, e, i), estimator=estimator)
            has_var = k >= 2 or name == "rb_mc"
            preds.append((name, k, draw, res.mean, res.variance if has_var else None,
                          k * (rb_cost if name == "rb_mc" else 1.0)))
    return [{"predictor": name, "n_samples": k, "draw": draw,
             **_scores(exact, mean, var, net.output), "cost_passes": cost}
            for name, k, draw, mean, var, cost in preds]


def _random_rows(cell: Cell, p: dict) -> list[dict]:
    sizes = (p["n_features"], *(p["width"],) * p["depth"], c.N_OUTPUTS[cell.output])
    net, X = c.draw_cell(cell.stream, sizes, cell.activation, cell.output, p["n_inputs"])
    layers = list(range(1, p["depth"] + 1))
    rows = []
    for i, q in enumerate(p["keep_probs"]):
        cfg = DropoutConfig(q, layers=layers, scheme=p["scheme"])
        ids = dict(part="random", dataset="gaussian", architecture=net.architecture,
                   activation=cell.activation, output=cell.output, scheme=p["scheme"],
                   weight_scale=1.0, keep_prob=q, seed=cell.seed, input=-1)
        rows += [{**ids, **r} for r in score_predictors(net, cfg, X, p["ks"], p["n_draws"],
                                                        _child(cell.stream, i))]
    return rows


def _trained_rows(cell: Cell, p: dict) -> list[dict]:
    ds = load_dataset(cell.dataset, rng=0)  # the trained study's split
    sizes = (ds.n_features, p["trained_width"], p["trained_width"], ds.n_outputs)
    net0 = MLP.random(sizes, cell.activation, ds.output, rng=_child(cell.stream, 0))
    cfg = DropoutConfig(cell.keep_prob, layers=[1, 2], scheme=p["scheme"])
    train_cfg = dataclasses.replace(DEFAULT_TRAIN, epochs=p["epochs"])
    net, _ = train(net0, cfg, ds.X_train, ds.y_train, train_cfg=train_cfg,
                   rng=_child(cell.stream, 1))
    ids = dict(part="trained", dataset=cell.dataset, architecture=net.architecture,
               activation=cell.activation, output=ds.output, scheme=p["scheme"],
               weight_scale=1.0, keep_prob=cell.keep_prob, seed=cell.seed, input=-1)
    X = ds.X_test[:p["n_test"]]
    return [{**ids, **r} for r in score_predictors(net, cfg, X, p["ks"], p["n_draws"],
                                                   _child(cell.stream, 2))]


def _baldi_rows(cell: Cell, p: dict) -> list[dict]:
    sizes = (p["n_features"], p["baldi_width"], p["baldi_width"], 1)
    net, X = c.draw_cell(cell.stream, sizes, cell.activation, "sigmoid", BALDI_INPUTS)
    net = MLP.from_arrays([w * cell.weight_scale for w in net.weights], net.biases,
                          net.hidden, "sigmoid")
    rows = []
    for q in p["baldi_keep_probs"]:
        ens = exact_ensemble(net, DropoutConfig(q, layers=[1, 2], scheme=p["scheme"]), X)
        E, G = ens.mean[:, 0], ens.geometric_mean[:, 0]
        bound, gap = baldi_bound(E), np.abs(E - G)
        for j in range(X.shape[0]):
            rows.append(dict(part="baldi", dataset="gaussian", architecture=net.architecture,
                             activation=cell.activation, output="sigmoid",
                             scheme=p["scheme"], weight_scale=cell.weight_scale, keep_prob=q,
                             seed=cell.seed, input=j, predictor="nwgm", n_samples=0, draw=0,
                             exact_mean=E[j], nwgm_value=G[j], baldi_bound=bound[j],
                             nwgm_abs_gap=gap[j],
                             # A margin of 1e-12 for rounding of E and the NWGM.
                             breaks_bound=bool(gap[j] > bound[j] + 1e-12)))
    return rows


_PARTS = {"random": _random_rows, "trained": _trained_rows, "baldi": _baldi_rows}


def run_cell(cell: Cell, params: dict) -> list[dict]:
    """Score one cell: its rows (a function of the cell and the grid alone)."""
    return _PARTS[cell.part](cell, params)


def run(*, progress=False, execution=None, **params) -> pd.DataFrame:
    """Run the study (the parameters are those of ``DEFAULTS``; see ``check_params``).

    Parameters
    ----------
    activations, outputs, keep_probs, scheme, width, depth, n_features, n_inputs,
    n_seeds, seed
        The random part's grid, as in :func:`ensemble_study.studies.sweep.run`
        (one scheme).
    ks : sequence of int
        K of the plain and Rao-Blackwellised Monte Carlo estimates.
    n_draws : int
        Independent estimates per K.
    datasets, trained_activations, trained_keep_probs, trained_seeds,
    trained_width, n_test, epochs
        The trained part: networks ``n_features-w-w-n_out`` trained with
        dropout on both hidden layers (the trained study's optimiser), scored
        on the first ``n_test`` test examples; ``trained_seeds = 0`` skips it.
    baldi_networks, weight_scales, baldi_keep_probs, baldi_width
        The baldi part: networks per (activation, weight scale); 0 skips it.
    progress, execution
        As in :func:`ensemble_study.studies.sweep.run`.

    Returns
    -------
    DataFrame
        Columns ``study`` and ``COLUMNS`` (module docstring).
    """
    p = check_params(**params)
    return tidy(map_cells(NAME, run_cell, cells(p), p, execution=execution,
                          progress=progress))


def tidy(rows: list[dict]) -> pd.DataFrame:
    """Rows to the study's table: ``COLUMNS`` in order, integer identifiers."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.insert(0, "study", NAME)
    df = df.astype({"seed": int, "input": int, "n_samples": int, "draw": int})
    df["breaks_bound"] = df["breaks_bound"].astype("boolean")
    return df


def run_default(quick: bool, progress=False, execution=None):
    """The default grid (``QUICK`` when ``quick``): ``(DataFrame, params)``."""
    params = QUICK if quick else DEFAULTS
    return run(progress=progress, execution=execution, **params), dict(params)


# --- Seconds, measured apart (they vary from run to run) ---------------------

def timing(params: dict, *, repeats: int = 3) -> pd.DataFrame:
    """Seconds per predictor on one random network per (output, activation).

    At keep_prob 0.5 (or the grid's first keep_prob), the best of
    ``repeats`` runs of each predictor on the random part's inputs. Not
    byte-reproducible by nature: kept out of the main table.

    Returns
    -------
    DataFrame
        ``output, activation, architecture, keep_prob, predictor, n_samples,
        seconds``.
    """
    p = check_params(**params)
    q = 0.5 if 0.5 in p["keep_probs"] else p["keep_probs"][0]
    rows = []
    for cell in (x for x in cells(p) if x.part == "random" and x.seed == 0):
        sizes = (p["n_features"], *(p["width"],) * p["depth"], c.N_OUTPUTS[cell.output])
        net, X = c.draw_cell(cell.stream, sizes, cell.activation, cell.output, p["n_inputs"])
        cfg = DropoutConfig(q, layers=list(range(1, p["depth"] + 1)), scheme=p["scheme"])
        calls = [("exact", 0, exact_ensemble, ()), ("scaled", 0, scaled_forward, ()),
                 ("moment_propagation", 0, moment_propagation, ())]
        for k in p["ks"]:
            calls += [("mc", k, sample_ensemble, (k, 0)),
                      ("rb_mc", k, _rao_blackwell, (k, 0))]
        for name, k, fn, args in calls:
            best = np.inf
            for _ in range(repeats):
                start = time.perf_counter()
                fn(net, cfg, X, *args)
                best = min(best, time.perf_counter() - start)
            rows.append(dict(output=cell.output, activation=cell.activation,
                             architecture=net.architecture, keep_prob=q, predictor=name,
                             n_samples=k, seconds=best))
    return pd.DataFrame(rows)


def _rao_blackwell(net, cfg, X, k, rng):
    return sample_ensemble(net, cfg, X, k, rng, estimator="rao_blackwell")


# --- Summaries for the README ---------------------------------------------------

def _per_network(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One value per (network, keep_prob, predictor, K): the mean over draws."""
    keys = ["part", "dataset", "activation", "output", "keep_prob", "seed", "predictor",
            "n_samples"]
    return df.groupby(keys, as_index=False, sort=False, dropna=False)[
        [metric, "cost_passes"]].mean()


def summary(df: pd.DataFrame, *, keep_probs=(0.5, 0.8), metric: str = "mean_abs_error",
            ks=(10, 100)) -> pd.DataFrame:
    """Median error and cost per predictor, keep_prob, hidden activation and part.

    Sampled predictors appear at each K of ``ks``; ``exact`` (zero error)
    shows the exact ensemble's cost. Medians are over networks
    (random part) or trained networks (trained part: datasets and seeds),
    each network's value being its mean over draws.

    Returns
    -------
    DataFrame
        ``part, keep_prob, predictor, n_samples, cost_passes`` (median) and one
        column of median ``metric`` per hidden activation.
    """
    d = df[df["part"].isin(["random", "trained"]) & df["keep_prob"].isin(keep_probs)]
    d = d[(d["n_samples"] == 0) | d["n_samples"].isin(ks)]
    per = _per_network(d, metric)
    keys = ["part", "keep_prob", "predictor", "n_samples"]
    table = per.pivot_table(index=keys, columns="activation", values=metric,
                            aggfunc="median")
    cost = per.groupby(keys)["cost_passes"].median().rename("cost_passes")
    order = {name: i for i, name in enumerate(PREDICTORS)}
    out = table.join(cost).reset_index()
    out = out.sort_values(["part", "keep_prob", "predictor", "n_samples"],
                          key=lambda s: s.map(order) if s.name == "predictor" else s)
    activations = [a for a in c.HIDDEN_ACTIVATIONS if a in table.columns]
    return out[keys + ["cost_passes"] + activations].reset_index(drop=True)


def paired(df: pd.DataFrame, a: str, b: str, *, metric: str = "mean_abs_error",
           k_a: int = 0, k_b: int = 0, by=("part", "activation")) -> pd.DataFrame:
    """Paired comparison of predictors ``a`` and ``b`` across networks.

    The unit is a network: a random network's value of ``metric`` is its
    mean over draws and keep_probs (one network serves every keep_prob, so
    its keep_probs are not independent pairs) unless ``keep_prob`` is in
    ``by``; a trained network is trained at one keep_prob. Within each group
    of ``by`` the pairs are compared with the Wilcoxon signed-rank test
    (:func:`ensemble_study.stats.wilcoxon_paired`, two-sided; NaN below 6
    pairs, where p cannot reach 0.05).

    Returns
    -------
    DataFrame
        ``by`` columns, ``n_pairs``, ``median_a``, ``median_b``,
        ``median_difference`` (a - b), ``share_a_better`` and ``p_value``.
    """
    per = _per_network(df[df["part"] != "baldi"], metric)
    per["network"] = np.where(per["part"] == "trained",
                              per["dataset"] + "/" + per["seed"].astype(str) + "/"
                              + per["keep_prob"].astype(str),
                              per["output"] + "/" + per["seed"].astype(str))
    keys = list(dict.fromkeys([*by, "part", "activation", "network"]))
    side = {}
    for name, pred, k in (("a", a, k_a), ("b", b, k_b)):
        rows = per[(per["predictor"] == pred) & (per["n_samples"] == k)]
        side[name] = rows.groupby(keys, sort=False)[metric].mean()
    both = pd.concat(side, axis=1).dropna().reset_index()
    rows = []
    for key, g in both.groupby(list(by), sort=False):
        diff = (g["a"] - g["b"]).to_numpy()
        p_value = (wilcoxon_paired(g["a"], g["b"])["pvalue"] if len(g) >= 6 else np.nan)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                     "n_pairs": len(g), "median_a": g["a"].median(),
                     "median_b": g["b"].median(), "median_difference": float(np.median(diff)),
                     "share_a_better": float(np.mean(diff < 0)), "p_value": p_value})
    return pd.DataFrame(rows)


def crossovers(df: pd.DataFrame, *, metric: str = "mean_abs_error", alpha: float = 0.05,
               by=("part", "activation")) -> pd.DataFrame:
    """The smallest K at which plain and RB Monte Carlo beat each deterministic method.

    "Beats" means: a negative median paired difference over networks and a
    Wilcoxon signed-rank p-value below ``alpha`` (see :func:`paired`), at that K and every larger
    K of the grid. NaN when no K of the grid does.

    Returns
    -------
    DataFrame
        ``by`` columns, ``sampler`` (mc or rb_mc), ``against``, ``k``.
    """
    ks = sorted(k for k in df.loc[df["predictor"] == "mc", "n_samples"].unique())
    rows = []
    for sampler in SAMPLED:
        for against in DETERMINISTIC:
            if not (df["predictor"] == against).any():
                continue
            wins = {k: paired(df, sampler, against, metric=metric, k_a=k, by=by) for k in ks}
            groups = wins[ks[0]][list(by)].itertuples(index=False, name=None)
            for key in groups:
                beats = []
                for k in ks:
                    w = wins[k]
                    row = w[(w[list(by)] == pd.Series(key, index=list(by))).all(axis=1)]
                    beats.append(bool(len(row)) and row["median_difference"].iloc[0] < 0
                                 and row["p_value"].iloc[0] < alpha)
                first = next((i for i in range(len(ks)) if all(beats[i:])), None)
                rows.append({**dict(zip(by, key, strict=True)), "sampler": sampler,
                             "against": against,
                             "k": ks[first] if first is not None else np.nan})
    return pd.DataFrame(rows)


def variance_summary(df: pd.DataFrame, *, ks=(10, 100, 1000)) -> pd.DataFrame:
    """Median relative error and log-ratio of the predicted variance, per predictor.

    Over networks and keep_probs (random and trained parts), per hidden
    activation; sampled predictors at each K of ``ks``.
    """
    d = df[df["variance_rel_error"].notna() & (df["predictor"] != "exact")]
    d = d[(d["n_samples"] == 0) | d["n_samples"].isin(ks)]
    return (d.groupby(["part", "predictor", "n_samples", "activation"])
            [["variance_rel_error", "variance_log_ratio"]].median().reset_index())


def baldi_summary(df: pd.DataFrame, *, n_boot: int = 2000) -> pd.DataFrame:
    """Share of (network, input) cases where |E - NWGM| exceeds Baldi's estimate.

    Per hidden activation (and ``all`` of them) and weight scale, with a 95%
    interval from a bootstrap over networks (the inputs of one network are
    not independent cases; a fixed seed keeps the table reproducible), and
    the median of measured / bound.
    """
    d = df[df["part"] == "baldi"]
    d = d.assign(network=d["activation"] + "/" + d["seed"].astype(str),
                 breaks=d["breaks_bound"].astype(bool))
    d = pd.concat([d, d.assign(activation="all")])
    rng = np.random.default_rng(0)
    rows = []
    for (act, scale), g in d.groupby(["activation", "weight_scale"], sort=False):
        per = g.groupby("network")["breaks"].agg(["sum", "count"]).to_numpy()
        pick = rng.integers(0, len(per), size=(n_boot, len(per)))
        boot = per[pick, 0].sum(axis=1) / per[pick, 1].sum(axis=1)
        lo, hi = np.quantile(boot, [0.025, 0.975])
        rows.append({"activation": act, "weight_scale": scale, "n_cases": len(g),
                     "n_networks": len(per), "share_breaking": float(g["breaks"].mean()),
                     "ci_low": float(lo), "ci_high": float(hi),
                     "median_ratio": float((g["nwgm_abs_gap"] / g["baldi_bound"]).median())})
    return pd.DataFrame(rows)


def _wide(cross: pd.DataFrame) -> pd.DataFrame:
    """Crossovers with one column per deterministic method."""
    wide = cross.pivot(index=["part", "activation", "sampler"], columns="against", values="k")
    return wide[[m for m in DETERMINISTIC if m in wide.columns]].reset_index()


def report(df: pd.DataFrame, timings: pd.DataFrame | None = None) -> list[tuple[str, pd.DataFrame]]:
    """The README's tables, titled: what ``ensemble-study approximations-summary`` prints."""
    pairs = [("moment_propagation", "scaled"), ("nwgm", "scaled"),
             ("nwgm_corrected", "nwgm"), ("nwgm_corrected", "scaled"),
             ("moment_propagation", "nwgm_corrected")]
    tables = [("median mean_abs_error per hidden activation, and median cost "
               "(forward-pass equivalents)", summary(df))]
    for a, b in pairs:
        if (df["predictor"] == a).any() and (df["predictor"] == b).any():
            tables.append((f"paired across networks: {a} (a) vs {b} (b), mean_abs_error "
                           "(random: mean over keep_probs), Wilcoxon signed-rank",
                           paired(df, a, b)))
    ks = set(df.loc[df["predictor"] == "mc", "n_samples"])
    if 10 in ks:
        tables.append(("paired across networks: rb_mc K=10 (a) vs mc K=10 (b), mean_abs_error",
                       paired(df, "rb_mc", "mc", k_a=10, k_b=10)))
    for k_rb, k_mc in ((10, 50), (20, 100)):
        if not {k_rb, k_mc} <= ks:
            continue
        same = paired(df, "rb_mc", "mc", k_a=k_rb, k_b=k_mc)
        tables.append((f"paired across random networks: rb_mc K={k_rb} (a) vs mc K={k_mc} (b), "
                       "about equal cost there (an RB sample costs about 5 passes)",
                       same[same["part"] == "random"] if len(same) else same))
    tables += [("smallest K beating each deterministic method at every larger K "
                "(negative median paired difference, Wilcoxon p < 0.05, over networks)",
                _wide(crossovers(df))),
               ("predicted variance against the exact ensemble's: medians over networks",
                variance_summary(df))]
    for a, k_a, b, k_b in (("moment_propagation", 0, "mc", 10), ("rb_mc", 10, "mc", 10),
                           ("rb_mc", 10, "mc", 100)):
        if {k_a, k_b} - {0} <= ks:
            tables.append((f"paired across networks: variance_rel_error of {a}"
                           f"{f' K={k_a}' if k_a else ''} (a) vs {b} K={k_b} (b)",
                           paired(df, a, b, metric="variance_rel_error", k_a=k_a, k_b=k_b)))
    if (df["part"] == "baldi").any():
        tables.append(("Baldi's bound: share of (network, input) cases with "
                       "|E - NWGM| > bound", baldi_summary(df)))
    if timings is not None:
        tables.append(("seconds (best of 3) on one random network per output and activation, "
                       "median over networks",
                       timings.groupby(["predictor", "n_samples"], sort=False)["seconds"]
                       .median().reset_index()))
    return tables
