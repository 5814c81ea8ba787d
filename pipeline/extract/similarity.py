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


def correlation_from_moments(n: int, comoment: np.ndarray, scale: float) -> np.ndarray:
    """float64 ``[C, C]`` Pearson correlation from the co-moment matrix of ``n`` images (the
    sum of products of deviations from the mean) whose values reach ``scale`` in magnitude.

    Constant channels (no deviation beyond rounding of ``scale``) correlate with nothing:
    their rows and columns are NaN, as is the diagonal (a channel is not its own neighbour).
    """
    c = comoment.shape[0]
    if n < 2:
        return np.full((c, c), np.nan)
    norms = np.sqrt(np.clip(np.diag(comoment), 0.0, None))
    varies = norms > 1e-12 * max(1.0, float(scale))
    safe = np.where(varies, norms, 1.0)
    corr = np.clip(comoment / safe[:, None] / safe[None, :], -1.0, 1.0)
    corr[~varies, :] = np.nan
    corr[:, ~varies] = np.nan
    np.fill_diagonal(corr, np.nan)
    return corr


def nearest_channels(corr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``ids [C, k]``, ``scores [C, k]``: each row's other channels by correlation, highest
    first (lower id first on ties); ``-1`` ids and NaN scores pad rows with fewer."""
    c = corr.shape[0]
    k = max(0, min(int(k), c - 1))
    ids = np.full((c, k), -1, np.int64)
    scores = np.full((c, k), np.nan)
    for channel in range(c):
        row = corr[channel].astype(np.float64)
        valid = np.flatnonzero(~np.isnan(row))
        order = valid[np.lexsort((valid, -row[valid]))][:k]
        ids[channel, : len(order)] = order
        scores[channel, : len(order)] = row[order]
    return ids, scores


def correlation_neighbours(maxima: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``maxima [N, C]`` (per-image maximum of each channel) -> ``ids [C, k]``, ``scores [C, k]``
    by :func:`nearest_channels`, over the images with no NaN (those a shard gap left empty).
    The reduction computes the same matrix shard by shard (:mod:`pipeline.extract.reduce`).
    """
    x = np.asarray(maxima, np.float64)
    x = x[~np.isnan(x).any(axis=1)] if x.size else x
    centred = x - x.mean(axis=0) if len(x) else x
    scale = float(np.abs(x).max()) if x.size else 0.0
    return nearest_channels(correlation_from_moments(len(x), centred.T @ centred, scale), k)
