"""The web UI's start form in a real headless browser: the load profile is picked from a drop-down of
the shipped profiles, which shows the chosen one's stages before the start, and the class picker leaves
the benchmark users unticked (saying why), so START runs a normal mix without them."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from compliance_loadtest.plugin.web_form import BENCHMARK_NOTE
from compliance_loadtest.profiles import available_profiles
from tests.backend_process import Backend, free_port
from tests.profiles.runs import start_locust
from tests.profiles.test_profile_in_web_ui import (
    browser,
    choose_profile,
    open_custom_parameters,
    press_start,
    wait_until,
)

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


def start_web(backend: Backend, tmp_path: Path) -> tuple[str, Any]:
    port = free_port()
    args = ["--class-picker", "--web-host", "127.0.0.1", "--web-port", str(port), "--host", backend.url]
    args += ["--scenario-seed", "5", "--no-live-verdict"]
    run = start_locust(tmp_path, "web", args, csv_history=False)
    url = f"http://127.0.0.1:{port}/"

    def ui_up() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_until("the web UI", ui_up, log=run.log)
    return url, run


def stop(run: Any) -> None:
    run.process.terminate()
    try:
        run.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.wait()


def test_profile_drop_down_lists_the_shipped_profiles_and_shows_the_stages(
    backend: Backend, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, run = start_web(backend, tmp_path)
    try:
        browser.get(url)
        open_custom_parameters(browser)
        select = wait_until("the drop-down", lambda: browser.find_elements(By.NAME, "loadProfile"))[0]
        options = [o.get_attribute("value") for o in select.find_elements(By.TAG_NAME, "option")]
        assert options == ["", *available_profiles()]
        # The note is written by the form's script once the select is there: wait for its text.
        note = wait_until(
            "the profile note",
            lambda: [e for e in browser.find_elements(By.ID, "profile-stages") if e.text],
        )[0]
        assert note.text.startswith("No load profile")
        choose_profile(browser, "smoke")
        wait_until("smoke's stages", lambda: note.text == "smoke: 1 stage, 60 s: 60 s at 2 users (+2/s)")
        field = browser.find_element(By.NAME, "profileTimeScale")
        field.send_keys(Keys.CONTROL, "a", Keys.DELETE)
        field.send_keys("0.05")
        press_start(browser)
        wait_until("the profile", lambda: "Load profile smoke" in run.output(), log=run.log)
    finally:
        stop(run)


def test_benchmark_users_start_unticked_and_say_why(backend: Backend, browser: Any, tmp_path: Path) -> None:
    url, run = start_web(backend, tmp_path)
    try:
        browser.get(url)
        seen: list[dict[str, tuple[bool, str]]] = []

        def settled() -> dict[str, tuple[bool, str]] | None:
            rows = picker_rows(browser)
            seen[:] = [rows]
            done = all(name in rows and not rows[name][0] for name in BENCHMARK_USERS)
            return rows if done else None

        try:
            rows = wait_until("benchmark users unticked", settled, timeout=20, log=run.log)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\npicker rows: {seen}") from None
        for name in BENCHMARK_USERS:
            assert rows[name] == (False, BENCHMARK_NOTE)
        ticked = sorted(name for name, (on, _title) in rows.items() if on)
        assert "ComplianceUser" in ticked and not set(ticked) & set(BENCHMARK_USERS), ticked
    finally:
        stop(run)
