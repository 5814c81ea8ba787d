"""The map-reduce over shards against brute force: top-k across shard boundaries with ties,
statistics, histograms, class attribution, correlation; thumbnails; the merge's refusals."""

import h5py
import numpy as np
import pytest

import pipeline
from pipeline.extract.crops import crop_maps, crop_thumbnail
from pipeline.extract.reduce import histogram_counts
from pipeline.extract.reduce_job import merge_layer, partial_of_shard, reduce_store
from pipeline.extract.settings import ExtractSettings
from pipeline.extract.similarity import correlation_neighbours, nearest_channels
from pipeline.labels.layers import labels_for_layer, labels_from_columns, layer_labels
from pipeline.store import StoreError
from pipeline.store.activations import ShardLayout, ShardSet, reduced_writer, shard_writer
from pipeline.store.activations_reader import ActivationsStore
from tests.helpers.provenance import record
from tests.helpers.stores import (
    CLASSES,
    LAYERS,
    SIZES,
    brute_topk,
    build_store,
    fake_data,
    fake_fields,
    load_image,
    write_shards,
)


def _merged(shards, k, bins=4):
    """Partials of each shard of ``shards``, merged per layer (MergedLayer records)."""
    singles = [ShardSet([info["path"]]) for info in shards.shards]
    partials = [partial_of_shard(s, k) for s in singles]
    offsets = np.cumsum([0] + [s.rows for s in singles])[:-1]
    fields = fake_fields()
    return {
        layer["name"]: merge_layer(
            ((p[layer["name"]], o) for p, o in zip(partials, offsets)), fields[layer["name"]], k, bins
        )
        for layer in LAYERS
    }


@pytest.mark.parametrize("k", [1, 3, 9, 40])
def test_merged_partials_equal_brute_force_across_shards_with_ties(tmp_path, k):
    data, top_ids, top_logits = fake_data()
    shards = ShardSet(write_shards(tmp_path, data, top_ids, top_logits))
    merged = _merged(shards, k)
    for layer in LAYERS:
        name, n = layer["name"], len(data[layer["name"]]["max"])
        top, bottom = merged[name].tables["top"], merged[name].tables["bottom"]
        assert top.row.shape == bottom.row.shape == (layer["channels"], min(k, n))
        for c in range(layer["channels"]):
            expected = brute_topk(data[name]["max"][:, c], k)
            assert top.row[c].tolist() == expected
            np.testing.assert_array_equal(top.value[c], data[name]["max"][expected, c])
            assert top.y[c].tolist() == data[name]["argmax_y"][expected, c].tolist()
            lowest = brute_topk(-data[name]["min"][:, c], k)
            assert bottom.row[c].tolist() == lowest
            assert bottom.x[c].tolist() == data[name]["argmin_x"][lowest, c].tolist()
    # The all-ties channel takes the lowest rows, whatever the shard boundaries.
    assert _merged(shards, 6)["late"].tables["top"].row[1].tolist() == [0, 1, 2, 3, 4, 5]


def test_statistics_classes_and_correlation_equal_numpy(tmp_path):
    data, top_ids, top_logits = fake_data()
    shards = ShardSet(write_shards(tmp_path, data, top_ids, top_logits))
    merged = _merged(shards, 4, bins=5)
    for name in ("early", "late"):
        values = data[name]["max"].astype(np.float64)
        stats = merged[name].stats
        np.testing.assert_allclose(stats.mean, np.nanmean(values, 0), rtol=1e-6)
        np.testing.assert_allclose(stats.std, np.nanstd(values, 0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(stats.active_fraction, (values > 0).mean(0))
        np.testing.assert_allclose(stats.mean_of_mean, data[name]["mean"].mean(0), rtol=1e-6)
        # Each shard counts its own images in the merged edges; the counts add up.
        counts = np.sum(
            [histogram_counts(values[rows], stats.hist_edges) for rows in (slice(0, 9), slice(9, None))],
            axis=0,
        )
        for c in range(values.shape[1]):
            column = values[:, c][~np.isnan(values[:, c])]
            edges = stats.hist_edges[c]
            assert edges[0] == column.min() and (edges[-1] == column.max() or column.min() == column.max())
            assert counts[c].tolist() == np.histogram(column, bins=edges)[0].tolist()
        # Classes: the mean attribution over the images predicted as each one.
        attr, classes = data[name]["attr_predicted"], merged[name].classes
        for cls in range(4):
            members = top_ids[:, 0] == cls
            assert classes.count[cls] == members.sum()
            if members.any():
                np.testing.assert_allclose(classes.attribution[:, cls], attr[members].mean(0), rtol=1e-5)
            else:
                assert np.isnan(classes.attribution[:, cls]).all()
        # Correlation: what the site computed from all maxima at once.
        ids, scores = correlation_neighbours(values, values.shape[1] - 1)
        found_ids, found_scores = nearest_channels(merged[name].correlation, values.shape[1] - 1)
        assert found_ids.tolist() == ids.tolist()
        np.testing.assert_allclose(found_scores, scores, rtol=1e-5)
    # A constant channel still gets a valid histogram (width-1 range) and no neighbours.
    assert merged["late"].stats.hist_edges[1, 0] == 1.0
    assert np.isnan(merged["late"].correlation[1]).all()


def _arrays(record, prefix=""):
    """``{name: array}`` of a record's fields, nested records and dicts flattened."""
    import dataclasses

    found = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        items = value.items() if isinstance(value, dict) else [("", value)]
        for key, item in items:
            name = f"{prefix}{field.name}{'.' + key if key else ''}"
            if dataclasses.is_dataclass(item):
                found.update(_arrays(item, name + "."))
            elif item is not None:
                found[name] = np.asarray(item)
    return found


def test_the_merge_does_not_depend_on_how_images_are_split_into_shards(tmp_path):
    data, top_ids, top_logits = fake_data()
    as_four = _merged(ShardSet(write_shards(tmp_path / "four", data, top_ids, top_logits)), 5)
    one = ShardSet(write_shards(tmp_path / "one", data, top_ids, top_logits, sizes=(sum(SIZES),)))
    as_one = _merged(one, 5)
    for name in as_four:
        four, single = _arrays(as_four[name]), _arrays(as_one[name])
        assert four.keys() == single.keys() and "tables.top.row" in four
        for key, value in four.items():
            if value.dtype.kind == "f":
                np.testing.assert_allclose(value, single[key], rtol=1e-6, atol=1e-7, err_msg=key)
            else:
                np.testing.assert_array_equal(value, single[key], err_msg=key)


def test_reduced_store_holds_every_reduction(tmp_path):
    path, data, top_ids = build_store(tmp_path, k=4)
    n = sum(SIZES)
    with ActivationsStore(path) as store:
        assert store.num_images == n and store.images["image_id"][:2] == ["img00", "img01"]
        assert store.skipped["reason"] == ["not an image"]
        # Per-image arrays are stitched, not copied, and read back exactly.
        with h5py.File(path, "r") as fh:
            assert fh["layers/early/max"].is_virtual
            # Deduplicated: one thumbnail per distinct (image, box) of the top and bottom examples.
            late = fh["layers/late"]
            pairs = {
                (int(r), tuple(b))
                for t in ("top", "bottom")
                for r, b in zip(late[t]["row"][()].ravel(), late[t]["box"][()].reshape(-1, 4))
            }
            assert len(late["thumbnails"]) == len(pairs)
        np.testing.assert_array_equal(store.per_image("early", "max").compute(), data["early"]["max"])
        np.testing.assert_array_equal(
            store.per_image("late", "argmax_x")[5:13].compute(), data["late"]["argmax_x"][5:13]
        )
        top = store.top("early")
        fields = fake_fields()["early"]
        for c in range(3):
            rows = brute_topk(data["early"]["max"][:, c], 4)
            assert top.row[c].tolist() == rows
            ys, xs = data["early"]["argmax_y"][rows, c], data["early"]["argmax_x"][rows, c]
            assert top.y[c].tolist() == ys.tolist() and top.x[c].tolist() == xs.tolist()
            for j, (row, y, x) in enumerate(zip(rows, ys, xs)):
                box = fields.box(int(y), int(x))
                assert tuple(top.box[c, j]) == box
                thumb = store.thumbnail("early", top.thumbnail[c, j])
                assert thumb.shape == (4, 4, 3) and thumb.dtype == np.uint8
                # The crop of a flat image is that colour (grey padding aside).
                assert round(row / 100 * 255) in thumb[..., 0]
        # Bottom examples: the lowest spatial minima first, at their argmin; the maps are
        # the channel over each example's box (constant r + c/10 here), 0 where the box
        # left the image.
        bottom = store.bottom("early")
        for c in range(3):
            rows = brute_topk(-data["early"]["min"][:, c], 4)
            assert bottom.row[c].tolist() == rows
            np.testing.assert_array_equal(bottom.value[c], data["early"]["min"][rows, c])
            ys, xs = data["early"]["argmin_y"][rows, c], data["early"]["argmin_x"][rows, c]
            assert [tuple(b) for b in bottom.box[c]] == [fields.box(int(y), int(x)) for y, x in zip(ys, xs)]
            for table in (top, bottom):
                for j, row in enumerate(table.row[c]):
                    shown = table.map[c, j].astype(np.float64)
                    assert shown.shape == (4, 4) and shown.max() == pytest.approx(row + c / 10, abs=0.02)
                    y0, x0, y1, x1 = table.box[c, j]
                    if y0 == 0 and y1 - y0 < x1 - x0:  # clipped at the top: padding above
                        assert shown[0].max() < shown[-1].min()
        examples = store.bottom_examples("early", 2, k=2)
        assert [e.row for e in examples] == bottom.row[2, :2].tolist() and examples[0].map.shape == (4, 4)
        classes = store.classes("early")
        assert classes.count.tolist() == np.bincount(top_ids[:, 0], minlength=4).tolist()
        assert -1 in classes.top_ids[0].tolist()  # "bird" is never predicted: never a top class
        np.testing.assert_array_equal(store.stats("late").active_fraction[1], 1.0)


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


def test_merge_and_reduction_refuse_shards_from_other_weights(tmp_path):
    from pipeline.extract.reduce_job import run_reduce
    from pipeline.extract.settings import ExtractSettings
    from pipeline.model.spec import ModelSpec

    data, top_ids, top_logits = fake_data()
    paths = write_shards(tmp_path / "a", data, top_ids, top_logits)
    other = write_shards(tmp_path / "b", data, top_ids, top_logits, model_checksum="sha256:other")
    with pytest.raises(StoreError, match="other model weights"):
        ShardSet([paths[0], other[1], paths[2], paths[3]])
    # Consistent shards, but not from the weights the reduction loads for its crops.
    out = tmp_path / "a" / "activations.h5"
    tiny = ModelSpec(name="tests.helpers.models:tiny_conv_net", weights="random", device="cpu")
    with pytest.raises(
        ValueError,
        match=r"the 4 extraction shards in .*: made with model weights sha256:fake, but the model "
        r"loaded \(tests.helpers.models:tiny_conv_net, weights random\) "
        r"has custom:tests.helpers.models:tiny_conv_net",
    ):
        run_reduce(ExtractSettings(), tiny, paths, out)
    assert not out.exists()


def test_store_moves_with_its_run_folder(tmp_path):
    path, data, _ = build_store(tmp_path / "run")
    (tmp_path / "run").rename(tmp_path / "moved")
    with ActivationsStore(tmp_path / "moved" / "activations.h5") as store:
        np.testing.assert_array_equal(store.per_image("late", "max").compute(), data["late"]["max"])


def test_unknown_shard_quantity_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown shard quantities: maxx"):
        with shard_writer(
            tmp_path / "s.h5",
            ShardLayout(layers=LAYERS, quantities=["maxx"], class_names=CLASSES, start=0, stop=1),
            settings=record({}),
            model_checksum="",
        ):
            pass
    with h5py.File(tmp_path / "junk.h5", "w"):
        pass
    with pytest.raises(StoreError):
        ShardSet([tmp_path / "junk.h5"])


def test_a_run_where_every_image_was_bad_still_reduces(tmp_path):
    path = tmp_path / "extract" / "shards" / "0-2.h5"
    layout = ShardLayout(
        layers=LAYERS,
        quantities=["max", "argmax_y", "argmax_x", "mean", "attr_predicted"],
        class_names=CLASSES,
        start=0,
        stop=2,
        top=2,
    )
    with shard_writer(path, layout, settings=record({}), model_checksum="sha256:fake") as writer:
        writer.skip(
            [
                type("S", (), {"image_id": s, "path": s, "reason": "zero-byte file"})
                for s in ("x.jpg", "y.jpg")
            ]
        )
    shards = ShardSet([path])
    empty = record({})
    with reduced_writer(tmp_path / "activations.h5", shards, settings=empty, model={}, aliases={}) as writer:
        reduce_store(shards, writer, fake_fields(), load_image, progress=False)
    with ActivationsStore(tmp_path / "activations.h5") as store:
        assert store.num_images == 0 and len(store.skipped["image_id"]) == 2
        assert store.top("early").row.shape == (3, 0)
        assert store.top_examples("early", 0) == [] and store.predicted_classes().shape == (0,)
        assert store.per_image("late", "max").shape == (0, 2)


def coordinate_image(size=8):
    """``[3, size, size]`` in [0, 1] whose pixel (y, x) is (10 (y + 1), 10 (x + 1), 255) in uint8."""
    import torch

    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return torch.stack([10 * (ys + 1) / 255, 10 * (xs + 1) / 255, torch.ones(size, size)]).float()


def test_maps_follow_the_thumbnail_geometry():
    import torch

    # A stride-2 layer on an 8-pixel input: one hot position (1, 1) covers pixels 2-3.
    hot = torch.zeros(1, 4, 4)
    hot[0, 1, 1] = 1.0
    inside = crop_maps(hot, [(2, 2, 4, 4)], 8, 2)[0].astype(np.float64)
    elsewhere = crop_maps(hot, [(4, 4, 8, 8)], 8, 2)[0].astype(np.float64)
    assert inside.min() > 0.5 and elsewhere.max() < 0.1
    # A flat map clipped at the left border: the padded (left) column reads 0, the rest 1.
    flat = torch.ones(1, 4, 4)
    clipped = crop_maps(flat, [(2, 0, 6, 3)], 8, 4)[0].astype(np.float64)
    np.testing.assert_allclose(clipped[:, 0], 0.0)
    np.testing.assert_allclose(clipped[:, 1:], 1.0)


@pytest.mark.parametrize(
    "box,grey_rows,grey_cols",
    [
        ((1, 2, 5, 6), [], []),  # inside the image: the crop as it is
        ((0, 2, 3, 6), [0], []),  # clipped at the top: 3 rows in a square of 4, grey above
        ((5, 2, 8, 6), [3], []),  # clipped at the bottom: grey below
        ((2, 0, 6, 3), [], [0]),  # clipped on the left: grey on the left
        ((2, 5, 6, 8), [], [3]),  # clipped on the right: grey on the right
        ((0, 0, 2, 3), [0], []),  # top-left corner, 2x3: only the short side is padded
    ],
)
def test_thumbnails_keep_the_crop_and_pad_only_the_clipped_side(box, grey_rows, grey_cols):
    y0, x0, y1, x1 = box
    side = max(y1 - y0, x1 - x0)
    thumb = crop_thumbnail(coordinate_image(), box, side)  # same size: no resampling
    assert thumb.shape == (side, side, 3) and thumb.dtype == np.uint8
    content_rows = [r for r in range(side) if r not in grey_rows]
    content_cols = [c for c in range(side) if c not in grey_cols]
    expected = np.full((side, side, 3), 128, np.uint8)  # neutral grey: 0.5 -> 127.5 -> 128
    for i, r in enumerate(content_rows):
        for j, c in enumerate(content_cols):
            expected[r, c] = (10 * (y0 + i + 1), 10 * (x0 + j + 1), 255)
    np.testing.assert_array_equal(thumb, expected)
    # Scaled up, the padding stays on its side: the top-clipped box's first row is grey,
    # its last row all picture.
    if box == (0, 2, 3, 6):
        big = crop_thumbnail(coordinate_image(), box, 8)
        assert (big[0] == 128).all() and (big[-1, :, 2] == 255).all()


def test_the_reduction_stores_each_layers_labels_as_computed_from_its_arrays(tmp_path):
    """The labels stored with the channel statistics are exactly the ones the store's own
    attribution gives (pipeline.labels.layers), with the rule and hierarchy they came from."""
    path, _, _ = build_store(tmp_path, k=4)
    with ActivationsStore(path) as store:
        for layer in ("early", "late"):
            stored = store.labels(layer)
            assert stored.rule == "lift" and stored.hierarchy == "class-names"
            assert stored.format_version == 1 and stored.settings["min_confidence"] == 0.2
            assert stored.classes.dtype == np.int32 and stored.classes.shape == (
                store.layers[layer]["channels"],
                3,
            )
            from_columns = labels_from_columns(stored, store.class_names)
            computed = labels_for_layer(store, layer)
            assert from_columns == computed
            assert [label.class_ids for label in from_columns] == [label.class_ids for label in computed]
            assert [s == "" for s in stored.synset] == [label.synset is None for label in computed]
        assert any(s for s in store.labels("early").synset), "the toy store labels some channel"


def test_a_store_without_attribution_has_no_labels(tmp_path):
    data, top_ids, top_logits = fake_data()
    for arrays in data.values():
        del arrays["attr_predicted"]
    shards = ShardSet(write_shards(tmp_path, data, top_ids, top_logits))
    out = tmp_path / "activations.h5"
    with reduced_writer(out, shards, settings=record({"top_k": 4}), model={}, aliases={}) as writer:
        settings = ExtractSettings(top_k=4, histogram_bins=4, thumbnail_size=4, map_size=0)
        reduce_store(shards, writer, fake_fields(), load_image, settings, progress=False)
    with ActivationsStore(out) as store:
        assert store.classes("early") is None and store.labels("early") is None
        assert layer_labels(store, "early") is None
    with h5py.File(out, "r") as fh:
        assert "labels" not in fh["layers/early"]


def test_a_store_written_before_labels_were_stored_still_answers_by_computing(tmp_path):
    path, _, _ = build_store(tmp_path, k=4)
    with ActivationsStore(path) as store:
        expected = [labels_for_layer(store, layer) for layer in ("early", "late")]
    with h5py.File(path, "r+") as fh:
        for layer in ("early", "late"):
            del fh[f"layers/{layer}/labels"]
    with ActivationsStore(path) as store:
        assert store.labels("early") is None
        assert [layer_labels(store, layer) for layer in ("early", "late")] == expected
    with pipeline.open_results(tmp_path) as results:
        assert [results.label("early", c) for c in range(3)] == expected[0]


def test_labels_are_named_from_the_hierarchy_file_the_run_gives(tmp_path, caplog):
    """``labels.hierarchy``: a user's file over the model's classes names the stored labels;
    readers take the run's settings from the store (no settings passed) and its search
    knows the file's kinds of thing; a file moved away costs the search, not the labels."""
    import json

    from pipeline.labels import LabelSettings

    pets = {
        "format": "model-atlas.class-hierarchy",
        "format_version": 1,
        "classes": ["c", "d", "f", "b"],  # the fake model's cat, dog, fish, bird
        "synsets": {
            "c": {"name": "cat", "parents": ["pet"]},
            "d": {"name": "dog", "parents": ["pet"]},
            "f": {"name": "fish", "parents": ["wild"]},
            "b": {"name": "bird", "parents": ["wild"]},
            "pet": {"name": "pet", "parents": ["animal"], "lemmas": ["companion animal"]},
            "wild": {"name": "wild animal", "parents": ["animal"]},
            "animal": {"name": "animal", "parents": []},
        },
    }
    file = tmp_path / "pets.json"
    file.write_text(json.dumps(pets))
    settings = LabelSettings(hierarchy=str(file), min_confidence=0.0)
    path, _, _ = build_store(tmp_path, k=4, label_settings=settings)
    with ActivationsStore(path) as store:
        stored = store.labels("early")
        assert stored.hierarchy == f"file:{file}" and stored.settings["hierarchy"] == str(file)
        assert set(stored.synset) <= {"c", "d", "f", "b", "pet", "wild", ""} and any(stored.synset)
        assert layer_labels(store, "early") == labels_for_layer(store, "early", settings)
        # Other settings than the stored ones are computed, not read.
        assert layer_labels(store, "early", LabelSettings()) == labels_for_layer(store, "early")
    with pipeline.open_results(tmp_path) as results:
        assert results.label_settings == settings
        assert results.hierarchy.name("pet") == "pet"
        before = results.layer_labels("early")
        # A synonym from the file finds the channels labelled with kinds of pet.
        found = results.search("companion animal")
        assert found and all(e["via"] == "pet" for e in found[:2])
        assert {e["label"] for e in found if e["kind"] == "channel"} <= {"cat", "dog", "pet"}
    file.rename(tmp_path / "moved.json")
    with pipeline.open_results(tmp_path) as results:
        assert results.hierarchy is None and "search uses the class names alone" in caplog.text
        assert results.layer_labels("early") == before  # the stored labels stay readable
