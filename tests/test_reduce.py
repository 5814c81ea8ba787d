"""Reductions over shards: top-k against brute force across shard boundaries, statistics,
class attribution, thumbnails, and the merge's refusals."""
import math

import h5py
import numpy as np
import pytest
import torch

from pipeline.model.receptive_field import ReceptiveField
from pipeline.extract.reduce import channel_statistics, class_attribution, reduce_store, topk_rows
from pipeline.store import StoreError
from pipeline.store.activations import ActivationsStore, ShardSet, reduced_writer, shard_writer

LAYERS = [{"name": "early", "channels": 3, "height": 4, "width": 4},
          {"name": "late", "channels": 2, "height": 2, "width": 2}]
CLASSES = ["cat", "dog", "fish", "bird"]
SIZES = (5, 7, 1, 4)     # rows per shard; the third shard is a single image
SIZE = 8                 # input size of the fake model


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
            "max": maxima, "mean": (maxima / 2).astype(np.float32),
            "argmax_y": rng.integers(0, h, (n, c)).astype(np.int16),
            "argmax_x": rng.integers(0, w, (n, c)).astype(np.int16),
            "attr_predicted": rng.normal(size=(n, c)).astype(np.float32)}
    data["early"]["max"][3, 1] = np.nan
    data["late"]["max"][:, 1] = 1.0            # a channel where every image ties
    top_ids = np.stack([rng.integers(0, 3, n), np.full(n, 3)], 1).astype(np.int32)   # never "bird"
    return data, top_ids, rng.normal(size=(n, 2)).astype(np.float32)


def write_shards(folder, data, top_ids, top_logits, settings=None, skipped=("broken",), photos="/photos"):
    """One shard file per SIZES block; images are files ``<photos>/<id>.jpg``."""
    paths, start = [], 0
    for i, size in enumerate(SIZES):
        stop = start + size
        path = folder / "extract" / "shards" / f"{start}-{stop}.h5"
        with shard_writer(path, layers=LAYERS, quantities=list(data["early"]), capacity=size,
                          class_names=CLASSES, start=start, stop=stop,
                          settings=settings or {"layers": ["early", "late"]},
                          model_checksum="sha256:fake", top=2) as writer:
            rows = slice(start, stop)
            writer.append([Record(f"img{j:02d}", "dog" if j % 2 else None, photos) for j in range(start, stop)],
                          [1 if j % 2 else -1 for j in range(start, stop)],
                          Summary({l: {q: torch.from_numpy(v[rows]) for q, v in qs.items()}
                                   for l, qs in data.items()},
                                  torch.from_numpy(top_ids[rows]), torch.from_numpy(top_logits[rows])))
            if i == 1:
                writer.skip([type("S", (), {"image_id": s, "path": f"{photos}/{s}.jpg",
                                            "reason": "not an image"}) for s in skipped])
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


def build_store(folder, k=4, seed=0, photos="/photos"):
    """Shards and a reduced store in ``folder`` from fake data; returns (store path, data, top_ids)."""
    data, top_ids, top_logits = fake_data(seed)
    shards = ShardSet(write_shards(folder, data, top_ids, top_logits, photos=photos))
    out = folder / "activations.h5"
    with reduced_writer(out, shards, settings={"top_k": k, "attribution": "gradient"},
                        model={"name": "fake", "weights": "random"},
                        aliases={"mixed_early": "early"}) as writer:
        reduce_store(shards, writer, fake_fields(), load_image, top_k=k, bins=4,
                     thumbnail_size=4, progress=False)
    return out, data, top_ids


def brute_topk(column, k):
    # NaN ranks last: its key is +inf after negation.
    key = [(math.inf if math.isnan(v) else -float(v), i) for i, v in enumerate(column)]
    return [i for _, i in sorted(key)[:k]]


@pytest.mark.parametrize("k", [1, 3, 9, 40])
def test_topk_equals_brute_force_across_shards_with_ties(tmp_path, k):
    data, top_ids, top_logits = fake_data()
    shards = ShardSet(write_shards(tmp_path, data, top_ids, top_logits))
    for layer in LAYERS:
        values = data[layer["name"]]["max"]
        rows, found = topk_rows(shards.array(f"layers/{layer['name']}/max"), k)
        assert rows.shape == (layer["channels"], min(k, len(values)))
        for c in range(layer["channels"]):
            expected = brute_topk(values[:, c], k)
            assert rows[c].tolist() == expected
            np.testing.assert_array_equal(found[c], values[expected, c])
    # The all-ties channel takes the lowest rows, whatever the shard boundaries.
    rows, _ = topk_rows(shards.array("layers/late/max"), 6)
    assert rows[1].tolist() == [0, 1, 2, 3, 4, 5]


def test_topk_with_small_dask_chunks_matches_one_block():
    import dask.array as da
    values = np.random.default_rng(1).choice([0.0, 1.0, 3.0], size=(50, 4)).astype(np.float32)
    one = topk_rows(values, 7)
    many = topk_rows(da.from_array(values, chunks=(3, 4)), 7)
    np.testing.assert_array_equal(one[0], many[0])
    assert many[0][0].tolist() == brute_topk(values[:, 0], 7)


def test_statistics_equal_numpy(tmp_path):
    data, top_ids, top_logits = fake_data()
    shards = ShardSet(write_shards(tmp_path, data, top_ids, top_logits))
    values = data["late"]["max"].astype(np.float64)
    stats = channel_statistics(shards.array("layers/late/max"), bins=5)
    np.testing.assert_allclose(stats["mean"], values.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], values.std(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats["active_fraction"], (values > 0).mean(0))
    for c in range(2):
        edges = stats["hist_edges"][c]
        counts, _ = np.histogram(values[:, c], bins=edges)
        assert stats["hist_counts"][c].tolist() == counts.tolist()
        assert stats["hist_counts"][c].sum() == len(values)
    # A constant channel still gets a valid histogram (width-1 range).
    assert stats["hist_edges"][1, 0] == 1.0 and stats["hist_counts"][1, 0] == len(values)


def test_class_attribution_is_the_mean_over_predicted_images():
    data, top_ids, _ = fake_data()
    attr = data["early"]["attr_predicted"]
    found = class_attribution(attr, top_ids[:, 0], 4)
    for cls in range(4):
        members = top_ids[:, 0] == cls
        assert found["count"][cls] == members.sum()
        if members.any():
            np.testing.assert_allclose(found["mean"][:, cls], attr[members].mean(0), rtol=1e-5)
        else:
            assert np.isnan(found["mean"][:, cls]).all()


def test_reduced_store_holds_every_reduction(tmp_path):
    path, data, top_ids = build_store(tmp_path, k=4)
    n = sum(SIZES)
    with ActivationsStore(path) as store:
        assert store.num_images == n and store.images["image_id"][:2] == ["img00", "img01"]
        assert store.skipped["reason"] == ["not an image"]
        # Per-image arrays are stitched, not copied, and read back exactly.
        assert store.fh["layers/early/max"].is_virtual
        np.testing.assert_array_equal(store.per_image("early", "max").compute(), data["early"]["max"])
        np.testing.assert_array_equal(store.per_image("late", "argmax_x")[5:13].compute(),
                                      data["late"]["argmax_x"][5:13])
        top = store.group("early", "top")
        fields = fake_fields()["early"]
        for c in range(3):
            rows = brute_topk(data["early"]["max"][:, c], 4)
            assert top["row"][c].tolist() == rows
            ys, xs = data["early"]["argmax_y"][rows, c], data["early"]["argmax_x"][rows, c]
            assert top["y"][c].tolist() == ys.tolist() and top["x"][c].tolist() == xs.tolist()
            for j, (row, y, x) in enumerate(zip(rows, ys, xs)):
                box = fields.box(int(y), int(x))
                assert tuple(top["box"][c, j]) == box
                thumb = store.fh["layers/early/thumbnails"][top["thumbnail"][c, j]]
                assert thumb.shape == (4, 4, 3) and thumb.dtype == np.uint8
                # The crop of a flat image is that colour (grey padding aside).
                assert round(row / 100 * 255) in thumb[..., 0]
        # Deduplicated: no more thumbnails than distinct (image, box) pairs.
        assert len(store.fh["layers/late/thumbnails"]) <= 2 * 4
        classes = store.group("early", "classes")
        assert classes["count"][()].tolist() == np.bincount(top_ids[:, 0], minlength=4).tolist()
        assert -1 in classes["top_ids"][0].tolist()   # "bird" is never predicted: never a top class
        np.testing.assert_array_equal(store.group("late", "stats")["active_fraction"][1], 1.0)


def test_merge_refuses_mixed_settings_gaps_and_missing_shards(tmp_path):
    data, top_ids, top_logits = fake_data()
    paths = write_shards(tmp_path / "a", data, top_ids, top_logits)
    other = write_shards(tmp_path / "b", data, top_ids, top_logits, settings={"layers": ["other"]})
    with pytest.raises(StoreError, match="other settings.*config_hash"):
        ShardSet([paths[0], other[1], paths[2], paths[3]])
    with pytest.raises(StoreError, match="do not cover images 5-12"):
        ShardSet([paths[0], paths[2], paths[3]])
    # A missing source of a virtual dataset would silently read as fill values: refused.
    path, _, _ = build_store(tmp_path / "c")
    (tmp_path / "c" / "extract" / "shards" / "5-12.h5").unlink()
    with pytest.raises(StoreError, match="missing: extract/shards/5-12.h5"):
        ActivationsStore(path)


def test_store_moves_with_its_run_folder(tmp_path):
    path, data, _ = build_store(tmp_path / "run")
    (tmp_path / "run").rename(tmp_path / "moved")
    with ActivationsStore(tmp_path / "moved" / "activations.h5") as store:
        np.testing.assert_array_equal(store.per_image("late", "max").compute(), data["late"]["max"])


def test_unknown_shard_quantity_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown shard quantities: maxx"):
        with shard_writer(tmp_path / "s.h5", layers=LAYERS, quantities=["maxx"], capacity=1,
                          class_names=CLASSES, start=0, stop=1, settings={}, model_checksum=""):
            pass
    with h5py.File(tmp_path / "junk.h5", "w"):
        pass
    with pytest.raises(StoreError):
        ShardSet([tmp_path / "junk.h5"])


def test_a_run_where_every_image_was_bad_still_reduces(tmp_path):
    path = tmp_path / "extract" / "shards" / "0-2.h5"
    with shard_writer(path, layers=LAYERS, quantities=["max", "argmax_y", "argmax_x", "mean",
                                                       "attr_predicted"],
                      capacity=2, class_names=CLASSES, start=0, stop=2, settings={},
                      model_checksum="sha256:fake", top=2) as writer:
        writer.skip([type("S", (), {"image_id": s, "path": s, "reason": "zero-byte file"})
                     for s in ("x.jpg", "y.jpg")])
    shards = ShardSet([path])
    with reduced_writer(tmp_path / "activations.h5", shards, settings={}, model={},
                        aliases={}) as writer:
        reduce_store(shards, writer, fake_fields(), load_image, progress=False)
    with ActivationsStore(tmp_path / "activations.h5") as store:
        assert store.num_images == 0 and len(store.skipped["image_id"]) == 2
        assert store.group("early", "top")["row"].shape == (3, 0)
        assert store.per_image("late", "max").shape == (0, 2)
