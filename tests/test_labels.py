"""The labelling rule on a hand-worked hierarchy: planted attributions whose winners are
worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.labels import ClassHierarchy
from pipeline.labels.rule import (
    NO_LABEL,
    Evidence,
    LabelSettings,
    SynsetMatrix,
    auroc_table,
    flat_hierarchy,
    label_units,
    score,
)

# Five classes: three animals, two vehicles; every path ends at "entity".
#   entity <- animal <- carnivore <- dog <- retriever <- {lab, golden}
#                                 <- cat <- tabby
#          <- artifact <- vehicle <- {car, truck}
# dog also sits under "domestic animal" (a second parent), as in WordNet.
TOY = {
    "format": "model-atlas.class-hierarchy",
    "format_version": 1,
    "classes": ["lab", "golden", "tabby", "car", "truck"],
    "synsets": {
        "lab": {"name": "Labrador retriever", "parents": ["retriever"]},
        "golden": {"name": "golden retriever", "parents": ["retriever"]},
        "retriever": {"name": "retriever", "parents": ["dog"]},
        "tabby": {"name": "tabby", "parents": ["cat"]},
        "dog": {"name": "dog", "parents": ["carnivore", "domestic animal"]},
        "cat": {"name": "cat", "parents": ["carnivore"]},
        "domestic animal": {"name": "domestic animal", "parents": ["animal"]},
        "carnivore": {"name": "carnivore", "parents": ["animal"]},
        "animal": {"name": "animal", "parents": ["entity"]},
        "car": {"name": "car", "parents": ["vehicle"]},
        "truck": {"name": "truck", "parents": ["vehicle"]},
        "vehicle": {"name": "vehicle", "parents": ["artifact"]},
        "artifact": {"name": "artifact", "parents": ["entity"]},
        "entity": {"name": "entity", "parents": []},
    },
}
H = ClassHierarchy.from_dict(TOY)
COUNTS = np.array([4, 6, 5, 3, 2])  # images predicted as each class


def labels_of(rows, rule="coverage*participation*ic", counts=COUNTS, **settings):
    evidence = Evidence(np.array(rows, np.float32), counts)
    return label_units(H, evidence, LabelSettings(rule=rule, **settings))


def test_synsets_are_ordered_specific_first_then_deeper_then_by_id():
    synsets = SynsetMatrix(H)
    # One class each: golden, lab (7 ancestors with themselves, ids in order), tabby (5),
    # then car, cat, truck (4 each); then two classes (retriever, deeper than domestic
    # animal), ...; entity (all five) last.
    assert synsets.ids[:6] == ("golden", "lab", "tabby", "car", "cat", "truck")
    assert synsets.ids.index("retriever") < synsets.ids.index("domestic animal")
    assert synsets.ids[-1] == "entity"
    assert synsets.members.shape == (5, len(synsets.ids))
    assert synsets.information[synsets.ids.index("entity")] == 0
    assert synsets.information[synsets.ids.index("lab")] == pytest.approx(1.0)


def test_a_unit_on_labrador_and_golden_is_a_retriever():
    # coverage of retriever = dog = domestic animal = 1, participation 1 for all three,
    # ic = -log(2/5)/log 5 = 0.569 for all three: a tie that goes to the more specific
    # synset (same classes: more ancestors), retriever. lab alone: coverage 0.5.
    [label] = labels_of([[2.0, 2.0, 0.0, 0.0, 0.0]])
    assert label.synset == "retriever"
    assert label.confidence == pytest.approx(np.log(5 / 2) / np.log(5))
    assert label.classes == ("Labrador retriever", "golden retriever")
    assert (label.images, label.class_count, label.tentative) == (10, 2, False)
    assert label.text == "retriever: Labrador retriever, golden retriever"


def test_a_unit_on_dogs_and_cats_is_a_carnivore():
    # carnivore = animal (same three classes, carnivore deeper): coverage 1, participation 1,
    # ic -log(3/5)/log 5 = 0.317. retriever: coverage 0.8 x 1 x 0.569 = 0.455, which beats it!
    # With the (a) rule alone carnivore (1 x 1) beats retriever (0.8 x 1).
    rows = [[2.0, 2.0, 1.0, 0.0, 0.0]]
    assert labels_of(rows, rule="coverage*participation")[0].synset == "carnivore"
    # Evenly spread over the three, the (a)(c) rule picks carnivore too: retriever then
    # covers 2/3 x 0.569 = 0.379 > 0.317; so it stays retriever: IC prefers the specific.
    assert labels_of([[1.0, 1.0, 1.0, 0.0, 0.0]], rule="coverage*participation")[0].synset == "carnivore"
    assert labels_of([[1.0, 1.0, 1.0, 0.0, 0.0]])[0].synset == "retriever"


def test_a_unit_on_one_class_is_that_class():
    # lab: coverage 1, participation 1, ic 1. retriever: participation 1/2 (golden has data
    # and takes no part).
    [label] = labels_of([[3.0, 0.0, 0.0, 0.0, 0.0]])
    assert (label.synset, label.confidence, label.text) == ("lab", 1.0, "Labrador retriever")
    assert label.class_count == 1 and label.images == 4 and label.tentative  # 4 < 10 images


def test_a_diffuse_unit_gets_no_label():
    # Equal on lab, tabby, car: entity covers it all but has ic 0; animal: 2/3 x 2/3 (lab,
    # tabby of lab, golden, tabby) x 0.317 = 0.14; lab: 1/3 x 1 x 1 = 0.33 > 0.2 ... so spread
    # over all five: every single class 0.2 x 1 x 1 = 0.2, animal 0.6 x 1 x 0.317 = 0.19.
    [label] = labels_of([[1.0, 1.0, 1.0, 1.0, 1.0]], min_confidence=0.25)
    assert (label.synset, label.name, label.text, label.classes) == (None, NO_LABEL, NO_LABEL, ())
    [silent] = labels_of([[-1.0, -2.0, 0.0, -1.0, -1.0]])  # no positive attribution at all
    assert silent.synset is None


def test_ties_go_to_the_deeper_synset_then_to_the_lower_id():
    # lab and tabby each: coverage 0.5, participation 1, ic 1; lab has more ancestors.
    assert labels_of([[1.0, 0.0, 1.0, 0.0, 0.0]])[0].synset == "lab"
    assert labels_of([[0.0, 0.0, 1.0, 1.0, 0.0]])[0].synset == "tabby"  # 5 ancestors, car 4
    # lab and golden are as deep: the lower id, golden (the "ic" factor alone ties them).
    assert labels_of([[1.0, 1.0, 0.0, 0.0, 0.0]], rule="ic")[0].synset == "golden"


def test_classes_without_images_are_ignored():
    # golden has no image (NaN): retriever's observed classes are lab alone, so its
    # participation is 1 and it ties with lab on (a): the more specific, lab, wins.
    counts = np.array([4, 0, 5, 3, 2])
    rows = [[3.0, np.nan, 0.0, 0.0, 0.0]]
    assert labels_of(rows, rule="coverage*participation", counts=counts)[0].synset == "lab"
    # A NaN never counts as attribution: this unit is the same as one on lab alone.
    assert labels_of([[3.0, np.nan, np.nan, np.nan, np.nan]])[0].synset == "lab"


def test_the_evidence_counts_only_classes_that_take_part():
    # golden gives 0.05 < 0.1 x 3 (less than a tenth of the strongest): it takes no part,
    # so retriever's participation is 1/2 and lab wins on lab's 4 images, tentative (< 10).
    [label] = labels_of([[3.0, 0.05, 0.0, 0.0, 0.0]])
    assert (label.synset, label.class_count, label.images, label.tentative) == ("lab", 1, 4, True)
    [label] = labels_of([[2.0, 2.0, 0.0, 0.0, 0.0]], min_images=11)
    assert (label.images, label.tentative) == (10, True)


def test_logit_units_are_named_by_their_class_or_an_ancestor():
    """The logit check on the toy: unit k's attribution is one-hot on class k."""
    for rule in ("coverage*participation", "coverage*ic", "coverage*participation*ic"):
        labels = labels_of(np.eye(5) * 2.0, rule=rule)
        for k, label in enumerate(labels):
            assert label.synset in H.ancestors(H.classes[k]), (rule, k, label)


def test_auroc_is_the_mann_whitney_u_of_one_ranking():
    # Four images of classes lab, lab, tabby, car; unit 0 ranks them 4, 3, 2, 1 (lab images
    # highest): AUROC(lab) = 1; AUROC(carnivore: lab, lab, tabby vs car) = 1;
    # unit 1 is constant: every pair ties, AUROC 0.5.
    activations = np.array([[4.0, 1.0], [3.0, 1.0], [2.0, 1.0], [1.0, 1.0]])
    classes = np.array([0, 0, 2, 3])
    synsets = SynsetMatrix(H)
    table = auroc_table(activations, classes, synsets.members)
    column = synsets.ids.index
    assert table[0, column("lab")] == 1.0 and table[0, column("carnivore")] == 1.0
    assert table[0, column("car")] == 0.0  # the car image ranks lowest
    assert table[0, column("tabby")] == pytest.approx(1 / 3)  # above car only, of 3 others
    assert np.isnan(table[0, column("entity")])  # every image: no negatives
    assert np.isnan(table[0, column("truck")])  # no image
    assert np.all(table[1, ~np.isnan(table[1])] == 0.5)
    evidence = Evidence(
        np.array([[1.0, 0, 0, 0, 0], [0, 0, 1.0, 0, 0]], np.float32), COUNTS, activations, classes
    )
    scores = score(evidence, synsets, "auroc")
    assert scores[0, column("lab")] == 1.0 and scores[1, column("tabby")] == 0.0


def test_unknown_factors_and_missing_inputs_are_named():
    evidence = Evidence(np.ones((1, 5), np.float32), COUNTS)
    with pytest.raises(ValueError, match="unknown factor 'size'"):
        score(evidence, SynsetMatrix(H), "coverage*size")
    with pytest.raises(ValueError, match="auroc factor needs per-image activations"):
        score(evidence, SynsetMatrix(H), "auroc")
    with pytest.raises(ValueError, match="attribution has 4 classes, the hierarchy 5"):
        label_units(H, Evidence(np.ones((1, 4), np.float32), COUNTS[:4]))


def test_without_a_hierarchy_the_label_is_the_dominant_class():
    flat = flat_hierarchy(["apple", "pear", "plum"])
    evidence = Evidence(np.array([[5.0, 0.2, 0.0], [1.0, 1.0, 1.0]], np.float32), np.array([3, 3, 3]))
    dominant, spread = label_units(flat, evidence, LabelSettings(min_confidence=0.5))
    assert (dominant.name, dominant.classes) == ("apple", ("apple",))
    assert dominant.confidence == pytest.approx(5.0 / 5.2)
    assert spread.synset is None


def test_scores_are_vectorised_over_channels_and_synsets():
    rng = np.random.default_rng(0)
    attribution = rng.normal(size=(50, 5)).astype(np.float32)
    scores = score(Evidence(attribution, COUNTS), SynsetMatrix(H), "coverage*participation*ic")
    assert scores.shape == (50, len(SynsetMatrix(H).ids))
    assert np.all((scores >= 0) & (scores <= 1))
    one = score(Evidence(attribution[7:8], COUNTS), SynsetMatrix(H), "coverage*participation*ic")
    np.testing.assert_allclose(one[0], scores[7])
