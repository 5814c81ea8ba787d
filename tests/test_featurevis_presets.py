"""The resolved featurevis schedules, pinned: the values the presets gave before
presets and settings were untangled (issue 24), at every stride a layer can have."""

from __future__ import annotations

import pytest

from pipeline.featurevis.settings import FeaturevisSettings

# (preset, stride, (steps, image_size, batch_size, lr, init_sd, decay_power), adam_betas,
#  (steps, image_size) of the extra images with extra_steps=7, extra_image_size=40)
PINNED = [
    ("lucid", 1, (512, 128, 32, 0.05, 0.01, 1.0), (0.9, 0.999), (7, 40)),
    ("lucid", 2, (512, 128, 32, 0.05, 0.01, 1.0), (0.9, 0.999), (7, 40)),
    ("lucid", 4, (512, 128, 32, 0.05, 0.01, 1.0), (0.9, 0.999), (7, 40)),
    ("lucid", 8, (512, 128, 32, 0.05, 0.01, 1.0), (0.9, 0.999), (7, 40)),
    ("lucid", 16, (512, 128, 32, 0.05, 0.01, 1.0), (0.9, 0.999), (7, 40)),
    ("lucid", 32, (512, 128, 32, 0.05, 0.01, 1.0), (0.9, 0.999), (7, 64)),
    ("lucid", 64, (512, 128, 32, 0.05, 0.01, 1.0), (0.9, 0.999), (7, 128)),
    ("fast", 1, (64, 64, 32, 0.05, 0.1, 1.5), (0.8, 0.99), (7, 40)),
    ("fast", 2, (64, 64, 32, 0.05, 0.1, 1.5), (0.8, 0.99), (7, 40)),
    ("fast", 4, (64, 64, 32, 0.05, 0.1, 1.5), (0.8, 0.99), (7, 40)),
    ("fast", 8, (64, 64, 32, 0.05, 0.1, 1.5), (0.8, 0.99), (7, 40)),
    ("fast", 16, (96, 64, 32, 0.05, 0.1, 1.5), (0.8, 0.99), (7, 40)),
    ("fast", 32, (80, 96, 32, 0.05, 0.1, 1.25), (0.8, 0.99), (7, 64)),
    ("fast", 64, (80, 96, 32, 0.05, 0.1, 1.25), (0.8, 0.99), (7, 128)),
]


@pytest.mark.parametrize(("preset", "stride", "numbers", "betas", "extra"), PINNED)
def test_each_preset_resolves_to_the_pinned_schedule_at_every_stride(preset, stride, numbers, betas, extra):
    settings = FeaturevisSettings(preset=preset)
    schedule = settings.schedule(stride)
    keys = ("steps", "image_size", "batch_size", "lr", "init_sd", "decay_power")
    assert tuple(getattr(schedule, k) for k in keys) == numbers
    assert schedule.adam_betas == betas
    assert settings.extra_schedule(stride) == schedule  # no extra_* keys: the same schedule
    shorter = settings.replace(extra_steps=7, extra_image_size=40).extra_schedule(stride)
    assert (shorter.steps, shorter.image_size) == extra


@pytest.mark.parametrize(
    ("stride", "channels", "steps_and_size"),
    [
        (32, None, (80, 96)),  # channel count not known: a narrow layer's rule
        (32, 320, (80, 96)),  # Lite0's blocks.6.0
        (32, 1023, (80, 96)),
        (32, 1024, (96, 64)),  # the wide rule starts here
        (32, 1280, (96, 64)),  # Lite0's head
        (64, 2048, (96, 64)),
        (16, 1280, (96, 64)),  # the wide rule is for the last stage only
    ],
)
def test_fast_renders_wide_late_layers_longer_at_a_smaller_side(stride, channels, steps_and_size):
    schedule = FeaturevisSettings(preset="fast").schedule(stride, channels)
    assert (schedule.steps, schedule.image_size) == steps_and_size
    assert FeaturevisSettings(preset="lucid").schedule(stride, channels).steps == 512


def test_fast_takes_nadam_only_for_narrow_late_layers_and_adam_is_not_spelled_out():
    fast, lucid = FeaturevisSettings(preset="fast"), FeaturevisSettings(preset="lucid")
    assert fast.schedule(32, 320).optimizer == "nadam"
    assert fast.schedule(32, 1280).optimizer == fast.schedule(16, 80).optimizer == "adam"
    assert lucid.schedule(32, 320).optimizer == "adam"
    assert FeaturevisSettings(preset="fast", optimizer="adam").schedule(32, 320).optimizer == "adam"
    # Adam is left out of the recorded rules, so a lucid store keeps the hash it had
    # before the optimiser became a schedule key; the settings record it only when set.
    assert all("optimizer" not in rule for rule in lucid.derived()["preset_rules"])
    assert [r.get("optimizer") for r in fast.derived()["preset_rules"]] == [None, None, None, "nadam"]
    assert "optimizer" not in lucid.subset(lucid.RENDER_KEYS)
    assert FeaturevisSettings(optimizer="nadam").subset(lucid.RENDER_KEYS)["optimizer"] == "nadam"


def test_the_wide_rule_is_recorded_and_config_keys_still_override_it():
    rules = FeaturevisSettings(preset="fast").derived()["preset_rules"]
    assert [r.get("min_channels") for r in rules] == [None, None, 1024, None]
    wide = FeaturevisSettings(preset="fast", steps=50, image_size=32).schedule(32, 1280)
    assert (wide.steps, wide.image_size) == (50, 32)


def test_config_keys_override_every_schedule_key():
    settings = FeaturevisSettings(
        preset="fast",
        steps=33,
        lr=0.2,
        init_sd=0.3,
        decay_power=2.0,
        adam_betas=[0.5, 0.6],
        batch_size=4,
        image_size=20,
        optimizer="radam",
    )
    assert settings.schedule(32).to_dict() == {
        "steps": 33,
        "image_size": 20,
        "batch_size": 4,
        "lr": 0.2,
        "init_sd": 0.3,
        "decay_power": 2.0,
        "adam_betas": [0.5, 0.6],
        "optimizer": "radam",
    }
