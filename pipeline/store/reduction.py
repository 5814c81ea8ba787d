"""The reduction's intermediate files: per-shard partials, the merge, per-shard examples.

Layouts: docs/STORE.md, "Reduction files". Each kind holds one record per layer
(:data:`RECORDS`; its fields are the datasets of ``layers/<layer>/``, nested records and
dicts of them subgroups), and in root attributes the shard range it belongs to::

    extract/partials/<start>-<stop>.h5  model-atlas.activations-partial   one shard's partial
    extract/merged.h5                   model-atlas.activations-merged    every shard merged
    extract/examples/<start>-<stop>.h5  model-atlas.activations-examples  one shard's histogram
                                                                          counts and crops

Each records the ``config_hash`` and ``model_checksum`` of the shards it came from
(``shards_config_hash``), and the next step refuses files of other shards. No torch here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from pipeline.store._format import (
    StoreError,
    atomic_h5,
    open_h5,
    read_json_attr,
    read_record,
    refuse_other_provenance,
    settings_of,
    write_json_attr,
    write_record,
)
from pipeline.store._provenance import ProvenanceRecord
from pipeline.store.activations_reader import ChannelStats, ClassAttribution, TopExamples, UnitLabels

PARTIAL, MERGED, EXAMPLES = "activations-partial", "activations-merged", "activations-examples"
VERSIONS, VERSION = (1,), 1


# ---------------------------------------------------------------------------------
# Records: what the files hold (the computations: pipeline/extract/reduce.py)
# ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Candidates:
    """One shard's top-k of one example table (``[C, k']``, rows local to the shard)."""

    row: np.ndarray
    value: np.ndarray
    y: np.ndarray
    x: np.ndarray


@dataclasses.dataclass
class Moments:
    """Of the spatial maxima: ``rows`` (images), per channel the ``count`` of non-NaN values,
    their ``mean`` and ``m2`` (sum of squared deviations), the ``active`` count (> 0),
    ``min`` and ``max`` (+inf / -inf when none), and ``mean_sum`` (sum of the spatial means)."""

    rows: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    active: np.ndarray
    min: np.ndarray
    max: np.ndarray
    mean_sum: np.ndarray


@dataclasses.dataclass
class Comoments:
    """Of the maxima over the images with no NaN: count ``n``, ``mean [C]``, the co-moment
    ``[C, C]`` (sum of products of deviations) and the largest magnitude ``abs_max``."""

    n: np.ndarray
    mean: np.ndarray
    comoment: np.ndarray
    abs_max: np.ndarray


@dataclasses.dataclass
class ClassSums:
    """``sums [K, C]`` of the attribution to the predicted class, per predicted class, and
    ``count [K]`` images."""

    sums: np.ndarray
    count: np.ndarray


@dataclasses.dataclass
class ShardPartial:
    """One layer of one shard, reduced: the file ``extract/partials/<start>-<stop>.h5``."""

    tables: dict[str, Candidates]  # "top", "bottom"
    moments: Moments
    comoments: Comoments
    classes: ClassSums | None = None


@dataclasses.dataclass
class MergedLayer:
    """One layer of every shard merged (``extract/merged.h5``): the store's tables (no maps),
    statistics (histogram counts zero until the shards count them), class attribution and
    correlation; the plan of the thumbnails (thumbnail ``i`` is box ``crop_boxes[i]`` of
    image ``crop_rows[i]``); the receptive fields."""

    tables: dict[str, TopExamples]
    stats: ChannelStats
    correlation: np.ndarray
    crop_rows: np.ndarray
    crop_boxes: np.ndarray
    rf_rows: np.ndarray
    rf_cols: np.ndarray
    classes: ClassAttribution | None = None
    labels: UnitLabels | None = None  # the channels' labels, with attribution only


@dataclasses.dataclass
class ExampleMaps:
    """Activation maps ``map [n, m, m]`` of the examples at ``(channel, rank)``."""

    channel: np.ndarray
    rank: np.ndarray
    map: np.ndarray


@dataclasses.dataclass
class ShardShare:
    """One layer's share of one shard (``extract/examples/<start>-<stop>.h5``): its
    histogram counts, and the thumbnails (``thumbnail_index`` into the plan) and maps of
    the examples whose image is one of its rows."""

    hist_counts: np.ndarray
    thumbnail_index: np.ndarray
    thumbnails: np.ndarray
    maps: dict[str, ExampleMaps]


@dataclasses.dataclass
class ReducedLayer:
    """Everything ``activations.h5`` holds of one layer besides the per-image arrays."""

    tables: dict[str, TopExamples]
    stats: ChannelStats
    correlation: np.ndarray
    thumbnails: np.ndarray
    rf_rows: np.ndarray
    rf_cols: np.ndarray
    classes: ClassAttribution | None = None
    labels: UnitLabels | None = None  # the channels' labels, with attribution only


# The record each kind holds per layer.
RECORDS = {PARTIAL: ShardPartial, MERGED: MergedLayer, EXAMPLES: ShardShare}


def write_layers(
    path,
    kind: str,
    layers: Mapping[str, object],
    *,
    source: Mapping,
    settings: ProvenanceRecord,
    info: Mapping | None = None,
) -> Path:
    """Write ``layers`` (``{layer: record}``, the kind's record from :data:`RECORDS`) to
    ``path`` (atomic).

    ``source`` is the provenance of the shards (``config_hash``, ``model_checksum``, and
    for one shard ``start``, ``stop``, ``rows``); ``settings`` the provenance record
    (:func:`pipeline.store.provenance`: the reduction settings that shaped the file);
    ``info`` any other JSON the next step needs (the merge's shard list).
    """
    with atomic_h5(
        path, kind, VERSION, settings=settings, model_checksum=str(source["model_checksum"])
    ) as fh:
        fh.attrs["shards_config_hash"] = str(source["config_hash"])
        for key in ("start", "stop", "rows"):
            if key in source:
                fh.attrs[key] = int(source[key])
        write_json_attr(fh, "info", dict(info or {}))
        group = fh.create_group("layers", track_order=True)
        for name, record in layers.items():
            if not isinstance(record, RECORDS[kind]):
                raise TypeError(f"a {kind} file holds {RECORDS[kind].__name__} records, not {type(record)}")
            write_record(group.create_group(name, track_order=True), record)
    return Path(path)


class LayersFile:
    """One intermediate file, read a layer at a time (``with LayersFile(path, kind) as f``)."""

    def __init__(self, path, kind: str):
        self.path, self.kind = Path(path), kind
        self._open = open_h5(path, kind, VERSIONS)
        self.fh: h5py.File = self._open.__enter__()
        attrs = self.fh.attrs
        self.source = {
            "config_hash": str(attrs["shards_config_hash"]),
            "model_checksum": str(attrs["model_checksum"]),
            **{key: int(attrs[key]) for key in ("start", "stop", "rows") if key in attrs},
        }
        self.settings = settings_of(self.fh)
        self.info = read_json_attr(self.fh, "info", {})

    @property
    def layers(self) -> list[str]:
        return list(self.fh["layers"])

    def layer(self, name: str):
        """The record of layer ``name`` (:data:`RECORDS`), read whole."""
        if name not in self.fh["layers"]:
            raise StoreError(f"{self.path}: holds no layer {name!r}; it holds {', '.join(self.layers)}")
        return read_record(self.fh["layers"][name], RECORDS[self.kind])

    def close(self) -> None:
        self._open.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_per_shard(
    paths: Sequence[str | os.PathLike], kind: str, shards: Sequence[Mapping]
) -> list[LayersFile]:
    """The per-shard files ``paths`` opened in the order of ``shards`` (dicts with
    ``start``, ``stop``, ``config_hash``, ``model_checksum``), one for each shard, checked
    to come from it. The caller closes them (:func:`close_all`)."""
    opened: dict[tuple[int, int], LayersFile] = {}
    try:
        for path in paths:
            f = LayersFile(path, kind)
            opened[f.source["start"], f.source["stop"]] = f
        files = []
        for shard in shards:
            key = (int(shard["start"]), int(shard["stop"]))
            if key not in opened:
                raise StoreError(f"no {kind} file for the shard of images {key[0]}-{key[1]}")
            f = opened[key]
            refuse_other_provenance(f.path, f.source, f"the shard of images {key[0]}-{key[1]}", shard)
            files.append(f)
    except BaseException:
        close_all(opened.values())
        raise
    return files


def close_all(files) -> None:
    for f in files:
        f.close()


def refuse_other_shards(path, source: Mapping, config_hash: str, model_checksum: str) -> None:
    """A file made from other shards (settings or weights) than the ones at hand is refused."""
    expected = {"config_hash": config_hash, "model_checksum": model_checksum}
    refuse_other_provenance(path, source, "the shards given", expected)
