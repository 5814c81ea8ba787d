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


# axe-core from its npm package (`make axe`, part of `make test`), not in the repository.
AXE = Path(__file__).resolve().parents[2] / ".cache/npm/node_modules/axe-core/axe.min.js"

# axe-core's WCAG 2.0 and 2.1 rules of levels A and AA; each violation as one readable line.
RUN_AXE = """async () => {
  const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
  const where = n => n.target.join(' ') + ' (' + (n.failureSummary || '').split('\\n')[1] + ')';
  return result.violations.map(v => v.id + ': ' + v.help + ' -> ' + v.nodes.slice(0, 3).map(where).join(';'));
}"""


def axe_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate(RUN_AXE)
