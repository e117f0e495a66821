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


def _depth(effect: float, seed: int = 0) -> pd.DataFrame:
    """A tiny depth table: depth 1 width 4 (4 dropped), depth 2 width 2 (4 dropped) and
    width 1; the gap is multiplied by (1 + effect) per extra layer and per doubling."""
    rng = np.random.default_rng(seed)
    rows = []
    for act in ("relu", "tanh"):
        for depth, width in ((1, 2), (1, 4), (2, 1), (2, 2)):
            for s in range(N):
                g = 0.1 * (1 + effect) ** (2 * (depth - 1) + np.log2(width)) * np.exp(
                    0.05 * rng.standard_normal())
                for stat in ("arithmetic_mean", "nwgm"):
                    v = 0.0 if (stat == "nwgm" and depth == 1) else g
                    rows.append(dict(activation=act, depth=depth, width=width,
                                     n_dropped=depth * width, seed=s, statistic=stat,
                                     relative_gap=v, mean_abs_gap=v, total_variation=v, kl=v))
    return pd.DataFrame(rows)


def test_depth_verdict_says_every_activation_only_when_every_test_survives():
    from ensemble_study.studies.depth import show

    strong = show.depth_family(_depth(1.0))
    assert strong.survives.all()
    assert show.depth_sentence(strong, "relative_gap") == \
        "on the relative gap it grows for every activation"
    null = show.depth_family(_depth(0.0))
    assert not null.survives.any()
    assert "no difference that survives Holm" in show.depth_sentence(null, "kl")
    mixed = strong.copy()
    mixed.loc[mixed.activation == "tanh", "survives"] = False
    text = show.depth_sentence(mixed, "total_variation")
    assert "every" not in text and "grows for relu only" in text
    down = show.depth_family(_depth(-0.6))
    assert "shrinks for relu and tanh" in show.depth_sentence(down, "mean_abs_gap")


def test_width_verdict_names_the_cells_that_survive():
    from ensemble_study.studies.depth import show

    strong = show.width_family(_depth(1.0))
    assert strong.survives.all()
    text = show.width_sentence(strong, "relative_gap")
    assert "grows with width for relu at 1 layer, relu at 2 layers, tanh at 1 layer" in text
    null = show.width_family(_depth(0.0))
    assert show.width_sentence(null, "kl") == "on the KL divergence, no width difference survives Holm"


def _srivastava(excess: float, seed: int = 0) -> pd.DataFrame:
    """Tiny srivastava rows: exact/scaled error = baseline + excess (+ noise), per seed."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(N):
        base = 0.04 + 0.005 * rng.standard_normal()
        rows.append(dict(architecture="64-20-10", scheme="none", keep_prob=1.0, seed=s,
                         predictor="no_dropout", error=base))
        for sc in ("inverted", "vanilla"):
            for q in (0.5, 0.8):
                e = base + excess + 0.002 * rng.standard_normal()
                for pred in ("exact", "scaled"):
                    rows.append(dict(architecture="64-20-10", scheme=sc, keep_prob=q, seed=s,
                                     predictor=pred, error=e + (0.0 if pred == "exact" else
                                                                0.001 * rng.standard_normal())))
    return pd.DataFrame(rows)


def test_srivastava_error_verdict_flips_with_the_data():
    from ensemble_study.studies.srivastava import show

    worse = show.error_verdict(show.error_family(_srivastava(0.02)))
    assert "errs more than the same seed's no-dropout network in every cell" in worse
    better = show.error_verdict(show.error_family(_srivastava(-0.02)))
    assert "errs less than the same seed's no-dropout network in every cell" in better
    null = show.error_verdict(show.error_family(_srivastava(0.0)))
    assert "every cell:" not in null and "errs less than" not in null
    assert "shows no difference that survives Holm at inverted 0.5" in null
    assert "no difference between the exact ensemble and the scaled pass" in null


def test_srivastava_crossing_verdict_reads_the_interval():
    from ensemble_study.studies.srivastava import show

    c = pd.DataFrame(dict(reference=["scaled"], keep_prob=[0.5], scheme=["inverted"],
                          k=[70.0], ci_low=[30.0], ci_high=[np.inf], n_seeds=[10]))
    text = show.crossing_verdict(c)
    assert "do not bound it from above" in text and "holds Srivastava" in text
    c["ci_low"], c["ci_high"] = 100.0, 500.0
    text = show.crossing_verdict(c)
    assert "the seeds bound it from above" in text and "does not hold Srivastava" in text


def _hinton_rows(gap: float, seed: int = 0) -> pd.DataFrame:
    """Scaled rows with a Hinton margin of 0.4 (keep_prob 0.5) and 0.4 - gap (0.8)."""
    rng = np.random.default_rng(seed)
    rows = []
    for arch, extra in (("64-20-10", 0.0), ("64-8-8-10", gap)):
        for sc in ("inverted", "vanilla"):
            for q, m in ((0.5, 0.4), (0.8, 0.4 - gap)):
                for s in range(N):
                    rows.append(dict(architecture=arch, scheme=sc, keep_prob=q, seed=s,
                                     predictor="scaled", hinton_pvalue=1e-20,
                                     hinton_median_diff=0.1,
                                     hinton_mean_diff=m + extra + 0.01 * rng.standard_normal()))
    return pd.DataFrame(rows)


def test_srivastava_margin_verdict_says_every_only_when_every_test_survives():
    from ensemble_study.studies.srivastava import show

    strong = show.margin_verdict(show.margin_family(_hinton_rows(0.2)))
    assert "larger than at 0.8 in every cell" in strong
    assert "64-8-8-10 networks is larger than that of the 64-20-10 networks in every cell" \
        in strong
    null = show.margin_verdict(show.margin_family(_hinton_rows(0.0)))
    assert "every cell" not in null and null.count("no test of whether") == 2
    fam = show.hinton_family(_hinton_rows(0.0))
    assert fam.survives.all() and len(fam) == 4 * 2 * N


def _torch(nll_diff: float, mcnemar_p: float) -> pd.DataFrame:
    rows = [dict(predictor="exact_mean", n_samples=65536, draw=0, nll_minus_exact=0.0,
                 nll_minus_exact_low=0.0, nll_minus_exact_high=0.0, error_minus_exact=0.0,
                 mcnemar_p=1.0, total_variation=0.0, n_test=449)]
    for pred in ("exact_nwgm", "eval"):
        rows.append(dict(predictor=pred, n_samples=1, draw=0, nll_minus_exact=nll_diff,
                         nll_minus_exact_low=nll_diff - 0.05, nll_minus_exact_high=nll_diff + 0.05,
                         error_minus_exact=0.01, mcnemar_p=mcnemar_p, total_variation=0.2,
                         n_test=449))
    for k in (1, 10, 100, 1000):
        for d in range(5):
            rows.append(dict(predictor="mc_dropout", n_samples=k, draw=d,
                             total_variation=0.3 * k ** -0.5 * np.exp(0.02 * np.sin(k + d)),
                             n_test=449))
    return pd.DataFrame(rows)


def test_torch_verdict_states_a_difference_only_when_it_survives_holm():
    from ensemble_study import tables

    strong = tables.torch_verdict(tables.torch_family(_torch(-0.2, 1e-4)))
    assert strong.count("a lower NLL than the exact mean") == 2
    assert strong.count("a higher test error than the exact mean") == 2
    null = tables.torch_verdict(tables.torch_family(_torch(-0.02, 0.5)))
    assert "lower" not in null and "higher" not in null
    assert null.count("no NLL difference from the exact mean that survives Holm") == 2
    assert tables.interval_pvalue(-0.2, -0.3, -0.1) < 1e-4
    assert tables.interval_pvalue(-0.02, -0.07, 0.03) > 0.4


def test_torch_mc_slope_recovers_the_k_to_the_minus_half_rate():
    from ensemble_study import tables

    est, lo, hi, n = tables.mc_slope(_torch(0.0, 1.0))
    assert n == 5 and abs(est + 0.5) < 0.01 and lo <= -0.5 <= hi
    assert "the interval holds the K^(-1/2) rate" in tables.torch_example_verdict(_torch(0, 1))


def test_spread_sentence_says_every_row_only_when_every_row_has_it():
    from ensemble_study.studies.spread import show

    s = pd.DataFrame(dict(subnetwork_range=[0.5, 0.6], summary_range=[0.05, 0.1]))
    assert show.spread_sentence(s).endswith("in every row the summaries are closer together "
                                            "than the subnetworks.")
    s["summary_range"] = [0.05, 0.7]
    text = show.spread_sentence(s)
    assert "closer together than the subnetworks in 1 of 2 rows" in text
    rows = [dict(activation="relu", input=0, quantity="subnetwork", value=v) for v in (0.1, 0.9)]
    rows += [dict(activation="relu", input=0, quantity=q, value=v)
             for q, v in (("arithmetic_mean", 0.5), ("nwgm", 0.45), ("scaled", 0.4))]
    out = show.summary_spread(pd.DataFrame(rows)).iloc[0]
    assert out.subnetwork_range == 0.8 and abs(out.summary_range - 0.1) < 1e-12


def test_boundary_agreement_counts_the_points_whose_class_differs():
    from ensemble_study.studies.boundary import show

    df = pd.DataFrame(dict(scheme="inverted", keep_prob=0.5,
                           exact_mean=[0.6, 0.4, 0.7, 0.2], exact_nwgm=[0.6, 0.4, 0.3, 0.2],
                           scaled=[0.4, 0.6, 0.3, 0.2]))
    a = show.agreement(df).iloc[0]
    assert a.mean_vs_nwgm == 0.25 and a.mean_vs_scaled == 0.75
    assert abs(a.max_abs_mean_minus_scaled - 0.4) < 1e-12
