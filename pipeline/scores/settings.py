"""The ``scores:`` section of the workflow config (defaults: the config schema's)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from pipeline.settings import StageSettings


@dataclasses.dataclass(frozen=True)
class ScoresSettings(StageSettings):
    """How every unit's trust scores are computed (the layers are the extraction's)."""

    examples: int = 16  # top dataset examples per channel that clarity, polysemanticity and the path use
    random_examples: int = 64  # random crops of each layer: the clarity baseline and the path's natural floor
    seed: int = 0  # chooses the random crops and seeds k-means
    batch_size: int = 64  # images per forward pass (speed only)

    # What decides a scores file: the rule's params and what its files record.
    RECORD_KEYS: ClassVar[tuple[str, ...]] = ("examples", "random_examples", "seed")
    # Passed to the job as resources: changing them re-runs nothing.
    SPEED_KEYS: ClassVar[tuple[str, ...]] = ("batch_size",)
