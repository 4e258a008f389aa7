"""Run Locust headless in a subprocess against a test backend and read what it wrote.

Locust runs as `python -m locust` in its own process (its gevent patching stays out of pytest), with
`--csv` so the tests read Locust's own statistics, failures and exceptions, and (`record=True`)
`--run-dir` so they can read the exact request record too.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "locust_scenarios"


@dataclass
class Run:
    returncode: int
    output: str
    stats: list[dict[str, str]]
    failures: list[dict[str, str]]
    exceptions: list[dict[str, str]]
    run_dir: Path

    def entry(self, request_type: str, name: str) -> dict[str, str]:
        for row in self.stats:
            if row["Type"] == request_type and row["Name"] == name:
                return row
        have = sorted(f"{r['Type']} {r['Name']}" for r in self.stats)
        raise AssertionError(f"no stat entry {request_type} {name!r}; entries: {have}\n{self.output[-3000:]}")

    def requests(self, request_type: str, name: str) -> int:
        return int(self.entry(request_type, name)["Request Count"])

    def failures_of(self, request_type: str, name: str) -> int:
        return int(self.entry(request_type, name)["Failure Count"])

    def average(self, request_type: str, name: str) -> float:
        return float(self.entry(request_type, name)["Average Response Time"])

    def names(self, request_type: str) -> set[str]:
        return {r["Name"] for r in self.stats if r["Type"] == request_type}

    def errors(self) -> list[str]:
        return [f"{f['Method']} {f['Name']}: {f['Error']}" for f in self.failures]

    def record(self) -> pd.DataFrame:
        return pd.read_parquet(self.run_dir / "requests")


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def run_locust(
    locustfile: Path | str,
    tmp_path: Path,
    *,
    host: str | None,
    users: int,
    seconds: float,
    classes: Sequence[str] = (),
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    during: Callable[[subprocess.Popen[bytes]], None] | None = None,
    record: bool = False,
    timeout: float = 90,
) -> Run:
    """One bounded headless run; `during(process)` runs in the test while Locust runs."""
    out = tmp_path / f"run-{time.monotonic_ns()}"
    out.mkdir()
    args = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless"]
    args += ["-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", "5"]
    args += ["--csv", str(out / "locust"), "--loglevel", "INFO"]
    if record:
        args += ["--run-dir", str(out)]
    if host:
        args += ["--host", host]
    args += [*extra, *classes]
    log = out / "locust.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=full_env)
    try:
        if during is not None:
            during(proc)
        returncode = proc.wait(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    output = log.read_text(errors="replace")
    return Run(
        returncode=returncode,
        output=output,
        stats=[r for r in _read_csv(out / "locust_stats.csv") if r["Name"] != "Aggregated"],
        failures=_read_csv(out / "locust_failures.csv"),
        exceptions=_read_csv(out / "locust_exceptions.csv"),
        run_dir=out,
    )


def assert_clean_exit(run: Run) -> None:
    """Exit 0, no failures, no exception escaped a task or greenlet."""
    assert run.exceptions == [], f"exceptions: {run.exceptions}\n{run.output[-3000:]}"
    assert "Traceback" not in run.output, run.output[-5000:]
    assert run.failures == [], f"failures: {run.errors()}"
    assert run.returncode == 0, run.output[-3000:]


def assert_survived(run: Run) -> None:
    """Failures are allowed (and expected), but nothing crashed: no exception escaped anywhere."""
    assert run.exceptions == [], f"exceptions: {run.exceptions}\n{run.output[-3000:]}"
    assert "Traceback" not in run.output, run.output[-5000:]
    assert "Uncaught exception" not in run.output, run.output[-5000:]
    assert run.returncode in (0, 1), run.output[-3000:]


def write_locustfile(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return path
