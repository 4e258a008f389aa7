"""benchmark_results.json has pytest-benchmark's layout and statistics, so its own tools read our runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_benchmark.stats import Stats

from compliance_loadtest.bench_results import BenchmarkResult, results_document, stats_of, write_results

DATA_SETS = [
    [0.5],
    [0.2, 0.4],
    [0.3, 0.1, 0.2],
    [0.1, 0.2, 0.3, 0.4],
    [0.11, 0.13, 0.12, 0.5, 0.14],
    [0.010, 0.012, 0.011, 0.013, 0.2, 0.009, 0.014],
    [1.0, 1.1, 0.9, 1.05, 0.95, 3.0, 1.02, 0.98, 1.01, 0.99],
]


@pytest.mark.parametrize("data", DATA_SETS, ids=lambda d: f"{len(d)}-rounds")
def test_stats_equal_pytest_benchmarks_own(data: list[float]) -> None:
    theirs = Stats()
    for x in data:
        theirs.update(x)
    ours = stats_of(data)
    for key, value in theirs.as_dict().items():
        assert ours[key] == pytest.approx(value), key
    assert ours["data"] == data
    assert ours["iterations"] == 1


def _result(name: str, data: list[float], failed: int = 0) -> BenchmarkResult:
    r = BenchmarkResult(name=name, group="bench-api")
    r.merge(
        {
            "data": data,
            "failed_rounds": failed,
            "errors": ["boom"] if failed else [],
            "rounds_expected": 3,
            "warmup_iterations": 1,
            "extra_info": {"rss_growth_mb": 1.5},
        }
    )
    return r


def test_document_lists_measured_benchmarks_and_sets_failed_ones_apart() -> None:
    doc = results_document(
        [_result("api.b", [0.2, 0.3, 0.25]), _result("api.a", [], failed=3)], commit_info={"id": "abc"}
    )
    assert set(doc) >= {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    [entry] = doc["benchmarks"]
    assert entry["name"] == "api.b" and entry["group"] == "bench-api"
    assert entry["fullname"] == "bench-api::api.b"
    assert entry["stats"]["rounds"] == 3
    assert entry["extra_info"]["rss_growth_mb"] == 1.5
    assert entry["extra_info"]["rounds_expected"] == 3
    assert doc["failed_benchmarks"] == [
        {"group": "bench-api", "name": "api.a", "failed_rounds": 3, "errors": ["boom"]}
    ]


def test_parts_from_several_users_add_up() -> None:
    r = _result("db.join", [0.1, 0.2])
    r.merge(
        {
            "data": [0.3],
            "failed_rounds": 1,
            "errors": ["late"],
            "rounds_expected": 3,
            "warmup_iterations": 1,
            "extra_info": {"rss_growth_mb": 4.0},
        }
    )
    assert r.data == [0.1, 0.2, 0.3]
    assert (r.users, r.rounds_expected, r.failed_rounds, r.errors) == (2, 6, 1, ["late"])
    assert r.extra_info["rss_growth_mb"] == 4.0  # the worst of the users' figures


def test_pytest_benchmark_compare_reads_the_file(tmp_path: Path) -> None:
    path = write_results(
        tmp_path / "benchmark_results.json",
        results_document([_result("api.b", [0.2, 0.3, 0.25]), _result("db.c", [0.01, 0.02])]),
    )
    assert json.loads(path.read_text())["benchmarks"]
    cli = Path(sys.executable).with_name("pytest-benchmark")
    proc = subprocess.run(
        [str(cli), "compare", str(path), "--columns=min,mean,max,rounds"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Failed to load" not in proc.stdout + proc.stderr
    assert "api.b" in proc.stdout and "db.c" in proc.stdout
