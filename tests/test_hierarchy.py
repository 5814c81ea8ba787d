"""The class hierarchy that labels are named from: the shipped WordNet file and the reader."""

from __future__ import annotations

import json

import pytest

from pipeline.labels import IMAGENET1K, ClassHierarchy
from tests.helpers.hierarchies import TOY


def test_ancestors_follow_every_parent_and_classes_under_a_synset_are_in_class_order():
    h = ClassHierarchy.from_dict(TOY)
    dog_line = {"retriever", "dog", "carnivore", "domestic animal", "animal", "entity"}
    assert h.ancestors("lab") == {"lab", *dog_line}
    assert h.classes_under("retriever") == (0, 1)
    assert h.classes_under("carnivore") == (0, 1, 2)
    assert h.classes_under("domestic animal") == (0, 1)
    assert h.classes_under("cat") == (2,)
    assert h.paths_to_root("lab") == [
        ("lab", "retriever", "dog", "carnivore", "animal", "entity"),
        ("lab", "retriever", "dog", "domestic animal", "animal", "entity"),
    ]
    assert h.classes_under("vehicle") == (3, 4, 5) and h.classes_under("entity") == tuple(range(8))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "other"}, "format is 'other'"),
        ({"format_version": 9}, "format_version 9"),
        ({"classes": ["lab", "wolf"]}, "synset 'wolf' is named but not defined"),
    ],
)
def test_bad_files_are_refused_naming_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        ClassHierarchy.from_dict({**TOY, **change})


def test_a_parent_loop_is_refused(tmp_path):
    looped = json.loads(json.dumps(TOY))
    looped["synsets"]["entity"]["parents"] = ["lab"]
    path = tmp_path / "h.json"
    path.write_text(json.dumps(looped))
    with pytest.raises(ValueError, match=rf"{path}: the parents of synset .* loop back"):
        ClassHierarchy.from_file(path)


def test_the_shipped_imagenet_hierarchy_has_1000_classes_each_rooted_at_entity():
    h = ClassHierarchy.from_file(IMAGENET1K)
    assert len(h.classes) == 1000 and len(set(h.classes)) == 1000
    roots = {path[-1] for wnid in h.classes for path in h.paths_to_root(wnid)}
    assert [h.name(root) for root in roots] == ["entity"]
    dog = next(wnid for wnid, s in h.synsets.items() if s.name == "dog")
    assert len(h.classes_under(dog)) == 118  # ImageNet-1k's dog breeds (classes 151-268)
    assert h.classes_under(dog) == tuple(range(151, 269))
    assert {h.name(p) for p in h.synsets[dog].parents} == {"canine", "domestic animal"}


def test_the_shipped_class_order_is_the_models():
    """Class i of the file is class i of the ImageNet models (torchvision's names, which
    disambiguate two: 'crane bird', 'maillot tank suit')."""
    from pipeline.model.zoo import imagenet_class_names

    h = ClassHierarchy.from_file(IMAGENET1K)
    for index, (wnid, name) in enumerate(zip(h.classes, imagenet_class_names())):
        lemmas = [lemma.lower() for lemma in h.synsets[wnid].lemmas]
        assert any(name.lower().startswith(lemma) for lemma in lemmas), (index, name, lemmas)


def test_class_names_match_the_hierarchy_in_order_case_and_spacing_aside():
    h = ClassHierarchy.from_dict(TOY)
    names = ["labrador  Retriever", "golden retriever", "tabby", "car", "truck", "bus", "canoe", "violin"]
    assert h.names_match(names)
    # A name may add words after its synset's name ("crane bird"), not replace it.
    assert h.names_match([*names[:7], "violin bow"])
    assert not h.names_match([*names[:7], "fiddle"])
    assert not h.names_match([names[1], names[0], *names[2:]])  # another order
    assert not h.names_match(names[:7])
