"""The adapter from a run folder to :class:`~pipeline.site.data.AtlasData`.

:func:`from_results` reads ``results/<run>/`` (``model/layers.json``, ``featurevis.h5``,
``activations.h5``, ``blocks.h5``, ``circuits.h5``, ``atlas.h5``, ``scores.h5``) with the
stores' public readers only, no torch, and leaves images lazy. It also decides what pages
show of the files the workflow read: :func:`shown_path`, never an absolute path of the
machine that ran it.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path

import numpy as np

from pipeline.extract.similarity import SIMILARITY_METHOD, correlation_neighbours, nearest_channels
from pipeline.labels.layers import layer_labels
from pipeline.labels.rule import LabelSettings
from pipeline.labels.units import cell_class_images, cell_labels, group_labels
from pipeline.ranking import top_order
from pipeline.site.data import (
    ActivationAtlas,
    ActivationGrid,
    AtlasCell,
    AtlasData,
    AtlasLevel,
    Circuits,
    ClassPage,
    ClassScore,
    Connection,
    DatasetSummary,
    Example,
    FeaturedImage,
    Flows,
    Histogram,
    ImageLayer,
    Layer,
    LazyImage,
    ModelInfo,
    NeuronGroups,
    SemanticDictionary,
    Similar,
    SkippedImage,
)
from pipeline.site.settings import SiteSettings
from pipeline.store import RunFiles, finite_number, read_layers_json

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------
# The adapter: a run folder -> AtlasData
# ---------------------------------------------------------------------------------


def from_results(
    run_dir, settings: SiteSettings | None = None, labels: LabelSettings | None = None
) -> AtlasData:
    """Read a run folder into :class:`AtlasData` (images stay lazy; call ``close()`` after export).

    Uses whatever exists: ``model/layers.json`` is required; ``featurevis.h5``,
    ``activations.h5``, ``blocks.h5``, ``circuits.h5``, ``atlas.h5`` and ``scores.h5`` each
    add their part. ``settings`` (default: the
    schema's defaults) decide how many examples, classes and similar channels to keep;
    ``labels`` how channels, neuron groups and atlas cells are labelled (default: as the
    run's channel labels were, by its ``labels:`` settings, which activations.h5 records).
    """
    settings = settings or SiteSettings()
    files = RunFiles(run_dir)
    info = read_layers_json(files.layers_json)
    model = ModelInfo(
        name=info.model,
        weights=shown_weights(info.weights),
        input_size=info.input_size,
        checksum=info.checksum,
        aliases=dict(info.aliases),
    )
    layers = [
        Layer(
            name=r.name,
            channels=r.channels,
            module=r.module,
            height=r.height,
            width=r.width,
            cap=r.cap,
        )
        for r in info.layers
    ]
    data = AtlasData(model=model, layers=layers, title=settings.title).normalized()
    try:
        image_labels, evidence, labels = _add_activations(data, files, settings, labels)
        _add_featurevis(data, files)
        _add_circuits(data, files, settings)
        _add_scores(data, files)
        _add_atlases(data, files, settings, labels)
        _add_blocks(data, files, image_labels, evidence, labels)
    except BaseException:
        data.close()
        raise
    return data


def _add_activations(
    data: AtlasData, files: RunFiles, settings: SiteSettings, label_settings: LabelSettings | None
) -> tuple[dict[str, str], dict, LabelSettings]:
    """Dataset summary, per-channel statistics and examples, class pages; returns the
    images' (dataset) labels, each layer's ``ClassAttribution`` (what neuron groups are
    labelled from) and the label settings (``label_settings``, else the run's)."""
    from pipeline.query import open_results

    results = _open_if_present(
        data,
        files.activations,
        lambda _: open_results(files.root),
        "the site shows no dataset examples or statistics",
    )
    if results is None:
        return {}, {}, label_settings or LabelSettings()
    label_settings = label_settings or results.label_settings
    store = results.store
    data.model.class_names = list(store.class_names)
    data.model.label_hierarchy = label_settings.hierarchy
    data.model.aliases.update(results.aliases)
    if store.model.get("input_size") and not data.model.input_size:
        data.model.input_size = int(store.model["input_size"])
    summary = results.summary()
    labels = [c for c in store.images["label_class"] if c >= 0]
    top1 = store.predicted_classes()
    data.dataset = DatasetSummary(
        images=summary["images"],
        labelled=summary["labelled_images"],
        skipped=[
            SkippedImage(s["image_id"], shown_path(s["image_id"], s["path"]), s["reason"])
            for s in summary["skipped_images"]
        ],
        label_classes=len(set(labels)),
        predicted_classes=len(set(top1[top1 >= 0].tolist())),
        attribution=summary["attribution"],
    )
    class_scores: dict[int, dict[str, list[Similar]]] = {}
    class_counts: dict[int, int] = {}
    evidence = {}
    for layer in data.layers:
        if layer.name not in store.layers:
            continue
        classes = store.classes(layer.name)
        # The labels stored, or computed for older stores: the query API's own call.
        labels = layer_labels(store, layer.name, label_settings)
        _add_layer_activations(store, layer, settings, classes, labels)
        if classes is not None:
            evidence[layer.name] = classes
            for class_id, best in _channels_by_class(classes, settings.class_channels).items():
                class_scores.setdefault(class_id, {})[layer.name] = best
                class_counts[class_id] = int(classes.count[class_id])
    names = data.model.class_names
    data.classes = [ClassPage(c, names[c], class_counts[c], class_scores[c]) for c in sorted(class_scores)]
    image_labels = {i: label for i, label in zip(store.images["image_id"], store.images["label"]) if label}
    return image_labels, evidence, label_settings


def _channels_by_class(classes, k: int) -> dict[int, list[Similar]]:
    """Per class ever predicted, the ``k`` channels of the layer with the highest positive
    mean attribution to it (supporting it), then the ``k`` with the most negative (opposing
    it), from a ``ClassAttribution``; lower channel first on ties."""
    scores = np.asarray(classes.attribution, np.float64)
    out = {}
    for class_id in np.flatnonzero(classes.count > 0).tolist():
        column = scores[:, class_id]
        valid = np.flatnonzero(~np.isnan(column))
        down = valid[np.lexsort((valid, -column[valid]))]
        up = valid[np.lexsort((valid, column[valid]))]
        supporting = [c for c in down if column[c] > 0][:k]
        opposing = [c for c in up if column[c] < 0][:k]
        out[class_id] = [Similar(int(c), float(column[c])) for c in supporting + opposing]
    return out


def _add_layer_activations(store, layer: Layer, settings: SiteSettings, classes, labels) -> None:
    """One layer's statistics, examples, classes and similar channels, onto its units.

    ``store`` is the run's :class:`~pipeline.store.activations_reader.ActivationsStore`,
    ``classes`` its :class:`~pipeline.store.activations_reader.ClassAttribution` of the
    layer (None without attribution), ``labels`` its channels' labels (None: none). The
    per-layer reductions are read whole, once.
    """
    name = layer.name
    stats = store.stats(name)
    attribution = None
    if classes is not None:
        # The mean attribution over all images: the per-class means weighted by their counts.
        per_class, weights = np.asarray(classes.attribution, np.float64), classes.count.astype(np.float64)
        total = weights.sum()
        if total > 0:
            attribution = np.nansum(per_class * weights[None, :], axis=1) / total
    ids = scores = None
    if settings.similar_channels > 0 and store.num_images >= 2:
        corr = store.correlation(name)
        if corr is None:  # a store from before the reduction kept the correlation
            maxima = store.per_image(name, "max").compute()
            ids, scores = correlation_neighbours(maxima, settings.similar_channels)
        else:
            ids, scores = nearest_channels(corr, settings.similar_channels)
        layer.similarity_method = SIMILARITY_METHOD.format(n=store.num_images)
    names = store.class_names
    # Every channel's examples: read each table, and the images table, whole and once.
    store.top(name), store.bottom(name), store.images
    for unit in layer.units:
        c = unit.index
        unit.mean_activation, unit.std_activation = finite_number(stats.mean[c]), finite_number(stats.std[c])
        unit.active_fraction = finite_number(stats.active_fraction[c])
        unit.attribution = None if attribution is None else finite_number(attribution[c])
        unit.histogram = Histogram(
            [int(v) for v in stats.hist_counts[c]], [float(v) for v in stats.hist_edges[c]]
        )
        unit.examples = [
            _example(store, name, c, example)
            for example in store.top_examples(name, c, settings.top_examples)
        ]
        unit.negative_examples = [
            _example(store, name, c, example)
            for example in store.bottom_examples(name, c, settings.negative_examples)
            if example.value < 0
        ]
        unit.classes = (
            []
            if classes is None
            else [
                ClassScore(k.class_id, names[k.class_id], finite_number(k.score), k.images)
                for k in classes.top_classes(c, settings.top_classes)
            ]
        )
        unit.label = None if labels is None else labels[c]
        if ids is not None:
            unit.similar = [Similar(int(i), float(s)) for i, s in zip(ids[c], scores[c]) if i >= 0]


def _example(store, layer: str, channel: int, example) -> Example:
    """A stored :class:`~pipeline.store.activations_reader.TopExample` as the page shows it;
    its thumbnail stays in the store until the page is written."""
    return Example(
        example.image_id,
        shown_path(example.image_id, example.path),
        finite_number(example.value),
        example.y,
        example.x,
        example.box,
        LazyImage(
            lambda i=example.thumbnail: store.thumbnail(layer, i), f"{layer}:{channel} example {example.rank}"
        ),
        example.label,
        None if example.map is None else np.asarray(example.map, np.float32),
    )


def _open_if_present(data: AtlasData, path: Path, reader, without: str):
    """``reader(path)``, closed with ``data``; None (logged) when the run has no such store."""
    if not path.is_file():
        log.info("%s: absent; %s", path, without)
        return None
    store = reader(path)
    data._close.append(store.close)
    return store


def _add_featurevis(data: AtlasData, files: RunFiles) -> None:
    from pipeline.store.featurevis import FeatureVisStore

    path = files.featurevis
    store = _open_if_present(data, path, FeatureVisStore, "the site shows no feature visualizations")
    if store is None:
        return
    rendered = set(store.layers)
    for layer in data.layers:
        if layer.name not in rendered:
            continue
        layer.featurevis_tensor, cap = store.tensor(layer.name)
        layer.cap = cap or layer.cap  # the store's word on what was rendered comes first
        preset, schedule = store.schedule(layer.name)
        layer.featurevis_preset = preset or None
        layer.featurevis_steps = schedule.get("steps")
        layer.featurevis_size = schedule.get("image_size")
        image_ranks = store.image_rank(layer.name)
        images = store.images(layer.name)
        diversity = store.diversity_images(layer.name)
        negative = store.negative_images(layer.name)
        neuron = store.neuron_images(layer.name)
        filters = store.filters(layer.name)
        filters = filters[()] if filters is not None else None  # a few floats per channel
        layer.featurevis_exact = filters is not None
        ranks = store.rank(layer.name)
        for row, c in enumerate(store.channels(layer.name).tolist()):
            if not 0 <= c < layer.channels:
                raise ValueError(
                    f"{path}: layer {layer.name} has channel {c}, but the model's layer "
                    f"has {layer.channels} channels"
                )
            unit, what = layer.units[c], f"{layer.name}:{c}"
            # Defaults bind this layer's datasets now (a closure would see the last layer's).
            unit.featurevis = LazyImage(lambda r=row, ds=images: ds[r], f"featurevis {what}")
            unit.featurevis_rank = int(ranks[row])
            if image_ranks is not None:
                unit.featurevis_image_rank = int(image_ranks[row])
            if diversity is not None:
                unit.diversity = [
                    LazyImage(lambda r=row, d=d, ds=diversity: ds[r, d], f"diversity {d} {what}")
                    for d in range(diversity.shape[1])
                ]
            if negative is not None:
                unit.negative = LazyImage(lambda r=row, ds=negative: ds[r], f"negative {what}")
            if neuron is not None:
                unit.neuron = LazyImage(lambda r=row, ds=neuron: ds[r], f"neuron {what}")
            if filters is not None:
                unit.filter = filters[row]


def _add_circuits(data: AtlasData, files: RunFiles, settings: SiteSettings) -> None:
    from pipeline.store.circuits import CircuitsStore

    path = files.circuits
    store = _open_if_present(data, path, CircuitsStore, "the channel pages show no circuits")
    if store is None or settings.circuit_channels == 0:
        return
    chain = set(store.layers())
    for layer in data.layers:
        if layer.name not in chain:
            continue
        layer.previous_layer, layer.next_layer = store.previous(layer.name), store.next(layer.name)
        layer.circuits_examples = store.info(layer.name).get("top_examples") if layer.previous_layer else None
        if layer.circuits_examples is None and layer.next_layer:
            layer.circuits_examples = store.info(layer.next_layer).get("top_examples")
        sides = {"upstream": layer.previous_layer, "downstream": layer.next_layer}
        for unit in layer.units:
            found = store.connections(layer.name, unit.index, settings.circuit_channels)
            lists = {
                f"{side}{sign}": [
                    Connection(other, int(e["channel"]), e["attribution"]) for e in found[side + sign]
                ]
                for side, other in sides.items()
                for sign in ("", "_negative")
            }
            unit.circuits = Circuits(**lists, examples=int(found["examples"]))


def _add_scores(data: AtlasData, files: RunFiles) -> None:
    """Every channel's trust scores (``scores.h5``), NaN as None, and each layer's
    attributes; the store is small (one row of numbers per channel), so it is read whole."""
    from pipeline.scores.definitions import SCORE_KEYS
    from pipeline.store.scores import ScoresStore

    store = _open_if_present(data, files.scores, ScoresStore, "the channel pages show no scorecard")
    if store is None:
        return
    scored = set(store.layers())
    for layer in data.layers:
        if layer.name not in scored:
            continue
        table, layer.scores_info = store.table(layer.name), store.info(layer.name)
        channels = [int(c) for c in table["channel"]]
        if channels != list(range(layer.channels)):
            raise ValueError(
                f"{files.scores}: layer {layer.name} has scores of channels {channels[:3]}..."
                f" ({len(channels)}), the model's layer has {layer.channels} channels"
            )
        keys = [key for key in SCORE_KEYS if key in table]
        for unit in layer.units:
            unit.scores = _unit_scores({key: finite_number(table[key][unit.index]) for key in keys})


def _unit_scores(row: dict[str, float | None]) -> dict[str, float | None]:
    """One row of a scores table as a page reads it: the store's markers of "not computed"
    (``image_rank`` -1: not rendered; ``groups`` 0: too few examples) are None, and so is
    ``path_flag`` where there is no path (the first layer, or no visualization): the store
    writes False there, which a page would read as "passed"."""
    row = dict(row)
    if row.get("image_rank") is not None and row["image_rank"] < 1:
        row["image_rank"] = None
    if row.get("groups") is not None and row["groups"] < 1:
        row["groups"] = None
    if "path_flag" in row and row.get("path_similarity") is None:
        row["path_flag"] = None
    return row


ATLAS_CELL_CHANNELS = 5  # strongest channels listed per atlas cell


def _add_atlases(data: AtlasData, files: RunFiles, settings: SiteSettings, labels: LabelSettings) -> None:
    from pipeline.store.atlas import AtlasStore

    path = files.atlas
    store = _open_if_present(data, path, AtlasStore, "the site has no activation atlas")
    if store is None:
        return
    for layer in store.layers():
        levels = [_atlas_level(store, layer, side, labels) for side in store.levels(layer)]
        # The class filter offers every class that is some cell's top class.
        shown = {k.class_id for level in levels for cell in level.cells for k in cell.classes}
        data.atlases.append(
            ActivationAtlas(
                layer,
                levels,
                samples=len(store.samples(layer)),
                filter_classes=sorted(shown, key=lambda c: store.class_names[c]),
                umap=store.info(layer).get("umap", {}),
            )
        )


def _atlas_level(store, layer: str, side: int, label_settings: LabelSettings) -> AtlasLevel:
    """One zoom level of ``layer``'s atlas as the page shows it, each cell labelled from
    its attribution to every class and its own images; icons and crops stay in the store
    until the page is written."""
    samples, ids, names = store.samples(layer), store.image_ids(layer), store.class_names
    cells, icons = store.cells(layer, side), store.icons(layer, side)
    strongest = top_order(cells.mean, ATLAS_CELL_CHANNELS, axis=1)
    images = cell_class_images(cells.cell, samples.xy, samples.row, samples.predicted, side, len(names))
    labels = cell_labels(cells.class_attribution, images, names, label_settings)

    def example(s: int) -> Example:
        row, thumb = int(samples.row[s]), int(samples.thumbnail[s])
        image_id = ids.get(row, str(row))
        crop = None
        if thumb >= 0:
            crop = LazyImage(lambda: store.thumbnail(layer, thumb), f"atlas {layer} example {s}")
        return Example(image_id, image_id, None, int(samples.y[s]), int(samples.x[s]), crop=crop)

    out = []
    for m in range(len(cells)):
        icon = None if icons is None else LazyImage(lambda m=m: icons[m], f"atlas {layer} {side} cell {m}")
        out.append(
            AtlasCell(
                int(cells.cell[m, 0]),
                int(cells.cell[m, 1]),
                int(cells.count[m]),
                icon=icon,
                classes=[
                    ClassScore(int(c), names[c], finite_number(v), None)
                    for c, v in zip(cells.top_classes[m], cells.top_scores[m])
                    if c >= 0
                ],
                examples=[example(int(s)) for s in cells.examples[m] if s >= 0],
                channels=[Similar(int(c), float(cells.mean[m, c])) for c in strongest[m]],
                label=None if labels is None else labels[m],
            )
        )
    return AtlasLevel(side, out, np.asarray(cells.class_attribution, np.float32))


def _add_blocks(
    data: AtlasData, files: RunFiles, labels: dict[str, str], evidence: dict, label_settings: LabelSettings
) -> None:
    """The image pages; ``evidence`` (a layer's ``ClassAttribution``) labels its neuron groups."""
    from pipeline.store.blocks import BlocksStore

    path = files.blocks
    store = _open_if_present(data, path, BlocksStore, "the site has no image pages")
    if store is None:
        return
    names = list(store.class_names) or data.model.class_names
    if not data.model.class_names:
        data.model.class_names = names
    order = {layer.name: i for i, layer in enumerate(data.layers)}
    for image_id in sorted(store.image_ids):
        featured = _featured_image(store, image_id, names, labels)
        for name in sorted(store.layers, key=lambda n: order.get(n, len(order))):
            featured.layers.append(_image_layer(store, image_id, name))
            _label_groups(featured.layers[-1], evidence.get(name), names, label_settings)
        data.images.append(featured)


def _featured_image(store, image_id: str, names: list[str], labels: dict[str, str]) -> FeaturedImage:
    """The image page of ``image_id`` without its layers: the image, its label, the
    model's predictions and the classes its Building Blocks attribute to."""
    top = store.image(image_id)
    preds, cls = top["predictions"], top["classes"]
    class_ids = [int(c) for c in np.asarray(cls.get("ids", []))]
    return FeaturedImage(
        image_id=image_id,
        path=shown_path(image_id, top["path"]),
        image=LazyImage(lambda i=image_id: store.input_image(i), f"input {image_id}"),
        label=labels.get(image_id),
        predictions=[
            ClassScore(int(c), names[int(c)], float(p))
            for c, p in zip(np.asarray(preds.get("ids", [])), np.asarray(preds.get("probabilities", [])))
        ],
        classes=[
            ClassScore(c, names[c], float(p))
            for c, p in zip(class_ids, np.asarray(cls.get("probabilities", [np.nan] * len(class_ids))))
        ],
        second_class=int(cls["second_index"]) if "second_index" in cls else None,
        class_logits=[float(z) for z in np.asarray(cls.get("logits", []))],
    )


def _image_layer(store, image_id: str, name: str) -> ImageLayer:
    """One layer of an image page: small arrays now; the icons stay in the file until a
    page is written."""
    b = store.blocks(image_id, name, icons=False)
    grid_icons, group_icons = store.grid_icons(image_id, name), store.group_icons(image_id, name)
    d, g, a, groups, flows = (
        b.get(k, {}) for k in ("dictionary", "grid", "attribution", "groups", "from_previous")
    )
    return ImageLayer(
        name=name,
        grid_shape=tuple(int(n) for n in d["channels"].shape[:2]) if "channels" in d else None,
        dictionary=SemanticDictionary(d["channels"], d["values"], d["magnitude"])
        if "channels" in d
        else None,
        grid=ActivationGrid(grid_icons, g["magnitude"]) if grid_icons is not None else None,
        spatial_attribution=a.get("spatial"),
        spatial_grid=a.get("spatial_grid"),
        channel_attribution=a.get("channel"),
        groups=NeuronGroups(
            groups["maps"],
            group_icons,
            groups.get("attribution"),
            groups.get("target"),
            groups.get("directions"),
            bool(groups.get("shared", False)),
        )
        if "maps" in groups
        else None,
        flows=Flows(flows["layer"], flows["cells"], flows.get("groups")) if "cells" in flows else None,
    )


def _label_groups(layer: ImageLayer, classes, names: list[str], settings: LabelSettings) -> None:
    """Label ``layer``'s neuron groups from their directions and the layer's attribution by
    class (``classes``: None when the run has none for the layer: no labels)."""
    groups = layer.groups
    if groups is None or groups.directions is None or classes is None:
        return
    directions = np.asarray(groups.directions)
    if directions.shape[1] != np.asarray(classes.attribution).shape[0]:
        log.warning(
            "%s: neuron groups over %d channels, the layer has %d: no group labels",
            layer.name,
            directions.shape[1],
            np.asarray(classes.attribution).shape[0],
        )
        return
    groups.labels = group_labels(directions, classes.attribution, classes.count, names, settings)


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
