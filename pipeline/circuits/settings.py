"""The ``circuits:`` section of the workflow config (defaults: the config schema's)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from pipeline.settings import StageSettings


@dataclasses.dataclass(frozen=True)
class CircuitsSettings(StageSettings):
    """How each channel's circuits are measured (the layers are the extraction's)."""

    examples: int = 8  # top dataset examples per channel whose attribution is averaged
    layers_per_job: int = 1  # consecutive layers one job computes (the workflow plans with it)

    # What decides a circuits file: the circuits jobs' params and what their files record.
    LAYER_KEYS: ClassVar[tuple[str, ...]] = ("examples",)
