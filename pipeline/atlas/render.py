"""The atlas's render jobs: each cell's icon, a feature visualization of its mean vector.

As in the Activation Atlas article, a cell is drawn with the ``direction`` objective on its
mean activation vector with ``cossim_pow`` 2 (the dot product times the cosine squared,
which rewards the vector's direction more than its size). A job renders one range of one
level's cells, in the level's cell order, with the feature-visualization engine and the
run's preset schedule for the layer's stride (``atlas.steps`` and ``atlas.image_size``
override it), and writes them with :func:`pipeline.store.atlas.write_icons`.

Each icon is seeded by its cell index, so the icons do not depend on how the cells were
split into jobs (``atlas.cells_per_job``).
"""

from __future__ import annotations

import logging
import os

from pipeline.atlas.settings import AtlasSettings
from pipeline.featurevis.presets import Schedule, layer_stride
from pipeline.featurevis.settings import FeaturevisSettings
from pipeline.model.spec import ModelSpec

log = logging.getLogger(__name__)

COSSIM_POW = 2.0  # the article's icons (Lucid's activation-atlas notebooks)


def icon_schedule(
    settings: AtlasSettings, featurevis: FeaturevisSettings, stride: int, channels: int | None = None
) -> Schedule:
    """How the cells of a layer of ``stride`` and ``channels`` are rendered: the featurevis
    preset's schedule, with ``atlas.steps`` and ``atlas.image_size`` (at least two strides)
    when set."""
    return featurevis.icon_schedule(stride, settings.steps, settings.image_size, channels)


def icons_provenance(settings: AtlasSettings, featurevis: FeaturevisSettings, model: ModelSpec):
    """What decides the icons, recorded and hashed alike by every icon file of a run: the
    atlas_render rule's params (the atlas's and the featurevis ICON_KEYS), the preset's
    rules spelled out (with them, the schedule at any stride), the transformations and
    the objective's ``cossim_pow``."""
    from pipeline.store import provenance

    return provenance(
        stage="atlas.icons",
        settings={
            "atlas": settings.subset(AtlasSettings.ICON_KEYS),
            "featurevis": featurevis.subset(FeaturevisSettings.ICON_KEYS),
        },
        model=model.to_dict(),
        derived={**featurevis.derived(), "cossim_pow": COSSIM_POW},
    )


def run_atlas_render(
    settings: AtlasSettings,
    featurevis: FeaturevisSettings,
    model: ModelSpec,
    layout: str | os.PathLike,
    layer: str,
    level: int,
    cells: range,
    output: str | os.PathLike,
) -> None:
    """Render the icons of the ``cells`` (a range of indices) of ``layer``'s level ``level``
    (its grid side) from the layout file ``layout`` into the icon file ``output``."""
    import torch

    from pipeline.featurevis.render import render_directions, render_options
    from pipeline.model.registry import load_model_matching
    from pipeline.optvis.speedup import speed_up
    from pipeline.store.atlas import AtlasStore, write_icons

    start, stop = cells.start, cells.stop
    with AtlasStore(layout) as store:
        level_cells = store.cells(layer, level)
        checksum = store.model_checksum
        if not 0 <= start < stop <= len(level_cells):
            raise ValueError(
                f"{layout}: {layer} level {level} has {len(level_cells)} cells; cannot render {start}-{stop}"
            )
        vectors = torch.from_numpy(level_cells.mean[start:stop].astype("float32"))
    loaded = load_model_matching(model, checksum, layout)
    speed_up(loaded)
    info = loaded.layer(layer)
    stride = layer_stride(loaded.input_size, info.height)
    schedule = icon_schedule(settings, featurevis, stride, info.channels)
    options = render_options(featurevis, schedule)
    log.info(
        "atlas %s level %d cells %d-%d on %s: %d steps at %d px (preset %s)",
        info.name,
        level,
        start,
        stop,
        loaded.device,
        schedule.steps,
        schedule.image_size,
        featurevis.preset,
    )
    icons = render_directions(
        loaded,
        info.name,
        vectors,
        options,
        batch=schedule.batch_size,
        cossim_pow=COSSIM_POW,
        first_key=start,
        progress=f"atlas {info.name} {level}",
    )
    record = icons_provenance(settings, featurevis, model)
    write_icons(output, info.name, level, start, stop, icons, record, checksum)
    log.info("wrote %s", output)
