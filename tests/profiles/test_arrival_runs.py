"""Arrival-rate profiles in real runs: the rate holds regardless of replies, shared across workers;
a stalled backend with too small a pool shows dropped iterations and corrected latency.

The workflow is the library's ComplianceUser, one task per iteration. Each test has its own
reference backend, so the injected stall reaches no other test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.backend_process import Backend, free_port, run_backend
from tests.profiles.runs import Run, start_locust

RATE = 20
SECONDS = 6


def arrival_profile(tmp: Path, pool: int) -> Path:
    path = tmp / f"arrival-{pool}.yaml"
    path.write_text(
        "model: arrival\nworkflow: ComplianceUser\n"
        f"max_users: {pool}\nmax_start_delay: 1.0\n"
        f"stages:\n  - {{duration: {SECONDS}, rate: {RATE}}}\n"
    )
    return path


@pytest.fixture
def own_backend(tmp_path: Path) -> Iterator[Backend]:
    with run_backend(tmp_path) as b:
        yield b


def start_arrival(tmp: Path, backend: Backend, pool: int, *extra: str) -> tuple[Run, Path]:
    run_dir = tmp / "run"
    args = [
        "ComplianceUser", "--headless", "--host", backend.url, "--stop-timeout", "3",
        "--load-profile", str(arrival_profile(tmp, pool)), "--run-dir", str(run_dir), *extra,
    ]  # fmt: skip
    return start_locust(tmp, f"arrival-{pool}", args), run_dir


def wait_for(run: Run, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in run.output():
        assert run.process.poll() is None, run.output()
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{run.output()}"
        time.sleep(0.1)


@pytest.mark.slow
def test_ample_capacity_holds_the_target_rate_across_two_workers(
    own_backend: Backend, tmp_path: Path
) -> None:
    port = str(free_port())  # the master's port: other runs may hold Locust's default
    run, run_dir = start_arrival(
        tmp_path, own_backend, 20, "--processes", "2", "--master-bind-port", port, "--master-port", port
    )
    run.finish(timeout=60)
    assert run.returncode == 0, run.output()[-3000:]
    stage = json.loads((run_dir / "arrival.json").read_text())["stages"][0]
    target = RATE * SECONDS
    assert stage["target_rate"] == RATE
    # the master's counts come from both workers' reports
    assert abs(stage["started"] - target) <= 0.05 * target, stage
    assert abs(stage["achieved_rate"] - RATE) <= 0.05 * RATE, stage
    # independently, from the exact record: one intended start per iteration, from both workers
    record = pd.read_parquet(run_dir / "requests")
    iterations = record.dropna(subset=["intended_start"]).drop_duplicates(["worker", "intended_start"])
    assert abs(len(iterations) - target) <= 0.05 * target
    per_worker = iterations["worker"].value_counts()
    assert len(per_worker) == 2 and per_worker.min() >= 0.45 * target, "each worker took its share"


@pytest.mark.slow
def test_stall_with_short_capacity_drops_iterations_and_corrects_latency(
    own_backend: Backend, tmp_path: Path
) -> None:
    run, run_dir = start_arrival(tmp_path, own_backend, 3)
    wait_for(run, "stage 1/1")  # the pool is up and the profile's clock runs: now stall the backend
    stall = [{"path": "/api/*", "method": "GET", "latency_ms": 400}]
    assert own_backend.request("PUT", "/admin/faults", {"faults": stall})[0] == 200
    run.finish(timeout=60)
    assert run.returncode in (0, 1), run.output()[-3000:]

    stats = run.stats()
    dropped = stats.get(("ARRIVAL", "dropped iterations"))
    assert dropped is not None and int(dropped["Request Count"]) > 0
    report = json.loads((run_dir / "arrival.json").read_text())["stages"][0]
    summary = json.loads((run_dir / "summary.json").read_text())["entries"]
    recorded = {(e["request_type"], e["name"]): e["count"] for e in summary}
    assert report["dropped"] == recorded[("ARRIVAL", "dropped iterations")]
    assert report["started"] + report["dropped"] >= 0.95 * RATE * SECONDS

    pairs = [
        (row, stats[(kind + " (corrected)", name)])
        for (kind, name), row in stats.items()
        if kind == "GET" and (kind + " (corrected)", name) in stats
    ]
    assert pairs, sorted(stats)
    measured = sum(float(r["Average Response Time"]) * int(r["Request Count"]) for r, _ in pairs)
    corrected = sum(float(c["Average Response Time"]) * int(c["Request Count"]) for _, c in pairs)
    assert corrected > measured + 100 * sum(int(r["Request Count"]) for r, _ in pairs)

    # the exact record carries intended_start on every request an iteration made
    record = pd.read_parquet(run_dir / "requests")
    corrected_rows = record[record["request_type"].str.endswith(" (corrected)")]
    in_iterations = record[record["intended_start"].notna()]
    assert len(in_iterations) == len(corrected_rows) > 0
    assert (in_iterations["timestamp"] >= in_iterations["intended_start"] - 0.05).all()
