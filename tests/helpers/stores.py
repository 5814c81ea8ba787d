"""Activation stores built from known data: shards, the reduced store, and the values to expect.

The fake run has two layers (``LAYERS``), four classes (``CLASSES``; "bird" is never
predicted) and 17 images in four shards of ``SIZES`` rows (one skipped file, "broken",
listed in the second). Images are files ``<photos>/img<row>.jpg``; odd rows are labelled
"dog". :func:`build_store` writes the shards and reduces them into ``activations.h5``;
:func:`brute_topk` is the top-k the reduction must find.
"""

import math

import numpy as np
import torch

from pipeline.extract.reduce_job import reduce_store
from pipeline.extract.settings import ExtractSettings
from pipeline.model.receptive_field import ReceptiveField
from pipeline.store.activations import ShardLayout, ShardSet, reduced_writer, shard_writer
from tests.helpers.provenance import record

LAYERS = [
    {"name": "early", "channels": 3, "height": 4, "width": 4},
    {"name": "late", "channels": 2, "height": 2, "width": 2},
]
CLASSES = ["cat", "dog", "fish", "bird"]
SIZES = (5, 7, 1, 4)  # rows per shard; the third shard is a single image
SIZE = 8  # input size of the fake model


class Summary:
    def __init__(self, layers, top_ids, top_logits):
        self.layers, self.top_ids, self.top_logits = layers, top_ids, top_logits

    def __len__(self):
        return len(self.top_ids)


class Record:
    def __init__(self, image_id, label=None, photos="/photos"):
        self.image_id, self.path, self.label = image_id, f"{photos}/{image_id}.jpg", label


def fake_data(seed=0):
    """Per-image arrays with many ties (values from a small set) and one NaN."""
    rng = np.random.default_rng(seed)
    n = sum(SIZES)
    data = {}
    for layer in LAYERS:
        c, h, w = layer["channels"], layer["height"], layer["width"]
        maxima = rng.choice([0.0, 0.5, 1.0, 2.0], size=(n, c)).astype(np.float32)
        data[layer["name"]] = {
            "max": maxima,
            "mean": (maxima / 2).astype(np.float32),
            "argmax_y": rng.integers(0, h, (n, c)).astype(np.int16),
            "argmax_x": rng.integers(0, w, (n, c)).astype(np.int16),
            "min": rng.choice([-1.0, -0.5, 0.0, 0.5], size=(n, c)).astype(np.float32),
            "argmin_y": rng.integers(0, h, (n, c)).astype(np.int16),
            "argmin_x": rng.integers(0, w, (n, c)).astype(np.int16),
            "attr_predicted": rng.normal(size=(n, c)).astype(np.float32),
        }
    data["early"]["max"][3, 1] = np.nan
    data["late"]["max"][:, 1] = 1.0  # a channel where every image ties
    top_ids = np.stack([rng.integers(0, 3, n), np.full(n, 3)], 1).astype(np.int32)  # never "bird"
    return data, top_ids, rng.normal(size=(n, 2)).astype(np.float32)


def write_shards(
    folder,
    data,
    top_ids,
    top_logits,
    settings=None,
    skipped=("broken",),
    photos="/photos",
    model_checksum="sha256:fake",
    sizes=SIZES,
):
    """One shard file per ``sizes`` block (rows per shard; they must sum to the rows of
    ``data``); images are files ``<photos>/<id>.jpg``."""
    paths, start = [], 0
    for i, size in enumerate(sizes):
        stop = start + size
        path = folder / "extract" / "shards" / f"{start}-{stop}.h5"
        layout = ShardLayout(
            layers=LAYERS, quantities=list(data["early"]), class_names=CLASSES, start=start, stop=stop, top=2
        )
        with shard_writer(
            path,
            layout,
            settings=record(settings or {"layers": ["early", "late"]}),
            model_checksum=model_checksum,
        ) as writer:
            rows = slice(start, stop)
            records = [Record(f"img{j:02d}", "dog" if j % 2 else None, photos) for j in range(start, stop)]
            writer.append(
                records,
                [1 if j % 2 else -1 for j in range(start, stop)],
                Summary(
                    {
                        layer: {q: torch.from_numpy(v[rows]) for q, v in qs.items()}
                        for layer, qs in data.items()
                    },
                    torch.from_numpy(top_ids[rows]),
                    torch.from_numpy(top_logits[rows]),
                ),
            )
            if i == 1:
                writer.skip(
                    [
                        type("S", (), {"image_id": s, "path": f"{photos}/{s}.jpg", "reason": "not an image"})
                        for s in skipped
                    ]
                )
        paths.append(path)
        start = stop
    return paths


def fake_fields():
    """Layer "early": 2-pixel stride, 4-pixel field; "late": each row/col sees half the image."""
    early = torch.tensor([[max(0, 2 * i - 1), min(SIZE, 2 * i + 3)] for i in range(4)])
    late = torch.tensor([[0, 5], [3, 8]])
    return {"early": ReceptiveField(early, early, SIZE), "late": ReceptiveField(late, late, SIZE)}


def load_image(row):
    """Image ``row`` is a flat colour whose red channel encodes the row."""
    image = torch.full((3, SIZE, SIZE), 0.25)
    image[0] = row / 100
    return image


def fake_layer_maps(images):
    """Every layer's activations on ``images [B, 3, S, S]``: channel ``c`` of the image of
    row ``r`` (see :func:`load_image`) is ``r + c / 10`` everywhere."""
    rows = (images[:, 0, 0, 0] * 100).round()
    return {
        layer["name"]: (rows[:, None] + torch.arange(layer["channels"]) / 10)[:, :, None, None].expand(
            -1, -1, layer["height"], layer["width"]
        )
        for layer in LAYERS
    }


def build_store(folder, k=4, seed=0, photos="/photos", label_settings=None):
    """Shards and a reduced store in ``folder`` from fake data (channels labelled with
    ``label_settings``, default the defaults); returns (store path, data, top_ids)."""
    data, top_ids, top_logits = fake_data(seed)
    shards = ShardSet(write_shards(folder, data, top_ids, top_logits, photos=photos))
    out = folder / "activations.h5"
    with reduced_writer(
        out,
        shards,
        settings=record({"top_k": k, "attribution": "gradient"}),
        model={"name": "fake", "weights": "random"},
        aliases={"mixed_early": "early"},
    ) as writer:
        reduce_store(
            shards,
            writer,
            fake_fields(),
            load_image,
            ExtractSettings(top_k=k, histogram_bins=4, thumbnail_size=4, map_size=4),
            layer_maps=fake_layer_maps,
            progress=False,
            label_settings=label_settings,
        )
    return out, data, top_ids


def brute_topk(column, k):
    # NaN ranks last: its key is +inf after negation.
    key = [(math.inf if math.isnan(v) else -float(v), i) for i, v in enumerate(column)]
    return [i for _, i in sorted(key)[:k]]


def per_image_store(folder, layers, ids=None, model="fake", weights="random"):
    """A reduced store holding only per-image arrays (no reduction ran: what a comparison
    reads), written by the real shard and store writers into ``folder`` (one shard).

    ``layers``: ``{name: {"max": [N, C], "mean": [N, C]}}``; ``ids``: the N image ids
    (default ``img00``, ...). Returns the store's path, ``folder/activations.h5``."""
    first = next(iter(layers.values()))["max"]
    n = len(first)
    ids = ids if ids is not None else [f"img{j:02d}" for j in range(n)]
    described = [
        {"name": name, "channels": q["max"].shape[1], "height": 1, "width": 1} for name, q in layers.items()
    ]
    layout = ShardLayout(
        layers=described, quantities=["max", "mean"], class_names=CLASSES, start=0, stop=n, top=2
    )
    shard = folder / "extract" / "shards" / f"0-{n}.h5"
    with shard_writer(shard, layout, settings=record({"layers": list(layers)}), model_checksum="") as writer:
        writer.append(
            [Record(image_id) for image_id in ids],
            [-1] * n,
            Summary(
                {
                    name: {q: torch.from_numpy(np.asarray(v, np.float32)) for q, v in qs.items()}
                    for name, qs in layers.items()
                },
                torch.zeros((n, 2), dtype=torch.int32),
                torch.zeros((n, 2), dtype=torch.float32),
            ),
        )
    out = folder / "activations.h5"
    with reduced_writer(
        out,
        ShardSet([shard]),
        settings=record({"top_k": 1}),
        model={"name": model, "weights": weights},
        aliases={},
    ):
        pass
    return out
