"""The exact request record: one row per request event, unrounded, written as parquet parts.

Locust keeps response times in buckets of about two significant digits; the request event itself
carries the measured float milliseconds. `RequestRecorder.on_request` keeps each event as one tuple in a
list (the only per-request work, so recording costs little); `take_columns` turns the list into plain
columns in one pass, which a worker sends to its master and `PartWriter` converts to Arrow and writes as
`requests/part-NNNNNN.parquet`. Each part is written under a temporary name and renamed, so every part
that exists is complete and readable, also after the writing process was killed.

Column names and meaning: docs/run-folder.md. This module must not start greenlets or touch Locust's
runner: `_run_output` decides when to take and where to send.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS: tuple[str, ...] = (
    "timestamp",
    "request_type",
    "name",
    "response_time_ms",
    "response_length",
    "success",
    "error",
    "user_class",
    "worker",
    "group",
    "ttft_ms",
    "tokens",
    "intended_start",
    "tags",
)

SCHEMA = pa.schema(
    [
        ("timestamp", pa.float64()),
        ("request_type", pa.string()),
        ("name", pa.string()),
        ("response_time_ms", pa.float64()),
        ("response_length", pa.int64()),
        ("success", pa.bool_()),
        ("error", pa.string()),
        ("user_class", pa.string()),
        ("worker", pa.string()),
        ("group", pa.string()),
        ("ttft_ms", pa.float64()),
        ("tokens", pa.float64()),
        ("intended_start", pa.float64()),
        ("tags", pa.string()),
    ]
)

# The group a row belongs to when the request's context names none.
GROUP_BY_REQUEST_TYPE = {"SQL": "db", "WS": "websocket", "LLM": "ai"}

NAN = math.nan

# Failure messages are written as given, except for anything shaped like a credential.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1<redacted>"),
    (
        re.compile(r"(?i)\b(access_token|refresh_token|password|token)(['\"]?\s*[:=]\s*['\"]?)[^'\"&\s,}]+"),
        r"\1\2<redacted>",
    ),
    (re.compile(r"://([^/@:\s]+):[^/@\s]+@"), r"://\1:<redacted>@"),
)


def error_text(exception: Any) -> str:
    """The failure message of a request event's `exception`, with credentials blanked out."""
    if isinstance(exception, str):
        text = exception
    else:
        message = str(exception)
        # `response.failure("...")` raises CatchResponseError whose text is the message itself.
        if type(exception).__name__ == "CatchResponseError" and message:
            text = message
        else:
            text = f"{type(exception).__name__}: {message}" if message else type(exception).__name__
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _float(value: Any) -> float:
    if value is None:
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return ",".join(str(v) for v in value)
    return str(value)


class RequestRecorder:
    """Collects request events of one process; `take_columns` empties it.

    `worker` is what the `worker` column says for this process's rows (`local`, `master` or the worker id).
    """

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._rows: list[tuple[Any, ...]] = []
        self.enabled = True

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        response_length: int | None,
        exception: Any = None,
        context: Mapping[str, Any] | None = None,
        start_time: float | None = None,
        **_kwargs: Any,
    ) -> None:
        if start_time is None:
            # Producers that do not say when the request started: derive it from the end.
            start_time = time.time() - (response_time or 0.0) / 1000.0
        self._rows.append(
            (start_time, request_type, name, response_time, response_length, exception, context)
        )

    def __len__(self) -> int:
        return len(self._rows)

    def take_columns(self) -> dict[str, list[Any]]:
        """The rows recorded since the last call, as plain columns (msgpack- and Arrow-friendly)."""
        rows, self._rows = self._rows, []
        return rows_to_columns(rows, self.worker)


def rows_to_columns(rows: list[tuple[Any, ...]], worker: str) -> dict[str, list[Any]]:
    """Turn raw request-event tuples into the record's columns."""
    n = len(rows)
    if not n:
        return {c: [] for c in COLUMNS}
    starts, types, names, times, lengths, exceptions, contexts = (list(c) for c in zip(*rows, strict=True))
    success = [e is None for e in exceptions]
    errors = ["" if e is None else error_text(e) for e in exceptions]
    user_classes: list[str] = []
    groups: list[str] = []
    ttfts: list[float] = []
    tokens: list[float] = []
    intended: list[float] = []
    tags: list[str] = []
    for request_type, ctx in zip(types, contexts, strict=True):
        if ctx:
            get = ctx.get
            user_classes.append(_text(get("user_class")))
            groups.append(get("group") or GROUP_BY_REQUEST_TYPE.get(request_type, "api"))
            ttfts.append(_float(get("ttft_ms")))
            tokens.append(_float(get("tokens")))
            intended.append(_float(get("intended_start")))
            tags.append(_text(get("tags")))
        else:
            user_classes.append("")
            groups.append(GROUP_BY_REQUEST_TYPE.get(request_type, "api"))
            ttfts.append(NAN)
            tokens.append(NAN)
            intended.append(NAN)
            tags.append("")
    return {
        "timestamp": [_float(s) for s in starts],
        "request_type": [str(t) for t in types],
        "name": [str(x) for x in names],
        "response_time_ms": [NAN if t is None else float(t) for t in times],
        "response_length": [int(x) if x else 0 for x in lengths],
        "success": success,
        "error": errors,
        "user_class": user_classes,
        "worker": [worker] * n,
        "group": groups,
        "ttft_ms": ttfts,
        "tokens": tokens,
        "intended_start": intended,
        "tags": tags,
    }


def column_count(columns: Mapping[str, list[Any]]) -> int:
    return len(columns.get("timestamp", ()))


def columns_to_table(batches: Iterable[Mapping[str, list[Any]]]) -> pa.Table:
    """One Arrow table from several column batches (as taken locally or received from workers)."""
    tables = [
        pa.table({c: pa.array(b[c], type=SCHEMA.field(c).type) for c in COLUMNS}, schema=SCHEMA)
        for b in batches
        if column_count(b)
    ]
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables)


class PartWriter:
    """Writes the record as numbered parquet parts in `directory` and counts what it wrote."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._next = 0
        self.rows_written = 0
        self.parts_written = 0
        self.counts: Counter[tuple[str, str]] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()

    def write(self, batches: Iterable[Mapping[str, list[Any]]]) -> int:
        """Write the batches as one part; returns the number of rows written (0 writes nothing)."""
        batches = [b for b in batches if column_count(b)]
        if not batches:
            return 0
        table = columns_to_table(batches)
        path = self.directory / f"part-{self._next:06d}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        self._next += 1
        self.parts_written += 1
        self.rows_written += table.num_rows
        for b in batches:
            keys = list(zip(b["request_type"], b["name"], strict=True))
            self.counts.update(keys)
            self.failures.update(k for k, ok in zip(keys, b["success"], strict=True) if not ok)
        return table.num_rows

    def summary(self) -> dict[str, Any]:
        """Totals per entry of what was written: the layout of `summary.json`'s `entries` and `total`."""
        entries = [
            {"request_type": t, "name": n, "count": c, "failures": self.failures.get((t, n), 0)}
            for (t, n), c in sorted(self.counts.items())
        ]
        return {
            "entries": entries,
            "total": {"count": sum(self.counts.values()), "failures": sum(self.failures.values())},
        }
