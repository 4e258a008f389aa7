"""The command line: exit codes 0/1/2/3, and every kind of bad input gives 2 with a message naming
the file, row, column or key (never a traceback)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.__main__ import main
from tests.analysis.runs import (
    STATS_HEADER,
    Entry,
    record_frame,
    simple_run,
    write_record,
    write_run_json,
    write_stats_csv,
)

PASSING = """
rules:
  - {id: login-fast, select: {name: /api/auth/login}, metric: p95, op: "<", value: 500ms}
  - {id: few-failures, per: all, metric: failure_ratio, op: "<", value: 5%}
"""


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def good_run(d: Path, login_ms: float = 20.0, **run_info: object) -> Path:
    return simple_run(
        d,
        [Entry("POST", "/api/auth/login", [login_ms] * 50), Entry("GET", "/health", [1.0] * 50)],
        **run_info,
    )


@pytest.fixture
def thresholds(tmp_path: Path) -> Path:
    p = tmp_path / "thresholds.yaml"
    p.write_text(PASSING)
    return p


def test_exit_0_when_every_threshold_holds(tmp_path: Path, thresholds: Path) -> None:
    run = good_run(tmp_path / "run")
    r = cli(run, "--thresholds", thresholds, "--out", tmp_path / "out", "--report", "json,console")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verdict: PASS (exit 0)" in r.stdout
    (report,) = (tmp_path / "out").glob("performance_report_*.json")
    assert json.loads(report.read_text())["verdict"]["status"] == "pass"


def test_exit_1_when_a_threshold_fails(tmp_path: Path, thresholds: Path) -> None:
    run = good_run(tmp_path / "run", login_ms=900.0)
    r = cli(run, "--thresholds", thresholds, "--report", "console")
    assert r.returncode == 1
    row = next(line for line in r.stdout.splitlines() if line.startswith("FAIL"))
    assert " ".join(row.split()) == "FAIL login-fast POST /api/auth/login 900.0 ms < 500.0 ms 50 requests"
    assert r.stdout.index("FAIL") < r.stdout.index("/health")  # the failed rule comes before the entries


def test_exit_1_when_a_regression_fails(tmp_path: Path, thresholds: Path) -> None:
    from tests.analysis.runs import lognormal

    base = simple_run(tmp_path / "base", [Entry("POST", "/api/auth/login", lognormal(4000, 100, 0.3, 1))])
    cur = simple_run(tmp_path / "cur", [Entry("POST", "/api/auth/login", lognormal(4000, 140, 0.3, 2))])
    r = cli(cur, "--thresholds", thresholds, "--baseline", base, "--report", "console")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REGRESSION POST /api/auth/login" in r.stdout
    shutil.copytree(base, tmp_path / "again")  # the same requests in a run folder of its own
    same = cli(tmp_path / "again", "--thresholds", thresholds, "--baseline", base, "--report", "none")
    assert same.returncode == 0, same.stdout + same.stderr


@pytest.mark.parametrize(
    ("run_info", "reason"),
    [
        (
            {"workers": {"expected": 2, "seen": ["worker-a", "worker-b"], "lost": ["worker-b"]}},
            "worker(s) lost during the run: worker-b",
        ),
        ({"load_generator_saturated": True}, "load generator was saturated"),
        ({"workers": {"expected": 3, "seen": ["w1", "w2"], "lost": []}}, "only 2 of 3 expected workers"),
    ],
)
def test_exit_3_for_an_invalid_run_even_when_thresholds_hold(
    tmp_path: Path, thresholds: Path, run_info: dict[str, object], reason: str
) -> None:
    run = good_run(tmp_path / "run", **run_info)
    r = cli(run, "--thresholds", thresholds, "--report", "console,md", "--out", tmp_path / "out")
    assert r.returncode == 3
    assert "Verdict: INVALID RUN (exit 3)" in r.stdout and reason in r.stdout
    (md,) = (tmp_path / "out").glob("*.md")
    assert "INVALID RUN" in md.read_text() and reason in md.read_text()


def test_exit_3_for_a_run_with_zero_requests(tmp_path: Path, thresholds: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_stats_csv(run, [",Aggregated,0,0,0,0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A"])
    r = cli(run, "--thresholds", thresholds, "--report", "console")
    assert r.returncode == 3
    assert "zero requests" in r.stdout


def test_an_interrupted_run_is_invalid_and_says_what_is_missing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_record(run, record_frame([Entry("GET", "/health", [1.0] * 20)]), parts=1)
    write_run_json(run, ended_by="SIGTERM", complete=False)
    assert main([str(run), "--report", "json", "--out", str(tmp_path / "out")]) == 3
    (report,) = (tmp_path / "out").glob("*.json")
    doc = json.loads(report.read_text())
    assert "locust_stats.csv" in doc["run"]["missing"] and "resources.csv" in doc["run"]["missing"]
    (issue,) = [i for i in doc["issues"] if i["kind"] == "interrupted-run"]
    assert "SIGTERM" in issue["message"] and "is incomplete" in issue["message"]
    assert doc["verdict"]["invalid_reasons"] == ["run.json says the run is incomplete"]


def test_a_run_stopped_by_a_signal_with_complete_outputs_is_not_called_incomplete(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_record(run, record_frame([Entry("GET", "/health", [1.0] * 20)]), parts=1)
    write_run_json(run, ended_by="SIGTERM", complete=True)
    assert main([str(run), "--report", "json", "--out", str(tmp_path / "out")]) == 0
    doc = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    (issue,) = [i for i in doc["issues"] if i["kind"] == "interrupted-run"]
    assert issue["message"] == "the run was stopped by SIGTERM; its outputs are complete"


def test_run_may_be_a_locust_csv_prefix(tmp_path: Path, thresholds: Path) -> None:
    write_stats_csv(
        tmp_path,
        [
            "POST,/api/auth/login,10,0,20,21.0,10,40,100,2.0,0.0,20,22,24,25,30,35,40,40,40,40,40",
            ",Aggregated,10,0,20,21.0,10,40,100,2.0,0.0,20,22,24,25,30,35,40,40,40,40,40",
        ],
        prefix="nightly",
    )
    r = cli(tmp_path / "nightly", "--thresholds", thresholds, "--report", "console")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Locust _stats.csv percentile columns" in r.stdout


def test_no_traceback_and_exit_2_on_bad_usage(tmp_path: Path) -> None:
    r = cli(tmp_path / "does-not-exist")
    assert r.returncode == 2
    assert "does-not-exist" in r.stderr and "neither a run folder nor a Locust --csv prefix" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli(tmp_path, "--report", "pdf")
    assert r.returncode == 2 and "unknown report 'pdf'" in r.stderr
    r = cli("--no-such-option")
    assert r.returncode == 2 and "usage:" in r.stderr


def bad(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    code = main([*map(str, argv), "--report", "none"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_truncated_stats_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_stats_csv(tmp_path, ["GET,/api/evidence,10,0,20,21.0,10,40,100,2.0,0.0,20,22,2"])
    err = bad(capsys, tmp_path)
    assert (
        "locust_stats.csv, row 2: has 14 fields where the header has 22 (file truncated or malformed)" in err
    )


def test_wrong_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "locust_stats.csv").write_text("Kind,Name,Count\nGET,/x,1\n")
    err = bad(capsys, tmp_path)
    assert "locust_stats.csv" in err and "column 'Type'" in err and "lacks column(s)" in err


def test_non_numeric_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_stats_csv(
        tmp_path, ["GET,/api/evidence,ten,0,20,21.0,10,40,100,2.0,0.0,20,22,24,25,30,35,40,40,40,40,40"]
    )
    err = bad(capsys, tmp_path)
    assert "locust_stats.csv, row 2, column 'Request Count': 'ten' is not a number" in err


def test_non_numeric_resource_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good_run(tmp_path)
    path = tmp_path / "resources.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",8,", ",eight,")
    path.write_text("\n".join(lines) + "\n")
    err = bad(capsys, tmp_path)
    assert "resources.csv, row 4, column 'threads': 'eight' is not a number" in err


@pytest.mark.parametrize(
    "name", ["locust_stats.csv", "locust_failures.csv", "resources.csv", "run.json", "locust.json"]
)
def test_empty_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    good_run(tmp_path)
    (tmp_path / name).write_text("")
    err = bad(capsys, tmp_path)
    assert name in err and "is empty" in err


def test_locust_json_with_a_bad_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "locust.json").write_text(
        json.dumps([{"name": "/x", "method": "GET", "num_requests": "many"}])
    )
    err = bad(capsys, tmp_path)
    assert "key '[0].num_requests': is missing or not a finite number of at least 0: 'many'" in err


def test_corrupt_parquet_part(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good_run(tmp_path)
    part = sorted((tmp_path / "requests").glob("*.parquet"))[-1]
    part.write_bytes(part.read_bytes()[:100])
    err = bad(capsys, tmp_path)
    assert part.name in err and "not a readable parquet file" in err


def test_record_part_missing_a_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "requests").mkdir()
    pq.write_table(
        pa.table({"timestamp": [1.0], "name": ["/x"]}), tmp_path / "requests" / "part-000000.parquet"
    )
    err = bad(capsys, tmp_path)
    assert "part-000000.parquet, column 'request_type': lacks a required column" in err


def test_bad_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good_run(tmp_path / "run")
    y = tmp_path / "t.yaml"
    y.write_text("rules:\n  - {metric: mean, op: '<', value: 5\n  - oops: [\n")
    err = bad(capsys, tmp_path / "run", "--thresholds", y)
    assert "t.yaml: is not valid YAML at line" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rules:\n  - {metric: mean, op: '<<', value: 5}\n",
            "key 'rules[0].op': '<<' is not one of <, <=, >, >=",
        ),
        ("rules:\n  - {metric: p1000, op: '<', value: 5}\n", "key 'rules[0].metric': unknown metric 'p1000'"),
        ("rules:\n  - {metric: mean, op: '<', value: 5kg}\n", "key 'rules[0].value': '5kg' is not a number"),
        ("rules:\n  - {metric: mean, op: '<', value: 5%}\n", "unit '%' does not fit metric 'mean'"),
        ("rules:\n  - {metric: mean, op: '<', value: 5, selct: {}}\n", "key 'rules[0].selct': unknown key"),
        ("rules:\n  - {metric: mean, op: '<', value: 5, select: {nme: x}}\n", "key 'rules[0].select.nme'"),
        (
            "rules:\n  - {metric: goodput, op: '>', value: 0.9}\n",
            "key 'rules[0].limits': goodput needs limits",
        ),
        ("rules: {}\n", "key 'rules': must be a list of rules"),
        ("", "is empty"),
        ("regression: {alpha: lots}\nrules: []\n", "key 'regression.alpha': must be a non-negative number"),
    ],
)
def test_invalid_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    good_run(tmp_path / "run")
    y = tmp_path / "t.yaml"
    y.write_text(text)
    err = bad(capsys, tmp_path / "run", "--thresholds", y)
    assert "t.yaml" in err and message in err


def test_bad_performance_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good_run(tmp_path / "run")
    cfg = tmp_path / "performance_config.json"
    cfg.write_text(json.dumps({"thresholds": {"api_response_time": "fast"}}))
    err = bad(capsys, tmp_path / "run", "--config", cfg)
    assert "performance_config.json" in err and "key 'thresholds.api_response_time'" in err


@pytest.mark.parametrize(
    ("config", "key", "problem"),
    [
        (
            {"thresholds": {"api_response_time": float("nan")}},
            "thresholds.api_response_time",
            "finite number",
        ),
        (
            {"thresholds": {"memory_increase_mb": float("inf")}},
            "thresholds.memory_increase_mb",
            "finite number",
        ),
        ({"thresholds": {"api_response_time": 0}}, "thresholds.api_response_time", "greater than 0"),
        ({"thresholds": {"api_latency": 1}}, "thresholds.api_latency", "unknown key"),
        ({"locust": {"users": "many"}}, "locust.users", "whole number"),
    ],
)
def test_performance_config_in_the_run_folder_goes_through_the_one_validator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: dict[str, object], key: str, problem: str
) -> None:
    run = good_run(tmp_path / "run")
    (run / "performance_config.json").write_text(json.dumps(config))  # NaN and Infinity as Python writes them
    err = bad(capsys, run)
    assert f"{run / 'performance_config.json'}, key '{key}': " in err and problem in err


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"complete": "yes"}, "complete", "expected true or false, got 'yes'"),
        ({"ended_by": "killed"}, "ended_by", "expected one of normal, SIGTERM, SIGINT, error or null"),
        ({"workers": {"expected": 2, "seen": "w1,w2", "lost": []}}, "workers.seen", "list of strings"),
        ({"workers": {"expected": -1, "seen": [], "lost": []}}, "workers.expected", "at least 0"),
        ({"started_at": "last tuesday"}, "started_at", "ISO 8601"),
        ({"system": {"memory_total_mb": "16G"}}, "system.memory_total_mb", "finite number"),
        (
            {"record": {"rows": 100, "user_classes": ["ComplianceUser"]}},
            "record.user_classes",
            "object of whole numbers",
        ),
        (
            {"record": {"rows": 100, "user_classes": {"ComplianceUser": "100"}}},
            "record.user_classes.ComplianceUser",
            "whole number",
        ),
    ],
)
def test_run_json_of_the_wrong_types_is_bad_input_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, object], key: str, problem: str
) -> None:
    run = good_run(tmp_path / "run", **change)
    err = bad(capsys, run)
    assert f"{run / 'run.json'}, key '{key}': " in err and problem in err


def test_header_only_stats_is_a_run_with_no_requests(tmp_path: Path, thresholds: Path) -> None:
    (tmp_path / "locust_stats.csv").write_text(STATS_HEADER + "\n")
    assert main([str(tmp_path), "--thresholds", str(thresholds), "--report", "none"]) == 3


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("compliance-analysis")
    r = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Exit 0 pass, 1 fail, 2 bad input, 3 invalid run" in " ".join(
        r.stdout.split()
    )


def test_a_folder_with_several_csv_prefixes_asks_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = "GET,/x,10,0,20,21.0,10,40,100,2.0,0.0,20,22,24,25,30,35,40,40,40,40,40"
    write_stats_csv(tmp_path, [row], prefix="monday")
    write_stats_csv(tmp_path, [row], prefix="tuesday")
    err = bad(capsys, tmp_path)
    assert "holds several Locust CSV prefixes (monday, tuesday): pass one as RUN" in err
    assert main([str(tmp_path / "tuesday"), "--report", "none"]) == 0
    assert main([str(tmp_path / "monday_stats.csv"), "--report", "none"]) == 0


def test_truncated_and_overlong_lines_of_the_per_second_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good_run(tmp_path)
    path = tmp_path / "resources.csv"
    text = path.read_text()
    path.write_text(text + "1790000009.0,target,local,4242,2")  # killed mid-line
    err = bad(capsys, tmp_path)
    assert "resources.csv, row 10, column 'cpu_percent': is empty where a number belongs" in err
    path.write_text(text + "1790000009.0,target,local,4242,200,10,8,12,surplus\n")
    err = bad(capsys, tmp_path)
    assert "resources.csv: is not valid CSV (Error tokenizing data" in err and "line 10" in err


def test_a_run_killed_before_run_json_was_finalised_is_invalid_and_says_so(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_record(run, record_frame([Entry("GET", "/health", [1.0] * 20)]), parts=1)
    write_run_json(run, ended_at=None, ended_by=None, exit_code=None, complete=False)
    assert main([str(run), "--report", "json", "--out", str(tmp_path / "out")]) == 3
    doc = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    (issue,) = [i for i in doc["issues"] if i["kind"] == "interrupted-run"]
    assert "an unknown cause (run.json never finalised)" in issue["message"]


def test_exit_3_when_user_code_raised_and_the_reason_names_the_first_exception(
    tmp_path: Path, thresholds: Path
) -> None:
    run = good_run(tmp_path / "run")
    (run / "locust_exceptions.csv").write_text(
        "Count,Message,Traceback,Nodes\n"
        '70,module \'steps.search\' has no attribute \'evidence\',"  File ""mine.py"", line 14",local\n'
    )
    r = cli(run, "--thresholds", thresholds, "--report", "console")
    assert r.returncode == 3, r.stdout + r.stderr
    assert (
        "user code raised 70 exception(s), so the run did not make the load it meant to "
        "(first: module 'steps.search' has no attribute 'evidence')"
    ) in r.stdout


HEAP_PROBE = """
import numpy as np
from analysis.__main__ import keep_freed_memory

def on_heap(address):
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            low, high = (int(x, 16) for x in line.split()[0].split("-"))
            if low <= address < high:
                return True
    return False

before = np.ones(10_000_000)  # 80 MB, as a ten-million-row column
print(on_heap(before.ctypes.data), np._core.multiarray._get_madvise_hugepage())
del before
keep_freed_memory()
after = np.ones(10_000_000)
print(on_heap(after.ctypes.data), np._core.multiarray._get_madvise_hugepage())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator and /proc/self/maps")
def test_the_command_serves_large_arrays_from_memory_it_can_reuse() -> None:
    # By default an array of a record's length is a mapping of its own, advised to huge pages; once the
    # command has called keep_freed_memory, it comes from the heap, which keeps what is freed for reuse.
    probe = subprocess.run(
        [sys.executable, "-c", HEAP_PROBE],
        capture_output=True,
        text=True,
        check=True,
        env=_env_without_malloc(),
    )
    assert probe.stdout.split("\n")[:2] == ["False True", "True False"], probe.stdout + probe.stderr


def _env_without_malloc() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "NUMPY_MADVISE"))
    }
