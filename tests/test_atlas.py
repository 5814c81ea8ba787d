"""Activation atlases: sampling in the extraction pass (pipeline/extract/sampling.py), the
layout and cells (pipeline/atlas/), the stores (pipeline/store/atlas.py) and the query.

Hand-checkable models (tests/helpers/models.py): ``atlas_net``'s layer holds two planted
clusters of activation vectors and its head is linear, so a cell's class attribution is
``ATLAS_W @ mean``; ``tiny_conv_net`` is nonlinear, for brute-force gradients.
"""

import dataclasses
import json

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from pipeline.atlas import AtlasSettings
from pipeline.atlas.attribution import _TiledRunner, mean_vector_attribution
from pipeline.atlas.job import run_atlas_layout
from pipeline.atlas.layout import (
    INITS,
    bin_cells,
    cosine_neighbours,
    embed,
    example_thumbnails,
    grid_index,
    layout_level,
    normalise,
    pca_start,
    umap_parameters,
)
from pipeline.cli import main
from pipeline.extract.crops import crop_thumbnail
from pipeline.extract.extractor import Extractor
from pipeline.extract.job import run_extract_shard
from pipeline.extract.reduce_job import run_reduce
from pipeline.extract.sampling import AtlasSampling
from pipeline.extract.settings import ExtractSettings
from pipeline.images.dataset import ImageDataset
from pipeline.images.listing import ImageRecord, read_listing, write_listing
from pipeline.model import layers_document, load_model
from pipeline.model.hooks import run_with_hooks
from pipeline.model.spec import ModelSpec
from pipeline.query import open_results
from pipeline.settings import schema_defaults
from pipeline.store._format import StoreError, atomic_h5
from pipeline.store.activations import ShardSet
from pipeline.store.activations_reader import ActivationsStore
from pipeline.store.atlas import (
    AtlasCells,
    AtlasLayer,
    AtlasSamples,
    AtlasStore,
    merge_atlas,
    write_icons,
    write_layout,
)
from tests.helpers.models import ATLAS_W
from tests.helpers.provenance import record
from tests.helpers.workflow import REPO

TINY = ModelSpec(name="tests.helpers.models:tiny_conv_net", weights="random", device="cpu")
ATLAS = ModelSpec(name="tests.helpers.models:atlas_net", weights="random", device="cpu")


def test_the_settings_defaults_are_the_schemas():
    schema = yaml.safe_load((REPO / "workflow" / "config" / "schema.yaml").read_text())
    assert AtlasSettings().to_dict() == {
        k: list(v) if isinstance(v, tuple) else v for k, v in schema_defaults(schema, "atlas").items()
    }
    assert AtlasSettings().levels == (20, 40, 80) and AtlasSettings().layers == "model"
    with pytest.raises(ValueError, match="unknown setting.*levles"):
        AtlasSettings.from_config({"levles": [3]})
    sampling = AtlasSampling()
    assert sampling.to_dict() == {"layers": [], **AtlasSettings().subset(AtlasSettings.SAMPLING_KEYS)}


def test_the_models_atlas_layer_is_the_third_building_blocks_layer():
    tiny = load_model("tests.helpers.models:tiny_blocks_net", weights="random")
    assert tiny.atlas_layer().name == "features2"  # fewer than three: the last

    assert layers_document(tiny)["atlas_layers"] == ["features2"]
    lite0 = load_model("efficientnet_lite0", weights="random")
    assert lite0.atlas_layer().name == "blocks.4.2"


# -- sampling in the extraction pass ---------------------------------------------------------


def test_positions_are_deterministic_distinct_sorted_and_capped():
    settings = AtlasSampling(layers=("late",), positions_per_image=5, max_vectors=12, seed=3)
    assert settings.per_image(4) == 3  # 12 // 4
    assert settings.per_image(2) == 5  # positions_per_image
    assert settings.per_image(10**6) == 1  # at least one per image
    sampler = settings.sampler(["late"], 4)
    first = sampler.positions(7, 4, 4)
    assert first.tolist() == sampler.positions(7, 4, 4).tolist()
    assert len(first) == 3 and len(set(first.tolist())) == 3 and first.tolist() == sorted(first.tolist())
    assert first.tolist() == sorted(np.random.default_rng([3, 7]).choice(16, 3, replace=False).tolist())
    assert AtlasSampling(positions_per_image=20).sampler(["x"], 1).positions(0, 2, 2).tolist() == [0, 1, 2, 3]
    others = {tuple(sampler.positions(i, 4, 4)) for i in range(20)}
    assert len(others) > 5  # images differ


def _write_images(folder, count, colours=None, bad=()):
    """``count`` 8x8 PNG images (random, or each pixel from ``colours(rng)``) and a listing;
    the listing indices in ``bad`` are files that do not decode."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(count):
        path = folder / f"img{i:02d}.png"
        if i in bad:
            path.write_text("not an image")
        else:
            pixels = colours(rng) if colours else rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
        records.append(ImageRecord(path.name, str(path), None))
    return write_listing(
        folder / "images.json",
        records,
        {"name": "planted", "kind": "folder", "path": str(folder), "max_images": None},
    )


def _extract(folder, listing, spec, splits, atlas, settings):
    paths = []
    for start, stop in splits:
        path = folder / f"{start}-{stop}.h5"

        run_extract_shard(settings, spec, listing, start, stop, path, atlas)
        paths.append(path)
    return ShardSet(paths)


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """tiny_conv_net on 7 images (listing index 4 does not decode), extracting only "early"
    and sampling "late" (8x8 maps) for the atlas, in two different shard splits."""
    folder = tmp_path_factory.mktemp("sampled")
    listing = _write_images(folder, 7, bad=(4,))
    atlas = AtlasSampling(layers=("late",), positions_per_image=5, max_vectors=21, seed=1)
    settings = ExtractSettings(layers=("early",), batch_size=2)
    splits = {
        "a": _extract(folder / "a", listing, TINY, [(0, 3), (3, 7)], atlas, settings),
        "b": _extract(folder / "b", listing, TINY, [(0, 5), (5, 6), (6, 7)], atlas, settings),
    }
    return {"listing": listing, "atlas": atlas, "splits": splits}


def test_samples_do_not_depend_on_the_shard_split(sampled):
    a, b = (sampled["splits"][k].atlas_samples("late") for k in "ab")
    assert sorted(a) == ["attribution", "row", "vectors", "x", "y"]
    for key in ("row", "y", "x"):  # the same positions of the same images
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in ("vectors", "attribution"):  # batches of other sizes round differently
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-7, err_msg=key)
    # 21 // 7 images in the listing = 3 positions per kept image (6 kept: one is bad).
    assert len(a["row"]) == 18 and a["vectors"].shape == (18, 6) and a["vectors"].dtype == np.float32
    assert a["row"].tolist() == [r for r in range(6) for _ in range(3)]  # global kept rows
    sampler = sampled["atlas"].sampler(["late"], 7)
    listing_index = [0, 1, 2, 3, 5, 6]  # kept row -> index in the listing (4 was skipped)
    for row in range(6):
        expected = sampler.positions(listing_index[row], 8, 8)
        mine = a["row"] == row
        assert (a["y"][mine].astype(int) * 8 + a["x"][mine]).tolist() == expected.tolist()


def test_an_atlas_layer_need_not_be_extracted(sampled):
    shards = sampled["splits"]["a"]
    assert [layer["name"] for layer in shards.layers] == ["early"]
    assert shards.atlas_layers == {"late": {"channels": 6, "height": 8, "width": 8}}
    assert shards.settings["atlas"] == {"layers": ["late"], "per_image": 3, "seed": 1}
    with pytest.raises(KeyError, match="no atlas samples of 'early'; atlas layers: late"):
        shards.atlas_samples("early")


def test_sampled_vectors_and_attribution_are_the_activation_and_gradient_times_activation(sampled):

    model = TINY.load()
    samples = sampled["splits"]["b"].atlas_samples("late")
    records = [r for i, r in enumerate(read_listing(sampled["listing"]).records) if i != 4]
    images = torch.stack([ImageDataset(records, 32)[i]["image"] for i in range(len(records))])
    tap = model.tap(["late"])
    inputs = model.normalize(images).requires_grad_(True)
    with torch.enable_grad():
        acts, logits = tap(inputs, truncate=False)
        late = acts["late"]
        predicted = logits.argmax(dim=1)
        (grad,) = torch.autograd.grad(logits.gather(1, predicted[:, None]).sum(), late)
    attribution = (grad * late).sum(dim=1).detach()  # [N, H, W]
    rows, ys, xs = samples["row"], samples["y"].astype(int), samples["x"].astype(int)
    np.testing.assert_allclose(
        samples["vectors"], late.detach()[rows, :, ys, xs].numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        samples["attribution"], attribution[rows, ys, xs].numpy(), rtol=1e-4, atol=1e-6
    )


def test_without_attribution_the_samples_attribution_is_nan():
    model = TINY.load()
    sampler = AtlasSampling(layers=("late",), positions_per_image=2).sampler(["late"], 10)
    extractor = Extractor(model, ["early"], attribution="none", sampler=sampler)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = extractor(images, None, [4, 5, 6])
    assert set(out.layers) == {"early"} and set(out.atlas) == {"late"}
    sample = out.atlas["late"]
    assert sample["row"].tolist() == [0, 0, 1, 1, 2, 2] and np.isnan(sample["attribution"]).all()
    late = model.activations(images, ["late"])["late"]
    ys, xs = sample["y"].astype(int), sample["x"].astype(int)
    np.testing.assert_allclose(sample["vectors"], late[sample["row"], :, ys, xs].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="listing indices"):
        extractor(images)


def test_shards_sampled_otherwise_do_not_merge(sampled, tmp_path):
    listing = sampled["listing"]
    settings = ExtractSettings(layers=("early",), batch_size=4)
    first = _extract(tmp_path, listing, TINY, [(0, 3)], sampled["atlas"], settings)
    other = AtlasSampling(layers=("late",), positions_per_image=5, max_vectors=21, seed=2)
    second = _extract(tmp_path, listing, TINY, [(3, 7)], other, settings)
    with pytest.raises(StoreError, match="other settings"):
        ShardSet([first.shards[0]["path"], second.shards[0]["path"]])
    plain = _extract(tmp_path / "plain", listing, TINY, [(0, 3)], None, settings)
    assert "atlas" not in plain.settings and plain.atlas_layers == {}  # hashed as before the atlas


# -- the layout and its cells, without UMAP ---------------------------------------------------------


def test_tiny_samples_are_placed_on_a_line():
    for count in range(4):
        xy = embed(np.ones((count, 3), np.float32))
        assert xy.shape == (count, 2) and xy.dtype == np.float32
        assert ((xy >= 0) & (xy <= 1)).all() and (xy[:, 1] == 0.5).all()
        assert len(set(xy[:, 0].tolist())) == count
    with pytest.raises(ValueError, match="not finite"):
        embed(np.array([[np.nan, 1.0]] * 5, np.float32))
    assert umap_parameters(5, 15, 0.1, 0)["n_neighbors"] == 4  # lowered for tiny samples
    assert umap_parameters(500, 15, 0.1, 0)["n_neighbors"] == 15


def test_exact_cosine_neighbours_list_each_vector_first():
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], np.float32)
    indices, distances = cosine_neighbours(vectors, 3)
    assert indices[:, 0].tolist() == [0, 1, 2, 3, 4]  # itself first, even beside its duplicate
    assert indices[0].tolist() == [0, 1, 3] and indices[1].tolist() == [1, 0, 3]
    np.testing.assert_allclose(distances[0], [0.0, 0.0, 1 - np.sqrt(0.5)], atol=1e-6)
    np.testing.assert_allclose(distances[4, 1:], [1.0, 1.0])  # a zero vector is far from all


def test_umap_lays_out_small_and_degenerate_samples_without_failing():
    rng = np.random.default_rng(0)
    for vectors in (
        rng.normal(size=(5, 3)),  # fewer than n_neighbors
        np.zeros((8, 3)),  # all zero (a dead position of a ReLU layer)
        np.repeat(rng.random((2, 3)), 6, axis=0),  # two distinct vectors, six times each
    ):
        for init in INITS:
            xy = embed(vectors.astype(np.float32), n_neighbors=15, seed=1, init=init)
            assert xy.shape == (len(vectors), 2) and np.isfinite(xy).all()
            assert ((xy >= 0) & (xy <= 1)).all()
    vectors = rng.normal(size=(30, 3)).astype(np.float32)
    np.testing.assert_array_equal(embed(vectors, seed=2), embed(vectors, seed=2))  # deterministic
    with pytest.raises(ValueError, match="atlas.init must be one of spectral, pca; got 'tsne'"):
        embed(vectors, init="tsne")


def test_the_pca_start_sees_directions_not_lengths():
    lengths = np.arange(1, 11, dtype=np.float32)[:, None]
    along_x, along_y = lengths * [1.0, 0.0, 0.0], lengths * [0.0, 1.0, 0.0]
    start = pca_start(np.concatenate([along_x, along_y]).astype(np.float32), seed=0)
    # Unit-length rows are two points, (1, 0, 0) and (0, 1, 0): the first component puts
    # each direction's ten vectors at one end of [-10, 10] (up to the 1e-4 jitter), the
    # second component is flat.
    first = start[:, 0]
    np.testing.assert_allclose(np.abs(first), 10.0, atol=1e-3)
    assert len(set(np.sign(first[:10]))) == 1 and np.sign(first[0]) == -np.sign(first[10])
    np.testing.assert_allclose(start[:, 1], 0.0, atol=1e-3)
    assert len(np.unique(start, axis=0)) == 20  # equal vectors start apart
    np.testing.assert_array_equal(start, pca_start(np.concatenate([along_x, along_y]), seed=0))
    for degenerate in (np.zeros((6, 4)), np.arange(5.0)[:, None]):  # all alike; one channel
        start = pca_start(degenerate, seed=0)
        assert start.shape == (len(degenerate), 2) and np.isfinite(start).all()
        assert np.abs(start).max() <= 10.0 + 1e-3 and len(np.unique(start, axis=0)) == len(degenerate)


def test_umap_from_the_pca_start_separates_planted_clusters():
    rng = np.random.default_rng(0)
    directions = np.eye(8)[:2] + 0.3
    vectors = np.concatenate([d + 0.1 * rng.normal(size=(300, 8)) for d in directions]).astype(np.float32)
    xy = embed(vectors, n_neighbors=15, seed=0, init="pca")
    a, b = xy[:300], xy[300:]
    assert any((a[:, d].max() < b[:, d].min()) or (b[:, d].max() < a[:, d].min()) for d in (0, 1))
    np.testing.assert_array_equal(xy, embed(vectors, n_neighbors=15, seed=0, init="pca"))


def test_normalise_and_the_grid():
    xy = normalise(np.array([[0.0, 5.0], [10.0, 5.0], [5.0, 5.0]]), margin=0.1)
    np.testing.assert_allclose(xy, [[0.1, 0.5], [0.9, 0.5], [0.5, 0.5]], rtol=1e-6)
    i, j = grid_index(np.array([[0.0, 0.0], [1.0, 1.0], [0.26, 0.74]]), 4)
    assert i.tolist() == [0, 3, 2] and j.tolist() == [0, 3, 1]  # i from y, the top edge in the last cell


def test_the_cells_match_a_brute_force_computation():
    rng = np.random.default_rng(4)
    xy = rng.random((300, 2)).astype(np.float32)
    vectors = rng.normal(size=(300, 4)).astype(np.float32)
    vectors[7] = 0  # a zero vector has cosine similarity 0 to any mean
    w = ATLAS_W.numpy()
    side, min_count, k, e = 5, 12, 2, 3
    cells = layout_level(xy, vectors, side, lambda m: m @ w.T, min_count=min_count, top_k=k, examples=e)
    expected = {}
    for s, (x, y) in enumerate(xy.tolist()):
        cell = (min(int(y * side), side - 1), min(int(x * side), side - 1))
        expected.setdefault(cell, []).append(s)
    kept = sorted(c for c, members in expected.items() if len(members) >= min_count)
    assert 0 < len(kept) < len(expected)  # some cells are dropped
    assert [tuple(c) for c in cells.cell.tolist()] == kept
    for m, cell in enumerate(kept):
        members = expected[cell]
        mean = vectors[members].astype(np.float64).mean(axis=0)
        assert cells.count[m] == len(members)
        np.testing.assert_allclose(cells.mean[m], mean, rtol=1e-5, atol=1e-6)
        scores = w @ mean
        np.testing.assert_allclose(cells.class_attribution[m], scores, rtol=1e-2, atol=1e-3)  # float16
        best = sorted(range(3), key=lambda c: (-scores[c], c))[:k]
        assert cells.top_classes[m].tolist() == best
        np.testing.assert_allclose(cells.top_scores[m], scores[best], rtol=1e-5)

        def cosine(s, mean=mean):
            norm = np.linalg.norm(vectors[s]) * np.linalg.norm(mean)
            return 0.0 if norm == 0 else float(vectors[s] @ mean / norm)

        nearest = sorted(members, key=lambda s: (-cosine(s), s))[:e]
        assert cells.examples[m].tolist() == nearest
    assert cells.class_attribution.dtype == np.float16 and cells.cell.dtype == np.int16


def test_a_cell_with_few_members_pads_its_examples():
    xy = np.array([[0.1, 0.1]] * 3 + [[0.9, 0.9]] * 2, np.float32)
    vectors = np.eye(5, 3, dtype=np.float32) + 0.1
    cell, count, mean, members = bin_cells(xy, vectors, 2, 1)
    assert cell.tolist() == [[0, 0], [1, 1]] and count.tolist() == [3, 2]
    cells = layout_level(xy, vectors, 2, lambda m: np.zeros((len(m), 2)), min_count=1, top_k=1, examples=3)
    assert cells.examples[1, 2] == -1 and sorted(cells.examples[1, :2].tolist()) == [3, 4]
    empty = layout_level(xy[:0], vectors[:0], 4, lambda m: np.zeros((len(m), 2)), min_count=1)
    assert len(empty) == 0 and empty.mean.shape == (0, 3) and empty.examples.shape == (0, 4)


def test_example_thumbnails_are_planned_once_per_image_and_box():
    rows = np.array([0, 0, 1, 0])
    ys, xs = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])
    boxes = np.arange(2 * 2 * 4).reshape(2, 2, 4)
    cells = AtlasCells(2, 1, *(np.zeros((1, 1)),) * 6, examples=np.array([[3, 1, 0, -1]]))
    index, crops = example_thumbnails(rows, ys, xs, boxes, [cells])
    # Samples 0 and 1: the same image and position, one crop; sample 2 is no example.
    assert index.tolist() == [0, 0, -1, 1]
    assert crops == [(0, (0, 1, 2, 3)), (0, (12, 13, 14, 15))]


# -- a mean vector's attribution to every class ----------------------------------------------


def test_a_mean_vectors_attribution_is_the_linear_heads_weights_times_it():
    model = ATLAS.load()
    means = np.random.default_rng(0).random((7, 4)).astype(np.float32)
    expected = means @ ATLAS_W.numpy().T  # J.A of a linear head on the spatial mean
    np.testing.assert_allclose(
        mean_vector_attribution(model, "features", means, batch=3), expected, rtol=1e-5
    )
    reverse = _TiledRunner(model, model.layer("features"))
    reverse.forward_mode = False
    found = reverse(torch.from_numpy(means)).numpy()
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"must be \[M, 4\]"):
        mean_vector_attribution(model, "features", means[:, :3])


def test_a_mean_vectors_attribution_matches_backward_passes_through_a_nonlinear_network():
    model = TINY.load()  # early [4, 16, 16] -> conv, ReLU, mean, fc
    info = model.layer("early")
    means = np.random.default_rng(1).random((3, info.channels)).astype(np.float32)
    module = model.module("early")
    expected = np.zeros((3, 3))
    for m in range(3):
        tiled = (
            torch.from_numpy(means[m])[None, :, None, None].expand(1, -1, 16, 16).clone().requires_grad_(True)
        )

        with torch.enable_grad():
            logits = run_with_hooks(
                model.net, torch.zeros(1, 3, 32, 32), {"x": (module, lambda *_, t=tiled: t * 1)}
            )
            for k in range(3):
                (grad,) = torch.autograd.grad(logits[0, k], tiled, retain_graph=True)
                expected[m, k] = (grad * tiled).sum().item()
    found = mean_vector_attribution(model, "early", means)
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-6)
    reverse = _TiledRunner(model, info)
    reverse.forward_mode = False
    np.testing.assert_allclose(reverse(torch.from_numpy(means)).numpy(), expected, rtol=1e-4, atol=1e-6)
    for _name, module in model.net.named_modules():  # no hook outlives the computation
        assert not module._forward_hooks


# -- the whole layout job on planted clusters (UMAP) ---------------------------------------------


def _red_or_blue(rng):
    """8x8 pixels, each reddish (cluster A) or bluish (cluster B), in varying shades."""
    red = rng.random((8, 8)) < 0.5
    strong, weak, green = rng.uniform(0.6, 1, (8, 8)), rng.uniform(0, 0.05, (8, 8)), rng.uniform(0, 1, (8, 8))
    pixels = np.stack([np.where(red, strong, weak), green, np.where(red, weak, strong)], axis=-1)
    return (pixels * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def atlas_run(tmp_path_factory):
    """atlas_net on 24 images of red and blue pixels: extraction with atlas samples (16 per
    image), the reduction, and the layout of "features" at levels 4 and 8."""

    run = tmp_path_factory.mktemp("run")
    listing = _write_images(run / "photos", 24, colours=_red_or_blue)
    atlas = AtlasSampling(layers=("features",), positions_per_image=16, seed=0)
    extract = ExtractSettings(batch_size=8, top_k=2, thumbnail_size=8)
    shards = _extract(run / "extract", listing, ATLAS, [(0, 10), (10, 24)], atlas, extract)
    run_reduce(extract, ATLAS, [info["path"] for info in shards.shards], run / "activations.h5")
    settings = AtlasSettings(levels=(8, 4), min_count=2, top_classes=2, examples=3)
    layout = run / "atlas" / "features" / "layout.h5"
    counts = run_atlas_layout(settings, ATLAS, run / "activations.h5", "features", layout)
    return {"run": run, "shards": shards, "layout": layout, "settings": settings, "counts": counts}


def test_the_layout_separates_the_planted_clusters_and_each_cells_top_class_is_its_clusters(atlas_run):
    vectors = atlas_run["shards"].atlas_samples("features")["vectors"]
    cluster = (vectors[:, 2] > vectors[:, 0]).astype(int)  # 0: reddish (class "red"), 1: bluish
    assert 100 < cluster.sum() < len(cluster) - 100  # both clusters well represented
    with AtlasStore(atlas_run["layout"]) as store:
        assert (
            store.kind == "atlas-layer"
            and store.layers() == ["features"]
            and store.levels("features") == [4, 8]
        )
        samples = store.samples("features")
        assert len(samples) == 24 * 16 and ((samples.xy >= 0) & (samples.xy <= 1)).all()
        # Separate regions: the clusters' bounding boxes do not overlap along some axis.
        a, b = samples.xy[cluster == 0], samples.xy[cluster == 1]
        apart = [(a[:, d].max() < b[:, d].min()) or (b[:, d].max() < a[:, d].min()) for d in (0, 1)]
        assert any(apart)
        for side in store.levels("features"):
            cells = store.cells("features", side)
            assert len(cells) >= 2
            i, j = grid_index(samples.xy, side)
            for m, (ci, cj) in enumerate(cells.cell.tolist()):
                members = cluster[(i == ci) & (j == cj)]
                assert len(set(members.tolist())) == 1, f"level {side} cell {(ci, cj)} mixes the clusters"
                assert cells.top_classes[m, 0] == members[0]  # red -> class 0, blue -> class 1
                assert cluster[cells.examples[m][cells.examples[m] >= 0]].tolist() == [members[0]] * min(
                    3, len(members)
                )


def test_the_layouts_cells_match_a_brute_force_computation(atlas_run):
    data = atlas_run["shards"].atlas_samples("features")
    with AtlasStore(atlas_run["layout"]) as store:
        samples = store.samples("features")
        np.testing.assert_array_equal(samples.row, data["row"])
        np.testing.assert_array_equal(samples.y, data["y"])
        np.testing.assert_array_equal(samples.attribution, data["attribution"])
        predicted = atlas_run["shards"].predicted_classes().compute()
        np.testing.assert_array_equal(samples.predicted, predicted[data["row"]])
        for side in (4, 8):
            cells = store.cells("features", side)
            keys = {}
            for s, (x, y) in enumerate(samples.xy.tolist()):
                keys.setdefault((min(int(y * side), side - 1), min(int(x * side), side - 1)), []).append(s)
            kept = sorted(c for c, members in keys.items() if len(members) >= 2)
            assert [tuple(c) for c in cells.cell.tolist()] == kept
            for m, c in enumerate(kept):
                mean = data["vectors"][keys[c]].astype(np.float64).mean(axis=0)
                assert cells.count[m] == len(keys[c])
                np.testing.assert_allclose(cells.mean[m], mean, rtol=1e-5, atol=1e-6)
                scores = ATLAS_W.numpy() @ mean
                assert cells.top_classes[m].tolist() == sorted(range(3), key=lambda k: (-scores[k], k))[:2]
                np.testing.assert_allclose(cells.class_attribution[m], scores, rtol=1e-2, atol=1e-3)


def test_examples_carry_the_thumbnail_of_their_receptive_field(atlas_run):

    with ActivationsStore(atlas_run["run"] / "activations.h5") as activations:
        images = activations.images

    dataset = ImageDataset([ImageRecord(i, p, None) for i, p in zip(images["image_id"], images["path"])], 8)
    with AtlasStore(atlas_run["layout"]) as store:
        samples = store.samples("features")
        examples = {
            int(s) for g in store.levels("features") for s in store.cells("features", g).examples.ravel()
        }
        examples.discard(-1)
        assert (samples.thumbnail[sorted(examples)] >= 0).all()
        others = np.setdiff1d(np.arange(len(samples)), sorted(examples))
        assert (samples.thumbnail[others] == -1).all()
        for s in sorted(examples)[:5]:
            y, x = int(samples.y[s]), int(samples.x[s])
            box = (y, x, y + 1, x + 1)  # a 1x1 convolution sees its own pixel
            expected = crop_thumbnail(dataset[int(samples.row[s])]["image"], box, 8)
            np.testing.assert_array_equal(store.thumbnail("features", samples.thumbnail[s]), expected)
        ids = store.image_ids("features")
        assert ids[int(samples.row[0])] == images["image_id"][int(samples.row[0])]


def test_the_layout_from_the_shard_files_is_the_same_and_deterministic(atlas_run, tmp_path):

    shards = [info["path"] for info in atlas_run["shards"].shards]
    again = run_atlas_layout(atlas_run["settings"], ATLAS, shards, "features", tmp_path / "layout.h5")
    assert again == atlas_run["counts"]
    with AtlasStore(atlas_run["layout"]) as first, AtlasStore(tmp_path / "layout.h5") as second:
        np.testing.assert_array_equal(first.samples("features").xy, second.samples("features").xy)
        assert first.config_hash != second.config_hash  # the thumbnail size differs: 8 vs the default
    with pytest.raises(ValueError, match="sampled no atlas vectors of features"):
        plain = tmp_path / "plain"
        listing = _write_images(plain, 2)
        files = _extract(plain, listing, ATLAS, [(0, 2)], None, ExtractSettings())
        run_atlas_layout(
            atlas_run["settings"], ATLAS, [files.shards[0]["path"]], "features", tmp_path / "x.h5"
        )


# -- the stores ---------------------------------------------------------------------------------


def _layer(name="mixed4d", channels=3, classes=4, levels=(2, 4)):
    rng = np.random.default_rng(0)
    s = 6
    cells = []
    for side in levels:
        m = side - 1
        cells.append(
            AtlasCells(
                side=side,
                min_count=1,
                cell=np.stack([np.arange(m), np.zeros(m, int)], 1),
                count=np.arange(1, m + 1),
                mean=rng.random((m, channels)),
                class_attribution=rng.random((m, classes)),
                top_classes=np.tile([[2, 0]], (m, 1)),
                top_scores=np.tile([[0.5, 0.25]], (m, 1)),
                examples=np.tile([[1, -1]], (m, 1)),
            )
        )
    return AtlasLayer(
        name=name,
        channels=channels,
        height=5,
        width=5,
        input_size=32,
        positions_per_image=3,
        umap={"metric": "cosine", "n_neighbors": 5, "min_dist": 0.1, "seed": 0},
        samples=AtlasSamples(
            row=np.array([0, 0, 2, 2, 3, 3]),
            y=np.arange(s),
            x=np.arange(s)[::-1],
            attribution=np.linspace(-1, 1, s),
            predicted=np.array([1, 1, 0, 0, 3, 3]),
            xy=rng.random((s, 2)),
            thumbnail=np.array([-1, 0, -1, -1, -1, -1]),
        ),
        thumbnails=np.full((1, 4, 4, 3), 7, np.uint8),
        levels=cells,
        image_ids={0: "cat.jpg", 2: "dog.jpg", 3: "eel.jpg"},
    )


CLASSES = ["ant", "bee", "cat", "dog"]
SETTINGS = {"model": "toy", "layout": {"levels": [2, 4]}}


def _layout(folder, layer=None, settings=SETTINGS, checksum="sha256:toy"):
    layer = layer or _layer()
    path = folder / layer.name / "layout.h5"
    return write_layout(path, layer, CLASSES, record(settings, layer=layer.name), checksum)


def _icons(folder, layer, level, start, stop, size=4, settings=None, checksum="sha256:toy"):
    icons = np.full((stop - start, size, size, 3), level + start, np.uint8)
    path = folder / "icons" / f"{layer}-{level}-{start}-{stop}.h5"
    return write_icons(path, layer, level, start, stop, icons, record(settings or {"steps": 8}), checksum)


def test_a_layout_file_round_trips(tmp_path):
    path = _layout(tmp_path)
    with AtlasStore(path) as store:
        assert store.kind == "atlas-layer" and store.layers() == ["mixed4d"] and store.class_names == CLASSES
        assert store.levels("mixed4d") == [2, 4]
        assert store.info("mixed4d") == {
            "channels": 3,
            "height": 5,
            "width": 5,
            "input_size": 32,
            "positions_per_image": 3,
            "umap": {"metric": "cosine", "n_neighbors": 5, "min_dist": 0.1, "seed": 0},
            "samples": 6,
        }
        cells = store.cells("mixed4d", 4)
        original = _layer().levels[1]
        assert cells.side == 4 and len(cells) == 3 and cells.cell.dtype == np.int16
        np.testing.assert_allclose(cells.mean, original.mean.astype(np.float32))
        assert cells.class_attribution.dtype == np.float16 and cells.examples.dtype == np.int64
        samples = store.samples("mixed4d")
        assert samples.row.tolist() == [0, 0, 2, 2, 3, 3] and samples.y.dtype == np.int16
        assert store.thumbnail("mixed4d", 0)[0, 0].tolist() == [7, 7, 7]
        assert store.icons("mixed4d", 2) is None
        with pytest.raises(KeyError, match="layout file: it holds no icons"):
            store.icon("mixed4d", 2, 0)
        with pytest.raises(KeyError, match="has no level 3; levels: 2, 4"):
            store.cells("mixed4d", 3)
        with pytest.raises(KeyError, match="no atlas of layer 'mixed5a'; atlas layers: mixed4d"):
            store.samples("mixed5a")
        described = json.loads(json.dumps(store.describe("mixed4d")))
    assert [level["side"] for level in described["levels"]] == [2, 4]
    cell = described["levels"][1]["cells"][2]
    assert cell == {
        "i": 2,
        "j": 0,
        "count": 3,
        "top_classes": [
            {"class_id": 2, "class_name": "cat", "attribution": 0.5},
            {"class_id": 0, "class_name": "ant", "attribution": 0.25},
        ],
        "examples": [{"sample": 1, "image_id": "cat.jpg", "row": 0, "y": 1, "x": 4, "thumbnail": 0}],
    }


def test_a_layer_without_samples_round_trips(tmp_path):
    empty = layout_level(np.zeros((0, 2)), np.zeros((0, 3)), 4, lambda m: np.zeros((len(m), 4)), top_k=2)
    layer = dataclasses.replace(
        _layer(),
        samples=AtlasSamples(*(np.zeros(0),) * 5, xy=np.zeros((0, 2)), thumbnail=np.zeros(0)),
        thumbnails=np.zeros((0, 4, 4, 3), np.uint8),
        levels=[empty],
        image_ids={},
    )
    with AtlasStore(_layout(tmp_path, layer)) as store:
        assert store.cell_counts("mixed4d") == {4: 0} and len(store.samples("mixed4d")) == 0
        assert store.describe("mixed4d")["levels"] == [{"side": 4, "min_count": 3, "cells": []}]
    out = merge_atlas([tmp_path / "mixed4d" / "layout.h5"], [], tmp_path / "atlas.h5")
    with AtlasStore(out) as store:
        assert store.icons("mixed4d", 4).shape[0] == 0


def test_the_layout_writer_refuses_arrays_of_the_wrong_shape(tmp_path):
    layer = _layer()
    bad = AtlasCells(**{**layer.levels[0].__dict__, "mean": np.zeros((1, 5))})

    with pytest.raises(ValueError, match=r"level 2: mean is \[1, 5\], expected \[1, 3\]"):
        _layout(tmp_path, dataclasses.replace(layer, levels=[bad]))
    with pytest.raises(ValueError, match="no image id for rows"):
        _layout(tmp_path, dataclasses.replace(layer, image_ids={0: "a"}))
    with pytest.raises(ValueError, match="must name it"):
        write_layout(tmp_path / "x.h5", layer, CLASSES, SETTINGS, "")
    assert not list(tmp_path.rglob("*.h5"))


def test_the_merge_adds_every_icon_and_refuses_gaps_overlaps_and_other_settings(tmp_path):
    layouts = [_layout(tmp_path), _layout(tmp_path, _layer("mixed5a", levels=(2,)))]
    # mixed4d: level 2 has 1 cell, level 4 has 3; mixed5a: level 2 has 1.
    icons = [
        _icons(tmp_path, "mixed4d", 2, 0, 1),
        _icons(tmp_path, "mixed4d", 4, 0, 2),
        _icons(tmp_path, "mixed4d", 4, 2, 3),
        _icons(tmp_path, "mixed5a", 2, 0, 1),
    ]
    out = merge_atlas(layouts, icons, tmp_path / "atlas.h5")
    with AtlasStore(out) as store:
        assert store.kind == "atlas" and store.layers() == ["mixed4d", "mixed5a"]
        assert store.settings["layers"] == ["mixed4d", "mixed5a"] and store.settings["icons"]["settings"] == {
            "steps": 8
        }
        icons4 = store.icons("mixed4d", 4)
        assert icons4.shape == (3, 4, 4, 3) and icons4[:, 0, 0, 0].tolist() == [4, 4, 6]
        assert store.icon("mixed5a", 2, 0)[0, 0, 0] == 2
        assert store.describe("mixed4d") == AtlasStore(layouts[0]).describe("mixed4d")

    def refused(layout_files, icon_files, match):
        with pytest.raises(StoreError, match=match):
            merge_atlas(layout_files, icon_files, tmp_path / "refused.h5")
        assert not (tmp_path / "refused.h5").exists()

    refused(layouts, icons[:2] + icons[3:], r"mixed4d level 4: no icon file holds cells 2-3")
    refused(layouts, icons[:1] + icons[2:], r"mixed4d level 4: no icon file holds cells 0-2")
    overlap = _icons(tmp_path, "mixed4d", 4, 1, 3)
    refused(layouts, [*icons, overlap], r"mixed4d level 4: .*1-3.*overlaps")
    other = _icons(tmp_path / "other", "mixed4d", 4, 2, 3, settings={"steps": 9})
    refused(layouts, [*icons[:2], other, icons[3]], "rendered with other settings")
    weights = _icons(tmp_path / "weights", "mixed4d", 4, 2, 3, checksum="sha256:other")
    refused(layouts, [*icons[:2], weights, icons[3]], "other model weights")
    stray = _icons(tmp_path, "mixed4d", 8, 0, 1)
    refused(layouts, [*icons, stray], "level 8, which no layout file has")
    too_many = _icons(tmp_path / "many", "mixed5a", 2, 0, 2)
    refused(layouts, [*icons[:3], too_many], "ends at cell 2, but the level has 1 cells")
    changed = _layout(tmp_path / "changed", _layer("mixed5a", levels=(2,)), {**SETTINGS, "model": "other"})
    refused([layouts[0], changed], icons, "laid out with other settings")
    refused([layouts[0], layouts[0]], icons, "layer 'mixed4d' is in .* and again in")


def test_files_of_another_kind_or_version_are_refused_naming_them(tmp_path):
    layout = _layout(tmp_path)
    with atomic_h5(tmp_path / "future.h5", "atlas", 2) as fh:
        fh.attrs["x"] = 1
    with pytest.raises(StoreError, match=r"future.h5: model-atlas.atlas version 2 is not supported"):
        AtlasStore(tmp_path / "future.h5")
    icons = _icons(tmp_path, "mixed4d", 2, 0, 1)
    with pytest.raises(
        StoreError, match=r"icons.*\.h5: expected a model-atlas.atlas or model-atlas.atlas-layer"
    ):
        AtlasStore(icons)
    with pytest.raises(StoreError, match=r"layout.h5: expected a model-atlas.atlas-icons file"):
        merge_atlas([layout], [layout], tmp_path / "atlas.h5")
    with pytest.raises(ValueError, match="2 icons for the 1 cells"):
        write_icons(tmp_path / "i.h5", "mixed4d", 2, 0, 1, np.zeros((2, 4, 4, 3), np.uint8), {}, "")
    with h5py.File(layout, "r") as fh:
        assert fh.attrs["format"] == "model-atlas.atlas-layer" and fh.attrs["format_version"] == 1


# -- the query ------------------------------------------------------------------------------------


def test_the_atlas_query_and_its_command_line(atlas_run, capsys):

    run = atlas_run["run"]
    assert main(["query", str(run), "atlas", "features"]) == 2
    assert "no activation atlas store" in capsys.readouterr().err
    with AtlasStore(atlas_run["layout"]) as store:
        sizes = store.cell_counts("features")
        assert sizes == {side: len(store.cells("features", side)) for side in (4, 8)}
    icons = [
        _icons(run / "icons", "features", side, 0, m, checksum=ATLAS.load().checksum)
        for side, m in sizes.items()
    ]
    merge_atlas([atlas_run["layout"]], icons, run / "atlas.h5")
    with open_results(run) as results:
        atlas = results.atlas("features")
        assert results.summary()["stores"]["atlas"] == str(run / "atlas.h5")
        with pytest.raises(
            KeyError, match="no activation atlas of layer 'nope'; atlas layers in this run: features"
        ):
            results.atlas("nope")
    assert [level["side"] for level in atlas["levels"]] == [4, 8] and atlas["samples"] == 24 * 16
    assert main(["query", str(run), "atlas", "features", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(atlas))
    cell = printed["levels"][0]["cells"][0]
    assert cell["top_classes"][0]["class_name"] in ("red", "blue") and cell["examples"][0][
        "image_id"
    ].endswith(".png")
    assert main(["query", str(run), "atlas", "features"]) == 0
    text = capsys.readouterr().out
    assert f"level 4x4: {sizes[4]} cells of >= 2 vectors" in text and "activation atlas of features" in text
