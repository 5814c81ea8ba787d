"""The one part of the scores that runs the model: pooled activation vectors of small images.

Each image (a top example's crop, a feature visualization) goes through the network once;
every tapped layer's output is averaged over space (its *activation vector* there), and
the target layer's output is also maximised over space (for the visualization strength).
The embedding of an image is the last layer's vector: for a classifier that ends in
global pooling, its penultimate pooled features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def as_batch(images: np.ndarray, size: int, device) -> torch.Tensor:
    """uint8 ``[n, H, W, 3]`` -> float ``[n, 3, size, size]`` in ``[0, 1]`` (bilinear with
    antialiasing when the size changes)."""
    batch = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255.0
    if batch.shape[-1] != size or batch.shape[-2] != size:
        batch = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return batch


def pooled(
    model, images: np.ndarray, layers: Sequence[str], size: int, batch_size: int, peak: str | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """``({layer: float32 [n, C] spatial means}, float32 [n, C] spatial maxima of ``peak``)``
    of uint8 images ``[n, H, W, 3]`` resized to ``size``, ``batch_size`` at a time, at each
    layer's output (the tensor the dataset was measured at)."""
    names = list(dict.fromkeys([*layers, *([peak] if peak else [])]))
    means: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    peaks: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        batch = as_batch(images[start : start + batch_size], size, model.device)
        acts = model.activations(batch, names)
        for name in layers:
            means[name].append(acts[name].float().mean(dim=(2, 3)).cpu().numpy())
        if peak:
            peaks.append(acts[peak].float().amax(dim=(2, 3)).cpu().numpy())
    empty = {name: np.zeros((0, model.layer(name).channels), np.float32) for name in layers}
    out = {name: np.concatenate(parts) if parts else empty[name] for name, parts in means.items()}
    peak_out = None
    if peak:
        peak_out = np.concatenate(peaks) if peaks else np.zeros((0, model.layer(peak).channels), np.float32)
    return out, peak_out
