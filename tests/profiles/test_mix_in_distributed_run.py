"""A stage's user-class mix reaches the workers: the shape runs on the master and passes the classes
through tick()'s third element, with the mix's fixed counts, in a `--processes` (master/worker) run."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.backend_process import Backend, free_port
from tests.profiles.runs import start_locust

PROFILE = """
stages:
  - {duration: 4, users: 2, spawn_rate: 10, mix: {ComplianceUser: 1}}
  - {duration: 4, users: 4, spawn_rate: 10, mix: {ComplianceUser: 1, ReportingUser: {fixed_count: 2}}}
"""


@pytest.mark.slow
def test_stage_mix_switches_classes_on_the_workers(backend: Backend, tmp_path: Path) -> None:
    profile = tmp_path / "mix.yaml"
    profile.write_text(PROFILE)
    port = str(free_port())
    run_dir = tmp_path / "run"
    args = [
        "ComplianceUser", "ReportingUser", "--headless", "--host", backend.url,
        "--load-profile", str(profile), "--run-dir", str(run_dir), "--stop-timeout", "2",
        "--processes", "2", "--master-bind-port", port, "--master-port", port,
    ]  # fmt: skip
    run = start_locust(tmp_path, "mix", args).finish(timeout=60)
    assert run.returncode == 0, run.output()[-3000:]

    spawned = [m.group(1) for m in re.finditer(r"All users spawned: (\{[^}]*\})", run.output())]
    assert '{"ComplianceUser": 2, "ReportingUser": 2}' in spawned, spawned

    record = pd.read_parquet(run_dir / "requests")
    assert record["worker"].nunique() == 2, "both workers ran users"
    start = record["timestamp"].min()
    reporting = record[record["user_class"] == "ReportingUser"]
    compliance = record[record["user_class"] == "ComplianceUser"]
    assert len(reporting) > 0 and len(compliance) > 0
    # ReportingUser only from the second stage (4 s in, give or take the shape's one-second tick)
    assert reporting["timestamp"].min() - start >= 2.5
    assert compliance["timestamp"].max() - start >= 4.5, "ComplianceUser kept running in stage 2"
