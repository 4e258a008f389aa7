"""Real runs against the reference backend, whose /health latency the test sets with a fault rule
(20 ms, then 30 ms): three A/A runs compared with each other give no regression, and a run made 50%
slower is caught, on p50 and the tail, through the command line as CI calls it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.__main__ import main
from tests.backend_process import Backend, run_backend

LOCUSTFILE = """
import locust_scenarios  # noqa: F401  (installs the library's options and listeners)
from locust import FastHttpUser, constant, task


class Probe(FastHttpUser):
    wait_time = constant(0.01)

    @task
    def health(self):
        self.client.get("/health")
"""

NO_RULES = "rules: []\n"


@pytest.fixture(scope="module")
def slow_health(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with run_backend(tmp_path_factory.mktemp("backend")) as b:
        yield b


def set_latency(backend: Backend, ms: float) -> None:
    status, body = backend.request("PUT", "/admin/faults", [{"path": "/health", "latency_ms": ms}])
    assert status == 200, body


def real_runs(backend: Backend, root: Path, *names: str) -> list[Path]:
    """Runs of the probe at once (two users each, mostly waiting on the backend's set latency), 6 s
    long: in 3 s runs (about 120 requests) p99 was the second slowest request, so one hold-up of the
    machine (three Locust processes and the backend on two cores) catching both users' requests made an
    A/A pair a p99 regression."""
    (root / "probe.py").write_text(LOCUSTFILE)
    procs = []
    for name in names:
        cmd = [
            sys.executable, "-m", "locust", "-f", "probe.py", "--headless", "-u", "2", "-r", "2", "-t", "6s",
            "--host", backend.url, "--run-dir", name, "--only-summary", "--stop-timeout", "2",
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        )
    for name, proc in zip(names, procs, strict=True):
        _, err = proc.communicate(timeout=90)
        assert (root / name / "run.json").exists(), err[-3000:]
    return [root / name for name in names]


@pytest.fixture(scope="module")
def runs(slow_health: Backend, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    set_latency(slow_health, 20)
    names = ("baselines/a1", "baselines/a2", "a3")
    made = dict(zip(("a1", "a2", "a3"), real_runs(slow_health, root, *names), strict=True))
    set_latency(slow_health, 30)
    (made["slow"],) = real_runs(slow_health, root, "slow")
    (root / "none.yaml").write_text(NO_RULES)
    made["thresholds"] = root / "none.yaml"
    return made


def regressions(
    runs: dict[str, Path], run: str, *baselines: Path, out: Path
) -> tuple[int, list[dict[str, object]]]:
    """The analysis of `run` against `baselines`, thresholds aside: (exit code, its regressions)."""
    args = [str(runs[run]), "--thresholds", str(runs["thresholds"]), "--report", "json", "--out", str(out)]
    code = main([*args, "--baseline", *map(str, baselines)])
    doc = json.loads(next(out.glob("*.json")).read_text())
    return code, doc["regressions"]


def test_a_a_real_runs_give_no_regression(runs: dict[str, Path], tmp_path: Path) -> None:
    code, found = regressions(runs, "a3", runs["a1"].parent, out=tmp_path)  # the folder of two runs
    (health,) = found
    assert code == 0, health["message"]
    assert health["entry"] == "GET /health" and not health["regressed"]
    assert health["baseline_runs"] == 2 and health["current_count"] > 50


def test_a_real_run_made_slower_is_caught(runs: dict[str, Path], tmp_path: Path) -> None:
    code, found = regressions(runs, "slow", runs["a1"], runs["a2"], runs["a3"], out=tmp_path)
    (health,) = found
    assert code == 1
    assert health["regressed"] and str(health["message"]).startswith("slower: p50")
    assert 0.3 < float(health["relative_change"]) < 0.6  # type: ignore[arg-type]
