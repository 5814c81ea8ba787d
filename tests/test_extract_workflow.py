"""End to end: the Snakemake extraction stage on a tiny source with planted bad files."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from tests.workflow_runner import REPO, run_workflow
CLASSES = ["cat", "dog", "fish"]


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, len(CLASSES))

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def tiny_conv_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = TinyConvNet()
    return {"model": net, "input_size": 32, "class_names": CLASSES,
            "layers": [("early", "features.1"), ("late", "features.3")]}


GOOD = {"cat/a.jpg": (200, 40, 40), "cat/b.png": (40, 200, 40), "dog/c.jpg": (40, 40, 200),
        "dog/d.jpg": (220, 220, 30), "dog/e.jpg": (30, 30, 30)}
BAD = ("cat/empty.jpg", "dog/truncated.jpg", "cat/notes.jpg")


def plant_images(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for name, colour in GOOD.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(rng.normal(colour, 30, size=(40, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
    (folder / "cat/empty.jpg").write_bytes(b"")
    (folder / "dog/truncated.jpg").write_bytes((folder / "dog/c.jpg").read_bytes()[:200])
    (folder / "cat/notes.jpg").write_text("this is not a picture\n")


def config(images: Path) -> dict:
    return {
        "run": "e2e", "device": "cpu", "threads": 1,
        "model": {"name": "tests.test_extract_workflow:tiny_conv_net", "weights": "random"},
        "dataset": {"kind": "imagefolder", "path": str(images)},
        "featurevis": {"enabled": False},
        "extract": {"layers": "all", "images_per_shard": 3, "batch_size": 2, "top_k": 3,
                    "histogram_bins": 4, "thumbnail_size": 8, "attribution": "gradient"},
    }


def run(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_workflow(workdir, "--cores", "2", "--scheduler", "greedy", *args, check=check)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_workflow_extracts_good_images_and_lists_bad_ones(tmp_path):
    images = tmp_path / "images"
    plant_images(images)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config(images)))
    run(tmp_path, "results/e2e/activations.h5")
    run_dir = tmp_path / "results" / "e2e"
    listing = json.loads((run_dir / "dataset" / "images.json").read_text())
    assert len(listing["records"]) == 8
    shards = sorted(p.name for p in (run_dir / "extract" / "shards").iterdir())
    assert shards == ["0-3.h5", "3-6.h5", "6-8.h5"]
    for shard in ("0-3", "3-6", "6-8"):   # one log (with its progress bar) and benchmark each
        assert "extract" in (run_dir / "logs" / "extract_shard" / f"{shard}.log").read_text()
        assert (run_dir / "benchmarks" / "extract_shard" / f"{shard}.tsv").is_file()

    summary = cli("query", str(run_dir), "summary", "--json")
    assert summary.returncode == 0, summary.stderr
    summary = json.loads(summary.stdout)
    assert summary["images"] == len(GOOD) and summary["labelled_images"] == len(GOOD)
    assert summary["layers"] == {"early": 4, "late": 6}
    skipped = {Path(s["path"]).relative_to(images).as_posix(): s["reason"]
               for s in summary["skipped_images"]}
    assert set(skipped) == set(BAD) and all(skipped.values())

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
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config(tmp_path / "images")))
    proc = run(tmp_path, "results/e2e/activations.h5", check=False)
    assert proc.returncode != 0
    log = tmp_path / "results" / "e2e" / "logs" / "list_images" / "list_images.log"
    message = proc.stdout + proc.stderr + (log.read_text() if log.is_file() else "")
    assert "no images" in message or "holds no images" in message
    assert not (tmp_path / "results" / "e2e" / "activations.h5").exists()


@pytest.mark.slow
def test_an_unknown_layer_stops_the_run_naming_the_layers(tmp_path):
    images = tmp_path / "images"
    plant_images(images)
    cfg = config(images)
    cfg["extract"]["layers"] = ["early", "middle"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run(tmp_path, "results/e2e/activations.h5", check=False)
    assert proc.returncode != 0
    assert "layer 'middle' does not exist" in proc.stdout + proc.stderr
    assert "layers: early, late" in proc.stdout + proc.stderr
    assert not (tmp_path / "results" / "e2e" / "extract").exists()
