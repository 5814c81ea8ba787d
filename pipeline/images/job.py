"""The workflow's image-listing job (the `list_images` checkpoint of extraction)."""

from __future__ import annotations

import os

from pipeline.images.dataset import open_source
from pipeline.images.listing import write_listing
from pipeline.images.settings import DatasetSettings


def run_list_images(dataset: DatasetSettings, output: str | os.PathLike) -> None:
    """List the image source of ``dataset`` (no decoding) into the listing ``output``.

    The listing's source description is the config's ``kind``, ``path`` and
    ``max_images`` plus the source's ``name``; extraction records it with its shards.
    """
    source = open_source(kind=dataset.kind, path=dataset.path, max_images=dataset.max_images)
    if not source.records:  # open_source refuses empty sources too; never extract nothing
        raise ValueError(f"dataset: the image source {source.name!r} holds no images")
    write_listing(output, source.records, {"name": source.name, **dataset.to_dict()})
