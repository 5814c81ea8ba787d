"""Rendering one batch of a layer's channels, and measuring each on its stored image.

For a batch of channels :func:`render_batch` renders

* the **main image** of each channel: ``per_item([channel(layer, c) ...])``, item key
  ``c``, so a channel's image does not depend on which channels share its batch;
* with ``diversity = D > 1``, a **diverse set** of D images per channel, optimised for
  ``channel - diversity_weight * diversity`` within each channel's group;
* with ``negatives``, the image that **minimises** each channel;
* with ``neurons``, the image that maximises each channel at the **centre position**
  only (Lucid's neuron objective), measured there;

and then measures each channel's activation and rank on its own final image
(:func:`measure_stored`). With ``pre_activation`` (the default), a layer that ends in a
bounded activation (ReLU6, ...) is optimised and measured at its pre-activation.

Where that tensor is affine in the image (a first layer's pre-activation), the channel,
negative and neuron objectives are linear in the image and their images are computed
exactly instead of optimised (:mod:`pipeline.optvis.exact`): gradient ascent with random
transformations finds only flat colours there. The diverse sets are always optimised.
Such a layer's filters (:func:`exact_filters`) are stored beside its images.
Tensors in, NumPy arrays out: the job (:mod:`pipeline.featurevis.job`) writes them to
a shard.

:func:`render_directions` renders directions of a layer's activation space instead of
channels: the Building Blocks' icons and the activation atlas's cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pipeline.featurevis.presets import Schedule
from pipeline.featurevis.settings import FeaturevisSettings
from pipeline.images.dataset import to_uint8
from pipeline.optvis import objectives as obj
from pipeline.optvis.exact import effective_filters, exact_render, is_affine
from pipeline.optvis.render import RenderOptions, RenderResult, activations, render


def render_options(settings: FeaturevisSettings, schedule: Schedule) -> RenderOptions:
    """The render loop's options for one layer: the stage's settings and the layer's
    ``schedule`` (:meth:`FeaturevisSettings.schedule`)."""
    return RenderOptions(
        steps=schedule.steps,
        size=schedule.image_size,
        param=settings.param,
        lr=schedule.lr,
        seed=settings.seed,
        transforms=settings.TRANSFORMS,
        curve_points=settings.curve_points,
        relu_override_steps=settings.relu_override_steps,
        init_sd=schedule.init_sd,
        decay_power=schedule.decay_power,
        adam_betas=tuple(schedule.adam_betas),
        pre_activation=settings.pre_activation,
        lr_schedule=settings.lr_schedule,
        coarse_to_fine=settings.coarse_to_fine,
        optimizer=schedule.optimizer,
        amp=settings.amp,
        compile=settings.compile,
    )


def render_linear(
    model, objective, batch: int, options: RenderOptions, *, item_keys, exact: bool, progress: bool
) -> RenderResult:
    """:func:`~pipeline.optvis.render.render` for an objective linear in the layer's tensor,
    or its exact maximum when ``exact`` (the tensor is affine in the image)."""
    if exact:
        return exact_render(
            model,
            objective,
            batch,
            options.size,
            pre_activation=options.pre_activation,
            curve_points=options.curve_points,
        )
    return render(model, objective, batch, options, item_keys=item_keys, progress=progress)


def renders_exactly(model, layer: str, options: RenderOptions) -> bool:
    """Whether ``layer``'s channel images are computed exactly (:mod:`pipeline.optvis.exact`):
    the tensor it is rendered at is affine in the image."""
    return is_affine(model, layer, pre_activation=options.pre_activation, size=options.size)


def exact_filters(model, layer: str, settings: FeaturevisSettings, schedule: Schedule) -> np.ndarray | None:
    """``float32 [C, h, w, 3]``: every channel's filter (the gradient of its centre position
    with respect to the image, on its receptive field; :func:`~pipeline.optvis.exact.effective_filters`)
    when ``layer`` is rendered exactly, else None (a filter is the whole story only where
    the tensor is affine in the image)."""
    options = render_options(settings, schedule)
    if not renders_exactly(model, layer, options):
        return None
    return effective_filters(model, layer, pre_activation=options.pre_activation, size=options.size)


def target_rank(means, channels):
    """``means: Tensor[N, C]``, ``channels: Tensor[N]`` -> ``(activation [N], rank [N])``.

    Rank 1 = no channel of the layer has a larger spatial mean on the item's image.
    """
    own = means.gather(1, channels.view(-1, 1))
    return own[:, 0], 1 + (means > own).sum(dim=1).to(torch.int32)


def measure_stored(model, layer: str, images, channels: Sequence[int], *, pre_activation: bool = False):
    """Quantise ``images [N, 3, H, W]`` as stored and measure each target channel on them.

    Returns ``(uint8 [N, H, W, 3], activation [N], rank [N], responses [N, C])`` with
    activation and rank taken on the stored uint8 image, so that anyone can recompute
    them from the store; ``responses`` holds every channel's spatial mean on each image.
    With ``pre_activation``, on the capped layer's pre-activation (the optimised tensor).
    """
    stored = to_uint8(images)
    again = torch.from_numpy(stored).permute(0, 3, 1, 2).float() / 255
    acts = activations(model, again, [layer], pre_activation=pre_activation)
    means = acts[layer].mean(dim=(-2, -1)).cpu()
    activation, rank = target_rank(means, torch.tensor(list(channels)))
    return stored, activation.numpy(), rank.numpy(), means.numpy()


def render_batch(
    model,
    layer: str,
    channels: Sequence[int],
    settings: FeaturevisSettings,
    schedule: Schedule,
    *,
    extra_schedule: Schedule | None = None,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Render ``channels`` of ``layer`` together with the layer's ``schedule`` (the extra
    images with ``extra_schedule``, default the same); numpy arrays for the shard writer.

    Returns ``images [k, H, W, 3]``, ``value``, ``activation``, ``rank [k]``,
    ``responses [k, C]``, ``curve [k, P]`` and, as the settings ask, ``diversity_images [k, D, H, W, 3]``,
    ``diversity_activation [k, D]``, ``negative_images``, ``negative_activation``,
    ``neuron_images``, ``neuron_activation`` (at the centre position).
    """
    options = render_options(settings, schedule)
    k, channels = len(channels), list(channels)
    each_channel = obj.per_item([obj.channel(layer, c) for c in channels])

    exact = renders_exactly(model, layer, options)
    main = render_linear(model, each_channel, k, options, item_keys=channels, exact=exact, progress=progress)
    pre = options.pre_activation
    images, activation, rank, responses = measure_stored(
        model, layer, main.images, channels, pre_activation=pre
    )
    out = {
        "images": images,
        "value": main.values.numpy(),
        "activation": activation,
        "rank": rank,
        "responses": responses,
        "curve": main.curve.T,
    }

    options = render_options(settings, extra_schedule or schedule)
    out.update(_render_extras(model, layer, channels, settings, options, each_channel, (exact, progress)))
    return out


def _render_extras(model, layer, channels, settings, options, each_channel, how) -> dict[str, np.ndarray]:
    """The extra images :func:`render_batch` renders after the main ones, in this order:
    the diverse sets, the negative and the neuron images, as the settings ask; ``how``:
    ``(exact, progress)``, exact for the negative and neuron images of an affine tensor."""
    exact, progress = how
    k, pre, out = len(channels), options.pre_activation, {}
    d = int(settings.diversity)
    if d > 1:
        repeated = [c for c in channels for _ in range(d)]
        objective = obj.per_item(
            [obj.channel(layer, c) for c in repeated]
        ) - settings.diversity_weight * obj.diversity(layer, group_size=d)
        diverse = render(
            model,
            objective,
            k * d,
            options,
            progress=progress,
            item_keys=[("diversity", c, i) for c in channels for i in range(d)],
        )
        images, activation, _, _ = measure_stored(model, layer, diverse.images, repeated, pre_activation=pre)
        size = options.size
        out["diversity_images"] = images.reshape(k, d, size, size, 3)
        out["diversity_activation"] = activation.reshape(k, d)

    if settings.negatives:
        keys = [("negative", c) for c in channels]
        negative = render_linear(
            model, -each_channel, k, options, item_keys=keys, exact=exact, progress=progress
        )
        out["negative_images"], out["negative_activation"], _, _ = measure_stored(
            model, layer, negative.images, channels, pre_activation=pre
        )

    if settings.neurons:
        each_neuron = obj.per_item([obj.neuron(layer, c) for c in channels])
        keys = [("neuron", c) for c in channels]
        neuron = render_linear(model, each_neuron, k, options, item_keys=keys, exact=exact, progress=progress)
        out["neuron_images"] = to_uint8(neuron.images)
        out["neuron_activation"] = measure_centre(model, layer, out["neuron_images"], channels, pre)
    return out


def measure_centre(model, layer: str, stored: np.ndarray, channels: Sequence[int], pre_activation: bool):
    """float32 ``[N]``: each channel at the centre position of its stored uint8 image."""
    again = torch.from_numpy(stored).permute(0, 3, 1, 2).float() / 255
    acts = activations(model, again, [layer], pre_activation=pre_activation)[layer]
    h, w = acts.shape[-2:]
    centre = acts[torch.arange(len(channels)), torch.tensor(list(channels)), h // 2, w // 2]
    return centre.float().cpu().numpy()


def direction_objectives(layer: str, vectors: torch.Tensor, cossim_pow: float = 0.0):
    """One ``direction`` objective per row of ``vectors [N, C]``, as a per-item batch objective."""
    return obj.per_item([obj.direction(layer, v, cossim_pow=cossim_pow) for v in vectors])


def render_directions(
    model,
    layer: str,
    vectors: torch.Tensor,
    options: RenderOptions,
    *,
    batch: int,
    cossim_pow: float = 0.0,
    first_key: int = 0,
    progress: str | None = None,
) -> np.ndarray:
    """Feature visualizations of ``vectors [N, C]`` at ``layer`` -> uint8 ``[N, size, size, 3]``
    (``size`` of the ``options``).

    Rendered ``batch`` at a time, one image per vector. Item ``i`` is seeded by
    ``first_key + i``, so an image depends neither on the batch size nor, when a caller
    splits a list of vectors into jobs and passes each part's offset, on the split.
    ``progress``: the label of a progress bar, or None for none.
    """
    from tqdm.auto import tqdm

    vectors = vectors.detach().float()
    batch = max(1, int(batch))
    icons = []
    with tqdm(total=len(vectors), desc=progress, unit="img", disable=progress is None) as bar:
        for start in range(0, len(vectors), batch):
            part = vectors[start : start + batch].to(model.device, non_blocking=True)
            keys = list(range(first_key + start, first_key + start + len(part)))
            result = render(
                model,
                direction_objectives(layer, part, cossim_pow),
                len(part),
                options,
                item_keys=keys,
                truncate=True,
            )
            icons.append(to_uint8(result.images))
            bar.update(len(part))
    if not icons:
        return np.zeros((0, options.size, options.size, 3), np.uint8)
    return np.concatenate(icons)
