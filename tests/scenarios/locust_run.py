"""Run Locust on the scenario library as a subprocess, and read what it wrote."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.backend_process import sigint_default

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
    """`python -m locust ARGS`, waited for; stdout and stderr captured as text.

    A run given `--csv` also gets `--json`, so `stats_of` can read its final stats.
    """
    if "--csv" in args and "--json" not in args:
        args = [*args, "--json"]
    return subprocess.run(
        [sys.executable, "-m", "locust", *args],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


ERROR_LINE = re.compile(r"^(\d+)\s+(\S+) (.+?): (.*?)\s*$")


@dataclass
class Stats:
    """A run's final stats: (method, name) -> (requests, failures), failure messages, tracebacks.

    Read from what Locust prints when it ends (`--json` on stdout, the error report on stderr), not
    from `--csv`, whose files are rewritten once a second and miss the run's last moments.
    """

    rows: dict[tuple[str, str], tuple[int, int]]
    failures: list[dict[str, str]]
    exceptions: list[str]

    def requests(self, method: str, name: str) -> int:
        return self.rows.get((method, name), (0, 0))[0]

    def failed(self, method: str, name: str) -> int:
        return self.rows.get((method, name), (0, 0))[1]

    @property
    def total_failures(self) -> int:
        return sum(f for _, f in self.rows.values())

    @property
    def messages(self) -> str:
        return "\n".join(f["Error"] for f in self.failures)


@contextmanager
def running_locust(args: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Locust on the library with `args`, its output in `log_path`, SIGINT at its default (a test may
    interrupt it); killed on the way out if still running."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", *args],
            cwd=REPO,
            env=clean_env(),
            stdout=log,
            stderr=log,
            preexec_fn=sigint_default,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def parse_stats(stdout: str, stderr: str) -> Stats:
    """Stats of a run given `--json` (stdout holds the JSON list of entries)."""
    start = stdout.find("[")
    assert start >= 0, f"no --json stats on stdout:\n{stdout[-2000:]}\n{stderr[-2000:]}"
    entries, _ = json.JSONDecoder().raw_decode(stdout[start:])
    rows = {(e["method"], e["name"]): (e["num_requests"], e["num_failures"]) for e in entries}
    failures = []
    if "Error report" in stderr:
        for line in stderr.split("Error report", 1)[1].splitlines()[3:]:
            m = ERROR_LINE.match(line)
            if m:
                failures.append({"Occurrences": m[1], "Method": m[2], "Name": m[3], "Error": m[4]})
    tracebacks = [chunk[:500] for chunk in stderr.split("Traceback (most recent call last)")[1:]]
    return Stats(rows, failures, tracebacks)


def stats_of(proc: subprocess.CompletedProcess[str]) -> Stats:
    return parse_stats(proc.stdout, proc.stderr)


def stats_from_json_file(path: Path) -> Stats:
    """Counts from `--json-file` (written when Locust ends); no failure messages."""
    entries = json.loads(Path(f"{path}.json").read_text())
    rows = {(e["method"], e["name"]): (e["num_requests"], e["num_failures"]) for e in entries}
    return Stats(rows, [], [])


@dataclass
class DriverResult:
    """What `tests.scenarios.run_users` reports."""

    rows: dict[tuple[str, str], tuple[int, int]]
    errors: list[dict[str, Any]]
    exceptions: list[str]
    unhandled_greenlet_exception: bool
    log: str

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
    return DriverResult(
        rows, data["errors"], data["exceptions"], data["unhandled_greenlet_exception"], proc.stderr
    )
