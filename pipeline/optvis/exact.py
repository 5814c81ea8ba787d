"""Exact feature visualization of a tensor that is affine in the image (a first layer's
pre-activation: a convolution plus a bias, or one with its BatchNorm).

The channel objective, the mean of a channel over space, is then a *linear* function of
the image's pixels, ``value(x) = g . x + const`` with the same gradient ``g`` everywhere.
Its maximum over the box of images with pixels in ``[0, 1]`` is known exactly: every
pixel at 1 where ``g`` is positive and at 0 where it is negative (0.5 where the pixel
does not matter). The neuron objective (one position) and the negative of either are
linear too. For a stride-2 3x3 stem that image is the filter tiled at its stride (stripes
for an edge filter, a flat colour for a colour filter), and for the neuron objective
the filter itself at the centre.

Gradient ascent with Lucid's random transformations cannot find it: random shifts by
an odd number of pixels swap the stride's pixel classes, so what the transformed image
is rewarded for is only its mean colour, and every channel ends as a flat colour (issue
26; docs/PERFORMANCE.md). :func:`is_affine` tells the renderer when to use
:func:`exact_render` instead; at any non-affine tensor (everything after a ReLU) the
check fails and nothing changes.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.optvis.objectives import Objective
from pipeline.optvis.render import RenderResult, activations

AFFINE_TOLERANCE = 1e-4  # of the tensor's largest magnitude: float32 rounding, not curvature
AFFINE_PROBES = 4  # random corner images of the box (each pixel 0 or 1), the hardest test


def is_affine(model, layer: str, *, pre_activation: bool, size: int, seed: int = 0) -> bool:
    """Whether ``layer``'s rendered tensor (its pre-activation with ``pre_activation``, for a
    capped layer) is affine in the ``[0, 1]`` image at ``size`` px.

    Checked on random corner images ``a`` and ``b`` of the box: ``f((a + b) / 2)`` must be
    ``(f(a) + f(b)) / 2`` and ``f(a / 4 + 3b / 4)`` likewise, up to float rounding. Corners
    drive a layer's units to their extremes, so a ReLU or a cap almost surely bends somewhere.
    """
    generator = torch.Generator().manual_seed(seed)
    corners = (torch.rand(AFFINE_PROBES, 3, size, size, generator=generator) > 0.5).float()
    a, b = corners[: AFFINE_PROBES // 2], corners[AFFINE_PROBES // 2 :]
    images = torch.cat([a, b, (a + b) / 2, a / 4 + 3 * b / 4])
    acts = activations(model, images, [layer], pre_activation=pre_activation)[layer].double().cpu()
    fa, fb, mid, quarter = acts.chunk(4)
    scale = max(1.0, float(acts.abs().max()))
    worst = max((mid - (fa + fb) / 2).abs().max(), (quarter - (fa / 4 + 3 * fb / 4)).abs().max())
    return float(worst) <= AFFINE_TOLERANCE * scale


def exact_render(
    model, objective: Objective, batch: int, size: int, *, pre_activation: bool, curve_points: int
) -> RenderResult:
    """The images that maximise ``objective`` exactly, for an objective that is linear in a
    tensor :func:`is_affine` accepted (channel, neuron, their negatives; one per item).

    One backward pass from a grey image gives each item's gradient; each pixel goes to 1
    or 0 by its sign (0.5 where it is 0). The result has the shape of
    :func:`~pipeline.optvis.render.render`'s: ``values`` on the final images, and a flat
    ``curve`` of ``curve_points`` rows (nothing was optimised step by step; ``steps`` 0).
    """
    grey = torch.full((batch, 3, size, size), 0.5, device=model.device, requires_grad=True)
    tap = model.tap(list(objective.layers), pre_activation=pre_activation)
    acts, _ = tap(model.normalize(grey))
    objective({k: v.float() for k, v in acts.items()}).sum().backward()
    gradient = grey.grad.detach()
    images = (gradient > 0).float() + 0.5 * (gradient == 0).float()
    values = objective(activations(model, images, objective.layers, pre_activation=pre_activation))
    values = values.detach().float().cpu()
    points = max(1, int(curve_points))
    return RenderResult(
        images=images.cpu(),
        values=values,
        curve=np.tile(values.numpy(), (points, 1)),
        curve_steps=np.zeros(points, np.int64),
        steps=0,
        description=f"exact maximum of {objective}",
    )
