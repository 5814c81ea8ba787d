"""Running the repository's real workflow from tests: one way, shared by every end-to-end test.

Each run gets its own working directory (its own .snakemake, results and config.yaml);
jobs import the test models (``tests.helpers.models``) from this repository through PYTHONPATH.
"""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def tiny_config(**sections) -> dict:
    """A whole run on the hand-made test model: a few steps, few images, small shards.

    ``sections`` replace top-level keys (``blocks={"enabled": False}``, say).
    """
    config = {
        "run": "tiny",
        "model": {"name": "tests.helpers.models:shared_relu_net", "weights": "random"},
        "device": "cpu",
        "threads": 1,
        "dataset": {"kind": "bundled", "max_images": 4},
        "featurevis": {
            "layers": ["conv1", "conv2"],
            "steps": 2,
            "image_size": 16,
            "batch_size": 2,
            "channels_per_job": 2,
        },
        "extract": {
            "layers": ["conv1", "conv2"],
            "images_per_shard": 2,
            "batch_size": 2,
            "attribution": "none",
            "top_k": 2,
            "histogram_bins": 4,
        },
        # The default Building Blocks layer is EfficientNet-Lite0's: name the tiny model's.
        "blocks": {"layers": ["conv1", "conv2"]},
    }
    config.update(sections)
    return config


def extract_config(images: Path) -> dict:
    """Extraction only (with gradient attribution) of the image folder ``images`` on
    ``tests.helpers.models:tiny_conv_net``: three images per shard, top 3, 8-pixel thumbnails."""
    return {
        "run": "e2e",
        "device": "cpu",
        "threads": 1,
        "model": {"name": "tests.helpers.models:tiny_conv_net", "weights": "random"},
        "dataset": {"kind": "imagefolder", "path": str(images)},
        "featurevis": {"enabled": False},
        "extract": {
            "layers": "all",
            "images_per_shard": 3,
            "batch_size": 2,
            "top_k": 3,
            "histogram_bins": 4,
            "thumbnail_size": 8,
            "attribution": "gradient",
        },
    }


def write_config(workdir: Path, config: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def workflow_env() -> dict:
    """The environment of a workflow run: the repository importable, fast malloc, no GPU pool."""
    env = dict(
        os.environ,
        MALLOC_MMAP_MAX_="0",
        MALLOC_TRIM_THRESHOLD_="100000000000",
        PYTHONPATH=os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH")] if p),
    )
    env.pop("MODEL_ATLAS_GPUS", None)
    return env


def workflow_command(workdir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]


def run_workflow(
    workdir: Path, *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run snakemake on ``workdir/config.yaml``; with ``check``, fail with its output."""
    proc = subprocess.run(
        workflow_command(workdir, *args),
        cwd=REPO,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def run_on_two_cores(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``run_workflow`` with two cores and the greedy scheduler (no ILP solver needed)."""
    return run_workflow(workdir, "--cores", "2", "--scheduler", "greedy", *args, check=check)


def cli(*args: str) -> subprocess.CompletedProcess:
    """``model-atlas ARGS`` (the CLI of this repository) in a subprocess."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
