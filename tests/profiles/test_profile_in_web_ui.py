"""A load profile chosen in Locust's web UI, in a real headless browser, takes effect on start.

Locust runs with `--class-picker`: the test keeps only ComplianceUser, picks `ramp` from the profile
drop-down, types a time scale into the custom parameters, leaves the shape selector on "Default" and the
user count at 1, and starts. The profile (10 users) must drive the run: the header's user count climbs
to 10, stats rows appear, and the Stop button stops it.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backend_process import Backend, free_port
from tests.profiles.runs import start_locust

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1400, 2000)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(what: str, check: Callable[[], Any], timeout: float = 45.0, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.25)


def header(driver: Any) -> dict[str, str]:
    """The web UI's header as label -> value ("Status": "RUNNING", "Users": "10", ...)."""
    from selenium.webdriver.common.by import By

    lines = driver.find_element(By.TAG_NAME, "header").text.splitlines()
    return dict(zip(lines[::2], lines[1::2], strict=False))


def choose_profile(driver: Any, name: str) -> None:
    """Pick a shipped profile in the load_profile drop-down, a native select that Locust's form reads
    when it is sent (set as a person's pick would, whether or not the custom parameters are open)."""
    from selenium.webdriver.common.by import By

    field = wait_until("the profile drop-down", lambda: driver.find_elements(By.NAME, "loadProfile"))[0]
    options = [o.get_attribute("value") for o in field.find_elements(By.TAG_NAME, "option")]
    assert name in options, options
    driver.execute_script(
        "arguments[0].value = arguments[1];arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
        field,
        name,
    )
    assert field.get_attribute("value") == name


def open_custom_parameters(driver: Any) -> None:
    """Open the start form's custom parameters and wait until the form stops moving: the panel opens
    with an animation, and a field typed into or a button pressed meanwhile may not be the one under
    the pointer or the keyboard when the animation ends."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, "//*[text()='Custom parameters']").click()
    button = driver.find_element(By.CSS_SELECTOR, "button[type=submit]")
    last: list[object] = [None]

    def still() -> bool:
        rect = button.rect
        settled = rect == last[0]
        last[0] = rect
        return settled

    wait_until("the start form to settle", still, timeout=10)


def press_start(driver: Any) -> None:
    """Press the start form's submit button as a person would: in view, and once it takes the click. While
    the custom parameters' panel opens, the form moves under the pointer and a field gets the click."""
    from selenium.common.exceptions import ElementClickInterceptedException
    from selenium.webdriver.common.by import By

    button = driver.find_element(By.CSS_SELECTOR, "button[type=submit]")

    def pressed() -> bool:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        try:
            button.click()
        except ElementClickInterceptedException:
            return False
        return True

    wait_until("the start button to take a click", pressed, timeout=10)


def test_profile_picked_in_the_web_ui_drives_the_run(backend: Backend, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    port = free_port()
    args = ["--class-picker", "--web-host", "127.0.0.1", "--web-port", str(port)]
    args += ["--host", backend.url, "--scenario-seed", "7"]
    run = start_locust(tmp_path, "web", args, csv_history=False)
    url = f"http://127.0.0.1:{port}/"
    try:

        def ui_up() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until("the web UI", ui_up)
        browser.get(url)
        wait_until(
            "the class picker", lambda: browser.find_elements(By.XPATH, "//td[text()='ComplianceUser']")
        )

        for row in browser.find_elements(By.CSS_SELECTOR, "tr"):
            cells = row.find_elements(By.CSS_SELECTOR, "td")
            if len(cells) > 1 and cells[1].text and cells[1].text != "ComplianceUser":
                for box in row.find_elements(By.CSS_SELECTOR, "input[type=checkbox]"):
                    if box.is_selected():
                        browser.execute_script("arguments[0].click()", box)

        open_custom_parameters(browser)
        choose_profile(browser, "ramp")
        field = wait_until("profileTimeScale", lambda: browser.find_elements(By.NAME, "profileTimeScale"))[0]
        field.send_keys(Keys.CONTROL, "a", Keys.DELETE)
        field.send_keys("0.03")
        assert browser.find_element(By.NAME, "userCount").get_attribute("value") == "1"
        press_start(browser)

        # the profile's 10 users, not the form's 1
        wait_until("10 users", lambda: header(browser).get("Users") == "10", log=run.log)
        assert header(browser)["Status"] == "RUNNING"
        rows = wait_until(
            "stats rows",
            lambda: [r.text for r in browser.find_elements(By.CSS_SELECTOR, "table tr") if "/api/" in r.text],
        )
        assert any(r.startswith("POST /api/auth/register") for r in rows), rows

        browser.find_element(By.XPATH, "//button[text()='Stop']").click()
        wait_until("the stop", lambda: header(browser).get("Status") == "STOPPED", log=run.log)
        assert "Load profile ramp (closed, 3 stages" in run.output()
        assert '"ComplianceUser": 10' in run.output()  # only the class picked in the UI
    finally:
        run.process.terminate()
        try:
            run.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait()
