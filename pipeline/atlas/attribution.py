"""The attribution of a layer's activation vector to every class: the atlas cells' classes.

As in the Activation Atlas article: the cell's mean vector ``m`` (``C`` channels) is tiled
over the layer's ``H x W`` positions, ``A[c, y, x] = m[c]``, and fed through the rest of
the network to the logits ``z(A)``. Its attribution to class ``k`` is gradient x
activation summed over the whole map::

    attr_k(m) = sum_{c, y, x}  dz_k/dA[c, y, x] (A) * A[c, y, x]  =  J(A) . A

the directional derivative of the logits along ``A`` at ``A``: one Jacobian-vector
product gives every class at once (forward-mode AD, :mod:`torch.autograd.forward_ad`;
where a network has an operation without a forward-mode rule, the same product by two
reverse passes instead). For a network whose rest is linear, ``z = W mean_hw(A) + b``,
``attr_k(m) = (W m)_k``.

The layer's output is replaced through a forward hook on its module (installed for one
pass only, :func:`pipeline.model.hooks.run_with_hooks`); the network runs on a dummy
input of zeros (its part before the layer computes nothing that is used, except in a
network with connections that skip over the layer, where they carry the zero image's
activations). Cells go in batches of ``batch``.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.autograd.forward_ad as fwad

from pipeline.model.hooks import run_with_hooks

log = logging.getLogger(__name__)

BATCH = 32  # mean vectors per pass


def mean_vector_attribution(model, layer: str, means: np.ndarray, *, batch: int = BATCH) -> np.ndarray:
    """float32 ``[M, K]``: the attribution of each mean vector ``means [M, C]`` of ``layer``
    to every class (see the module doc); ``model`` is a :class:`~pipeline.model.LoadedModel`."""
    info = model.layer(layer)
    means = np.asarray(means, np.float32)
    if means.ndim != 2 or means.shape[1] != info.channels:
        raise ValueError(f"mean vectors of {info.name} must be [M, {info.channels}]; got {list(means.shape)}")
    classes = len(model.class_names)
    out = np.zeros((len(means), classes), np.float32)
    runner = _TiledRunner(model, info)
    for first in range(0, len(means), int(batch)):
        chunk = torch.from_numpy(means[first : first + int(batch)]).to(model.device)
        out[first : first + len(chunk)] = runner(chunk).float().cpu().numpy()
    return out


class _TiledRunner:
    """Runs the rest of the network on tiled vectors; remembers what works for the network
    (forward-mode AD or two reverse passes; a batch-1 or a full-size dummy input)."""

    def __init__(self, model, info):
        self.model, self.info = model, info
        self.module = model.net.get_submodule(info.module)
        self.forward_mode = True
        self.small_dummy = True

    def __call__(self, means: torch.Tensor) -> torch.Tensor:
        tiled = means[:, :, None, None].expand(-1, -1, self.info.height, self.info.width).contiguous()
        if self.forward_mode:
            try:
                return self._with_dummy(tiled, self._forward_mode)
            except NotImplementedError as exc:  # an operation without a forward-mode rule
                log.info("forward-mode AD fails on this network (%s); using two reverse passes", exc)
                self.forward_mode = False
        return self._with_dummy(tiled, self._reverse_mode)

    def _with_dummy(self, tiled: torch.Tensor, method) -> torch.Tensor:
        # A batch-1 dummy spares computing the layers before this one for every cell. It
        # gives the same result whenever it runs (the layers after see the tiled batch);
        # a network that combines the layer with an earlier one's batch may refuse it.
        if self.small_dummy:
            try:
                found = method(tiled, self._dummy(1))
                if found.shape[0] == len(tiled):
                    return found
            except NotImplementedError:
                raise
            except RuntimeError:  # shapes that do not match
                pass
            log.info("the network needs a full batch of dummy inputs for the atlas's class attribution")
            self.small_dummy = False
        return method(tiled, self._dummy(len(tiled)))

    def _dummy(self, n: int) -> torch.Tensor:
        size = self.model.input_size
        return torch.zeros(n, 3, size, size, device=self.model.device)

    def _logits(self, replacement: torch.Tensor, dummy: torch.Tensor) -> torch.Tensor:
        logits = run_with_hooks(
            self.model.net, dummy, {"atlas": (self.module, lambda _m, _i, _o: replacement)}
        )
        if not torch.is_tensor(logits) or logits.dim() != 2:
            raise ValueError("the atlas's class attribution needs a network returning logits [N, classes]")
        return logits

    def _forward_mode(self, tiled: torch.Tensor, dummy: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), fwad.dual_level():
            # Primal and tangent are both A (J(A) . A); separate tensors, since an
            # in-place operation after the layer changes the primal it is given.
            dual = fwad.make_dual(tiled.clone(), tiled.clone())
            tangent = fwad.unpack_dual(self._logits(dual, dummy)).tangent
        if tangent is None:  # the logits do not depend on the layer
            return torch.zeros(len(tiled), len(self.model.class_names), device=tiled.device)
        return tangent.detach()

    def _reverse_mode(self, tiled: torch.Tensor, dummy: torch.Tensor) -> torch.Tensor:
        # J . A through two reverse passes: g(u) = J^T u is linear in u, and
        # d/du <g(u), A> = J A.
        with torch.enable_grad():
            a = tiled.clone().requires_grad_(True)
            logits = self._logits(a * 1.0, dummy)  # not a leaf: in-place operations may follow
            u = torch.zeros_like(logits, requires_grad=True)
            (g,) = torch.autograd.grad((logits * u).sum(), a, create_graph=True, allow_unused=True)
            if g is None:
                return torch.zeros_like(logits).detach()
            (jvp,) = torch.autograd.grad((g * tiled).sum(), u, allow_unused=True)
        return (torch.zeros_like(logits) if jvp is None else jvp).detach()
