"""Receptive fields: which input pixels can change a layer's unit at a given position.

The atlas crops dataset examples to "the part of the image this unit saw". For any
network we find that part numerically instead of from per-module kernel arithmetic
(which breaks on branches, dynamic "SAME" padding, pooling variants, ...):

1. Run the network once on a random image while a :class:`torch.overrides.TorchFunctionMode`
   turns every op into its *receptive-field sense*: ReLU-like and saturating
   elementwise functions keep their values but pass gradients straight through
   (a dead ReLU does not shrink the field), and max pooling keeps its values but
   takes the gradient of average pooling over the same window (every pixel of the
   window counts, not only the winner).
2. For each output row ``y`` of a layer, the gradient of (a positive random mix of)
   all units in that row with respect to the input marks the input rows that
   reach it; likewise for each column. Rows are computed in batches through
   ``torch.autograd.grad(..., is_grads_batched=True)``, with a plain loop as fallback.

The box of position ``(y, x)`` is then ``rows[y] x cols[x]``. Taking the union over
the whole row (and column) makes the box a superset of the true field even for
networks that are not translation-equivariant, which is the property cropping needs:
**every input pixel whose change alters the unit lies inside its box.**

Boxes are ``(y0, x0, y1, x1)``, half-open, in pixels of the ``input_size`` square
the model sees (the centre crop), clipped to that square.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from pipeline.model.hooks import LayerTap

# Elementwise functions with flat regions (zero gradient) or saturation: in the
# receptive-field sense their gradient is 1 everywhere.
_STRAIGHT_THROUGH = {
    "relu",
    "relu_",
    "relu6",
    "hardtanh",
    "hardtanh_",
    "clamp",
    "clamp_",
    "clip",
    "clip_",
    "clamp_min",
    "clamp_min_",
    "clamp_max",
    "clamp_max_",
    "threshold",
    "threshold_",
    "hardswish",
    "hardsigmoid",
    "leaky_relu",
    "leaky_relu_",
    "elu",
    "elu_",
    "selu",
    "celu",
    "gelu",
    "silu",
    "sigmoid",
    "sigmoid_",
    "tanh",
    "tanh_",
    "softplus",
    "mish",
    "rrelu",
}


def _first_tensor(args) -> torch.Tensor | None:
    return args[0] if args and torch.is_tensor(args[0]) else None


class ReceptiveFieldOps(TorchFunctionMode):
    """While active, ops keep their forward values but differentiate in the receptive-field sense."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        x = _first_tensor(args)
        if name in _STRAIGHT_THROUGH and x is not None and x.is_floating_point():
            if kwargs.get("inplace"):
                kwargs["inplace"] = False
            if name.endswith("_"):
                # Work on a copy: the straight-through value must not alias its input.
                args = (x.clone(), *args[1:])
            out = func(*args, **kwargs)
            if torch.is_tensor(out) and out.shape == x.shape:
                return x + (out - x).detach()
            return out
        if name in ("max_pool2d", "max_pool2d_with_indices") and x is not None:
            return self._max_pool(func, args, kwargs)
        if name in ("adaptive_max_pool2d", "adaptive_max_pool2d_with_indices") and x is not None:
            if kwargs.get("return_indices"):
                return func(*args, **kwargs)
            out = func(*args, **kwargs)
            avg = F.adaptive_avg_pool2d(x, args[1] if len(args) > 1 else kwargs["output_size"])
            return avg + (out - avg).detach()
        return func(*args, **kwargs)

    @staticmethod
    def _max_pool(func, args, kwargs):
        names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
        bound = {**dict(zip(names, args)), **kwargs}
        dilation = bound.get("dilation", 1)
        if bound.get("return_indices") or dilation not in (1, (1, 1), [1, 1]):
            return func(*args, **kwargs)  # rare; keeps max pooling's (sparser) gradient
        out = func(*args, **kwargs)
        x = bound["input"]
        avg = F.avg_pool2d(
            x,
            bound["kernel_size"],
            bound.get("stride") or bound["kernel_size"],
            bound.get("padding", 0),
            bound.get("ceil_mode", False),
            count_include_pad=True,
        )
        if avg.shape != out.shape:
            return out
        return avg + (out - avg).detach()


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """Input rows and columns reaching each output row/column of one layer (half-open)."""

    rows: torch.Tensor  # Long[H, 2]: (y0, y1) for output row y
    cols: torch.Tensor  # Long[W, 2]: (x0, x1) for output column x
    input_size: int

    def boxes(self) -> torch.Tensor:
        """Long[H, W, 4]: ``(y0, x0, y1, x1)`` for every output position."""
        h, w = len(self.rows), len(self.cols)
        rows = self.rows[:, None, :].expand(h, w, 2)
        cols = self.cols[None, :, :].expand(h, w, 2)
        return torch.stack([rows[..., 0], cols[..., 0], rows[..., 1], cols[..., 1]], dim=-1)

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        return (int(self.rows[y, 0]), int(self.cols[x, 0]), int(self.rows[y, 1]), int(self.cols[x, 1]))


def receptive_fields(
    model,
    layers: Sequence[str] | str | None = None,
    *,
    seed: int = 0,
    batch: int = 32,
    progress: bool = False,
) -> dict[str, ReceptiveField]:
    """Receptive fields of the named layers (default: all) from one forward pass.

    ``model`` is a :class:`pipeline.model.LoadedModel`; its weights do not matter
    beyond being non-degenerate. ``batch`` output rows share one batched backward pass.
    """
    infos = model.resolve_layers(layers)
    size = model.input_size
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, size, size, generator=generator).to(model.device)
    image.requires_grad_(True)
    tap = LayerTap(model.net, model.modules_for(infos))
    with torch.enable_grad(), ReceptiveFieldOps():
        acts, _ = tap(model.normalize(image), truncate=True)
    fields = {}
    iterator = infos
    if progress:
        from tqdm import tqdm

        iterator = tqdm(infos, desc="receptive fields", unit="layer")
    for info in iterator:
        act = acts[info.name]
        mix = (torch.rand(act.shape[1], generator=generator) + 0.5).to(act.device)
        rows = _ranges(act, image, mix, axis=2, batch=batch)
        cols = _ranges(act, image, mix, axis=3, batch=batch)
        fields[info.name] = ReceptiveField(rows=rows, cols=cols, input_size=size)
    return fields


def receptive_field_boxes(model, layer: str) -> torch.Tensor:
    """Long[H, W, 4]: the input-space box ``(y0, x0, y1, x1)`` of every position of ``layer``."""
    name = model.layer(layer).name
    return receptive_fields(model, [name])[name].boxes()


def _ranges(
    act: torch.Tensor, image: torch.Tensor, mix: torch.Tensor, *, axis: int, batch: int
) -> torch.Tensor:
    """Long[L, 2]: for each index along ``axis`` (2 = rows, 3 = cols) the input span reaching it."""
    length = act.shape[axis]
    spans = []
    for start in range(0, length, batch):
        stop = min(start + batch, length)
        seeds = torch.zeros((stop - start, *act.shape), device=act.device, dtype=act.dtype)
        for i, index in enumerate(range(start, stop)):
            view = seeds[i, 0].select(axis - 1, index)  # [C, W] or [C, H]
            view += mix[:, None]
        grads = _batched_input_grads(act, image, seeds)  # [B, 1, 3, S, S]
        # Sum over everything but the batch and the input axis matching ``axis``.
        other = 4 if axis == 2 else 3
        reach = grads.abs().sum(dim=(1, 2, other)) > 0  # [B, S]
        for row in reach:
            hit = torch.nonzero(row).flatten()
            if len(hit) == 0:
                # Nothing reaches this unit (a constant): say "the whole image" so crops stay valid.
                spans.append((0, row.numel()))
            else:
                spans.append((int(hit[0]), int(hit[-1]) + 1))
    return torch.tensor(spans, dtype=torch.long)


def _batched_input_grads(act: torch.Tensor, image: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    try:
        (grads,) = torch.autograd.grad(act, image, seeds, retain_graph=True, is_grads_batched=True)
        return grads
    except RuntimeError:
        # Some ops have no batching rule for their backward: one pass per seed instead.
        return torch.stack([torch.autograd.grad(act, image, s, retain_graph=True)[0] for s in seeds])
