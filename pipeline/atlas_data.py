"""Everything the static atlas site shows, as plain data, and the adapter that reads it from a run.

:class:`AtlasData` is what :func:`pipeline.export.build_site` renders. Every part is
optional: a run that only discovered its layers gives a site with an index and empty
layer pages; feature visualizations, dataset statistics and Building Blocks appear as
their stages land. Tests build ``AtlasData`` by hand from small NumPy images.

Images are ``uint8 [H, W, 3]`` arrays, or :class:`LazyImage` (a loader called once, at
export time) so that a whole model's images never sit in memory together.

:func:`from_results` builds it from ``results/<run>/`` (``model/layers.json``,
``featurevis.h5``, ``activations.h5``, ``blocks.h5``): only the stores' public readers,
no torch.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

log = logging.getLogger(__name__)


class LazyImage:
    """A ``uint8 [H, W, 3]`` image read only when the site is written."""

    def __init__(self, load: Callable[[], np.ndarray], what: str = "image"):
        self._load, self.what = load, what

    def load(self) -> np.ndarray:
        return np.asarray(self._load())

    def __repr__(self) -> str:
        return f"LazyImage({self.what})"


Image = Union[np.ndarray, LazyImage]


def load_image(image: Image | None) -> np.ndarray | None:
    """The array of an image field (``None`` stays ``None``)."""
    if image is None:
        return None
    return image.load() if isinstance(image, LazyImage) else np.asarray(image)


# ---------------------------------------------------------------------------------
# The model, its layers and channels
# ---------------------------------------------------------------------------------

@dataclasses.dataclass
class ClassScore:
    """A class with a score: an attribution, a probability or a logit (``kind`` says which)."""

    class_id: int
    class_name: str
    score: Optional[float] = None
    images: Optional[int] = None        # images predicted as the class, when known


@dataclasses.dataclass
class Example:
    """A top dataset example of a channel: the image, where the maximum is and its crop."""

    image_id: str
    path: str
    activation: Optional[float] = None
    y: Optional[int] = None
    x: Optional[int] = None
    box: Optional[tuple[int, int, int, int]] = None    # (y0, x0, y1, x1) in the model's input crop
    crop: Optional[Image] = None                       # the receptive field of (y, x)
    label: Optional[str] = None


@dataclasses.dataclass
class Histogram:
    """``counts [B]`` images per bin of the channel's per-image maximum, ``edges [B + 1]``."""

    counts: list[int]
    edges: list[float]


@dataclasses.dataclass
class Similar:
    channel: int
    score: float


@dataclasses.dataclass
class Channel:
    """One unit of a layer and everything known about it."""

    index: int
    featurevis: Optional[Image] = None
    diversity: list[Image] = dataclasses.field(default_factory=list)
    negative: Optional[Image] = None
    featurevis_rank: Optional[int] = None       # 1 = strongest of its layer on its own image
    mean_activation: Optional[float] = None     # mean over images of the spatial maximum
    std_activation: Optional[float] = None
    active_fraction: Optional[float] = None
    attribution: Optional[float] = None         # mean attribution to the predicted class
    histogram: Optional[Histogram] = None
    examples: list[Example] = dataclasses.field(default_factory=list)
    classes: list[ClassScore] = dataclasses.field(default_factory=list)
    similar: list[Similar] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Layer:
    """A layer under its one name; ``units`` holds one :class:`Channel` per channel
    (missing ones are filled in empty by :meth:`AtlasData.normalized`)."""

    name: str
    channels: int
    module: Optional[str] = None
    height: Optional[int] = None
    width: Optional[int] = None
    units: list[Channel] = dataclasses.field(default_factory=list)
    similarity_method: Optional[str] = None     # how Channel.similar was computed, for the page

    def unit(self, index: int) -> Channel:
        return self.units[index]


@dataclasses.dataclass
class ModelInfo:
    name: str
    weights: Optional[str] = None
    input_size: Optional[int] = None
    checksum: Optional[str] = None
    class_names: list[str] = dataclasses.field(default_factory=list)
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SkippedImage:
    image_id: str
    path: str
    reason: str


@dataclasses.dataclass
class DatasetSummary:
    images: int
    skipped: list[SkippedImage] = dataclasses.field(default_factory=list)
    labelled: Optional[int] = None
    label_classes: Optional[int] = None         # distinct classes among the labels
    predicted_classes: Optional[int] = None     # distinct top-1 predictions
    attribution: Optional[str] = None           # the attribution method of the run


@dataclasses.dataclass
class ClassPage:
    """A class of the model: how often it was predicted and the channels that support it."""

    class_id: int
    class_name: str
    images: Optional[int] = None
    channels: dict[str, list[Similar]] = dataclasses.field(default_factory=dict)   # layer -> top


# ---------------------------------------------------------------------------------
# Featured images and their Building Blocks
# ---------------------------------------------------------------------------------

@dataclasses.dataclass
class SemanticDictionary:
    """``channels`` int ``[H, W, K]`` (largest first), ``values`` ``[H, W, K]``, ``magnitude [H, W]``."""

    channels: np.ndarray
    values: np.ndarray
    magnitude: np.ndarray


@dataclasses.dataclass
class ActivationGrid:
    """``icons`` uint8 ``[Hg, Wg, S, S, 3]``: one feature visualization per cell, ``magnitude [Hg, Wg]``."""

    icons: np.ndarray
    magnitude: np.ndarray


@dataclasses.dataclass
class NeuronGroups:
    """NMF groups: ``maps [G, H, W]``, ``icons`` uint8 ``[G, S, S, 3]`` (optional) and
    ``attribution [G, T]`` to the image's attributed classes."""

    maps: np.ndarray
    icons: Optional[np.ndarray] = None
    attribution: Optional[np.ndarray] = None
    target: Optional[str] = None


@dataclasses.dataclass
class ImageLayer:
    """One layer of one image. ``spatial_attribution [T, H, W]`` and ``channel_attribution [T, C]``
    follow the order of :attr:`FeaturedImage.classes`."""

    name: str
    dictionary: Optional[SemanticDictionary] = None
    grid: Optional[ActivationGrid] = None
    spatial_attribution: Optional[np.ndarray] = None
    channel_attribution: Optional[np.ndarray] = None
    groups: Optional[NeuronGroups] = None


@dataclasses.dataclass
class FeaturedImage:
    """An image with its Building Blocks (its own page)."""

    image_id: str
    path: str
    image: Optional[Image] = None                 # the crop the model saw
    label: Optional[str] = None
    predictions: list[ClassScore] = dataclasses.field(default_factory=list)   # score: probability
    classes: list[ClassScore] = dataclasses.field(default_factory=list)       # attributed, top first
    second_class: Optional[int] = None            # index into classes of the contrast class
    layers: list[ImageLayer] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class AtlasData:
    """The whole site's content. Only ``model`` is required."""

    model: ModelInfo
    layers: list[Layer] = dataclasses.field(default_factory=list)
    dataset: Optional[DatasetSummary] = None
    classes: list[ClassPage] = dataclasses.field(default_factory=list)
    images: list[FeaturedImage] = dataclasses.field(default_factory=list)
    title: Optional[str] = None
    _close: list[Callable[[], None]] = dataclasses.field(default_factory=list, repr=False)

    def layer(self, name: str) -> Layer:
        name = self.model.aliases.get(name, name)
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"unknown layer {name!r}; layers: {', '.join(l.name for l in self.layers)}")

    def normalized(self) -> "AtlasData":
        """Checks names and fills every layer's ``units`` to one per channel (in place)."""
        seen = set()
        for layer in self.layers:
            if not layer.name or "/" in layer.name or "\\" in layer.name or layer.name in (".", ".."):
                raise ValueError(f"layer name {layer.name!r} cannot name a page (no '/', '\\', '.', '..')")
            if layer.name in seen:
                raise ValueError(f"layer {layer.name!r} appears twice")
            seen.add(layer.name)
            if len(layer.units) > layer.channels:
                raise ValueError(f"layer {layer.name}: {len(layer.units)} units for {layer.channels} channels")
            by_index = {u.index: u for u in layer.units}
            layer.units = [by_index.get(i) or Channel(i) for i in range(layer.channels)]
        ids = [img.image_id for img in self.images]
        if len(set(ids)) != len(ids):
            raise ValueError("featured images: an image id appears twice")
        return self

    def close(self) -> None:
        for close in reversed(self._close):
            close()
        self._close.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------
# Most similar channels
# ---------------------------------------------------------------------------------

SIMILARITY_METHOD = ("Pearson correlation of the channels' per-image maximum activations "
                     "over the {n} dataset images")


def correlation_neighbours(maxima: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``maxima [N, C]`` (per-image maximum of each channel) -> ``ids [C, k]``, ``scores [C, k]``.

    Row ``c`` lists the other channels by Pearson correlation with ``c`` across images,
    highest first (lower id first on ties). Constant channels and NaN rows (images a
    shard gap left empty) give no neighbours: ``-1`` ids and NaN scores pad the rows.
    """
    x = np.asarray(maxima, np.float64)
    x = x[~np.isnan(x).any(axis=1)] if x.size else x
    n, c = x.shape
    k = max(0, min(int(k), c - 1))
    ids = np.full((c, k), -1, np.int64)
    scores = np.full((c, k), np.nan)
    if n < 2 or k == 0:
        return ids, scores
    centred = x - x.mean(axis=0)
    norms = np.sqrt((centred ** 2).sum(axis=0))
    varies = norms > 1e-12 * max(1.0, float(np.abs(x).max()))
    unit = np.where(varies, centred / np.where(varies, norms, 1.0), 0.0)
    corr = unit.T @ unit
    corr[~varies, :] = np.nan
    corr[:, ~varies] = np.nan
    np.fill_diagonal(corr, np.nan)
    for channel in range(c):
        row = corr[channel]
        valid = np.flatnonzero(~np.isnan(row))
        order = valid[np.lexsort((valid, -row[valid]))][:k]
        ids[channel, :len(order)] = order
        scores[channel, :len(order)] = np.clip(row[order], -1.0, 1.0)
    return ids, scores


# ---------------------------------------------------------------------------------
# The adapter: a run folder -> AtlasData
# ---------------------------------------------------------------------------------

def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def from_results(run_dir, *, top_examples: int = 12, top_classes: int = 10, similar: int = 8,
                 class_channels: int = 8, title: str | None = None) -> AtlasData:
    """Read a run folder into :class:`AtlasData` (images stay lazy; call ``close()`` after export).

    Uses whatever exists: ``model/layers.json`` is required; ``featurevis.h5``,
    ``activations.h5`` and ``blocks.h5`` each add their part.
    """
    run_dir = Path(run_dir)
    layers_json = run_dir / "model" / "layers.json"
    if not layers_json.is_file():
        raise FileNotFoundError(f"{layers_json}: no layer list; run the workflow's `layers` step first")
    try:
        info = json.loads(layers_json.read_text())
        layer_records = info["layers"]
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{layers_json}: not a layer list ({exc})") from exc
    model = ModelInfo(name=str(info.get("model", "model")), weights=info.get("weights"),
                      input_size=info.get("input_size"), checksum=info.get("checksum"),
                      aliases=dict(info.get("aliases", {})))
    layers = [Layer(name=r["name"], channels=int(r["channels"]), module=r.get("module"),
                    height=r.get("height"), width=r.get("width"))
              for r in sorted(layer_records, key=lambda r: r.get("index", 0))]
    data = AtlasData(model=model, layers=layers, title=title).normalized()
    try:
        labels = _add_activations(data, run_dir, top_examples, top_classes, similar, class_channels)
        _add_featurevis(data, run_dir)
        _add_blocks(data, run_dir, labels)
    except BaseException:
        data.close()
        raise
    return data


def _add_activations(data: AtlasData, run_dir: Path, top_examples: int, top_classes: int,
                     similar: int, class_channels: int) -> dict[str, str]:
    """Dataset summary, per-channel statistics and examples, class pages; returns image labels."""
    path = run_dir / "activations.h5"
    if not path.is_file():
        log.info("%s: absent; the site shows no dataset examples or statistics", path)
        return {}
    from pipeline.query import open_results
    results = open_results(run_dir)
    data._close.append(results.close)
    store = results.store
    data.model.class_names = list(store.class_names)
    data.model.aliases.update(results.aliases)
    if store.model.get("input_size") and not data.model.input_size:
        data.model.input_size = int(store.model["input_size"])
    summary = results.summary()
    labels = [c for c in store.images["label_class"] if c >= 0]
    top1 = np.asarray(store.dataset("predictions/top_ids")[:, 0]) if store.num_images else np.zeros(0)
    data.dataset = DatasetSummary(
        images=summary["images"], labelled=summary["labelled_images"],
        skipped=[SkippedImage(s["image_id"], s["path"], s["reason"]) for s in summary["skipped_images"]],
        label_classes=len(set(labels)), predicted_classes=len(set(top1[top1 >= 0].tolist())),
        attribution=summary["attribution"])
    class_scores: dict[int, dict[str, list[Similar]]] = {}
    class_counts: dict[int, int] = {}
    for layer in data.layers:
        if layer.name not in store.layers:
            continue
        _add_layer_activations(results, layer, top_examples, top_classes, similar)
        group = store.fh[f"layers/{layer.name}"]
        if "classes" in group and "attribution" in group["classes"]:
            scores = np.asarray(group["classes/attribution"][()], np.float64)       # [C, K]
            counts = np.asarray(group["classes/count"][()])
            for class_id in np.flatnonzero(counts > 0).tolist():
                column = scores[:, class_id]
                valid = np.flatnonzero(~np.isnan(column))
                best = valid[np.lexsort((valid, -column[valid]))][:class_channels]
                class_scores.setdefault(class_id, {})[layer.name] = [
                    Similar(int(c), float(column[c])) for c in best]
                class_counts[class_id] = int(counts[class_id])
    names = data.model.class_names
    data.classes = [ClassPage(c, names[c], class_counts[c], class_scores[c]) for c in sorted(class_scores)]
    return {i: label for i, label in zip(store.images["image_id"], store.images["label"]) if label}


def _add_layer_activations(results, layer: Layer, top_examples: int, top_classes: int,
                           similar: int) -> None:
    store, name = results.store, layer.name
    stats = store.group(name, "stats")
    means, stds = stats["mean"][()], stats["std"][()]
    active = stats["active_fraction"][()]
    edges, counts = stats["hist_edges"][()], stats["hist_counts"][()]
    group = store.fh[f"layers/{name}"]
    attribution = None
    if "classes" in group and "attribution" in group["classes"]:
        # The mean attribution over all images: the per-class means weighted by their counts.
        per_class = np.asarray(group["classes/attribution"][()], np.float64)
        weights = np.asarray(group["classes/count"][()], np.float64)
        total = weights.sum()
        if total > 0:
            attribution = np.nansum(per_class * weights[None, :], axis=1) / total
    ids = scores = None
    if similar > 0 and store.num_images >= 2:
        maxima = results.activations(name)["max"].compute()
        ids, scores = correlation_neighbours(maxima, similar)
        layer.similarity_method = SIMILARITY_METHOD.format(n=len(maxima))
    # Whole-layer reads: one h5py read per array, not one per channel and rank.
    top = {key: ds[()] for key, ds in store.group(name, "top").items()}
    classes = store.group(name, "classes") if "classes" in group else None
    class_ids = classes["top_ids"][()] if classes is not None and "top_ids" in classes else None
    class_scores = classes["top_scores"][()] if class_ids is not None else None
    class_counts = classes["count"][()] if class_ids is not None else None
    thumbnails = store.dataset(f"layers/{name}/thumbnails")
    images, names = store.images, store.class_names
    for unit in layer.units:
        c = unit.index
        unit.mean_activation, unit.std_activation = _num(means[c]), _num(stds[c])
        unit.active_fraction = _num(active[c])
        unit.attribution = None if attribution is None else _num(attribution[c])
        unit.histogram = Histogram([int(v) for v in counts[c]], [float(v) for v in edges[c]])
        unit.examples = []
        for rank in range(min(top_examples, top["row"].shape[1])):
            row = int(top["row"][c, rank])
            if row < 0:
                break
            index = int(top["thumbnail"][c, rank])
            unit.examples.append(Example(
                images["image_id"][row], images["path"][row], _num(top["value"][c, rank]),
                int(top["y"][c, rank]), int(top["x"][c, rank]), tuple(int(v) for v in top["box"][c, rank]),
                LazyImage(lambda i=index: thumbnails[i], f"{name}:{c} example {rank}"),
                images["label"][row] or None))
        unit.classes = [] if class_ids is None else [
            ClassScore(int(k), names[k], _num(score), int(class_counts[k]))
            for k, score in zip(class_ids[c][:top_classes], class_scores[c][:top_classes]) if k >= 0]
        if ids is not None:
            unit.similar = [Similar(int(i), float(s)) for i, s in zip(ids[c], scores[c]) if i >= 0]


def _add_featurevis(data: AtlasData, run_dir: Path) -> None:
    path = run_dir / "featurevis.h5"
    if not path.is_file():
        log.info("%s: absent; the site shows no feature visualizations", path)
        return
    from pipeline.store.featurevis import FeatureVisStore
    store = FeatureVisStore(path)
    data._close.append(store.close)
    rendered = set(store.layers)
    for layer in data.layers:
        if layer.name not in rendered:
            continue
        images = store.images(layer.name)
        diversity = store.diversity_images(layer.name)
        negative = store.negative_images(layer.name)
        ranks = store.rank(layer.name)
        for row, c in enumerate(store.channels(layer.name).tolist()):
            if not 0 <= c < layer.channels:
                raise ValueError(f"{path}: layer {layer.name} has channel {c}, but the model's layer "
                                 f"has {layer.channels} channels")
            unit, what = layer.units[c], f"{layer.name}:{c}"
            # Defaults bind this layer's datasets now (a closure would see the last layer's).
            unit.featurevis = LazyImage(lambda r=row, ds=images: ds[r], f"featurevis {what}")
            unit.featurevis_rank = int(ranks[row])
            if diversity is not None:
                unit.diversity = [LazyImage(lambda r=row, d=d, ds=diversity: ds[r, d], f"diversity {d} {what}")
                                  for d in range(diversity.shape[1])]
            if negative is not None:
                unit.negative = LazyImage(lambda r=row, ds=negative: ds[r], f"negative {what}")


def _add_blocks(data: AtlasData, run_dir: Path, labels: dict[str, str]) -> None:
    path = run_dir / "blocks.h5"
    if not path.is_file():
        log.info("%s: absent; the site has no image pages", path)
        return
    from pipeline.store.blocks import BlocksStore
    store = BlocksStore(path)
    data._close.append(store.close)
    names = list(store.class_names) or data.model.class_names
    if not data.model.class_names:
        data.model.class_names = names
    order = {layer.name: i for i, layer in enumerate(data.layers)}
    for image_id in sorted(store.image_ids):
        top = store.image(image_id)
        preds, cls = top["predictions"], top["classes"]
        class_ids = [int(c) for c in np.asarray(cls.get("ids", []))]
        featured = FeaturedImage(
            image_id=image_id, path=top["path"],
            image=LazyImage(lambda i=image_id: store.input_image(i), f"input {image_id}"),
            label=labels.get(image_id),
            predictions=[ClassScore(int(c), names[int(c)], float(p)) for c, p in
                         zip(np.asarray(preds.get("ids", [])), np.asarray(preds.get("probabilities", [])))],
            classes=[ClassScore(c, names[c]) for c in class_ids],
            second_class=int(cls["second_index"]) if "second_index" in cls else None)
        for name in sorted(store.layers, key=lambda n: order.get(n, len(order))):
            b = store.blocks(image_id, name)
            d, g, a, groups = (b.get(k, {}) for k in ("dictionary", "grid", "attribution", "groups"))
            featured.layers.append(ImageLayer(
                name=name,
                dictionary=SemanticDictionary(d["channels"], d["values"], d["magnitude"]) if "channels" in d else None,
                grid=ActivationGrid(g["icons"], g["magnitude"]) if "icons" in g else None,
                spatial_attribution=a.get("spatial"), channel_attribution=a.get("channel"),
                groups=NeuronGroups(groups["maps"], groups.get("icons"), groups.get("attribution"),
                                    groups.get("target")) if "maps" in groups else None))
        data.images.append(featured)
