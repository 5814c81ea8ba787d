"""The dataset-wide reductions as map-reduce: per-shard partials and their exact merge.

Per layer and channel the run's store holds (docs/STORE.md, "Reduced store"):

* **top-k examples** of the spatial maximum: image row, value, position and the
  receptive-field box of that position. Ordering is deterministic: value descending,
  then image row ascending (NaN ranks last). The **bottom-k** of the spatial minimum
  (the most negative responses) alike, value ascending.
* **statistics** of the spatial maximum over images: mean, std, fraction of images
  where the channel is active (max > 0), a histogram whose ``bins + 1`` edges span the
  channel's own [min, max] (the top edge counts in the last bin, as in
  ``numpy.histogram``), and the mean of the per-image spatial mean.
* **class attribution**: the mean channel attribution over the images the model
  predicted as each class, with the count of such images; classes with no image score
  NaN and are never "top classes".
* **correlation** of the channels' per-image maxima (the site's "similar channels").

None of it needs all images at once. Each shard gets a **partial**
(:func:`shard_partial`): its own top-k candidates (every global top-k example is one of
its shard's top-k), count/mean/M2 and min/max, per-class attribution sums, the
correlation's mean and co-moment matrix. :func:`merge_partials` combines them exactly
(Chan et al.'s pairwise update for the moments) at a cost of shards x channels x (k +
classes + channels), whatever the number of images. The histogram's bin edges need the
global min and max, which only the merge knows, so each shard counts its histogram in a
second pass (:func:`histogram_counts`), beside cropping its example images.

Arrays in, records out (NumPy only; the records are :mod:`pipeline.store.reduction`'s,
which writes them); :mod:`pipeline.extract.reduce_job` runs the steps as jobs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from pipeline.extract.similarity import correlation_from_moments
from pipeline.ranking import top_k_table, top_order
from pipeline.store.activations_reader import ChannelStats, ClassAttribution, TopExamples
from pipeline.store.reduction import Candidates, ClassSums, Comoments, MergedLayer, Moments, ShardPartial

# The example tables of a layer: which per-image quantity ranks the images, where its
# position is, and whether the strongest are its largest ("top": the images that drive a
# channel most) or its smallest values ("bottom": its most negative responses).
EXAMPLE_TABLES = {"top": ("max", "argmax", False), "bottom": ("min", "argmin", True)}


# ---------------------------------------------------------------------------------
# Top-k with deterministic ties
# ---------------------------------------------------------------------------------


def shard_candidates(values, ys, xs, k: int, lowest: bool = False) -> Candidates:
    """One shard's top-k per channel of ``values [n, C]`` (local rows), with positions:
    ``[C, k']`` arrays with ``k' = min(k, n)`` (:mod:`pipeline.ranking`: ties in row order,
    NaN the weakest)."""
    order = top_order(values, k, axis=0, largest=not lowest)

    def take(a):
        return np.take_along_axis(np.asarray(a), order, axis=0).T

    return Candidates(
        row=order.T.astype(np.int64),
        value=take(values).astype(np.float32),
        y=take(ys).astype(np.int16),
        x=take(xs).astype(np.int16),
    )


def merge_candidates(parts: Sequence[Candidates], offsets: Sequence[int], k: int, lowest: bool = False):
    """The global top-k of the shards' candidates (rows made global by ``offsets``)."""
    rows = np.concatenate([p.row + int(o) for p, o in zip(parts, offsets)], axis=1)
    values = np.concatenate([p.value for p in parts], axis=1)
    order = top_order(values, k, axis=1, largest=not lowest, ties=rows)  # ties: the lower global row

    def take(a):
        return np.take_along_axis(a, order, axis=1)

    return Candidates(
        row=take(rows),
        value=take(values),
        y=take(np.concatenate([p.y for p in parts], axis=1)),
        x=take(np.concatenate([p.x for p in parts], axis=1)),
    )


# ---------------------------------------------------------------------------------
# Statistics: moments (merged exactly) and histograms on merged edges
# ---------------------------------------------------------------------------------


def shard_moments(maxima: np.ndarray, means: np.ndarray) -> Moments:
    """The :class:`~pipeline.store.reduction.Moments` of one shard's maxima and means."""
    x = maxima.astype(np.float64)
    count = (~np.isnan(x)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(x, axis=0) / count
    return Moments(
        rows=np.asarray(len(x), np.int64),
        count=count.astype(np.int64),
        mean=np.where(count > 0, mean, 0.0),
        m2=np.nansum((x - mean) ** 2, axis=0),
        active=(maxima > 0).sum(axis=0).astype(np.int64),
        min=np.fmin.reduce(x, axis=0, initial=np.inf),
        max=np.fmax.reduce(x, axis=0, initial=-np.inf),
        mean_sum=means.astype(np.float64).sum(axis=0),
    )


def combine_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Chan et al.'s pairwise update: ``(n, mean, M2)`` of two groups together. ``M2`` may
    be a co-moment matrix (then means are vectors and the correction is an outer product)."""
    n = n_a + n_b
    safe = np.where(n > 0, n, 1)
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / safe)
    weight = n_a * n_b / safe
    correction = np.outer(delta, delta) * weight if np.ndim(m2_a) == 2 else delta**2 * weight
    return n, mean, m2_a + m2_b + correction


def histogram_edges(lo: np.ndarray, hi: np.ndarray, bins: int) -> np.ndarray:
    """``[C, bins + 1]`` float64 edges from each channel's min to max (a width-1 range if flat)."""
    lo = np.where(np.isfinite(lo), lo, 0.0).astype(np.float64)
    hi = np.where(np.isfinite(hi), hi, 0.0).astype(np.float64)
    hi = np.where(hi > lo, hi, lo + 1.0)
    return lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, bins + 1)[None, :]


def histogram_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """int64 ``[C, bins]``: the non-NaN ``values [n, C]`` in each channel's bins."""
    bins = edges.shape[1] - 1
    counts = np.zeros((values.shape[1], bins), np.int64)
    for c in range(values.shape[1]):
        column = values[:, c].astype(np.float64)
        column = column[~np.isnan(column)]
        where = np.searchsorted(edges[c], column, side="right") - 1
        where[column == edges[c, -1]] = bins - 1
        inside = (where >= 0) & (where < bins)
        counts[c] = np.bincount(where[inside], minlength=bins)
    return counts


# ---------------------------------------------------------------------------------
# Class attribution
# ---------------------------------------------------------------------------------


def shard_class_sums(attr: np.ndarray, predicted: np.ndarray, num_classes: int) -> ClassSums:
    """float64 ``sums [num_classes, C]`` of ``attr [n, C]`` (NaN as 0) per predicted class,
    and ``count [num_classes]``."""
    predicted = np.asarray(predicted, np.int64)
    sums = np.zeros((num_classes, attr.shape[1]), np.float64)
    if len(predicted):
        order = np.argsort(predicted, kind="stable")
        classes, starts = np.unique(predicted[order], return_index=True)
        sums[classes] = np.add.reduceat(np.nan_to_num(attr[order].astype(np.float64)), starts, axis=0)
    return ClassSums(sums=sums, count=np.bincount(predicted, minlength=num_classes).astype(np.int64))


# ---------------------------------------------------------------------------------
# Correlation of the maxima
# ---------------------------------------------------------------------------------


def shard_comoments(maxima: np.ndarray) -> Comoments:
    """The :class:`~pipeline.store.reduction.Comoments` of one shard's maxima."""
    x = maxima.astype(np.float64)
    x = x[~np.isnan(x).any(axis=1)]
    mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
    centred = x - mean
    return Comoments(
        n=np.asarray(len(x), np.int64),
        mean=mean,
        comoment=centred.T @ centred,
        abs_max=np.asarray(np.abs(x).max() if x.size else 0.0),
    )


# ---------------------------------------------------------------------------------
# One shard, all shards
# ---------------------------------------------------------------------------------


def shard_partial(arrays: Mapping[str, np.ndarray], predicted, num_classes: int, k: int) -> ShardPartial:
    """The partial of one layer of one shard, from its per-image ``arrays`` (``max``,
    ``argmax_y``, ..., ``mean``, optionally ``min``, ``argmin_y``, ``argmin_x`` and
    ``attr_predicted``; ``[n, C]``) and the images' ``predicted`` classes."""
    tables = {
        table: shard_candidates(arrays[quantity], arrays[f"{position}_y"], arrays[f"{position}_x"], k, lowest)
        for table, (quantity, position, lowest) in EXAMPLE_TABLES.items()
        if quantity in arrays
    }
    classes = None
    if "attr_predicted" in arrays:
        classes = shard_class_sums(arrays["attr_predicted"], predicted, num_classes)
    return ShardPartial(
        tables=tables,
        moments=shard_moments(arrays["max"], arrays["mean"]),
        comoments=shard_comoments(arrays["max"]),
        classes=classes,
    )


@dataclasses.dataclass
class MergedPartials:
    """Every shard's partial of one layer, folded (rows global); :func:`merge_partials`."""

    tables: dict[str, Candidates]
    moments: Moments
    comoments: Comoments
    classes: ClassSums | None


def merge_partials(parts: Iterable[tuple[ShardPartial, int]], k: int) -> MergedPartials:
    """One layer's ``(partial, first global row)`` of every shard, in shard order, folded
    one at a time (memory does not grow with the shards)."""
    acc = None
    for partial, offset in parts:
        acc = _fold(acc, partial, int(offset), k)
    if acc is None:
        raise ValueError("no partials to merge")
    return acc


def _fold(acc: MergedPartials | None, partial: ShardPartial, offset: int, k: int) -> MergedPartials:
    """The running merge ``acc`` (None: before the first shard) with one more shard."""
    if acc is None:
        tables = {
            name: dataclasses.replace(found, row=found.row + offset) for name, found in partial.tables.items()
        }
        return MergedPartials(tables, partial.moments, partial.comoments, partial.classes)
    tables = {
        name: merge_candidates([acc.tables[name], found], (0, offset), k, EXAMPLE_TABLES[name][2])
        for name, found in partial.tables.items()
    }
    a, b = acc.moments, partial.moments
    n, mean, m2 = combine_moments(a.count, a.mean, a.m2, b.count, b.mean, b.m2)
    moments = Moments(
        rows=a.rows + b.rows,
        count=n,
        mean=mean,
        m2=m2,
        active=a.active + b.active,
        min=np.minimum(a.min, b.min),
        max=np.maximum(a.max, b.max),
        mean_sum=a.mean_sum + b.mean_sum,
    )
    a, b = acc.comoments, partial.comoments
    n, mean, comoment = combine_moments(a.n, a.mean, a.comoment, b.n, b.mean, b.comoment)
    comoments = Comoments(n=n, mean=mean, comoment=comoment, abs_max=np.maximum(a.abs_max, b.abs_max))
    classes = None
    if acc.classes is not None:
        classes = ClassSums(
            acc.classes.sums + partial.classes.sums, acc.classes.count + partial.classes.count
        )
    return MergedPartials(tables, moments, comoments, classes)


def statistics(moments: Moments, bins: int) -> ChannelStats:
    """The store's statistics from the merged moments; histogram counts zero (each shard
    counts its images in ``hist_edges`` afterwards: :func:`histogram_counts`)."""
    n, rows = moments.count, int(moments.rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ChannelStats(
            mean=np.where(n > 0, moments.mean, np.nan).astype(np.float32),
            std=np.where(n > 0, np.sqrt(moments.m2 / n), np.nan).astype(np.float32),
            active_fraction=(moments.active / rows).astype(np.float32),
            mean_of_mean=(moments.mean_sum / rows).astype(np.float32),
            hist_counts=np.zeros((len(n), bins), np.int64),
            hist_edges=histogram_edges(moments.min, moments.max, bins),
        )


def class_attribution(sums: ClassSums, k: int) -> ClassAttribution:
    """The mean attribution per predicted class (NaN for classes never predicted) and each
    channel's top ``k`` classes: ``[C, min(k, classes)]`` (score desc, class asc), -1 / NaN
    where fewer classes were ever predicted (:func:`pipeline.ranking.top_k_table`)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (sums.sums / sums.count[:, None]).T.astype(np.float32)
    ids, scores = top_k_table(mean, k)
    return ClassAttribution(
        attribution=mean, count=sums.count.astype(np.int64), top_ids=ids, top_scores=scores
    )


def correlation(comoments: Comoments) -> np.ndarray:
    """float32 ``[C, C]`` Pearson correlation of the maxima from the merged co-moments."""
    return correlation_from_moments(int(comoments.n), comoments.comoment, float(comoments.abs_max)).astype(
        np.float32
    )


def merged_layer(merged: MergedPartials, field, k: int, bins: int) -> MergedLayer:
    """The store's reductions of one layer from its folded partials, with what the shards'
    examples need: each example's receptive-field box in ``field`` (a
    :class:`~pipeline.model.receptive_field.ReceptiveField`) and the plan of the thumbnails,
    one per distinct (image, box) of the layer, whichever table shows it."""
    boxes = field.boxes().numpy()
    box = {
        name: boxes[found.y.astype(np.int64), found.x.astype(np.int64)].astype(np.int16)  # (y0, x0, y1, x1)
        for name, found in merged.tables.items()
    }
    names = list(merged.tables)
    if names:
        rows = np.concatenate([merged.tables[n].row for n in names], axis=1)
        index, crops = plan_thumbnails(rows, np.concatenate([box[n] for n in names], axis=1))
    else:
        index, crops = np.zeros((0, 0), np.int32), []
    tables, offset = {}, 0
    for name in names:
        found = merged.tables[name]
        width = found.row.shape[1]
        thumbnail = index[:, offset : offset + width].astype(np.int32)
        tables[name] = TopExamples(found.row, found.value, found.y, found.x, box[name], thumbnail)
        offset += width
    return MergedLayer(
        tables=tables,
        stats=statistics(merged.moments, bins),
        correlation=correlation(merged.comoments),
        crop_rows=np.asarray([row for row, _ in crops], np.int64),
        crop_boxes=np.asarray([b for _, b in crops], np.int16).reshape(-1, 4),
        rf_rows=np.asarray(field.rows, np.int32),
        rf_cols=np.asarray(field.cols, np.int32),
        classes=None if merged.classes is None else class_attribution(merged.classes, k),
    )


def plan_thumbnails(rows: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, list[tuple[int, tuple]]]:
    """Deduplicate (image row, box) pairs: ``index [C, k]`` into the list of unique crops."""
    index = np.full(rows.shape, -1, np.int32)
    unique: dict[tuple, int] = {}
    for c, j in np.ndindex(*rows.shape):
        if rows[c, j] < 0:
            continue
        key = (int(rows[c, j]), tuple(int(v) for v in boxes[c, j]))
        index[c, j] = unique.setdefault(key, len(unique))
    return index, list(unique)
