"""The workflow's ``scores`` job: the stores in, ``scores.h5`` out.

Layer by layer (the extraction's layers, in execution order): read what the stores hold
(top examples and their crops, per-image maxima, labels from ``activations.h5``; images,
responses and ``image_rank`` from ``featurevis.h5``), run the model once on the layer's
crops and visualizations at the visualizations' size (:mod:`pipeline.scores.embed`),
compute every score (:mod:`pipeline.scores.compute`) and write the layer's part file. A
part made with the same settings and weights is kept, so a killed job resumes at the
next layer. The parts are then copied into the store.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.model.spec import ModelSpec
from pipeline.scores import compute
from pipeline.scores.settings import ScoresSettings
from pipeline.store import ProvenanceRecord, RunFiles, provenance
from pipeline.store.activations_reader import ActivationsStore
from pipeline.store.scores import LayerScores, merge_files, part_matches, write_layer_file

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LayerInputs:
    """What one layer's scores are computed from, read from the stores (and the model's
    vectors of its images). ``C`` channels, ``k`` top examples, ``P`` earlier layers."""

    channels: int
    top_rows: np.ndarray  # int64 [C, k]
    top_value: np.ndarray  # float32 [C, k]
    top_thumbnail: np.ndarray  # int [C, k]: index into crop_vectors' rows (via crop_index)
    top_map: np.ndarray | None  # [C, k, m, m]
    maxima: np.ndarray  # float32 [N, C]
    classes: np.ndarray  # int [N]: each image's class for the selectivity (-1 unknown)
    class_kind: str  # "label" or "predicted"
    truth: np.ndarray  # int [N]: true classes (-1 unknown)
    label_classes: list  # per channel: the class ids under its label, or None
    crop_index: dict  # thumbnail index -> row of the crop arrays
    crop_vectors: list  # per earlier layer: [M', C_l]
    crop_embedding: np.ndarray  # [M', d]
    pool: np.ndarray  # rows (of the crop arrays) of the random natural crops
    vis_channels: np.ndarray | None  # rendered channel ids [K]
    vis_vectors: list | None  # per earlier layer: [K, C_l]
    vis_max: np.ndarray | None  # [K, C]: spatial max of the layer's output on each visualization
    image_rank: np.ndarray | None  # [K]
    responses: np.ndarray | None  # [K, C]
    diverse_embedding: np.ndarray | None  # [K, D, d]


# One pass over the channels fills every column: splitting it would pass the same dozen
# arrays between functions.
def layer_scores(inputs: LayerInputs, settings: ScoresSettings) -> dict[str, np.ndarray]:
    """Every score column of one layer (``[C]`` each, ``channel`` first) and the path arrays
    (``path_similarity``, ``path_floor`` ``[C, P]``), from its :class:`LayerInputs`."""
    c = inputs.channels
    valid = (inputs.top_rows >= 0) & np.isfinite(inputs.top_value)
    valid[:, settings.examples :] = False
    cols = {name: np.full(c, np.nan) for name in ("visualization_max", "strength", "specificity_margin")}
    cols["image_rank"] = np.full(c, -1, np.int64)
    cols["dataset_max"] = np.where(valid[:, 0], inputs.top_value[:, 0], np.nan)
    vis_row = np.full(c, -1)
    if inputs.vis_channels is not None:
        vis_row[inputs.vis_channels] = np.arange(len(inputs.vis_channels))
        rendered = inputs.vis_channels
        cols["visualization_max"][rendered] = inputs.vis_max[np.arange(len(rendered)), rendered]
        if inputs.image_rank is not None:
            cols["image_rank"][rendered] = inputs.image_rank
        if inputs.responses is not None:
            cols["specificity_margin"][rendered] = compute.specificity_margin(inputs.responses, rendered)
    cols["strength"] = compute.strength(cols["visualization_max"], cols["dataset_max"])
    cols["selectivity"], cols["selectivity_class"] = compute.class_selectivity(inputs.maxima, inputs.classes)
    clarity_random = compute.mean_pairwise_cosine(inputs.crop_embedding[inputs.pool])
    for name in ("clarity", "polysemanticity", "diversity_disagreement", "path_similarity"):
        cols[name] = np.full(c, np.nan)
    cols["groups"], cols["path_flag"] = np.zeros(c, np.int64), np.zeros(c, bool)
    earlier = len(inputs.crop_vectors)
    similarity, floor = np.full((c, earlier), np.nan), np.full((c, earlier), np.nan)
    natural = [vectors[inputs.pool] for vectors in inputs.crop_vectors]
    for channel in range(c):
        rows = [inputs.crop_index[int(t)] for t in inputs.top_thumbnail[channel, valid[channel]]]
        examples = inputs.crop_embedding[rows]
        cols["clarity"][channel] = compute.clarity(examples)
        cols["polysemanticity"][channel], cols["groups"][channel] = compute.polysemanticity(examples)
        row = vis_row[channel]
        if row < 0:
            continue
        if inputs.diverse_embedding is not None:
            cols["diversity_disagreement"][channel] = compute.disagreement(inputs.diverse_embedding[row])
        if earlier:
            similarity[channel], floor[channel], cols["path_flag"][channel] = compute.path_check(
                [v[row] for v in inputs.vis_vectors], [v[rows] for v in inputs.crop_vectors], natural
            )
            with np.errstate(invalid="ignore"):
                cols["path_similarity"][channel] = (
                    np.nanmean(similarity[channel]) if np.isfinite(similarity[channel]).any() else np.nan
                )
    cols["clarity_gain"] = cols["clarity"] - clarity_random
    cols["label_precision"] = compute.label_precision(inputs.label_classes, inputs.top_rows, inputs.truth)
    cols["fires_images"], cols["fires_positions"] = compute.sparsity(
        inputs.maxima,
        None if inputs.top_map is None else inputs.top_map[:, : settings.examples],
        valid[:, : settings.examples],
    )
    from pipeline.scores.definitions import SCORE_KEYS

    ordered = {"channel": np.arange(c, dtype=np.int64)}
    for name in (*SCORE_KEYS, "visualization_max", "dataset_max", "selectivity_class"):
        ordered[name] = cols[name]
    return {
        "columns": ordered,
        "path_similarity": similarity,
        "path_floor": floor,
        "clarity_random": clarity_random,
    }


def recorded_settings(
    settings: ScoresSettings, model, layers: Sequence[str], inputs: dict
) -> ProvenanceRecord:
    """What determines every scores file of a run: the settings that decide values, the
    model, the extracted layers, and the stores it was computed from."""
    return provenance(
        stage="scores",
        settings=settings.subset(ScoresSettings.RECORD_KEYS),
        model=model,
        derived={"layers": list(layers), "embedding": "the last layer's spatial mean"},
        inputs=inputs,
    )


def run_scores(
    settings: ScoresSettings,
    model: ModelSpec,
    activations: str | os.PathLike,
    featurevis: str | os.PathLike | None,
    output: str | os.PathLike,
    *,
    progress: bool = True,
) -> dict:
    """Every extracted layer's scores into ``output`` (``scores.h5``); part files go to
    ``scores/parts/`` beside it. ``featurevis`` may be None (or miss layers): the scores of
    the visualizations are then NaN. Returns counts for the log."""
    from pipeline.model.registry import load_model_matching

    output = Path(output)
    run = RunFiles(output.parent)
    fv = _open_featurevis(featurevis)
    try:
        with ActivationsStore(activations) as store:
            loaded = load_model_matching(model, str(store.model.get("checksum", "")), activations)
            if fv is not None and fv.model_checksum != loaded.checksum:
                raise ValueError(f"{featurevis}: made with other model weights than {activations}")
            names = list(store.layers)
            inputs = {"extraction": store.config_hash}
            if fv is not None:
                inputs["featurevis"] = fv.config_hash
            record = recorded_settings(settings, loaded.describe(), names, inputs)
            parts, computed = {}, 0
            for index, layer in enumerate(_progress(names, progress)):
                part = run.scores_part(layer)
                parts[layer] = part
                if part_matches(part, record, loaded.checksum):
                    log.info("scores of %s: kept %s (same settings)", layer, part)
                    continue
                found = _layer(settings, loaded, store, fv, layer, names[:index])
                write_layer_file(part, layer, found, record, loaded.checksum)
                computed += 1
            merge_files(parts, output, record, loaded.checksum)
    finally:
        if fv is not None:
            fv.close()
    log.info(
        "scores of %d layers (%d computed, %d kept) in %s",
        len(names),
        computed,
        len(names) - computed,
        output,
    )
    return {"layers": len(names), "computed": computed}


def _open_featurevis(path):
    if path is None or not Path(path).is_file():
        return None
    from pipeline.store.featurevis import FeatureVisStore

    return FeatureVisStore(path)


def _progress(names, enabled: bool):
    if not enabled:
        return names
    from tqdm import tqdm

    return tqdm(names, desc="scores", unit="layer")


# Reading the stores' inputs of one layer in one place (one LayerInputs): long, but flat.
def _layer(settings, loaded, store, fv, layer: str, earlier: list[str]) -> LayerScores:
    """Read one layer's inputs, run the model on its images, compute its scores."""
    from pipeline.scores import embed

    embedding_layer = loaded.layers[-1].name
    top, channels = store.top(layer), store.layers[layer]["channels"]
    has_vis = fv is not None and layer in fv.layers
    size = int(fv.images(layer).shape[1]) if has_vis else int(store.thumbnails(layer).shape[1])
    # The crops: every used top example's, and a seeded random sample of the layer's crops.
    thumbnails = store.thumbnails(layer)
    used = top.thumbnail[:, : settings.examples][(top.row[:, : settings.examples] >= 0)]
    rng = np.random.default_rng([settings.seed, len(earlier)])
    pool_ids = rng.choice(len(thumbnails), min(settings.random_examples, len(thumbnails)), replace=False)
    wanted = np.unique(np.concatenate([used.astype(np.int64), pool_ids.astype(np.int64)]))
    crops = thumbnails[wanted.tolist()] if len(wanted) else np.zeros((0, size, size, 3), np.uint8)
    tapped = [*earlier, embedding_layer]
    crop_means, _ = embed.pooled(loaded, crops, tapped, size, settings.batch_size)
    crop_index = {int(t): i for i, t in enumerate(wanted)}
    vis = {"vis_channels": None, "vis_vectors": None, "vis_max": None, "image_rank": None, "responses": None}
    diverse = None
    if has_vis:
        # Up to the layer itself only: the visualization's embedding is not used.
        vis_means, vis_max = embed.pooled(
            loaded, fv.images(layer)[()], earlier, size, settings.batch_size, layer
        )
        vis = {
            "vis_channels": fv.channels(layer).astype(np.int64),
            "vis_vectors": [vis_means[name] for name in earlier],
            "vis_max": vis_max,
            "image_rank": fv.image_rank(layer),
            "responses": fv.responses(layer),
        }
        stack = fv.diversity_images(layer)
        if stack is not None:
            k, d = stack.shape[:2]
            flat = stack[()].reshape(k * d, *stack.shape[2:])
            diverse = embed.pooled(loaded, flat, [embedding_layer], size, settings.batch_size)[0][
                embedding_layer
            ]
            diverse = diverse.reshape(k, d, -1)
    truth = np.asarray(store.images["label_class"], np.int64)
    labelled = bool((truth >= 0).any())
    inputs = LayerInputs(
        channels=channels,
        top_rows=top.row,
        top_value=top.value,
        top_thumbnail=top.thumbnail,
        top_map=top.map,
        maxima=np.asarray(store.per_image(layer, "max").compute(), np.float32),
        classes=truth if labelled else np.asarray(store.predicted_classes(), np.int64),
        class_kind="label" if labelled else "predicted",
        truth=truth,
        label_classes=_label_classes(store, layer, channels) if labelled else [None] * channels,
        crop_index=crop_index,
        crop_vectors=[crop_means[name] for name in earlier],
        crop_embedding=crop_means[embedding_layer],
        pool=np.array([crop_index[int(t)] for t in pool_ids], np.int64),
        diverse_embedding=diverse,
        **vis,
    )
    found = layer_scores(inputs, settings)
    return LayerScores(
        columns=found["columns"],
        path_similarity=found["path_similarity"],
        path_floor=found["path_floor"],
        path_layers=earlier,
        clarity_random=found["clarity_random"],
        selectivity_classes=inputs.class_kind,
        embedding_layer=embedding_layer,
        image_size=size,
    )


def _label_classes(store, layer: str, channels: int) -> list:
    """Per channel: the class ids under its label's synset, or None (no label, no attribution)."""
    from pipeline.labels.layers import layer_labels, model_hierarchy

    labels = layer_labels(store, layer)
    if labels is None:
        return [None] * channels
    hierarchy, _ = model_hierarchy(store.class_names)
    return [None if label.synset is None else hierarchy.classes_under(label.synset) for label in labels]
