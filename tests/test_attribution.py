"""Layer attribution on models small enough to differentiate by hand (see tests/helpers/models.py)."""

import numpy as np
import pytest
import torch

from pipeline.model import load_model
from pipeline.model.attribution import LayerAttribution
from pipeline.model.hooks import run_with_hooks
from tests.helpers.models import W, hand_expected, hand_images


def close(actual, expected, tol=1e-6):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=tol, atol=tol
    )


@pytest.fixture(scope="module")
def hand():
    return load_model("tests.helpers.models:hand_net", weights="random")


@pytest.fixture(scope="module")
def square():
    return load_model("tests.helpers.models:square_net", weights="random")


def test_gradient_times_activation_equals_hand_values(hand):
    x = hand_images()
    a, r, logits = hand_expected(x)
    result = LayerAttribution(hand, ["conv", "relu"]).attribute(x, torch.tensor([0, 1]))
    close(result.logits, logits)
    close(result.activations["conv"], a)
    close(result.activations["relu"], r)
    # d logit_k / d r = W[k, c] / 16 everywhere; through the ReLU only where a > 0.
    expected_relu = torch.stack([W[0][:, None, None] * r[0], W[1][:, None, None] * r[1]]) / 16
    close(result.attributions["relu"], expected_relu)
    close(result.attributions["conv"], expected_relu)  # a * 1[a > 0] = relu(a)
    m = r.mean(dim=(2, 3))
    close(result.channel("relu"), torch.stack([W[0] * m[0], W[1] * m[1]]))


def test_targets_callable_int_and_predicted(hand):
    x = hand_images()
    _, r, logits = hand_expected(x)
    m = r.mean(dim=(2, 3))
    attr = LayerAttribution(hand, "relu")
    diff = attr.attribute(x, lambda z: z[:, 1] - z[:, 0])
    close(diff.channel("relu"), (W[1] - W[0]) * m)
    close(attr.attribute(x, 2).channel("relu"), W[2] * m)
    predicted = logits.argmax(1)
    close(attr.attribute(x, "predicted").channel("relu"), W[predicted] * m)
    # A negative class id means "no target": zero attribution for that image.
    none = attr.attribute(x, torch.tensor([-1, 1])).channel("relu")
    assert none[0].abs().sum() == 0
    with pytest.raises(ValueError, match="out of range"):
        attr.attribute(x, torch.tensor([0, 3]))


def test_channel_and_spatial_views_sum_to_the_same_total():
    model = load_model("tests.helpers.models:shared_relu_net", weights="random")
    x = torch.rand(3, 3, 8, 8)
    result = LayerAttribution(model, "all").attribute(x, "predicted")
    for layer in result.attributions:
        assert result.spatial(layer).shape == (3, 8, 8)
        close(result.channel(layer).sum(1), result.total(layer), 1e-5)
        close(result.spatial(layer).sum((1, 2)), result.total(layer), 1e-5)


def test_integrated_gradients_by_hand(square):
    """logit0 = s^2 with s = sum of the layer: gradient x act gives 2 s^2, the path integral s^2."""
    x = torch.rand(2, 3, 2, 2)
    s = x.sum(dim=(1, 2, 3))
    attr = LayerAttribution(square, "conv")
    grad = attr.attribute(x, 0).channel("conv")[:, 0]
    integ = attr.attribute(x, 0, method="integrated", steps=4).channel("conv")[:, 0]
    close(grad, 2 * s**2, 1e-5)
    close(integ, s**2, 1e-5)  # midpoint rule is exact for a gradient linear in alpha
    linear = attr.attribute(x, 1, method="integrated", steps=3).channel("conv")[:, 0]
    close(linear, s, 1e-5)


def test_integrated_equals_gradient_when_the_rest_is_linear(hand):
    x = hand_images()
    attr = LayerAttribution(hand, ["conv", "relu"])
    grad = attr.attribute(x, "predicted")
    integ = attr.attribute(x, "predicted", method="integrated", steps=5)
    for layer in ("conv", "relu"):
        close(integ.attributions[layer], grad.attributions[layer], 1e-6)


def test_integrated_is_complete_on_a_nonlinear_net():
    """Attributions of a layer sum to target(act) - target(zero activation of that layer)."""
    model = load_model("tests.helpers.models:shared_relu_net", weights="random")
    x = torch.rand(2, 3, 8, 8)
    target = torch.tensor([1, 3])
    result = LayerAttribution(model, "conv1").attribute(x, target, method="integrated", steps=200)
    module = model.modules_for(model.resolve_layers("conv1"))["conv1"]
    with torch.no_grad():
        zero = run_with_hooks(
            model.net, model.normalize(x), {"z": (module, lambda _m, _i, out: torch.zeros_like(out))}
        )
    gap = (result.logits - zero).gather(1, target[:, None]).squeeze(1)
    close(result.total("conv1"), gap, 2e-3)


def test_no_hook_survives_and_no_parameter_gradient(hand):
    attr = LayerAttribution(hand, ["conv", "relu"])
    attr.attribute(hand_images(), 0)
    attr.attribute(hand_images(), 0, method="integrated", steps=2)

    def broken(_logits):
        raise RuntimeError("target failed")

    with pytest.raises(RuntimeError, match="target failed"):
        attr.attribute(hand_images(), broken)
    with pytest.raises(RuntimeError, match="target failed"):
        attr.attribute(hand_images(), broken, method="integrated", steps=2)
    for module in hand.net.modules():
        assert not module._forward_hooks
    assert all(p.grad is None and not p.requires_grad for p in hand.net.parameters())


def test_results_are_detached_and_method_checked(hand):
    result = LayerAttribution(hand, "relu").attribute(hand_images(), 0)
    assert not result.attributions["relu"].requires_grad
    assert not result.activations["relu"].requires_grad and not result.logits.requires_grad
    with pytest.raises(ValueError, match="method 'smooth' unknown"):
        LayerAttribution(hand, "relu").attribute(hand_images(), 0, method="smooth")
