"""The comparison site (pipeline/site/compare_site.py) from tiny stores: a comparison of a
run with a copy whose "late" channels are permuted and whose channel 4 is zeroed, and
hand-made page data for both runs (feature visualizations on run a's "late" layer only,
examples everywhere, a label on one unit)."""

import json
import re

import numpy as np
import pytest

from pipeline.site.compare_site import CompareUrls, build_comparison_site, heat_colour
from pipeline.store.compare import open_comparison
from tests.helpers.compare_site import ORDER, build_tiny_comparison, tiny_member


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_tiny_comparison(tmp_path_factory.mktemp("compare-site"))


def test_the_heatmap_links_every_matched_layer_pair_and_only_those(site):
    html = (site / "index.html").read_text()
    links = re.findall(
        r'<td style="background:(#[0-9a-f]{6});color:(#[0-9a-f]{6})" class="matched"><a href="([^"]+)"', html
    )
    assert sorted(link for _, _, link in links) == [
        "pairs/a/b/early--early.html",
        "pairs/a/b/late--late.html",
    ]
    assert html.count("<td ") == 4  # 2 x 2 layers, every cell a value
    for background, ink, link in links:
        assert (site / link).is_file()
        assert heat_colour(0.99) == (background, ink) or ink in ("#000000", "#ffffff")


def test_heat_colours_keep_text_readable():
    def luminance(hex_colour):
        rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
        linear = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(linear @ [0.2126, 0.7152, 0.0722])

    for value in np.linspace(0, 1, 41):
        background, ink = heat_colour(value)
        light, dark = sorted((luminance(background), luminance(ink)), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, (value, background, ink)
    assert heat_colour(float("nan")) == ("#ffffff", "#111111")


def _rows(html):
    return re.findall(r'<tr data-corr="([^"]*)" data-a="(\d+)" data-b="(\d+)"', html)


def test_a_pair_page_lists_the_matching_by_correlation_with_both_sides(site):
    html = (site / "pairs/a/b/late--late.html").read_text()
    rows = _rows(html)
    corr = [float(r[0]) for r in rows]
    assert corr == sorted(corr, reverse=True) and len(rows) == 12
    # The permutation is recovered: a's channel ORDER[j] is matched with the copy's j.
    assert {(int(a), int(b)) for _, a, b in rows} == {(int(ORDER[j]), j) for j in range(12)}
    # Feature visualizations on a's side only (b's layer has none, and the page says so).
    assert 'alt="feature visualization of a late channel 3"' in html
    assert "feature visualization of b late" not in html
    assert "b late has no feature visualizations in its run" in html
    assert "a late has no feature visualizations" not in html
    # Both sides' top examples (three each, the run site's crops), and the label.
    assert 'alt="top example 3 of b late:0: img02' in html and "top example 4 of" not in html
    assert (
        '<span class="unit-label" title="dog — beagle (confidence 0.5, 20 images, 1 class)">dog</span>'
        in html
    )
    assert (site / CompareUrls.featurevis("a", "late", 3)).is_file()
    assert not (site / CompareUrls.featurevis("b", "late", 3)).exists()


def test_a_pair_page_lists_each_sides_unmatched_units(site):
    html = (site / "pairs/a/b/late--late.html").read_text()

    def unmatched(side):
        block = html.split(f'id="unmatched-{side}"')[1].split("</ul>")[0]
        return [int(c) for c in re.findall(r'<li data-channel="(\d+)"', block)]

    assert unmatched("a") == [4] and unmatched("b") == [7]
    early = (site / "pairs/a/b/early--early.html").read_text()
    assert early.count("None: every unit has a match above the threshold.") == 2


def test_a_channel_page_shows_its_closest_units_in_the_other_run(site):
    html = (site / "channels/a/late/3.html").read_text()
    assert "Closest units in b late" in html
    closest = re.findall(r'<li><a class="cmp-unit" href="../../b/late/(\d+).html"', html)
    assert closest[0] == "0" and len(closest) == 5  # ORDER[0] == 3: the copy's channel 0
    assert "the layer pair&#39;s page" in html or "the layer pair's page" in html
    back = (site / "channels/b/late/0.html").read_text()
    assert 'href="../../a/late/3.html"' in back
    assert "Not rendered in this run" in back
    silent = (site / "channels/b/late/7.html").read_text()
    assert "the unit is unmatched here" in silent


def test_the_search_index_names_both_runs_channels(site):
    text = (site / "search-index.js").read_text()
    index = json.loads(text[text.index("=") + 1 :].rstrip().rstrip(";"))
    names = {e["name"]: e for e in index["entries"]}
    assert names["a/late:2"]["label"] == "dog" and names["b/early:5"]["url"] == "channels/b/early/5.html"


def test_missing_member_data_is_a_clear_error(tmp_path, site):
    with open_comparison(site.parent) as comparison:
        with pytest.raises(ValueError, match="no member data given for run.s. b"):
            build_comparison_site(comparison, {"a": tiny_member("fake", set())}, tmp_path / "out")
