"""The documented commands for a master on one host and workers on others (docs/suite.md), run as
separate processes on loopback: the workers find the master, the master's run folder holds both
workers' work, and the analysis passes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import compliance_loadtest
from tests.backend_process import Backend, free_port

pytestmark = pytest.mark.slow

LOCUST = str(Path(sys.executable).with_name("locust"))


def test_a_master_and_two_workers_started_separately_make_one_valid_run(
    backend: Backend, tmp_path: Path
) -> None:
    locustfile = compliance_loadtest.locustfile_path()
    port = free_port()
    run = tmp_path / "run"
    master_cmd = [
        *(
            LOCUST,
            "-f",
            locustfile,
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
        ),
        *("--headless", "--expect-workers", "2", "--expect-workers-max-wait", "60", "--host", backend.url),
        *("-u", "2", "-r", "2", "-t", "6s", "--run-dir", str(run), "--csv", str(run / "locust")),
        *("--json-file", str(run / "locust"), "--only-summary", "StressTestUser"),
    ]
    worker_cmd = [
        LOCUST,
        "-f",
        locustfile,
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(port),
    ]
    master = subprocess.Popen(master_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers = [
        subprocess.Popen(worker_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    try:
        master_out, _ = master.communicate(timeout=120)
        worker_codes = [w.wait(timeout=60) for w in workers]
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
                p.wait()

    assert master.returncode in (0, 1), master_out
    assert worker_codes == [0, 0], "the master's quit should end each worker normally"
    info = json.loads((run / "run.json").read_text())
    assert info["workers"]["expected"] == 2
    assert len(info["workers"]["seen"]) == 2 and info["workers"]["lost"] == []
    rows = info["workers"]["rows"]
    assert len(rows) == 2 and all(n > 0 for n in rows.values()), (
        rows
    )  # both workers' requests reached the master

    analysis = subprocess.run(
        [sys.executable, "-m", "analysis", str(run), "--out", str(run / "report"), "--report", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert analysis.returncode == 0, analysis.stdout + analysis.stderr
