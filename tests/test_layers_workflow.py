"""The workflow's `layers` checkpoint reruns when a custom loader's source changes.

The loader lives in a file of the test's own (not in tests/helpers, which other tests
read): it is run once, then edited, and a dry run must plan the `layers` job again.
"""

from pathlib import Path

import yaml

from tests.helpers.workflow import run_workflow, tiny_config

LOADER = """
import torch
from torch import nn


def net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return {"model": model, "input_size": 8, "class_names": ["a", "b"]}
"""
LAYERS_JSON = "results/tiny/model/layers.json"


def planned(workdir: Path) -> str:
    """The dry run's plan for layers.json (Snakemake's job table and reasons)."""
    return run_workflow(workdir, "--cores", "1", "--dry-run", LAYERS_JSON).stdout


def test_editing_a_custom_loader_rediscovers_its_layers(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    (code / "edited_loader.py").write_text(LOADER)
    monkeypatch.setenv("PYTHONPATH", str(code))  # the jobs import the loader from here
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = tiny_config(model={"name": "edited_loader:net", "weights": "random"})
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))

    run_workflow(workdir, "--cores", "1", LAYERS_JSON)
    assert (workdir / LAYERS_JSON).is_file()
    assert "Nothing to be done" in planned(workdir)
    # A change to the loader's source (here a second channel's worth of comment) reruns discovery.
    (code / "edited_loader.py").write_text(LOADER + "\n# a second thought\n")
    plan = planned(workdir)
    assert "layers" in plan and "Params have changed" in plan, plan
    # And changed back: the recorded hash matches again.
    (code / "edited_loader.py").write_text(LOADER)
    assert "Nothing to be done" in planned(workdir)
