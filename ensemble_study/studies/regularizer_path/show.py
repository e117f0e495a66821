"""The regularizer_path study's figure and documentation blocks, from its saved table only.

Shares of paths are binomial proportions with Clopper-Pearson ("exact") 95% intervals
from ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``. The paths of one fit
share its training set, so the intervals treat paths as independent draws: read them as
a description of these fits, not of fresh data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from ...plots import new_figure
from ...report import ci, num, table
from . import PENALTIES, STUDY, convexity, monotonicity, path_grid

KINDS = (("ray", "exact"), ("ray", "quadratic"), ("slice", "exact"), ("slice", "quadratic"))
LABELS = {("ray", "exact"): "ray, exact R", ("ray", "quadratic"): "ray, R^q",
          ("slice", "exact"): "slice, exact R", ("slice", "quadratic"): "slice, R^q"}


def share(flags) -> tuple[int, int, float, float, float]:
    """``(k, n, k/n, low, high)``: count of True, total, share and its Clopper-Pearson 95%."""
    flags = np.asarray(flags, dtype=bool)
    k, n = int(flags.sum()), int(flags.size)
    iv = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return k, n, k / n, float(iv.low), float(iv.high)


def _share_text(flags) -> str:
    k, n, p, lo, hi = share(flags)
    return f"{k}/{n} = {ci(p, lo, hi)}"


def shares(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, keep_prob, path, penalty): non-convex and non-monotone shares."""
    rows = []
    for (d, q, path, pen), g in df.groupby(["dataset", "keep_prob", "path", "penalty"],
                                           sort=True):
        _, n, pc, lc, hc = share(~g.convex.astype(bool))
        _, _, pm, lm, hm = share(~g.monotone.astype(bool))
        rows.append(dict(dataset=d, keep_prob=q, path=path, penalty=pen, n=n,
                         nonconvex=pc, nonconvex_low=lc, nonconvex_high=hc,
                         nonmonotone=pm, nonmonotone_low=lm, nonmonotone_high=hm))
    return pd.DataFrame(rows)


@STUDY.block("regularizer-path-shares")
def shares_table(df: pd.DataFrame) -> str:
    rows = []
    for (d, q), g in df.groupby(["dataset", "keep_prob"], sort=True):
        cells = []
        for kind in KINDS:
            h = g[(g.path == kind[0]) & (g.penalty == kind[1])]
            cells.append(f"{_share_text(~h.convex.astype(bool))} / "
                         f"{_share_text(~h.monotone.astype(bool))}" if len(h) else "-")
        rows.append([d, f"{q:g}", *cells])
    n_fit = df.groupby(["dataset", "problem", "keep_prob"]).ngroups
    return (f"Share of paths on which the penalty is non-convex / non-monotone in |t| (count "
            f"of paths, share [Clopper-Pearson 95% interval]), {n_fit} exact-dropout fits on "
            f"{df.n_train.iloc[0]} training examples each (digits_ovr: the ten one-vs-rest "
            f"problems together). Ray: `beta = t e_j`, intercept 0, every non-constant pixel; "
            f"slice: weight j varied with the other weights and the intercept at the "
            f"exact-dropout solution, a random subset of pixels.\n\n"
            + table(["dataset", "keep_prob", *[LABELS[k] for k in KINDS]], rows))


@STUDY.block("regularizer-path-claims")
def claims(df: pd.DataFrame) -> str:
    ray = df[(df.path == "ray") & (df.penalty == "exact")]
    rayq = df[(df.path == "ray") & (df.penalty == "quadratic")]
    sl = df[(df.path == "slice") & (df.penalty == "exact")]
    slq = df[(df.path == "slice") & (df.penalty == "quadratic")]
    qs = sorted(df.keep_prob.unique())
    first = ray.nonconvex_first_t.abs() * ray.max_abs_x / ray.keep_prob
    lines = [
        f"- Rays (other weights 0, intercept 0), exact R: non-convex on "
        f"{_share_text(~ray.convex.astype(bool))} of the rays and non-monotone in |t| on "
        f"{_share_text(~ray.monotone.astype(bool))}, pooled over datasets and keep_probs. "
        f"The first non-convex point is at a largest per-feature contribution "
        f"max_i |x_ij t|/q of {np.nanmedian(first):.3g} (median over rays; range "
        f"{np.nanmin(first):.3g} to {np.nanmax(first):.3g}).",
        f"- Rays, Wager's R^q: non-monotone on {_share_text(~rayq.monotone.astype(bool))} of "
        f"the rays (within the grid, which stops at contribution "
        f"{(rayq.half_width * rayq.max_abs_x / rayq.keep_prob).median():.3g}); "
        f"non-convex on {_share_text(~rayq.convex.astype(bool))}.",
    ]
    for q in qs:
        s, sq = sl[sl.keep_prob == q], slq[slq.keep_prob == q]
        bad = s[~s.monotone.astype(bool)]
        rel = (bad.max_drop / bad.R_range) if len(bad) else pd.Series([np.nan])
        where = (bad.drop_t.abs() / bad.half_width) if len(bad) else pd.Series([np.nan])
        toward = int((np.sign(bad.drop_t) == np.sign(bad.beta_j)).sum())
        lines.append(
            f"- Slices through the exact-dropout solution at keep_prob {q:g}, exact R: "
            f"non-monotone in |t| on {_share_text(~s.monotone.astype(bool))}, non-convex on "
            f"{_share_text(~s.convex.astype(bool))}; R^q non-monotone on "
            f"{_share_text(~sq.monotone.astype(bool))}. Where exact R falls, the largest fall "
            f"below its running maximum is a median {np.median(rel):.3g} of R's range on "
            f"the slice (range {np.min(rel):.3g} to {np.max(rel):.3g}), reached at |t| a "
            f"median {np.median(where):.3g} of the slice's half-width, on the side of "
            f"beta*_j's sign on {toward} of those {len(bad)} slices.")
    errs = df[df.penalty == "exact"]
    fell = errs[errs.max_drop > 0]
    margin = (fell.max_drop / (2.0 * fell.max_err)).min() if len(fell) else np.nan
    lines.append(
        f"- Error bounds of exact R: the largest bound on |R computed - R| over every point "
        f"of every path is {errs.max_err.max():.3g} nats (the integral's rtol and summation "
        f"rounding, times the summed magnitudes); on every "
        f"path counted as non-monotone the largest fall is at least {margin:.3g} times twice "
        f"that path's largest bound.")
    return "\n".join(lines)


def _values(row) -> tuple[np.ndarray, np.ndarray]:
    # the grid from its half-width (the t column is rounded for reading)
    t = path_grid(row.half_width, (int(row.n_points) - 1) // 2)
    return t, np.array(row.R.split(), dtype=float)


def _draw_path(ax, rows, title):
    colors = {"exact": "tab:blue", "quadratic": "tab:red"}
    for _, row in rows.iterrows():
        t, R = _values(row)
        c = colors[row.penalty]
        name = "exact R" if row.penalty == "exact" else "Wager's R^q"
        ax.plot(t, R, color=c, linewidth=1.4, label=name)
        # the stretches, recomputed with the path's largest error bound (conservative)
        nc = convexity(t, R, row.max_err)["violations"]
        nm = monotonicity(t, R, row.max_err)["violations"]
        ax.scatter(t[nc], R[nc], s=14, facecolors="none", edgecolors=c, marker="o",
                   label=f"{name}: non-convex" if nc.any() else None)
        ax.scatter(t[nm], R[nm], s=14, color=c, marker="x",
                   label=f"{name}: falls as |t| grows" if nm.any() else None)
    beta_j = rows.beta_j.iloc[0]
    if rows.path.iloc[0] == "slice":
        ax.axvline(beta_j, color="k", linewidth=0.8, linestyle="--", label="beta*_j")
    ax.axvline(0.0, color="grey", linewidth=0.5)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("weight t of pixel j")
    ax.grid(True, alpha=0.3)
    if rows.path.iloc[0] == "slice":  # flat on the left, where the legend goes
        ax.legend(fontsize=8, frameon=False, loc="upper left")
        return
    # a ray is symmetric and reaches its top on both sides: headroom for the legend
    share = 0.09 * (len(ax.get_legend_handles_labels()[1]) + 1)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + (hi - lo) * share / (1 - share))
    ax.legend(fontsize=8, frameon=False, loc="upper center")


def _example(df, path, want_nonmonotone, penalty="exact"):
    g = df[(df.path == path) & (df.penalty == penalty)]
    pick = g[~g.monotone.astype(bool)] if want_nonmonotone else g
    if pick.empty:
        pick = g
    # the one with the largest fall (or the first), deterministic
    row = pick.loc[pick.max_drop.idxmax()]
    key = ["dataset", "problem", "keep_prob", "path", "feature"]
    m = np.all([df[k] == row[k] for k in key], axis=0)
    return df[m], row


@STUDY.figure("regularizer_path")
def figure(df: pd.DataFrame):
    """Example paths (top) and the shares of non-convex / non-monotone paths (bottom)."""
    fig, axes = new_figure(2, 3, width=4.0, height=3.3)
    ray_rows, r = _example(df, "ray", True, penalty="quadratic")
    _draw_path(axes[0, 0], ray_rows[ray_rows.penalty == "exact"],
               f"ray, exact R: {r.dataset} q={r.keep_prob:g} pixel {r.feature}")
    _draw_path(axes[0, 1], ray_rows[ray_rows.penalty == "quadratic"],
               f"ray, R^q: {r.dataset} q={r.keep_prob:g} pixel {r.feature}")
    sl_rows, s = _example(df, "slice", True)
    _draw_path(axes[0, 2], sl_rows, f"slice: {s.dataset} q={s.keep_prob:g} pixel {s.feature}")
    axes[0, 0].set_ylabel("penalty (nats, summed over examples)")
    sh = shares(df)
    groups = list(sh.groupby(["dataset", "keep_prob"], sort=True))
    width = 0.8 / max(len(groups), 1)
    for ax, what, title in ((axes[1, 0], "nonconvex", "share of paths non-convex"),
                            (axes[1, 1], "nonmonotone", "share of paths non-monotone in |t|")):
        for i, ((d, q), g) in enumerate(groups):
            x, y, lo, hi = [], [], [], []
            for k, kind in enumerate(KINDS):
                h = g[(g.path == kind[0]) & (g.penalty == kind[1])]
                if len(h):
                    x.append(k - 0.4 + width * (i + 0.5))
                    y.append(h[what].iloc[0])
                    lo.append(h[what].iloc[0] - h[f"{what}_low"].iloc[0])
                    hi.append(h[f"{what}_high"].iloc[0] - h[what].iloc[0])
            ax.errorbar(x, y, yerr=[lo, hi], fmt="o", markersize=3, capsize=2,
                        label=f"{d} q={q:g}")
        ax.set_xticks(range(len(KINDS)))
        ax.set_xticklabels([LABELS[k] for k in KINDS], fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(title + " [Clopper-Pearson 95%]", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[1, 0].legend(fontsize=8, frameon=False, ncol=2)
    ax = axes[1, 2]
    sl = df[(df.path == "slice") & (df.penalty == "exact")]
    bad = ~sl.monotone.astype(bool)
    ax.scatter((sl.beta_j / sl.half_width)[~bad], np.zeros((~bad).sum()), s=10,
               color="tab:green", label="monotone slice")
    ax.scatter((sl.beta_j / sl.half_width)[bad], (sl.drop_t / sl.half_width)[bad], s=10,
               color="tab:purple", label="non-monotone: where the largest fall ends")
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_xlabel("beta*_j / half-width of the slice")
    ax.set_ylabel("t of the largest fall / half-width")
    ax.set_title("slices, exact R: where it falls", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.suptitle("Exact dropout penalty of logistic regression along single weights "
                 "(digits, standardised pixels, inverted input dropout)", fontsize=10)
    return fig


# --- the slices through the fitted weights, per dataset ---------------------------------

# A slice spans |t| up to at least slice_span * |beta*_j| (2 by default), so every slice of
# the default grid covers t / beta*_j in [-WINDOW, WINDOW]; the figure shows that window.
WINDOW = 2.0
SLICE_X = np.linspace(-WINDOW, WINDOW, 81)
PENALTY_COLORS = {"exact": "tab:blue", "quadratic": "tab:red"}   # as in the example paths
PENALTY_NAMES = {"exact": "exact R", "quadratic": "R^q"}
KEEP_PROB_STYLES = ("-", "--", ":", "-.")                          # by keep_prob, sorted
YLIM = (-0.12, 0.3)


def slice_curve(row, x=SLICE_X) -> np.ndarray:
    """One path's rise of the penalty from ``t = 0``, over its range, against ``t / beta*_j``.

    Parameters
    ----------
    row : pandas Series
        A row of the study's table (``half_width``, ``n_points``, ``beta_j``, ``R``,
        ``R_range``).
    x : ndarray, shape (n_x,)
        Where to evaluate, in units of the fitted weight: ``x = t / beta*_j`` puts the
        fitted weight at 1 and its sign's side at ``x > 0``, whatever that sign.

    Returns
    -------
    ndarray, shape (n_x,)
        ``(R(t) - R(0)) / R_range``, linear between the grid's points; nan outside the
        grid, and everywhere when ``beta*_j = 0`` (no unit to measure ``t`` in). A path on
        which ``R`` is constant is 0.
    """
    x = np.asarray(x, dtype=np.float64)
    if row.beta_j == 0:
        return np.full(x.shape, np.nan)
    t, R = _values(row)
    u = t / row.beta_j
    rise = R - R[t.size // 2]
    y = rise / row.R_range if row.R_range > 0 else np.zeros_like(rise)
    order = np.argsort(u)   # a negative fitted weight reverses the grid
    return np.interp(x, u[order], y[order], left=np.nan, right=np.nan)


def slice_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, keep_prob) of the slices: shares and the depth of the falls.

    Columns: ``dataset``, ``keep_prob``; ``n`` slices; ``widened`` (slices whose grid
    reaches past ``WINDOW * |beta*_j|``, so fewer of its points fall in the figure's
    window); for each penalty (``exact_``, ``quadratic_``) ``nonmonotone_k`` and
    ``nonmonotone`` with its Clopper-Pearson 95% ``_low``/``_high``; for exact R,
    ``exact_nonconvex_k``, and over the non-monotone slices ``fall_over_range`` (median
    largest fall below the running maximum over R's range on the slice),
    ``fall_over_bound_min`` / ``_median`` (that fall over twice the path's largest error
    bound: the detector's margin, > 1 by construction) and ``fall_at_fit`` (how many of
    them end within one grid step of ``beta*_j``); ``exact_fall_within_bound`` counts the
    slices counted monotone on which the computed R still falls as ``|t|`` grows (by less
    than the error bounds, so the detector cannot tell it from rounding).
    """
    sl = df[df.path == "slice"]
    rows = []
    for (d, q), g in sl.groupby(["dataset", "keep_prob"], sort=True):
        ex, qu = g[g.penalty == "exact"], g[g.penalty == "quadratic"]
        row = dict(dataset=d, keep_prob=q, n=len(ex),
                   widened=int((ex.half_width > WINDOW * ex.beta_j.abs() * (1 + 1e-9)).sum()))
        for pen, h in (("exact", ex), ("quadratic", qu)):
            k, _, p, lo, hi = share(~h.monotone.astype(bool))
            row.update({f"{pen}_nonmonotone_k": k, f"{pen}_nonmonotone": p,
                        f"{pen}_nonmonotone_low": lo, f"{pen}_nonmonotone_high": hi})
        bad = ex[~ex.monotone.astype(bool)]
        step = 2.0 * bad.half_width / (bad.n_points - 1)
        margin = bad.max_drop / (2.0 * bad.max_err)
        # the computed values' own falls, at zero tolerance, on the slices counted monotone
        quiet = sum(not monotonicity(*_values(r))["monotone"]
                    for _, r in ex[ex.monotone.astype(bool)].iterrows())
        row.update(exact_nonconvex_k=int((~ex.convex.astype(bool)).sum()),
                   exact_fall_within_bound=int(quiet),
                   fall_over_range=float((bad.max_drop / bad.R_range).median()) if len(bad)
                   else np.nan,
                   fall_over_bound_min=float(margin.min()) if len(bad) else np.nan,
                   fall_over_bound_median=float(margin.median()) if len(bad) else np.nan,
                   fall_at_fit=int(((bad.drop_t - bad.beta_j).abs() <= step * (1 + 1e-9)).sum()))
        rows.append(row)
    return pd.DataFrame(rows)


def _nonmonotone_label(pen, q, s) -> str:
    return f"{PENALTY_NAMES[pen]}, q={q:g}: {int(s[f'{pen}_nonmonotone_k'])}/{int(s['n'])}"


@STUDY.block("regularizer-path-slices")
def slices_table(df: pd.DataFrame) -> str:
    def count(s, pen):
        k, p = s[f"{pen}_nonmonotone_k"], s[f"{pen}_nonmonotone"]
        return (f"{k}/{s.n} = "
                f"{ci(p, s[f'{pen}_nonmonotone_low'], s[f'{pen}_nonmonotone_high'])}")

    rows = []
    for _, s in slice_summary(df).iterrows():
        ends = f"{s.fall_at_fit}/{s.exact_nonmonotone_k}" if s.exact_nonmonotone_k else "-"
        margin = (f"{num(s.fall_over_bound_min)} / {num(s.fall_over_bound_median)}"
                  if s.exact_nonmonotone_k else "-")
        rows.append([s.dataset, f"{s.keep_prob:g}", f"{s.n} ({s.widened})",
                     count(s, "exact"),
                     num(s.fall_over_range) if s.exact_nonmonotone_k else "-", margin, ends,
                     f"{s.exact_fall_within_bound}/{s.n - s.exact_nonmonotone_k}"
                     if s.n > s.exact_nonmonotone_k else "-",
                     f"{s.exact_nonconvex_k}/{s.n}",
                     count(s, "quadratic")])
    return ("Slices through the exact-dropout solution, per dataset and keep_prob (the "
            "figure above). Slices: how many (in brackets, how many reach past "
            f"{WINDOW:g} |beta*_j|, so that fewer of their grid points fall in the figure's "
            "window). Exact R non-monotone in |t|: count, share [Clopper-Pearson 95%]. Over "
            "those slices: the largest fall below the running maximum as a share of R's "
            "range on the slice (median); that fall over twice the path's largest error "
            "bound (smallest / median: the detector's margin); how many falls end within "
            "one grid step of the fitted weight beta*_j. Of the slices counted monotone, "
            "how many on which the computed R still falls as |t| grows, by less than the "
            "error bounds (so the figure's median can dip where none is counted). Then exact "
            "R non-convex, and R^q non-monotone.\n\n"
            + table(["dataset", "keep_prob", "slices (widened)", "exact R non-monotone",
                     "fall / range", "fall / error bound (min / median)",
                     "fall ends at beta*_j", "monotone, falls within the bounds",
                     "exact R non-convex", "R^q non-monotone"], rows))


def _band(ax, curves, color, ls, label):
    """Pointwise median of ``curves`` (rows) with its 25-75% band, where any is defined."""
    ok = np.isfinite(curves).any(axis=0)
    x, c = SLICE_X[ok], curves[:, ok]
    lo, med, hi = np.nanpercentile(c, [25, 50, 75], axis=0)
    ax.plot(x, med, color=color, ls=ls, linewidth=1.6, label=label)
    ax.fill_between(x, lo, hi, color=color, alpha=0.12, linewidth=0)


@STUDY.figure("regularizer_path_slices")
def slices_figure(df: pd.DataFrame):
    """One panel per dataset: exact R and R^q along the slices through the fitted weights.

    Each path is put on one scale, ``x = t / beta*_j`` (:func:`slice_curve`), and the
    panel draws the pointwise median over the dataset's slices and its 25-75% band, per
    penalty (colour) and keep_prob (line style); the legend gives the non-monotone counts
    of :func:`slice_summary`. Ticks under the curves mark, for exact R, where each
    non-monotone slice's largest fall ends (``drop_t / beta*_j``, ``|``) and each
    non-convex slice's first non-convex point (``o``).
    """
    from matplotlib.lines import Line2D

    sl = df[df.path == "slice"]
    datasets = sorted(sl.dataset.unique())
    qs = sorted(sl.keep_prob.unique())
    ncols = min(2, len(datasets))
    nrows = -(-len(datasets) // ncols)
    fig, axes = new_figure(nrows, ncols, width=4.6, height=3.5, sharex=True, sharey=True)
    summary = slice_summary(df).set_index(["dataset", "keep_prob"])
    for ax, d in zip(axes.flat, datasets):
        for i, q in enumerate(qs):
            s = summary.loc[(d, q)]
            ls = KEEP_PROB_STYLES[i % len(KEEP_PROB_STYLES)]
            for pen in PENALTIES:
                rows = sl[(sl.dataset == d) & (sl.keep_prob == q) & (sl.penalty == pen)]
                curves = np.array([slice_curve(r) for _, r in rows.iterrows()])
                _band(ax, curves, PENALTY_COLORS[pen], ls, _nonmonotone_label(pen, q, s))
            # where exact R was flagged, as ticks at the bottom (x in data, y in axes)
            ex = sl[(sl.dataset == d) & (sl.keep_prob == q) & (sl.penalty == "exact")]
            bad = ex[~ex.monotone.astype(bool)]
            nc = ex[~ex.convex.astype(bool)]
            where = ax.get_xaxis_transform()
            y0 = 0.95 - 0.06 * i   # top right: the curves stay near 0 on that side
            ax.plot(bad.drop_t / bad.beta_j, np.full(len(bad), y0), "|", color="k",
                    markersize=7, alpha=0.4, transform=where, clip_on=True)
            ax.plot(nc.nonconvex_first_t / nc.beta_j, np.full(len(nc), y0), "o", color="k",
                    markerfacecolor="none", markersize=5, transform=where, clip_on=True)
        ax.axvline(1.0, color="k", linewidth=0.8, linestyle="--")
        ax.axvline(0.0, color="grey", linewidth=0.5)
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set_xlim(-WINDOW, WINDOW)
        # the falls are a few percent of the range: zoom on them, the steep side leaves
        ax.set_ylim(*YLIM)
        ax.set_title(f"{d}: {int(summary.loc[(d, qs[0])].n)} slices per keep_prob",
                     fontsize=9)
        ax.grid(True, alpha=0.3)
        # lower left: exact R and R^q rise on that side, so it is empty
        ax.legend(fontsize=8, loc="lower left", title="non-monotone slices", title_fontsize=8,
                  framealpha=0.85, edgecolor="none")
    for ax in axes[-1, :]:
        ax.set_xlabel("t / beta*_j  (fitted weight at 1, dashed)")
    for ax in axes[:, 0]:
        ax.set_ylabel("(R(t) - R(0)) / range of R on the slice")
    for ax in axes.flat[len(datasets):]:
        ax.set_visible(False)
    keys = [Line2D([], [], color="k", ls=KEEP_PROB_STYLES[i % len(KEEP_PROB_STYLES)],
                   label=f"keep_prob {q:g}") for i, q in enumerate(qs)]
    keys += [Line2D([], [], color="k", marker="|", ls="none", markersize=7,
                    label="exact R: where a non-monotone slice's largest fall ends "
                          f"(rows: keep_prob {', '.join(f'{q:g}' for q in qs)}, top down)"),
             Line2D([], [], color="k", marker="o", markerfacecolor="none", ls="none",
                    label="exact R: a slice's first non-convex point")]
    fig.legend(handles=keys, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("Penalty along slices through the exact-dropout fit: median over slices, "
                 "band 25-75%", fontsize=10)
    return fig
