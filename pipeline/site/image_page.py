"""What an image page shows: its Building Blocks as page context and as the JSON that
``static/blocks*.js`` draw the linked views from.

Every layer is shown on its cell grid (``ImageLayer.grid_shape``): the photo, the semantic
dictionary, the activation grid, the attribution map and the flow from the layer before
all have the same ``gh x gw`` cells, so a cell index means the same place in each view.
Attribution is stored per attributed class; the page switches class (and shows the
difference of two classes, exact by linearity of the gradient) without a reload.

Pure functions of the data plus callbacks of the builder: ``asset(array) -> site path``
writes an image, ``thumb(layer, channel) -> site path | None`` finds a channel's icon,
``label(layer, channel) -> Label | None`` its label. Every channel a view names carries its
label's short form in the JSON (``labels``), and every neuron group its own label
(``groups.labels``, :mod:`pipeline.labels.units`), so the scripts show them wherever they
draw a unit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.site.data import FeaturedImage, ImageLayer
from pipeline.site.labels import label_json, label_short

# Neuron groups get categorical colours that are neither the attribution scale's orange
# (for) nor its purple (against): Dark2 without those two, then blue, cyan and grey.
GROUP_COLOURS = ("#1b9e77", "#e7298a", "#66a61e", "#e6ab02", "#1f78b4", "#a6761d", "#17a2b8", "#666666")
# Channels of a group listed on the page: the largest weights of its direction.
GROUP_MEMBERS = 4


def group_colour(g: int) -> str:
    return GROUP_COLOURS[g % len(GROUP_COLOURS)]


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def groups_overlay(maps: np.ndarray) -> np.ndarray:
    """``maps [G, H, W]`` >= 0 -> RGBA uint8: each position in the colour of its strongest
    group, opaque in proportion to that group's value (relative to the largest of all)."""
    maps = np.nan_to_num(np.asarray(maps, np.float64)).clip(0)
    top = float(maps.max()) if maps.size else 0.0
    strongest = maps.argmax(axis=0)
    palette = np.asarray([_rgb(group_colour(g)) for g in range(len(maps))], np.uint8)
    rgba = np.zeros((*maps.shape[1:], 4), np.uint8)
    rgba[..., :3] = palette[strongest]
    strength = maps.max(axis=0) / top if top > 0 else np.zeros(maps.shape[1:])
    # A gamma below 1 so that groups weaker than the strongest still show.
    rgba[..., 3] = np.round(np.sqrt(strength) * 230).astype(np.uint8)
    return rgba


def group_map(values: np.ndarray, colour: str, top: float) -> np.ndarray:
    """One group's map ``[H, W]`` -> RGBA in the group's colour, opacity by value / ``top``
    (the group's own largest value: each map shows where its group is, whatever its size)."""
    values = np.nan_to_num(np.asarray(values, np.float64)).clip(0)
    rgba = np.zeros((*values.shape, 4), np.uint8)
    rgba[..., :3] = _rgb(colour)
    rgba[..., 3] = np.round((values / top if top > 0 else values * 0).clip(0, 1) * 230).astype(np.uint8)
    return rgba


def rounded(values) -> list:
    """Floats for JSON, 4 significant digits, nested as the array; NaN becomes null."""
    a = np.asarray(values, np.float64)
    flat = [None if np.isnan(v) else float(f"{v:.4g}") for v in a.ravel()]
    if a.ndim <= 1:
        return flat
    return np.asarray(flat, dtype=object).reshape(a.shape).tolist()


def layer_data(
    image: FeaturedImage,
    il: ImageLayer,
    *,
    asset: Callable[[np.ndarray], str],
    thumb: Callable[[str, int], str | None],
    channel_page: Callable[[str, int], str | None],
    label: Callable[[str, int], object] = lambda layer, channel: None,
) -> tuple[dict, dict]:
    """One layer's ``(template context, JSON)``. The callbacks return links as the page
    uses them (relative to it), and the context and JSON hold those links."""
    gh, gw = il.grid_shape or (il.dictionary.channels.shape[:2] if il.dictionary is not None else (0, 0))
    context = {"name": il.name, "gh": gh, "gw": gw, "grid": None, "groups": [], "flows": None}
    data: dict = {"name": il.name, "gh": gh, "gw": gw}
    channels: set[int] = set()  # every channel the views name: they get icons and links
    if il.dictionary is not None:
        data["dictionary"] = _dictionary(il.dictionary)
        channels.update(int(c) for c in np.asarray(il.dictionary.channels).ravel())
    if il.grid is not None:
        icons = np.asarray(il.grid.icons)
        context["grid"] = [asset(icons[y, x]) for y in range(icons.shape[0]) for x in range(icons.shape[1])]
        data["grid_magnitude"] = rounded(np.asarray(il.grid.magnitude).ravel())
    if il.spatial_grid is not None:
        data["spatial"] = rounded(np.asarray(il.spatial_grid).reshape(len(il.spatial_grid), -1))
        data["total"] = rounded(np.asarray(il.spatial_grid).sum(axis=(1, 2)))
    if il.channel_attribution is not None:
        data["channel"] = rounded(il.channel_attribution)
        channels.update(range(np.asarray(il.channel_attribution).shape[1]))
    if il.flows is not None:
        context["flows"], data["flows"] = _flows(image, il)
    if il.groups is not None:
        groups, data["groups"] = _groups(il, asset)
        context.update(groups)
        channels.update(c for members in data["groups"]["members"] for c in members)
    icons = {str(c): thumb(il.name, c) for c in sorted(channels)}
    pages = {str(c): channel_page(il.name, c) for c in sorted(channels)}
    data["icons"] = {c: link for c, link in icons.items() if link}
    data["pages"] = {c: link for c, link in pages.items() if link}
    labels = {str(c): label_short(label(il.name, c)) for c in sorted(channels)}
    data["labels"] = {c: text for c, text in labels.items() if text}
    return context, data


def _dictionary(d) -> dict:
    """The semantic dictionary's JSON: per cell its ``k`` strongest channels and their values."""
    return {
        "k": d.channels.shape[2],
        "channels": np.asarray(d.channels).astype(int).ravel().tolist(),
        "values": rounded(np.ravel(d.values)),
        "magnitude": rounded(np.ravel(d.magnitude)),
    }


def _flows(image: FeaturedImage, il: ImageLayer) -> tuple[dict, dict]:
    """The flows from the layer before: ``(context, JSON)``, both with its grid's shape."""
    data = {"source": il.flows.source, "cells": rounded(il.flows.cells)}
    if il.flows.groups is not None:
        data["groups"] = rounded(il.flows.groups)
    source = next((other for other in image.layers if other.name == il.flows.source), None)
    sgh, sgw = (source.grid_shape or (0, 0)) if source is not None else (0, 0)
    data.update(gh=sgh, gw=sgw)
    return {"source": il.flows.source, "gh": sgh, "gw": sgw}, data


def _groups(il: ImageLayer, asset: Callable[[np.ndarray], str]) -> tuple[dict, dict]:
    """The neuron groups: ``(context entries, JSON)``; a group's members are the channels
    with the largest positive weights of its direction (at most GROUP_MEMBERS)."""
    maps = np.asarray(il.groups.maps, np.float64)
    members, shown = [], []
    for g in range(len(maps)):
        direction = None if il.groups.directions is None else np.asarray(il.groups.directions[g])
        chosen = [] if direction is None else [int(c) for c in np.argsort(-direction, kind="stable")]
        chosen = [c for c in chosen if direction[c] > 0][:GROUP_MEMBERS]
        members.append(chosen)
        shown.append(
            {
                "index": g,
                "colour": group_colour(g),
                "icon": asset(np.asarray(il.groups.icons[g])) if il.groups.icons is not None else None,
                "map": asset(group_map(maps[g], group_colour(g), float(np.nan_to_num(maps[g]).max()))),
                "members": chosen,
                "label": il.groups.labels[g] if il.groups.labels is not None else None,
            }
        )
    context = {
        "groups": shown,
        "groups_overlay": asset(groups_overlay(maps)) if len(maps) else None,
        "groups_shared": il.groups.shared,
        "groups_target": il.groups.target or "activations",
    }
    data = {
        "attribution": rounded(il.groups.attribution) if il.groups.attribution is not None else None,
        "members": members,
        "colours": [group_colour(g) for g in range(len(maps))],
        "icons": [g["icon"] for g in shown],
        "shared": bool(il.groups.shared),
        "labels": [label_json(g["label"]) for g in shown],
    }
    return context, data


def page_data(image: FeaturedImage, layers: list[dict], class_page: Callable[[int], str | None]) -> dict:
    """The page's JSON: the attributed classes and every layer's data (``layers``)."""
    logits = image.class_logits or [None] * len(image.classes)
    return {
        "classes": [
            {
                "id": k.class_id,
                "name": k.class_name,
                "logit": None if z is None else float(f"{z:.4g}"),
                "probability": None if k.score is None or np.isnan(k.score) else float(f"{k.score:.4g}"),
                "page": class_page(k.class_id),
            }
            for k, z in zip(image.classes, logits)
        ],
        "second": image.second_class if image.second_class is not None else min(1, len(image.classes) - 1),
        "layers": layers,
    }
