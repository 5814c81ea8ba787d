"""The data of an activation-atlas page (``atlas/<layer>.html``), as the browser reads it.

The page embeds one JSON object (``page_data``) that ``static/atlas-*.js`` draw: per
zoom level (coarsest first) its grid side and its cells, each with its position, count,
icon, top classes, label (``label``: short and full, :mod:`pipeline.labels.units`), dataset
examples and strongest channels (each with its own label's short form). Every cell's attribution to
every class would not fit a page at ImageNet scale (80 x 80 cells x 1,000 classes), so
each class the filter offers gets a small script of its own (``class_script``), which the
page loads when the class is chosen: a ``<script>`` element works from ``file://``, where
``fetch`` does not.

Pure: the builder (:mod:`pipeline.site.build`) passes callbacks that write the images
and return their site paths.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pipeline.site.data import ActivationAtlas, AtlasCell
from pipeline.site.image_page import rounded
from pipeline.site.labels import label_json, label_short

# The function every class script calls (static/atlas-map.js defines it, on window).
CLASS_CALLBACK = "modelAtlasClass"


def cell_data(
    cell: AtlasCell,
    icon: Callable[[AtlasCell], str | None],
    crop: Callable[[object], str | None],
    image_page: Callable[[str], str | None],
    channel_page: Callable[[int], str],
    thumb: Callable[[int], str | None],
    label: Callable[[int], object] = lambda channel: None,
) -> dict:
    """One cell as the page shows it; the callbacks give site paths (None: no such file)
    and a channel's label (None: none)."""
    return {
        "i": cell.i,
        "j": cell.j,
        "n": cell.count,
        "icon": icon(cell),
        "classes": [[k.class_id, rounded([k.score])[0]] for k in cell.classes],
        "label": label_json(cell.label),
        "examples": [
            {"crop": crop(e.crop), "image": e.image_id, "page": image_page(e.image_id), "y": e.y, "x": e.x}
            for e in cell.examples
        ],
        "channels": [_channel(s, channel_page, thumb, label) for s in cell.channels],
    }


def _channel(s, channel_page, thumb, label) -> dict:
    """One of a cell's strongest channels; ``label`` (its label's short form) only when it has one."""
    out = {
        "c": s.channel,
        "value": rounded([s.score])[0],
        "page": channel_page(s.channel),
        "thumb": thumb(s.channel),
    }
    text = label_short(label(s.channel))
    return {**out, "label": text} if text else out


def page_data(atlas: ActivationAtlas, class_names: list[str], cells: Callable[[AtlasCell], dict]) -> dict:
    """The page's JSON: the levels with their cells (``cells`` turns one into its data) and
    the names of the classes the filter offers."""
    return {
        "layer": atlas.layer,
        "samples": atlas.samples,
        "levels": [{"side": level.side, "cells": [cells(c) for c in level.cells]} for level in atlas.levels],
        "classes": {str(c): class_names[c] for c in atlas.filter_classes},
    }


def class_script(atlas: ActivationAtlas, class_id: int) -> str:
    """The script that hands the page every cell's attribution to ``class_id``, per level."""
    values = [
        rounded(level.class_attribution[:, class_id]) if level.class_attribution is not None else []
        for level in atlas.levels
    ]
    payload = json.dumps(
        {"layer": atlas.layer, "class": int(class_id), "levels": values}, separators=(",", ":")
    )
    return f"{CLASS_CALLBACK}({payload});\n"
