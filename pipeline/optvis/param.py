"""Image parameterizations: what the optimiser updates, and how an image is made from it.

Each parameterization returns ``(params, image_fn)``: ``params`` is a list of leaf
tensors for the optimiser, ``image_fn()`` builds the batch of images
``Tensor[N, 3, size, size]`` with values in ``(0, 1)``.

Every item of the batch is initialised from its own ``torch.Generator``, so an item
starts from the same noise whether it is rendered alone or inside a batch.

``fft``
    Lucid's spectral parameterization: the image is the inverse real FFT of learnt
    Fourier coefficients, each frequency scaled by ``1 / max(freq, 1 / max(h, w)) ** decay_power``
    so that low frequencies dominate (Lucid's decay power 1; a larger power damps high
    frequencies more), times ``sqrt(h * w)``, divided by 4. Gradient descent in this
    basis favours smooth images over high-frequency noise.
``maco``
    Magnitude-constrained Fourier image (MaCo: Fel et al., NeurIPS 2023): only the
    **phase** of each frequency is learnt; its amplitude is fixed to a natural-image
    spectrum (:data:`MACO_AMPLITUDE`), and the spatial image is standardised per item
    (mean 0, standard deviation 1) before the colour step, so the optimiser can move
    structure but not contrast or the balance of frequencies. The phase starts as
    N(0, 1) noise (MaCo's); ``sd`` and ``decay_power`` do not apply.
``pixel``
    One learnt value per pixel and colour (Lucid's ``pixel_image``), for comparison.

All three then decorrelate colour (:data:`COLOR_CORRELATION`, Lucid's square root of the
ImageNet colour covariance, normalised by its largest column norm) and squash with a
sigmoid into ``(0, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

INIT_SD = 0.01  # Lucid's initial noise scale
DECAY_POWER = 1.0  # Lucid's spectrum decay power
# Square root of ImageNet's colour covariance ("svd sqrt"), rows = output RGB.
_COLOR_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_CORRELATION = _COLOR_SVD_SQRT / _COLOR_SVD_SQRT.norm(dim=0).max()

ImageFn = Callable[[], torch.Tensor]
PARAMS = ("fft", "maco", "pixel")
# The natural-image amplitude spectrum MaCo's phase lives under, per decorrelated colour
# channel: amplitude = c / f ** alpha (f in cycles per pixel, floored at 1 / size), a
# least-squares fit of log amplitude on log frequency to the mean amplitude spectrum of
# the 146 bundled photos (data/photos: centre crops at 128 px, mean-free, colour
# decorrelated by the inverse of COLOR_CORRELATION); residual sd 0.27-0.41 in log units.
# MaCo itself loads ImageNet's mean spectrum; a fit of our own photos needs no download.
MACO_AMPLITUDE = ((2.22, 1.46), (0.642, 1.96), (1.066, 1.71))  # (c, alpha) per channel
MACO_PHASE_SD = 1.0


def image(
    kind: str,
    size: int,
    generators: Sequence[torch.Generator],
    *,
    device: torch.device | str = "cpu",
    sd: float = INIT_SD,
    decay_power: float = DECAY_POWER,
) -> tuple[list[torch.Tensor], ImageFn]:
    """A batch of ``len(generators)`` images of ``size x size`` pixels.

    Returns ``(params, image_fn)`` with ``image_fn() -> Tensor[N, 3, size, size]`` in ``(0, 1)``.
    ``sd``: standard deviation of the initial noise; ``decay_power``: how fast the ``fft``
    scale falls with frequency (``pixel`` has no spectrum and ignores it).
    """
    if kind == "fft":
        return fft_image(size, generators, device=device, sd=sd, decay_power=decay_power)
    if kind == "maco":
        return maco_image(size, generators, device=device)
    if kind == "pixel":
        return pixel_image(size, generators, device=device, sd=sd)
    raise ValueError(f"unknown image parameterization {kind!r}; choose one of {', '.join(PARAMS)}")


def _stacked_noise(
    shape: tuple[int, ...], generators: Sequence[torch.Generator], sd: float, device
) -> torch.Tensor:
    """``Tensor[N, *shape]`` of N(0, sd^2) noise, item i drawn from ``generators[i]`` on the CPU."""
    if not generators:
        raise ValueError("an image batch needs at least one item (one generator per item)")
    noise = torch.stack([torch.randn(shape, generator=g) * sd for g in generators])
    # Drawn on the CPU so that the same seed gives the same image on every device.
    return noise.to(device).requires_grad_(True)


def spectrum_scale(h: int, w: int, decay_power: float = DECAY_POWER) -> torch.Tensor:
    """Per-frequency scale ``Tensor[h, w // 2 + 1]`` of the spectral parameterization."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return (1.0 / torch.clamp(freqs, min=1.0 / max(h, w)) ** decay_power) * (h * w) ** 0.5


def fft_image(
    size: int,
    generators: Sequence[torch.Generator],
    *,
    device="cpu",
    sd: float = INIT_SD,
    decay_power: float = DECAY_POWER,
) -> tuple[list[torch.Tensor], ImageFn]:
    """Lucid's spectral image; see the module docstring."""
    h = w = int(size)
    scale = spectrum_scale(h, w, decay_power).to(device)
    # Real and imaginary parts as a trailing axis: [N, 3, h, w//2+1, 2].
    spectrum = _stacked_noise((3, h, w // 2 + 1, 2), generators, sd, device)
    colors = color_matrix(device)

    def image_fn() -> torch.Tensor:
        coefficients = torch.view_as_complex(spectrum) * scale
        # norm="backward" divides by h*w, as TensorFlow's irfft2d does in Lucid.
        spatial = torch.fft.irfft2(coefficients, s=(h, w), norm="backward") / 4.0
        return to_valid_rgb(spatial, colors)

    return [spectrum], image_fn


def maco_amplitude(h: int, w: int) -> torch.Tensor:
    """The fixed amplitude ``Tensor[3, h, w // 2 + 1]`` of the ``maco`` parameterization."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    freqs = torch.clamp(torch.sqrt(fx * fx + fy * fy), min=1.0 / max(h, w))
    return torch.stack([c / freqs**alpha for c, alpha in MACO_AMPLITUDE])


def maco_image(
    size: int, generators: Sequence[torch.Generator], *, device="cpu"
) -> tuple[list[torch.Tensor], ImageFn]:
    """MaCo's phase-only spectral image; see the module docstring."""
    h = w = int(size)
    amplitude = maco_amplitude(h, w).to(device)
    phase = _stacked_noise((3, h, w // 2 + 1), generators, MACO_PHASE_SD, device)
    colors = color_matrix(device)

    def image_fn() -> torch.Tensor:
        spatial = torch.fft.irfft2(torch.polar(amplitude.expand_as(phase), phase), s=(h, w))
        # Per item, so that items of a batch stay independent.
        mean = spatial.mean(dim=(1, 2, 3), keepdim=True)
        sd = spatial.std(dim=(1, 2, 3), keepdim=True)
        return to_valid_rgb((spatial - mean) / (sd + 1e-4), colors)

    return [phase], image_fn


def upsampled(
    kind: str,
    params: list[torch.Tensor],
    size: int,
    new_params: list[torch.Tensor],
    decay_power: float = DECAY_POWER,
) -> None:
    """Carry a spectral image of side ``size`` over to the larger side of ``new_params``
    (coarse-to-fine), in place and without gradient.

    ``fft``: every coefficient of the small spectrum is copied to the same spatial
    frequency of the large one, rescaled so that the large image is the small one
    band-limit interpolated (the new, higher frequencies start at 0). ``maco``: the
    phases of the small spectrum's frequencies are copied (the amplitude is fixed; the
    new frequencies keep their own random phase). ``pixel``: bilinear upsampling.
    """
    (old,), (new,) = params, new_params
    big = new.shape[2]
    with torch.no_grad():
        if kind == "pixel":
            new.copy_(torch.nn.functional.interpolate(old, size=(big, big), mode="bilinear"))
            return
        rows = torch.fft.fftfreq(size, d=1.0 / size).long() % big  # signed index -> row of the big grid
        cols = torch.arange(size // 2 + 1)
        if kind == "maco":
            new[:, :, rows[:, None], cols[None, :]] = old
            return
        if kind != "fft":
            raise ValueError(f"unknown image parameterization {kind!r}; choose one of {', '.join(PARAMS)}")
        # Same pixel values: irfft2 divides by h*w, so coefficients grow by (big/size)^2;
        # then undo the change of spectrum_scale at each frequency.
        small_scale = spectrum_scale(size, size, decay_power).to(old.device)
        big_scale = spectrum_scale(big, big, decay_power).to(old.device)[rows[:, None], cols[None, :]]
        factor = ((big / size) ** 2 * small_scale / big_scale)[..., None]
        new.zero_()
        new[:, :, rows[:, None], cols[None, :]] = old * factor


def pixel_image(
    size: int, generators: Sequence[torch.Generator], *, device="cpu", sd: float = INIT_SD
) -> tuple[list[torch.Tensor], ImageFn]:
    """One parameter per pixel and colour; see the module docstring."""
    pixels = _stacked_noise((3, int(size), int(size)), generators, sd, device)
    colors = color_matrix(device)
    return [pixels], lambda: to_valid_rgb(pixels, colors)


def to_valid_rgb(t: torch.Tensor, matrix: torch.Tensor | None = None) -> torch.Tensor:
    """Decorrelated colour -> RGB in ``(0, 1)``: ``Tensor[N, 3, H, W]`` in and out.

    ``matrix``: :func:`color_matrix` for ``t``'s device, made once per render (default:
    made here).
    """
    matrix = color_matrix(t.device) if matrix is None else matrix
    # A 1x1 convolution is the per-pixel matrix product, and faster than einsum on CPU.
    return torch.sigmoid(torch.nn.functional.conv2d(t, matrix))


def color_matrix(device) -> torch.Tensor:
    """:data:`COLOR_CORRELATION` as a ``[3, 3, 1, 1]`` convolution weight on ``device``."""
    return COLOR_CORRELATION.to(device)[:, :, None, None]
