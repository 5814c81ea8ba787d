"""Per-unit scores: arrays in, arrays out (no files, no torch).

Which units can be trusted? Each function here computes one score for every channel of a
layer from what the stores hold (the dataset's per-image maxima, the top examples, the
feature visualizations' responses) or from embeddings that :mod:`pipeline.scores.embed`
computed on the top examples' crops and the visualizations. The one-line definitions that
pages and docs show are in :mod:`pipeline.scores.definitions`; docs/STORE.md ("Scores
store") says the same.

Conventions. ``C`` channels, ``N`` dataset images, ``k`` top examples per channel. A score
that cannot be computed for a channel (too few examples, a channel that never fires) is
NaN, never a made-up 0.
"""

from __future__ import annotations

import numpy as np

# A 2-means split of a channel's top examples counts as two groups when its silhouette
# (cosine distance) reaches this: Kaufman & Rousseeuw's "reasonable structure".
TWO_GROUPS_SILHOUETTE = 0.5
MIN_EXAMPLES_TO_SPLIT = 4  # fewer top examples than this: no 2-means (polysemanticity NaN)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine similarity over the distinct pairs of rows of ``[n, d]``; NaN for n < 2."""
    n = len(vectors)
    if n < 2:
        return float("nan")
    unit = _unit_rows(vectors)
    gram = unit @ unit.T
    return float((gram.sum() - np.trace(gram)) / (n * (n - 1)))


# -- visualization strength and specificity -------------------------------------------------
def strength(visualization_max: np.ndarray, dataset_max: np.ndarray) -> np.ndarray:
    """``[C]``: the channel's spatial maximum on its own visualization over its largest
    spatial maximum on any dataset image (Lucid's check: a good visualization reaches at
    least 1). NaN where the dataset maximum is not positive (the ratio would not say how
    much it fires) or either is missing."""
    vis = np.asarray(visualization_max, np.float64)
    best = np.asarray(dataset_max, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(best) & (best > 0), vis / best, np.nan)


def specificity_margin(responses: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """``[K]``: for the rendered channel of each row of ``responses`` (``[K, C]``: every
    channel's spatial mean on row i's visualization, as featurevis.h5 stores it), how much
    more its own visualization excites it than the runner-up visualization of the layer
    does, relative to the first: ``(own - best other) / |own|``. Positive exactly when
    ``image_rank`` is 1; NaN with a single image or a zero response on its own."""
    responses = np.asarray(responses, np.float64)
    channels = np.asarray(channels, int)
    k = len(channels)
    if k < 2:
        return np.full(k, np.nan)
    column = responses[:, channels]  # [K images, K channels]: channel j's response to image i
    own = column[np.arange(k), np.arange(k)]
    others = column.copy()
    others[np.arange(k), np.arange(k)] = -np.inf
    runner_up = others.max(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(own != 0, (own - runner_up) / np.abs(own), np.nan)


# -- class selectivity (Morcos et al., ICLR 2018) --------------------------------------------
def class_selectivity(maxima: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``([C], [C])``: each channel's class selectivity index and its best class.

    ``maxima`` ``[N, C]``: each image's spatial maximum; ``classes`` ``[N]``: each image's
    class (-1: unknown, left out). Per class, the mean over its images of the positive part
    ``max(a, 0)`` (Morcos's index assumes non-negative activations; the block outputs of
    Lite0 are signed, and clipping keeps what the channel *fires*, as ``active_fraction``
    counts it: a channel's negative responses are not evidence for any class). Then
    ``(mu_best - mu_rest) / (mu_best + mu_rest)``, ``mu_rest`` the mean of the other
    classes' means: 1 when only one class makes it fire, 0 when all classes do alike. NaN
    for a channel that never fires, or fewer than two classes.
    """
    maxima = np.asarray(maxima, np.float64)
    classes = np.asarray(classes, int)
    keep = (classes >= 0) & np.isfinite(maxima).all(axis=1)
    maxima, classes = np.clip(maxima[keep], 0, None), classes[keep]
    channels = maxima.shape[1]
    present = np.unique(classes)
    if len(present) < 2:
        return np.full(channels, np.nan), np.full(channels, -1, np.int64)
    means = np.stack([maxima[classes == c].mean(axis=0) for c in present])  # [P, C]
    best = means.argmax(axis=0)
    mu_best = means[best, np.arange(channels)]
    mu_rest = (means.sum(axis=0) - mu_best) / (len(present) - 1)
    total = mu_best + mu_rest
    with np.errstate(invalid="ignore", divide="ignore"):
        index = np.where(total > 0, (mu_best - mu_rest) / total, np.nan)
    return index, np.where(total > 0, present[best], -1)


# -- clarity and polysemanticity (SemanticLens, Dreyer et al., 2025) -------------------------
def clarity(embeddings: np.ndarray) -> float:
    """How alike a channel's top examples are: the mean pairwise cosine similarity of their
    embeddings ``[n, d]`` (NaN for fewer than 2)."""
    return mean_pairwise_cosine(embeddings)


def two_means(unit: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Spherical 2-means of unit rows ``[n, d]``: labels 0/1 of each row.

    Deterministic: the first centre is the row least like the mean direction, the second
    the row least like the first (farthest-point start); then Lloyd's iterations on the
    sphere (assign by cosine, centres = normalised means) until nothing moves. Written out
    rather than scikit-learn's KMeans, whose fixed cost (0.3 s a call, threads started per
    call) would make the scores of Lite0's 3,120 channels take 15 minutes instead of seconds.
    """
    first = int(np.argmin(unit @ _unit_rows(unit.mean(axis=0)[None])[0]))
    second = int(np.argmin(unit @ unit[first]))
    centres = unit[[first, second]]
    labels = np.full(len(unit), -1)
    for _ in range(iterations):
        new = np.argmax(unit @ centres.T, axis=1)
        if (new == labels).all() or len(set(new.tolist())) < 2:
            break
        labels = new
        centres = _unit_rows(np.stack([unit[labels == g].mean(axis=0) for g in (0, 1)]))
    return labels


def cosine_silhouette(unit: np.ndarray, labels: np.ndarray) -> float:
    """The mean silhouette of a 2-group split of unit rows, with cosine distance
    ``1 - cos`` (as ``sklearn.metrics.silhouette_score(..., metric="cosine")``; a row alone
    in its group scores 0)."""
    distance = 1.0 - unit @ unit.T
    scores = np.zeros(len(unit))
    for i, group in enumerate(labels):
        own = labels == group
        if own.sum() < 2:
            continue
        a = distance[i, own].sum() / (own.sum() - 1)
        b = distance[i, ~own].mean()
        scores[i] = (b - a) / max(a, b) if max(a, b) > 0 else 0.0
    return float(scores.mean())


def polysemanticity(embeddings: np.ndarray) -> tuple[float, int]:
    """``(1 - cosine of the two 2-means centroids, groups)`` of a channel's top examples'
    embeddings ``[n, d]``, clustered on the unit sphere (:func:`two_means`). ``groups`` is
    2 when the split's cosine silhouette reaches :data:`TWO_GROUPS_SILHOUETTE`, else 1.
    ``(NaN, 0)`` for fewer than :data:`MIN_EXAMPLES_TO_SPLIT` examples; ``(0, 1)`` when
    they are all alike."""
    unit = _unit_rows(embeddings)
    if len(unit) < MIN_EXAMPLES_TO_SPLIT:
        return float("nan"), 0
    labels = two_means(unit)
    if len(set(labels.tolist())) < 2:
        return 0.0, 1
    centroids = _unit_rows(np.stack([unit[labels == g].mean(axis=0) for g in (0, 1)]))
    score = max(0.0, float(1.0 - centroids[0] @ centroids[1]))
    return score, 2 if cosine_silhouette(unit, labels) >= TWO_GROUPS_SILHOUETTE else 1


def disagreement(embeddings: np.ndarray) -> float:
    """1 - the mean pairwise cosine similarity of a channel's diverse visualizations'
    embeddings ``[D, d]``: 0 when they show one thing, higher when they show several. NaN
    for fewer than 2 images."""
    return 1.0 - mean_pairwise_cosine(embeddings)


# -- path check (after Geirhos et al., ICML 2024) ---------------------------------------------
def path_check(
    visualization: list[np.ndarray], examples: list[np.ndarray], natural: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Does the visualization travel through the earlier layers like its top examples do?

    Per earlier layer ``l`` (lists in layer order): ``visualization[l]`` ``[C_l]`` is the
    layer's spatially averaged activation vector on the channel's visualization,
    ``examples[l]`` ``[n, C_l]`` the same on its top examples' crops, ``natural[l]``
    ``[R, C_l]`` on random natural crops. The examples' *path* at ``l`` is the mean of
    their unit vectors; a crop's similarity there is its cosine to it. Returns
    ``(similarity [L], floor [L], flagged)``: the visualization's similarity per layer,
    the lowest similarity of any natural crop (the random ones and the examples) per
    layer, and whether the visualization's mean similarity over the layers is below every
    natural crop's mean (unlike any natural image along the whole path; one odd layer
    does not flag). Layers without examples give NaN and are left out.
    """
    similarity, floor = np.full(len(visualization), np.nan), np.full(len(visualization), np.nan)
    crops = []  # per layer with examples: every natural crop's similarity
    for layer, (vis, ex, nat) in enumerate(zip(visualization, examples, natural)):
        if len(ex) == 0:
            continue
        path = _unit_rows(_unit_rows(ex).mean(axis=0)[None])[0]
        similarity[layer] = float(_unit_rows(np.asarray(vis)[None])[0] @ path)
        crops.append(_unit_rows(np.concatenate([nat, ex])) @ path)
        floor[layer] = float(crops[-1].min())
    if not crops:
        return similarity, floor, False
    flagged = bool(np.nanmean(similarity) < np.mean(crops, axis=0).min())
    return similarity, floor, flagged


# -- label precision and sparsity --------------------------------------------------------------
def label_precision(label_classes: list[tuple[int, ...] | None], top_rows: np.ndarray, truth: np.ndarray):
    """``[C]``: the share of each labelled channel's top examples whose true class is under
    its label (``label_classes[c]``: the class ids under the label's synset, None for no
    label). ``top_rows`` ``[C, k]`` image rows (-1 none); ``truth`` ``[N]`` true classes (-1
    unknown: left out). NaN without a label or a top example of known class."""
    top_rows, truth = np.asarray(top_rows), np.asarray(truth)
    out = np.full(len(label_classes), np.nan)
    for channel, under in enumerate(label_classes):
        rows = top_rows[channel]
        known = truth[rows[rows >= 0]]
        known = known[known >= 0]
        if under is None or len(known) == 0:
            continue
        out[channel] = float(np.isin(known, np.asarray(under, int)).mean())
    return out


def sparsity(maxima: np.ndarray, maps: np.ndarray | None, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(images [C], positions [C])``: where each channel fires (activation > 0).

    ``images``: the share of dataset images (``maxima`` ``[N, C]``, NaN rows left out) on
    which its spatial maximum is positive. ``positions``: the share of positions where it
    is positive within its top examples' crops (``maps`` ``[C, k, m, m]``, the stored
    activation over each crop; only examples with ``valid`` ``[C, k]``): how much of the
    neighbourhood of its strongest responses it covers. The dataset's positions are not
    stored (only each image's max, min and mean), so the crops stand in for them. NaN
    without maps or valid examples.
    """
    maxima = np.asarray(maxima, np.float64)
    finite = np.isfinite(maxima)
    with np.errstate(invalid="ignore", divide="ignore"):
        images = np.where(
            finite.sum(axis=0) > 0, ((maxima > 0) & finite).sum(axis=0) / finite.sum(axis=0), np.nan
        )
    if maps is None:
        return images, np.full(maxima.shape[1], np.nan)
    maps, valid = np.asarray(maps, np.float32), np.asarray(valid, bool)
    fires = (maps > 0).mean(axis=(2, 3))  # [C, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        positions = np.where(valid.any(axis=1), (fires * valid).sum(axis=1) / valid.sum(axis=1), np.nan)
    return images, positions
