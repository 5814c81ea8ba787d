"""A channel's filter as a picture: its weights on each input pixel's red, green and blue,
mid-grey at 0, enlarged with square pixels.

Only layers rendered exactly store filters (the featurevis store's ``filters``: the
gradient of a channel's centre position with respect to the image, on its receptive
field). Each filter is scaled by its own largest magnitude, symmetrically around grey, so
that the sign of every weight reads at a glance: ``0.5 + 0.5 * w / max|w|``, white where a
colour's weight is the largest positive one, black where it is as large negative.
"""

from __future__ import annotations

import numpy as np

FILTER_SIDE = 96  # px the filter picture is drawn at, at most (3x3 -> 32 px per input pixel)


def filter_image(weights: np.ndarray, side: int = FILTER_SIDE) -> np.ndarray:
    """float ``[h, w, 3]`` -> uint8 ``[h * n, w * n, 3]``, ``n = max(1, side // max(h, w))``:
    each weight mapped to ``0.5 + 0.5 * weight / max|weights|`` (all grey when every weight
    is 0), each input pixel drawn as an ``n x n`` square (nearest neighbour, no smoothing)."""
    weights = np.asarray(weights, np.float64)
    if weights.ndim != 3 or weights.shape[2] != 3 or not weights.size:
        raise ValueError(f"a filter is [h, w, 3] (rows, columns, red/green/blue), got shape {weights.shape}")
    if not np.isfinite(weights).all():
        raise ValueError("a filter has non-finite weights")
    largest = float(np.abs(weights).max())
    unit = 0.5 + 0.5 * weights / largest if largest > 0 else np.full(weights.shape, 0.5)
    pixels = np.round(unit * 255).astype(np.uint8)
    n = max(1, side // max(weights.shape[:2]))
    return np.repeat(np.repeat(pixels, n, axis=0), n, axis=1)
