"""Benchmark: the header search over a GoogLeNet-sized index, from file:// in headless Chromium.

Builds a one-channel site, then replaces its ``search-index.js`` with the index of a
synthetic GoogLeNet run: its 5,808 channels in 12 layers, each with a thumbnail path,
ImageNet-1k's 1,000 class names with their WordNet synonyms and the 860 synsets above them,
and 200 images. Measures, on the site's index page opened from ``file://``:

* **first use**: the box is focused with "dog" typed (the index script loads, is parsed
  and the query answered) until the results are in the page;
* **a query**: the next query ("mixed4d", 528 prefix matches ranked) until its results show;

against a baseline measured in the same run: the same page with an empty index (what the
script and the page cost without the data). Target: first use under 1 s.

    .venv/bin/python bench/search.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline import search  # noqa: E402
from pipeline.labels.hierarchy import ClassHierarchy, imagenet_hierarchy_for  # noqa: E402
from pipeline.site import data as ad  # noqa: E402
from pipeline.site import search_index  # noqa: E402
from pipeline.site.build import Urls, build_site  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
# GoogLeNet (InceptionV1) as the atlas extracts it: 5,808 channels.
GOOGLENET = [
    ("conv2d0", 64), ("conv2d1", 64), ("conv2d2", 192),
    ("mixed3a", 256), ("mixed3b", 480), ("mixed4a", 508), ("mixed4b", 512), ("mixed4c", 512),
    ("mixed4d", 528), ("mixed4e", 832), ("mixed5a", 832), ("mixed5b", 1028),
]  # fmt: skip


class BenchPages:
    """Every channel has a page and a thumbnail; every class and image a page."""

    layer, channel, klass = staticmethod(Urls.layer), staticmethod(Urls.channel), staticmethod(Urls.klass)

    @staticmethod
    def thumb(layer: str, c: int) -> str:
        return Urls.featurevis(layer, c, "-thumb")

    @staticmethod
    def image(image_id: str) -> str:
        return f"images/{image_id}.html"


def googlenet_index() -> str:
    hierarchy = ClassHierarchy.from_file()
    names = [hierarchy.name(w) for w in hierarchy.classes]
    run = search.Run(
        layers=GOOGLENET,
        aliases={},
        class_names=names,
        seen_classes=frozenset(range(0, 1000, 3)),
        images=[f"img{i:04d}" for i in range(200)],
        hierarchy=imagenet_hierarchy_for(names),
    )
    entries = search.run_entries(run, BenchPages())
    assert sum(e.kind == "channel" for e in entries) == 5808
    return search_index.script_text(search.index_json(entries))


FIRST_USE = """async (query) => {
  const box = document.getElementById("site-search-box");
  const list = document.getElementById("site-search-results");
  const note = document.getElementById("site-search-note");
  const start = performance.now();
  box.value = query;
  box.focus();
  while (!list.children.length && !note.textContent.startsWith("Nothing"))
    await new Promise(r => setTimeout(r, 1));
  return (performance.now() - start) / 1000;
}"""

NEXT_QUERY = """(query) => {
  const box = document.getElementById("site-search-box");
  const start = performance.now();
  box.value = query;
  box.dispatchEvent(new Event("input"));
  document.getElementById("site-search-results").getBoundingClientRect();  // laid out
  return (performance.now() - start) / 1000;
}"""


def measure(browser, url: str) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(url)
    page.wait_for_load_state("load")
    first = page.evaluate(FIRST_USE, "dog")
    shown = page.locator("#site-search-results [role=option]").count()
    query = page.evaluate(NEXT_QUERY, "mixed4d")
    context.close()
    return {"first_s": first, "query_s": query, "results": shown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"bench/search.py: skipped, no Chromium at {CHROMIUM} (`make browser` installs it)")
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        data = ad.AtlasData(ad.ModelInfo("bench"), [ad.Layer("one", 1, units=[ad.Channel(0)])])
        sites = {}
        for name, text in (("GoogLeNet index", googlenet_index()), ("empty index (baseline)", None)):
            site = build_site(data, Path(tmp) / name.split()[0])
            if text is None:
                text = search_index.script_text(search.index_json([]))
            (site / search_index.PATH).write_text(text)
            sites[name] = site
        size = (sites["GoogLeNet index"] / search_index.PATH).stat().st_size
        print(f"index of 5,808 channels, 1,000 classes, synsets, 200 images: {size / 1e6:.2f} MB")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            results = {}
            for name, site in sites.items():
                runs = [measure(browser, (site / "index.html").as_uri()) for _ in range(args.repeats)]
                results[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            browser.close()
    print("seconds (median of the repeats) from file://: first use (load, answer 'dog'), next query")
    print(f"{'page':<24} {'first use s':>12} {'query s':>8} {'results':>8}")
    for name, r in results.items():
        print(f"{name:<24} {r['first_s']:>12.3f} {r['query_s']:>8.3f} {r['results']:>8.0f}")
    worst = results["GoogLeNet index"]["first_s"]
    print(f"target (first use < 1 s from file://): {'met' if worst < 1.0 else 'NOT met'} ({worst:.3f} s)")


if __name__ == "__main__":
    main()
