"""The trust scores on the site (issue 26 item 2): the channel page's scorecard and
weak-visualization note, the layer page's score sorts and filter, the index's clearest and
most polysemantic units, and the reader over a scores store written by its own writer.

The hand-made site's "conv" layer has the scores of tests/helpers/site.py's CONV_SCORES:
channel 1 is weak (strength 0.25) and flagged, channel 2 the clearest (clarity over random
0.4), channel 1 the most polysemantic (0.7); "mix.a" has no scores."""

import dataclasses
import html as markup
import json
import re

import pytest

from pipeline.scores.definitions import SCORES, score
from pipeline.site import reader as atlas_reader
from pipeline.site import scorecard
from pipeline.site.build import build_site
from pipeline.site.data import Channel
from tests.helpers.scores import write_scores_store
from tests.helpers.site import CONV_SCORES, synthetic_atlas


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(synthetic_atlas(), tmp_path_factory.mktemp("scores-site") / "site")


@pytest.fixture(scope="module")
def big_site(tmp_path_factory):
    """The same data on a run of 200 dataset images: the path check's flag is shown."""
    data = synthetic_atlas()
    data.dataset = dataclasses.replace(data.dataset, images=200)
    return build_site(data, tmp_path_factory.mktemp("scores-big") / "site")


def _rows(html: str) -> dict[str, tuple[str, str, str]]:
    """The scorecard's rows: score key -> (value, where it falls, sentence)."""
    found = re.findall(
        r'<tr data-score="([a-z_]+)">\s*<th scope="row">[^<]*</th>\s*<td class="num">([^<]*)</td>\s*'
        r'<td class="where">.*?<small>([^<]*)</small></td>\s*<td class="sentence">([^<]*)</td>',
        html,
        re.S,
    )
    return {key: tuple(markup.unescape(text) for text in rest) for key, *rest in found}


# -- the pure parts ----------------------------------------------------------------------------


def test_where_a_value_falls_in_its_layer_by_hand():
    values = [0.0, 1.0, 1.0, 2.0, 3.0]  # sorted, one per channel
    assert scorecard.where_it_falls("strength", 2.0, values, 5) == {
        "below": 75,  # 3 of the 4 other channels are lower
        "same": 0,
        "text": "higher than 75 % of the layer's 5 channels",
        "bar": 75,
    }
    tied = scorecard.where_it_falls("strength", 1.0, values, 6)
    assert tied["text"] == "higher than 25 % of the 5 of its 6 channels with a value, the same as 25 %"
    # A count says how many share the value, and has no bar.
    groups = scorecard.where_it_falls("groups", 1.0, [1.0, 1.0, 1.0, 2.0], 4)
    assert groups["text"] == "as 75 % of the layer's 4 channels" and groups["bar"] is None
    # Float noise is no difference: 5.6e-17 ties with 0 (the demo's deep layers).
    assert (
        scorecard.where_it_falls(
            "clarity_gain",
            5.6e-17,
            scorecard.layer_values(
                [Channel(0, scores={"clarity_gain": 0.0}), Channel(1, scores={"clarity_gain": 5.6e-17})]
            )["clarity_gain"],
            2,
        )["below"]
        == 0
    )


def test_values_and_sentences_as_a_page_says_them():
    assert scorecard.shown_value("fires_images", 0.5) == "50 %"
    assert scorecard.shown_value("path_flag", 1.0) == "yes"
    assert scorecard.shown_value("strength", 0.123456) == "0.1235"
    assert scorecard.shown_value("strength", None) == "\u2013"
    row = {"clarity": 0.75, "polysemanticity": 0.25, "groups": 2.0, "path_flag": 0.0}
    assert (
        scorecard.sentence(score("clarity"), row, {"clarity_random": 0.5})
        == "Its top examples look alike to the model: similarity 0.75 (random crops of the layer: 0.5)."
    )
    assert scorecard.sentence(score("polysemanticity"), row, None).startswith(
        "Split in two, its top examples' halves differ by 0.25 (0: alike, 1: unrelated); they count as 2"
    )
    assert scorecard.sentence(score("path_flag"), row, None) == scorecard.PATH_PASSED
    assert "no natural image takes" in scorecard.sentence(score("path_flag"), {"path_flag": 1.0}, None)


def test_weak_visualization_strength_and_path_flag_by_dataset_size():
    weak, strong = Channel(0, scores={"strength": 0.49}), Channel(1, scores={"strength": 0.5})
    assert scorecard.weak_visualization(weak, 8) == [
        "it excites the unit only 0.49 times as much as its best dataset image"
    ]
    assert scorecard.weak_visualization(strong, 8) == []
    flagged = Channel(2, scores={"strength": 2.0, "path_flag": 1.0})
    assert scorecard.weak_visualization(flagged, 99) == []  # too few images: the flag is not shown
    assert len(scorecard.weak_visualization(flagged, 100)) == 1
    assert scorecard.filter_tokens({"clarity_gain": 0.1, "strength": 0.2, "groups": 2.0}, 8) == [
        "clear",
        "weak",
        "groups",
    ]
    assert scorecard.filter_tokens({"path_flag": 1.0, "clarity_gain": 0.0}, 100) == ["flagged"]


def test_picks_are_the_highest_and_none_when_every_channel_ties():
    units = [Channel(i, scores={"clarity_gain": v}) for i, v in enumerate([0.1, 0.3, None, 0.3, -1.0])]
    assert [(u.index, v) for u, v in scorecard.picks(units, "clarity_gain", 3)] == [
        (1, 0.3),
        (3, 0.3),
        (0, 0.1),
    ]
    tied = [Channel(i, scores={"clarity_gain": 1e-17 * i}) for i in range(4)]
    assert scorecard.picks(tied, "clarity_gain", 3) == []


# -- the pages ---------------------------------------------------------------------------------


def test_every_scored_channel_page_shows_its_scorecard(site):
    rows = _rows((site / "channels/conv/2.html").read_text())
    assert rows["strength"] == (
        "2",
        "higher than 100 % of the 3 of its 4 channels with a value",  # channel 3 has none
        "Its visualization excites it 2 times as much as its best dataset image (at least 1: the "
        "picture is a fair summary; well below 1: trust the examples more).",
    )
    assert rows["clarity_gain"][:2] == (
        "0.4",
        "higher than 100 % of the layer's 4 channels",
    )
    assert rows["clarity"][2].endswith("similarity 0.9 (random crops of the layer: 0.5).")
    assert rows["fires_images"][0] == "75 %" and rows["fires_images"][2] == "It fires on 75 % of the images."
    assert rows["groups"][1] == "as 75 % of the layer's 4 channels"
    for page in ("0", "1", "2", "3"):
        html = (site / f"channels/conv/{page}.html").read_text()
        assert 'class="scorecard"' in html and 'href="../../scores.html"' in html
    # Scores without a value are named; the path flag is not shown on 5 images.
    one = (site / "channels/conv/1.html").read_text()
    assert "No value for this unit: label precision." in one
    assert "unnatural path: shown from 100 dataset images (this run has 5)" in one
    assert "path_flag" not in _rows(one)
    assert 'class="scorecard"' not in (site / "channels/mix.a/0.html").read_text()  # no scores there


def test_a_weak_visualization_says_so_and_the_examples_come_first(site):
    weak, strong = (site / "channels/conv/1.html").read_text(), (site / "channels/conv/2.html").read_text()
    assert "Read the examples, not this picture." in weak and 'class="fv weak"' in weak
    assert "only 0.25 times as much as its best dataset image" in weak
    assert weak.index("<h2>Top dataset examples</h2>") < weak.index("<h2>Feature visualization</h2>")
    assert "Read the examples" not in strong and 'class="fv weak"' not in strong
    assert strong.index("<h2>Feature visualization</h2>") < strong.index("<h2>Top dataset examples</h2>")
    # A channel without a picture gets no note about one (channel 3: strength None anyway).
    assert "Read the examples" not in (site / "channels/conv/3.html").read_text()


def test_the_path_flag_counts_from_100_images(big_site):
    page = (big_site / "channels/conv/1.html").read_text()
    assert _rows(page)["path_flag"][0] == "yes"
    assert "unlike any natural crop (the path check)" in page
    assert _rows((big_site / "channels/conv/0.html").read_text())["path_flag"][2] == scorecard.PATH_PASSED
    layer = (big_site / "layers/conv.html").read_text()
    assert '<option value="flagged">' in layer and 'data-sort="path-flag" aria-pressed="false">' in layer


def test_layer_page_has_a_sort_key_per_score_and_the_filter(site):
    html = (site / "layers/conv.html").read_text()
    tiles = re.findall(r"<li data-channel=[^>]*>", html)
    assert len(tiles) == 4
    for s in SCORES:
        attribute = s.key.replace("_", "-")
        assert f'data-sort="{attribute}"' in html, s.key
        values = [re.search(f' data-{attribute}="([^"]*)"', tile).group(1) for tile in tiles]
        expected = ["" if v is None else format(v, "g") for v in CONV_SCORES[s.key]]
        assert values == expected, s.key
    # No channel has a label precision; the flag is not shown on 5 images.
    assert 'data-sort="label-precision" aria-pressed="false" disabled' in html
    assert 'data-sort="path-flag" aria-pressed="false" disabled' in html
    filters = [re.search(r'data-filters="([^"]*)"', tile).group(1) for tile in tiles]
    assert filters == ["clear", "weak groups", "clear", ""]
    assert '<option value="clear">only: top examples more alike than random crops' in html
    assert "(2)</option>" in html and '<option value="flagged">' not in html
    assert 'data-sort="strength"' not in (site / "layers/mix.a.html").read_text()  # no scores there


def test_index_lists_the_clearest_and_most_polysemantic_channels(site):
    html = (site / "index.html").read_text()
    assert 'href="scores.html">scores</a>' in html

    def picked(title):
        listed = re.search(rf'aria-label="{title} channels of conv[^"]*">(.*?)</ol>', html, re.S).group(1)
        return re.findall(
            r'href="channels/conv/(\d)\.html"[^>]*>.*?class="pick-value">([^<]*)<', listed, re.S
        )

    assert picked("clearest") == [("2", "0.4"), ("0", "0.1"), ("3", "0")]
    assert picked("most polysemantic") == [("1", "0.7"), ("3", "0.3"), ("0", "0.2")]
    explained = (site / "scores.html").read_text()
    for s in SCORES:
        assert f'<dt id="{s.key}">' in explained


# -- the reader --------------------------------------------------------------------------------


def test_the_reader_reads_a_scores_store_and_its_markers_of_nothing(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "layers.json").write_text(
        json.dumps(
            {
                "model": "fake",
                "weights": "random",
                "input_size": 8,
                "aliases": {},
                "layers": [
                    {"name": "early", "module": "early", "channels": 3, "height": 4, "width": 4, "index": 0},
                    {"name": "late", "module": "late", "channels": 2, "height": 2, "width": 2, "index": 1},
                ],
            }
        )
    )
    write_scores_store(
        run,
        {
            "late": {
                "strength": [0.25, 1.5],
                "image_rank": [-1, 1],  # channel 0 not rendered
                "groups": [0, 2],  # channel 0: too few examples
                "path_similarity": [float("nan"), 0.5],
                "path_flag": [True, True],
                "clarity_gain": [0.1, 0.2],
            }
        },
        clarity_random=0.25,
    )
    with atlas_reader.from_results(run) as data:
        early, late = data.layer("early"), data.layer("late")
        assert early.scores_info is None and early.units[0].scores == {}
        assert late.scores_info["clarity_random"] == 0.25
        zero, one = late.units
        assert zero.scores["strength"] == 0.25 and zero.scores["clarity"] is None
        assert zero.scores["image_rank"] is None and zero.scores["groups"] is None
        assert zero.scores["path_flag"] is None  # no path: no verdict
        assert one.scores["image_rank"] == 1 and one.scores["groups"] == 2 and one.scores["path_flag"] == 1.0
        assert set(one.scores) == {s.key for s in SCORES}
        site = build_site(data, tmp_path / "site")
    page = (site / "channels/late/1.html").read_text()
    assert _rows(page)["clarity_gain"][:2] == ("0.2", "higher than 100 % of the layer's 2 channels")
    assert 'class="scorecard"' not in (site / "channels/early/0.html").read_text()
