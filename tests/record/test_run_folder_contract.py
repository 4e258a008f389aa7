"""The run folder matches docs/run-folder.md, its parts are always readable, and nothing already in a
folder is overwritten or leaks a secret."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import load_run
from compliance_loadtest.plugin.record import (
    PART_MAX_ROWS,
    SCHEMA,
    PartWriter,
    RequestRecorder,
    entry_counts,
    error_text,
    part_interval_s,
    part_sizes,
)
from compliance_loadtest.run_folder import (
    RECORD_COLUMN_NAMES,
    RECORD_COLUMNS,
    RECORD_CONTEXT_KEYS,
    RESOURCE_COLUMN_NAMES,
    Record,
    RunFolderError,
    RunInfo,
    Workers,
    default_group,
)
from tests.record.runs import headless, run, write_locustfile

DOC = Path(__file__).resolve().parents[2] / "docs" / "run-folder.md"


def _doc_section(title: str) -> str:
    return DOC.read_text().split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_record_and_resource_columns_are_those_the_document_lists() -> None:
    record = _doc_section("The exact request record")
    documented = re.findall(r"^\| `([a-z_]+)` \| ([a-z0-9]+) \|", record, re.M)
    assert documented == [(c.name, c.kind) for c in RECORD_COLUMNS]
    kinds = {"float64": pa.float64(), "string": pa.string(), "int64": pa.int64(), "bool": pa.bool_()}
    assert pa.schema([(c.name, kinds[c.kind]) for c in RECORD_COLUMNS]) == SCHEMA
    context = record.split("through the request event's `context` dict, keys", 1)[1].split("(", 1)[0]
    assert sorted(re.findall(r"`([a-z_]+)`", context)) == sorted(RECORD_CONTEXT_KEYS)
    resources = _doc_section("Resource samples (`resources.csv`)")
    assert all(f"`{c}`" in resources for c in RESOURCE_COLUMN_NAMES)


def test_run_json_keys_are_those_the_document_lists_and_read_back_as_written() -> None:
    rows = _doc_section("`run.json`").split("| key | meaning |", 1)[1].splitlines()
    first_cells = [row.split("|")[1] for row in rows if row.startswith("| `")]
    documented = [key for cell in first_cells for key in re.findall(r"`([a-z_]+)`", cell)]
    assert documented == [f.name for f in dataclasses.fields(RunInfo)]
    record_row = next(row for row in rows if row.startswith("| `record` |")).split("|")[2]
    assert re.findall(r"`([a-z_]+)`", record_row) == [f.name for f in dataclasses.fields(Record)]
    info = RunInfo(
        started_at="2026-09-21T14:13:20.000Z",
        ended_at="2026-09-21T14:13:30.000Z",
        ended_by="SIGTERM",
        exit_code=1,
        role="master",
        workers=Workers(
            expected=2, seen=("a", "b"), lost=("b",), lost_reasons={"b": "missing"}, rows={"a": 3}
        ),
        record=Record(rows=5, parts=1, user_classes={"ComplianceUser": 3, "ReviewerJourney": 2}),
        complete=False,
    )
    written = json.loads(json.dumps(info.to_json(), allow_nan=False))
    assert list(written) == documented
    assert list(written["record"]) == [f.name for f in dataclasses.fields(Record)]
    assert RunInfo.from_json(written) == info


def test_run_json_of_an_earlier_version_reads_with_no_user_class_counts() -> None:
    """Run folders written before `record.user_classes` existed still read: no class made requests
    that the folder knows of, and the analysis falls back to the groups."""
    earlier = RunInfo().to_json()
    del earlier["record"]["user_classes"]
    assert RunInfo.from_json(earlier).record.user_classes == {}


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"complete": "true"}, "complete", "true or false"),
        ({"load_generator_saturated": 1}, "load_generator_saturated", "true or false"),
        ({"exit_code": -1}, "exit_code", "at least 0"),
        ({"exit_code": 1.0}, "exit_code", "whole number"),
        ({"ended_by": "SIGKILL"}, "ended_by", "one of normal, SIGTERM, SIGINT, error"),
        ({"started_at": 1790000000}, "started_at", "a string"),
        ({"ended_at": "yesterday"}, "ended_at", "ISO 8601"),
        ({"user_classes": "ComplianceUser"}, "user_classes", "list of strings"),
        ({"workers": {"expected": True}}, "workers.expected", "whole number"),
        ({"workers": {"seen": [1, 2]}}, "workers.seen", "list of strings"),
        ({"workers": {"rows": {"w1": -3}}}, "workers.rows.w1", "at least 0"),
        ({"record": {"rows": "many"}}, "record.rows", "whole number"),
        ({"record": {"agrees_with_locust": "yes"}}, "record.agrees_with_locust", "true, false or null"),
        ({"record": {"user_classes": ["ComplianceUser"]}}, "record.user_classes", "object of whole numbers"),
        ({"record": {"user_classes": {"ComplianceUser": 2.5}}}, "record.user_classes.ComplianceUser",
         "whole number"),
        ({"system": {"memory_total_mb": float("nan")}}, "system.memory_total_mb", "finite"),
        ({"resources": {"target": {"role": "backend", "worker": "t", "pid": 1}}},
         "resources.target.role", "one of"),
        ({"resources": {"load_generators": [{"role": "load-generator", "worker": "w", "pid": "1"}]}},
         "resources.load_generators[0].pid", "whole number"),
        ({"options": []}, "options", "JSON object"),
        ({"problems": [None]}, "problems", "list of strings"),
    ],
)  # fmt: skip
def test_run_json_is_read_strictly_naming_the_file_and_key(
    change: dict[str, object], key: str, problem: str
) -> None:
    data = {**RunInfo().to_json(), **change}
    with pytest.raises(RunFolderError, match=problem) as err:
        RunInfo.from_json(data, file="runs/x/run.json")
    assert err.value.key == key
    assert str(err.value).startswith(f"runs/x/run.json: key '{key}': ")


def test_writer_and_analysis_default_the_same_group(tmp_path: Path) -> None:
    """A row whose request gave no group (none, None or "") reads as the same group on both sides."""
    recorder = RequestRecorder("local")
    for request_type, context in [
        ("GET", None),
        ("SQL", {"group": ""}),
        ("WS", {"group": None}),
        ("LLM", {}),
        ("BENCH", {"tags": "x"}),
        ("SQL", {"group": "bench-db"}),
    ]:
        recorder.on_request(request_type, "n", 1.0, 0, None, context, 1_800_000_000.0)  # fmt: skip
    table = recorder.take_table()
    expected = ["api", "db", "websocket", "ai", "bench", "bench-db"]
    assert table["group"].to_pylist() == expected
    assert [default_group(t) for t in table["request_type"].to_pylist()[:5]] == expected[:5]
    # The analysis fills the same defaults into a part that left `group` empty or out.
    (tmp_path / "requests").mkdir()
    pq.write_table(table.set_column(9, "group", pa.array(["", None, "", "", "", "bench-db"])),
                   tmp_path / "requests" / "part-000000.parquet")  # fmt: skip
    pq.write_table(table.drop_columns(["group"]), tmp_path / "requests" / "part-000001.parquet")
    record = load_run(tmp_path).record
    assert record is not None
    assert list(record["group"].astype(str)) == [*expected, *expected[:5], "db"]


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
    assert pq.read_schema(tmp_path / "requests" / parts[0]).names == list(RECORD_COLUMN_NAMES)
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
    # Rows per user class, the two rows that gave none left out.
    assert writer.user_classes == {"ComplianceUser": 2}


def test_entry_counts_count_every_pair_of_type_and_name_across_chunks_and_slices() -> None:
    rows = [
        ("GET", "/a", True), ("GET", "/b", False), ("POST", "/a", False), ("GET", "/a", False),
        ("POST", None, True), ("SQL", "/a", True), ("GET", "/a", True), ("POST", None, False),
    ] * 3  # fmt: skip
    columns = list(zip(*rows, strict=True))
    names = pa.array(columns[1], pa.string())
    table = pa.table({"request_type": list(columns[0]), "name": names, "success": list(columns[2])})
    # Two chunks, the first not starting at its buffers' start.
    table = pa.concat_tables([table.slice(1, 10), table.slice(11)])
    expected: dict[tuple[str, str | None], list[int]] = {}
    for request_type, name, ok in rows[1:]:
        counts = expected.setdefault((request_type, name), [0, 0])
        counts[0] += 1
        counts[1] += not ok
    got = entry_counts(table)
    assert {(t, n): [c, f] for t, n, c, f in got} == expected and len(got) == len(expected)
    assert entry_counts(table.slice(0, 0)) == []


def test_parts_come_a_second_apart_for_the_first_minute_then_ten_seconds_apart() -> None:
    assert [part_interval_s(n) for n in (0, 1, 59, 60, 61, 5_000)] == [1.0, 1.0, 1.0, 10.0, 10.0, 10.0]
    # Half an hour at 5,000 requests a second: 60 parts of a second, then 10 s each.
    sizes = part_sizes(9_000_000, 5_000)
    assert sum(sizes) == 9_000_000 and len(sizes) == 60 + 174
    assert sizes[:60] == [5_000] * 60 and set(sizes[60:-1]) == {50_000} and 0 < sizes[-1] <= 50_000
    # A fast run reaches the row limit first, and a part is never empty.
    assert max(part_sizes(10_000_000, 40_000)) == PART_MAX_ROWS
    assert part_sizes(3, 5_000) == [3] and part_sizes(0, 5_000) == []


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
