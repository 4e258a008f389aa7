"""The Verdict tab in a real headless browser: a run started from the web UI with a load profile shows
its verdict building up, a rule set to break turns red, and once the run stops the tab's figures are
the ones the analysis computes from the run folder (same rows, same functions)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from analysis import analyse, load_run, load_thresholds
from analysis._thresholds import format_value, samples_needed
from tests.backend_process import Backend, free_port
from tests.profiles.runs import start_locust
from tests.profiles.test_profile_in_web_ui import (
    browser,
    choose_profile,
    header,
    open_custom_parameters,
    press_start,
    wait_until,
)

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the fixture, shared with the profile's browser test

THRESHOLDS = """
version: 1
rules:
  - id: api.mean.breaks
    description: set to break, to see it turn red
    select: {name: "/api/*"}
    metric: mean
    per: all
    op: "<"
    value: 0.5ms
  - id: api.failures
    select: {name: "/api/*"}
    metric: failure_ratio
    per: all
    op: "<="
    value: 50%
  - id: auth.p95
    select: {name: "/api/auth/*"}
    metric: p95
    op: "<"
    value: 5s
"""
RED = "rgba(211, 47, 47, 1)"
GREEN = "rgba(46, 125, 50, 1)"


def verdict_table(driver: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The Verdict tab's rows as column title -> cell element, keyed by (rule, entry)."""
    from selenium.webdriver.common.by import By

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for table in driver.find_elements(By.CSS_SELECTOR, "table"):
        titles = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
        if "Stops the run" not in titles:
            continue
        for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
            cells = dict(zip(titles, tr.find_elements(By.CSS_SELECTOR, "td"), strict=False))
            if "Entry" in cells:
                rows[(cells["Rule"].text, cells["Entry"].text)] = cells
    return rows


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_verdict_builds_up_turns_red_and_equals_the_analysis(
    backend: Backend, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(THRESHOLDS)
    run_dir = tmp_path / "run"
    port = free_port()
    args = ["ComplianceUser", "--web-host", "127.0.0.1", "--web-port", str(port), "--host", backend.url]
    args += ["--run-dir", str(run_dir), "--thresholds", str(thresholds), "--scenario-seed", "11"]
    run = start_locust(tmp_path, "web", args, csv_history=False)
    url = f"http://127.0.0.1:{port}/"
    try:

        def ui_up() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until("the web UI", ui_up, log=run.log)
        browser.get(url)
        open_custom_parameters(browser)
        choose_profile(browser, "smoke")
        field = wait_until("profileTimeScale", lambda: browser.find_elements(By.NAME, "profileTimeScale"))[0]
        field.send_keys(Keys.CONTROL, "a", Keys.DELETE)
        field.send_keys("0.2")
        press_start(browser)
        wait_until("the run", lambda: header(browser).get("Status") == "RUNNING", log=run.log)

        browser.find_element(By.XPATH, "//button[@role='tab'][.//span[text()='Verdict']]").click()
        key = ("api.mean.breaks", "")

        def breaking_row() -> dict[str, Any] | None:
            rows = verdict_table(browser)
            found = [r for (rule, _entry), r in rows.items() if rule == key[0]]
            return found[0] if found and found[0]["Status (run so far)"].text == "FAIL" else None

        row = wait_until("the breaking rule to fail", breaking_row, log=run.log)
        assert row["Status (run so far)"].value_of_css_property("color") == RED
        first = int(row["Samples"].text)

        # The verdict builds up while the run goes: more samples behind the same rule.
        def more_samples() -> bool:
            r = breaking_row()
            return r is not None and int(r["Samples"].text) > first

        wait_until("more samples", more_samples, log=run.log)
        holding = [r for (rule, _e), r in verdict_table(browser).items() if rule == "api.failures"]
        assert holding and holding[0]["Status (run so far)"].text == "PASS"
        assert holding[0]["Status (run so far)"].value_of_css_property("color") == GREEN

        # The profile (12 s) ends the run; the tab keeps the last evaluation. The runner's own state says
        # so (the page's header follows it only on its next poll).
        def stopped() -> bool:
            return bool(get_json(url + "stats/requests")["state"] == "stopped")

        wait_until("the profile's end", stopped, 90, run.log)
        verdict = wait_until(
            "the final evaluation",
            lambda: (v := get_json(url + "verdict"))["at"] and v["rows"] and v,
        )
        final = {(j["rule"], j["entry"]): str(j["samples"]) for j in verdict["so_far"]}

        # The page shows the evaluation of its last poll, which may be the one before the final one.
        def caught_up() -> dict[tuple[str, str], str] | None:
            rows = verdict_table(browser)
            if any(k not in rows or rows[k]["Samples"].text != n for k, n in final.items()):
                return None
            return {k: r["Run so far"].text for k, r in rows.items()}

        shown = wait_until("the page to show the final evaluation", caught_up, log=run.log)
    finally:
        run.process.terminate()
        try:
            run.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait()

    rules = load_thresholds(thresholds)
    analysis = analyse(load_run(run_dir), rules)
    expected = {(r.rule.id, r.entry): r for r in analysis.results}
    live = {(j["rule"], j["entry"]): j for j in verdict["so_far"]}
    assert set(live) == set(expected), (live, expected)
    for k, j in live.items():
        assert j["value"] == expected[k].value, k
        # Too few samples: the analysis warns, the tab says so in words.
        few = expected[k].count is not None and expected[k].count < samples_needed(
            expected[k].rule, rules.min_samples
        )
        assert j["status"] == ("not enough samples" if few else expected[k].status), k
        assert shown[k] == format_value(expected[k].rule.metric, expected[k].value), k
    assert verdict["rows"] == json.loads((run_dir / "run.json").read_text())["record"]["rows"]
