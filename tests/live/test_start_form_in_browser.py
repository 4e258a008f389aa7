"""The web UI's start form in a real headless browser: the load profile is picked from a drop-down of
the shipped profiles, which shows the chosen one's stages before the start, and the class picker leaves
the benchmark users unticked (saying why), so START runs a normal mix without them."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from compliance_loadtest.plugin.web_form import BENCHMARK_NOTE
from tests.backend_process import Backend, free_port
from tests.profiles.runs import start_locust
from tests.profiles.test_profile_in_web_ui import browser, choose_profile, header, wait_until

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the fixture, shared with the profile's browser test

BENCHMARK_USERS = ("ApiBenchmarkUser", "DbBenchmarkUser")


def picker_rows(driver: Any) -> dict[str, tuple[bool, str]]:
    """The class picker's rows: class name -> (ticked, the name's tooltip)."""
    from selenium.webdriver.common.by import By

    rows = {}
    for tr in driver.find_elements(By.CSS_SELECTOR, "tr"):
        cells = tr.find_elements(By.CSS_SELECTOR, "td")
        boxes = tr.find_elements(By.CSS_SELECTOR, "input[type=checkbox]")
        if len(cells) > 1 and boxes and cells[1].text.endswith(("User", "Scenario")):
            rows[cells[1].text] = (boxes[0].is_selected(), cells[1].get_attribute("title") or "")
    return rows


def test_profile_drop_down_shows_stages_and_benchmarks_start_unticked(
    backend: Backend, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    port = free_port()
    args = ["--class-picker", "--web-host", "127.0.0.1", "--web-port", str(port), "--host", backend.url]
    args += ["--scenario-seed", "5", "--no-live-verdict"]
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

        def settled() -> dict[str, tuple[bool, str]] | None:
            rows = picker_rows(browser)
            done = all(name in rows and not rows[name][0] for name in BENCHMARK_USERS)
            return rows if done else None

        rows = wait_until("benchmark users unticked", settled, log=run.log)
        for name in BENCHMARK_USERS:
            assert rows[name] == (False, BENCHMARK_NOTE)
        ticked = sorted(name for name, (on, _title) in rows.items() if on)
        assert "ComplianceUser" in ticked and not set(ticked) & set(BENCHMARK_USERS), ticked

        browser.find_element(By.XPATH, "//*[text()='Custom parameters']").click()
        note = wait_until("the profile note", lambda: browser.find_elements(By.ID, "profile-stages"))[0]
        assert note.text.startswith("No load profile")
        choose_profile(browser, "smoke")
        wait_until("smoke's stages", lambda: note.text == "smoke: 1 stage, 60 s: 60 s at 2 users (+2/s)")
        field = browser.find_element(By.NAME, "profileTimeScale")
        field.send_keys(Keys.CONTROL, "a", Keys.DELETE)
        field.send_keys("0.05")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until("the run", lambda: header(browser).get("Status") in ("RUNNING", "STOPPED"), log=run.log)
        spawned = wait_until(
            "the users", lambda: re.findall(r"All users spawned: (\{[^}]*\})", run.output()), log=run.log
        )
        assert not any(name in s for s in spawned for name in BENCHMARK_USERS), spawned
        assert "Load profile smoke" in run.output()
    finally:
        run.process.terminate()
        try:
            run.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait()
