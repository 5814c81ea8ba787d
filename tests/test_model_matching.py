"""load_model_matching: a job that runs the network over a store's data refuses other weights."""

from __future__ import annotations

import pytest

from pipeline.model import ModelSpec, load_model_matching

TINY = ModelSpec(name="tests.helpers.models:tiny_conv_net", weights="random", device="cpu")


def test_the_recorded_weights_load():
    checksum = TINY.load().checksum
    loaded = load_model_matching(TINY, checksum, "results/run/activations.h5")
    assert loaded.checksum == checksum
    assert loaded.name == TINY.name


def test_other_weights_are_refused_naming_the_file_and_both_checksums():
    actual = TINY.load().checksum
    with pytest.raises(ValueError) as caught:
        load_model_matching(TINY, "sha256:0123abcd", "results/run/atlas/conv1/layout.h5")
    message = str(caught.value)
    assert message.startswith("results/run/atlas/conv1/layout.h5: made with model weights sha256:0123abcd")
    assert actual in message and "tiny_conv_net" in message
