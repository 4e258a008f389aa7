"""The HTML report of a real run whose backend stalls: the stall shows as zero requests/s in the
chart's data, the p99 series is drawn, the failing rule sits above the first chart, and the first
screen (1366 x 768) holds the verdict, the rule that decided it and the run's shape."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import pytest

from analysis.__main__ import main
from tests.analysis.browser import artifacts_dir, chromium
from tests.backend_process import Backend, run_backend

LOCUSTFILE = """
import locust_scenarios  # noqa: F401  (installs the library's options and listeners)
from locust import FastHttpUser, constant, task


class Probe(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def health(self):
        self.client.get("/health")
"""

RULES = """
rules:
  - {id: health-p99, description: "Health answers within a second", select: {name: /health},
     metric: p99, op: "<", value: 1s}
"""

STALL_MS = 3000
# Every request that reaches the stalled backend waits this long and then fails, so the seconds in
# between have no request start at all: both users are waiting.
STALL = [{"path": "/health", "stall_ms": STALL_MS, "error_rate": 1.0}]


class _Series(HTMLParser):
    """Every drawn series of the page: (section id, chart title, series label) -> its y values."""

    def __init__(self) -> None:
        super().__init__()
        self.section = ""
        self.chart = ""
        self.series: dict[tuple[str, str, str], list[float]] = {}
        self.order: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and (a.get("id") or "").startswith("charts-"):
            self.section = (a.get("id") or "").removeprefix("charts-")
        if tag == "svg":
            self.chart = a.get("aria-label") or ""
            self.order.append(("svg", self.chart))
        if tag == "table":
            self.order.append(("table", a.get("id") or ""))
        if tag == "g" and a.get("data-series") is not None:
            ys = [float(v) for v in (a.get("data-ys") or "").split()]
            self.series[(self.section, self.chart, a.get("data-series") or "")] = ys


def _wait(predicate: object, what: str, timeout: float = 30.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stalled_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with run_backend(tmp_path_factory.mktemp("stall-backend")) as b:
        yield b


@pytest.fixture(scope="module")
def stalled_report(stalled_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 7 s run of two users; once they are busy, the backend stalls every request for 3 s."""
    b = stalled_backend
    root = tmp_path_factory.mktemp("stalled")
    (root / "probe.py").write_text(LOCUSTFILE)
    (root / "rules.yaml").write_text(RULES)
    cmd = [
        sys.executable, "-m", "locust", "-f", "probe.py", "--headless", "-u", "2", "-r", "2", "-t", "7s",
        "--host", b.url, "--csv", "run/locust", "--json-file", "run/locust", "--run-dir", "run",
        "--only-summary", "--stop-timeout", "5",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def busy() -> bool:
            status, body = b.request("GET", "/admin/requests")
            return status == 200 and isinstance(body, dict) and int(body["total"]) > 40

        _wait(busy, "the users to send requests")
        time.sleep(1.0)  # a second of normal load before the stall
        assert b.request("PUT", "/admin/faults", STALL)[0] == 200

        def both_stalled() -> bool:
            status, body = b.request("GET", "/admin/faults")
            return status == 200 and isinstance(body, dict) and body["faults"][0]["matched"] >= 2

        _wait(both_stalled, "both users to reach the stalled backend")
        assert b.request("DELETE", "/admin/faults")[0] == 200
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        b.request("DELETE", "/admin/faults")
    run = root / "run"
    assert (run / "locust_stats.csv").exists(), err[-3000:]
    out = root / "out"
    code = main([str(run), "--thresholds", str(root / "rules.yaml"), "--report", "html", "--out", str(out)])
    assert code == 1  # the stalled requests took 3 s: health-p99 < 1 s failed
    (html,) = out.glob("*.html")
    return html


def test_the_stall_shows_as_zero_requests_per_second(stalled_report: Path) -> None:
    page = _Series()
    page.feed(stalled_report.read_text())
    rps = page.series[("overview", "Load: requests/s, failures/s and users", "requests/s")]
    assert len(rps) >= 7  # the whole run, from its start to its end
    busy = [i for i, v in enumerate(rps) if v > 0]
    # Between the last second before the stall and the first after it, no request started: zeros.
    gaps = [(a, b) for a, b in pairwise(busy) if b - a > 1]
    assert gaps, rps
    a, b = max(gaps, key=lambda g: g[1] - g[0])
    assert b - a - 1 >= 2, rps  # at least two whole seconds at zero
    assert all(v == 0.0 for v in rps[a + 1 : b])
    # The requests that met the stall started in the second before it and took 3 s (and failed).
    p99 = page.series[("overview", "Response time of all requests: p50 / p95 / p99 (ms)", "p99")]
    assert len(p99) == len(rps)
    assert max(p99[a - 1 : a + 1]) >= STALL_MS * 0.95
    failed = page.series[("overview", "Load: requests/s, failures/s and users", "failed requests/s")]
    assert sum(failed) > 0
    kinds = {k[2] for k in page.series if k[0] == "errors"}
    assert kinds and all("500" in k for k in kinds), kinds


def test_the_failing_rule_is_above_the_first_chart(stalled_report: Path) -> None:
    page = _Series()
    page.feed(stalled_report.read_text())
    assert page.order[0] == ("table", "why-rules")
    first_chart = page.order.index(("svg", "Load: requests/s, failures/s and users"))
    assert first_chart == 1
    html = stalled_report.read_text()
    why = html[html.index("id='why'") : html.index("<svg")]
    assert "health-p99" in why and "GET /health" in why and "&lt; 1,000.0 ms" in why
    assert re.search(r"[\d,]+ requests", why)
    for label in ("p50", "p95", "p99", "max"):
        assert any(k[0] == "latency" and k[2] == label for k in page.series), label


@pytest.mark.browser
def test_the_first_screen_shows_verdict_reason_and_shape(stalled_report: Path) -> None:
    from selenium.webdriver.common.by import By

    with chromium(1366, 768) as browser:
        browser.get(stalled_report.as_uri())
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
        shot = artifacts_dir() / "report-first-screen-stalled-run.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        viewport = browser.execute_script("return window.innerHeight")
        assert viewport == 768
        on_first_screen = [
            browser.find_element(By.CSS_SELECTOR, "h1 .verdict"),
            browser.find_element(By.CSS_SELECTOR, "#why-rules"),
            *browser.find_elements(By.CSS_SELECTOR, "#charts-overview svg"),
        ]
        assert len(on_first_screen) == 4
        for element in on_first_screen:
            bottom = element.location["y"] + element.size["height"]
            assert element.is_displayed() and bottom <= viewport, (element.tag_name, bottom)
        assert browser.find_element(By.CSS_SELECTOR, "h1 .verdict").text == "FAIL"
        assert "health-p99" in browser.find_element(By.CSS_SELECTOR, "#why-rules").text
