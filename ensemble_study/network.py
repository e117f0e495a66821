"""A small fully connected network and its forward pass.

Conventions (``../shared/DESIGN.md``): ``X`` has shape ``(n_examples,
n_features)``; layer ``l`` (0-based, ``l = 0..L-1``) maps activations ``A[l]``
to ``Z = A[l] @ W[l] + b[l]`` with ``W[l]`` of shape ``(fan_in, fan_out)``.
Activations are indexed ``0..L``: 0 is the input, ``1..L-1`` are hidden and
``L`` is the output.

The forward pass knows nothing about dropout. It takes per-layer
*multipliers*: arrays that scale activation ``l`` before it enters weight
layer ``l``. A multiplier of shape ``(n_masks, width)`` evaluates one
subnetwork per row at once; ``ensemble_study.dropout`` turns masks and a
scheme into multipliers.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._checks import as_float_array, check_int, check_real, check_rng, check_X, is_sequence
from .activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, sigmoid

OUTPUTS = ("identity", "sigmoid", "softmax")
# Version of the .npz layout written by MLP.save (not the package version).
FILE_FORMAT = 1
MAX_RANDOM_WEIGHTS = 2**28
"""The most weights :meth:`MLP.random` draws (2 GiB of float64): a larger request is
refused up front rather than failing, or swapping, inside numpy."""


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum for stability."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Log of :func:`softmax` over the last axis, computed in log space."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


ACTIVATION_FUNCTIONS = {name: a.forward for name, a in ACTIVATIONS.items()}
OUTPUT_FUNCTIONS = {"identity": ACTIVATIONS["identity"].forward, "sigmoid": sigmoid,
                    "softmax": softmax}


def _readonly(a, name: str) -> np.ndarray:
    arr = np.array(as_float_array(a, name), copy=True)
    arr.setflags(write=False)
    return arr


_TRANSPOSE_HINT = (". The weights look stored (fan_out, fan_in), as PyTorch and CS231n store "
                   "them: pass layout='out_in' to MLP.from_arrays (or transpose each W)")


def _shape_hint(w, b) -> str:
    """What fixes a bias that does not match its weights, if a reshape or transpose does."""
    if b.size == w.shape[1] and b.ndim == 2:
        return (f"; a column or row bias of {b.size} values: flatten it (b.ravel(), or "
                f"layout='out_in' for column biases)")
    if b.size == w.shape[0] and w.shape[0] != w.shape[1]:
        return _TRANSPOSE_HINT
    return ""


def _layers(value, name: str) -> tuple:
    """A sequence of per-layer arrays as a tuple (a lone array or a string is refused)."""
    if isinstance(value, np.ndarray) or not is_sequence(value):
        raise ValueError(f"{name} must be a sequence of arrays, one per layer; "
                         f"got {type(value).__name__}")
    return tuple(value)


@dataclass(frozen=True, eq=False, repr=False)
class MLP:
    """A fully connected network: weights, biases and activation names.

    Build one with :meth:`from_arrays` or :meth:`random`. The arrays are
    copied and made read-only, so a network never changes after it exists.

    Attributes
    ----------
    weights : tuple of ndarray
        ``weights[l]`` has shape ``(sizes[l], sizes[l + 1])``.
    biases : tuple of ndarray
        ``biases[l]`` has shape ``(sizes[l + 1],)``.
    hidden : tuple of str
        One activation name per hidden layer (``len == n_layers - 1``), each
        in ``HIDDEN_ACTIVATIONS``.
    output : str
        The output function, one of ``OUTPUTS``.
    """

    weights: tuple
    biases: tuple
    hidden: tuple
    output: str

    def __post_init__(self):
        weights = tuple(_readonly(w, f"weights[{l}]")
                        for l, w in enumerate(_layers(self.weights, "weights")))
        biases = tuple(_readonly(b, f"biases[{l}]")
                       for l, b in enumerate(_layers(self.biases, "biases")))
        if len(weights) == 0:
            raise ValueError("weights must hold at least one layer; got an empty sequence")
        if len(biases) != len(weights):
            raise ValueError(
                f"weights and biases must have the same number of layers; "
                f"got {len(weights)} weight arrays and {len(biases)} bias arrays"
            )
        for l, (w, b) in enumerate(zip(weights, biases)):
            if w.ndim != 2:
                raise ValueError(
                    f"weights[{l}] must be 2-D with shape (fan_in, fan_out); got shape {w.shape}"
                )
            if 0 in w.shape:
                # A zero-width layer has no units to drop or to read out; numpy would
                # carry on with empty products and return constant outputs.
                raise ValueError(
                    f"weights[{l}] must have at least one unit on each side (every layer "
                    f"width >= 1); got shape {w.shape}"
                )
            if b.shape != (w.shape[1],):
                raise ValueError(
                    f"biases[{l}] must have shape ({w.shape[1]},) to match weights[{l}] "
                    f"of shape {w.shape}; got shape {b.shape}" + _shape_hint(w, b)
                )
            if l > 0 and w.shape[0] != weights[l - 1].shape[1]:
                hint = (_TRANSPOSE_HINT if w.shape[1] == weights[l - 1].shape[1]
                        or weights[l - 1].shape[0] == w.shape[0] else "")
                raise ValueError(
                    f"layer shapes do not chain: weights[{l - 1}] has shape "
                    f"{weights[l - 1].shape} but weights[{l}] has shape {w.shape}; "
                    f"weights[{l}].shape[0] must equal {weights[l - 1].shape[1]}" + hint
                )
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ValueError(f"weights[{l}] and biases[{l}] must be finite; got NaN or inf")
        hidden = _hidden_names(self.hidden, len(weights) - 1)
        if not isinstance(self.output, str) or self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}; got {self.output!r}")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "biases", biases)
        object.__setattr__(self, "hidden", hidden)

    @classmethod
    def from_arrays(
        cls,
        weights: Sequence,
        biases: Sequence,
        hidden: str | Sequence[str] = "relu",
        output: str = "identity",
        *,
        layout: str = "in_out",
    ) -> MLP:
        """Build a network from its weight and bias arrays.

        Parameters
        ----------
        weights : sequence of array_like
            ``weights[l]`` of shape ``(fan_in, fan_out)`` (``layout="out_in"``:
            ``(fan_out, fan_in)``).
        biases : sequence of array_like
            ``biases[l]`` of shape ``(fan_out,)`` (``layout="out_in"``: also
            a column ``(fan_out, 1)``).
        hidden : str or sequence of str
            One name for every hidden layer, or one name per hidden layer.
            A network with no hidden layer takes ``hidden=[]`` (a single name
            is also accepted and ignored there).
        output : {"identity", "sigmoid", "softmax"}
        layout : {"in_out", "out_in"}
            ``"out_in"`` for networks stored as ``y = W x + b`` (PyTorch's
            ``linear.weight``, CS231n's ``W1`` of shape ``(H, D)`` with column
            biases): each ``W`` is transposed and each bias flattened. A
            square layer's layout cannot be told from its shape, so a wrong
            ``layout`` is caught by the shape checks only when a layer is not
            square: check the outputs against the original code once.
        """
        if layout not in ("in_out", "out_in"):
            raise ValueError(f"layout must be 'in_out' ((fan_in, fan_out) weights) or 'out_in' "
                             f"((fan_out, fan_in), as PyTorch and CS231n); got {layout!r}")
        weights, biases = _layers(weights, "weights"), _layers(biases, "biases")
        if layout == "out_in":
            weights = tuple(np.asarray(w).T for w in weights)
            biases = tuple(np.asarray(b).reshape(-1) if np.ndim(b) == 2 and 1 in np.shape(b)
                           else b for b in biases)
        return cls(weights, biases, hidden, output)

    @classmethod
    def random(
        cls,
        sizes: Sequence[int],
        hidden: str | Sequence[str] = "relu",
        output: str = "identity",
        *,
        rng,
        bias_scale: float = 0.1,
    ) -> MLP:
        """Draw a network with a standard initialisation.

        ``W[l] ~ N(0, gain / fan_in)`` with ``gain = 2`` when the layer feeds a
        ReLU (He et al. 2015) and ``W[l] ~ N(0, 2 / (fan_in + fan_out))``
        otherwise (Glorot & Bengio 2010). Biases are ``N(0, bias_scale**2)``:
        small but non-zero, so that the hand-checkable symmetries of a
        zero-bias network do not hide bugs.

        Parameters
        ----------
        sizes : sequence of int
            Layer widths ``(n_features, h_1, ..., n_outputs)``, at least two.
        rng : int, SeedSequence or numpy.random.Generator
            Required; the only source of randomness.
        bias_scale : float >= 0
            Standard deviation of the biases.
        """
        gen = check_rng(rng)
        bad = not is_sequence(sizes) or len(sizes := tuple(sizes)) < 2
        try:
            # Integers only: int(2.7) would quietly build a narrower layer.
            sizes = tuple(check_int(s, "sizes", low=1) for s in sizes) if not bad else sizes
        except ValueError:
            bad = True
        if bad:
            raise ValueError(
                f"sizes must list at least two positive layer widths (integers: "
                f"n_features, ..., n_outputs); got {sizes!r}"
            )
        n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        if n_weights > MAX_RANDOM_WEIGHTS:
            raise ValueError(
                f"sizes={sizes!r} asks for {n_weights:,} weights ({8 * n_weights / 2**30:,.3g} "
                f"GiB of float64); MLP.random draws at most MAX_RANDOM_WEIGHTS = "
                f"{MAX_RANDOM_WEIGHTS:,}: use narrower layers"
            )
        bias_scale = check_real(bias_scale, "bias_scale", low=0)
        names = _hidden_names(hidden, len(sizes) - 2)
        weights, biases = [], []
        for l in range(len(sizes) - 1):
            fan_in, fan_out = sizes[l], sizes[l + 1]
            feeds_relu = l < len(names) and names[l] == "relu"
            var = 2.0 / fan_in if feeds_relu else 2.0 / (fan_in + fan_out)
            weights.append(gen.normal(0.0, np.sqrt(var), size=(fan_in, fan_out)))
            with np.errstate(over="ignore"):
                biases.append(gen.standard_normal(fan_out) * bias_scale)
            if not np.all(np.isfinite(biases[-1])):
                raise ValueError(f"bias_scale={bias_scale!r} is too large: the biases drawn "
                                 f"overflow float64")
        return cls(tuple(weights), tuple(biases), names, output)

    @property
    def sizes(self) -> tuple:
        """Layer widths ``(n_features, h_1, ..., n_outputs)``."""
        return (self.weights[0].shape[0],) + tuple(w.shape[1] for w in self.weights)

    @property
    def n_layers(self) -> int:
        """The number ``L`` of weight layers."""
        return len(self.weights)

    @property
    def architecture(self) -> str:
        """Widths joined by dashes, e.g. ``"4-8-8-1"``."""
        return "-".join(str(s) for s in self.sizes)

    def __repr__(self) -> str:
        return f"MLP({self.architecture}, hidden={self.hidden!r}, output={self.output!r})"

    def save(self, path, *, dropout=None, provenance: dict | None = None) -> Path:
        """Write the network to one ``.npz`` file (written atomically).

        With ``dropout`` (a :class:`~ensemble_study.dropout.DropoutConfig`) or
        ``provenance`` (a JSON-able dict, e.g. ``train --save``'s dataset,
        split seed and standardisation), the file also holds ``meta``, one
        JSON string; :func:`ensemble_study.dropout.load_with_dropout` reads it back, :meth:`load`
        ignores it.

        The file holds ``W0..W{L-1}`` and ``b0..b{L-1}`` (float64, this
        package's ``(fan_in, fan_out)`` layout), ``hidden`` and ``output``
        (strings), ``format`` (the layout's version) and ``version`` (the
        package that wrote it). Nothing is pickled: :meth:`load` reads it
        with ``allow_pickle=False``.

        Parameters
        ----------
        path : str or Path
            Must end in ``.npz``.

        Returns
        -------
        Path
        """
        from . import __version__
        from .results import _atomic_write

        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"path must end in .npz; got {str(path)!r}")
        arrays = {f"W{l}": w for l, w in enumerate(self.weights)}
        arrays.update({f"b{l}": b for l, b in enumerate(self.biases)})
        arrays.update(hidden=np.array(self.hidden, dtype=str), output=np.array(self.output),
                      format=np.array(FILE_FORMAT), version=np.array(__version__))
        if dropout is not None or provenance is not None:
            meta = dict(provenance or {})
            if dropout is not None:
                meta["dropout"] = {
                    "keep_prob": {str(l): float(dropout.layer_keep_prob(l))
                                  for l in dropout.layers},
                    "scheme": dropout.scheme}
            arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
        _atomic_write(path, lambda fh: np.savez(fh, **arrays), mode="wb")
        return path

    @classmethod
    def load(cls, path) -> MLP:
        """Read a network written by :meth:`save`, validating every array.

        Raises
        ------
        ValueError
            Naming the file and what is wrong: not an ``.npz`` archive, a
            missing or unexpected array, an unknown format or activation,
            shapes that do not chain, non-numeric or non-finite values.
        """
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as fh:
                npy = fh.read(6) == b"\x93NUMPY"
            raise ValueError(f"{path}: {'a single .npy array' if npy else 'not a zip archive'}, "
                             f"not an .npz file written by MLP.save")
        from .budget import check_npz_members

        # Headers first (no member is inflated before its name, shape and size
        # are checked against the zip directory and the memory budget).
        check_npz_members(path, _SAVED_MEMBERS)
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
        except zipfile.BadZipFile as exc:  # a CRC mismatch, read while inflating
            raise ValueError(f"{path}: damaged archive ({exc})") from None
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path}: cannot read its arrays ({exc})") from None
        try:
            return cls._from_saved(arrays)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def _from_saved(cls, arrays: dict) -> MLP:
        required = {"hidden", "output", "format", "version", "W0", "b0"}
        missing = sorted(required - set(arrays))
        if missing:
            raise ValueError(f"missing array(s) {missing}; an MLP.save file has "
                             f"W0.., b0.., hidden, output, format, version")
        fmt = arrays["format"]
        if fmt.shape != () or not np.issubdtype(fmt.dtype, np.integer) or fmt != FILE_FORMAT:
            raise ValueError(f"format must be {FILE_FORMAT}; got {fmt!r}")
        n_layers = 0
        while f"W{n_layers}" in arrays:
            n_layers += 1
        expected = {*required, *(f"W{l}" for l in range(n_layers)),
                    *(f"b{l}" for l in range(n_layers))}
        missing = sorted(expected - set(arrays))
        if missing:
            raise ValueError(f"missing array(s) {missing} for a network of {n_layers} layers")
        if "meta" in arrays:  # dropout and provenance (dropout.load_with_dropout)
            expected.add("meta")
        unexpected = sorted(set(arrays) - expected)
        if unexpected:
            raise ValueError(f"unexpected array(s) {unexpected} (weights must be numbered "
                             f"W0..W{n_layers - 1} without gaps)")
        params = []
        for name in [f"W{l}" for l in range(n_layers)] + [f"b{l}" for l in range(n_layers)]:
            a = arrays[name]
            if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
                raise ValueError(f"{name} must be numeric; got dtype {a.dtype}")
            params.append(a)
        for name in ("hidden", "output"):
            if arrays[name].dtype.kind != "U":
                raise ValueError(f"{name} must hold strings; got dtype {arrays[name].dtype}")
        hidden, output = arrays["hidden"], arrays["output"]
        if hidden.ndim != 1 or output.ndim != 0:
            raise ValueError(f"hidden must be a 1-D array of names and output one name; got "
                             f"shapes {hidden.shape} and {output.shape}")
        return cls(tuple(params[:n_layers]), tuple(params[n_layers:]),
                   tuple(str(h) for h in hidden), str(output))


# Members an MLP.save file may hold (``meta``: the dropout a file carries).
_SAVED_MEMBERS = re.compile(r"[Wb]\d{1,4}|hidden|output|format|version|meta")


def _hidden_names(hidden, n_hidden: int) -> tuple:
    if isinstance(hidden, str):
        names = (hidden,) * n_hidden
    elif not is_sequence(hidden):
        raise ValueError(
            f"hidden must be one activation name from {HIDDEN_ACTIVATIONS} or a sequence "
            f"of names, one per hidden layer ({n_hidden}); got {hidden!r}"
        )
    else:
        names = tuple(hidden)
        if len(names) != n_hidden:
            raise ValueError(
                f"hidden must be one activation name or one per hidden layer "
                f"({n_hidden}); got {len(names)} names {names}"
            )
    for name in names:
        if not isinstance(name, str) or name not in HIDDEN_ACTIVATIONS:
            raise ValueError(
                f"hidden activation must be one of {HIDDEN_ACTIVATIONS}; got {name!r}"
            )
    return names


def forward(
    net: MLP,
    X: np.ndarray,
    multipliers: Mapping[int, np.ndarray] | None = None,
    *,
    logits: bool = False,
) -> np.ndarray:
    """Forward pass, optionally scaling activations before each weight layer.

    Parameters
    ----------
    net : MLP
    X : ndarray, shape (n_examples, n_features)
        Must already be validated (see :func:`check_input`).
    multipliers : mapping int -> ndarray, optional
        ``multipliers[l]`` scales activation ``l`` (``0 <= l < L``) before it
        enters ``W[l]``. Shape ``(width_l,)`` applies one scaling to every
        example; shape ``(n_masks, width_l)`` evaluates ``n_masks``
        subnetworks at once. All 2-D multipliers must share ``n_masks``.
    logits : bool
        Return the output pre-activation ``Z[L]`` instead of the output.

    Returns
    -------
    ndarray, shape (n_examples, n_outputs) or (n_masks, n_examples, n_outputs)
        The second form when any multiplier is 2-D.
    """
    multipliers = multipliers or {}
    A = X
    last = net.n_layers - 1
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        m = multipliers.get(l)
        if m is not None:
            # (n_masks, width) -> (n_masks, 1, width): one subnetwork per row,
            # broadcast over examples. Layers before the first 2-D multiplier
            # are computed once for all subnetworks.
            A = A * (m[:, None, :] if m.ndim == 2 else m)
        Z = A @ W + b
        if l < last:
            A = ACTIVATION_FUNCTIONS[net.hidden[l]](Z)
    return Z if logits else OUTPUT_FUNCTIONS[net.output](Z)


def check_net(net, name: str = "net") -> MLP:
    """Return ``net`` if it is an :class:`MLP`, else raise ``ValueError``."""
    if not isinstance(net, MLP):
        raise ValueError(f"{name} must be an MLP (MLP.from_arrays or MLP.random); "
                         f"got {type(net).__name__}")
    return net


def check_input(net: MLP, X) -> np.ndarray:
    """Validate ``net`` and ``X``; return ``X`` as float64, shape (n_examples, n_features)."""
    return check_X(X, check_net(net).sizes[0])


def predict(net: MLP, X) -> np.ndarray:
    """The plain forward pass of the full network (no dropout, no scaling).

    Returns
    -------
    ndarray, shape (n_examples, n_outputs)
    """
    return forward(net, check_input(net, X))
