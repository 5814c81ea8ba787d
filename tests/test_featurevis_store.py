"""Feature visualization shards, merge and reader (pipeline.store.featurevis), and shard planning."""

import h5py
import numpy as np
import pytest

from pipeline.featurevis import FeaturevisSettings, parse_channels, plan_shards, shard_channels
from pipeline.store._format import StoreError
from pipeline.store.featurevis import FeatureVisStore, ShardLayout, merge_shards, shard_writer
from tests.helpers.provenance import record

SETTINGS = {"steps": 8, "image_size": 4, "seed": 0}
SIZE = 4


def rows(channels, diversity=1, negatives=False, layer_channels=10, filters=False):
    """Arrays whose every value encodes its channel, so misplaced rows are caught.

    Responses: each image excites its own channel by 1 and no other, except that channel
    2's image excites channel 5 by 2 (so channel 5's own image ranks 2nd for it)."""
    k = len(channels)
    c = np.asarray(channels)
    responses = np.zeros((k, layer_channels), np.float32)
    responses[np.arange(k), c] = 1.0
    if layer_channels > 5:
        responses[c == 2, 5] = 2.0
    out = {
        "images": np.broadcast_to(c[:, None, None, None], (k, SIZE, SIZE, 3)).astype(np.uint8),
        "value": c + 0.5,
        "activation": c + 0.25,
        "rank": c % 3 + 1,
        "responses": responses,
        "curve": np.stack([c * 10 + p for p in range(3)], axis=1),
    }
    if diversity > 1:
        out["diversity_images"] = np.broadcast_to(
            (c[:, None] * 2 + np.arange(diversity))[:, :, None, None, None], (k, diversity, SIZE, SIZE, 3)
        ).astype(np.uint8)
        out["diversity_activation"] = np.tile(c[:, None], (1, diversity)).astype(np.float32)
    if negatives:
        out["negative_images"] = 255 - out["images"]
        out["negative_activation"] = -c.astype(np.float32)
    if filters:  # 3x3 RGB filters, each value its channel plus a tenth of its colour
        out["filters"] = (c[:, None, None, None] + np.arange(3) / 10 + np.zeros((3, 3, 1))).astype(np.float32)
    return out


def write_shard(
    path,
    layer,
    channels,
    start,
    stop,
    *,
    layer_channels=10,
    settings=SETTINGS,
    diversity=1,
    negatives=False,
    filters=False,
    batch=2,
    model_checksum="random:seed0",
):
    layout = ShardLayout(
        layer=layer,
        layer_channels=layer_channels,
        channels=channels,
        start=start,
        stop=stop,
        image_size=SIZE,
        curve_steps=[0, 3, 7],
        diversity=diversity,
        negatives=negatives,
        filter_shape=(3, 3) if filters else (),
        preset="fast",
        schedule={"steps": 8, "image_size": SIZE},
    )
    with shard_writer(path, layout, settings=record(settings), model_checksum=model_checksum) as w:
        for i in range(0, len(channels), batch):
            group = channels[i : i + batch]
            w.write(group, rows(group, diversity, negatives, layer_channels, filters))
    return path


def test_shards_merge_into_a_store_the_reader_opens(tmp_path):
    shards = [
        write_shard(tmp_path / "a" / "4-8.h5", "conv", [4, 5, 6, 7], 4, 8),
        write_shard(tmp_path / "a" / "0-4.h5", "conv", [0, 1, 2, 3], 0, 4),
        write_shard(tmp_path / "b" / "0-3.h5", "fc", [0, 2], 0, 3, layer_channels=3),
    ]
    out = merge_shards(shards, tmp_path / "featurevis.h5")
    with FeatureVisStore(out) as fv:
        assert fv.layers == ["conv", "fc"]
        assert fv.settings == SETTINGS
        assert fv.channels("conv").tolist() == list(range(8))
        assert fv.channels("fc").tolist() == [0, 2]
        assert fv.images("conv").shape == (8, SIZE, SIZE, 3) and fv.images("conv").dtype == np.uint8
        assert fv.images("conv").chunks == (1, SIZE, SIZE, 3)  # one image per chunk
        img = fv.image("conv", 6)
        assert img.shape == (SIZE, SIZE, 3) and (img == 6).all()
        assert (fv.image("fc", 2) == 2).all()
        assert fv.rank("conv").tolist() == [c % 3 + 1 for c in range(8)]
        assert fv.value("conv")[5] == 5.5 and fv.activation("conv")[5] == 5.25
        steps, curve = fv.curve("conv")
        assert steps.tolist() == [0, 3, 7] and curve[7].tolist() == [70, 71, 72]
        assert fv.diversity_images("conv") is None and fv.negative_images("conv") is None
        # Ranked across the layer's shards: channel 2's image (shard 0-4) beats channel 5's
        # own (shard 4-8) for channel 5.
        assert fv.image_rank("conv").tolist() == [1, 1, 1, 1, 1, 2, 1, 1]
        assert fv.schedule("conv") == ("fast", {"steps": 8, "image_size": SIZE})
        assert fv.summary()["fc"] == {
            "rendered": 2,
            "layer_channels": 3,
            "preset": "fast",
            "steps": 8,
            "image_size": SIZE,
            "rank1_fraction": pytest.approx(0.5),
            "image_rank1_fraction": 1.0,
        }
        assert fv.summary()["conv"]["image_rank1_fraction"] == pytest.approx(7 / 8)
        with pytest.raises(KeyError, match="no rendered channel 1"):
            fv.image("fc", 1)
        with pytest.raises(KeyError, match="no layer 'head'"):
            fv.images("head")
    assert not list(tmp_path.glob("**/*.partial"))


def test_diversity_and_negative_sets(tmp_path):
    shard = write_shard(tmp_path / "s.h5", "conv", [1, 3, 4], 0, 5, diversity=3, negatives=True)
    out = merge_shards([shard], tmp_path / "fv.h5")
    with FeatureVisStore(out) as fv:
        div = fv.diversity_images("conv")
        assert div.shape == (3, 3, SIZE, SIZE, 3) and div.chunks == (1, 1, SIZE, SIZE, 3)
        assert div[1, 2, 0, 0, 0] == 3 * 2 + 2
        assert (fv.negative_images("conv")[2] == 255 - 4).all()


def test_filters_of_a_layer_rendered_exactly_round_trip_and_are_absent_elsewhere(tmp_path):
    """A layer rendered exactly (shards written with filters) keeps them through the merge,
    in channel order across its shards, with their definition; another layer has none."""
    shards = [
        write_shard(tmp_path / "stem" / "3-6.h5", "stem", [3, 5], 3, 6, filters=True),
        write_shard(tmp_path / "stem" / "0-3.h5", "stem", [0, 1, 2], 0, 3, filters=True),
        write_shard(tmp_path / "conv" / "0-4.h5", "conv", [0, 1], 0, 4),
    ]
    with pytest.raises(KeyError, match="no array 'filters'"):
        with shard_writer(
            tmp_path / "x.h5",
            ShardLayout("conv", 10, [0], 0, 1, SIZE, [0, 3, 7]),
            settings=record(SETTINGS),
        ) as w:
            w.write([0], rows([0], filters=True))
    with FeatureVisStore(merge_shards(shards, tmp_path / "fv.h5")) as fv:
        filters = fv.filters("stem")
        assert filters.shape == (5, 3, 3, 3) and filters.dtype == np.float32
        np.testing.assert_allclose(filters[4, 2, 0], [5.0, 5.1, 5.2])  # channel 5, bottom-left pixel
        assert [float(f[0, 0, 0]) for f in filters] == [0, 1, 2, 3, 5]
        assert "receptive field" in filters.attrs["definition"]
        assert fv.filters("conv") is None
    with FeatureVisStore(shards[0]) as shard:
        assert shard.filters("stem").shape == (2, 3, 3, 3)


def test_reader_opens_a_shard_too(tmp_path):
    shard = write_shard(tmp_path / "s.h5", "conv", [2, 3], 0, 5)
    with FeatureVisStore(shard) as fv:
        assert fv.layers == ["conv"] and (fv.image("conv", 3) == 3).all()


def test_merge_refuses_shards_of_other_settings(tmp_path):
    one = write_shard(tmp_path / "0-4.h5", "conv", [0, 1], 0, 4)
    two = write_shard(tmp_path / "4-8.h5", "conv", [4, 5], 4, 8, settings={**SETTINGS, "steps": 9})
    with pytest.raises(StoreError, match="config_hash .* differs"):
        merge_shards([one, two], tmp_path / "fv.h5")
    assert not (tmp_path / "fv.h5").exists()


def test_merge_refuses_overlapping_missing_and_partial_shards(tmp_path):
    one = write_shard(tmp_path / "0-4.h5", "conv", [0, 1, 2], 0, 4)
    two = write_shard(tmp_path / "2-6.h5", "conv", [2, 3], 2, 6)
    with pytest.raises(StoreError, match="overlap"):
        merge_shards([one, two], tmp_path / "fv.h5")
    with pytest.raises(StoreError, match="no such store file"):
        merge_shards([one, tmp_path / "missing.h5"], tmp_path / "fv.h5")
    with h5py.File(tmp_path / "unfinished.h5", "w") as fh:  # a writer that died
        fh.attrs.update({"format": "model-atlas.featurevis-shard", "format_version": 1, "complete": False})
    with pytest.raises(StoreError, match="incomplete"):
        merge_shards([one, tmp_path / "unfinished.h5"], tmp_path / "fv.h5")
    with pytest.raises(StoreError, match="no shards"):
        merge_shards([], tmp_path / "fv.h5")


def test_a_shard_missing_channels_is_never_created(tmp_path):
    path = tmp_path / "s.h5"
    with pytest.raises(RuntimeError, match=r"channels \[3\] never written"):
        with shard_writer(
            path,
            ShardLayout(
                layer="conv",
                layer_channels=10,
                channels=[2, 3],
                start=0,
                stop=4,
                image_size=SIZE,
                curve_steps=[0],
            ),
            settings=record(SETTINGS),
        ) as w:
            w.write([2], {"images": np.zeros((1, SIZE, SIZE, 3), np.uint8)})
    assert not path.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="outside"):
        with shard_writer(
            path,
            ShardLayout(
                layer="conv",
                layer_channels=10,
                channels=[5],
                start=0,
                stop=4,
                image_size=SIZE,
                curve_steps=[0],
            ),
            settings=record(SETTINGS),
        ):
            pass


def test_writer_rejects_wrong_shapes_and_channels(tmp_path):
    with shard_writer(
        tmp_path / "s.h5",
        ShardLayout(
            layer="conv",
            layer_channels=10,
            channels=[0, 1],
            start=0,
            stop=2,
            image_size=SIZE,
            curve_steps=[0, 1, 2],
        ),
        settings=record(SETTINGS),
    ) as w:
        with pytest.raises(ValueError, match="images: got shape"):
            w.write([0], {"images": np.zeros((1, SIZE + 1, SIZE, 3), np.uint8)})
        with pytest.raises(KeyError, match="not all in this shard"):
            w.write([7], {"value": np.zeros(1)})
        with pytest.raises(KeyError, match="diversity_images"):
            w.write([0], {"diversity_images": np.zeros((1, 2, SIZE, SIZE, 3))})
        w.write([0, 1], rows([0, 1]))


def test_wrong_kind_of_file_is_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as fh:
        fh.attrs.update({"format": "model-atlas.activations", "format_version": 1, "complete": True})
    with pytest.raises(StoreError, match="expected a model-atlas.featurevis"):
        FeatureVisStore(tmp_path / "other.h5")


# ---------------------------------------------------------------------------------
# Channel selection, shard plan, rank
# ---------------------------------------------------------------------------------


def test_parse_channels():
    assert parse_channels("all", 4) == [0, 1, 2, 3]
    assert parse_channels("2-6", 4) == [2, 3]  # clipped to the layer
    assert parse_channels([3, 1, 3], 4) == [1, 3]
    with pytest.raises(ValueError, match=r"channel\(s\) \[7\] do not exist in layer 'conv'"):
        parse_channels([1, 7], 4, "conv")
    with pytest.raises(ValueError, match="'5-2' is not"):
        parse_channels("5-2", 10)


def test_plan_shards():
    assert plan_shards("all", 10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert plan_shards("0-2", 10, 4) == [(0, 4)]
    assert plan_shards([1, 9], 10, 4) == [(0, 4), (8, 10)]  # no job for an empty range
    assert plan_shards("20-30", 10, 4) == []
    assert shard_channels([1, 2, 9], 10, 0, 4) == [1, 2]
    with pytest.raises(ValueError, match="channels_per_job"):
        plan_shards("all", 10, 0)


def test_recorded_settings_fill_defaults_and_leave_out_the_layers_and_job_split():
    settings = FeaturevisSettings.from_config(
        {"steps": 8, "layers": ["a"], "channels": "0-2", "channels_per_job": 2, "enabled": True}
    )
    recorded = {**settings.subset(FeaturevisSettings.SHARD_KEYS), **settings.derived()}
    assert recorded["steps"] == 8 and recorded["image_size"] is None and recorded["param"] == "fft"
    assert recorded["preset"] == "lucid" and recorded["preset_rules"][0]["steps"] == 512
    assert recorded["transforms"] == "standard"
    assert not {"layers", "channels_per_job", "enabled"} & set(recorded) and recorded["channels"] == "0-2"
    # Another preset is another config_hash, even with the same keys set.
    assert settings.replace(preset="fast").derived()["preset_rules"] != recorded["preset_rules"]


def test_presets_choose_a_schedule_per_layer_stride_and_config_keys_override_them():
    from pipeline.featurevis.presets import layer_stride

    # Lite0 at 224 px: stem 112x112, blocks.3.0 14x14, head 7x7.
    assert [layer_stride(224, h) for h in (112, 56, 28, 14, 7)] == [2, 4, 8, 16, 32]
    assert layer_stride(224, 15) == 16 and layer_stride(224, 224) == 1  # rounded up to a power of 2
    lucid = FeaturevisSettings()
    assert {lucid.schedule(s).steps for s in (2, 16, 32)} == {512}
    assert lucid.schedule(32).image_size == 128 and lucid.schedule(2).decay_power == 1.0
    fast = FeaturevisSettings(preset="fast")
    early, middle, late = fast.schedule(8), fast.schedule(16), fast.schedule(32)
    assert (early.steps, early.image_size, early.decay_power) == (64, 64, 1.5)
    assert (middle.steps, middle.image_size) == (96, 64)
    assert (late.steps, late.image_size, late.decay_power) == (80, 96, 1.25)
    assert (fast.schedule(32, 1280).steps, fast.schedule(32, 1280).image_size) == (96, 64)
    assert early.adam_betas == (0.8, 0.99) and early.init_sd == 0.1
    # A key set in the config wins on every layer; the rest stay the preset's.
    custom = FeaturevisSettings.from_config({"preset": "fast", "steps": 32, "adam_betas": [0.5, 0.9]})
    assert custom.schedule(2).steps == custom.schedule(32).steps == 32
    assert custom.schedule(32).decay_power == 1.25 and custom.schedule(2).adam_betas == (0.5, 0.9)
    with pytest.raises(ValueError, match="unknown preset 'slow'"):
        FeaturevisSettings(preset="slow").schedule(2)


def test_target_rank_by_hand():
    import torch

    from pipeline.featurevis.render import target_rank

    means = torch.tensor(
        [
            [1.0, 3.0, 2.0],  # target 1 is the largest -> rank 1
            [1.0, 3.0, 2.0],  # target 0 has two larger -> rank 3
            [2.0, 2.0, 0.0],
        ]
    )  # a tie shares the better rank
    activation, rank = target_rank(means, torch.tensor([1, 0, 0]))
    assert activation.tolist() == [3.0, 1.0, 2.0]
    assert rank.tolist() == [1, 3, 1]


def test_merge_refuses_shards_of_other_model_weights(tmp_path):
    one = write_shard(tmp_path / "0-4.h5", "conv", [0, 1], 0, 4)
    two = write_shard(tmp_path / "4-8.h5", "conv", [4, 5], 4, 8, model_checksum="retrained")
    with pytest.raises(StoreError, match="4-8.h5 comes from other model weights than .*0-4.h5"):
        merge_shards([one, two], tmp_path / "fv.h5")
    assert not (tmp_path / "fv.h5").exists()
