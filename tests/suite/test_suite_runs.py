"""The suite command end to end: the reference backend, a master and two workers on loopback, the
analysis, one exit code; and the processes it started are gone when it returns, however it ended.

Each run is a few users for about ten seconds. The runs use the `concurrency` category (StressTestUser,
PeakTrafficScenario): HTTP users whose endpoints the reference backend serves.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.backend_process import sigint_default

pytestmark = pytest.mark.slow

SHORT_RUN = ["--include", "concurrency", "--workers", "2", "--users", "2", "--spawn-rate", "2"]


@dataclass
class SuiteProcess:
    """`python -m compliance_loadtest ...` in a subprocess, with every descendant it ever had noted."""

    process: subprocess.Popen[str]
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    @classmethod
    def start(
        cls, args: Sequence[str], cwd: Path, env_extra: Mapping[str, str] | None = None
    ) -> SuiteProcess:
        env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"} | dict(env_extra or {})
        process = subprocess.Popen(
            [sys.executable, "-m", "compliance_loadtest", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=sigint_default,
        )
        return cls(process)

    def note_descendants(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for p in found:
            self.seen.setdefault(p.pid, p)
        return found

    def workers(self) -> list[psutil.Process]:
        result = []
        for p in self.note_descendants():
            try:
                if "--worker" in p.cmdline():
                    result.append(p)
            except psutil.Error:
                pass
        return result

    def wait_until(self, condition: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():  # type: ignore[operator]
            assert self.process.poll() is None, f"the suite ended early:\n{self.process.stdout.read()}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "timed out waiting"
            self.note_descendants()
            time.sleep(0.2)

    def finish(self, timeout: float = 150) -> tuple[int, str]:
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, out

    def survivors(self) -> list[str]:
        alive = []
        for p in self.seen.values():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{p.pid} {' '.join(p.cmdline())}")
            except psutil.NoSuchProcess:
                pass
        return alive


def run_suite(
    args: Sequence[str], cwd: Path, env_extra: Mapping[str, str] | None = None
) -> tuple[int, str, SuiteProcess]:
    suite = SuiteProcess.start(args, cwd, env_extra)
    while suite.process.poll() is None:
        suite.note_descendants()
        time.sleep(0.2)
    code, out = suite.finish()
    return code, out, suite


def load_started(run_dir: Path) -> bool:
    """The master's stats history shows users running."""
    history = run_dir / "locust_stats_history.csv"
    if not history.exists():
        return False
    lines = history.read_text().splitlines()
    return any(",Aggregated," in ln and ln.split(",")[1] not in ("0", "") for ln in lines[1:])


def read_run_json(run_dir: Path) -> dict[str, object]:
    data = json.loads((run_dir / "run.json").read_text())
    assert isinstance(data, dict)
    return data


def test_a_short_suite_with_two_workers_passes_and_leaves_nothing_running(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, out, suite = run_suite([*SHORT_RUN, "--duration", "10s", "--run-dir", str(run_dir)], tmp_path)

    assert code == 0, out
    assert "reference backend ready at http://127.0.0.1:" in out
    assert "[load] users 2," in out  # progress while it ran
    run = read_run_json(run_dir)
    workers = run["workers"]
    assert isinstance(workers, dict)
    assert workers["expected"] == 2 and len(workers["seen"]) == 2 and workers["lost"] == []
    assert run["complete"] is True and run["ended_by"] == "normal"
    assert sorted(run["user_classes"]) == ["PeakTrafficScenario", "StressTestUser"]  # type: ignore[call-overload]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["total"]["count"] > 0
    assert list((run_dir / "report").glob("performance_report_*.md")), "the analysis wrote no report"
    # backend, master, two workers: all started by the suite, all gone
    assert len(suite.seen) >= 4, suite.seen
    assert suite.survivors() == [], out


def test_an_impossibly_tight_threshold_fails_the_suite_with_exit_1(tmp_path: Path) -> None:
    thresholds = tmp_path / "impossible.yaml"
    thresholds.write_text(
        "version: 1\n"
        "rules:\n"
        "  - id: faster-than-light\n"
        "    description: no request can be answered in a microsecond\n"
        "    select: {name: '*'}\n"
        "    metric: min\n"
        "    op: '<'\n"
        "    value: 0.001 ms\n"
        "    per: all\n"
        "    required: true\n"
    )
    run_dir = tmp_path / "run"
    code, out, suite = run_suite(
        [*SHORT_RUN, "--duration", "3s", "--run-dir", str(run_dir), "--thresholds", str(thresholds)], tmp_path
    )
    assert code == 1, out
    assert "faster-than-light" in out
    report = json.loads(next((run_dir / "report").glob("performance_report_*.json")).read_text())
    assert "faster-than-light" in json.dumps(report)
    assert suite.survivors() == [], out


def test_a_worker_killed_mid_run_makes_the_run_invalid_not_a_pass(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    suite = SuiteProcess.start([*SHORT_RUN, "--duration", "10s", "--run-dir", str(run_dir)], tmp_path)
    try:
        suite.wait_until(lambda: len(suite.workers()) == 2 and load_started(run_dir), timeout=90)
        victim = suite.workers()[0]
        victim.send_signal(signal.SIGKILL)
        code, out = suite.finish()
    finally:
        if suite.process.poll() is None:
            suite.process.kill()
    assert code == 3, out
    assert f"(pid {victim.pid}) ended during the run with code -9" in out
    workers = read_run_json(run_dir)["workers"]
    assert isinstance(workers, dict)
    assert len(workers["lost"]) == 1, workers
    # the analysis's own verdict, not only the suite's knowledge of its workers
    report = json.loads(next((run_dir / "report").glob("performance_report_*.json")).read_text())
    assert report["verdict"]["status"] == "invalid" and report["verdict"]["exit_code"] == 3, report["verdict"]
    assert any("lost" in reason for reason in report["verdict"]["invalid_reasons"])
    assert suite.survivors() == [], out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_stops_master_workers_and_backend_and_leaves_no_orphan(
    tmp_path: Path, sig: signal.Signals
) -> None:
    run_dir = tmp_path / "run"
    suite = SuiteProcess.start([*SHORT_RUN, "--duration", "60s", "--run-dir", str(run_dir)], tmp_path)
    try:
        suite.wait_until(lambda: load_started(run_dir), timeout=90)
        suite.note_descendants()
        suite.process.send_signal(sig)
        code, out = suite.finish(timeout=90)
    finally:
        if suite.process.poll() is None:
            suite.process.kill()
    assert code == 128 + sig, out
    assert f"{sig.name} received: stopping the master" in out
    assert "an interrupted run gets no verdict" in out
    assert len(suite.seen) >= 4
    assert suite.survivors() == [], out
    run = read_run_json(run_dir)  # the master wrote its run.json on the way out
    assert run["ended_by"] == sig.name


def test_options_locust_refuses_exit_2_naming_them(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # A --host that accepts connections (the suite refuses one with nothing listening): no backend is
    # needed to see Locust refuse its command line.
    listening = socket.create_server(("127.0.0.1", 0))
    code, out, suite = run_suite(
        [
            *SHORT_RUN,
            "--host",
            f"http://127.0.0.1:{listening.getsockname()[1]}",
            "--run-dir",
            str(run_dir),
            "--",
            "--no-such-locust-option",
        ],
        tmp_path,
    )
    listening.close()
    assert code == 2, out
    assert "Locust refused the run (exit code 2)" in out, out
    assert "--no-such-locust-option" in out, out
    assert suite.survivors() == [], out


def test_the_seeds_config_and_benchmark_compare_reach_the_benchmarks_and_the_verdict(tmp_path: Path) -> None:
    """`-c performance_config.json` reaches the benchmark users; `--benchmark-compare` gives a baseline
    benchmark_results.json a thousand times faster than anything real: a regression, exit 1."""
    config = tmp_path / "performance_config.json"
    # 2 users x 15 rounds: enough samples for the analysis to decide on a regression
    config.write_text(json.dumps({"warmup_iterations": 1, "benchmark_rounds": 15, "locust": {"users": 2}}))
    fast = 1e-6
    baseline = tmp_path / "baseline_results.json"
    baseline.write_text(
        json.dumps(
            {
                "benchmarks": [
                    {
                        "name": "api.authentication",
                        "group": "bench-api",
                        "stats": {
                            "min": fast,
                            "max": fast,
                            "mean": fast,
                            "median": fast,
                            "stddev": 0.0,
                            "rounds": 20,
                            "data": [fast] * 20,
                        },
                    }
                ]
            }
        )
    )
    run_dir = tmp_path / "run"
    code, out, suite = run_suite(
        [
            *("--include", "api", "--workers", "2", "--duration", "10s", "-c", str(config)),
            *("--run-dir", str(run_dir), "--benchmark-compare", str(baseline)),
        ],
        tmp_path,
        # the started backend reads its settings from the environment: no simulated model latency
        env_extra={"CGPT_LLM_FIRST_TOKEN_MS": "0", "CGPT_LLM_TOKEN_MS": "0"},
    )
    assert code == 1, out
    results = json.loads((run_dir / "benchmark_results.json").read_text())
    auth = next(b for b in results["benchmarks"] if b["name"] == "api.authentication")
    assert auth["options"]["config"] == str(config)
    assert (run_dir / "benchmark-baseline" / "benchmark_results.json").read_text() == baseline.read_text()
    report = json.loads(next((run_dir / "report").glob("performance_report_*.json")).read_text())
    regression = next(r for r in report["regressions"] if r["entry"] == "BENCH api.authentication")
    assert regression["status"] == "fail" and regression["regressed"] is True, regression
    assert suite.survivors() == [], out


def test_a_backend_that_cannot_start_is_no_run_exit_3_with_its_log(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # Port 1 on loopback: nothing listens, so the backend's start-up fails at once and it exits.
    unreachable = "postgresql://loadtest:s3cret-pw@127.0.0.1:1/none"
    code, out, suite = run_suite(
        [*SHORT_RUN, "--run-dir", str(run_dir), "--backend-database-url", unreachable], tmp_path
    )
    assert code == 3, out
    assert "compliance-loadtest: error: the reference backend exited with code" in out
    assert f"end of its log ({run_dir / 'logs' / 'backend.log'})" in out
    assert "PostgreSQL is unreachable" in out
    assert "s3cret-pw" not in out
    assert not (run_dir / "logs" / "master.log").exists(), "no Locust process starts without a backend"
    assert suite.survivors() == [], out
