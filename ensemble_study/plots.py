"""Figures: one function per figure, a tidy DataFrame in, a matplotlib Figure out.

Nothing here changes matplotlib's global state: styles are passed as keyword
arguments, figures are created with ``matplotlib.figure.Figure`` (no pyplot,
so no GUI backend and no figure manager). Each function is registered under
the CSV it reads (``results/<csv>.csv``) and the PNG it makes
(``figures/<png>.png``); :func:`render_all` rebuilds every PNG from the CSVs.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter

from .results import load_result, write_files
from .stats import bootstrap_ci, summarise

# csv stem -> {png stem -> plot function}
FIGURES: dict[str, dict[str, Callable[[pd.DataFrame], Figure]]] = {}


def figure(csv: str, png: str):
    """Register a plot function as the maker of ``figures/<png>.png`` from ``results/<csv>.csv``."""

    def register(fn):
        FIGURES.setdefault(csv, {})[png] = fn
        return fn

    return register


def median_band(ax, x, values_by_x, *, label, color=None, statistic="median",
                spread=(0.1, 0.9), **line_kw):
    """Draw a centre line, its bootstrap 95% CI, and the spread across units.

    The CI (the darker band) is the uncertainty of the centre line; the
    spread (the lighter band, ``spread`` quantiles, None for none) is how much
    the units (networks, seeds) differ, which no number of units shrinks.

    Parameters
    ----------
    ax : matplotlib Axes
    x : array_like, shape (n,)
        Sorted x positions.
    values_by_x : pandas SeriesGroupBy
        Values grouped by x, one per unit (e.g. per network).
    statistic : {"median", "mean"}
        The centre line and the statistic whose CI is drawn.
    spread : (low, high) quantiles, or None
    """
    frame = pd.concat([pd.DataFrame({"x": key, "value": vals.to_numpy()})
                       for key, vals in values_by_x])
    table = summarise(frame, ["x"], "value", statistic, spread=spread).set_index("x").reindex(x)
    (line,) = ax.plot(x, table["estimate"].to_numpy(), label=label, color=color, **line_kw)
    ax.fill_between(x, table["ci_low"].to_numpy(), table["ci_high"].to_numpy(),
                    color=line.get_color(), alpha=0.3, linewidth=0)
    if spread is not None:
        ax.fill_between(x, table["spread_low"].to_numpy(), table["spread_high"].to_numpy(),
                        color=line.get_color(), alpha=0.08, linewidth=0)
    return line


def new_figure(nrows=1, ncols=1, *, width=4.2, height=3.4, **subplot_kw):
    """A Figure with a grid of Axes, sized per panel, constrained layout."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def render_all(results_dir, figures_dir, *, dpi: int = 130) -> list[Path]:
    """Rebuild every registered PNG under ``figures_dir`` from the CSVs in ``results_dir``.

    CSVs without a registered figure are skipped. Every figure is drawn
    before any is written, so a malformed CSV writes nothing; each PNG is
    then written to a temporary name and renamed.

    Returns
    -------
    list of Path
        The PNGs written.

    Raises
    ------
    ValueError
        Naming the CSV and what is wrong with it (not a CSV, no rows, a
        missing column, a sidecar that does not match), before any PNG is
        written.
    """
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    drawn = []
    for csv in sorted(results_dir.glob("*.csv")):
        makers = FIGURES.get(csv.stem, {})
        if not makers:
            continue
        df = load_result(csv)  # raises ValueError naming the file
        if df.empty:
            raise ValueError(f"{csv} has no rows (columns: {', '.join(df.columns) or 'none'}); "
                             f"rerun the study that writes it")
        for png, fn in makers.items():
            try:
                fig = fn(df)
            except KeyError as exc:
                raise ValueError(f"{csv} lacks column {exc} needed for {png}.png; is it the "
                                 f"table of study {csv.stem!r}?") from None
            except (ValueError, TypeError, IndexError, AttributeError) as exc:
                raise ValueError(f"{csv}: cannot draw {png}.png from it "
                                 f"({type(exc).__name__}: {exc})") from exc
            drawn.append((figures_dir / f"{png}.png", fig))
    for out, fig in drawn:
        save_figure(fig, out, dpi=dpi)
    return [out for out, _ in drawn]


def save_figure(fig: Figure, path, *, dpi: int = 130) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (temporary name, then rename)."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    write_files([(path, buffer.getvalue())])
    return path


# Figure functions follow, one section per study; each is registered with
# @figure(csv_stem, png_stem).


# --- keep_prob sweep, Monte Carlo, subnetwork spread, depth and width -------------
# (tables from ensemble_study/studies/{sweep,mc,spread,depth}.py)

ACTIVATION_COLORS = {"identity": "tab:gray", "relu": "tab:blue", "tanh": "tab:orange",
                     "sigmoid": "tab:green"}
STATISTIC_LABELS = {"arithmetic_mean": "arithmetic mean", "nwgm": "NWGM"}
BAND = ("line: median over networks; dark band: its bootstrap 95% CI; "
        "light band: 10-90% of networks")
SEED_BAND = ("median over training seeds; dark band: its bootstrap 95% CI; "
             "light band: 10-90% of seeds")
EXACT = 1e-9  # a relative gap below this is rounding error: the two sides are equal


def _networks(df) -> str:
    """Setup text: the architectures and how many random networks each curve summarises."""
    archs = " and ".join(sorted(df["architecture"].unique()))
    return f"{archs}; {df['seed'].nunique()} random networks per curve"


def _activation_handles(activations):
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=ACTIVATION_COLORS[a], label=a) for a in activations]


@figure("sweep", "sweep")
def plot_sweep(df: pd.DataFrame) -> Figure:
    """Relative gap |ensemble - scaled pass| / std against keep_prob.

    Rows: output function and ensemble statistic; columns: inverted dropout,
    then vanilla dropout on the same weights. One median line per activation
    with its bootstrap 95% CI and the 10-90% spread across networks; on the
    inverted panels, vanilla dropout on the equivalent weights as hollow
    markers, which must sit on the inverted line (DESIGN fact 5).
    """
    from matplotlib.lines import Line2D

    outputs = list(dict.fromkeys(df["output"]))
    stats = [s for s in STATISTIC_LABELS if s in set(df["statistic"])]
    activations = list(dict.fromkeys(df["activation"]))
    panels = [(out, stat) for out in outputs for stat in stats]
    schemes = ("inverted", "vanilla")
    fig, axes = new_figure(len(panels), len(schemes), width=5.0, height=3.1)
    skipped = set()
    for i, (out, stat) in enumerate(panels):
        # Every gap is 0 at keep_prob = 1 (no dropout): nothing to draw on a log axis.
        sub = df[(df["output"] == out) & (df["statistic"] == stat) & (df["keep_prob"] < 1)]
        for j, scheme in enumerate(schemes):
            ax = axes[i, j]
            for act in activations:
                cell = sub[sub["activation"] == act]
                same = cell[(cell["scheme"] == scheme) & (cell["weights"] == "original")]
                if same.empty or same["relative_gap"].max() < EXACT:
                    skipped.add(act)  # zero up to rounding (identity activations, NWGM)
                    continue
                x = sorted(same["keep_prob"].unique())
                median_band(ax, x, same.groupby("keep_prob")["relative_gap"], label=act,
                            color=ACTIVATION_COLORS[act])
                eq = cell[cell["weights"] == "equivalent"]
                if scheme == "inverted" and not eq.empty:
                    med = eq.groupby("keep_prob")["relative_gap"].median()
                    ax.plot(med.index, med.to_numpy(), color=ACTIVATION_COLORS[act],
                            linestyle="none", marker="o", markerfacecolor="none", markersize=5)
            ax.set_yscale("log")
            ax.set_xlim(0, 1.02)
            ax.set_xlabel("keep_prob (probability of keeping a unit)")
            ax.set_ylabel("|ensemble - scaled| / std")
            weights = "same weights" if scheme == "vanilla" else "circles: vanilla, equivalent"
            ax.set_title(f"{out} output, {STATISTIC_LABELS[stat]}: {scheme} ({weights})",
                         fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
    handles = _activation_handles(activations) + [
        Line2D([], [], color="k", linestyle="none", marker="o", markerfacecolor="none",
               label="vanilla dropout on the equivalent weights"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=9, frameon=False)
    note = (f"\nNot drawn (zero up to rounding): keep_prob 1, and the NWGM of "
            f"{', '.join(sorted(skipped))}-activation networks" if skipped else "")
    fig.suptitle(
        "Exact dropout ensemble vs the scaled pass, dropout on every hidden unit\n"
        f"{_networks(df)}\n{BAND}{note}",
        fontsize=10,
    )
    return fig


@figure("sweep", "sweep_slope")
def plot_sweep_slope(df: pd.DataFrame) -> Figure:
    """Absolute gap against (1 - q)/q on log-log axes, inverted dropout.

    A reference line of slope 1 shows the small-noise prediction (DESIGN fact
    7); each legend entry gives the slope fitted for keep_prob >= 0.8.
    """
    from .studies.sweep import small_noise_slopes

    q_min = 0.8
    inv = df[(df["scheme"] == "inverted") & (df["weights"] == "original") & (df["keep_prob"] < 1)]
    inv = inv.assign(noise=(1 - inv["keep_prob"]) / inv["keep_prob"])
    slopes = small_noise_slopes(inv, q_min=q_min).set_index(["output", "activation", "statistic"])
    if slopes.empty:
        fig, axes = new_figure(width=6.0, height=2.0)
        axes[0, 0].set_axis_off()
        axes[0, 0].text(0.5, 0.5, "No slope to draw: the sweep has no inverted-dropout run with "
                        f"{q_min} <= keep_prob < 1\n(at least two such keep_probs are needed; "
                        "ran: " + ", ".join(f"{q:g}" for q in sorted(df["keep_prob"].unique()))
                        + ")", ha="center", va="center", fontsize=9, wrap=True)
        return fig
    outputs = list(dict.fromkeys(inv["output"]))
    stats = [s for s in STATISTIC_LABELS if s in set(inv["statistic"])]
    fig, axes = new_figure(len(outputs), len(stats), width=5.0, height=3.6)
    for i, out in enumerate(outputs):
        for j, stat in enumerate(stats):
            ax = axes[i, j]
            sub = inv[(inv["output"] == out) & (inv["statistic"] == stat)]
            for act in dict.fromkeys(sub["activation"]):
                cell = sub[sub["activation"] == act]
                if (out, act, stat) not in slopes.index:
                    continue  # an exactly-zero gap has no slope
                slope = slopes.loc[(out, act, stat), "slope"]
                x = sorted(cell["noise"].unique())
                median_band(ax, x, cell.groupby("noise")["mean_abs_gap"],
                            label=f"{act} (slope {slope:.2f})", color=ACTIVATION_COLORS[act])
            # Slope-1 reference through the median gap at the smallest (1 - q)/q.
            x0 = sub["noise"].min()
            y0 = sub[sub["noise"] == x0]["mean_abs_gap"].median()
            xs = sorted(sub["noise"].unique())
            ax.plot(xs, [y0 * x / x0 for x in xs], color="k", linestyle=":", linewidth=1.5,
                    label="slope 1: (1-q)/q")
            ax.axvline((1 - q_min) / q_min, color="0.5", linewidth=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            # Decades only, labelled plainly: minor labels collided on this axis.
            ax.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.xaxis.set_major_formatter("{x:g}")
            ax.set_xlabel("(1 - keep_prob) / keep_prob")
            ax.set_ylabel("mean |ensemble - scaled|")
            ax.set_title(f"{out} output: {STATISTIC_LABELS[stat]}, inverted", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.suptitle(
        "Does the gap vanish like (1-q)/q as keep_prob q -> 1?  "
        f"Slopes fitted left of the grey line (q >= {q_min})\n{_networks(df)}\n{BAND}",
        fontsize=10,
    )
    return fig


@figure("mc", "mc")
def plot_mc(df: pd.DataFrame) -> Figure:
    """Error of a K-member sampled ensemble against the exact one, vs K.

    Rows: statistic; columns: activation. The scaled pass's error is the
    horizontal line; the dotted vertical line marks, as the README's table
    does, the median over networks of each network's smallest K from which
    sampling (median over draws) is closer to the exact ensemble.
    """
    from .report import network_crossings

    # The statistic of the README's table: per network the first K that beats
    # the scaled pass, then the median over networks (never = beyond the grid).
    per_network = network_crossings(df).fillna({"k": np.inf})
    cross = per_network.groupby(["activation", "statistic"])["k"].median().to_frame()
    stats = [s for s in STATISTIC_LABELS if s in set(df["statistic"])]
    activations = list(dict.fromkeys(df["activation"]))
    fig, axes = new_figure(len(stats), len(activations), width=4.2, height=3.4)
    for i, stat in enumerate(stats):
        for j, act in enumerate(activations):
            ax = axes[i, j]
            sub = df[(df["statistic"] == stat) & (df["activation"] == act)]
            sampled = sub[sub["method"] == "sampled"]
            ks = sorted(sampled["n_subnetworks"].unique())
            median_band(ax, ks, sampled.groupby("n_subnetworks")["mean_abs_gap"],
                        label="K sampled subnetworks", color="tab:blue", marker=".")
            # Reference K^(-1/2) through the median error at the smallest K.
            y0 = sampled.loc[sampled["n_subnetworks"] == ks[0], "mean_abs_gap"].median()
            ax.plot(ks, [y0 * (k / ks[0]) ** -0.5 for k in ks], color="k", linestyle=":",
                    linewidth=1, label="K^(-1/2) reference")
            scaled = sub.loc[sub["method"] == "scaled", "mean_abs_gap"]
            ax.axhline(scaled.median(), color="tab:red", linewidth=1.5, label="scaled pass")
            ax.axhspan(scaled.quantile(0.1), scaled.quantile(0.9), color="tab:red", alpha=0.1,
                       linewidth=0)
            k = cross.loc[(act, stat), "k"]
            if np.isfinite(k):
                ax.axvline(k, color="k", linestyle=":", linewidth=1)
                right = k > np.sqrt(min(ks) * max(ks))  # label on the roomier side
                ax.text(k, 0.97, f"K = {k:g} " if right else f" K = {k:g}", va="top",
                        ha="right" if right else "left", transform=ax.get_xaxis_transform(),
                        fontsize=9)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("K (sampled subnetworks)")
            ax.set_ylabel("mean |error| vs exact ensemble")
            ax.set_title(f"{act} hidden units: {STATISTIC_LABELS[stat]}", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=4,
               fontsize=8, frameon=False)
    first = df.iloc[0]
    fig.suptitle(
        f"Monte Carlo dropout vs the scaled pass, both against the exact ensemble\n"
        f"{_networks(df)}, {first['output']} output, {first['scheme']} dropout, "
        f"keep_prob {first['keep_prob']:g}; {df['repeat'].nunique()} draws per K\n{BAND}",
        fontsize=10,
    )
    return fig


@figure("spread", "spread")
def plot_spread(df: pd.DataFrame) -> Figure:
    """Distribution of every subnetwork's output, with the ensemble and the scaled pass.

    Rows: activation; columns: input. The histogram is weighted by the masks'
    probabilities; vertical lines mark the arithmetic mean, the NWGM and the
    scaled pass.
    """
    marks = {"arithmetic_mean": ("arithmetic mean", "k", "-"), "nwgm": ("NWGM", "tab:red", "--"),
             "scaled": ("scaled pass", "tab:blue", ":")}
    activations = list(dict.fromkeys(df["activation"]))
    inputs = sorted(df["input"].unique())
    fig, axes = new_figure(len(activations), len(inputs), width=3.6, height=2.6)
    for i, act in enumerate(activations):
        for j, inp in enumerate(inputs):
            ax = axes[i, j]
            sub = df[(df["activation"] == act) & (df["input"] == inp)]
            subnets = sub[sub["quantity"] == "subnetwork"]
            ax.hist(subnets["value"], bins=40, weights=subnets["probability"], color="0.7",
                    label="subnetworks")
            for quantity, (label, color, style) in marks.items():
                value = sub.loc[sub["quantity"] == quantity, "value"]
                if not value.empty:
                    ax.axvline(value.iloc[0], color=color, linestyle=style, linewidth=1.8,
                               label=label)
            # Sigmoid outputs: one x-range, [0, 1], so that panels compare at a glance.
            ax.set_xlim(0, 1)
            ax.set_xlabel("subnetwork output")
            ax.set_ylabel("probability")
            ax.set_title(f"{act} hidden units, input {inp}", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=9, frameon=False)
    first = df.iloc[0]
    fig.suptitle(
        f"All {int(first['n_subnetworks']):,} subnetworks of a {first['architecture']} network "
        f"({first['output']} output), {first['scheme']} dropout on the hidden units, "
        f"keep_prob {first['keep_prob']:g}",
        fontsize=10,
    )
    return fig


@figure("depth", "depth")
def plot_depth(df: pd.DataFrame) -> Figure:
    """Relative gap against depth (fixed dropped units) and width (per depth).

    Columns: activation. Top row: the gap against the number of hidden
    layers for the numbers of dropped units reached by several depths.
    Bottom row: the gap against the width, one line per depth. Solid lines
    (with bands) compare the arithmetic mean, dashed lines the NWGM.
    """
    from matplotlib.lines import Line2D

    activations = list(dict.fromkeys(df["activation"]))
    depths_per_budget = df.groupby("n_dropped")["depth"].nunique()
    budgets = depths_per_budget[depths_per_budget == depths_per_budget.max()].index
    budgets = sorted(budgets)[-2:]
    colors = ["tab:purple", "tab:brown", "tab:cyan", "tab:olive", "tab:pink"]
    fig, axes = new_figure(2, len(activations), width=4.2, height=3.4)
    for j, act in enumerate(activations):
        sub = df[df["activation"] == act]
        rows = [("depth", "n_dropped", budgets, "{} dropped units", "number of hidden layers"),
                ("width", "depth", sorted(sub["depth"].unique()), "{} hidden layers",
                 "hidden width (units per layer)")]
        for i, (x, key, values, label, xlabel) in enumerate(rows):
            ax = axes[i, j]
            for value, color in zip(values, colors, strict=False):
                cell = sub[sub[key] == value]
                mean = cell[cell["statistic"] == "arithmetic_mean"]
                xs = sorted(mean[x].unique())
                text = label.format(value).replace("1 hidden layers", "1 hidden layer")
                median_band(ax, xs, mean.groupby(x)["relative_gap"], label=text,
                            color=color, marker="o", markersize=4)
                nwgm = cell[cell["statistic"] == "nwgm"]
                if not nwgm.empty:
                    median_band(ax, sorted(nwgm[x].unique()), nwgm.groupby(x)["relative_gap"],
                                label=None, color=color, spread=None, linestyle="--",
                                marker="x", markersize=4, linewidth=1)
            if x == "width":
                ax.set_xscale("log", base=2)
                ax.xaxis.set_major_formatter("{x:g}")
            else:
                ax.set_xticks(sorted(sub["depth"].unique()))
            ax.set_ylim(bottom=0)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("relative gap  |ensemble - scaled| / std")
            ax.set_title(f"{act} hidden units", fontsize=10)
            ax.grid(True, alpha=0.3)
            if j == len(activations) - 1:  # the same legend holds for every column
                handles, _ = ax.get_legend_handles_labels()
                ax.legend(handles=handles + [
                    Line2D([], [], color="k", label="arithmetic mean"),
                    Line2D([], [], color="k", linestyle="--", marker="x", linewidth=1,
                           label="NWGM"),
                ], fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    first = df.iloc[0]
    fig.suptitle(
        f"Depth and width: {first['output']} output, {first['scheme']} dropout on every hidden "
        f"unit, keep_prob {first['keep_prob']:g}; {df['seed'].nunique()} random networks per "
        f"point\n{BAND}",
        fontsize=10,
    )
    return fig


# --- trained and boundary studies (issue 5) -----------------------------------

_PREDICTOR_STYLE = {
    "exact_mean": {"label": "exact ensemble (mean)", "color": "black", "lw": 2},
    "exact_nwgm": {"label": "exact ensemble (NWGM)", "color": "tab:purple", "ls": ":", "lw": 2},
    "scaled": {"label": "scaled pass", "color": "tab:orange", "ls": "--", "lw": 2},
}
_SAMPLED_COLORS = {1: "tab:red", 10: "tab:green", 100: "tab:blue", 1000: "tab:cyan"}
_DATASET_TITLE = {"digits": "digits, 10 classes", "digits_2v3": "digits 2 vs 3",
                  "digits_0v8": "digits 0 vs 8", "digits_1v7": "digits 1 vs 7"}


def _per_seed(df: pd.DataFrame, keys: list, value: str) -> pd.DataFrame:
    """Average ``value`` over draws, keeping one value per seed."""
    return df.groupby(keys + ["seed"], as_index=False)[value].mean()


def _title(dataset: str, arch: str) -> str:
    return f"{_DATASET_TITLE.get(dataset, dataset)} ({arch})"


def _metric_rows(df: pd.DataFrame) -> tuple[list, str]:
    """Panel rows (dataset, metric) and a note on the rows left out.

    A dataset gets a test-error row and an NLL row, except when the exact
    ensemble's error is at most 2% in every cell: a handful of test examples
    then decide the error, and only the NLL row is drawn.
    """
    rows, notes = [], []
    for ds, d in df.groupby("dataset", sort=False):
        worst = d.loc[d["predictor"] == "exact_mean", "error"].max()
        if worst <= 0.02:
            notes.append(f"{_DATASET_TITLE.get(ds, ds)}: NLL only, the exact ensemble's "
                         f"test error is at most {worst:.1%} in every run")
        rows += [(ds, m) for m in (("nll",) if worst <= 0.02 else ("error", "nll"))]
    return rows, "; ".join(notes)


@figure("trained", "trained_error")
def plot_trained_error(df: pd.DataFrame) -> Figure:
    """Test error and NLL against keep_prob for each predictor, after training with dropout."""
    df = df[df["state"] == "trained"]
    schemes = sorted(set(df["scheme"]))
    rows, note = _metric_rows(df)
    fig, axes = new_figure(len(rows), len(schemes), height=3.0)
    x = sorted(df["keep_prob"].unique())
    for i, (ds, metric) in enumerate(rows):
        for j, scheme in enumerate(schemes):
            ax, cell = axes[i, j], df[(df["dataset"] == ds) & (df["scheme"] == scheme)]
            sampled = cell[(cell["predictor"] == "sampled") & cell["n_samples"].isin([10, 100])]
            for k, s in sampled.groupby("n_samples"):
                s = _per_seed(s, ["keep_prob"], metric)
                median_band(ax, x, s.groupby("keep_prob")[metric], lw=1.2, marker=".",
                            label=f"sampled, K={k}", color=_SAMPLED_COLORS.get(k),
                            statistic="mean", spread=None)
            for pred, style in _PREDICTOR_STYLE.items():
                s = cell[cell["predictor"] == pred]
                median_band(ax, x, s.groupby("keep_prob")[metric], statistic="mean",
                            spread=None, **style)
            ax.set_title(f"{_title(ds, cell['architecture'].iloc[0])}, {scheme} dropout",
                         fontsize=9)
            ax.set_ylabel("test error" if metric == "error" else "test NLL (nats)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("keep_prob (both hidden layers)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=4,
               fontsize=8, frameon=False)
    fig.suptitle("Trained with dropout: test error and negative log-likelihood of each "
                 "predictor\n(mean over training seeds, band: its bootstrap 95% CI)"
                 + (f"\n{note}" if note else ""), fontsize=10)
    return fig


@figure("trained", "trained_gap")
def plot_trained_gap(df: pd.DataFrame) -> Figure:
    """Gap between the scaled pass and the exact ensemble mean, trained against untrained."""
    df = df[df["predictor"] == "scaled"]
    datasets = list(dict.fromkeys(df["dataset"]))
    # Total variation rather than KL: a trained scaled pass often saturates
    # (p = 1.0 in float), which makes KL(exact || scaled) infinite.
    metrics = [("total_variation", "total variation distance,\nexact mean vs scaled pass"),
               ("disagreement", "fraction of test examples\nwhere the predicted class differs")]
    fig, axes = new_figure(len(datasets), len(metrics))
    x = sorted(df["keep_prob"].unique())
    colors = {"vanilla": "tab:blue", "inverted": "tab:red"}
    for i, ds in enumerate(datasets):
        for j, (metric, label) in enumerate(metrics):
            ax = axes[i, j]
            for (scheme, state), s in df[df["dataset"] == ds].groupby(["scheme", "state"]):
                median_band(ax, x, s.groupby("keep_prob")[metric], color=colors.get(scheme),
                            ls="-" if state == "trained" else ":", marker=".",
                            label=f"{scheme}, {'trained' if state == 'trained' else 'at init'}")
            if metric == "total_variation":
                ax.set_yscale("log")
            ax.set_title(_title(ds, df.loc[df["dataset"] == ds, "architecture"].iloc[0]),
                         fontsize=10)
            ax.set_xlabel("keep_prob (both hidden layers)")
            ax.set_ylabel(label, fontsize=9)
            ax.grid(alpha=0.3, which="both")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=4,
               fontsize=8)
    fig.suptitle("Scaled pass against the exact ensemble: trained (solid) and at "
                 "initialisation (dotted)\n" + SEED_BAND,
                 fontsize=10)
    return fig


@figure("trained", "trained_samples")
def plot_trained_samples(df: pd.DataFrame) -> Figure:
    """Sampled-ensemble test error against K, with the exact ensemble and scaled pass as lines."""
    df = df[(df["state"] == "trained") & (df["scheme"] == "inverted")]
    qs = sorted(df["keep_prob"].unique())
    rows, note = _metric_rows(df)
    fig, axes = new_figure(len(rows), len(qs), width=3.0, height=2.5)
    for i, (ds, metric) in enumerate(rows):
        for j, q in enumerate(qs):
            ax, cell = axes[i, j], df[(df["dataset"] == ds) & (df["keep_prob"] == q)]
            s = _per_seed(cell[cell["predictor"] == "sampled"], ["n_samples"], metric)
            ks = sorted(s["n_samples"].unique())
            median_band(ax, ks, s.groupby("n_samples")[metric], color="tab:blue", marker="o",
                        label="sampled ensemble of K (mean over draws)")
            for pred, style in _PREDICTOR_STYLE.items():
                ax.axhline(cell.loc[cell["predictor"] == pred, metric].median(),
                           **{**style, "lw": 1.5})
            ax.set_xscale("log")
            ax.set_title(f"{_DATASET_TITLE.get(ds, ds)}, keep_prob={q:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel("test error" if metric == "error" else "test NLL (nats)")
            ax.grid(alpha=0.3, which="both")
    for ax in axes[-1]:
        ax.set_xlabel("K (subnetworks sampled)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=4,
               fontsize=8)
    fig.suptitle("Inverted dropout, trained: Monte Carlo averaging against the exact "
                 "ensemble and the scaled pass\n" + SEED_BAND
                 + (f"\n{note}" if note else ""), fontsize=10)
    return fig


@figure("boundary", "boundary")
def plot_boundary(df: pd.DataFrame) -> Figure:
    """Decision boundaries (p = 0.5) of the exact ensemble, its NWGM and the scaled pass."""
    qs, schemes = sorted(df["keep_prob"].unique()), sorted(df["scheme"].unique())
    fig, axes = new_figure(len(qs), len(schemes), width=3.4, height=3.3)
    lim = max(float((df["exact_mean"] - df["scaled"]).abs().max()), 1e-3)
    for (q, scheme), cell in df.groupby(["keep_prob", "scheme"]):
        ax = axes[qs.index(q), schemes.index(scheme)]
        x1, x2 = sorted(cell["x1"].unique()), sorted(cell["x2"].unique())
        cell = cell.sort_values(["x2", "x1"])

        grid = {col: cell[col].to_numpy().reshape(len(x2), len(x1))
                for col in _PREDICTOR_STYLE}
        im = ax.pcolormesh(x1, x2, grid["exact_mean"] - grid["scaled"], cmap="RdBu_r",
                           vmin=-lim, vmax=lim, shading="nearest")
        for col, style in _PREDICTOR_STYLE.items():
            ax.contour(x1, x2, grid[col], levels=[0.5], colors=style["color"],
                       linestyles={"-": "solid", "--": "dashed", ":": "dotted"}[
                           style.get("ls", "-")], linewidths=1.8)
        if cell["dataset"].iloc[0] == "diamond":
            ax.plot([1, 0, -1, 0, 1], [0, 1, 0, -1, 0], color="0.5", lw=0.8)
        first = cell.iloc[0]
        ax.set_title(f"{scheme}, keep_prob={q:g}\ntest error: exact "
                     f"{first['test_error_exact']:.3f}, scaled {first['test_error_scaled']:.3f}",
                     fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    fig.colorbar(im, ax=axes[:, -1], label="p(exact mean) - p(scaled pass)", shrink=0.8)
    for style in _PREDICTOR_STYLE.values():  # legend proxies
        axes[0, 0].plot([], [], **{**style, "lw": 1.8})
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle(f"Decision boundary p = 0.5 on {df['dataset'].iloc[0]} "
                 f"({df['architecture'].iloc[0]}, every hidden layer dropped)\n"
                 "grey: the true boundary", fontsize=10)
    return fig


# --- Benchmark of exact enumeration (ensemble_study.bench).


@figure("bench", "bench")
def plot_bench(df: pd.DataFrame) -> Figure:
    """Seconds against the number of dropped units: naive per-mask loop vs the package."""
    fig, axes = new_figure(width=7.2, height=4.4)
    ax = axes[0, 0]
    sweep = df[df["case"] == "sweep"].sort_values("n_dropped")
    arch = "8-h-h-10 softmax"
    # Each legend entry is drawn exactly as its points are: the naive line
    # without markers, then its measured points filled and its extrapolated
    # ones hollow (an entry with no point is not drawn).
    naive = sweep[sweep["method"] == "naive"]
    ax.plot(naive["n_dropped"], naive["seconds"], color="0.35", ls="--",
            label=f"naive loop: mean, NWGM, variance ({arch})")
    guessed = naive["extrapolated"].astype(bool)
    for points, style, label in ((naive[~guessed], {"mfc": "0.35"}, "naive, measured"),
                                 (naive[guessed], {"mfc": "white"},
                                  "naive, extrapolated from the first masks")):
        if not points.empty:
            ax.plot(points["n_dropped"], points["seconds"], ls="none", marker="o", mec="0.35",
                    label=label, **style)
    rows = sweep[sweep["method"] == "package"]
    ax.plot(rows["n_dropped"], rows["seconds"], color="C0", ls="-", marker="o",
            label=f"package: mean, NWGM, variance ({arch})")
    package = df[df["method"] == "package"]
    for stat, marker, color, label in (
        ("mean+nwgm", "s", "C1", "package: mean and NWGM only (softmax)"),
        ("nwgm", "^", "C2", "package: NWGM only (softmax)"),
        ("identity", "v", "C3", "package: identity output, mean and variance"),
    ):
        rows = package[package["statistics"] == stat]
        ax.plot(rows["n_dropped"], rows["seconds"], ls="none", marker=marker, color=color,
                label=label)
    rows = package[package["case"] == "g"]
    ax.plot(rows["n_dropped"], rows["seconds"], ls="none", marker="D", color="C4",
            label="package: generic path, input and first hidden layer dropped")
    rows = package[package["case"] == "a"]
    ax.plot(rows["n_dropped"], rows["seconds"], ls="none", marker="P", color="C5",
            label="package: sigmoid 2-10-10-1, mean, NWGM, variance")
    c_rows = df[(df["method"] == "c_reference") & (df["case"] != "sweep")]
    ax.plot(c_rows["n_dropped"], c_rows["seconds"], ls="none", marker="x", color="k",
            label="hand-written C (softmax: mean and NWGM; identity: Gray-code E[hidden])")
    ax.set_yscale("log")
    ax.set_xlabel("dropped units n (2^n subnetworks)")
    ax.set_ylabel("seconds")
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=2, fontsize=7)
    first = df.iloc[0]
    ax.set_title(f"Exact ensemble of {first['n_examples']} inputs, both hidden layers dropped\n"
                 f"{first['blas']}, matmul peak {first['matmul_peak_gflops']:.0f} GFLOP/s",
                 fontsize=9)
    return fig


# --- Srivastava et al. 2014 Fig. 11 on digits (ensemble_study/studies/srivastava.py) -

@figure("srivastava", "srivastava_fig11")
def plot_srivastava_fig11(df: pd.DataFrame) -> Figure:
    """Test error against K sampled subnetworks, with the scaled pass and the exact ensemble.

    Rows: scheme; columns: keep_prob (networks with one hidden layer, the
    ones whose exact arithmetic mean the study computes). The Monte Carlo
    line is the mean over networks of each network's mean error over draws;
    its band is +-1 sd over draws (each network's sd, averaged over
    networks), as in Srivastava et al.'s figure. The horizontal lines are the
    means over networks of the scaled pass, the exact ensemble and the
    no-dropout baseline, each with its bootstrap 95% CI over networks (light
    band); dotted verticals mark the first K at which Monte Carlo's mean
    error is at most the reference's.
    """
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    from .stats import bootstrap_ci
    from .studies.srivastava import crossings

    sampled = df[df["predictor"] == "sampled"]
    archs = list(dict.fromkeys(sampled["architecture"]))
    sampled = sampled[sampled["architecture"] == archs[0]]
    cells = df[df["architecture"] == archs[0]]
    schemes = sorted(set(sampled["scheme"]))
    qs = sorted(set(sampled["keep_prob"]))
    cross = crossings(df).set_index(["architecture", "scheme", "keep_prob", "reference"])
    base = cells.loc[cells["predictor"] == "no_dropout", "error"]
    fig, axes = new_figure(len(schemes), len(qs), width=4.4, height=3.5, sharey=True)
    n_exact = cells.loc[cells["predictor"] == "exact_mean", "n_samples"]
    n_exact = f"2^{int(np.log2(n_exact.iloc[0]))}" if len(n_exact) else "every"
    styles = {"scaled": ("tab:red", "--", "scaled pass"),
              "exact_mean": ("k", "-", f"exact ensemble ({n_exact} subnetworks)")}
    for i, scheme in enumerate(schemes):
        for j, q in enumerate(qs):
            ax = axes[i, j]
            sub = cells[(cells["scheme"] == scheme) & (cells["keep_prob"] == q)]
            mc = sub[sub["predictor"] == "sampled"]
            per_seed = mc.groupby(["n_samples", "seed"])["error"]
            mean = per_seed.mean().groupby("n_samples").mean()
            sd = per_seed.std(ddof=1).groupby("n_samples").mean()
            ks = mean.index.to_numpy()
            ax.plot(ks, mean.to_numpy(), color="tab:blue", marker=".",
                    label=f"K sampled subnetworks (+-1 sd over {mc['draw'].nunique()} draws)")
            ax.fill_between(ks, (mean - sd).to_numpy(), (mean + sd).to_numpy(),
                            color="tab:blue", alpha=0.2, linewidth=0)
            for ref, (color, style, label) in styles.items():
                est, lo, hi = bootstrap_ci(sub.loc[sub["predictor"] == ref, "error"], "mean")
                ax.axhline(est, color=color, linestyle=style, linewidth=1.3, label=label)
                ax.axhspan(lo, hi, color=color, alpha=0.08, linewidth=0)
                k = cross.loc[(archs[0], scheme, q, ref), "k"]
                if np.isfinite(k):
                    ax.axvline(k, color=color, linestyle=":", linewidth=1)
            if len(base):
                ax.axhline(base.mean(), color="tab:gray", linestyle=(0, (1, 2)), linewidth=1.3,
                           label="no-dropout baseline")
            ax.set_xscale("log")
            ax.set_yscale("log")
            # Plain decimal ticks on every panel (log minor labels collide or vanish).
            ax.yaxis.set_major_locator(FixedLocator([0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15,
                                                     0.2, 0.3, 0.5]))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("K (sampled subnetworks)")
            ax.set_ylabel("test error (whole test split)")
            ax.tick_params(labelleft=True)
            ax.set_title(f"{scheme} dropout, keep_prob {q:g}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Srivastava et al. 2014 Fig. 11 on digits: {archs[0]} ReLU networks, "
        f"{sampled['seed'].nunique()} training seeds (means over them)\n"
        "dotted verticals: first K where Monte Carlo's mean error <= the scaled pass "
        "(red) / exact ensemble (black)", fontsize=10)
    return fig


# --- Every approximation against the exact ensemble ----------------------------
# (table from ensemble_study/studies/approximations.py)

_APPROX_STYLE = {
    ("scaled", 0): {"label": "scaled pass", "color": "tab:red", "marker": "o"},
    ("nwgm", 0): {"label": "NWGM", "color": "tab:purple", "marker": "s"},
    ("nwgm_corrected", 0): {"label": "NWGM + 2nd-order correction", "color": "tab:pink",
                            "marker": "D"},
    ("moment_propagation", 0): {"label": "moment propagation", "color": "tab:green",
                                "marker": "^"},
    ("mc", 10): {"label": "MC, K = 10", "color": "tab:blue", "ls": "--", "marker": "."},
    ("mc", 100): {"label": "MC, K = 100", "color": "tab:blue", "marker": "."},
    ("rb_mc", 10): {"label": "RB MC, K = 10", "color": "tab:orange", "ls": "--", "marker": "."},
    ("rb_mc", 100): {"label": "RB MC, K = 100", "color": "tab:orange", "marker": "."},
}
_APPROX_BAND = "median over networks, band: bootstrap 95% CI of the median"


def _median_ci(values) -> tuple[float, float, float]:
    """Median of the finite values and its bootstrap 95% CI (``stats.bootstrap_ci``)."""
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)])
    return bootstrap_ci(v) if v.size else (np.nan, np.nan, np.nan)


def _approx_networks(df) -> pd.DataFrame:
    """One value per network, keep_prob, predictor and K: the mean over draws."""
    keys = ["part", "dataset", "architecture", "activation", "output", "keep_prob", "seed",
            "predictor", "n_samples"]
    cols = ["mean_abs_error", "cost_passes", "variance_exact", "variance_predicted"]
    return (df[df["part"] != "baldi"].groupby(keys, as_index=False, sort=False, dropna=False)
            [cols].mean())


@figure("approximations", "approximations_keep_prob")
def plot_approximations_keep_prob(df: pd.DataFrame) -> Figure:
    """Error of each predictor's mean against keep_prob, random networks.

    Rows: output; columns: hidden activation; one line per predictor (MC and
    RB MC at K = 10 and 100), the median over networks with its bootstrap CI.
    """
    per = _approx_networks(df[df["part"] == "random"])
    outputs = list(dict.fromkeys(per["output"]))
    activations = list(dict.fromkeys(per["activation"]))
    fig, axes = new_figure(len(outputs), len(activations), width=3.6, height=3.0,
                           sharey="row")
    handles = {}
    for i, out in enumerate(outputs):
        for j, act in enumerate(activations):
            ax = axes[i, j]
            sub = per[(per["output"] == out) & (per["activation"] == act)]
            for (name, k), style in _APPROX_STYLE.items():
                g = sub[(sub["predictor"] == name) & (sub["n_samples"] == k)]
                if g.empty:
                    continue
                x = sorted(g["keep_prob"].unique())
                handles[style["label"]] = median_band(
                    ax, x, g.groupby("keep_prob")["mean_abs_error"], spread=None,
                    markersize=4, **style)
            ax.set_yscale("log")
            ax.set_xlabel("keep_prob")
            ax.set_ylabel("mean |predicted - exact mean|")
            ax.set_title(f"{out} output, {act} hidden", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncol=4,
               fontsize=8, frameon=False)
    fig.suptitle("Error of each approximation of the ensemble mean, against the exact "
                 f"ensemble\n{_networks(per)}; both hidden layers dropped\n{_APPROX_BAND}",
                 fontsize=10)
    return fig


@figure("approximations", "approximations_pareto")
def plot_approximations_pareto(df: pd.DataFrame) -> Figure:
    """Error against cost (forward-pass equivalents): MC and RB MC over K, each
    deterministic method a point, the exact ensemble's cost a vertical line.

    Rows: part (random at keep_prob 0.5; trained at 0.5); columns: activation.
    """
    per = _approx_networks(df)
    q = 0.5 if (per["keep_prob"] == 0.5).any() else per["keep_prob"].min()
    per = per[per["keep_prob"] == q]
    parts = [p for p in ("random", "trained") if (per["part"] == p).any()]
    activations = list(dict.fromkeys(per["activation"]))
    fig, axes = new_figure(len(parts), len(activations), width=3.6, height=3.1)
    handles = {}
    for i, part in enumerate(parts):
        for j, act in enumerate(activations):
            ax = axes[i, j]
            sub = per[(per["part"] == part) & (per["activation"] == act)]
            if sub.empty:
                ax.set_visible(False)
                continue
            for name, color, label in (("mc", "tab:blue", "plain MC (K marked)"),
                                       ("rb_mc", "tab:orange", "RB MC (K marked)")):
                g = sub[sub["predictor"] == name]
                # Every network's cost at one K is the same (one architecture per part).
                g = g.assign(cost=g.groupby("n_samples")["cost_passes"].transform("median"))
                by_cost = g.groupby("cost")
                cost = sorted(by_cost.groups)
                handles[label] = median_band(ax, cost, by_cost["mean_abs_error"], spread=None,
                                             label=label, color=color, marker=".")
                medians = by_cost["mean_abs_error"].median()
                for c, k in by_cost["n_samples"].first().items():
                    if k in (1, 10, 100, 1000):
                        ax.annotate(f"{k}", (c, medians[c]), fontsize=7, color=color,
                                    xytext=(2, 3), textcoords="offset points")
            for (name, k), style in _APPROX_STYLE.items():
                g = sub[(sub["predictor"] == name) & (sub["n_samples"] == k)]
                if k or g.empty:
                    continue
                med, lo, hi = _median_ci(g["mean_abs_error"])
                handles[style["label"]] = ax.errorbar(
                    g["cost_passes"].median(), med, yerr=[[med - lo], [hi - med]],
                    color=style["color"], marker=style["marker"], ls="none",
                    label=style["label"])
            exact_cost = sub.loc[sub["predictor"] == "exact", "cost_passes"].median()
            handles["exact ensemble's cost"] = ax.axvline(
                exact_cost, color="k", ls=":", lw=1, label="exact ensemble's cost")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("cost (forward-pass equivalents)")
            ax.set_ylabel("mean |predicted - exact mean|")
            ax.set_title(f"{part}: {act} hidden, keep_prob {q:g}", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncol=4,
               fontsize=8, frameon=False)
    fig.suptitle("Error against cost: from which K does Monte Carlo\n(plain or "
                 "Rao-Blackwellised) beat each one-pass method?\n"
                 f"sigmoid and softmax outputs pooled; {_APPROX_BAND}", fontsize=10)
    return fig


@figure("approximations", "approximations_variance")
def plot_approximations_variance(df: pd.DataFrame) -> Figure:
    """Predicted against exact ensemble variance (mean over inputs), one point per
    network and keep_prob; columns: moment propagation, MC K = 10, RB MC K = 10."""
    per = _approx_networks(df)
    panels = [("moment_propagation", 0, "moment propagation"), ("mc", 10, "plain MC, K = 10"),
              ("rb_mc", 10, "RB MC, K = 10"), ("mc", 100, "plain MC, K = 100")]
    panels = [p for p in panels if ((per["predictor"] == p[0]) & (per["n_samples"] == p[1])).any()]
    fig, axes = new_figure(1, len(panels), width=3.6, height=3.6)
    markers = {"random": "o", "trained": "x"}
    for j, (name, k, title) in enumerate(panels):
        ax = axes[0, j]
        sub = per[(per["predictor"] == name) & (per["n_samples"] == k)
                  & (per["variance_exact"] > 0) & (per["variance_predicted"] > 0)]
        for part, marker in markers.items():
            for act in dict.fromkeys(sub["activation"]):
                g = sub[(sub["part"] == part) & (sub["activation"] == act)]
                if g.empty:
                    continue
                ax.scatter(g["variance_exact"], g["variance_predicted"], s=10, marker=marker,
                           color=ACTIVATION_COLORS[act], alpha=0.6, linewidths=0.8,
                           label=f"{act} ({part})")
        lims = [sub[["variance_exact", "variance_predicted"]].min().min(),
                sub[["variance_exact", "variance_predicted"]].max().max()]
        ax.plot(lims, lims, color="k", lw=1, ls="--", label="predicted = exact")
        ratio = np.log(sub["variance_predicted"] / sub["variance_exact"])
        ax.text(0.03, 0.97, f"median |log ratio| {np.median(np.abs(ratio)):.2f}",
                transform=ax.transAxes, va="top", fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("exact ensemble variance")
        ax.set_ylabel("predicted variance")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("How well each method predicts the ensemble's variance (one point per "
                 "network and keep_prob, variances averaged over inputs and outputs)",
                 fontsize=10)
    return fig


@figure("approximations", "approximations_baldi")
def plot_approximations_baldi(df: pd.DataFrame) -> Figure:
    """Baldi & Sadowski's estimate of |E - NWGM| against the measured one, one point
    per (network, input), one panel per weight scale; points above the diagonal
    break the "bound"."""
    from .studies.approximations import baldi_summary

    d = df[df["part"] == "baldi"]
    share = baldi_summary(df).set_index(["activation", "weight_scale"])
    scales = sorted(d["weight_scale"].unique())
    fig, axes = new_figure(1, len(scales), width=3.8, height=3.8)
    values = d[["baldi_bound", "nwgm_abs_gap"]].to_numpy()
    # The few cases below the floor (a bound of 0 when E = 1/2) are drawn on it.
    floor = (np.quantile(values[values > 0], 0.002) if (values > 0).any() else 1e-10)
    for j, scale in enumerate(scales):
        ax = axes[0, j]
        sub = d[d["weight_scale"] == scale]
        for act in dict.fromkeys(sub["activation"]):
            g = sub[sub["activation"] == act]
            s = share.loc[(act, scale)]
            ax.scatter(np.maximum(g["baldi_bound"], floor), np.maximum(g["nwgm_abs_gap"], floor),
                       s=6, alpha=0.5, color=ACTIVATION_COLORS[act],
                       label=f"{act}: {s['share_breaking']:.0%} break "
                             f"[{s['ci_low']:.0%}, {s['ci_high']:.0%}]")
        ax.plot([floor, 1], [floor, 1], color="k", lw=1, ls="--", label="measured = bound")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(floor / 1.5, 1)
        ax.set_ylim(floor / 1.5, 1)
        ax.set_xlabel("Baldi's bound  E(1-E)|1-2E| / (1-2E(1-E))")
        ax.set_ylabel("measured |E - NWGM|")
        ax.set_title(f"weights x {scale:g}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    first = d.iloc[0]
    qs = ", ".join(f"{q:g}" for q in sorted(d["keep_prob"].unique()))
    fig.suptitle(f"Baldi & Sadowski's |E - NWGM| bound is an estimate: above the diagonal "
                 f"it fails\n{first['architecture']} sigmoid-output networks, both hidden "
                 f"layers dropped, keep_prob {qs}\nshare of (network, input) cases breaking "
                 "it, with a 95% bootstrap CI over networks", fontsize=10)
    return fig
