"""A master asks its workers for their stats reports now (`plugin.reports.fresh_reports`): what it holds
afterwards is everything the workers had done, seconds before Locust's own 3-second reports would
bring it; a worker that cannot answer is named and the master goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backend_process import Backend, free_port

pytestmark = [pytest.mark.slow]

USERS = 4
EACH = 25

# Each user records EACH measurements at once, then idles; the master, 1.5 s in, writes what its stats
# hold before and after asking for fresh reports.
LOCUSTFILE = f"""
import json
import os
import time

import gevent
from locust import User, constant, events, task
from locust.runners import MasterRunner

import locust_scenarios  # noqa: F401  (the library's plugin)
from compliance_loadtest.plugin.reports import REPORT_NOW_MESSAGE, fresh_reports


class BurstUser(User):
    wait_time = constant(60)

    @task
    def burst(self):
        for _ in range({EACH}):
            self.environment.events.request.fire(
                request_type="PROBE", name="burst", response_time=1.0, response_length=0,
                exception=None, context={{}},
            )


@events.init.add_listener
def on_init(environment, runner, **_kw):
    if os.environ.get("PROBE_DEAF_WORKERS") and not isinstance(runner, MasterRunner):
        runner.custom_messages.pop(REPORT_NOW_MESSAGE, None)  # as a worker of an older version


@events.test_start.add_listener
def on_test_start(environment, **_kw):
    if not isinstance(environment.runner, MasterRunner):
        return

    def probe():
        gevent.sleep(1.5)
        before = environment.stats.total.num_requests
        asked = time.monotonic()
        answered = fresh_reports(environment, timeout=1.0)
        result = {{
            "before": before,
            "after": environment.stats.total.num_requests,
            "answered": answered,
            "waited_s": time.monotonic() - asked,
        }}
        with open(os.environ["PROBE_OUT"], "w") as f:
            json.dump(result, f)

    gevent.spawn(probe)
"""


def run(tmp_path: Path, backend: Backend, deaf: bool) -> tuple[dict[str, object], str]:
    locustfile = tmp_path / "burst.py"
    locustfile.write_text(LOCUSTFILE)
    out = tmp_path / "probe.json"
    port = str(free_port())
    env = {"PROBE_OUT": str(out), "PYTHONUNBUFFERED": "1", **({"PROBE_DEAF_WORKERS": "1"} if deaf else {})}
    cmd = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", backend.url,
        "-u", str(USERS), "-r", "100", "-t", "4s", "--stop-timeout", "1", "--only-summary",
        "--processes", "2", "--master-bind-port", port, "--master-port", port,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert out.exists(), output[-3000:]
    return json.loads(out.read_text()), output


def test_the_master_holds_every_request_the_workers_made_once_they_answer(
    tmp_path: Path, backend: Backend
) -> None:
    result, output = run(tmp_path, backend, deaf=False)
    assert result["answered"] is True, (result, output[-3000:])
    assert result["after"] == USERS * EACH, result
    assert "no stats report from" not in output


def test_a_worker_that_cannot_answer_is_named_and_the_master_goes_on(
    tmp_path: Path, backend: Backend
) -> None:
    result, output = run(tmp_path, backend, deaf=True)
    assert result["answered"] is False, result
    assert float(str(result["waited_s"])) >= 1.0, result  # it waited for the answers it asked for
    assert "no stats report from 2 worker(s) within 1 s of asking" in output, output[-3000:]
