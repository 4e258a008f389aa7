"""A run folder on a filesystem that fills up mid-run: no row is dropped while the process lives, every
file is complete or absent, and a write that finally fails makes the run exit non-zero and invalid,
the cause named. The disk is a real tmpfs (mounting one needs root; the tests skip without)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.backend_process import Backend
from tests.faults.runs import assert_every_file_complete_or_absent, fill, small_tmpfs, write_locustfile
from tests.record.runs import finish, headless, read_outputs, start, wait_for

FULL = "disk full writing requests/part-"


def test_a_disk_full_for_a_while_loses_no_row(backend: Backend, tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path)
    log = tmp_path / "local.log"
    with small_tmpfs("4m") as disk:
        run_dir = disk / "run"
        proc = start(headless(locustfile, backend.url, run_dir, 2, 12), log, tmp_path)
        wait_for(lambda: (run_dir / "requests" / "part-000001.parquet").exists(), 30, "the record's parts")
        filler = disk / "filler"
        fill(filler)
        wait_for(lambda: FULL in log.read_text(), 10, "the full disk to be noticed")
        assert_every_file_complete_or_absent(run_dir)
        time.sleep(2)  # requests go on while no part can be written
        filler.unlink()
        rc = finish(proc, log)
        text = log.read_text()
        assert rc == 0, text
        # Said once, clearly, not at every retry, and no traceback.
        assert text.count(FULL) == 1 and "Traceback" not in text, text
        assert "written after all" in text
        meta, summary, record = read_outputs(run_dir)
        assert meta["complete"] is True and meta["problems"] == [], meta
        # Every request Locust counted is a row of the record: the rows waited in memory.
        assert summary["agrees_with_locust"] is True
        assert len(record) == summary["locust_total"]["count"] > 0
        assert_every_file_complete_or_absent(run_dir)


def test_a_disk_that_stays_full_makes_the_run_invalid_and_says_why(backend: Backend, tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path)
    log = tmp_path / "local.log"
    with small_tmpfs("4m") as disk:
        run_dir = disk / "run"
        proc = start(headless(locustfile, backend.url, run_dir, 2, 6), log, tmp_path)
        wait_for(lambda: (run_dir / "requests" / "part-000001.parquet").exists(), 30, "the record's parts")
        fill(disk / "filler")
        rc = finish(proc, log)
        text = log.read_text()
        assert rc == 3, text
        assert "Traceback" not in text, text
        # run.json, written in the space kept for it, names the cause.
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["exit_code"] == 3 and meta["complete"] is False
        assert any(p.startswith(FULL) and "rows of the record not written" in p for p in meta["problems"]), (
            meta
        )
        assert_every_file_complete_or_absent(run_dir)
        analysis = subprocess.run(
            [sys.executable, "-m", "analysis", str(run_dir), "--report", "console"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert analysis.returncode == 3, analysis.stdout + analysis.stderr
        assert FULL in analysis.stdout
