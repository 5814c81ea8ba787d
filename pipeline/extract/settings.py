"""The ``extract:`` section of the workflow config (defaults: the config schema's)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from pipeline.settings import StageSettings


@dataclasses.dataclass(frozen=True)
class ExtractSettings(StageSettings):
    """Which layers to summarise over the dataset, how, and what the reduction keeps.

    ``images_per_shard``, ``batch_size`` and ``num_workers`` change how fast a run goes,
    never what it stores; the workflow keeps them out of the jobs' rerun triggers.
    """

    layers: tuple[str, ...] | str = "all"  # layer names or aliases, or "all"
    images_per_shard: int = 2000
    batch_size: int = 32
    num_workers: int = 0  # DataLoader worker processes for decoding
    attribution: str = "gradient"  # none, gradient or integrated
    integration_steps: int = 20
    top_k: int = 16
    histogram_bins: int = 32
    thumbnail_size: int = 64
    map_size: int = 16  # side of each example's activation map over its thumbnail; 0: no maps
    amp: bool = False

    # What a shard job needs but that changes only how fast it runs: the workflow passes
    # these as rule resources, never as params that would re-run the job.
    SPEED_KEYS: ClassVar[tuple[str, ...]] = ("batch_size", "num_workers")
    # What decides each job's output: its rule's params, and what its store records
    # (workflow/rules/extract.smk; tests/test_structure.py checks they agree).
    SHARD_KEYS: ClassVar[tuple[str, ...]] = ("layers", "attribution", "integration_steps", "amp")
    PARTIAL_KEYS: ClassVar[tuple[str, ...]] = ("top_k",)
    REDUCE_KEYS: ClassVar[tuple[str, ...]] = ("top_k", "histogram_bins", "thumbnail_size", "map_size")
