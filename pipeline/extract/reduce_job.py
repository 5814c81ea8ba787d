"""The reduction's jobs: a partial per shard, one merge, the examples per shard, the store.

::

    extract_shard ──> reduce_partial ─┐                    ┌─> shard_examples ─┐
    (per shard)       (per shard)     ├─> reduce_merge ────┤   (per shard)     ├─> reduce_activations
                                      ┘   (once)           └───────────────────┘   (once: activations.h5)

* :func:`run_reduce_partial`: one shard's partial (:func:`pipeline.extract.reduce.shard_partial`).
* :func:`run_reduce_merge`: every partial folded into the merged tables, statistics, class
  attribution and correlation, plus the examples' receptive-field boxes and the plan of
  their thumbnails. Cost: shards x channels x (k + classes + channels), not images.
* :func:`run_shard_examples`: a shard's histogram counts on the merged edges, and the
  thumbnails and activation maps of the examples among its images (each decoded once).
* :func:`run_reduce_assemble`: ``activations.h5`` (docs/STORE.md), per layer.

:func:`reduce_store` runs the same steps in one process (tests, benchmarks). Files are
read and written only here and in :mod:`pipeline.store`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from pipeline.extract.crops import ExampleCrops
from pipeline.extract.reduce import histogram_counts, merge_partials, merged_layer, shard_partial
from pipeline.extract.settings import ExtractSettings
from pipeline.labels.layers import label_columns, label_record, labels_from_arrays
from pipeline.labels.rule import LabelSettings
from pipeline.store import ProvenanceRecord, provenance
from pipeline.store.activations import ShardSet, reduced_writer
from pipeline.store.activations_reader import UnitLabels
from pipeline.store.reduction import (
    EXAMPLES,
    MERGED,
    PARTIAL,
    LayersFile,
    MergedLayer,
    ReducedLayer,
    ShardPartial,
    ShardShare,
    close_all,
    open_per_shard,
    refuse_other_shards,
    write_layers,
)

log = logging.getLogger(__name__)

MAP_BATCH = 16  # images per forward pass when computing the examples' activation maps
# Per-image quantities the partial reads (attribution to the label class is kept per
# image in the store, but no reduction uses it).
REDUCED_QUANTITIES = ("max", "argmax_y", "argmax_x", "min", "argmin_y", "argmin_x", "mean", "attr_predicted")


def _progress(items, desc: str, progress: bool, unit: str = "layer"):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, disable=not progress)


def _source(info: Mapping) -> dict:
    return {key: info[key] for key in ("start", "stop", "rows", "config_hash", "model_checksum")}


# ---------------------------------------------------------------------------------
# The steps, on arrays
# ---------------------------------------------------------------------------------


def partial_of_shard(shard: ShardSet, k: int, progress: bool = False) -> dict[str, ShardPartial]:
    """``{layer: partial}`` of a one-shard :class:`ShardSet`."""
    predicted = shard.predicted_classes().compute() if shard.rows else np.zeros(0, np.int64)
    wanted = [q for q in REDUCED_QUANTITIES if q in shard.quantities]
    partials = {}
    for layer in _progress(shard.layers, "partial", progress):
        name = layer["name"]
        arrays = {q: shard.per_image(name, q).compute() for q in wanted}
        partials[name] = shard_partial(arrays, predicted, len(shard.class_names), k)
    return partials


def merge_layer(parts: Iterable[tuple[ShardPartial, int]], field, k: int, bins: int) -> MergedLayer:
    """One layer's ``(partial, first global row)`` of every shard, merged
    (:func:`~pipeline.extract.reduce.merge_partials`, :func:`~pipeline.extract.reduce.merged_layer`)."""
    return merged_layer(merge_partials(parts, k), field, k, bins)


def examples_of_shard(
    shard: ShardSet,
    offset: int,
    merged: Mapping[str, MergedLayer],
    images: Callable[[Sequence[int]], Iterable[tuple[list[int], object]]],
    settings: ExtractSettings,
    layer_maps: Callable[[object], Mapping[str, object]] | None = None,
    progress: bool = False,
) -> dict[str, ShardShare]:
    """A one-shard :class:`ShardSet`'s share of the store, per layer: its histogram counts
    on the merged edges, and the crops of :class:`~pipeline.extract.crops.ExampleCrops`.

    ``offset`` is the shard's first global row; ``images(rows)`` yields batches ``(rows,
    [B, 3, S, S] in [0, 1])`` of those global rows; ``layer_maps(images)`` returns every
    layer's activations ``{layer: [B, C, H, W]}`` (None: no maps).
    """
    from tqdm import tqdm

    counts = {
        layer["name"]: histogram_counts(
            shard.per_image(layer["name"], "max").compute(), merged[layer["name"]].stats.hist_edges
        )
        for layer in shard.layers
    }
    map_size = settings.map_size if layer_maps is not None and settings.map_size > 0 else None
    crops = ExampleCrops(merged, offset, offset + shard.rows, settings.thumbnail_size, map_size)
    rows = crops.rows()
    need_maps = bool(map_size) and crops.needs_activations  # once: it scans every request
    with tqdm(total=len(rows), desc="examples", unit="img", disable=not progress) as bar:
        for batch_rows, batch in images(rows):
            acts = layer_maps(batch) if need_maps else None
            for b, row in enumerate(batch_rows):
                crops.fill(row, batch[b], {n: a[b].cpu() for n, a in acts.items()} if acts else None)
            bar.update(len(batch_rows))
    return crops.shares(counts)


def stored_labels(
    classes, class_names: Sequence[str], settings: LabelSettings | None = None
) -> UnitLabels | None:
    """A layer's channel labels as the store keeps them, from its merged attribution by class
    (None without attribution): the labelling the query API and the site would otherwise
    compute on every read, computed once here from arrays already in memory."""
    if classes is None:
        return None
    settings = settings or LabelSettings()
    labels = labels_from_arrays(classes.attribution, classes.count, class_names, settings)
    record = label_record(settings, class_names)
    return UnitLabels(
        **label_columns(labels, settings),
        rule=record["rule"],
        hierarchy=record["hierarchy"],
        settings=record["settings"],
        format_version=record["format_version"],
    )


def assembled_layer(
    merged: MergedLayer,
    shares: Iterable[ShardShare],
    settings: ExtractSettings,
    class_names: Sequence[str],
    label_settings: LabelSettings | None = None,
) -> ReducedLayer:
    """One layer of ``activations.h5``: the merged layer with every shard's share put in
    place: histogram counts summed, thumbnails at their plan index, maps at their
    (channel, rank); and the channels' labels from the merged class attribution (the run's
    ``labels:`` settings)."""
    size = settings.thumbnail_size
    thumbnails = np.zeros((len(merged.crop_rows), size, size, 3), np.uint8)
    side = settings.map_size
    maps = {name: np.zeros((*t.row.shape, side, side), np.float16) for name, t in merged.tables.items()}
    counts = np.zeros_like(merged.stats.hist_counts)
    for share in shares:
        counts += share.hist_counts
        thumbnails[share.thumbnail_index] = share.thumbnails
        for name, found in share.maps.items():
            maps[name][found.channel, found.rank] = found.map
    return ReducedLayer(
        tables={
            name: dataclasses.replace(t, map=maps[name] if side else None)
            for name, t in merged.tables.items()
        },
        stats=dataclasses.replace(merged.stats, hist_counts=counts),
        correlation=merged.correlation,
        thumbnails=thumbnails,
        rf_rows=merged.rf_rows,
        rf_cols=merged.rf_cols,
        classes=merged.classes,
        labels=stored_labels(merged.classes, class_names, label_settings),
    )


def reduce_store(
    shards: ShardSet,
    writer,
    fields: Mapping,
    load_image: Callable[[int], object],
    settings: ExtractSettings | None = None,
    *,
    layer_maps: Callable[[object], Mapping[str, object]] | None = None,
    progress: bool = True,
    label_settings: LabelSettings | None = None,
) -> None:
    """Every step in this process: reduce ``shards`` into ``writer`` (a
    :class:`~pipeline.store.activations.ReducedWriter`). ``fields[layer]`` is a
    :class:`~pipeline.model.receptive_field.ReceptiveField`, ``load_image(row)`` returns
    image ``row`` as ``[3, S, S]`` in [0, 1], ``layer_maps`` as in :func:`examples_of_shard`."""
    import torch

    settings = settings or ExtractSettings()
    singles = [ShardSet([info["path"]]) for info in shards.shards]
    partials = [partial_of_shard(s, settings.top_k) for s in singles]
    offsets = [int(o) for o in shards.offsets[:-1]]
    merged = {
        layer["name"]: merge_layer(
            ((p[layer["name"]], o) for p, o in zip(partials, offsets)),
            fields[layer["name"]],
            settings.top_k,
            settings.histogram_bins,
        )
        for layer in shards.layers
    }

    def images(rows):
        for first in range(0, len(rows), MAP_BATCH):
            batch = list(rows[first : first + MAP_BATCH])
            yield batch, torch.stack([torch.as_tensor(load_image(row)) for row in batch])

    shares = [
        examples_of_shard(s, o, merged, images, settings, layer_maps, progress)
        for s, o in zip(singles, offsets)
    ]
    for layer in shards.layers:
        name = layer["name"]
        writer.write_layer(
            name,
            assembled_layer(
                merged[name], (s[name] for s in shares), settings, shards.class_names, label_settings
            ),
        )


# ---------------------------------------------------------------------------------
# The jobs, on files
# ---------------------------------------------------------------------------------


def run_reduce_partial(settings: ExtractSettings, shard: str | os.PathLike, output) -> dict:
    """Write the partial of the shard file ``shard`` to ``output``."""
    shards = ShardSet([shard])
    partials = partial_of_shard(shards, settings.top_k, progress=True)
    write_layers(
        output,
        PARTIAL,
        partials,
        source=_source(shards.shards[0]),
        settings=reduction_provenance(shards, settings, "extract.partial", ExtractSettings.PARTIAL_KEYS),
    )
    log.info("partial of shard %s: %d images, %d layers", shard, shards.rows, len(partials))
    return {"images": shards.rows}


def run_reduce_merge(settings: ExtractSettings, model, shards: Sequence, partials: Sequence, output) -> dict:
    """Merge the ``partials`` of the shard files ``shards`` into ``output``.

    ``model`` (a :class:`~pipeline.model.ModelSpec`) gives the receptive fields; shards
    made with other weights are refused. The shard files are opened for their headers
    only (rows, layers, provenance), never their per-image arrays.
    """
    from pipeline.model.receptive_field import receptive_fields

    shard_set = ShardSet(list(shards))
    loaded = _model_of(shard_set, model)
    names = [layer["name"] for layer in shard_set.layers]
    fields = receptive_fields(loaded, names, progress=True)
    offsets = [int(o) for o in shard_set.offsets[:-1]]
    merged = {}
    files = open_per_shard(partials, PARTIAL, shard_set.shards)
    try:
        for name in _progress(names, "merge", True):
            parts = ((f.layer(name), o) for f, o in zip(files, offsets))
            merged[name] = merge_layer(parts, fields[name], settings.top_k, settings.histogram_bins)
    finally:
        close_all(files)
    info = {
        "shards": [{**_source(s), "offset": o} for s, o in zip(shard_set.shards, offsets)],
        "model": {**loaded.describe(), "layers": names},
        "aliases": loaded.layer_aliases,
    }
    write_layers(
        output,
        MERGED,
        merged,
        source={"config_hash": shard_set.config_hash, "model_checksum": shard_set.model_checksum},
        settings=reduction_provenance(shard_set, settings, "extract.merge", ExtractSettings.REDUCE_KEYS),
        info=info,
    )
    log.info("merged %d partials: %d images, %d layers", len(partials), shard_set.rows, len(names))
    return {"images": shard_set.rows, "shards": len(partials)}


def _model_of(shard_set: ShardSet, model):
    """``model`` loaded, refused unless it has the weights the shards were extracted with."""
    from pipeline.model.registry import load_model_matching

    return load_model_matching(model, shard_set.model_checksum, shard_set.description)


def run_reduce(
    settings: ExtractSettings, model, shards: Sequence, output, label_settings: LabelSettings | None = None
) -> dict:
    """Every step of the reduction in this process, from the shard files to ``output``
    (what the workflow's jobs do one by one; for a single machine and the tests)."""
    from pipeline.images.dataset import ImageDataset
    from pipeline.model.receptive_field import receptive_fields

    shard_set = ShardSet(list(shards))
    loaded = _model_of(shard_set, model)
    names = [layer["name"] for layer in shard_set.layers]
    dataset = ImageDataset.from_table(shard_set.table("images"), loaded.input_size)
    with reduced_writer(
        output,
        shard_set,
        settings=reduction_provenance(shard_set, settings, "extract", ExtractSettings.REDUCE_KEYS),
        model={**loaded.describe(), "layers": names},
        aliases=loaded.layer_aliases,
    ) as writer:
        reduce_store(
            shard_set,
            writer,
            receptive_fields(loaded, names, progress=True),
            lambda row: dataset[row]["image"],
            settings,
            layer_maps=lambda images01: loaded.activations(images01, names),
            label_settings=label_settings,
        )
    return {"images": shard_set.rows, "shards": len(shard_set.shards)}


def reduction_provenance(shards: ShardSet, settings: ExtractSettings, stage: str, keys) -> ProvenanceRecord:
    """The provenance of a file the reduction writes: the shards' record with the
    reduction's ``keys`` (its rule's params) added to its settings, and the shards'
    ``config_hash`` as its input."""
    extracted = shards.provenance
    if not extracted:
        first = shards.shards[0]["path"]
        raise ValueError(f"{first}: written before provenance records; re-run the extraction")
    return provenance(
        stage=stage,
        model=extracted["model"],
        settings={**extracted["settings"], **settings.subset(keys)},
        derived=extracted["derived"],
        inputs={"shards": shards.config_hash},
    )


def _read_merged(path) -> tuple[dict, dict]:
    """``(merged {layer: MergedLayer}, info)`` of the merged file."""
    with LayersFile(path, MERGED) as f:
        return {name: f.layer(name) for name in f.layers}, f.info


def run_shard_examples(settings: ExtractSettings, model, merged_path, shard, output) -> dict:
    """Write the shard file ``shard``'s histogram counts and example crops to ``output``.

    Only the shard's images that are some channel's example are decoded, once each, by
    ``settings.num_workers`` DataLoader workers while the model computes the maps.
    """
    from pipeline.extract.extractor import make_loader
    from pipeline.images.dataset import ImageDataset, collate

    merged, info = _read_merged(merged_path)
    shard_set = ShardSet([shard])
    me = shard_set.shards[0]
    mine = [s for s in info["shards"] if (s["start"], s["stop"]) == (me["start"], me["stop"])]
    if not mine:
        raise ValueError(f"{merged_path} was merged without the shard {shard}; re-run the merge")
    offset = int(mine[0]["offset"])
    loaded = _model_of(shard_set, model)
    dataset = ImageDataset.from_table(shard_set.table("images"), loaded.input_size)
    names = [layer["name"] for layer in shard_set.layers]

    def images(rows):
        from torch.utils.data import Subset

        subset = Subset(dataset, [row - offset for row in rows])
        loader = make_loader(
            subset,
            batch_size=MAP_BATCH,
            num_workers=settings.num_workers,
            device=loaded.device,
            collate_fn=collate,
        )
        for first, batch in zip(range(0, len(rows), MAP_BATCH), loader):
            yield list(rows[first : first + MAP_BATCH]), batch["image"]

    shares = examples_of_shard(
        shard_set,
        offset,
        merged,
        images,
        settings,
        layer_maps=lambda images01: loaded.activations(images01, names),
        progress=True,
    )
    record = reduction_provenance(shard_set, settings, "extract.examples", ExtractSettings.REDUCE_KEYS)
    write_layers(output, EXAMPLES, shares, source=_source(me), settings=record)
    return {"images": shard_set.rows}


def run_reduce_assemble(
    settings: ExtractSettings,
    shards: Sequence,
    merged_path,
    examples: Sequence,
    output,
    label_settings: LabelSettings | None = None,
) -> dict:
    """Write ``activations.h5`` from the shards (stitched, not copied), the merged file and
    every shard's examples file, with the channels' labels made with ``label_settings``."""
    shard_set = ShardSet(list(shards))
    with LayersFile(merged_path, MERGED) as merged_file:
        info = merged_file.info
        refuse_other_shards(merged_path, merged_file.source, shard_set.config_hash, shard_set.model_checksum)
        files = open_per_shard(examples, EXAMPLES, shard_set.shards)
        try:
            with reduced_writer(
                output,
                shard_set,
                settings=reduction_provenance(shard_set, settings, "extract", ExtractSettings.REDUCE_KEYS),
                model=info["model"],
                aliases=info["aliases"],
            ) as writer:
                for name in _progress(merged_file.layers, "store", True):
                    shares = (f.layer(name) for f in files)
                    layer = assembled_layer(
                        merged_file.layer(name), shares, settings, shard_set.class_names, label_settings
                    )
                    writer.write_layer(name, layer)
        finally:
            close_all(files)
    log.info(
        "activations store: %d images in %d shards, %d skipped",
        shard_set.rows,
        len(shard_set.shards),
        len(shard_set.table("skipped").get("image_id", [])),
    )
    return {"images": shard_set.rows, "shards": len(shard_set.shards)}
