"""A target with nothing listening: the run is invalid (exit 3) and what the user reads says
"connection refused", from the analysis of a real run and from the suite before any load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.backend_process import free_port
from tests.faults.runs import write_locustfile
from tests.record.runs import headless, run


def test_a_run_against_a_closed_port_is_invalid_and_names_the_cause(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    rc, log = run(headless(write_locustfile(tmp_path), dead, run_dir, 2, 3), tmp_path)
    assert rc == 1, log  # Locust's own code for failed requests
    analysis = subprocess.run(
        [sys.executable, "-m", "analysis", str(run_dir), "--report", "console"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert analysis.returncode == 3, analysis.stdout + analysis.stderr
    (reason,) = [ln for ln in analysis.stdout.splitlines() if "invalid-run" in ln]
    assert "target unreachable: " in reason and "connection errors, no request succeeded" in reason
    assert "connection refused" in reason.lower()
    assert analysis.stderr == ""


def test_the_suite_against_a_closed_port_exits_3_saying_connection_refused(tmp_path: Path) -> None:
    port = free_port()
    suite = subprocess.run(
        [sys.executable, "-m", "compliance_loadtest", "-H", f"http://127.0.0.1:{port}", "-t", "5s",
         "--workers", "1", "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert suite.returncode == 3, suite.stdout + suite.stderr
    assert f"target unreachable: 127.0.0.1:{port} (connection refused)" in suite.stderr
    assert "Traceback" not in suite.stderr
