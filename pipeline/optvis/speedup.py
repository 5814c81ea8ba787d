"""Make a network cheaper to render through, without changing what it computes.

Feature visualization runs the same frozen network forward and backward hundreds of
times per image, so rewrites that pay once and save on every step are worth it.
:func:`speed_up` applies four, each exact up to floating-point rounding:

1. **BatchNorm folding.** Every eval-mode BatchNorm that directly follows a
   convolution is a per-channel affine map and is folded into that convolution
   (about a fifth of the time of a step on CPU).
2. **Padding-free "same" convolutions.** TensorFlow-ported models (timm's ``tf_*``
   EfficientNets, the embedded Lite0) pad stride-2 convolutions *asymmetrically*,
   so timm copies every such input into a padded tensor before convolving, and
   copies the gradient back out on the way back: on CPU those copies cost more
   than the depthwise convolution itself. :class:`StaticSamePadConv2d` gets the
   same result from the convolution's own symmetric padding (see its docstring).
3. **Out-of-place ReLU6.** An in-place ``hardtanh_`` under autograd clones its
   input first, so timm's ``ReLU6(inplace=True)`` reads and writes every
   activation twice; out of place it does so once (about 10% of a step here).
4. **Channels-last weights** (NHWC): faster oneDNN convolutions on CPU, and the
   layout GPU tensor cores want.

The result is checked against the original network on a random batch at every
layer (output and, for capped layers, pre-activation); any mismatch leaves the
network as it was. Rewrites move modules (timm's ``bn2.act`` becomes ``bn2.1``), so
the model is told which copy is which (:meth:`~pipeline.model.LoadedModel.use_net`).
"""

from __future__ import annotations

import copy
import logging
import math

import torch
import torch.nn.functional as F

from pipeline.model import LoadedModel
from pipeline.model.hooks import run_with_hooks
from pipeline.optvis.render import activations

log = logging.getLogger(__name__)


def speed_up(model: LoadedModel) -> LoadedModel:
    """Apply the module docstring's rewrites to ``model`` in place; returns it."""
    model.cap_modules()  # found by path in the network as loaded, before anything moves
    memo: dict = {}
    faster = _fold_batchnorm(copy.deepcopy(model.net, memo), model.input_size, model.device)
    _unpad_same_convs(faster)
    for module in faster.modules():
        if isinstance(module, torch.nn.Hardtanh):  # ReLU6 is one
            module.inplace = False
    probe = torch.rand(2, 3, model.input_size, model.input_size, device=model.device)
    before = _probe(model, probe)
    original = model.net
    model.use_net(faster, memo)
    after = _probe(model, probe)
    changed = [
        k
        for k in before
        if not torch.allclose(before[k], after[k], rtol=1e-3, atol=1e-3 * before[k].abs().max().item())
    ]
    if changed:  # a structure these rewrites do not understand: keep the original
        log.warning(
            "speed_up: the rewritten network differs at %s; rendering through the "
            "network as loaded (slower, same results)",
            ", ".join(changed),
        )
        model.use_net(original)
    model.net.to(memory_format=torch.channels_last)
    return model


def _probe(model: LoadedModel, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every layer's output, and the pre-activation of every capped layer, on ``images``."""
    names = [layer.name for layer in model.layers]
    out = activations(model, images, names, truncate=False)
    capped = list(model.cap_modules())
    if capped:
        pre = activations(model, images, capped, truncate=False, pre_activation=True)
        out.update({f"{name} (pre-activation)": value for name, value in pre.items()})
    return out


def _replace(net: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, module)


def _fold_batchnorm(net: torch.nn.Module, size: int, device) -> torch.nn.Module:
    """Fold each BatchNorm2d whose input is a Conv2d's output into that convolution."""
    modules = dict(net.named_modules())
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # id(output) -> (conv, output kept alive)
    pairs: list[tuple[str, str]] = []

    def conv_hook(name):
        def hook(_module, _inputs, output):
            produced[id(output)] = (name, output)

        return hook

    def bn_hook(name):
        def hook(_module, inputs, _output):
            if id(inputs[0]) in produced:
                pairs.append((produced[id(inputs[0])][0], name))

        return hook

    hooks = {n: (m, conv_hook(n)) for n, m in modules.items() if isinstance(m, torch.nn.Conv2d)}
    hooks.update(
        {
            n: (m, bn_hook(n))
            for n, m in modules.items()
            if isinstance(m, torch.nn.BatchNorm2d) and m.track_running_stats
        }
    )
    with torch.no_grad():
        run_with_hooks(net, torch.zeros(1, 3, size, size, device=device), hooks)
    for conv_name, bn_name in pairs:
        conv, bn = modules[conv_name], modules[bn_name]
        if type(bn) is torch.nn.BatchNorm2d:
            rest = torch.nn.Identity()
        elif isinstance(getattr(bn, "drop", None), torch.nn.Module) and isinstance(
            getattr(bn, "act", None), torch.nn.Module
        ):
            rest = torch.nn.Sequential(bn.drop, bn.act)  # timm's BatchNormAct2d: BN, dropout, activation
        else:
            continue
        with torch.no_grad():
            scale = (bn.weight if bn.affine else 1.0) / torch.sqrt(bn.running_var + bn.eps)
            shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            bias = shift if conv.bias is None else conv.bias * scale + shift
            conv.bias = torch.nn.Parameter(bias, requires_grad=False)
        _replace(net, bn_name, rest)
    return net


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``padding="SAME"``: ``(before, after)`` for one spatial axis.

    The total makes the output ``ceil(size / stride)`` long; an odd total puts the
    extra pixel after.
    """
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class StaticSamePadConv2d(torch.nn.Module):
    """A TensorFlow-"SAME" convolution that never copies its input into a padded tensor.

    Per axis, SAME pads ``(p, p)`` or ``(p, p + 1)`` depending on the input size.
    ``(p, p)`` is the convolution's own symmetric padding. For ``(p, p + 1)`` the
    kernel is extended by one leading zero tap and padded ``p + 1`` on both sides:
    output i then reads the same inputs with the same weights, since the extra
    leading pixel meets the zero tap. Any other case falls back to explicit padding.
    The extended kernel is made once: weights are frozen while rendering.
    """

    def __init__(self, conv: torch.nn.Conv2d):
        super().__init__()
        self.conv = conv
        with torch.no_grad():
            self.register_buffer("weight_leading_zero", F.pad(conv.weight, (1, 0, 1, 0)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        pads = [
            same_padding(
                x.shape[-2 + axis], conv.weight.shape[-2 + axis], conv.stride[axis], conv.dilation[axis]
            )
            for axis in (0, 1)
        ]
        extra = [after - before for before, after in pads]
        if extra == [0, 0]:
            weight, padding = conv.weight, (pads[0][0], pads[1][0])
        elif extra == [1, 1] and conv.dilation == (1, 1):
            weight, padding = self.weight_leading_zero, (pads[0][0] + 1, pads[1][0] + 1)
        else:  # mixed or dilated: rare, keep the copy
            x = F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
            weight, padding = conv.weight, (0, 0)
        return F.conv2d(x, weight, conv.bias, conv.stride, padding, conv.dilation, conv.groups)


def _is_tf_same(module: torch.nn.Module) -> bool:
    try:
        from timm.layers import Conv2dSame
    except ImportError:  # no timm, no timm-style SAME convolutions
        return False
    return isinstance(module, Conv2dSame)


def _unpad_same_convs(net: torch.nn.Module) -> None:
    """Replace timm's padding-by-copy SAME convolutions by :class:`StaticSamePadConv2d`."""
    for name, module in list(net.named_modules()):
        if _is_tf_same(module):
            _replace(net, name, StaticSamePadConv2d(module))
