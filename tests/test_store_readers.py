"""The stores' typed readers: what each returns, with which shapes and values, on small
stores written by the stores' own writers from known data (tests/helpers/stores.py)."""

import h5py
import numpy as np
import pytest

from pipeline.store import finite_number, json_number
from pipeline.store.activations_reader import (
    ActivationsStore,
    ChannelStats,
    ClassAttribution,
    ClassSupport,
    TopExamples,
)
from pipeline.store.blocks import BlocksStore, RunHeader, write_image_file
from tests.helpers.provenance import record
from tests.helpers.stores import LAYERS, SIZES, brute_topk, build_store, fake_fields

N = sum(SIZES)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path, data, top_ids = build_store(tmp_path_factory.mktemp("readers"), k=4)
    with ActivationsStore(path) as store:
        yield store, data, top_ids


def test_top_holds_the_whole_layer_once(run):
    store, data, _ = run
    top = store.top("early")
    assert isinstance(top, TopExamples) and store.top("early") is top  # read once, kept
    assert top.row.shape == top.value.shape == top.y.shape == top.x.shape == top.thumbnail.shape == (3, 4)
    assert top.box.shape == (3, 4, 4)
    assert top.row.dtype == np.int64 and top.value.dtype == np.float32 and top.y.dtype == np.int16
    for c in range(3):
        rows = brute_topk(data["early"]["max"][:, c], 4)
        assert top.row[c].tolist() == rows
        np.testing.assert_array_equal(top.value[c], data["early"]["max"][rows, c])


def test_top_examples_join_the_images_table(run):
    store, data, _ = run
    examples = store.top_examples("early", 2, k=3)
    rows = brute_topk(data["early"]["max"][:, 2], 3)
    assert [e.rank for e in examples] == [0, 1, 2] and [e.row for e in examples] == rows
    field, top = fake_fields()["early"], store.top("early")
    for e, row in zip(examples, rows):
        assert e.image_id == f"img{row:02d}" and e.path == f"/photos/img{row:02d}.jpg"
        assert e.label == ("dog" if row % 2 else None)
        assert e.value == float(data["early"]["max"][row, 2]) and isinstance(e.value, float)
        assert (e.y, e.x) == (data["early"]["argmax_y"][row, 2], data["early"]["argmax_x"][row, 2])
        assert e.box == field.box(e.y, e.x)
        assert e.thumbnail == top.thumbnail[2, e.rank]
        assert store.thumbnail("early", e.thumbnail).shape == (4, 4, 3)
    assert len(store.top_examples("early", 2)) == 4  # all stored
    assert store.top_examples("early", 2, k=0) == []
    assert len(store.top_examples("early", 2, k=99)) == 4


def test_stats_are_the_statistics_of_the_maxima(run):
    store, data, _ = run
    stats = store.stats("late")
    assert isinstance(stats, ChannelStats)
    values = data["late"]["max"].astype(np.float64)
    np.testing.assert_allclose(stats.mean, values.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.active_fraction, (values > 0).mean(0))
    np.testing.assert_allclose(stats.mean_of_mean, data["late"]["mean"].mean(0), rtol=1e-6)
    assert stats.hist_counts.shape == (2, 4) and stats.hist_edges.shape == (2, 5)
    assert stats.hist_counts.sum(axis=1).tolist() == [N, N]


def test_classes_rank_the_mean_attribution_of_predicted_images(run):
    store, data, top_ids = run
    classes = store.classes("late")
    assert isinstance(classes, ClassAttribution)
    assert (
        classes.attribution.shape == (2, 4)
        and classes.count.tolist() == np.bincount(top_ids[:, 0], minlength=4).tolist()
    )
    assert classes.top_ids.shape == classes.top_scores.shape == (2, 4)
    attr = data["late"]["attr_predicted"][:, 1]
    expected = {c: attr[top_ids[:, 0] == c].mean() for c in range(4) if (top_ids[:, 0] == c).any()}
    ranked = classes.top_classes(1)
    assert [k.class_id for k in ranked] == sorted(expected, key=lambda c: -expected[c])
    assert all(isinstance(k, ClassSupport) for k in ranked)
    assert ranked[0].score == pytest.approx(max(expected.values()), rel=1e-5)
    assert [k.images for k in ranked] == [int((top_ids[:, 0] == k.class_id).sum()) for k in ranked]
    assert classes.top_classes(1, k=1) == ranked[:1] and classes.top_classes(1, k=0) == []


def test_classes_are_none_without_attribution(tmp_path):
    path, _, _ = build_store(tmp_path, k=2)
    with h5py.File(path, "a") as fh:  # as a run with `attribution: none` leaves it
        for layer in LAYERS:
            for key in list(fh[f"layers/{layer['name']}/classes"]):
                del fh[f"layers/{layer['name']}/classes/{key}"]
    with ActivationsStore(path) as store:
        assert store.classes("early") is None


def test_one_channels_examples_read_only_their_rows_of_the_images_table(run):
    with ActivationsStore(run[0].path) as store:

        def joined():
            return [(e.rank, e.row, e.image_id, e.path, e.label) for e in store.top_examples("early", 1)]

        lazy = joined()
        assert "images" not in store.__dict__  # the images table was not read whole
        assert ("early", "top") not in store._tables  # nor the layer's top table: one row of it
        assert [row for _, row, *_ in lazy] == brute_topk(run[1]["early"]["max"][:, 1], 4)
        assert store.image_row(7) == {
            "image_id": "img07",
            "path": "/photos/img07.jpg",
            "label": "dog",
            "label_class": store.images["label_class"][7],
        }
        store.top("early")
        assert joined() == lazy and "images" in store.__dict__  # the same from the whole tables
    with ActivationsStore(run[0].path) as store, pytest.raises(IndexError, match="channels 0-2; got 3"):
        store.top_examples("early", 3)
        assert store.row_of("img07") == 7 and store.row_of("nope") is None
        assert store.num_images == N == len(store.images["image_id"])


def test_one_image_row(run):
    store, data, top_ids = run
    predictions = store.predictions(5)
    assert predictions.ids.tolist() == top_ids[5].tolist() and predictions.logits.shape == (2,)
    assert store.predicted_classes().tolist() == top_ids[:, 0].tolist()
    values = store.image_activations("early", 5)
    for q in ("max", "mean", "argmax_y", "argmax_x", "attr_predicted"):
        np.testing.assert_array_equal(getattr(values, q), data["early"][q][5])
    assert values.attr_label is None  # no image of the listing had a usable label


def test_unknown_names_list_what_exists(run):
    store, _, _ = run
    with pytest.raises(KeyError, match="no layer 'nope'; layers: early, late"):
        store.top("nope")
    with pytest.raises(KeyError, match="no per-image 'attr_label'; this run has max"):
        store.per_image("early", "attr_label")


def _blocks(rng, grid: bool) -> dict:
    layer = {
        "dictionary": {"channels": np.zeros((2, 2, 1), np.int32)},
        "groups": {
            "maps": np.ones((2, 2, 2), np.float32),
            "icons": rng.integers(0, 255, (2, 4, 4, 3)).astype(np.uint8),
        },
    }
    if grid:
        layer["grid"] = {
            "icons": rng.integers(0, 255, (2, 2, 4, 4, 3)).astype(np.uint8),
            "magnitude": np.ones((2, 2), np.float32),
        }
    return {
        "input": np.zeros((8, 8, 3), np.uint8),
        "predictions": {"ids": np.array([1], np.int32), "probabilities": np.array([0.5], np.float32)},
        "classes": {"ids": np.array([1], np.int32), "top": 1, "second": 0, "second_index": 0},
        "layers": {"late": layer},
    }


def test_blocks_icons_stay_in_the_file_until_indexed(tmp_path):
    rng = np.random.default_rng(0)
    header = RunHeader(
        model={"name": "fake"},
        class_names=["a", "b"],
        layers=[LAYERS[1]],
        settings=record({}),
        model_checksum="sha256:fake",
    )
    written = {}
    for image_id, grid in (("with-grid", True), ("no-grid", False)):
        written[image_id] = _blocks(rng, grid)
        write_image_file(
            tmp_path / f"{image_id}.h5",
            header,
            image_id=image_id,
            image_path=f"/p/{image_id}.jpg",
            blocks=written[image_id],
        )
    late = written["with-grid"]["layers"]["late"]
    with BlocksStore(tmp_path / "with-grid.h5") as store:
        icons = store.grid_icons("with-grid", "late")
        assert not isinstance(icons, np.ndarray) and icons.shape == (2, 2, 4, 4, 3)
        np.testing.assert_array_equal(icons[1, 0], late["grid"]["icons"][1, 0])
        groups = store.group_icons("with-grid", "late")
        assert groups.shape == (2, 4, 4, 3)
        np.testing.assert_array_equal(groups[1], late["groups"]["icons"][1])
        with pytest.raises(KeyError, match="no Building Blocks for layer 'early'"):
            store.grid_icons("with-grid", "early")
    with BlocksStore(tmp_path / "no-grid.h5") as store:
        assert store.grid_icons("no-grid", "late") is None
        assert store.group_icons("no-grid", "late").shape == (2, 4, 4, 3)


def test_json_number_rounds_to_six_significant_digits():
    assert json_number(np.float32(0.1)) == 0.1  # not 0.10000000149011612
    assert json_number(123456789.0) == 123457000.0
    assert json_number(-2.5e-9) == -2.5e-9 and json_number(np.int64(3)) == 3.0
    assert json_number(float("nan")) is None and json_number(np.inf) is None
    assert json_number(None) is None


def test_finite_number_keeps_every_digit_for_pages_to_round_once():
    # Pages round for display once; rounding here first could move the last shown digit
    # (-0.40915 would print as -0.4092 after two roundings instead of -0.4091).
    assert finite_number(np.float64(-0.40914999)) == -0.40914999
    assert finite_number(np.float32(0.1)) == float(np.float32(0.1))
    assert finite_number(float("nan")) is None and finite_number(-np.inf) is None
    assert finite_number(None) is None
