"""With faults injected in the backend (500s, slow replies, a stopped backend), the failures land in the
stats with messages, the users keep running, and no exception escapes a greenlet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.backend_process import Backend, run_backend
from tests.scenarios.conftest import faults
from tests.scenarios.locust_run import REPO, clean_env, locust, parse_stats, run_users, stats_of


def test_server_errors_become_failures_and_users_keep_going(scenario_backend: Backend) -> None:
    rule = {"path": "/api/compliance/status", "method": "GET", "error_rate": 0.5}
    with faults(scenario_backend, rule):
        result = run_users(
            scenario_backend.url, "peak_traffic:PeakTrafficScenario", users=2, seconds=3, wait=0.1
        )
    sent = result.requests("GET", "/api/compliance/status")
    failed = result.failed("GET", "/api/compliance/status")
    assert 0 < failed < sent
    assert any("expected 200, got 500" in e["error"] for e in result.errors), result.errors
    # Everything else went on working.
    assert result.requests("GET", "/api/users/dashboard") > 0
    assert result.failed("GET", "/api/users/dashboard") == 0
    assert result.exceptions == [] and not result.unhandled_greenlet_exception


def test_replies_slower_than_the_timeout_become_failures(scenario_backend: Backend, tmp_path: Path) -> None:
    rule = {"path": "/api/compliance/status", "method": "GET", "latency_ms": 1500}
    config = tmp_path / "users.json"
    config.write_text(json.dumps({"user_class_name": "PeakTrafficScenario", "network_timeout": 0.5}))
    # The class first: --config-users takes every value that follows it.
    args = ["-f", "locust_scenarios", "PeakTrafficScenario", "--headless", "-u", "2", "-r", "2", "-t", "4s"]
    args += [
        "--only-summary",
        "--host",
        scenario_backend.url,
        "--csv",
        str(tmp_path / "run"),
        "--config-users",
        str(config),
    ]
    with faults(scenario_backend, rule):
        proc = locust(args)
    assert proc.returncode == 1, proc.stderr[-2000:]
    stats = stats_of(proc)
    assert stats.failed("GET", "/api/compliance/status") > 0
    assert "no response" in stats.messages
    assert stats.requests("GET", "/api/users/dashboard") > stats.failed("GET", "/api/users/dashboard")
    assert stats.exceptions == []


def test_a_backend_that_stops_mid_run_turns_into_failures_not_crashes(tmp_path: Path) -> None:
    args = ["-f", "locust_scenarios", "--headless", "-u", "2", "-r", "2", "-t", "6s", "--only-summary"]
    with run_backend(tmp_path) as backend:
        args += ["--host", backend.url, "--json", "PeakTrafficScenario"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", *args],
            cwd=REPO,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)  # users logged in and working
        backend.process.terminate()
        backend.process.wait(timeout=15)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-2000:]
    stats = parse_stats(out, err)
    assert stats.total_failures >= 2, "no failures after the backend stopped"
    messages = stats.messages
    assert "no response" in messages, messages
    # Ids are grouped in messages as in names, so a dead backend adds a bounded number of failure rows.
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-", messages), messages
    assert stats.exceptions == [], stats.exceptions
    assert "Traceback" not in err


def test_a_report_job_that_outlasts_the_timeout_fails_with_a_message(tmp_path: Path) -> None:
    with run_backend(tmp_path, settings={"CGPT_REPORT_SECONDS": "60"}) as backend:
        result = run_users(
            backend.url,
            "reporting:ReportingUser",
            users=2,
            seconds=4,
            locust_args="-T report --report-timeout 1",
        )
    jobs = {name: counts for (method, name), counts in result.rows.items() if method == "JOB"}
    assert jobs and all(requests == failures > 0 for requests, failures in jobs.values()), jobs
    job_errors = [e["error"] for e in result.errors if e["method"] == "JOB"]
    assert job_errors and all("not completed within --report-timeout 1 s" in e for e in job_errors), (
        job_errors
    )
    # Other users' work went on while the jobs were polled.
    assert result.requests("GET", "/api/analytics/dashboard") > 0
    assert result.exceptions == [] and not result.unhandled_greenlet_exception
