"""What every score means, in one line, and how a page says it in a sentence (no torch, no numpy).

One :class:`Score` per column of the scores table (docs/STORE.md, "Scores store", lists the
same definitions). ``sentence`` is a template for a plain-language sentence about one
channel: ``{value}`` is the channel's score as :func:`pipeline.site.numbers.format_number`
prints it, ``{percentile}`` where it falls among the layer's channels (0-100), and some
templates name another column of the same row (``{image_rank}``, ``{groups}``). ``higher``
says which way is better for trust (None: neither, it describes).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Score:
    key: str  # the column name in scores.h5, Results.scores and the CLI
    name: str  # a short heading
    definition: str  # one line: what is computed
    sentence: str  # a plain-language template about one channel
    higher: str | None  # "better", "worse" or None (descriptive)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SCORES: tuple[Score, ...] = (
    Score(
        "strength",
        "visualization strength",
        "the channel's spatial maximum on its own feature visualization divided by its largest spatial "
        "maximum on any dataset image (both at the layer's output)",
        "Its visualization excites it {value} times as much as its best dataset image"
        " (at least 1: the picture is a fair summary; well below 1: trust the examples more).",
        "better",
    ),
    Score(
        "image_rank",
        "visualization rank",
        "1 + the number of the layer's other visualizations that excite the channel more than its own",
        "Of the layer's visualizations, its own ranks {value} in exciting it.",
        "worse",
    ),
    Score(
        "specificity_margin",
        "visualization margin",
        "(response to its own visualization - response to the runner-up visualization of the layer) / "
        "|response to its own|, from featurevis.h5's responses",
        "Its own visualization beats the runner-up image of the layer by {value} of its response.",
        "better",
    ),
    Score(
        "selectivity",
        "class selectivity",
        "Morcos et al. (2018): (mean over its best class - mean over the other classes) / their sum, "
        "of the positive part of each image's spatial maximum, by true class (predicted without labels)",
        "Class selectivity {value}: 1 would mean only one class makes it fire, 0 that all do alike.",
        None,
    ),
    Score(
        "clarity",
        "clarity",
        "SemanticLens (Dreyer et al., 2025): mean pairwise cosine similarity of its top examples' "
        "embeddings (the model's penultimate pooled features of each example crop)",
        "Its top examples look alike to the model: similarity {value} (random crops of the layer: "
        "{clarity_random}).",
        "better",
    ),
    Score(
        "clarity_gain",
        "clarity over random",
        "clarity minus the same figure for random example crops of the layer",
        "Its top examples' similarity minus that of random crops: {value} (above 0: they look more"
        " alike than chance).",
        "better",
    ),
    Score(
        "polysemanticity",
        "polysemanticity",
        "SemanticLens: 1 - cosine of the two k-means (k = 2) centroids of its top examples' embeddings",
        "Split in two, its top examples' halves differ by {value} (0: alike, 1: unrelated); they"
        " count as {groups} group(s).",
        "worse",
    ),
    Score(
        "groups",
        "example groups",
        "2 when the 2-means split of its top examples has a cosine silhouette of at least 0.5, else 1",
        "Its top examples form {value} group(s).",
        None,
    ),
    Score(
        "diversity_disagreement",
        "diverse images disagree",
        "1 - mean pairwise cosine similarity of the embeddings of its diverse visualizations "
        "(Building Blocks layers only)",
        "Its diverse visualizations disagree by {value} (0: they show one thing).",
        "worse",
    ),
    Score(
        "path_similarity",
        "path similarity",
        "mean over the earlier layers of the cosine between the visualization's average activation "
        "vector and its top examples' average direction (after Geirhos et al., 2024)",
        "On its way through the earlier layers, its visualization resembles its top examples by {value}.",
        "better",
    ),
    Score(
        "path_flag",
        "unnatural path",
        "true when, averaged over the earlier layers, the visualization is less like its top examples' "
        "path than every natural crop (random crops of the layer and the examples) is",
        "Its visualization takes a path no natural image takes: it may show what excites the unit "
        "artificially, not what it detects.",
        "worse",
    ),
    Score(
        "label_precision",
        "label precision",
        "share of its top examples whose true class falls under its label (images with true labels only)",
        "{value} of its top examples are what its label says.",
        "better",
    ),
    Score(
        "fires_images",
        "fires on images",
        "share of dataset images on which its spatial maximum is above 0",
        "It fires on {value} of the images.",
        None,
    ),
    Score(
        "fires_positions",
        "fires on positions",
        "share of positions above 0 within its top examples' crops (the stored activation maps)",
        "Around its strongest responses it fires on {value} of the positions.",
        None,
    ),
)

SCORE_KEYS = tuple(score.key for score in SCORES)


def score(key: str) -> Score:
    """The score named ``key``; a clear error listing the keys otherwise."""
    for found in SCORES:
        if found.key == key:
            return found
    raise KeyError(f"unknown score {key!r}; scores: {', '.join(SCORE_KEYS)}")
