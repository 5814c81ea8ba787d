"""The workflow's atlas layout job: one layer's layout file from the extraction's samples.

The render jobs (icons of each cell's mean vector) and the merge into ``atlas.h5``
(:func:`pipeline.store.atlas.merge_atlas`) come after it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import numpy as np

from pipeline.atlas.settings import AtlasSettings
from pipeline.extract.settings import ExtractSettings
from pipeline.model.spec import ModelSpec
from pipeline.store import ProvenanceRecord, provenance
from pipeline.store.activations import ShardSet
from pipeline.store.activations_reader import ActivationsStore
from pipeline.store.atlas import AtlasLayer, AtlasSamples, write_layout

log = logging.getLogger(__name__)

ATTRIBUTION = "mean vector tiled over the layer; gradient x activation summed over the map (J.A)"


def open_samples(activations: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[ShardSet, int]:
    """The extraction shards, and the thumbnail size of the run: from the activations store
    ``activations`` (a path: its shards and its ``thumbnail_size``), or from the shard
    files themselves (a sequence of paths; the extraction's default thumbnail size)."""
    if isinstance(activations, (str, os.PathLike)):
        with ActivationsStore(activations) as store:
            files = store.shard_files()
            size = int(store.settings.get("thumbnail_size", ExtractSettings().thumbnail_size))
        return ShardSet(files), size
    return ShardSet(list(activations)), ExtractSettings().thumbnail_size


def recorded_settings(
    settings: AtlasSettings, model, layer: str, shards: ShardSet, thumbnail_size: int
) -> ProvenanceRecord:
    """What determines a layout file (its provenance record, hashed into ``config_hash``);
    all but the derived ``layer`` is alike for every layer of a run, as the merge requires."""
    return provenance(
        stage="atlas.layout",
        settings=settings.subset(AtlasSettings.LAYOUT_KEYS),
        model=model.describe(),
        derived={
            "layer": layer,
            "sampling": shards.settings.get("atlas"),
            "thumbnail_size": int(thumbnail_size),
            "attribution": ATTRIBUTION,
        },
        inputs={"extraction": shards.config_hash},
    )


def run_atlas_layout(
    settings: AtlasSettings,
    model: ModelSpec,
    activations: str | os.PathLike | Sequence[str | os.PathLike],
    layer: str,
    output: str | os.PathLike,
) -> dict:
    """Lay out the atlas of ``layer`` (a name or alias) into the layout file ``output``
    (:func:`pipeline.store.atlas.write_layout`; kind ``atlas-layer``).

    ``activations``: the run's activations store (``results/<run>/activations.h5``: its
    shards hold the samples, its settings the thumbnail size), or the list of extraction
    shard files. The extraction must have sampled ``layer`` (``atlas.layers``). Runs
    UMAP on the samples, bins them at every level of ``settings.levels``, attributes each
    cell's mean vector to every class through the model, and cuts each example's
    thumbnail from its image (the dataset must still be readable). Returns counts for
    the log.
    """
    from pipeline.model.registry import load_model_matching

    shards, thumbnail_size = open_samples(activations)
    loaded = load_model_matching(model, shards.model_checksum, shards.description)
    name = loaded.layer(layer).name
    samples = _layer_samples(shards, name)
    embedding = _embed(settings, name, samples["vectors"])
    levels = _lay_out_levels(settings, loaded, name, embedding[0], samples["vectors"])
    atlas_layer = _atlas_layer(loaded, name, shards, samples, embedding, levels, thumbnail_size)
    recorded = recorded_settings(settings, loaded, name, shards, thumbnail_size)
    write_layout(output, atlas_layer, loaded.class_names, recorded, loaded.checksum)
    return {
        "samples": len(samples["vectors"]),
        "cells": {cells.side: len(cells) for cells in levels},
        "thumbnails": len(atlas_layer.thumbnails),
    }


def _layer_samples(shards: ShardSet, name: str) -> dict[str, np.ndarray]:
    """The atlas samples the extraction kept of layer ``name`` (``vectors``, ``row``, ``y``,
    ``x``, ``attribution``); a ValueError when it sampled none of that layer."""
    if name not in shards.atlas_layers:
        sampled = ", ".join(shards.atlas_layers) or "none"
        raise ValueError(
            f"the extraction sampled no atlas vectors of {name} (layers sampled: {sampled}); "
            "add it to atlas.layers and re-run the extraction"
        )
    return shards.atlas_samples(name)


def _embed(settings: AtlasSettings, name: str, vectors: np.ndarray) -> tuple[np.ndarray, dict]:
    """``(xy, umap)``: the samples' 2-D layout by UMAP, and the UMAP parameters used."""
    from pipeline.atlas.layout import embed, umap_parameters

    umap = umap_parameters(
        len(vectors), settings.n_neighbors, settings.min_dist, settings.seed, settings.init
    )
    log.info("atlas %s: UMAP of %d vectors of %d channels (%s)", name, len(vectors), vectors.shape[1], umap)
    began = time.perf_counter()
    xy = embed(
        vectors,
        n_neighbors=settings.n_neighbors,
        min_dist=settings.min_dist,
        seed=settings.seed,
        init=settings.init,
    )
    log.info("atlas %s: layout in %.1f s", name, time.perf_counter() - began)
    return xy, umap


def _lay_out_levels(settings: AtlasSettings, loaded, name: str, xy: np.ndarray, vectors: np.ndarray) -> list:
    """The cells of every level of ``settings.levels``, each cell's mean vector attributed
    to the classes through ``loaded`` (:func:`pipeline.atlas.layout.layout_levels`)."""
    from pipeline.atlas.attribution import mean_vector_attribution
    from pipeline.atlas.layout import layout_levels

    def class_scores(means: np.ndarray) -> np.ndarray:
        return mean_vector_attribution(loaded, name, means)

    levels = layout_levels(
        xy,
        vectors,
        settings.levels,
        class_scores,
        min_count=settings.min_count,
        top_k=settings.top_classes,
        examples=settings.examples,
    )
    for cells in levels:
        log.info(
            "atlas %s: level %d: %d cells of >= %d vectors", name, cells.side, len(cells), cells.min_count
        )
    return levels


def _atlas_layer(
    loaded, name: str, shards: ShardSet, samples: dict, embedding: tuple, levels: list, thumbnail_size: int
) -> AtlasLayer:
    """What the layout file holds of layer ``name``: its samples and their layout
    ``embedding`` (``xy``, UMAP parameters), the ``levels``, and each example's thumbnail,
    cut from its image (the dataset must still be readable)."""
    from pipeline.atlas.layout import example_thumbnails
    from pipeline.model.receptive_field import receptive_fields

    xy, umap = embedding
    rows, shape = samples["row"], shards.atlas_layers[name]
    predicted = np.asarray(shards.predicted_classes().compute())[rows] if len(rows) else np.zeros(0, np.int32)
    images = shards.table("images")
    boxes = receptive_fields(loaded, [name])[name].boxes().numpy()
    thumbnail, crops = example_thumbnails(rows, samples["y"], samples["x"], boxes, levels)
    return AtlasLayer(
        name=name,
        channels=int(shape["channels"]),
        height=int(shape["height"]),
        width=int(shape["width"]),
        input_size=int(loaded.input_size),
        positions_per_image=int((shards.settings.get("atlas") or {}).get("per_image", 0)),
        umap=umap,
        samples=AtlasSamples(
            row=rows,
            y=samples["y"],
            x=samples["x"],
            attribution=samples["attribution"],
            predicted=predicted.astype(np.int32),
            xy=xy,
            thumbnail=thumbnail,
        ),
        thumbnails=cut_thumbnails(images, loaded.input_size, crops, thumbnail_size),
        levels=levels,
        image_ids={int(r): images["image_id"][int(r)] for r in np.unique(rows)},
    )


def cut_thumbnails(
    images: dict, input_size: int, crops: Sequence[tuple[int, tuple]], size: int
) -> np.ndarray:
    """uint8 ``[Q, size, size, 3]``: each crop ``(row, box)`` of the image of that row of the
    run's images table ``images``, as the activations store's thumbnails are cut (each image
    decoded once)."""
    from pipeline.extract.crops import crop_thumbnail
    from pipeline.images.dataset import ImageDataset

    dataset = ImageDataset.from_table(images, input_size)
    out = np.zeros((len(crops), size, size, 3), np.uint8)
    by_row: dict[int, list[int]] = {}
    for q, (row, _) in enumerate(crops):
        by_row.setdefault(int(row), []).append(q)
    for row, indices in sorted(by_row.items()):
        image = dataset.decoded(row)
        for q in indices:
            out[q] = crop_thumbnail(image, crops[q][1], size)
    return out
