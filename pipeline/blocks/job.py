"""The workflow's Building Blocks jobs: list the featured images, compute one image, merge.

Each job gets the stage's settings (and the :class:`~pipeline.model.ModelSpec` when it
runs the network), loads its own model, and writes one file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.blocks.settings import BlocksSettings
from pipeline.images.listing import ImageRecord, read_listing, write_listing
from pipeline.model.spec import ModelSpec
from pipeline.store import provenance
from pipeline.store.blocks import RunHeader, merge_files, write_image_file

log = logging.getLogger(__name__)


def featured_images(images: str | Sequence[str]) -> list[ImageRecord]:
    """The featured images of ``blocks.images``: ``"bundled"`` (the eight bundled photos of
    FEATURED_PHOTOS, with the dataset's ids) or a list of files (id: the file name)."""
    if images == "bundled":
        from pipeline.images.dataset import FEATURED_PHOTOS, open_source

        featured = set(FEATURED_PHOTOS)
        return [
            ImageRecord(r.image_id, r.path, None)
            for r in open_source("bundled").records
            if r.image_id in featured
        ]
    if isinstance(images, str):
        raise ValueError(f"blocks.images must be 'bundled' or a list of image files, got {images!r}")
    records, seen = [], {}
    for path in images:
        full = Path(path).expanduser().resolve()
        if not full.is_file():
            raise ValueError(f"blocks.images: {path!r} is not a file")
        if full.name in seen:
            raise ValueError(
                f"blocks.images: {path!r} and {seen[full.name]!r} have the same file "
                "name, which is the image id; rename one"
            )
        seen[full.name] = path
        records.append(ImageRecord(full.name, str(full), None))
    return records


def run_list_featured(settings: BlocksSettings, output: str | os.PathLike) -> None:
    """List the featured images of ``settings.images`` (no decoding) into the listing ``output``."""
    name = "bundled" if settings.images == "bundled" else "files"
    write_listing(output, featured_images(settings.images), {"name": name})


def run_blocks_image(
    settings: BlocksSettings,
    model: ModelSpec,
    listing: str | os.PathLike,
    index: int,
    output: str | os.PathLike,
) -> None:
    """Compute the Building Blocks of image ``index`` of the listing ``listing`` and write
    them to ``output`` (see :func:`pipeline.store.blocks.write_image_file`)."""
    from pipeline.blocks.compute import blocks_layers, compute_blocks, icons_recorded
    from pipeline.images.dataset import BadImage, load_rgb, to_model_input

    record = read_listing(listing).records[index]
    loaded = model.load()
    try:
        image = to_model_input(load_rgb(record.path), loaded.input_size)
    except BadImage as exc:
        raise ValueError(f"featured image {record.image_id!r} ({record.path}): {exc.reason}") from None
    layers = blocks_layers(loaded, settings)
    log.info("Building Blocks of %s at %s", record.image_id, ", ".join(i.name for i in layers))
    blocks = compute_blocks(loaded, image, settings, progress=True)
    recorded = provenance(
        stage="blocks",
        # The layers as resolved (the selection may say "model"); the icons' every setting.
        settings={**settings.per_image(), "layers": [info.name for info in layers]},
        model=loaded.describe(),
        derived={"icons": icons_recorded(loaded, settings, layers)},
    )
    header = RunHeader(
        model=loaded.describe(),
        class_names=loaded.class_names,
        layers=[info.to_dict() for info in layers],
        settings=recorded,
        model_checksum=loaded.checksum,
    )
    write_image_file(output, header, image_id=record.image_id, image_path=record.path, blocks=blocks)


def merge_blocks(images: Sequence[str | os.PathLike], output: str | os.PathLike) -> None:
    """Merge the per-image files, in listing order, into the run's store ``output``."""
    merge_files(list(images), output)
