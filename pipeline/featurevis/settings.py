"""The ``featurevis:`` section of the workflow config (defaults: the config schema's)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pipeline.featurevis.presets import (
    SCHEDULE_KEYS,
    Schedule,
    overridden,
    preset_rules,
    schedule_for,
)
from pipeline.settings import StageSettings


@dataclasses.dataclass(frozen=True)
class FeaturevisSettings(StageSettings):
    """Which channels to render, how, and how to split them into jobs."""

    layers: tuple[str, ...] | str = "all"  # layer names or aliases, or "all"
    channels: tuple[int, ...] | str = "all"  # "all", "START-STOP" or channel ids
    # How each layer is rendered (pipeline.featurevis.presets); the schedule keys below
    # left at None take the preset's per-layer value, a value set overrides it everywhere.
    preset: str = "lucid"
    steps: int | None = None
    image_size: int | None = None
    batch_size: int | None = None
    channels_per_job: int = 256
    seed: int = 0
    # The extra images of each channel (its diverse set, negative and neuron image), on
    # the layers of ``extra_layers``: "all", or the names the workflow resolved (the
    # config may say "blocks": the Building Blocks layers).
    diversity: int = 1
    diversity_weight: float = 100
    negatives: bool = False
    neurons: bool = False
    extra_layers: tuple[str, ...] | str = "all"
    # The extra images' own steps and side (None: the layer's schedule's); the side is
    # kept at two strides or more (presets.at_least_two_strides).
    extra_steps: int | None = None
    extra_image_size: int | None = None
    lr: float | None = None
    relu_override_steps: int = 16
    param: str = "fft"
    curve_points: int = 32
    pre_activation: bool = True  # capped layers (ReLU6, ...) at the tensor before the cap
    init_sd: float | None = None  # standard deviation of the starting noise
    decay_power: float | None = None  # how fast the fft parameterization damps high frequencies
    adam_betas: tuple[float, float] | None = None
    optimizer: str | None = None  # pipeline.optvis.render.OPTIMIZERS
    # Opt-in methods of issue 28 (docs/PERFORMANCE.md, section 17); off by default.
    lr_schedule: str = "constant"  # pipeline.optvis.render.lr_factor
    coarse_to_fine: float = 0.0  # share of the steps rendered at half the side
    # Cheaper steps (issue 28), for a GPU: bfloat16 autocast of the network (CUDA only; a
    # no-op on a CPU) and torch.compile of its layers (pipeline.optvis.compiled).
    amp: bool = False
    compile: bool = False

    # The settings that decide a channel's images and every shard's config_hash; which
    # layers and channels are rendered, and how they are split into jobs, are left out
    # (every shard of a run must hash the same). batch_size is in: batching leaves each
    # image unchanged only up to floating-point rounding.
    RENDER_KEYS: ClassVar[tuple[str, ...]] = (
        "preset",
        "steps",
        "image_size",
        "batch_size",
        "seed",
        "diversity",
        "diversity_weight",
        "negatives",
        "neurons",
        "extra_layers",
        "extra_steps",
        "extra_image_size",
        "lr",
        "param",
        "curve_points",
        "relu_override_steps",
        "pre_activation",
        "init_sd",
        "decay_power",
        "adam_betas",
        "lr_schedule",
        "coarse_to_fine",
        "optimizer",
        "amp",
        "compile",
    )
    # A shard job's params and its store's recorded settings: the channel selection and
    # the render keys (workflow/rules/featurevis.smk).
    SHARD_KEYS: ClassVar[tuple[str, ...]] = ("channels", *RENDER_KEYS)
    # What decides an atlas cell's icon besides the atlas's own keys
    # (AtlasSettings.ICON_KEYS): the preset, every schedule override, and the render loop's
    # keys. The atlas_render rule passes exactly these, and the icon files record them.
    ICON_KEYS: ClassVar[tuple[str, ...]] = (
        "preset",
        *SCHEDULE_KEYS,
        "seed",
        "param",
        "relu_override_steps",
        "pre_activation",
        "lr_schedule",
        "coarse_to_fine",
        "amp",
        "compile",
    )
    # Opt-in render keys, recorded (in a shard's params, settings_json and config_hash,
    # and an icon's params) only when set: at their defaults they leave the images as
    # before, so stores rendered before they existed keep their hash. amp and compile
    # change an image only by rounding (amp: only on CUDA), but are recorded when set,
    # like batch_size: what a store records says how its images were made.
    OPT_IN_DEFAULTS: ClassVar[dict[str, Any]] = {
        "lr_schedule": "constant",
        "coarse_to_fine": 0.0,
        "optimizer": None,  # a schedule key, recorded only when the config sets it
        "amp": False,
        "compile": False,
    }
    SWITCH_KEYS: ClassVar[tuple[str, ...]] = ("amp", "compile")
    # The random transformations are not configurable, but recorded with the settings.
    TRANSFORMS: ClassVar[str] = "standard"

    def __post_init__(self) -> None:
        for key in self.SWITCH_KEYS:
            value = getattr(self, key)
            if not isinstance(value, bool):
                raise ValueError(f"featurevis.{key} must be true or false, got {value!r}")

    def subset(self, keys) -> dict[str, Any]:
        """:meth:`StageSettings.subset`, without the opt-in keys left at their defaults."""
        return {
            k: v
            for k, v in super().subset(keys).items()
            if k not in self.OPT_IN_DEFAULTS or v != self.OPT_IN_DEFAULTS[k]
        }

    def derived(self) -> dict[str, Any]:
        """What a store records beside the settings: the preset's rules spelled out
        (changing a preset changes the hash) and the transformations."""
        return {
            "preset_rules": [rule.to_dict() for rule in preset_rules(self.preset)],
            "transforms": self.TRANSFORMS,
        }

    def for_layer(self, layer: str) -> FeaturevisSettings:
        """The settings ``layer`` is rendered with: without the extra images (diversity,
        negative, neuron) unless the layer is one of ``extra_layers``."""
        if self.extra_layers == "all":
            return self
        if isinstance(self.extra_layers, str):
            raise ValueError(
                f"featurevis.extra_layers {self.extra_layers!r} must be resolved to layer names "
                "first (the workflow does this); give 'all' or a list of names"
            )
        if layer in self.extra_layers:
            return self
        return dataclasses.replace(self, diversity=1, negatives=False, neurons=False)

    def schedule(self, stride: int, channels: int | None = None) -> Schedule:
        """How a layer of ``stride`` with ``channels`` is rendered: the preset's rule,
        overridden by the schedule keys this config sets. Pass the layer's channel count:
        a preset may render its widest layers differently (None: as a narrow one)."""
        return schedule_for(self.preset, stride, self.subset(SCHEDULE_KEYS), channels)

    def extra_schedule(self, stride: int, channels: int | None = None) -> Schedule:
        """How a layer's extra images (diverse, negative, neuron) are rendered: its
        schedule with ``extra_steps`` and ``extra_image_size`` when set."""
        return overridden(self.schedule(stride, channels), stride, self.extra_steps, self.extra_image_size)

    def icon_schedule(
        self, stride: int, steps: int | None, image_size: int | None, channels: int | None = None
    ) -> Schedule:
        """How direction icons (the atlas's cells) of a layer of ``stride`` are rendered: its
        schedule with ``steps`` and ``image_size`` (at least two strides) when set."""
        return overridden(self.schedule(stride, channels), stride, steps, image_size)
