"""The model zoo: registry matrix, real offline weights, layer discovery, clear errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.model import ModelError, load_model
from pipeline.model import registry as models
from pipeline.model import zoo as model_zoo
from pipeline.model.hooks import LayerTap
from tests.helpers.workflow import REPO

# Channel counts every registered model must discover (random weights: shapes only).
EXPECTED_CHANNELS = {
    "efficientnet_lite0": {"stem": 32, "blocks.0.0": 16, "blocks.3.0": 80, "blocks.6.0": 320, "head": 1280},
    "efficientnet_lite1": {"stem": 32, "blocks.1.2": 24, "blocks.3.3": 80, "blocks.5.4": 192, "head": 1280},
    "efficientnet_lite2": {"stem": 32, "blocks.2.2": 48, "blocks.3.3": 88, "blocks.6.0": 352, "head": 1280},
    "googlenet": {
        "conv1": 64,
        "conv3": 192,
        "inception3a": 256,
        "inception4a": 512,
        "inception4d": 528,
        "inception5b": 1024,
    },
}


@pytest.mark.parametrize("name", models.list_models())
def test_registry_matrix(name):
    """Every registered model builds, runs forward, and discovers the right layers."""
    assert name in EXPECTED_CHANNELS, f"add expected channel counts for new model {name}"
    model = load_model(name, weights="random")
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 96, 96))
    assert logits.shape == (1, 1000)
    assert len(model.class_names) == 1000
    channels = {layer.name: layer.channels for layer in model.layers}
    for layer, expected in EXPECTED_CHANNELS[name].items():
        assert channels[layer] == expected, layer
    # Execution order, and sizes that shrink (never grow) with depth.
    assert [layer.index for layer in model.layers] == list(range(len(model.layers)))
    heights = [layer.height for layer in model.layers]
    assert heights == sorted(heights, reverse=True)
    # Discovery measured real shapes: capture every layer and compare.
    acts, _ = LayerTap(model.net, model.modules_for(model.layers))(
        model.normalize(torch.rand(1, 3, model.input_size, model.input_size)), truncate=False
    )
    for layer in model.layers:
        assert tuple(acts[layer.name].shape) == (1, layer.channels, layer.height, layer.width)


def test_googlenet_article_aliases():
    model = load_model("inceptionv1", weights="random")
    assert model.name == "googlenet"
    assert model.layer("mixed4d").name == "inception4d"
    assert model.layer("conv2d0").name == "conv1"
    resolved = model.resolve_layers(["mixed5b", "mixed3a"])
    assert [layer.name for layer in resolved] == ["inception3a", "inception5b"]
    with pytest.raises(KeyError, match="inception4a"):
        model.layer("mixed9z")
    # The Building Blocks' default layers are the article's mixed3b, mixed4b, mixed4d, mixed5a.
    blocks = [model.layer(alias).name for alias in ("mixed3b", "mixed4b", "mixed4d", "mixed5a")]
    assert [layer.name for layer in model.blocks_layers()] == blocks


def test_googlenet_missing_weights_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelError) as err:
        load_model("googlenet")
    message = str(err.value)
    assert "googlenet-1378be20.pth" in message and str(tmp_path) in message
    assert "weights: random" in message


def test_googlenet_loads_weights_from_the_torch_cache(tmp_path, monkeypatch):
    """A checkpoint in $TORCH_HOME/hub/checkpoints is used, offline, aux heads and all."""
    reference = load_model("googlenet", weights="random")
    from torchvision.models import googlenet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        donor = googlenet(weights=None, aux_logits=True, init_weights=True)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(donor.state_dict(), cache / "googlenet-1378be20.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = load_model("googlenet")
    assert model.checksum.startswith("sha256:")
    x = torch.rand(1, 3, 64, 64)
    donor.eval()
    donor.aux_logits = False
    with torch.no_grad():
        assert torch.allclose(model(x), donor(model.normalize(x)), atol=1e-5)
        assert not torch.allclose(model(x), reference(x))


# EfficientNet-Lite0, 1, 2: the packages' tensors, timm's blocks per stage, parameters.
LITES = {
    "efficientnet_lite0": (0, 296, (1, 2, 2, 3, 3, 4, 1), 4_652_008),
    "efficientnet_lite1": (1, 386, (1, 3, 3, 4, 4, 5, 1), 5_416_680),
    "efficientnet_lite2": (2, 386, (1, 3, 3, 4, 4, 5, 1), 6_092_072),
}


@pytest.mark.parametrize("name", LITES)
def test_lite_real_weights_key_mapping_is_complete(name):
    variant, tensors, stages, parameters = LITES[name]
    state = torch.load(model_zoo.lite_weights_file(variant), map_location="cpu", weights_only=True)
    renamed = {model_zoo.lite_timm_key(k, stages) for k in state}
    assert len(renamed) == len(state) == tensors
    net = load_model(name).net
    assert [len(stage) for stage in net.blocks] == list(stages)
    assert renamed == set(net.state_dict())
    assert sum(p.numel() for p in net.parameters()) == parameters


def _photo_batch(name, size):
    image = Image.open(os.path.join(REPO, "data", "photos", name)).convert("RGB")
    scale = size / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255


def test_lite0_real_weights_classify_coffee_as_espresso():
    model = load_model("efficientnet_lite0")
    with torch.no_grad():
        probs = model(_photo_batch("coffee.jpg", model.input_size)).softmax(1)[0]
    assert model.class_names[int(probs.argmax())] == "espresso"
    assert float(probs.max()) > 0.5


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_real_weights_see_an_espresso(name):
    """One forward pass each at the model's own size (240 and 260 px), offline."""
    model = load_model(name)
    assert model.input_size == {"efficientnet_lite1": 240, "efficientnet_lite2": 260}[name]
    assert model.checksum.startswith("sha256:")
    with torch.no_grad():
        logits = model(_photo_batch("coffee.jpg", model.input_size))[0]
    assert "espresso" in [model.class_names[i] for i in logits.topk(5).indices]


def test_generic_torchvision_and_timm_models_by_name():
    tv = load_model("torchvision/resnet18", weights="random")
    names = {layer.name: layer.channels for layer in tv.layers}
    assert names["layer4.1"] == 512 and names["layer1.0"] == 64
    tm = load_model("timm/resnet18", weights="random")
    assert {layer.name: layer.channels for layer in tm.layers}["layer4.1"] == 512
    assert tm.mean == pytest.approx(models.IMAGENET_MEAN)


def test_torchvision_missing_weights_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="resnet18"):
        load_model("torchvision/resnet18")


def test_weights_from_a_local_file(tmp_path):
    donor = load_model("torchvision/resnet18", weights="random").net
    state = {k: v + 1.0 if v.is_floating_point() else v for k, v in donor.state_dict().items()}
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    model = load_model("torchvision/resnet18", weights=str(path))
    assert torch.equal(model.net.conv1.weight, state["conv1.weight"])
    assert model.checksum.startswith("sha256:")
    with pytest.raises(ModelError, match="not found"):
        load_model("torchvision/resnet18", weights=str(tmp_path / "missing.pth"))


def test_custom_loader_and_shared_modules_are_not_layers():
    model = load_model("tests.helpers.models:shared_relu_net", weights="random", input_size=8)
    # `relu` runs twice per forward pass, so its activation is ambiguous: not a layer.
    assert [layer.name for layer in model.layers] == ["conv1", "conv2"]
    assert [(layer.channels, layer.height) for layer in model.layers] == [(3, 8), (2, 8)]


def test_unknown_model_lists_the_registry():
    with pytest.raises(ModelError, match="efficientnet_lite0"):
        load_model("no_such_model")


def test_cli_layers_json_offline_for_both_models():
    for name, last in [("efficientnet_lite0", ("head", 1280)), ("googlenet", ("inception5b", 1024))]:
        out = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "layers", name, "--json"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        layers = json.loads(out.stdout)
        assert (layers[-1]["name"], layers[-1]["channels"]) == last
        assert all({"name", "channels", "module", "height", "width"} <= set(layer) for layer in layers)


def test_cli_models_reports_weight_availability():
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "models", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    for lite in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        assert rows[lite]["weights_available"] is True, rows[lite]
        assert rows[lite]["weights"].startswith("embedded ("), rows[lite]
    assert set(rows) == set(models.list_models())
