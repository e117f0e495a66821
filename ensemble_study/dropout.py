"""Dropout configuration, the two schemes, and the scaled (test-time) pass.

``keep_prob`` is the probability of *keeping* a unit (CS231n; Srivastava et
al. 2014); ``drop_rate = 1 - keep_prob``. With a 0/1 mask ``m``:

* ``vanilla``:  train ``a~ = m * a``;             test ``a~ = keep_prob * a``.
* ``inverted``: train ``a~ = m * a / keep_prob``; test ``a~ = a``.

A joint mask is one 0/1 row over all dropped units, ordered by layer and then
by unit; a batch of joint masks has shape ``(n_masks, n_dropped_units)``.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._checks import as_float_array, check_choice, check_keep_prob, check_rng, is_sequence
from .network import MLP, check_input, check_net, forward

SCHEMES = ("vanilla", "inverted")
# Under the inverted scheme a kept unit is multiplied by 1/keep_prob in every
# dropped layer: the product over the layers must stay within 10**150, so that
# second moments (its square) stay below 1e300 < 1.8e308 with room for the
# weights and activations. keep_prob 1e-155 on two layers gave NaN before.
INVERTED_MAX_LOG10 = 150


def smallest_inverted_keep_prob(n_layers: int) -> float:
    """The smallest keep_prob allowed on each of ``n_layers`` dropped layers (inverted)."""
    e = INVERTED_MAX_LOG10 / n_layers
    return float(f"1e-{int(e)}") if e == int(e) else 10.0 ** -e


def _check_inverted_range(per_layer: dict, single: bool) -> None:
    """Refuse inverted keep_probs whose multipliers' product passes 10**INVERTED_MAX_LOG10."""
    dropped = {l: q for l, q in per_layer.items() if q < 1}
    if not dropped or sum(-math.log10(q) for q in dropped.values()) <= INVERTED_MAX_LOG10 + 1e-9:
        return
    n = len(dropped)
    smallest = smallest_inverted_keep_prob(n)
    layers = "layer" if n == 1 else f"each of the {n} dropped layers"
    given = (f"keep_prob={next(iter(dropped.values()))!r}" if single else
             f"keep_prob={dict(dropped)!r} (product "
             f"{math.prod(dropped.values()):.3g})")
    raise ValueError(
        f"{given} is too small for the inverted scheme: kept units are multiplied by "
        f"1/keep_prob in every dropped layer and the product must stay within "
        f"1e{INVERTED_MAX_LOG10} (or the moments overflow to inf and NaN); the smallest "
        f"keep_prob that works on {layers} is {smallest:g} (or use scheme='vanilla', "
        f"which never divides)"
    )
MODES = ("train", "test")


@dataclass(frozen=True)
class DropoutConfig:
    """Which activation layers are dropped, how often, and under which scheme.

    Parameters
    ----------
    keep_prob : float or mapping int -> float
        Probability of keeping a unit, in (0, 1]; one value for every dropped
        layer, or one per layer (then ``layers`` may be omitted).
    layers : sequence of int, optional
        Activation indices to drop: 0 is the input, ``1..L-1`` are hidden
        layers; the output ``L`` is never dropped. Whether the indices fit a
        network is checked when the config meets one.
    scheme : {"vanilla", "inverted"}

    Examples
    --------
    >>> DropoutConfig(0.5, layers=[1, 2])
    DropoutConfig(keep_prob=0.5, layers=(1, 2), scheme='inverted')
    >>> DropoutConfig({0: 0.8, 1: 0.5}, scheme="vanilla").layers
    (0, 1)
    """

    keep_prob: float | Mapping[int, float]
    layers: tuple | None = None
    scheme: str = "inverted"

    def __post_init__(self):
        check_choice(self.scheme, SCHEMES, "scheme")
        kp = self.keep_prob
        if isinstance(kp, Mapping):
            per_layer = {_check_layer_index(k, "keep_prob's keys (layers)"):
                         check_keep_prob(v, f"keep_prob[{k}]") for k, v in kp.items()}
            if not per_layer:
                raise ValueError("keep_prob must map at least one layer; got an empty mapping")
            layers = tuple(sorted(per_layer))
            if self.layers is not None and _check_layers(self.layers) != layers:
                raise ValueError(
                    f"layers must equal the keys of keep_prob when both are given; "
                    f"got layers={tuple(self.layers)} and keep_prob keys {layers}"
                )
            kp = types.MappingProxyType(dict(sorted(per_layer.items())))
        else:
            if is_sequence(kp):
                raise ValueError(
                    f"keep_prob must be one number in (0, 1] for every dropped layer, or a "
                    f"mapping {{layer: keep_prob}} for one value per layer, e.g. "
                    f"{{0: 0.8, 1: 0.5}}; got {type(kp).__name__} {kp!r}"
                )
            kp = check_keep_prob(kp)
            if self.layers is None:
                raise ValueError(
                    "layers is required when keep_prob is a single number: say which "
                    "activation layers to drop, e.g. layers=[1, 2] (0 = input)"
                )
            layers = _check_layers(self.layers)
        if self.scheme == "inverted":
            _check_inverted_range(dict(kp) if isinstance(kp, Mapping) else
                                  dict.fromkeys(layers, kp), not isinstance(kp, Mapping))
        object.__setattr__(self, "keep_prob", kp)
        object.__setattr__(self, "layers", layers)

    def __hash__(self):
        # The read-only mapping proxy is unhashable; hash its items instead.
        kp = self.keep_prob
        return hash((tuple(kp.items()) if isinstance(kp, Mapping) else kp,
                     self.layers, self.scheme))

    def __reduce__(self):
        # The mapping proxy does not pickle either: rebuild (and revalidate) from a
        # dict, so that configs reach process pools and Dask workers.
        kp = self.keep_prob
        return (type(self), (dict(kp) if isinstance(kp, Mapping) else kp, self.layers,
                             self.scheme))

    def layer_keep_prob(self, layer: int) -> float:
        """The keep probability of one dropped layer."""
        if isinstance(self.keep_prob, Mapping):
            return self.keep_prob[layer]
        return self.keep_prob


def _check_layer_index(k, name: str = "layers") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(
            f"{name} must be non-negative activation indices (0 = input, 1..L-1 "
            f"hidden); got {k!r}"
        )
    return int(k)


def _check_layers(layers) -> tuple:
    if isinstance(layers, (int, np.integer)):
        layers = (layers,)
    if not is_sequence(layers):
        raise ValueError(
            f"layers must be an activation index or a sequence of them (0 = input, "
            f"1..L-1 hidden), e.g. layers=[1, 2]; got {layers!r}"
        )
    out = tuple(_check_layer_index(k) for k in layers)
    if len(out) == 0:
        raise ValueError("layers must name at least one layer to drop; got an empty sequence")
    if len(set(out)) != len(out):
        raise ValueError(f"layers must not repeat an index; got {out}")
    return tuple(sorted(out))


def check_config(net: MLP, cfg: DropoutConfig) -> None:
    """Raise ``ValueError`` unless every dropped layer of ``cfg`` fits ``net``."""
    check_net(net)
    if not isinstance(cfg, DropoutConfig):
        raise ValueError(f"cfg must be a DropoutConfig; got {type(cfg).__name__}")
    L = net.n_layers
    for k in cfg.layers:
        if k >= L:
            raise ValueError(
                f"layers: cannot drop layer {k} of a network with L={L} weight layers "
                f"({net.architecture}); allowed 0..{L - 1} (0 = input, 1..{L - 1} hidden; "
                f"the output {L} is never dropped)"
            )


def dropped_units(net: MLP, cfg: DropoutConfig) -> dict:
    """Column slices of a joint mask, one per dropped layer.

    Returns
    -------
    dict int -> slice
        ``masks[:, slices[l]]`` is the mask of activation layer ``l``.
    """
    check_config(net, cfg)
    slices, start = {}, 0
    for l in cfg.layers:
        width = net.sizes[l]
        slices[l] = slice(start, start + width)
        start += width
    return slices


def unit_keep_probs(net: MLP, cfg: DropoutConfig) -> np.ndarray:
    """Keep probability of every dropped unit, shape ``(n_dropped_units,)``."""
    return np.concatenate(
        [np.full(net.sizes[l], cfg.layer_keep_prob(l)) for l in cfg.layers]
    )


def mask_multipliers(net: MLP, cfg: DropoutConfig, masks: np.ndarray) -> dict:
    """Train-time multipliers of each dropped layer for a batch of joint masks.

    Parameters
    ----------
    masks : ndarray, shape (n_masks, n_dropped_units)
        0/1 (or boolean) joint masks.

    Returns
    -------
    dict int -> ndarray of shape (n_masks, width_l)
        ``m`` under vanilla, ``m / keep_prob`` under inverted.
    """
    masks = check_masks(net, cfg, masks)
    out = {}
    for l, sl in dropped_units(net, cfg).items():
        m = masks[:, sl].astype(np.float64)
        out[l] = m / cfg.layer_keep_prob(l) if cfg.scheme == "inverted" else m
    return out


def check_masks(net: MLP, cfg: DropoutConfig, masks) -> np.ndarray:
    """Validate a batch of joint masks; shape ``(n_masks, n_dropped_units)``."""
    check_config(net, cfg)  # before reading the widths of the dropped layers
    n_units = sum(net.sizes[l] for l in cfg.layers)
    masks = np.asarray(masks) if isinstance(masks, np.ndarray) else masks
    if not (isinstance(masks, np.ndarray) and masks.dtype == bool):
        masks = as_float_array(masks, "masks")
    if masks.ndim == 1:
        masks = masks[None, :]
    if masks.ndim != 2 or masks.shape[1] != n_units:
        raise ValueError(
            f"masks must have shape (n_masks, {n_units}): one 0/1 column per dropped "
            f"unit of layers {cfg.layers}; got shape {masks.shape}"
        )
    if masks.dtype != bool and not np.all((masks == 0) | (masks == 1)):
        raise ValueError("masks must contain only 0 and 1 (or booleans)")
    return masks


def scaled_multipliers(net: MLP, cfg: DropoutConfig) -> dict:
    """Test-time multipliers: ``keep_prob`` under vanilla, none under inverted."""
    check_config(net, cfg)
    if cfg.scheme == "inverted":
        return {}
    return {l: np.full(net.sizes[l], cfg.layer_keep_prob(l)) for l in cfg.layers}


def scaled_forward(net: MLP, cfg: DropoutConfig, X, *, logits: bool = False) -> np.ndarray:
    """The scheme's single deterministic test-time pass (the "approximation").

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig
    X : array_like, shape (n_examples, n_features)
    logits : bool
        Return the output pre-activation instead of the output.

    Returns
    -------
    ndarray, shape (n_examples, n_outputs)
    """
    X = check_input(net, X)
    return forward(net, X, scaled_multipliers(net, cfg), logits=logits)


def dropout_step(A, keep_prob: float, scheme: str, *, mode: str, rng=None):
    """Apply dropout to one array of activations, as a training loop would.

    The mode is explicit (as in JAX's ``stax.Dropout``): ``"train"`` draws a
    fresh mask from ``rng``; ``"test"`` is the scheme's scaled pass and draws
    nothing.

    Parameters
    ----------
    A : ndarray, any shape
    keep_prob : float in (0, 1]
    scheme : {"vanilla", "inverted"}
    mode : {"train", "test"}
    rng : int, SeedSequence or Generator
        Required in train mode.

    Returns
    -------
    out : ndarray, same shape as ``A``
    mask : ndarray of bool, same shape as ``A``, or None in test mode
    """
    keep_prob = check_keep_prob(keep_prob)
    check_choice(scheme, SCHEMES, "scheme")
    check_choice(mode, MODES, "mode")
    A = as_float_array(A, "A")
    if not np.all(np.isfinite(A)):  # a dropped inf would become 0 * inf = NaN
        raise ValueError("A must contain only finite values; got NaN or inf")
    if mode == "test":
        return (A * keep_prob if scheme == "vanilla" else A.copy()), None
    if rng is None:
        raise ValueError(
            "rng is required in train mode: pass an int seed or a numpy Generator, "
            "e.g. dropout_step(A, 0.5, 'inverted', mode='train', rng=0)"
        )
    mask = check_rng(rng).random(A.shape) < keep_prob
    out = A * mask
    if scheme == "inverted":
        with np.errstate(over="ignore"):
            out = out / keep_prob
        if not np.all(np.isfinite(out)):
            raise ValueError(f"A / keep_prob overflows float64: A reaches {np.abs(A).max():g} "
                             f"and keep_prob is {keep_prob:g}")
    return out, mask


def convert_scheme(net: MLP, cfg: DropoutConfig, scheme: str):
    """The equivalent network and config under the other scheme (DESIGN fact 5).

    Inverted dropout on weights theta is vanilla dropout on theta', where
    theta' divides the weights *leaving* each dropped layer ``l`` (``W[l]``)
    by that layer's keep_prob. Every subnetwork computes the same function,
    so the ensemble and the scaled pass are unchanged.

    Returns
    -------
    net : MLP
    cfg : DropoutConfig
    """
    check_choice(scheme, SCHEMES, "scheme")
    check_config(net, cfg)
    if scheme == cfg.scheme:
        return net, cfg
    weights = list(net.weights)
    for l in cfg.layers:
        q = cfg.layer_keep_prob(l)
        weights[l] = weights[l] / q if scheme == "vanilla" else weights[l] * q
    new_net = MLP(tuple(weights), net.biases, net.hidden, net.output)
    return new_net, DropoutConfig(cfg.keep_prob if not isinstance(cfg.keep_prob, Mapping)
                                  else dict(cfg.keep_prob), cfg.layers, scheme)


def load_with_dropout(path):
    """Read a network with the dropout and provenance :meth:`MLP.save` stored.

    Parameters
    ----------
    path : str or Path
        A file written by ``MLP.save(path, dropout=..., provenance=...)``
        (or a plain ``MLP.save`` file).

    Returns
    -------
    net : MLP
    cfg : DropoutConfig or None
        None for a file saved without ``dropout`` (an older file).
    info : dict
        The ``provenance`` given to :meth:`MLP.save` (empty if none).
    """
    net = MLP.load(path)  # validates every member before inflating any
    with np.load(path, allow_pickle=False) as archive:
        raw = archive["meta"] if "meta" in archive.files else None
    if raw is None:
        return net, None, {}
    try:
        meta = json.loads(str(raw))
        drop = meta.pop("dropout", None)
        cfg = None
        if drop is not None:
            kp = {int(l): float(q) for l, q in drop["keep_prob"].items()}
            cfg = (DropoutConfig(next(iter(kp.values())), sorted(kp), drop["scheme"])
                   if len(set(kp.values())) == 1 else
                   DropoutConfig(kp, scheme=drop["scheme"]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path}: meta is not the JSON MLP.save writes ({exc})") from None
    return net, cfg, meta
