"""The search ranking (pipeline/search.py) against the table that its JavaScript twin
(site/static/search.js, tests/js/search.test.js) is tested against too, and the index of a run."""

import json
from pathlib import Path

import pytest

from pipeline import search
from pipeline.labels.hierarchy import ClassHierarchy, imagenet_hierarchy_for

TABLE = json.loads((Path(__file__).resolve().parent / "data" / "search_ranking.json").read_text("utf-8"))
ENTRIES = [search.Entry.from_json(e) for e in TABLE["entries"]]


def named(found: list[dict]) -> list[list]:
    return [
        [ENTRIES[f["entry"]].name, f["match"], ENTRIES[f["via"]].name if f["via"] is not None else None]
        for f in found
    ]


@pytest.mark.parametrize(
    "case", TABLE["cases"], ids=[repr(c["query"]) + str(c.get("k", "")) for c in TABLE["cases"]]
)
def test_the_shared_table(case):
    assert (
        named(search.search(ENTRIES, case["query"], case.get("k", search.DEFAULT_RESULTS)))
        == case["expected"]
    )


def test_the_table_covers_the_rule():
    matches = {m for case in TABLE["cases"] for _, m, _ in case["expected"]}
    assert matches == set(search.MATCHES)
    assert {e["kind"] for e in TABLE["entries"]} == set(search.KINDS)


def test_entries_round_trip_through_the_index_json():
    index = search.index_json(ENTRIES)
    assert search.from_index_json(json.loads(json.dumps(index))) == ENTRIES
    assert search.Entry("channel", "conv:1").to_json() == {"kind": "channel", "name": "conv:1"}
    with pytest.raises(ValueError, match="unknown keys"):
        search.Entry.from_json({"kind": "layer", "name": "x", "colour": 1})
    with pytest.raises(ValueError, match="expected 'model-atlas.search-index'"):
        search.from_index_json({"format": "other", "entries": []})


def test_natural_order_and_canonical_channel_queries():
    assert sorted(["c:10", "c:2", "c:1"], key=search.natural_key) == ["c:1", "c:2", "c:10"]
    layers = {"conv": "conv", "first": "conv"}
    assert search.canonical_query(" First  03 ", layers) == "conv:3"
    assert search.canonical_query("tabby 3", layers) == "tabby 3"


TINY_HIERARCHY = ClassHierarchy.from_dict(
    {
        "format": "model-atlas.class-hierarchy",
        "format_version": 1,
        "classes": ["lab", "tabby"],
        "synsets": {
            "lab": {"name": "Labrador", "lemmas": ["Labrador", "Labrador retriever"], "parents": ["dog"]},
            "tabby": {"name": "tabby", "parents": ["cat"]},
            "dog": {"name": "dog", "lemmas": ["dog", "domestic dog"], "parents": ["animal"]},
            "cat": {"name": "cat", "parents": ["animal"]},
            "animal": {"name": "animal", "parents": []},
        },
    }
)


def test_a_run_index_names_synsets_and_puts_each_class_under_its_ancestors():
    run = search.Run(
        layers=[("conv", 2)],
        aliases={"first": "conv"},
        class_names=["Labrador", "tabby"],
        seen_classes=frozenset({1}),
        images=["img0"],
        hierarchy=TINY_HIERARCHY,
    )
    entries = search.run_entries(run)
    assert [(e.kind, e.name) for e in entries] == [
        ("layer", "conv"),
        ("channel", "conv:0"),
        ("channel", "conv:1"),
        ("synset", "animal"),
        ("synset", "cat"),
        ("synset", "dog"),
        ("class", "Labrador"),
        ("class", "tabby"),
        ("image", "img0"),
    ]
    lab = entries[6]
    assert lab.synonyms == ("Labrador", "Labrador retriever") and lab.under == (3, 5) and not lab.seen
    assert entries[0].synonyms == ("first",) and entries[5].detail == "1 classes"
    found = search.search(entries, "domestic dog")
    assert [(entries[f["entry"]].name, f["match"], f["via"]) for f in found] == [("Labrador", "hyponym", 5)]
    assert [entries[f["entry"]].name for f in search.search(entries, "animal")] == ["tabby", "Labrador"]


def test_labelled_channels_lie_under_their_label_and_rank_by_confidence():
    """conv:0 is labelled Labrador (a class), conv:1 dog (0.5), conv:2 dog (0.9), conv:3 has
    no clear label: "dog" finds the three labelled channels, surer first, then the class."""
    from pipeline.labels import Label

    labels = [
        Label("lab", "Labrador", ("Labrador",), 0.3, 12, 1, False),
        Label("dog", "dog", ("Labrador",), 0.5, 12, 1, False),
        Label("dog", "dog", ("Labrador",), 0.9, 3, 1, True),
        Label(None, "no clear label", (), 0.1, 0, 0, False),
    ]
    run = search.Run([("conv", 4)], {}, ["Labrador", "tabby"], frozenset({0, 1}), [], TINY_HIERARCHY)
    run.labels = {"conv": labels}
    entries = search.run_entries(run)
    by_name = {e.name: i for i, e in enumerate(entries)}
    conv0 = entries[by_name["conv:0"]]
    assert (conv0.label, conv0.confidence) == ("Labrador", 0.3)
    assert conv0.under == tuple(sorted(by_name[n] for n in ("Labrador", "dog", "animal")))
    assert entries[by_name["conv:3"]].label == "" and entries[by_name["conv:3"]].under == ()
    assert entries[by_name["conv:2"]].detail == "tentative label" and entries[by_name["conv:1"]].detail == ""
    found = [(entries[f["entry"]].name, f["match"]) for f in search.search(entries, "dog")]
    assert found == [
        ("conv:2", "hyponym"),
        ("conv:1", "hyponym"),
        ("conv:0", "hyponym"),
        ("Labrador", "hyponym"),
    ]
    # the class itself matches exactly and comes first; the channel labelled with it follows
    assert [entries[f["entry"]].name for f in search.search(entries, "labrador")][:2] == [
        "Labrador",
        "conv:0",
    ]


def test_the_imagenet_hierarchy_is_used_only_for_its_own_class_names():
    hierarchy = ClassHierarchy.from_file()
    names = [hierarchy.name(w) for w in hierarchy.classes]
    names[134] = "crane bird"  # timm's names for two synsets both called "crane"/"maillot"
    assert imagenet_hierarchy_for(names) is not None
    assert imagenet_hierarchy_for(names[:999]) is None
    assert imagenet_hierarchy_for(["goldfish" if i == 0 else n for i, n in enumerate(names)]) is None
