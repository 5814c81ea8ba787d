"""Shared test set-up: deterministic, CPU-only, few threads."""

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("ATLAS_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test of the session (tests/helpers/browser.py)."""
    from tests.helpers.browser import launched_chromium

    with launched_chromium() as chromium:
        yield chromium
