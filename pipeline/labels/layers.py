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
import logging
from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.labels.hierarchy import ClassHierarchy, chosen_hierarchy
from pipeline.labels.rule import (
    AUTO_HIERARCHY,
    DEFAULT_RULE,
    FLAT_SOURCE,
    Evidence,
    Label,
    LabelSettings,
    SynsetMatrix,
    flat_hierarchy,
    label_units,
)

log = logging.getLogger(__name__)
LABELS_VERSION = 1  # format_version of a stored layers/<layer>/labels/ group
WORDNET_HIERARCHY, FLAT_HIERARCHY = "wordnet-3.0-imagenet1k", "class-names"


def model_hierarchy(
    class_names: Sequence[str], choice: str = AUTO_HIERARCHY
) -> tuple[ClassHierarchy, SynsetMatrix]:
    """The hierarchy a model's units are labelled from (``labels.hierarchy``:
    :func:`~pipeline.labels.hierarchy.chosen_hierarchy`, else the class names), with its
    synset matrix (cached: a hierarchy is read and laid out once per process)."""
    return _model_hierarchy(tuple(class_names), choice)


def hierarchy_name(class_names: Sequence[str], choice: str = AUTO_HIERARCHY) -> str:
    """Which hierarchy :func:`model_hierarchy` chooses, as stored with the labels: the
    shipped WordNet one, the class names, or ``file:<path>`` for a user's file."""
    hierarchy, _ = model_hierarchy(class_names, choice)
    if hierarchy.source == FLAT_SOURCE:
        return FLAT_HIERARCHY
    return WORDNET_HIERARCHY if choice == AUTO_HIERARCHY else f"file:{choice}"


@functools.lru_cache(maxsize=4)
def _model_hierarchy(class_names: tuple[str, ...], choice: str) -> tuple[ClassHierarchy, SynsetMatrix]:
    # WordNet only for ImageNet's own classes in its order: another 1,000-class model would
    # be labelled with words that are not its classes'.
    hierarchy = chosen_hierarchy(class_names, choice) or flat_hierarchy(class_names)
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
    hierarchy, synsets = model_hierarchy(names, settings.hierarchy)
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
    """Every channel's label of ``layer``: the ones the reduction stored (with the run's
    ``labels:`` settings) when ``settings`` is None or equal to theirs, else computed with
    ``settings`` (:func:`labels_for_layer`; also for a store written before labels were
    stored). None without attribution."""
    stored = store.labels(layer)
    if stored is not None and (settings is None or stored.settings == dataclasses.asdict(settings)):
        return labels_from_columns(stored, store.class_names)
    return labels_for_layer(store, layer, settings)


def stored_settings(store) -> LabelSettings | None:
    """The ``labels:`` settings the store's labels were made with (those of its first layer
    that has labels); None for a store without labels, or with settings this version does
    not know."""
    for layer in store.layers:
        stored = store.labels(layer)
        if stored is not None:
            try:
                return LabelSettings.from_config(stored.settings)
            except (TypeError, ValueError):
                return None
    return None


def reader_hierarchy(
    class_names: Sequence[str], settings: LabelSettings | None = None
) -> ClassHierarchy | None:
    """The hierarchy a reader's search names kinds of thing from, for labels made with
    ``settings`` (None: the defaults): :func:`chosen_hierarchy`, except that a user's file
    no longer where the run found it gives None with a warning: the stored labels stay
    readable, only the search loses the file's synonyms and kinds."""
    choice = (settings or LabelSettings()).hierarchy
    try:
        return chosen_hierarchy(class_names, choice)
    except (OSError, ValueError) as error:
        log.warning("labels.hierarchy %s: %s; the search uses the class names alone", choice, error)
        return None


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
        "hierarchy": hierarchy_name(class_names, settings.hierarchy),
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
    "reader_hierarchy",
    "stored_settings",
]
