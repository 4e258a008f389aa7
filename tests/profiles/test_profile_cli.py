"""`locust -f locust_scenarios` with and without `--load-profile`: bad profiles stop Locust with exit
code 2 before any load, and without a profile -u/-r/-t behave exactly as in plain Locust."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.backend_process import Backend
from tests.profiles.runs import start_locust

BAD_STAGE = """
stages:
  - {duration: 60, users: 2, spawn_rate: 1}
  - {duration: 60, users: 4, spawn_rate: -3}
"""


def requests_received(backend: Backend) -> int:
    status, body = backend.request("GET", "/admin/requests")
    assert status == 200 and isinstance(body, dict)
    return int(body["total"])


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ("bad-stage.yaml", r"bad-stage.yaml: stage 2: key 'spawn_rate': must be above 0, got -3"),
        ("not-yaml.yaml", r"not-yaml.yaml: not valid YAML"),
        ("unknown-class.yaml", r"unknown-class.yaml: stage 1: key 'mix.NoSuchUser': unknown user class"),
        ("no-capacity.yaml", r"no-capacity.yaml: stage 1: key 'max_users': an arrival rate needs capacity"),
        ("no-such-profile", r"no-such-profile: unknown profile; shipped profiles are"),
    ],
)
def test_bad_profile_exits_2_naming_file_stage_and_key_before_any_load(
    profile: str, message: str, backend: Backend, tmp_path: Path
) -> None:
    (tmp_path / "bad-stage.yaml").write_text(BAD_STAGE)
    (tmp_path / "not-yaml.yaml").write_text("stages: [ {duration: 1\n")
    (tmp_path / "unknown-class.yaml").write_text(
        "stages:\n  - {duration: 5, users: 1, spawn_rate: 1, mix: {NoSuchUser: 1}}\n"
    )
    (tmp_path / "no-capacity.yaml").write_text(
        "model: arrival\nworkflow: ComplianceUser\nstages:\n  - {duration: 5, rate: 10}\n"
    )
    backend.request("DELETE", "/admin/requests")
    run = start_locust(
        tmp_path,
        "bad",
        ["ComplianceUser", "--headless", "--host", backend.url, "--load-profile", profile],
        csv_history=False,
    ).finish(timeout=60)
    assert run.returncode == 2, run.output()
    assert re.search(message, run.output()), run.output()
    assert "Shape test" not in run.output() and "Ramping to" not in run.output()
    assert requests_received(backend) == 0


def test_bad_time_scale_exits_2(backend: Backend, tmp_path: Path) -> None:
    args = ["ComplianceUser", "--headless", "--host", backend.url, "--load-profile", "smoke"]
    run = start_locust(tmp_path, "scale", [*args, "--profile-time-scale", "0"], csv_history=False).finish(60)
    assert run.returncode == 2
    assert "--profile-time-scale: must be a positive number, got 0" in run.output()


def test_without_a_profile_users_spawn_rate_and_run_time_work_as_in_plain_locust(
    backend: Backend, tmp_path: Path
) -> None:
    args = ["ComplianceUser", "--headless", "--host", backend.url, "-u", "3", "-r", "3", "-t", "4s"]
    run = start_locust(tmp_path, "plain", args).finish(timeout=60)
    assert run.returncode == 0, run.output()[-3000:]
    out = run.output()
    assert "Run time limit set to 4 seconds" in out
    assert "Shape test" not in out and "Load profile" not in out  # the shape took itself out
    assert "have no impact on LoadShapes" not in out  # and Locust did not warn that -u/-r are ignored
    counts = [int(row["User Count"]) for row in run.history()]
    assert max(counts) == 3 and counts.count(3) >= 2
