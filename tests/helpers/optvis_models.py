"""Tiny hand-made models for the optimisation engine's tests (pipeline.optvis), loadable
as custom loaders ``tests.helpers.optvis_models:NAME``.

    two_conv_net   conv -> ReLU -> conv (stride 2) -> ReLU: the general-purpose render target
    stripe_net     one channel that detects vertical red-on-cyan stripes
    batchnorm_net  batch norms to fold, with non-trivial running statistics
    dead_unit_net  a unit that is off on the grey starting image (redirected ReLU gradient)
    tf_style_net   timm's TF-style SAME convolutions, BN and in-place ReLU6 (speed-up rewrites)
    block_net      a stem, a residual block and a capped head, each one module (torch.compile units)
"""

import torch
from timm.layers import Conv2dSame
from torch import nn


class TwoConvNet(nn.Module):
    """conv1 (3->4) -> ReLU -> conv2 (4->6, stride 2) -> ReLU -> mean -> fc (6->3)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


def three_class_spec(net_class, seed: int, input_size: int, layers: list[str]) -> dict:
    """A loader's dict for a tiny three-class network built under ``seed`` (the global RNG
    is left as it was), with its input normalised by mean 0.5 and std 0.25."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = net_class()
    return {
        "model": net,
        "input_size": input_size,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "class_names": ["a", "b", "c"],
        "layers": layers,
    }


def two_conv_net(weights="random"):
    return three_class_spec(TwoConvNet, 1, 32, ["conv1", "conv2", "relu2"])


class StripeNet(nn.Module):
    """One channel that detects vertical red-on-cyan stripes of period 8.

    ``detector`` = ReLU(conv): a 16x16 kernel, the same in every row, +1 on 4 columns
    and -1 on the next 4 (twice over) in the red plane and half the negative in green
    and blue. Nothing rewards change down a column, or brightness.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 16, bias=False)
        with torch.no_grad():
            columns = torch.tensor(([1.0] * 4 + [-1.0] * 4) * 2)
            bars = columns.expand(16, 16) / 16
            self.conv.weight[0, 0] = bars
            self.conv.weight[0, 1] = -0.5 * bars
            self.conv.weight[0, 2] = -0.5 * bars
        self.detector = nn.ReLU()

    def forward(self, x):
        return self.detector(self.conv(x)).mean((2, 3))


def stripe_net(weights="random"):
    return {
        "model": StripeNet(),
        "input_size": 32,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "class_names": ["stripes"],
        "layers": ["detector"],
    }


class BatchNormNet(nn.Module):
    """BN on the input (nothing to fold into), conv -> BN -> ReLU, conv -> BN (no affine)."""

    def __init__(self):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(3)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(5, affine=False)

    def forward(self, x):
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(self.bn0(x)))))).mean((2, 3))


def batchnorm_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        net = BatchNormNet()
        for bn in (net.bn0, net.bn1, net.bn2):  # non-trivial running statistics
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            if bn.affine:
                bn.weight.data.uniform_(0.5, 2)
                bn.bias.data.uniform_(-1, 1)
    return {"model": net, "input_size": 16, "layers": ["bn0", "bn1", "relu", "bn2"]}


class DeadUnitNet(nn.Module):
    """A 1x1 convolution summing the RGB planes minus 2.0, then a ReLU.

    On the grey starting image (every pixel ~0.5) the sum is 1.5, so the unit is off
    everywhere and the ordinary gradient of its mean is exactly zero.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.fill_(-2.0)
        self.unit = nn.ReLU()

    def forward(self, x):
        return self.unit(self.conv(x)).mean((2, 3))


def dead_unit_net(weights="random"):
    return {
        "model": DeadUnitNet(),
        "input_size": 8,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "class_names": ["unit"],
        "layers": ["unit"],
    }


class TfStyleNet(nn.Module):
    """What timm's tf_ EfficientNets do: SAME conv -> BN -> ReLU6(inplace), twice."""

    def __init__(self):
        super().__init__()
        self.conv1 = Conv2dSame(3, 6, 3, stride=2, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv2 = Conv2dSame(6, 6, 3, stride=2, groups=6, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.act2 = nn.ReLU6(inplace=True)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(x))).mean((2, 3))


def tf_style_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        net = TfStyleNet()
        for bn in (net.bn1, net.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 2)
            bn.bias.data.uniform_(0, 1)
    return {"model": net, "input_size": 16, "layers": ["act1", "act2"]}


class ResidualBlock(nn.Module):
    """x + (1x1 conv -> ReLU6 -> 3x3 depthwise conv): an EfficientNet block's shape in little."""

    def __init__(self, channels: int):
        super().__init__()
        self.expand = nn.Conv2d(channels, channels, 1)
        self.act = nn.ReLU6()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x):
        return x + self.depthwise(self.act(self.expand(x)))


class BlockNet(nn.Module):
    """stem (conv 3->4, ReLU6) -> block (residual) -> head (1x1 conv 4->6, ReLU6) -> mean -> fc.

    Each layer is one module with children, as in timm's EfficientNets; the stem and the
    head end in ReLU6, so they are capped layers (their pre-activation is tapped inside them).
    """

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU6())
        self.block = ResidualBlock(4)
        self.head = nn.Sequential(nn.Conv2d(4, 6, 1), nn.ReLU6())
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.head(self.block(self.stem(x))).mean((2, 3)))


def block_net(weights="random"):
    return three_class_spec(BlockNet, 3, 16, ["stem", "block", "head"])
