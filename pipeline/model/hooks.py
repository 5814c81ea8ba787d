"""Reading activations out of a network, with hooks that never outlive their use.

Two tools, both context-managed so that every hook is removed on success and on
error alike:

* :func:`run_with_hooks` runs one forward pass with arbitrary forward hooks.
* :class:`LayerTap` captures named layer outputs (or a module's input: the
  pre-activation of a capped layer) and, by default, **truncates** the forward pass
  as soon as every requested tensor has been seen: feature visualization of an
  early layer then costs only the early part of the network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping

import torch
from torch import nn


class _StopForward(Exception):
    """Raised inside a hook to end a forward pass early; never escapes this module."""


@contextlib.contextmanager
def hooks_installed(
    hooks: Mapping[str, tuple[nn.Module, Callable]],
    pre_hooks: Mapping[str, tuple[nn.Module, Callable]] | None = None,
) -> Iterator[None]:
    """Register ``{key: (module, forward_hook)}`` and ``{key: (module, forward_pre_hook)}``
    for the duration of the block."""
    handles = []
    try:
        for module, hook in hooks.values():
            handles.append(module.register_forward_hook(hook))
        for module, hook in (pre_hooks or {}).values():
            handles.append(module.register_forward_pre_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_with_hooks(
    net: nn.Module,
    inputs: torch.Tensor,
    hooks: Mapping[str, tuple[nn.Module, Callable]],
    pre_hooks: Mapping[str, tuple[nn.Module, Callable]] | None = None,
):
    """One forward pass with the given hooks (and forward pre-hooks); a hook may end it by
    raising ``_StopForward``.

    Returns the network's output, or ``None`` when a hook stopped the pass early.
    """
    with hooks_installed(hooks, pre_hooks):
        try:
            return net(inputs)
        except _StopForward:
            return None


class LayerTap:
    """Capture the outputs of named modules during a forward pass.

    >>> tap = LayerTap(net, {"conv": net.conv})
    >>> acts, logits = tap(x)            # truncated: logits is None
    >>> acts, logits = tap(x, truncate=False)
    >>> LayerTap(net, {"head": net.act}, inputs={"head"})(x)   # the input of net.act

    Names in ``inputs`` are captured from their module's **input** instead (a forward
    pre-hook): the pre-activation of a layer that ends in a capping activation is the
    input of that activation module.

    ``truncate=True`` stops the forward pass once every requested tensor has been seen,
    so only the part of the network up to the deepest requested layer is computed (an
    input captured last stops the pass before its module runs).
    The gradient of anything built from the captured activations is exact, because
    nothing after them took part in the computation.
    """

    def __init__(self, net: nn.Module, modules: Mapping[str, nn.Module], inputs: Iterable[str] = ()):
        if not modules:
            raise ValueError("LayerTap needs at least one module to capture")
        self.net = net
        self.modules = dict(modules)
        self.inputs = frozenset(inputs)
        unknown = sorted(self.inputs - set(self.modules))
        if unknown:
            raise ValueError(f"LayerTap: inputs {unknown} name no module to capture")

    def __call__(
        self, inputs: torch.Tensor, truncate: bool = True
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        captured: dict[str, torch.Tensor] = {}
        wanted = len(self.modules)

        def capture(name):
            def hook(_module, _inputs, output):
                captured[name] = output
                if truncate and len(captured) == wanted:
                    raise _StopForward

            return hook

        def capture_input(name):
            def pre_hook(_module, module_inputs):
                captured[name] = module_inputs[0]
                if truncate and len(captured) == wanted:
                    raise _StopForward
                # The pass goes on into the module, which may overwrite its input in
                # place (ReLU6(inplace=True)): keep a copy (gradients flow through it).
                captured[name] = module_inputs[0].clone()

            return pre_hook

        hooks = {n: (m, capture(n)) for n, m in self.modules.items() if n not in self.inputs}
        pre_hooks = {n: (m, capture_input(n)) for n, m in self.modules.items() if n in self.inputs}
        output = run_with_hooks(self.net, inputs, hooks, pre_hooks)
        missing = sorted(set(self.modules) - set(captured))
        if missing:
            raise RuntimeError(f"layers never ran in the forward pass: {', '.join(missing)}")
        return captured, output
