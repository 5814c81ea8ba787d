"""Issue 28's switches for cheaper steps: ``amp`` (bfloat16 autocast, CUDA only) and
``compile`` (torch.compile of each layer module's forward), both off by default."""

import dataclasses
import logging

import pytest
import torch
import yaml

from pipeline.featurevis.render import render_options
from pipeline.featurevis.settings import FeaturevisSettings
from pipeline.model import load_model
from pipeline.optvis import objectives as obj
from pipeline.optvis import render as render_mod
from pipeline.optvis.compiled import compile_units
from pipeline.optvis.render import RenderOptions, render
from tests.helpers.workflow import REPO


@pytest.fixture(scope="module")
def blocks():
    return load_model("tests.helpers.optvis_models:block_net", weights="random")


def test_the_switches_at_their_defaults_record_nothing_new():
    # Stores and icon files rendered before the switches existed keep their hash.
    default = FeaturevisSettings(preset="fast")
    for keys in (FeaturevisSettings.SHARD_KEYS, FeaturevisSettings.ICON_KEYS):
        recorded = default.subset(keys)
        assert "amp" not in recorded and "compile" not in recorded
        assert FeaturevisSettings(preset="fast", amp=True).subset(keys) == {**recorded, "amp": True}
        assert FeaturevisSettings(preset="fast", compile=True).subset(keys) == {**recorded, "compile": True}
    options = render_options(default, default.schedule(8))
    assert (options.amp, options.compile) == (False, False)
    switched = default.replace(amp=True, compile=True)
    both = dataclasses.replace(options, amp=True, compile=True)
    assert render_options(switched, switched.schedule(8)) == both


@pytest.mark.parametrize("key", ["amp", "compile"])
def test_a_switch_that_is_not_a_boolean_is_refused_naming_it(key):
    with pytest.raises(ValueError, match=f"featurevis.{key} must be true or false, got 'yes'"):
        FeaturevisSettings.from_config({key: "yes"})
    with pytest.raises(ValueError, match=f"featurevis.{key} must be true or false, got 1"):
        FeaturevisSettings(**{key: 1})
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow/config/schema.yaml").read_text())
    featurevis = schema["properties"]["featurevis"]
    with pytest.raises(jsonschema.ValidationError, match="'yes' is not of type 'boolean'") as error:
        jsonschema.validate({key: "yes"}, featurevis)
    assert list(error.value.path) == [key]


def test_amp_on_a_cpu_changes_no_pixel_and_says_so_once(blocks, caplog):
    render_mod._SAID_AMP_IS_CUDA_ONLY.discard("cpu")
    options = RenderOptions(steps=6, size=16, relu_override_steps=2, pre_activation=True)
    objective = obj.per_item([obj.channel("block", c) for c in range(3)])
    plain = render(blocks, objective, 3, options)
    with caplog.at_level(logging.INFO, logger="pipeline.optvis.render"):
        amp = render(blocks, objective, 3, dataclasses.replace(options, amp=True))
        render(blocks, objective, 3, dataclasses.replace(options, amp=True, steps=1))
    assert torch.equal(plain.images, amp.images) and torch.equal(plain.values, amp.values)
    said = [r.getMessage() for r in caplog.records if "amp" in r.getMessage()]
    assert said == ["amp: bfloat16 autocast is used on CUDA only; rendering on cpu in float32"]


def test_compile_units_leave_a_layer_with_a_tapped_module_inside_eager(blocks):
    layer_modules = list(blocks.modules_for(blocks.layers).values())
    net = blocks.net
    # The head's pre-activation is tapped at the input of head.1 (its ReLU6), inside head.
    modules, inputs = blocks.tap_points(["head"], pre_activation=True)
    assert modules["head"] is net.head[1] and inputs == {"head"}
    assert compile_units(layer_modules, modules.values()) == [net.stem, net.block]
    # Tapped at its output, the head's own hooks stay eager around a compiled forward.
    assert compile_units(layer_modules, [net.head]) == [net.stem, net.block, net.head]


@pytest.mark.parametrize("layer", ["block", "head"])
def test_compile_renders_the_eager_images_up_to_rounding(blocks, layer):
    # Truncation (a hook raising at the tapped layer) and the pre-activation tap keep
    # working; the first two steps (redirected ReLU gradients) run eagerly either way.
    options = RenderOptions(steps=6, size=16, relu_override_steps=2, pre_activation=True)
    objective = obj.per_item([obj.channel(layer, c) for c in range(2)])
    eager = render(blocks, objective, 2, options)
    ran_compiled = []  # per call of the block: was its forward the compiled one?

    def spy_hook(module, _inputs, _output):
        ran_compiled.append("forward" in vars(module))

    spy = blocks.net.block.register_forward_hook(spy_hook)
    try:
        compiled = render(blocks, objective, 2, dataclasses.replace(options, compile=True))
    finally:
        spy.remove()
    assert torch.allclose(compiled.images, eager.images, rtol=0, atol=1e-5)
    assert torch.allclose(compiled.values, eager.values, rtol=1e-5, atol=1e-6)
    # Steps 0-1 eager (redirected gradients), steps 2-5 compiled, the final measure eager.
    assert ran_compiled == [False, False, True, True, True, True, False]
    assert "forward" not in vars(blocks.net.block)  # the eager forward is back after the render
