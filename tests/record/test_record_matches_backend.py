"""The exact record holds every request the backend received, in local, multi-process and distributed
runs, and its totals equal Locust's final statistics (terminal summary, summary.json, locust_stats.csv)."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import pandas as pd
import pytest

import compliance_loadtest
from tests.backend_process import Backend, free_port
from tests.record.runs import (
    HTTP_TYPES,
    Distributed,
    backend_count,
    headless,
    locust,
    locust_stats_total,
    processes_modules,
    read_outputs,
    reset_count,
    resource_rows,
    run,
    wait_for,
    write_locustfile,
)


def assert_agrees(run_dir: Path, backend: Backend, log: str, cut_short: int = 0) -> None:
    """The record's rows = the requests the backend received = Locust's final figures.

    A signal may cut up to `cut_short` requests short (one per user): the backend received them, but
    neither Locust nor the record saw an answer, so neither counts them."""
    assert (run_dir / "run.json").is_file(), log
    meta, summary, record = read_outputs(run_dir)
    http = record[record["request_type"].isin(HTTP_TYPES)]
    assert 0 < len(http) <= backend_count(backend) <= len(http) + cut_short
    assert summary["agrees_with_locust"] is True, summary
    assert (
        summary["total"]
        == summary["locust_total"]
        == {
            "count": len(record),
            "failures": int((~record["success"]).sum()),
        }
    )
    assert locust_stats_total(run_dir) == (len(record), int((~record["success"]).sum()))
    aggregated = [line for line in log.splitlines() if line.strip().startswith("Aggregated")]
    assert aggregated and str(len(record)) in aggregated[-2].split()  # the final summary table
    assert meta["complete"] is True and meta["record"]["rows"] == len(record), meta
    # run.json counts the rows of each user class as the parts are written: the parts' own counts.
    by_class = record.loc[record["user_class"] != "", "user_class"].value_counts().to_dict()
    assert meta["record"]["user_classes"] == by_class and by_class, meta["record"]


def assert_columns(record: pd.DataFrame) -> None:
    failed = record[~record["success"]]
    assert set(failed["name"]) == {"/no-such-route"}
    assert set(failed["error"]) == {"expected 200, got 404"}
    assert (record.loc[record["success"], "error"] == "").all()
    llm = record[record["request_type"] == "LLM"].iloc[0]
    assert llm["response_time_ms"] == 123.456789  # not rounded to Locust's buckets
    assert (llm["ttft_ms"], llm["tokens"], llm["group"]) == (4.25, 11.0, "ai")
    http = record[record["request_type"] == "GET"]
    assert (http["group"] == "api").all() and http["ttft_ms"].isna().all()
    assert (record["user_class"] == "RecordProbeUser").all() and (record["tags"] == "probe").all()
    assert record["timestamp"].between(1.7e9, 2.1e9).all()
    assert not http["response_time_ms"].map(lambda v: float(v).is_integer()).all()
    assert math.isnan(llm["intended_start"])


def test_local_run_records_every_request_the_backend_received(backend: Backend, tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path, report_modules=True)
    run_dir = tmp_path / "run"
    reset_count(backend)
    rc, log = run(headless(locustfile, backend.url, run_dir, 3, 3), tmp_path)
    assert rc == 1, log  # the failing task makes Locust exit 1
    assert_agrees(run_dir, backend, log)
    _, _, record = read_outputs(run_dir)
    assert_columns(record)
    # Recording and writing the parts need pyarrow, not pandas: without thresholds there is no live
    # verdict, the only part of a load-generating process that uses pandas.
    assert processes_modules(tmp_path, "local") == [["compliance_loadtest.plugin.run_output", "pyarrow"]]
    assert set(record["worker"]) == {"local"}
    system = json.loads((run_dir / "run.json").read_text())["system"]
    assert system["memory_total_mb"] > 100 and system["cpu_count"] >= 1
    for name in ("locust.json", "locust.html", "locust_stats_history.csv", "locust_failures.csv"):
        assert (run_dir / name).stat().st_size > 0, name


@pytest.mark.postgres
def test_local_run_against_postgres_backend_records_every_request(
    pg_backend: Backend, tmp_path: Path
) -> None:
    locustfile = write_locustfile(tmp_path)
    run_dir = tmp_path / "run"
    reset_count(pg_backend)
    rc, log = run(headless(locustfile, pg_backend.url, run_dir, 3, 3), tmp_path)
    assert rc == 1, log
    assert_agrees(run_dir, pg_backend, log)


def test_processes_run_gathers_both_workers_records_on_the_master(backend: Backend, tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path)
    run_dir = tmp_path / "run"
    reset_count(backend)
    port = str(free_port())  # not Locust's default 5557, which another run on the machine may hold
    ports = ("--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--master-port", port)
    rc, log = run(headless(locustfile, backend.url, run_dir, 4, 4, "--processes", "2", *ports), tmp_path)
    assert rc == 1, log
    assert_agrees(run_dir, backend, log)
    meta, _, record = read_outputs(run_dir)
    assert meta["workers"]["expected"] == 2 and len(meta["workers"]["seen"]) == 2
    assert set(record["worker"]) == set(meta["workers"]["seen"])
    generators = set(resource_rows(run_dir).query("role == 'load-generator'")["worker"])
    assert generators == {"master", *meta["workers"]["seen"]}


def test_master_and_two_worker_processes_agree_with_backend(backend: Backend, tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path, report_modules=True)
    run_dir = tmp_path / "run"
    reset_count(backend)
    d = Distributed(tmp_path, locustfile, backend.url, run_dir, workers=2, seconds=4)
    rc = d.finish()
    assert rc == 1, d.log()
    assert_agrees(run_dir, backend, d.log())
    meta, _, record = read_outputs(run_dir)
    assert meta["workers"]["lost"] == [] and len(meta["workers"]["seen"]) == 2
    assert record.groupby("worker").size().to_dict() == meta["workers"]["rows"]
    # The workers learnt of the run folder from the spawn message and recorded with pyarrow; neither
    # they nor the master, which writes the parts, imported pandas.
    recording = ["compliance_loadtest.plugin.run_output", "pyarrow"]
    assert processes_modules(tmp_path) == [recording, recording]
    assert processes_modules(tmp_path, "master") == [recording]


def test_workers_of_a_master_without_run_folder_never_import_the_writer(
    backend: Backend, tmp_path: Path
) -> None:
    locustfile = write_locustfile(tmp_path, report_modules=True)
    d = Distributed(tmp_path, locustfile, backend.url, None, workers=2, seconds=3)
    rc = d.finish()
    assert rc == 1, d.log()  # the probe's failing route
    assert "Traceback" not in d.log(), d.log()
    assert processes_modules(tmp_path) == [[], []]
    assert not (tmp_path / "run").exists()


def test_sigterm_to_distributed_master_leaves_complete_agreeing_outputs(
    backend: Backend, tmp_path: Path
) -> None:
    locustfile = write_locustfile(tmp_path)
    run_dir = tmp_path / "run"
    reset_count(backend)
    d = Distributed(tmp_path, locustfile, backend.url, run_dir, workers=2, seconds=60)
    wait_for(lambda: backend_count(backend) > 200, 30, "requests to reach the backend")
    d.signal_master(signal.SIGTERM)
    rc = d.finish()
    assert rc == 1, d.log()
    meta, _, _ = read_outputs(run_dir)
    assert meta["ended_by"] == "SIGTERM", meta
    assert_agrees(run_dir, backend, d.log())


@pytest.mark.postgres
def test_compliance_users_in_two_processes_against_postgres_backend_are_all_recorded(
    pg_backend: Backend, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    reset_count(pg_backend)
    port = str(free_port())
    cmd = locust(
        "-f", compliance_loadtest.locustfile_path(), "--headless", "-u", "4", "-r", "4", "-t", "5s",
        "--stop-timeout", "10", "-H", pg_backend.url, "--run-dir", str(run_dir), "--processes", "2",
        "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--master-port", port,
        "ComplianceUser",
    )  # fmt: skip
    rc, log = run(cmd, tmp_path, timeout=120)
    assert rc == 0, log
    meta, summary, record = read_outputs(run_dir)
    assert len(record) == backend_count(pg_backend) > 0
    assert summary["agrees_with_locust"] is True and meta["complete"] is True, (summary, meta)
    assert set(record["user_class"]) == {"ComplianceUser"} and set(record["worker"]) == set(
        meta["workers"]["seen"]
    )
    assert len(meta["workers"]["seen"]) == 2


def test_locusts_own_csv_keeps_every_entry_when_the_run_folder_writes_locust_json(
    backend: Backend, tmp_path: Path
) -> None:
    """With `--csv` into the run folder, Locust rewrites its CSV at exit, after the library has written
    locust.json: that must not have emptied the per-entry statistics the CSV is made from."""
    locustfile = write_locustfile(tmp_path)
    run_dir = tmp_path / "run"
    rc, log = run(
        headless(locustfile, backend.url, run_dir, 2, 3, "--csv", str(run_dir / "locust")), tmp_path
    )
    assert rc == 1, log
    from_json = {
        (e["method"], e["name"]): e["num_requests"] for e in json.loads((run_dir / "locust.json").read_text())
    }
    csv = pd.read_csv(run_dir / "locust_stats.csv")
    from_csv = {
        (r["Type"], r["Name"]): int(r["Request Count"])
        for _, r in csv.iterrows()
        if r["Name"] != "Aggregated"
    }
    assert from_json and all(n > 0 for n in from_json.values()), from_json
    assert from_csv == from_json
