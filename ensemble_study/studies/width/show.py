"""The width study's figure and documentation blocks, from its saved table only.

Every comparison is of means over random networks: t-intervals per cell,
Welch's test between widths (different networks), a paired t-test between
initialisations (the same standard-normal draws, see the study's docstring);
Holm within each declared family.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from ... import stats
from ...report import ci, names, num, table, trend_sentence
from . import STUDY

METRICS = {"relative_gap": "relative gap", "mean_abs_gap": "mean absolute gap",
           "total_variation": "total variation", "kl": "KL divergence"}
INIT_NAMES = {"lecun": "LeCun", "he": "He", "glorot": "Glorot"}
FAN_IN = ("lecun", "he")



def _layers(depth: int) -> str:
    return f"{depth} layer{'s' if depth > 1 else ''}"


def _design(df: pd.DataFrame, dropped: str) -> str:
    if dropped == "input":
        k = sorted(df.loc[df.dropped == "input", "n_dropped"].unique())
        return (f"the {names([str(int(x)) for x in k])} inputs dropped (the same number at "
                f"every width)")
    return "every hidden unit dropped (depth x width units)"


def width_family(df: pd.DataFrame, dropped: str, weights: tuple[str, ...]) -> pd.DataFrame:
    """Does the arithmetic-mean gap differ between the widest and the narrowest layers?

    For the design ``dropped`` and the initialisations ``weights``: one
    Welch t-test (different networks) per initialisation, activation, depth
    and metric of :data:`METRICS`, the widest width of that depth against
    the narrowest; Holm within this one family.
    """
    d = df[(df.statistic == "arithmetic_mean") & (df.dropped == dropped)
           & df.weights.isin(weights)]
    inits = "/".join(INIT_NAMES[w] for w in weights if w in set(d.weights))
    fam = stats.Family(f"width: arithmetic-mean gap at the widest against the narrowest "
                       f"layers, {dropped} dropout, {inits} weights, per initialisation, "
                       f"activation, depth and metric")
    for (w, act, dep), g in d.groupby(["weights", "activation", "depth"], sort=False):
        widths = sorted(g.width.unique())
        if len(widths) < 2:
            continue
        for metric in METRICS:
            t = stats.welch_test(g.loc[g.width == widths[-1], metric],
                                 g.loc[g.width == widths[0], metric])
            fam.add(f"{w} {act} {dep} {metric}", t["pvalue"], weights=w, activation=act,
                    depth=int(dep), metric=metric, grows=t["difference"] > 0,
                    difference=t["difference"], low=t["low"], high=t["high"],
                    widths=f"{widths[0]} to {widths[-1]}")
    return fam.table()


def width_sentence(res: pd.DataFrame, metric: str) -> str:
    """The width verdict on one metric, naming each (initialisation, activation, depth) that
    survives Holm; "no width difference survives Holm" when none does."""
    r = res[res.metric == metric]
    name = METRICS.get(metric, metric)

    def label(x):
        return f"{x.activation} ({INIT_NAMES[x.weights]}, {_layers(x.depth)})"

    up = [label(x) for x in r.itertuples() if x.survives and x.grows]
    down = [label(x) for x in r.itertuples() if x.survives and not x.grows]
    return trend_sentence(name, up, down, len(r))


@STUDY.block("width-table")
def width_table(df: pd.DataFrame) -> str:
    """Mean absolute gap at the narrowest and widest layers, inputs dropped, every init."""
    d = df[(df.statistic == "arithmetic_mean") & (df.dropped == "input")]
    rows = []
    for (w, act, dep), g in d.groupby(["weights", "activation", "depth"], sort=False):
        widths = sorted(g.width.unique())
        lo, hi = (g[g.width == x] for x in (widths[0], widths[-1]))
        rows.append([INIT_NAMES[w], act, str(dep), f"{widths[0]} to {widths[-1]}",
                     ci(*stats.t_interval(lo.mean_abs_gap)), ci(*stats.t_interval(hi.mean_abs_gap)),
                     ci(*stats.welch_interval(hi.mean_abs_gap, lo.mean_abs_gap)),
                     f"{num(lo.preact_rms.mean())} to {num(hi.preact_rms.mean())}"])
    n = d.seed.nunique()
    return (
        f"{_design(df, 'input').capitalize()}: arithmetic-mean absolute gap at the narrowest "
        f"and the widest hidden layers, mean over {n} networks per cell [t 95% CI]; their "
        f"difference [Welch 95% CI; different networks]; and the root mean square of the first "
        f"layer's pre-activations (no dropout), narrowest to widest.\n\n"
        + table(["weights", "hidden units", "hidden layers", "width", "narrowest", "widest",
                 "widest minus narrowest", "first-layer pre-activation RMS"], rows))


def _family_text(res: pd.DataFrame) -> str:
    return (f"Welch tests, Holm within the family of {len(res)}: *{res['family'].iloc[0]}*")


@STUDY.block("width-verdict")
def width_verdict(df: pd.DataFrame) -> str:
    """Fan-in initialisations only, one family per dropout design."""
    out = []
    for dropped in ("input", "hidden"):
        if dropped not in set(df.dropped):
            continue
        res = width_family(df, dropped, FAN_IN)
        if res.empty:
            continue
        out.append(f"With {_design(df, dropped)} and fan-in weights ({_family_text(res)}), "
                   f"the arithmetic-mean gap from the narrowest to the widest layers: "
                   + "; ".join(width_sentence(res, m) for m in METRICS) + ".")
    return "\n\n".join(out)


def glorot_family(df: pd.DataFrame) -> pd.DataFrame:
    """Is the gap under Glorot smaller than under LeCun at the widest layers?

    Inputs dropped; per activation, depth and metric, a paired t-test over
    networks (the two initialisations share their draws); Holm within this
    one family.
    """
    d = df[(df.statistic == "arithmetic_mean") & (df.dropped == "input")]
    fam = stats.Family("width: Glorot against LeCun weights at the widest layers, input "
                       "dropout, per activation, depth and metric")
    for (act, dep), g in d.groupby(["activation", "depth"], sort=False):
        wide = g[g.width == g.width.max()]
        a = wide[wide.weights == "glorot"].sort_values("seed")
        b = wide[wide.weights == "lecun"].sort_values("seed")
        if a.empty or b.empty or list(a.seed) != list(b.seed):
            continue
        for metric in METRICS:
            t = stats.paired_t(a[metric].to_numpy(), b[metric].to_numpy())
            fam.add(f"{act} {dep} {metric}", t["pvalue"], activation=act, depth=int(dep),
                    metric=metric, smaller=t["mean_difference"] < 0,
                    width=int(wide.width.max()))
    return fam.table()


def glorot_sentence(res: pd.DataFrame, metric: str) -> str:
    r = res[res.metric == metric]
    name = METRICS.get(metric, metric)
    small = [f"{x.activation} at {_layers(x.depth)}" for x in r.itertuples()
             if x.survives and x.smaller]
    large = [f"{x.activation} at {_layers(x.depth)}" for x in r.itertuples()
             if x.survives and not x.smaller]
    if not small and not large:
        return f"on the {name}, no difference survives Holm"
    parts = ([f"smaller under Glorot for {names(small)}"] if small else []) + (
        [f"larger under Glorot for {names(large)}"] if large else [])
    return f"on the {name} it is " + "; ".join(parts)


@STUDY.block("width-glorot")
def width_glorot(df: pd.DataFrame) -> str:
    """The confound, once: Glorot with few inputs shrinks the first layer and the gap."""
    d = df[(df.statistic == "arithmetic_mean") & (df.dropped == "input")]
    if not {"glorot", "lecun"} <= set(d.weights):
        return "The table holds no Glorot and LeCun networks to compare."
    widths = sorted(d.width.unique())
    k = int(d.n_dropped.iloc[0])

    def rms(w, x):
        return num(d.loc[(d.weights == w) & (d.width == x), "preact_rms"].mean())

    glorot_w = width_family(df, "input", ("glorot",))
    res = glorot_family(df)
    return (
        f"With {k} inputs, Glorot's first-layer variance 2 / ({k} + width) shrinks as the "
        f"layer widens: the root mean square of the first layer's pre-activations falls from "
        f"{rms('glorot', widths[0])} at width {widths[0]} to {rms('glorot', widths[-1])} at "
        f"width {widths[-1]} (mean over networks; LeCun: {rms('lecun', widths[0])} and "
        f"{rms('lecun', widths[-1])}): less of the dropout noise reaches the nonlinear "
        f"range of the units. Under Glorot, with the inputs dropped ({_family_text(glorot_w)}), "
        f"the gap from the narrowest to the widest layers: "
        + "; ".join(width_sentence(glorot_w, m) for m in METRICS)
        + f". At width {widths[-1]}, Glorot against LeCun on the same draws (paired t-tests, "
        f"Holm within the family of {len(res)}: *{res['family'].iloc[0]}*), the gap: "
        + "; ".join(glorot_sentence(res, m) for m in METRICS)
        + ". A width effect measured under Glorot with few inputs is this artefact of the "
        "initialisation, not an effect of the width.")


WEIGHT_STYLE = {"lecun": ("tab:blue", "-", "o"), "he": ("tab:red", "-", "s"),
                "glorot": ("tab:gray", "--", "x")}


@STUDY.figure("width")
def plot_width(df: pd.DataFrame) -> Figure:
    """Mean absolute gap against the width, one line per initialisation, at one hidden layer.

    Rows: the inputs dropped (a fixed number of dropped units); every hidden
    unit dropped. Columns: activation. Bands: t 95% CIs of the mean.
    """
    from ...plots import new_figure

    depth = int(df.depth.min())
    d = df[(df.statistic == "arithmetic_mean") & (df.depth == depth)]
    activations = list(dict.fromkeys(d.activation))
    designs = [k for k in ("input", "hidden") if k in set(d.dropped)]
    fig, axes = new_figure(len(designs), len(activations), width=3.0, height=2.8)
    for i, dropped in enumerate(designs):
        for j, act in enumerate(activations):
            ax = axes[i, j]
            sub = d[(d.dropped == dropped) & (d.activation == act)]
            for w in [x for x in WEIGHT_STYLE if x in set(sub.weights)]:
                color, ls, marker = WEIGHT_STYLE[w]
                g = sub[sub.weights == w]
                xs = sorted(g.width.unique())
                est = [stats.t_interval(g.loc[g.width == x, "mean_abs_gap"]) for x in xs]
                ax.plot(xs, [e[0] for e in est], color=color, ls=ls, marker=marker,
                        markersize=4, label=INIT_NAMES[w])
                ax.fill_between(xs, [e[1] for e in est], [e[2] for e in est], color=color,
                                alpha=0.25, linewidth=0)
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter("{x:g}")
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.set_title(f"{act}, {'inputs' if dropped == 'input' else 'hidden units'} "
                         f"dropped", fontsize=10)
            if i == len(designs) - 1:
                ax.set_xlabel("hidden width")
            if j == 0:
                ax.set_ylabel("mean absolute gap")
            if i == 0 and j == 0:
                ax.legend(fontsize=9, frameon=False)
    first = df.iloc[0]
    fig.suptitle(f"Width at {depth} hidden layer: {first['output']} output, {first['scheme']} "
                 f"dropout, keep_prob {first['keep_prob']:g}; mean over {df.seed.nunique()} "
                 f"networks, band: t 95% CI", fontsize=10)
    return fig
