"""The ``compare:`` section of a compare run's config (workflow/config/compare.yaml;
defaults: workflow/config/compare.schema.yaml)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from pipeline.settings import StageSettings


@dataclasses.dataclass(frozen=True)
class CompareSettings(StageSettings):
    """How two or more runs over the same images are compared."""

    # The member runs: each a normal run config (model + the shared dataset) that the
    # workflow runs first; the comparison reads their activations.h5.
    runs: tuple[str, ...] = ()
    # Images per minibatch of the CKA estimator (memory [batch, batch] per layer).
    batch_size: int = 256
    seed: int = 0  # the images' random order (minibatches) and the split halves
    # "best": each layer with its most CKA-similar layer of the other run (both ways; same
    # architectures also pair each layer with itself), or a list of [layer A, layer B].
    layer_pairs: tuple | str = "best"
    top_k: int = 5  # best matches kept per channel, each way
    # A best match below this quantile of chance's best matches (split halves) is no match.
    chance_quantile: float = 0.99

    # What decides compare.h5 (the compare rule's params and its provenance record).
    COMPARE_KEYS: ClassVar[tuple[str, ...]] = (
        "batch_size",
        "seed",
        "layer_pairs",
        "top_k",
        "chance_quantile",
    )
