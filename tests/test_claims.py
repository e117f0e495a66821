"""The verdict sentences of the results pages change with the data.

Each verdict function is run on a small synthetic table twice: once where
every comparison is strong (it must survive Holm and the sentence must say
"every"), once where none is (the sentence must not claim it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

N = 12  # networks per synthetic cell: enough for a Wilcoxon p of 5e-4


def _sweep(effect: float, seed: int = 0) -> pd.DataFrame:
    """A tiny sweep table: NWGM gap = mean gap * (1 - effect) + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for scheme in ("inverted", "vanilla"):
        for q in (0.5, 0.8, 0.9, 0.95):
            for out in ("sigmoid", "softmax"):
                for act in ("relu", "tanh"):
                    for s in range(N):
                        base = 0.2 * (1 - q) / q * (1 + 0.1 * rng.random())
                        noise = 0.02 * base * rng.standard_normal()
                        for stat, gap in (("arithmetic_mean", base),
                                          ("nwgm", base * (1 - effect) + noise)):
                            rows.append(dict(output=out, activation=act, scheme=scheme,
                                             weights="original", keep_prob=q, seed=s,
                                             statistic=stat, relative_gap=gap,
                                             mean_abs_gap=gap))
    return pd.DataFrame(rows)


def test_sweep_closer_says_every_only_when_every_cell_survives():
    from ensemble_study.studies.sweep import show

    strong = show.closer_family(_sweep(0.5))
    assert strong.survives.all() and (strong.closer == "nwgm").all()
    assert "for every nonlinear activation" in show.closer_verdict(strong)
    null = show.closer_family(_sweep(0.0))
    assert not null.survives.any()
    text = show.closer_verdict(null)
    assert "every" not in text and "no difference survives Holm" in text
    # Reversed: the mean is the closer one; the sentence must say so.
    rev = show.closer_family(_sweep(-0.5))
    text = show.closer_verdict(rev)
    assert "closer to the arithmetic mean for" in text and "NWGM for" not in text


def test_sweep_slope_text_names_only_the_survivors():
    from ensemble_study.studies.sweep import show

    res = pd.DataFrame(dict(activation=["relu", "tanh"], output=["sigmoid"] * 2,
                            statistic=["nwgm"] * 2, survives=[True, True], lower=[True, True]))
    assert "in every cell" in show._cells_text(res, "the vanilla slope", "in every cell")
    res["survives"] = [True, False]
    text = show._cells_text(res, "the vanilla slope", "in every cell")
    assert "every" not in text and "lower in 1 of 2 cells (relu/sigmoid/nwgm" in text
