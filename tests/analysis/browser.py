"""Headless Debian chromium for the report tests, driven by selenium, with the page's console log kept
so a test can assert that the report loads without a console error."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path:
    """Where browser tests keep their screenshots: `$TEST_ARTIFACTS_DIR`, else `test-artifacts/` in the
    repository (ignored by git), so a CI job can upload them and a person can look at them."""
    d = Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPO / "test-artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextmanager
def chromium(width: int, height: int) -> Iterator[Any]:
    """A headless chromium whose window (and so the first screen of a page) is `width` x `height`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail(
            "Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    try:
        # --window-size sizes the window, not the page: make the viewport itself width x height.
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        size = driver.get_window_size()
        driver.set_window_size(size["width"] + width - inner[0], size["height"] + height - inner[1])
        yield driver
    finally:
        driver.quit()
