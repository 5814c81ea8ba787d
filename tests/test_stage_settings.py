"""The stages' settings: one frozen dataclass per config section, with the schema's defaults."""

import dataclasses
import subprocess
import sys

import pytest
import yaml

from pipeline.blocks import BlocksSettings
from pipeline.extract import ExtractSettings
from pipeline.featurevis import FeaturevisSettings
from pipeline.images import DatasetSettings
from pipeline.labels import LabelSettings
from pipeline.model import ModelSpec
from pipeline.scores import ScoresSettings
from pipeline.settings import schema_defaults
from tests.helpers.workflow import REPO

SCHEMA = yaml.safe_load((REPO / "workflow" / "config" / "schema.yaml").read_text())
SECTIONS = {
    "featurevis": FeaturevisSettings,
    "extract": ExtractSettings,
    "blocks": BlocksSettings,
    "dataset": DatasetSettings,
    "scores": ScoresSettings,
    "labels": LabelSettings,
}


def fields(settings) -> dict:
    """Every field's value as the object holds it (lists frozen to tuples)."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_fields_and_defaults_are_the_schemas(section):
    assert fields(SECTIONS[section]()) == schema_defaults(SCHEMA, section)


def test_the_model_spec_defaults_are_the_schemas():
    defaults = {**schema_defaults(SCHEMA, "model"), "device": SCHEMA["properties"]["device"]["default"]}
    assert fields(ModelSpec()) == defaults
    config = {"model": {"name": "googlenet", "weights": "random"}, "device": "cuda:1", "run": "x"}
    assert ModelSpec.from_workflow_config(config) == ModelSpec("googlenet", "random", "cuda:1")
    assert ModelSpec("googlenet").on("cpu").device == "cpu"


@pytest.mark.parametrize("cls", [*SECTIONS.values(), ModelSpec])
def test_an_unknown_key_is_an_error_naming_it(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: unknown setting.*stepz"):
        cls.from_config({"stepz": 3})


def test_from_config_freezes_lists_and_ignores_the_switch():
    settings = FeaturevisSettings.from_config(
        {"layers": ["a", "b"], "channels": [3, 1], "steps": 8, "enabled": False}
    )
    assert settings.layers == ("a", "b") and settings.channels == (3, 1) and settings.steps == 8
    assert settings.preset == "lucid" and settings.image_size is None  # missing keys take the defaults
    assert settings.subset(("steps", "layers")) == {"steps": 8, "layers": ["a", "b"]}
    hash(settings)  # frozen and hashable
    with pytest.raises(AttributeError):
        settings.steps = 9


def test_featurevis_records_what_its_stores_always_recorded():
    # Every shard's settings_json (and config_hash) holds exactly these keys. Version 3
    # (presets, issue 12) records the preset, its rules spelled out, and the schedule keys
    # as set in the config (None: the preset's), so a store rendered before presets
    # hashes otherwise on purpose: its layers were rendered by the keys alone. Issue 14
    # adds the neuron images and which layers get the extra images.
    from pipeline.featurevis.presets import PRESETS

    # Issue 24: the record's settings are the shard rule's params (SHARD_KEYS, with the
    # channel selection), its derived part the preset's rules and the transformations.
    settings = FeaturevisSettings()
    assert {**settings.subset(FeaturevisSettings.SHARD_KEYS), **settings.derived()} == {
        "channels": "all",
        "preset": "lucid",
        "preset_rules": [rule.to_dict() for rule in PRESETS["lucid"]],
        "steps": None,
        "image_size": None,
        "batch_size": None,
        "seed": 0,
        "diversity": 1,
        "diversity_weight": 100.0,
        "negatives": False,
        "neurons": False,
        "extra_layers": "all",
        "extra_steps": None,
        "extra_image_size": None,
        "lr": None,
        "param": "fft",
        "transforms": "standard",
        "curve_points": 32,
        "relu_override_steps": 16,
        "pre_activation": True,
        "init_sd": None,
        "decay_power": None,
        "adam_betas": None,
    }
    assert FeaturevisSettings().derived()["preset_rules"] == [
        {
            "max_stride": None,
            "steps": 512,
            "image_size": 128,
            "batch_size": 32,
            "lr": 0.05,
            "init_sd": 0.01,
            "decay_power": 1.0,
            "adam_betas": [0.9, 0.999],
        }
    ]


def test_the_render_loop_defaults_are_the_featurevis_defaults():
    from pipeline.featurevis.render import render_options
    from pipeline.optvis.render import RenderOptions

    # The lucid preset is the render loop's defaults, but for pre_activation: the render
    # loop renders the tensor it is asked for (the output, as Building Blocks wants), the
    # stage renders capped layers before their cap.
    lucid = FeaturevisSettings()
    assert render_options(lucid, lucid.schedule(16)) == RenderOptions(pre_activation=True)
    assert render_options(lucid.replace(pre_activation=False), lucid.schedule(2)) == RenderOptions()
    # The fast preset's knobs (issue 12) reach the render loop.
    fast = FeaturevisSettings(preset="fast")
    assert render_options(fast, fast.schedule(32)) == RenderOptions(
        steps=80,
        size=96,
        init_sd=0.1,
        decay_power=1.25,
        adam_betas=(0.8, 0.99),
        pre_activation=True,
        optimizer="nadam",
    )


def test_blocks_records_every_setting_but_the_images():
    settings = BlocksSettings.from_config({"images": ["a.jpg"], "layers": ["x"], "grid": "full"})
    assert settings.per_image() == {k: v for k, v in settings.to_dict().items() if k != "images"}
    assert settings.per_image()["layers"] == ["x"] and settings.per_image()["grid"] == "full"


def test_the_stage_packages_import_without_torch():
    # The Snakefile imports settings and plan functions; torch loads only in the jobs.
    code = (
        "import sys\n"
        "import pipeline.featurevis, pipeline.extract, pipeline.blocks, pipeline.images\n"
        "import pipeline.model\n"
        "from pipeline.featurevis import plan_shards, run_featurevis_shard\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_extra_images_go_to_the_extra_layers_only():
    settings = FeaturevisSettings(diversity=4, negatives=True, neurons=True, extra_layers=("b",))
    assert settings.for_layer("b") is settings
    plain = settings.for_layer("a")
    assert (plain.diversity, plain.negatives, plain.neurons) == (1, False, False)
    assert plain.subset(FeaturevisSettings.SHARD_KEYS) != settings.subset(FeaturevisSettings.SHARD_KEYS)
    assert plain.steps == settings.steps
    assert FeaturevisSettings(diversity=4).for_layer("anything").diversity == 4  # "all"
    with pytest.raises(ValueError, match="extra_layers 'blocks' must be resolved"):
        FeaturevisSettings(extra_layers="blocks").for_layer("b")


def test_extra_images_take_their_own_schedule():
    settings = FeaturevisSettings(preset="fast", extra_steps=48, extra_image_size=48)
    main, extra = settings.schedule(8), settings.extra_schedule(8)
    assert (main.steps, main.image_size) == (64, 64) and (extra.steps, extra.image_size) == (48, 48)
    assert extra.lr == main.lr and extra.decay_power == main.decay_power
    assert settings.extra_schedule(32).image_size == 64  # at least two strides
    assert FeaturevisSettings(preset="fast").extra_schedule(16) == FeaturevisSettings(preset="fast").schedule(
        16
    )
