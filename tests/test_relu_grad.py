"""Lucid's redirected ReLU gradient (pipeline.optvis.relu_grad), by hand and in a render."""

import torch
from torch import nn

from pipeline.model import load_model
from pipeline.optvis import objectives as obj
from pipeline.optvis.relu_grad import redirected_clamp, redirected_relu_gradients
from pipeline.optvis.render import RenderOptions, render


def grad_through(x, incoming, upper=None):
    x = x.clone().requires_grad_(True)
    redirected_clamp(x, upper).backward(incoming)
    return x.grad


def test_forward_is_the_plain_clamp():
    x = torch.tensor([[-2.0, 0.5, 7.0]])
    assert torch.equal(redirected_clamp(x), torch.relu(x))
    assert torch.equal(redirected_clamp(x, 6.0), nn.functional.relu6(x))


def test_items_with_a_live_unit_keep_the_ordinary_gradient():
    # Item 0 has a positive input: its ordinary ReLU gradient is non-zero, so it is kept.
    # Item 1 is off everywhere: it gets the redirected gradient, which passes the
    # gradient where it pushes the input up (loss gradient < 0) and blocks it where
    # it would push a negative input further down (loss gradient > 0).
    x = torch.tensor([[-1.0, 2.0, -3.0], [-1.0, -2.0, -3.0]])
    incoming = torch.tensor([[-1.0, -1.0, 1.0], [-1.0, 1.0, -0.5]])
    assert grad_through(x, incoming).tolist() == [[0.0, -1.0, 0.0], [-1.0, 0.0, -0.5]]


def test_relu6_redirects_above_the_top_too():
    x = torch.tensor([[7.0, 8.0, -1.0]])  # saturated or off: ordinary gradient 0
    incoming = torch.tensor([[1.0, -1.0, -1.0]])
    # 7 -> pushed down (into range): passes; 8 -> pushed further up: blocked; -1 -> pushed up: passes.
    assert grad_through(x, incoming, 6.0).tolist() == [[1.0, 0.0, -1.0]]


def test_the_context_redirects_module_and_functional_relus_only_inside():
    layers = [
        nn.ReLU(),
        nn.ReLU6(),
        lambda t: nn.functional.relu(t, inplace=True),
        lambda t: t.relu(),
        lambda t: torch.relu(t),
    ]
    for layer in layers:
        x = torch.full((1, 3), -1.0, requires_grad=True)
        with redirected_relu_gradients():
            layer(x).sum().mul(-1).backward()  # loss = -sum: pushes every input up
        assert x.grad.tolist() == [[-1.0, -1.0, -1.0]], layer
        x.grad = None
        layer(x.clone()).sum().mul(-1).backward()  # outside: the ordinary (zero) gradient
        assert x.grad.tolist() == [[0.0, 0.0, 0.0]], layer


def test_a_unit_that_is_off_at_the_start_is_switched_on_only_with_the_override():
    model = load_model("tests.helpers.optvis_models:dead_unit_net")
    settings = dict(steps=48, size=8, transforms="none", param="pixel")
    plain = render(model, obj.channel("unit", 0), 2, RenderOptions(relu_override_steps=0, **settings))
    assert plain.values.tolist() == [0.0, 0.0]  # no gradient ever reached the image
    redirected = render(model, obj.channel("unit", 0), 2, RenderOptions(relu_override_steps=16, **settings))
    assert (redirected.values > 0.1).all(), redirected.values
