"""The workflow's extraction job: extract one shard of the listing (the reduction's jobs:
:mod:`pipeline.extract.reduce_job`).

Each job gets the stage's settings and the :class:`~pipeline.model.ModelSpec`, loads
its own model, and writes one file through :mod:`pipeline.store.activations`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from pipeline.extract.extractor import TOP_PREDICTIONS, Extractor, extract_batches, label_classes, make_loader
from pipeline.extract.sampling import AtlasSampling, PositionSampler
from pipeline.extract.settings import ExtractSettings
from pipeline.images.dataset import ImageDataset, collate, skipped_from_batch
from pipeline.images.listing import read_listing
from pipeline.model.spec import ModelSpec
from pipeline.store import ProvenanceRecord, provenance
from pipeline.store.activations import ShardLayout, shard_writer

log = logging.getLogger(__name__)


def extraction_settings(
    model,
    layers: Sequence[str],
    settings: ExtractSettings,
    source: Mapping,
    sampler: PositionSampler | None = None,
) -> ProvenanceRecord:
    """What determines a shard's contents (its provenance record); hashed into
    ``config_hash`` so merges can compare.

    ``model`` is the loaded model, ``layers`` the resolved layer names (recorded as the
    ``layers`` setting), ``source`` the listing's source description, ``sampler`` the
    atlas sampling (recorded only when there is one).
    """
    derived = {
        "input_size": model.input_size,
        "source": {
            "source": source["name"],
            "kind": source["kind"],
            "path": source["path"],
            "max_images": source["max_images"],
        },
    }
    if sampler is not None:
        derived["atlas"] = sampler.recorded()
    return provenance(
        stage="extract.shard",
        settings={**settings.subset(ExtractSettings.SHARD_KEYS), "layers": list(layers)},
        model=model.describe(),
        derived=derived,
    )


def run_extract_shard(
    settings: ExtractSettings,
    model: ModelSpec,
    listing: str | os.PathLike,
    start: int,
    stop: int,
    output: str | os.PathLike,
    atlas: AtlasSampling | None = None,
) -> dict:
    """Extract the images ``[start, stop)`` of the image listing ``listing`` into the shard
    ``output``. Returns counts for the log.

    Whether label attribution is stored is decided on the labels of the whole listing, so
    that it never differs between shards. With ``atlas`` (layers given), the shard also
    holds the activation-atlas samples of its images (:mod:`pipeline.extract.sampling`);
    the atlas layers need not be among ``settings.layers``.
    """
    images = read_listing(listing)
    records = images.records[start:stop]
    loaded = model.load()
    sampler = _atlas_sampler(atlas, loaded, len(images.records))
    extractor = Extractor(
        loaded,
        settings.layers,
        attribution=settings.attribution,
        steps=settings.integration_steps,
        amp=settings.amp,
        sampler=sampler,
    )
    every_class = _label_classes(images.records, loaded)
    shard_classes = every_class[start:stop]
    loader = make_loader(
        ImageDataset(records, loaded.input_size),
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        device=loaded.device,
        collate_fn=collate,
    )
    infos = loaded.resolve_layers(extractor.layers)
    layout = ShardLayout(
        layers=[i.to_dict() for i in infos],
        quantities=shard_quantities(settings, every_class),
        class_names=loaded.class_names,
        start=start,
        stop=stop,
        top=min(TOP_PREDICTIONS, len(loaded.class_names)),
        atlas=[i.to_dict() for i in loaded.resolve_layers(extractor.atlas_layers)] if sampler else (),
    )
    recorded = extraction_settings(loaded, extractor.layers, settings, images.source, sampler)
    with shard_writer(output, layout, settings=recorded, model_checksum=loaded.checksum) as writer:
        batches = extract_batches(extractor, loader, shard_classes, total=len(records), first_index=start)
        kept, skipped = _write_batches(writer, batches, records, shard_classes)
    log.info("shard %d-%d: %d images extracted, %d skipped", start, stop, kept, skipped)
    if sampler is not None:
        log.info(
            "atlas samples: %d position(s) per image of %s", sampler.per_image, ", ".join(sampler.layers)
        )
    return {"images": kept, "skipped": skipped}


def _atlas_sampler(atlas: AtlasSampling | None, loaded, images: int) -> PositionSampler | None:
    """The sampler of the atlas layers' positions over a listing of ``images`` images, or
    None when no atlas layer is sampled."""
    if atlas is None or not atlas.layers:
        return None
    names = [info.name for info in loaded.resolve_layers(list(atlas.layers))]
    return atlas.sampler(names, images)


def _label_classes(records: Sequence, loaded):
    """Each listed image's label as a class index of ``loaded`` (-1: none), for the whole
    listing; labels that match no class are logged once."""
    every_class, unmatched = label_classes([r.label for r in records], loaded.class_names)
    if unmatched:
        log.warning(
            "%d label(s) match no class name or wnid of %s and are ignored: %s",
            len(unmatched),
            loaded.name,
            ", ".join(unmatched[:20]),
        )
    return every_class


def shard_quantities(settings: ExtractSettings, every_class) -> list[str]:
    """The per-image quantities a shard stores; attribution to the label only when some
    image of the whole listing has one, so that it never differs between shards."""
    quantities = ["max", "argmax_y", "argmax_x", "min", "argmin_y", "argmin_x", "mean"]
    if settings.attribution != "none":
        quantities.append("attr_predicted")
        if bool((every_class >= 0).any()):
            quantities.append("attr_label")
    return quantities


def _write_batches(writer, batches, records: Sequence, shard_classes) -> tuple[int, int]:
    """Append each extracted batch's images to the shard ``writer`` and record its bad
    files as skipped; returns the counts ``(kept, skipped)``."""
    kept = skipped = 0
    for batch, summary in batches:
        bad = skipped_from_batch(records, batch)
        writer.skip(bad)
        skipped += len(bad)
        if summary is not None:
            rows = batch["index"][batch["ok"].bool()].tolist()
            writer.append([records[i] for i in rows], shard_classes[rows].tolist(), summary)
            kept += len(rows)
    return kept, skipped
