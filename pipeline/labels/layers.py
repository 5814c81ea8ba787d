"""Every unit of a layer labelled at once: what the reduction stores and the query API and
the site read.

:func:`labels_from_arrays` is the pure step: one layer's attribution by predicted class
``[C, K]`` and images per class ``[K]`` in, one :class:`~pipeline.labels.rule.Label` per
channel out (one call of :func:`~pipeline.labels.rule.label_units`). The reduction calls it
on the arrays it has just merged and stores the result (:func:`label_columns`; docs/STORE.md,
``layers/<layer>/labels/``). :func:`layer_labels` is what readers call: the stored labels
when the store holds them for these settings (:func:`labels_from_columns`), else computed
from the store's arrays (:func:`labels_for_layer`: stores written before labels were stored).
The store is passed in (its reader's interface: ``classes``, ``class_names``, ``labels``),
never imported: labels know no file layout. :func:`model_hierarchy` is the one choice of
hierarchy: the shipped WordNet one for a model whose class names are ImageNet-1k's, in its
order (:func:`~pipeline.labels.hierarchy.imagenet_hierarchy_for`, which the search asks
too), else the class names alone (each class its own synset).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.labels.hierarchy import ClassHierarchy, imagenet_hierarchy_for
from pipeline.labels.rule import (
    DEFAULT_RULE,
    Evidence,
    Label,
    LabelSettings,
    SynsetMatrix,
    flat_hierarchy,
    label_units,
)

LABELS_VERSION = 1  # format_version of a stored layers/<layer>/labels/ group
WORDNET_HIERARCHY, FLAT_HIERARCHY = "wordnet-3.0-imagenet1k", "class-names"


def model_hierarchy(class_names: Sequence[str]) -> tuple[ClassHierarchy, SynsetMatrix]:
    """The hierarchy a model's units are labelled from, with its synset matrix (cached:
    the WordNet one is read and laid out once per process)."""
    return _model_hierarchy(tuple(class_names))


def hierarchy_name(class_names: Sequence[str]) -> str:
    """Which hierarchy :func:`model_hierarchy` chooses, as stored with the labels."""
    hierarchy, _ = model_hierarchy(class_names)
    return FLAT_HIERARCHY if hierarchy.source == "the model's class names" else WORDNET_HIERARCHY


@functools.lru_cache(maxsize=4)
def _model_hierarchy(class_names: tuple[str, ...]) -> tuple[ClassHierarchy, SynsetMatrix]:
    # WordNet only for ImageNet's own classes in its order: another 1,000-class model would
    # be labelled with words that are not its classes'.
    hierarchy = imagenet_hierarchy_for(class_names) or flat_hierarchy(class_names)
    return hierarchy, SynsetMatrix(hierarchy)


def _needs_images(settings: LabelSettings) -> bool:
    return "auroc" in settings.rule.split("*") or "auroc" in (settings.confidence or "").split("*")


def labels_from_arrays(
    attribution,
    counts,
    class_names: Sequence[str],
    settings: LabelSettings | None = None,
    activations=None,
    image_classes=None,
) -> list[Label]:
    """One :class:`Label` per channel from a layer's attribution by class ``[C, K]`` and the
    images per class ``[K]``; the AUROC factor also needs each image's activation ``[n, C]``
    and class ``[n]``."""
    settings = settings or LabelSettings()
    evidence = Evidence(np.asarray(attribution), np.asarray(counts))
    if _needs_images(settings):
        evidence = Evidence(evidence.attribution, evidence.counts, activations, image_classes)
    names = list(class_names)
    hierarchy, synsets = model_hierarchy(names)
    return label_units(hierarchy, evidence, settings, class_names=names, synsets=synsets)


def labels_for_layer(store, layer: str, settings: LabelSettings | None = None) -> list[Label] | None:
    """Every channel's label of ``layer`` computed from the store's arrays (channel order);
    None when the store holds no attribution by class for it."""
    settings = settings or LabelSettings()
    classes = store.classes(layer)
    if classes is None:
        return None
    per_image = {}
    if _needs_images(settings):
        per_image = {
            "activations": np.asarray(store.per_image(layer, "max")),
            "image_classes": np.asarray(store.predicted_classes()),
        }
    return labels_from_arrays(classes.attribution, classes.count, store.class_names, settings, **per_image)


def layer_labels(store, layer: str, settings: LabelSettings | None = None) -> list[Label] | None:
    """Every channel's label of ``layer``: the ones the reduction stored when they were made
    with ``settings``, else computed (:func:`labels_for_layer`). None without attribution."""
    settings = settings or LabelSettings()
    stored = store.labels(layer)
    if stored is not None and stored.settings == dataclasses.asdict(settings):
        return labels_from_columns(stored, store.class_names)
    return labels_for_layer(store, layer, settings)


def label_columns(labels: Sequence[Label], settings: LabelSettings) -> dict[str, np.ndarray]:
    """The stored form of a layer's labels, one row per channel: ``synset`` ("" for no clear
    label), ``name``, ``classes`` int32 ``[C, member_classes]`` (the named member classes'
    ids, strongest first, -1 past them), ``confidence`` float64 (for no clear label, the best
    score that fell short), ``images``, ``n_classes`` int32, ``tentative`` bool."""
    classes = np.full((len(labels), settings.member_classes), -1, np.int32)
    for row, label in enumerate(labels):
        classes[row, : len(label.class_ids)] = label.class_ids
    return {
        "synset": np.asarray([label.synset or "" for label in labels], dtype=object),
        "name": np.asarray([label.name for label in labels], dtype=object),
        "classes": classes,
        "confidence": np.asarray([label.confidence for label in labels], np.float64),
        "images": np.asarray([label.images for label in labels], np.int32),
        "n_classes": np.asarray([label.class_count for label in labels], np.int32),
        "tentative": np.asarray([label.tentative for label in labels], bool),
    }


def labels_from_columns(columns, class_names: Sequence[str]) -> list[Label]:
    """The labels of :func:`label_columns`' columns (attributes of ``columns``) again."""
    names = list(class_names)
    return [
        Label(
            synset or None,
            name,
            tuple(names[k] for k in ids if k >= 0),
            float(confidence),
            int(images),
            int(n_classes),
            bool(tentative),
            tuple(int(k) for k in ids if k >= 0),
        )
        for synset, name, ids, confidence, images, n_classes, tentative in zip(
            columns.synset,
            columns.name,
            np.asarray(columns.classes),
            columns.confidence,
            columns.images,
            columns.n_classes,
            columns.tentative,
        )
    ]


def label_record(settings: LabelSettings, class_names: Sequence[str]) -> Mapping:
    """The attributes stored with a layer's labels: the rule, the hierarchy, the settings."""
    return {
        "rule": settings.rule,
        "hierarchy": hierarchy_name(class_names),
        "settings": dataclasses.asdict(settings),
        "format_version": LABELS_VERSION,
    }


__all__ = [
    "DEFAULT_RULE",
    "label_columns",
    "labels_for_layer",
    "labels_from_arrays",
    "labels_from_columns",
    "layer_labels",
    "model_hierarchy",
]
