"""A tiny hand-made classifier for the Building Blocks tests (loader ``tests.blocks_models:tiny_blocks_net``).

    input [3, 16, 16]
    features1 = conv 3->4 (3x3, stride 2, no bias) + ReLU   -> [4, 8, 8]
    features2 = conv 4->6 (3x3, stride 2, no bias)          -> [6, 4, 4]   (linear in features1)
    relu, mean over space, fc 6->5 (no bias)                 -> 5 logits

Without biases the network is positively homogeneous and piecewise linear, so the
gradient x activation of any layer sums to the logit itself (Euler's theorem), and
features2 is a linear function of features1.
"""
import torch
from torch import nn


class TinyBlocksNet(nn.Module):
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
    return {"model": net, "input_size": 16, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
            "class_names": ["ant", "bee", "cat", "dog", "eel"],
            "layers": ["features1", "features2"]}
