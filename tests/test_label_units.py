"""Labels of neuron groups and atlas cells (pipeline/labels/units.py) on planted cases whose
answers are worked out by hand. The class names are not ImageNet's, so each class is its
own synset (``class:<k>``) and a label names the class that dominates, or nothing."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.labels.rule import NO_LABEL, LabelSettings
from pipeline.labels.units import cell_class_images, cell_labels, group_attribution, group_labels

NAMES = ["apple", "boat", "cat", "drum"]
COUNTS = np.array([12, 20, 0, 5])  # images predicted as each class; none as cat
NAN = np.nan
# Two channels pointing at known classes: channel 0 at apple, channel 1 at boat (cat: no
# image was predicted as it, so NaN for both).
CHANNELS = np.array([[4.0, 0.0, NAN, 0.0], [0.0, 3.0, NAN, 0.0]])


def test_group_attribution_is_the_loading_weighted_mean_of_the_channel_rows():
    # Weights 0.9 and 0.1 (sum 1): apple 0.9 * 4 = 3.6, boat 0.1 * 3 = 0.3; a negative
    # loading counts as 0, so [3, -1] is channel 0 alone; no positive loading: zeros.
    directions = np.array([[0.9, 0.1], [3.0, -1.0], [-1.0, 0.0]])
    combined = group_attribution(directions, CHANNELS)
    np.testing.assert_allclose(combined[0], [3.6, 0.3, NAN, 0.0])
    np.testing.assert_allclose(combined[1], [4.0, 0.0, NAN, 0.0])
    np.testing.assert_allclose(combined[2], [0.0, 0.0, NAN, 0.0])


def test_a_group_loading_mostly_on_one_channel_gets_that_channels_class():
    # Group 0: 3.6 of 3.9 positive attribution on apple: coverage 0.923, base 1/3 (three
    # observed classes), lift (0.923 - 0.333) / 0.667 = 0.885; images: apple's 12.
    # Group 1 loads mostly on channel 1: boat, from 20 images. Group 2, evenly on both:
    # apple 2, boat 1.5: apple's lift (0.571 - 0.333) / 0.667 = 0.357.
    directions = np.array([[0.9, 0.1], [0.05, 0.95], [0.5, 0.5]])
    labels = group_labels(directions, CHANNELS, COUNTS, NAMES)
    assert [label.name for label in labels] == ["apple", "boat", "apple"]
    assert labels[0].confidence == pytest.approx((3.6 / 3.9 - 1 / 3) / (2 / 3), abs=1e-6)
    assert (labels[0].images, labels[0].tentative) == (12, False)
    assert (labels[1].synset, labels[1].images) == ("class:1", 20)
    assert labels[2].confidence == pytest.approx((2 / 3.5 - 1 / 3) / (2 / 3), abs=1e-6)
    # Boat takes part in group 2 (1.5 >= 0.1 x 2) but is not under the label's class.
    assert labels[2].classes == ("apple",)


def test_a_group_without_positive_loadings_has_no_clear_label():
    [label] = group_labels(np.array([[-1.0, -2.0]]), CHANNELS, COUNTS, NAMES)
    assert (label.synset, label.name) == (None, NO_LABEL)


def test_group_labels_follow_the_settings_passed():
    directions = np.array([[0.5, 0.5]])
    # Confidence 0.357 (above): apple; with min_confidence 0.5 it falls short.
    assert group_labels(directions, CHANNELS, COUNTS, NAMES)[0].name == "apple"
    strict = LabelSettings(min_confidence=0.5)
    assert group_labels(directions, CHANNELS, COUNTS, NAMES, strict)[0].name == NO_LABEL
    # A rule that needs each unit's per-image activations cannot label a group.
    assert group_labels(directions, CHANNELS, COUNTS, NAMES, LabelSettings(rule="auroc")) is None


def test_group_directions_must_match_the_layers_channels():
    with pytest.raises(ValueError, match="3 channels, the layer's attribution 2"):
        group_attribution(np.ones((1, 3)), CHANNELS)


def test_cell_class_images_counts_distinct_images_per_cell_and_predicted_class():
    # Side 2: x < 0.5 is column 0, y < 0.5 row 0. Kept cells (0, 0) and (1, 1); (0, 1)
    # holds a sample but was not kept. Image 7 (predicted drum) sits twice in cell (0, 0):
    # counted once. Image 9 (no prediction, -1) is left out.
    cells = np.array([[0, 0], [1, 1]])
    xy = np.array([[0.1, 0.1], [0.2, 0.3], [0.3, 0.2], [0.9, 0.9], [0.8, 0.7], [0.9, 0.1], [0.1, 0.2]])
    rows = np.array([7, 7, 8, 8, 5, 6, 9])
    predicted = np.array([3, 3, 0, 0, 1, 1, -1])
    counts = cell_class_images(cells, xy, rows, predicted, side=2, classes=4)
    np.testing.assert_array_equal(counts, [[1, 0, 0, 1], [1, 1, 0, 0]])


def test_atlas_cells_are_labelled_from_their_attribution_with_their_own_images():
    # Cell 0 argues for drum, cell 1 for boat, cell 2 for everything alike (no label).
    attribution = np.array([[0.1, 0.0, 0.0, 2.0], [0.0, 1.5, 0.2, 0.0], [1.0, 1.0, 1.0, 1.0]], np.float16)
    images = np.array([[0, 0, 0, 12], [0, 3, 0, 0], [1, 1, 1, 1]])
    labels = cell_labels(attribution, images, NAMES)
    assert [label.name for label in labels] == ["drum", "boat", NO_LABEL]
    assert (labels[0].images, labels[0].tentative) == (12, False)
    assert (labels[1].images, labels[1].tentative) == (3, True)  # 3 < 10 images
