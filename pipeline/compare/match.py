"""Unit matching between two layers: which channel of one model does what a channel of the
other does, judged by how their responses go together over the same images.

A channel's response to an image is its spatial maximum on it (the per-image maxima of the
activations store); two channels match when these correlate over the dataset (Pearson),
as in Li et al., "Convergent Learning" (ICLR 2016). From the ``[C_a, C_b]`` correlation
matrix:

* :func:`top_matches`: each channel's most correlated channels of the other layer;
* :func:`one_to_one`: the one-to-one matching that maximises the total correlation
  (scipy's ``linear_sum_assignment``, the Hungarian method; Li et al.'s "bipartite" match);
* :func:`best_buddies`: the "best buddies" of Rosetta Neurons (Dravid et al., ICCV 2023):
  ``j`` is ``i``'s best match and ``i`` is among ``j``'s top five;
* :func:`chance_threshold`: below which correlation a best match is no better than chance,
  calibrated on the model itself: one layer's channels on one half of the images against
  the same layer on the other, disjoint half (the images paired at random, so every
  correlation there is chance), see :func:`chance_threshold`.

The correlations stream over the images with dask (memory ``[C_a, C_b]``, not ``[N, C]``);
the rest is NumPy and SciPy.
"""

from __future__ import annotations

import dataclasses

import numpy as np

BUDDY_RANK = 5  # Rosetta Neurons: i must be among j's top five
# Images per block of the streamed correlations: memory is a few [block, C] float64 arrays
# per thread, whatever the number of images (bench/compare.py, docs/PERFORMANCE.md section 15).
BLOCK_ROWS = 2048


def correlation(x, y) -> np.ndarray:
    """``[C_x, C_y]`` float64: Pearson correlation over the rows (images) of every column of
    ``x`` ``[N, C_x]`` with every column of ``y`` ``[N, C_y]`` (NumPy or dask arrays, the
    same images in the same order). A channel constant over the images correlates with
    nothing: 0, not NaN, so that it is never anyone's match."""
    import dask.array as da

    x = da.asarray(x).rechunk({0: BLOCK_ROWS}).astype(np.float64)
    y = da.asarray(y).rechunk({0: BLOCK_ROWS}).astype(np.float64)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"correlation needs the same images on both sides; got {x.shape[0]} and {y.shape[0]} rows"
        )
    n = x.shape[0]
    mean_x, mean_y = da.compute(x.mean(axis=0), y.mean(axis=0))
    xc, yc = x - mean_x, y - mean_y
    cov, var_x, var_y = da.compute(xc.T @ yc, (xc**2).sum(axis=0), (yc**2).sum(axis=0))
    usable = np.outer(_varies(var_x, mean_x, n), _varies(var_y, mean_y, n))
    scale = np.sqrt(np.outer(var_x, var_y))
    found = np.divide(cov, scale, out=np.zeros_like(cov), where=usable & (scale > 0))
    return np.clip(found, -1.0, 1.0)


def _varies(sum_squares: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """Whether each channel varies over the images by more than float32 rounding of its mean."""
    spread = np.sqrt(sum_squares / max(n, 1))
    return spread > 1e-6 * np.maximum(np.abs(mean), 1e-12)


def top_matches(corr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` most correlated columns, best first (the lower column id on ties):
    indices int32 ``[rows, k]`` and correlations float32 ``[rows, k]`` (``k`` at most the
    number of columns)."""
    k = min(int(k), corr.shape[1])
    order = np.argsort(-corr, axis=1, kind="stable")[:, :k]
    return order.astype(np.int32), np.take_along_axis(corr, order, axis=1).astype(np.float32)


def one_to_one(corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one matching of rows to columns that maximises the total correlation:
    ``pairs`` int32 ``[M, 2]`` (row, column), ``M = min(rows, columns)``, by row, and their
    correlations float32 ``[M]``."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(corr, maximize=True)
    return np.stack([rows, cols], axis=1).astype(np.int32), corr[rows, cols].astype(np.float32)


def best_buddies(corr: np.ndarray, rank: int = BUDDY_RANK) -> tuple[np.ndarray, np.ndarray]:
    """The best buddies of each side (Rosetta Neurons): int32 ``[rows]``, the column ``j`` that
    is row ``i``'s best match while ``i`` is among ``j``'s ``rank`` best rows, else -1; and
    int32 ``[columns]``, the same seen from the columns (``j``'s best row ``i``, with ``j``
    among ``i``'s ``rank`` best columns)."""
    return _buddies(corr, rank), _buddies(corr.T, rank)


def _buddies(corr: np.ndarray, rank: int) -> np.ndarray:
    best = np.argsort(-corr, axis=1, kind="stable")[:, 0]
    their_top = np.argsort(-corr.T, axis=1, kind="stable")[:, :rank]
    found = np.array([i in their_top[j] for i, j in enumerate(best)], bool)
    return np.where(found, best, -1).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class ChanceLevel:
    """A layer's chance level of best-match correlation, measured on split halves.

    ``best`` float64: each channel's best correlation, on the first half of the images,
    with any channel of the same layer on the second half (and the reverse), images paired
    at random: these are the best matches chance alone gives. ``half`` is the number of
    images per half.
    """

    best: np.ndarray
    half: int


def chance_level(x, seed: int = 0) -> ChanceLevel:
    """:class:`ChanceLevel` of a layer's per-image values ``x`` ``[N, C]`` (NumPy or dask):
    the images are split at random into two disjoint halves of ``N // 2`` (each in dataset
    order), row ``k`` of one paired with row ``k + N/4`` of the other (wrapping round:
    different images, about half the dataset apart), and every channel of one half is
    correlated with every channel of the other."""
    n = x.shape[0]
    half = n // 2
    if half < 4:
        raise ValueError(f"calibrating the match threshold needs at least 8 images, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    first, second = np.sort(order[:half]), np.sort(order[half : 2 * half])
    # Row k of the first half meets row k + half/2 of the second (both halves in dataset
    # order): images about N/2 apart in the dataset, so that neighbours (a class folder, a
    # burst of photos) never meet, and each block of pairs reads two short runs of rows.
    shift = half // 2
    corr = _paired_correlation(x, first, np.concatenate([second[shift:], second[:shift]]))
    return ChanceLevel(np.concatenate([corr.max(axis=1), corr.max(axis=0)]), half)


def _paired_correlation(x, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """``[C, C]``: Pearson correlation of ``x[rows_a]`` with ``x[rows_b]`` (row k with row k),
    streamed over blocks of ``BLOCK_ROWS`` pairs: memory two ``[block, C]`` arrays."""
    sums = None
    for start in range(0, len(rows_a), BLOCK_ROWS):
        a = np.asarray(x[rows_a[start : start + BLOCK_ROWS]], np.float64)
        b = np.asarray(x[rows_b[start : start + BLOCK_ROWS]], np.float64)
        if sums is None:  # shifted sums (by the first block's means) keep float64 exact enough
            shift_a, shift_b = a.mean(axis=0), b.mean(axis=0)
            sums = [0.0, 0.0, 0.0, 0.0, 0.0]
        a, b = a - shift_a, b - shift_b
        for i, value in enumerate(
            (a.sum(axis=0), b.sum(axis=0), (a**2).sum(axis=0), (b**2).sum(axis=0), a.T @ b)
        ):
            sums[i] = sums[i] + value
    n = len(rows_a)
    sum_a, sum_b, sq_a, sq_b, cross = sums
    cov = cross - np.outer(sum_a, sum_b) / n
    var_a, var_b = sq_a - sum_a**2 / n, sq_b - sum_b**2 / n
    usable = np.outer(_varies(var_a, sum_a / n + shift_a, n), _varies(var_b, sum_b / n + shift_b, n))
    scale = np.sqrt(np.outer(np.clip(var_a, 0, None), np.clip(var_b, 0, None)))
    return np.clip(np.divide(cov, scale, out=np.zeros_like(cov), where=usable & (scale > 0)), -1.0, 1.0)


def chance_threshold(levels: list[ChanceLevel], images: int, quantile: float) -> float:
    """The correlation a best match must reach to count as a match on ``images`` images.

    The ``quantile`` of the chance best matches of ``levels`` (both layers of a pair), taken
    on halves of the images and carried over to all ``images`` by Fisher's z (whose spread
    under chance is ``1 / sqrt(n - 3)``): ``tanh(atanh(r_half) · sqrt((half - 3) / (images - 3)))``.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"compare.chance_quantile must be between 0 and 1, got {quantile}")
    best = np.concatenate([level.best for level in levels])
    half = min(level.half for level in levels)
    at_half = float(np.quantile(best, quantile))
    scale = np.sqrt(max(half - 3, 1) / max(images - 3, 1))
    return float(np.tanh(np.arctanh(np.clip(at_half, -0.999999, 0.999999)) * scale))
