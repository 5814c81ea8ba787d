"""Top-k selection with one contract, for every table of "the k strongest" the stages keep.

The contract of :func:`top_k` (and of :func:`top_k_table`, built on it):

* order: strongest first; with ``largest=False`` the smallest values are the strongest
  (the "bottom" examples);
* ties: the lower index first (a stable sort), so a table never depends on the platform;
  or, when ``ties`` is given (an array like ``values``), the lower ``ties`` value first
  (the global row of an example gathered from several shards), then the lower index;
* NaN: weaker than every number; NaN and the weakest infinity tie, lower index first
  (NaN is ranked as ``-inf``, or ``+inf`` with ``largest=False``);
* k: clipped to the length ``n`` of the axis, so at most ``n`` entries come back
  (``k <= 0`` gives none).

:func:`top_k_table` is for fixed-width tables stored in a file: ``-1`` as the index and NaN
as the value mark "no entry" (past ``n`` when ``width`` asks for more columns than
there are candidates, and wherever the value is NaN).

>>> top_k([3.0, 7.0, float("nan"), 7.0, 1.0], 3)
(array([1, 3, 0]), array([7., 7., 3.]))
>>> top_k_table([[2.0, float("nan")]], 3, width=3)
(array([[ 0, -1, -1]], dtype=int32), array([[ 2., nan, nan]], dtype=float32))

NumPy only: the site and the queries use it too.
"""

from __future__ import annotations

import numpy as np


def top_order(values, k: int, axis: int = -1, largest: bool = True, ties=None) -> np.ndarray:
    """int64 indices along ``axis`` of the ``min(k, n)`` strongest ``values``, strongest
    first (the module's contract); other axes are kept."""
    values = np.asarray(values)
    keys = values.astype(np.float64)
    keys = keys if largest else -keys
    keys = np.where(np.isnan(keys), -np.inf, keys)
    k = max(0, min(int(k), values.shape[axis]))
    if ties is None:
        # A stable sort keeps equal keys in index order: the tie rule.
        order = np.argsort(-keys, axis=axis, kind="stable")
    else:
        order = np.lexsort((np.asarray(ties), -keys), axis=axis)  # lexsort is stable too
    return np.take(order, np.arange(k), axis=axis)


def top_k(values, k: int, axis: int = -1, largest: bool = True, ties=None) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, values)`` of the ``min(k, n)`` strongest ``values`` along ``axis``,
    strongest first; the values keep their dtype."""
    values = np.asarray(values)
    order = top_order(values, k, axis, largest, ties)
    return order, np.take_along_axis(values, order, axis=axis)


def top_k_table(scores, k: int, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores [M, K]`` the ``k`` highest, as a table: int32 ids and float32
    scores ``[M, width]`` (default width ``min(k, K)``), ``-1`` / NaN where a score is NaN
    or past the ``K`` columns."""
    scores = np.asarray(scores)
    rows = scores.shape[0]
    width = min(int(k), scores.shape[1]) if width is None else int(width)
    order, found = top_k(scores, min(int(k), width), axis=1)
    found = found.astype(np.float32)
    ids = np.full((rows, width), -1, np.int32)
    values = np.full((rows, width), np.nan, np.float32)
    valid = ~np.isnan(found)
    ids[:, : order.shape[1]] = np.where(valid, order, -1)
    values[:, : order.shape[1]] = np.where(valid, found, np.nan)
    return ids, values
