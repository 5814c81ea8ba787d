"""Layer discovery: which modules of a network are layers, and their sizes.

A layer is a module whose output is a 4-D ``[N, C, H, W]`` feature map and that
runs exactly once per forward pass. Each model entry nominates candidate modules;
:func:`discover_layers` keeps those that qualify and measures channels and spatial
size with a real forward pass. A layer's ``name`` is the one name used as store
key, URL part and CLI argument; article names such as ``mixed4d`` are aliases
(:attr:`pipeline.model.LoadedModel.layer_aliases`).
"""

from __future__ import annotations

import dataclasses
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def default_candidates(net: nn.Module) -> list[tuple[str, str]]:
    """Top-level children, one level into containers: stage/block outputs for most nets."""
    out = []
    for name, child in net.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 0:
            out.extend((f"{name}.{sub}", f"{name}.{sub}") for sub, _ in child.named_children())
        else:
            out.append((name, name))
    return out


def discover_layers(
    net: nn.Module,
    candidates: Sequence[tuple[str, str]] | None,
    input_size: int,
    device: torch.device | str = "cpu",
) -> list[LayerInfo]:
    """Measure candidate layers with one forward pass on a blank image.

    Candidates whose output is not a 4-D map, or that run more than once (a shared
    ReLU, say), are dropped: their activation would not be well defined.
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
    return layers
