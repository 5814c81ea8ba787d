"""Circuits between channels of consecutive layers (pipeline/circuits/, pipeline/store/circuits.py)
on a model whose two layers are joined by a bias-free 1x1 convolution, worked out by hand."""

import h5py
import numpy as np
import pytest
import torch
import yaml

from pipeline.circuits import CircuitsSettings
from pipeline.circuits.compute import layer_circuits, select_targets
from pipeline.model import attribute_to_earlier, load_model
from pipeline.model.hooks import LayerTap
from pipeline.settings import schema_defaults
from pipeline.store._format import StoreError, atomic_h5
from pipeline.store.circuits import (
    CircuitsHeader,
    CircuitsStore,
    LayerCircuits,
    merge_files,
    write_layer_file,
)
from tests.helpers.models import CIRCUIT_W
from tests.helpers.provenance import record
from tests.helpers.workflow import REPO

NAN = float("nan")


@pytest.fixture(scope="module")
def model():
    return load_model("tests.helpers.models:circuit_net", weights="random")


@pytest.fixture(scope="module")
def images():
    """Four 4x4 images in [0, 1] (so ``p = relu(x) = x``)."""
    return torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(5))


def test_the_settings_defaults_are_the_schemas():
    schema = yaml.safe_load((REPO / "workflow" / "config" / "schema.yaml").read_text())
    expected = {"examples": 8, "layers_per_job": 1}
    assert CircuitsSettings().to_dict() == schema_defaults(schema, "circuits") == expected
    with pytest.raises(ValueError, match="unknown setting.*exampels"):
        CircuitsSettings.from_config({"exampels": 3})


# -- the computation -----------------------------------------------------------------------


def test_a_unit_target_is_the_one_hot_weighted_one(model, images):
    one_hot = torch.zeros(2, 4, 4)
    one_hot[1, 2, 3] = 1
    dense, unit = attribute_to_earlier(model, images[0], "p", "l", [one_hot, (1, 2, 3)], lambda a: a)
    torch.testing.assert_close(dense, unit)
    # By hand: l[1, 2, 3] = sum_c' W[1, c'] p[c', 2, 3], attributed at (2, 3) only.
    expected = torch.zeros(3, 4, 4)
    expected[:, 2, 3] = CIRCUIT_W[1] * images[0][:, 2, 3]
    torch.testing.assert_close(unit, expected)


def test_from_previous_is_the_weight_times_the_activation_averaged_over_examples(model, images):
    # Channel 0: three examples (images 2, 0, 3); channel 1: two of three ranks considered.
    row = np.array([[2, 0, 3], [1, 3, 0]])
    value = np.ones((2, 3), np.float32)
    y, x = np.array([[0, 3, 1], [2, 2, 0]]), np.array([[1, 0, 2], [3, 1, 0]])
    targets = select_targets(row, value, y, x, examples=3)
    result = layer_circuits(model, "p", "l", targets, lambda r: images[r])
    expected = np.zeros((2, 3))
    for c in range(2):
        for rank in range(3):
            p = images[row[c, rank]][:, y[c, rank], x[c, rank]].numpy()
            expected[c] += CIRCUIT_W[c].numpy() * p / 3
    np.testing.assert_allclose(result["from_previous"], expected, rtol=1e-5, atol=1e-7)
    assert result["from_previous"].dtype == np.float32 and result["from_previous"].shape == (2, 3)
    np.testing.assert_array_equal(result["examples"], [3, 3])
    # Only the first `examples` ranks count.
    fewer = layer_circuits(model, "p", "l", select_targets(row, value, y, x, 1), lambda r: images[r])
    p = images[2][:, 0, 1].numpy()
    np.testing.assert_allclose(fewer["from_previous"][0], CIRCUIT_W[0].numpy() * p, rtol=1e-5)
    np.testing.assert_array_equal(fewer["examples"], [1, 1])


def test_examples_where_the_channel_does_not_fire_or_that_are_missing_are_skipped(model, images):
    row = np.array([[0, 1, 2, -1], [3, 2, 1, 0]])
    value = np.array([[2.0, 0.0, -1.0, NAN], [NAN, -0.5, 0.0, 0.0]], np.float32)
    y = x = np.zeros((2, 4), np.int16)
    targets = select_targets(row, value, y, x, examples=8)
    assert targets.ranks == 4 and targets.count == 1
    assert targets.units == {0: [(0, 0, 0)]}  # only image 0 is run at all
    np.testing.assert_array_equal(targets.examples, [1, 0])
    result = layer_circuits(model, "p", "l", targets, lambda r: images[r])
    np.testing.assert_allclose(result["from_previous"][0], CIRCUIT_W[0].numpy() * images[0][:, 0, 0].numpy())
    np.testing.assert_array_equal(result["from_previous"][1], 0)  # no usable example
    np.testing.assert_array_equal(result["examples"], [1, 0])
    with pytest.raises(ValueError, match="at least 1 example"):
        select_targets(row, value, y, x, examples=0)


def test_rows_sum_to_the_target_through_a_bias_free_spatial_convolution():
    # tiny_blocks_net: features2 is a bias-free 3x3 convolution of features1 (stride 2), so
    # the attributions of features2[c, y, x] to features1's channels sum to it (Euler).
    model = load_model("tests.helpers.models:tiny_blocks_net", weights="random")
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    tap = LayerTap(model.net, model.modules_for(model.resolve_layers(["features2"])))
    a2 = tap(model.normalize(image[None]))[0]["features2"][0].detach()
    row = np.zeros((a2.shape[0], 2), np.int64)
    value = np.ones((a2.shape[0], 2), np.float32)
    ys, xs = np.array([[1, 3]] * a2.shape[0]), np.array([[2, 0]] * a2.shape[0])
    result = layer_circuits(
        model, "features1", "features2", select_targets(row, value, ys, xs, 2), lambda r: image
    )
    expected = np.array([(a2[c, 1, 2] + a2[c, 3, 0]).item() / 2 for c in range(a2.shape[0])])
    np.testing.assert_allclose(result["from_previous"].sum(axis=1), expected, rtol=1e-4, atol=1e-6)


# -- the store -----------------------------------------------------------------------------

CHAIN = [
    {"name": "stem", "channels": 2},
    {"name": "blocks.3.2", "channels": 3},
    {"name": "head", "channels": 2},
]


def _header(**changes) -> CircuitsHeader:
    base = dict(
        layers=CHAIN,
        model={"name": "toy", "weights": "random"},
        settings=record({"examples": 8}, layers=[c["name"] for c in CHAIN], method="attribution"),
        model_checksum="random:seed0",
    )
    return CircuitsHeader(**{**base, **changes})


# blocks.3.2 from stem: [3, 2]; head from blocks.3.2: [2, 3]
MIDDLE = np.array([[0.5, -0.25], [2.0, 0.0], [-1.0, -3.0]], np.float32)
LAST = np.array([[0.1, 0.2, -0.3], [0.2, 0.0, 0.4]], np.float32)


def _layer_files(folder, header=None):
    header = header or _header()
    return [
        write_layer_file(
            folder / "blocks.3.2.h5", header, {"blocks.3.2": LayerCircuits(MIDDLE, [8, 0, 5], 8)}
        ),
        write_layer_file(folder / "head.h5", header, {"head": LayerCircuits(LAST, [3, 8], 8)}),
    ]


def test_store_round_trip_connections_and_downstream_is_the_next_layers_column(tmp_path):
    files = _layer_files(tmp_path)
    with CircuitsStore(files[1]) as head_only:  # a layer's file: its upstream matrix only
        alone = head_only.connections("blocks.3.2", 2)
        assert alone["upstream"] == alone["upstream_negative"] == [] and alone["examples"] == 0
        assert [e["channel"] for e in alone["downstream"]] == [1]
    merged = merge_files(files, tmp_path / "circuits.h5", _header())
    with CircuitsStore(merged) as store:
        assert store.layers() == ["stem", "blocks.3.2", "head"]
        assert store.previous("stem") is None and store.previous("head") == "blocks.3.2"
        assert store.next("blocks.3.2") == "head" and store.next("head") is None
        np.testing.assert_array_equal(store.from_previous("blocks.3.2"), MIDDLE)
        assert store.from_previous("stem") is None
        np.testing.assert_array_equal(store.examples("head"), [3, 8])
        assert store.info("head") == {"previous": "blocks.3.2", "method": "attribution", "top_examples": 8}

        middle = store.connections("blocks.3.2", 2)
        assert middle["previous_layer"] == "stem" and middle["next_layer"] == "head"
        assert middle["upstream"] == [] and middle["examples"] == 5
        assert middle["upstream_negative"] == [
            {"channel": 1, "attribution": -3.0},
            {"channel": 0, "attribution": -1.0},
        ]
        # Downstream of blocks.3.2 channel 2: column 2 of head's matrix.
        assert middle["downstream"] == [{"channel": 1, "attribution": pytest.approx(0.4)}]
        assert middle["downstream_negative"] == [{"channel": 0, "attribution": pytest.approx(-0.3)}]
        assert middle["method"] == "attribution"

        zero = store.connections("blocks.3.2", 0, k=1)
        assert zero["upstream"] == [{"channel": 0, "attribution": 0.5}]
        assert [e["channel"] for e in store.connections("blocks.3.2", 1)["downstream"]] == [
            0
        ]  # 0.2; 0 is out

        first = store.connections("stem", 1)
        assert first["previous_layer"] is None and first["upstream"] == first["upstream_negative"] == []
        assert first["examples"] == 0 and first["method"] == "attribution"
        assert [e["channel"] for e in first["downstream"]] == []  # column 1 of MIDDLE: -0.25, 0, -3
        assert [e["channel"] for e in first["downstream_negative"]] == [2, 0]
        last = store.connections("head", 1)
        assert last["next_layer"] is None and last["downstream"] == [] and last["examples"] == 8
        assert [e["channel"] for e in last["upstream"]] == [2, 0]  # 0.4, 0.2; ties: none

        with pytest.raises(KeyError, match="no layer 'neck'; layers: stem, blocks.3.2, head"):
            store.connections("neck", 0)
        with pytest.raises(ValueError, match="channels 0-2; got 3"):
            store.connections("blocks.3.2", 3)


def test_one_file_may_hold_several_layers_and_merges_alike(tmp_path):
    header = _header()
    both = write_layer_file(
        tmp_path / "part.h5",
        header,
        {"blocks.3.2": LayerCircuits(MIDDLE, [8, 0, 5], 8), "head": LayerCircuits(LAST, [3, 8], 8)},
    )
    apart = merge_files(_layer_files(tmp_path), tmp_path / "apart.h5", header)
    together = merge_files([both], tmp_path / "together.h5", header)
    with CircuitsStore(apart) as a, CircuitsStore(together) as b:
        for layer in ("blocks.3.2", "head"):
            np.testing.assert_array_equal(a.from_previous(layer), b.from_previous(layer))
        assert a.connections("blocks.3.2", 0) == b.connections("blocks.3.2", 0)


def test_ties_go_to_the_lower_channel(tmp_path):
    header = _header(layers=CHAIN[:2])
    tied = np.array([[1.0, 1.0], [0, 0], [0, 0]], np.float32)
    path = write_layer_file(tmp_path / "b.h5", header, {"blocks.3.2": LayerCircuits(tied, [1, 1, 1], 1)})
    with CircuitsStore(path) as store:
        assert [e["channel"] for e in store.connections("blocks.3.2", 0)["upstream"]] == [0, 1]


def test_a_file_of_another_kind_or_version_is_refused_naming_it(tmp_path):
    other = tmp_path / "blocks.h5"
    with atomic_h5(other, "blocks", 2):
        pass
    with pytest.raises(
        StoreError, match=r"blocks\.h5: expected a model-atlas\.circuits file, found model-atlas\.blocks"
    ):
        CircuitsStore(other)
    future = tmp_path / "circuits.h5"
    with h5py.File(future, "w") as fh:
        fh.attrs.update({"format": "model-atlas.circuits", "format_version": 9, "complete": True})
    with pytest.raises(StoreError, match=r"circuits\.h5: model-atlas\.circuits version 9 is not supported"):
        CircuitsStore(future)


def test_the_writer_checks_shapes_and_the_chain(tmp_path):
    with pytest.raises(ValueError, match=r"from_previous must be \[3, 2\]"):
        write_layer_file(tmp_path / "x.h5", _header(), {"blocks.3.2": LayerCircuits(LAST, [1, 1], 1)})
    with pytest.raises(StoreError, match="'stem' is the first extracted layer"):
        write_layer_file(tmp_path / "x.h5", _header(), {"stem": LayerCircuits(LAST, [1, 1], 1)})
    assert not (tmp_path / "x.h5").exists()


def test_a_merge_refuses_files_of_other_settings_or_weights_and_missing_layers(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    ours = _layer_files(tmp_path / "a")
    other_settings = _layer_files(tmp_path / "b", _header(settings=record({"examples": 4})))
    other_weights = _layer_files(tmp_path / "c", _header(model_checksum="sha256:other"))
    out = tmp_path / "circuits.h5"
    with pytest.raises(StoreError, match=r"b/head\.h5 was made with other settings"):
        merge_files([ours[0], other_settings[1]], out, _header())
    with pytest.raises(StoreError, match=r"c/blocks\.3\.2\.h5 comes from other model weights"):
        merge_files([other_weights[0], ours[1]], out, _header())
    with pytest.raises(StoreError, match="no file holds the circuits of head"):
        merge_files(ours[:1], out, _header())
    with pytest.raises(StoreError, match="'head' is in .* and again"):
        merge_files([*ours, ours[1]], out, _header())
    assert not out.exists()
