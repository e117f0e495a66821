"""The spread study's figures and documentation blocks, from its saved table only."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from ...plots import (
    new_figure,
)
from ...report import table
from . import STUDY


@STUDY.block("spread")
def spread(df: pd.DataFrame) -> str:
    rows = []
    for (act, inp), g in df.groupby(["activation", "input"], sort=False):
        sub = g[g.quantity == "subnetwork"]["value"]
        val = {q: g.loc[g.quantity == q, "value"].iloc[0] for q in ("arithmetic_mean", "nwgm",
                                                                     "scaled")}
        rows.append([act, str(inp), f"{sub.min():.3f} to {sub.max():.3f}",
                     f"{val['arithmetic_mean']:.3f}", f"{val['nwgm']:.3f}",
                     f"{val['scaled']:.3f}"])
    return table(["hidden units", "input", "subnetwork outputs", "arithmetic mean", "NWGM",
                  "scaled pass"], rows)


def summary_spread(df: pd.DataFrame) -> pd.DataFrame:
    """Per (activation, input): the range of the subnetwork outputs and of the three summaries."""
    rows = []
    for (act, inp), g in df.groupby(["activation", "input"], sort=False):
        sub = g.loc[g.quantity == "subnetwork", "value"]
        three = g.loc[g.quantity.isin(["arithmetic_mean", "nwgm", "scaled"]), "value"]
        rows.append(dict(activation=act, input=inp, subnetwork_range=float(sub.max() - sub.min()),
                         summary_range=float(three.max() - three.min())))
    return pd.DataFrame(rows)


def spread_sentence(s: pd.DataFrame) -> str:
    """What the table shows, worded from it: "every row" only when every row has it."""
    narrower = s.summary_range < s.subnetwork_range
    text = (f"The three summaries lie within {s.summary_range.max():.3f} of one another in "
            f"every row; the subnetwork outputs span {s.subnetwork_range.min():.3f} to "
            f"{s.subnetwork_range.max():.3f}")
    if narrower.all():
        return text + ", so in every row the summaries are closer together than the subnetworks."
    return (text + f"; the summaries are closer together than the subnetworks in "
            f"{int(narrower.sum())} of {len(s)} rows.")


@STUDY.block("spread-verdict")
def spread_verdict(df: pd.DataFrame) -> str:
    first = df.iloc[0]
    return (spread_sentence(summary_spread(df))
            + f" (Exact values of one {first['architecture']} network per activation at "
            f"{df['input'].nunique()} inputs: a description of these networks, not a claim "
            f"about activations.)")


@STUDY.figure("spread")
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
