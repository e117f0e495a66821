"""The scale study's figure and documentation blocks, from its saved table only.

Intervals are Student-t over networks (the unit; a few per cell, so no
bootstrap), differences between widths Welch t (different networks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ... import stats
from ...plots import new_figure, predictor_line
from ...report import ci, num, table
from . import STUDY

GROUP = ["input", "activation", "weights", "scheme", "keep_prob"]


def _tci(values) -> str:
    return ci(*stats.t_interval(np.asarray(values, dtype=float)))


def _mean_gaps(df):
    return df[df.statistic == "arithmetic_mean"]


CELL = ["input", "activation", "weights", "scheme", "keep_prob", "depth"]
NAMES = {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid", "lecun": "LeCun", "he": "He",
         "digits": "digits", "mnist": "MNIST", "scaled": "scaled pass",
         "moment_propagation": "moment propagation"}


def _label(df, key: dict) -> str:
    """A cell's name: input, activation/init, keep_prob, depth (scheme when it varies)."""
    parts = [NAMES.get(key["input"], key["input"]),
             f"{NAMES.get(key['activation'], key['activation'])}/"
             f"{NAMES.get(key['weights'], key['weights'])}"]
    if "scheme" in key and df.scheme.nunique() > 1:
        parts.append(key["scheme"])
    parts.append(f"keep {key['keep_prob']:g}")
    if "depth" in key:
        parts.append(f"depth {key['depth']}")
    return " ".join(parts)


def _fmt(r: dict, est: str) -> str:
    return ci(r[est], r["low"], r["high"])


LIST_AT_MOST = 6  # survivors listed one by one; more are summarised by their range


def _trend_sentences(fam: stats.Family, what: str, n_cells: int, up: str, down: str,
                     unit: str) -> str:
    """'<what>: it <down> in a of n cells, <up> in b, ...', with the survivors' intervals."""
    t = fam.table()
    if t.empty:
        return f"{what}: too few networks or widths in the table for a test."
    ok = t[t.survives]
    grow, shrink = ok[ok.estimate > 0], ok[ok.estimate < 0]
    first, second = ((down, shrink), (up, grow)) if len(shrink) >= len(grow) else \
        ((up, grow), (down, shrink))
    rest = n_cells - len(ok)
    out = (f"{what}: it {first[0]} in {len(first[1])} of {n_cells} cells and {second[0]} in "
           f"{len(second[1])}; " + (f"in the other {rest} nothing survives Holm's correction."
                                    if rest else "every one survives Holm's correction."))
    for name, part in ((down, shrink), (up, grow)):
        if not len(part):
            continue
        if len(part) <= LIST_AT_MOST:
            out += f" It {name} in " + "; ".join(part.sentence) + "."
            continue
        lo = part.loc[part.estimate.abs().idxmin()]
        hi = part.loc[part.estimate.abs().idxmax()]
        out += (f" Where it {name}, {unit} ranges from {hi.text} ({hi.key}) to {lo.text} "
                f"({lo.key}); {hi.before} in the first, {lo.before} in the second.")
    return out


def _noise_note(s: pd.DataFrame, along: str) -> str:
    """How precise the reference is where the gap is smallest (the widest or deepest)."""
    edge = s[s[along] == s[along].max()]
    if not len(edge):
        return ""
    r = float(edge.hw_over_gap.median())
    so = ("so a shrinking trend is if anything understated" if along == "width" else
          "so part of a larger gap deeper may be the reference's noise")
    return (f" At {along} {s[along].max()} the reference's TV half-width is a median "
            f"{num(r)} of this gap" + (f": the TV there is in good part the reference's own "
                                       f"noise, an upper estimate of the gap, {so}."
                                       if r > 0.3 else "."))


@STUDY.block("scale-width")
def width_block(df: pd.DataFrame) -> str:
    """Does the gap of the scaled pass / moment propagation shrink or grow with width?"""
    d = _mean_gaps(df)
    widths = sorted(d.width.unique())
    paras = []
    for pred in ("scaled", "moment_propagation"):
        fam = stats.Family(f"scale: TV of the {pred} to the ensemble mean vs log2(width), "
                           "one test per cell")
        s = d[d.predictor == pred]
        n_cells = 0
        for key, g in s.groupby(CELL, sort=True):
            key = dict(zip(CELL, key))
            n_cells += 1
            if g.width.nunique() < 2 or len(g) < 3:
                continue
            r = stats.slope_interval(np.log2(g.width.to_numpy(float)),
                                     g.total_variation.to_numpy())
            lo = g.loc[g.width == g.width.min(), "total_variation"].mean()
            hi = g.loc[g.width == g.width.max(), "total_variation"].mean()
            before = f"mean TV {num(lo)} at width {g.width.min()}, {num(hi)} at {g.width.max()}"
            fam.add(_label(d, key), r["pvalue"],
                    f"{_label(d, key)}: {_fmt(r, 'slope')} per doubling ({before})",
                    estimate=r["slope"], text=_fmt(r, "slope"), before=before)
        paras.append(_trend_sentences(fam, f"**{NAMES[pred].capitalize()}**", n_cells,
                                      "grows", "shrinks", "the slope per doubling")
                     + _noise_note(s, "width"))
    n = int(d.groupby(CELL + ["width"]).seed.nunique().min())
    return (f"Total variation to the certified ensemble mean regressed on log2(width) over "
            f"the networks of each cell ({n} per width, widths {widths[0]} to {widths[-1]}, "
            f"each network one unit): the slope per doubling of the width with its 95% "
            f"t-interval, and Holm's correction over the cells of each predictor; only the "
            f"slopes that survive are stated.\n\n" + "\n\n".join(paras))


@STUDY.block("scale-depth")
def depth_block(df: pd.DataFrame) -> str:
    """Does the gap grow with depth? Deepest minus shallowest, every width pooled."""
    d = _mean_gaps(df)
    depths = sorted(d.depth.unique())
    if len(depths) < 2:
        return "Only one depth in the table: no comparison across depths."
    cell = [c for c in CELL if c != "depth"]
    paras = []
    for pred in ("scaled", "moment_propagation"):
        fam = stats.Family(f"scale: TV of the {pred}, depth {depths[-1]} minus depth "
                           f"{depths[0]}, one test per cell")
        s = d[d.predictor == pred]
        n_cells = 0
        for key, g in s.groupby(cell, sort=True):
            key = dict(zip(cell, key))
            n_cells += 1
            deep = g.loc[g.depth == depths[-1], "total_variation"].to_numpy()
            shallow = g.loc[g.depth == depths[0], "total_variation"].to_numpy()
            if deep.size < 2 or shallow.size < 2:
                continue
            r = stats.welch_test(deep, shallow)
            before = (f"mean TV {num(shallow.mean())} at depth {depths[0]}, "
                      f"{num(deep.mean())} at {depths[-1]}")
            fam.add(_label(d, key), r["pvalue"],
                    f"{_label(d, key)}: {_fmt(r, 'difference')} ({before})",
                    estimate=r["difference"], text=_fmt(r, "difference"), before=before)
        paras.append(_trend_sentences(fam, f"**{NAMES[pred].capitalize()}**", n_cells,
                                      "is larger deeper", "is smaller deeper",
                                      "the difference") + _noise_note(s, "depth"))
    return (f"Total variation to the certified ensemble mean at depth {depths[-1]} minus depth "
            f"{depths[0]}, every width of the grid pooled (a balanced average over the widths; "
            f"different networks, so Welch's t-interval), Holm's correction over the cells of "
            f"each predictor; only the differences that survive are stated.\n\n"
            + "\n\n".join(paras))


def _matching_k(d: pd.DataFrame, k_ref: int) -> pd.DataFrame:
    """Per network: the K at which MC's TV equals each one-pass method's, from TV ~ 1/sqrt(K)."""
    idx = CELL + ["width", "seed"]
    mc = d[(d.predictor == "mc") & (d.n_samples == k_ref)].set_index(idx).total_variation
    out = []
    for pred in ("scaled", "moment_propagation"):
        tv = d[d.predictor == pred].set_index(idx).total_variation
        k = (k_ref * (mc / tv) ** 2).dropna().rename("k").reset_index()
        out.append(k.assign(predictor=pred))
    return pd.concat(out, ignore_index=True)


def _geo_ci(values) -> str:
    v = np.log(np.asarray(values, dtype=float))
    if v.size < 2:
        return num(float(np.exp(v.mean())))
    return ci(*(float(np.exp(x)) for x in stats.t_interval(v)))


@STUDY.block("scale-mc-match")
def mc_match(df: pd.DataFrame) -> str:
    """How many MC samples match each one-pass method, per width (and depth, keep_prob)."""
    d = _mean_gaps(df)
    ks = sorted(int(k) for k in d.loc[d.predictor == "mc", "n_samples"].dropna().unique())
    if not ks:
        return "No Monte Carlo rows in the table."
    k_ref = ks[-1]
    head = ""
    if len(ks) > 1:
        idx = CELL + ["width", "seed"]
        mc = d[d.predictor == "mc"].set_index(idx + ["n_samples"]).total_variation
        ratio = (mc.xs(ks[0], level="n_samples") / mc.xs(k_ref, level="n_samples")).dropna()
        if len(ratio) >= 2:
            est, lo, hi = stats.t_interval(ratio.to_numpy())
            root = float(np.sqrt(k_ref / ks[0]))
            head = (f"Monte Carlo dropout's TV at K = {ks[0]} over its TV at K = {k_ref}, mean "
                    f"over {len(ratio)} networks: {ci(est, lo, hi)}, "
                    + (f"which contains sqrt({k_ref}/{ks[0]}) = {num(root)}: the TV shrinks "
                       f"like 1/sqrt(K) on this grid. "
                       if lo - 1e-9 * root <= root <= hi + 1e-9 * root else
                       f"against sqrt({k_ref}/{ks[0]}) = {num(root)}: the TV does not shrink "
                       f"like 1/sqrt(K) on this grid, so the K below are rough. "))
    m = _matching_k(d, k_ref)
    depths = sorted(m.depth.unique())
    tables = []
    for pred in ("scaled", "moment_propagation"):  # one table each: a page-wide row per width
        rows = []
        for (q, w), g in m[m.predictor == pred].groupby(["keep_prob", "width"], sort=True):
            cells = [_geo_ci(v) if len(v := g[g.depth == dep].k) else "" for dep in depths]
            rows.append([f"{q:g}", str(w), *cells])
        tables.append(f"**{NAMES[pred].capitalize()}**: the matching K by depth.\n\n"
                      + table(["keep_prob", "width", *(f"depth {dep}" for dep in depths)],
                              rows))
    n = int(m.groupby(["keep_prob", "width", "depth", "predictor"]).size().min())
    schemes = " and ".join(sorted(d.scheme.unique()))
    wide = d[(d.width == d.width.max()) & (d.predictor == "moment_propagation")]
    noise = (f" For moment propagation at width {d.width.max()} the reference's half-width is a "
             f"median {num(float(wide.hw_over_gap.median()))} of the gap it measures, so the "
             f"K given there are lower estimates." if len(wide) else "")
    return (head + f"The K at which MC's TV to the ensemble mean equals a one-pass "
            f"method's is estimated per network as {k_ref} (TV of MC at K = {k_ref} / TV of "
            f"the method)^2. Geometric mean over the {n} networks of each row and depth "
            f"(inputs, activations and initialisations pooled: the interval [t 95%, on the "
            f"log scale] is of that average over the grid's architectures, not of any one), "
            f"{schemes} dropout. The reference's own noise adds to every TV (see the "
            f"precision block above).{noise}\n\n" + "\n\n".join(tables))


@STUDY.block("scale-certified")
def certified_block(df: pd.DataFrame) -> str:
    """Where the reference's half-width is at most a tenth of the gap it measures."""
    exact = df.total_variation < 1e-12  # the NWGM's scaled pass at depth 1 (DESIGN fact 3)
    n_exact = int(exact.sum())
    df = df[~exact]
    rows = []
    for (pred, stat), g in df.groupby(["predictor", "statistic"], sort=True):
        ok = g.hw_over_gap <= 0.1
        rows.append([pred.replace("_", " "), stat.replace("arithmetic_mean", "mean"),
                     str(len(g)), f"{ok.mean():.0%}", num(float(g.hw_over_gap.median())),
                     num(float(g.hw_over_gap.max()))])
    bad = df[df.hw_over_gap > 0.1]
    where = ""
    if len(bad):
        worst = bad.groupby(["predictor", "depth", "width"]).size().sort_values(
            ascending=False).head(6)
        where = ("\n\nWhere it is not (rows per predictor, depth, width, most first): "
                 + "; ".join(f"{p} depth {d} width {w}: {n}" for (p, d, w), n in worst.items())
                 + ".")
    return ("The certified reference's TV half-width (95%) over the gap it measures: share of "
            "rows with the half-width at most a tenth of the gap, median and largest ratio; "
            f"median variance reduction of the reference per pass over plain MC "
            f"{num(float(df.ref_variance_ratio.median()))}.\n\n"
            + table(["predictor", "statistic", "rows", "half-width <= gap / 10", "median ratio",
                     "largest ratio"], rows) + where
            + (f"\n\n{n_exact} rows with a gap of 0 to rounding (the scaled pass against the "
               f"NWGM with one dropped layer, exact by DESIGN fact 3) are left out."
               if n_exact else ""))


@STUDY.figure("scale")
def plot_scale(df: pd.DataFrame) -> Figure:
    """TV to the certified ensemble mean against width, mean over networks with t bands.

    Rows: activation and initialisation; columns: the scaled pass, moment
    propagation and MC dropout at the grid's largest K (shared y axis per
    row); lines: depth (colour) and input (line style); inverted dropout (else
    the table's first scheme) at the table's first keep_prob.
    """
    d = _mean_gaps(df)
    # inverted dropout is what people train with: shown whenever the table has it
    scheme = "inverted" if (d.scheme == "inverted").any() else d.scheme.iloc[0]
    q = d.keep_prob.iloc[0]
    d = d[(d.scheme == scheme) & (d.keep_prob == q)]
    combos = list(dict.fromkeys(zip(d.activation, d.weights)))
    inputs = list(dict.fromkeys(d.input))
    ks = sorted(int(k) for k in d.loc[d.predictor == "mc", "n_samples"].dropna().unique())
    panels = [("scaled", None), ("moment_propagation", None)] + ([("mc", ks[-1])] if ks else [])
    fig, axes = new_figure(len(combos), len(panels), width=3.0, height=2.3, sharey="row")
    depths = sorted(d.depth.unique())
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:brown", "tab:gray"]
    styles = ["-", "--", ":", "-."]
    for i, (act, init) in enumerate(combos):
        for j, (pred, k) in enumerate(panels):
            ax = axes[i, j]
            s = d[(d.activation == act) & (d.weights == init) & (d.predictor == pred)]
            if k is not None:
                s = s[s.n_samples == k]
            for dep, color in zip(depths, colors, strict=False):
                for inp, ls in zip(inputs, styles, strict=False):
                    g = s[(s.depth == dep) & (s.input == inp)]
                    if not len(g):
                        continue
                    by = sorted(g.width.unique())
                    vals = [g.loc[g.width == w, "total_variation"].to_numpy() for w in by]
                    ax.plot(by, [v.mean() for v in vals], ls=ls, marker="o", markersize=3,
                            color=color, label=f"depth {dep}, {NAMES.get(inp, inp)}")
                    if all(v.size >= 2 for v in vals):
                        band = np.array([stats.t_interval(v)[1:] for v in vals])
                        ax.fill_between(by, band[:, 0], band[:, 1], color=color, alpha=0.15,
                                        linewidth=0)
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter("{x:g}")
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=8)
            name = (f"MC dropout, K = {k}" if pred == "mc"
                    else predictor_line(pred)["label"])
            ax.set_title(f"{NAMES.get(act, act)}, {NAMES.get(init, init)}: {name}", fontsize=9)
            if i == len(combos) - 1:
                ax.set_xlabel("hidden width", fontsize=9)
            if j == 0:
                ax.set_ylabel("TV to ensemble mean", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)),
               fontsize=9, frameon=False)
    fig.suptitle(f"Scale: softmax output, {scheme} dropout on every hidden unit, keep_prob "
                 f"{q:g}; mean over {d.seed.nunique()} random networks per point "
                 f"(band: t 95% CI)", fontsize=9)
    return fig
