"""Reading the reduced activations store (``results/<run>/activations.h5``).

:class:`ActivationsStore` opens the store written by
:func:`pipeline.store.activations.reduced_writer` (layout: docs/STORE.md, "Reduced
store") and answers in typed records, so that no caller names an HDF5 path:

>>> with ActivationsStore("results/demo/activations.h5") as store:
...     store.top("stem").row                   # int64 [C, k] image rows, strongest first
...     store.top_examples("stem", 3, k=5)      # [TopExample, ...] with image ids and boxes
...     store.stats("stem").hist_counts         # int64 [C, B]
...     store.classes("stem")                   # ClassAttribution, or None without attribution
...     store.per_image("stem", "max")          # lazy dask [N, C]

Per-image arrays stay lazy (dask, or one row at a time); the per-layer reductions are
small (``[C, k]``, ``[C, B]``, ``[C, K]``) and read whole. No torch here.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from pipeline.store._format import (
    StoreError,
    StoreReader,
    _attr_str,
    open_h5_handle,
    read_json_attr,
    read_strings,
    read_table,
    settings_of,
)
from pipeline.store.activations import LABEL_VERSIONS, STORE_KIND, STORE_VERSIONS, lazy_array


@dataclasses.dataclass(frozen=True)
class TopExamples:
    """One layer's example images per channel (``C`` channels, ``k`` ranks, strongest first):
    its top examples (by spatial maximum) or its bottom ones (by spatial minimum).

    ``row`` int64 ``[C, k]`` image rows (index into ``ActivationsStore.images``);
    ``value`` float32 ``[C, k]`` the channel's spatial maximum (bottom: minimum) on that image;
    ``y``, ``x`` int16 ``[C, k]`` where that extremum is in the feature map;
    ``box`` int16 ``[C, k, 4]`` its receptive field ``(y0, x0, y1, x1)`` in the input crop;
    ``thumbnail`` int32 ``[C, k]`` index for :meth:`ActivationsStore.thumbnail`;
    ``map`` float16 ``[C, k, m, m]`` the channel's activation over the thumbnail, or None
    (stores written before maps existed).
    """

    row: np.ndarray
    value: np.ndarray
    y: np.ndarray
    x: np.ndarray
    box: np.ndarray
    thumbnail: np.ndarray
    map: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class TopExample:
    """One top (or bottom) example of one channel, joined with its image's row of the images table."""

    rank: int  # 0 = strongest
    row: int
    image_id: str
    path: str  # as stored: absolute, on the machine that extracted
    label: str | None
    value: float  # the channel's spatial maximum (bottom examples: minimum) on the image
    y: int
    x: int
    box: tuple[int, int, int, int]  # (y0, x0, y1, x1), half-open, in the input crop
    thumbnail: int  # index for ActivationsStore.thumbnail(layer, index)
    map: np.ndarray | None = None  # float16 [m, m]: the activation over the thumbnail


@dataclasses.dataclass(frozen=True)
class ChannelStats:
    """Statistics over images of each channel's spatial maximum (``C`` channels, ``B`` bins).

    ``mean``, ``std``, ``active_fraction`` (images with max > 0) and ``mean_of_mean``
    (mean over images of the spatial mean): float32 ``[C]``; ``hist_counts`` int64
    ``[C, B]``; ``hist_edges`` float64 ``[C, B + 1]``.
    """

    mean: np.ndarray
    std: np.ndarray
    active_fraction: np.ndarray
    mean_of_mean: np.ndarray
    hist_counts: np.ndarray
    hist_edges: np.ndarray


@dataclasses.dataclass(frozen=True)
class ClassSupport:
    """A class a channel supports: its mean attribution over the images predicted as it."""

    class_id: int
    score: float
    images: int  # images predicted as the class


@dataclasses.dataclass(frozen=True)
class ClassAttribution:
    """One layer's attribution by predicted class (``C`` channels, ``K`` classes, ``k`` ranks).

    ``attribution`` float32 ``[C, K]``: mean attribution to the predicted class over the
    images predicted as each class (NaN where none was); ``count`` int64 ``[K]`` those
    images; ``top_ids`` int32 / ``top_scores`` float32 ``[C, k]``: each channel's classes by
    that mean, highest first (class id ascending on ties), -1 / NaN past the predicted ones.
    """

    attribution: np.ndarray
    count: np.ndarray
    top_ids: np.ndarray
    top_scores: np.ndarray

    def top_classes(self, channel: int, k: int | None = None) -> list[ClassSupport]:
        """The (at most ``k``, default all stored) classes ``channel`` supports most."""
        ids, scores = self.top_ids[channel], self.top_scores[channel]
        k = len(ids) if k is None else max(0, int(k))
        return [
            ClassSupport(int(c), float(s), int(self.count[c])) for c, s in zip(ids[:k], scores[:k]) if c >= 0
        ]


@dataclasses.dataclass(frozen=True)
class UnitLabels:
    """One layer's channel labels as the reduction stored them (``layers/<layer>/labels/``,
    docs/STORE.md), one row per channel: ``synset`` ("" for no clear label), ``name``,
    ``classes`` int32 ``[C, m]`` (the named member classes' ids, strongest first, -1 past
    them), ``confidence`` float64, ``images`` and ``n_classes`` int32, ``tentative`` bool;
    and the group's attributes: the ``rule``, the ``hierarchy`` the synsets come from, the
    rule's whole ``settings`` and the group's ``format_version``. Made into
    :class:`~pipeline.labels.rule.Label` objects by :mod:`pipeline.labels.layers`."""

    synset: list[str]
    name: list[str]
    classes: np.ndarray
    confidence: np.ndarray
    images: np.ndarray
    n_classes: np.ndarray
    tentative: np.ndarray
    rule: str
    hierarchy: str
    settings: dict
    format_version: int = 1

    COLUMNS = ("synset", "name", "classes", "confidence", "images", "n_classes", "tentative")


@dataclasses.dataclass(frozen=True)
class Predictions:
    """One image's top predictions, best first: ``ids`` int32 ``[P]``, ``logits`` float32 ``[P]``."""

    ids: np.ndarray
    logits: np.ndarray


@dataclasses.dataclass(frozen=True)
class ImageActivations:
    """One image's per-channel values at one layer, each ``[C]``: spatial ``max`` and
    ``mean`` (float32), where the maximum is (``argmax_y``, ``argmax_x``, int16), the
    spatial ``min`` and where it is (None in stores extracted before minima were), and the
    channel attributions (float32; None when the run extracted none)."""

    max: np.ndarray
    mean: np.ndarray
    argmax_y: np.ndarray
    argmax_x: np.ndarray
    min: np.ndarray | None = None
    argmin_y: np.ndarray | None = None
    argmin_x: np.ndarray | None = None
    attr_predicted: np.ndarray | None = None
    attr_label: np.ndarray | None = None


class ActivationsStore(StoreReader):
    """Read-only, lazy access to a reduced store; checks that every shard it stitches exists.

    Attributes read on opening: ``settings``, ``model``, ``aliases``, ``quantities`` (the
    per-image arrays present), ``class_names`` and ``layers`` (name -> ``channels``,
    ``height``, ``width``). The tables ``images`` and ``skipped`` (dicts of lists) are read
    on first use: a query about one channel or one image of a 1.28M-image run should not
    read every image's path (:meth:`image_row`, :meth:`row_of` read one row, one column).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.fh = open_h5_handle(self.path, STORE_KIND, STORE_VERSIONS)
        try:
            shards = read_table(self.fh["shards"])
            missing = [
                f
                for f, rows in zip(shards["file"], shards["rows"])
                if rows and not (self.path.parent / f).is_file()
            ]
            self._shard_files = [self.path.parent / f for f in shards["file"]]
            if missing:
                raise StoreError(
                    f"{self.path}: its per-image arrays live in shard files that are "
                    f"missing: {', '.join(missing)} (expected next to the store; move the "
                    "whole run folder, or re-run extraction)"
                )
            self.settings = settings_of(self.fh)
            self.model = read_json_attr(self.fh, "model", {})
            self.aliases = read_json_attr(self.fh, "aliases", {})
            self.quantities = read_json_attr(self.fh, "quantities", [])
            self.class_names = read_strings(self.fh["class_names"])
            self.layers = {
                name: {k: int(v) for k, v in g.attrs.items()} for name, g in self.fh["layers"].items()
            }
        except BaseException:
            self.fh.close()
            raise
        self._tables: dict[tuple[str, str], TopExamples] = {}

    @property
    def config_hash(self) -> str:
        """The store's ``config_hash`` (what later stages record as their input)."""
        return str(self.fh.attrs["config_hash"])

    def shard_files(self) -> list[Path]:
        """The extraction shards the store stitches, in row order (they hold, besides the
        per-image arrays, the activation-atlas samples: :class:`~pipeline.store.activations.ShardSet`)."""
        return list(self._shard_files)

    @functools.cached_property
    def images(self) -> dict[str, list]:
        """The images table (``image_id``, ``path``, ``label``, ``label_class``), one entry per row."""
        return read_table(self.fh["images"])

    @functools.cached_property
    def skipped(self) -> dict[str, list]:
        """The images extraction skipped (``image_id``, ``path``, ``reason``)."""
        return read_table(self.fh["skipped"])

    @property
    def num_images(self) -> int:
        return len(self.fh["images"]["image_id"])

    def image_row(self, row: int) -> dict:
        """Row ``row`` of the images table (``image_id``, ``path``, ``label``, ``label_class``)."""
        return self.image_rows([row])[int(row)]

    def image_rows(self, rows) -> dict[int, dict]:
        """``{row: image_row(row)}`` for each of ``rows``: from the whole table if something
        read it already (the site does), else reading just those rows."""
        wanted = sorted({int(r) for r in rows})
        if "images" in self.__dict__ or not wanted:
            table = self.images
            return {r: {col: values[r] for col, values in table.items()} for r in wanted}
        group = self.fh["images"]
        columns = {}
        for col in map(_attr_str, group.attrs.get("column_order", list(group))):
            values = group[col][wanted]  # h5py reads a sorted list of rows in one call
            columns[col] = [v.item() if isinstance(v, np.generic) else _attr_str(v) for v in values]
        return {r: {col: values[i] for col, values in columns.items()} for i, r in enumerate(wanted)}

    @functools.cached_property
    def _row_of_id(self) -> dict[str, int]:
        return {image_id: i for i, image_id in enumerate(read_strings(self.fh["images"]["image_id"]))}

    def row_of(self, image_id: str) -> int | None:
        """The row of ``image_id`` (None if the store has no such image); the first call
        reads the id column only."""
        return self._row_of_id.get(str(image_id))

    def _layer(self, layer: str):
        if layer not in self.layers:
            raise KeyError(f"{self.path}: no layer {layer!r}; layers: {', '.join(self.layers)}")
        return self.fh["layers"][layer]

    # -- per image ------------------------------------------------------------------------
    def per_image(self, layer: str, quantity: str):
        """Lazy dask ``[N, C]`` array of a per-image quantity of ``layer`` (``max``, ``mean``,
        ``argmax_y``, ``argmax_x``, ``attr_predicted``, ``attr_label``: see ``quantities``)."""
        group = self._layer(layer)
        if quantity not in self.quantities:
            raise KeyError(
                f"{self.path}: no per-image {quantity!r}; this run has {', '.join(self.quantities)}"
            )
        ds = group[quantity]
        return lazy_array(self.path, ds.name, ds.shape, ds.dtype)

    def per_image_rows(self, layer: str, quantity: str, rows) -> np.ndarray:
        """``[len(rows), C]``: the per-image ``quantity`` of ``layer`` at ``rows`` only (an
        array of row indices, in any order), read in one call: what a minibatch of randomly
        drawn images needs, without reading the layer's whole array."""
        self.per_image(layer, quantity)  # the clear errors for an unknown layer or quantity
        rows = np.asarray(rows, np.int64)
        wanted, back = np.unique(rows, return_inverse=True)
        return self._layer(layer)[quantity][wanted][back]

    def image_activations(self, layer: str, row: int) -> ImageActivations:
        """Image ``row``'s values at ``layer`` (one row of each per-image array)."""
        group = self._layer(layer)
        found = {q: group[q][row] for q in self.quantities}
        return ImageActivations(**found)

    def predictions(self, row: int) -> Predictions:
        """Image ``row``'s top predictions."""
        return Predictions(self.fh["predictions"]["top_ids"][row], self.fh["predictions"]["top_logits"][row])

    def predicted_classes(self) -> np.ndarray:
        """int32 ``[N]``: each image's top-1 predicted class."""
        ids = self.fh["predictions"]["top_ids"]
        return ids[:, 0] if ids.shape[0] else np.zeros(0, np.int32)

    # -- per layer: the reductions --------------------------------------------------------
    def top(self, layer: str) -> TopExamples:
        """``layer``'s top-k examples of every channel, read whole once and kept."""
        return self._table(layer, "top")

    def bottom(self, layer: str) -> TopExamples | None:
        """``layer``'s bottom-k examples (most negative responses first); None in stores
        extracted without the spatial minimum."""
        return self._table(layer, "bottom") if "bottom" in self._layer(layer) else None

    def _table(self, layer: str, table: str) -> TopExamples:
        if (layer, table) not in self._tables:
            group = self._layer(layer)[table]
            self._tables[layer, table] = TopExamples(
                **{f.name: group[f.name][()] for f in dataclasses.fields(TopExamples) if f.name in group}
            )
        return self._tables[layer, table]

    def top_examples(self, layer: str, channel: int, k: int | None = None) -> list[TopExample]:
        """The (at most ``k``, default all stored) images that drive ``channel`` most,
        strongest first (value descending, then row ascending)."""
        return self._examples(*self._examples_table(layer, "top", channel), k)

    def bottom_examples(self, layer: str, channel: int, k: int | None = None) -> list[TopExample]:
        """The (at most ``k``) images of ``channel``'s lowest responses, lowest first (value
        ascending, then row ascending); every stored one, negative or not: callers that
        want "most negative" keep ``value < 0``. Empty for stores without bottom examples."""
        if "bottom" not in self._layer(layer):
            return []
        return self._examples(*self._examples_table(layer, "bottom", channel), k)

    def _examples_table(self, layer: str, table: str, channel: int) -> tuple[TopExamples, int]:
        """The table to read ``channel``'s examples from, and the channel's index in it: the
        whole layer's if something read it (the site reads every channel), else only the
        channel's row (a query about one channel of a 1,280-channel layer need not read
        all of its maps)."""
        if (layer, table) in self._tables:
            return self._tables[layer, table], channel
        channels = self.layers[layer]["channels"]
        if not 0 <= int(channel) < channels:
            raise IndexError(f"{self.path}: layer {layer!r} has channels 0-{channels - 1}; got {channel}")
        group, row = self._layer(layer)[table], slice(int(channel), int(channel) + 1)
        fields = [f.name for f in dataclasses.fields(TopExamples) if f.name in group]
        return TopExamples(**{name: group[name][row] for name in fields}), 0

    def _examples(self, table: TopExamples, channel: int, k: int | None) -> list[TopExample]:
        ranks = table.row.shape[1] if k is None else min(max(0, int(k)), table.row.shape[1])
        rows = table.row[channel, :ranks].tolist()
        rows = rows[: rows.index(-1)] if -1 in rows else rows  # -1: fewer images than ranks
        images = self.image_rows(rows)
        out = []
        for rank, row in enumerate(rows):
            image = images[row]
            out.append(
                TopExample(
                    rank=rank,
                    row=row,
                    image_id=image["image_id"],
                    path=image["path"],
                    label=image["label"] or None,
                    value=float(table.value[channel, rank]),
                    y=int(table.y[channel, rank]),
                    x=int(table.x[channel, rank]),
                    box=tuple(int(v) for v in table.box[channel, rank]),
                    thumbnail=int(table.thumbnail[channel, rank]),
                    map=None if table.map is None else table.map[channel, rank],
                )
            )
        return out

    def thumbnail(self, layer: str, index: int) -> np.ndarray:
        """uint8 ``[T, T, 3]``: thumbnail ``index`` of ``layer`` (see ``TopExample.thumbnail``)."""
        return self._layer(layer)["thumbnails"][int(index)]

    def thumbnails(self, layer: str):
        """Every thumbnail of ``layer``, lazily: h5py dataset uint8 ``[M, T, T, 3]`` (index
        it with increasing indices to read several at once)."""
        return self._layer(layer)["thumbnails"]

    def stats(self, layer: str) -> ChannelStats:
        group = self._layer(layer)["stats"]
        return ChannelStats(**{f.name: group[f.name][()] for f in dataclasses.fields(ChannelStats)})

    def correlation(self, layer: str) -> np.ndarray | None:
        """float32 ``[C, C]``: Pearson correlation of ``layer``'s channels' per-image maxima
        over the images (NaN on the diagonal and for constant channels); None in stores
        written before it was stored."""
        group = self._layer(layer)
        return group["correlation"][()] if "correlation" in group else None

    def classes(self, layer: str) -> ClassAttribution | None:
        """``layer``'s attribution by predicted class; None when the run extracted no attribution."""
        group = self._layer(layer).get("classes")
        if group is None or "attribution" not in group:
            return None
        return ClassAttribution(**{f.name: group[f.name][()] for f in dataclasses.fields(ClassAttribution)})

    def labels(self, layer: str) -> UnitLabels | None:
        """``layer``'s channel labels as the reduction stored them; None when it stored none
        (no attribution, or a store written before labels were stored)."""
        group = self._layer(layer).get("labels")
        if group is None:
            return None
        version = int(group.attrs.get("format_version", 0))
        if version not in LABEL_VERSIONS:
            raise StoreError(
                f"{self.path}: layers/{layer}/labels has format_version {version}; "
                f"this version of model-atlas reads {list(LABEL_VERSIONS)}"
            )
        columns = {
            name: read_strings(group[name]) if group[name].dtype.kind == "O" else group[name][()]
            for name in UnitLabels.COLUMNS
        }
        return UnitLabels(
            **columns,
            rule=_attr_str(group.attrs["rule"]),
            hierarchy=_attr_str(group.attrs["hierarchy"]),
            settings=read_json_attr(group, "settings", {}),
            format_version=version,
        )
