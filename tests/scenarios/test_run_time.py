"""`-t` means what it says: a headless run of the library lasts its whole run time.

Locust schedules the end of the run from gevent's cached clock; the library's imports and set-up used
to leave that clock behind, so a `-t 3s` run stopped after about 2.6 s (more on a busy machine).
The check is a lower bound, which a slow or busy machine cannot break.
"""

from __future__ import annotations

from datetime import datetime

from tests.backend_process import Backend
from tests.scenarios.locust_run import locust


def _log_time(stderr: str, marker: str) -> datetime:
    line = next(line for line in stderr.splitlines() if marker in line)
    return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")


def test_a_three_second_run_lasts_three_seconds(scenario_backend: Backend) -> None:
    args = ["-f", "locust_scenarios", "ComplianceUser", "--headless", "-u", "1", "-r", "1", "-t", "3s"]
    proc = locust([*args, "--host", scenario_backend.url, "--only-summary"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    started = _log_time(proc.stderr, "Run time limit set to 3 seconds")
    ended = _log_time(proc.stderr, "--run-time limit reached")
    assert (ended - started).total_seconds() >= 2.95, proc.stderr[-2000:]
