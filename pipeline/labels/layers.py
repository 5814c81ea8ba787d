"""Every unit of a layer labelled at once, from a store: what the query API and the site share.

:func:`labels_for_layer` reads one layer's attribution by predicted class ``[C, K]`` from an
activations store (``store.classes(layer)``, ``store.class_names``: the reader's interface,
passed in, never imported: labels know no file layout) and labels all its channels with one
call of :func:`~pipeline.labels.rule.label_units`. :func:`model_hierarchy` is the one choice
of hierarchy: the shipped WordNet one for a model with ImageNet-1k's 1,000 classes, else the
class names alone (each class its own synset).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from pipeline.labels.hierarchy import IMAGENET1K, ClassHierarchy
from pipeline.labels.rule import (
    DEFAULT_RULE,
    Evidence,
    Label,
    LabelSettings,
    SynsetMatrix,
    flat_hierarchy,
    label_units,
)


def model_hierarchy(class_names: Sequence[str]) -> tuple[ClassHierarchy, SynsetMatrix]:
    """The hierarchy a model's units are labelled from, with its synset matrix (cached:
    the WordNet one is read and laid out once per process)."""
    return _model_hierarchy(tuple(class_names))


@functools.lru_cache(maxsize=4)
def _model_hierarchy(class_names: tuple[str, ...]) -> tuple[ClassHierarchy, SynsetMatrix]:
    imagenet = ClassHierarchy.from_file(IMAGENET1K)
    hierarchy = imagenet if len(class_names) == len(imagenet.classes) else flat_hierarchy(class_names)
    return hierarchy, SynsetMatrix(hierarchy)


def labels_for_layer(store, layer: str, settings: LabelSettings | None = None) -> list[Label] | None:
    """One :class:`Label` per channel of ``layer`` (channel order); None when the store holds
    no attribution by class for it. ``store`` is an activations store reader."""
    settings = settings or LabelSettings()
    classes = store.classes(layer)
    if classes is None:
        return None
    evidence = Evidence(np.asarray(classes.attribution), np.asarray(classes.count))
    if "auroc" in settings.rule.split("*") or "auroc" in (settings.confidence or "").split("*"):
        evidence = Evidence(
            evidence.attribution,
            evidence.counts,
            np.asarray(store.per_image(layer, "max")),
            np.asarray(store.predicted_classes()),
        )
    names = list(store.class_names)
    hierarchy, synsets = model_hierarchy(names)
    return label_units(hierarchy, evidence, settings, class_names=names, synsets=synsets)


__all__ = ["DEFAULT_RULE", "labels_for_layer", "model_hierarchy"]
