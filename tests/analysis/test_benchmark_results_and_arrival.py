"""benchmark_results.json (as the library writes it, pytest-benchmark's layout) and arrival.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import analyse, compute_stats, load_run, load_thresholds
from analysis.__main__ import main
from compliance_loadtest.bench_results import BenchmarkResult, results_document
from tests.analysis.runs import Entry, simple_run, write_run_json


def write_benchmarks(run: Path, *results: BenchmarkResult) -> None:
    doc = results_document(results, commit_info={})
    (run / "benchmark_results.json").write_text(json.dumps(doc))


def test_benchmark_results_alone_are_judged_by_the_seed_benchmark_thresholds(tmp_path: Path) -> None:
    write_run_json(tmp_path)
    write_benchmarks(
        tmp_path,
        BenchmarkResult("api.authentication", "bench-api", data=[0.10, 0.12, 0.11, 0.13] * 2),
        BenchmarkResult("db.indexed_query", "bench-db", data=[0.25, 0.30, 0.35] * 2),  # seed: mean < 0.2 s
        BenchmarkResult("db.connection_pool", "bench-db", data=[0.5] * 8, failed_rounds=2),  # 20% > 10%
        BenchmarkResult("db.join", "bench-db", data=[], failed_rounds=3),  # no round succeeded
    )
    a = analyse(load_run(tmp_path), load_thresholds())
    assert not a.invalid_reasons  # benchmarks without load requests are a valid run
    status = {r.rule.id: (r.status, r.value) for r in a.results if r.entry.startswith("BENCH")}
    assert status["bench.api.authentication.mean"] == ("pass", 115.0)
    assert status["bench.api.authentication.max"] == ("pass", 130.0)
    assert status["bench.db.indexed_query.mean"][0] == "fail"
    assert status["bench.db.connection_pool.success"] == ("fail", 0.2)
    assert status["bench.db.join.mean"] == ("warn", None)
    assert a.exit_code == 1
    # A benchmark-only run has no load entries: the load rules have nothing to check, they do not fail.
    load = {r.rule.id: r.status for r in a.results if r.rule.id.startswith("load.")}
    assert load == {"load.failure_ratio": "warn", "load.mean": "warn"}
    e = a.stats.entries.set_index("name")
    assert e.loc["db.join", "failures"] == 3 and e.loc["db.connection_pool", "count"] == 10


def test_benchmark_rounds_in_the_record_are_not_counted_twice(tmp_path: Path) -> None:
    simple_run(tmp_path, [Entry("BENCH", "api.dashboard", [100.0, 120.0, 140.0], group="bench-api")])
    write_benchmarks(tmp_path, BenchmarkResult("api.dashboard", "bench-api", data=[0.1, 0.12, 0.14]))
    entries = compute_stats(load_run(tmp_path)).entries
    assert list(entries["name"]) == ["api.dashboard"]
    assert entries.iloc[0]["source"] == "exact"


def test_dropped_arrival_iterations_are_reported(tmp_path: Path) -> None:
    simple_run(tmp_path, [Entry("GET", "/api/evidence", [10.0] * 20)])
    (tmp_path / "arrival.json").write_text(
        json.dumps(
            {
                "stages": [
                    {"stage": 1, "target_rate": 5.0, "started": 50, "dropped": 0, "achieved_rate": 5.0},
                    {"stage": 2, "target_rate": 50.0, "started": 300, "dropped": 200, "achieved_rate": 30.0},
                ]
            }
        )
    )
    a = analyse(load_run(tmp_path), load_thresholds())
    dropped = [i for i in a.issues if i.kind == "arrival-dropped"]
    assert len(dropped) == 1 and "stage 2" in dropped[0].message and "dropped 200" in dropped[0].message
    assert "arrival.json" in a.run.present


def test_bad_benchmark_results_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run_json(tmp_path)
    (tmp_path / "benchmark_results.json").write_text(
        json.dumps({"benchmarks": [{"name": "x", "stats": {"min": 1}}]})
    )
    assert main([str(tmp_path), "--report", "none"]) == 2
    err = capsys.readouterr().err
    assert "benchmark_results.json, key 'benchmarks[0].stats.max': is missing or not a finite number" in err


def test_a_benchmark_only_run_within_the_seed_limits_passes(tmp_path: Path) -> None:
    write_run_json(tmp_path)
    write_benchmarks(
        tmp_path,
        BenchmarkResult("api.authentication", "bench-api", data=[0.10, 0.12]),
        BenchmarkResult("db.join", "bench-db", data=[0.05, 0.06, 0.07]),
    )
    assert main([str(tmp_path), "--report", "none"]) == 0


def test_measures_a_benchmark_reported_are_judged(tmp_path: Path) -> None:
    """The seed's non-time limits (RSS growth, slow requests, connections left over) read extra_info."""
    write_run_json(tmp_path)
    write_benchmarks(
        tmp_path,
        BenchmarkResult("api.large_dataset", "bench-api", data=[0.2], extra_info={"rss_growth_mb": 130.5}),
        BenchmarkResult(
            "api.concurrent_requests", "bench-api", data=[0.3], extra_info={"requests_over_2s": 1}
        ),
        BenchmarkResult(
            "db.connection_cleanup", "bench-db", data=[0.1], extra_info={"connections_left_over": 3}
        ),
    )
    a = analyse(load_run(tmp_path), load_thresholds())
    status = {r.rule.id: (r.status, r.value) for r in a.results if r.rule.metric.startswith("extra.")}
    assert status["bench.api.large_dataset.rss"] == ("fail", 130.5)
    assert status["bench.api.concurrent_requests.slow"] == ("pass", 1.0)
    assert status["bench.db.connection_cleanup.left_over"] == ("fail", 3.0)
    assert status["bench.api.concurrent_memory.rss"] == ("warn", None)  # not run: nothing to check
