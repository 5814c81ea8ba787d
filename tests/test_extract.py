"""The extraction pass: stored maxima, positions, means and attributions equal hand-computed values.

``hand_net`` (tests/helpers/models.py) is small enough to work out on paper (input 4x4,
identity normalization):

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

from pipeline.extract.extractor import Extractor, extract_batches, label_classes, summarize_activation
from pipeline.model import load_model
from pipeline.store.activations import ShardLayout, ShardSet, shard_writer
from tests.helpers.models import W, hand_expected, hand_images
from tests.helpers.provenance import record


def close(actual, expected):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=1e-6, atol=1e-7
    )


@pytest.fixture(scope="module")
def model():
    return load_model("tests.helpers.models:hand_net", weights="random")


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
    # The minimum and where it is: image 1's channel 1 is -0.25 everywhere (first position).
    close(conv["min"], a.amin(dim=(2, 3)))
    assert float(conv["min"][1, 1]) == -0.25 and (conv["argmin_y"][1, 1], conv["argmin_x"][1, 1]) == (0, 0)
    flat = a.flatten(2).argmin(dim=2)
    assert (
        conv["argmin_y"].tolist() == (flat // 4).tolist() and conv["argmin_x"].tolist() == (flat % 4).tolist()
    )
    close(relu["min"], r.amin(dim=(2, 3)))
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
        assert all(math.isnan(v) for v in label[1].tolist())  # no label: undefined


def test_activation_only_mode_has_no_attribution_and_no_graph(model):
    out = Extractor(model, attribution="none")(hand_images())
    assert set(out.layers["conv"]) == {"max", "argmax_y", "argmax_x", "min", "argmin_y", "argmin_x", "mean"}
    assert not any(t.requires_grad for t in out.layers["conv"].values())


def test_summarize_activation_positions_are_row_major_first_max():
    act = torch.zeros(1, 1, 3, 5)
    act[0, 0, 2, 1] = act[0, 0, 1, 4] = 2.0
    act[0, 0, 0, 3] = act[0, 0, 2, 0] = -1.0
    out = summarize_activation(act)
    assert (int(out["argmax_y"]), int(out["argmax_x"])) == (1, 4)
    assert (int(out["argmin_y"]), int(out["argmin_x"])) == (0, 3)


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
    batches = [
        {
            "index": torch.tensor([0, 1]),
            "image": images[:2],
            "ok": torch.tensor([True, False]),
            "reason": ["", "truncated"],
        },
        {"index": torch.tensor([2]), "image": images[2:], "ok": torch.tensor([True]), "reason": [""]},
    ]
    classes, _ = label_classes([r.label for r in records], model.class_names)
    extractor = Extractor(model)
    path = tmp_path / "0-3.h5"
    layers = [layer.to_dict() for layer in model.layers]
    layout = ShardLayout(
        layers=layers,
        quantities=["max", "argmax_y", "argmax_x", "mean", "attr_predicted", "attr_label"],
        class_names=model.class_names,
        start=0,
        stop=3,
        top=3,
    )
    with shard_writer(path, layout, settings=record({"s": 1}), model_checksum=model.checksum) as writer:
        for batch, summary in extract_batches(extractor, batches, classes, progress=False):
            writer.skip(
                [
                    _Skipped(records[i].image_id, records[i].path, reason)
                    for i, ok, reason in zip(batch["index"].tolist(), batch["ok"].tolist(), batch["reason"])
                    if not ok
                ]
            )
            rows = batch["index"][batch["ok"]].tolist()
            writer.append([records[i] for i in rows], classes[rows].tolist(), summary)
    shards = ShardSet([path])
    assert shards.rows == 2
    assert shards.table("images")["image_id"] == ["a", "b"]
    assert shards.table("images")["label_class"] == [1, -1]
    assert shards.table("skipped") == {
        "image_id": ["bad"],
        "path": ["/data/bad.jpg"],
        "reason": ["truncated"],
    }
    direct = extractor(x, torch.tensor([1, -1]))
    for q in ("max", "argmax_y", "mean", "attr_predicted"):
        np.testing.assert_allclose(
            shards.per_image("relu", q).compute(), direct.layers["relu"][q].numpy(), rtol=1e-6
        )
    assert np.isnan(shards.per_image("conv", "attr_label").compute()[1]).all()
    assert shards.predicted_classes().compute().tolist() == [2, 2]


def test_a_shard_of_unlabelled_images_still_stores_label_attribution_as_nan(tmp_path):
    """Whether label attribution is stored is decided on the whole listing: a shard whose own
    images have no label holds it too, all NaN, so that the run's shards merge."""
    from PIL import Image

    from pipeline.extract.job import run_extract_shard
    from pipeline.extract.settings import ExtractSettings
    from pipeline.images.listing import ImageRecord, write_listing
    from pipeline.model.spec import ModelSpec

    rng = np.random.default_rng(0)
    records = []
    for i, label in enumerate(["cat", "dog", None, None]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        records.append(ImageRecord(f"{i}.png", str(path), label))
    listing = write_listing(
        tmp_path / "images.json",
        records,
        {"name": "planted", "kind": "folder", "path": str(tmp_path), "max_images": None},
    )
    tiny = ModelSpec(name="tests.helpers.models:tiny_conv_net", weights="random", device="cpu")
    settings = ExtractSettings(batch_size=2, attribution="gradient")
    paths = [tmp_path / "0-2.h5", tmp_path / "2-4.h5"]
    for (start, stop), path in zip([(0, 2), (2, 4)], paths):
        run_extract_shard(settings, tiny, listing, start, stop, path)
    unlabelled = ShardSet(paths[1:])
    assert "attr_label" in unlabelled.quantities and unlabelled.table("images")["label_class"] == [-1, -1]
    shards = ShardSet(paths)
    for layer, channels in (("early", 4), ("late", 6)):
        label = shards.per_image(layer, "attr_label").compute()
        assert label.shape == (4, channels)
        assert np.isfinite(label[:2]).all() and np.isnan(label[2:]).all(), layer
        assert np.isfinite(shards.per_image(layer, "attr_predicted").compute()).all()
