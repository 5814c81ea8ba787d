"""The run folder's owner (RunFiles) and its typed layer list (model/layers.json)."""

from __future__ import annotations

import json

import pytest

from pipeline.store import LayerRecord, ModelLayers, RunFiles, read_layers_json, write_layers_json


def test_every_file_of_a_run_is_named_in_one_place(tmp_path):
    run = RunFiles(tmp_path / "demo")
    relative = {
        "layers": run.layers_json,
        "listing": run.dataset_listing,
        "featured": run.featured_listing,
        "featurevis": run.featurevis,
        "activations": run.activations,
        "blocks": run.blocks,
        "circuits": run.circuits,
        "atlas": run.atlas,
        "site": run.site,
        "fv shard": run.featurevis_shard("conv1", 0, 8),
        "shard": run.extract_shard(0, 5),
        "partial": run.extract_file("partials", 5, 12),
        "examples": run.extract_file("examples", "{start}", "{stop}"),
        "merged": run.extract_merged,
        "blocks image": run.blocks_image(3),
        "circuits part": run.circuits_part("late"),
        "layout": run.atlas_layout("{layer}"),
        "icons": run.atlas_icons("late", 4, 0, 16),
        "log": run.log("atlas_render", "late", "4", "0-16"),
        "single log": run.log("reduce_merge", "reduce_merge"),
        "benchmark": run.benchmark("extract_shard", "0-5"),
        "single benchmark": run.benchmark("reduce_merge"),
    }
    assert {k: p.relative_to(tmp_path / "demo").as_posix() for k, p in relative.items()} == {
        "layers": "model/layers.json",
        "listing": "dataset/images.json",
        "featured": "blocks/images.json",
        "featurevis": "featurevis.h5",
        "activations": "activations.h5",
        "blocks": "blocks.h5",
        "circuits": "circuits.h5",
        "atlas": "atlas.h5",
        "site": "site",
        "fv shard": "featurevis/shards/conv1/0-8.h5",
        "shard": "extract/shards/0-5.h5",
        "partial": "extract/partials/5-12.h5",
        "examples": "extract/examples/{start}-{stop}.h5",
        "merged": "extract/merged.h5",
        "blocks image": "blocks/images/3.h5",
        "circuits part": "circuits/parts/late.h5",
        "layout": "atlas/{layer}/layout.h5",
        "icons": "atlas/late/icons/4/0-16.h5",
        "log": "logs/atlas_render/late/4/0-16.log",
        "single log": "logs/reduce_merge/reduce_merge.log",
        "benchmark": "benchmarks/extract_shard/0-5.tsv",
        "single benchmark": "benchmarks/reduce_merge.tsv",
    }
    with pytest.raises(ValueError, match="no extract folder 'shard'"):
        run.extract_file("shard", 0, 5)


LAYERS = ModelLayers(
    model="tiny",
    weights="random",
    checksum="random:seed0",
    input_size=8,
    aliases={"early": "conv1"},
    layers=(
        LayerRecord("conv1", 3, module="conv1", height=8, width=8, index=0),
        LayerRecord("relu", 3, module="relu", height=8, width=8, index=1, cap="ReLU6", pre_activation="relu"),
        LayerRecord("conv2", 2, module="conv2", height=4, width=4, index=2),
    ),
    blocks_layers=("conv1", "conv2"),
    atlas_layers=("conv2",),
)


def test_a_layer_list_reads_back_as_written(tmp_path):
    path = write_layers_json(tmp_path / "layers.json", LAYERS)
    document = json.loads(path.read_text())
    assert (document["format"], document["format_version"]) == ("model-atlas.layers", 1)
    assert list(document["layers"][0]) == [
        "name", "module", "channels", "height", "width", "index", "cap", "pre_activation"
    ]  # fmt: skip
    assert read_layers_json(path) == LAYERS


def test_a_layer_list_written_before_the_version_is_read_as_version_0(tmp_path):
    """The document the `layers` job wrote before ``format`` existed (the baseline demo's):
    the same fields; without ``atlas_layers`` the atlas layer is the third Building Blocks
    layer; records without an index keep their order; unknown keys are ignored."""
    old = {
        "model": "tiny",
        "weights": "random",
        "checksum": "random:seed0",
        "input_size": 8,
        "aliases": {},
        "layers": [
            {"name": n, "module": n, "channels": 2, "height": 4, "width": 4, "future_key": 1}
            for n in ("a", "b", "c", "d")
        ],
        "blocks_layers": ["a", "b", "c", "d"],
    }
    (tmp_path / "layers.json").write_text(json.dumps(old))
    layers = read_layers_json(tmp_path / "layers.json")
    assert layers.names == ["a", "b", "c", "d"]
    assert layers.atlas_layers == ("c",)
    assert layers.layers[0] == LayerRecord("a", 2, module="a", height=4, width=4)
    short = {**old, "blocks_layers": ["a", "b"]}
    assert ModelLayers.from_document(short).atlas_layers == ("b",)


def test_selections_resolve_aliases_in_execution_order():
    assert [r.name for r in LAYERS.select("all")] == ["conv1", "relu", "conv2"]
    assert [r.name for r in LAYERS.select("model")] == ["conv1", "conv2"]
    assert [r.name for r in LAYERS.select(["conv2", "early", "conv1"])] == ["conv1", "conv2"]
    assert [r.name for r in LAYERS.select_atlas("model")] == ["conv2"]
    assert [r.name for r in LAYERS.select_atlas(["relu"])] == ["relu"]
    with pytest.raises(
        ValueError,
        match=r"config: layer 'mixed4d' does not exist in model 'tiny'; layers: conv1, relu, conv2",
    ):
        LAYERS.select(["mixed4d"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a layer list"),
        ('{"model": "tiny"}', "not a layer list \\(no 'layers'\\)"),
        (
            '{"format": "model-atlas.image-listing", "layers": []}',
            "a 'model-atlas.image-listing' file, not a layer list",
        ),
        (
            '{"format": "model-atlas.layers", "format_version": 7, "layers": []}',
            "layer list version 7; .* reads versions 0, 1",
        ),
        ('{"layers": [{"name": "a"}]}', "a layer record without a name or channel count"),
    ],
)
def test_bad_layer_lists_are_refused_naming_the_file(tmp_path, text, message):
    path = tmp_path / "layers.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        read_layers_json(path)


def test_a_missing_layer_list_says_which_step_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the workflow's `layers` step first"):
        read_layers_json(tmp_path / "model" / "layers.json")
