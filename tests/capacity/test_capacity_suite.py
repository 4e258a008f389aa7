"""`compliance-loadtest --load-profile <capacity profile>` end to end: the suite's own backend (given a
known capacity through its environment), a master and a worker, the search, the sustained rate printed
and written with its chart, and the `capacity >= N/s` gate deciding the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.suite.test_suite_runs import SuiteProcess

PROFILE = """\
description: a short capacity search for the suite test
model: capacity
workflow: ComplianceUser
max_users: 10
search: {start_rate: 2, max_rate: 40, step_duration: 3, cooldown: 0.5, precision: 0.2, max_steps: 2}
slos:
  - {id: latency, metric: p95, op: "<", value: 500ms, per: all}
  - {id: errors, metric: failure_ratio, op: "<", value: 5%, per: all}
"""


@pytest.mark.slow
def test_the_suite_prints_and_writes_the_sustained_rate_and_gates_on_it(tmp_path: Path) -> None:
    profile = tmp_path / "capacity-short.yaml"
    profile.write_text(PROFILE)
    gate = tmp_path / "gate.yaml"
    gate.write_text("version: 1\nrules:\n  - {id: capacity-gate, metric: capacity, op: '>=', value: 1/s}\n")
    run_dir = tmp_path / "run"
    args = [
        "--load-profile", str(profile), "--include", "load", "--workers", "1",
        "--run-dir", str(run_dir), "--thresholds", str(gate),
    ]  # fmt: skip
    backend_env = {"CGPT_CAPACITY_SLOTS": "2", "CGPT_SERVICE_MS": "100"}
    code, out = SuiteProcess.start(args, tmp_path, backend_env).finish(timeout=240)
    assert code == 0, out[-4000:]
    result = json.loads((run_dir / "capacity.json").read_text())
    assert result["valid"] is True and result["sustained_rate"] >= 1, result
    assert f"capacity of ComplianceUser: sustained rate {result['sustained_rate']:g} iterations/s" in out
    assert (run_dir / "capacity.svg").read_text().startswith("<svg")
    assert len(result["steps"]) <= 2 and all(s["target_rate"] <= 40 for s in result["steps"])

    gate.write_text("version: 1\nrules:\n  - {id: capacity-gate, metric: capacity, op: '>=', value: 500/s}\n")
    args = [
        sys.executable,
        "-m",
        "analysis",
        str(run_dir),
        "--thresholds",
        str(gate),
        "--out",
        str(tmp_path / "r"),
    ]
    again = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 1, again.stdout + again.stderr
