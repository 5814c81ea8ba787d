"""The workflow's model job: discover the model's layers (the `layers` checkpoint)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.model.registry import layers_document
from pipeline.model.spec import ModelSpec


def run_discover_layers(model: ModelSpec, output: str | os.PathLike) -> None:
    """Write the layers of ``model`` (:func:`~pipeline.model.registry.layers_document`) to ``output``."""
    loaded = model.load()
    Path(output).write_text(json.dumps(layers_document(loaded), indent=1))
