"""The HTML report opened in headless Chromium: self-contained, and its charts really render."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.__main__ import main
from tests.analysis.browser import chromium
from tests.analysis.runs import Entry, lognormal, simple_run, write_resources

pytestmark = pytest.mark.browser

PIXELS_JS = """
const done = arguments[arguments.length - 1];
const img = new Image();
img.onload = () => {
  const c = document.createElement('canvas');
  c.width = img.width; c.height = img.height;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const colors = new Set();
  let nonWhite = 0, blue = 0;
  for (let i = 0; i < d.length; i += 4) {
    colors.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    if (d[i] < 245 || d[i + 1] < 245 || d[i + 2] < 245) nonWhite++;
    if (Math.abs(d[i] - 0x25) < 40 && Math.abs(d[i + 1] - 0x63) < 40 && d[i + 2] > 200) blue++;
  }
  done({colors: colors.size, nonWhite: nonWhite / (d.length / 4), blue: blue, width: c.width});
};
img.onerror = () => done(null);
img.src = 'data:image/png;base64,' + arguments[0];
"""


@pytest.fixture(scope="module")
def html_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("html")
    run = root / "run"
    run.mkdir()
    simple_run(
        run,
        [
            Entry("POST", "/api/auth/login", lognormal(2000, 80, 0.4, 1), failures=20),
            Entry("GET", "/api/evidence", lognormal(3000, 40, 0.6, 2)),
            Entry(
                "POST",
                "/api/chat/stream",
                lognormal(100, 900, 0.2, 3),
                group="ai",
                ttft=lognormal(100, 150, 0.3, 4),
                tokens=[30.0] * 100,
            ),
            # What the library derives from each reply: times, with no stream columns of their own.
            Entry("LLM", "sse time to first token", lognormal(100, 150, 0.3, 4)),
            Entry("LLM", "sse inter-token latency", lognormal(100, 26, 0.1, 5)),
        ],
    )
    write_resources(run, [200.0 + i for i in range(10)], [20.0 + 3 * i for i in range(10)])
    assert main([str(run), "--report", "html", "--out", str(root / "out")]) == 0
    (html,) = (root / "out").glob("*.html")
    return html


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium(1400, 1200) as driver:
        yield driver


def test_the_report_is_self_contained(html_report: Path) -> None:
    html = html_report.read_text()
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']""", html)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}


def test_every_chart_section_renders_visible_svg(html_report: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.get(html_report.as_uri())
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    for section in ("load", "latency", "distribution", "resources", "streaming"):
        charts = browser.find_elements(By.CSS_SELECTOR, f"#charts-{section} svg")
        assert charts, section
        for svg in charts:
            browser.execute_script("arguments[0].scrollIntoView()", svg)
            assert svg.is_displayed(), section
            assert svg.size["width"] > 100 and svg.size["height"] > 80, section
            assert "no data in this run" not in svg.text, f"{section}: {svg.get_attribute('aria-label')}"
    lines = browser.find_elements(By.CSS_SELECTOR, "#charts-load polyline, #charts-latency polyline")
    assert len(lines) >= 4  # requests/s, failures/s, p50, p95
    bars = browser.find_elements(By.CSS_SELECTOR, "#charts-distribution svg rect[fill='#2563eb']")
    assert len(bars) >= 10
    # Rules with nothing to check in this run are folded away; judged ones are shown.
    folded = browser.find_element(By.CSS_SELECTOR, "details")
    assert "had nothing to check in this run" in folded.text
    assert not folded.find_element(By.CSS_SELECTOR, "table").is_displayed()
    assert browser.find_element(By.XPATH, "//td[text()='load.failure_ratio']").is_displayed()
    titles = [
        s.get_attribute("aria-label") for s in browser.find_elements(By.CSS_SELECTOR, "#charts-streaming svg")
    ]
    assert any("Time to first token" in t for t in titles) and any("Tokens per second" in t for t in titles)


def test_a_screenshot_shows_the_charts(html_report: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.get(html_report.as_uri())
    chart = browser.find_element(By.CSS_SELECTOR, "#charts-load svg")
    browser.execute_script("arguments[0].scrollIntoView()", chart)
    page = browser.execute_async_script(PIXELS_JS, browser.get_screenshot_as_base64())
    assert page is not None and page["nonWhite"] > 0.05 and page["colors"] > 20, page
    one = browser.execute_async_script(PIXELS_JS, chart.screenshot_as_base64)
    # The requests/s line is drawn in the first palette colour: its pixels must be there.
    assert one is not None and one["blue"] > 50 and one["colors"] > 10, one
