"""Feature visualizations: shard files, the merged store, and its lazy reader.

Layout specified in docs/STORE.md ("Feature visualization store"). In short, every
file has ``layers/<layer>/`` groups with one row per rendered channel::

    channels    int32  [K]              channel ids, strictly increasing
    images      uint8  [K, H, W, 3]     one image per chunk
    value       float32 [K]             final objective value
    activation  float32 [K]             the channel's spatial mean on its stored image (of the
                                        tensor the group's ``tensor`` attribute names)
    rank        int32  [K]              1 + channels of the layer with a larger mean there
    responses   float32 [K, C]          every channel's spatial mean on the channel's image
    image_rank  int32  [K]              (store only) 1 + the layer's rendered images on which
                                        the channel's mean is larger than on its own
    curve       float32 [K, P]          objective during optimisation, at curve_steps [P]
    diversity_images / diversity_activation      [K, D, H, W, 3] / [K, D]  (optional)
    negative_images / negative_activation        [K, H, W, 3] / [K]        (optional)
    neuron_images / neuron_activation            [K, H, W, 3] / [K]        (optional)
    filters     float32 [K, h, w, 3]    (optional; layers rendered exactly) each channel's
                                        filter: the gradient of its centre position with
                                        respect to the [0, 1] image, on its receptive field

A **shard** (``model-atlas.featurevis-shard``) holds one layer's channels in
``[start, stop)``; the **store** (``model-atlas.featurevis``) is their merge. No torch here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from pipeline.store._format import (
    StoreError,
    StoreReader,
    atomic_h5,
    json_number,
    open_h5_handle,
    provenance_of,
    read_json_attr,
    refuse_other_provenance,
    settings_of,
    write_json_attr,
)

# Version 3: each layer group records the preset and the schedule (steps, image size,
# ...) that rendered it, every channel's response to each image (``responses``) and, in
# the store, ``image_rank``. Version 2: each layer group says which tensor was optimised
# and measured (``tensor``, ``cap``); a capped layer's activation and rank may be of its
# pre-activation. Version 1 files hold outputs only.
SHARD_KIND, SHARD_VERSION = "featurevis-shard", 3
STORE_KIND, STORE_VERSION = "featurevis", 3
VERSIONS = (1, 2, 3)
OUTPUT, PRE_ACTIVATION = "output", "pre-activation"  # the values of a layer's `tensor`
RANK_DEFINITION = (
    "1 + the number of channels of the layer whose spatial mean activation "
    "(of the layer's `tensor`: output or pre-activation) "
    "on the channel's stored (uint8, untransformed) image is strictly larger "
    "than the channel's own; 1 = best, ties share the better rank"
)
IMAGE_RANK_DEFINITION = (
    "1 + the number of the layer's rendered images (one per rendered channel) on which "
    "the channel's spatial mean activation (of the layer's `tensor`) is strictly larger "
    "than on its own stored image; 1 = no other channel's image excites it more. Unlike "
    "`rank`, it does not compare channels of different scales"
)
FILTERS_DEFINITION = (
    "the gradient of the channel's value (of the layer's `tensor`) at the centre position "
    "of its map with respect to the [0, 1] input image, cropped to the union over the "
    "layer's channels of where it is non-zero (the receptive field); axes rows, columns, "
    "colours (red, green, blue); units: the channel's value per unit of the pixel's colour. "
    "Stored only for layers whose tensor is affine in the image (rendered exactly)"
)
# Per-row arrays: name -> (dtype, shape after K given the image size H, D, P and the
# layer's channels C). The extra images (diverse, negative, neuron) take their own size as H.
_ROW_ARRAYS = {
    "images": (np.uint8, lambda h, d, p, c: (h, h, 3)),
    "value": (np.float32, lambda h, d, p, c: ()),
    "activation": (np.float32, lambda h, d, p, c: ()),
    "rank": (np.int32, lambda h, d, p, c: ()),
    "responses": (np.float32, lambda h, d, p, c: (c,)),
    "curve": (np.float32, lambda h, d, p, c: (p,)),
}
_DIVERSITY_ARRAYS = {
    "diversity_images": (np.uint8, lambda h, d, p, c: (d, h, h, 3)),
    "diversity_activation": (np.float32, lambda h, d, p, c: (d,)),
}
_NEGATIVE_ARRAYS = {
    "negative_images": (np.uint8, lambda h, d, p, c: (h, h, 3)),
    "negative_activation": (np.float32, lambda h, d, p, c: ()),
}
_NEURON_ARRAYS = {
    "neuron_images": (np.uint8, lambda h, d, p, c: (h, h, 3)),
    "neuron_activation": (np.float32, lambda h, d, p, c: ()),
}


def _chunks(shape: tuple[int, ...], name: str) -> tuple[int, ...] | None:
    if name.endswith("images"):
        # One image per chunk: a page or a query reads exactly the image it shows.
        return (1,) * (len(shape) - 3) + tuple(shape[-3:])
    return None


def _create_arrays(group: h5py.Group, k: int, layout: ShardLayout) -> None:
    arrays = dict(_ROW_ARRAYS)
    if layout.diversity > 1:
        arrays.update(_DIVERSITY_ARRAYS)
    if layout.negatives:
        arrays.update(_NEGATIVE_ARRAYS)
    if layout.neurons:
        arrays.update(_NEURON_ARRAYS)
    extra_size = layout.extra_schedule.get("image_size", layout.image_size)
    for name, (dtype, tail) in arrays.items():
        size = layout.image_size if name in _ROW_ARRAYS else extra_size
        shape = (k, *tail(size, layout.diversity, len(layout.curve_steps), layout.layer_channels))
        group.create_dataset(name, shape=shape, dtype=dtype, chunks=_chunks(shape, name) if k else None)
    if layout.filter_shape:
        group.create_dataset("filters", shape=(k, *layout.filter_shape, 3), dtype=np.float32)
        group["filters"].attrs["definition"] = FILTERS_DEFINITION


# ---------------------------------------------------------------------------------
# Shards
# ---------------------------------------------------------------------------------


class ShardWriter:
    """Fills one shard row block at a time (use :func:`shard_writer`)."""

    def __init__(self, group: h5py.Group, channels: np.ndarray):
        self.group, self.channels = group, channels
        self.written = np.zeros(len(channels), dtype=bool)

    def write(self, channels: Sequence[int], arrays: Mapping[str, np.ndarray]) -> None:
        """Store ``arrays`` (``images [k, H, W, 3]``, ``value [k]``, ...) for ``channels``."""
        rows = np.searchsorted(self.channels, np.asarray(channels))
        if np.any(rows >= len(self.channels)) or np.any(
            self.channels[np.minimum(rows, len(self.channels) - 1)] != channels
        ):
            raise KeyError(f"channels {list(channels)} are not all in this shard ({self.channels.tolist()})")
        for name, values in arrays.items():
            if name not in self.group:
                raise KeyError(
                    f"shard has no array {name!r} (diversity/negatives/neurons not enabled, "
                    "or filters for a layer not rendered exactly?)"
                )
            ds = self.group[name]
            values = np.asarray(values, dtype=ds.dtype)
            if values.shape[1:] != ds.shape[1:] or len(values) != len(rows):
                raise ValueError(f"{name}: got shape {values.shape}, expected ({len(rows)}, *{ds.shape[1:]})")
            for row, value in zip(rows, values):  # rows of one batch are consecutive and few
                ds[row] = value
        self.written[rows] = True


@dataclasses.dataclass(frozen=True)
class ShardLayout:
    """What one shard holds: ``layer``'s ``channels`` (all in ``[start, stop)``, the layer
    has ``layer_channels``), and the shape of each channel's row: square images of
    ``image_size``, the objective curve sampled at ``curve_steps``, ``diversity`` diverse
    images (when more than 1), a negative image (when ``negatives``) and a neuron image
    (when ``neurons``: the channel at the centre position only), and each channel's
    filter of ``filter_shape`` ``(h, w)`` pixels (when given: a layer rendered exactly,
    :func:`pipeline.optvis.exact.effective_filters`). ``tensor`` is
    what was optimised and measured (``"output"`` or ``"pre-activation"``), ``cap`` the
    bounded activation the layer ends in (``"ReLU6"``; ``""`` for none). ``preset`` and
    ``schedule`` (steps, image_size, ... as :meth:`Schedule.to_dict` gives them) say how
    the layer was rendered, ``extra_schedule`` how its extra images were (empty: as the
    main ones)."""

    layer: str
    layer_channels: int
    channels: Sequence[int]
    start: int
    stop: int
    image_size: int
    curve_steps: Sequence[int]
    diversity: int = 1
    negatives: bool = False
    neurons: bool = False
    filter_shape: Sequence[int] = ()
    tensor: str = OUTPUT
    cap: str = ""
    preset: str = ""
    schedule: Mapping = dataclasses.field(default_factory=dict)
    extra_schedule: Mapping = dataclasses.field(default_factory=dict)


@contextlib.contextmanager
def shard_writer(
    path: str | os.PathLike, layout: ShardLayout, *, settings: Mapping, model_checksum: str = ""
) -> Iterator[ShardWriter]:
    """Write the shard ``layout`` describes to ``path``, atomically.

    ``settings`` are the run's settings only (never the shard's layer or range), so that
    every shard of a run has the same ``config_hash``. Every channel must be written
    before the block ends, or the shard is not created.
    """
    layer, layer_channels, start, stop = layout.layer, layout.layer_channels, layout.start, layout.stop
    image_size, diversity, curve_steps = layout.image_size, layout.diversity, layout.curve_steps
    if layout.tensor not in (OUTPUT, PRE_ACTIVATION) or (layout.tensor == PRE_ACTIVATION and not layout.cap):
        raise ValueError(
            f"shard {layer}: tensor {layout.tensor!r} is not {OUTPUT!r} or {PRE_ACTIVATION!r} "
            "(a pre-activation needs the layer's cap)"
        )
    channels = np.asarray(sorted(int(c) for c in layout.channels), dtype=np.int32)
    if len(set(channels.tolist())) != len(channels):
        raise ValueError(f"shard {layer} {start}-{stop}: repeated channel ids")
    if len(channels) and (channels[0] < start or channels[-1] >= stop or channels[-1] >= layer_channels):
        raise ValueError(
            f"shard {layer} {start}-{stop}: channels {channels.tolist()} outside "
            f"[{start}, {min(stop, layer_channels)})"
        )
    with atomic_h5(path, SHARD_KIND, SHARD_VERSION, settings=settings, model_checksum=model_checksum) as fh:
        fh.attrs.update({"layer": layer, "start": int(start), "stop": int(stop)})
        group = _layer_group(
            fh,
            layer,
            {
                "layer_channels": layer_channels,
                "image_size": image_size,
                "diversity": diversity,
                "tensor": layout.tensor,
                "cap": layout.cap,
                "preset": layout.preset,
                "schedule_json": json.dumps(dict(layout.schedule), sort_keys=True),
                "extra_schedule_json": json.dumps(
                    dict(layout.extra_schedule or layout.schedule), sort_keys=True
                ),
            },
        )
        group.create_dataset("channels", data=channels)
        group.create_dataset("curve_steps", data=np.asarray(curve_steps, dtype=np.int32))
        _create_arrays(group, len(channels), layout)
        writer = ShardWriter(group, channels)
        yield writer
        missing = channels[~writer.written]
        if len(missing):
            raise RuntimeError(f"shard {layer} {start}-{stop}: channels {missing.tolist()} never written")
        write_json_attr(fh, "layer_order", [layer])


def _layer_group(fh: h5py.File, layer: str, attrs: Mapping) -> h5py.Group:
    """``layers/<layer>`` with its attributes: ``layer_channels``, ``image_size``,
    ``diversity``, ``tensor``, ``cap``, ``preset`` and ``schedule_json`` from ``attrs``,
    and the rank definitions."""
    group = fh.create_group(f"layers/{layer}", track_order=True)
    group.attrs.update(
        {
            "layer_channels": int(attrs["layer_channels"]),
            "image_size": int(attrs["image_size"]),
            "diversity": int(attrs["diversity"]),
            "tensor": str(attrs["tensor"]),
            "cap": str(attrs["cap"]),
            "preset": str(attrs.get("preset", "")),
            "schedule_json": str(attrs.get("schedule_json", "{}")),
            "extra_schedule_json": str(attrs.get("extra_schedule_json", attrs.get("schedule_json", "{}"))),
            "rank_definition": RANK_DEFINITION,
            "image_rank_definition": IMAGE_RANK_DEFINITION,
        }
    )
    return group


def image_ranks(responses: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """``int32 [K]``: for row i, 1 + the rows j whose image excites channel ``channels[i]``
    more than row i's own image does (``responses [K, C]``: channel means per image)."""
    column = responses[:, channels]  # [K images, K channels]: row j, channel of row i
    own = np.diagonal(column)
    return (1 + (column > own[None, :]).sum(axis=0)).astype(np.int32)


def _tensor_attrs(group: h5py.Group) -> tuple[str, str]:
    """``(tensor, cap)`` of a layer group; version 1 groups hold outputs and say no cap."""
    return str(group.attrs.get("tensor", OUTPUT)), str(group.attrs.get("cap", ""))


# ---------------------------------------------------------------------------------
# Merge
# ---------------------------------------------------------------------------------


def merge_shards(shards: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Copy the shards' rows into one store, layer by layer in the order first seen.

    Refuses (StoreError, naming the files) shards that are missing, incomplete, of
    another kind or version, made with other settings or model weights, or whose
    channels overlap.
    """
    if not shards:
        raise StoreError(f"{out}: no shards to merge")
    handles = [open_h5_handle(p, SHARD_KIND, VERSIONS) for p in shards]
    try:
        first = handles[0]
        for p, fh in zip(shards, handles):
            refuse_other_provenance(p, fh.attrs, shards[0], first.attrs)
        by_layer: dict[str, list[tuple[str, h5py.File]]] = {}
        for p, fh in zip(shards, handles):
            by_layer.setdefault(str(fh.attrs["layer"]), []).append((str(p), fh))
        settings = provenance_of(first)  # the shards' record, unchanged
        with atomic_h5(
            out,
            STORE_KIND,
            STORE_VERSION,
            settings=settings,
            model_checksum=str(first.attrs.get("model_checksum", "")),
        ) as dst:
            for layer, parts in by_layer.items():
                _merge_layer(dst, layer, parts)
            write_json_attr(dst, "layer_order", list(by_layer))
    finally:
        for fh in handles:
            fh.close()
    return Path(out)


def _merge_layer(dst: h5py.File, layer: str, parts: list[tuple[str, h5py.File]]) -> None:
    parts = sorted(parts, key=lambda part: int(part[1].attrs["start"]))
    groups = [(p, fh[f"layers/{layer}"]) for p, fh in parts]
    channels = np.concatenate([g["channels"][()] for _, g in groups])
    if np.any(np.diff(channels) <= 0):
        raise StoreError(
            f"layer {layer}: shards {[p for p, _ in groups]} overlap "
            "(a channel appears twice); delete the stale shards and re-run"
        )
    src = groups[0][1]
    tensors = {_tensor_attrs(g) for _, g in groups}
    if len(tensors) > 1:
        raise StoreError(
            f"layer {layer}: shards {[p for p, _ in groups]} optimised different tensors "
            f"{sorted(tensors)}; delete the stale shards and re-run"
        )
    tensor, cap = tensors.pop()
    group = _layer_group(dst, layer, {**src.attrs, "tensor": tensor, "cap": cap})
    group.create_dataset("channels", data=channels)
    group.create_dataset("curve_steps", data=src["curve_steps"][()])
    names = [n for n in src if n not in ("channels", "curve_steps")]
    for name in names:
        tail = src[name].shape[1:]
        ds = group.create_dataset(
            name,
            shape=(len(channels), *tail),
            dtype=src[name].dtype,
            chunks=_chunks((len(channels), *tail), name) if len(channels) else None,
        )
        ds.attrs.update(dict(src[name].attrs))  # the filters' definition
        row = 0
        for path, g in groups:
            if name not in g or g[name].shape[1:] != tail:
                raise StoreError(f"{path}: layer {layer} array {name} missing or of another shape")
            k = g[name].shape[0]
            ds[row : row + k] = g[name][()]
            row += k
    if "responses" in group:  # version 3 shards: rank each channel's image among the layer's
        group.create_dataset("image_rank", data=image_ranks(group["responses"][()], channels))


# ---------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------


class FeatureVisStore(StoreReader):
    """Lazy read access to a feature visualization store (or one shard).

    >>> with FeatureVisStore("results/demo/featurevis.h5") as fv:
    ...     fv.layers                       # ['stem', 'blocks.0.0', ...]
    ...     fv.image("stem", 3)             # uint8 [H, W, 3]
    ...     fv.rank("stem")                 # int32 [K]
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.fh = open_h5_handle(path, (STORE_KIND, SHARD_KIND), VERSIONS)
        self._channels: dict[str, np.ndarray] = {}

    @property
    def layers(self) -> list[str]:
        """Layer names, closest to the input first."""
        return list(read_json_attr(self.fh, "layer_order", default=list(self.fh["layers"])))

    @property
    def settings(self) -> dict:
        """The settings every image was rendered with (steps, image_size, seed, ...)."""
        return settings_of(self.fh)

    @property
    def provenance(self) -> dict:
        """The whole provenance record (docs/STORE.md): stage, model, settings, derived, inputs."""
        return provenance_of(self.fh)

    @property
    def config_hash(self) -> str:
        return str(self.fh.attrs["config_hash"])

    @property
    def model_checksum(self) -> str:
        """The checksum of the weights the images were rendered with."""
        return str(self.fh.attrs.get("model_checksum", ""))

    def _group(self, layer: str) -> h5py.Group:
        if layer not in self.fh["layers"]:
            raise KeyError(f"{self.path}: no layer {layer!r}; layers: {', '.join(self.layers)}")
        return self.fh["layers"][layer]

    def channels(self, layer: str) -> np.ndarray:
        """Rendered channel ids of ``layer``, increasing: ``int32 [K]``."""
        if layer not in self._channels:
            self._channels[layer] = self._group(layer)["channels"][()]
        return self._channels[layer]

    def row(self, layer: str, channel: int) -> int:
        """The row of ``channel`` in ``layer``'s arrays."""
        channels = self.channels(layer)
        row = int(np.searchsorted(channels, channel))
        if row >= len(channels) or channels[row] != channel:
            raise KeyError(
                f"{self.path}: layer {layer!r} has no rendered channel {channel} "
                f"({len(channels)} rendered, ids {channels[:1].tolist()}..{channels[-1:].tolist()})"
            )
        return row

    def image(self, layer: str, channel: int) -> np.ndarray:
        """The feature visualization of one channel: ``uint8 [H, W, 3]``."""
        return self._group(layer)["images"][self.row(layer, channel)]

    def images(self, layer: str) -> h5py.Dataset:
        """All of ``layer``'s images, lazily: ``uint8 [K, H, W, 3]`` (rows as in :meth:`channels`)."""
        return self._group(layer)["images"]

    def rank(self, layer: str) -> np.ndarray:
        """``int32 [K]``: each channel's rank on its own image (see RANK_DEFINITION)."""
        return self._group(layer)["rank"][()]

    def image_rank(self, layer: str) -> np.ndarray | None:
        """``int32 [K]``: each channel's own image ranked among the layer's rendered images
        by the channel's response (see IMAGE_RANK_DEFINITION); None before version 3."""
        g = self._group(layer)
        return g["image_rank"][()] if "image_rank" in g else None

    def responses(self, layer: str) -> np.ndarray | None:
        """``float32 [K, C]``: every channel's spatial mean on row i's image (the population
        of ``image_rank``); None before version 3."""
        g = self._group(layer)
        return g["responses"][()] if "responses" in g else None

    def schedule(self, layer: str) -> tuple[str, dict]:
        """``(preset, schedule)``: the preset and the per-layer schedule (``steps``,
        ``image_size``, ``batch_size``, ``lr``, ...) that rendered ``layer``; before
        version 3 the run's settings, with preset ``""``."""
        g = self._group(layer)
        if "preset" in g.attrs:
            return str(g.attrs["preset"]), json.loads(str(g.attrs["schedule_json"]))
        return "", {k: self.settings.get(k) for k in ("steps", "image_size", "batch_size", "lr")}

    def extra_schedule(self, layer: str) -> dict:
        """The schedule of ``layer``'s extra images (diverse, negative, neuron): its own
        when the run gave them one (``featurevis.extra_steps``, ``extra_image_size``), else
        the main images' schedule."""
        g = self._group(layer)
        if "extra_schedule_json" in g.attrs:
            return json.loads(str(g.attrs["extra_schedule_json"]))
        return self.schedule(layer)[1]

    def describe(self, layer: str, channel: int) -> dict | None:
        """What made one channel's image and how it scores, JSON-ready; None when the
        layer or the channel was not rendered: ``preset``, ``steps``, ``image_size``,
        ``tensor``, ``cap``, ``activation``, ``rank``, ``image_rank`` (None before version 3)."""
        try:
            row = self.row(layer, channel)
        except KeyError:  # the layer or the channel was not rendered
            return None
        g = self._group(layer)
        preset, schedule = self.schedule(layer)
        tensor, cap = self.tensor(layer)
        image_rank = g["image_rank"][row] if "image_rank" in g else None
        return {
            "preset": preset or None,
            "steps": schedule.get("steps"),
            "image_size": int(g.attrs["image_size"]),
            "tensor": tensor,
            "cap": cap or None,
            "activation": json_number(g["activation"][row]),
            "rank": int(g["rank"][row]),
            "image_rank": None if image_rank is None else int(image_rank),
        }

    def value(self, layer: str) -> np.ndarray:
        """``float32 [K]``: final objective value of each image."""
        return self._group(layer)["value"][()]

    def activation(self, layer: str) -> np.ndarray:
        """``float32 [K]``: each channel's spatial mean activation on its own image (of the
        tensor :meth:`tensor` names)."""
        return self._group(layer)["activation"][()]

    def tensor(self, layer: str) -> tuple[str, str]:
        """``(tensor, cap)``: which tensor of ``layer`` was optimised and measured,
        ``"output"`` or ``"pre-activation"`` (the input of its bounded activation), and
        that activation's class name (``"ReLU6"``; ``""`` when the layer is not capped, or
        not known: version 1 files rendered outputs and did not record caps)."""
        return _tensor_attrs(self._group(layer))

    def curve(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps int32 [P], values float32 [K, P])``: the subsampled objective curve."""
        g = self._group(layer)
        return g["curve_steps"][()], g["curve"][()]

    def diversity_images(self, layer: str) -> h5py.Dataset | None:
        """``uint8 [K, D, H, W, 3]`` when the run rendered diverse sets, else None."""
        return self._group(layer).get("diversity_images")

    def negative_images(self, layer: str) -> h5py.Dataset | None:
        """``uint8 [K, H, W, 3]`` images minimising each channel, when rendered, else None."""
        return self._group(layer).get("negative_images")

    def neuron_images(self, layer: str) -> h5py.Dataset | None:
        """``uint8 [K, H, W, 3]`` images of each channel's neuron objective (the channel at
        the centre position only), when rendered, else None."""
        return self._group(layer).get("neuron_images")

    def filters(self, layer: str) -> h5py.Dataset | None:
        """``float32 [K, h, w, 3]``: each channel's filter in input-pixel units (rows,
        columns, red/green/blue; see FILTERS_DEFINITION), for a layer rendered exactly
        (its tensor is affine in the image); None for every other layer."""
        return self._group(layer).get("filters")

    def table(self, layer: str) -> dict[str, np.ndarray]:
        """Per-channel columns: channel, value, activation, rank."""
        g = self._group(layer)
        return {
            "channel": self.channels(layer),
            "value": g["value"][()],
            "activation": g["activation"][()],
            "rank": g["rank"][()],
        }

    def summary(self) -> dict[str, dict]:
        """Per layer: rendered channels, of the layer's total, preset, steps and image
        size, and the fractions of channels with rank 1 and with image rank 1."""
        out = {}
        for layer in self.layers:
            g = self._group(layer)
            rank, image_rank = g["rank"][()], self.image_rank(layer)
            preset, schedule = self.schedule(layer)
            out[layer] = {
                "rendered": int(len(rank)),
                "layer_channels": int(g.attrs["layer_channels"]),
                "preset": preset,
                "steps": schedule.get("steps"),
                "image_size": int(g.attrs["image_size"]),
                "rank1_fraction": float(np.mean(rank == 1)) if len(rank) else float("nan"),
                "image_rank1_fraction": float(np.mean(image_rank == 1))
                if image_rank is not None and len(rank)
                else float("nan"),
            }
        return out
