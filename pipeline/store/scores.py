"""The scores store (``model-atlas.scores``): per-unit trust scores, writer, merge and reader.

Layout: docs/STORE.md, "Scores store". The ``scores`` job writes one file per layer
(``scores/parts/<layer>.h5``, the same layout holding one layer, so that a job killed half
way resumes at the next layer) and copies them into ``results/<run>/scores.h5``. In short::

    /layers/<layer>/            attrs channels, clarity_random, selectivity_classes,
                                embedding_layer, image_size, path_layers_json
        scores                  table: channel, then one column per score
        path/similarity         float32 [C, P]  per earlier layer: the visualization's cosine
                                                to its top examples' path
        path/floor              float32 [C, P]  the lowest cosine of any natural crop

The definitions are in :mod:`pipeline.scores.compute` and :mod:`pipeline.scores.definitions`.
No torch here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.store._format import (
    StoreError,
    StoreReader,
    atomic_h5,
    config_hash,
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

KIND, VERSIONS, VERSION = "scores", (1,), 1
# Columns every layer's table holds, besides the scores of pipeline.scores.definitions.
EXTRA_COLUMNS = ("channel", "visualization_max", "dataset_max", "selectivity_class")


@dataclasses.dataclass(frozen=True)
class LayerScores:
    """One layer's scores: ``columns`` (name -> ``[C]`` array, ``channel`` first),
    ``path_similarity`` and ``path_floor`` ``[C, P]`` over ``path_layers`` (the earlier
    layers, in order), and the layer's ``clarity_random`` (mean pairwise cosine of random
    crops), ``selectivity_classes`` (``label`` or ``predicted``), ``embedding_layer`` and
    ``image_size`` (the side every image was resized to)."""

    columns: Mapping[str, np.ndarray]
    path_similarity: np.ndarray
    path_floor: np.ndarray
    path_layers: Sequence[str]
    clarity_random: float
    selectivity_classes: str
    embedding_layer: str
    image_size: int


def _write_layer(layers_group, layer: str, found: LayerScores) -> None:
    columns = {name: np.asarray(values) for name, values in found.columns.items()}
    channels = len(columns["channel"])
    shape = (channels, len(found.path_layers))
    if np.shape(found.path_similarity) != shape or np.shape(found.path_floor) != shape:
        raise ValueError(
            f"scores of {layer}: path arrays must be {list(shape)}; got "
            f"{list(np.shape(found.path_similarity))} and {list(np.shape(found.path_floor))}"
        )
    group = layers_group.create_group(layer)
    write_table(group, "scores", columns)
    path = group.create_group("path")
    path.create_dataset("similarity", data=np.asarray(found.path_similarity, np.float32).reshape(shape))
    path.create_dataset("floor", data=np.asarray(found.path_floor, np.float32).reshape(shape))
    group.attrs["channels"] = channels
    group.attrs["clarity_random"] = float(found.clarity_random)
    group.attrs["selectivity_classes"] = str(found.selectivity_classes)
    group.attrs["embedding_layer"] = str(found.embedding_layer)
    group.attrs["image_size"] = int(found.image_size)
    write_json_attr(group, "path_layers", list(found.path_layers))


def write_layer_file(path, layer: str, found: LayerScores, settings: ProvenanceRecord, model_checksum: str):
    """One layer's scores into ``path`` (atomic): a part file of the ``scores`` job."""
    with atomic_h5(path, KIND, VERSION, settings=settings, model_checksum=model_checksum) as fh:
        write_json_attr(fh, "layer_order", [layer])
        _write_layer(fh.create_group("layers", track_order=True), layer, found)
    return Path(path)


def part_matches(path, settings: ProvenanceRecord, model_checksum: str) -> bool:
    """Whether the part file ``path`` exists, is complete and was made with these settings
    and weights (then a resumed job keeps it)."""
    try:
        with open_h5(path, KIND, VERSIONS) as fh:
            return fh.attrs["config_hash"] == config_hash(dict(settings)) and str(
                fh.attrs["model_checksum"]
            ) == str(model_checksum)
    except (OSError, StoreError, KeyError):
        return False


def merge_files(parts: Mapping[str, str | os.PathLike], out, settings: ProvenanceRecord, model_checksum: str):
    """Copy the part files (layer -> file, in layer order) into one store at ``out``
    (atomic); every part must carry ``settings`` and the weights ``model_checksum``."""
    expected = {"config_hash": config_hash(dict(settings)), "model_checksum": model_checksum}
    with atomic_h5(out, KIND, VERSION, settings=settings, model_checksum=model_checksum) as fh:
        write_json_attr(fh, "layer_order", list(parts))
        layers = fh.create_group("layers", track_order=True)
        for layer, path in parts.items():
            with open_h5(path, KIND, VERSIONS) as src:
                refuse_other_provenance(
                    path, src.attrs, f"the scores settings and weights of {out}", expected
                )
                if layer not in src["layers"]:
                    raise StoreError(f"scores merge: {path} holds no scores of {layer!r}")
                src.copy(src["layers"][layer], layers, name=layer)
    return Path(out)


class ScoresStore(StoreReader):
    """Reader of a scores store (merged or one layer's part).

    >>> with ScoresStore("results/demo/scores.h5") as store:
    ...     store.layers()                      # layers in execution order
    ...     store.table("blocks.3.0")           # {column: [C] array}
    ...     store.info("blocks.3.0")            # clarity_random, path_layers, ...
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.fh = open_h5_handle(self.path, KIND, VERSIONS)
        try:
            self._order = list(read_json_attr(self.fh, "layer_order", []))
            self.settings = settings_of(self.fh)
        except BaseException:
            self.fh.close()
            raise

    def layers(self) -> list[str]:
        return list(self._order)

    def _group(self, layer: str):
        if layer not in self.fh["layers"]:
            raise KeyError(f"{self.path}: no scores of layer {layer!r}; layers: {', '.join(self._order)}")
        return self.fh["layers"][layer]

    def table(self, layer: str) -> dict[str, np.ndarray]:
        """Every column of ``layer``'s table as a ``[C]`` NumPy array, in stored order."""
        return {name: np.asarray(values) for name, values in read_table(self._group(layer)["scores"]).items()}

    def path_arrays(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """``(similarity, floor)``, float32 ``[C, P]`` over ``info(layer)["path_layers"]``."""
        path = self._group(layer)["path"]
        return path["similarity"][()], path["floor"][()]

    def info(self, layer: str) -> dict:
        group = self._group(layer)
        return {
            "channels": int(group.attrs["channels"]),
            "clarity_random": float(group.attrs["clarity_random"]),
            "selectivity_classes": str(group.attrs["selectivity_classes"]),
            "embedding_layer": str(group.attrs["embedding_layer"]),
            "image_size": int(group.attrs["image_size"]),
            "path_layers": list(read_json_attr(group, "path_layers", [])),
        }
