"""Models: the registry, the zoo of loaders, layer discovery, hooks, attribution and
receptive fields. Everything that needs a network to compute lives here or in a stage.

:func:`load_model` is the entry point: a registered name, ``torchvision/NAME``,
``timm/NAME`` or ``package.module:function`` -> a :class:`LoadedModel` with its
discovered layers (:class:`LayerInfo`). A :class:`ModelSpec` names a model and its
device without loading it (the workflow's jobs are given one); :func:`run_discover_layers`
is the job that lists a model's layers; :func:`attribute_to_earlier` attributes targets
on one layer to an earlier one (Building Blocks flows, circuits).

Importing this package does not import torch (the workflow imports :class:`ModelSpec`
to plan jobs): the other names load their module on first use (PEP 562).
"""

from pipeline._lazy import lazy_attributes
from pipeline.model.spec import ModelSpec

_LAZY = {
    "LayerInfo": "pipeline.model.layers",
    "LoadedModel": "pipeline.model.registry",
    "attribute_to_earlier": "pipeline.model.attribution",
    "layers_document": "pipeline.model.registry",
    "list_models": "pipeline.model.registry",
    "load_model": "pipeline.model.registry",
    "load_model_matching": "pipeline.model.registry",
    "model_status": "pipeline.model.registry",
    "ModelError": "pipeline.model.zoo",
    "run_discover_layers": "pipeline.model.job",
}

__all__ = [
    "LayerInfo",
    "LoadedModel",
    "ModelError",
    "ModelSpec",
    "attribute_to_earlier",
    "layers_document",
    "list_models",
    "load_model",
    "load_model_matching",
    "model_status",
    "run_discover_layers",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
