"""Tiny hand-made models for tests, loadable as custom loaders `tests.tiny_models:NAME`."""
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
    return {"model": net, "input_size": 8, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),
            "class_names": ["a", "b", "c", "d"],
            "layers": ["conv1", "relu", "conv2"]}
