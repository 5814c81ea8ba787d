"""The activation-atlas page in Chromium: zooming switches levels, the panel shows a cell's
stored classes, the class filter shades cells by the stored attribution, and the keyboard
alone reaches all of it."""

import pytest

from pipeline.site.build import build_site
from tests.helpers.browser import BROWSER_MARKS
from tests.helpers.site import ATLAS_ATTRIBUTION, XSS_CLASS, synthetic_atlas

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(synthetic_atlas(), tmp_path_factory.mktemp("atlas") / "site")


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((site / "atlas/conv.html").as_uri())
    yield page
    assert errors == []
    context.close()


def shown_level(page) -> int:
    return int(page.locator("#atlas-map").get_attribute("data-level"))


def test_zooming_in_shows_the_finer_level(page):
    # 640 px wide: level 2's cells are 320 px, level 4's 160 px; both are wider than the
    # threshold, so the finest fitting level (4) shows from the start.
    assert shown_level(page) == 4
    assert page.locator(".atlas-level[data-side='4'] .atlas-cell").count() == 4
    page.set_viewport_size({"width": 130, "height": 800})  # a narrow map: 4 x 4 cells under 28 px
    page.wait_for_function("document.getElementById('atlas-map').dataset.level === '2'")
    width = page.locator("#atlas-map").evaluate("e => e.clientWidth")
    assert 56 <= width < 112  # level 2's cells fit (>= 28 px), level 4's do not
    assert page.locator(".atlas-level[data-side='2']").is_visible()
    assert not page.locator(".atlas-level[data-side='4']").is_visible()
    page.click("#atlas-zoom-in")  # twice the size: level 4's cells are 28 px or more
    assert shown_level(page) == 4 and page.locator(".atlas-level[data-side='4']").is_visible()
    page.focus("#atlas-map")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")  # a pinned cell of level 4
    panel = page.locator("#atlas-panel")
    assert "of 4 × 4" in panel.inner_text() and "pinned" in panel.inner_text()
    page.click("#atlas-zoom-reset")
    assert shown_level(page) == 2
    # Level 2 has other cells: the pin, the outline and the panel's cell go with level 4.
    assert "Point at a cell" in panel.inner_text() and "4 × 4" not in panel.inner_text()
    assert page.locator(".atlas-cell.cursor").count() == 0


def test_hovering_a_cell_shows_its_stored_classes_examples_and_channels(page):
    page.locator(".atlas-level[data-side='4'] .atlas-cell").nth(2).hover()
    panel = page.locator("#atlas-panel")
    assert "Cell (3, 3) of 4 × 4" in panel.inner_text()
    classes = panel.locator(".atlas-classes li")
    # Stored top classes of that cell: the XSS-named class (2.0) first, then cat (-1.0), as text.
    assert classes.nth(0).inner_text() == f"{XSS_CLASS} +2" and classes.nth(1).inner_text() == "cat -1"
    assert panel.locator(".atlas-examples a").first.get_attribute("href") == "../images/img0.html"
    assert panel.locator(".atlas-channels a").first.get_attribute("href") == "../channels/conv/2.html"
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_the_class_filter_shades_cells_by_the_stored_attribution(page):
    page.select_option("#atlas-class", "1")
    page.wait_for_function(
        "document.querySelector('.atlas-level[data-side=\"4\"] .atlas-cell').dataset.value !== undefined"
    )
    cells = page.locator(".atlas-level[data-side='4'] .atlas-cell")
    values = [float(cells.nth(m).get_attribute("data-value")) for m in range(4)]
    assert values == [row[1] for row in ATLAS_ATTRIBUTION[1]]
    opacity = [float(cells.nth(m).evaluate("e => getComputedStyle(e).opacity")) for m in range(4)]
    # 4.0 is the largest: full; 2.0 half-way above the floor; the two zeros faded.
    assert opacity[3] == pytest.approx(1.0) and opacity[2] == pytest.approx(0.15 + 0.85 * 0.5, abs=1e-3)
    assert opacity[0] < 0.1 and opacity[1] < 0.1
    # Two classes: cat minus the other; the sign picks the outline.
    page.select_option("#atlas-compare", "0")
    page.select_option("#atlas-class", "0")
    page.select_option("#atlas-compare", "1")
    page.wait_for_function("document.querySelector('.atlas-level[data-side=\"4\"] .atlas-cell.for') !== null")
    assert "for" in cells.nth(0).get_attribute("class") and "against" in cells.nth(3).get_attribute("class")
    assert float(cells.nth(2).get_attribute("data-value")) == -3.0


def test_the_keyboard_alone_moves_pins_and_zooms(page):
    page.focus("#atlas-map")
    page.keyboard.press("ArrowRight")  # the first cell
    panel = page.locator("#atlas-panel")
    assert "Cell (0, 0)" in panel.inner_text()
    page.keyboard.press("ArrowRight")
    assert "Cell (0, 1)" in panel.inner_text()
    page.keyboard.press("ArrowDown")
    assert "Cell (2, 3)" in panel.inner_text()  # the nearest cell below
    page.keyboard.press("Enter")
    assert "pinned" in panel.inner_text()
    page.locator(".atlas-level[data-side='4'] .atlas-cell").nth(0).hover()
    assert "Cell (2, 3)" in panel.inner_text()  # pinned: the pointer does not move it
    page.keyboard.press("-")
    assert shown_level(page) == 4  # already the whole map: zooming out changes nothing
    page.keyboard.press("u")  # the map keeps its keys; elsewhere "u" is the page's shortcut
    page.wait_for_timeout(500)  # time for a navigation to commit, were one started
    assert page.url.endswith("atlas/conv.html")
    page.evaluate("document.activeElement.blur()")  # off the map, "u" goes up to the layer
    page.keyboard.press("u")
    page.wait_for_url("**/layers/conv.html")
