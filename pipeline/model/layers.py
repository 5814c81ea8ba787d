"""Layer discovery: which modules of a network are layers, and their sizes.

A layer is a module whose output is a 4-D ``[N, C, H, W]`` feature map and that
runs exactly once per forward pass. A model entry or custom loader may nominate candidate
modules; every other model gets :func:`default_candidates`, the layers a user would pick
from its module tree (its blocks; a convolution with its norm and activation as one layer).
:func:`discover_layers` keeps those that qualify and measures channels and spatial
size with a real forward pass. A layer's ``name`` is the one name used as store
key, URL part and CLI argument; article names such as ``mixed4d`` are aliases
(:attr:`pipeline.model.LoadedModel.layer_aliases`).

Discovery also records whether a layer is **capped**: whether its output is made by a
bounded activation module (ReLU6, hard-sigmoid, sigmoid, tanh, ...). Optimising such
an output saturates at the bound, where the gradient vanishes; feature visualization
optimises the tensor before it instead, the **pre-activation** (Lucid's
``mixed4a_pre_relu``), which is the input of that activation module.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

import torch
from torch import nn

from pipeline.model.hooks import run_with_hooks
from pipeline.model.zoo import ModelError


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One layer worth visualizing: a 4-D activation the model computes once."""

    name: str  # the one name: store key, URL part, CLI argument
    module: str  # dotted module path inside the network
    channels: int
    height: int  # spatial size at the model's input size
    width: int
    index: int  # execution order, 0 = closest to the input
    cap: str | None = None  # class name of the bounded activation the layer ends in ("ReLU6")
    pre_activation: str | None = None  # dotted path of that activation module: its input

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Bounded activations: modules whose output cannot exceed a fixed range. torch's own by
# class (ReLU6 is a Hardtanh); other libraries' (timm's HardSigmoid, Sigmoid, Tanh, which
# do not subclass torch's) by class name.
BOUNDED_ACTIVATIONS = (nn.Hardtanh, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh)
BOUNDED_ACTIVATION_NAMES = frozenset(
    {"ReLU6", "Hardtanh", "HardTanh", "Hardsigmoid", "HardSigmoid", "HardSigmoidMe", "Sigmoid", "Tanh"}
)


def bounded_activation(module: nn.Module) -> str | None:
    """The class name of ``module`` if it is a bounded activation, else None."""
    name = type(module).__name__
    if isinstance(module, BOUNDED_ACTIVATIONS) or name in BOUNDED_ACTIVATION_NAMES:
        return name
    return None


# ---------------------------------------------------------------------------------
# The default layers of a network that names none (timm/NAME, torchvision/NAME, custom
# loaders without a ``layers`` list, and the registered EfficientNet-Lites)
# ---------------------------------------------------------------------------------

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
PASS_THROUGH = (nn.Identity, nn.modules.dropout._DropoutNd)


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd)


def _is_norm(module: nn.Module) -> bool:
    # timm's BatchNormAct2d (a norm with its activation inside) and LayerNorm2d are norms too.
    # A module that holds a convolution (timm's ConvNormAct) is no norm but a unit of its own.
    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)) or (
        "Norm" in type(module).__name__ and not isinstance(module, CONTAINERS) and not _weight_layers(module)
    )


def _is_activation(module: nn.Module) -> bool:
    # torch's (torch.nn.modules.activation) and timm's (timm.layers.activations*) by module.
    return next(module.children(), None) is None and type(module).__module__.rsplit(".", 1)[-1] in {
        "activation",
        "activations",
        "activations_me",
    }


def _weight_layers(module: nn.Module) -> int:
    return sum(isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) for m in module.modules())


def _is_block(module: nn.Module) -> bool:
    """A residual/inverted-residual/inception-style block: not a container, and two or more
    convolutions or linear maps inside (a conv-norm-act module alone has one)."""
    return not isinstance(module, CONTAINERS) and _weight_layers(module) >= 2


def _is_stage(module: nn.Module) -> bool:
    """A module that holds a run of blocks (timm's ConvNeXtStage, RegStage): two or more
    blocks among its children, or among the children of a container child."""
    if isinstance(module, CONTAINERS) or not _is_block(module):
        return False
    inner = [
        grandchild
        for child in module.children()
        for grandchild in (child.children() if isinstance(child, CONTAINERS) else (child,))
    ]
    return sum(_is_block(m) for m in inner) >= 2


def _unit_name(conv_path: str, taken: set[str]) -> str:
    """A conv-norm-act unit is named after its convolution, less a ``conv_`` prefix
    (timm's ``conv_stem`` -> ``stem``, ``conv_head`` -> ``head``) unless that name is taken."""
    head, _, last = conv_path.rpartition(".")
    if last.startswith("conv_") and len(last) > 5:
        short = f"{head}.{last[5:]}" if head else last[5:]
        if short not in taken:
            return short
    return conv_path


def _units(module: nn.Module, prefix: str, taken: set[str]) -> list[tuple[str, str]]:
    """The layers among ``module``'s children, in definition order (see :func:`default_candidates`)."""
    out: list[tuple[str, str]] = []
    run: list[str] = []  # the open conv-norm-act run: the conv's path, then its norm and activation

    def close():
        if run:
            out.append((_unit_name(run[0], taken), run[-1]))
            run.clear()

    for name, child in module.named_children():
        path = prefix + name
        if _is_conv(child):
            close()
            run.append(path)
        elif isinstance(child, PASS_THROUGH):
            continue  # hands its input back at eval: changes no run
        elif _is_norm(child) or _is_activation(child):
            if run:  # after its convolution: the same layer, ending later
                run.append(path)
        elif isinstance(child, CONTAINERS) or _is_stage(child):
            close()
            inner = _units(child, path + ".", taken)
            parts = list(child.children())
            if len(inner) == 1 and all(_is_conv(m) or _is_norm(m) or _is_activation(m) for m in parts):
                # Only a conv, its norm and activation inside (torchvision's Conv2dNormActivation,
                # a Sequential(conv, norm) stem): the container is the layer.
                inner = [(path, path)]
            out.extend(inner)
        elif next(child.children(), None) is not None and _weight_layers(child) >= 1:
            close()
            out.append((path, path))  # a block, or a conv-norm-act module (GoogLeNet's BasicConv2d)
        else:
            close()  # pooling, dropout, flatten, a classifier: ends a run, is no layer
    close()
    return out


def _feature_modules(net: nn.Module) -> list[str]:
    """The module paths of timm's ``feature_info`` (stage outputs), when the network has one."""
    info = getattr(net, "feature_info", None)
    if not isinstance(info, (list, tuple)):
        return []
    return [str(entry["module"]) for entry in info if isinstance(entry, dict) and entry.get("module")]


def default_candidates(net: nn.Module) -> list[tuple[str, str]]:
    """The layers a user would pick, from the module tree: ``[(name, module path)]``.

    - Containers (``Sequential``, ``ModuleList``, ``ModuleDict``) and stages (a module holding
      two or more blocks) are opened: every **block** in them is one layer (timm's EfficientNet
      ``blocks.S.B``, a ResNet's ``layerN.B`` bottlenecks, ConvNeXt's ``stages.S.blocks.B``).
    - A convolution, with the norm and activation modules that follow it, is **one** layer,
      read after the last of them, named after the convolution (less a ``conv_`` prefix): a
      convolution is never a layer apart from its norm and activation.
    - Pooling, dropout and classifier modules are no layers.
    - Every stage output of timm's ``feature_info`` is among the layers (as itself, or as the
      last block of its stage); any the rules above missed is added.
    """
    taken = {path for path, _ in net.named_modules()}
    out = _units(net, "", taken)
    covered = [path for _, path in out]
    for path in _feature_modules(net):
        if not any(c == path or c.startswith(path + ".") for c in covered):
            out.append((path, path))
    return out


def discover_layers(
    net: nn.Module,
    candidates: Sequence[tuple[str, str]] | None,
    input_size: int,
    device: torch.device | str = "cpu",
) -> list[LayerInfo]:
    """Measure candidate layers with one forward pass on a blank image, and find the capped ones.

    Candidates whose output is not a 4-D map, or that run more than once (a shared
    ReLU, say), are dropped: their activation would not be well defined. For the
    layers kept, :func:`find_caps` fills in ``cap`` and ``pre_activation``.
    """
    candidates = list(candidates) if candidates is not None else default_candidates(net)
    modules = dict(net.named_modules())
    missing = [path for _, path in candidates if path not in modules]
    if missing:
        raise ModelError(f"layer modules not found in the network: {', '.join(missing)}")
    calls: dict[str, list] = {name: [] for name, _ in candidates}
    order: list[str] = []

    def record(name):
        def hook(_module, _inputs, output):
            calls[name].append(tuple(output.shape) if torch.is_tensor(output) else None)
            order.append(name)

        return hook

    probe = torch.zeros(1, 3, input_size, input_size, device=device)
    with torch.no_grad():
        run_with_hooks(net, probe, {name: (modules[path], record(name)) for name, path in candidates})
    first_call = {}
    for i, name in enumerate(order):
        first_call.setdefault(name, i)
    layers = []
    for name, path in sorted(candidates, key=lambda c: first_call.get(c[0], 1 << 30)):
        shapes = calls[name]
        if len(shapes) != 1 or shapes[0] is None or len(shapes[0]) != 4:
            continue
        _, c, h, w = shapes[0]
        layers.append(LayerInfo(name=name, module=path, channels=c, height=h, width=w, index=len(layers)))
    if not layers:
        raise ModelError("no layer with a 4-D output was found among the candidates")
    with torch.no_grad():
        return find_caps(net, layers, probe)


def find_caps(net: nn.Module, layers: Sequence[LayerInfo], probe: torch.Tensor) -> list[LayerInfo]:
    """``layers`` with ``cap`` and ``pre_activation`` set where a layer ends in a bounded activation.

    A layer ends in the last leaf module run inside its module whose output tensor *is*
    the layer's output tensor (the same object). Modules that hand back their input
    unchanged (``Identity``, ``Dropout`` at eval) are looked through; an in-place bounded
    activation (``ReLU6(inplace=True)``) also hands back its input, but is what computed
    the values, so it counts. The activation must run exactly once in the pass, or its
    input would not be one tensor.

    A layer that ends in a *functional* bounded op (``F.relu6(x)`` in a ``forward``) is
    not recorded as capped: there is no module whose input could be tapped.
    """
    modules = dict(net.named_modules())
    leaves = {path: m for path, m in modules.items() if next(m.children(), None) is None}
    # Every leaf call in execution order: (path, output, first input). The tensors are kept
    # alive until the end, so that no two of them can share an id.
    calls: list[tuple[str, object, object]] = []
    outputs: dict[str, object] = {}

    def leaf_hook(path):
        def hook(_module, inputs, output):
            calls.append((path, output, inputs[0] if inputs else None))

        return hook

    def layer_hook(name):
        def hook(_module, _inputs, output):
            outputs[name] = output

        return hook

    hooks = {f"leaf {path}": (m, leaf_hook(path)) for path, m in leaves.items()}
    hooks.update({f"layer {info.name}": (modules[info.module], layer_hook(info.name)) for info in layers})
    run_with_hooks(net, probe, hooks)
    runs = Counter(path for path, _, _ in calls)
    found = []
    for info in layers:
        inside = info.module + "."
        for path, output, first_input in reversed(calls):
            if output is not outputs[info.name] or not (path == info.module or path.startswith(inside)):
                continue
            cap = bounded_activation(leaves[path])
            if cap is None and output is first_input:
                continue  # hands its input back (Identity, Dropout at eval): look before it
            if cap is not None and runs[path] == 1:
                info = dataclasses.replace(info, cap=cap, pre_activation=path)
            break
        found.append(info)
    return found
