"""Reading the exact record: parts of different ages together, only the needed columns, labels as
categoricals, and a stray timestamp that must not cost memory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis import compute_stats, load_run
from tests.analysis.runs import RECORD_SCHEMA, Entry, record_frame


def test_parts_of_different_ages_are_read_together(tmp_path: Path) -> None:
    req = tmp_path / "requests"
    req.mkdir()
    # A part flushed before any request, one from a writer without the optional columns, a full one.
    pq.write_table(RECORD_SCHEMA.empty_table(), req / "part-000000.parquet")
    old = pa.table(
        {
            "timestamp": [1.0, 2.0],  # far from the others: the timeline must bin, not allocate per second
            "request_type": ["GET", "SQL"],
            "name": ["/x", "evidence by status"],
            "response_time_ms": [1.0, 2.0],
            "success": [True, False],
        }
    )
    pq.write_table(old, req / "part-000001.parquet")
    full = record_frame([Entry("GET", "/x", [3.0, 4.0], tags="smoke,auth")])
    pq.write_table(
        pa.Table.from_pandas(full, schema=RECORD_SCHEMA, preserve_index=False), req / "part-000002.parquet"
    )

    record = load_run(tmp_path).record
    assert record is not None and len(record) == 4
    assert list(record.columns) == [
        "timestamp",
        "request_type",
        "name",
        "response_time_ms",
        "success",
        "group",
        "tags",
    ]
    for col in ("request_type", "name", "group", "tags"):
        assert isinstance(record[col].dtype, pd.CategoricalDtype), col
    # Defaults of docs/run-folder.md for the part that lacks group and tags.
    assert list(record["group"].astype(str)) == ["api", "db", "api", "api"]
    assert list(record["tags"].astype(str)) == ["", "", "smoke,auth", "smoke,auth"]

    stats = compute_stats(load_run(tmp_path))
    rows = stats.entries.set_index("name")
    assert rows.loc["/x", "count"] == 3 and rows.loc["/x", "tags"] == "auth,smoke"
    assert rows.loc["evidence by status", "failures"] == 1 and rows.loc["evidence by status", "group"] == "db"
    assert len(stats.timeline) <= 20_000


def test_stream_columns_with_values_are_kept(tmp_path: Path) -> None:
    req = tmp_path / "requests"
    req.mkdir()
    frame = record_frame(
        [Entry("POST", "/api/chat/stream", [100.0, 200.0], group="ai", ttft=[10.0, 20.0], tokens=[5.0, 9.0])]
    )
    pq.write_table(
        pa.Table.from_pandas(frame, schema=RECORD_SCHEMA, preserve_index=False), req / "part-000000.parquet"
    )
    record = load_run(tmp_path).record
    assert record is not None
    assert {"ttft_ms", "tokens"} <= set(record.columns)
    assert "intended_start" not in record.columns  # all NaN: not loaded
