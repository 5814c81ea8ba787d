"""A scores store (scores.h5) from known columns, written by the store's own writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.store.scores import LayerScores, merge_files, write_layer_file
from tests.helpers.provenance import record

# Every column of a scores table (pipeline/store/scores.py): the scores, then the extras.
FLOAT_COLUMNS = (
    "strength",
    "specificity_margin",
    "selectivity",
    "clarity",
    "clarity_gain",
    "polysemanticity",
    "diversity_disagreement",
    "path_similarity",
    "label_precision",
    "fires_images",
    "fires_positions",
    "visualization_max",
    "dataset_max",
)
INT_COLUMNS = ("image_rank", "groups", "selectivity_class")


def write_scores_store(run: Path, layers: dict[str, dict], clarity_random: float = 0.5) -> Path:
    """``run/scores.h5`` with one table per layer: ``layers`` maps a layer to its columns
    (name -> one value per channel; a missing float column is NaN, int -1 or 0, path_flag
    False), written part by part and merged as the ``scores`` job does."""
    run = Path(run)
    settings = record({"examples": 4}, stage="scores")
    parts = {}
    for layer, given in layers.items():
        channels = len(next(iter(given.values())))
        columns = {"channel": np.arange(channels)}
        for name in FLOAT_COLUMNS:
            columns[name] = np.asarray(given.get(name, [np.nan] * channels), np.float64)
        for name in INT_COLUMNS:
            columns[name] = np.asarray(given.get(name, [0 if name == "groups" else -1] * channels), np.int64)
        columns["path_flag"] = np.asarray(given.get("path_flag", [False] * channels), bool)
        found = LayerScores(
            columns=columns,
            path_similarity=np.zeros((channels, 0), np.float32),
            path_floor=np.zeros((channels, 0), np.float32),
            path_layers=[],
            clarity_random=clarity_random,
            selectivity_classes="predicted",
            embedding_layer=layer,
            image_size=8,
        )
        parts[layer] = write_layer_file(
            run / "scores" / "parts" / f"{layer}.h5", layer, found, settings, "sha256:x"
        )
    return merge_files(parts, run / "scores.h5", settings, "sha256:x")
