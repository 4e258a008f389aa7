"""The web UI's start request (`POST /swarm`) with the `load_profile` field: a bad profile is refused
with its file, stage and key and nothing starts; an empty field is a plain Locust run with the form's
user count; a profile typed there replaces the form's numbers. One Locust process, no browser."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backend_process import Backend, free_port
from tests.library.locustfiles import MINE
from tests.profiles.runs import Run, start_locust


@pytest.fixture
def web(backend: Backend, tmp_path: Path) -> Iterator[tuple[str, Run]]:
    yield from open_web(tmp_path, ["ComplianceUser", "--host", backend.url])


def open_web(tmp_path: Path, args: list[str], **start: Any) -> Iterator[tuple[str, Run]]:
    port = free_port()
    args = [*args, "--web-host", "127.0.0.1", "--web-port", str(port)]
    run = start_locust(tmp_path, "web", args, csv_history=False, **start)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            get(url, "/stats/requests")
            break
        except OSError:
            assert run.process.poll() is None and time.monotonic() < deadline, run.output()
            time.sleep(0.2)
    try:
        yield url, run
    finally:
        run.process.terminate()
        run.process.wait(timeout=20)


def get(url: str, path: str) -> Any:
    with urllib.request.urlopen(url + path, timeout=5) as resp:
        return json.loads(resp.read())


def post(url: str, path: str, form: dict[str, str] | None = None) -> Any:
    data = urllib.parse.urlencode(form or {}).encode()
    with urllib.request.urlopen(
        urllib.request.Request(url + path, data=data, method="POST"), timeout=10
    ) as r:
        return json.loads(r.read())


def wait_users(url: str, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (stats := get(url, "/stats/requests"))["user_count"] != count:
        assert time.monotonic() < deadline, f"user count {stats['user_count']}, expected {count}"
        time.sleep(0.2)


def test_web_form_refuses_a_bad_profile_runs_plain_without_one_and_the_profile_with_one(
    web: tuple[str, Run], tmp_path: Path
) -> None:
    url, run = web
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - {duration: 5, users: 1, spawn_rate: 1}\n  - {duration: 5, users: 2}\n")
    form = {"user_count": "3", "spawn_rate": "3"}

    answer = post(url, "/swarm", {**form, "load_profile": str(bad)})
    assert answer["success"] is False
    assert "bad.yaml: stage 2: key 'spawn_rate': missing (line 3)" in answer["message"]
    assert get(url, "/stats/requests")["state"] == "ready", "nothing started"

    answer = post(url, "/swarm", {**form, "load_profile": ""})
    assert answer["success"] is True and answer["message"] == "Swarming started"
    wait_users(url, 3)  # the form's count: plain Locust
    post(url, "/stop")
    wait_users(url, 0)

    answer = post(url, "/swarm", {**form, "load_profile": "smoke", "profile_time_scale": "0.2"})
    assert answer["success"] is True and "LoadProfileShape" in answer["message"]
    wait_users(url, 2)  # smoke's 2 users, not the form's 3
    post(url, "/stop")
    assert "Load profile smoke (closed, 1 stages, 12s, time scale 0.2)" in run.output()


def test_web_form_with_the_library_fields_left_empty_starts_a_seeded_run(web: tuple[str, Run]) -> None:
    """The web UI sends every option it shows back as text, an empty one when unset: a start request
    with all the library's fields empty runs, and the run's printed seed is the one it uses."""
    url, run = web
    form = {
        "user_count": "2",
        "spawn_rate": "2",
        "scenario_seed": "",
        "login_email": "",
        "login_password": "",
        "api_paths": "",
        "db_url": "",
        "report_timeout": "60.0",
        "load_profile": "",
        "profile_time_scale": "1.0",
    }
    answer = post(url, "/swarm", form)
    assert answer["success"] is True, answer
    wait_users(url, 2)
    deadline = time.monotonic() + 20
    while not (stats := get(url, "/stats/requests"))["total_rps"] and time.monotonic() < deadline:
        time.sleep(0.3)
    rows = [s for s in stats["stats"] if s["name"] != "Aggregated"]
    assert rows and all(s["num_failures"] == 0 for s in rows), rows
    post(url, "/stop")
    assert "Scenario seed" in run.output()

    answer = post(url, "/swarm", {**form, "scenario_seed": "42"})
    assert answer["success"] is True, answer
    wait_users(url, 2)
    post(url, "/stop")


def test_web_form_runs_a_profile_for_a_locustfile_that_imports_steps_but_not_the_shape(
    backend: Backend, tmp_path: Path
) -> None:
    """Locust finds shape classes only among a locustfile's names; the profile typed in the form is
    run all the same (it was ignored: the form's user count ran instead)."""
    mine = tmp_path / "steps_only.py"
    mine.write_text(MINE)
    profile = tmp_path / "two.yaml"
    profile.write_text("stages:\n  - {duration: 30, users: 2, spawn_rate: 2}\n")
    web = open_web(tmp_path, ["--host", backend.url], locustfiles=[str(mine)], with_scenarios=False)
    url, run = next(web)
    try:
        answer = post(url, "/swarm", {"user_count": "3", "spawn_rate": "3", "load_profile": str(profile)})
        assert answer["success"] is True and "LoadProfileShape" in answer["message"], answer
        wait_users(url, 2)  # the profile's 2 users, not the form's 3
        post(url, "/stop")
        assert "Load profile two (closed, 1 stages, 30s)" in run.output()
    finally:
        web.close()
