"""The atlas site in a real browser (headless Chromium from Debian's package, via Playwright):
opened from file://, navigated by clicking, images load, the semantic dictionary answers
the pointer, sorting and search work, hostile text stays text, and nothing leaves file://."""

import json

import pytest

from pipeline.site.build import build_site
from tests.helpers.browser import BROWSER_MARKS
from tests.helpers.site import XSS_CLASS, XSS_FILE, XSS_ID, imagenet_atlas, site_files, synthetic_atlas

pytestmark = BROWSER_MARKS

# Loads every image of the page (lazy ones too) and returns the sources that did not decode.
BROKEN_IMAGES = """async () => {
  const images = Array.from(document.images);
  images.forEach(i => { i.loading = "eager"; if (!i.getAttribute("src")) i.src = i.dataset.src; });
  await Promise.all(images.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return images.filter(i => !(i.naturalWidth > 0)).map(i => i.getAttribute("src"));
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(synthetic_atlas(), tmp_path_factory.mktemp("browser") / "site")


class Watch:
    """What a page did that it must not: network requests, dialogs, script errors."""

    def __init__(self, page):
        self.outside, self.dialogs, self.errors = [], [], []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

        def route(r):
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)

    def check(self, page):
        assert page.evaluate("typeof window.__pwned") == "undefined", "injected script ran"
        assert self.dialogs == [] and self.errors == [] and self.outside == []


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.watch = Watch(page)
    yield page
    page.watch.check(page)
    context.close()


def test_click_from_index_to_layer_channel_and_image(site, page):
    page.goto((site / "index.html").as_uri())
    assert page.evaluate(BROKEN_IMAGES) == []
    page.get_by_role("link", name="conv", exact=True).click()
    page.wait_for_url("**/layers/conv.html")
    assert page.locator("#channels li").count() == 4
    assert page.evaluate(BROKEN_IMAGES) == []
    page.locator('#channels li[data-channel="1"] a').click()
    page.wait_for_url("**/channels/conv/1.html")
    assert page.locator("h1").inner_text() == "conv channel 1"
    assert page.evaluate(BROKEN_IMAGES) == []
    assert page.locator(".fv").evaluate("i => i.naturalWidth") == 16
    page.locator('.examples a[href$="img0.html"]').first.click()  # the top example, not the negative
    page.wait_for_url("**/images/img0.html")
    assert page.locator("h1").inner_text() == "Image img0"
    assert page.evaluate(BROKEN_IMAGES) == []


def test_layer_grid_loads_thumbnails_near_the_viewport_only(tmp_path, page):
    site = build_site(synthetic_atlas(channels=(300, 1)), tmp_path / "site")
    page.goto((site / "layers" / "conv.html").as_uri())
    loaded = (
        "() => Array.from(document.querySelectorAll('#channels img'))"
        ".filter(i => i.complete && i.naturalWidth > 0).length"
    )
    page.wait_for_function(f"({loaded})() > 0")
    first = page.evaluate(loaded)
    assert 0 < first < 300
    page.locator('#channels li[data-channel="299"]').scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('#channels li[data-channel=\\'299\\'] img');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    assert page.evaluate(loaded) > first


def _cells(page, layer: int, view: str):
    return page.locator(f".bb-layer[data-layer='{layer}'] .view[data-view={view}] .cell")


def _on(page, layer: int) -> dict[str, list[str]]:
    """The highlighted cells of every view of a layer: {view: [cell index, ...]}."""
    return page.evaluate(
        """(layer) => {
        const out = {};
        document.querySelectorAll(`.bb-layer[data-layer='${layer}'] .view`).forEach(v => {
          out[v.dataset.view] = Array.from(v.querySelectorAll('.cell.on')).map(c => c.dataset.cell);
        });
        return out;
      }""",
        layer,
    )


def _values(page, layer: int, view: str) -> list[float]:
    return [float(v) for v in _cells(page, layer, view).evaluate_all("cs => cs.map(c => c.dataset.value)")]


def _blocks_json(page) -> dict:
    return json.loads(page.locator("#blocks-data").text_content())


def test_hovering_a_cell_highlights_it_in_every_view_and_lists_its_channels(site, page):
    page.goto((site / "images" / "img0.html").as_uri())
    _cells(page, 0, "grid").nth(2).hover()  # conv cell (1, 0) in the activation grid
    assert _on(page, 0) == {"photo": ["2"], "dictionary": ["2"], "grid": ["2"], "attribution": ["2"]}
    assert _on(page, 1)["flows"] == ["2"]  # conv's cell as a source of mix.a
    panel = page.locator("#bb-panel")
    assert "conv cell (1, 0)" in panel.inner_text()
    assert panel.locator("li a").all_inner_texts() == ["conv:2", "conv:0"]  # as stored, largest first
    assert panel.locator("li .value").all_inner_texts() == ["2", "1"]
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#bb-panel img'))"
        ".every(i => i.complete && i.naturalWidth >= 64)"
    )
    size = panel.bounding_box()
    _cells(page, 0, "photo").nth(0).hover()  # another cell: the panel does not move or resize
    assert _on(page, 0)["dictionary"] == ["0"]
    assert panel.locator("li a").all_inner_texts() == ["conv:3", "conv:1"]
    assert panel.bounding_box() == size
    # The flows view of mix.a follows its hovered cell: row q of the stored flows.
    _cells(page, 1, "attribution").nth(3).hover()
    assert _values(page, 1, "flows") == [v / 8 for v in range(12, 16)]
    panel.locator("li a", has_text="mix.a:0").click()
    page.wait_for_url("**/channels/mix.a/0.html")


def test_switching_the_class_shows_that_classes_stored_attribution(site, page):
    page.goto((site / "images" / "img0.html").as_uri())
    stored = _blocks_json(page)["layers"]
    assert _values(page, 0, "attribution") == [2, 0, 0, 2] == stored[0]["spatial"][0]
    assert _values(page, 1, "attribution") == [1, 2, 3, 4]
    page.select_option("#explain-class", "1")
    assert _values(page, 0, "attribution") == [-2, 0, 0, -2] == stored[0]["spatial"][1]
    assert _values(page, 1, "attribution") == [-1, 0, 0, 1]
    assert page.locator(".bb-layer[data-layer='0'] .channel-bars ol").first.locator(
        "a"
    ).all_inner_texts() == [
        "conv:0",
        "conv:3",
    ]
    # The difference view: cat minus the second class, cell by cell.
    page.select_option("#explain-class", "0")
    page.select_option("#compare-class", "1")
    assert _values(page, 0, "attribution") == [4, 0, 0, 4]
    assert _values(page, 1, "attribution") == [2, 2, 3, 3]
    assert "minus" in page.locator("#explain-sentence").inner_text()


def test_group_flows_add_up_to_the_stored_attribution(site, page):
    page.goto((site / "images" / "img0.html").as_uri())
    stored = _blocks_json(page)["layers"]

    def shown(pair):
        return sum(
            page.locator(f"#group-flows path[data-pair='{pair}']").evaluate_all(
                "ps => ps.map(p => parseFloat(p.dataset.value))"
            )
        )

    for t in (0, 1):
        page.select_option("#explain-class", str(t))
        assert shown(0) == pytest.approx(sum(map(sum, stored[1]["flows"]["groups"][t])), abs=1e-6)
        assert shown(1) == pytest.approx(sum(row[t] for row in stored[1]["groups"]["attribution"]), abs=1e-6)
    assert page.locator("#group-flows path").count() == 2 * 2 + 2


def test_keyboard_alone_moves_and_pins_the_cursor(site, page):
    page.goto((site / "images" / "img0.html").as_uri())
    for _ in range(30):  # Tab through the page until the first layer's views have the focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('bb-views')"):
            break
    assert page.evaluate("document.activeElement.closest('.bb-layer').dataset.layer") == "0"
    assert _on(page, 0)["photo"] == ["3"]  # focus puts the cursor on the centre cell (1, 1)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowLeft")
    assert _on(page, 0)["grid"] == ["0"]
    page.keyboard.press("Enter")
    assert "pinned" in page.locator("#bb-panel .badge").inner_text()
    _cells(page, 0, "photo").nth(3).hover()  # the pointer does not move a pinned cursor
    assert _on(page, 0)["photo"] == ["0"]
    page.locator(".bb-layer[data-layer='0'] .bb-views").focus()
    page.keyboard.press("ArrowRight")  # arrow keys still move it
    assert _on(page, 0)["photo"] == ["1"]
    page.keyboard.press("Escape")
    _cells(page, 0, "photo").nth(2).hover()
    assert _on(page, 0)["photo"] == ["2"]
    page.wait_for_function(
        "() => document.getElementById('bb-live').textContent.includes('conv cell (1, 0)')"
    )


def test_layer_page_sorts_by_mean_activation_and_attribution(site, page):
    page.goto((site / "layers" / "conv.html").as_uri())

    def order():
        return page.locator("#channels li").evaluate_all("ls => ls.map(l => l.dataset.channel)")

    page.get_by_role("button", name="mean activation").click()
    assert order() == ["1", "2", "3", "0"]
    page.get_by_role("button", name="attribution").click()
    assert order() == ["1", "3", "0", "2"]
    page.get_by_role("button", name="channel").click()
    assert order() == ["0", "1", "2", "3"]


def test_layer_page_sorts_by_a_score_and_filters_with_the_keyboard(site, page):
    """conv's scores (tests/helpers/site.py CONV_SCORES): clarity over random 0.1, -0.2, 0.4,
    0; strength 1.5, 0.25, 2, none; channel 1 alone is weak."""
    page.goto((site / "layers" / "conv.html").as_uri())

    def order(visible=False):
        tiles = "#channels li:not([hidden])" if visible else "#channels li"
        return page.locator(tiles).evaluate_all("ls => ls.map(l => l.dataset.channel)")

    page.get_by_role("button", name="clarity over random").click()
    assert order() == ["2", "0", "3", "1"]
    assert page.locator("#channels li[data-channel='2'] .sort-value").text_content() == "0.4"
    assert page.get_by_role("button", name="clarity over random").get_attribute("aria-pressed") == "true"
    assert page.get_by_role("button", name="channel").get_attribute("aria-pressed") == "false"
    # The keyboard alone: a score button takes Enter, the filter the arrow keys.
    page.get_by_role("button", name="visualization strength").focus()
    page.keyboard.press("Enter")
    assert order() == ["2", "0", "1", "3"]  # no value last
    assert page.locator("#channels li[data-channel='3'] .sort-value").text_content() == ""
    page.locator("#channel-filter").focus()
    page.select_option("#channel-filter", "weak")
    assert order(visible=True) == ["1"]
    assert page.locator("#channel-count").text_content() == "1 of 4 channels shown"
    page.select_option("#channel-filter", "clear")
    assert order(visible=True) == ["2", "0"]  # still sorted by strength
    page.select_option("#channel-filter", "")
    assert order(visible=True) == ["2", "0", "1", "3"] and page.locator("#channel-count").text_content() == ""
    page.get_by_role("button", name="channel", exact=True).click()
    assert order() == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    "query, url",
    [
        ("conv:2", "channels/conv/2.html"),
        ("first", "layers/conv.html"),
        ("mix.a 1", "channels/mix.a/1.html"),
        ("CAT", "classes/0.html"),
    ],
)
def test_search_jumps(site, page, query, url):
    page.goto((site / "channels/conv/1.html").as_uri())
    page.fill("#site-search-box", query)
    page.wait_for_selector("#site-search-results [role=option]")
    page.press("#site-search-box", "Enter")
    page.wait_for_url("**/" + url)


def test_search_index_loads_only_when_the_box_is_used(site, page):
    page.goto((site / "index.html").as_uri())
    assert page.evaluate("typeof window.ModelAtlasSearchIndex") == "undefined"
    page.keyboard.press("/")  # focuses the box, which loads the index
    assert page.evaluate("document.activeElement.id") == "site-search-box"
    page.wait_for_function("typeof window.ModelAtlasSearchIndex === 'object'")


def test_typing_dog_lists_the_dog_breeds_and_the_keyboard_follows_the_first(tmp_path, page):
    site = build_site(imagenet_atlas(), tmp_path / "site")
    page.goto((site / "layers/conv.html").as_uri())
    page.keyboard.press("/")
    page.keyboard.type("dog")
    options = page.locator("#site-search-results [role=option]")
    options.first.wait_for()
    # Every dog breed is a kind of dog, and so is the channel labelled "retriever" (it comes
    # first: channels before classes); then the breed with a page (predicted in the run).
    assert options.count() == 20
    assert options.first.inner_text() == "conv:1\nchannel · retriever (0.7273) · a kind of dog"
    assert options.nth(1).inner_text() == "Labrador retriever\nclass · a kind of dog"
    # The channel's thumbnail sits left of its name and description, on one row.
    thumb = options.first.locator("img").bounding_box()
    name = options.first.locator(".site-search-name").bounding_box()
    kind = options.first.locator(".site-search-kind").bounding_box()
    assert thumb["x"] + thumb["width"] <= name["x"] and name["x"] == kind["x"]
    middle = thumb["y"] + thumb["height"] / 2  # beside the two lines, not above them
    assert name["y"] < middle < kind["y"] + kind["height"]
    page.keyboard.press("ArrowDown")
    assert page.get_attribute("#site-search-box", "aria-activedescendant") == "site-search-option-0"
    assert options.first.get_attribute("aria-selected") == "true"
    page.keyboard.press("Escape")  # closes the list
    assert page.locator("#site-search-results").is_hidden()
    page.keyboard.press("ArrowDown")  # opens it again on the first result
    page.keyboard.press("Enter")
    page.wait_for_url("**/site/channels/conv/1.html")


def test_search_shows_hostile_class_names_as_text(site, page):
    page.goto((site / "index.html").as_uri())
    page.fill("#site-search-box", "script")
    names = page.locator("#site-search-results .site-search-name")
    names.first.wait_for()
    assert XSS_CLASS in names.all_inner_texts() and XSS_ID in names.all_inner_texts()
    page.fill("#site-search-box", "dog")  # a class never predicted: no page
    assert page.locator("#site-search-results [role=option]").all_inner_texts() == [
        "dog\nclass · never predicted · no page"
    ]
    page.fill("#site-search-box", "conv:9")
    assert page.locator("#site-search-note").inner_text() == "conv has channels 0-3."


def test_hostile_names_are_shown_as_text_on_every_page(site, page):
    pages = [name for name in site_files(site) if name.endswith(".html")]
    assert len(pages) >= 12
    for name in pages:
        page.goto((site / name).as_uri())
        page.evaluate(BROKEN_IMAGES)
        assert page.evaluate("typeof window.__pwned") == "undefined", name
    page.goto((site / "index.html").as_uri())
    page.locator("details.skipped summary").click()
    assert XSS_FILE in page.locator("details.skipped").inner_text()
    page.goto((site / "channels" / "conv" / "0.html").as_uri())
    assert XSS_CLASS in page.locator("ol.bars").inner_text()
    assert page.locator("img[src='x']").count() == 0
