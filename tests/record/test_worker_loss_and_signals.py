"""A run that loses a worker or is interrupted still leaves readable outputs that say what happened."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.backend_process import Backend
from tests.record.runs import (
    HTTP_TYPES,
    Distributed,
    backend_count,
    headless,
    read_outputs,
    reset_count,
    start,
    wait_for,
    write_locustfile,
)
from tests.record.runs import finish as finish_process
from tests.record.test_record_matches_backend import assert_agrees


def test_worker_killed_mid_run_is_reported_and_what_it_sent_is_kept(backend: Backend, tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path)
    run_dir = tmp_path / "run"
    reset_count(backend)
    d = Distributed(tmp_path, locustfile, backend.url, run_dir, workers=2, seconds=9)
    # Both workers have reported rows to the master before one of them dies.
    wait_for(lambda: backend_count(backend) > 300, 30, "requests to reach the backend")
    d.workers[0].kill()
    rc = d.finish()
    assert rc == 1, d.log()
    meta, summary, record = read_outputs(run_dir)
    assert len(meta["workers"]["seen"]) == 2
    assert len(meta["workers"]["lost"]) == 1, meta["workers"]
    lost = meta["workers"]["lost"][0]
    # Locust marks it missing after ~3 s without heartbeat; if the run ends first, no final report came.
    assert meta["workers"]["lost_reasons"][lost] in ("missing: no heartbeat", "no final report")
    assert (record["worker"] == lost).sum() == meta["workers"]["rows"][lost] > 0
    assert meta["complete"] is False and meta["ended_by"] == "normal"
    # The dead worker's rows came with its stats reports, so the record still equals Locust's totals.
    assert summary["agrees_with_locust"] is True
    assert summary["total"]["count"] == len(record)
    assert 0 < record["request_type"].isin(HTTP_TYPES).sum() <= backend_count(backend)


def test_ctrl_c_on_local_run_leaves_complete_agreeing_outputs(backend: Backend, tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path)
    run_dir = tmp_path / "run"
    reset_count(backend)
    log = tmp_path / "local.log"
    proc = start(headless(locustfile, backend.url, run_dir, 3, 60), log, tmp_path)
    wait_for(lambda: backend_count(backend) > 150, 30, "requests to reach the backend")
    proc.send_signal(signal.SIGINT)
    assert finish_process(proc, log) == 1, log.read_text()
    meta, _, _ = read_outputs(run_dir)
    assert meta["ended_by"] == "SIGINT"
    assert_agrees(run_dir, backend, log.read_text(), cut_short=3)


def test_sigterm_on_local_run_leaves_complete_agreeing_outputs_also_in_locusts_own_files(
    backend: Backend, tmp_path: Path
) -> None:
    locustfile = write_locustfile(tmp_path)
    run_dir = tmp_path / "run"
    reset_count(backend)
    log = tmp_path / "local.log"
    # Locust's own CSV and HTML outputs named on the command line, as the suite does.
    own = ("--csv", str(run_dir / "locust"), "--html", str(run_dir / "locust.html"))
    proc = start(headless(locustfile, backend.url, run_dir, 3, 60, *own), log, tmp_path)
    wait_for(lambda: backend_count(backend) > 150, 30, "requests to reach the backend")
    proc.send_signal(signal.SIGTERM)
    assert finish_process(proc, log) == 1, log.read_text()
    meta, _, _ = read_outputs(run_dir)
    assert meta["ended_by"] == "SIGTERM"
    assert_agrees(run_dir, backend, log.read_text(), cut_short=3)  # locust_stats.csv included
    assert (run_dir / "locust.html").stat().st_size > 0  # Locust writes none after SIGTERM
