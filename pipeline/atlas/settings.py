"""The ``atlas:`` section of the workflow config (defaults: the config schema's)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from pipeline.settings import StageSettings


@dataclasses.dataclass(frozen=True)
class AtlasSettings(StageSettings):
    """Which layers get an activation atlas, how the extraction samples their vectors, how
    they are laid out and binned, and how the cells' icons are rendered."""

    layers: tuple[str, ...] | str = "model"  # "model" (the model's atlas layer) or names/aliases
    positions_per_image: int = 16
    max_vectors: int = 100000  # total cap per layer: min(positions, max(1, max_vectors // images))
    seed: int = 0  # sampled positions and the UMAP layout
    levels: tuple[int, ...] = (20, 40, 80)  # grid sides of the zoom levels
    min_count: int = 3  # cells with fewer vectors stay empty
    top_classes: int = 5
    examples: int = 4  # dataset examples per cell
    n_neighbors: int = 50  # UMAP; the article's (reference: Lucid's activation-atlas notebooks)
    min_dist: float = 0.05  # UMAP; the article's
    init: str = "spectral"  # UMAP's start: "spectral" (UMAP's) or "pca" (for a million vectors)
    # The render jobs' keys (their defaults: the feature-visualization preset's).
    cells_per_job: int = 256
    steps: int | None = None
    image_size: int | None = None

    # What the extraction needs (the extract_shard job's `atlas` params, with the layers).
    SAMPLING_KEYS: ClassVar[tuple[str, ...]] = ("positions_per_image", "max_vectors", "seed")
    # What decides a layer's layout file (pipeline.atlas.job.run_atlas_layout).
    LAYOUT_KEYS: ClassVar[tuple[str, ...]] = (
        "seed",
        "levels",
        "min_count",
        "top_classes",
        "examples",
        "n_neighbors",
        "min_dist",
        "init",
    )
    # What decides the icons (the atlas_render rule's params and the icon files' record,
    # with FeaturevisSettings.ICON_KEYS); cells_per_job only splits the jobs.
    ICON_KEYS: ClassVar[tuple[str, ...]] = ("steps", "image_size")
