"""Feature-visualization presets: how each layer is rendered, decided per layer.

A preset is a list of :class:`Rule` s. A layer takes the first rule that covers its
**stride** (the model's input size over the layer's height: 2 for the stem, 32 for the
last stage of an ImageNet network) and, for a rule with ``min_channels``, its channel
count; the rule gives the layer's :class:`Schedule` (steps, image size, batch size and
the optimiser's knobs).

* ``lucid``: Lucid's defaults everywhere: 512 steps of Adam (lr 0.05, betas 0.9/0.999)
  on 128 px images, starting noise sd 0.01, spectral decay power 1.
* ``fast``: the demo's: 64 px images with 64 steps up to stride 8 and 96 at stride 16;
  from stride 32, 96 px images with 80 steps of NAdam, except layers of 1,024 channels
  or more, which take 96 steps of Adam at 64 px. Starting noise sd 0.1, spectral decay power 1.5 (1.25
  from stride 32), Adam betas 0.8/0.99. Chosen by measurement (docs/PERFORMANCE.md,
  sections 7 and 17) so that every layer of Lite0 reaches at least 0.75 of the same
  engine's 512-step objective and the whole model renders within the demo's time: a
  short run stalls on high-frequency noise, which a stronger spectral decay damps, and
  starts closer to a useful image from larger noise; no learning-rate schedule
  (warm-up, cosine, one-cycle, step decay), coarse-to-fine start, magnitude-constrained
  parameterisation beat constant-rate Adam at 64-112 steps, and of the other Adam-family
  optimisers only NAdam, and only at 96 px from stride 32. At stride 32 a 64 px image is
  only two positions a side, and there the side matters more than the steps.

A key set in the ``featurevis:`` config (``steps: 256``) overrides the preset's value
on every layer. No torch here: the workflow imports this.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

# The keys a preset decides per layer (and that a config key overrides).
SCHEDULE_KEYS = (
    "steps",
    "image_size",
    "batch_size",
    "lr",
    "init_sd",
    "decay_power",
    "adam_betas",
    "optimizer",
)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How one layer's channels are rendered."""

    steps: int
    image_size: int
    batch_size: int
    lr: float
    init_sd: float
    decay_power: float
    adam_betas: tuple[float, float]
    optimizer: str = "adam"  # pipeline.optvis.render.OPTIMIZERS

    def to_dict(self) -> dict[str, Any]:
        spelled = {**dataclasses.asdict(self), "adam_betas": list(self.adam_betas)}
        if self.optimizer == "adam":  # recorded only when not Adam: older stores keep their hash
            del spelled["optimizer"]
        return spelled


@dataclasses.dataclass(frozen=True)
class Rule:
    """The schedule of layers whose stride is at most ``max_stride`` (None: any stride)
    and, when ``min_channels`` is set, that have at least that many channels."""

    max_stride: int | None
    schedule: Schedule
    min_channels: int | None = None

    def covers(self, stride: int, channels: int | None) -> bool:
        """Whether a layer of ``stride`` with ``channels`` (None: not known) takes this rule."""
        if self.max_stride is not None and stride > self.max_stride:
            return False
        return self.min_channels is None or (channels is not None and channels >= self.min_channels)

    def to_dict(self) -> dict[str, Any]:
        wide = {} if self.min_channels is None else {"min_channels": self.min_channels}
        return {"max_stride": self.max_stride, **wide, **self.schedule.to_dict()}


LUCID = Schedule(
    steps=512, image_size=128, batch_size=32, lr=0.05, init_sd=0.01, decay_power=1.0, adam_betas=(0.9, 0.999)
)
_FAST_OPTIMISER = {"lr": 0.05, "init_sd": 0.1, "adam_betas": (0.8, 0.99)}

PRESETS: dict[str, tuple[Rule, ...]] = {
    "lucid": (Rule(None, LUCID),),
    "fast": (
        Rule(8, Schedule(steps=64, image_size=64, batch_size=32, decay_power=1.5, **_FAST_OPTIMISER)),
        Rule(16, Schedule(steps=96, image_size=64, batch_size=32, decay_power=1.5, **_FAST_OPTIMISER)),
        # From stride 32 (docs/PERFORMANCE.md, section 17): a 64 px image is two of the
        # layer's positions a side, all of them at the border, and more steps at 64 px
        # stall below 0.75 of the 512-step objective; 96 px with 80 steps of NAdam
        # reaches it (Adam: 0.747 at blocks.6.0) at twice the cost of a 64 px step. The
        # widest layers (Lite0's 1,280-channel head: 41 % of the model's channels) reach
        # it at 64 px with 96 steps of Adam instead, for 0.6x the cost of 96 px.
        Rule(
            None,
            Schedule(steps=96, image_size=64, batch_size=32, decay_power=1.25, **_FAST_OPTIMISER),
            min_channels=1024,
        ),
        Rule(
            None,
            Schedule(
                steps=80, image_size=96, batch_size=32, decay_power=1.25, **_FAST_OPTIMISER, optimizer="nadam"
            ),
        ),
    ),
}


def layer_stride(input_size: int, height: int) -> int:
    """How many input pixels one step of the layer's grid spans (rounded up to a power of 2)."""
    ratio = max(1.0, input_size / max(1, height))
    return 2 ** math.ceil(math.log2(ratio) - 1e-9)


def at_least_two_strides(size: int, stride: int) -> int:
    """An image side of ``size``, but at least two of the layer's strides, so that a short
    render still spans a few of its positions (at stride 32, 48 px images reach 0.74x the
    objective of 64 px ones; docs/PERFORMANCE.md, section 9)."""
    return max(int(size), 2 * int(stride))


def overridden(schedule: Schedule, stride: int, steps: int | None, image_size: int | None) -> Schedule:
    """``schedule`` with ``steps`` and ``image_size`` (at least two strides) where not None:
    how images shorter than a layer's channel images are rendered (extra images, atlas icons)."""
    changes = {}
    if steps is not None:
        changes["steps"] = int(steps)
    if image_size is not None:
        changes["image_size"] = at_least_two_strides(image_size, stride)
    return dataclasses.replace(schedule, **changes)


def preset_rules(preset: str) -> tuple[Rule, ...]:
    if preset not in PRESETS:
        raise ValueError(f"featurevis.preset: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return PRESETS[preset]


def schedule_for(
    preset: str, stride: int, overrides: Mapping[str, Any] | None = None, channels: int | None = None
) -> Schedule:
    """The schedule of a layer of ``stride`` and ``channels`` under ``preset`` (the first
    rule that covers it; ``channels=None`` skips the rules for wide layers), with the
    non-None ``overrides`` (config keys from :data:`SCHEDULE_KEYS`) applied on top."""
    for rule in preset_rules(preset):
        if rule.covers(stride, channels):
            chosen = rule.schedule
            break
    else:  # pragma: no cover - every preset ends in a catch-all rule
        raise ValueError(f"featurevis.preset {preset!r} has no rule for stride {stride}")
    changes = {k: v for k, v in (overrides or {}).items() if k in SCHEDULE_KEYS and v is not None}
    if "adam_betas" in changes:
        changes["adam_betas"] = tuple(float(b) for b in changes["adam_betas"])
    return dataclasses.replace(chosen, **changes)
