"""The HTTP users together in one run against the backend on PostgreSQL: every class works, nothing fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance_loadtest.api import Api
from tests.backend_process import Backend
from tests.scenarios.locust_run import locust, stats_of

API = Api()
CLASSES = ["ComplianceUser", "ReportingUser", "StressTestUser", "PeakTrafficScenario"]
# A reporting user waits 2-6 s between tasks and starts a report in 3 of 11, so in a 5-second run
# its two users may never draw one: pinned to that task, the report path is exercised every time.
REPORTS_ONLY = '{"user_class_name": "ReportingUser", "tasks": ["generate_report"]}'


@pytest.mark.postgres
def test_full_mix_runs_clean_on_postgresql(pg_backend: Backend, tmp_path: Path) -> None:
    args = ["-f", "locust_scenarios", "--headless", "-u", "8", "-r", "8", "-t", "5s", "--only-summary"]
    args += ["--host", pg_backend.url, "--csv", str(tmp_path / "run"), "--report-timeout", "20"]
    args += [*CLASSES, "--config-users", REPORTS_ONLY]  # last: it takes every value that follows
    proc = locust(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = stats_of(proc)
    assert stats.total_failures == 0, stats.failures
    assert stats.exceptions == []
    # Each class left its mark: onboarding, report jobs, bulk writes, the morning rush.
    for method, key in [
        ("POST", "assessments.complete"),
        ("POST", "reports.generate"),
        ("POST", "evidence.bulk_create"),
        ("GET", "compliance.status"),
    ]:
        assert stats.requests(method, API.name(key)) > 0, key
