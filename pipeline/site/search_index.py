"""The site's search index: ``search-index.js`` at the site's root, made from the page data.

The entries and the ranking are :mod:`pipeline.search`'s (the query API ranks the same
way); here they get their pages and thumbnails, and are written as a classic script that
assigns the index to the global ``ModelAtlasSearchIndex``: ``static/search.js`` adds it as
a ``<script>`` element the first time the search box is used (a page never fetches from
``file://``, and pages that nobody searches from never load it).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pipeline import search
from pipeline.labels import LabelSettings
from pipeline.labels.layers import reader_hierarchy
from pipeline.site.data import AtlasData

PATH = "search-index.js"
GLOBAL = "ModelAtlasSearchIndex"


class SitePages:
    """The site paths :func:`pipeline.search.run_entries` asks for (None: no page)."""

    def __init__(self, urls, thumb: Callable[[str, int], str | None]):
        self.urls, self.thumb = urls, thumb

    def layer(self, name: str) -> str:
        return self.urls.layer(name)

    def channel(self, layer: str, c: int) -> str:
        return self.urls.channel(layer, c)

    def klass(self, class_id: int) -> str:
        return self.urls.klass(class_id)

    def image(self, image_id: str) -> str | None:
        return self.urls.image(image_id)


def site_run(data: AtlasData) -> search.Run:
    """What the index holds for the site: every layer and channel, every class of the model
    (those with a page count as seen), the hierarchy its labels were named from, the featured images."""
    class_names = list(data.model.class_names)
    if not class_names and data.classes:  # no names but the class pages': a name per page
        class_names = [""] * (1 + max(k.class_id for k in data.classes))
        for k in data.classes:
            class_names[k.class_id] = k.class_name
    return search.Run(
        layers=[(layer.name, layer.channels) for layer in data.layers],
        aliases=dict(data.model.aliases),
        class_names=class_names,
        seen_classes=frozenset(k.class_id for k in data.classes),
        images=[image.image_id for image in data.images],
        hierarchy=reader_hierarchy(class_names, LabelSettings(hierarchy=data.model.label_hierarchy)),
        labels={layer.name: [unit.label for unit in layer.units] for layer in data.layers},
    )


def index_script(data: AtlasData, pages: SitePages) -> str:
    """The text of ``search-index.js`` for the site of ``data``."""
    return script_text(search.index_json(search.run_entries(site_run(data), pages)))


def script_text(index: dict) -> str:
    """One assignment of the index's JSON (ASCII only: any byte is safe in a script)."""
    text = json.dumps(index, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return f"var {GLOBAL} = {text};\n"
