"""The adapter from a run folder to :class:`~pipeline.site.data.AtlasData`.

:func:`from_results` reads ``results/<run>/`` (``model/layers.json``, ``featurevis.h5``,
``activations.h5``, ``blocks.h5``) with the stores' public readers only, no torch, and
leaves images lazy. It also decides what pages show of the files the workflow read:
:func:`shown_path`, never an absolute path of the machine that ran it.
"""
from __future__ import annotations

import json
import logging
import math
import posixpath
from pathlib import Path

import numpy as np

from pipeline.site.data import (ActivationGrid, AtlasData, ClassPage, ClassScore, DatasetSummary,
                                 Example, FeaturedImage, Histogram, ImageLayer, LazyImage, Layer,
                                 ModelInfo, NeuronGroups, SemanticDictionary, Similar, SkippedImage)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------
# The adapter: a run folder -> AtlasData
# ---------------------------------------------------------------------------------

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
    model = ModelInfo(name=str(info.get("model", "model")), weights=shown_weights(info.get("weights")),
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


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _add_activations(data: AtlasData, run_dir: Path, top_examples: int, top_classes: int,
                     similar: int, class_channels: int) -> dict[str, str]:
    """Dataset summary, per-channel statistics and examples, class pages; returns image labels."""
    from pipeline.query import open_results
    results = _open_if_present(data, run_dir / "activations.h5", lambda _: open_results(run_dir),
                               "the site shows no dataset examples or statistics")
    if results is None:
        return {}
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
        skipped=[SkippedImage(s["image_id"], shown_path(s["image_id"], s["path"]), s["reason"])
                 for s in summary["skipped_images"]],
        label_classes=len(set(labels)), predicted_classes=len(set(top1[top1 >= 0].tolist())),
        attribution=summary["attribution"])
    class_scores: dict[int, dict[str, list[Similar]]] = {}
    class_counts: dict[int, int] = {}
    for layer in data.layers:
        if layer.name not in store.layers:
            continue
        by_class = _class_attribution(store.fh[f"layers/{layer.name}"])
        _add_layer_activations(results, layer, top_examples, top_classes, similar, by_class)
        if by_class is not None:
            scores, counts = by_class
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


def _class_attribution(group) -> tuple[np.ndarray, np.ndarray] | None:
    """A layer's ``classes/attribution`` ``[C, K]`` (float64) and ``classes/count`` ``[K]``,
    read once; None when the run extracted no attribution."""
    if "classes" not in group or "attribution" not in group["classes"]:
        return None
    return (np.asarray(group["classes/attribution"][()], np.float64),
            np.asarray(group["classes/count"][()]))


def _add_layer_activations(results, layer: Layer, top_examples: int, top_classes: int,
                           similar: int, by_class) -> None:
    store, name = results.store, layer.name
    stats = store.group(name, "stats")
    means, stds = stats["mean"][()], stats["std"][()]
    active = stats["active_fraction"][()]
    edges, counts = stats["hist_edges"][()], stats["hist_counts"][()]
    group = store.fh[f"layers/{name}"]
    attribution = None
    if by_class is not None:
        # The mean attribution over all images: the per-class means weighted by their counts.
        per_class, weights = by_class[0], by_class[1].astype(np.float64)
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
    class_counts = by_class[1] if class_ids is not None else None
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
            image_id = images["image_id"][row]
            unit.examples.append(Example(
                image_id, shown_path(image_id, images["path"][row]), _num(top["value"][c, rank]),
                int(top["y"][c, rank]), int(top["x"][c, rank]), tuple(int(v) for v in top["box"][c, rank]),
                LazyImage(lambda i=index: thumbnails[i], f"{name}:{c} example {rank}"),
                images["label"][row] or None))
        unit.classes = [] if class_ids is None else [
            ClassScore(int(k), names[k], _num(score), int(class_counts[k]))
            for k, score in zip(class_ids[c][:top_classes], class_scores[c][:top_classes]) if k >= 0]
        if ids is not None:
            unit.similar = [Similar(int(i), float(s)) for i, s in zip(ids[c], scores[c]) if i >= 0]


def _open_if_present(data: AtlasData, path: Path, reader, without: str):
    """``reader(path)``, closed with ``data``; None (logged) when the run has no such store."""
    if not path.is_file():
        log.info("%s: absent; %s", path, without)
        return None
    store = reader(path)
    data._close.append(store.close)
    return store


def _add_featurevis(data: AtlasData, run_dir: Path) -> None:
    from pipeline.store.featurevis import FeatureVisStore
    path = run_dir / "featurevis.h5"
    store = _open_if_present(data, path, FeatureVisStore, "the site shows no feature visualizations")
    if store is None:
        return
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
    from pipeline.store.blocks import BlocksStore
    path = run_dir / "blocks.h5"
    store = _open_if_present(data, path, BlocksStore, "the site has no image pages")
    if store is None:
        return
    names = list(store.class_names) or data.model.class_names
    if not data.model.class_names:
        data.model.class_names = names
    order = {layer.name: i for i, layer in enumerate(data.layers)}
    for image_id in sorted(store.image_ids):
        top = store.image(image_id)
        preds, cls = top["predictions"], top["classes"]
        class_ids = [int(c) for c in np.asarray(cls.get("ids", []))]
        featured = FeaturedImage(
            image_id=image_id, path=shown_path(image_id, top["path"]),
            image=LazyImage(lambda i=image_id: store.input_image(i), f"input {image_id}"),
            label=labels.get(image_id),
            predictions=[ClassScore(int(c), names[int(c)], float(p)) for c, p in
                         zip(np.asarray(preds.get("ids", [])), np.asarray(preds.get("probabilities", [])))],
            classes=[ClassScore(c, names[c]) for c in class_ids],
            second_class=int(cls["second_index"]) if "second_index" in cls else None)
        for name in sorted(store.layers, key=lambda n: order.get(n, len(order))):
            # Small arrays now; the icons stay in the file until a page is written.
            b = store.blocks(image_id, name, icons=False)
            stored = store.group(image_id, name)
            grid_icons, group_icons = (stored[key] if key in stored else None
                                       for key in ("grid/icons", "groups/icons"))
            d, g, a, groups = (b.get(k, {}) for k in ("dictionary", "grid", "attribution", "groups"))
            featured.layers.append(ImageLayer(
                name=name,
                dictionary=SemanticDictionary(d["channels"], d["values"], d["magnitude"]) if "channels" in d else None,
                grid=ActivationGrid(grid_icons, g["magnitude"]) if grid_icons is not None else None,
                spatial_attribution=a.get("spatial"), channel_attribution=a.get("channel"),
                groups=NeuronGroups(groups["maps"], group_icons, groups.get("attribution"),
                                    groups.get("target")) if "maps" in groups else None))
        data.images.append(featured)


# ---------------------------------------------------------------------------------
# Paths on pages
# ---------------------------------------------------------------------------------

def shown_path(image_id: str, path: str) -> str:
    """What a page shows of an image file: its path relative to the dataset source root,
    else its file name.

    The stores record ``path`` absolute, on the machine that ran the workflow, and an
    image id that :mod:`pipeline.images.dataset` makes the POSIX path relative to the source
    root (a manifest's row as written, relative to the manifest's folder; a featured
    image given as a file: its name). So the relative path is the id whenever ``path``
    ends with it; a manifest row written absolute or reaching out with ``..`` shows
    the file name.
    """
    posix = str(path).replace("\\", "/")
    relative = posixpath.normpath(str(image_id).replace("\\", "/")) if image_id else ""
    inside = relative not in ("", ".", "..") and not relative.startswith(("/", "../"))
    if inside and posix.endswith("/" + relative):
        return relative
    return posixpath.basename(posix)


def shown_weights(weights: str | None) -> str | None:
    """``pretrained`` and ``random`` as they are; a weights file by its name only."""
    return None if weights is None else posixpath.basename(str(weights).replace("\\", "/"))


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
