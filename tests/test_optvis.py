"""The optimisation engine (pipeline.optvis) on tiny hand-made models."""

import pytest
import torch

from pipeline.model import load_model
from pipeline.optvis import objectives as obj
from pipeline.optvis import param, transforms
from pipeline.optvis.render import RenderOptions, item_generators, render


# The tiny models are custom loaders (tests/helpers/optvis_models.py), so they go
# through load_model like any model.
@pytest.fixture(scope="module")
def tiny():
    return load_model("tests.helpers.optvis_models:two_conv_net", weights="random")


def fast(**kw) -> RenderOptions:
    """Few steps, small images: enough to see each effect, quick on 2 cores."""
    return RenderOptions(**{"steps": 24, "size": 24, "transforms": "none", **kw})


def no_hooks(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.net.modules())


# ---------------------------------------------------------------------------------
# Objectives by hand
# ---------------------------------------------------------------------------------


def test_objective_values_by_hand():
    t = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)  # item 0: 0..11, item 1: 12..23
    acts = {"l": t}
    assert obj.channel("l", 1)(acts).tolist() == [5.5, 17.5]  # mean of 4..7, 16..19
    assert obj.neuron("l", 2)(acts).tolist() == [11.0, 23.0]  # centre of 2x2: (1, 1)
    assert obj.neuron("l", 0, y=0, x=1)(acts).tolist() == [1.0, 13.0]
    both = obj.per_item([obj.channel("l", 2), obj.neuron("l", 0, y=1, x=0)])
    assert both(acts).tolist() == [9.5, 14.0]
    # mixed kinds and a compound objective: evaluated item by item
    mixed = obj.per_item([obj.channel("l", 0) + obj.channel("l", 1), obj.channel("l", 0)])
    assert mixed(acts).tolist() == [1.5 + 5.5, 13.5]
    # kinds interleaved: computed grouped by kind, returned in item order
    t3 = torch.cat([t, t[:1] + 100])  # item 2: 100..111
    interleaved = obj.per_item([obj.channel("l", 1), obj.neuron("l", 0, y=0, x=1), obj.channel("l", 2)])
    assert interleaved({"l": t3}).tolist() == [5.5, 13.0, 109.5]
    assert (-obj.channel("l", 0))(acts).tolist() == [-1.5, -13.5]
    assert (2 * obj.channel("l", 0) - obj.channel("l", 1) / 2)(acts).tolist() == [3 - 2.75, 27 - 8.75]


def test_direction_dot_and_cosine_by_hand():
    t = torch.zeros(1, 2, 1, 2)
    t[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # |a| = 5, parallel to v
    t[0, :, 0, 1] = torch.tensor([4.0, -3.0])  # orthogonal to v
    v = torch.tensor([3.0, 4.0])
    acts = {"l": t}
    assert obj.direction("l", v)(acts).item() == pytest.approx((25 + 0) / 2)
    # cosine 1 at the first position, floored to 0.1 at the second (its dot is 0 anyway)
    assert obj.direction("l", v, cossim_pow=2)(acts).item() == pytest.approx(
        25 / (1 + 1e-4 / 5) ** 4 / 2, rel=1e-4
    )
    assert obj.direction("l", v, y=0, x=1)(acts).item() == pytest.approx(0.0)
    per = obj.per_item([obj.direction("l", v, cossim_pow=1), obj.direction("l", -v, cossim_pow=1)])
    two = {"l": torch.cat([t, t])}
    values = per(two)
    assert values[0].item() == pytest.approx(12.5, rel=1e-3)
    # opposite direction: dot -25 times the floored cosine 0.1, and 0 at the orthogonal position
    assert values[1].item() == pytest.approx(-25 * 0.1 / 2, rel=1e-3)


def test_diversity_by_hand():
    same = torch.rand(1, 3, 4, 4).expand(3, -1, -1, -1)
    # identical items: every cosine is 1; item value = (others in group) / group size
    assert obj.diversity("l")({"l": same}).tolist() == pytest.approx([2 / 3] * 3)
    a = torch.zeros(2, 2, 1, 1)
    a[0, 0], a[1, 1] = 1.0, 1.0  # Gram matrices diag(1,0) and diag(0,1): cosine 0
    assert obj.diversity("l")({"l": a}).tolist() == pytest.approx([0.0, 0.0])
    grouped = obj.diversity("l", group_size=1)({"l": same})
    assert grouped.tolist() == [0.0, 0.0, 0.0]  # nobody to compare with
    with pytest.raises(ValueError, match="groups of 2"):
        obj.diversity("l", group_size=2)({"l": same})


def test_descriptions():
    assert str(obj.channel("blocks.3.0", 5)) == "channel blocks.3.0:5"
    assert (
        str(obj.channel("blocks.3.0", 5) - 1e2 * obj.diversity("blocks.3.0"))
        == "channel blocks.3.0:5 - 100 * diversity blocks.3.0"
    )
    assert str(-obj.neuron("a", 1)) == "-neuron a:1 (centre)"
    assert str(obj.direction("a", torch.ones(4), cossim_pow=2)) == "direction a[4], cossim^2"
    assert obj.per_item([obj.channel("a", i) for i in range(5)]).description.endswith("(5 items)")
    both = obj.channel("a", 1) + obj.channel("b", 2)
    assert both.layers == frozenset({"a", "b"})
    assert str(sum([obj.channel("a", 1), obj.channel("a", 2)])) == "channel a:1 + channel a:2"


def test_objective_errors_name_the_problem():
    acts = {"l": torch.zeros(2, 3, 2, 2)}
    with pytest.raises(KeyError, match="'m'"):
        obj.channel("m", 0)(acts)
    with pytest.raises(ValueError, match="3 objectives but the batch has 2"):
        obj.per_item([obj.channel("l", 0)] * 3)(acts)
    with pytest.raises(ValueError, match="vector has 4 entries"):
        obj.direction("l", torch.ones(4))(acts)


# ---------------------------------------------------------------------------------
# Parameterization and transforms
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fft", "pixel"])
def test_param_starts_grey_and_is_seeded_per_item(kind):
    _, image_fn = param.image(kind, 16, item_generators(0, [7, 8]))
    images = image_fn()
    assert images.shape == (2, 3, 16, 16)
    assert (images - 0.5).abs().max() < 0.05  # sd 0.01 noise around grey
    _, alone = param.image(kind, 16, item_generators(0, [8]))
    # Item 8's noise does not depend on item 7. Not bit-equal: the colour matrix is a 1x1
    # convolution whose CPU kernel may sum in another order for another batch size.
    assert torch.allclose(alone()[0], images[1], rtol=0, atol=1e-6)
    assert (images[0] - images[1]).abs().max() > 1e-3


def test_spectrum_scale_constants():
    scale = param.spectrum_scale(4, 4)
    # frequency 0 is clamped to 1/max(h, w): scale = 4 * sqrt(16); frequency 0.5: 2 * 4
    assert scale[0, 0].item() == pytest.approx(16.0)
    assert scale[0, 2].item() == pytest.approx(8.0)
    assert param.COLOR_CORRELATION.norm(dim=0).max().item() == pytest.approx(1.0)


def test_standard_transforms_are_per_item_and_keep_the_size():
    images = torch.rand(3, 3, 128, 128)
    t = transforms.standard_transforms()
    out = t(images, item_generators(5, ["a", "b", "c"]))
    assert out.shape == (3, 3, 140, 140)
    alone = t(images[2:], item_generators(5, ["c"]))
    assert torch.equal(alone[0], out[2])
    # without zoom and rotation the transform is pad + two integer crops
    shift = transforms.robustness(12, 8, (1.0,), (0,), 4)
    out = shift(images[:1], item_generators(0, [0]))
    padded = torch.nn.functional.pad(images[0], (12,) * 4, value=0.5)
    g = item_generators(0, [0])[0]
    ay, ax = transforms._offset(g, 8)
    transforms._pick(g, (1.0,)), transforms._pick(g, (0,))
    by, bx = transforms._offset(g, 4)
    expected = padded[:, ay + by : ay + by + 140, ax + bx : ax + bx + 140]
    assert torch.allclose(out[0], expected, atol=1e-5)


# ---------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------

OBJECTIVES = {
    "channel": lambda: obj.channel("conv2", 1),
    "neuron": lambda: obj.neuron("conv2", 2),
    "direction dot": lambda: obj.direction("conv2", torch.tensor([1.0, -1, 0, 2, 0, 1])),
    "direction cossim": lambda: obj.direction("conv2", torch.tensor([1.0, -1, 0, 2, 0, 1]), cossim_pow=2),
    # Lucid's diversity term measures similarity and is subtracted; its negative rises
    # as the batch's images grow apart (grey starting images are all alike).
    "diversity": lambda: -obj.diversity("conv1"),
    "negation": lambda: -obj.channel("conv1", 0),
    "sum": lambda: obj.channel("conv1", 3) + 0.5 * obj.neuron("conv2", 0, y=1, x=1),
}


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_each_objective_rises(tiny, name):
    objective = OBJECTIVES[name]()
    result = render(tiny, objective, 3, fast(steps=30))
    start = torch.as_tensor(result.curve[0])  # values on the initial images
    assert result.values.shape == (3,)
    assert (result.values > start + 1e-3).all(), (name, start, result.values)


def test_subtracting_diversity_makes_images_differ(tiny):
    plain = render(tiny, obj.channel("conv2", 1), 4, fast(steps=40))
    diverse = render(tiny, obj.channel("conv2", 1) - 10 * obj.diversity("conv2"), 4, fast(steps=40))
    from pipeline.optvis.render import activations

    sim = lambda r: obj.diversity("conv2")(activations(tiny, r.images, ["conv2"])).sum().item()  # noqa: E731
    assert sim(diverse) < sim(plain)


def test_stripe_detector_renders_red_vertical_stripes():
    model = load_model("tests.helpers.optvis_models:stripe_net")
    # standard transforms
    result = render(model, obj.channel("detector", 0), 1, RenderOptions(steps=128, size=32))
    red, green, blue = result.images[0]  # each [H, W]
    redness = red - (green + blue) / 2
    # Vertical stripes: redness changes from column to column, hardly from row to row.
    across_columns = redness.mean(dim=0).var()
    across_rows = redness.mean(dim=1).var()
    assert across_columns > 3 * across_rows, (across_columns, across_rows)
    # Red on cyan: in the redder half of the columns red clearly beats green and blue.
    columns = redness.mean(dim=0)
    redder = columns > columns.median()
    assert red[:, redder].mean() > green[:, redder].mean() + 0.1
    assert red[:, redder].mean() > blue[:, redder].mean() + 0.1


def test_batched_channels_equal_rendered_alone(tiny):
    channels = [4, 0, 2, 5]
    batched = render(
        tiny,
        obj.per_item([obj.channel("conv2", c) for c in channels]),
        4,
        RenderOptions(steps=24, size=24),
        item_keys=channels,
    )
    for i, c in enumerate(channels):
        alone = render(tiny, obj.channel("conv2", c), 1, RenderOptions(steps=24, size=24), item_keys=[c])
        assert torch.allclose(alone.images[0], batched.images[i], atol=1e-4), c
        assert alone.values[0].item() == pytest.approx(batched.values[i].item(), rel=1e-4, abs=1e-5)


def test_position_in_batch_does_not_matter_but_the_key_does(tiny):
    a = render(
        tiny,
        obj.per_item([obj.channel("conv2", 1), obj.channel("conv2", 3)]),
        2,
        RenderOptions(steps=12, size=24),
        item_keys=[1, 3],
    )
    b = render(
        tiny,
        obj.per_item([obj.channel("conv2", 3), obj.channel("conv2", 1)]),
        2,
        RenderOptions(steps=12, size=24),
        item_keys=[3, 1],
    )
    assert torch.allclose(a.images[0], b.images[1], atol=1e-5)
    c = render(tiny, obj.channel("conv2", 1), 1, RenderOptions(steps=12, size=24), item_keys=[99])
    assert not torch.allclose(a.images[0], c.images[0], atol=1e-3)


def test_item_seeds_depend_on_value_not_type():
    import numpy as np

    from pipeline.optvis.render import item_seed

    assert item_seed(0, 3) == item_seed(0, np.int64(3)) == item_seed(0, torch.tensor(3))
    assert item_seed(0, ("diversity", 3, 1)) == item_seed(0, ("diversity", np.int32(3), 1))
    assert len({item_seed(0, 3), item_seed(1, 3), item_seed(0, 4), item_seed(0, "3")}) == 4


def test_deterministic_for_a_seed(tiny):
    options = RenderOptions(steps=10, size=24, seed=3)
    one = render(tiny, obj.channel("conv1", 2), 2, options)
    two = render(tiny, obj.channel("conv1", 2), 2, options)
    assert torch.equal(one.images, two.images)
    other = render(tiny, obj.channel("conv1", 2), 2, RenderOptions(steps=10, size=24, seed=4))
    assert not torch.equal(one.images, other.images)


def test_truncation_gives_the_full_forward_result(tiny):
    objective = obj.per_item([obj.channel("conv1", 0), obj.channel("conv1", 3)])
    truncated = render(tiny, objective, 2, RenderOptions(steps=16, size=24), truncate=True)
    full = render(tiny, objective, 2, RenderOptions(steps=16, size=24), truncate=False)
    assert torch.allclose(truncated.images, full.images, atol=1e-6)
    assert torch.allclose(truncated.values, full.values, atol=1e-6)


def test_truncation_skips_later_layers(tiny):
    calls = []
    handle = tiny.net.fc.register_forward_hook(lambda *a: calls.append(1))
    try:
        render(tiny, obj.channel("conv1", 0), 1, RenderOptions(steps=2, size=16), truncate=True)
        assert calls == []
        render(tiny, obj.channel("conv1", 0), 1, RenderOptions(steps=2, size=16), truncate=False)
        assert len(calls) == 3  # 2 steps + the final evaluation
    finally:
        handle.remove()


def test_hooks_never_survive_a_render(tiny):
    render(tiny, obj.channel("conv2", 0), 1, RenderOptions(steps=2, size=16))
    assert no_hooks(tiny)

    def broken(acts):
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        render(tiny, obj.Objective(broken, {"conv2"}, "broken"), 1, RenderOptions(steps=2, size=16))
    assert no_hooks(tiny)
    with pytest.raises(ValueError, match=r"shape \(\), expected \(2,\)"):
        render(
            tiny,
            obj.Objective(lambda a: a["conv1"].sum(), {"conv1"}, "scalar"),
            2,
            RenderOptions(steps=1, size=16),
        )
    assert no_hooks(tiny)


def test_speed_up_folds_batchnorm_without_changing_values():
    from pipeline.optvis.render import activations
    from pipeline.optvis.speedup import speed_up

    model = load_model("tests.helpers.optvis_models:batchnorm_net")
    x = torch.rand(3, 3, 16, 16)
    names = [layer.name for layer in model.layers]
    before = activations(model, x, names, truncate=False)
    speed_up(model)
    kinds = {name: type(m).__name__ for name, m in model.net.named_children()}
    assert kinds["bn0"] == "BatchNorm2d"  # its input is no convolution
    assert kinds["bn1"] == "Identity" and kinds["bn2"] == "Identity"
    after = activations(model, x, names, truncate=False)
    for name in names:
        assert torch.allclose(before[name], after[name], atol=1e-5), name
    assert no_hooks(model)
    result = render(model, obj.channel("bn2", 1), 2, RenderOptions(steps=4, size=16))  # still renders
    assert result.values.shape == (2,)


def test_render_result_shapes_and_curve(tiny):
    result = render(tiny, obj.channel("conv2", 0), 2, RenderOptions(steps=20, size=20, curve_points=5))
    assert result.images.shape == (2, 3, 20, 20)
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert result.curve.shape == (5, 2)
    assert result.curve_steps.tolist() == [0, 5, 10, 14, 19]
    assert result.steps == 20 and result.description == "channel conv2:0"


def test_unknown_layer_and_bad_arguments(tiny):
    with pytest.raises(KeyError, match="no layer 'nope'"):
        render(tiny, obj.channel("nope", 0), 1, RenderOptions(steps=1, size=16))
    with pytest.raises(ValueError, match="unknown image parameterization"):
        render(tiny, obj.channel("conv1", 0), 1, RenderOptions(steps=1, size=16, param="cppn"))
    with pytest.raises(ValueError, match="2 item keys for a batch of 1"):
        render(tiny, obj.channel("conv1", 0), 1, RenderOptions(steps=1, size=16), item_keys=[1, 2])
