"""Headless Chromium (Debian's package) driven by Playwright, for the browser tests."""

import contextlib
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
# Marks of a module of browser tests: skipped, saying why, where Chromium is missing.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
        reason="needs Chromium at /usr/bin/chromium (`make browser` or `apt-get install chromium`)",
    ),
]


@contextlib.contextmanager
def launched_chromium():
    """A headless Chromium for a module's tests (closed at the end)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()
