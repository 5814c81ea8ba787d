"""The ``blocks:`` section of the workflow config (defaults: the config schema's)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pipeline.settings import StageSettings

RUNNER_UP = "runner-up"
FULL = "full"
MODEL_LAYERS = "model"  # the model's own Building Blocks layers (pipeline.model.LoadedModel.blocks_layers)


@dataclasses.dataclass(frozen=True)
class BlocksSettings(StageSettings):
    """Which images are featured, and what to compute for each of them."""

    images: tuple[str, ...] | str = "bundled"  # "bundled" or image files
    layers: tuple[str, ...] | str = MODEL_LAYERS
    top_channels: int = 4
    grid: int | str = 7  # cells per side of the activation grid, or "full"
    grid_steps: int = 64
    icon_preset: str = "fast"  # whose optimiser renders the icons (pipeline.featurevis.presets)
    grid_size: int = 64
    grid_batch: int = 49
    cossim_pow: float = 0
    group_icon_size: int = 80
    predictions: int = 5
    top_classes: int = 5
    classes: tuple[str | int, ...] = ()  # attributed as well, by name or id
    second_class: str | int = RUNNER_UP
    groups: int = 6
    factorize: str = "activations"
    shared: bool = True
    attribution: str = "gradient"
    integration_steps: int = 20
    seed: int = 0

    # The listing job's params; every other setting decides one image's Building Blocks
    # (the blocks_image rule's params, and what its files record: per_image()).
    LIST_KEYS: ClassVar[tuple[str, ...]] = ("images",)

    def per_image(self) -> dict[str, Any]:
        """Every setting but ``images``: what decides one image's Building Blocks (each
        job is given its image by the listing)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.LIST_KEYS}
