"""Runs killed outright (SIGKILL): nothing of Locust's shutdown runs, so run.json is never finalised.
The analysis calls such a run invalid (exit 3) for that reason, every file left is complete or absent,
and workers whose master was killed stop their load within 10 s."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.backend_process import Backend
from tests.faults.runs import assert_every_file_complete_or_absent, write_locustfile
from tests.record.runs import Distributed, backend_count, headless, reset_count, start, wait_for

NEVER_FINALISED = "run.json was never finalised: the run (or its master) was killed"


def analyse(run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analysis", str(run_dir), "--report", "console"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_local_run_killed_mid_run_is_invalid(backend: Backend, tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path)
    run_dir = tmp_path / "run"
    log = tmp_path / "local.log"
    proc = start(headless(locustfile, backend.url, run_dir, 2, 60), log, tmp_path)
    try:
        wait_for(lambda: (run_dir / "requests" / "part-000002.parquet").exists(), 30, "the record's parts")
    finally:
        proc.kill()
        proc.wait()
    assert_every_file_complete_or_absent(run_dir)
    result = analyse(run_dir)
    assert result.returncode == 3, result.stdout + result.stderr
    assert NEVER_FINALISED in result.stdout and "Traceback" not in result.stderr


def test_workers_of_a_killed_master_stop_within_10_s_and_the_run_is_invalid(
    backend: Backend, tmp_path: Path
) -> None:
    locustfile = write_locustfile(tmp_path)
    run_dir = tmp_path / "run"
    reset_count(backend)
    d = Distributed(tmp_path, locustfile, backend.url, run_dir, workers=2, seconds=60)
    try:
        wait_for(lambda: (run_dir / "requests" / "part-000002.parquet").exists(), 30, "the record's parts")
        d.master.kill()
        d.master.wait()
        killed = time.monotonic()
        for worker in d.workers:
            # A lost master makes the worker's run invalid too.
            assert worker.wait(timeout=max(10 - (time.monotonic() - killed), 0.1)) == 3
        # No worker sends a request any more.
        count = backend_count(backend)
        time.sleep(1.5)
        assert backend_count(backend) == count
    finally:
        d.finish(timeout=1)
    worker_log = (tmp_path / "worker-0.log").read_text()
    assert "lost the master: no heartbeat from 127.0.0.1" in worker_log, worker_log
    assert_every_file_complete_or_absent(run_dir)
    result = analyse(run_dir)
    assert result.returncode == 3, result.stdout + result.stderr
    assert NEVER_FINALISED in result.stdout
    # Not the reason an unfinished run.json would suggest (it was written before any worker came).
    assert "expected workers took part" not in result.stdout
