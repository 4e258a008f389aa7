"""Real Locust runs for the run-folder tests: a small locustfile, command lines, and reading the outputs.

The locustfile loads the library's options (and with them the run-folder listeners) exactly as every
scenario file does, and makes two kinds of HTTP requests against the reference backend (one always
succeeds, one always fails) plus one non-HTTP measure with the optional record columns in its context.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from compliance_loadtest.run_folder import RunInfo
from tests.backend_process import Backend, free_port, sigint_default

LOCUSTFILE = """
import locust_scenarios  # noqa: F401  (installs the library's options and listeners)
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser


class RecordProbeUser(FastHttpUser):
    wait_time = constant(0.02)

    def context(self):
        return {"user_class": "RecordProbeUser", "tags": "probe"}

    @task(3)
    def health(self):
        self.client.get("/health")

    @task(1)
    def missing(self):
        with self.client.get("/no-such-route", name="/no-such-route", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"expected 200, got {r.status_code}")

    @task(1)
    def stream_measure(self):
        self.environment.events.request.fire(
            request_type="LLM",
            name="sse tokens/s",
            response_time=123.456789,
            response_length=0,
            exception=None,
            context={**self.context(), "ttft_ms": 4.25, "tokens": 11, "group": "ai"},
        )
"""

HTTP_TYPES = ("GET",)


# Appended to the probe by `write_locustfile(..., report_modules=True)`: each process (worker, master or
# local) writes, as it quits, which of the heavy modules it has imported, to `modules-<role>-<pid>.json`
# in its working folder.
REPORT_MODULES = """
import json, os, sys
from locust import events
from locust.runners import MasterRunner, WorkerRunner


@events.quitting.add_listener
def _report_modules(environment, **_kw):
    runner = environment.runner
    role = "local"
    if isinstance(runner, (WorkerRunner, MasterRunner)):
        role = "worker" if isinstance(runner, WorkerRunner) else "master"
    heavy = ("pyarrow", "pandas", "compliance_loadtest.plugin.run_output")
    heavy = sorted(m for m in heavy if m in sys.modules)
    with open(f"modules-{role}-{os.getpid()}.json", "w") as f:
        json.dump(heavy, f)
"""


def write_locustfile(directory: Path, report_modules: bool = False) -> Path:
    path = directory / "record_probe.py"
    path.write_text(LOCUSTFILE + (REPORT_MODULES if report_modules else ""))
    return path


def processes_modules(directory: Path, role: str = "worker") -> list[list[str]]:
    """What each process of `role` (worker, master, local) of a `report_modules` probe had imported when
    it quit."""
    return [json.loads(p.read_text()) for p in sorted(directory.glob(f"modules-{role}-*.json"))]


def locust(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", *args]


def headless(locustfile: Path, host: str, run_dir: Path, users: int, seconds: int, *extra: str) -> list[str]:
    return locust(
        "-f", str(locustfile), "--headless", "-u", str(users), "-r", str(max(users, 1)), "-t", f"{seconds}s",
        "--stop-timeout", "5", "-H", host, "--run-dir", str(run_dir), *extra,
    )  # fmt: skip


def start(cmd: Sequence[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, preexec_fn=sigint_default
        )


def finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        proc.kill()
        proc.wait()
        raise AssertionError(
            f"locust did not finish within {timeout}s:\n{log.read_text(errors='replace')}"
        ) from e


def run(cmd: Sequence[str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    log = cwd / f"locust-{time.monotonic_ns()}.log"
    rc = finish(start(cmd, log, cwd), log, timeout)
    return rc, log.read_text(errors="replace")


def reset_count(backend: Backend) -> None:
    status, _ = backend.request("DELETE", "/admin/requests")
    assert status in (200, 204), status


def backend_count(backend: Backend) -> int:
    status, body = backend.request("GET", "/admin/requests")
    assert status == 200 and isinstance(body, dict), (status, body)
    return int(body["total"])


def read_outputs(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    run = json.loads((run_dir / "run.json").read_text())
    # Every run.json the library writes reads back through the contract, key for key.
    assert RunInfo.from_json(run, file=str(run_dir / "run.json")).to_json() == run
    summary = json.loads((run_dir / "summary.json").read_text())
    record = pd.read_parquet(run_dir / "requests")
    return run, summary, record


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def resource_rows(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "resources.csv")


def locust_stats_total(run_dir: Path) -> tuple[int, int]:
    """The Aggregated row of Locust's locust_stats.csv."""
    stats = pd.read_csv(run_dir / "locust_stats.csv")
    row = stats[stats["Name"] == "Aggregated"].iloc[0]
    return int(row["Request Count"]), int(row["Failure Count"])


class Distributed:
    """A master and its workers as separate processes on loopback, each worker killable on its own."""

    def __init__(
        self, cwd: Path, locustfile: Path, host: str, run_dir: Path | None, workers: int, seconds: int
    ):
        self.cwd = cwd
        self.port = free_port()
        self.master_log = cwd / "master.log"
        self.master = start(
            locust(
                "-f",
                str(locustfile),
                "--headless",
                "--master",
                "--expect-workers",
                str(workers),
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(self.port),
                "-u",
                str(2 * workers),
                "-r",
                str(2 * workers),
                "-t",
                f"{seconds}s",
                "--stop-timeout",
                "5",
                "-H",
                host,
                *(("--run-dir", str(run_dir)) if run_dir is not None else ()),
            ),
            self.master_log,
            cwd,
        )
        self.workers = [
            start(
                locust(
                    "-f",
                    str(locustfile),
                    "--worker",
                    "--master-host",
                    "127.0.0.1",
                    "--master-port",
                    str(self.port),
                ),
                cwd / f"worker-{i}.log",
                cwd,
            )
            for i in range(workers)
        ]

    def signal_master(self, sig: signal.Signals) -> None:
        self.master.send_signal(sig)

    def finish(self, timeout: float = 90) -> int:
        try:
            return finish(self.master, self.master_log, timeout)
        finally:
            for w in self.workers:
                try:
                    w.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait()

    def log(self) -> str:
        return self.master_log.read_text(errors="replace")
