"""A first layer whose rendered tensor is affine in the image (EfficientNet's stem before
its ReLU6) gets the exact maximiser of its objectives (pipeline.optvis.exact), which
gradient ascent under random transformations does not find; other layers are optimised."""

import numpy as np
import pytest
import torch

from pipeline.featurevis import FeaturevisSettings, run_featurevis_shard
from pipeline.featurevis.presets import Schedule
from pipeline.featurevis.render import exact_filters, render_batch
from pipeline.model import ModelSpec, load_model
from pipeline.optvis import objectives as obj
from pipeline.optvis.exact import effective_filters, exact_render, is_affine
from pipeline.store.featurevis import FeatureVisStore, image_ranks, merge_shards

STEM = "tests.helpers.models:linear_stem_net"


@pytest.fixture()
def model():
    return load_model(STEM)


def test_only_the_pre_activation_of_the_first_layer_is_affine(model):
    assert is_affine(model, "stem", pre_activation=True, size=8)
    assert not is_affine(model, "stem", pre_activation=False, size=8)  # after its ReLU6
    assert not is_affine(model, "head", pre_activation=True, size=8)  # a ReLU in between


def test_the_exact_images_are_the_hand_computed_maximisers(model):
    result = exact_render(
        model,
        obj.per_item([obj.channel("stem", 0), obj.channel("stem", 1)]),
        2,
        8,
        pre_activation=True,
        curve_points=4,
    )
    lines = torch.zeros(3, 8, 8)
    lines[:, 0::2] = 1.0  # even rows white, odd rows black, every colour
    torch.testing.assert_close(result.images[0], lines)
    # Channel 1 reads only the centre tap, the even rows and columns at stride 2: red
    # there, grey wherever a pixel does not matter.
    red = torch.full((3, 8, 8), 0.5)
    red[0, 0::2, 0::2], red[2, 0::2, 0::2] = 1.0, 0.0
    torch.testing.assert_close(result.images[1], red)
    # Channel 0 at a position: 2 x 3 colours x the middle row's white pixels (3, or 2 in
    # the first column, whose left tap is padding); the rows above and below are black or
    # padding. Mean over the 4 columns of positions: (12 + 3 x 18) / 4 = 16.5.
    torch.testing.assert_close(result.values, torch.tensor([16.5, 1.0]))
    assert result.curve.shape == (4, 2) and result.steps == 0


def test_render_batch_takes_the_exact_path_and_the_images_are_not_flat(model):
    settings = FeaturevisSettings(preset="fast", negatives=True, neurons=True)
    schedule = Schedule(
        steps=8, image_size=8, batch_size=2, lr=0.05, init_sd=0.1, decay_power=1.5, adam_betas=(0.8, 0.99)
    )
    out = render_batch(model, "stem", [0, 1], settings, schedule)
    line_image = out["images"][0]
    assert set(np.unique(line_image)) == {0, 255}  # exact: no optimiser lands on the box's corners
    assert line_image[0::2].min() == 255 and line_image[1::2].max() == 0
    assert (out["negative_images"][0][0::2] == 0).all()  # the minimiser: the lines inverted
    np.testing.assert_array_equal(image_ranks(out["responses"], np.array([0, 1])), [1, 1])
    # The neuron image is the filter at the centre position (4x4 map: position (2, 2),
    # rows and columns 3..5 of the image), grey where the pixel does not reach that position.
    neuron = out["neuron_images"][0]
    assert neuron[4, 3:6].min() == 255 and neuron[3, 3:6].max() == 0 and neuron[5, 3:6].max() == 0
    assert (neuron[0] == 128).all() or (neuron[0] == 127).all()
    # A layer behind a ReLU is optimised as before: its images are not box corners.
    head = render_batch(model, "head", [0], FeaturevisSettings(preset="fast"), schedule)
    assert len(np.unique(head["images"])) > 2


def test_the_effective_filters_are_the_stems_weights(model):
    """The gradient at the centre position, cropped to its 3x3 receptive field, is the
    convolution's weights as ``[rows, columns, colours]``: channel 0 the line detector's
    rows (-1, 2, -1) in every colour, channel 1 red +1 and blue -1 at the centre tap."""
    filters = effective_filters(model, "stem", pre_activation=True, size=8)
    expected = np.zeros((2, 3, 3, 3), np.float32)
    expected[0] = np.array([-1.0, 2.0, -1.0]).reshape(3, 1, 1)
    expected[1, 1, 1] = [1.0, 0.0, -1.0]
    assert filters.dtype == np.float32
    np.testing.assert_array_equal(filters, expected)
    # One channel per backward pass's batch or all at once: the same filters.
    np.testing.assert_array_equal(
        effective_filters(model, "stem", pre_activation=True, size=8, batch=1), expected
    )


def test_the_effective_filters_include_the_input_normalisation():
    """With inputs normalised by ``(x - mean) / std``, a unit of the [0, 1] image's colour k
    moves the network's input by ``1 / std[k]``: the filter is the weights over std (the
    mean shifts only the bias, not the filter)."""
    std = (0.5, 0.25, 2.0)
    normalised = load_model(STEM, mean=(0.1, 0.2, 0.3), std=std)
    filters = effective_filters(normalised, "stem", pre_activation=True, size=12)
    assert filters.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(filters[0, :, :, 0], [[-2.0] * 3, [4.0] * 3, [-2.0] * 3])  # red / 0.5
    np.testing.assert_allclose(filters[0, :, :, 1], [[-4.0] * 3, [8.0] * 3, [-4.0] * 3])  # green / 0.25
    np.testing.assert_allclose(filters[1, 1, 1], [2.0, 0.0, -0.5])  # +1 / 0.5, 0, -1 / 2


def test_the_shard_job_stores_the_filters_of_an_exact_layer_only(tmp_path):
    """The featurevis job writes the stem's filters (rendered exactly), split over two
    shards and merged in channel order, and none for the head (behind a ReLU)."""
    settings = FeaturevisSettings(preset="fast", image_size=8, batch_size=1, curve_points=2)
    spec = ModelSpec(STEM, "random")
    shards = [tmp_path / "stem-0.h5", tmp_path / "stem-1.h5", tmp_path / "head.h5"]
    run_featurevis_shard(settings, spec, "stem", 0, 1, shards[0])
    run_featurevis_shard(settings, spec, "stem", 1, 2, shards[1])
    run_featurevis_shard(settings, spec, "head", 0, 2, shards[2])
    with FeatureVisStore(merge_shards(shards, tmp_path / "featurevis.h5")) as fv:
        filters = fv.filters("stem")[()]
        assert filters.shape == (2, 3, 3, 3)
        np.testing.assert_array_equal(filters[0, :, 0, 0], [-1.0, 2.0, -1.0])
        np.testing.assert_array_equal(filters[1, 1, 1], [1.0, 0.0, -1.0])
        assert fv.filters("head") is None


@pytest.mark.slow
def test_the_demo_models_stem_ranks_its_own_images_first():
    """EfficientNet-Lite0 (real weights), its 32 stem channels with the demo's preset, as
    the workflow renders them: each channel's own image excites it most of the layer's
    images (``image_rank`` 1) for at least 95 % of them (16 of 32 before, flat colours),
    and most images are not flat colours."""
    from pipeline.featurevis.presets import layer_stride
    from pipeline.optvis.speedup import speed_up

    lite0 = speed_up(load_model("efficientnet_lite0"))
    info, settings = lite0.layer("stem"), FeaturevisSettings(preset="fast")
    channels = list(range(info.channels))
    out = render_batch(lite0, "stem", channels, settings, settings.schedule(layer_stride(224, info.height)))
    ranks = image_ranks(out["responses"], np.array(channels))
    assert np.mean(ranks == 1) >= 0.95, ranks
    # Colour detectors are flat colours (their exact optimum); the line and edge detectors not.
    patterned = [c for c in channels if out["images"][c].reshape(-1, 3).std(axis=0).max() > 40]
    assert len(patterned) >= len(channels) // 2, patterned
    # Its filters, as the job stores them: the 3x3 convolution's weights times BatchNorm's
    # scale over the input normalisation's std (TF "same" padding and the stride only move
    # where the centre position's 3x3 field sits).
    filters = exact_filters(lite0, "stem", settings, settings.schedule(layer_stride(224, info.height)))
    raw = load_model("efficientnet_lite0").net  # the network as built, BatchNorm not folded
    bn = raw.bn1
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    std = torch.tensor(lite0.std).view(1, 3, 1, 1)
    expected = (raw.conv_stem.weight.detach() * scale.view(-1, 1, 1, 1) / std).permute(0, 2, 3, 1)
    assert filters.shape == (32, 3, 3, 3) and filters.dtype == np.float32
    np.testing.assert_allclose(filters, expected.numpy(), rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
