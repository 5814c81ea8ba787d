"""Dataset-wide activations: shard files, the reduced store, and their lazy readers.

Layouts are specified in docs/STORE.md ("Activations store"). In short:

* a **shard** (``model-atlas.activations-shard``) holds the per-image arrays of one
  range of images, written batch by batch by :func:`shard_writer`, and optionally the
  activation-atlas samples of its images (``atlas/<layer>/``, read with
  :meth:`ShardSet.atlas_samples`);
* the **reduced store** (``model-atlas.activations``, ``results/<run>/activations.h5``)
  stitches the shards' per-image arrays with HDF5 virtual datasets (no copy; source
  paths relative to the store) and adds the reductions: top-k examples with
  receptive-field boxes and thumbnails, statistics, class attribution.

:class:`ShardSet` reads shards lazily as dask arrays for the reductions;
:class:`pipeline.store.activations_reader.ActivationsStore` reads the reduced store for
queries and the site. No torch here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from pipeline.store._format import (
    StoreError,
    atomic_h5,
    open_h5,
    provenance_of,
    read_json_attr,
    read_strings,
    read_table,
    refuse_other_provenance,
    settings_of,
    write_json_attr,
    write_record,
    write_strings,
    write_table,
)
from pipeline.store._provenance import ProvenanceRecord

SHARD_KIND, SHARD_VERSIONS = "activations-shard", (1,)
STORE_KIND, STORE_VERSIONS = "activations", (1,)
SHARD_VERSION, STORE_VERSION = 1, 1
# The optional layers/<layer>/labels/ group has its own version: older readers ignore it.
LABEL_VERSION, LABEL_VERSIONS = 1, (1,)
FLOAT_QUANTITIES = ("max", "min", "mean", "attr_predicted", "attr_label")
INT_QUANTITIES = ("argmax_y", "argmax_x", "argmin_y", "argmin_x")
IMAGE_COLUMNS = ("image_id", "path", "label", "label_class")
# The activation-atlas samples of a shard, per atlas layer: dtype, and whether [n, C] or [n].
ATLAS_SAMPLES = {
    "vectors": np.float32,
    "row": np.int64,
    "y": np.int16,
    "x": np.int16,
    "attribution": np.float32,
}
# Fill values of the virtual datasets: a missing shard reads as NaN / -1, never as data.
_FILL = {"f": np.nan, "i": -1}


def _dtype(quantity: str):
    return np.int16 if quantity in INT_QUANTITIES else np.float32


# ---------------------------------------------------------------------------------
# Shards
# ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ShardLayout:
    """What one shard holds: room for the images ``[start, stop)`` of a listing and, per
    image, the ``quantities`` of each of ``layers`` (dicts with ``name``, ``channels``,
    ``height``, ``width``; see ``pipeline.extract.extractor``) and the ``top`` predictions
    among ``class_names``; and the activation-atlas samples of the ``atlas`` layers (dicts
    like ``layers``'; see ``pipeline.extract.sampling``), none by default."""

    layers: Sequence[Mapping]
    quantities: Sequence[str]
    class_names: Sequence[str]
    start: int
    stop: int
    top: int = 5
    atlas: Sequence[Mapping] = ()

    @property
    def capacity(self) -> int:
        """The most images the shard can hold: every image of its range."""
        return int(self.stop) - int(self.start)


class ShardWriter:
    """Appends batches of per-image arrays to an open shard file (use :func:`shard_writer`)."""

    def __init__(self, fh: h5py.File, layout: ShardLayout):
        self.fh, self.quantities, self.rows = fh, list(layout.quantities), 0
        self.images: dict[str, list] = {c: [] for c in IMAGE_COLUMNS}
        self.skipped: dict[str, list] = {"image_id": [], "path": [], "reason": []}
        size = max(layout.capacity, 1)
        chunk = min(size, 256)
        top = layout.top
        self.datasets = {}
        for layer in layout.layers:
            group = fh.create_group(f"layers/{layer['name']}")
            for key in ("channels", "height", "width"):
                group.attrs[key] = int(layer[key])
            for q in self.quantities:
                self.datasets[layer["name"], q] = group.create_dataset(
                    q,
                    shape=(0, layer["channels"]),
                    maxshape=(size, layer["channels"]),
                    chunks=(chunk, layer["channels"]),
                    dtype=_dtype(q),
                )
        pred = fh.create_group("predictions")
        self.top_ids = pred.create_dataset(
            "top_ids", (0, top), maxshape=(size, top), chunks=(chunk, top), dtype=np.int32
        )
        self.top_logits = pred.create_dataset(
            "top_logits", (0, top), maxshape=(size, top), chunks=(chunk, top), dtype=np.float32
        )
        self.atlas: dict[tuple[str, str], h5py.Dataset] = {}
        for layer in layout.atlas:
            group = fh.create_group(f"atlas/{layer['name']}")
            for key in ("channels", "height", "width"):
                group.attrs[key] = int(layer[key])
            for key, dtype in ATLAS_SAMPLES.items():
                tail = (int(layer["channels"]),) if key == "vectors" else ()
                self.atlas[layer["name"], key] = group.create_dataset(
                    key, shape=(0, *tail), maxshape=(None, *tail), chunks=(1024, *tail), dtype=dtype
                )

    def append(self, records: Sequence, label_classes: Sequence[int], summary) -> None:
        """Add the kept images ``records`` (``image_id``, ``path``, ``label``) and their summary rows."""
        n = len(records)
        if n != len(summary):
            raise ValueError(f"{n} records for a summary of {len(summary)} images")
        start, stop = self.rows, self.rows + n
        for (layer, q), ds in self.datasets.items():
            ds.resize(stop, axis=0)
            values = summary.layers[layer].get(q)
            ds[start:stop] = (
                np.full((n, ds.shape[1]), np.nan, np.float32)
                if values is None
                else np.asarray(values, dtype=ds.dtype)
            )
        for ds, values in ((self.top_ids, summary.top_ids), (self.top_logits, summary.top_logits)):
            ds.resize(stop, axis=0)
            ds[start:stop] = np.asarray(values, dtype=ds.dtype)
        self._append_atlas(summary, n)
        for record, label_class in zip(records, label_classes):
            self.images["image_id"].append(record.image_id)
            self.images["path"].append(str(record.path))
            self.images["label"].append(record.label or "")
            self.images["label_class"].append(int(label_class))
        self.rows = stop

    def _append_atlas(self, summary, n: int) -> None:
        """The batch's atlas samples, their rows (batch rows) made the shard's kept rows."""
        for layer in {name for name, _ in self.atlas}:
            sample = summary.atlas.get(layer) if getattr(summary, "atlas", None) else None
            if sample is None:
                raise ValueError(
                    f"the shard samples {layer} for the atlas, but the batch holds no samples of it"
                )
            count = len(sample["row"])
            rows = np.asarray(sample["row"], np.int64)
            if count and (rows.min() < 0 or rows.max() >= n):
                raise ValueError(f"atlas samples of {layer} name batch rows outside 0-{n - 1}")
            values = {**sample, "row": rows + self.rows}
            for key in ATLAS_SAMPLES:
                ds = self.atlas[layer, key]
                array = np.asarray(values[key], dtype=ds.dtype)
                if array.shape != (count, *ds.shape[1:]):
                    raise ValueError(
                        f"atlas samples of {layer}: {key} is {list(array.shape)}, "
                        f"expected {[count, *ds.shape[1:]]}"
                    )
                old = ds.shape[0]
                ds.resize(old + count, axis=0)
                ds[old:] = array

    def skip(self, skipped: Sequence) -> None:
        """Record images that could not be used (``image_id``, ``path``, ``reason``)."""
        for item in skipped:
            self.skipped["image_id"].append(item.image_id)
            self.skipped["path"].append(str(item.path))
            self.skipped["reason"].append(item.reason)

    def _finish(self) -> None:
        images = dict(self.images, label_class=np.asarray(self.images["label_class"], np.int64))
        write_table(self.fh, "images", images)
        write_table(self.fh, "skipped", self.skipped)
        self.fh.attrs["rows"] = self.rows


@contextlib.contextmanager
def shard_writer(
    path, layout: ShardLayout, *, settings: Mapping, model_checksum: str
) -> Iterator[ShardWriter]:
    """Write the shard ``layout`` describes to ``path``; it appears only when complete.

    ``settings`` decide the shard's contents and are hashed into its ``config_hash``
    (the reduction refuses to combine shards whose hashes differ).
    """
    unknown = set(layout.quantities) - set(FLOAT_QUANTITIES) - set(INT_QUANTITIES)
    if unknown:
        raise ValueError(f"unknown shard quantities: {', '.join(sorted(unknown))}")
    with atomic_h5(path, SHARD_KIND, SHARD_VERSION, settings=settings, model_checksum=model_checksum) as fh:
        fh.attrs["start"], fh.attrs["stop"] = int(layout.start), int(layout.stop)
        write_json_attr(fh, "quantities", list(layout.quantities))
        write_strings(fh, "class_names", layout.class_names)
        writer = ShardWriter(fh, layout)
        yield writer
        writer._finish()


class _LazyH5:
    """A picklable, sliceable view of one HDF5 dataset that opens its file per read.

    dask tasks get this instead of an ``h5py.Dataset`` (which cannot be pickled), so
    any dask scheduler works and no file handle is shared between threads.
    """

    def __init__(self, path: str, key: str, shape, dtype):
        self.path, self.key, self.shape, self.dtype = str(path), key, tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, selection):
        with h5py.File(self.path, "r") as fh:
            return fh[self.key][selection]


def lazy_array(path, key: str, shape, dtype, rows_per_chunk: int = 8192):
    """A dask array over dataset ``key`` of file ``path`` (chunks of whole rows)."""
    import dask.array as da

    shape = tuple(shape)
    chunks = (max(1, min(rows_per_chunk, shape[0])), *shape[1:]) if shape[0] else shape
    name = f"h5-{Path(path).resolve()}-{key}-{os.stat(path).st_mtime_ns}"
    return da.from_array(
        _LazyH5(path, key, shape, dtype), chunks=chunks, name=name, asarray=True, fancy=False, lock=False
    )


def _dataset_shapes(fh: h5py.File) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{path: (shape, dtype)}`` of every dataset in the file."""
    found = {}
    fh.visititems(
        lambda name, obj: (
            found.__setitem__(name, (obj.shape, obj.dtype)) if isinstance(obj, h5py.Dataset) else None
        )
    )
    return found


class ShardSet:
    """The shards of one run, checked to be complete, consistent and contiguous."""

    def __init__(self, paths: Sequence[str | os.PathLike]):
        if not paths:
            raise StoreError("no shard files given")
        infos = []
        for path in paths:
            with open_h5(path, SHARD_KIND, SHARD_VERSIONS) as fh:
                infos.append(
                    {
                        "path": Path(path),
                        "start": int(fh.attrs["start"]),
                        "stop": int(fh.attrs["stop"]),
                        "rows": int(fh.attrs["rows"]),
                        "config_hash": str(fh.attrs["config_hash"]),
                        "model_checksum": str(fh.attrs["model_checksum"]),
                        "settings": settings_of(fh),
                        "provenance": provenance_of(fh),
                        "quantities": read_json_attr(fh, "quantities"),
                        "layers": [
                            {"name": name, **{k: int(v) for k, v in g.attrs.items()}}
                            for name, g in fh["layers"].items()
                        ],
                        "class_names": read_strings(fh["class_names"]),
                        "top": fh["predictions/top_ids"].shape[1],
                        "datasets": _dataset_shapes(fh),
                        "atlas": {
                            name: {k: int(v) for k, v in g.attrs.items()}
                            for name, g in fh.get("atlas", {}).items()
                        },
                    }
                )
        infos.sort(key=lambda info: info["start"])
        first = infos[0]
        for info in infos[1:]:
            refuse_other_provenance(info["path"], info, first["path"], first)
        for before, after in zip(infos, infos[1:]):
            if after["start"] != before["stop"]:
                raise StoreError(
                    f"shards do not cover images {before['stop']}-{after['start']}: "
                    f"{before['path'].name} is followed by {after['path'].name}"
                )
        self.shards = infos
        self.settings, self.config_hash = first["settings"], first["config_hash"]
        self.provenance = first["provenance"]  # the whole record (self.settings: its flat view)
        self.model_checksum, self.class_names = first["model_checksum"], first["class_names"]
        self.layers, self.quantities, self.top = first["layers"], first["quantities"], first["top"]
        # name -> channels, height, width of each layer sampled for the activation atlas.
        self.atlas_layers: dict[str, dict[str, int]] = first["atlas"]
        self.offsets = np.cumsum([0] + [info["rows"] for info in infos])
        self.rows = int(self.offsets[-1])

    @property
    def description(self) -> str:
        """The shard files, for messages: the one file, or their folder and how many."""
        paths = [info["path"] for info in self.shards]
        if len(paths) == 1:
            return str(paths[0])
        return f"the {len(paths)} extraction shards in {paths[0].parent}"

    def per_image(self, layer: str, quantity: str):
        """Lazy dask ``[N, C]`` array of one per-image quantity of ``layer`` (``max``,
        ``argmax_y``, ``attr_predicted``, ...) over all shards."""
        if quantity not in self.quantities:
            raise KeyError(f"the shards hold no {quantity!r}; they hold {', '.join(self.quantities)}")
        return self._array(f"layers/{layer}/{quantity}")

    def predicted_classes(self):
        """Lazy dask ``int32 [N]``: each image's top-1 predicted class."""
        return self._array("predictions/top_ids")[:, 0]

    def atlas_samples(self, layer: str) -> dict[str, np.ndarray]:
        """Every shard's activation-atlas samples of ``layer``, in shard order, read whole:
        ``vectors`` float32 ``[n, C]``, ``row`` int64 ``[n]`` (the image's row in the run's
        stores, as in :meth:`per_image`: global), ``y``, ``x`` int16 and ``attribution``
        float32 (to the image's predicted class; NaN without attribution)."""
        if layer not in self.atlas_layers:
            held = ", ".join(self.atlas_layers) or "none (the extraction sampled no atlas layer)"
            raise KeyError(f"the shards hold no atlas samples of {layer!r}; atlas layers: {held}")
        parts: dict[str, list[np.ndarray]] = {key: [] for key in ATLAS_SAMPLES}
        for info, offset in zip(self.shards, self.offsets):
            if layer not in info["atlas"]:
                raise StoreError(f"{info['path']}: holds no atlas samples of {layer!r}")
            with h5py.File(info["path"], "r") as fh:
                group = fh["atlas"][layer]
                for key in ATLAS_SAMPLES:
                    values = group[key][()]
                    parts[key].append(values + offset if key == "row" else values)
        return {key: np.concatenate(values).astype(ATLAS_SAMPLES[key]) for key, values in parts.items()}

    def _array(self, key: str):
        """``[N, ...]`` dask array of dataset ``key`` over all shards."""
        import dask.array as da

        parts = []
        for info in self.shards:
            if key not in info["datasets"]:
                raise KeyError(f"{info['path']}: no dataset {key!r}")
            shape, dtype = info["datasets"][key]  # recorded when the set was opened
            if shape[0]:
                parts.append(lazy_array(info["path"], key, shape, dtype))
        if not parts:
            return da.zeros((0, *shape[1:]), dtype=dtype)
        return da.concatenate(parts, axis=0)

    def table(self, name: str) -> dict[str, list]:
        merged: dict[str, list] = {}
        for info in self.shards:
            with h5py.File(info["path"], "r") as fh:
                for col, values in read_table(fh[name]).items():
                    merged.setdefault(col, []).extend(values)
        return merged


# ---------------------------------------------------------------------------------
# The reduced store
# ---------------------------------------------------------------------------------


class ReducedWriter:
    """Writes the reduced store's layers (use :func:`reduced_writer`)."""

    def __init__(self, fh: h5py.File):
        self.fh = fh

    def write_layer(self, name: str, layer) -> None:
        """All reductions of layer ``name``: a :class:`pipeline.store.reduction.ReducedLayer`."""
        group = self.fh[f"layers/{name}"]
        for table, examples in layer.tables.items():
            sub = group.create_group(table)
            write_record(sub, dataclasses.replace(examples, map=None))
            if examples.map is not None:
                sub.create_dataset("map", data=np.asarray(examples.map, np.float16))
        write_record(group.create_group("stats"), layer.stats)
        if layer.classes is not None:
            write_record(group.create_group("classes"), layer.classes)
        if layer.labels is not None:
            self._write_labels(group, layer.labels)
        group.create_dataset("correlation", data=np.asarray(layer.correlation, np.float32))
        group.create_dataset("rf_rows", data=np.asarray(layer.rf_rows, np.int32))
        group.create_dataset("rf_cols", data=np.asarray(layer.rf_cols, np.int32))
        thumbnails = np.asarray(layer.thumbnails, np.uint8)
        # One thumbnail per chunk: the site and queries read them one at a time.
        chunks = (1, *thumbnails.shape[1:]) if len(thumbnails) else None
        group.create_dataset("thumbnails", data=thumbnails, chunks=chunks)

    @staticmethod
    def _write_labels(group: h5py.Group, labels) -> None:
        """The channels' labels (a :class:`~pipeline.store.activations_reader.UnitLabels`) as
        the table ``labels/``, one row per channel, with its attributes."""
        table = write_table(group, "labels", {name: getattr(labels, name) for name in labels.COLUMNS})
        table.attrs["rule"] = labels.rule
        table.attrs["hierarchy"] = labels.hierarchy
        table.attrs["format_version"] = LABEL_VERSION
        write_json_attr(table, "settings", labels.settings)


@contextlib.contextmanager
def reduced_writer(
    path, shards: ShardSet, *, settings: ProvenanceRecord, model: Mapping, aliases: Mapping[str, str]
) -> Iterator[ReducedWriter]:
    """Create the reduced store at ``path``: tables and virtual per-image arrays, then layers."""
    path = Path(path)
    with atomic_h5(
        path,
        STORE_KIND,
        STORE_VERSION,
        settings=settings,
        model_checksum=shards.model_checksum,
    ) as fh:
        fh.attrs["shards_config_hash"] = shards.config_hash
        write_json_attr(fh, "model", dict(model))
        write_json_attr(fh, "aliases", dict(aliases))
        write_json_attr(fh, "quantities", shards.quantities)
        write_strings(fh, "class_names", shards.class_names)
        images = shards.table("images")
        images["label_class"] = np.asarray(images.get("label_class", []), np.int64)
        write_table(fh, "images", {c: images.get(c, []) for c in IMAGE_COLUMNS})
        skipped = shards.table("skipped")  # one pass over the shards, not one per column
        write_table(fh, "skipped", {c: skipped.get(c, []) for c in ("image_id", "path", "reason")})
        write_table(
            fh,
            "shards",
            {
                "file": [
                    os.path.relpath(info["path"].resolve(), path.parent.resolve()) for info in shards.shards
                ],
                "start": np.asarray([info["start"] for info in shards.shards], np.int64),
                "stop": np.asarray([info["stop"] for info in shards.shards], np.int64),
                "row_offset": np.asarray(shards.offsets[:-1], np.int64),
                "rows": np.asarray([info["rows"] for info in shards.shards], np.int64),
            },
        )
        _virtual(fh, shards, path.parent, "predictions/top_ids", (shards.top,), np.int32)
        _virtual(fh, shards, path.parent, "predictions/top_logits", (shards.top,), np.float32)
        for layer in shards.layers:
            group = fh.create_group(f"layers/{layer['name']}")
            for key in ("channels", "height", "width"):
                group.attrs[key] = layer[key]
            for q in shards.quantities:
                _virtual(
                    fh, shards, path.parent, f"layers/{layer['name']}/{q}", (layer["channels"],), _dtype(q)
                )
        yield ReducedWriter(fh)


def _virtual(fh: h5py.File, shards: ShardSet, folder: Path, key: str, tail: tuple, dtype) -> None:
    """Stitch dataset ``key`` of every shard into one ``[N, *tail]`` virtual dataset."""
    shape = (shards.rows, *tail)
    if shards.rows == 0:
        fh.create_dataset(key, shape=shape, dtype=dtype)
        return
    layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
    for info, offset in zip(shards.shards, shards.offsets):
        if info["rows"]:
            source = os.path.relpath(info["path"].resolve(), folder.resolve())
            layout[offset : offset + info["rows"]] = h5py.VirtualSource(
                source, key, shape=(info["rows"], *tail)
            )
    fh.create_virtual_dataset(key, layout, fillvalue=_FILL[np.dtype(dtype).kind])
