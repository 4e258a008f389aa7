"""Run Locust on the scenario library as a subprocess, and read what it wrote."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

EXPECTED_USER_CLASSES = (
    "ComplianceUser",
    "AIAssistantUser",
    "ReportingUser",
    "StressTestUser",
    "ChatWebSocketUser",
    "DatabaseStressUser",
    "PeakTrafficScenario",
    "ApiBenchmarkUser",
    "DbBenchmarkUser",
)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without the library's own settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CGPT_", "LOCUST_"))}
    env.pop("DATABASE_URL", None)
    env.update(extra or {})
    return env


def locust(
    args: Sequence[str],
    *,
    cwd: Path = REPO,
    env: Mapping[str, str] | None = None,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    """`python -m locust ARGS`, waited for; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "locust", *args],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Stats:
    """Locust's `--csv` stats: (method, name) -> (requests, failures), and the other CSV files."""

    rows: dict[tuple[str, str], tuple[int, int]]
    failures: list[dict[str, str]]
    exceptions: list[dict[str, str]]

    def requests(self, method: str, name: str) -> int:
        return self.rows.get((method, name), (0, 0))[0]

    def failed(self, method: str, name: str) -> int:
        return self.rows.get((method, name), (0, 0))[1]

    @property
    def total_failures(self) -> int:
        return sum(f for _, f in self.rows.values())


def read_csv(prefix: Path) -> Stats:
    def rows(suffix: str) -> list[dict[str, str]]:
        path = Path(f"{prefix}_{suffix}.csv")
        with path.open(newline="") as f:
            return list(csv.DictReader(f))

    stats = {
        (r["Type"], r["Name"]): (int(r["Request Count"]), int(r["Failure Count"]))
        for r in rows("stats")
        if r["Name"] != "Aggregated"
    }
    return Stats(stats, rows("failures"), rows("exceptions"))


@dataclass
class DriverResult:
    """What `tests.scenarios.run_users` reports."""

    rows: dict[tuple[str, str], tuple[int, int]]
    errors: list[dict[str, Any]]
    exceptions: list[str]
    unhandled_greenlet_exception: bool

    def requests(self, method: str, name: str) -> int:
        return self.rows.get((method, name), (0, 0))[0]

    def failed(self, method: str, name: str) -> int:
        return self.rows.get((method, name), (0, 0))[1]


def run_users(
    host: str,
    *classes: str,
    users: int = 2,
    seconds: float = 4.0,
    wait: float | None = 0.01,
    locust_args: str = "",
    env: Mapping[str, str] | None = None,
) -> DriverResult:
    """Run user classes (`module:Class`) with a local runner in a subprocess; their stats."""
    cmd = [sys.executable, "-m", "tests.scenarios.run_users", "--host", host, "--users", str(users)]
    cmd += ["--seconds", str(seconds), "--locust-args", locust_args]
    if wait is not None:
        cmd += ["--wait", str(wait)]
    proc = subprocess.run(
        [*cmd, *classes], cwd=REPO, env=clean_env(env), capture_output=True, text=True, timeout=seconds + 60
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = {(e["method"], e["name"]): (e["requests"], e["failures"]) for e in data["entries"]}
    return DriverResult(rows, data["errors"], data["exceptions"], data["unhandled_greenlet_exception"])
