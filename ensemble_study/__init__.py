"""Exact dropout ensembles on small networks, against the scaled pass.

See ``README.md`` for the studies and ``../shared/DESIGN.md`` for the
conventions: ``keep_prob`` is the probability of keeping a unit; arrays are
``(n_examples, n_features)``; activation layers are indexed 0 (input) to L
(output); schemes are ``"vanilla"`` and ``"inverted"``.
"""

from .approximations import MomentPrediction, moment_propagation
from .dropout import DropoutConfig, convert_scheme, scaled_forward
from .ensemble import EnsembleResult, exact_ensemble, sample_ensemble, subnetwork_outputs
from .network import MLP
from .torch_io import from_torch, to_torch  # torch itself is imported when they are called

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "DropoutConfig",
    "EnsembleResult",
    "exact_ensemble",
    "sample_ensemble",
    "moment_propagation",
    "MomentPrediction",
    "scaled_forward",
    "subnetwork_outputs",
    "convert_scheme",
    "from_torch",
    "to_torch",
    "__version__",
]
