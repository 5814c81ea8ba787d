"""The render loop: optimise a batch of images so that each maximises its objective.

::

    result = render(model, per_item([channel("blocks.3.0", c) for c in range(32)]), 32,
                    RenderOptions(steps=512, size=128), item_keys=range(32))
    result.images   # Tensor[32, 3, 128, 128] in [0, 1], on the CPU

One step: build the images from the parameters, transform each item randomly, run the
network **only as far as the deepest layer the objective needs** (``truncate=True``),
evaluate one objective value per item, and take an Adam step on ``-sum(values)``.
Items never interact unless the objective makes them (``diversity``):

* each item's initial noise and random transformations come from its own generator,
  seeded by ``(seed, item key)`` and not by its position in the batch;
* the network is in eval mode (BatchNorm uses its running statistics);
* Adam works element-wise, and the gradient of item i's value reaches item i only.

So an item rendered inside a batch gets the image it would get alone with the same
seed and key, up to floating-point rounding, and the batch costs one forward/backward
pass per step instead of one per item.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.model import LoadedModel
from pipeline.optvis import param as param_mod
from pipeline.optvis import transforms as transforms_mod
from pipeline.optvis.compiled import compile_units, compiled_forwards
from pipeline.optvis.objectives import Objective, as_objective
from pipeline.optvis.relu_grad import redirected_relu_gradients

log = logging.getLogger(__name__)

RELU_OVERRIDE_STEPS = 16  # Lucid's render_vis
ADAM_BETAS = (0.9, 0.999)  # Lucid's (TensorFlow's) Adam defaults


@dataclasses.dataclass(frozen=True)
class RenderOptions:
    """How :func:`render` optimises (Lucid's defaults): the same for every item of a batch.

    ``steps`` Adam steps at learning rate ``lr`` on ``size`` x ``size`` images made by
    ``param`` (``"fft"`` or ``"pixel"``, :mod:`~pipeline.optvis.param`), randomly moved by
    ``transforms`` (a name or a callable, :mod:`~pipeline.optvis.transforms`); ``seed``
    seeds every item with its key. ``curve_points`` samples of the objective are kept.
    For the first ``relu_override_steps`` steps ReLU gradients are redirected
    (:mod:`~pipeline.optvis.relu_grad`), so that units that are off on the starting noise
    can still be switched on. ``init_sd`` is the standard deviation of the starting noise,
    ``decay_power`` how fast the ``fft`` spectrum's scale falls with frequency
    (:func:`~pipeline.optvis.param.spectrum_scale`), ``adam_betas`` Adam's ``(beta1, beta2)``:
    Lucid's values by default; short runs do better with others (docs/PERFORMANCE.md).
    ``amp=True`` runs the network's forward pass under bfloat16 autocast on a CUDA device
    (the objective is computed in float32); on any other device it does nothing (bfloat16
    is slower on this project's CPUs, docs/PERFORMANCE.md, section 6) and says so once.
    ``compile=True`` runs each layer module's ``forward`` compiled (torch.compile;
    :mod:`~pipeline.optvis.compiled`) after the redirected-gradient steps.
    ``lr_schedule`` scales ``lr`` over the steps (:func:`lr_factor`; ``"constant"``:
    Lucid's). ``coarse_to_fine = F > 0`` renders the first ``F`` of the steps at half the
    side and then carries the parameters over to the full side
    (:func:`~pipeline.optvis.param.upsampled`; cheaper early steps). ``optimizer`` is
    one of :data:`OPTIMIZERS` (torch.optim's Adam family; each takes ``adam_betas``).
    ``pre_activation=True`` optimises (and measures) capped layers at their
    pre-activation, the tensor before their bounded activation
    (:meth:`~pipeline.model.LoadedModel.tap_points`); other layers at their output.
    """

    steps: int = 512
    size: int = 128
    param: str = "fft"
    lr: float = 0.05
    seed: int = 0
    transforms: str | transforms_mod.Transform | None = "standard"
    curve_points: int = 32
    relu_override_steps: int = RELU_OVERRIDE_STEPS
    init_sd: float = param_mod.INIT_SD
    decay_power: float = param_mod.DECAY_POWER
    adam_betas: tuple[float, float] = ADAM_BETAS
    amp: bool = False
    compile: bool = False
    pre_activation: bool = False
    lr_schedule: str = "constant"
    coarse_to_fine: float = 0.0
    optimizer: str = "adam"


# Optimisers that take Adam's (beta1, beta2): Lucid's Adam, Nesterov-momentum Adam,
# rectified Adam (damped first steps) and Adam under the infinity norm.
OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "adamax": torch.optim.Adamax,
}
LR_SCHEDULES = ("constant", "warmup", "cosine", "onecycle")
WARMUP = 0.1  # share of the steps the warm-ups take


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The learning rate of ``step`` (0-based) of ``steps`` over the base rate.

    ``constant`` 1; ``warmup``: linear from 0.1 to 1 over the first tenth, then 1;
    ``cosine``: that warm-up, then a cosine from 1 down to 0.1 at the last step;
    ``onecycle``: linear from 0.2 to 2 over the first 30 %, then a cosine down to 0.1.
    """
    t = step / max(1, steps - 1)
    if schedule == "constant":
        return 1.0
    if schedule == "onecycle":
        low, peak, rise = 0.2, 2.0, 0.3
    elif schedule in ("warmup", "cosine"):
        low, peak, rise = 0.1, 1.0, WARMUP
    else:
        raise ValueError(f"unknown lr_schedule {schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if t < rise:
        return low + (peak - low) * t / rise
    if schedule == "warmup":
        return peak
    fall = (t - rise) / (1 - rise)
    return 0.1 + (peak - 0.1) * 0.5 * (1 + math.cos(math.pi * fall))


@dataclasses.dataclass
class RenderResult:
    """What :func:`render` returns (``N`` items, ``P`` curve points)."""

    images: torch.Tensor  # [N, 3, size, size] float in [0, 1], CPU
    values: torch.Tensor  # [N] objective on the final, untransformed images, CPU
    curve: np.ndarray  # [P, N] objective during optimisation (transformed images)
    curve_steps: np.ndarray  # [P] the step index of each curve row
    steps: int
    description: str  # str(objective)


def _canonical(key: Hashable) -> Hashable:
    # numpy and torch integers must seed like the Python int they equal.
    if isinstance(key, tuple):
        return tuple(_canonical(k) for k in key)
    if isinstance(key, (int, np.integer)) or (torch.is_tensor(key) and key.numel() == 1):
        return int(key)
    return key


def item_seed(seed: int, key: Hashable) -> int:
    """A 63-bit seed from the run seed and an item's key (a channel id, say).

    Hashing, not ``seed + key``, so that neighbouring seeds and keys share no streams.
    """
    digest = hashlib.sha256(f"{int(seed)}:{_canonical(key)!r}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def item_generators(seed: int, keys: Iterable[Hashable]) -> list[torch.Generator]:
    """One CPU generator per item, each seeded by :func:`item_seed`."""
    return [torch.Generator().manual_seed(item_seed(seed, k)) for k in keys]


def activations(
    model: LoadedModel,
    images: torch.Tensor,
    layers: Iterable[str],
    *,
    truncate: bool = True,
    pre_activation: bool = False,
) -> dict[str, torch.Tensor]:
    """Activations ``{layer: Tensor[N, C, H, W]}`` of ``[0, 1]`` images ``[N, 3, H, W]``, no grad.

    ``pre_activation=True``: capped layers' pre-activations instead of their outputs.
    """
    return model.activations(images, list(layers), truncate=truncate, pre_activation=pre_activation)


def curve_steps(steps: int, points: int) -> np.ndarray:
    """``int64 [points]``: the steps at which the objective curve is sampled, evenly spread."""
    return np.linspace(0, steps - 1, max(1, int(points))).round().astype(np.int64)


def render(
    model: LoadedModel,
    objective: Objective,
    batch: int,
    options: RenderOptions = RenderOptions(),
    *,
    item_keys: Sequence[Hashable] | None = None,
    truncate: bool = True,
    progress: bool = False,
) -> RenderResult:
    """Optimise ``batch`` images for ``objective`` (values ``Tensor[batch]``) as ``options``
    say, and return them.

    ``item_keys`` (default ``range(batch)``) seed each item's noise and transformations;
    give each item a key that identifies it (its channel id) so that batching does not
    change its image. ``truncate=False`` runs the whole network every step (slower, same
    result).
    """
    objective = as_objective(objective)
    steps, size, seed = options.steps, options.size, options.seed
    keys = _checked_keys(objective, batch, options, item_keys)

    device = model.device
    model.net.eval()  # BatchNorm in training mode would mix the items of a batch
    tap = model.tap(list(objective.layers), pre_activation=options.pre_activation)
    generators = item_generators(seed, keys)
    coarse_steps = round(steps * options.coarse_to_fine) if size >= 2 else 0
    params, image_fn = _parameterize(options, size // 2 if coarse_steps else size, generators, device)
    transform = transforms_mod.resolve(options.transforms)
    optimizer = make_optimizer(options, params)
    record_at = curve_steps(steps, options.curve_points)
    curve = torch.zeros(len(record_at), batch, device=device)
    units = _units_to_compile(model, tap, options)

    with tqdm(
        total=steps, desc=str(objective)[:60], disable=not progress, mininterval=5.0, leave=False, unit="step"
    ) as bar:
        for step in range(steps):
            if coarse_steps and step == coarse_steps:
                params, image_fn, optimizer = _to_full_size(options, params, keys, device)
            for group in optimizer.param_groups:
                group["lr"] = options.lr * lr_factor(options.lr_schedule, step, steps)
            optimizer.zero_grad(set_to_none=True)
            images = transform(image_fn(), generators)
            acts = _step_activations(model, tap, images, step, options, (units, truncate))
            values = objective({k: v.float() for k, v in acts.items()})
            if values.shape != (batch,):
                raise ValueError(
                    f"objective {objective} gave values of shape {tuple(values.shape)}, "
                    f"expected ({batch},): one per item"
                )
            (-values.sum()).backward()
            optimizer.step()
            for row in np.flatnonzero(record_at == step):
                curve[row] = values.detach()  # stays on the device: no sync per step
            bar.update()
    return _final_result(model, objective, image_fn, options, (curve, record_at), truncate)


def _units_to_compile(model, tap, options: RenderOptions) -> list:
    """The modules ``options.compile`` runs compiled (:func:`compile_units`); none, and no
    search for them, when it is off."""
    if not options.compile:
        return []
    return compile_units(model.modules_for(model.layers).values(), tap.modules.values())


def _step_activations(model, tap, images, step: int, options: RenderOptions, how) -> dict:
    """The tapped activations of ``images`` at ``step``: the first steps with redirected
    ReLU gradients, the later ones (``options.compile``) through the compiled ``units``,
    the network under bfloat16 autocast with ``options.amp`` on CUDA; ``how``:
    ``(units, truncate)``."""
    units, truncate = how
    redirected = step < options.relu_override_steps
    compiled = [] if redirected else units
    with (
        _autocast(options.amp, model.device),
        redirected_relu_gradients(redirected),
        compiled_forwards(compiled),
    ):
        acts, _ = tap(model.normalize(images), truncate=truncate)
    return acts


_SAID_AMP_IS_CUDA_ONLY: set[str] = set()


def _autocast(amp: bool, device: torch.device):
    """bfloat16 autocast of the network's forward on a CUDA device (whichever one the model
    is on); a no-op elsewhere, said once per device type."""
    if amp and device.type == "cuda":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if amp and device.type not in _SAID_AMP_IS_CUDA_ONLY:
        _SAID_AMP_IS_CUDA_ONLY.add(device.type)
        log.warning("amp: bfloat16 autocast is used on CUDA only; rendering on %s in float32", device.type)
    return contextlib.nullcontext()


def _to_full_size(options: RenderOptions, coarse, keys, device):
    """Coarse-to-fine: ``(params, image_fn, optimizer)`` at the full side, carrying the
    half-side ``coarse`` parameters over; Adam starts afresh on the new parameters."""
    # The full grid's own starting noise (maco's new phases), seeded per item.
    fine = item_generators(options.seed, [("fine", k) for k in keys])
    params, image_fn = _parameterize(options, options.size, fine, device)
    param_mod.upsampled(options.param, coarse, options.size // 2, params, options.decay_power)
    return params, image_fn, make_optimizer(options, params)


def make_optimizer(options: RenderOptions, params) -> torch.optim.Optimizer:
    """``options.optimizer`` over ``params`` at ``options.lr`` with ``options.adam_betas``."""
    if options.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {options.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[options.optimizer](params, lr=options.lr, betas=tuple(options.adam_betas))


def _parameterize(options: RenderOptions, size: int, generators, device):
    return param_mod.image(
        options.param, size, generators, device=device, sd=options.init_sd, decay_power=options.decay_power
    )


def _checked_keys(objective, batch: int, options: RenderOptions, item_keys) -> list:
    """The items' keys (default ``range(batch)``), after checking :func:`render`'s arguments."""
    steps, size = options.steps, options.size
    if batch < 1 or steps < 1 or size < 1:
        raise ValueError(f"render: batch, steps and size must be positive (got {batch}, {steps}, {size})")
    keys = list(range(batch)) if item_keys is None else list(item_keys)
    if len(keys) != batch:
        raise ValueError(f"render: {len(keys)} item keys for a batch of {batch}")
    if not objective.layers:
        raise ValueError(f"objective {objective} names no layer")
    if not 0.0 <= options.coarse_to_fine < 1.0:
        raise ValueError(f"render: coarse_to_fine must be in [0, 1), got {options.coarse_to_fine}")
    lr_factor(options.lr_schedule, 0, steps)  # an unknown schedule fails here, before any step
    return keys


def _final_result(
    model, objective, image_fn, options: RenderOptions, recorded, truncate: bool
) -> RenderResult:
    """The optimised images, the objective measured on them once more, and the curve
    (``recorded``: the curve and the steps it was sampled at)."""
    curve, record_at = recorded
    with torch.no_grad():
        final = image_fn().detach()
    final_values = objective(
        activations(model, final, objective.layers, truncate=truncate, pre_activation=options.pre_activation)
    )
    return RenderResult(
        images=final.cpu(),
        values=final_values.detach().float().cpu(),
        curve=curve.cpu().numpy(),
        curve_steps=record_at,
        steps=options.steps,
        description=str(objective),
    )
