"""Reductions over the per-image arrays of all shards, with dask.

Per layer and channel:

* **top-k examples** of the spatial maximum: image row, value, position and the
  receptive-field box of that position. Ordering is deterministic: value
  descending, then image row ascending (NaN ranks last). Each block of rows
  proposes its own top-k with the same rule; the winners of all blocks are merged.
* **statistics** of the spatial maximum over images: mean, std, fraction of
  images where the channel is active (max > 0), and a histogram whose
  ``bins + 1`` edges span the channel's own [min, max] (values equal to the
  top edge count in the last bin, as in ``numpy.histogram``).
* **class attribution**: the mean channel attribution over the images the model
  predicted as each class, with the count of such images; classes with no
  image score NaN and are never "top classes".

:func:`reduce_store` runs all of it and writes through :mod:`pipeline.store.activations`
(the job that calls it: :func:`pipeline.extract.job.run_reduce`).
The functions below take dask arrays (or anything ``dask.array.asarray`` accepts)
and return numpy arrays; each reads the data once per pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from pipeline.extract.settings import ExtractSettings


def _as_dask(x):
    import dask.array as da

    x = da.asarray(x)
    return x.rechunk({i: -1 for i in range(1, x.ndim)}) if x.ndim > 1 else x


# ---------------------------------------------------------------------------------
# Top-k with deterministic ties
# ---------------------------------------------------------------------------------


def _block_topk(block: np.ndarray, offset: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[k', C]`` (global) and values of the block's top-k per column."""
    values = np.where(np.isnan(block), -np.inf, block.astype(np.float64))
    # A stable sort of the negated values keeps equal values in row order.
    order = np.argsort(-values, axis=0, kind="stable")[:k]
    return order + offset, np.take_along_axis(block, order, axis=0)


def _merge_topk(parts, k: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.concatenate([p[0] for p in parts], axis=0)
    values = np.concatenate([p[1] for p in parts], axis=0)
    keys = np.where(np.isnan(values), -np.inf, values.astype(np.float64))
    order = np.lexsort((rows, -keys), axis=0)[:k]
    return np.take_along_axis(rows, order, 0).T, np.take_along_axis(values, order, 0).T


def topk_delayed(values, k: int):
    """Delayed ``(rows Long[C, k'], values [C, k'])`` with ``k' = min(k, N)``."""
    import dask

    x = _as_dask(values)
    offsets = np.cumsum((0,) + x.chunks[0])
    blocks = x.to_delayed().ravel()
    parts = [dask.delayed(_block_topk)(b, int(o), k) for b, o in zip(blocks, offsets)]
    return dask.delayed(_merge_topk)(parts, k)


def topk_rows(values, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows per column of ``values [N, C]``: ``(rows [C, k'], values [C, k'])``."""
    import dask

    if _as_dask(values).shape[0] == 0:
        c = _as_dask(values).shape[1]
        return np.zeros((c, 0), np.int64), np.zeros((c, 0), np.float32)
    return dask.compute(topk_delayed(values, k))[0]


# ---------------------------------------------------------------------------------
# Statistics and histograms
# ---------------------------------------------------------------------------------


def _block_histogram(block: np.ndarray, edges: np.ndarray) -> np.ndarray:
    bins = edges.shape[1] - 1
    counts = np.zeros((block.shape[1], bins), np.int64)
    for c in range(block.shape[1]):
        column = block[:, c].astype(np.float64)
        column = column[~np.isnan(column)]
        where = np.searchsorted(edges[c], column, side="right") - 1
        where[column == edges[c, -1]] = bins - 1
        inside = (where >= 0) & (where < bins)
        counts[c] = np.bincount(where[inside], minlength=bins)
    return counts


def histogram_edges(lo: np.ndarray, hi: np.ndarray, bins: int) -> np.ndarray:
    """``[C, bins + 1]`` float64 edges from each channel's min to max (a width-1 range if flat)."""
    lo = np.where(np.isfinite(lo), lo, 0.0).astype(np.float64)
    hi = np.where(np.isfinite(hi), hi, 0.0).astype(np.float64)
    hi = np.where(hi > lo, hi, lo + 1.0)
    return lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, bins + 1)[None, :]


def channel_statistics(values, bins: int) -> dict[str, np.ndarray]:
    """Per column of ``values [N, C]``: ``mean``, ``std``, ``active_fraction`` (> 0),
    ``hist_counts [C, bins]`` and ``hist_edges [C, bins + 1]``. Two passes over the data."""
    import dask
    import dask.array as da

    x = _as_dask(values)
    if x.shape[0] == 0:
        c = x.shape[1]
        nan = np.full(c, np.nan, np.float32)
        return {
            "mean": nan,
            "std": nan,
            "active_fraction": nan,
            "hist_counts": np.zeros((c, bins), np.int64),
            "hist_edges": histogram_edges(np.zeros(c), np.zeros(c), bins),
        }
    x64 = x.astype(np.float64)
    mean, std, active, lo, hi = dask.compute(
        da.nanmean(x64, axis=0),
        da.nanstd(x64, axis=0),
        (x > 0).mean(axis=0),
        da.nanmin(x, axis=0),
        da.nanmax(x, axis=0),
    )
    edges = histogram_edges(lo, hi, bins)
    counts = dask.compute(sum(dask.delayed(_block_histogram)(b, edges) for b in x.to_delayed().ravel()))[0]
    return {
        "mean": mean.astype(np.float32),
        "std": std.astype(np.float32),
        "active_fraction": active.astype(np.float32),
        "hist_counts": np.asarray(counts, np.int64),
        "hist_edges": edges,
    }


# ---------------------------------------------------------------------------------
# Class attribution
# ---------------------------------------------------------------------------------


def _block_class_sums(attr: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    sums = np.zeros((num_classes, attr.shape[1]), np.float64)
    np.add.at(sums, predicted.astype(np.int64), np.nan_to_num(attr.astype(np.float64)))
    return sums


def class_attribution(attr, predicted, num_classes: int) -> dict[str, np.ndarray]:
    """Mean of ``attr [N, C]`` over the images predicted as each class.

    Returns ``mean [C, num_classes]`` (float32, NaN for classes never predicted) and
    ``count [num_classes]``.
    """
    import dask
    import dask.array as da

    a = _as_dask(attr)
    p = da.asarray(predicted).rechunk((a.chunks[0],))
    if a.shape[0] == 0:
        return {
            "mean": np.full((a.shape[1], num_classes), np.nan, np.float32),
            "count": np.zeros(num_classes, np.int64),
        }
    sums = sum(
        dask.delayed(_block_class_sums)(ab, pb, num_classes)
        for ab, pb in zip(a.to_delayed().ravel(), p.to_delayed().ravel())
    )
    sums, count = dask.compute(sums, da.bincount(p.astype(np.int64), minlength=num_classes))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (sums / count[:, None]).T
    return {"mean": mean.astype(np.float32), "count": count.astype(np.int64)}


def top_classes(mean: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per channel the ``k`` classes of highest mean attribution (score desc, class asc).

    ``ids [C, k]`` is -1 and ``scores`` NaN where fewer classes were ever predicted.
    """
    c, classes = mean.shape
    k = min(k, classes)
    keys = np.where(np.isnan(mean), -np.inf, mean.astype(np.float64))
    order = np.argsort(-keys, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(mean, order, 1).astype(np.float32)
    ids = np.where(np.isnan(scores), -1, order).astype(np.int32)
    return {"ids": ids, "scores": scores}


# ---------------------------------------------------------------------------------
# Thumbnails
# ---------------------------------------------------------------------------------


def crop_thumbnail(image01, box, size: int) -> np.ndarray:
    """uint8 ``[size, size, 3]``: the box ``(y0, x0, y1, x1)`` of ``image01 [3, S, S]``.

    A box clipped at the image border is not stretched: it is placed in a square of
    neutral grey on the side away from the border, where the field left the image.
    """
    import torch
    import torch.nn.functional as F

    from pipeline.images.dataset import to_uint8

    y0, x0, y1, x1 = (int(v) for v in box)
    crop = image01[:, y0:y1, x0:x1].float()
    h, w = crop.shape[1:]
    side = max(h, w, 1)
    canvas = torch.full((3, side, side), 0.5)
    top = side - h if (y0 == 0 and h < side) else 0
    left = side - w if (x0 == 0 and w < side) else 0
    canvas[:, top : top + h, left : left + w] = crop
    thumb = F.interpolate(
        canvas[None], size=(size, size), mode="bilinear", antialias=side > size, align_corners=False
    )[0]
    return to_uint8(thumb)


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


# ---------------------------------------------------------------------------------
# Everything for one run
# ---------------------------------------------------------------------------------


def reduce_store(
    shards,
    writer,
    fields: Mapping,
    load_image: Callable[[int], object],
    settings: ExtractSettings | None = None,
    *,
    progress: bool = True,
) -> None:
    """Compute every reduction of ``shards`` (a :class:`~pipeline.store.activations.ShardSet`)
    and write it with ``writer`` (a :class:`~pipeline.store.activations.ReducedWriter`).

    ``fields[layer]`` is a :class:`~pipeline.model.receptive_field.ReceptiveField`;
    ``load_image(row)`` returns image ``row`` as ``[3, S, S]`` in ``[0, 1]``. Of the
    ``settings`` (default: the defaults), ``top_k``, ``histogram_bins`` and
    ``thumbnail_size`` apply.
    """
    from tqdm import tqdm

    settings = settings or ExtractSettings()
    top_k, bins, thumbnail_size = settings.top_k, settings.histogram_bins, settings.thumbnail_size
    num_classes = len(shards.class_names)
    predicted = shards.predicted_classes() if shards.rows else np.zeros(0, np.int64)
    requests: dict[int, list] = {}  # image row -> [(thumbnail dataset, index, box)]
    for layer in tqdm(shards.layers, desc="reduce", unit="layer", disable=not progress):
        name = layer["name"]
        field = fields[name]
        maxima = shards.per_image(name, "max")
        rows, values = topk_rows(maxima, top_k)
        ys, xs = _positions(shards, name, rows)
        boxes = field.boxes().numpy()[ys, xs]  # (y0, x0, y1, x1) per top example
        thumb_index, crops = plan_thumbnails(rows, boxes)
        top = {
            "row": rows.astype(np.int64),
            "value": values.astype(np.float32),
            "y": ys.astype(np.int16),
            "x": xs.astype(np.int16),
            "box": boxes.astype(np.int16),
            "thumbnail": thumb_index,
        }
        stats = channel_statistics(maxima, bins)
        stats["mean_of_mean"] = _column_mean(shards.per_image(name, "mean"))
        classes = {}
        if "attr_predicted" in shards.quantities:
            found = class_attribution(shards.per_image(name, "attr_predicted"), predicted, num_classes)
            best = top_classes(found["mean"], top_k)
            classes = {
                "attribution": found["mean"],
                "count": found["count"],
                "top_ids": best["ids"],
                "top_scores": best["scores"],
            }
        writer.write_layer(
            name,
            rf_rows=np.asarray(field.rows),
            rf_cols=np.asarray(field.cols),
            top=top,
            stats=stats,
            classes=classes,
        )
        dataset = writer.create_thumbnails(name, len(crops), thumbnail_size)
        for i, (row, box) in enumerate(crops):
            requests.setdefault(row, []).append((dataset, i, box))
    # Decode each image once, however many channels and layers show it.
    for row in tqdm(sorted(requests), desc="thumbnails", unit="img", disable=not progress):
        image = load_image(row)
        for dataset, i, box in requests[row]:
            dataset[i] = crop_thumbnail(image, box, thumbnail_size)


def _positions(shards, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argmax y/x of the top rows ``[C, k]`` (reads only those rows)."""
    c, k = rows.shape
    if k == 0:
        return np.zeros((c, 0), np.int64), np.zeros((c, 0), np.int64)
    wanted = np.unique(rows)
    ys = shards.per_image(name, "argmax_y")[wanted].compute()
    xs = shards.per_image(name, "argmax_x")[wanted].compute()
    where = np.searchsorted(wanted, rows)
    channels = np.arange(c)[:, None]
    return ys[where, channels].astype(np.int64), xs[where, channels].astype(np.int64)


def _column_mean(values) -> np.ndarray:
    x = _as_dask(values)
    if x.shape[0] == 0:
        return np.full(x.shape[1], np.nan, np.float32)
    return x.astype(np.float64).mean(axis=0).compute().astype(np.float32)
