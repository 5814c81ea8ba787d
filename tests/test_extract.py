"""The extraction pass: stored maxima, positions, means and attributions equal hand-computed values.

``hand_net`` is small enough to work out on paper (input 4x4, identity normalization):

    conv  (1x1, no bias):  a0 = R,  a1 = G - B          layer "conv"
    relu:                  r = relu(a)                   layer "relu"
    logits = W @ mean_hw(r) + b,  W = [[1, 0], [0, 2], [1, -1]],  b = [0, 0, 0.5]

so d logit_k / d r[c, y, x] = W[k, c] / 16 and the channel attribution (gradient x
activation summed over space) of either layer is ``W[k, c] * mean(r_c)``.
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.extract.extractor import Extractor, extract_batches, label_classes, summarize_activation
from pipeline.model import load_model
from pipeline.store.activations import ShardSet, shard_writer

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
    return {"model": HandNet(), "input_size": 4, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),
            "class_names": ["alpha", "beta", "gamma"], "layers": ["conv", "relu"]}


class SquareNet(nn.Module):
    """layer "conv" = R + G + B (1 channel); logits = [s^2, s] with s = sum over space."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)

    def forward(self, x):
        s = self.conv(x).sum(dim=(1, 2, 3))
        return torch.stack([s ** 2, s], dim=1)


def square_net(weights="random"):
    return {"model": SquareNet(), "input_size": 2, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),
            "class_names": ["square", "linear"], "layers": ["conv"]}


def hand_images():
    """Two 4x4 images with known maxima (one a tie) and both signs in channel 1."""
    x = torch.zeros(2, 3, 4, 4)
    x[0, 0] = torch.arange(16.0).view(4, 4) / 16        # R: max 15/16 at (3, 3)
    x[0, 1, 1, 2] = 0.8                                  # G - B: max 0.8 at (1, 2)
    x[0, 2, 0, 0] = 0.5                                  # ... and -0.5 at (0, 0)
    x[1, 0, 2, 1] = x[1, 0, 0, 3] = 0.7                  # R: tie -> first in row-major (0, 3)
    x[1, 2] = 0.25                                       # G - B = -0.25 everywhere: relu 0
    return x


def hand_expected(x):
    a = torch.stack([x[:, 0], x[:, 1] - x[:, 2]], dim=1)
    r = a.clamp(min=0)
    logits = r.mean(dim=(2, 3)) @ W.T + B
    return a, r, logits


def close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def model():
    return load_model("tests.test_extract:hand_net", weights="random")


def test_summaries_equal_hand_values(model):
    x = hand_images()
    a, r, logits = hand_expected(x)
    out = Extractor(model, attribution="gradient")(x, torch.tensor([1, -1]))
    conv, relu = out.layers["conv"], out.layers["relu"]
    close(conv["max"], [[15 / 16, 0.8], [0.7, -0.25]])
    assert conv["argmax_y"].tolist() == [[3, 1], [0, 0]] and conv["argmax_x"].tolist() == [[3, 2], [3, 0]]
    assert conv["argmax_y"].dtype == torch.int16
    close(conv["mean"], [[7.5 / 16, 0.3 / 16], [1.4 / 16, -0.25]])
    close(relu["max"], [[15 / 16, 0.8], [0.7, 0.0]])
    # All-zero channel: the tie resolves to the first position.
    assert (relu["argmax_y"][1, 1], relu["argmax_x"][1, 1]) == (0, 0)
    # Predictions: logits [m0, 2 m1, m0 - m1 + .5]; image 0 predicts gamma, image 1 gamma.
    assert out.top_ids[:, 0].tolist() == logits.argmax(1).tolist() == [2, 2]
    close(out.top_logits, logits.sort(1, descending=True).values)
    # Channel attribution to the predicted class (gamma: W = [1, -1]) and to the label.
    m = r.mean(dim=(2, 3))
    for layer in ("conv", "relu"):
        close(out.layers[layer]["attr_predicted"], W[2] * m)
        label = out.layers[layer]["attr_label"]
        close(label[0], W[1] * m[0])
        assert all(math.isnan(v) for v in label[1].tolist())   # no label: undefined


def test_activation_only_mode_has_no_attribution_and_no_graph(model):
    out = Extractor(model, attribution="none")(hand_images())
    assert set(out.layers["conv"]) == {"max", "argmax_y", "argmax_x", "mean"}
    assert not any(t.requires_grad for t in out.layers["conv"].values())


def test_summarize_activation_positions_are_row_major_first_max():
    act = torch.zeros(1, 1, 3, 5)
    act[0, 0, 2, 1] = act[0, 0, 1, 4] = 2.0
    out = summarize_activation(act)
    assert (int(out["argmax_y"]), int(out["argmax_x"])) == (1, 4)


def test_labels_match_class_names_and_imagenet_wnids():
    ids, unmatched = label_classes(["beta", None, "zeta", "alpha"], ["alpha", "beta", "gamma"])
    assert ids.tolist() == [1, -1, -1, 0] and unmatched == ["zeta"]
    names = [f"class {i}" for i in range(1000)]
    names[1] = "goldfish"
    ids, _ = label_classes(["n01443537", "goldfish", "n01440764"], names)
    assert ids.tolist() == [1, 1, 0]


class _Skipped:
    def __init__(self, image_id, path, reason):
        self.image_id, self.path, self.reason = image_id, path, reason


class _Record:
    def __init__(self, image_id, label=None):
        self.image_id, self.path, self.label = image_id, f"/data/{image_id}.jpg", label


def test_shard_round_trip_keeps_hand_values_and_skips_bad_rows(model, tmp_path):
    """Batches with a bad image: only good rows are stored, in order, with their values."""
    x = hand_images()
    records = [_Record("a", "beta"), _Record("bad"), _Record("b")]
    images = torch.stack([x[0], torch.zeros(3, 4, 4), x[1]])
    batches = [{"index": torch.tensor([0, 1]), "image": images[:2], "ok": torch.tensor([True, False]),
                "reason": ["", "truncated"]},
               {"index": torch.tensor([2]), "image": images[2:], "ok": torch.tensor([True]), "reason": [""]}]
    classes, _ = label_classes([r.label for r in records], model.class_names)
    extractor = Extractor(model)
    path = tmp_path / "0-3.h5"
    layers = [l.to_dict() for l in model.layers]
    with shard_writer(path, layers=layers, quantities=["max", "argmax_y", "argmax_x", "mean",
                                                       "attr_predicted", "attr_label"],
                      capacity=3, class_names=model.class_names, start=0, stop=3,
                      settings={"s": 1}, model_checksum=model.checksum, top=3) as writer:
        for batch, summary in extract_batches(extractor, batches, classes, progress=False):
            writer.skip([_Skipped(records[i].image_id, records[i].path, reason)
                         for i, ok, reason in zip(batch["index"].tolist(), batch["ok"].tolist(),
                                                  batch["reason"]) if not ok])
            rows = batch["index"][batch["ok"]].tolist()
            writer.append([records[i] for i in rows], classes[rows].tolist(), summary)
    shards = ShardSet([path])
    assert shards.rows == 2
    assert shards.table("images")["image_id"] == ["a", "b"]
    assert shards.table("images")["label_class"] == [1, -1]
    assert shards.table("skipped") == {"image_id": ["bad"], "path": ["/data/bad.jpg"], "reason": ["truncated"]}
    direct = extractor(x, torch.tensor([1, -1]))
    for q in ("max", "argmax_y", "mean", "attr_predicted"):
        np.testing.assert_allclose(shards.array(f"layers/relu/{q}").compute(),
                                   direct.layers["relu"][q].numpy(), rtol=1e-6)
    assert np.isnan(shards.array("layers/conv/attr_label").compute()[1]).all()
    assert shards.array("predictions/top_ids").compute()[:, 0].tolist() == [2, 2]
