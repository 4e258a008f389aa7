"""One table of malformed inputs, file by file: each exits 2 with a message naming the file and the row,
column or key, never a traceback, and writes nothing into the folder it was given."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from analysis.__main__ import main
from tests.analysis.runs import (
    Entry,
    record_frame,
    simple_run,
    write_record,
    write_run_json,
    write_stats_csv,
)

ROW = "GET,/a,{count},{failures},10,{mean},1,20,100,1.0,0,10,10,10,10,10,10,10,10,10,10,10"


def stats_csv(count: str = "5", failures: str = "0", mean: str = "10") -> Callable[[Path], None]:
    def write(d: Path) -> None:
        write_stats_csv(d, [ROW.format(count=count, failures=failures, mean=mean)])

    return write


def record_value(column: str, value: float) -> Callable[[Path], None]:
    def write(d: Path) -> None:
        frame = record_frame([Entry("GET", "/a", [10.0] * 20)])
        frame.loc[7, column] = value
        write_record(d, frame, parts=1)
        write_run_json(d)

    return write


def good_run_plus(name: str, text: str) -> Callable[[Path], None]:
    def write(d: Path) -> None:
        simple_run(d, [Entry("GET", "/a", [10.0] * 20)])
        (d / name).write_text(text)

    return write


def run_json(**change: object) -> Callable[[Path], None]:
    def write(d: Path) -> None:
        simple_run(d, [Entry("GET", "/a", [10.0] * 20)], **change)

    return write


RESOURCES_HEADER = "timestamp,role,worker,pid,rss_mb,cpu_percent,threads,open_files\n"
LOCUST_JSON_ENTRY = {
    "name": "/a",
    "method": "GET",
    "num_requests": 5,
    "num_failures": 0,
    "total_response_time": 50,
    "max_response_time": 20,
    "response_times": {"10": 5},
}

CASES = {
    "negative count": (
        stats_csv(count="-1625"),
        "locust_stats.csv, row 2, column 'Request Count': -1625 is not a whole number of at least 0",
    ),
    "fractional count": (stats_csv(count="2.5"), "column 'Request Count': 2.5 is not a whole number"),
    "failures over requests": (
        stats_csv(count="5", failures="9"),
        "column 'Failure Count': 9 failures of 5 requests: failures cannot exceed requests",
    ),
    "negative mean": (
        stats_csv(mean="-10"),
        "column 'Average Response Time': -10 is not a finite time of at least 0 ms",
    ),
    "infinite mean": (stats_csv(mean="inf"), "column 'Average Response Time': inf is not a finite time"),
    "NaN response time in the record": (
        record_value("response_time_ms", np.nan),
        "part-000000.parquet, row 7, column 'response_time_ms': is null where the record needs a value",
    ),
    "negative response time in the record": (
        record_value("response_time_ms", -5.0),
        "row 7, column 'response_time_ms': -5 is not a finite time of at least 0 ms",
    ),
    "infinite response time in the record": (
        record_value("response_time_ms", np.inf),
        "row 7, column 'response_time_ms': inf is not a finite time",
    ),
    "negative tokens in the record": (
        record_value("tokens", -3.0),
        "row 7, column 'tokens': -3 is not a finite count of at least 0",
    ),
    "all-NaN timestamps": (
        lambda d: (
            write_record(d, record_frame([Entry("GET", "/a", [1.0] * 5)]).assign(timestamp=np.nan)),
            write_run_json(d),
        ),
        "part-000000.parquet, row 0, column 'timestamp': is null where the record needs a value",
    ),
    "run.json complete as a string": (
        run_json(complete="yes"),
        "run.json, key 'complete': expected true or false, got 'yes'",
    ),
    "run.json lost workers as a string": (
        run_json(workers={"expected": 0, "seen": [], "lost": "w1"}),
        "run.json, key 'workers.lost': expected a list of strings",
    ),
    "arrival.json rate as text": (
        good_run_plus("arrival.json", json.dumps({"stages": [{"target_rate": "x"}]})),
        "arrival.json, key 'stages[0].target_rate': must be a finite number of at least 0, not 'x'",
    ),
    "arrival.json negative drops": (
        good_run_plus("arrival.json", json.dumps({"stages": [{"dropped": -1}]})),
        "arrival.json, key 'stages[0].dropped': must be a whole number of at least 0, not -1",
    ),
    "arrival.json not an object": (
        good_run_plus("arrival.json", "42"),
        "arrival.json: must hold a JSON object with 'stages', not int",
    ),
    "resources.csv negative RSS": (
        good_run_plus("resources.csv", RESOURCES_HEADER + "1,target,t,1,-5,10,1,1\n"),
        "resources.csv, row 2, column 'rss_mb': -5 is not a finite number of at least 0",
    ),
    "resources.csv infinite CPU": (
        good_run_plus("resources.csv", RESOURCES_HEADER + "1,target,t,1,5,inf,1,1\n"),
        "resources.csv, row 2, column 'cpu_percent': inf is not a finite number",
    ),
    "locust.json failures over requests": (
        lambda d: (d / "locust.json").write_text(json.dumps([{**LOCUST_JSON_ENTRY, "num_failures": 6}])),
        "locust.json, key '[0].num_failures': 6 failures of 5 requests",
    ),
    "locust.json negative histogram count": (
        lambda d: (d / "locust.json").write_text(
            json.dumps([{**LOCUST_JSON_ENTRY, "response_times": {"10": -5}}])
        ),
        "locust.json, key '[0].response_times': maps 10 ms to -5",
    ),
    "benchmark with a negative mean": (
        lambda d: (d / "benchmark_results.json").write_text(
            json.dumps({"benchmarks": [{"name": "api.x", "stats": {"min": 1, "max": 2, "mean": -1}}]})
        ),
        "benchmark_results.json, key 'benchmarks[0].stats.mean': is missing or not a finite number",
    ),
    "an empty folder": (lambda d: None, "is not a run folder"),
    "a report folder": (
        lambda d: (d / "performance_report_20261130_000000.json").write_text("{}"),
        "is not a run folder",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_exits_2_naming_where_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, message = CASES[case]
    run = tmp_path / "run"
    run.mkdir()
    make(run)
    before = sorted(p.name for p in run.iterdir())
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and "internal error" not in err
    assert sorted(p.name for p in run.iterdir()) == before  # no report written into it


def test_runs_parent_folder_is_refused_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    simple_run(runs / "demo", [Entry("GET", "/a", [10.0] * 20)])
    assert main([str(runs)]) == 2
    assert f"{runs}: is not a run folder" in capsys.readouterr().err
    assert sorted(p.name for p in runs.iterdir()) == ["demo"]


@pytest.mark.parametrize(
    ("yaml_text", "key", "problem"),
    [
        ("rules: []\nregression: {max_samples: 0}\n", "regression.max_samples", "whole number of at least 1"),
        ("rules: []\nregression: {min_samples: 2.5}\n", "regression.min_samples", "whole number"),
        ("rules: []\nregression: {alpha: 1.5}\n", "regression.alpha", "between 0 and 1"),
        (
            "rules: []\nregression: {min_samples: 30, max_samples: 20}\n",
            "regression.max_samples",
            "below min_samples",
        ),
        ("rules: []\nissues: {slow_mean_ms: .inf}\n", "issues.slow_mean_ms", "non-negative number"),
    ],
)
def test_regression_and_issue_settings_out_of_range_name_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], yaml_text: str, key: str, problem: str
) -> None:
    run = simple_run(tmp_path / "run", [Entry("GET", "/a", [10.0] * 20)])
    t = tmp_path / "t.yaml"
    t.write_text(yaml_text)
    assert main([str(run), "--thresholds", str(t), "--baseline", str(run), "--report", "none"]) == 2
    err = capsys.readouterr().err
    assert f"{t}, key '{key}': " in err and problem in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["empty folder", "run.json only"])
def test_a_baseline_with_nothing_to_compare_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    run = simple_run(tmp_path / "run", [Entry("GET", "/a", [10.0] * 20)])
    base = tmp_path / "base"
    base.mkdir()
    if kind == "run.json only":
        write_run_json(base)
    assert main([str(run), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert str(base) in err and ("nothing to compare" in err or "is not a run folder" in err)
    assert not list(run.glob("performance_report*"))
