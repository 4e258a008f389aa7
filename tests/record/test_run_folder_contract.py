"""The run folder matches docs/run-folder.md, its parts are always readable, and nothing already in a
folder is overwritten or leaks a secret."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from compliance_loadtest.plugin.monitor import RESOURCE_COLUMNS
from compliance_loadtest.plugin.record import COLUMNS, PartWriter, RequestRecorder, error_text
from tests.record.runs import headless, run, write_locustfile

DOC = Path(__file__).resolve().parents[2] / "docs" / "run-folder.md"


def _doc_record_columns() -> list[str]:
    text = DOC.read_text()
    section = text.split("## The exact request record", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)


def test_record_and_resource_columns_are_those_the_document_lists() -> None:
    assert tuple(_doc_record_columns()) == COLUMNS
    resources = DOC.read_text().split("## Resource samples", 1)[1]
    assert all(f"`{c}`" in resources for c in RESOURCE_COLUMNS)


def _fire(recorder: RequestRecorder, **overrides: object) -> None:
    event: dict[str, object] = {
        "request_type": "GET",
        "name": "/api/evidence/[id]",
        "response_time": 12.3456,
        "response_length": 321,
        "exception": None,
        "context": {"user_class": "ComplianceUser", "tags": ["evidence", "read"]},
        "start_time": 1_800_000_000.25,
    }
    event.update(overrides)
    recorder.on_request(**event)  # type: ignore[arg-type]


def test_parts_are_complete_files_and_summary_counts_what_was_written(tmp_path: Path) -> None:
    recorder = RequestRecorder("local")
    writer = PartWriter(tmp_path / "requests")
    _fire(recorder)
    _fire(recorder, exception=RuntimeError("boom"), response_length=None)
    writer.write([recorder.take_table()])
    _fire(recorder, request_type="SQL", name="evidence by status (join)", context=None, start_time=None)
    _fire(recorder, request_type="LLM", name="sse time to first token", context={"ttft_ms": 5, "tokens": 9})
    writer.write([recorder.take_table()])
    assert writer.write([recorder.take_table()]) == 0  # nothing waiting: no empty part
    parts = sorted(p.name for p in (tmp_path / "requests").iterdir())
    assert parts == ["part-000000.parquet", "part-000001.parquet"]  # no temporary file left behind
    assert pq.read_schema(tmp_path / "requests" / parts[0]).names == list(COLUMNS)
    df = pd.read_parquet(tmp_path / "requests")
    assert len(df) == 4
    assert df["response_time_ms"].iloc[0] == 12.3456 and df["response_length"].tolist()[:2] == [321, 0]
    assert df["error"].tolist()[:2] == ["", "RuntimeError: boom"]
    assert df["tags"].iloc[0] == "evidence,read" and df["user_class"].iloc[2] == ""
    assert df["group"].tolist() == ["api", "api", "db", "ai"]
    assert df["timestamp"].iloc[0] == 1_800_000_000.25
    assert abs(df["timestamp"].iloc[2] - time.time()) < 60  # no start_time given: derived from the end
    assert (df["ttft_ms"].iloc[3], df["tokens"].iloc[3]) == (5.0, 9.0)
    assert writer.summary() == {
        "entries": [
            {"request_type": "GET", "name": "/api/evidence/[id]", "count": 2, "failures": 1},
            {"request_type": "LLM", "name": "sse time to first token", "count": 1, "failures": 0},
            {"request_type": "SQL", "name": "evidence by status (join)", "count": 1, "failures": 0},
        ],
        "total": {"count": 4, "failures": 1},
    }


def test_failure_messages_keep_their_text_but_not_credentials() -> None:
    assert error_text("expected 200, got 500") == "expected 200, got 500"
    assert error_text(ValueError("bad")) == "ValueError: bad"
    assert error_text(TimeoutError()) == "TimeoutError"
    leaked = error_text("401 for Authorization: Bearer eyJhbGciOi.abc.def and password=hunter2")
    assert "eyJhbGciOi" not in leaked and "hunter2" not in leaked and "Bearer <redacted>" in leaked
    assert error_text("connect postgresql://app:pw123@db:5432/x failed") == (
        "connect postgresql://app:<redacted>@db:5432/x failed"
    )


def test_run_dir_holding_a_run_is_refused_with_exit_2_and_left_untouched(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "requests").mkdir(parents=True)
    (run_dir / "run.json").write_text('{"earlier": true}')
    (run_dir / "requests" / "part-000000.parquet").write_bytes(b"earlier")
    rc, log = run(headless(write_locustfile(tmp_path), "http://127.0.0.1:9", run_dir, 1, 1), tmp_path)
    assert rc == 2, log
    assert f"--run-dir {run_dir}: already holds a run" in log
    assert (run_dir / "run.json").read_text() == '{"earlier": true}'
    assert (run_dir / "requests" / "part-000000.parquet").read_bytes() == b"earlier"
    assert sorted(p.name for p in run_dir.iterdir()) == ["requests", "run.json"]
