"""Capped layers (ending in ReLU6, Sigmoid, ...) found by discovery, tapped and rendered at
their pre-activation, recorded as such in the featurevis store (pipeline.model.layers,
pipeline.model.hooks, pipeline.optvis, pipeline.featurevis, pipeline.store.featurevis)."""

import dataclasses

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.featurevis import FeaturevisSettings, run_featurevis_shard
from pipeline.model import ModelSpec, layers_document, load_model
from pipeline.model.hooks import LayerTap
from pipeline.optvis import objectives as obj
from pipeline.optvis.render import RenderOptions, activations, render
from pipeline.optvis.speedup import speed_up
from pipeline.store import StoreError
from pipeline.store.featurevis import FeatureVisStore, ShardLayout, merge_shards, shard_writer
from tests.helpers.provenance import record

CAPPED = "tests.helpers.models:capped_net"


@pytest.fixture()
def capped():
    return load_model(CAPPED)


def test_discovery_records_the_bounded_activation_a_layer_ends_in(capped):
    found = {layer.name: (layer.cap, layer.pre_activation) for layer in capped.layers}
    assert found == {
        "block": ("ReLU6", "block.1"),  # the Dropout after it hands its input back
        "gate": ("Sigmoid", "gate.1"),
        "squash": (None, None),  # F.relu6: no module to tap
        "head": (None, None),  # ReLU is not bounded
    }
    records = {r["name"]: r for r in layers_document(capped)["layers"]}
    assert records["block"]["cap"] == "ReLU6" and records["block"]["pre_activation"] == "block.1"
    assert records["head"]["cap"] is None and records["head"]["pre_activation"] is None


def test_the_tap_returns_the_pre_activation_by_hand(capped):
    white = torch.ones(1, 3, 4, 4)
    white[0, :, 0, 0] = 0.5  # one grey pixel: p0 = 4.5 there, under the cap
    pre = activations(capped, white, ["block"], pre_activation=True)["block"]
    out = activations(capped, white, ["block"])["block"]
    expected = torch.full((1, 2, 4, 4), 9.0)
    expected[0, 0, 0, 0] = 4.5
    expected[0, 1] = 0.0  # R - G
    torch.testing.assert_close(pre, expected)
    torch.testing.assert_close(out, expected.clamp(0, 6))
    # Uncapped layers are tapped at their output either way; both at once, untruncated.
    both = activations(capped, white, ["block", "head"], pre_activation=True, truncate=False)
    torch.testing.assert_close(both["block"], expected)
    torch.testing.assert_close(both["head"], activations(capped, white, ["head"])["head"])


def test_an_input_tap_truncates_before_its_module_and_survives_in_place_ops(capped):
    modules, inputs = capped.tap_points(["block"], pre_activation=True)
    ran = []
    capped.net.block[1].register_forward_hook(lambda *_: ran.append("relu6"))
    assert modules == {"block": capped.net.block[1]} and inputs == {"block"}
    white = torch.ones(1, 3, 4, 4)
    acts, logits = LayerTap(capped.net, modules, inputs)(white)
    assert logits is None and ran == []  # stopped before the ReLU6 ran
    capped.net.block[1].inplace = True  # would overwrite the captured input if not copied
    acts, logits = LayerTap(capped.net, modules, inputs)(white, truncate=False)
    assert logits is not None and ran == ["relu6"] and acts["block"][0, 0].min() == 9.0
    with pytest.raises(ValueError, match="inputs"):
        LayerTap(capped.net, modules, inputs={"other"})


def test_rendering_at_the_pre_activation_rises_above_the_cap(capped):
    objective = obj.channel("block", 0)  # mean of 3 (R + G + B): 4.5 on grey, at most 9
    options = RenderOptions(steps=80, size=8, lr=0.1, transforms=None)
    at_output = render(capped, objective, 1, options)
    before_cap = render(capped, objective, 1, dataclasses.replace(options, pre_activation=True))
    assert at_output.values.item() <= 6.0 and at_output.curve.max() <= 6.0
    assert before_cap.values.item() > 7.0  # past the cap, which the output can never pass
    # The returned value is the objective on the pre-activation of the final image.
    again = activations(capped, before_cap.images, ["block"], pre_activation=True)["block"]
    assert again[:, 0].mean().item() == pytest.approx(before_cap.values.item(), rel=1e-4)


def test_the_featurevis_shard_records_the_optimised_tensor(tmp_path, capped):
    settings = FeaturevisSettings(steps=96, image_size=8, batch_size=2, lr=0.1, curve_points=3)
    spec = ModelSpec(CAPPED, "random")
    run_featurevis_shard(settings, spec, "block", 0, 2, tmp_path / "block.h5")
    run_featurevis_shard(settings, spec, "head", 0, 2, tmp_path / "head.h5")
    run_featurevis_shard(settings.replace(pre_activation=False), spec, "block", 0, 2, tmp_path / "out.h5")
    store = merge_shards([tmp_path / "block.h5", tmp_path / "head.h5"], tmp_path / "featurevis.h5")
    for path in (tmp_path / "block.h5", store):
        with FeatureVisStore(path) as fv:
            assert fv.fh.attrs["format_version"] == 3 and fv.settings["pre_activation"] is True
            assert fv.tensor("block") == ("pre-activation", "ReLU6")
            activation = fv.activation("block")
            # Measured on the stored image's pre-activation: channel 0 past the cap.
            stored = torch.from_numpy(fv.images("block")[()]).permute(0, 3, 1, 2).float() / 255
            means = activations(capped, stored, ["block"], pre_activation=True)["block"].mean((2, 3))
            np.testing.assert_allclose(activation, means[[0, 1], [0, 1]].numpy(), rtol=1e-5)
            assert activation[0] > 6.0
    with FeatureVisStore(store) as fv:
        assert fv.tensor("head") == ("output", "")
        # "block"'s pre-activation is affine in the image (rendered exactly): its 1x1
        # filters are p0 = 3 (R + G + B) and p1 = R - G. "head" (its ReLU dead on every
        # image: constant, so trivially affine) depends on no pixel: no filters.
        np.testing.assert_array_equal(fv.filters("block")[()], [[[[3, 3, 3]]], [[[1, -1, 0]]]])
        assert fv.filters("head") is None
    with FeatureVisStore(tmp_path / "out.h5") as fv:
        assert fv.tensor("block") == ("output", "ReLU6") and fv.activation("block")[0] <= 6.0


def _write_version_1_shard(path):
    """A shard as model-atlas wrote it before version 2: no `tensor` or `cap` attributes."""
    layout = ShardLayout(
        layer="conv", layer_channels=2, channels=[0], start=0, stop=2, image_size=4, curve_steps=[0]
    )
    with shard_writer(path, layout, settings=record({"steps": 1})) as writer:
        arrays = {
            "images": np.zeros((1, 4, 4, 3)),
            "value": [1],
            "activation": [1],
            "rank": [1],
            "curve": [[1]],
        }
        writer.write([0], arrays)
    with h5py.File(path, "r+") as fh:
        fh.attrs["format_version"] = 1
        del fh["layers/conv"].attrs["tensor"], fh["layers/conv"].attrs["cap"]
        del fh["layers/conv/responses"], fh["layers/conv"].attrs["preset"]
    return path


def test_a_version_1_file_reads_as_outputs(tmp_path):
    old = _write_version_1_shard(tmp_path / "old.h5")
    with FeatureVisStore(old) as fv:
        assert fv.tensor("conv") == ("output", "") and fv.activation("conv").tolist() == [1.0]
    with FeatureVisStore(merge_shards([old], tmp_path / "merged.h5")) as fv:
        assert fv.fh.attrs["format_version"] == 3 and fv.tensor("conv") == ("output", "")
        assert fv.image_rank("conv") is None  # a version 1 shard has no responses to rank by


def test_shards_that_disagree_on_the_tensor_do_not_merge(tmp_path):
    def shard(name, channel, tensor):
        layout = ShardLayout("conv", 2, [channel], channel, channel + 1, 4, [0], tensor=tensor, cap="ReLU6")
        with shard_writer(tmp_path / name, layout, settings=record({"steps": 1})) as writer:
            arrays = {"images": np.zeros((1, 4, 4, 3)), "value": [1], "activation": [1], "rank": [1]}
            writer.write([channel], {**arrays, "curve": [[1]]})
        return tmp_path / name

    parts = [shard("a.h5", 0, "pre-activation"), shard("b.h5", 1, "output")]
    with pytest.raises(StoreError, match="different tensors"):
        merge_shards(parts, tmp_path / "merged.h5")
    with pytest.raises(ValueError, match="needs the layer's cap"):
        with shard_writer(
            tmp_path / "c.h5",
            ShardLayout("conv", 2, [0], 0, 1, 4, [0], tensor="pre-activation"),
            settings=record({}),
        ):
            pass


@pytest.mark.slow
def test_lite0_head_pre_activation_survives_speed_up():
    """The embedded Lite0's stem and head end in ReLU6 (timm's BatchNormAct2d); speed_up
    moves ``bn2.act`` to ``bn2.1`` and the model still taps the same tensor."""
    model = load_model("efficientnet_lite0")
    caps = {layer.name: (layer.cap, layer.pre_activation) for layer in model.layers if layer.cap}
    assert caps == {"stem": ("ReLU6", "bn1.act"), "head": ("ReLU6", "bn2.act")}
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    before = activations(model, images, ["head"], pre_activation=True)["head"]
    output = activations(model, images, ["head"])["head"]
    torch.testing.assert_close(before.clamp(0, 6), output, rtol=0, atol=0)
    assert before.max() > 6.0  # not capped
    # ... and it is the batch norm of conv_head's output, which timm computes as a function.
    conv_out, _ = LayerTap(model.net, {"conv": model.net.conv_head})(model.normalize(images))
    bn = model.net.bn2
    expected = F.batch_norm(conv_out["conv"], bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps)
    torch.testing.assert_close(before, expected)
    speed_up(model)
    assert model.cap_modules()["head"] is model.net.bn2[1]  # moved by the rewrite, found by object
    after = activations(model, images, ["head"], pre_activation=True)["head"]
    assert after.max() > 6.0
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    # The render loop taps the same tensor through the rewritten network.
    options = RenderOptions(steps=2, size=64, pre_activation=True)
    result = render(model, obj.channel("head", 5), 1, options)
    measured = activations(model, result.images, ["head"], pre_activation=True)["head"][0, 5].mean()
    capped = activations(model, result.images, ["head"])["head"][0, 5].mean()
    assert result.values.item() == pytest.approx(measured.item(), rel=1e-4, abs=1e-5)
    assert abs(measured - capped) > 1e-3
