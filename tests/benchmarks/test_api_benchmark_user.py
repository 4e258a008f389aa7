"""ApiBenchmarkUser runs every API benchmark of the seed suite against the reference backend, then stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.backend_process import Backend
from tests.benchmarks.locust_run import run_locust, write_config

API_BENCHMARKS = {
    "api.authentication",
    "api.evidence_creation",
    "api.evidence_search",
    "api.dashboard",
    "api.ai_chat",
    "api.concurrent_requests",
    "api.bulk_operation",
    "api.large_dataset",
    "api.concurrent_memory",
    "api.complex_query",
    "api.aggregation",
    "api.complete_onboarding",
    "api.daily_workflow",
    "api.peak_usage",
}
LOGIN_ROUTE = "POST /api/auth/login"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api_backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.getfixturevalue("backend" if request.param == "sqlite" else "pg_backend")
    return backend


def _backend_count(backend: Backend, route: str) -> int:
    status, body = backend.request("GET", "/admin/requests")
    assert status == 200, body
    routes: dict[str, Any] = body["routes"]  # type: ignore[index]
    return int(routes.get(route, 0))


def test_every_api_benchmark_runs_its_rounds_and_warm_up_stays_out(
    api_backend: Backend, run_dir: Path
) -> None:
    warmup, rounds = 1, 2
    config = write_config(
        run_dir / "performance_config.json", warmup_iterations=warmup, benchmark_rounds=rounds
    )
    logins_before = _backend_count(api_backend, LOGIN_ROUTE)

    run = run_locust(
        run_dir,
        "ApiBenchmarkUser",
        "-u",
        "1",
        "-r",
        "1",
        "-H",
        api_backend.url,
        "--benchmark-config",
        str(config),
    )

    assert run.returncode == 0, run.output[-3000:]
    assert run.ended_by_itself, run.output[-3000:]
    results = run.results()
    assert results["failed_benchmarks"] == []
    by_name = {b["name"]: b for b in results["benchmarks"]}
    assert set(by_name) == API_BENCHMARKS
    for name, bench in by_name.items():
        assert bench["group"] == "bench-api", name
        assert bench["stats"]["rounds"] == rounds, name
        assert bench["extra_info"]["failed_rounds"] == 0, name
    # Memory measures of the target (the backend process, found by its listening port) and the stream's TTFT.
    for name in ("api.large_dataset", "api.concurrent_memory"):
        assert by_name[name]["extra_info"]["target_pid"] == api_backend.pid
        assert isinstance(by_name[name]["extra_info"]["rss_growth_mb"], float)
    assert by_name["api.ai_chat"]["extra_info"]["ttft_ms"] > 0
    assert by_name["api.ai_chat"]["extra_info"]["tokens"] > 0

    stats = run.stats()
    for name in API_BENCHMARKS:
        assert stats[("BENCH", name)]["Request Count"] == str(rounds), name
        assert stats[("BENCH", name)]["Failure Count"] == "0", name
    # The exact record holds the measured rounds only, in their group, with the stream's TTFT.
    record = pd.read_parquet(run_dir / "requests")
    bench_rows = record[record["request_type"] == "BENCH"]
    assert bench_rows.groupby("name").size().to_dict() == dict.fromkeys(API_BENCHMARKS, rounds)
    assert set(bench_rows["group"]) == {"bench-api"}
    assert (bench_rows[bench_rows["name"] == "api.ai_chat"]["ttft_ms"] > 0).all()
    assert len(record[record["name"] == "/api/auth/login"]) == int(
        stats[("POST", "/api/auth/login")]["Request Count"]
    )

    # The backend saw the warm-up's logins (authentication, onboarding: one each per warm-up round);
    # Locust's stats did not.
    logins_seen = _backend_count(api_backend, LOGIN_ROUTE) - logins_before
    logins_recorded = int(stats[("POST", "/api/auth/login")]["Request Count"])
    assert logins_seen - logins_recorded == 2 * warmup

    # pytest-benchmark's own compare command reads the file.
    cli = Path(sys.executable).with_name("pytest-benchmark")
    proc = subprocess.run(
        [str(cli), "compare", str(run_dir / "benchmark_results.json"), "--columns=mean,rounds"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Failed to load" not in proc.stdout + proc.stderr
    assert all(name in proc.stdout for name in API_BENCHMARKS)


def test_a_round_whose_checks_fail_is_a_failure_with_a_message(backend: Backend, run_dir: Path) -> None:
    """Bulk updates answered 500 and chat streams dropped mid-reply: those benchmarks fail every round,
    each with a message saying what was expected; the others are unaffected, and the run exits 1."""
    faults = [
        {"path": "/api/evidence/bulk-update", "method": "POST", "error_rate": 1.0},
        {"path": "/api/chat/stream", "method": "POST", "drop_after_tokens": 2},
    ]
    status, body = backend.request("PUT", "/admin/faults", faults)
    assert status == 200, body
    try:
        config = write_config(run_dir / "performance_config.json", warmup_iterations=0, benchmark_rounds=2)
        run = run_locust(run_dir, "ApiBenchmarkUser", "-u", "1", "-r", "1", "-H", backend.url,
                         "--benchmark-config", str(config))  # fmt: skip
    finally:
        backend.request("DELETE", "/admin/faults")

    assert run.returncode == 1, run.output[-3000:]
    assert run.ended_by_itself, run.output[-3000:]
    results = run.results()
    failed = {f["name"]: f for f in results["failed_benchmarks"]}
    assert set(failed) == {"api.bulk_operation", "api.ai_chat"}
    assert failed["api.bulk_operation"]["failed_rounds"] == 2
    # Each round's message says which step failed and why, as the step's failed request says it.
    bulk_error = "bulk update of 10: expected 200, got 500 (injected fault)"
    assert failed["api.bulk_operation"]["errors"] == [bulk_error]
    stream_error = "streamed reply: POST /api/chat/stream: stream broken"
    assert failed["api.ai_chat"]["errors"][0].startswith(stream_error)
    assert {b["name"] for b in results["benchmarks"]} == API_BENCHMARKS - set(failed)

    stats = run.stats()
    assert stats[("BENCH", "api.bulk_operation")]["Failure Count"] == "2"
    assert stats[("BENCH", "api.ai_chat")]["Failure Count"] == "2"
    failures = (run_dir / "locust_failures.csv").read_text()
    assert "bulk update of 10: expected 200, got 500" in failures
    assert "expected 200, got 500" in failures  # the HTTP request's own failure, under its own name
