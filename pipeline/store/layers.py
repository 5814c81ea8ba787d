"""``model/layers.json``: the model's layers, as the workflow's `layers` checkpoint found them.

Every stage plans its jobs from this file (which layers exist, their channel counts,
their aliases), the site shows it, the queries resolve aliases with it. It is written
once per run by :func:`pipeline.model.run_discover_layers` and read here, typed: a
:class:`ModelLayers` of :class:`LayerRecord`. Format: docs/STORE.md, "Model layers".

Versions: 1 (``format``/``format_version`` at the top, every field present); 0, a document
without ``format`` (written before the field existed), is read with the same code: its
missing fields take their defaults, and its atlas layer is the one the workflow chose
then (the third Building Blocks layer, or the last).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

FORMAT = "model-atlas.layers"
VERSION = 1
VERSIONS = (0, 1)


@dataclasses.dataclass(frozen=True)
class LayerRecord:
    """One layer worth visualizing (the torch-free twin of :class:`pipeline.model.LayerInfo`)."""

    name: str  # the one name: store key, URL part, CLI argument
    channels: int
    module: str | None = None  # dotted module path inside the network
    height: int | None = None  # spatial size at the model's input size
    width: int | None = None
    index: int = 0  # execution order, 0 = closest to the input
    cap: str | None = None  # class name of the bounded activation the layer ends in
    pre_activation: str | None = None  # dotted path of that activation module

    @classmethod
    def from_dict(cls, record: Mapping) -> LayerRecord:
        """From a document's layer record; keys this version does not know are ignored."""
        fields = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in record.items() if k in fields}
        return cls(**{**known, "name": str(record["name"]), "channels": int(record["channels"])})

    def to_dict(self) -> dict:
        """The document's record (keys in the order :class:`pipeline.model.LayerInfo` has)."""
        order = ("name", "module", "channels", "height", "width", "index", "cap", "pre_activation")
        return {key: getattr(self, key) for key in order}


@dataclasses.dataclass(frozen=True)
class ModelLayers:
    """The contents of ``layers.json``: the model, its weights and its layers in execution
    order, the aliases of layer names, and the layers the Building Blocks and the atlas
    use when the config says ``"model"``."""

    model: str
    layers: tuple[LayerRecord, ...]
    weights: str | None = None
    checksum: str | None = None
    input_size: int | None = None
    aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)
    blocks_layers: tuple[str, ...] = ()
    atlas_layers: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def select(self, selection: str | Sequence[str], where: str = "config") -> list[LayerRecord]:
        """The layers of a config selection, in execution order: ``"all"``, ``"model"`` (the
        model's Building Blocks layers) or names and aliases. An unknown name is a
        ValueError (``where`` says whose) that lists the layers that exist."""
        if selection == "all":
            return list(self.layers)
        if selection == "model":
            selection = self.blocks_layers
        known = set(self.names)
        chosen = set()
        for name in selection:
            canonical = self.aliases.get(name, name)
            if canonical not in known:
                raise ValueError(
                    f"{where}: layer {name!r} does not exist in model {self.model!r}; "
                    f"layers: {', '.join(self.names)}"
                )
            chosen.add(canonical)
        return [layer for layer in self.layers if layer.name in chosen]

    def select_atlas(self, selection: str | Sequence[str], where: str = "config") -> list[LayerRecord]:
        """The activation atlas's layers: ``"model"`` is the model's own atlas layer, else as
        :meth:`select`."""
        return self.select(list(self.atlas_layers) if selection == "model" else selection, where)

    def to_document(self) -> dict:
        """The JSON document (version :data:`VERSION`)."""
        return {
            "format": FORMAT,
            "format_version": VERSION,
            "model": self.model,
            "weights": self.weights,
            "checksum": self.checksum,
            "input_size": self.input_size,
            "aliases": dict(self.aliases),
            "layers": [layer.to_dict() for layer in self.layers],
            "blocks_layers": list(self.blocks_layers),
            "atlas_layers": list(self.atlas_layers),
        }

    @classmethod
    def from_document(cls, document, source: str = "layers.json") -> ModelLayers:
        """Read a document of any version in :data:`VERSIONS`; ``source`` names it in errors."""
        if isinstance(document, dict) and document.get("format", FORMAT) != FORMAT:
            raise ValueError(f"{source}: a {document['format']!r} file, not a layer list ({FORMAT!r})")
        if not isinstance(document, dict) or "layers" not in document:
            raise ValueError(f"{source}: not a layer list (no 'layers'); re-run the workflow's `layers` step")
        version = document.get("format_version") if "format" in document else 0
        if version not in VERSIONS:
            raise ValueError(
                f"{source}: layer list version {version!r}; this model-atlas reads versions "
                f"{', '.join(map(str, VERSIONS))}: re-run the workflow's `layers` step"
            )
        try:
            layers = tuple(sorted((LayerRecord.from_dict(r) for r in document["layers"]), key=_order))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: a layer record without a name or channel count ({exc!r})") from None
        blocks = tuple(document.get("blocks_layers") or ())
        atlas = tuple(document.get("atlas_layers") or ()) or _version_0_atlas_layers(blocks)
        return cls(
            model=str(document.get("model", "model")),
            layers=layers,
            weights=document.get("weights"),
            checksum=document.get("checksum"),
            input_size=document.get("input_size"),
            aliases=dict(document.get("aliases") or {}),
            blocks_layers=blocks,
            atlas_layers=atlas,
        )


def _order(layer: LayerRecord) -> int:
    return layer.index


def _version_0_atlas_layers(blocks_layers: Iterable[str]) -> tuple[str, ...]:
    """The atlas layer of a layer list written before ``atlas_layers`` existed: the third
    Building Blocks layer, or the last when there are fewer."""
    blocks = tuple(blocks_layers)
    return blocks[2:3] or blocks[-1:]


def read_layers_json(path: str | os.PathLike) -> ModelLayers:
    """The layer list at ``path`` (a FileNotFoundError or ValueError naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no layer list; run the workflow's `layers` step first")
    try:
        document = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not a layer list ({exc})") from None
    return ModelLayers.from_document(document, str(path))


def write_layers_json(path: str | os.PathLike, layers: ModelLayers) -> Path:
    """Write ``layers`` to ``path`` (version :data:`VERSION`)."""
    path = Path(path)
    path.write_text(json.dumps(layers.to_document(), indent=1))
    return path
