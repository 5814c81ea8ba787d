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
check fails and nothing changes. :func:`effective_filters` gives such a layer's filters
themselves (the constant gradient, on the receptive field), which the site shows beside
the images.
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


def effective_filters(
    model, layer: str, *, pre_activation: bool, size: int, batch: int = 64
) -> np.ndarray | None:
    """``float32 [C, h, w, 3]``: each channel's filter as the image sees it, for a tensor
    :func:`is_affine` accepted at ``size`` px; None when no channel's centre depends on the
    image at all (a constant tensor, such as a ReLU dead on every image, is trivially
    affine, and has no filter to show).

    The gradient of channel ``c`` at the centre position of the layer's map with respect
    to the ``[0, 1]`` image: the convolution's weights times whatever scales them on the way
    (a folded BatchNorm's scale, the input normalisation's ``1 / std``), in input-pixel
    units: the channel's value rises by ``filter[i, j, k]`` per unit of that pixel's colour
    ``k``. One backward pass per ``batch`` channels (each channel its own image, so their
    gradients do not mix). Cropped to the union over the layer's channels of where any
    gradient is non-zero (the centre position's receptive field: 3x3 for a 3x3 convolution),
    so every channel of the layer has the same shape; rows and columns are the image's,
    colours red, green, blue.
    """
    probe = activations(model, torch.zeros(1, 3, size, size), [layer], pre_activation=pre_activation)
    _, channels, height, width = probe[layer].shape
    tap = model.tap([layer], pre_activation=pre_activation)
    gradients = []
    for start in range(0, channels, batch):
        ids = torch.arange(start, min(start + batch, channels))
        image = torch.full((len(ids), 3, size, size), 0.5, device=model.device, requires_grad=True)
        acts, _ = tap(model.normalize(image))
        centre = acts[layer].float()[torch.arange(len(ids)), ids.to(image.device), height // 2, width // 2]
        centre.sum().backward()
        gradients.append(image.grad.detach().double().cpu())
    gradient = torch.cat(gradients)  # [C, 3, S, S]
    support = (gradient != 0).any(dim=1).any(dim=0)  # [S, S]: where any channel looks
    if not support.any():
        return None
    rows, cols = support.any(dim=1).nonzero()[:, 0], support.any(dim=0).nonzero()[:, 0]
    box = gradient[:, :, int(rows[0]) : int(rows[-1]) + 1, int(cols[0]) : int(cols[-1]) + 1]
    return box.permute(0, 2, 3, 1).float().numpy()
