"""Lucid's "redirected" ReLU gradient, for the first steps of a render.

A unit whose ReLU is off everywhere on the starting image gets no gradient at all,
so plain gradient ascent never switches it on. Lucid therefore overrides the
gradient of every ReLU and ReLU6 during the first 16 steps:

* per batch item, if the ordinary gradient through the ReLU is non-zero somewhere,
  it is used unchanged;
* otherwise the *redirected* gradient is used: the incoming gradient passes through
  everywhere, except where it would push an input further out of the active range
  (below 0, or above 6 for ReLU6), since that can only make matters worse.

The forward values are never changed, and the choice is made per item (row of the
batch), so batching still does not mix items.

:func:`redirected_relu_gradients` is a context manager that applies this to every
``relu`` / ``relu6`` / ``hardtanh(0, 6)`` call made through ``torch.nn.functional``
(which ``nn.ReLU`` and ``nn.ReLU6`` use) inside the block, whatever module makes them.
In-place calls return a new tensor instead: their callers use the returned value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


class _RedirectedClamp(torch.autograd.Function):
    """``x.clamp(0, upper)`` whose backward is Lucid's redirected gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, upper: float | None) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(min=0.0, max=upper)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        upper = ctx.upper
        # The ordinary ReLU / ReLU6 gradient, in one fused pass.
        result = (
            torch.ops.aten.threshold_backward(grad, x, 0.0)
            if upper is None
            else torch.ops.aten.hardtanh_backward(grad, x, 0.0, upper)
        )
        # One decision per item (dim 0 is the batch): only items whose ordinary
        # gradient is zero everywhere get the redirected one.
        dead = ~result.reshape(len(result), -1).any(dim=1)
        if dead.any():
            g, xd = grad[dead], x[dead]
            # ``grad`` is the gradient of the loss (minus the objective): gradient
            # descent moves x against it, so grad > 0 pushes x down, grad < 0 up.
            blocked = (xd < 0) & (g > 0)
            if upper is not None:
                blocked |= (xd > upper) & (g < 0)
            result[dead] = g.masked_fill(blocked, 0.0)
        return result, None


def redirected_clamp(x: torch.Tensor, upper: float | None = None) -> torch.Tensor:
    """ReLU (``upper=None``) or ReLU6 (``upper=6``) with the redirected gradient."""
    return _RedirectedClamp.apply(x, upper)


_RELU = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
_RELU6 = {F.relu6}


class _RedirectMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU:
            return redirected_clamp(args[0])
        if func in _RELU6:
            return redirected_clamp(args[0], 6.0)
        if func is F.hardtanh:
            low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
            high = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
            if low == 0.0:  # nn.ReLU6 is hardtanh(0, 6); other bounds are not ReLUs
                return redirected_clamp(args[0], float(high))
        return func(*args, **kwargs)


@contextlib.contextmanager
def redirected_relu_gradients(enabled: bool = True) -> Iterator[None]:
    """Inside the block, ReLU and ReLU6 gradients are redirected (see the module docstring)."""
    if not enabled:
        yield
        return
    with _RedirectMode():
        yield
