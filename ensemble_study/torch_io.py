"""PyTorch ``nn.Sequential`` networks in and out of this package.

:func:`from_torch` reads a sequential network of ``nn.Linear`` layers,
``nn.ReLU``/``nn.Tanh``/``nn.Sigmoid``/``nn.Identity`` activations and
``nn.Dropout`` modules, optionally ending in ``nn.Softmax(dim=-1)`` or
``nn.Sigmoid``, as an :class:`~ensemble_study.network.MLP` and a
:class:`~ensemble_study.dropout.DropoutConfig`; :func:`to_torch` goes back.

The translation, module by module:

* ``nn.Linear`` stores ``weight`` as ``(out_features, in_features)``; this
  package's ``W[l]`` is ``(fan_in, fan_out)``, so it is transposed (and
  copied as float64). A Linear without bias gets a zero bias.
* ``nn.Dropout(p)`` becomes ``keep_prob = 1 - p`` on the activation layer it
  follows: before the first Linear it drops the input (layer 0); after
  hidden layer ``l``'s activation it drops layer ``l``. PyTorch's dropout is
  inverted (``m / (1 - p)`` in training, the identity in ``eval()``), so the
  config's scheme is ``"inverted"``, and ``model.eval()`` computes the
  config's scaled pass. A Dropout just *before* a ReLU or Identity is the
  same as one just after it (both are positively homogeneous: ``relu(m z / q)
  = m relu(z) / q`` for 0/1 ``m``), so it is read as dropping that layer;
  before a Tanh or Sigmoid it is not, and is refused.
* Two Linear layers with nothing between them are one hidden layer with the
  identity activation.
* Everything else is refused with a ``ValueError`` naming the module and
  its position: other module types (including ``nn.Dropout``'s relatives,
  ``nn.LogSoftmax`` and nested containers), a Dropout after the last Linear
  (the output is never dropped), two Dropouts on one layer, ``p = 1``, and a
  Softmax over any dimension but the last.

``torch`` is imported only when one of these functions is called
(``pip install -e '.[torch]'``); importing ``ensemble_study`` never imports it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .activations import ACTIVATIONS
from .dropout import DropoutConfig, check_config, convert_scheme
from .network import MLP, OUTPUTS

# torch.nn module name -> activation (nn.Identity is read apart: it maps no layer).
_ACTIVATIONS = {a.torch: name for name, a in ACTIVATIONS.items() if name != "identity"}
# Activations f with f(m z / q) = m f(z) / q for a 0/1 mask m and q > 0.
_HOMOGENEOUS = tuple(name for name, a in ACTIVATIONS.items() if a.homogeneous)


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError(
            "ensemble_study.torch_io needs PyTorch: pip install torch (the CPU build: "
            "pip install torch --index-url https://download.pytorch.org/whl/cpu), or "
            "pip install -e '.[torch]'"
        ) from None
    return torch


def _as_float64(torch, tensor, where: str) -> np.ndarray:
    """``tensor`` as a float64 numpy array, or a ValueError naming ``where`` and the fix."""
    t = tensor.detach()
    if t.device.type == "meta":
        raise ValueError(f"{where} is on the meta device (shape only, no values): materialise "
                         f"the weights first, e.g. model.to_empty(device='cpu') then load a "
                         f"state_dict, or build the model without device='meta'")
    if t.is_complex() or not (t.is_floating_point() or t.dtype in (
            torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise ValueError(f"{where} has dtype {t.dtype}, which has no float64 value; convert "
                         f"the model first, e.g. model.to(torch.float64)")
    if t.layout is not torch.strided:
        t = t.to_dense()
    try:
        return t.to("cpu", torch.float64).numpy()
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        raise ValueError(f"{where} on device {t.device} cannot be copied to the CPU as "
                         f"float64 ({' '.join(str(exc).split())[:150]}); move the model "
                         f"first with model.to('cpu', torch.float64)") from None


def _describe(position: int, module) -> str:
    text = repr(module)
    return f"module {position} ({text if chr(10) not in text else type(module).__name__})"


def from_torch(module, *, output: str | None = None):
    """Read an ``nn.Sequential`` as a network and its dropout config.

    Parameters
    ----------
    module : torch.nn.Sequential
        See the module docstring for the layers accepted. Its train/eval
        mode is irrelevant; its parameters are copied, never shared.
    output : {"identity", "sigmoid", "softmax"}, optional
        The output function, needed only when ``module`` ends in a Linear
        (it then returns logits): ``"softmax"`` for a model trained with
        ``nn.CrossEntropyLoss``, ``"sigmoid"`` with ``nn.BCEWithLogitsLoss``,
        ``"identity"`` (the default there) for regression. When ``module``
        ends in ``nn.Softmax``/``nn.Sigmoid``, ``output`` may be omitted or
        must name that function.

    Returns
    -------
    net : MLP
        Float64 copies of the weights, ``W[l] = linear.weight.T``.
    cfg : DropoutConfig or None
        Inverted scheme, ``keep_prob = 1 - p`` per dropped layer (a mapping
        when the layers' keep probabilities differ); None when ``module``
        has no ``nn.Dropout``.

    Raises
    ------
    ValueError
        For any module or arrangement that has no exact counterpart here.
    """
    torch = _torch()
    nn = torch.nn
    if isinstance(module, nn.Module) and not isinstance(module, nn.Sequential):
        # A lone layer (nn.Linear) is a chain of one; any other module is traced.
        seq, names = ((nn.Sequential(module), [type(module).__name__])
                      if not list(module.children()) else _trace_chain(module))
        try:
            return from_torch(seq, output=output)
        except ValueError as exc:
            msg = str(exc)
            for j, name in enumerate(names):
                msg = msg.replace(f"module {j} (", f"module {j} {name!r} (")
            raise ValueError(f"{type(module).__name__} (traced by torch.fx as a chain): "
                             f"{msg}") from None
    if not isinstance(module, nn.Sequential):
        raise ValueError(f"module must be a torch.nn.Module (an nn.Sequential, or a module "
                         f"whose forward is a chain of layers); got {type(module).__name__}")
    if output is not None and output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS} or None; got {output!r}")
    # nn.Identity computes nothing; two Linears with nothing between them are an
    # identity hidden layer, so skipping it loses nothing.
    mods = [(j, m) for j, m in enumerate(module) if type(m) is not nn.Identity]
    linear_at = [i for i, (_, m) in enumerate(mods) if type(m) is nn.Linear]
    if not linear_at:
        raise ValueError("module must contain at least one nn.Linear; got none")
    body, tail = mods[:linear_at[-1] + 1], mods[linear_at[-1] + 1:]
    final = None
    for k, (j, m) in enumerate(tail):
        if type(m) is nn.Dropout:
            raise ValueError(f"{_describe(j, m)}: a Dropout after the last Linear would drop "
                             f"the output, which is never dropped; remove it")
        if k == 0 and type(m) is nn.Softmax:
            if m.dim not in (-1, 1):
                raise ValueError(f"{_describe(j, m)}: Softmax must act on the last dimension "
                                 f"(dim=-1, or 1 for inputs (n_examples, n_features)); got "
                                 f"dim={m.dim}")
            final = "softmax"
        elif k == 0 and type(m) is nn.Sigmoid:
            final = "sigmoid"
        else:
            raise ValueError(f"{_describe(j, m)}: after the last Linear only one nn.Softmax"
                             f"(dim=-1) or nn.Sigmoid may follow; got {type(m).__name__}")
        if output not in (None, final):
            raise ValueError(f"output={output!r} contradicts {_describe(j, m)}, which makes "
                             f"the output {final!r}; omit output or pass {final!r}")

    weights, biases, hidden, keep = [], [], [], {}
    act = None  # the activation read since the last Linear
    dropout_before_act = None  # (position, module) of a Dropout between a Linear and it

    for j, m in body:
        kind = type(m)
        layer = len(weights)  # the activation layer that the modules here act on
        if kind is nn.Linear:
            W = _as_float64(torch, m.weight, f"{_describe(j, m)}.weight").T.copy()
            b = (np.zeros(W.shape[1]) if m.bias is None
                 else _as_float64(torch, m.bias, f"{_describe(j, m)}.bias").copy())
            if weights and W.shape[0] != weights[-1].shape[1]:
                raise ValueError(f"{_describe(j, m)}: in_features={W.shape[0]} does not "
                                 f"match the previous Linear's out_features="
                                 f"{weights[-1].shape[1]}")
            if weights:
                hidden.append(act or "identity")
            weights.append(W)
            biases.append(b)
            act, dropout_before_act = None, None
        elif kind is nn.Dropout:
            if layer in keep:
                raise ValueError(f"{_describe(j, m)}: a second Dropout on activation layer "
                                 f"{layer}; use one")
            if not 0.0 <= m.p < 1.0:
                raise ValueError(f"{_describe(j, m)}: p must be in [0, 1) (keep_prob = 1 - p "
                                 f"must be > 0); got p={m.p}")
            keep[layer] = 1.0 - float(m.p)
            if layer > 0 and act is None:
                dropout_before_act = (j, m)
        elif kind.__name__ in _ACTIVATIONS and kind is getattr(nn, kind.__name__, None):
            name = _ACTIVATIONS[kind.__name__]
            if layer == 0:
                raise ValueError(f"{_describe(j, m)}: an activation before the first Linear "
                                 f"has no counterpart here (the input enters as it is)")
            if act is not None:
                raise ValueError(f"{_describe(j, m)}: a second activation on hidden layer "
                                 f"{layer}; one per layer")
            if dropout_before_act is not None and name not in _HOMOGENEOUS:
                dj, dm = dropout_before_act
                raise ValueError(f"{_describe(dj, dm)}: a Dropout before a {kind.__name__} "
                                 f"is not dropout of the layer's units (only ReLU and "
                                 f"Identity commute with it); move it after module {j}")
            act = name
        else:
            raise ValueError(f"{_describe(j, m)}: {kind.__name__} is not supported; an "
                             f"nn.Sequential may hold nn.Linear, nn.ReLU, nn.Tanh, "
                             f"nn.Sigmoid, nn.Identity, nn.Dropout and a final nn.Softmax "
                             f"or nn.Sigmoid")
    out_fn = final or output or "identity"
    net = MLP(tuple(weights), tuple(biases), tuple(hidden), out_fn)
    if not keep:
        return net, None
    values = set(keep.values())
    cfg = (DropoutConfig(values.pop(), layers=sorted(keep), scheme="inverted")
           if len(values) == 1 else DropoutConfig(dict(keep), scheme="inverted"))
    return net, cfg


def _trace_chain(module):
    """A custom ``nn.Module`` as ``(nn.Sequential, names)`` through ``torch.fx`` tracing.

    Its ``forward`` must be a chain: one input, each step taking the
    previous step's result as its only tensor argument. Steps may be
    submodules (any that :func:`from_torch` reads in an ``nn.Sequential``) or
    the functions ``relu``, ``tanh``, ``sigmoid``, ``softmax(dim)``,
    ``dropout(p, training)`` (``torch.``, ``F.`` or methods) and
    ``flatten(x, 1)`` (the identity on ``(n_examples, n_features)``).
    Anything else (a skip connection, an arithmetic step, a branch) is
    refused naming the module, the step's position and its name.
    """
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional
    cls = type(module).__name__
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception as exc:  # data-dependent control flow and the like
        raise ValueError(f"{cls}: torch.fx cannot trace its forward ({type(exc).__name__}: "
                         f"{exc}); write it as an nn.Sequential") from None
    funcs = {F.relu: "relu", torch.relu: "relu", torch.tanh: "tanh", F.tanh: "tanh",
             torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.softmax: "softmax",
             torch.softmax: "softmax", F.dropout: "dropout", torch.flatten: "flatten"}
    steps, names, prev, position = [], [], None, 0
    for node in graph.nodes:
        if node.op == "placeholder":
            if prev is not None:
                raise ValueError(f"{cls}: forward takes more than one input ({node.name}); "
                                 f"an MLP takes one")
            prev = node
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                raise ValueError(f"{cls}: forward does not return the last step of its chain")
            break
        tensors = [a for a in (*node.args, *node.kwargs.values())
                   if isinstance(a, torch.fx.Node)]
        what = (f"{cls}: step at position {position} ({node.name!r}, {node.op} "
                f"{getattr(node.target, '__name__', node.target)})")
        if tensors != [prev] or (node.args and node.args[0] is not prev):
            raise ValueError(f"{what} is not a chain step (it takes "
                             f"{[t.name for t in tensors]}, not only the previous step's "
                             f"result): skip connections and branches have no MLP "
                             f"counterpart; write the model as an nn.Sequential of nn.Linear, "
                             f"activations and nn.Dropout")
        kw = dict(node.kwargs)
        if node.op == "call_module":
            step = module.get_submodule(node.target)
        else:
            fn = (funcs.get(node.target) if node.op == "call_function"
                  else node.target if node.op == "call_method" else None)
            if fn == "relu":
                step = nn.ReLU()
            elif fn == "tanh":
                step = nn.Tanh()
            elif fn == "sigmoid":
                step = nn.Sigmoid()
            elif fn == "softmax":
                step = nn.Softmax(dim=kw.get("dim", node.args[1] if len(node.args) > 1
                                             else None))
            elif fn == "dropout":
                p = kw.get("p", node.args[1] if len(node.args) > 1 else 0.5)
                training = kw.get("training", node.args[2] if len(node.args) > 2 else True)
                step = nn.Dropout(p) if training else nn.Identity()
            elif fn == "flatten" and (kw.get("start_dim", node.args[1] if len(node.args) > 1
                                             else 0) in (1, -1)):
                step = nn.Identity()
            else:
                raise ValueError(f"{what}: not supported; a traced forward may call "
                                 f"submodules and relu, tanh, sigmoid, softmax(dim=-1), "
                                 f"dropout, flatten(x, 1)")
        steps.append(step)
        names.append(str(node.target) if node.op == "call_module" else node.name)
        prev, position = node, position + 1
    return nn.Sequential(*steps), names


def to_torch(net: MLP, cfg: DropoutConfig | None = None):
    """An ``nn.Sequential`` (float64) computing ``net`` with ``cfg``'s dropout.

    Layer ``l``'s dropout becomes ``nn.Dropout(p=1 - keep_prob)`` just after
    its activation (before the first Linear for the input); a layer with
    keep_prob 1 gets ``nn.Dropout(p=0.0)``, so that :func:`from_torch` reads
    the same config back. A vanilla config is first converted to the
    equivalent inverted network (:func:`~ensemble_study.dropout.convert_scheme`,
    DESIGN fact 5), since PyTorch's dropout is inverted: the subnetworks, the
    ensemble and the scaled pass (``eval()``) are unchanged, the stored
    weights are not.

    Parameters
    ----------
    net : MLP
    cfg : DropoutConfig or None
        None: no Dropout modules.

    Returns
    -------
    torch.nn.Sequential
        In training mode, as ``nn.Module`` objects are created.
    """
    torch = _torch()
    nn = torch.nn
    if not isinstance(net, MLP):
        raise ValueError(f"net must be an MLP; got {type(net).__name__}")
    keep = {}
    if cfg is not None:
        check_config(net, cfg)
        net, cfg = convert_scheme(net, cfg, "inverted")
        kp = cfg.keep_prob
        keep = dict(kp) if isinstance(kp, Mapping) else {l: kp for l in cfg.layers}
    mods = []
    torch_act = {name: getattr(nn, a.torch) for name, a in ACTIVATIONS.items()}
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        if l > 0:
            mods.append(torch_act[net.hidden[l - 1]]())
        if l in keep:
            mods.append(nn.Dropout(p=1.0 - keep[l]))
        lin = nn.Linear(W.shape[0], W.shape[1], dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(W.T))
            lin.bias.copy_(torch.tensor(b))
        mods.append(lin)
    if net.output == "softmax":
        mods.append(nn.Softmax(dim=-1))
    elif net.output == "sigmoid":
        mods.append(nn.Sigmoid())
    return nn.Sequential(*mods)
