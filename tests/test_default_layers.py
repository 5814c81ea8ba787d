"""Which layers a model gets: the registered EfficientNet-Lites by one rule, and any other
model (timm/NAME, torchvision/NAME, a custom loader without a ``layers`` list) by the
default rule of :func:`pipeline.model.layers.default_candidates`."""

import json

import pytest
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from pipeline.model import layers_document, load_model
from tests.helpers.workflow import REPO

LITE_SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


def assert_no_convolution_apart(model):
    """No layer is a convolution, or a norm whose activation comes after it as another module."""
    for layer in model.layers:
        module = model.net.get_submodule(layer.module)
        assert not isinstance(module, nn.modules.conv._ConvNd), layer
        if isinstance(module, nn.modules.batchnorm._NormBase):
            assert hasattr(module, "act"), f"{layer.name}: a norm read before its activation"


def test_lite0_layers_are_the_demos_exactly():
    """Names, modules, channels, sizes, caps, Building Blocks and atlas layers, checksum: the
    layers.json of the demo run (commit 86b55f9), copied to tests/data."""
    reference = json.loads((REPO / "tests" / "data" / "lite0_layers.json").read_text())
    assert layers_document(load_model("efficientnet_lite0")) == reference


@pytest.mark.parametrize("name", LITE_SIZES)
def test_every_lite_follows_one_rule(name):
    """Stem, every block of every stage, head; Building Blocks: the last block of stages 2-5."""
    model = load_model(name, weights="random")
    assert model.input_size == LITE_SIZES[name]
    stages = [len(stage) for stage in model.net.blocks]
    blocks = [f"blocks.{s}.{b}" for s, size in enumerate(stages) for b in range(size)]
    assert [layer.name for layer in model.layers] == ["stem", *blocks, "head"]
    assert [layer.module for layer in model.layers] == ["bn1", *blocks, "bn2"]
    assert [(model.layers[0].cap, model.layers[-1].pre_activation)] == [("ReLU6", "bn2.act")]
    assert_no_convolution_apart(model)
    last = [f"blocks.{s}.{stages[s] - 1}" for s in (2, 3, 4, 5)]
    assert [layer.name for layer in model.blocks_layers()] == last
    assert model.atlas_layer().name == last[2]


def test_lite1_building_blocks_and_atlas_layers():
    model = load_model("lite1", weights="random")
    assert model.name == "efficientnet_lite1"
    assert [layer.name for layer in model.blocks_layers()] == [
        "blocks.2.2",
        "blocks.3.3",
        "blocks.4.3",
        "blocks.5.4",
    ]
    assert model.atlas_layer().name == "blocks.4.3"


def test_a_custom_loader_of_timm_lite1_gets_the_registered_lite1_layers():
    """A new user's loader returns timm's tf_efficientnet_lite1 and names no layers."""
    custom = load_model("tests.helpers.models:timm_lite1_net", weights="random")
    registered = load_model("efficientnet_lite1", weights="random")
    assert custom.layers == registered.layers
    assert len(custom.layers) == 23


def test_the_default_layers_of_a_hand_made_net():
    """tests.helpers.models.UnlistedNet's docstring works them out."""
    model = load_model("tests.helpers.models:unlisted_net")
    got = [(layer.name, layer.module, layer.channels, layer.height, layer.cap) for layer in model.layers]
    assert got == [
        ("stem", "act_stem", 4, 8, "ReLU6"),
        ("stage.0", "stage.0", 4, 4, None),
        ("stage.1", "stage.1", 4, 4, None),
        ("head", "act_head", 6, 4, None),
    ]
    assert_no_convolution_apart(model)


@pytest.mark.parametrize(
    ("arch", "block", "depths"),
    [("resnet18", BasicBlock, (2, 2, 2, 2)), ("resnet50", Bottleneck, (3, 4, 6, 3))],
)
def test_a_torchvision_resnet_gets_its_blocks(arch, block, depths):
    """torchvision.models.get_model(arch, weights=None): the stem (conv1, bn1, relu as one
    layer) and every basic block or bottleneck."""
    model = load_model(f"torchvision/{arch}", weights="random")
    blocks = [f"layer{i + 1}.{b}" for i, depth in enumerate(depths) for b in range(depth)]
    assert [layer.name for layer in model.layers] == ["conv1", *blocks]
    assert model.layers[0].module == "relu"
    assert all(isinstance(model.net.get_submodule(name), block) for name in blocks)
    assert_no_convolution_apart(model)


@pytest.mark.parametrize("arch", ["resnet18", "tf_efficientnet_lite1", "mobilenetv3_small_050"])
def test_timm_feature_info_stages_are_among_the_layers(arch):
    """Each stage output timm's feature_info names is a layer, or its stage's last block is."""
    model = load_model(f"timm/{arch}", weights="random")
    assert_no_convolution_apart(model)
    for feature in model.net.feature_info:
        inside = [layer for layer in model.layers if f"{layer.module}.".startswith(feature["module"] + ".")]
        assert inside, feature
        assert inside[-1].channels == feature["num_chs"], feature
        assert inside[-1].height == -(-model.input_size // feature["reduction"]), feature  # ceil


def test_torchvision_conv_norm_activation_modules_are_one_layer_each():
    """MobileNetV2's features.0 and features.18 are Conv2dNormActivation: a layer each."""
    model = load_model("torchvision/mobilenet_v2", weights="random")
    names = [layer.name for layer in model.layers]
    assert names == [f"features.{i}" for i in range(19)]
    assert_no_convolution_apart(model)
