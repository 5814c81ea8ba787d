"""The ``featurevis:`` section of the workflow config (defaults: the config schema's)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pipeline.settings import StageSettings


@dataclasses.dataclass(frozen=True)
class FeaturevisSettings(StageSettings):
    """Which channels to render, how, and how to split them into jobs."""

    layers: tuple[str, ...] | str = "all"  # layer names or aliases, or "all"
    channels: tuple[int, ...] | str = "all"  # "all", "START-STOP" or channel ids
    steps: int = 512
    image_size: int = 128
    batch_size: int = 32
    channels_per_job: int = 256
    seed: int = 0
    diversity: int = 1
    diversity_weight: float = 100
    negatives: bool = False
    lr: float = 0.05
    relu_override_steps: int = 16
    param: str = "fft"
    curve_points: int = 32
    pre_activation: bool = True  # capped layers (ReLU6, ...) at the tensor before the cap
    # Lucid's values (pipeline.optvis.param.INIT_SD, DECAY_POWER, render.ADAM_BETAS); not
    # imported from there, as that would load torch in the workflow.
    init_sd: float = 0.01  # standard deviation of the starting noise
    decay_power: float = 1.0  # how fast the fft parameterization damps high frequencies
    adam_betas: tuple[float, float] = (0.9, 0.999)

    # The settings that decide a channel's images and every shard's config_hash; which
    # layers and channels are rendered, and how they are split into jobs, are left out
    # (every shard of a run must hash the same). batch_size is in: batching leaves each
    # image unchanged only up to floating-point rounding.
    RENDER_KEYS: ClassVar[tuple[str, ...]] = (
        "steps",
        "image_size",
        "batch_size",
        "seed",
        "diversity",
        "diversity_weight",
        "negatives",
        "lr",
        "param",
        "curve_points",
        "relu_override_steps",
        "pre_activation",
        "init_sd",
        "decay_power",
        "adam_betas",
    )
    # The random transformations are not configurable, but recorded with the settings.
    TRANSFORMS: ClassVar[str] = "standard"

    def recorded(self) -> dict[str, Any]:
        """The settings a shard records (``settings_json``) and hashes (``config_hash``)."""
        return {**self.subset(self.RENDER_KEYS), "transforms": self.TRANSFORMS}
