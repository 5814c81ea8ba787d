"""The ``dataset:`` section of the workflow config: which images extraction runs over."""

from __future__ import annotations

import dataclasses

from pipeline.settings import StageSettings


@dataclasses.dataclass(frozen=True)
class DatasetSettings(StageSettings):
    """An image source (see :func:`pipeline.images.dataset.open_source` for the kinds)."""

    kind: str = "bundled"  # bundled, folder, imagefolder or manifest
    path: str | None = None  # folder or manifest file; none for bundled
    max_images: int | None = None  # the first N images in id order; None for all
