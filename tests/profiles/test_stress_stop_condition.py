"""A stress profile stops by itself when its stop condition holds, and says where the backend broke."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend_process import Backend, run_backend
from tests.profiles.runs import start_locust

PROFILE = """
description: step up until p95 passes one second
stop_when: {p95_ms: 1000, window: 4, min_requests: 3}
stages:
  - {duration: 4, users: 2, spawn_rate: 2}
  - {duration: 4, users: 4, spawn_rate: 2}
  - {duration: 4, users: 6, spawn_rate: 2}
  - {duration: 4, users: 8, spawn_rate: 2}
"""


@pytest.fixture
def own_backend(tmp_path: Path) -> Iterator[Backend]:
    with run_backend(tmp_path) as b:
        yield b


@pytest.mark.slow
def test_stress_stops_when_p95_passes_its_limit_and_names_the_stage(
    own_backend: Backend, tmp_path: Path
) -> None:
    profile = tmp_path / "break-me.yaml"
    profile.write_text(PROFILE)
    args = ["ComplianceUser", "--headless", "--host", own_backend.url, "--load-profile", str(profile)]
    run = start_locust(tmp_path, "stress", [*args, "--stop-timeout", "3"])
    deadline = time.monotonic() + 30
    while "stage 1/4" not in run.output():
        assert run.process.poll() is None and time.monotonic() < deadline, run.output()
        time.sleep(0.1)
    stall = [{"path": "/api/*", "method": "GET", "latency_ms": 1500}]
    assert own_backend.request("PUT", "/admin/faults", {"faults": stall})[0] == 200
    run.finish(timeout=60)

    assert run.returncode == 0, run.output()[-3000:]
    found = re.search(
        r"Load profile break-me stopped at stage (\d), (\d+) users, ([\d.]+)s in: p95 (\d+) ms > 1000 ms",
        run.output(),
    )
    assert found, run.output()[-3000:]
    stage, _users, elapsed, p95 = (float(g) for g in found.groups())
    assert stage < 4 and elapsed < 12, "it stopped before the profile's last stage"
    assert p95 >= 1000
    assert "completed after" not in run.output()
