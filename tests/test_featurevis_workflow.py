"""End to end: the Snakemake feature-visualization stage on a tiny model."""

import os
import shutil

import numpy as np
import pytest
import torch

from tests.helpers.workflow import run_on_two_cores, write_config

TINY_NET = "tests.helpers.models:tiny_featurevis_net"


def snakemake(tmp_path, config: dict, *extra):
    write_config(tmp_path, config)
    return run_on_two_cores(tmp_path, *extra, check=False)


def tiny_config(**featurevis):
    return {
        "run": "tiny",
        "results_dir": "results",
        "threads": 1,  # relative to --directory
        "model": {"name": TINY_NET, "weights": "random"},
        "extract": {"enabled": False},
        "featurevis": {
            "layers": ["conv1", "conv2"],
            "channels": "all",
            "steps": 8,
            "image_size": 24,
            "batch_size": 2,
            "channels_per_job": 3,
            "curve_points": 4,
            "diversity": 2,
            "negatives": True,
            "neurons": True,
            # The extra images on the Building Blocks layers only (resolved by the workflow).
            "extra_layers": "blocks",
            "extra_steps": 4,
            "extra_image_size": 16,
            **featurevis,
        },
        "blocks": {"enabled": False, "layers": ["conv2"]},
    }


TARGET = "results/tiny/featurevis.h5"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny run of the stage: conv1 (5 channels) and conv2 (3), 3 channels per job."""
    workdir = tmp_path_factory.mktemp("workflow")
    result = snakemake(workdir, tiny_config(), TARGET)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_workflow_renders_every_requested_channel(finished_run):
    from pipeline.store.featurevis import FeatureVisStore

    run = finished_run / "results" / "tiny"
    shards = sorted(
        p.relative_to(run / "featurevis" / "shards").as_posix()
        for p in (run / "featurevis" / "shards").glob("*/*.h5")
    )
    assert shards == ["conv1/0-3.h5", "conv1/3-5.h5", "conv2/0-3.h5"]
    assert (run / "logs" / "featurevis_shard" / "conv1" / "3-5.log").is_file()
    assert (run / "benchmarks" / "featurevis_shard" / "conv1" / "3-5.tsv").is_file()
    with FeatureVisStore(finished_run / TARGET) as fv:
        assert fv.layers == ["conv1", "conv2"]
        assert fv.channels("conv1").tolist() == [0, 1, 2, 3, 4]
        assert fv.channels("conv2").tolist() == [0, 1, 2]
        assert fv.images("conv1").shape == (5, 24, 24, 3)
        assert fv.image("conv2", 2).shape == (24, 24, 3)
        # The extra images at their own size and steps.
        assert fv.diversity_images("conv2").shape == (3, 2, 16, 16, 3)
        assert fv.negative_images("conv2").shape == (3, 16, 16, 3)
        assert fv.neuron_images("conv2").shape == (3, 16, 16, 3)
        extra = fv.extra_schedule("conv2")
        assert (extra["steps"], extra["image_size"]) == (4, 16) and fv.schedule("conv2")[1]["steps"] == 8
        # conv1 is not a Building Blocks layer: its channel images only.
        assert fv.diversity_images("conv1") is None and fv.negative_images("conv1") is None
        assert fv.neuron_images("conv1") is None
        assert fv.settings["steps"] == 8 and fv.provenance["model"]["name"] == TINY_NET
        assert ((fv.rank("conv1") >= 1) & (fv.rank("conv1") <= 5)).all()
        steps, curve = fv.curve("conv1")
        assert steps.tolist() == [0, 2, 5, 7] and curve.shape == (5, 4)
        stored = fv.image("conv2", 2)
        stored_exact = fv.image("conv1", 3)

    # The engine called directly gives the store's image: shards, batches and the
    # workflow add nothing and lose nothing. conv2 (after a ReLU) is optimised; conv1, the
    # first convolution, is affine in the image, so its images are computed exactly.
    from pipeline.images.dataset import to_uint8
    from pipeline.model import load_model
    from pipeline.optvis import objectives as obj
    from pipeline.optvis.exact import exact_render, is_affine
    from pipeline.optvis.render import RenderOptions, render

    model = load_model(TINY_NET, weights="random")
    options = RenderOptions(steps=8, size=24, curve_points=4)
    assert not is_affine(model, "conv2", pre_activation=True, size=24)
    alone = render(model, obj.channel("conv2", 2), 1, options, item_keys=[2])
    assert abs(to_uint8(alone.images)[0].astype(int) - stored.astype(int)).max() <= 1
    assert is_affine(model, "conv1", pre_activation=True, size=24)
    exact = exact_render(
        model, obj.per_item([obj.channel("conv1", 3)]), 1, 24, pre_activation=True, curve_points=4
    )
    np.testing.assert_array_equal(to_uint8(exact.images)[0], stored_exact)


@pytest.mark.slow
def test_merge_refuses_a_stale_shard(finished_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(finished_run, workdir)
    os.remove(workdir / TARGET)
    os.remove(workdir / "results" / "tiny" / "featurevis" / "shards" / "conv1" / "3-5.h5")
    # Other settings, and params not a rerun trigger: only the missing shard is
    # re-rendered, and the merge must refuse to mix it with the old ones.
    result = snakemake(workdir, tiny_config(steps=9), TARGET, "--rerun-triggers", "mtime")
    assert result.returncode != 0
    log = (workdir / "results" / "tiny" / "logs" / "featurevis_merge" / "featurevis_merge.log").read_text()
    assert "config_hash" in log and "differs" in log
    assert not (workdir / TARGET).exists()


def test_render_batch_measures_each_channel_on_its_own_image():
    from pipeline.featurevis import FeaturevisSettings, batches
    from pipeline.featurevis.render import render_batch
    from pipeline.model import load_model
    from pipeline.optvis.render import activations

    model = load_model(TINY_NET, weights="random")
    settings = FeaturevisSettings(
        steps=6, image_size=16, curve_points=3, diversity=3, negatives=True, neurons=True
    )
    out = render_batch(model, "conv1", [4, 1], settings, settings.schedule(1))
    assert out["images"].shape == (2, 16, 16, 3) and out["images"].dtype.name == "uint8"
    assert out["curve"].shape == (2, 3)
    assert out["diversity_images"].shape == (2, 3, 16, 16, 3)
    assert out["diversity_activation"].shape == (2, 3)
    assert out["negative_images"].shape == (2, 16, 16, 3)
    # value is the channel objective on the float image, activation the same on the stored
    # uint8 image; the rank is counted over all five channels of conv1 on that stored image
    assert out["value"] == pytest.approx(out["activation"], rel=0.05, abs=0.02)
    images = torch.from_numpy(out["images"]).permute(0, 3, 1, 2).float() / 255
    means = activations(model, images, ["conv1"])["conv1"].mean(dim=(2, 3))
    for row, channel in enumerate([4, 1]):
        expected = 1 + int((means[row] > means[row, channel]).sum())
        assert out["rank"][row] == expected
        assert out["activation"][row] == pytest.approx(means[row, channel].item(), rel=1e-6)
        # responses: every channel's mean on the row's image, the same measurement
        np.testing.assert_allclose(out["responses"][row], means[row].numpy(), rtol=1e-6)
    # The negative images push the channel down, below its value on the positive image.
    assert (out["negative_activation"] < out["activation"]).all()
    # The neuron image is measured at the centre position of its stored image.
    neurons = torch.from_numpy(out["neuron_images"]).permute(0, 3, 1, 2).float() / 255
    centre = activations(model, neurons, ["conv1"])["conv1"]
    h, w = centre.shape[-2:]
    for row, channel in enumerate([4, 1]):
        assert out["neuron_activation"][row] == pytest.approx(
            centre[row, channel, h // 2, w // 2].item(), rel=1e-6
        )
    assert batches([1, 2, 3, 4, 5], 4, diversity=2) == [[1, 2], [3, 4], [5]]


def test_unknown_layer_stops_the_workflow_naming_it(tmp_path):
    result = snakemake(tmp_path, tiny_config(layers=["conv9"]), TARGET)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "conv9" in output and "conv1, conv2" in output
