"""Which channels of a layer behave alike over the dataset (the site's "most similar channels").

Two channels are similar when the images that excite one excite the other: the Pearson
correlation, across images, of their per-image maximum activations. NumPy only (no
torch): the site computes it from the activations store when it is exported.
"""

from __future__ import annotations

import numpy as np

SIMILARITY_METHOD = (
    "Pearson correlation of the channels' per-image maximum activations over the {n} dataset images"
)


def correlation_neighbours(maxima: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``maxima [N, C]`` (per-image maximum of each channel) -> ``ids [C, k]``, ``scores [C, k]``.

    Row ``c`` lists the other channels by Pearson correlation with ``c`` across images,
    highest first (lower id first on ties). Constant channels and NaN rows (images a
    shard gap left empty) give no neighbours: ``-1`` ids and NaN scores pad the rows.
    """
    x = np.asarray(maxima, np.float64)
    x = x[~np.isnan(x).any(axis=1)] if x.size else x
    n, c = x.shape
    k = max(0, min(int(k), c - 1))
    ids = np.full((c, k), -1, np.int64)
    scores = np.full((c, k), np.nan)
    if n < 2 or k == 0:
        return ids, scores
    centred = x - x.mean(axis=0)
    norms = np.sqrt((centred**2).sum(axis=0))
    varies = norms > 1e-12 * max(1.0, float(np.abs(x).max()))
    unit = np.where(varies, centred / np.where(varies, norms, 1.0), 0.0)
    corr = unit.T @ unit
    corr[~varies, :] = np.nan
    corr[:, ~varies] = np.nan
    np.fill_diagonal(corr, np.nan)
    for channel in range(c):
        row = corr[channel]
        valid = np.flatnonzero(~np.isnan(row))
        order = valid[np.lexsort((valid, -row[valid]))][:k]
        ids[channel, : len(order)] = order
        scores[channel, : len(order)] = np.clip(row[order], -1.0, 1.0)
    return ids, scores
