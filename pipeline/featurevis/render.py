"""The feature-visualization stage: every selected channel of a layer, rendered in batches.

The workflow splits each layer into shards of ``channels_per_job`` channel ids
(:func:`plan_shards`); one job renders one shard (:func:`run_shard`) and the merge
combines the shard files (:func:`pipeline.store.featurevis.merge_shards`).

For each batch of channels the stage renders

* the **main image** of each channel: ``per_item([channel(layer, c) ...])``, item key
  ``c``, so a channel's image does not depend on which channels share its batch;
* with ``diversity = D > 1``, a **diverse set** of D images per channel, optimised for
  ``channel - diversity_weight * diversity`` within each channel's group;
* with ``negatives``, the image that **minimises** each channel;

and then measures each channel's activation and rank on its own final image.

This module is imported by the workflow to plan shards, so torch is imported only
inside the functions that render.
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

# Settings that decide what a shard contains, with their defaults (the config schema's).
DEFAULT_SETTINGS = {"steps": 512, "image_size": 128, "batch_size": 32, "seed": 0, "diversity": 1,
                    "diversity_weight": 100.0, "negatives": False, "lr": 0.05, "param": "fft",
                    "transforms": "standard", "curve_points": 32, "relu_override_steps": 16}


# ---------------------------------------------------------------------------------
# Channel selection and shards (no torch)
# ---------------------------------------------------------------------------------

def parse_channels(selection, n_channels: int, layer: str = "?") -> list[int]:
    """Resolve a config ``channels`` value for a layer of ``n_channels`` channels.

    ``"all"``; ``"START-STOP"`` (stop exclusive, clipped to the layer); or a list of
    ids, each of which must exist in the layer (a clear ValueError otherwise).
    """
    if selection is None or selection == "all":
        return list(range(n_channels))
    if isinstance(selection, str):
        start, sep, stop = selection.partition("-")
        if not sep or not start.isdigit() or not stop.isdigit() or int(start) >= int(stop):
            raise ValueError(f"featurevis.channels: {selection!r} is not 'all', 'START-STOP' "
                             "(START < STOP) or a list of channel ids")
        return list(range(int(start), min(int(stop), n_channels)))
    ids = sorted({int(c) for c in selection})
    bad = [c for c in ids if not 0 <= c < n_channels]
    if bad:
        raise ValueError(f"featurevis.channels: channel(s) {bad} do not exist in layer {layer!r} "
                         f"({n_channels} channels, ids 0..{n_channels - 1})")
    return ids


def plan_shards(selection, n_channels: int, channels_per_job: int,
                layer: str = "?") -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` id ranges of ``channels_per_job`` ids holding selected channels."""
    if channels_per_job < 1:
        raise ValueError(f"featurevis.channels_per_job must be >= 1, got {channels_per_job}")
    chosen = parse_channels(selection, n_channels, layer)
    starts = sorted({c // channels_per_job * channels_per_job for c in chosen})
    return [(s, min(s + channels_per_job, n_channels)) for s in starts]


def shard_channels(selection, n_channels: int, start: int, stop: int, layer: str = "?") -> list[int]:
    """The selected channel ids inside ``[start, stop)``."""
    return [c for c in parse_channels(selection, n_channels, layer) if start <= c < stop]


def run_settings(featurevis_config: Mapping) -> dict:
    """The render settings in the config's ``featurevis`` section, defaults filled in.

    Which layers and channels, and how they are split into jobs, are left out: they
    do not change any channel's image, and every shard of a run must hash the same.
    """
    return {k: featurevis_config.get(k, v) for k, v in DEFAULT_SETTINGS.items()}


# ---------------------------------------------------------------------------------
# Rendering (torch)
# ---------------------------------------------------------------------------------

def target_rank(means, channels):
    """``means: Tensor[N, C]``, ``channels: Tensor[N]`` -> ``(activation [N], rank [N])``.

    Rank 1 = no channel of the layer has a larger spatial mean on the item's image.
    """
    import torch
    own = means.gather(1, channels.view(-1, 1))
    return own[:, 0], 1 + (means > own).sum(dim=1).to(torch.int32)


def measure_stored(model, layer: str, images, channels: Sequence[int]):
    """Quantise ``images [N, 3, H, W]`` as stored and measure each target channel on them.

    Returns ``(uint8 [N, H, W, 3], activation [N], rank [N])`` with activation and rank
    taken on the stored uint8 image, so that anyone can recompute them from the store.
    """
    import torch

    from pipeline.images.dataset import to_uint8
    from pipeline.optvis.render import activations

    stored = to_uint8(images)
    again = torch.from_numpy(stored).permute(0, 3, 1, 2).float() / 255
    means = activations(model, again, [layer])[layer].mean(dim=(-2, -1)).cpu()
    activation, rank = target_rank(means, torch.tensor(list(channels)))
    return stored, activation.numpy(), rank.numpy()


def render_batch(model, layer: str, channels: Sequence[int], settings: Mapping, *,
                 progress: bool = False) -> dict[str, np.ndarray]:
    """Render ``channels`` of ``layer`` together; numpy arrays for the shard writer.

    Returns ``images [k, H, W, 3]``, ``value``, ``activation``, ``rank [k]``, ``curve [k, P]``
    and, as the settings ask, ``diversity_images [k, D, H, W, 3]``,
    ``diversity_activation [k, D]``, ``negative_images``, ``negative_activation``.
    """
    from pipeline.optvis import objectives as obj
    from pipeline.optvis.render import render

    common = dict(steps=settings["steps"], size=settings["image_size"], param=settings["param"],
                  lr=settings["lr"], seed=settings["seed"], transforms=settings["transforms"],
                  curve_points=settings["curve_points"],
                  relu_override_steps=settings["relu_override_steps"], progress=progress)
    k, channels = len(channels), list(channels)
    each_channel = obj.per_item([obj.channel(layer, c) for c in channels])

    main = render(model, each_channel, k, item_keys=channels, **common)
    images, activation, rank = measure_stored(model, layer, main.images, channels)
    out = {"images": images, "value": main.values.numpy(), "activation": activation,
           "rank": rank, "curve": main.curve.T}

    d = int(settings["diversity"])
    if d > 1:
        repeated = [c for c in channels for _ in range(d)]
        objective = (obj.per_item([obj.channel(layer, c) for c in repeated])
                     - settings["diversity_weight"] * obj.diversity(layer, group_size=d))
        diverse = render(model, objective, k * d,
                         item_keys=[("diversity", c, i) for c in channels for i in range(d)], **common)
        images, activation, _ = measure_stored(model, layer, diverse.images, repeated)
        size = settings["image_size"]
        out["diversity_images"] = images.reshape(k, d, size, size, 3)
        out["diversity_activation"] = activation.reshape(k, d)

    if settings["negatives"]:
        negative = render(model, -each_channel, k,
                          item_keys=[("negative", c) for c in channels], **common)
        out["negative_images"], out["negative_activation"], _ = measure_stored(
            model, layer, negative.images, channels)
    return out


def batches(channels: Sequence[int], batch_size: int, diversity: int = 1) -> list[list[int]]:
    """Consecutive groups of channels; a diverse set of D images counts D items."""
    per_batch = max(1, int(batch_size) // max(1, int(diversity)))
    return [list(channels[i:i + per_batch]) for i in range(0, len(channels), per_batch)]


def run_shard(out_path: str, *, model_name: str, weights: str, layer: str, start: int,
              stop: int, selection, settings: Mapping, device="cpu") -> None:
    """Render the selected channels of ``layer`` in ``[start, stop)`` into a shard file."""
    from tqdm.auto import tqdm

    from pipeline.model import load_model
    from pipeline.optvis.render import curve_steps
    from pipeline.optvis.speedup import speed_up
    from pipeline.store.featurevis import shard_writer

    settings = {**DEFAULT_SETTINGS, **settings}
    model = load_model(model_name, weights=weights, device=device)
    speed_up(model)
    info = model.layer(layer)
    channels = shard_channels(selection, info.channels, start, stop, layer)
    if not channels:
        raise ValueError(f"shard {layer} {start}-{stop}: no selected channel in this range "
                         f"(selection {selection!r}, layer has {info.channels} channels)")
    log.info("featurevis %s channels %d-%d (%d channels) on %s: %s", info.name, start, stop,
             len(channels), device, settings)
    stored = {**settings, "model": {"name": model_name, "weights": weights}}
    with shard_writer(out_path, layer=info.name, layer_channels=info.channels, channels=channels,
                      start=start, stop=stop, image_size=settings["image_size"],
                      curve_steps=curve_steps(settings["steps"], settings["curve_points"]),
                      diversity=settings["diversity"], negatives=settings["negatives"],
                      settings=stored, model_checksum=model.checksum) as writer:
        bar = tqdm(total=len(channels), desc=f"{info.name} {start}-{stop}", unit="ch",
                   mininterval=5.0)
        for group in batches(channels, settings["batch_size"], settings["diversity"]):
            writer.write(group, render_batch(model, info.name, group, settings, progress=True))
            bar.update(len(group))
        bar.close()
    log.info("wrote %s", out_path)
