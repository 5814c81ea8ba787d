"""The workflow's model job: discover the model's layers (the `layers` checkpoint)."""

from __future__ import annotations

import os

from pipeline.model.registry import model_layers
from pipeline.model.spec import ModelSpec
from pipeline.store.layers import write_layers_json


def run_discover_layers(model: ModelSpec, output: str | os.PathLike) -> None:
    """Write the layers of ``model`` (:func:`~pipeline.model.registry.model_layers`) to
    ``output``, the run's ``model/layers.json``."""
    write_layers_json(output, model_layers(model.load()))
