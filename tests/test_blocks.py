"""Per-image Building Blocks on a tiny hand-made model (pipeline/blocks/, pipeline/store/blocks.py)."""

import numpy as np
import pytest
import torch

from pipeline.blocks import BlocksSettings, run_blocks_image, run_list_featured
from pipeline.blocks import compute as bb
from pipeline.blocks.job import featured_images
from pipeline.images import ImageRecord, read_listing
from pipeline.model import ModelSpec, load_model
from pipeline.model.hooks import LayerTap
from pipeline.optvis.render import RenderOptions
from pipeline.store._format import StoreError
from pipeline.store.blocks import BlocksStore, RunHeader, json_summary, merge_files, write_image_file
from tests.helpers.provenance import record

TINY = "tests.helpers.models:tiny_blocks_net"
LAYERS = ("features1", "features2")


@pytest.fixture(scope="module")
def model():
    return load_model(TINY, weights="random")


@pytest.fixture
def image():
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(3))


def _acts(model, image, layer):
    tap = LayerTap(model.net, model.modules_for(model.resolve_layers([layer])))
    acts, _ = tap(model.normalize(image[None]))
    return acts[layer][0].detach()


def _settings(**kw):
    base = dict(layers=LAYERS, groups=2, grid=2, grid_steps=4, grid_size=16, grid_batch=4, group_icon_size=16)
    return BlocksSettings(**{**base, **kw})


# -- semantic dictionary and grid --------------------------------------------------------


def test_semantic_dictionary_top_channels_match_a_direct_sort(model, image):
    act = _acts(model, image, "features2")  # [6, 4, 4]
    d = bb.semantic_dictionary(act, top=3)
    assert d["channels"].shape == (4, 4, 3) and d["values"].shape == (4, 4, 3)
    for y in range(4):
        for x in range(4):
            vector = act[:, y, x].numpy()
            order = np.argsort(-vector, kind="stable")[:3]
            assert list(d["channels"][y, x]) == list(order)
            np.testing.assert_allclose(d["values"][y, x], vector[order], rtol=1e-6)
            assert d["magnitude"][y, x] == pytest.approx(np.linalg.norm(vector), rel=1e-5)
    assert bb.semantic_dictionary(act, top=50)["channels"].shape == (4, 4, 6)  # K <= C


def test_grid_vectors_average_pool_positions(model, image):
    act = _acts(model, image, "features1")  # [4, 8, 8]
    full = bb.grid_vectors(act, "full")
    assert full.shape == (8, 8, 4)
    torch.testing.assert_close(full[2, 5], act[:, 2, 5])
    pooled = bb.grid_vectors(act, 2)
    assert pooled.shape == (2, 2, 4)
    torch.testing.assert_close(pooled[1, 0], act[:, 4:, :4].mean(dim=(1, 2)))
    assert bb.grid_shape(4, 4, 7) == (4, 4)
    with pytest.raises(ValueError, match="blocks grid"):
        bb.grid_shape(4, 4, 0)


def test_activation_grid_icon_activates_its_direction_more_than_random_images(model, image):
    act = _acts(model, image, "features2")
    size = 48
    grid = bb.activation_grid(model, "features2", act, RenderOptions(steps=128, size=size), grid=2, batch=4)
    assert grid["icons"].shape == (2, 2, size, size, 3) and grid["icons"].dtype == np.uint8
    vectors = torch.from_numpy(grid["vectors"]).reshape(4, -1)
    icons = torch.from_numpy(grid["icons"]).reshape(4, size, size, 3).permute(0, 3, 1, 2) / 255.0
    randoms = torch.rand(8, 3, size, size, generator=torch.Generator().manual_seed(7))

    def direction_value(images, vector):
        acts = _acts_batch(model, images, "features2")
        return torch.einsum("nchw,c->n", acts, vector) / acts[0, 0].numel()

    for i, vector in enumerate(vectors):
        rendered = direction_value(icons[i : i + 1], vector)[0]
        assert rendered > direction_value(randoms, vector).max()
    np.testing.assert_allclose(grid["magnitude"], vectors.norm(dim=1).reshape(2, 2).numpy(), rtol=1e-6)


def _acts_batch(model, images, layer):
    tap = LayerTap(model.net, model.modules_for(model.resolve_layers([layer])))
    acts, _ = tap(model.normalize(images))
    return acts[layer].detach()


# -- classes and attribution ---------------------------------------------------------------


def test_attributed_classes_runner_up_name_and_id():
    names = ["ant", "bee", "cat", "dog", "eel"]
    logits = torch.tensor([0.1, 3.0, 2.0, -1.0, 0.5])
    assert bb.attributed_classes(logits, 2, "runner-up", names) == ([1, 2], 2)
    assert bb.attributed_classes(logits, 1, "runner-up", names) == ([1, 2], 2)
    assert bb.attributed_classes(logits, 2, "EEL", names) == ([1, 2, 4], 4)
    assert bb.attributed_classes(logits, 2, "3", names) == ([1, 2, 3], 3)
    assert bb.attributed_classes(logits, 1, "runner-up", names, ["ant", 1]) == ([1, 0, 2], 2)
    with pytest.raises(ValueError, match="no class named 'cow'"):
        bb.attributed_classes(logits, 2, "cow", names)
    with pytest.raises(ValueError, match="class id 9 out of range"):
        bb.attributed_classes(logits, 2, 9, names)


def test_spatial_and_channel_attribution_both_sum_to_the_total_linear_attribution(model, image):
    out = bb.compute_blocks(model, image, _settings(top_classes=3), render_icons=False)
    logits = model(image[None])[0].detach()
    classes = list(out["classes"]["ids"])
    assert classes[0] == int(logits.argmax())
    for name in LAYERS:
        attr = out["layers"][name]["attribution"]
        spatial_sum = attr["spatial"].sum(axis=(1, 2))
        channel_sum = attr["channel"].sum(axis=1)
        np.testing.assert_allclose(spatial_sum, channel_sum, rtol=1e-5)
        np.testing.assert_allclose(spatial_sum, attr["total"], rtol=1e-5)
        # The tiny net has no biases and is piecewise linear: gradient x activation of
        # any layer sums to the logit itself (Euler), which we can check by hand.
        np.testing.assert_allclose(spatial_sum, logits[classes].numpy(), rtol=1e-4)
        second = out["classes"]["second_index"]
        np.testing.assert_allclose(
            attr["channel_difference"], attr["channel"][0] - attr["channel"][second], rtol=1e-6
        )


def test_cell_flows_add_up_to_both_layers_attribution_for_every_class(model, image):
    # features2 is a linear, bias-free function of features1: the earlier layer's
    # attribution to each later cell adds up to that cell's attribution (Euler), and,
    # by the chain rule, each earlier cell's flows add up to its own attribution.
    out = bb.compute_blocks(model, image, _settings(top_classes=3), render_icons=False)
    later, earlier = out["layers"]["features2"], out["layers"]["features1"]
    flows = later["from_previous"]
    assert flows["layer"] == "features1" and "from_previous" not in earlier
    assert flows["cells"].shape == (3, 4, 4)  # 3 classes, 2 x 2 cells of each layer
    assert flows["later_grid"].tolist() == [2, 2] and flows["earlier_grid"].tolist() == [2, 2]
    later_cells = later["attribution"]["spatial_grid"].reshape(3, 4)
    earlier_cells = earlier["attribution"]["spatial_grid"].reshape(3, 4)
    np.testing.assert_allclose(flows["cells"].sum(axis=2), later_cells, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(flows["cells"].sum(axis=1), earlier_cells, rtol=1e-4, atol=1e-6)
    # The grid is the sum of the full-resolution map over each cell.
    full = later["attribution"]["spatial"]
    np.testing.assert_allclose(
        later["attribution"]["spatial_grid"][:, 0, 0], full[:, :2, :2].sum(axis=(1, 2)), rtol=1e-5
    )
    # A full grid keeps every position; totals do not change.
    fine = bb.compute_blocks(model, image, _settings(top_classes=3, grid="full"), render_icons=False)
    fine_flows = fine["layers"]["features2"]["from_previous"]["cells"]
    assert fine_flows.shape == (3, 16, 64)
    np.testing.assert_allclose(fine_flows.sum(axis=(1, 2)), flows["cells"].sum(axis=(1, 2)), rtol=1e-4)


def test_group_flows_add_up_to_the_later_groups_attribution(model, image):
    out = bb.compute_blocks(model, image, _settings(groups=4, shared=False), render_icons=False)
    later = out["layers"]["features2"]
    groups = later["from_previous"]["groups"]  # [T, G2, G1]
    assert groups.shape == (5, 4, 4)  # every class of the tiny net
    # Linear bias-free map, and the earlier groups cover every non-zero entry (4 groups
    # for 4 channels): what flows into a group is that group's attribution to the class.
    np.testing.assert_allclose(groups.sum(axis=2), later["groups"]["attribution"].T, rtol=2e-2, atol=1e-4)


def test_groups_are_sorted_by_attribution_to_the_top_class(model, image):
    for shared in (False, True):
        out = bb.compute_blocks(model, image, _settings(groups=3, shared=shared), render_icons=False)
        per_layer = [out["layers"][n]["groups"]["attribution"][:, 0] for n in LAYERS]
        keys = per_layer if not shared else [sum(per_layer)]  # shared groups: one order for all
        for key in keys:
            assert list(key) == sorted(key, reverse=True)


def test_neuron_groups_have_nonnegative_maps_and_split_the_attribution(model, image):
    out = bb.compute_blocks(model, image, _settings(groups=4, shared=False), render_icons=False)
    groups = out["layers"]["features1"]["groups"]
    assert groups["maps"].shape == (4, 8, 8) and (groups["maps"] >= 0).all()
    assert groups["directions"].shape == (4, 4)
    assert groups["relative_error"] < 1e-2  # 4 groups for 4 channels
    # Every (activation > 0) entry is covered, so the groups split the whole attribution.
    total = out["layers"]["features1"]["attribution"]["total"]
    np.testing.assert_allclose(groups["attribution"].sum(axis=0), total, rtol=1e-3)
    for target in ("attributions", "gradients"):
        other = bb.compute_blocks(model, image, _settings(factorize=target, shared=True), render_icons=False)[
            "layers"
        ]["features2"]["groups"]
        assert other["target"] == target and other["shared"] is True
        assert (other["maps"] >= 0).all()


def test_named_classes_are_attributed_after_the_top_ones_and_logits_are_kept(model, image):
    out = bb.compute_blocks(model, image, _settings(top_classes=2, classes=("eel", 0)), render_icons=False)
    logits = model(image[None])[0].detach()
    ids = out["classes"]["ids"].tolist()
    top2 = logits.argsort(descending=True)[:2].tolist()
    assert ids[:2] == top2 and {4, 0} <= set(ids) and len(ids) == len(set(ids))
    np.testing.assert_allclose(out["classes"]["logits"], logits[ids].numpy(), rtol=1e-6)
    assert out["layers"]["features1"]["attribution"]["spatial"].shape[0] == len(ids)
    with pytest.raises(ValueError, match="blocks.classes: no class named 'cow'"):
        bb.compute_blocks(model, image, _settings(classes=("cow",)), render_icons=False)


def test_the_default_layers_are_the_models_own_or_spread_from_a_third_on():
    lite0 = load_model("efficientnet_lite0", weights="random")
    assert [i.name for i in lite0.blocks_layers()] == ["blocks.2.1", "blocks.3.2", "blocks.4.2", "blocks.5.3"]
    tiny = load_model(TINY, weights="random")
    assert [i.name for i in tiny.blocks_layers()] == ["features1", "features2"]  # fewer than 4: all
    assert [i.name for i in bb.blocks_layers(tiny, BlocksSettings())] == ["features1", "features2"]


# -- store -------------------------------------------------------------------------------------


def _write(model, image, path, image_id, settings=None):
    settings = settings or _settings()
    blocks = bb.compute_blocks(model, image, settings)
    layers = [layer.to_dict() for layer in model.resolve_layers(list(LAYERS))]
    header = RunHeader(
        model=model.describe(),
        class_names=model.class_names,
        layers=layers,
        settings=record(settings.to_dict()),
        model_checksum=model.checksum,
    )
    return write_image_file(
        path, header, image_id=image_id, image_path=f"/photos/{image_id}", blocks=blocks
    ), blocks


def test_store_round_trip_merge_and_json(model, image, tmp_path):
    a, blocks_a = _write(model, image, tmp_path / "a.h5", "dir/a.jpg")
    b, _ = _write(model, torch.rand(3, 16, 16), tmp_path / "b.h5", "b.jpg")
    merged = merge_files([a, b], tmp_path / "blocks.h5")
    with BlocksStore(merged) as store:
        assert store.image_ids == ["dir/a.jpg", "b.jpg"]
        assert list(store.layers) == list(LAYERS)
        got = store.blocks("dir/a.jpg", "features2")
        want = blocks_a["layers"]["features2"]
        np.testing.assert_array_equal(got["dictionary"]["channels"], want["dictionary"]["channels"])
        np.testing.assert_array_equal(got["grid"]["icons"], want["grid"]["icons"])
        np.testing.assert_array_equal(got["groups"]["icons"], want["groups"]["icons"])
        assert got["groups"]["target"] == "activations"
        assert got["from_previous"]["layer"] == "features1"
        np.testing.assert_array_equal(store.input_image("dir/a.jpg"), blocks_a["input"])
        assert store.grid_icons("b.jpg", "features1").shape == (2, 2, 16, 16, 3)
        assert "icons" not in store.blocks("b.jpg", "features1", icons=False)["grid"]
        summary = json_summary(store, "dir/a.jpg")
        assert summary["predictions"][0]["class_name"] in model.class_names
        layer = summary["layers"]["features2"]
        assert layer["dictionary"]["channels"] == want["dictionary"]["channels"].tolist()
        assert layer["grid"]["icons"]["shape"] == [2, 2, 16, 16, 3]
        with pytest.raises(KeyError, match="no Building Blocks for image 'c.jpg'"):
            store.blocks("c.jpg", "features1")
        with pytest.raises(KeyError, match="layer 'head'"):
            store.blocks("b.jpg", "head")
    with pytest.raises(StoreError, match="appears twice"):
        merge_files([a, a], tmp_path / "twice.h5")
    c, _ = _write(model, image, tmp_path / "c.h5", "c.jpg", _settings(top_channels=2))
    with pytest.raises(StoreError, match="other settings"):
        merge_files([a, c], tmp_path / "mixed.h5")


def test_merge_refuses_files_from_other_weights(model, image, tmp_path):
    a, blocks = _write(model, image, tmp_path / "a.h5", "a.jpg")
    layers = [info.to_dict() for info in model.resolve_layers(list(LAYERS))]
    other_weights = RunHeader(
        model=model.describe(),
        class_names=model.class_names,
        layers=layers,
        settings=record(_settings().to_dict()),
        model_checksum="sha256:other",
    )
    b = write_image_file(
        tmp_path / "b.h5", other_weights, image_id="b.jpg", image_path="/photos/b.jpg", blocks=blocks
    )
    for order in ([a, b], [b, a]):
        with pytest.raises(StoreError, match="other model weights"):
            merge_files(order, tmp_path / "blocks.h5")
        assert not (tmp_path / "blocks.h5").exists()


def test_bundled_featured_images_are_the_eight_package_photos_not_the_whole_set():
    from pipeline.images.dataset import FEATURED_PHOTOS, open_source

    featured = featured_images("bundled")
    assert [r.image_id for r in featured] == sorted(FEATURED_PHOTOS)
    assert len(open_source("bundled").records) > len(featured)  # the COCO photos are left out
    assert all(r.path.endswith("/" + r.image_id) and r.label is None for r in featured)


def test_featured_images_and_bad_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        featured_images([str(tmp_path / "missing.jpg")])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    settings = _settings(images=(str(empty),), grid_steps=2)
    run_list_featured(settings, tmp_path / "images.json")
    listing = read_listing(tmp_path / "images.json")
    assert listing.records == [ImageRecord("empty.jpg", str(empty.resolve()), None)]
    assert listing.source == {"name": "files"}
    with pytest.raises(ValueError, match="featured image 'empty.jpg'.*zero-byte"):
        run_blocks_image(
            settings, ModelSpec(TINY, "random"), tmp_path / "images.json", 0, tmp_path / "out.h5"
        )
    assert not (tmp_path / "out.h5").exists()


def test_the_job_records_every_setting_but_the_images(model, tmp_path):
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.new("RGB", (20, 16), (200, 40, 10)).save(photo)
    settings = _settings(images=(str(photo),), grid_steps=1)
    run_list_featured(settings, tmp_path / "images.json")
    run_blocks_image(settings, ModelSpec(TINY, "random"), tmp_path / "images.json", 0, tmp_path / "0.h5")
    with BlocksStore(tmp_path / "0.h5") as store:
        assert store.image_ids == ["photo.png"]
        recorded = store.settings
        assert recorded == {
            **{k: v for k, v in settings.to_dict().items() if k != "images"},
            "layers": list(LAYERS),
            "icons": recorded["icons"],
        }
        # Every setting that made each layer's icons (issue 24): the resolved optimiser.
        first = recorded["icons"][LAYERS[0]]
        assert first["steps"] == 1 and first["icon_preset"] == "fast" and first["adam_betas"] == [0.8, 0.99]


def test_icons_take_the_optimiser_of_their_preset_for_the_layer_stride():
    fast = BlocksSettings(grid_steps=64, seed=3)
    assert bb.icon_options(fast, 64, stride=16) == RenderOptions(
        steps=64, size=64, seed=3, init_sd=0.1, decay_power=1.5, adam_betas=(0.8, 0.99)
    )
    assert bb.icon_options(fast, 80, stride=32).decay_power == 1.25
    # The lucid preset is the render loop's own defaults: icons as before the presets.
    lucid = fast.replace(icon_preset="lucid")
    assert bb.icon_options(lucid, 64, stride=16) == RenderOptions(steps=64, size=64, seed=3)
    # Grid icons span at least two of their layer's strides.
    small = BlocksSettings(grid_size=48)
    assert [bb.grid_icon_size(small, s) for s in (8, 16, 32)] == [48, 48, 64]


def test_a_version_1_store_is_refused_with_a_message_to_re_run(tmp_path):
    import h5py

    old = tmp_path / "blocks.h5"
    with h5py.File(old, "w") as fh:
        fh.attrs.update({"format": "model-atlas.blocks", "format_version": 1, "complete": True})
    with pytest.raises(StoreError, match=r"blocks\.h5.*version 1 .*older model-atlas: re-run the workflow"):
        BlocksStore(old)
