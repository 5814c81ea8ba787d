"""Everything the static atlas site shows, as plain data.

:class:`AtlasData` is what :func:`pipeline.site.build.build_site` renders. Every part is
optional: a run that only discovered its layers gives a site with an index and empty
layer pages; feature visualizations, dataset statistics and Building Blocks appear as
their stages land. Tests build ``AtlasData`` by hand from small NumPy images.

Images are ``uint8 [H, W, 3]`` arrays, or :class:`LazyImage` (a loader called once, at
export time) so that a whole model's images never sit in memory together.

:func:`pipeline.site.reader.from_results` builds it from a run folder. Paths shown on
pages (``Example.path``, ``SkippedImage.path``, ``FeaturedImage.path``) are relative to
the dataset's source root (or a bare file name), never absolute: the site must not
depend on, or reveal, where the workflow ran.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.labels import Label


class LazyImage:
    """A ``uint8 [H, W, 3]`` image read only when the site is written."""

    def __init__(self, load: Callable[[], np.ndarray], what: str = "image"):
        self._load, self.what = load, what

    def load(self) -> np.ndarray:
        return np.asarray(self._load())

    def __repr__(self) -> str:
        return f"LazyImage({self.what})"


Image = np.ndarray | LazyImage


def load_image(image: Image | None) -> np.ndarray | None:
    """The array of an image field (``None`` stays ``None``)."""
    if image is None:
        return None
    return image.load() if isinstance(image, LazyImage) else np.asarray(image)


# ---------------------------------------------------------------------------------
# The model, its layers and channels
# ---------------------------------------------------------------------------------


@dataclasses.dataclass
class ClassScore:
    """A class with a score: an attribution, a probability or a logit (``kind`` says which)."""

    class_id: int
    class_name: str
    score: float | None = None
    images: int | None = None  # images predicted as the class, when known


@dataclasses.dataclass
class Example:
    """A dataset example of a channel (a top one, or one of its most negative): the image,
    where its maximum (minimum) is, its crop and the channel's activation over the crop."""

    image_id: str
    path: str  # shown: relative to the source root
    activation: float | None = None
    y: int | None = None
    x: int | None = None
    box: tuple[int, int, int, int] | None = None  # (y0, x0, y1, x1) in the model's input crop
    crop: Image | None = None  # the receptive field of (y, x)
    label: str | None = None
    map: np.ndarray | None = None  # float [m, m]: the channel's activation over the crop


@dataclasses.dataclass
class Histogram:
    """``counts [B]`` images per bin of the channel's per-image maximum, ``edges [B + 1]``."""

    counts: list[int]
    edges: list[float]


@dataclasses.dataclass
class Similar:
    channel: int
    score: float


@dataclasses.dataclass
class Connection:
    """A channel of a neighbouring layer and its mean attribution (circuits.h5)."""

    layer: str
    channel: int
    attribution: float


@dataclasses.dataclass
class Circuits:
    """A channel's strongest connections to the layer before (``upstream``: what feeds it,
    as attribution of its activation to their channels) and after (``downstream``: what it
    feeds); ``*_negative`` the ones that lower it / that it lowers. ``examples``: how many
    of its top examples its upstream averages."""

    upstream: list[Connection] = dataclasses.field(default_factory=list)
    upstream_negative: list[Connection] = dataclasses.field(default_factory=list)
    downstream: list[Connection] = dataclasses.field(default_factory=list)
    downstream_negative: list[Connection] = dataclasses.field(default_factory=list)
    examples: int = 0


@dataclasses.dataclass
class Channel:
    """One unit of a layer and everything known about it."""

    index: int
    featurevis: Image | None = None
    diversity: list[Image] = dataclasses.field(default_factory=list)
    negative: Image | None = None
    neuron: Image | None = None  # the channel at the centre position only
    # float [h, w, 3]: its weights on each input pixel's red, green, blue, for a layer
    # rendered exactly (the featurevis store's ``filters``); None for every other layer.
    filter: np.ndarray | None = None
    featurevis_rank: int | None = None  # 1 = strongest of its layer on its own image
    featurevis_image_rank: int | None = None  # 1 = its own image excites it most of the layer's images
    mean_activation: float | None = None  # mean over images of the spatial maximum
    std_activation: float | None = None
    active_fraction: float | None = None
    attribution: float | None = None  # mean attribution to the predicted class
    histogram: Histogram | None = None
    examples: list[Example] = dataclasses.field(default_factory=list)
    negative_examples: list[Example] = dataclasses.field(default_factory=list)  # below zero only
    classes: list[ClassScore] = dataclasses.field(default_factory=list)
    similar: list[Similar] = dataclasses.field(default_factory=list)
    circuits: Circuits | None = None
    label: Label | None = None  # pipeline/labels: None without attribution (not "no clear label")
    # Its trust scores (scores.h5; pipeline/scores/definitions.py): score key -> value, None
    # where it could not be computed; empty when the run has no scores of the layer.
    scores: dict[str, float | None] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Layer:
    """A layer under its one name; ``units`` holds one :class:`Channel` per channel
    (missing ones are filled in empty by :meth:`AtlasData.normalized`)."""

    name: str
    channels: int
    module: str | None = None
    height: int | None = None
    width: int | None = None
    units: list[Channel] = dataclasses.field(default_factory=list)
    similarity_method: str | None = None  # how Channel.similar was computed, for the page
    cap: str | None = None  # the bounded activation the layer ends in ("ReLU6"), if any
    featurevis_tensor: str | None = None  # what its visualizations optimised: "output" or "pre-activation"
    featurevis_preset: str | None = None  # the preset that rendered them ("lucid", "fast")
    featurevis_steps: int | None = None  # optimisation steps per image
    # Its images are computed exactly, not optimised: the rendered tensor is affine in the
    # image (pipeline/optvis/exact.py; the store then holds the channels' filters).
    featurevis_exact: bool = False
    featurevis_size: int | None = None  # rendered image side in pixels
    previous_layer: str | None = None  # circuits: the layer before, and after, in the chain
    next_layer: str | None = None
    circuits_examples: int | None = None  # top examples per channel the circuits consider
    # What scores.h5 records of the layer besides its table (ScoresStore.info: clarity_random,
    # selectivity_classes, embedding_layer, image_size, path_layers); None without scores.
    scores_info: dict | None = None

    def unit(self, index: int) -> Channel:
        return self.units[index]


@dataclasses.dataclass
class ModelInfo:
    name: str
    weights: str | None = None
    input_size: int | None = None
    checksum: str | None = None
    class_names: list[str] = dataclasses.field(default_factory=list)
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)
    # Where the labels' synsets come from (the run's ``labels.hierarchy``: "auto", "class-names"
    # or a file), so the search names the same kinds of thing.
    label_hierarchy: str = "auto"


@dataclasses.dataclass
class SkippedImage:
    image_id: str
    path: str  # shown: relative to the source root
    reason: str


@dataclasses.dataclass
class DatasetSummary:
    images: int
    skipped: list[SkippedImage] = dataclasses.field(default_factory=list)
    labelled: int | None = None
    label_classes: int | None = None  # distinct classes among the labels
    predicted_classes: int | None = None  # distinct top-1 predictions
    attribution: str | None = None  # the attribution method of the run


@dataclasses.dataclass
class ClassPage:
    """A class of the model: how often it was predicted and the channels that support it."""

    class_id: int
    class_name: str
    images: int | None = None
    channels: dict[str, list[Similar]] = dataclasses.field(default_factory=dict)  # layer -> top


# ---------------------------------------------------------------------------------
# Featured images and their Building Blocks
# ---------------------------------------------------------------------------------


@dataclasses.dataclass
class SemanticDictionary:
    """On the layer's cell grid: ``channels`` int ``[gh, gw, K]`` (largest first), ``values``
    ``[gh, gw, K]``, ``magnitude [gh, gw]``."""

    channels: np.ndarray
    values: np.ndarray
    magnitude: np.ndarray


@dataclasses.dataclass
class ActivationGrid:
    """``icons`` uint8 ``[gh, gw, S, S, 3]``: one feature visualization per cell, ``magnitude [gh, gw]``.

    ``icons`` is any array-like (a store's unread HDF5 dataset, say): it is sliced when a
    page is written.
    """

    icons: Any
    magnitude: np.ndarray


@dataclasses.dataclass
class NeuronGroups:
    """NMF groups: ``maps [G, H, W]``, ``icons`` uint8 ``[G, S, S, 3]`` (optional, array-like
    as :class:`ActivationGrid`'s), ``attribution [G, T]`` to the image's attributed classes,
    ``directions [G, C]`` (which channels make each group), and whether the groups are
    shared by all the image's layers (group ``g`` the same concept in each)."""

    maps: np.ndarray
    icons: Any = None
    attribution: np.ndarray | None = None
    target: str | None = None
    directions: np.ndarray | None = None
    shared: bool = False
    labels: list[Label] | None = None  # one per group (pipeline/labels/units.py); None: not labelled


@dataclasses.dataclass
class Flows:
    """Attribution flowing into a layer from the image's previous layer ``source``, per
    attributed class: ``cells [T, Q, P]`` (this layer's cells by the previous layer's, both
    row-major on their grids) and ``groups [T, G, G_source]`` (None without groups)."""

    source: str
    cells: np.ndarray
    groups: np.ndarray | None = None


@dataclasses.dataclass
class ImageLayer:
    """One layer of one image, on its cell grid ``grid_shape (gh, gw)``. ``spatial_attribution
    [T, H, W]`` (at the layer's resolution), ``spatial_grid [T, gh, gw]`` (summed over each
    cell) and ``channel_attribution [T, C]`` follow the order of :attr:`FeaturedImage.classes`."""

    name: str
    grid_shape: tuple[int, int] | None = None
    dictionary: SemanticDictionary | None = None
    grid: ActivationGrid | None = None
    spatial_attribution: np.ndarray | None = None
    spatial_grid: np.ndarray | None = None
    channel_attribution: np.ndarray | None = None
    groups: NeuronGroups | None = None
    flows: Flows | None = None


@dataclasses.dataclass
class FeaturedImage:
    """An image with its Building Blocks (its own page). ``classes`` are the attributed
    classes, top first (``score``: probability), and ``class_logits`` their logits."""

    image_id: str
    path: str  # shown: relative to the source root
    image: Image | None = None  # the crop the model saw
    label: str | None = None
    predictions: list[ClassScore] = dataclasses.field(default_factory=list)  # score: probability
    classes: list[ClassScore] = dataclasses.field(default_factory=list)  # attributed, top first
    second_class: int | None = None  # index into classes of the contrast class
    layers: list[ImageLayer] = dataclasses.field(default_factory=list)
    class_logits: list[float] = dataclasses.field(default_factory=list)  # per attributed class


@dataclasses.dataclass
class AtlasCell:
    """One cell of an activation atlas's level: where it is on the ``side x side`` grid,
    how many sampled vectors fell in it, the icon of their mean vector, the classes that
    mean supports most, dataset examples (crops) of vectors near it, the channels
    strongest in it, and its label (:mod:`pipeline.labels.units`: from its attribution to
    every class and its own images)."""

    i: int  # row
    j: int  # column
    count: int
    icon: Image | None = None
    classes: list[ClassScore] = dataclasses.field(default_factory=list)
    examples: list[Example] = dataclasses.field(default_factory=list)
    channels: list[Similar] = dataclasses.field(default_factory=list)  # channel, value in the mean
    label: Label | None = None


@dataclasses.dataclass
class AtlasLevel:
    """One zoom level: its grid side, its kept cells, and every cell's attribution to every
    class (``class_attribution [M, K]``, for the class filter)."""

    side: int
    cells: list[AtlasCell]
    class_attribution: np.ndarray | None = None


@dataclasses.dataclass
class ActivationAtlas:
    """The activation atlas of one layer: its levels (coarsest first), how many vectors
    were laid out, and the classes the page can filter by."""

    layer: str
    levels: list[AtlasLevel]
    samples: int = 0
    filter_classes: list[int] = dataclasses.field(default_factory=list)
    umap: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class AtlasData:
    """The whole site's content. Only ``model`` is required."""

    model: ModelInfo
    layers: list[Layer] = dataclasses.field(default_factory=list)
    dataset: DatasetSummary | None = None
    classes: list[ClassPage] = dataclasses.field(default_factory=list)
    images: list[FeaturedImage] = dataclasses.field(default_factory=list)
    atlases: list[ActivationAtlas] = dataclasses.field(default_factory=list)
    title: str | None = None
    _close: list[Callable[[], None]] = dataclasses.field(default_factory=list, repr=False)

    def layer(self, name: str) -> Layer:
        name = self.model.aliases.get(name, name)
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"unknown layer {name!r}; layers: {', '.join(layer.name for layer in self.layers)}")

    def normalized(self) -> AtlasData:
        """Checks names and fills every layer's ``units`` to one per channel (in place)."""
        seen = set()
        for layer in self.layers:
            if not layer.name or "/" in layer.name or "\\" in layer.name or layer.name in (".", ".."):
                raise ValueError(f"layer name {layer.name!r} cannot name a page (no '/', '\\', '.', '..')")
            if layer.name in seen:
                raise ValueError(f"layer {layer.name!r} appears twice")
            seen.add(layer.name)
            if len(layer.units) > layer.channels:
                raise ValueError(
                    f"layer {layer.name}: {len(layer.units)} units for {layer.channels} channels"
                )
            by_index = {u.index: u for u in layer.units}
            layer.units = [by_index.get(i) or Channel(i) for i in range(layer.channels)]
        ids = [img.image_id for img in self.images]
        if len(set(ids)) != len(ids):
            raise ValueError("featured images: an image id appears twice")
        return self

    def close(self) -> None:
        for close in reversed(self._close):
            close()
        self._close.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
