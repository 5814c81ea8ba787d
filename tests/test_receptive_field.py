"""Receptive-field boxes contain every input pixel whose change alters the unit."""

import pytest
import torch

from pipeline.model import load_model
from pipeline.model.receptive_field import ReceptiveFieldOps, receptive_field_boxes, receptive_fields
from tests.helpers.models import POOL_NET_SIZE

SIZE = POOL_NET_SIZE


@pytest.fixture(scope="module")
def model():
    return load_model("tests.helpers.models:pool_net", weights="random")


def unit_changes(model, layer, y, x, image, candidates):
    """Which single-pixel changes of ``image`` (a list of (row, col)) alter unit (y, x) of ``layer``."""
    from pipeline.model.hooks import LayerTap

    tap = LayerTap(model.net, model.modules_for(model.resolve_layers(layer)))
    batch = image.repeat(len(candidates) + 1, 1, 1, 1)  # item 0 stays unchanged
    for i, (r, c) in enumerate(candidates, start=1):
        batch[i, :, r, c] = 1.0 - batch[i, :, r, c]  # a large change of every colour
    with torch.no_grad():
        units = tap(model.normalize(batch))[0][layer][:, :, y, x]
    # A tolerance far below any real effect of such a change, above float rounding.
    changed = (units[1:] - units[0]).abs().amax(dim=1) > 1e-5
    return [cand for cand, flag in zip(candidates, changed) if flag]


def test_boxes_match_the_hand_computed_field(model):
    # pool_net's docstring (tests/helpers/models.py): c2's row y reads input rows 2y-3..2y+4.
    boxes = receptive_field_boxes(model, "c2")
    assert boxes.shape == (6, 6, 4)
    for y in range(6):
        for x in range(6):
            expected = (max(0, 2 * y - 3), max(0, 2 * x - 3), min(SIZE, 2 * y + 5), min(SIZE, 2 * x + 5))
            assert tuple(boxes[y, x].tolist()) == expected
    c1 = receptive_field_boxes(model, "c1")
    assert tuple(c1[0, 5].tolist()) == (0, 4, 2, 7)


def test_dead_relus_tied_max_pools_and_unequal_axes_follow_the_receptive_field_rules():
    """``field_net`` (tests/helpers/models.py), input 12x12, spans half-open and clipped to [0, 12):

    c1, relu  kernel 3x1, padding (1, 0): row i reads input rows i-1..i+1; column j reads column j.
    pool      2x2: row p reads c1 rows 2p, 2p+1 -> input rows 2p-1..2p+2; column q reads 2q, 2q+1.
              All of the window counts, although every window ties and its top-left wins.
    c2        kernel 1x3, stride (1, 2), padding (0, 1) -> 6 rows, 3 columns: row r reads pool
              row r; column s reads pool columns 2s-1..2s+1 -> c1 columns 4s-2..4s+3.
    The ReLU is dead everywhere, yet counts as passing: the field is about reach, not values.
    """
    model = load_model("tests.helpers.models:field_net")
    with torch.no_grad():
        assert not model.net.relu(model.net.c1(model.normalize(torch.rand(4, 3, 12, 12)))).any()
    fields = receptive_fields(model)
    conv_rows = [
        (0, 2),
        (0, 3),
        (1, 4),
        (2, 5),
        (3, 6),
        (4, 7),
        (5, 8),
        (6, 9),
        (7, 10),
        (8, 11),
        (9, 12),
        (10, 12),
    ]
    conv_cols = [(j, j + 1) for j in range(12)]
    pool_rows = [(0, 3), (1, 5), (3, 7), (5, 9), (7, 11), (9, 12)]
    pool_cols = [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 12)]
    expected = {
        "c1": (conv_rows, conv_cols),
        "relu": (conv_rows, conv_cols),
        "pool": (pool_rows, pool_cols),
        "c2": (pool_rows, [(0, 4), (2, 8), (6, 12)]),
    }
    for layer, (rows, cols) in expected.items():
        assert [tuple(r) for r in fields[layer].rows.tolist()] == rows, layer
        assert [tuple(c) for c in fields[layer].cols.tolist()] == cols, layer
    boxes = receptive_field_boxes(model, "c2")
    assert boxes.shape == (6, 3, 4)
    assert tuple(boxes[0, 2].tolist()) == (0, 6, 3, 12) and tuple(boxes[5, 0].tolist()) == (9, 0, 12, 4)


@pytest.mark.parametrize("layer", ["c1", "pool", "c2"])
def test_every_pixel_that_alters_a_unit_lies_in_its_box(model, layer):
    torch.manual_seed(3)
    boxes = receptive_field_boxes(model, layer)
    pixels = [(r, c) for r in range(SIZE) for c in range(SIZE)]
    h, w = boxes.shape[:2]
    for y, x in [(0, 0), (h // 2, w // 2), (h - 1, w - 1), (1, w - 2)]:
        image = torch.rand(3, SIZE, SIZE)
        y0, x0, y1, x1 = boxes[y, x].tolist()
        altering = unit_changes(model, layer, y, x, image, pixels)
        assert altering, "the unit should depend on some pixel"
        assert all(y0 <= r < y1 and x0 <= c < x1 for r, c in altering), (layer, y, x)


def test_receptive_field_mode_keeps_forward_values(model):
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        plain = model(x)
        with ReceptiveFieldOps():
            sensed = model(x)
    assert torch.equal(plain, sensed)


def test_lite0_stem_boxes_and_a_deeper_position():
    """Real weights and TF "SAME" padding: the stem is a 3x3 stride-2 conv padded at the end only."""
    model = load_model("efficientnet_lite0")
    fields = receptive_fields(model, ["stem", "blocks.2.0"])
    stem = fields["stem"]
    assert stem.rows.tolist()[:3] == [[0, 3], [2, 5], [4, 7]] and stem.rows.tolist()[-1] == [222, 224]
    assert torch.equal(stem.rows, stem.cols)
    # blocks.2.0 (28x28): pixels outside the box of (9, 20) leave the unit exactly unchanged;
    # changing the box's outermost rows/columns changes it.
    from pipeline.model.hooks import LayerTap

    y, x = 9, 20
    y0, x0, y1, x1 = fields["blocks.2.0"].box(y, x)
    assert 0 < y0 < y1 < 224 and 0 < x0 < x1 < 224
    tap = LayerTap(model.net, model.modules_for(model.resolve_layers("blocks.2.0")))
    torch.manual_seed(0)
    image = torch.rand(1, 3, 224, 224)
    outside = image.clone()
    inside = torch.zeros(224, 224, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    outside[:, :, ~inside] = torch.rand(int((~inside).sum()))
    edges = []
    for sl in [
        (slice(y0, y0 + 1), slice(x0, x1)),
        (slice(y1 - 1, y1), slice(x0, x1)),
        (slice(y0, y1), slice(x0, x0 + 1)),
        (slice(y0, y1), slice(x1 - 1, x1)),
    ]:
        edge = image.clone()
        edge[:, :, sl[0], sl[1]] = 1 - edge[:, :, sl[0], sl[1]]
        edges.append(edge)
    with torch.no_grad():
        acts = tap(model.normalize(torch.cat([image, outside, *edges])))[0]["blocks.2.0"][:, :, y, x]
    torch.testing.assert_close(acts[1], acts[0], rtol=0, atol=1e-6)
    for i in range(2, 6):
        assert (acts[i] - acts[0]).abs().max() > 1e-4, f"edge {i - 2} of the box does not matter"
