"""The exact request record: one row per request event, unrounded, written as parquet parts.

Locust keeps response times in buckets of about two significant digits; the request event itself
carries the measured float milliseconds. `RequestRecorder.on_request` appends each event's values to
a list (the only per-request work, so recording costs little); `take_table` turns them into an Arrow
table, inside Arrow, which a worker sends to its master as Arrow IPC bytes and
`PartWriter` writes as `requests/part-NNNNNN.parquet`. Each part is written under a temporary name and
renamed, so every part that exists is complete and readable, also after the writing process was killed.

The columns, their order, kinds and defaults, and the context keys kept come from the run folder's
contract (`compliance_loadtest.run_folder`), which the analysis reads the parts with; their meaning:
docs/run-folder.md. This module must not start greenlets or touch Locust's runner: `run_output`
decides when to take and where to send.
"""

from __future__ import annotations

import functools
import importlib.abc
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc
import pyarrow.parquet as pq

from compliance_loadtest.redact import redact_text
from compliance_loadtest.run_folder import (
    RECORD_BY_NAME,
    RECORD_COLUMN_NAMES,
    RECORD_COLUMNS,
    RECORD_CONTEXT_KEYS,
    default_group,
    part_name,
    temporary_name,
)

# Arrow's type for each kind of column of the contract.
ARROW_TYPES: dict[str, pa.DataType] = {
    "float64": pa.float64(),
    "string": pa.string(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
}
SCHEMA = pa.schema([(c.name, ARROW_TYPES[c.kind]) for c in RECORD_COLUMNS])
"""The record's Arrow schema, built from the run folder's contract (`run_folder.RECORD_COLUMNS`)."""

NAN = math.nan

# zstd: parts about a third the size of snappy's for a few percent more CPU.
COMPRESSION = "zstd"

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": COMPRESSION,
    # Labels repeat, so a dictionary pays; numbers are nearly all distinct, so it would be a wasted try.
    "use_dictionary": [c.name for c in RECORD_COLUMNS if c.kind == "string"],
    # Times split byte by byte compress well and decode fast: 10M rows are a quarter smaller (82 MB,
    # not 113), written in a sixth less CPU and read back in a quarter less time than with
    # dictionaries tried on every column. pyarrow, pandas and DuckDB (0.10 on) decode it.
    "column_encoding": {c.name: "BYTE_STREAM_SPLIT" for c in RECORD_COLUMNS if c.kind == "float64"},
}
"""How every part of the record is written (`pyarrow.parquet.write_table` options)."""


PART_MAX_ROWS = 100_000
"""A part is written as soon as this many rows wait, whatever its interval."""
QUICK_PARTS = 60
"""Parts written a second apart before the interval widens (see `part_interval_s`)."""


def part_interval_s(parts_written: int) -> float:
    """Seconds between two parts of the record, given how many were written so far.

    A part a second for the first minute of traffic: a short run, or one killed outright early, loses at
    most its last second of rows. Later, a part every ten seconds: each part costs its reader a fixed
    0.4 ms or so however few rows it holds, so a half-hour run at 5,000 requests a second is 234 parts,
    most of 50,000 rows, not 1,800 of 5,000 (10M requests against a baseline as large: analysed in
    2.6 s, not 4.2). A run killed outright is invalid whatever it left; ten seconds more or less of its
    rows change no verdict.
    """
    return 1.0 if parts_written < QUICK_PARTS else 10.0


def part_sizes(rows: int, per_second: int) -> list[int]:
    """The rows of each part `part_interval_s` gives a run of `rows` requests at `per_second` a second."""
    sizes: list[int] = []
    while rows > 0:
        n = min(rows, PART_MAX_ROWS, max(1, round(per_second * part_interval_s(len(sizes)))))
        sizes.append(n)
        rows -= n
    return sizes


def error_text(exception: Any) -> str:
    """The failure message of a request event's `exception`, with credentials redacted (`redact_text`)."""
    if isinstance(exception, str):
        text = exception
    else:
        message = str(exception)
        # `response.failure("...")` raises CatchResponseError whose text is the message itself.
        if type(exception).__name__ == "CatchResponseError" and message:
            text = message
        else:
            text = f"{type(exception).__name__}: {message}" if message else type(exception).__name__
    return _redacted(text)


@functools.lru_cache(maxsize=4096)
def _redacted(text: str) -> str:
    # A failing target fails thousands of requests a second with the same few messages: each distinct
    # message is redacted once, not once per row.
    return redact_text(text)


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


# The values kept per request, in this order: the event's own, then its context's.
_EVENT = ("timestamp", "request_type", "name", "response_time_ms", "response_length")
_KEPT = (*_EVENT, *RECORD_CONTEXT_KEYS)
_WIDTH = len(_KEPT)
_NO_CONTEXT = (None,) * len(RECORD_CONTEXT_KEYS)


class RequestRecorder:
    """Collects request events of one process; `take_table` empties it.

    `worker` is what the `worker` column says for this process's rows (`local`, `master` or the worker id).

    The values go into one flat list, a row after another (`_WIDTH` values each), rather than a tuple per
    request: floats and strings are not tracked by Python's garbage collector, while a tuple (or the
    event's context dict) kept for a second is, and thousands of those a second make the collector run
    full collections over Locust's whole heap. One list also takes a row in two `extend` calls, the
    context's values fetched by `map` inside the interpreter, where a list per column took eleven calls.
    `take_table` slices the columns back out. Failures are kept apart, by row number, since they are few.
    """

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._values: list[Any] = []
        self._failures: list[tuple[int, Any]] = []
        self.on_request = self._listener()

    def _listener(self) -> Any:
        values = self._values
        extend = values.extend
        failures = self._failures.append
        keys = RECORD_CONTEXT_KEYS
        no_context = _NO_CONTEXT
        now = time.time

        def on_request(
            request_type: str,
            name: str,
            response_time: float | None,
            response_length: int | None,
            exception: Any = None,
            context: Mapping[str, Any] | None = None,
            start_time: float | None = None,
            response: Any = None,
            url: Any = None,
            **_kwargs: Any,
        ) -> None:
            # `response` and `url`, which Locust's HTTP clients pass with every request, are named only so
            # that they bind as parameters: left to `**_kwargs` they cost a dict filled per request.
            if exception is not None:
                failures((len(values) // _WIDTH, exception))
            # Producers that do not say when the request started: derive it from the end.
            if start_time is None:
                start_time = now() - (response_time or 0.0) / 1000.0
            extend((start_time, request_type, name, response_time, response_length))
            extend(map(context.get, keys) if context else no_context)

        return on_request

    def __len__(self) -> int:
        return len(self._values) // _WIDTH

    def take_table(self) -> pa.Table:
        """The rows recorded since the last call, as an Arrow table of the record's schema."""
        # Copy and clear in place: the listener holds the list's extend method.
        flat = self._values
        values = {k: flat[i::_WIDTH] for i, k in enumerate(_KEPT)}
        failures = self._failures[:]
        flat.clear()
        self._failures.clear()
        return values_to_table(values, failures, self.worker)


def _strings(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pa.array([_text(v) for v in values], pa.string())


def _floats(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pa.array([_float(v) for v in values], pa.float64())


class _RefusePandas(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, *_args: Any, **_kwargs: Any) -> None:
        if fullname == "pandas":
            raise ModuleNotFoundError("not imported for the record", name=fullname)


def _answer_pyarrow_without_pandas() -> None:
    """Have pyarrow take pandas for absent, unless it is already loaded.

    The first time pyarrow converts Python values (`pa.array`, `pa.scalar`) it imports pandas to ask
    whether they are pandas objects: 40 MB and about 0.15 s of CPU in every process that records, none of
    which needs pandas (a worker; a local run without the live verdict). pyarrow keeps the answer, and
    asks again, importing pandas, the first time it converts to or from pandas (`to_pandas`,
    `from_pandas`): the live verdict and a user's own code lose nothing. Some of pyarrow's C++ steps import
    pandas whatever the answer (inferring a Python value's type, `Array.to_numpy`, the engine behind
    `Table.group_by`): this module gives every value its type and uses none of them, which the record's
    tests check in real runs."""
    if "pandas" in sys.modules:
        return
    refuse = _RefusePandas()
    sys.meta_path.insert(0, refuse)
    try:
        pa.array([], pa.null())
    finally:
        sys.meta_path.remove(refuse)


_answer_pyarrow_without_pandas()

# Constant columns are repeated inside Arrow: no Python list of n items is built for them.
_TRUE = pa.scalar(True, pa.bool_())
_EMPTY = pa.scalar("", pa.string())


def values_to_table(
    values: Mapping[str, list[Any]], failures: list[tuple[int, Any]], worker: str
) -> pa.Table:
    """The record's table from the kept values and the failures (row number, exception)."""
    n = len(values["timestamp"])
    if not n:
        return SCHEMA.empty_table()
    if failures:
        success = [True] * n
        errors = [""] * n
        for i, exception in failures:
            success[i] = False
            errors[i] = error_text(exception)
        success_array, error_array = pa.array(success, pa.bool_()), pa.array(errors, pa.string())
    else:
        success_array, error_array = pa.repeat(_TRUE, n), pa.repeat(_EMPTY, n)
    try:
        lengths = pa.array(values["response_length"], pa.int64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        lengths = pa.array([int(x) if x else 0 for x in values["response_length"]], pa.int64())
    request_types = _strings(values["request_type"])
    # The default group per request type, looked up once per distinct type.
    encoded = request_types.dictionary_encode()
    defaults = [default_group(t) for t in encoded.dictionary.to_pylist()]
    group = _strings(values["group"])
    group = pc.if_else(
        pc.or_kleene(pc.is_null(group), pc.equal(group, _EMPTY)),
        pc.take(pa.array(defaults, pa.string()), encoded.indices),
        group,
    )
    columns = {
        "timestamp": _floats(values["timestamp"]),
        "request_type": request_types,
        "name": _strings(values["name"]),
        "response_length": lengths.fill_null(RECORD_BY_NAME["response_length"].default),
        "success": success_array,
        "error": error_array,
        "worker": pa.repeat(pa.scalar(worker, pa.string()), n),
        "group": group,
    }
    # The other columns are kept values as given, null read as the contract's default.
    for c in RECORD_COLUMNS:
        if c.name not in columns:
            array = _floats(values[c.name]) if c.kind == "float64" else _strings(values[c.name])
            columns[c.name] = array if c.default is None else array.fill_null(c.default)
    return pa.table([columns[c] for c in RECORD_COLUMN_NAMES], schema=SCHEMA)


def table_to_bytes(table: pa.Table) -> bytes:
    """The table as Arrow IPC stream bytes, for a worker's report to its master."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def table_from_bytes(data: bytes) -> pa.Table:
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    if table.schema != SCHEMA:
        # A worker of another version: keep the columns both know, in the documented order.
        table = pa.table(
            {
                c: table[c] if c in table.column_names else pa.nulls(len(table), SCHEMA.field(c).type)
                for c in RECORD_COLUMN_NAMES
            },
            schema=SCHEMA,
        )
    return table


def _values(array: pa.Array, dtype: type[np.generic]) -> np.ndarray[Any, Any]:
    """A fixed-width Arrow array without nulls as numpy, over its data buffer: `Array.to_numpy` would
    import pandas (see `_answer_pyarrow_without_pandas`)."""
    data = np.frombuffer(array.buffers()[1], dtype=dtype)
    return data[array.offset : array.offset + len(array)]


def entry_counts(table: pa.Table) -> list[tuple[str, str, int, int]]:
    """`(request_type, name, count, failures)` per entry of a record table.

    Counted from the two columns' dictionary codes in numpy: Arrow's `group_by` would load its query
    engine, and with it pandas (see `_answer_pyarrow_without_pandas`), into every process that records."""
    if not table.num_rows:
        return []
    labels: list[list[Any]] = []
    codes: list[Any] = []
    for column in ("request_type", "name"):
        encoded = pc.dictionary_encode(table[column].combine_chunks(), null_encoding="encode")
        labels.append(encoded.dictionary.to_pylist())
        codes.append(_values(encoded.indices, np.int32).astype(np.int64))
    width = max(len(labels[1]), 1)
    keys = codes[0] * width + codes[1]
    failed = _values(pc.cast(pc.invert(table["success"].combine_chunks()), pa.int8()), np.int8).view(np.bool_)
    counts = np.bincount(keys)
    failures = np.bincount(keys[failed], minlength=len(counts))
    return [
        (labels[0][k // width], labels[1][k % width], int(counts[k]), int(failures[k]))
        for k in np.flatnonzero(counts).tolist()
    ]


def user_class_counts(table: pa.Table) -> dict[str, int]:
    """Rows per user class of a record table, counted inside Arrow (one pass per part, not per request);
    rows whose request gave no class (empty or null) are left out."""
    counts = pc.value_counts(table["user_class"]).to_pylist()
    return {c["values"]: c["counts"] for c in counts if c["values"]}


def warm_up(directory: Path | None = None, rows: int = 20_000) -> None:
    """Run each Arrow and parquet step once on throw-away rows, as many as a busy second brings.

    The first Arrow conversion and the first parquet file cost a hundred milliseconds and more of CPU
    (kernels set up, memory first touched); done in the middle of a run that would stall every simulated
    user of the process. With `directory` (the master's or local process's record folder), a part is
    written there under a hidden name and removed.
    """
    recorder = RequestRecorder("warm-up")
    fire = recorder.on_request
    fire("GET", "/", 1.0, 1, ValueError("warm-up"), {"user_class": "", "tags": ["x"]}, 0.0)
    for _ in range(rows):
        fire("GET", "/", 1.0, 1, None, {}, 0.0)
    table = table_from_bytes(table_to_bytes(recorder.take_table()))
    entry_counts(table)
    user_class_counts(table)
    if directory is None:  # a worker: it sends tables, the master writes them
        return
    scratch = directory / temporary_name("warm-up.parquet")
    try:
        pq.write_table(table, scratch, **PARQUET_OPTIONS)
    finally:
        scratch.unlink(missing_ok=True)


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
        self.user_classes: Counter[str] = Counter()
        """Rows written per user class; rows without one are not counted."""

    @property
    def next_name(self) -> str:
        """The file name the next part is written as: a part that failed to write is retried under it."""
        return part_name(self._next)

    def write(self, tables: Iterable[pa.Table]) -> int:
        """Write the tables as one part; returns the number of rows written (0 writes nothing).

        Raises the `OSError` of a write that failed (a full disk), having written nothing: the caller
        keeps the tables and calls again.
        """
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return 0
        table = pa.concat_tables(tables)
        path = self.directory / self.next_name
        tmp = path.with_name(temporary_name(path.name))
        try:
            pq.write_table(table, tmp, **PARQUET_OPTIONS)
            os.replace(tmp, path)
        except BaseException:
            # A full disk: the cut temporary file would only take the space a retry needs.
            tmp.unlink(missing_ok=True)
            raise
        self._next += 1
        self.parts_written += 1
        rows = int(table.num_rows)
        self.rows_written += rows
        for request_type, name, count, failures in entry_counts(table):
            self.counts[(request_type, name)] += count
            self.failures[(request_type, name)] += failures
        self.user_classes.update(user_class_counts(table))
        return rows

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
