"""Per-image Building Blocks (Olah et al., Distill 2018): what the network sees, where, and why.

For one image and each selected layer, :func:`compute_blocks` returns everything on one
**grid per layer**: the layer's own positions, or at most ``blocks.grid`` cells a side
(average-pooled activations, sum-pooled attributions), so that every view of a layer
lines up cell for cell.

semantic dictionary
    at each cell ``(y, x)`` the ``K`` channels with the largest (mean) activation, their
    values, and the activation vector's L2 magnitude.
activation grid
    the feature visualization of each cell's mean activation vector (a ``direction``
    objective per cell, rendered batched over cells), with magnitudes.
spatial attribution
    gradient x activation summed over channels, per attributed class: ``[T, H, W]`` at
    the layer's resolution and ``[T, gh, gw]`` on the grid. The attributed classes are
    the top ``blocks.top_classes`` predictions, the classes named in ``blocks.classes``
    and the second class (by default the runner-up).
channel attribution
    the same summed over space: ``[T, C]``, and the difference of the top and the second
    class (by linearity of the gradient, exactly the attribution of
    ``logit_top - logit_second``; the same holds for any two classes).
layer-to-layer flows
    between consecutive selected layers ``L1 -> L2`` and for each class ``t``: the
    gradient x activation of ``L1``'s cells for the target "``L2``'s attribution to ``t``
    in cell ``q``", ``sum_c g2[c, q] * a2[c, q]`` (``g2``: the gradient of ``t``'s logit
    at ``L2``, held constant). Rows are ``L2`` cells, columns ``L1`` cells. The same for
    neuron groups: the target is group ``g2``'s part of that attribution, and ``L1``'s
    attribution is split between its groups by their share of each entry. For a linear
    bias-free ``L1 -> L2`` map a row sums to its target exactly.
neuron groups
    NMF of the ``positions x channels`` matrix (see :mod:`pipeline.blocks.factorize`): maps,
    directions, a feature visualization per group, and each group's attribution to the
    attributed classes. Groups are sorted by their attribution to the top class (shared
    groups by their sum over the layers), so group 0 is the one that argues most for it.

Everything here is computation: tensors in, NumPy arrays out. The job
(:mod:`pipeline.blocks.job`) decodes the image and writes the results to
:mod:`pipeline.store.blocks`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.blocks import factorize as fz
from pipeline.blocks.settings import FULL, MODEL_LAYERS, RUNNER_UP, BlocksSettings
from pipeline.featurevis.presets import at_least_two_strides, layer_stride
from pipeline.featurevis.render import render_directions
from pipeline.featurevis.settings import FeaturevisSettings
from pipeline.images.dataset import to_uint8
from pipeline.model.attribution import LayerAttribution, attribute_to_earlier
from pipeline.model.hooks import LayerTap
from pipeline.optvis.render import RenderOptions

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------
# Semantic dictionary and activation grid
# ---------------------------------------------------------------------------------


def semantic_dictionary(act: torch.Tensor, top: int = 4) -> dict[str, np.ndarray]:
    """``act [C, H, W]`` -> ``channels`` int32 ``[H, W, K]``, ``values`` ``[H, W, K]`` (largest
    first), ``magnitude`` ``[H, W]`` (L2 norm of each position's vector); ``K = min(top, C)``."""
    _check_map(act, "activation")
    act = act.detach().float().cpu()
    values, ids = act.topk(min(int(top), act.shape[0]), dim=0)
    return {
        "channels": ids.permute(1, 2, 0).int().numpy(),
        "values": values.permute(1, 2, 0).numpy(),
        "magnitude": act.norm(dim=0).numpy(),
    }


def grid_shape(height: int, width: int, grid: int | str | tuple[int, int]) -> tuple[int, int]:
    """A layer's cell grid: the layer's own positions for ``"full"``, else at most ``grid``
    per side (a ``(gh, gw)`` pair is taken as it is)."""
    if isinstance(grid, tuple):
        return int(grid[0]), int(grid[1])
    if grid == FULL:
        return height, width
    if not isinstance(grid, int) or grid < 1:
        raise ValueError(f"blocks grid must be 'full' or a positive integer, got {grid!r}")
    return min(height, grid), min(width, grid)


def grid_vectors(act: torch.Tensor, grid: int | str | tuple[int, int]) -> torch.Tensor:
    """``act [C, H, W]`` -> ``[Hg, Wg, C]``: each cell's mean activation vector."""
    _check_map(act, "activation")
    gh, gw = grid_shape(act.shape[1], act.shape[2], grid)
    pooled = F.adaptive_avg_pool2d(act.detach().float()[None], (gh, gw))[0]
    return pooled.permute(1, 2, 0).contiguous()


def icon_options(settings: BlocksSettings, size: int, stride: int) -> RenderOptions:
    """How the icons of the activation grid and of the neuron groups of a layer of
    ``stride`` are rendered: the settings' ``grid_steps`` and ``seed``, at ``size`` pixels,
    with the optimiser of the feature-visualization preset ``icon_preset`` for that
    stride (its learning rate, starting noise, spectral decay and Adam's betas; the icons
    take Adam whatever the preset's optimiser, as measured). The ``fast`` preset's reach
    Lucid's 96-step objective in 48-64 steps (docs/PERFORMANCE.md, section 8)."""
    knobs = FeaturevisSettings(preset=settings.icon_preset).schedule(stride)
    return RenderOptions(
        steps=settings.grid_steps,
        size=size,
        seed=settings.seed,
        lr=knobs.lr,
        init_sd=knobs.init_sd,
        decay_power=knobs.decay_power,
        adam_betas=knobs.adam_betas,
    )


def icons_recorded(model, settings: BlocksSettings, infos) -> dict[str, dict]:
    """Every setting that made each layer's icons, as the files record them: the render
    options of its activation-grid icons (the icon preset's optimiser at the layer's
    stride; the group icons differ only in ``size``: ``group_icon_size``)."""
    recorded = {}
    for info in infos:
        stride = layer_stride(model.input_size, info.height)
        options = dataclasses.asdict(icon_options(settings, grid_icon_size(settings, stride), stride))
        recorded[info.name] = {"icon_preset": settings.icon_preset, "stride": stride, **options}
    return recorded


def grid_icon_size(settings: BlocksSettings, stride: int) -> int:
    """Side of a layer's activation-grid icons: ``grid_size``, at least two strides."""
    return at_least_two_strides(settings.grid_size, stride)


def activation_grid(
    model,
    layer: str,
    act: torch.Tensor,
    options: RenderOptions,
    *,
    grid: int | str | tuple[int, int],
    batch: int,
    cossim_pow: float = 0.0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """``act [C, H, W]`` -> ``icons`` uint8 ``[Hg, Wg, S, S, 3]`` (``S``: the ``options``' size),
    ``magnitude`` ``[Hg, Wg]`` and ``vectors`` ``[Hg, Wg, C]`` (the directions that were rendered)."""
    vectors = grid_vectors(act, grid)
    gh, gw, c = vectors.shape
    size = options.size
    icons = render_directions(
        model,
        layer,
        vectors.reshape(gh * gw, c),
        options,
        batch=batch,
        cossim_pow=cossim_pow,
        progress=f"grid {layer}" if progress else None,
    )
    return {
        "icons": icons.reshape(gh, gw, size, size, 3),
        "magnitude": vectors.norm(dim=2).numpy(),
        "vectors": vectors.numpy(),
    }


# ---------------------------------------------------------------------------------
# Classes and attribution
# ---------------------------------------------------------------------------------


def resolve_class(value: str | int, class_names: Sequence[str], what: str = "blocks.second_class") -> int:
    """A class id from an id, a numeric string or a class name (case-insensitive);
    errors name the config key ``what``."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < len(class_names):
            raise ValueError(
                f"{what}: class id {value} out of range (the model has {len(class_names)} classes)"
            )
        return value
    lowered = [n.lower() for n in class_names]
    if str(value).lower() in lowered:
        return lowered.index(str(value).lower())
    close = [n for n in class_names if str(value).lower() in n.lower()][:10]
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    raise ValueError(f"{what}: no class named {value!r}{hint}")


def attributed_classes(
    logits: torch.Tensor,
    top_classes: int,
    second: str | int,
    class_names: Sequence[str],
    named: Sequence[str | int] = (),
) -> tuple[list[int], int]:
    """The classes to attribute and the second class. ``logits`` is ``[K]``.

    In order: the ``top_classes`` predicted ones (the top class first), the ``named``
    classes, then the second class, each once.
    """
    order = logits.detach().float().argsort(descending=True).tolist()
    classes = order[: max(1, min(int(top_classes), len(order)))]
    for value in named:
        class_id = resolve_class(value, class_names, "blocks.classes")
        if class_id not in classes:
            classes.append(class_id)
    if second == RUNNER_UP:
        if len(order) < 2:
            raise ValueError("blocks.second_class: runner-up needs a model with at least 2 classes")
        second_id = order[1]
    else:
        second_id = resolve_class(second, class_names)
    if second_id == classes[0]:
        log.warning("second class %s is the top class: the class difference is zero", second_id)
    if second_id not in classes:
        classes.append(second_id)
    return classes, second_id


def layer_gradients(
    model, image01: torch.Tensor, layers: Sequence[str], class_id: int
) -> dict[str, torch.Tensor]:
    """``{layer: [C, H, W]}``: gradient of the logit of ``class_id`` w.r.t. each layer, one image."""
    modules = model.modules_for(model.resolve_layers(list(layers)))
    inputs = model.normalize(image01[None].to(model.device, non_blocking=True)).requires_grad_(True)
    with torch.enable_grad():
        acts, logits = LayerTap(model.net, modules)(inputs, truncate=False)
        names = list(modules)
        grads = torch.autograd.grad(logits[0, class_id], [acts[n] for n in names], allow_unused=True)
    return {
        n: (g[0].detach() if g is not None else torch.zeros_like(acts[n][0]).detach())
        for n, g in zip(names, grads)
    }


def cell_masks(height: int, width: int, grid: tuple[int, int]) -> torch.Tensor:
    """``[gh * gw, H, W]`` 0/1 masks of the grid's cells (PyTorch's adaptive-pool cells), row-major."""
    masks = []
    for y0, y1 in fz.adaptive_cells(height, grid[0]):
        for x0, x1 in fz.adaptive_cells(width, grid[1]):
            m = torch.zeros(height, width)
            m[y0:y1, x0:x1] = 1
            masks.append(m)
    return torch.stack(masks)


def layer_flows(
    model,
    image01: torch.Tensor,
    earlier: str,
    later: str,
    later_gradients: Sequence[torch.Tensor],
    grids: tuple[tuple[int, int], tuple[int, int]],
    shares: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Flows of attribution from ``earlier`` to ``later`` for each class (see the module doc).

    ``later_gradients``: one ``[C2, H2, W2]`` gradient per class (``T``); ``grids``: the
    two layers' cell grids (earlier, later); ``shares``: the two layers' neuron-group
    shares ``[G, H*W, C]`` (:func:`pipeline.blocks.factorize.group_shares`), or None.
    Returns ``cells [T, Q, P]`` (``Q`` later cells, ``P`` earlier cells, row-major) and,
    with ``shares``, ``groups [T, G2, G1]``.
    """
    earlier_grid, later_grid = grids
    info2 = model.layer(later)
    c2, h2, w2 = info2.channels, info2.height, info2.width
    masks = cell_masks(h2, w2, later_grid)[:, None]  # [Q, 1, H2, W2]
    group_weights = []
    if shares is not None:
        share1 = torch.from_numpy(np.ascontiguousarray(shares[0], np.float32))  # [G1, P1, C1]
        share2 = torch.from_numpy(np.ascontiguousarray(shares[1], np.float32))
        group_weights = [s.T.reshape(c2, h2, w2) for s in share2]  # [C2, H2, W2] each

    def weights():
        for g in later_gradients:
            g = g.detach().float().cpu()
            yield from (g * m for m in masks)  # one target at a time: Q x C2 x H2 x W2 can be large
            yield from (g * s for s in group_weights)

    def reduce(attr1):  # [C1, H1, W1] -> (cells [P], groups [G1])
        cells = _sum_pool(attr1.sum(dim=0)[None], earlier_grid)[0].flatten()
        if shares is None:
            return cells, None
        return cells, torch.einsum("gpc,cp->g", share1, attr1.flatten(1))

    parts = attribute_to_earlier(model, image01, earlier, later, weights(), reduce)
    per_class = len(masks) + len(group_weights)
    t = len(later_gradients)
    out = {
        "cells": torch.stack([p[0] for p in parts]).reshape(t, per_class, -1)[:, : len(masks)].numpy(),
        "later_grid": np.asarray(later_grid, np.int32),
        "earlier_grid": np.asarray(earlier_grid, np.int32),
    }
    if shares is not None:
        groups = torch.stack([p[1] for i, p in enumerate(parts) if i % per_class >= len(masks)])
        out["groups"] = groups.reshape(t, len(group_weights), -1).numpy()
    return out


def _sum_pool(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``[C, H, W]`` -> ``[C, gh, gw]``: sums over adaptive-pool cells (totals are kept)."""
    if tuple(x.shape[1:]) == tuple(grid):
        return x
    h, w = x.shape[1:]
    return torch.stack(
        [
            torch.stack(
                [x[:, y0:y1, x0:x1].sum(dim=(1, 2)) for x0, x1 in fz.adaptive_cells(w, grid[1])], dim=1
            )
            for y0, y1 in fz.adaptive_cells(h, grid[0])
        ],
        dim=1,
    )


# ---------------------------------------------------------------------------------
# One image, every layer
# ---------------------------------------------------------------------------------


def blocks_layers(model, settings: BlocksSettings):
    """The layers of ``blocks.layers`` (``"model"``: the model's own choice), in execution order."""
    if settings.layers == MODEL_LAYERS:
        return model.blocks_layers()
    return model.resolve_layers(list(settings.layers))


def compute_blocks(
    model,
    image01: torch.Tensor,
    settings: BlocksSettings,
    *,
    render_icons: bool = True,
    progress: bool = False,
) -> dict:
    """Every Building Block of one image ``image01 [3, S, S]`` in ``[0, 1]``.

    Returns a nested dict of NumPy arrays and scalars, laid out as the store keeps
    it (docs/STORE.md, "Building Blocks store"): ``input``, ``predictions``,
    ``classes``, and ``layers[name]`` with ``dictionary``, ``grid``, ``attribution``,
    ``groups`` and (from the second selected layer on) ``from_previous``.
    ``render_icons=False`` skips the feature visualizations (no optvis needed).
    """
    if image01.dim() != 3 or image01.shape[0] != 3:
        raise ValueError(f"image01 must be [3, S, S], got {tuple(image01.shape)}")
    infos = blocks_layers(model, settings)
    names = [i.name for i in infos]
    logits, classes, second, results = _attributed(model, image01, names, settings)
    first = results[classes[0]]
    out = {**_image_and_classes(image01, logits, classes, second, settings.predictions), "layers": {}}
    acts = {n: first.activations[n][0].float().cpu() for n in names}
    attrs = {
        n: torch.stack([results[c].attributions[n][0] for c in classes]).float().cpu() for n in names
    }  # [T, C, H, W]
    grids = {i.name: grid_shape(i.height, i.width, settings.grid) for i in infos}
    # Every class's gradients at every layer, for the flows (and the top class's for a
    # "gradients" factorization): one backward pass per class serves all layers.
    needs_gradients = len(names) > 1 or settings.factorize == "gradients"
    gradients = {c: layer_gradients(model, image01, names, c) for c in classes} if needs_gradients else {}
    groups, fitted = _neuron_groups(names, acts, attrs, gradients.get(classes[0]), classes, settings)
    strides = {i.name: layer_stride(model.input_size, i.height) for i in infos}
    for i, name in enumerate(names):
        act, attr = acts[name], attrs[name]
        vectors = grid_vectors(act, grids[name])  # [gh, gw, C]
        layer = {
            "dictionary": semantic_dictionary(vectors.permute(2, 0, 1), settings.top_channels),
            "attribution": {
                **_attribution_products(attr, classes, second),
                "spatial_grid": _sum_pool(attr.sum(dim=1), grids[name]).numpy(),
            },
            "groups": groups[name],
        }
        if render_icons:
            directions = torch.from_numpy(groups[name]["directions"])
            icons = _layer_icons(model, name, act, directions, settings, strides[name], grids[name], progress)
            layer["grid"], layer["groups"]["icons"] = icons
        if i > 0:
            layer["from_previous"] = _from_previous(
                model, image01, (names[i - 1], name), gradients, classes, grids, fitted
            )
        out["layers"][name] = layer
    return out


def _from_previous(model, image01, pair, gradients, classes, grids, fitted) -> dict:
    """The flows into layer ``pair[1]`` from the selected layer before it, ``pair[0]``."""
    before, name = pair
    flows = layer_flows(
        model,
        image01,
        before,
        name,
        [gradients[c][name] for c in classes],
        (grids[before], grids[name]),
        (fz.group_shares(fitted[before]), fz.group_shares(fitted[name])),
    )
    return {**flows, "layer": before}


def _attributed(model, image01, names: list[str], settings: BlocksSettings) -> tuple:
    """``(logits, classes, second, results)``: the image's logits, the classes attributed
    (and the second one), and each class's attribution at the ``names`` layers."""
    attribution = LayerAttribution(model, names)
    with torch.no_grad():
        logits = model(image01[None].to(model.device, non_blocking=True))[0].float().cpu()
    classes, second = attributed_classes(
        logits, settings.top_classes, settings.second_class, model.class_names, settings.classes
    )
    targets = {int(c): torch.tensor([c], dtype=torch.long) for c in classes}
    results = attribution.attribute_targets(
        image01[None], targets, method=settings.attribution, steps=settings.integration_steps
    )
    return logits, classes, second, results


def _image_and_classes(image01, logits, classes: list[int], second: int, predictions: int) -> dict:
    """The stored input, the top ``predictions`` and the attributed classes of one image."""
    probs = logits.softmax(0)
    top_probs, top_ids = probs.topk(min(predictions, len(probs)))
    return {
        "input": to_uint8(image01[None])[0],
        "predictions": {
            "ids": top_ids.int().numpy(),
            "probabilities": top_probs.numpy(),
            "logits": logits[top_ids].numpy(),
        },
        "classes": {
            "ids": np.asarray(classes, np.int32),
            "logits": logits[classes].numpy(),
            "probabilities": probs[classes].numpy(),
            "top": int(classes[0]),
            "second": int(second),
            "second_index": classes.index(second),
        },
    }


def _layer_icons(model, name, act, directions, settings: BlocksSettings, stride, grid, progress) -> tuple:
    """A layer's activation grid (icons, magnitudes, vectors) and its groups' icons."""
    cells = activation_grid(
        model,
        name,
        act,
        icon_options(settings, grid_icon_size(settings, stride), stride),
        grid=grid,
        batch=settings.grid_batch,
        cossim_pow=settings.cossim_pow,
        progress=progress,
    )
    group_icons = render_directions(
        model,
        name,
        directions,
        icon_options(settings, settings.group_icon_size, stride),
        batch=settings.groups,
        cossim_pow=settings.cossim_pow,
        progress=f"groups {name}" if progress else None,
    )
    return cells, group_icons


def _attribution_products(attr: torch.Tensor, classes: list[int], second: int) -> dict:
    """``attr [T, C, H, W]`` (one per class) -> spatial ``[T, H, W]``, channel ``[T, C]``,
    ``channel_difference [C]`` (top minus second) and ``total [T]``."""
    channel = attr.sum(dim=(2, 3))
    return {
        "spatial": attr.sum(dim=1).numpy(),
        "channel": channel.numpy(),
        "channel_difference": (channel[0] - channel[classes.index(second)]).numpy(),
        "total": attr.sum(dim=(1, 2, 3)).numpy(),
    }


def _neuron_groups(names, acts, attrs, gradients_top, classes, settings):
    """NMF groups of every layer (shared across layers if asked), sorted by attribution to
    the top class, with their class attribution: ``({layer: stored dict}, {layer: Groups})``."""
    if settings.factorize == "activations":
        matrices = {n: acts[n] for n in names}
    elif settings.factorize == "attributions":
        matrices = {n: attrs[n][0] for n in names}  # top class
    elif settings.factorize == "gradients":
        matrices = gradients_top
    else:
        raise ValueError(
            f"blocks.factorize {settings.factorize!r} unknown; use one of {', '.join(fz.TARGETS)}"
        )
    arrays = {n: m.detach().float().cpu().numpy() for n, m in matrices.items()}
    shared = bool(settings.shared and len(names) > 1)
    if shared:
        fitted = fz.factorize_shared(arrays, settings.groups, target=settings.factorize, seed=settings.seed)
    else:
        fitted = {
            n: fz.factorize(
                a.reshape(a.shape[0], -1).T, settings.groups, target=settings.factorize, seed=settings.seed
            )
            for n, a in arrays.items()
        }

    # Each group's attribution to each class [k, T]; the groups are then sorted by their
    # attribution to the top class, largest first (shared groups keep one order for all).
    attribution = {}
    for n, g in fitted.items():
        c, h, w = arrays[n].shape
        per_position = attrs[n].reshape(len(classes), c, h * w).permute(0, 2, 1).numpy()
        attribution[n] = fz.group_attribution(g, per_position)
    if shared:
        order = np.argsort(-sum(a[:, 0] for a in attribution.values()), kind="stable")
        orders = {n: order for n in names}
    else:
        orders = {n: np.argsort(-a[:, 0], kind="stable") for n, a in attribution.items()}
    fitted = {n: fz.reorder(g, orders[n]) for n, g in fitted.items()}
    out = {}
    for n in names:
        g, (h, w) = fitted[n], arrays[n].shape[1:]
        out[n] = {
            "maps": g.maps.reshape(g.k, h, w),
            "directions": g.directions,
            "attribution": attribution[n][orders[n]],  # [k, T]
            "relative_error": g.relative_error,
            "target": settings.factorize,
            "shared": shared,
        }
    return out, fitted


def _check_map(x: torch.Tensor, what: str) -> None:
    if x.dim() != 3:
        raise ValueError(f"{what} must be one image's [C, H, W] map, got shape {tuple(x.shape)}")
