"""Tiny hand-made classifiers, loadable as custom loaders ``tests.helpers.models:NAME``.

Workflow jobs import this module outside pytest (through PYTHONPATH), so it imports
torch only (and timm, inside ``timm_lite1_net``). Each loader returns a fresh, deterministic network.

    shared_relu_net      conv1 -> relu -> conv2 -> relu: one ReLU module that runs twice
    tiny_blocks_net      bias-free, so attributions sum to the logit (Building Blocks)
    hand_net, square_net small enough to work the extraction and attribution out on paper
    tiny_conv_net        two conv stages, layers aliased "early" and "late" (extraction runs)
    tiny_featurevis_net  two conv layers to visualize (feature-visualization runs)
    pool_net             conv -> ReLU -> max pool -> conv (receptive fields)
    field_net            a dead ReLU, a tied max pool, 3x1 and 1x3 kernels (receptive fields)
    capped_net           layers ending in ReLU6, Sigmoid, a functional relu6 and a ReLU (caps)
    circuit_net          two layers joined by a bias-free 1x1 convolution (circuits by hand)
    atlas_net            activation vectors in two planted clusters, a linear head (atlases by hand)
    linear_stem_net      a line detector and a colour detector in a ReLU6 stem (exact stem images)
    unlisted_net         no ``layers`` list: a stem, a stage of two blocks, a head (default layers by hand)
    timm_lite1_net       timm's tf_efficientnet_lite1 as a new user's loader returns it, no ``layers``
"""

import torch
from torch import nn


class SharedReluNet(nn.Module):
    """conv1 -> relu -> conv2 -> relu -> pool -> fc: the ReLU module runs twice."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2, 4)

    def forward(self, x):
        x = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


def shared_relu_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = SharedReluNet()
    return {
        "model": net,
        "input_size": 8,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "class_names": ["a", "b", "c", "d"],
        "layers": ["conv1", "relu", "conv2"],
    }


class TinyBlocksNet(nn.Module):
    """A tiny classifier for the Building Blocks tests.

        input [3, 16, 16]
        features1 = conv 3->4 (3x3, stride 2, no bias) + ReLU   -> [4, 8, 8]
        features2 = conv 4->6 (3x3, stride 2, no bias)          -> [6, 4, 4]   (linear in features1)
        relu, mean over space, fc 6->5 (no bias)                 -> 5 logits

    Without biases the network is positively homogeneous and piecewise linear, so the
    gradient x activation of any layer sums to the logit itself (Euler's theorem), and
    features2 is a linear function of features1.
    """

    def __init__(self):
        super().__init__()
        self.features1 = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), nn.ReLU())
        self.features2 = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(6, 5, bias=False)

    def forward(self, x):
        return self.fc(self.relu(self.features2(self.features1(x))).mean((2, 3)))


def tiny_blocks_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        net = TinyBlocksNet()
        # Kernels constant over their 3x3 window: the channels detect colours, not
        # pixel-level texture, so feature visualization can make smooth images that
        # drive them (uniform noise averages out), as with a trained network.
        for conv in (net.features1[0], net.features2):
            mixing = torch.randn(conv.out_channels, conv.in_channels, 1, 1) / conv.in_channels
            conv.weight.data = mixing.expand_as(conv.weight).clone()
        # Positive fc weights: every class depends on every channel, so no
        # attribution is trivially zero.
        net.fc.weight.data = net.fc.weight.data.abs() + 0.1
    return {
        "model": net,
        "input_size": 16,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "class_names": ["ant", "bee", "cat", "dog", "eel"],
        "layers": ["features1", "features2"],
    }


# ``hand_net`` is small enough to work out on paper (input 4x4, identity normalization):
#
#     conv  (1x1, no bias):  a0 = R,  a1 = G - B          layer "conv"
#     relu:                  r = relu(a)                   layer "relu"
#     logits = W @ mean_hw(r) + b,  W = [[1, 0], [0, 2], [1, -1]],  b = [0, 0, 0.5]
#
# so d logit_k / d r[c, y, x] = W[k, c] / 16 and the channel attribution (gradient x
# activation summed over space) of either layer is ``W[k, c] * mean(r_c)``.
W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]])
B = torch.tensor([0.0, 0.0, 0.5])


class HandNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, -1.0]]).view(2, 3, 1, 1))
            self.fc.weight.copy_(W)
            self.fc.bias.copy_(B)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


def hand_net(weights="random"):
    return {
        "model": HandNet(),
        "input_size": 4,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "class_names": ["alpha", "beta", "gamma"],
        "layers": ["conv", "relu"],
    }


def hand_images():
    """Two 4x4 images with known maxima (one a tie) and both signs in channel 1."""
    x = torch.zeros(2, 3, 4, 4)
    x[0, 0] = torch.arange(16.0).view(4, 4) / 16  # R: max 15/16 at (3, 3)
    x[0, 1, 1, 2] = 0.8  # G - B: max 0.8 at (1, 2)
    x[0, 2, 0, 0] = 0.5  # ... and -0.5 at (0, 0)
    x[1, 0, 2, 1] = x[1, 0, 0, 3] = 0.7  # R: tie -> first in row-major (0, 3)
    x[1, 2] = 0.25  # G - B = -0.25 everywhere: relu 0
    return x


def hand_expected(x):
    """``hand_net``'s layers and logits on ``x``, computed from the formulas above."""
    a = torch.stack([x[:, 0], x[:, 1] - x[:, 2]], dim=1)
    r = a.clamp(min=0)
    logits = r.mean(dim=(2, 3)) @ W.T + B
    return a, r, logits


class SquareNet(nn.Module):
    """layer "conv" = R + G + B (1 channel); logits = [s^2, s] with s = sum over space."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)

    def forward(self, x):
        s = self.conv(x).sum(dim=(1, 2, 3))
        return torch.stack([s**2, s], dim=1)


def square_net(weights="random"):
    return {
        "model": SquareNet(),
        "input_size": 2,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "class_names": ["square", "linear"],
        "layers": ["conv"],
    }


TINY_CONV_CLASSES = ["cat", "dog", "fish"]


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(6, len(TINY_CONV_CLASSES))

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def tiny_conv_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = TinyConvNet()
    return {
        "model": net,
        "input_size": 32,
        "class_names": TINY_CONV_CLASSES,
        "layers": [("early", "features.1"), ("late", "features.3")],
    }


class TinyFeaturevisNet(nn.Module):
    """conv (3->5) -> ReLU -> conv (5->3, stride 2) -> mean -> fc: two layers to visualize."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 5, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(5, 3, 3, stride=2, padding=1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.conv2(self.relu(self.conv1(x))).mean((2, 3)))


def tiny_featurevis_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = TinyFeaturevisNet()
    return {
        "model": net,
        "input_size": 16,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "class_names": ["a", "b"],
        "layers": ["conv1", "conv2"],
    }


POOL_NET_SIZE = 12


class PoolNet(nn.Module):
    """conv3x3 -> ReLU -> maxpool 2 -> conv3x3 (layer "c2", 6x6) -> logits.

    By hand: row y of c2 sees pool rows y-1..y+1, i.e. conv rows 2y-2..2y+3, i.e.
    input rows 2y-3..2y+4: the half-open box [2y-3, 2y+5) clipped to [0, 12).
    """

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(4, 3, 3, padding=1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.c2(self.pool(self.relu(self.c1(x)))).mean(dim=(2, 3)))


def pool_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        net = PoolNet()
    return {
        "model": net,
        "input_size": POOL_NET_SIZE,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "class_names": ["a", "b"],
        "layers": ["c1", "pool", "c2"],
    }


class FieldNet(nn.Module):
    """A net whose receptive fields can be derived by hand, and that only the
    receptive-field rules get right (input 12x12; ``tests/test_receptive_field.py``):

        c1    conv 3->2, kernel (3, 1), padding (1, 0), weights 0.1, bias -5    -> 12x12
        relu  dead everywhere: |c1 - bias| <= 9 * 0.1 < 5 on inputs in [-1, 1]
        pool  max pool 2 (every window ties at 0)                               -> 6x6
        c2    conv 2->2, kernel (1, 3), stride (1, 2), padding (0, 1), weights 0.1 -> 6x3

    Rows and columns differ (kernels 3x1 then 1x3, stride 2 along columns only). With
    plain gradients the dead ReLU passes none, and max pooling passes them only to
    each window's first (top-left) element, as every window ties.
    """

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 2, (3, 1), padding=(1, 0))
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(2, 2, (1, 3), stride=(1, 2), padding=(0, 1), bias=False)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            # Positive weights: gradients add up, they never cancel by chance.
            self.c1.weight.fill_(0.1)
            self.c1.bias.fill_(-5.0)
            self.c2.weight.fill_(0.1)

    def forward(self, x):
        return self.fc(self.c2(self.pool(self.relu(self.c1(x)))).mean(dim=(2, 3)))


def field_net(weights="random"):
    return {
        "model": FieldNet(),
        "input_size": 12,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "class_names": ["a", "b"],
        "layers": ["c1", "relu", "pool", "c2"],
    }


class FunctionalCap(nn.Module):
    """A 1x1 convolution capped by ``F.relu6`` in ``forward``: no module to tap."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x):
        return nn.functional.relu6(self.conv(x))


class CappedNet(nn.Module):
    """Layers that end in bounded activations, to check by hand (input 4x4, identity
    normalization, so pixels are in [0, 1])::

        block   conv 1x1 (3->2, no bias): p0 = 3 (R + G + B) in [0, 9], p1 = R - G;
                ReLU6 ("block.1"); Dropout (hands its input back at eval)
                -> capped by ReLU6: output clamp(p, 0, 6), pre-activation p
        gate    conv 1x1 (2->2) -> Sigmoid ("gate.1")            -> capped by Sigmoid
        squash  conv 1x1 (2->2) -> F.relu6 (a function)          -> not recorded as capped
        head    conv 1x1 (2->2) -> ReLU (unbounded)              -> not capped
        logits  mean over space -> fc (2->2)

    On a white image p0 = 9, so block's pre-activation is 9 where its output is 6.
    """

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU6(), nn.Dropout(0.5))
        self.gate = nn.Sequential(nn.Conv2d(2, 2, 1), nn.Sigmoid())
        self.squash = FunctionalCap(2)
        self.head = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU())
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.block[0].weight.copy_(torch.tensor([[3.0, 3.0, 3.0], [1.0, -1.0, 0.0]]).view(2, 3, 1, 1))

    def forward(self, x):
        return self.fc(self.head(self.squash(self.gate(self.block(x)))).mean((2, 3)))


def capped_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = CappedNet()
    return {
        "model": net,
        "input_size": 4,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "class_names": ["a", "b"],
        "layers": ["block", "gate", "squash", "head"],
    }


# ``circuit_net``: two layers joined by a bias-free 1x1 convolution, for circuits worked out
# by hand (input 4x4, identity normalization):
#
#     p  = relu(x)                (1x1 identity convolution, then ReLU)   layer "p", [3, 4, 4]
#     l  = CIRCUIT_W @ p          (1x1 convolution, no bias)              layer "l", [2, 4, 4]
#     logits = fc(mean_hw(l))
#
# so d l[c, y, x] / d p[c', y', x'] = CIRCUIT_W[c, c'] at (y', x') = (y, x) and 0 elsewhere,
# and the attribution of l[c, y, x] to channel c' of p is CIRCUIT_W[c, c'] * p[c', y, x].
CIRCUIT_W = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]])


class CircuitNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False), nn.ReLU())
        self.l = nn.Conv2d(3, 2, 1, bias=False)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.p[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.l.weight.copy_(CIRCUIT_W.view(2, 3, 1, 1))
            self.fc.weight.copy_(torch.eye(2))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.l(self.p(x)).mean(dim=(2, 3)))


def circuit_net(weights="random"):
    return {
        "model": CircuitNet(),
        "input_size": 4,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "class_names": ["a", "b"],
        "layers": ["p", "l"],
    }


# ``atlas_net``: a layer whose activation vectors come in two planted clusters, and a linear
# head on its spatial mean, for activation atlases worked out by hand (input 8x8, identity
# normalization):
#
#     features = relu(conv1x1(x)) = [R, R/2 + G/10, B, B/2 + G/10]      layer "features", [4, 8, 8]
#     logits   = ATLAS_W @ mean_hw(features) + ATLAS_B
#
# Reddish pixels (R high, B low) make vectors near (1, 1/2, 0, 0), bluish ones near
# (0, 0, 1, 1/2): two clusters. A mean vector m tiled over the map is attributed to the
# classes by exactly ATLAS_W @ m (gradient x activation of a linear map): cluster A's
# vectors favour "red" (class 0), cluster B's "blue" (class 1); "grey" gets 0.
ATLAS_W = torch.tensor([[1.0, 1.0, -1.0, -1.0], [-1.0, -1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
ATLAS_B = torch.tensor([0.0, 0.0, 0.5])
ATLAS_CLASSES = ["red", "blue", "grey"]


class AtlasNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.ReLU())
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            weight = torch.tensor([[1.0, 0, 0], [0.5, 0.1, 0], [0, 0, 1.0], [0, 0.1, 0.5]])
            self.features[0].weight.copy_(weight.view(4, 3, 1, 1))
            self.fc.weight.copy_(ATLAS_W)
            self.fc.bias.copy_(ATLAS_B)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def atlas_net(weights="random"):
    return {
        "model": AtlasNet(),
        "input_size": 8,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "class_names": ATLAS_CLASSES,
        "layers": ["features"],
    }


class LinearStemNet(nn.Module):
    """A first layer that is affine in the image, as EfficientNet's stem, to check by hand
    (input 8x8, identity normalization)::

        stem    conv 3x3, stride 2, padding 1 (3->2, no bias); ReLU6 ("stem.1")
                channel 0, every colour: rows (-1, 2, -1): a horizontal line detector;
                channel 1: +1 on red, -1 on blue at the centre tap: a colour detector
        head    conv 1x1 (2->2) -> ReLU
        logits  mean over space -> fc (2->2)

    Channel 0's spatial mean is largest for white even rows and black odd rows: an even
    row is the middle row of one output position (weight 2), an odd row the top or bottom
    row of two (-1 each). Channel 1's is largest for red = 1, blue = 0 (green unused).
    """

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 2, 3, stride=2, padding=1, bias=False), nn.ReLU6())
        self.head = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU())
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            weight = torch.zeros(2, 3, 3, 3)
            weight[0, :, :, :] = torch.tensor([-1.0, 2.0, -1.0]).view(3, 1)
            weight[1, 0, 1, 1], weight[1, 2, 1, 1] = 1.0, -1.0
            self.stem[0].weight.copy_(weight)

    def forward(self, x):
        return self.fc(self.head(self.stem(x)).mean((2, 3)))


def linear_stem_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = LinearStemNet()
    return {
        "model": net,
        "input_size": 8,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "class_names": ["a", "b"],
        "layers": ["stem", "head"],
    }


class TwoConvBlock(nn.Module):
    """conv -> BN -> ReLU -> conv -> BN, plus the input: a residual block (two convolutions)."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class UnlistedNet(nn.Module):
    """A classifier whose loader names no layers; the default layers, by hand::

    conv_stem, bn_stem, act_stem   one layer "stem" (read at act_stem)
    pool                           no layer (pooling)
    stage.0, stage.1               two layers (blocks of a Sequential stage)
    conv_head, drop, act_head      one layer "head" (read at act_head; Dropout looked through)
    fc                             no layer (2-D)
    """

    def __init__(self):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        self.bn_stem = nn.BatchNorm2d(4)
        self.act_stem = nn.ReLU6()
        self.pool = nn.MaxPool2d(2)
        self.stage = nn.Sequential(TwoConvBlock(4), TwoConvBlock(4))
        self.conv_head = nn.Conv2d(4, 6, 1)
        self.drop = nn.Dropout(0.2)
        self.act_head = nn.ReLU()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.act_head(
            self.drop(self.conv_head(self.stage(self.pool(self.act_stem(self.bn_stem(self.conv_stem(x)))))))
        )
        return self.fc(x.mean((2, 3)))


def unlisted_net(weights="random"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = UnlistedNet()
    return {"model": net, "input_size": 16, "class_names": ["a", "b", "c"]}


def timm_lite1_net(weights="random"):
    """What a new user writes: timm's EfficientNet-Lite1, no ``layers`` list."""
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = timm.create_model("tf_efficientnet_lite1", pretrained=False)
    return {"model": net, "input_size": 240, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
