"""Models: the registry, the zoo of loaders, layer discovery, hooks, attribution and
receptive fields. Everything that needs a network to compute lives here or in a stage.

:func:`load_model` is the entry point: a registered name, ``torchvision/NAME``,
``timm/NAME`` or ``package.module:function`` -> a :class:`LoadedModel` with its
discovered layers (:class:`LayerInfo`).
"""
from pipeline.model.layers import LayerInfo
from pipeline.model.registry import (LoadedModel, layers_document, list_models, load_model,
                                     model_status)
from pipeline.model.zoo import ModelError

__all__ = ["LayerInfo", "LoadedModel", "ModelError", "layers_document", "list_models",
           "load_model", "model_status"]
