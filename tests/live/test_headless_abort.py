"""Headless runs judged while they go: an abort rule stops the run once the backend's fault injection
slows it down, run.json and the analysis say which rule and why; a bad thresholds file stops Locust
before any load, with exit code 2 and the file and key named."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from analysis import analyse, load_run, load_thresholds, read_record
from tests.backend_process import Backend, free_port
from tests.profiles.runs import start_locust

WINDOW_S = 3.0
SLOW_MS = 400.0
THRESHOLDS = f"""
version: 1
rules:
  - id: api.mean
    description: API requests keep a mean under 150 ms
    select: {{name: "/api/*"}}
    metric: mean
    per: all
    op: "<"
    value: 150ms
    abort: {{window: {WINDOW_S:g}s, after: 1s, min_samples: 3}}
  - id: api.failures
    select: {{name: "/api/*"}}
    metric: failure_ratio
    per: all
    op: "<="
    value: 5%
"""


@pytest.fixture
def slow_later(backend: Backend) -> Iterator[Backend]:
    """The session backend; its fault rules cleared afterwards whatever the test did."""
    backend.request("DELETE", "/admin/faults")
    try:
        yield backend
    finally:
        backend.request("DELETE", "/admin/faults")


def matched(backend: Backend) -> int:
    faults = backend.request("GET", "/admin/faults")[1]
    assert isinstance(faults, dict)
    return int(faults["faults"][0]["matched"]) if faults["faults"] else 0


@pytest.mark.parametrize(
    ("processes", "web_ui"),
    [(0, False), (2, False), (0, True)],
    ids=["local", "master and two workers", "web UI with --autostart --autoquit"],
)
def test_abort_rule_stops_a_slowed_run_and_says_why(
    slow_later: Backend, tmp_path: Path, processes: int, web_ui: bool
) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(THRESHOLDS)
    run_dir = tmp_path / "run"
    # In the web UI the stopped test ends the process only through --autoquit, and its exit code must
    # still say that a rule stopped it (a CI job may run Locust so).
    mode = ["--autostart", "--autoquit", "1", "--web-host", "127.0.0.1", "--web-port", str(free_port())]
    args = ["ComplianceUser", *(mode if web_ui else ["--headless"]), "-u", "6", "-r", "6", "-t", "90s"]
    args += ["--host", slow_later.url]
    args += ["--run-dir", str(run_dir), "--thresholds", str(thresholds), "--scenario-seed", "3"]
    if processes:
        port = str(free_port())
        args += ["--processes", str(processes), "--master-bind-port", port, "--master-port", port]
        args += ["--stop-timeout", "2"]
    # A rule that slows nothing yet, only counts: the run has begun once it matched some requests.
    slow_later.request("PUT", "/admin/faults", [{"path": "/api/*", "latency_ms": 0}])
    run = start_locust(tmp_path, "abort", args, csv_history=False)
    deadline = time.monotonic() + 60
    while matched(slow_later) < 30:
        assert run.process.poll() is None and time.monotonic() < deadline, run.output()
        time.sleep(0.2)
    slowed_at = time.time()
    slow_later.request("PUT", "/admin/faults", [{"path": "/api/*", "latency_ms": SLOW_MS}])
    run.finish(timeout=120)

    assert run.returncode == 1, run.output()
    log = run.output()
    assert "Rule api.mean stopped the run: " in log
    assert "Traceback" not in log
    info = json.loads((run_dir / "run.json").read_text())
    assert info["role"] == ("master" if processes else "local")
    stop = info["stopped_by"]
    assert stop["rule"] == "api.mean"
    assert stop["window_s"] == WINDOW_S
    assert stop["value"] >= 150.0 and stop["samples"] >= 3
    assert stop["message"].endswith("breaks mean < 150.0 ms"), stop

    # Within the window after the slowdown: the first slowed request starts the window that breaks;
    # the rest is the record's once-a-second hand-over and evaluation.
    stopped_at = datetime.fromisoformat(stop["at"].replace("Z", "+00:00")).timestamp()
    record = read_record(run_dir / "requests")
    slowed = record[(record["timestamp"] >= slowed_at) & (record["response_time_ms"] >= SLOW_MS)]
    assert len(slowed), "no slowed request in the record"
    if processes:
        workers = pd.read_parquet(run_dir / "requests", columns=["worker"])["worker"]
        assert workers.nunique() == processes, "every worker's rows reached the master"
    first_slow = float(slowed["timestamp"].min())
    print(f"stopped {stopped_at - first_slow:.1f} s after the first slowed request (window {WINDOW_S:g} s)")
    assert stopped_at - first_slow <= WINDOW_S + 3.0
    assert info["ended_by"] == "normal" and stopped_at < slowed_at + 60
    if web_ui:  # --autoquit 1 counts from the stop, not from the end of the 90 s run time
        ended_at = datetime.fromisoformat(info["ended_at"].replace("Z", "+00:00")).timestamp()
        assert ended_at - stopped_at < 30, (info["ended_at"], stop["at"])

    # The analysis reports the stopping rule as failed, with its window's figures.
    analysis = analyse(load_run(run_dir), load_thresholds(thresholds))
    stopped = [r for r in analysis.results if r.entry.endswith("(window)")]
    assert [(r.rule.id, r.status, r.value) for r in stopped] == [("api.mean", "fail", stop["value"])]
    assert stopped[0].message.startswith(f"stopped the run at {stop['at']}: ")
    assert analysis.exit_code == 1


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (None, "no such file"),
        ("rules:\n  - {metric: mean, op: '<', value: 1, abort: {windw: 2s}}\n", "key 'rules[0].abort.windw'"),
    ],
)
def test_bad_thresholds_stop_locust_before_any_load(tmp_path: Path, text: str | None, named: str) -> None:
    path = tmp_path / "thresholds.yaml"
    if text is not None:
        path.write_text(text)
    cmd = [sys.executable, "-m", "locust", "-f", "locust_scenarios", "--headless", "-u", "1", "-t", "5s"]
    cmd += ["--host", "http://127.0.0.1:9", "--thresholds", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    assert done.returncode == 2, done.stderr
    assert f"--thresholds: {path}" in done.stderr and named in done.stderr
    assert "Traceback" not in done.stderr
