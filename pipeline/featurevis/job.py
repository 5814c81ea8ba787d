"""The workflow's feature-visualization jobs: render one shard, merge the shards.

Each job gets the stage's settings and the :class:`~pipeline.model.ModelSpec`, loads
its own model, and writes one file through :mod:`pipeline.store.featurevis`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence

from pipeline.featurevis.plan import batches, shard_channels
from pipeline.featurevis.presets import layer_stride
from pipeline.featurevis.settings import FeaturevisSettings
from pipeline.model.spec import ModelSpec
from pipeline.store import provenance
from pipeline.store.featurevis import (
    OUTPUT,
    PRE_ACTIVATION,
    FeatureVisStore,
    ShardLayout,
    merge_shards,
    shard_writer,
)

log = logging.getLogger(__name__)


def run_featurevis_shard(
    settings: FeaturevisSettings,
    model: ModelSpec,
    layer: str,
    start: int,
    stop: int,
    output: str | os.PathLike,
) -> None:
    """Render the selected channels of ``layer`` in ``[start, stop)`` into the shard ``output``."""
    # torch only here: the merge below needs none.
    from tqdm.auto import tqdm

    from pipeline.featurevis.render import exact_filters, render_batch
    from pipeline.optvis.speedup import speed_up

    loaded = model.load()
    speed_up(loaded)
    info = loaded.layer(layer)
    stride = layer_stride(loaded.input_size, info.height)
    schedule = settings.schedule(stride, info.channels)
    extra_schedule = settings.extra_schedule(stride, info.channels)
    channels = shard_channels(settings.channels, info.channels, start, stop, layer)
    if not channels:
        raise ValueError(
            f"shard {layer} {start}-{stop}: no selected channel in this range "
            f"(selection {settings.channels!r}, layer has {info.channels} channels)"
        )
    # Every shard of the run records (and hashes) the run's settings; this layer is
    # rendered with its own (no extra images unless it is one of extra_layers).
    recorded = provenance(
        stage="featurevis",
        settings=settings.subset(FeaturevisSettings.SHARD_KEYS),
        model=model.to_dict(),
        derived=settings.derived(),
    )
    settings = settings.for_layer(info.name)
    _log_shard(info, (start, stop), channels, loaded.device, settings, stride, schedule, recorded)
    # A layer rendered exactly (affine in the image) also stores its channels' filters.
    filters = exact_filters(loaded, info.name, settings, schedule)
    layout = _shard_layout(info, channels, (start, stop), settings, schedule, extra_schedule)
    if filters is not None:
        layout = dataclasses.replace(layout, filter_shape=filters.shape[1:3])
        log.info("%s is rendered exactly: storing its %dx%d filters", info.name, *filters.shape[1:3])
    with shard_writer(output, layout, settings=recorded, model_checksum=loaded.checksum) as writer:
        bar = tqdm(total=len(channels), desc=f"{info.name} {start}-{stop}", unit="ch", mininterval=5.0)
        for group in batches(channels, schedule.batch_size, settings.diversity):
            rendered = render_batch(
                loaded, info.name, group, settings, schedule, extra_schedule=extra_schedule, progress=True
            )
            if filters is not None:
                rendered["filters"] = filters[group]
            writer.write(group, rendered)
            bar.update(len(group))
        bar.close()
    log.info("wrote %s", output)


def _log_shard(info, bounds, channels, device, settings, stride, schedule, recorded) -> None:
    """What the shard renders and how, in its job's log."""
    start, stop = bounds
    log.info(
        "featurevis %s channels %d-%d (%d channels) on %s: preset %s at stride %d: %s; settings %s",
        info.name,
        start,
        stop,
        len(channels),
        device,
        settings.preset,
        stride,
        schedule,
        recorded,
    )
    if info.cap:
        log.info(
            "%s ends in %s: rendering its %s",
            info.name,
            info.cap,
            "pre-activation" if settings.pre_activation else "output",
        )


def _shard_layout(info, channels, bounds, settings, schedule, extra_schedule) -> ShardLayout:
    """The shard file's layout: its layer, channels and range, and how they were rendered."""
    from pipeline.optvis.render import curve_steps

    start, stop = bounds
    return ShardLayout(
        layer=info.name,
        layer_channels=info.channels,
        channels=channels,
        start=start,
        stop=stop,
        image_size=schedule.image_size,
        curve_steps=curve_steps(schedule.steps, settings.curve_points),
        diversity=settings.diversity,
        negatives=settings.negatives,
        neurons=settings.neurons,
        tensor=PRE_ACTIVATION if settings.pre_activation and info.cap else OUTPUT,
        cap=info.cap or "",
        preset=settings.preset,
        schedule=schedule.to_dict(),
        extra_schedule=extra_schedule.to_dict(),
    )


def merge_featurevis(shards: Sequence[str | os.PathLike], output: str | os.PathLike) -> None:
    """Merge the shards into the run's store ``output`` and log each layer's rank-1 share."""
    merge_shards(list(shards), output)
    with FeatureVisStore(output) as store:
        for layer, row in store.summary().items():
            log.info(
                "%s: %d of %d channels rendered (%s, %s steps at %s px); "
                "%.1f%% rank 1 among the layer's images, %.1f%% rank 1 among its channels",
                layer,
                row["rendered"],
                row["layer_channels"],
                row["preset"],
                row["steps"],
                row["image_size"],
                100 * row["image_rank1_fraction"],
                100 * row["rank1_fraction"],
            )
