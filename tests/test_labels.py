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
from tests.helpers.hierarchies import TOY

# The eight-class toy of tests/helpers/hierarchies.py (its comment draws it).
H = ClassHierarchy.from_dict(TOY)
COUNTS = np.array([4, 6, 5, 3, 2, 2, 1, 1])  # images predicted as each class


def labels_of(rows, counts=COUNTS, **settings):
    evidence = Evidence(np.array(rows, np.float32), counts)
    return label_units(H, evidence, LabelSettings(**settings))


def unit(**attribution):
    """One unit's attribution row from class names (the rest 0)."""
    return [attribution.get(name, 0.0) for name in TOY["classes"]]


def test_synsets_are_ordered_specific_first_then_deeper_then_by_id():
    synsets = SynsetMatrix(H)
    # One class each: golden, lab (7 ancestors counting themselves; ids in order), tabby
    # (5), then the 4-ancestor ones by id; entity (all eight) last.
    assert synsets.ids[:9] == ("golden", "lab", "tabby", "bus", "canoe", "car", "cat", "truck", "violin")
    assert synsets.ids.index("retriever") < synsets.ids.index("domestic animal")  # same classes, deeper
    assert synsets.ids[-1] == "entity"
    assert synsets.members.shape == (8, len(synsets.ids))
    assert synsets.information[synsets.ids.index("entity")] == 0
    assert synsets.information[synsets.ids.index("lab")] == pytest.approx(1.0)


# The default rule, lift: with every class observed, the base of a synset over m of the 8
# classes is m / 8 and lift = (coverage - m/8) / (1 - m/8).


def test_a_unit_on_labrador_and_golden_is_a_retriever():
    # retriever, dog, domestic animal (2 classes) and carnivore (3) all cover everything:
    # lift 1; the tie goes to the fewest classes, then the deepest: retriever.
    # lab alone: (0.5 - 1/8) / (7/8) = 0.43.
    [label] = labels_of([unit(lab=2.0, golden=2.0)])
    assert (label.synset, label.confidence) == ("retriever", 1.0)
    assert label.classes == ("Labrador retriever", "golden retriever")
    assert (label.images, label.class_count, label.tentative) == (10, 2, False)
    assert label.text == "retriever: Labrador retriever, golden retriever"


def test_a_unit_on_dogs_and_cats_is_a_carnivore():
    # carnivore and animal (the same 3 classes) cover everything: lift 1, carnivore deeper.
    # retriever: (0.8 - 2/8) / (6/8) = 0.73.
    [label] = labels_of([unit(lab=2.0, golden=2.0, tabby=1.0)])
    assert (label.synset, label.confidence, label.images) == ("carnivore", 1.0, 15)
    assert label.classes == ("Labrador retriever", "golden retriever", "tabby")


def test_a_unit_on_one_class_is_that_class():
    # lab and every synset above it up to carnivore have lift 1: lab has the fewest classes.
    [label] = labels_of([unit(lab=3.0)])
    assert (label.synset, label.confidence, label.text) == ("lab", 1.0, "Labrador retriever")
    assert (label.class_count, label.images, label.tentative) == (1, 4, True)  # 4 < 10 images


def test_a_diffuse_unit_gets_no_label():
    # Uniform attribution covers each synset exactly by its base: lift 0 everywhere.
    [label] = labels_of([[1.0] * 8])
    assert (label.synset, label.name, label.text, label.classes) == (None, NO_LABEL, NO_LABEL, ())
    # Nearly uniform: violin (2 of 9) has the best lift, (2/9 - 1/8) / (7/8) = 0.11 < 0.2.
    [label] = labels_of([[1.0] * 7 + [2.0]])
    assert label.synset is None and label.confidence == pytest.approx((2 / 9 - 1 / 8) / (7 / 8))
    [silent] = labels_of([[-1.0, -2.0, 0.0, -1.0, -1.0, 0.0, 0.0, 0.0]])  # nothing positive
    assert silent.synset is None


def test_ties_go_to_the_fewer_classes_then_the_deeper_synset_then_the_lower_id():
    # lab and car: lift (0.5 - 1/8) / (7/8) each, nothing allowed covers both (artifact and
    # entity are too broad): lab has 7 ancestors, car 4.
    assert labels_of([unit(lab=1.0, car=1.0)])[0].synset == "lab"
    # car and canoe: 4 ancestors each: the lower id, canoe.
    assert labels_of([unit(car=1.0, canoe=1.0)])[0].synset == "canoe"


def test_synsets_over_more_than_max_share_of_the_classes_are_never_labels():
    # The five artifacts: artifact covers all the positive attribution (lift 1) but holds
    # 5 of 8 classes; vehicle gets (0.6 - 3/8) / (5/8) = 0.36.
    artifacts = unit(car=1.0, truck=1.0, bus=1.0, canoe=1.0, violin=1.0)
    assert labels_of([artifacts])[0].synset == "vehicle"
    assert labels_of([artifacts], max_share=1.0)[0].synset == "artifact"


def test_classes_without_images_are_ignored():
    # golden has no image (NaN): 7 classes observed, so lab's base is 1/7 and so is
    # retriever's (golden does not count): both (0.75 - 1/7) / (6/7) = 0.708; lab is more
    # specific. Counted as an observed 0, golden would give lab (0.75 - 1/8) / (7/8) = 0.714.
    counts = np.array([4, 0, 5, 3, 2, 2, 1, 1])
    [label] = labels_of([unit(lab=3.0, golden=np.nan, car=1.0)], counts=counts)
    assert label.synset == "lab"
    assert label.confidence == pytest.approx((0.75 - 1 / 7) / (6 / 7))


def test_the_evidence_counts_only_classes_that_take_part():
    # retriever covers everything (lift 1; lab alone 0.98) but golden's 0.05 is less than
    # a tenth of lab's 3: it takes no part, so the label rests on lab's 4 images: tentative.
    [label] = labels_of([unit(lab=3.0, golden=0.05)])
    assert (label.synset, label.classes, label.class_count, label.images) == (
        "retriever",
        ("Labrador retriever",),
        1,
        4,
    )
    assert label.tentative and label.text == "retriever: Labrador retriever"
    [label] = labels_of([unit(lab=2.0, golden=2.0)], min_images=11)
    assert (label.images, label.tentative) == (10, True)


def test_logit_units_are_named_by_their_class_or_an_ancestor():
    """The logit check on the toy: unit k's attribution is one-hot on class k."""
    for rule in ("lift", "coverage*participation", "coverage*ic", "coverage*participation*ic"):
        labels = labels_of(np.eye(8) * 2.0, rule=rule)
        for k, label in enumerate(labels):
            assert label.synset in H.ancestors(H.classes[k]), (rule, k, label)
    assert [label.synset for label in labels_of(np.eye(8))] == list(H.classes)  # lift: the class


def test_the_candidate_factors_on_one_unit():
    # A unit on lab and golden (2 each) and tabby (1): P = 5.
    evidence = Evidence(np.array([unit(lab=2.0, golden=2.0, tabby=1.0)], np.float32), COUNTS)
    synsets = SynsetMatrix(H)
    at = {wnid: column for column, wnid in enumerate(synsets.ids)}
    cover = score(evidence, synsets, "coverage")[0]
    assert cover[at["retriever"]] == pytest.approx(0.8) and cover[at["vehicle"]] == 0
    taking_part = score(evidence, synsets, "participation")[0]
    assert taking_part[at["vehicle"]] == 0 and taking_part[at["animal"]] == 1.0
    ic = score(evidence, synsets, "ic")[0]
    assert ic[at["retriever"]] == pytest.approx(np.log(4) / np.log(8))  # -log(2/8) / log 8
    assert score(evidence, synsets, "coverage*ic")[0][at["lab"]] == pytest.approx(0.4)


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
    evidence = Evidence(np.array([unit(lab=1.0), unit(tabby=1.0)], np.float32), COUNTS, activations, classes)
    scores = score(evidence, synsets, "auroc")
    assert scores[0, column("lab")] == 1.0 and scores[1, column("tabby")] == 0.0


def test_unknown_factors_and_missing_inputs_are_named():
    evidence = Evidence(np.ones((1, 8), np.float32), COUNTS)
    with pytest.raises(ValueError, match="unknown factor 'size'"):
        score(evidence, SynsetMatrix(H), "coverage*size")
    with pytest.raises(ValueError, match="auroc factor needs per-image activations"):
        score(evidence, SynsetMatrix(H), "auroc")
    with pytest.raises(ValueError, match="attribution has 4 classes, the hierarchy 8"):
        label_units(H, Evidence(np.ones((1, 4), np.float32), COUNTS[:4]))


def test_without_a_hierarchy_the_label_is_the_dominant_class():
    flat = flat_hierarchy(["apple", "pear", "plum"])
    evidence = Evidence(np.array([[5.0, 0.2, 0.0], [1.0, 1.0, 1.0]], np.float32), np.array([3, 3, 3]))
    dominant, spread = label_units(flat, evidence)
    assert (dominant.name, dominant.classes) == ("apple", ("apple",))
    assert dominant.confidence == pytest.approx((5.0 / 5.2 - 1 / 3) / (2 / 3))  # its lift
    assert spread.synset is None


def test_scores_are_vectorised_over_channels_and_synsets():
    rng = np.random.default_rng(0)
    attribution = rng.normal(size=(50, 8)).astype(np.float32)
    scores = score(Evidence(attribution, COUNTS), SynsetMatrix(H), "coverage*participation*ic")
    assert scores.shape == (50, len(SynsetMatrix(H).ids))
    assert np.all((scores >= 0) & (scores <= 1))
    one = score(Evidence(attribution[7:8], COUNTS), SynsetMatrix(H), "coverage*participation*ic")
    np.testing.assert_allclose(one[0], scores[7])


def test_wordnet_labels_only_a_model_whose_classes_are_imagenets():
    """Another model with 1,000 classes is labelled from its own class names."""
    from pipeline.labels.layers import FLAT_HIERARCHY, WORDNET_HIERARCHY, hierarchy_name
    from pipeline.model.zoo import imagenet_class_names

    names = imagenet_class_names()
    assert hierarchy_name(names) == WORDNET_HIERARCHY
    assert hierarchy_name([f"part {i}" for i in range(1000)]) == FLAT_HIERARCHY


def test_the_hierarchy_setting_chooses_wordnet_the_class_names_or_a_file(tmp_path):
    import json

    from pipeline.labels import LabelSettings, chosen_hierarchy
    from pipeline.model.zoo import imagenet_class_names

    names = imagenet_class_names()
    assert chosen_hierarchy(names, "auto").name("n02084071") == "dog"
    assert chosen_hierarchy(names, "class-names") is None
    file = tmp_path / "toy.json"
    file.write_text(json.dumps(TOY))
    assert chosen_hierarchy(["x"] * 8, str(file)).classes[0] == "lab"
    with pytest.raises(ValueError, match=r"toy.json: the class hierarchy has 8 classes, the model 3"):
        chosen_hierarchy(["x"] * 3, str(file))
    assert LabelSettings(hierarchy=str(file)).hierarchy_file == str(file)
    assert LabelSettings().hierarchy_file is None
    assert LabelSettings(hierarchy="class-names").hierarchy_file is None


def test_bad_label_settings_are_named_before_anything_runs(tmp_path):
    from pipeline.labels import LabelSettings

    with pytest.raises(ValueError, match=r"labels.rule: 'lift\*size' has an unknown factor 'size'"):
        LabelSettings(rule="lift*size")
    with pytest.raises(ValueError, match=r"labels.hierarchy: .*nowhere.json: class hierarchy file not found"):
        LabelSettings(hierarchy=str(tmp_path / "nowhere.json")).check_hierarchy_file()
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match=r"labels.hierarchy: .*bad.json: format is 'something else'"):
        LabelSettings(hierarchy=str(tmp_path / "bad.json")).check_hierarchy_file()
