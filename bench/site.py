"""Benchmark: a layer page with 1,024 channels in headless Chromium (not a test).

Builds a synthetic atlas (one layer of 1,024 channels with 128 px feature visualizations
that compress about as badly as real ones), serves the site from 127.0.0.1 and measures,
for the layer page:

* load time: navigation start to the first screen of thumbnails decoded, to the ``load``
  event, and to network idle;
* bytes transferred (Chrome DevTools ``Network.loadingFinished`` sizes) and requests.

Target: under 1 s and under 5 MB. As a baseline measured in the same run, the same page
with every thumbnail loaded eagerly (what a page without lazy loading would cost).
Also times ``file://`` opening and the build itself.

    .venv/bin/python bench/site.py [--channels 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.site import data as ad  # noqa: E402
from pipeline.site.build import build_site  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


def featurevis_like(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Busy colour textures: a few random gratings up to 24 cycles per image, plus noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size, 3))
    for _ in range(6):
        fy, fx = rng.uniform(-24, 24, 2)
        phase = np.sin(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 2 * np.pi))
        image += phase[..., None] * rng.uniform(0, 1, 3)
    image = (image - image.min()) / (np.ptp(image) + 1e-9) * 235 + rng.uniform(-10, 10, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def synthetic(channels: int) -> ad.AtlasData:
    rng = np.random.default_rng(0)
    units = [
        ad.Channel(
            c,
            featurevis=featurevis_like(rng),
            mean_activation=float(rng.normal()),
            attribution=float(rng.normal()),
        )
        for c in range(channels)
    ]
    return ad.AtlasData(ad.ModelInfo("bench"), [ad.Layer("wide", channels, units=units)])


@contextlib.contextmanager
def serve(root: Path):
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as any real static server

    def log_message(self, *args):
        pass


FIRST_SCREEN_DONE = """() => {
  const grid = document.getElementById("channels");
  if (!grid || document.readyState === "loading") return false;
  const inView = Array.from(grid.querySelectorAll("img")).filter(i => {
    const r = i.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; });
  return inView.length > 0 && inView.every(i => i.complete && i.naturalWidth > 0);
}"""


def measure(browser, url: str) -> dict:
    """One cold load (fresh context, no cache) of ``url``."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    sizes = []
    cdp.on("Network.loadingFinished", lambda e: sizes.append(e["encodedDataLength"]))
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    # First screen: every thumbnail that intersects the viewport has decoded.
    page.wait_for_function(FIRST_SCREEN_DONE, polling=10)
    first_screen = page.evaluate("performance.now()") / 1000
    page.wait_for_load_state("load")
    page.wait_for_load_state("networkidle")
    idle = time.perf_counter() - start
    load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000
    images = page.evaluate("document.images.length")
    context.close()
    return {
        "first_screen_s": first_screen,
        "load_s": load,
        "idle_s": idle,
        "bytes": sum(sizes),
        "requests": len(sizes),
        "images": images,
    }


def variant(page: Path, name: str, attribute: str) -> Path:
    """The same page with the deferred thumbnails' ``data-src=`` replaced by ``attribute``."""
    out = page.with_name(f"{page.stem}-{name}.html")
    out.write_text(page.read_text().replace(" data-src=", f" {attribute}="))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"bench/site.py: skipped, no Chromium at {CHROMIUM} (`make browser` installs it)")
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic(args.channels)
        start = time.perf_counter()
        site = build_site(data, Path(tmp) / "site")
        build_s = time.perf_counter() - start
        layer_page = site / "layers" / "wide.html"
        eager = variant(layer_page, "eager", "src")  # the baseline
        native = variant(layer_page, "native", 'loading="lazy" src')  # the browser's own lazy loading
        thumbs = sorted((site / "img" / "featurevis" / "wide").glob("*-thumb.png"))
        print(
            f"built {args.channels} channel pages in {build_s:.1f} s; layer page "
            f"{layer_page.stat().st_size / 1e3:.0f} kB HTML, thumbnails "
            f"{sum(p.stat().st_size for p in thumbs) / 1e6:.2f} MB in all"
        )
        with serve(site) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            results = {}
            for name, url in (
                ("lazy (site)", f"{base}/layers/wide.html"),
                ("eager (baseline)", f"{base}/layers/{eager.name}"),
                ("native lazy", f"{base}/layers/{native.name}"),
                ("lazy, file://", layer_page.as_uri()),
            ):
                runs = [measure(browser, url) for _ in range(args.repeats)]
                results[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            browser.close()
    print(
        "seconds from navigation start (median of the repeats): first screen of thumbnails "
        "decoded, load event, network idle (+0.5 s quiet); bytes over the wire"
    )
    print(f"{'page':<18} {'first s':>8} {'load s':>7} {'idle s':>7} {'MB':>7} {'requests':>9}")
    for name, r in results.items():
        mb = r["bytes"] / 1e6 if not name.endswith("file://") else float("nan")
        print(
            f"{name:<18} {r['first_screen_s']:>8.3f} {r['load_s']:>7.3f} {r['idle_s']:>7.3f} "
            f"{mb:>7.2f} {r['requests']:>9.0f}"
        )
    site_r, base_r = results["lazy (site)"], results["eager (baseline)"]
    print(
        f"ratio site/baseline: first screen {site_r['first_screen_s'] / base_r['first_screen_s']:.2f}, "
        f"load {site_r['load_s'] / base_r['load_s']:.2f}, bytes {site_r['bytes'] / base_r['bytes']:.2f}"
    )
    worst = max(site_r["load_s"], results["lazy, file://"]["load_s"])
    ok = worst < 1.0 and site_r["bytes"] < 5e6
    print(
        f"target (load < 1 s served and from file://, < 5 MB): {'met' if ok else 'NOT met'} "
        f"(slowest load {worst:.3f} s, {site_r['bytes'] / 1e6:.2f} MB)"
    )


if __name__ == "__main__":
    main()
