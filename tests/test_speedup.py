"""Exact network rewrites before rendering (pipeline.optvis.speedup)."""

import pytest
import torch
from timm.layers import Conv2dSame
from torch import nn

from pipeline.model import load_model
from pipeline.optvis.render import activations
from pipeline.optvis.speedup import StaticSamePadConv2d, same_padding, speed_up


def test_same_padding_by_hand():
    assert same_padding(8, 3, 2) == (0, 1)  # out 4: needs 9 inputs, one extra after
    assert same_padding(7, 3, 2) == (1, 1)  # out 4: needs 9, one each side
    assert same_padding(8, 3, 1) == (1, 1)
    assert same_padding(8, 5, 2) == (1, 2)
    assert same_padding(8, 1, 1) == (0, 0)
    assert same_padding(9, 3, 2, dilation=2) == (2, 2)


@pytest.mark.parametrize(
    "kernel,stride,groups,dilation",
    [(3, 2, 1, 1), (3, 2, 4, 1), (5, 2, 4, 1), (3, 1, 4, 1), (4, 2, 1, 1), (3, 2, 1, 2)],
)
def test_padding_free_same_conv_matches_timm_values_and_gradients(kernel, stride, groups, dilation):
    torch.manual_seed(0)
    conv = Conv2dSame(4, 8, kernel, stride=stride, groups=groups, dilation=dilation, bias=True)
    fast = StaticSamePadConv2d(conv)
    for h, w in [(8, 8), (9, 9), (8, 9), (15, 16), (16, 16)]:  # both SAME cases, and mixed
        x = torch.randn(2, 4, h, w, requires_grad=True)
        expected = conv(x)
        (grad_expected,) = torch.autograd.grad(expected.square().sum(), x)
        got = fast(x)
        (grad_got,) = torch.autograd.grad(got.square().sum(), x)
        assert got.shape == expected.shape, (h, w)
        assert torch.allclose(got, expected, atol=1e-5), (h, w)
        assert torch.allclose(grad_got, grad_expected, atol=1e-4), (h, w)


def test_speed_up_rewrites_tf_style_networks_without_changing_values():
    model = load_model("tests.helpers.optvis_models:tf_style_net")
    names = [layer.name for layer in model.layers]
    probes = [torch.rand(3, 3, size, size) for size in (16, 19, 22)]  # even and odd sizes
    before = [activations(model, x, names, truncate=False) for x in probes]
    speed_up(model)
    net = model.net
    assert isinstance(net.conv1, StaticSamePadConv2d) and isinstance(net.conv2, StaticSamePadConv2d)
    assert isinstance(net.bn1, nn.Identity) and isinstance(net.bn2, nn.Identity)
    assert not net.act1.inplace and not net.act2.inplace
    for x, expected in zip(probes, before):
        got = activations(model, x, names, truncate=False)
        for name in names:
            assert torch.allclose(got[name], expected[name], atol=1e-5), (name, x.shape)


def test_a_rewrite_that_changes_values_is_undone_with_a_warning(monkeypatch, caplog):
    import pipeline.optvis.speedup as speedup

    def broken_rewrite(net):  # stands for a structure the rewrites misread
        with torch.no_grad():
            net.conv2.weight.mul_(2)

    monkeypatch.setattr(speedup, "_unpad_same_convs", broken_rewrite)
    model = load_model("tests.helpers.optvis_models:tf_style_net")
    original = model.net
    with caplog.at_level("WARNING", logger="pipeline.optvis.speedup"):
        speed_up(model)
    assert model.net is original  # the network as loaded, not the folded copy
    assert isinstance(model.net.conv1, Conv2dSame) and isinstance(model.net.bn1, nn.BatchNorm2d)
    assert "differs at act2" in caplog.text
