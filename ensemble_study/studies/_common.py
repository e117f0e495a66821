"""Pieces shared by the studies: cell streams, networks, gap rows, column order."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._checks import check_keep_prob, check_positive_int
from ..dropout import SCHEMES
from ..ensemble import EnsembleResult
from ..metrics import gap_metrics
from ..network import HIDDEN_ACTIVATIONS, MLP, OUTPUTS  # noqa: F401 (the studies use c.*)
from ..study import SAME, Param

# Budgets: past these a grid would allocate or compute without bound.
MAX_INPUTS = 100_000
MAX_NETWORKS = 10_000
MAX_FEATURES = 10_000
MAX_SAMPLES = 1_000_000


# --- parameters that several studies share -----------------------------------------------

def activations(default=HIDDEN_ACTIVATIONS, quick=SAME) -> Param:
    return Param("activations", "str", tuple(default), "Hidden activation; repeat for several.",
                 quick=quick, multiple=True, choices=HIDDEN_ACTIVATIONS, flag="--activation")


def output(default="softmax", choices=OUTPUTS) -> Param:
    return Param("output", "str", default, "Output function (softmax has 3 units, the "
                 "others 1).", choices=tuple(choices))


def scheme(default="inverted") -> Param:
    return Param("scheme", "str", default, "Dropout scheme.", choices=SCHEMES)


def keep_prob(default=0.5) -> Param:
    return Param("keep_prob", "keep_prob", default, "Probability of keeping a hidden unit.")


def width(default=8, quick=SAME, high=None) -> Param:
    return Param("width", "int", default, "Units per hidden layer (all dropped).", quick=quick,
                 low=1, high=high)


def depth(default=2, quick=SAME, high=None) -> Param:
    return Param("depth", "int", default, "Number of hidden layers.", quick=quick, low=1,
                 high=high)


def n_features(default=4) -> Param:
    return Param("n_features", "int", default, "Inputs of every random network.", low=1,
                 high=MAX_FEATURES)


def n_inputs(default=32, quick=SAME) -> Param:
    return Param("n_inputs", "int", default, "Random inputs X ~ N(0, 1) per network.",
                 quick=quick, low=1, high=MAX_INPUTS)


def n_networks(default, quick=SAME, help="Random networks per point (medians and bands "
               "are over them).") -> Param:
    return Param("n_networks", "int", default, help, quick=quick, low=1, high=MAX_NETWORKS,
                 aliases=("--n-seeds",))


def seed(default=0) -> Param:
    return Param("seed", "int", default, "Root seed: every cell draws from its own stream "
                 "of SeedSequence(seed).", low=0)

# Identifier columns in the order every study table keeps (those a study has).
ID_COLUMNS = (
    "study", "architecture", "activation", "output", "scheme", "weights", "keep_prob",
    "depth", "width", "n_dropped", "seed", "input", "predictor", "n_subnetworks", "n_samples",
    "draw", "statistic", "quantity", "subnetwork",
)
METRIC_COLUMNS = (
    "mean_abs_gap", "max_abs_gap", "relative_gap", "kl", "total_variation", "disagreement",
)
# The ensemble statistics compared with the single pass: the probability-weighted
# arithmetic mean, and for sigmoid/softmax outputs the NWGM.
STATISTICS = ("arithmetic_mean", "nwgm")
N_OUTPUTS = {"identity": 1, "sigmoid": 1, "softmax": 3}


def stream(seed: int, *identity) -> np.random.SeedSequence:
    """The stream named by ``identity`` under the root ``seed``.

    ``identity`` is what the stream is for, in values (``"network", output,
    activation, index``), never a position in a grid: adding a value to a
    grid (an activation, a K, a keep_prob) leaves every other cell's numbers
    as they were. The names are hashed (SHA-256 of their JSON) into the
    ``spawn_key`` of ``SeedSequence(seed)``.
    """
    text = json.dumps([v.item() if hasattr(v, "item") else v for v in identity],
                      separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).digest()
    words = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.SeedSequence(seed, spawn_key=words)


def network_stream(seed: int, output: str, activation: str, index: int, sizes) -> \
        np.random.SeedSequence:
    """The stream of random network ``index`` of an (output, activation, sizes) grid point.

    Studies that draw their networks from it (sweep, approximations' random
    part) draw the very same networks for the same seed and sizes.
    """
    return stream(seed, "network", output, activation, int(index), [int(n) for n in sizes])


def draw_cell(stream, sizes: Sequence[int], activation: str, output: str, n_inputs: int):
    """A random network and its inputs ``X ~ N(0, 1)``, both from one cell's stream.

    Returns
    -------
    net : MLP
    X : ndarray, shape (n_inputs, sizes[0])
    """
    gen = np.random.default_rng(stream)
    net = MLP.random(sizes, activation, output, rng=gen)
    return net, gen.normal(size=(n_inputs, sizes[0]))


def ensemble_statistics(result: EnsembleResult) -> dict:
    """``{"arithmetic_mean": mean, "nwgm": NWGM}`` (no NWGM for identity outputs)."""
    stats = {"arithmetic_mean": result.mean}
    if result.geometric_mean is not None:
        stats["nwgm"] = result.geometric_mean
    return stats


def gap_rows(reference: EnsembleResult, single: dict | np.ndarray, output: str) -> list[dict]:
    """One row of gaps per ensemble statistic of ``reference``.

    ``single`` is either one prediction (the scaled pass, compared with every
    statistic) or a dict of predictions per statistic (a sampled ensemble).
    The relative gap divides by the reference's spread across subnetworks.
    """
    std = np.sqrt(reference.variance)
    rows = []
    for stat, values in ensemble_statistics(reference).items():
        other = single[stat] if isinstance(single, dict) else single
        rows.append({"statistic": stat, **gap_metrics(values, other, std=std, output=output)})
    return rows


def tidy(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Rows (or a DataFrame) to a table: identifier columns, metrics, then the rest."""
    df = pd.DataFrame(rows)
    ids = [c for c in ID_COLUMNS if c in df.columns]
    metrics = [c for c in METRIC_COLUMNS if c in df.columns]
    return df[ids + metrics + [c for c in df.columns if c not in ids + metrics]]


def check_choices(values, allowed: Sequence[str], name: str) -> tuple:
    """A non-empty tuple of names, each in ``allowed``, or ``ValueError``."""
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in allowed]
    if not values or bad:
        raise ValueError(f"{name} must be one or more of {tuple(allowed)}; got {values!r}")
    return values


def check_keep_probs(values, name: str = "keep_probs") -> tuple:
    """A non-empty tuple of keep probabilities in (0, 1], or ``ValueError``."""
    values = tuple(np.atleast_1d(values).tolist())
    if not values:
        raise ValueError(f"{name} must list at least one keep probability in (0, 1]; got none")
    return tuple(check_keep_prob(v, name) for v in values)


def check_exact_size(n_dropped: int, max_dropped: int, name: str) -> None:
    """Refuse grids whose exact ensembles would enumerate more than ``2**max_dropped`` masks."""
    if n_dropped > max_dropped:
        raise ValueError(
            f"{name}: {n_dropped} dropped units would need 2**{n_dropped} subnetworks per "
            f"exact ensemble; allowed at most {max_dropped} dropped units"
        )


def check_common(*, n_inputs, n_seeds, n_features, seed) -> None:
    for value, name in ((n_inputs, "n_inputs"), (n_seeds, "n_seeds"), (n_features, "n_features")):
        check_positive_int(value, name)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")

