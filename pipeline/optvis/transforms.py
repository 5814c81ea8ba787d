"""Random transformations that make feature visualizations robust (Lucid's recipe).

Optimising an image through small random shifts, zooms and rotations stops it from
exploiting pixel-exact high-frequency patterns. A transform is a callable::

    transform(images: Tensor[N, 3, H, W], generators: Sequence[Generator]) -> Tensor[N, 3, H', W']

Randomness is drawn **per batch item** from that item's own ``torch.Generator``, on the
CPU, in a fixed order: item i sees the same transformations whether it is rendered
alone or inside a batch, and the same on every device.

:func:`standard_transforms` is Lucid's ``standard_transforms``: pad 12 (constant 0.5),
jitter 8, random scale from ``{1 + (i - 5) / 50}``, random rotation from -10..10 degrees
plus five extra zeros, jitter 4; a 128 px image becomes 140 px. Two differences, both
so that a batch stays one tensor and stays cheap:

* Lucid resizes the image when it scales; here every item keeps one canvas and the
  scale zooms about the centre (Lucid's size change only moves the crop borders);
* the four geometric steps are composed into **one** bilinear resampling per item
  (Lucid resamples twice). Without zoom and rotation it is an exact integer shift.
  Pixels from outside the image are the padding's 0.5 grey, as with Lucid's padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, Sequence[torch.Generator]], torch.Tensor]

STANDARD_SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
STANDARD_ANGLES = tuple(range(-10, 11)) + (0,) * 5
PAD_VALUE = 0.5


def _pick(g: torch.Generator, options: Sequence) -> object:
    return options[int(torch.randint(len(options), (1,), generator=g))]


def _offset(g: torch.Generator, d: int) -> tuple[int, int]:
    """A jitter offset (dy, dx), each uniform in ``0..d``."""
    dy, dx = torch.randint(d + 1, (2,), generator=g).tolist()
    return dy, dx


def robustness(
    pad_width: int = 12,
    first_jitter: int = 8,
    scales: Sequence[float] = STANDARD_SCALES,
    angles_deg: Sequence[float] = STANDARD_ANGLES,
    last_jitter: int = 4,
) -> Transform:
    """Pad, jitter, zoom, rotate, jitter (in that order) as one resampling per item.

    ``[N, 3, H, W] -> [N, 3, H + 2*pad - j1 - j2, W + ...]``. Per item, its generator
    draws the first jitter offset, the scale, the angle and the last jitter offset.
    """

    def transform(images, generators):
        n, _, h, w = images.shape
        # Geometry in pixel units, continuous coordinates (pixel i spans [i, i + 1]),
        # in the frame of the padded image. Output pixel u samples the padded image at
        #   v = a + c + R(-angle) (u + b - c) / scale
        # where a, b are the two jitter offsets and c the centre of the first crop.
        out_h, out_w = (
            h + 2 * pad_width - first_jitter - last_jitter,
            w + 2 * pad_width - first_jitter - last_jitter,
        )
        cx = (w + 2 * pad_width - first_jitter) / 2
        cy = (h + 2 * pad_width - first_jitter) / 2
        rows = _affine_rows(generators, (cx, cy), pad_width, first_jitter, last_jitter, scales, angles_deg)
        # The grid is built where the images are: only the [N, 6] parameters cross from
        # the CPU each step, not the [N, Ho, Wo, 2] grid. In float64 except on MPS (none).
        device = images.device
        exact = torch.float32 if device.type == "mps" else torch.float64
        p = torch.tensor(rows, dtype=exact).to(device, non_blocking=True)
        ux = (torch.arange(out_w, dtype=exact, device=device) + 0.5)[None, None, :]
        uy = (torch.arange(out_h, dtype=exact, device=device) + 0.5)[None, :, None]
        col = lambda k: p[:, k, None, None]  # noqa: E731  per-item scalar, broadcast over [Ho, Wo]
        vx = col(0) * ux + col(1) * uy + col(4)
        vy = col(2) * ux + col(3) * uy + col(5)
        grid = torch.stack([2 * vx / w - 1, 2 * vy / h - 1], dim=-1).to(images.dtype)  # [N, Ho, Wo, 2]
        # Sampling (image - grey) with zero padding puts grey outside the image, and
        # blends it in at the border exactly as constant padding would.
        out = F.grid_sample(
            images - PAD_VALUE, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return out + PAD_VALUE

    return transform


def _affine_rows(generators, centre, pad_width, first_jitter, last_jitter, scales, angles_deg) -> list:
    """Per item (one generator each): the 2x2 matrix and the shift of ``v = M u + t``,
    ``[m00, m01, m10, m11, tx, ty]`` in (x, y) order, drawing the first jitter offset,
    the scale, the angle and the last jitter offset in that order."""
    cx, cy = centre
    rows = []
    for g in generators:
        ay, ax = _offset(g, first_jitter)
        scale, angle = float(_pick(g, scales)), math.radians(float(_pick(g, angles_deg)))
        by, bx = _offset(g, last_jitter)
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        # t = a + c + M (b - c), then minus the padding: back to the unpadded frame.
        px, py = bx - cx, by - cy
        rows.append(
            [
                cos,
                sin,
                -sin,
                cos,
                ax + cx + cos * px + sin * py - pad_width,
                ay + cy - sin * px + cos * py - pad_width,
            ]
        )
    return rows


def standard_transforms() -> Transform:
    """Lucid's standard set (see the module docstring); 128 px -> 140 px."""
    return robustness(12, 8, STANDARD_SCALES, STANDARD_ANGLES, 4)


def identity(images: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """No transformation (for tests and ablations)."""
    return images


def resolve(transforms: str | Transform | None) -> Transform:
    """``"standard"``, ``"none"``/``None`` or a transform callable -> a transform."""
    if transforms is None or transforms == "none":
        return identity
    if transforms == "standard":
        return standard_transforms()
    if callable(transforms):
        return transforms
    raise ValueError(f"unknown transforms {transforms!r}; use 'standard', 'none' or a callable")
