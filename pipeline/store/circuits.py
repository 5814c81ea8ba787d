"""The circuits store (``model-atlas.circuits``): writer, merge and reader.

Layout: docs/STORE.md, "Circuits store". One job writes one file per layer
(:func:`write_layer_file`: the same layout holding some of the layers); :func:`merge_files`
copies them into ``results/<run>/circuits.h5``; :class:`CircuitsStore` reads either. In short::

    /chain                  table name, channels: the extracted layers, in execution order
    /layers/<layer>/        every layer of the chain but the first
        from_previous       float32 [C_L, C_P]  mean attribution of channel c (row) to
                                                channel c' (column) of the previous layer
        examples            int32   [C_L]       examples each row averages
        attrs               previous, method, top_examples

The matrices are small (at most a few hundred channels a side) and read whole. The
definition is in :mod:`pipeline.circuits.compute`. No torch here.
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
    read_json_attr,
    read_table,
    refuse_other_provenance,
    settings_of,
    write_json_attr,
    write_table,
)
from pipeline.store._provenance import ProvenanceRecord

KIND, VERSIONS, VERSION = "circuits", (1,), 1
METHOD = "attribution"  # gradient x activation of the channel's activation at its maximum
CONNECTIONS = 6  # channels listed each way by default


@dataclasses.dataclass(frozen=True)
class CircuitsHeader:
    """What every file of a run holds alike, and a merge requires to agree."""

    layers: Sequence[Mapping]  # name, channels; the extracted layers in execution order
    model: Mapping  # the activations store's model description
    settings: ProvenanceRecord  # settings_json (pipeline.store.provenance), hashed into config_hash
    model_checksum: str

    @property
    def names(self) -> list[str]:
        return [str(layer["name"]) for layer in self.layers]

    def previous(self, layer: str) -> str:
        """The layer before ``layer`` in the chain; a clear error for the first or an unknown one."""
        names = self.names
        if layer not in names:
            raise StoreError(f"circuits: layer {layer!r} is not extracted; layers: {', '.join(names)}")
        index = names.index(layer)
        if index == 0:
            raise StoreError(f"circuits: {layer!r} is the first extracted layer and has no previous layer")
        return names[index - 1]


def _write_header(fh: h5py.File, header: CircuitsHeader) -> None:
    write_json_attr(fh, "model", dict(header.model))
    write_table(
        fh,
        "chain",
        {
            "name": header.names,
            "channels": np.asarray([int(layer["channels"]) for layer in header.layers], np.int64),
        },
    )
    fh.create_group("layers", track_order=True)


def _attrs(header: CircuitsHeader) -> dict:
    return {"config_hash": config_hash(dict(header.settings)), "model_checksum": header.model_checksum}


@dataclasses.dataclass(frozen=True)
class LayerCircuits:
    """One layer's circuits: ``from_previous`` float32 ``[C_L, C_P]``, ``examples`` int32
    ``[C_L]``, and ``top_examples``: how many top examples per channel were considered."""

    from_previous: np.ndarray
    examples: np.ndarray
    top_examples: int
    method: str = METHOD


def write_layer_file(path, header: CircuitsHeader, layers: Mapping[str, LayerCircuits]) -> Path:
    """Write the circuits of one or more ``layers`` to ``path`` (atomic); returns the path."""
    channels = {str(info["name"]): int(info["channels"]) for info in header.layers}
    with atomic_h5(path, KIND, VERSION, settings=header.settings, model_checksum=header.model_checksum) as fh:
        _write_header(fh, header)
        for layer, found in layers.items():
            previous = header.previous(layer)
            shape = (channels[layer], channels[previous])
            from_previous = np.asarray(found.from_previous, np.float32)
            examples = np.asarray(found.examples, np.int32)
            if from_previous.shape != shape or examples.shape != shape[:1]:
                raise ValueError(
                    f"circuits of {layer}: from_previous must be {list(shape)} and examples [{shape[0]}]; "
                    f"got {list(from_previous.shape)} and {list(examples.shape)}"
                )
            group = fh["layers"].create_group(layer)
            group.create_dataset("from_previous", data=from_previous)
            group.create_dataset("examples", data=examples)
            group.attrs["previous"] = previous
            group.attrs["method"] = str(found.method)
            group.attrs["top_examples"] = int(found.top_examples)
    return Path(path)


def merge_files(paths: Sequence[str | os.PathLike], out, header: CircuitsHeader) -> Path:
    """Copy the layer files into one store at ``out`` (atomic), in chain order.

    ``header`` is the run's (from its activations store and settings): every file must
    share its settings (``config_hash``) and model weights, and together the files must
    hold every layer of the chain but the first, once each.
    """
    expected = _attrs(header)
    described = f"the circuits settings and weights of {out}"
    found: dict[str, Path] = {}
    for path in paths:
        with open_h5(path, KIND, VERSIONS) as src:
            refuse_other_provenance(path, src.attrs, described, expected)
            for layer in src["layers"]:
                if layer in found:
                    raise StoreError(
                        f"circuits merge: layer {layer!r} is in {found[layer]} and again in {path}"
                    )
                found[layer] = Path(path)
    missing = [name for name in header.names[1:] if name not in found]
    if missing:
        raise StoreError(f"circuits merge: no file holds the circuits of {', '.join(missing)}")
    with atomic_h5(out, KIND, VERSION, settings=header.settings, model_checksum=header.model_checksum) as fh:
        _write_header(fh, header)
        for layer in header.names[1:]:
            with open_h5(found[layer], KIND, VERSIONS) as src:
                src.copy(src["layers"][layer], fh["layers"], name=layer)
    return Path(out)


class CircuitsStore(StoreReader):
    """Reader of a circuits store (merged or one layer's file).

    >>> with CircuitsStore("results/demo/circuits.h5") as store:
    ...     store.layers()                          # the extracted layers, in order
    ...     store.previous("blocks.3.0"), store.next("blocks.3.0")
    ...     store.from_previous("blocks.3.0")       # float32 [C_L, C_P]
    ...     store.connections("blocks.3.0", 42)     # upstream and downstream channels
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.fh = open_h5_handle(self.path, KIND, VERSIONS)
        try:
            chain = read_table(self.fh["chain"])
            self._channels = dict(zip(chain["name"], (int(c) for c in chain["channels"])))
            self._order = list(chain["name"])
            self.model = read_json_attr(self.fh, "model", {})
            self.settings = settings_of(self.fh)
        except BaseException:
            self.fh.close()
            raise
        self._read: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # -- the chain ----------------------------------------------------------------------
    def layers(self) -> list[str]:
        """The extracted layers in execution order (the first has no upstream)."""
        return list(self._order)

    def _index(self, layer: str) -> int:
        if layer not in self._channels:
            raise KeyError(f"{self.path}: no layer {layer!r}; layers: {', '.join(self._order)}")
        return self._order.index(layer)

    def channels(self, layer: str) -> int:
        return self._channels[self._order[self._index(layer)]]

    def previous(self, layer: str) -> str | None:
        """The layer before ``layer`` (None for the first)."""
        index = self._index(layer)
        return self._order[index - 1] if index > 0 else None

    def next(self, layer: str) -> str | None:
        """The layer after ``layer`` (None for the last)."""
        index = self._index(layer)
        return self._order[index + 1] if index + 1 < len(self._order) else None

    def has(self, layer: str) -> bool:
        """Whether this file holds ``layer``'s matrix (a layer file holds one)."""
        return layer in self.fh["layers"]

    # -- the matrices -------------------------------------------------------------------
    def _group(self, layer: str) -> h5py.Group | None:
        if self.previous(layer) is None:
            return None
        if not self.has(layer):
            held = ", ".join(self.fh["layers"]) or "none"
            raise KeyError(f"{self.path}: holds no circuits of {layer!r}; it holds {held}")
        return self.fh["layers"][layer]

    def _arrays(self, layer: str) -> tuple[np.ndarray, np.ndarray] | None:
        group = self._group(layer)
        if group is None:
            return None
        if layer not in self._read:
            self._read[layer] = (group["from_previous"][()], group["examples"][()])
        return self._read[layer]

    def from_previous(self, layer: str) -> np.ndarray | None:
        """float32 ``[C_L, C_P]``: row ``c`` is channel ``c``'s mean attribution to each channel
        of the previous layer; None for the first layer."""
        arrays = self._arrays(layer)
        return None if arrays is None else arrays[0]

    def examples(self, layer: str) -> np.ndarray:
        """int32 ``[C_L]``: the examples each row of ``from_previous`` averages (0 for the first layer)."""
        arrays = self._arrays(layer)
        return np.zeros(self.channels(layer), np.int32) if arrays is None else arrays[1]

    def info(self, layer: str) -> dict:
        """``previous``, ``method`` and ``top_examples`` of ``layer``'s matrix ({} for the first layer)."""
        group = self._group(layer)
        if group is None:
            return {}
        return {
            "previous": str(group.attrs["previous"]),
            "method": str(group.attrs["method"]),
            "top_examples": int(group.attrs["top_examples"]),
        }

    def connections(self, layer: str, channel: int, k: int = CONNECTIONS) -> dict:
        """One channel's strongest connections, as JSON-able values.

        ``upstream``: the (at most) ``k`` channels of the previous layer with the largest
        positive ``from_previous[channel, c']``, largest first; ``upstream_negative``: the
        ``k`` most negative, most negative first. ``downstream`` / ``downstream_negative``:
        the same over column ``channel`` of the next layer's matrix (the channels it feeds).
        Each is ``[{"channel", "attribution"}]``; ties go to the lower channel id.
        ``examples``: how many examples the upstream row averages (0 for the first layer).
        A layer's own file holds only its upstream matrix: its downstream lists are empty.
        """
        channels = self.channels(layer)
        if not 0 <= int(channel) < channels:
            raise ValueError(f"layer {layer} has channels 0-{channels - 1}; got {channel}")
        channel, k = int(channel), max(0, int(k))
        previous, following = self.previous(layer), self.next(layer)
        # A merged store holds every matrix; a layer's own file only its upstream one.
        up = self._arrays(layer) if previous is not None and self.has(layer) else None
        down = self._arrays(following) if following is not None and self.has(following) else None
        row = None if up is None else up[0][channel]
        column = None if down is None else down[0][:, channel]
        info = self.info(layer) if up is not None else self.info(following) if down is not None else {}
        return {
            "previous_layer": previous,
            "next_layer": following,
            "upstream": _ranked(row, k, 1),
            "upstream_negative": _ranked(row, k, -1),
            "downstream": _ranked(column, k, 1),
            "downstream_negative": _ranked(column, k, -1),
            "method": info.get("method", METHOD),
            "examples": 0 if up is None else int(up[1][channel]),
        }


def _ranked(values: np.ndarray | None, k: int, sign: int) -> list[dict]:
    """The ``k`` entries of ``values`` of the given sign with the largest magnitude, largest first."""
    if values is None or k == 0:
        return []
    values = np.asarray(values, np.float64)
    ids = np.flatnonzero(sign * values > 0)
    order = ids[np.lexsort((ids, -sign * values[ids]))][:k]
    return [{"channel": int(c), "attribution": json_number(values[c])} for c in order]
