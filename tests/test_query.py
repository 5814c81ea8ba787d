"""Offline queries over a reduced store built from known data (tests/helpers/stores.py)."""

import json

import dask.array as da
import numpy as np
import pytest

import pipeline
from pipeline import query
from pipeline.cli import main
from tests.helpers.provenance import record
from tests.helpers.stores import CLASSES, brute_topk, build_store, fake_fields


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    _, data, top_ids = build_store(folder, k=4)
    return folder, data, top_ids


@pytest.fixture
def results(run):
    with pipeline.open_results(run[0]) as opened:
        yield opened


def test_summary_counts_images_and_lists_skipped(results):
    s = results.summary()
    assert s["images"] == 17 and s["skipped"] == 1
    assert s["skipped_images"] == [
        {"image_id": "broken", "path": "/photos/broken.jpg", "reason": "not an image"}
    ]
    assert s["layers"] == {"early": 3, "late": 2} and s["channels"] == 5
    assert s["labelled_images"] == 8 and s["stores"]["featurevis"] is None


def test_top_examples_and_aliases(results, run):
    _, data, _ = run
    examples = results.top_examples("mixed_early", 2, k=3)  # alias of "early"
    rows = brute_topk(data["early"]["max"][:, 2], 3)
    assert [e["image_id"] for e in examples] == [f"img{r:02d}" for r in rows]
    field = fake_fields()["early"]
    for e, r in zip(examples, rows):
        assert e["activation"] == pytest.approx(float(data["early"]["max"][r, 2]))
        assert (e["y"], e["x"]) == (
            int(data["early"]["argmax_y"][r, 2]),
            int(data["early"]["argmax_x"][r, 2]),
        )
        assert tuple(e["box"]) == field.box(e["y"], e["x"])
    assert len(results.top_examples("early", 2)) == 4  # all stored
    assert results.thumbnail("early", 2, 0).shape == (4, 4, 3)


def test_negative_examples_are_the_lowest_minima_below_zero(results, run):
    _, data, _ = run
    for c in range(3):
        minima = data["early"]["min"][:, c]
        rows = [r for r in brute_topk(-minima, 4) if minima[r] < 0]
        found = results.negative_examples("early", c)
        assert [e["image_id"] for e in found] == [f"img{r:02d}" for r in rows]
        assert [e["activation"] for e in found] == pytest.approx([float(minima[r]) for r in rows])
        assert results.channel("early", c)["negative_examples"] == found  # and the channel query carries them


def test_top_classes_rank_mean_attribution_of_predicted_images(results, run):
    _, data, top_ids = run
    attr = data["late"]["attr_predicted"][:, 0]
    expected = {c: attr[top_ids[:, 0] == c].mean() for c in range(4) if (top_ids[:, 0] == c).any()}
    found = results.top_classes("late", 0)
    assert [t["class_name"] for t in found] == [
        CLASSES[c] for c in sorted(expected, key=lambda c: -expected[c])
    ]
    assert found[0]["score"] == pytest.approx(max(expected.values()), rel=1e-5)
    assert "bird" not in [t["class_name"] for t in found]
    assert len(results.top_classes("late", 0, k=1)) == 1


def test_a_channel_of_a_model_without_a_hierarchy_is_labelled_by_its_dominant_class(results, run):
    """Four classes are not ImageNet's: every class is its own synset, so the label is the
    class with the largest share of the positive attribution when its lift over the share
    of uniform attribution, (share - 1/m) / (1 - 1/m) over m predicted classes, reaches 0.2."""
    _, data, top_ids = run
    predicted = [c for c in range(4) if (top_ids[:, 0] == c).any()]
    base = 1 / len(predicted)
    named = 0
    for channel in range(results.layers["late"]):
        attr = data["late"]["attr_predicted"][:, channel]
        positive = np.array(
            [max(attr[top_ids[:, 0] == c].mean(), 0) if c in predicted else 0 for c in range(4)]
        )
        label = results.label("late", channel)
        assert results.channel("late", channel)["label"]["text"] == label.text
        if positive.sum() == 0:  # nothing to name
            assert label.synset is None
            continue
        lift = (positive.max() / positive.sum() - base) / (1 - base)
        assert label.confidence == pytest.approx(lift, rel=1e-5)
        assert label.name == (CLASSES[int(np.argmax(positive))] if lift >= 0.2 else "no clear label")
        named += lift >= 0.2
    assert named > 0


def test_lazy_arrays(results, run):
    acts = results.activations("late")
    assert isinstance(acts["max"], da.Array) and acts["max"].shape == (17, 2)
    np.testing.assert_array_equal(acts["mean"].compute(), run[1]["late"]["mean"])
    np.testing.assert_array_equal(
        results.attributions("early")["predicted"][3:9].compute(), run[1]["early"]["attr_predicted"][3:9]
    )
    assert results.image_ids[-1] == "img16"


def test_image_predictions_and_strongest_channels(results, run):
    _, data, top_ids = run
    info = results.image("img05")
    assert info["label"] == "dog" and info["label_class"] == 1
    assert [p["class_id"] for p in info["predictions"]] == top_ids[5].tolist()
    strongest = [s["channel"] for s in info["layers"]["early"]["strongest"]]
    assert strongest == list(np.argsort(-data["early"]["max"][5], kind="stable"))
    assert results.image("img04")["label"] is None


def test_image_sections_can_be_added(results, monkeypatch):
    monkeypatch.setitem(query.IMAGE_SECTIONS, "blocks", lambda r, image_id, row: {"row": row})
    assert results.image("img03")["blocks"] == {"row": 3}


def test_unknown_names_list_what_exists(results):
    with pytest.raises(KeyError, match="unknown layer 'mixed4d'.*early, late.*aliases: mixed_early"):
        results.top_examples("mixed4d", 0)
    with pytest.raises(ValueError, match="layer late has channels 0-1; got 2"):
        results.top_examples("late", 2)
    with pytest.raises(KeyError, match="unknown image 'nope'; 17 images: img00, img01"):
        results.image("nope")
    with pytest.raises(ValueError, match="'broken' was skipped during extraction: not an image"):
        results.image("broken")
    with pytest.raises(FileNotFoundError, match="no feature visualization store"):
        results.featurevis("late", 0)


def test_open_results_accepts_the_store_file_and_refuses_nonsense(run, tmp_path):
    with pipeline.open_results(run[0] / "activations.h5") as opened:
        assert opened.layers == {"early": 3, "late": 2}
    with pytest.raises(FileNotFoundError, match="neither a run folder nor a store file"):
        pipeline.open_results(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no activations store"):
        pipeline.open_results(tmp_path)


def test_cli_json_and_text(run, capsys):
    folder = str(run[0])
    assert main(["query", folder, "summary", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 17
    assert main(["query", folder, "channel", "early", "1", "-k", "2", "--json"]) == 0
    channel = json.loads(capsys.readouterr().out)
    assert len(channel["top_examples"]) == 2
    assert {"image_id", "activation", "box"} <= set(channel["top_examples"][0])
    assert {"class_name", "score"} <= set(channel["top_classes"][0])
    assert main(["query", folder, "image", "img02", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["image_id"] == "img02"
    assert main(["query", folder, "channel", "late", "0"]) == 0
    text = capsys.readouterr().out
    assert "late channel 0" in text and "top examples:" in text and "top classes" in text
    assert "\nlabel: " in text
    assert main(["query", folder, "summary"]) == 0
    assert "broken: not an image" in capsys.readouterr().out
    assert main(["query", folder, "image", "nope"]) == 2
    assert "unknown image 'nope'" in capsys.readouterr().err


def test_featurevis_comes_from_the_featurevis_store(tmp_path, monkeypatch):
    """The query delegates to FeatureVisStore(path).image(layer, channel) and closes the store."""
    import pipeline.store.featurevis as fv

    build_store(tmp_path)
    (tmp_path / "featurevis.h5").write_bytes(b"")  # its presence is all the query checks
    calls = []

    class FakeStore:
        def __init__(self, path):
            calls.append(("open", str(path)))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            calls.append(("close",))

        def image(self, layer, channel):
            calls.append(("image", layer, channel))
            return np.zeros((2, 2, 3), np.uint8)

    monkeypatch.setattr(fv, "FeatureVisStore", FakeStore)
    with pipeline.open_results(tmp_path) as results:
        assert results.featurevis("mixed_early", 1).shape == (2, 2, 3)
        assert results.summary()["stores"]["featurevis"] == str(tmp_path / "featurevis.h5")
    assert calls == [("open", str(tmp_path / "featurevis.h5")), ("image", "early", 1), ("close",)]


def test_channel_says_how_its_feature_visualization_was_made(tmp_path, capsys):
    from pipeline.store.featurevis import ShardLayout, merge_shards, shard_writer

    build_store(tmp_path, k=4)
    layout = ShardLayout(
        layer="early",
        layer_channels=3,
        channels=[0, 2],
        start=0,
        stop=3,
        image_size=4,
        curve_steps=[0],
        tensor="pre-activation",
        cap="ReLU6",
        preset="fast",
        schedule={"steps": 64, "image_size": 4},
    )
    with shard_writer(tmp_path / "shard.h5", layout, settings=record({"preset": "fast"})) as writer:
        writer.write(
            [0, 2],
            {
                "images": np.zeros((2, 4, 4, 3)),
                "value": [1.0, 2.5],
                "activation": [1.0, 2.5],
                "rank": [2, 1],
                # channel 2 responds more to channel 0's image (3.0) than to its own (2.5)
                "responses": [[1.0, 0.0, 3.0], [0.5, 0.0, 2.5]],
                "curve": [[1.0], [2.5]],
            },
        )
    merge_shards([tmp_path / "shard.h5"], tmp_path / "featurevis.h5")
    with pipeline.open_results(tmp_path) as results:
        assert results.channel("mixed_early", 2)["featurevis"] == {
            "preset": "fast",
            "steps": 64,
            "image_size": 4,
            "tensor": "pre-activation",
            "cap": "ReLU6",
            "activation": 2.5,
            "rank": 1,
            "image_rank": 2,
        }
        assert results.channel("early", 1)["featurevis"] is None  # not rendered
        assert results.channel("late", 0)["featurevis"] is None  # layer not rendered
    main(["query", str(tmp_path), "channel", "early", "0"])
    assert "fast preset, 64 steps at 4 px, pre-activation; activation 1.0, rank 2" in capsys.readouterr().out


def test_search_ranks_as_the_site_and_the_cli_prints_it(results, run, capsys):
    found = results.search("early")  # the layer (exact), then its channels (prefix)
    # Channels carry their labels (Results.label's); labelled ones first, higher confidence first.
    labels = [results.label("early", c) for c in range(3)]
    labelled = sorted((c for c in range(3) if labels[c].synset), key=lambda c: -labels[c].confidence)
    order = labelled + [c for c in range(3) if not labels[c].synset]
    assert labelled, "the toy store labels some channel of early"
    assert [(f["kind"], f["name"], f["match"]) for f in found] == [("layer", "early", "exact")] + [
        ("channel", f"early:{c}", "prefix") for c in order
    ]
    for f in found[1:]:
        label = labels[int(f["name"].split(":")[1])]
        assert f["label"] == (label.name if label.synset else None)
        assert f["confidence"] == (round(label.confidence, 6) if label.synset else None)
    assert [f["name"] for f in results.search("mixed_early 2")] == ["early:2"]  # an alias, a space
    assert results.search("late:9") == [] and results.search("early", k=1)[0]["name"] == "early"
    classes = [f for f in results.search(CLASSES[0]) if f["kind"] == "class"]
    assert classes[0]["name"] == CLASSES[0] and classes[0]["match"] == "exact"
    assert main(["query", str(run[0]), "search", "early", "-k", "2", "--json"]) == 0
    assert [f["name"] for f in json.loads(capsys.readouterr().out)] == ["early", f"early:{order[0]}"]
    assert main(["query", str(run[0]), "search", "zzz"]) == 0
    assert capsys.readouterr().out.strip() == "nothing matches"
