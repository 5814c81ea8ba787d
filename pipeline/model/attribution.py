"""Layer attribution: how much each unit of a layer contributes to a chosen output.

Captum-style: the constructor fixes the model and the layers, :meth:`LayerAttribution.attribute`
takes the data.

>>> attr = LayerAttribution(model, ["blocks.3.0", "head"])
>>> result = attr.attribute(images01, target=torch.tensor([948, 948]))
>>> result.channel("head")        # [N, C]: attribution summed over space
>>> result.spatial("head")        # [N, H, W]: attribution summed over channels

Methods (Olah et al., "The Building Blocks of Interpretability", 2018):

``"gradient"``
    gradient x activation, the linear approximation of the target around the
    image. One forward pass captures every layer; one backward pass per target
    yields the gradients of all layers at once.
``"integrated"``
    path-integrated gradients: ``act x mean_k grad(alpha_k * act)`` for ``steps``
    points on the straight path from zero activation *of that layer* to the real
    one (midpoint rule, ``alpha_k = (k + 1/2) / steps``). The network is re-run
    with the layer's output replaced by ``alpha * act`` through a forward hook, one
    layer at a time; the attributions of a layer then sum to
    ``target(act) - target(0)`` up to the integration error.

Between two layers, :func:`attribute_to_earlier` attributes targets defined on a later
layer (a weighted sum of its activations, or one unit ``(channel, y, x)``) to an earlier
one: one forward pass, then one backward pass per target through the layers between them
only (the Building Blocks' flows, the circuits between channels).

A target is one of: a LongTensor ``[N]`` of class ids (entries < 0 mean "no target",
whose attribution is 0), an ``int`` class for every image, the string
``"predicted"`` (each image's top class, fixed from the unperturbed logits), or a
callable ``logits [N, K] -> Tensor [N]`` such as ``lambda z: z[:, a] - z[:, b]``.

Parameters are frozen by :class:`pipeline.model.LoadedModel`, so no parameter
gradients are ever made, and no graph outlives a call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from pipeline.model.hooks import LayerTap, run_with_hooks

Target = torch.Tensor | int | str | Callable[[torch.Tensor], torch.Tensor]
PREDICTED = "predicted"
METHODS = ("gradient", "integrated")


@dataclasses.dataclass
class AttributionResult:
    """Activations, attributions and logits of one batch (all detached).

    ``activations[layer]`` and ``attributions[layer]`` are ``[N, C, H, W]``;
    ``logits`` is ``[N, num_classes]``.
    """

    activations: dict[str, torch.Tensor]
    attributions: dict[str, torch.Tensor]
    logits: torch.Tensor

    def channel(self, layer: str) -> torch.Tensor:
        """``[N, C]``: attribution of each channel, summed over space."""
        return self.attributions[layer].sum(dim=(2, 3))

    def spatial(self, layer: str) -> torch.Tensor:
        """``[N, H, W]``: attribution of each position, summed over channels."""
        return self.attributions[layer].sum(dim=1)

    def total(self, layer: str) -> torch.Tensor:
        """``[N]``: the whole layer's attribution (channel and spatial views both sum to it)."""
        return self.attributions[layer].sum(dim=(1, 2, 3))


class LayerAttribution:
    """Attribute a target to the units of fixed layers of a :class:`~pipeline.model.LoadedModel`."""

    def __init__(self, model, layers: Sequence[str] | str | None):
        self.model = model
        self.layers = [info.name for info in model.resolve_layers(layers)]
        self.modules = model.modules_for(model.resolve_layers(self.layers))

    def attribute(
        self, images01: torch.Tensor, target: Target, *, method: str = "gradient", steps: int = 20
    ) -> AttributionResult:
        """Attributions of ``target`` for a batch ``images01`` ``[N, 3, H, W]`` in ``[0, 1]``."""
        return self.attribute_targets(images01, {"target": target}, method=method, steps=steps)["target"]

    def attribute_targets(
        self,
        images01: torch.Tensor,
        targets: Mapping[str, Target],
        *,
        method: str = "gradient",
        steps: int = 20,
    ) -> dict[str, AttributionResult]:
        """Several targets from the same forward pass: ``{name: AttributionResult}``.

        The results share their ``activations`` and ``logits``.
        """
        if method not in METHODS:
            raise ValueError(f"attribution method {method!r} unknown; use one of {', '.join(METHODS)}")
        if not targets:
            raise ValueError("attribute_targets needs at least one target")
        if images01.dim() != 4 or images01.shape[1] != 3:
            raise ValueError(f"images01 must be [N, 3, H, W], got {tuple(images01.shape)}")
        inputs = self.model.normalize(images01.to(self.model.device, non_blocking=True).detach())
        if method == "gradient":
            return self._gradient(inputs, targets)
        if steps < 1:
            raise ValueError(f"integrated attribution needs steps >= 1, got {steps}")
        return self._integrated(inputs, targets, steps)

    # -- gradient x activation --------------------------------------------------------
    def _gradient(self, inputs, targets) -> dict[str, AttributionResult]:
        # The input must require grad for the captured activations to carry a graph
        # (parameters are frozen); autograd.grad below stops at the activations, so
        # no gradient with respect to the image is ever computed.
        inputs = inputs.requires_grad_(True)
        with torch.enable_grad():
            acts, logits = LayerTap(self.model.net, self.modules)(inputs, truncate=False)
            _check_logits(logits, len(inputs))
            captured = [acts[name] for name in self.layers]
            resolved = {name: _resolve_target(t, logits.detach()) for name, t in targets.items()}
            results = {}
            for i, (name, target) in enumerate(resolved.items()):
                value = _target_value(target, logits)
                grads = torch.autograd.grad(
                    value.sum(), captured, allow_unused=True, retain_graph=i + 1 < len(resolved)
                )
                results[name] = {
                    layer: _times(grad, act) for layer, grad, act in zip(self.layers, grads, captured)
                }
        activations = {layer: act.detach() for layer, act in zip(self.layers, captured)}
        logits = logits.detach()
        return {name: AttributionResult(activations, attrs, logits) for name, attrs in results.items()}

    # -- path-integrated ----------------------------------------------------------------
    def _integrated(self, inputs, targets, steps) -> dict[str, AttributionResult]:
        with torch.no_grad():
            acts, logits = LayerTap(self.model.net, self.modules)(inputs, truncate=False)
        _check_logits(logits, len(inputs))
        resolved = {name: _resolve_target(t, logits) for name, t in targets.items()}
        results: dict[str, dict[str, torch.Tensor]] = {name: {} for name in resolved}
        for layer in self.layers:
            act = acts[layer]
            grad_sums = {name: torch.zeros_like(act) for name in resolved}
            for k in range(steps):
                scaled = ((k + 0.5) / steps * act).requires_grad_(True)
                with torch.enable_grad():
                    # Only the part after the layer builds a graph: nothing before it
                    # requires grad.
                    path_logits = run_with_hooks(
                        self.model.net, inputs, {layer: (self.modules[layer], lambda _m, _i, _o, s=scaled: s)}
                    )
                    for i, (name, target) in enumerate(resolved.items()):
                        (grad,) = torch.autograd.grad(
                            _target_value(target, path_logits).sum(),
                            scaled,
                            allow_unused=True,
                            retain_graph=i + 1 < len(resolved),
                        )
                        if grad is not None:
                            grad_sums[name] += grad
            for name in resolved:
                results[name][layer] = act * grad_sums[name] / steps
        return {name: AttributionResult(acts, attrs, logits) for name, attrs in results.items()}


# ---------------------------------------------------------------------------------
# Layer to layer
# ---------------------------------------------------------------------------------

Unit = tuple[int, int, int]  # (channel, y, x) of a layer's output


def attribute_to_earlier(
    model,
    image01: torch.Tensor,
    earlier: str,
    later: str,
    weights: Iterable[torch.Tensor | Unit],
    reduce: Callable[[torch.Tensor], Any],
    *,
    to_cpu: bool = True,
) -> list:
    """Gradient x activation at ``earlier`` for targets at ``later``, reduced one at a time.

    ``weights`` yields one target at a time, either a ``[C2, H2, W2]`` tensor ``w``: the
    target is ``sum(w * a2)`` (``a2``: ``later``'s activation on ``image01 [3, S, S]``;
    the weights are constants), or a unit ``(channel, y, x)``: the target is
    ``a2[channel, y, x]``, with no dense weight tensor built. For each target,
    ``reduce(attribution [C1, H1, W1])`` is called and its results are returned in a list
    (the attribution is float32, on the CPU, or on the model's device with
    ``to_cpu=False``: cheaper when ``reduce`` shrinks it). The network runs forward once
    (up to ``later``); each target costs one backward pass from ``later`` to ``earlier``
    only. When ``later`` does not depend on ``earlier`` (a side branch), attributions are 0.
    """
    infos = model.resolve_layers([earlier, later])
    if [i.name for i in infos] != [model.layer(earlier).name, model.layer(later).name]:
        raise ValueError(f"layer-to-layer attribution needs {earlier!r} to run before {later!r}")
    modules = model.modules_for(infos)
    inputs = model.normalize(image01[None].to(model.device, non_blocking=True)).requires_grad_(True)
    out = []
    with torch.enable_grad():
        acts, _ = LayerTap(model.net, modules)(inputs, truncate=True)
        # Gradients are taken w.r.t. the captured batch tensor (a slice of it is not
        # part of the graph); the batch holds this one image.
        a1_batch = acts[infos[0].name]
        a1, a2 = a1_batch[0].detach(), acts[infos[1].name][0]
        # The graph is kept for every target (weights are consumed lazily, so a generator
        # of large weight tensors holds one at a time) and freed when this call returns.
        for w in weights:
            if isinstance(w, tuple):
                target = a2[int(w[0]), int(w[1]), int(w[2])]
            else:
                target = (w.to(a2.device) * a2).sum()
            (grad,) = torch.autograd.grad(target, a1_batch, retain_graph=True, allow_unused=True)
            attr = torch.zeros_like(a1) if grad is None else grad[0] * a1
            attr = attr.float()
            out.append(reduce(attr.cpu() if to_cpu else attr))
    return out


def _check_logits(logits, n: int) -> None:
    if not torch.is_tensor(logits) or logits.dim() != 2 or logits.shape[0] != n:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(f"attribution needs a network returning logits [N, classes]; got {shape}")


def _resolve_target(target: Target, logits: torch.Tensor):
    """Class ids (LongTensor [N]) or a callable; ``"predicted"`` is fixed from ``logits`` here."""
    n, classes = logits.shape
    if isinstance(target, str):
        if target != PREDICTED:
            raise ValueError(f"unknown target {target!r}; use {PREDICTED!r}, class ids or a callable")
        return logits.argmax(dim=1)
    if callable(target):
        return target
    if isinstance(target, int):
        target = torch.full((n,), target, dtype=torch.long)
    target = torch.as_tensor(target).to(logits.device).long().flatten()
    if target.shape != (n,):
        raise ValueError(f"target must hold one class id per image ({n}), got shape {tuple(target.shape)}")
    if (target >= classes).any():
        raise ValueError(f"target class {int(target.max())} out of range: the model has {classes} classes")
    return target


def _target_value(target, logits: torch.Tensor) -> torch.Tensor:
    """``[N]``: the scalar per image whose attribution is wanted."""
    if callable(target):
        value = target(logits)
        if value.shape != logits.shape[:1]:
            raise ValueError(
                f"target callable must return [N] = [{logits.shape[0]}], got {tuple(value.shape)}"
            )
        return value
    valid = target >= 0
    picked = logits.gather(1, target.clamp(min=0)[:, None]).squeeze(1)
    return picked * valid.to(picked.dtype)


def _times(grad: torch.Tensor | None, act: torch.Tensor) -> torch.Tensor:
    # A layer the target does not depend on (a side branch) has no gradient: 0.
    if grad is None:
        return torch.zeros_like(act, requires_grad=False)
    return (grad * act).detach()
