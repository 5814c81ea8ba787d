"""The Building Blocks store (``model-atlas.blocks``): writer, merge and lazy reader.

Layout: docs/STORE.md, "Building Blocks store". One job writes one file per image
(:func:`write_image_file`, same layout holding one image); :func:`merge_files`
copies them into ``results/<run>/blocks.h5``; :class:`BlocksStore` reads either
lazily (h5py datasets slice on demand). No torch here.

The per-image content is the nested dict made by :func:`pipeline.blocks.compute.compute_blocks`:
a NumPy array becomes a dataset, a dict a group, and a scalar or string an attribute
of the enclosing group.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.store._format import (
    StoreError,
    StoreReader,
    atomic_h5,
    json_number,
    open_h5,
    open_h5_handle,
    provenance_of,
    read_json_attr,
    read_strings,
    read_table,
    refuse_other_provenance,
    settings_of,
    write_json_attr,
    write_strings,
    write_table,
)
from pipeline.store._provenance import ProvenanceRecord

# Version 2: several layers on one cell grid each, any number of attributed classes,
# flows between layers and neuron groups (docs/STORE.md). Version 1 files are refused.
KIND, VERSIONS, VERSION = "blocks", (2,), 2
# Feature-visualization icons are read one at a time by the site: one icon per chunk.
_ICON_KEYS = ("icons",)


def _image_key(index: int) -> str:
    # Image ids may hold "/" or other characters HDF5 treats specially: groups are
    # numbered and the index table maps ids to them.
    return f"{index:05d}"


def _write_tree(group: h5py.Group, tree: Mapping[str, Any]) -> None:
    for name, value in tree.items():
        if isinstance(value, Mapping):
            _write_tree(group.create_group(name, track_order=True), value)
        elif isinstance(value, np.ndarray):
            chunks = None
            if name in _ICON_KEYS and value.ndim >= 3 and value.size:
                chunks = (1,) * (value.ndim - 3) + value.shape[-3:]
            group.create_dataset(name, data=value, chunks=chunks)
        elif isinstance(value, (bool, np.bool_)):
            group.attrs[name] = bool(value)
        elif isinstance(value, (int, float, str, np.integer, np.floating)):
            group.attrs[name] = value
        else:
            raise TypeError(f"blocks store: cannot write {name!r} of type {type(value).__name__}")


@dataclasses.dataclass(frozen=True)
class RunHeader:
    """What every file of a run holds alike, and a merge requires to agree."""

    model: Mapping  # LoadedModel.describe()
    class_names: Sequence[str]
    layers: Sequence[Mapping]  # name, channels, height, width; in execution order
    settings: ProvenanceRecord  # settings_json (pipeline.store.provenance), hashed into config_hash
    model_checksum: str


def _write_header(fh: h5py.File, header: RunHeader) -> None:
    layers = header.layers
    write_json_attr(fh, "model", dict(header.model))
    write_strings(fh, "class_names", header.class_names)
    write_table(
        fh,
        "layers",
        {
            "name": [layer["name"] for layer in layers],
            **{
                key: np.asarray([int(layer[key]) for layer in layers], np.int64)
                for key in ("channels", "height", "width")
            },
        },
    )


def write_image_file(
    path, header: RunHeader, *, image_id: str, image_path: str, blocks: Mapping[str, Any]
) -> Path:
    """Write one image's Building Blocks to ``path`` (atomic); returns the path.

    ``blocks`` is :func:`pipeline.blocks.compute.compute_blocks`' result for the image
    ``image_id`` read from ``image_path``.
    """
    with atomic_h5(path, KIND, VERSION, settings=header.settings, model_checksum=header.model_checksum) as fh:
        _write_header(fh, header)
        write_table(
            fh, "index", {"image_id": [str(image_id)], "path": [str(image_path)], "key": [_image_key(0)]}
        )
        group = fh.create_group(f"images/{_image_key(0)}", track_order=True)
        group.attrs["image_id"], group.attrs["path"] = str(image_id), str(image_path)
        _write_tree(group, blocks)
    return Path(path)


def merge_files(paths: Sequence[str | os.PathLike], out) -> Path:
    """Copy per-image files into one store at ``out`` (atomic), in the given order.

    Every file must share settings (``config_hash``) and model weights; a repeated
    image id is an error.
    """
    if not paths:
        raise StoreError("blocks merge: no per-image files given")
    with open_h5(paths[0], KIND, VERSIONS) as first:
        config_hash, checksum = str(first.attrs["config_hash"]), str(first.attrs["model_checksum"])
        layers_table = read_table(first["layers"])
        header = RunHeader(
            model=read_json_attr(first, "model", {}),
            class_names=read_strings(first["class_names"]),
            layers=[dict(zip(layers_table, row)) for row in zip(*layers_table.values())],
            settings=provenance_of(first),
            model_checksum=checksum,
        )
    index = {"image_id": [], "path": [], "key": []}
    with atomic_h5(out, KIND, VERSION, settings=header.settings, model_checksum=checksum) as fh:
        _write_header(fh, header)
        images = fh.create_group("images", track_order=True)
        for path in paths:
            with open_h5(path, KIND, VERSIONS) as src:
                refuse_other_provenance(
                    path, src.attrs, paths[0], {"config_hash": config_hash, "model_checksum": checksum}
                )
                table = read_table(src["index"])
                for image_id, image_path, key in zip(table["image_id"], table["path"], table["key"]):
                    if image_id in index["image_id"]:
                        raise StoreError(f"blocks merge: image {image_id!r} appears twice (again in {path})")
                    new_key = _image_key(len(index["key"]))
                    src.copy(src[f"images/{key}"], images, name=new_key)
                    index["image_id"].append(image_id)
                    index["path"].append(image_path)
                    index["key"].append(new_key)
        write_table(fh, "index", index)
    return Path(out)


class BlocksStore(StoreReader):
    """Lazy reader of a Building Blocks store (merged or one image's file).

    >>> store = BlocksStore("results/demo/blocks.h5")
    >>> store.image_ids, store.layers
    >>> b = store.blocks("coffee", "blocks.4.2")      # nested dict of NumPy arrays
    >>> b["dictionary"]["channels"][7, 7]              # top channels at the centre
    >>> store.grid_icons("coffee", "blocks.4.2")[3, 4]  # one icon, read alone
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.fh = open_h5_handle(self.path, KIND, VERSIONS)
        index = read_table(self.fh["index"])
        self._keys = dict(zip(index["image_id"], index["key"]))
        self._paths = dict(zip(index["image_id"], index["path"]))
        table = read_table(self.fh["layers"])
        self.layers = {
            name: {"channels": c, "height": h, "width": w}
            for name, c, h, w in zip(table["name"], table["channels"], table["height"], table["width"])
        }
        self.class_names = read_strings(self.fh["class_names"])
        self.model = read_json_attr(self.fh, "model", {})
        self.settings = settings_of(self.fh)

    @property
    def image_ids(self) -> list[str]:
        return list(self._keys)

    def __contains__(self, image_id: str) -> bool:
        return str(image_id) in self._keys

    def _group(self, image_id: str, layer: str | None = None) -> h5py.Group:
        """The HDF5 group of one image (or of one of its layers); KeyError lists what exists."""
        image_id = str(image_id)
        if image_id not in self._keys:
            raise KeyError(
                f"{self.path}: no Building Blocks for image {image_id!r}; images: "
                f"{', '.join(self._keys) or 'none'}"
            )
        group = self.fh[f"images/{self._keys[image_id]}"]
        if layer is None:
            return group
        if layer not in self.layers:
            raise KeyError(
                f"{self.path}: no Building Blocks for layer {layer!r}; layers: {', '.join(self.layers)}"
            )
        return group[f"layers/{layer}"]

    def grid_icons(self, image_id: str, layer: str) -> h5py.Dataset | None:
        """uint8 ``[Hg, Wg, S, S, 3]``, unread: the activation grid's icons (one per chunk;
        indexing reads only the icons asked for). None when the layer has no grid."""
        return self._group(image_id, layer).get("grid/icons")

    def group_icons(self, image_id: str, layer: str) -> h5py.Dataset | None:
        """uint8 ``[G, S2, S2, 3]``, unread: the neuron groups' icons; None without groups."""
        return self._group(image_id, layer).get("groups/icons")

    def input_image(self, image_id: str) -> np.ndarray:
        """uint8 ``[S, S, 3]``: the crop the model saw."""
        return self._group(image_id)["input"][()]

    def image(self, image_id: str) -> dict:
        """Image-level entries (predictions, attributed classes) as NumPy arrays and scalars."""
        group = self._group(image_id)
        out = {"image_id": str(image_id), "path": self._paths[str(image_id)]}
        for name in ("predictions", "classes"):
            out[name] = _read_tree(group[name])
        return out

    def blocks(self, image_id: str, layer: str, *, icons: bool = True) -> dict:
        """Everything stored for one image and layer as a nested dict of NumPy arrays.

        ``icons=False`` leaves out the (large) feature-visualization images and grid vectors.
        """
        skip = () if icons else ("icons", "vectors")
        return _read_tree(self._group(image_id, layer), skip)


def _read_tree(group: h5py.Group, skip: Sequence[str] = ()) -> dict:
    out: dict[str, Any] = {key: _plain(value) for key, value in group.attrs.items()}
    for name, item in group.items():
        if name in skip:
            continue
        out[name] = _read_tree(item, skip) if isinstance(item, h5py.Group) else item[()]
    return out


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------------------
# JSON (what `model-atlas query RESULTS image ID --json` shows under "blocks")
# ---------------------------------------------------------------------------------

# Images are too large for JSON: they are listed by store key and shape instead.
_BY_REFERENCE = ("icons", "vectors")


def json_summary(store: BlocksStore, image_id: str) -> dict:
    """One image's Building Blocks as JSON-able values: every array as nested lists (floats
    to 6 significant digits), except icons and grid vectors, given as ``{"key", "shape",
    "dtype"}`` so that a reader can fetch them from the store."""
    info = store.image(image_id)
    names = store.class_names
    predictions = info["predictions"]
    classes = info["classes"]
    out = {
        "store": str(store.path),
        "predictions": [
            {"class_id": int(c), "class_name": names[c], "probability": json_number(p)}
            for c, p in zip(predictions["ids"], predictions["probabilities"])
        ],
        "classes": [
            {
                "class_id": int(c),
                "class_name": names[c],
                "logit": json_number(z),
                "probability": json_number(p),
            }
            for c, z, p in zip(classes["ids"], classes["logits"], classes["probabilities"])
        ],
        "top_class": int(classes["top"]),
        "second_class": int(classes["second"]),
        "layers": {},
    }
    for layer in store.layers:
        out["layers"][layer] = _json_tree(store._group(image_id, layer))
    return out


def _json_tree(group: h5py.Group) -> dict:
    out: dict[str, Any] = {key: _plain(value) for key, value in group.attrs.items()}
    for name, item in group.items():
        if isinstance(item, h5py.Group):
            out[name] = _json_tree(item)
        elif name in _BY_REFERENCE:
            out[name] = {"key": item.name, "shape": list(item.shape), "dtype": str(item.dtype)}
        else:
            out[name] = _json_array(item[()])
    return out


def _json_array(a: np.ndarray):
    if a.dtype.kind == "f":
        return np.vectorize(json_number, otypes=[object])(a).tolist() if a.ndim else json_number(a)
    return a.tolist()
