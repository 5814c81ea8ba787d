"""End to end: the Snakemake Building Blocks stage on a tiny model, read back by the store and the query."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.helpers.workflow import REPO, run_on_two_cores

COLOURS = {"red.png": (200, 40, 40), "blue.png": (40, 40, 200)}


def plant_images(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        pixels = np.clip(rng.normal(colour, 30, size=(20, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return [str(folder / name) for name in COLOURS]


def config(images: Path, featured, **blocks) -> dict:
    return {
        "run": "bb",
        "device": "cpu",
        "threads": 1,
        "model": {"name": "tests.helpers.models:tiny_blocks_net", "weights": "random"},
        "dataset": {"kind": "folder", "path": str(images)},
        "featurevis": {"enabled": False},
        "site": {"enabled": False},
        "extract": {
            "layers": "all",
            "images_per_shard": 2,
            "batch_size": 2,
            "top_k": 2,
            "histogram_bins": 4,
            "thumbnail_size": 8,
        },
        "blocks": {
            "images": featured,
            "layers": ["features2", "features1"],
            "grid": 2,
            "grid_steps": 3,
            "grid_size": 16,
            "grid_batch": 4,
            "group_icon_size": 16,
            "groups": 2,
            "top_classes": 2,
            "second_class": "cat",
            **blocks,
        },
    }


@pytest.mark.slow
def test_workflow_writes_blocks_that_the_store_and_the_query_return(tmp_path):
    images = tmp_path / "images"
    featured = plant_images(images)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config(images, featured)))
    run_on_two_cores(tmp_path)  # rule all: extraction and blocks
    run_dir = tmp_path / "results" / "bb"
    assert sorted(p.name for p in (run_dir / "blocks" / "images").iterdir()) == ["0.h5", "1.h5"]
    assert "Building Blocks of red.png" in (run_dir / "logs" / "blocks_image" / "0.log").read_text()

    from pipeline.query import open_results
    from pipeline.store.blocks import BlocksStore

    with BlocksStore(run_dir / "blocks.h5") as store:
        assert store.image_ids == ["red.png", "blue.png"]
        assert list(store.layers) == ["features1", "features2"]  # execution order
        assert store.settings["grid"] == 2 and store.input_image("red.png").shape == (16, 16, 3)
        info = store.image("blue.png")
        assert info["classes"]["second"] == 2  # "cat"
    with open_results(run_dir) as results:
        blocks = results.blocks("red.png", "features2")
        classes = len(results.image("red.png")["blocks"]["classes"])
        assert blocks["grid"]["icons"].shape == (2, 2, 16, 16, 3)
        assert blocks["from_previous"]["cells"].shape == (classes, 4, 4)
        assert blocks["from_previous"]["groups"].shape == (classes, 2, 2)
        assert (blocks["groups"]["maps"] >= 0).all()

    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "query", str(run_dir), "image", "red.png", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    image = json.loads(proc.stdout)["blocks"]
    assert image["classes"][-1]["class_name"] == "cat" and image["second_class"] == 2
    assert len(image["classes"]) == classes and all("logit" in k for k in image["classes"])
    layer = image["layers"]["features2"]
    assert np.asarray(layer["dictionary"]["channels"]).shape == (2, 2, 4)  # on the 2 x 2 grid
    assert np.asarray(layer["attribution"]["spatial"]).shape[1:] == (4, 4)
    assert np.asarray(layer["attribution"]["spatial_grid"]).shape == (classes, 2, 2)
    assert layer["grid"]["icons"]["shape"] == [2, 2, 16, 16, 3]
    assert layer["from_previous"]["layer"] == "features1"

    text = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "query", str(run_dir), "image", "red.png"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=120,
    ).stdout
    assert "Building Blocks, attributed classes: " in text and "cat (logit " in text
    assert re.search(r"features1 +2x2 cells, total \S+\n", text)
    assert re.search(r"features2 +2x2 cells, total \S+, flows from features1", text)

    # The image page explains the same layers and classes as the query.
    from pipeline.site import reader
    from pipeline.site.build import build_site

    with reader.from_results(run_dir) as data:
        site = build_site(data, tmp_path / "site")
    html = (site / "images" / "red.png.html").read_text()
    page = json.loads(html.split('id="blocks-data">', 1)[1].split("</script>", 1)[0])
    assert [layer["name"] for layer in page["layers"]] == list(image["layers"])
    assert [k["id"] for k in page["classes"]] == [k["class_id"] for k in image["classes"]]
    np.testing.assert_allclose(
        np.asarray(page["layers"][1]["spatial"], float),
        np.asarray(layer["attribution"]["spatial_grid"], float).reshape(classes, 4),
        rtol=1e-3,
    )


@pytest.mark.slow
def test_an_unknown_blocks_layer_stops_the_run_naming_it(tmp_path):
    images = tmp_path / "images"
    featured = plant_images(images)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config(images, featured, layers=["mixed4d"])))
    proc = run_on_two_cores(tmp_path, "results/bb/blocks.h5", check=False)
    assert proc.returncode != 0
    assert "layer 'mixed4d' does not exist" in proc.stdout + proc.stderr
    assert not (tmp_path / "results" / "bb" / "blocks.h5").exists()
