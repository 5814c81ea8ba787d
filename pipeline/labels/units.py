"""Labels for units that are not single channels: neuron groups and activation-atlas cells.

The rule is the channels' (:mod:`pipeline.labels.rule`, through
:func:`~pipeline.labels.layers.labels_from_arrays`); what changes is the evidence, the
attribution by class ``[U, K]`` and the images behind it, of each kind of unit:

**A neuron group** (Building Blocks, ``blocks.h5`` ``groups/directions [G, C]``) is a
direction over its layer's channels. Its attribution to class ``k`` is the loading-weighted
mean of its channels' stored attribution to ``k`` (``activations.h5``
``classes/attribution [C, K]``, NaN where no image was predicted as ``k``):
``sum_c w_gc A_ck / sum_c w_gc`` with ``w_gc = max(direction_gc, 0)`` (the positive
loadings: the channels the group is made of; a signed direction's negative part is what
it is not). Its images per class are the layer's (``classes/count``): the group's
evidence is the channels' evidence, gathered over the same images. A group with no
positive loading has no attribution (all zero): no clear label.

**An atlas cell** (``atlas.h5`` ``levels/<g>/class_attribution [M, K]``) already has an
attribution to every class: its mean activation vector's, fed through the rest of the
network. Its images per class are those of the cell's own samples: the distinct images
among the samples that fall in the cell (``samples/xy`` binned at the level's side, as the
layout bins them) that the model predicted as the class (``samples/predicted``). So a
cell whose mean argues for "dog" while none of its samples comes from a photo of a dog is
labelled dog, but tentative.

A rule with the AUROC factor needs each unit's activation on every image, which neither a
group nor a cell has: :func:`group_labels` and :func:`cell_labels` then return None (no
labels) rather than a label by another rule.

Pure NumPy; the site's reader calls these with arrays it has read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.labels.layers import _needs_images, labels_from_arrays
from pipeline.labels.rule import Label, LabelSettings


def group_attribution(directions, attribution) -> np.ndarray:
    """``[G, K]``: each group's loading-weighted mean of its channels' attribution rows
    (``directions [G, C]``, ``attribution [C, K]``; weights the positive loadings). A class
    no image was predicted as (NaN for every channel) stays NaN; a group without positive
    loadings gets zeros."""
    weights = np.maximum(np.nan_to_num(np.asarray(directions, np.float64)), 0.0)
    attribution = np.asarray(attribution, np.float64)
    if weights.shape[1] != attribution.shape[0]:
        raise ValueError(
            f"group directions have {weights.shape[1]} channels, the layer's attribution "
            f"{attribution.shape[0]}"
        )
    unseen = np.isnan(attribution).all(axis=0)  # [K]: no image predicted as the class
    totals = weights.sum(axis=1, keepdims=True)
    shares = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    combined = shares @ np.nan_to_num(attribution, nan=0.0)
    combined[:, unseen] = np.nan
    return combined


def group_labels(
    directions,
    attribution,
    counts,
    class_names: Sequence[str],
    settings: LabelSettings | None = None,
) -> list[Label] | None:
    """One label per neuron group of a layer, from :func:`group_attribution` and the
    layer's images per class ``counts [K]`` (None for a rule that needs per-image activations)."""
    settings = settings or LabelSettings()
    if _needs_images(settings):
        return None
    combined = group_attribution(directions, attribution)
    return labels_from_arrays(combined, np.asarray(counts), class_names, settings)


def cell_class_images(cells, xy, rows, predicted, side: int, classes: int) -> np.ndarray:
    """int64 ``[M, K]``: per kept cell (``cells [M, 2]``, ``(i, j)``) the distinct images
    among its samples (layout position ``xy [S, 2]``, x then y in [0, 1]; image ``rows
    [S]``) that the model predicted as each class (``predicted [S]``, -1: none)."""
    cells = np.asarray(cells, np.int64).reshape(-1, 2)
    out = np.zeros((len(cells), classes), np.int64)
    if not len(cells) or not len(rows):
        return out
    # The store's definition of a sample's cell (docs/STORE.md, atlas "Cells"; the layout's
    # grid_index): row from y, column from x, the last row and column closed.
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    i = np.clip(np.floor(xy[:, 1] * side), 0, side - 1).astype(np.int64)
    j = np.clip(np.floor(xy[:, 0] * side), 0, side - 1).astype(np.int64)
    where = {(int(a), int(b)): m for m, (a, b) in enumerate(cells)}
    cell_of = np.asarray([where.get((int(a), int(b)), -1) for a, b in zip(i, j)], np.int64)
    predicted = np.asarray(predicted, np.int64)
    keep = (cell_of >= 0) & (predicted >= 0) & (predicted < classes)
    # One count per (cell, image): an image sampled at several positions of a cell counts once.
    pairs = np.stack([cell_of[keep], np.asarray(rows, np.int64)[keep]], axis=1)
    _, first = np.unique(pairs, axis=0, return_index=True)
    np.add.at(out, (pairs[first, 0], predicted[keep][first]), 1)
    return out


def cell_labels(
    class_attribution,
    class_images,
    class_names: Sequence[str],
    settings: LabelSettings | None = None,
) -> list[Label] | None:
    """One label per atlas cell from its attribution to every class ``[M, K]`` and its own
    images per class ``[M, K]`` (:func:`cell_class_images`); None for a rule that needs
    per-image activations."""
    settings = settings or LabelSettings()
    if _needs_images(settings):
        return None
    attribution = np.asarray(class_attribution, np.float32)
    return labels_from_arrays(attribution, np.asarray(class_images), class_names, settings)


__all__ = ["cell_class_images", "cell_labels", "group_attribution", "group_labels"]
