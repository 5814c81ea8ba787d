"""The comparison site in Chromium from file://: the heatmap's cell opens its layer pair,
whose matched units sort by correlation and by channel from the keyboard; axe-core finds
no WCAG 2 A/AA violation on the heatmap, a pair page or a channel page."""

import pytest

from tests.helpers.browser import AXE, BROWSER_MARKS, axe_violations
from tests.helpers.compare_site import build_tiny_comparison

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_tiny_comparison(tmp_path_factory.mktemp("compare-browser"))


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == []


def _row_channels(page, side):
    return [
        int(v)
        for v in page.eval_on_selector_all("#compare-rows tr", f"rows => rows.map(r => r.dataset.{side})")
    ]


def _row_corr(page):
    return [
        float(v)
        for v in page.eval_on_selector_all("#compare-rows tr", "rows => rows.map(r => r.dataset.corr)")
    ]


def test_a_heatmap_cell_opens_its_pair_and_the_matches_sort(site, page):
    page.goto((site / "index.html").as_uri())
    page.click("td.matched a[href$='late--late.html']")
    page.wait_for_load_state("load")
    assert page.url.endswith("pairs/a/b/late--late.html")
    corr = _row_corr(page)
    assert corr == sorted(corr, reverse=True)
    page.focus(".sorter button[data-sort=b]")
    page.keyboard.press("Enter")
    assert _row_channels(page, "b") == list(range(12))
    assert page.get_attribute(".sorter button[data-sort=b]", "aria-pressed") == "true"
    assert page.get_attribute(".sorter button[data-sort=corr]", "aria-pressed") == "false"
    page.keyboard.press("Shift+Tab")  # the "a channel" button
    page.keyboard.press("Space")
    assert _row_channels(page, "a") == list(range(12))
    page.click(".sorter button[data-sort=corr]")
    assert _row_corr(page) == corr
    # The feature visualizations near the viewport load (data-src -> src) from file://.
    page.wait_for_function("document.querySelector('#compare-rows img.thumb').naturalWidth > 0")


@pytest.mark.skipif(not AXE.exists(), reason="needs axe-core in .cache/ (`make axe`, from npm)")
@pytest.mark.parametrize("path", ["index.html", "pairs/a/b/late--late.html", "channels/a/late/3.html"])
def test_comparison_pages_have_no_axe_violation(site, page, path):
    page.goto((site / path).as_uri())
    page.wait_for_load_state("load")
    assert axe_violations(page) == []
