"""Hand-made AtlasData for the site tests: every page kind, with hostile text.

:func:`synthetic_atlas` has two layers ("conv" 4x4 and "mix.a" 2x2), three classes (one an
``XSS_CLASS`` payload) and two featured images (one with an ``XSS_FILE`` name and an
``XSS_ID`` id); :func:`pattern` makes its distinct small pictures; :func:`site_files`
reads a built site back as {relative path: bytes}.
"""

from pathlib import Path

import numpy as np

from pipeline.site import data as ad

# Text that would run script if it reached the page unescaped; the browser tests check
# that the flag stays unset.
XSS_CLASS = '<script>window.__pwned = 1</script>"><img src=x onerror="window.__pwned=2">'
XSS_FILE = 'photos/"><img src=x onerror="window.__pwned=3"><script>window.__pwned=4</script>.jpg'
XSS_ID = "<script>window.__pwned=5</script>"


def pattern(seed: int, size: int = 16) -> np.ndarray:
    """A smooth, distinct uint8 [size, size, 3] image per seed (stripes in a seed-made colour)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = np.sin(2 * np.pi * ((seed % 5 + 1) * xx + (seed % 3) * yy))
    colour = np.array([(seed * 53) % 256, (seed * 97) % 256, (seed * 151) % 256])
    return (((phase[..., None] + 1) / 2) * colour + (1 - (phase[..., None] + 1) / 2) * 40).astype(np.uint8)


# The trust scores of "conv" (pipeline/scores/definitions.py keys; None: not computed):
# channel 1's visualization is weak (strength 0.25 < 0.5) and its path flagged, channel 2
# is the clearest and channel 1 the most polysemantic; channel 3 was not rendered.
CONV_SCORES = {
    "strength": [1.5, 0.25, 2.0, None],
    "image_rank": [1, 3, 1, None],
    "specificity_margin": [0.5, -0.2, 0.25, None],
    "selectivity": [0.1, 0.8, 0.4, 0.2],
    "clarity": [0.6, 0.3, 0.9, 0.5],
    "clarity_gain": [0.1, -0.2, 0.4, 0.0],
    "polysemanticity": [0.2, 0.7, 0.1, 0.3],
    "groups": [1, 2, 1, 1],
    "diversity_disagreement": [None, 0.3, None, None],
    "path_similarity": [0.8, 0.1, 0.9, None],
    "path_flag": [0, 1, 0, None],
    "label_precision": [None] * 4,
    "fires_images": [1.0, 0.5, 0.75, 0.25],
    "fires_positions": [0.5, 0.25, 0.5, 0.125],
}
CONV_SCORES_INFO = {"clarity_random": 0.5, "selectivity_classes": "predicted", "path_layers": []}

HOT_CORNER = np.pad(np.full((2, 2), 2.5, np.float32), ((0, 2), (0, 2)))  # a 4 x 4 example map


def synthetic_atlas(channels=(4, 3)) -> ad.AtlasData:
    """Two layers ("conv" 4x4 and "mix.a" 2x2), 3 classes (one an XSS payload), two featured
    images (one with an XSS file name and id). Numbers are simple so pages can be checked."""
    classes = ["cat", XSS_CLASS, "dog"]
    model = ad.ModelInfo(
        "toy", weights="random", input_size=16, class_names=classes, aliases={"first": "conv"}
    )
    layers = []
    for li, (name, c, hw) in enumerate([("conv", channels[0], 4), ("mix.a", channels[1], 2)]):
        units = []
        for i in range(c):
            units.append(
                ad.Channel(
                    i,
                    featurevis=pattern(10 * li + i),
                    diversity=[pattern(100 + i)] if (li, i) == (0, 1) else [],
                    negative=pattern(200 + i) if (li, i) == (0, 1) else None,
                    neuron=pattern(250 + i) if (li, i) == (0, 1) else None,
                    mean_activation=float((3 * i) % 4) if name == "conv" else None,  # conv: 0, 3, 2, 1
                    attribution=float(i % 2) - 0.5,
                    histogram=ad.Histogram([1, 3, 0, 2], [0.0, 0.5, 1.0, 1.5, 2.0]),
                    examples=[
                        # The first example's map: 2.5 (its maximum) in the top-left quarter.
                        ad.Example(
                            "img0", "photos/img0.jpg", 2.5, 1, 2, (0, 4, 8, 12), pattern(300), map=HOT_CORNER
                        ),
                        ad.Example(XSS_ID, XSS_FILE, 1.25, 0, 0, (0, 0, 4, 4), pattern(301)),
                    ],
                    negative_examples=[
                        ad.Example(
                            "img0",
                            "photos/img0.jpg",
                            -0.5,
                            2,
                            2,
                            (4, 4, 12, 12),
                            pattern(302),
                            map=-HOT_CORNER / 5,
                        )
                    ]
                    if (li, i) == (0, 1)
                    else [],
                    classes=[ad.ClassScore(1, XSS_CLASS, 0.75, 3), ad.ClassScore(0, "cat", -0.25, 2)],
                    similar=[ad.Similar((i + 1) % c, 0.9), ad.Similar((i + 2) % c, -0.5)],
                    # conv feeds mix.a: conv:i excites mix.a:i % 3 and inhibits mix.a:(i + 1) % 3.
                    circuits=ad.Circuits(
                        downstream=[ad.Connection("mix.a", i % 3, 0.5)],
                        downstream_negative=[ad.Connection("mix.a", (i + 1) % 3, -0.25)],
                    )
                    if name == "conv"
                    else ad.Circuits(upstream=[ad.Connection("conv", i, 0.5)], examples=2),
                    scores={key: values[i] for key, values in CONV_SCORES.items()}
                    if name == "conv" and i < len(CONV_SCORES["strength"])
                    else {},
                )
            )
        layers.append(
            ad.Layer(
                name,
                c,
                module=f"net.{name}",
                height=hw,
                width=hw,
                units=units,
                similarity_method="a test's made-up scores",
                previous_layer="conv" if name == "mix.a" else None,
                next_layer="mix.a" if name == "conv" else None,
                scores_info=CONV_SCORES_INFO if name == "conv" else None,
            )
        )
    # Both layers on 2 x 2 cells (conv: 4 x 4 positions pooled); two attributed classes.
    dictionary = ad.SemanticDictionary(
        channels=np.stack([np.full((2, 2), 3), np.full((2, 2), 1)], -1).astype(np.int32),
        values=np.stack([np.full((2, 2), 2.0), np.full((2, 2), 1.0)], -1),
        magnitude=np.arange(4, dtype=np.float32).reshape(2, 2),
    )
    dictionary.channels[1, 0] = [2, 0]  # one cell with other channels
    icons = np.stack([np.stack([pattern(400 + 2 * y + x, 8) for x in range(2)]) for y in range(2)])
    conv_spatial = np.stack([np.eye(4), -np.eye(4)])
    image_layers = [
        ad.ImageLayer(
            "conv",
            grid_shape=(2, 2),
            dictionary=dictionary,
            grid=ad.ActivationGrid(icons, np.array([[1.0, 2.0], [3.0, 4.0]])),
            spatial_attribution=conv_spatial,
            spatial_grid=conv_spatial.reshape(2, 2, 2, 2, 2).sum(axis=(2, 4)),  # [[2, 0], [0, 2]], negated
            channel_attribution=np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 0.0, -2.0, 0.25]]),
            groups=ad.NeuronGroups(
                np.stack([np.eye(4), 1 - np.eye(4)]),
                np.stack([pattern(500, 8), pattern(501, 8)]),
                np.array([[1.0, -1.0], [0.5, 0.25]]),
                directions=np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.6, 0.8, 0.0]]),
                shared=True,
            ),
        ),
        ad.ImageLayer(
            "mix.a",
            grid_shape=(2, 2),
            dictionary=ad.SemanticDictionary(
                channels=np.tile(np.array([0, 2], np.int32), (2, 2, 1)),
                values=np.tile(np.array([1.5, 0.5]), (2, 2, 1)),
                magnitude=np.ones((2, 2)),
            ),
            spatial_attribution=np.stack(
                [np.arange(1.0, 5.0).reshape(2, 2), np.array([[-1.0, 0.0], [0.0, 1.0]])]
            ),
            spatial_grid=np.stack([np.arange(1.0, 5.0).reshape(2, 2), np.array([[-1.0, 0.0], [0.0, 1.0]])]),
            channel_attribution=np.array([[0.5, 0.25, -0.75], [-0.5, 0.0, 0.125]]),
            groups=ad.NeuronGroups(
                np.stack([np.eye(2), 1 - np.eye(2)]),
                np.stack([pattern(502, 8), pattern(503, 8)]),
                np.array([[0.75, 0.5], [-0.25, 0.125]]),
                directions=np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                shared=True,
            ),
            flows=ad.Flows(
                "conv",
                cells=np.stack([np.arange(16.0).reshape(4, 4) / 8, -np.arange(16.0).reshape(4, 4) / 16]),
                groups=np.array([[[0.5, 0.25], [-0.125, 0.0625]], [[0.25, -0.5], [1.0, 0.0]]]),
            ),
        ),
    ]
    images = [
        ad.FeaturedImage(
            "img0",
            "photos/img0.jpg",
            pattern(600, 16),
            label="cat",
            predictions=[ad.ClassScore(0, "cat", 0.75), ad.ClassScore(1, XSS_CLASS, 0.25)],
            classes=[ad.ClassScore(0, "cat"), ad.ClassScore(1, XSS_CLASS)],
            second_class=1,
            layers=image_layers,
        ),
        ad.FeaturedImage(
            XSS_ID,
            XSS_FILE,
            pattern(601, 16),
            predictions=[ad.ClassScore(1, XSS_CLASS, 0.5)],
            classes=[ad.ClassScore(1, XSS_CLASS), ad.ClassScore(2, "dog")],
            second_class=1,
            layers=[ad.ImageLayer("conv", grid_shape=(2, 2), dictionary=dictionary)],
        ),
    ]
    return ad.AtlasData(
        model=model,
        layers=layers,
        dataset=ad.DatasetSummary(
            5,
            [ad.SkippedImage("bad", XSS_FILE, "not an image")],
            labelled=2,
            label_classes=1,
            predicted_classes=2,
            attribution="gradient",
        ),
        classes=[
            ad.ClassPage(0, "cat", 2, {"conv": [ad.Similar(2, 0.5)]}),
            ad.ClassPage(1, XSS_CLASS, 3, {"mix.a": [ad.Similar(0, 0.25)]}),
        ],
        images=images,
        atlases=[synthetic_activation_atlas()],
    )


# The activation atlas of "conv": level 2 has cells (0, 0) and (1, 1); level 4 four cells.
# Attribution to class c of level L's cell m is ATLAS_ATTRIBUTION[L][m][c].
ATLAS_ATTRIBUTION = {
    0: [[2.0, -1.0, 0.0], [-0.5, 1.0, 0.0]],
    1: [[1.0, 0.0, 0.0], [0.5, 0.0, 0.0], [-1.0, 2.0, 0.0], [0.0, 4.0, 0.0]],
}


def synthetic_activation_atlas() -> ad.ActivationAtlas:
    def cell(i, j, n, level, m):
        scores = ATLAS_ATTRIBUTION[level][m]
        top = sorted(range(2), key=lambda c: -scores[c])
        return ad.AtlasCell(
            i,
            j,
            n,
            icon=pattern(400 + 10 * level + m),
            classes=[ad.ClassScore(c, ["cat", XSS_CLASS, "dog"][c], scores[c]) for c in top],
            examples=[ad.Example("img0", "img0", None, 1, 1, crop=pattern(500 + m))],
            channels=[ad.Similar(m % 4, 1.5), ad.Similar((m + 1) % 4, 0.5)],
        )

    levels = []
    for level, (side, cells) in enumerate(
        [(2, [(0, 0, 5), (1, 1, 3)]), (4, [(0, 0, 3), (0, 1, 2), (3, 3, 2), (2, 3, 1)])]
    ):
        levels.append(
            ad.AtlasLevel(
                side,
                [cell(i, j, n, level, m) for m, (i, j, n) in enumerate(cells)],
                np.asarray(ATLAS_ATTRIBUTION[level], np.float32),
            )
        )
    return ad.ActivationAtlas("conv", levels, samples=8, filter_classes=[0, 1], umap={"metric": "cosine"})


def site_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def imagenet_atlas() -> ad.AtlasData:
    """:func:`synthetic_atlas` with ImageNet-1k's 1,000 class names (so the search knows the
    WordNet hierarchy above them) and class pages for a Labrador retriever and a tabby cat."""
    from pipeline.labels.hierarchy import ClassHierarchy

    hierarchy = ClassHierarchy.from_file()
    names = [hierarchy.name(wnid) for wnid in hierarchy.classes]
    data = synthetic_atlas()
    data.model.class_names = names
    data.classes = [
        ad.ClassPage(c, names[c], 2, {"conv": [ad.Similar(0, 0.5), ad.Similar(1, 0.4)]})
        for c in (names.index("Labrador retriever"), names.index("tabby"))
    ]
    for unit, label in zip(data.layer("conv").units, imagenet_labels(hierarchy, names)):
        unit.label = label
    label_groups_and_cells(data, names)
    return data


def label_groups_and_cells(data: ad.AtlasData, names) -> None:
    """Labels for img0's conv groups and the atlas's coarse cells, by pipeline.labels.units.
    Group 0 is conv:0 alone (no clear label); group 1 loads 0.6 on conv:1 and 0.8 on conv:2,
    which supports nothing: 3/7 of conv:1's row, the same shares, so "retriever", 0.727, 35
    images. Atlas cell (0, 0) of level 2 argues for Labrador retriever (2) and golden
    retriever (1), and 3 of its images were predicted as Labrador: "retriever" (lift 1),
    tentative; cell (1, 1) argues for nothing: no clear label."""
    from pipeline.labels.units import cell_labels, group_labels

    attribution, counts = imagenet_evidence(names)
    groups = data.images[0].layers[0].groups
    groups.labels = group_labels(groups.directions, attribution, counts, names)
    level = data.atlases[0].levels[0]
    cells, images = np.zeros((2, len(names)), np.float32), np.zeros((2, len(names)), np.int64)
    cells[0, names.index("Labrador retriever")], cells[0, names.index("golden retriever")] = 2.0, 1.0
    images[0, names.index("Labrador retriever")] = 3
    for cell, label in zip(level.cells, cell_labels(cells, images, names)):
        cell.label = label


def imagenet_labels(hierarchy, names):
    """Labels of conv's 4 channels by the shipped rule. Images were predicted as three
    classes (Labrador retriever 20, golden retriever 15, tabby 10; the others: NaN). Channel 1
    supports the two retrievers (0.6, 0.4) and a little the tabby (0.1): coverage of
    "retriever" 1/1.1, against 2/3 from uniform attribution, so lift (1/1.1 - 2/3) / (1/3) =
    0.727 (dog, canine, ... tie; the more specific wins). Channel 0 supports the three
    evenly (lift 0: no clear label); channels 2 and 3 support none."""
    from pipeline.labels import Evidence, label_units

    attribution, counts = imagenet_evidence(names)
    return label_units(hierarchy, Evidence(attribution, counts), class_names=names)


def imagenet_evidence(names):
    """conv's attribution by class ``[4, 1000]`` and images per class (:func:`imagenet_labels`)."""
    counts = np.zeros(len(names), np.int64)
    attribution = np.full((4, len(names)), np.nan, np.float32)
    for name, count, zero, one in (
        ("Labrador retriever", 20, 0.3, 0.6),
        ("golden retriever", 15, 0.3, 0.4),
        ("tabby", 10, 0.3, 0.1),
    ):
        k = names.index(name)
        counts[k] = count
        attribution[:, k] = (zero, one, 0.0, -0.2)
    return attribution, counts
