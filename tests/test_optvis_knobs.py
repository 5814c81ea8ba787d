"""The render loop's fast-preset knobs (issue 12): spectrum decay power, initial noise
scale and Adam's betas, each reaching what it should, with Lucid's values as defaults."""

import dataclasses
import inspect
import math

import jsonschema
import pytest
import torch
import yaml

from pipeline.featurevis import FeaturevisSettings
from pipeline.featurevis.render import render_options
from pipeline.model import load_model
from pipeline.optvis import objectives as obj
from pipeline.optvis import param
from pipeline.optvis import render as render_mod
from pipeline.optvis.render import OPTIMIZERS, RenderOptions, item_generators, render
from tests.helpers.workflow import REPO


@pytest.fixture(scope="module")
def tiny():
    return load_model("tests.helpers.optvis_models:two_conv_net", weights="random")


def test_decay_power_scales_the_spectrum_as_the_formula_says():
    # 4 x 4: fftfreq(4) = [0, 1/4, -1/2, -1/4] down, rfftfreq(4) = [0, 1/4, 1/2] across;
    # scale = sqrt(4 * 4) / max(|f|, 1/4) ** power.
    for power in (1.0, 1.25, 1.5, 2.0):
        scale = param.spectrum_scale(4, 4, power)
        assert scale.shape == (4, 3)
        assert scale[0, 0].item() == pytest.approx(4 * 4**power)  # f = 0, clamped to 1/4
        assert scale[0, 1].item() == pytest.approx(4 * 4**power)  # f = 1/4
        assert scale[0, 2].item() == pytest.approx(4 * 2**power)  # f = 1/2
        assert scale[2, 0].item() == pytest.approx(4 * 2**power)  # f = |-1/2|
        assert scale[1, 1].item() == pytest.approx(4 * math.sqrt(8) ** power)  # f = sqrt(2)/4
        assert scale[2, 2].item() == pytest.approx(4 * math.sqrt(2) ** power)  # f = sqrt(2)/2
    # power 0: every frequency weighs the same; the default is Lucid's power 1
    assert torch.allclose(param.spectrum_scale(4, 4, 0.0), torch.full((4, 3), 4.0))
    assert torch.equal(param.spectrum_scale(6, 6), param.spectrum_scale(6, 6, 1.0))


def test_decay_power_reaches_the_fft_image_and_pixel_ignores_it():
    size, power = 8, 1.5
    (spectrum,), image_fn = param.image("fft", size, item_generators(0, [3]), decay_power=power)
    # The image by hand from the same starting spectrum: scaled, inverse FFT, / 4, colour.
    coefficients = torch.view_as_complex(spectrum.detach()) * param.spectrum_scale(size, size, power)
    spatial = torch.fft.irfft2(coefficients, s=(size, size), norm="backward") / 4.0
    assert torch.allclose(image_fn(), param.to_valid_rgb(spatial), rtol=0, atol=1e-6)
    _, lucid = param.image("fft", size, item_generators(0, [3]))
    assert (image_fn() - lucid()).abs().max() > 1e-4  # the power changes the image

    _, pixel = param.image("pixel", size, item_generators(0, [3]))
    _, pixel_powered = param.image("pixel", size, item_generators(0, [3]), decay_power=power)
    assert torch.equal(pixel(), pixel_powered())


@pytest.mark.parametrize("kind", ["fft", "pixel"])
def test_init_sd_scales_the_starting_noise(kind):
    (small,), _ = param.image(kind, 32, item_generators(0, [1, 2]))
    (large,), _ = param.image(kind, 32, item_generators(0, [1, 2]), sd=0.1)
    # thousands of N(0, sd^2) draws: their std is sd within a few percent
    assert small.std().item() == pytest.approx(param.INIT_SD, rel=0.05)
    assert large.std().item() == pytest.approx(0.1, rel=0.05)
    # the same draws, only scaled
    assert torch.allclose(large, small * (0.1 / param.INIT_SD), rtol=1e-5, atol=0)


def test_render_starts_from_the_options_init_sd_and_decay_power(tiny):
    # A learning rate so small that one step leaves the image where it started, which
    # must be the parameterization's start for the options' init_sd and decay_power.
    options = RenderOptions(steps=1, size=16, lr=1e-9, transforms="none", init_sd=0.1, decay_power=1.5)
    result = render(tiny, obj.channel("conv1", 0), 2, options, item_keys=[5, 6])
    _, start = param.image("fft", 16, item_generators(0, [5, 6]), sd=0.1, decay_power=1.5)
    assert torch.allclose(result.images, start().detach(), rtol=0, atol=1e-5)
    _, lucid_start = param.image("fft", 16, item_generators(0, [5, 6]))
    assert (result.images - lucid_start().detach()).abs().max() > 1e-3


def test_adam_betas_reach_the_optimiser(tiny, monkeypatch):
    made = []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kw):
            super().__init__(params, **kw)
            made.append(self.param_groups[0]["betas"])

    monkeypatch.setitem(OPTIMIZERS, "adam", RecordingAdam)
    options = RenderOptions(steps=2, size=16, transforms="none")
    render(tiny, obj.channel("conv2", 1), 1, options)
    render(tiny, obj.channel("conv2", 1), 1, dataclasses.replace(options, adam_betas=(0.8, 0.99)))
    assert made == [(0.9, 0.999), (0.8, 0.99)]


def test_adam_betas_change_the_image(tiny):
    # Adam's first step is lr * sign(gradient) whatever the betas; from the second on
    # they weigh the gradients' history, so the images part.
    options = RenderOptions(steps=4, size=16, transforms="none")
    lucid = render(tiny, obj.channel("conv2", 1), 1, options)
    short = render(tiny, obj.channel("conv2", 1), 1, dataclasses.replace(options, adam_betas=(0.8, 0.99)))
    assert (lucid.images - short.images).abs().max() > 1e-4


def test_the_defaults_are_lucids_so_existing_runs_do_not_change():
    # RenderOptions() asks for exactly what the render loop used before the knobs: the
    # parameterization's own defaults and torch's Adam defaults (Lucid's).
    options = RenderOptions()
    assert (options.init_sd, options.decay_power) == (param.INIT_SD, param.DECAY_POWER) == (0.01, 1.0)
    image_defaults = inspect.signature(param.image).parameters
    assert image_defaults["sd"].default == param.INIT_SD
    assert image_defaults["decay_power"].default == param.DECAY_POWER
    torch_betas = inspect.signature(torch.optim.Adam).parameters["betas"].default
    assert options.adam_betas == render_mod.ADAM_BETAS == tuple(torch_betas) == (0.9, 0.999)
    # The stage's lucid preset spells the same values out (importing them would load
    # torch in the workflow) and passes them on.
    settings = FeaturevisSettings()
    schedule = settings.schedule(16)
    assert (schedule.init_sd, schedule.decay_power) == (param.INIT_SD, param.DECAY_POWER)
    assert schedule.adam_betas == render_mod.ADAM_BETAS
    stage = render_options(settings, schedule)
    assert (stage.init_sd, stage.decay_power, stage.adam_betas) == (0.01, 1.0, (0.9, 0.999))


@pytest.mark.parametrize(
    ("knobs", "valid"),
    [
        ({"init_sd": 0.1, "decay_power": 1.25, "adam_betas": [0.8, 0.99]}, True),
        ({"decay_power": 0}, True),
        ({"init_sd": 0}, False),
        ({"decay_power": -1}, False),
        ({"adam_betas": [0.9]}, False),
        ({"adam_betas": [0.9, 0.99, 0.9]}, False),
        ({"adam_betas": [0.9, 1.0]}, False),
        ({"adam_betas": [0, 0.99]}, False),
    ],
)
def test_the_schema_checks_the_knobs(knobs, valid):
    schema = yaml.safe_load((REPO / "workflow" / "config" / "schema.yaml").read_text())
    errors = list(jsonschema.Draft202012Validator(schema["properties"]["featurevis"]).iter_errors(knobs))
    assert (not errors) == valid, errors
