"""Issue 28's opt-in render methods: the MaCo parameterization, coarse-to-fine and
learning-rate schedules (docs/PERFORMANCE.md, section 17)."""

import math

import pytest
import torch

from pipeline.model import load_model
from pipeline.optvis import objectives as obj
from pipeline.optvis import param
from pipeline.optvis.render import RenderOptions, item_generators, lr_factor, render


@pytest.fixture(scope="module")
def tiny():
    return load_model("tests.helpers.optvis_models:two_conv_net", weights="random")


def test_maco_is_seeded_per_item_in_range_and_differentiable():
    params, image_fn = param.image("maco", 16, item_generators(0, [7, 8]))
    images = image_fn()
    assert images.shape == (2, 3, 16, 16)
    assert images.min() >= 0 and images.max() <= 1
    again = param.image("maco", 16, item_generators(0, [7, 8]))[1]()
    assert torch.equal(images, again)  # deterministic under a seed
    alone = param.image("maco", 16, item_generators(0, [8]))[1]()
    assert torch.allclose(alone[0], images[1], rtol=0, atol=1e-5)  # item 8 ignores item 7
    (images[:, 0].sum() - images[:, 2].sum()).backward()
    (phase,) = params
    assert phase.grad is not None and phase.grad.abs().sum() > 0  # gradients reach the phase


def test_maco_keeps_the_amplitude_and_standardises():
    (phase,), _ = param.maco_image(8, item_generators(0, [1]))
    amplitude = param.maco_amplitude(8, 8)
    # By hand: frequency 0 is floored at 1/8, so channel 0's amplitude there is c * 8 ** alpha;
    # at frequency (0, 0.5) it is c * 2 ** alpha.
    c, alpha = param.MACO_AMPLITUDE[0]
    assert amplitude[0, 0, 0].item() == pytest.approx(c * 8**alpha, rel=1e-5)
    assert amplitude[0, 0, 4].item() == pytest.approx(c * 2**alpha, rel=1e-5)
    spatial = torch.fft.irfft2(torch.polar(amplitude.expand_as(phase), phase), s=(8, 8))
    spectrum = torch.fft.rfft2(spatial)
    # Away from the self-conjugate frequencies (the first and last column) irfft2 keeps the amplitude.
    assert torch.allclose(spectrum.abs()[..., 1:4], amplitude[..., 1:4].expand_as(phase[..., 1:4]), rtol=1e-4)


def test_maco_reaches_the_stripe_detectors_optimum():
    # The detector is a 16x16 filter of red vertical stripes on cyan: its optimum is that
    # pattern, and phase alone can place it. The fixed amplitude caps the contrast, so the
    # value stays below what the fft parameterization reaches (0.75 against 4.2 here).
    model = load_model("tests.helpers.optvis_models:stripe_net")
    result = render(model, obj.channel("detector", 0), 1, RenderOptions(steps=128, size=32, param="maco"))
    red, green, blue = result.images[0]
    redness = red - (green + blue) / 2
    assert redness.mean(dim=0).var() > 30 * redness.mean(dim=1).var()  # vertical stripes
    assert result.values[0] > 3 * result.curve[0, 0] > 0


def test_fft_upsampling_keeps_the_image():
    # Coarse-to-fine carries an 8 px spectrum to 16 px: the big image is the small one
    # band-limit interpolated, so every second pixel of it is the small image's pixel
    # (up to the Nyquist row and column, which we zero here).
    small, small_fn = param.image("fft", 8, item_generators(0, [3]), sd=0.3, decay_power=1.5)
    with torch.no_grad():
        small[0][:, :, 4] = 0
        small[0][:, :, :, 4] = 0
    big, big_fn = param.image("fft", 16, item_generators(1, [3]), decay_power=1.5)
    param.upsampled("fft", small, 8, big, decay_power=1.5)
    assert torch.allclose(big_fn()[..., ::2, ::2], small_fn(), atol=1e-5)


def test_lr_factor_by_hand():
    assert [lr_factor("constant", s, 11) for s in (0, 5, 10)] == [1.0, 1.0, 1.0]
    # 11 steps: t = step / 10. Warm-up over t < 0.1 starts at 0.1.
    assert lr_factor("warmup", 0, 11) == pytest.approx(0.1)
    assert lr_factor("warmup", 5, 11) == pytest.approx(1.0)
    assert lr_factor("cosine", 10, 11) == pytest.approx(0.1)  # the last step
    assert lr_factor("cosine", 1, 11) == pytest.approx(1.0)  # the top, just after the warm-up
    # onecycle: 0.2 -> 2 over t < 0.3 (t = 0.2: 0.2 + 1.8 * 2/3 = 1.4), then cosine to 0.1.
    assert lr_factor("onecycle", 2, 11) == pytest.approx(1.4)
    assert lr_factor("onecycle", 3, 11) == pytest.approx(2.0)
    assert lr_factor("onecycle", 10, 11) == pytest.approx(0.1)
    middle = 0.1 + 1.9 * 0.5 * (1 + math.cos(math.pi * 0.5))
    assert lr_factor("onecycle", 65, 101) == pytest.approx(middle)  # t = 0.65: half-way down
    with pytest.raises(ValueError, match="lr_schedule 'step'"):
        lr_factor("step", 0, 10)


@pytest.mark.parametrize(
    "options",
    [
        {"param": "maco"},
        {"coarse_to_fine": 0.5},
        {"coarse_to_fine": 0.5, "param": "maco"},
        {"lr_schedule": "onecycle"},
        {"optimizer": "nadam"},
        {"optimizer": "radam"},
        {"optimizer": "adamax"},
    ],
    ids=["maco", "coarse_to_fine", "maco_coarse_to_fine", "onecycle", "nadam", "radam", "adamax"],
)
def test_methods_render_deterministically_and_raise_the_objective(tiny, options):
    opts = RenderOptions(steps=24, size=24, transforms="none", **options)
    first = render(tiny, obj.channel("conv1", 0), 2, opts)
    again = render(tiny, obj.channel("conv1", 0), 2, opts)
    assert first.images.shape == (2, 3, 24, 24)
    assert torch.equal(first.images, again.images)
    assert first.images.min() >= 0 and first.images.max() <= 1
    assert (first.values > torch.as_tensor(first.curve[0]) + 1e-3).all()


def test_bad_method_options_name_the_problem(tiny):
    with pytest.raises(ValueError, match="coarse_to_fine"):
        render(tiny, obj.channel("conv1", 0), 1, RenderOptions(steps=4, size=8, coarse_to_fine=1.0))
    with pytest.raises(ValueError, match="lr_schedule"):
        render(tiny, obj.channel("conv1", 0), 1, RenderOptions(steps=4, size=8, lr_schedule="nope"))
    with pytest.raises(ValueError, match="optimizer 'sgd'.*adam, nadam"):
        render(tiny, obj.channel("conv1", 0), 1, RenderOptions(steps=4, size=8, optimizer="sgd"))
