"""End to end: the Snakemake extraction stage on a tiny source with planted bad files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.images import read_listing
from tests.helpers.images import BAD_IMAGES, GOOD_IMAGES, plant_images
from tests.helpers.models import TINY_CONV_CLASSES as CLASSES
from tests.helpers.workflow import REPO, extract_config, run_on_two_cores


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_workflow_extracts_good_images_and_lists_bad_ones(tmp_path):
    images = tmp_path / "images"
    plant_images(images)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(extract_config(images)))
    run_on_two_cores(tmp_path, "results/e2e/activations.h5")
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
