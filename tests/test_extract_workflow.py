"""End to end: the Snakemake extraction stage on a tiny source with planted bad files."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.images import read_listing
from tests.helpers.images import BAD_IMAGES, GOOD_IMAGES, plant_images
from tests.helpers.models import TINY_CONV_CLASSES as CLASSES
from tests.helpers.workflow import cli, extract_config, run_on_two_cores


@pytest.mark.slow
def test_workflow_extracts_good_images_and_lists_bad_ones(tmp_path):
    images = tmp_path / "images"
    plant_images(images)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(extract_config(images)))
    run_on_two_cores(tmp_path, "results/e2e/activations.h5", "results/e2e/circuits.h5")
    run_dir = tmp_path / "results" / "e2e"
    listing = read_listing(run_dir / "dataset" / "images.json")
    assert len(listing.records) == 8
    shards = sorted(p.name for p in (run_dir / "extract" / "shards").iterdir())
    assert shards == ["0-3.h5", "3-6.h5", "6-8.h5"]
    for shard in ("0-3", "3-6", "6-8"):  # one log (with its progress bar) and benchmark each
        assert "extract" in (run_dir / "logs" / "extract_shard" / f"{shard}.log").read_text()
        assert (run_dir / "benchmarks" / "extract_shard" / f"{shard}.tsv").is_file()

    summary = cli("query", str(run_dir), "summary", "--json")
    assert summary.returncode == 0, summary.stderr
    summary = json.loads(summary.stdout)
    assert summary["images"] == len(GOOD_IMAGES) and summary["labelled_images"] == len(GOOD_IMAGES)
    assert summary["layers"] == {"early": 4, "late": 6}
    skipped = {Path(s["path"]).relative_to(images).as_posix(): s["reason"] for s in summary["skipped_images"]}
    assert set(skipped) == set(BAD_IMAGES) and all(skipped.values())

    channel = cli("query", str(run_dir), "channel", "late", "2", "--json")
    assert channel.returncode == 0, channel.stderr
    channel = json.loads(channel.stdout)
    assert len(channel["top_examples"]) == 3
    values = [e["activation"] for e in channel["top_examples"]]
    assert values == sorted(values, reverse=True)
    assert all(len(e["box"]) == 4 for e in channel["top_examples"])
    assert channel["top_classes"] and channel["top_classes"][0]["class_name"] in CLASSES
    # Circuits: "late" is computed from "early" (one job, the first layer has none), over
    # the top examples on which the channel fires.
    assert sorted(p.name for p in (run_dir / "circuits" / "parts").iterdir()) == ["late.h5"]
    circuits = channel["circuits"]
    assert circuits["previous_layer"] == "early" and circuits["next_layer"] is None
    assert circuits["method"] == "attribution" and circuits["examples"] == sum(v > 0 for v in values)
    assert circuits["downstream"] == [] and len(circuits["upstream"]) <= 4
    strengths = [e["attribution"] for e in circuits["upstream"]]
    assert strengths == sorted(strengths, reverse=True) and all(v > 0 for v in strengths)
    assert circuits["upstream"] or circuits["upstream_negative"] or not circuits["examples"]
    early = json.loads(cli("query", str(run_dir), "channel", "early", "0", "--json").stdout)["circuits"]
    assert early["previous_layer"] is None and early["next_layer"] == "late"
    assert all(0 <= e["channel"] < 6 for e in early["downstream"] + early["downstream_negative"])
    text = cli("query", str(run_dir), "channel", "late", "2")
    assert text.returncode == 0 and "upstream from early" in text.stdout, text.stderr

    image_id = channel["top_examples"][0]["image_id"]
    image = cli("query", str(run_dir), "image", image_id, "--json")
    assert image.returncode == 0, image.stderr
    image = json.loads(image.stdout)
    assert image["label"] in ("cat", "dog") and len(image["predictions"]) == 3
    assert set(image["layers"]) == {"early", "late"}
    text = cli("query", str(run_dir), "channel", "late", "9")
    assert text.returncode == 2 and "late has channels 0-5" in text.stderr

    # The stored values are those of the model on the decoded images.
    from pipeline.query import open_results

    with open_results(run_dir) as results:
        assert results.thumbnail("late", 2, 0).shape == (8, 8, 3)
        assert np.isfinite(results.attributions("late")["label"].compute()).all()

    # The workflow's map-reduce (a partial and an examples file per shard, one merge) wrote
    # what the whole reduction in one process writes.
    for folder in ("partials", "examples"):
        assert sorted(p.name for p in (run_dir / "extract" / folder).iterdir()) == shards
    whole = reduce_in_one_process(run_dir, tmp_path / "whole.h5")
    assert_same_reductions(run_dir / "activations.h5", whole)


def reduce_in_one_process(run_dir, out):
    from pipeline.extract.reduce_job import run_reduce
    from pipeline.extract.settings import ExtractSettings
    from pipeline.model.spec import ModelSpec

    config = extract_config(Path("."))
    settings = ExtractSettings.from_config(
        {k: v for k, v in config["extract"].items() if k in ("top_k", "histogram_bins", "thumbnail_size")}
    )
    model = ModelSpec(name=config["model"]["name"], weights="random", device="cpu")
    run_reduce(settings, model, sorted((run_dir / "extract" / "shards").iterdir()), out)
    return out


def assert_same_reductions(path, reference):
    import h5py

    with h5py.File(path, "r") as a, h5py.File(reference, "r") as b:
        found = []
        a["layers"].visititems(lambda key, obj: found.append(key) if isinstance(obj, h5py.Dataset) else None)
        assert any(key.endswith("correlation") for key in found)
        for key in found:
            x, y = a["layers"][key], b["layers"][key]
            if x.dtype.kind == "f":
                np.testing.assert_allclose(x[()], y[()], rtol=1e-6, atol=1e-7, err_msg=key)
            else:
                np.testing.assert_array_equal(x[()], y[()], err_msg=key)


@pytest.mark.slow
def test_a_source_without_images_stops_the_run_with_a_clear_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(extract_config(tmp_path / "images")))
    proc = run_on_two_cores(tmp_path, "results/e2e/activations.h5", check=False)
    assert proc.returncode != 0
    log = tmp_path / "results" / "e2e" / "logs" / "list_images" / "list_images.log"
    message = proc.stdout + proc.stderr + (log.read_text() if log.is_file() else "")
    assert "no images" in message or "holds no images" in message
    assert not (tmp_path / "results" / "e2e" / "activations.h5").exists()


@pytest.mark.slow
def test_an_unknown_layer_stops_the_run_naming_the_layers(tmp_path):
    images = tmp_path / "images"
    plant_images(images)
    cfg = extract_config(images)
    cfg["extract"]["layers"] = ["early", "middle"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_on_two_cores(tmp_path, "results/e2e/activations.h5", check=False)
    assert proc.returncode != 0
    assert "layer 'middle' does not exist" in proc.stdout + proc.stderr
    assert "layers: early, late" in proc.stdout + proc.stderr
    assert not (tmp_path / "results" / "e2e" / "extract").exists()
