"""The static atlas site: :func:`build_site` writes every page of an :class:`AtlasData`.

Pages (one Jinja2 template each, in ``site/templates``): the index, one page per layer
(``layers/<layer>.html``), per channel (``channels/<layer>/<c>.html``), per featured
image (``images/<id>.html``) and per predicted class (``classes/<id>.html``). The site
opens from ``file://`` (no ``fetch``: page data is JSON embedded in the page, read by
classic scripts: ``static/common.js`` on every page, then the page kind's own, see
:data:`PAGE_SCRIPTS` and docs/FRONTEND.md), needs no network, and uses relative links
only, so it can be copied anywhere. Every text from data is escaped (Jinja2 autoescape;
JSON is embedded with ``<``, ``>`` and ``&`` escaped; the script writes ``textContent``).

Builds are reproducible: the same inputs give the same bytes (ordered iteration, no
timestamps, PNGs encoded by Pillow without metadata). No torch here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import numpy as np

from pipeline.scores.definitions import SCORES
from pipeline.site import atlas_page, image_page, scorecard, search_index
from pipeline.site.data import ActivationAtlas, AtlasData, Channel, FeaturedImage, Layer, load_image
from pipeline.site.filter_image import filter_image
from pipeline.site.labels import label_line, label_short, layer_label_summary
from pipeline.site.numbers import format_number, format_signed
from pipeline.site.settings import SiteSettings

SITE_SOURCES = Path(__file__).resolve().parents[2] / "site"
MARKER = ".model-atlas-site"
# Every page loads static/common.js first, then the header's search box (search.js); a page
# with behaviour of its own then loads its kind's scripts (in order: the Building Blocks'
# parts before blocks.js, which starts them).
SHARED_SCRIPT = "common.js"
EVERY_PAGE_SCRIPTS = (SHARED_SCRIPT, "search.js")
PAGE_SCRIPTS = {
    "layer": ("layer.js",),
    "image": ("blocks-model.js", "blocks-views.js", "blocks-groups.js", "blocks-panel.js", "blocks.js"),
    "atlas": ("atlas-model.js", "atlas-views.js", "atlas-map.js"),
}


# ---------------------------------------------------------------------------------
# Where everything goes
# ---------------------------------------------------------------------------------


class Urls:
    """Decides every path of the site (relative to its root) and every relative link."""

    def __init__(self, data: AtlasData):
        self._slugs = _image_slugs([img.image_id for img in data.images])

    index = "index.html"

    @staticmethod
    def layer(name: str) -> str:
        return f"layers/{name}.html"

    @staticmethod
    def channel(layer: str, c: int) -> str:
        return f"channels/{layer}/{int(c)}.html"

    def image(self, image_id: str) -> str | None:
        slug = self._slugs.get(image_id)
        return None if slug is None else f"images/{slug}.html"

    def image_file(self, image_id: str) -> str:
        return f"img/images/{self._slugs[image_id]}.png"

    # The list pages that breadcrumbs lead to (at the root: a layer may be called "index").
    layers_list, images_list, classes_list = "layers.html", "images.html", "classes.html"
    # What the trust scores mean (linked from every scorecard; a run with scores only).
    scores = "scores.html"

    @staticmethod
    def klass(class_id: int) -> str:
        return f"classes/{int(class_id)}.html"

    @staticmethod
    def atlas(layer: str) -> str:
        return f"atlas/{layer}.html"

    @staticmethod
    def atlas_class(layer: str, class_id: int) -> str:
        return f"atlas/{layer}/class-{int(class_id)}.js"

    @staticmethod
    def featurevis(layer: str, c: int, variant: str = "") -> str:
        return f"img/featurevis/{layer}/{int(c)}{variant}.png"

    @staticmethod
    def static(name: str) -> str:
        return f"static/{name}"

    @staticmethod
    def href(page: str, target: str | None) -> str | None:
        """The link from ``page`` to ``target``, both site paths; percent-encoded."""
        if target is None:
            return None
        return quote(posixpath.relpath(target, posixpath.dirname(page) or "."), safe="/#")


def _image_slugs(ids: list[str]) -> dict[str, str]:
    """A file name for each image id: the id when it is a safe name, else a cleaned id + hash."""
    out, used = {}, set()
    for image_id in sorted(ids):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", image_id).strip(".")[:60] or "image"
        if safe != image_id or safe.lower() in used:
            safe = f"{safe}-{hashlib.sha1(image_id.encode()).hexdigest()[:10]}"
        used.add(safe.lower())
        out[image_id] = safe
    return out


# ---------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------


def encode_png(array: np.ndarray) -> bytes:
    """uint8 ``[H, W, 3|4]`` (or ``[H, W]``) -> PNG bytes; same array, same bytes."""
    from PIL import Image

    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {array.dtype} of shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=6, optimize=False)
    return buffer.getvalue()


def resize(array: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> ``[size, size, 3]`` (antialiased); returned as is when it fits."""
    from PIL import Image

    if array.shape[0] == size and array.shape[1] == size:
        return array
    return np.asarray(Image.fromarray(np.ascontiguousarray(array)).resize((size, size), Image.LANCZOS))


# ---------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------


def build_site(
    data: AtlasData,
    out_dir,
    settings: SiteSettings | None = None,
    *,
    progress: bool = False,
    sources: Path | None = None,
) -> Path:
    """Write the site for ``data`` to ``out_dir`` (replaced whole; built beside it first).

    ``settings`` (default: the schema's defaults) size the thumbnails and lists; ``progress``
    shows progress bars; ``sources`` is the folder of templates and static files.
    """
    settings = settings or SiteSettings()
    data.normalized()
    sources = Path(sources or SITE_SOURCES)
    return replace_site(
        Path(out_dir), lambda partial: _Builder(data, partial, settings, sources, progress).build()
    )


def refuse_foreign_folder(out_dir: Path) -> None:
    """A site replaces its folder whole: refuse a folder that holds something else."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise FileExistsError(f"{out_dir}: exists and is not a model-atlas site; refusing to replace it")


def replace_site(out_dir: Path, fill: Callable[[Path], object]) -> Path:
    """Build a site into a folder beside ``out_dir`` (``fill(folder)``), then swap it in
    whole: a half-built or failed site never shows, and the old one stays until the swap."""
    refuse_foreign_folder(out_dir)
    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        fill(partial)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        partial.rename(out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out_dir


def template_environment(sources: Path):
    """The Jinja environment of every site's pages (the run's and the comparison's): the
    templates of ``sources``, escaped, strict, with the number and label filters."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(sources / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        fmt=format_number,
        signed=format_signed,
        json_script=json_script,
        label_short=label_short,
        label_line=label_line,
    )
    return env


class _Builder:
    def __init__(self, data: AtlasData, root: Path, settings: SiteSettings, sources: Path, progress: bool):

        self.data, self.root, self.settings, self.urls = data, root, settings, Urls(data)
        self.progress = progress
        if not (sources / "templates").is_dir():
            raise FileNotFoundError(f"{sources}/templates: the site's templates are missing")
        self.sources = sources
        self.env = template_environment(sources)
        self.featurevis: dict[str, set[int]] = {}  # layer -> channels with an image written
        self.featurevis_sizes: dict[tuple[str, int], int] = {}  # (layer, channel) -> native side
        self.extra_sizes: dict[tuple[str, int], int] = {}  # the same of its extra images
        self.filter_sizes: dict[tuple[str, int], tuple[int, int]] = {}  # its filter picture's (h, w)
        self.class_pages = {k.class_id for k in data.classes}
        self.units = {layer.name: layer.units for layer in data.layers}
        # Per layer, every score's sorted values: where a channel falls in its layer.
        self.score_values = {layer.name: scorecard.layer_values(layer.units) for layer in data.layers}
        self.has_scores = any(self.score_values.values())
        self.images = data.dataset.images if data.dataset is not None else None

    # -- files ------------------------------------------------------------------------
    def write(self, path: str, content: bytes | str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)

    def png(self, path: str, array: np.ndarray) -> str:
        self.write(path, encode_png(array))
        return path

    def asset(self, array: np.ndarray) -> str:
        """A content-addressed PNG (identical images are written once)."""
        array = np.ascontiguousarray(array)
        digest = hashlib.sha1(repr(array.shape).encode() + array.tobytes()).hexdigest()[:20]
        path = f"img/assets/{digest}.png"
        if not (self.root / path).exists():
            self.png(path, array)
        return path

    def page(self, path: str, template: str, *, scripts: str | None = None, **context) -> None:
        """Render ``template`` to ``path``; ``scripts`` names the page kind whose scripts
        (:data:`PAGE_SCRIPTS`) it loads after the shared one (None: only the shared one)."""

        def link(target):
            return Urls.href(path, target)

        # Every page's keys end with "/": it focuses the header's search box (common.js).
        shortcuts = [{**s, "href": link(s["target"])} for s in context.pop("shortcuts", [])]
        shortcuts.append({"key": "/", "label": "/", "what": "search", "href": "#site-search-box"})
        # The templates know the site's settings as `options` (options.thumbnail_size).
        html = self.env.get_template(template).render(
            page=path,
            link=link,
            urls=self.urls,
            data=self.data,
            options=self.settings,
            css=link(Urls.static("atlas.css")),
            scripts=[
                link(Urls.static(name)) for name in (*EVERY_PAGE_SCRIPTS, *PAGE_SCRIPTS.get(scripts, ()))
            ],
            home=link(Urls.index),
            shortcuts=shortcuts,
            search_index=link(search_index.PATH),
            root=_root(path),
            thumbs=self.thumb,
            unit_label=self.unit_label,
            class_pages=self.class_pages,
            atlas_layers={atlas.layer for atlas in self.data.atlases},
            scores_page=self.has_scores,
            **context,
        )
        self.write(path, html)

    # -- all pages ----------------------------------------------------------------------
    def build(self) -> None:
        self.write(MARKER, "model-atlas static site\n")
        for name in sorted(os.listdir(self.sources / "static")):
            self.write(Urls.static(name), (self.sources / "static" / name).read_bytes())
        units = [(layer, unit) for layer in self.data.layers for unit in layer.units]
        for layer, unit in _progress(units, "site: images", self.progress):
            self._featurevis_files(layer, unit)
        pages = search_index.SitePages(self.urls, self.thumb)
        self.write(search_index.PATH, search_index.index_script(self.data, pages))
        for layer in self.data.layers:
            self._layer_page(layer)
        for layer, unit in _progress(units, "site: channel pages", self.progress):
            self._channel_page(layer, unit)
        for image in self.data.images:
            self._image_page(image)
        for atlas in self.data.atlases:
            self._atlas_page(atlas)
        for klass in self.data.classes:
            self.page(
                Urls.klass(klass.class_id),
                "class.html",
                klass=klass,
                shortcuts=_shortcuts(("u", "all classes", Urls.classes_list)),
                images=[
                    i
                    for i in self.data.images
                    if i.predictions and i.predictions[0].class_id == klass.class_id
                ],
            )
        if self.has_scores:
            self._scores_page()
        overview = self._overview()
        self._lists(overview)
        self._index(overview)

    def _featurevis_files(self, layer: Layer, unit: Channel) -> None:
        image = load_image(unit.featurevis)
        if image is None:
            return
        _check_rgb(image, f"feature visualization of {layer.name}:{unit.index}")
        self.png(Urls.featurevis(layer.name, unit.index), image)
        self.png(
            Urls.featurevis(layer.name, unit.index, "-thumb"), resize(image, self.settings.thumbnail_size)
        )
        extras = {f"-diversity{i}": extra for i, extra in enumerate(unit.diversity)}
        extras.update({"-negative": unit.negative, "-neuron": unit.neuron})
        for variant, extra in extras.items():
            if extra is not None:
                picture = load_image(extra)
                self.png(Urls.featurevis(layer.name, unit.index, variant), picture)
                self.extra_sizes[(layer.name, unit.index)] = int(picture.shape[0])
        if unit.filter is not None:  # a layer rendered exactly: its filter beside the image
            picture = filter_image(unit.filter)
            self.png(Urls.featurevis(layer.name, unit.index, "-filter"), picture)
            self.filter_sizes[(layer.name, unit.index)] = picture.shape[:2]
            thumb = filter_image(unit.filter, self.settings.thumbnail_size)
            self.png(Urls.featurevis(layer.name, unit.index, "-filter-thumb"), thumb)
        self.featurevis.setdefault(layer.name, set()).add(unit.index)
        self.featurevis_sizes[(layer.name, unit.index)] = int(image.shape[0])

    def unit_label(self, layer: str, c: int):
        """The label of channel ``c`` of ``layer`` (None: unknown layer, or no attribution)."""
        units = self.units.get(layer)
        return units[c].label if units is not None and 0 <= c < len(units) else None

    def thumb(self, layer: str, c: int) -> str | None:
        """Site path of a channel's thumbnail, or None when it has no feature visualization."""
        return Urls.featurevis(layer, c, "-thumb") if c in self.featurevis.get(layer, ()) else None

    # -- whole-model overview and list pages ---------------------------------------------
    def _overview(self) -> list[dict]:
        """Per layer: its strongest channels (by mean activation when the run has statistics)
        with their icons, falling back to the channel's top dataset crop, and its coverage."""
        featured = {il.name for image in self.data.images for il in image.layers}
        rows = []
        for layer in self.data.layers:
            units = layer.units
            ranked = sorted(
                units,
                key=lambda u: (u.mean_activation is None, -(u.mean_activation or 0.0), u.index),
            )
            strongest = []
            for u in ranked[: self.settings.overview_channels]:
                thumb, crop = self.thumb(layer.name, u.index), None
                if thumb is None and u.examples and u.examples[0].crop is not None:
                    crop = self.asset(resize(load_image(u.examples[0].crop), self.settings.thumbnail_size))
                strongest.append({"unit": u, "thumb": thumb, "crop": crop})
            rows.append(
                {
                    "layer": layer,
                    "strongest": strongest,
                    "by_mean": any(u.mean_activation is not None for u in units),
                    "featurevis": len(self.featurevis.get(layer.name, ())),
                    "statistics": sum(u.mean_activation is not None for u in units),
                    "examples": sum(bool(u.examples) for u in units),
                    "featured": layer.name in featured,
                    "labels": layer_label_summary(units),
                    "clearest": self._picks(layer, "clarity_gain"),
                    "polysemantic": self._picks(layer, "polysemanticity"),
                    "scored": bool(self.score_values[layer.name]),
                }
            )
        return rows

    def _picks(self, layer: Layer, key: str) -> list[dict]:
        """The layer's channels highest in ``key`` for the overview, with their icons."""
        return [
            {"unit": u, "value": value, "thumb": self.thumb(layer.name, u.index)}
            for u, value in scorecard.picks(layer.units, key, self.settings.overview_score_channels)
        ]

    def _scores_page(self) -> None:
        """What the scores mean, how the pages use them and how far to trust them."""
        self.page(
            Urls.scores,
            "scores.html",
            scores=SCORES,
            weak_strength=scorecard.WEAK_STRENGTH,
            path_flag_min_images=scorecard.PATH_FLAG_MIN_IMAGES,
            path_flag_shown=scorecard.path_flag_shown(self.images),
            filters=scorecard.FILTERS,
            shortcuts=_shortcuts(("u", "all layers", Urls.layers_list)),
        )

    def _featured_tiles(self) -> list[tuple[FeaturedImage, str | None]]:
        """The featured images with their picture's site path (None without one)."""
        return [
            (i, self.urls.image_file(i.image_id) if i.image is not None else None) for i in self.data.images
        ]

    def _lists(self, overview: list[dict]) -> None:
        self.page(Urls.layers_list, "layers.html", overview=overview)
        self.page(Urls.images_list, "images.html", images=self._featured_tiles())
        self.page(Urls.classes_list, "classes.html")

    def _index(self, overview: list[dict]) -> None:
        self.page(
            Urls.index,
            "index.html",
            overview=overview,
            shortcuts=_shortcuts(
                ("l", "all layers", Urls.layers_list),
                ("i", "all images", Urls.images_list),
                ("c", "all classes", Urls.classes_list),
            ),
            images=self._featured_tiles(),
        )

    def _layer_page(self, layer: Layer) -> None:
        cells = [
            {
                "unit": u,
                "thumb": self.thumb(layer.name, u.index),
                "scores": {
                    scorecard.sort_attribute(s.key): scorecard.attribute_value(u.scores.get(s.key))
                    for s in SCORES
                },
                "filters": scorecard.filter_tokens(u.scores, self.images),
                "filter_thumb": Urls.featurevis(layer.name, u.index, "-filter-thumb")
                if (layer.name, u.index) in self.filter_sizes
                else None,
            }
            for u in layer.units
        ]
        before, after = self._neighbours(layer)
        self.page(
            Urls.layer(layer.name),
            "layer.html",
            scripts="layer",
            layer=layer,
            cells=cells,
            shortcuts=_shortcuts(
                ("[", "previous layer", Urls.layer(before.name) if before else None),
                ("]", "next layer", Urls.layer(after.name) if after else None),
                ("u", "all layers", Urls.layers_list),
            ),
            before=before,
            after=after,
            has_attribution=any(u.attribution is not None for u in layer.units),
            has_mean=any(u.mean_activation is not None for u in layer.units),
            has_filters=any(cell["filter_thumb"] for cell in cells),
            score_sorts=self._score_sorts(layer),
            filters=scorecard.filter_menu([cell["filters"] for cell in cells], self.images)
            if self.score_values[layer.name]
            else [],
        )

    def _score_sorts(self, layer: Layer) -> list[dict]:
        """The layer page's sort button per score: its key, name, and why it is disabled
        (None: it sorts); empty without scores of the layer."""
        values = self.score_values[layer.name]
        if not values:
            return []
        out = []
        for s in SCORES:
            why = None if s.key in values else "no channel of this layer has this score"
            if s.key == "path_flag" and not scorecard.path_flag_shown(self.images):
                why = f"the path check's flag is shown from {scorecard.PATH_FLAG_MIN_IMAGES} dataset images"
            out.append({"key": scorecard.sort_attribute(s.key), "name": s.name, "disabled": why})
        return out

    def _neighbours(self, layer: Layer) -> tuple[Layer | None, Layer | None]:
        """The layers before and after ``layer`` in the model."""
        i = self.data.layers.index(layer)
        layers = self.data.layers
        return (layers[i - 1] if i > 0 else None), (layers[i + 1] if i + 1 < len(layers) else None)

    def _channel_page(self, layer: Layer, unit: Channel) -> None:
        c = unit.index
        before, after = self._neighbours(layer)
        previous = Urls.channel(layer.name, c - 1) if c > 0 else None
        following = Urls.channel(layer.name, c + 1) if c + 1 < layer.channels else None
        # An image where the channel's maximum is not above zero does not excite it: it is
        # no "top example", whatever its rank (a layer can be silent on most images).
        firing = [e for e in unit.examples if e.activation is not None and e.activation > 0]
        examples = self._examples(firing, sign=1)
        negative_examples = self._examples(unit.negative_examples, sign=-1)
        native = self.featurevis_sizes.get((layer.name, c))
        extra_native = self.extra_sizes.get((layer.name, c))
        variants = _featurevis_variants(layer.name, unit, shown_size(extra_native, 128)) if native else []
        card = scorecard.scorecard(
            unit, self.score_values[layer.name], layer.channels, layer.scores_info, self.images
        )
        weak = scorecard.weak_visualization(unit, self.images) if native else []
        self.page(
            Urls.channel(layer.name, c),
            "channel.html",
            layer=layer,
            unit=unit,
            featurevis=Urls.featurevis(layer.name, c) if c in self.featurevis.get(layer.name, ()) else None,
            featurevis_shown=shown_size(native),
            filter=self._filter(layer, unit),
            variants=variants,
            examples=examples,
            negative_examples=negative_examples,
            silent_examples=len(unit.examples) - len(firing),
            histogram=histogram_bars(unit),
            similar=[(s, self.thumb(layer.name, s.channel)) for s in unit.similar],
            scorecard=card,
            weak=weak,
            # Weak pictures: the examples come first (they are what people read a unit from
            # best; docs/FRONTEND.md, "Scores").
            examples_first=bool(weak) and bool(examples),
            shortcuts=_shortcuts(
                ("ArrowLeft", "previous channel", previous),
                ("ArrowRight", "next channel", following),
                ("[", "previous layer", Urls.layer(before.name) if before else None),
                ("]", "next layer", Urls.layer(after.name) if after else None),
                ("u", f"layer {layer.name}", Urls.layer(layer.name)),
            ),
            previous=previous,
            next=following,
        )

    def _filter(self, layer: Layer, unit: Channel) -> dict | None:
        """The channel page's filter picture: its path, size in px, how many px one input
        pixel takes, the filter's shape and its largest weight; None without one."""
        size = self.filter_sizes.get((layer.name, unit.index))
        if size is None:
            return None
        rows, cols = unit.filter.shape[:2]
        return {
            "path": Urls.featurevis(layer.name, unit.index, "-filter"),
            "height": int(size[0]),
            "width": int(size[1]),
            "scale": int(size[0]) // rows,
            "rows": rows,
            "cols": cols,
            "largest": float(np.abs(unit.filter).max()),
        }

    def _examples(self, examples, sign: int) -> list[dict]:
        """Dataset examples as a channel page lists them: the crop, the spotlight of where
        the channel is active (``sign`` 1) or negative (-1) in it, and the image's page."""
        out = []
        for e in examples:
            spotlight = heat_overlay(e.map, sign) if e.map is not None else None
            out.append(
                {
                    "example": e,
                    "crop": self.asset(load_image(e.crop)) if e.crop is not None else None,
                    "heat": self.asset(spotlight) if spotlight is not None else None,
                    "page": self.urls.image(e.image_id),
                }
            )
        return out

    def _atlas_page(self, atlas: ActivationAtlas) -> None:
        path = Urls.atlas(atlas.layer)

        def href(target):
            return Urls.href(path, target)

        def cells(cell):
            return atlas_page.cell_data(
                cell,
                icon=lambda c: href(self.asset(load_image(c.icon))) if c.icon is not None else None,
                crop=lambda image: href(self.asset(load_image(image))) if image is not None else None,
                image_page=lambda image_id: href(self.urls.image(image_id)),
                channel_page=lambda c: href(Urls.channel(atlas.layer, c)),
                thumb=lambda c: href(self.thumb(atlas.layer, c)),
                label=lambda c: self.unit_label(atlas.layer, c),
            )

        data = atlas_page.page_data(atlas, self.data.model.class_names, cells)
        data["classScripts"] = {str(c): href(Urls.atlas_class(atlas.layer, c)) for c in atlas.filter_classes}
        data["classPages"] = {
            str(c): href(Urls.klass(c)) for c in atlas.filter_classes if c in self.class_pages
        }
        for class_id in atlas.filter_classes:
            self.write(Urls.atlas_class(atlas.layer, class_id), atlas_page.class_script(atlas, class_id))
        layer = self.data.layer(atlas.layer)
        self.page(
            path,
            "atlas.html",
            scripts="atlas",
            atlas=atlas,
            layer=layer,
            atlas_json=json_script(data),
            shortcuts=_shortcuts(("u", f"layer {layer.name}", Urls.layer(layer.name))),
        )

    def _image_page(self, image: FeaturedImage) -> None:
        path = self.urls.image(image.image_id)
        picture = load_image(image.image)
        if picture is not None:
            _check_rgb(picture, f"image {image.image_id!r}")
            self.png(self.urls.image_file(image.image_id), picture)
        known = {layer.name for layer in self.data.layers}

        def href(target):
            return Urls.href(path, target)

        layers, payload = [], []
        for il in image.layers:
            context, data = image_page.layer_data(
                image,
                il,
                asset=lambda a: href(self.asset(a)),
                thumb=lambda name, c: href(self.thumb(name, c)),
                channel_page=lambda name, c: href(Urls.channel(name, c)) if name in known else None,
                label=self.unit_label,
            )
            context["known"] = il.name in known
            layers.append(context)
            payload.append(data)
        self.page(
            path,
            "image.html",
            scripts="image" if layers else None,  # no layers: no Building Blocks
            image=image,
            layers=layers,
            picture=self.urls.image_file(image.image_id) if picture is not None else None,
            shortcuts=_shortcuts(("u", "all images", Urls.images_list)),
            blocks=image_page.page_data(
                image,
                payload,
                lambda c: href(Urls.klass(c)) if c in self.class_pages else None,
            ),
        )


# A dataset example's overlay is a spotlight: it darkens the crop where the channel is not
# active (a top example) or not negative (a most negative one), so that where it fires
# stands out on any photo (a coloured heat map vanishes on photos of the same colour).
SPOTLIGHT_DARKEST = 0.78  # opacity of the shade where the channel does nothing


def heat_overlay(activation_map: np.ndarray, sign: int = 1) -> np.ndarray | None:
    """uint8 RGBA ``[m, m, 4]``: black, as opaque as the map is far from its own extreme in
    ``sign``'s direction (clear at the strongest position, SPOTLIGHT_DARKEST where the
    channel is 0 or the other sign); None when the map never has that sign."""
    values = sign * np.asarray(activation_map, np.float64)
    peak = float(np.nanmax(values)) if values.size else 0.0
    if not peak > 0:
        return None
    strength = np.clip(np.nan_to_num(values / peak), 0.0, 1.0)
    out = np.zeros((*strength.shape, 4), np.uint8)
    out[..., 3] = np.round((1.0 - strength) * SPOTLIGHT_DARKEST * 255).astype(np.uint8)
    return out


def _featurevis_variants(layer: str, unit: Channel, shown: int) -> list[dict]:
    """The channel's other feature visualizations, each labelled with its objective."""
    name = f"{layer} channel {unit.index}"
    out = []
    if unit.neuron is not None:
        out.append(
            {
                "path": Urls.featurevis(layer, unit.index, "-neuron"),
                "label": "neuron",
                "title": "the channel at the centre position only",
                "alt": f"neuron feature visualization of {name}: the channel at the centre position",
            }
        )
    for i in range(len(unit.diversity)):
        out.append(
            {
                "path": Urls.featurevis(layer, unit.index, f"-diversity{i}"),
                "label": f"diverse {i + 1}",
                "title": "one of a set optimised to differ from each other",
                "alt": f"feature visualization {i + 1} of a diverse set for {name}",
            }
        )
    if unit.negative is not None:
        out.append(
            {
                "path": Urls.featurevis(layer, unit.index, "-negative"),
                "label": "negative",
                "title": "optimised to lower the channel as far as possible",
                "alt": f"negative feature visualization of {name}: what lowers it most",
            }
        )
    return [{**v, "size": shown} for v in out]


def shown_size(native: int | None, largest: int = 256) -> int | None:
    """The side a feature visualization of ``native`` pixels is shown at: its own size, or
    twice it when that still fits ``largest`` (drawn pixelated, so it stays crisp instead of
    being smoothed up to a fixed size)."""
    if native is None:
        return None
    return native * 2 if native * 2 <= largest else native


# What a shortcut's key is shown as on the page.
KEY_LABELS = {"ArrowLeft": "\u2190", "ArrowRight": "\u2192"}


def _root(page: str) -> str:
    """The relative path from ``page`` to the site's root folder: "" or "../", "../../"."""
    return "../" * page.count("/")


def _shortcuts(*entries) -> list[dict]:
    """``(key, what it opens, site path or None)`` -> the page's shortcut links (the ones
    with a target): ``static/common.js`` follows the link whose ``data-shortcut`` is the key."""
    return [
        {"key": key, "label": KEY_LABELS.get(key, key), "what": what, "target": target}
        for key, what, target in entries
        if target is not None
    ]


def histogram_bars(unit: Channel, width: int = 320, height: int = 96) -> dict | None:
    """SVG geometry of the channel's histogram (bars scaled to the largest bin)."""
    h = unit.histogram
    if h is None or not h.counts:
        return None
    top = max(h.counts) or 1
    step = width / len(h.counts)
    bars = [
        {
            "x": round(i * step, 2),
            "w": round(max(step - 1, 0.5), 2),
            "h": round(height * count / top, 2),
            "y": round(height - height * count / top, 2),
            "count": count,
            "lo": format_number(h.edges[i]),
            "hi": format_number(h.edges[i + 1]),
        }
        for i, count in enumerate(h.counts)
    ]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "lo": format_number(h.edges[0]),
        "hi": format_number(h.edges[-1]),
        "top": top,
    }


def json_script(value) -> markupsafe.Markup:  # noqa: F821
    """JSON safe inside ``<script type="application/json">``: no ``</script>`` or ``<!--`` breaks out."""
    from markupsafe import Markup

    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _check_rgb(image: np.ndarray, what: str) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what}: expected uint8 [H, W, 3], got {image.dtype} {tuple(image.shape)}")


def _progress(items, desc: str, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="item", mininterval=5)
