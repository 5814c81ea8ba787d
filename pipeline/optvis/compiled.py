"""``torch.compile`` for the render loop, around the hooks that truncate it.

The render loop reads layers with forward hooks and stops the pass by raising an
exception from one (:class:`~pipeline.model.hooks.LayerTap`). Compiling the whole network
would put those hooks inside the traced code, where an exception is a graph break. So
what is compiled is each layer module's ``forward`` (an EfficientNet block, say), and
nothing around it: ``module.__call__`` stays eager and runs the hooks before and after
the compiled ``forward``, so truncation and pre-activation taps work as before.

* A layer module with a tapped module strictly inside it (the stem's and the head's
  activation, tapped at its input for the pre-activation) is left eager: its own hooks
  would otherwise be traced.
* Modules outside every layer (timm's ``conv_stem``, ``conv_head``) stay eager.
* The compiled forwards exist only inside :func:`compiled_forwards`: the measuring passes
  after a render, and the first steps, whose redirected ReLU gradient is a
  ``TorchFunctionMode`` with a data-dependent backward (:mod:`~pipeline.optvis.relu_grad`),
  run the network as it is.
* Each module class's ``forward`` is compiled once per process, and the compiler keeps
  one graph per module and input shape (``dynamic=False``: a render's canvas keeps one
  size). Blocks of one class share that code, so the compiler's per-code recompile
  limit is raised to the number of compiled modules times a few shapes while the loop
  runs. Nothing holds a module after the loop: its compiled forward is bound to it only
  inside :func:`compiled_forwards`.

Measured in docs/PERFORMANCE.md, section 17 ("Cheaper steps"): on this 2-core CPU it
is slower than eager; the switch is meant for a GPU, where fusing a block's
element-wise work saves kernel launches and memory round trips.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

SHAPES_PER_MODULE = 4  # canvas sizes one process may render a layer at (main, extra, coarse)

_COMPILED: dict[Callable, Callable] = {}  # a class's forward function -> its compiled version


def compile_units(layer_modules: Iterable[nn.Module], tapped: Iterable[nn.Module]) -> list[nn.Module]:
    """The modules whose ``forward`` is compiled: each of ``layer_modules`` (once), unless
    one of the ``tapped`` modules lies strictly inside it."""
    tapped = list(tapped)
    units: list[nn.Module] = []
    for module in layer_modules:
        inner = [m for m in module.modules() if m is not module]
        if any(any(t is m for m in inner) for t in tapped) or any(module is u for u in units):
            continue
        units.append(module)
    return units


def compiled_forward(module: nn.Module) -> Callable:
    """``module``'s forward, compiled, as a method bound to it (the function, not the module,
    is compiled: torch.compile(module) would trace the module's hooks)."""
    function = type(module).forward
    if function not in _COMPILED:
        _COMPILED[function] = torch.compile(function, dynamic=False)
    return types.MethodType(_COMPILED[function], module)


@contextlib.contextmanager
def compiled_forwards(units: Iterable[nn.Module]) -> Iterator[None]:
    """Inside the block, each of ``units`` runs its compiled ``forward`` (hooks stay eager)."""
    units = [u for u in units if "forward" not in vars(u)]  # one already patched: leave it
    if not units:  # the default path and the redirected steps: nothing to patch
        yield
        return
    limit = max(torch._dynamo.config.recompile_limit, SHAPES_PER_MODULE * len(units))
    try:
        for unit in units:
            unit.forward = compiled_forward(unit)
        with torch._dynamo.config.patch(recompile_limit=limit):
            yield
    finally:
        for unit in units:
            vars(unit).pop("forward", None)
