"""The activation-atlas stores: a layer's layout file, render jobs' icon files, and the
merged ``results/<run>/atlas.h5``; their writers, the merge and the reader.

Layout: docs/STORE.md, "Atlas store". Three kinds of file:

* ``model-atlas.atlas-layer`` (``results/<run>/atlas/<layer>/layout.h5``): one layer's
  samples, thumbnails and cells at every level (:func:`write_layout`);
* ``model-atlas.atlas-icons``: the icons of a range of cells of one level of one layer,
  as a render job makes them (:func:`write_icons`);
* ``model-atlas.atlas`` (``results/<run>/atlas.h5``): every layer's layout, each level
  with an icon for every cell (:func:`merge_atlas`).

In short::

    /class_names                         str [K]
    /layers/<layer>/                     attrs channels, height, width, input_size,
                                               positions_per_image, umap_json
        samples/row, y, x, attribution, predicted, xy, thumbnail        [S], xy [S, 2]
        thumbnails                       uint8 [Q, T, T, 3]
        images/row, image_id             the image id of every row the samples name
        levels/<g>/                      attrs side, min_count
            cell int16 [M, 2], count int32 [M], mean float32 [M, C],
            class_attribution float16 [M, K], top_classes int32 [M, k],
            top_scores float32 [M, k], examples int64 [M, e]
            icons uint8 [M, S, S, 3]     (atlas.h5 only)

:class:`AtlasStore` reads a layout file or the merged store. The definitions are in
:mod:`pipeline.atlas.layout`. No torch here.
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
    StoreReader,
    atomic_h5,
    config_hash,
    json_number,
    open_h5,
    open_h5_handle,
    provenance_of,
    read_json_attr,
    read_strings,
    read_table,
    settings_of,
    write_json_attr,
    write_strings,
    write_table,
)
from pipeline.store._provenance import ProvenanceRecord, provenance

KIND, LAYER_KIND, ICONS_KIND = "atlas", "atlas-layer", "atlas-icons"
VERSIONS, VERSION = (1,), 1
LAYER_ATTRS = ("channels", "height", "width", "input_size", "positions_per_image")


# ---------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AtlasSamples:
    """One layer's sampled activation vectors (``S`` of them; the vectors themselves stay
    in the extraction shards).

    ``row`` int64: the image's row in the run's activations store; ``y``, ``x`` int16: the
    position in the layer's map; ``attribution`` float32: gradient x activation at that
    position summed over channels, towards the image's predicted class (NaN without
    attribution); ``predicted`` int32: the image's top-1 class; ``xy`` float32 ``[S, 2]``:
    the layout position in ``[0, 1]^2`` (x = column, y = row); ``thumbnail`` int32: index
    into the layer's thumbnails (-1: none; only the cells' examples have one).
    """

    row: np.ndarray
    y: np.ndarray
    x: np.ndarray
    attribution: np.ndarray
    predicted: np.ndarray
    xy: np.ndarray
    thumbnail: np.ndarray

    def __len__(self) -> int:
        return len(self.row)


_SAMPLE_DTYPES = {
    "row": np.int64,
    "y": np.int16,
    "x": np.int16,
    "attribution": np.float32,
    "predicted": np.int32,
    "xy": np.float32,
    "thumbnail": np.int32,
}


@dataclasses.dataclass(frozen=True)
class AtlasCells:
    """The kept cells of one zoom level: a ``side x side`` grid over the layout, cells of
    at least ``min_count`` samples, in row-major order (``i`` then ``j``).

    ``cell`` int16 ``[M, 2]``: ``(i, j)``, ``i`` the row (from the layout's y), ``j`` the
    column; ``count`` int32 ``[M]``: samples in the cell; ``mean`` float32 ``[M, C]``: their
    mean activation vector; ``class_attribution`` ``[M, K]`` (float16 as stored): the mean
    vector's attribution to every class; ``top_classes`` int32 / ``top_scores`` float32
    ``[M, k]``: the highest of those (class id ascending on ties; -1 / NaN padding);
    ``examples`` int64 ``[M, e]``: indices into the samples, nearest the mean first (-1
    padding).
    """

    side: int
    min_count: int
    cell: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    class_attribution: np.ndarray
    top_classes: np.ndarray
    top_scores: np.ndarray
    examples: np.ndarray

    def __len__(self) -> int:
        return len(self.count)


_CELL_DTYPES = {
    "cell": np.int16,
    "count": np.int32,
    "mean": np.float32,
    "class_attribution": np.float16,
    "top_classes": np.int32,
    "top_scores": np.float32,
    "examples": np.int64,
}


@dataclasses.dataclass(frozen=True)
class AtlasLayer:
    """Everything a layout file holds about its layer (what :func:`write_layout` writes)."""

    name: str
    channels: int
    height: int
    width: int
    input_size: int  # the model's input crop, in which the thumbnails were cut
    positions_per_image: int  # as sampled (after the max_vectors cap)
    umap: Mapping  # metric, n_neighbors, min_dist, seed (as run)
    samples: AtlasSamples
    thumbnails: np.ndarray  # uint8 [Q, T, T, 3]
    levels: Sequence[AtlasCells]
    image_ids: Mapping[int, str]  # row -> image id, for every row the samples name


# ---------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------


def _check_layer(layer: AtlasLayer, classes: int) -> None:
    """Clear errors for arrays of the wrong shape, before anything is written."""
    s = len(layer.samples)
    problems = []
    for key in _SAMPLE_DTYPES:
        shape = np.shape(getattr(layer.samples, key))
        expected = (s, 2) if key == "xy" else (s,)
        if shape != expected:
            problems.append(f"samples.{key} is {list(shape)}, expected {list(expected)}")
    thumbnails = np.shape(layer.thumbnails)
    if len(thumbnails) != 4 or thumbnails[3] != 3 or thumbnails[1] != thumbnails[2]:
        problems.append(f"thumbnails are {list(thumbnails)}, expected [Q, T, T, 3]")
    thumbnail, crops = np.asarray(layer.samples.thumbnail), (thumbnails or (0,))[0]
    if thumbnail.size and (thumbnail.min() < -1 or thumbnail.max() >= crops):
        problems.append(f"samples.thumbnail must be -1 or below {crops}")
    missing = sorted(set(np.asarray(layer.samples.row).tolist()) - set(layer.image_ids))
    if missing:
        problems.append(f"no image id for rows {missing[:10]}")
    sides = [int(cells.side) for cells in layer.levels]
    if len(set(sides)) != len(sides) or any(side < 1 for side in sides):
        problems.append(f"level sides must be distinct and positive, got {sides}")
    for cells in layer.levels:
        m = len(cells.count)
        k = np.shape(cells.top_classes)[-1] if np.ndim(cells.top_classes) == 2 else -1
        e = np.shape(cells.examples)[-1] if np.ndim(cells.examples) == 2 else -1
        expected = {
            "cell": (m, 2),
            "count": (m,),
            "mean": (m, layer.channels),
            "class_attribution": (m, classes),
            "top_classes": (m, k),
            "top_scores": (m, k),
            "examples": (m, e),
        }
        for key, shape in expected.items():
            found = np.shape(getattr(cells, key))
            if found != shape:
                problems.append(f"level {cells.side}: {key} is {list(found)}, expected {list(shape)}")
        examples = np.asarray(cells.examples)
        if examples.size and (examples.min() < -1 or examples.max() >= s):
            problems.append(f"level {cells.side}: examples must be -1 or sample indices below {s}")
        cell = np.asarray(cells.cell)
        if cell.size and (cell.min() < 0 or cell.max() >= cells.side):
            problems.append(f"level {cells.side}: cells must lie in 0-{cells.side - 1}")
    if problems:
        raise ValueError(f"atlas layer {layer.name}: " + "; ".join(problems))


def _write_layer(fh: h5py.File, layer: AtlasLayer) -> None:
    group = fh["layers"].create_group(layer.name, track_order=True)
    for key in LAYER_ATTRS:
        group.attrs[key] = int(getattr(layer, key))
    write_json_attr(group, "umap", dict(layer.umap))
    samples = group.create_group("samples", track_order=True)
    for key, dtype in _SAMPLE_DTYPES.items():
        samples.create_dataset(key, data=np.asarray(getattr(layer.samples, key), dtype))
    thumbnails = np.asarray(layer.thumbnails, np.uint8)
    group.create_dataset(
        "thumbnails", data=thumbnails, chunks=(1, *thumbnails.shape[1:]) if len(thumbnails) else None
    )
    rows = sorted(int(r) for r in set(np.asarray(layer.samples.row).tolist()))
    write_table(
        group,
        "images",
        {"row": np.asarray(rows, np.int64), "image_id": [str(layer.image_ids[r]) for r in rows]},
    )
    levels = group.create_group("levels", track_order=True)
    for cells in layer.levels:
        level = levels.create_group(str(int(cells.side)), track_order=True)
        level.attrs["side"] = int(cells.side)
        level.attrs["min_count"] = int(cells.min_count)
        for key, dtype in _CELL_DTYPES.items():
            level.create_dataset(key, data=np.asarray(getattr(cells, key), dtype))


def write_layout(
    path, layer: AtlasLayer, class_names: Sequence[str], settings: ProvenanceRecord, model_checksum: str
) -> Path:
    """Write one layer's layout file (kind ``atlas-layer``) to ``path`` (atomic).

    ``settings``: the provenance record (hashed into ``config_hash``); it must name the
    layer under ``derived["layer"]`` and hold nothing else layer-specific: the merge
    requires the rest to agree between the layers of a run.
    """
    if settings.get("derived", {}).get("layer") != layer.name:
        raise ValueError(f"the provenance of {layer.name}'s layout must name it as its derived layer")
    _check_layer(layer, len(class_names))
    with atomic_h5(path, LAYER_KIND, VERSION, settings=settings, model_checksum=model_checksum) as fh:
        write_strings(fh, "class_names", class_names)
        fh.create_group("layers", track_order=True)
        _write_layer(fh, layer)
    return Path(path)


def write_icons(
    path,
    layer: str,
    level: int,
    start: int,
    stop: int,
    icons: np.ndarray,
    settings: ProvenanceRecord,
    model_checksum: str,
) -> Path:
    """Write the icons of cells ``[start, stop)`` of level ``level`` (the grid side) of
    ``layer`` to ``path`` (kind ``atlas-icons``, atomic): uint8 ``[stop - start, S, S, 3]``,
    in the level's cell order (:attr:`AtlasCells.cell`).

    ``settings``: what decides the icons (the render settings; hashed into ``config_hash``):
    :func:`merge_atlas` requires every icon file of a run to share them, and
    ``model_checksum`` to be the layouts'.
    """
    icons = np.asarray(icons)
    start, stop, level = int(start), int(stop), int(level)
    if not 0 <= start < stop:
        raise ValueError(
            f"icons of {layer} level {level}: the cell range {start}-{stop} is empty or negative"
        )
    if icons.dtype != np.uint8 or icons.ndim != 4 or icons.shape[3] != 3 or icons.shape[1] != icons.shape[2]:
        raise ValueError(f"icons must be uint8 [n, S, S, 3]; got {icons.dtype} {list(icons.shape)}")
    if len(icons) != stop - start:
        raise ValueError(f"{len(icons)} icons for the {stop - start} cells {start}-{stop}")
    with atomic_h5(path, ICONS_KIND, VERSION, settings=settings, model_checksum=model_checksum) as fh:
        fh.attrs["layer"], fh.attrs["level"] = str(layer), level
        fh.attrs["start"], fh.attrs["stop"] = start, stop
        fh.create_dataset("icons", data=icons, chunks=(1, *icons.shape[1:]))
    return Path(path)


# ---------------------------------------------------------------------------------
# The merge
# ---------------------------------------------------------------------------------


def _common_settings(record: Mapping) -> dict:
    """A layout's provenance record without its layer: what every layer of a run shares."""
    derived = {k: v for k, v in record.get("derived", {}).items() if k != "layer"}
    return {**record, "derived": derived}


def _read_icon_files(paths: Sequence[str | os.PathLike]) -> list[dict]:
    infos = []
    for path in paths:
        with open_h5(path, ICONS_KIND, VERSIONS) as fh:
            infos.append(
                {
                    "path": Path(path),
                    "layer": str(fh.attrs["layer"]),
                    "level": int(fh.attrs["level"]),
                    "start": int(fh.attrs["start"]),
                    "stop": int(fh.attrs["stop"]),
                    "shape": fh["icons"].shape,
                    "settings": provenance_of(fh),
                    "config_hash": str(fh.attrs["config_hash"]),
                    "model_checksum": str(fh.attrs["model_checksum"]),
                }
            )
    return infos


def _plan_icons(layouts: dict[str, dict], icons: list[dict], model_checksum: str) -> dict:
    """``{(layer, level): [icon file info, ...]}`` covering every cell once; a clear error
    naming the files otherwise."""
    plan: dict[tuple[str, int], list[dict]] = {
        (layer, side): [] for layer, info in layouts.items() for side in info["cells"]
    }
    for icon in icons:
        first = icons[0]
        if icon["config_hash"] != first["config_hash"]:
            raise StoreError(
                f"{icon['path']} was rendered with other settings than {first['path']} "
                f"({icon['config_hash']} vs {first['config_hash']}); delete the stale icon files and re-run"
            )
        if icon["model_checksum"] != model_checksum:
            raise StoreError(
                f"{icon['path']} was rendered with other model weights than the atlas layouts; "
                "delete the stale icon files and re-run"
            )
        if icon["shape"][1:] != first["shape"][1:]:
            raise StoreError(
                f"{icon['path']} holds icons of {list(icon['shape'][1:])}, {first['path']} of "
                f"{list(first['shape'][1:])}: one run's icons share one size"
            )
        key = (icon["layer"], icon["level"])
        if key not in plan:
            raise StoreError(
                f"{icon['path']} holds icons of layer {key[0]!r} level {key[1]}, which no layout file has "
                f"(layers and levels: {', '.join(f'{a} {b}' for a, b in plan) or 'none'})"
            )
        plan[key].append(icon)
    for (layer, side), parts in plan.items():
        cells = layouts[layer]["cells"][side]
        parts.sort(key=lambda icon: (icon["start"], icon["stop"]))
        covered = 0
        for icon in parts:
            if icon["start"] < covered:
                raise StoreError(
                    f"icons of {layer} level {side}: {icon['path']} (cells {icon['start']}-{icon['stop']}) "
                    f"overlaps cells up to {covered} of another file"
                    + (f" ({parts[parts.index(icon) - 1]['path']})" if parts.index(icon) else "")
                )
            if icon["start"] > covered:
                raise StoreError(
                    f"icons of {layer} level {side}: no icon file holds cells {covered}-{icon['start']} "
                    f"(next: {icon['path']})"
                )
            covered = icon["stop"]
        if covered != cells:
            if covered < cells:
                raise StoreError(
                    f"icons of {layer} level {side}: no icon file holds cells {covered}-{cells} "
                    f"(the level has {cells} cells; layout {layouts[layer]['path']})"
                )
            raise StoreError(
                f"icons of {layer} level {side}: {parts[-1]['path']} ends at cell {covered}, but the level "
                f"has {cells} cells (layout {layouts[layer]['path']}); the icons are of another layout"
            )
    return plan


def merge_atlas(
    layout_files: Sequence[str | os.PathLike], icon_files: Sequence[str | os.PathLike], out
) -> Path:
    """Merge the layers' layout files and the render jobs' icon files into the run's
    ``atlas.h5`` at ``out`` (atomic); returns its path.

    Every layout file must come from the same model weights and share its settings but
    for the layer; each layer once. The icon files must cover every cell of every level of
    every layer exactly once, share one set of render settings, and come from the
    layouts' weights. Anything else is a :class:`StoreError` naming the files.
    """
    layouts = _read_layout_files(layout_files)
    first = next(iter(layouts.values()))
    icons = _read_icon_files(icon_files)
    plan = _plan_icons(layouts, icons, first["model_checksum"])
    side = icons[0]["shape"][1] if icons else 0
    common = first["common"]
    settings = provenance(
        stage="atlas",
        model=common["model"],
        settings=common["settings"],
        derived={
            **common["derived"],
            "layers": list(layouts),
            "icons": icons[0]["settings"] if icons else None,
        },
        inputs=common["inputs"],
    )
    with atomic_h5(out, KIND, VERSION, settings=settings, model_checksum=first["model_checksum"]) as fh:
        write_strings(fh, "class_names", first["class_names"])
        fh.create_group("layers", track_order=True)
        for layer, info in layouts.items():
            _copy_layer(fh, layer, info, plan, side)
    return Path(out)


def _read_layout_files(layout_files: Sequence[str | os.PathLike]) -> dict[str, dict]:
    """Layer -> what the merge needs of its layout file (path, shared settings, weights,
    class names, cells per level), checked: one layer per file, each layer once, the same
    settings but for the layer and the same weights in all."""
    if not layout_files:
        raise StoreError("atlas merge: no layout files given")
    layouts: dict[str, dict] = {}
    first = None
    for path in layout_files:
        with open_h5(path, LAYER_KIND, VERSIONS) as fh:
            settings = provenance_of(fh)
            info = {
                "path": Path(path),
                "common": _common_settings(settings),
                "model_checksum": str(fh.attrs["model_checksum"]),
                "class_names": read_strings(fh["class_names"]),
                "layers": list(fh["layers"]),
            }
            if len(info["layers"]) != 1:
                raise StoreError(f"{path}: a layout file holds one layer, this one {len(info['layers'])}")
            layer = info["layers"][0]
            info["cells"] = {
                int(g): len(group["count"]) for g, group in fh["layers"][layer]["levels"].items()
            }
        first = first or info
        if config_hash(info["common"]) != config_hash(first["common"]):
            raise StoreError(
                f"{path} was laid out with other settings than {first['path']}; "
                "delete the stale files and re-run"
            )
        if info["model_checksum"] != first["model_checksum"]:
            raise StoreError(f"{path} comes from other model weights than {first['path']}; re-run")
        if layer in layouts:
            raise StoreError(
                f"atlas merge: layer {layer!r} is in {layouts[layer]['path']} and again in {path}"
            )
        layouts[layer] = info
    return layouts


def _copy_layer(fh, layer: str, info: dict, plan: dict, side: int) -> None:
    """Copy ``layer``'s group from its layout file into the merged file ``fh`` and add each
    level's ``icons`` ``[cells, side, side, 3]``, filled from the planned icon files."""
    with open_h5(info["path"], LAYER_KIND, VERSIONS) as src:
        src.copy(src["layers"][layer], fh["layers"], name=layer)
    for g, cells in info["cells"].items():
        dataset = fh["layers"][layer]["levels"][str(g)].create_dataset(
            "icons",
            shape=(cells, side, side, 3),
            dtype=np.uint8,
            chunks=(1, side, side, 3) if cells and side else None,
        )
        for icon in plan[layer, g]:
            with open_h5(icon["path"], ICONS_KIND, VERSIONS) as src:
                dataset[icon["start"] : icon["stop"]] = src["icons"][()]


# ---------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------


class AtlasStore(StoreReader):
    """Reader of the merged ``atlas.h5`` or of one layer's layout file (no icons there).

    >>> with AtlasStore("results/demo/atlas.h5") as store:
    ...     store.layers()                       # ["blocks.4.2"]
    ...     store.levels("blocks.4.2")           # [20, 40, 80]
    ...     cells = store.cells("blocks.4.2", 20)
    ...     cells.cell, cells.count, cells.top_classes
    ...     store.icons("blocks.4.2", 20)        # lazy uint8 [M, S, S, 3]; None in a layout file
    ...     store.describe("blocks.4.2")         # JSON-able: levels, cells, top classes, examples
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.fh = open_h5_handle(self.path, (KIND, LAYER_KIND), VERSIONS)
        try:
            self.kind = str(self.fh.attrs["format"]).split(".", 1)[1]
            self.class_names = read_strings(self.fh["class_names"])
            self.settings = settings_of(self.fh)
            self.config_hash = str(self.fh.attrs["config_hash"])
            self.model_checksum = str(self.fh.attrs["model_checksum"])
        except BaseException:
            self.fh.close()
            raise
        self._image_ids: dict[str, dict[int, str]] = {}

    def layers(self) -> list[str]:
        return list(self.fh["layers"])

    def _layer(self, layer: str) -> h5py.Group:
        if layer not in self.fh["layers"]:
            raise KeyError(
                f"{self.path}: no atlas of layer {layer!r}; atlas layers: {', '.join(self.layers())}"
            )
        return self.fh["layers"][layer]

    def info(self, layer: str) -> dict:
        """``channels``, ``height``, ``width``, ``input_size``, ``positions_per_image``,
        ``umap`` (metric, n_neighbors, min_dist, seed) and ``samples`` (how many)."""
        group = self._layer(layer)
        found = {key: int(group.attrs[key]) for key in LAYER_ATTRS}
        return {**found, "umap": read_json_attr(group, "umap", {}), "samples": len(group["samples"]["row"])}

    def levels(self, layer: str) -> list[int]:
        """The grid sides, coarsest first."""
        return sorted(int(g) for g in self._layer(layer)["levels"])

    def _level(self, layer: str, level: int) -> h5py.Group:
        levels = self._layer(layer)["levels"]
        if str(int(level)) not in levels:
            known = ", ".join(map(str, self.levels(layer)))
            raise KeyError(f"{self.path}: {layer} has no level {level}; levels: {known}")
        return levels[str(int(level))]

    def cell_counts(self, layer: str) -> dict[int, int]:
        """``{side: kept cells}`` of every level, coarsest first, without reading the cells
        (what the render jobs are planned from)."""
        return {g: len(self._level(layer, g)["count"]) for g in self.levels(layer)}

    def cells(self, layer: str, level: int) -> AtlasCells:
        """The kept cells of level ``level`` (the grid side), read whole."""
        group = self._level(layer, level)
        return AtlasCells(
            side=int(group.attrs["side"]),
            min_count=int(group.attrs["min_count"]),
            **{key: group[key][()] for key in _CELL_DTYPES},
        )

    def samples(self, layer: str) -> AtlasSamples:
        group = self._layer(layer)["samples"]
        return AtlasSamples(**{key: group[key][()] for key in _SAMPLE_DTYPES})

    def thumbnail(self, layer: str, index: int) -> np.ndarray:
        """uint8 ``[T, T, 3]``: thumbnail ``index`` (see :attr:`AtlasSamples.thumbnail`)."""
        thumbnails = self._layer(layer)["thumbnails"]
        if not 0 <= int(index) < len(thumbnails):
            raise IndexError(f"{layer} has thumbnails 0-{len(thumbnails) - 1}; got {index}")
        return thumbnails[int(index)]

    def icons(self, layer: str, level: int) -> h5py.Dataset | None:
        """Lazy uint8 ``[M, S, S, 3]``: each cell's icon, in cell order (slice it to read);
        None in a layout file."""
        group = self._level(layer, level)
        return group["icons"] if "icons" in group else None

    def icon(self, layer: str, level: int, index: int) -> np.ndarray:
        """uint8 ``[S, S, 3]``: the icon of cell ``index`` of a level."""
        icons = self.icons(layer, level)
        if icons is None:
            raise KeyError(f"{self.path} is a layout file: it holds no icons (the merged atlas.h5 does)")
        return icons[int(index)]

    def image_ids(self, layer: str) -> dict[int, str]:
        """Row -> image id of every image the layer's samples come from."""
        if layer not in self._image_ids:
            table = read_table(self._layer(layer)["images"])
            self._image_ids[layer] = dict(zip(table["row"], table["image_id"]))
        return self._image_ids[layer]

    def describe(self, layer: str) -> dict:
        """JSON-able: the layer's shape and UMAP settings, and per level (coarsest first)
        its cells with ``i``, ``j``, ``count``, top classes (id, name, attribution) and
        dataset examples (sample index, image id, row, position, thumbnail index)."""
        samples = self.samples(layer)
        ids = self.image_ids(layer)
        levels = []
        for g in self.levels(layer):
            cells = self.cells(layer, g)
            levels.append(
                {
                    "side": cells.side,
                    "min_count": cells.min_count,
                    "cells": [
                        _cell_json(cells, m, samples, ids, self.class_names) for m in range(len(cells))
                    ],
                }
            )
        return {"layer": layer, **self.info(layer), "levels": levels}


def _cell_json(cells: AtlasCells, m: int, samples: AtlasSamples, ids: Mapping[int, str], names) -> dict:
    top = [
        {"class_id": int(c), "class_name": names[c], "attribution": json_number(score)}
        for c, score in zip(cells.top_classes[m], cells.top_scores[m])
        if c >= 0
    ]
    examples = []
    for s in cells.examples[m]:
        if s < 0:
            continue
        row = int(samples.row[s])
        examples.append(
            {
                "sample": int(s),
                "image_id": ids.get(row),
                "row": row,
                "y": int(samples.y[s]),
                "x": int(samples.x[s]),
                "thumbnail": int(samples.thumbnail[s]),
            }
        )
    return {
        "i": int(cells.cell[m, 0]),
        "j": int(cells.cell[m, 1]),
        "count": int(cells.count[m]),
        "top_classes": top,
        "examples": examples,
    }
