"""Accessibility of every kind of page, checked in Chromium by axe-core (WCAG 2 A and AA
rules), with the keyboard shortcuts and breadcrumbs that the pages announce.

axe-core comes from its npm package, installed by `make axe` (part of `make test`) into
.cache/: it is not in the repository."""

import pytest

from pipeline.site.build import build_site
from tests.helpers.browser import AXE, BROWSER_MARKS
from tests.helpers.browser import axe_violations as _violations
from tests.helpers.site import synthetic_atlas

pytestmark = BROWSER_MARKS
# One page of every kind the site has.
PAGES = [
    "index.html",
    "layers.html",
    "layers/conv.html",
    "channels/conv/1.html",
    "images.html",
    "images/img0.html",
    "classes.html",
    "classes/0.html",
    "atlas/conv.html",
    "scores.html",  # what the trust scores mean
    "channels/conv/2.html",  # a scorecard without the weak-picture note (conv/1 has it)
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(synthetic_atlas(), tmp_path_factory.mktemp("a11y") / "site")


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.mark.skipif(not AXE.exists(), reason="needs axe-core in .cache/ (`make axe`, from npm)")
@pytest.mark.parametrize("path", PAGES)
def test_every_kind_of_page_has_no_axe_violation(site, page, path):
    page.goto((site / path).as_uri())
    page.wait_for_load_state("load")
    assert _violations(page) == []


@pytest.mark.skipif(not AXE.exists(), reason="needs axe-core in .cache/ (`make axe`, from npm)")
def test_a_layer_page_sorted_by_a_score_and_filtered_has_no_axe_violation(site, page):
    page.goto((site / "layers/conv.html").as_uri())
    page.get_by_role("button", name="clarity over random").click()
    page.select_option("#channel-filter", "clear")
    assert _violations(page) == []


@pytest.mark.skipif(not AXE.exists(), reason="needs axe-core in .cache/ (`make axe`, from npm)")
def test_an_image_page_with_a_pinned_cell_and_another_class_has_no_axe_violation(site, page):
    page.goto((site / "images/img0.html").as_uri())
    page.locator(".bb-layer[data-layer='0'] .view[data-view=grid] .cell").nth(1).click()
    page.select_option("#explain-class", "1")
    page.select_option("#compare-class", "0")
    assert _violations(page) == []


@pytest.mark.parametrize(
    "path, crumbs",
    [
        ("layers/conv.html", {"layers": "layers.html"}),
        ("channels/conv/1.html", {"layers": "layers.html", "conv": "layers/conv.html"}),
        ("images/img0.html", {"images": "images.html"}),
        ("classes/0.html", {"classes": "classes.html"}),
    ],
)
def test_breadcrumbs_lead_to_the_list_pages(site, page, path, crumbs):
    page.goto((site / path).as_uri())
    for text, target in crumbs.items():
        page.goto((site / path).as_uri())
        page.locator("nav.crumbs a", has_text=text).first.click()
        assert page.url == (site / target).as_uri()


def test_keyboard_shortcuts_move_between_channels_and_layers(site, page):
    page.goto((site / "channels/conv/1.html").as_uri())
    assert "next channel" in page.locator(".shortcuts").inner_text()
    for key, url in (
        ("ArrowRight", "**/channels/conv/2.html"),
        ("ArrowLeft", "**/channels/conv/1.html"),
        ("]", "**/layers/mix.a.html"),  # the next layer's page
        ("[", "**/layers/conv.html"),
        ("u", "**/site/layers.html"),  # up: the list of layers
    ):
        page.keyboard.press(key)
        page.wait_for_url(url)
    # Keys typed into a form field stay there.
    page.goto((site / "index.html").as_uri())
    page.locator("#site-search-box").type("lic")
    page.wait_for_timeout(300)
    assert page.url.endswith("/index.html") and page.locator("#site-search-box").input_value() == "lic"
    page.locator("h1").click()  # out of the field, the same key opens the list of layers
    page.keyboard.press("l")
    page.wait_for_url("**/site/layers.html")


@pytest.mark.skipif(not AXE.exists(), reason="needs axe-core in .cache/ (`make axe`, from npm)")
def test_heat_overlays_toggle_from_the_keyboard_and_stay_accessible(site, page):
    page.goto((site / "channels/conv/1.html").as_uri())
    heat = page.locator(".dataset-examples").first.locator("img.heat")
    assert heat.count() == 1 and not heat.is_visible()
    toggle = page.locator("#heat-top")
    for _ in range(60):  # Tab through the page to the toggle, as a keyboard user would
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "heat-top":
            break
    assert page.evaluate("document.activeElement.id") == "heat-top"
    page.keyboard.press("Space")
    assert toggle.is_checked() and heat.is_visible()
    # The overlay lies exactly over its crop.
    crop = heat.locator("xpath=preceding-sibling::img").bounding_box()
    assert heat.bounding_box() == crop
    assert _violations(page) == []


@pytest.mark.skipif(not AXE.exists(), reason="needs axe-core in .cache/ (`make axe`, from npm)")
def test_the_search_box_with_its_results_open_has_no_axe_violation(site, page):
    page.goto((site / "channels/conv/1.html").as_uri())
    page.keyboard.press("/")
    page.keyboard.type("c")  # channels with thumbnails, classes with and without a page
    page.locator("#site-search-results [role=option]").first.wait_for()
    page.keyboard.press("ArrowDown")
    assert page.get_attribute("#site-search-box", "aria-expanded") == "true"
    assert _violations(page) == []
    page.keyboard.type("zzz")  # nothing matches: the note shows, the list closes
    assert page.locator("#site-search-note").inner_text() == "Nothing matches."
    assert _violations(page) == []
