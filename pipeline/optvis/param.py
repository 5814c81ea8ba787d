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
``pixel``
    One learnt value per pixel and colour (Lucid's ``pixel_image``), for comparison.

Both then decorrelate colour (:data:`COLOR_CORRELATION`, Lucid's square root of the
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
PARAMS = ("fft", "pixel")


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
