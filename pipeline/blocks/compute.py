"""Per-image Building Blocks (Olah et al., Distill 2018): what the network sees, where, and why.

For one image and each selected layer, :func:`compute_blocks` returns

semantic dictionary
    at each position ``(y, x)`` the ``K`` channels with the largest activation, their
    values, and the activation vector's L2 magnitude.
activation grid
    the feature visualization of each position's whole activation vector (a
    ``direction`` objective per position, rendered batched over positions), on the
    full layer grid or average-pooled to a coarser one (cost), with magnitudes.
spatial attribution
    gradient x activation summed over channels: ``[H, W]`` per attributed class
    (the top predicted classes and a second class, by default the runner-up).
channel attribution
    the same summed over space: ``[C]`` per class, and for the difference of the top
    and the second class (``logit_top - logit_second``; by linearity of the gradient it
    is exactly the difference of the two channel attributions).
layer-to-layer attribution
    between consecutive selected layers ``L1 -> L2``: for each position ``q`` of ``L2``
    the gradient x activation of ``L1``'s positions for the target
    ``sum_c g2[c, q] * a2[c, q]``, where ``g2`` is the gradient of the top class with
    respect to ``L2`` held constant: "which earlier positions feed this later
    position's attribution to the top class". Rows are ``L2`` positions, columns ``L1``
    positions; both are sum-pooled to at most ``layer_to_layer_grid`` per side (sums
    keep totals). For a linear bias-free ``L1 -> L2`` map, row ``q`` sums to ``L2``'s
    spatial attribution at ``q``.
neuron groups
    NMF of the ``positions x channels`` matrix (see :mod:`pipeline.blocks.factorize`): maps,
    directions, a feature visualization per group, and each group's attribution to
    the attributed classes.

Everything here is computation: tensors in, NumPy arrays out. The job
(:mod:`pipeline.blocks.job`) decodes the image and writes the results to
:mod:`pipeline.store.blocks`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.blocks import factorize as fz
from pipeline.blocks.settings import FULL, RUNNER_UP, BlocksSettings
from pipeline.featurevis.presets import layer_stride
from pipeline.featurevis.settings import FeaturevisSettings
from pipeline.images.dataset import to_uint8
from pipeline.model.attribution import LayerAttribution
from pipeline.model.hooks import LayerTap
from pipeline.optvis.render import RenderOptions, render

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


def grid_shape(height: int, width: int, grid: int | str) -> tuple[int, int]:
    """Cells of the activation grid: the layer's own grid for ``"full"``, else at most ``grid`` per side."""
    if grid == FULL:
        return height, width
    if not isinstance(grid, int) or grid < 1:
        raise ValueError(f"blocks grid must be 'full' or a positive integer, got {grid!r}")
    return min(height, grid), min(width, grid)


def grid_vectors(act: torch.Tensor, grid: int | str) -> torch.Tensor:
    """``act [C, H, W]`` -> ``[Hg, Wg, C]``: each cell's mean activation vector."""
    _check_map(act, "activation")
    gh, gw = grid_shape(act.shape[1], act.shape[2], grid)
    pooled = F.adaptive_avg_pool2d(act.detach().float()[None], (gh, gw))[0]
    return pooled.permute(1, 2, 0).contiguous()


def direction_objectives(layer: str, vectors: torch.Tensor, cossim_pow: float = 0.0):
    """One ``direction`` objective per row of ``vectors [N, C]``, as a per-item batch objective."""
    from pipeline.optvis import objectives as obj

    return obj.per_item([obj.direction(layer, v, cossim_pow=cossim_pow) for v in vectors])


def icon_options(settings: BlocksSettings, size: int, stride: int) -> RenderOptions:
    """How the icons of the activation grid and of the neuron groups of a layer of
    ``stride`` are rendered: the settings' ``grid_steps`` and ``seed``, at ``size`` pixels,
    with the optimiser of the feature-visualization preset ``icon_preset`` for that
    stride. The ``fast`` preset's reach Lucid's 96-step objective in 48-64 steps
    (docs/PERFORMANCE.md, section 8)."""
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


def render_directions(
    model,
    layer: str,
    vectors: torch.Tensor,
    options: RenderOptions,
    *,
    batch: int,
    cossim_pow: float = 0.0,
    progress: bool = False,
    desc: str = "directions",
) -> np.ndarray:
    """Feature visualizations of ``vectors [N, C]`` at ``layer`` -> uint8 ``[N, size, size, 3]``
    (``size`` of the ``options``).

    Rendered ``batch`` at a time, one image per vector. Item ``i`` is seeded by its
    index, so an icon does not depend on the batch size.
    """
    vectors = vectors.detach().float()
    batch = max(1, int(batch))
    icons = []
    bar = _progress(len(vectors), desc) if progress else None
    try:
        for start in range(0, len(vectors), batch):
            part = vectors[start : start + batch].to(model.device, non_blocking=True)
            keys = list(range(start, start + len(part)))
            result = render(
                model,
                direction_objectives(layer, part, cossim_pow),
                len(part),
                options,
                item_keys=keys,
                truncate=True,
            )
            icons.append(to_uint8(result.images))
            if bar is not None:
                bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    if not icons:
        return np.zeros((0, options.size, options.size, 3), np.uint8)
    return np.concatenate(icons)


def activation_grid(
    model,
    layer: str,
    act: torch.Tensor,
    options: RenderOptions,
    *,
    grid: int | str,
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
        progress=progress,
        desc=f"grid {layer}",
    )
    return {
        "icons": icons.reshape(gh, gw, size, size, 3),
        "magnitude": vectors.norm(dim=2).numpy(),
        "vectors": vectors.numpy(),
    }


# ---------------------------------------------------------------------------------
# Classes and attribution
# ---------------------------------------------------------------------------------


def resolve_class(value: str | int, class_names: Sequence[str]) -> int:
    """A class id from an id, a numeric string or a class name (case-insensitive)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < len(class_names):
            raise ValueError(
                f"blocks.second_class: class id {value} out of range "
                f"(the model has {len(class_names)} classes)"
            )
        return value
    lowered = [n.lower() for n in class_names]
    if str(value).lower() in lowered:
        return lowered.index(str(value).lower())
    close = [n for n in class_names if str(value).lower() in n.lower()][:10]
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    raise ValueError(f"blocks.second_class: no class named {value!r}{hint}")


def attributed_classes(
    logits: torch.Tensor, top_classes: int, second: str | int, class_names: Sequence[str]
) -> tuple[list[int], int]:
    """The classes to attribute (``top_classes`` predicted ones, then the second class if
    not among them) and the second class. ``logits`` is ``[K]``; the top class is first."""
    order = logits.detach().float().argsort(descending=True).tolist()
    classes = order[: max(1, min(int(top_classes), len(order)))]
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


def layer_to_layer(
    model, image01: torch.Tensor, earlier: str, later: str, later_gradient: torch.Tensor, max_side: int = 14
) -> dict[str, np.ndarray]:
    """Attribution of ``earlier``'s positions to each position of ``later`` (see the module doc).

    ``later_gradient [C2, H2, W2]`` weights the later layer's channels (the top class's
    gradient). Returns ``attribution`` ``[Hq*Wq, Hp*Wp]`` (rows: later cells, columns:
    earlier cells, row-major), and the grids ``later_grid`` ``(Hq, Wq)`` and
    ``earlier_grid`` ``(Hp, Wp)``.
    """
    infos = model.resolve_layers([earlier, later])
    if [i.name for i in infos] != [model.layer(earlier).name, model.layer(later).name]:
        raise ValueError(f"layer-to-layer attribution needs {earlier!r} to run before {later!r}")
    modules = model.modules_for(infos)
    inputs = model.normalize(image01[None].to(model.device, non_blocking=True)).requires_grad_(True)
    weight = later_gradient.detach().to(model.device)
    with torch.enable_grad():
        acts, _ = LayerTap(model.net, modules)(inputs, truncate=True)
        # Gradients are taken w.r.t. the captured batch tensor (a slice of it is not
        # part of the graph); the batch holds this one image.
        a1_batch = acts[infos[0].name]
        a1, a2 = a1_batch[0], acts[infos[1].name][0]
        later_grid = grid_shape(a2.shape[1], a2.shape[2], max_side)
        earlier_grid = grid_shape(a1.shape[1], a1.shape[2], max_side)
        # Each later cell's target: the weighted activation summed over the cell's positions.
        weighted = (weight * a2).sum(dim=0)  # [H2, W2]
        cell_targets = _sum_pool(weighted[None], later_grid)[0].flatten()  # [Hq*Wq]
        spatial = []
        for q in range(len(cell_targets)):
            (grad,) = torch.autograd.grad(cell_targets[q], a1_batch, retain_graph=q + 1 < len(cell_targets))
            spatial.append((grad[0] * a1).sum(dim=0).detach())  # [H1, W1]
        # Pooled once for all later cells (the first axis of _sum_pool is a batch).
        rows = _sum_pool(torch.stack(spatial), earlier_grid).flatten(1)  # [Hq*Wq, Hp*Wp]
    return {
        "attribution": rows.float().cpu().numpy(),
        "later_grid": np.asarray(later_grid, np.int32),
        "earlier_grid": np.asarray(earlier_grid, np.int32),
    }


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
    infos = model.resolve_layers(list(settings.layers))
    names = [i.name for i in infos]
    attribution = LayerAttribution(model, names)
    with torch.no_grad():
        logits = model(image01[None].to(model.device, non_blocking=True))[0].float().cpu()
    classes, second = attributed_classes(
        logits, settings.top_classes, settings.second_class, model.class_names
    )
    targets = {int(c): torch.tensor([c], dtype=torch.long) for c in classes}
    results = attribution.attribute_targets(
        image01[None], targets, method=settings.attribution, steps=settings.integration_steps
    )
    first = results[classes[0]]
    probs = logits.softmax(0)
    top_probs, top_ids = probs.topk(min(settings.predictions, len(probs)))
    out = {
        "input": to_uint8(image01[None])[0],
        "predictions": {
            "ids": top_ids.int().numpy(),
            "probabilities": top_probs.numpy(),
            "logits": logits[top_ids].numpy(),
        },
        "classes": {
            "ids": np.asarray(classes, np.int32),
            "top": int(classes[0]),
            "second": int(second),
            "second_index": classes.index(second),
        },
        "layers": {},
    }
    acts = {n: first.activations[n][0].float().cpu() for n in names}
    attrs = {
        n: torch.stack([results[c].attributions[n][0] for c in classes]).float().cpu() for n in names
    }  # [T, C, H, W]
    # The top class's gradients at every layer: for layer-to-layer attribution, and the
    # factorization target when that is "gradients". One backward pass serves both.
    gradients_top = (
        layer_gradients(model, image01, names, classes[0])
        if len(names) > 1 or settings.factorize == "gradients"
        else None
    )
    groups = _neuron_groups(names, acts, attrs, gradients_top, classes, settings)
    strides = {i.name: layer_stride(model.input_size, i.height) for i in infos}
    for i, name in enumerate(names):
        act, attr = acts[name], attrs[name]
        layer = {
            "dictionary": semantic_dictionary(act, settings.top_channels),
            "attribution": _attribution_products(attr, classes, second),
            "groups": groups[name],
        }
        if render_icons:
            layer["grid"] = activation_grid(
                model,
                name,
                act,
                icon_options(settings, settings.grid_size, strides[name]),
                grid=settings.grid,
                batch=settings.grid_batch,
                cossim_pow=settings.cossim_pow,
                progress=progress,
            )
            layer["groups"]["icons"] = render_directions(
                model,
                name,
                torch.from_numpy(groups[name]["directions"]),
                icon_options(settings, settings.group_icon_size, strides[name]),
                batch=settings.groups,
                cossim_pow=settings.cossim_pow,
                progress=progress,
                desc=f"groups {name}",
            )
        if i > 0:
            link = layer_to_layer(
                model, image01, names[i - 1], name, gradients_top[name], settings.layer_to_layer_grid
            )
            layer["from_previous"] = {**link, "layer": names[i - 1]}
        out["layers"][name] = layer
    return out


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


def _neuron_groups(names, acts, attrs, gradients_top, classes, settings) -> dict[str, dict]:
    """NMF groups of every layer (shared across layers if asked) with their class attribution."""
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
    if settings.shared and len(names) > 1:
        fitted = fz.factorize_shared(arrays, settings.groups, target=settings.factorize, seed=settings.seed)
    else:
        fitted = {
            n: fz.factorize(
                a.reshape(a.shape[0], -1).T, settings.groups, target=settings.factorize, seed=settings.seed
            )
            for n, a in arrays.items()
        }
    out = {}
    for n in names:
        g, (c, h, w) = fitted[n], arrays[n].shape
        per_position = attrs[n].reshape(len(classes), c, h * w).permute(0, 2, 1).numpy()
        out[n] = {
            "maps": g.maps.reshape(g.k, h, w),
            "directions": g.directions,
            "attribution": fz.group_attribution(g, per_position),  # [k, T]
            "relative_error": g.relative_error,
            "target": settings.factorize,
            "shared": bool(settings.shared and len(names) > 1),
        }
    return out


def _check_map(x: torch.Tensor, what: str) -> None:
    if x.dim() != 3:
        raise ValueError(f"{what} must be one image's [C, H, W] map, got shape {tuple(x.shape)}")


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img")
