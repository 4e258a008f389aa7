"""Read a run folder (or a Locust `--csv` prefix) into validated DataFrames.

Everything here checks columns and types as it reads, and raises `RunFolderError` naming the file,
row and column of the first bad cell. A file that does not exist is not an error: an interrupted run
is analysed with what it left, and `RunData.missing` says what was not there. Nothing here computes
statistics; `_stats.py` does.

File names, the record's and resources.csv's columns and the typed run.json come from the run
folder's contract (`compliance_loadtest.run_folder`, which the writer imports too);
performance_config.json goes through the library's one validator (`compliance_loadtest.config`).
Both are pure modules: nothing here imports Locust or gevent.
"""

from __future__ import annotations

import csv
import json
import math
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.errors import RunFolderError, ThresholdsError, UsageError
from compliance_loadtest import run_folder as rf
from compliance_loadtest.config import BenchmarkConfig, BenchmarkConfigError, config_from_mapping
from compliance_loadtest.run_folder import RECORD_BY_NAME, RECORD_COLUMNS, RESOURCE_COLUMNS, RunInfo

# Locust's CSV headers (locust/stats.py, StatsCSV), mapped to our column names.
STATS_COLUMNS = {
    "Type": "request_type",
    "Name": "name",
    "Request Count": "count",
    "Failure Count": "failures",
    "Median Response Time": "median",
    "Average Response Time": "mean",
    "Min Response Time": "min",
    "Max Response Time": "max",
    "Average Content Size": "avg_content_size",
    "Requests/s": "rps",
    "Failures/s": "fail_rps",
}
HISTORY_COLUMNS = {
    "Timestamp": "timestamp",
    "User Count": "users",
    "Type": "request_type",
    "Name": "name",
    "Requests/s": "rps",
    "Failures/s": "fail_rps",
    "Total Request Count": "count",
    "Total Failure Count": "failures",
    "Total Median Response Time": "median",
    "Total Average Response Time": "mean",
    "Total Min Response Time": "min",
    "Total Max Response Time": "max",
    "Total Average Content Size": "avg_content_size",
}
FAILURES_COLUMNS = {"Method": "request_type", "Name": "name", "Error": "error", "Occurrences": "occurrences"}
FAILURES_OPTIONAL = {"First Seen": "first_seen", "Last Seen": "last_seen"}
EXCEPTIONS_COLUMNS = {"Count": "count", "Message": "message", "Traceback": "traceback", "Nodes": "nodes"}
# resources.csv: numbers are read as float64 (`threads` and `open_files` may be empty).
RESOURCES_NUMERIC = tuple(c.name for c in RESOURCE_COLUMNS if c.kind != "string")
RESOURCES_MAY_BE_EMPTY = ("threads", "open_files")

# What the analysis reads from the record; other columns are left on disk.
RECORD_READ = ("timestamp", "request_type", "name", "response_time_ms", "success", "group", "tags")
RECORD_READ_STREAM = ("ttft_ms", "tokens", "intended_start")
# Labels are read as pandas categoricals: ten million rows in a few hundred MB.
RECORD_CATEGORICAL = tuple(c for c in RECORD_READ if RECORD_BY_NAME[c].kind == "string")
# Required columns that must hold a value in every row (the writer never leaves them null).
RECORD_NOT_NULL = tuple(c.name for c in RECORD_COLUMNS if c.required and c.kind != "string")

NA_CELLS = frozenset({"", "N/A", "nan", "NaN"})


@dataclass(frozen=True)
class RunData:
    """What one run left behind, validated; `None` for each part it did not leave."""

    path: Path
    prefix: str | None
    stats: pd.DataFrame | None
    history: pd.DataFrame | None
    failures: pd.DataFrame | None
    exceptions: pd.DataFrame | None
    locust_json: tuple[Mapping[str, Any], ...] | None
    record: pd.DataFrame | None
    resources: pd.DataFrame | None
    run_info: RunInfo | None
    arrival: Any
    benchmarks: pd.DataFrame | None
    perf_config: Mapping[str, Any] | None
    """performance_config.json as given (validated: see `validate_config`)."""
    present: tuple[str, ...]
    missing: tuple[str, ...]
    capacity: CapacityFigures | None = None
    """capacity.json of a capacity search (see `read_capacity`)."""

    @property
    def label(self) -> str:
        return str(self.path if self.prefix in (None, "locust") else self.path / self.prefix)


def resolve_run(run: Path | str) -> tuple[Path, str | None]:
    """(folder, prefix) of a run folder, or of a Locust `--csv` prefix (`out/locust` for
    `out/locust_stats.csv`)."""
    p = Path(run)
    stats = rf.STATS_CSV_SUFFIX
    if p.is_dir():
        if (p / rf.locust_csv(stats)).exists() or (p / rf.LOCUST_JSON).exists():
            return p, rf.LOCUST_PREFIX
        prefixes = sorted(f.name[: -len(stats)] for f in p.glob(f"*{stats}"))
        if len(prefixes) > 1:
            raise UsageError(
                f"holds several Locust CSV prefixes ({', '.join(prefixes)}): pass one as RUN, e.g. "
                f"{p / prefixes[0]}",
                file=p,
            )
        return p, (prefixes[0] if prefixes else None)
    if Path(f"{p}{stats}").exists() or Path(f"{p}.json").exists():
        return p.parent, p.name
    if p.name.endswith(stats) and p.is_file():  # the stats file itself was given
        return p.parent, p.name[: -len(stats)]
    raise UsageError(
        "is neither a run folder nor a Locust --csv prefix (no such folder, no <RUN>_stats.csv)", file=p
    )


def load_run(run: Path | str, config: Path | str | None = None, with_stream_columns: bool = True) -> RunData:
    """Read everything a run folder holds; raise `RunFolderError` on the first malformed file."""
    folder, prefix = resolve_run(run)
    present: list[str] = []
    missing: list[str] = []

    def path_of(name: str) -> Path | None:
        p = folder / name
        if p.exists():
            present.append(name)
            return p
        missing.append(name)
        return None

    stats = history = failures = exceptions = None
    locust_json = None
    pre = prefix or rf.LOCUST_PREFIX
    if (p := path_of(rf.locust_csv(rf.STATS_CSV_SUFFIX, pre))) is not None:
        stats = read_stats_csv(p)
    if (p := path_of(rf.locust_csv(rf.HISTORY_CSV_SUFFIX, pre))) is not None:
        history = read_history_csv(p)
    if (p := path_of(rf.locust_csv(rf.FAILURES_CSV_SUFFIX, pre))) is not None:
        failures = read_failures_csv(p)
    if (p := path_of(rf.locust_csv(rf.EXCEPTIONS_CSV_SUFFIX, pre))) is not None:
        exceptions = read_exceptions_csv(p)
    if (p := path_of(f"{pre}.json")) is not None:
        locust_json = read_locust_json(p)
    record = None
    req_dir = folder / rf.REQUESTS_DIR
    if req_dir.is_dir() and any(req_dir.glob("*.parquet")):
        present.append(f"{rf.REQUESTS_DIR}/")
        record = read_record(req_dir, with_stream_columns=with_stream_columns)
    else:
        missing.append(f"{rf.REQUESTS_DIR}/")
    resources = read_resources_csv(p) if (p := path_of(rf.RESOURCES_CSV)) is not None else None
    run_info = read_run_json(p) if (p := path_of(rf.RUN_JSON)) is not None else None
    arrival = read_arrival(p) if (p := _optional(folder / rf.ARRIVAL_JSON, present)) is not None else None
    capacity = read_capacity(p) if (p := _optional(folder / rf.CAPACITY_JSON, present)) is not None else None
    benchmarks = None
    if (p := _optional(folder / rf.BENCHMARK_RESULTS_JSON, present)) is not None:
        benchmarks = read_benchmarks(p)
    config_path = (
        Path(config) if config is not None else _optional(folder / rf.PERFORMANCE_CONFIG_JSON, present)
    )
    if config is not None and not Path(config).exists():
        raise UsageError("no such file (given with --config)", file=config)
    if stats is None and locust_json is None and record is None and run_info is None and benchmarks is None:
        # Checked before anything is written: reports must never land in a folder that is no run.
        raise UsageError(
            f"is not a run folder: it holds none of {rf.locust_csv(rf.STATS_CSV_SUFFIX, pre)}, "
            f"{pre}.json, {rf.REQUESTS_DIR}/*.parquet, {rf.RUN_JSON}, {rf.BENCHMARK_RESULTS_JSON} "
            "(give the folder of one run, e.g. runs/demo, not runs/ or a report folder)",
            file=folder if prefix is None else folder / prefix,
        )
    perf_config = None
    if config_path is not None:
        perf_config = _read_json_object(config_path)
        validate_config(perf_config, str(config_path))
    return RunData(
        path=folder,
        prefix=prefix,
        stats=stats,
        history=history,
        failures=failures,
        exceptions=exceptions,
        locust_json=locust_json,
        record=record,
        resources=resources,
        run_info=run_info,
        arrival=arrival,
        benchmarks=benchmarks,
        perf_config=perf_config,
        present=tuple(present),
        missing=tuple(missing),
        capacity=capacity,
    )


@dataclass(frozen=True)
class CapacityFigures:
    """What the thresholds (`capacity >= N/s`) and the validity check read of `capacity.json`."""

    sustained_rate: float | None
    valid: bool
    invalid_reasons: tuple[str, ...]
    steps: tuple[Mapping[str, Any], ...] = ()
    """The search's steps as `capacity.json` holds them, for the report's table."""


def read_capacity(path: Path) -> CapacityFigures:
    """`capacity.json`'s verdict keys, checked; RunFolderError naming the file and key otherwise."""
    data = _read_json_object(path)
    rate = data.get("sustained_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0):
        raise RunFolderError("must be a rate (0 or more) or null", file=path, key="sustained_rate")
    valid = data.get("valid")
    if not isinstance(valid, bool):
        raise RunFolderError("must be true or false", file=path, key="valid")
    reasons = data.get("invalid_reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise RunFolderError("must be a list of texts", file=path, key="invalid_reasons")
    steps = data.get("steps", [])
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
        raise RunFolderError("must be a list of steps (objects)", file=path, key="steps")
    return CapacityFigures(None if rate is None else float(rate), valid, tuple(reasons), tuple(steps))


def _optional(p: Path, present: list[str]) -> Path | None:
    """Files only some runs write (arrival-rate runs, benchmarks): absent is not worth listing as missing."""
    if p.exists():
        present.append(p.name)
        return p
    return None


# --- CSV ---------------------------------------------------------------------------------------------


def _read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file; every row must have as many fields as the header."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RunFolderError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    if not text.strip():
        raise RunFolderError(
            "is empty (no header row): the run may have been killed while writing it", file=path
        )
    try:
        rows = list(csv.reader(text.splitlines(keepends=True), strict=True))
    except csv.Error as exc:
        raise RunFolderError(f"is not valid CSV ({exc})", file=path) from None
    header, body = rows[0], rows[1:]
    for i, row in enumerate(body):
        if not row:
            continue
        if len(row) != len(header):
            raise RunFolderError(
                f"has {len(row)} fields where the header has {len(header)} (file truncated or malformed)",
                file=path,
                row=i + 2,
            )
    return header, [r for r in body if r]


def _read_csv_fast(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0 or not path.read_bytes()[:4096].strip():
        raise RunFolderError(
            "is empty (no header row): the run may have been killed while writing it", file=path
        )
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RunFolderError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunFolderError(f"is not valid CSV ({str(exc).strip()})", file=path) from None


def _frame(
    path: Path,
    mapping: Mapping[str, str],
    optional: Mapping[str, str] | None = None,
    keep_percentiles: bool = False,
    large: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """The file's columns named in `mapping` (and `optional`), renamed, as text; `large` files (one row
    per second of a long run) go through pandas' C parser, whose messages name the line."""
    if large:
        raw = _read_csv_fast(path)
        header = [str(c) for c in raw.columns]
    else:
        header, rows = _read_csv_rows(path)
        raw = (
            pd.DataFrame(rows, columns=header, dtype=object)
            if rows
            else pd.DataFrame(columns=header, dtype=object)
        )
    absent = [c for c in mapping if c not in header]
    if absent:
        raise RunFolderError(
            f"lacks column(s) {', '.join(repr(c) for c in absent)}; found {', '.join(header)}",
            file=path,
            column=absent[0],
        )
    names = dict(mapping)
    names.update({k: v for k, v in (optional or {}).items() if k in header})
    percentile_cols: list[str] = []
    if keep_percentiles:
        for c in header:
            if c.endswith("%") and not c.startswith("Total"):
                names[c] = "p" + c[:-1]
                percentile_cols.append("p" + c[:-1])
    frame = raw[list(names)].rename(columns=names)
    return frame, percentile_cols


def _to_numeric(
    frame: pd.DataFrame,
    columns: Sequence[str],
    path: Path,
    original: Mapping[str, str],
    allow_na: Sequence[str] = (),
) -> pd.DataFrame:
    """Convert columns to float, naming the first cell that is not a number."""
    out = frame.copy()
    for col in columns:
        values = out[col].astype(str)
        converted = pd.to_numeric(values.where(~values.isin(NA_CELLS), other=np.nan), errors="coerce")
        bad = converted.isna() & ~values.isin(NA_CELLS)
        empty = values.isin(NA_CELLS) & (col not in allow_na)
        if bool(bad.any()):
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise RunFolderError(
                f"{values.iloc[i]!r} is not a number", file=path, row=i + 2, column=original.get(col, col)
            )
        if bool(empty.any()):
            i = int(np.flatnonzero(empty.to_numpy())[0])
            raise RunFolderError(
                "is empty where a number belongs (file truncated or malformed)",
                file=path,
                row=i + 2,
                column=original.get(col, col),
            )
        out[col] = converted.astype("float64")
    return out


def _check_range(
    frame: pd.DataFrame,
    columns: Sequence[str],
    path: Path,
    original: Mapping[str, str],
    *,
    minimum: float | None = 0.0,
    whole: bool = False,
    what: str = "a finite number of at least 0",
) -> None:
    """Every value of the (numeric) columns is finite, at least `minimum` and, if `whole`, a whole
    number; empty cells (NaN) were vetted by `_to_numeric`. Names the first bad cell."""
    for col in columns:
        values = frame[col].to_numpy(dtype=np.float64)
        present = ~np.isnan(values)
        bad = present & ~np.isfinite(values)
        if minimum is not None:
            bad |= present & (values < minimum)
        if whole:
            bad |= present & np.isfinite(values) & (values != np.floor(values))
        if bool(bad.any()):
            i = int(np.flatnonzero(bad)[0])
            raise RunFolderError(
                f"{values[i]:g} is not {what}", file=path, row=i + 2, column=original.get(col, col)
            )


def _check_failures_within_requests(frame: pd.DataFrame, path: Path, original: Mapping[str, str]) -> None:
    over = frame["failures"].to_numpy(dtype=np.float64) > frame["count"].to_numpy(dtype=np.float64)
    if bool(over.any()):
        i = int(np.flatnonzero(over)[0])
        raise RunFolderError(
            f"{frame['failures'].iloc[i]:g} failures of {frame['count'].iloc[i]:g} requests: "
            "failures cannot exceed requests",
            file=path,
            row=i + 2,
            column=original.get("failures", "failures"),
        )


def _check_locust_counts(
    frame: pd.DataFrame, path: Path, original: Mapping[str, str], pcols: Sequence[str]
) -> None:
    """Locust's stats and history CSVs: counts are whole and non-negative, failures within requests,
    times and rates finite and non-negative."""
    _check_range(
        frame, ["count", "failures"], path, original, whole=True, what="a whole number of at least 0"
    )
    _check_failures_within_requests(frame, path, original)
    times = ["median", "mean", "min", "max", *pcols]
    _check_range(frame, times, path, original, what="a finite time of at least 0 ms")
    _check_range(frame, ["avg_content_size", "rps", "fail_rps"], path, original)


def _inverse(*mappings: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in mappings:
        out.update({v: k for k, v in m.items()})
    return out


def read_stats_csv(path: Path) -> pd.DataFrame:
    """Locust's `_stats.csv`: one row per entry plus the `Aggregated` row, percentiles as `p50`, `p99.9`..."""
    frame, pcols = _frame(path, STATS_COLUMNS, keep_percentiles=True)
    original = _inverse(STATS_COLUMNS, {p: p[1:] + "%" for p in pcols})
    numeric = [c for c in STATS_COLUMNS.values() if c not in ("request_type", "name")]
    # Locust writes N/A for percentiles of an entry with no requests, and for min/median when empty.
    frame = _to_numeric(frame, numeric + pcols, path, original, allow_na=[*pcols, "median", "min", "max"])
    _check_locust_counts(frame, path, original, pcols)
    return frame


def read_history_csv(path: Path) -> pd.DataFrame:
    frame, pcols = _frame(path, HISTORY_COLUMNS, keep_percentiles=True, large=True)
    original = _inverse(HISTORY_COLUMNS, {p: p[1:] + "%" for p in pcols})
    numeric = [c for c in HISTORY_COLUMNS.values() if c not in ("request_type", "name")]
    frame = _to_numeric(frame, numeric + pcols, path, original, allow_na=[*pcols, "median", "min", "max"])
    _check_locust_counts(frame, path, original, pcols)
    _check_range(frame, ["timestamp"], path, original, what="a finite epoch time of at least 0")
    _check_range(frame, ["users"], path, original, whole=True, what="a whole number of at least 0")
    return frame


def read_failures_csv(path: Path) -> pd.DataFrame:
    frame, _ = _frame(path, FAILURES_COLUMNS, FAILURES_OPTIONAL)
    frame = _to_numeric(frame, ["occurrences"], path, _inverse(FAILURES_COLUMNS))
    _check_range(
        frame,
        ["occurrences"],
        path,
        _inverse(FAILURES_COLUMNS),
        whole=True,
        what="a whole number of at least 0",
    )
    return frame


def read_exceptions_csv(path: Path) -> pd.DataFrame:
    frame, _ = _frame(path, EXCEPTIONS_COLUMNS)
    frame = _to_numeric(frame, ["count"], path, _inverse(EXCEPTIONS_COLUMNS))
    _check_range(
        frame, ["count"], path, _inverse(EXCEPTIONS_COLUMNS), whole=True, what="a whole number of at least 0"
    )
    return frame


def read_resources_csv(path: Path) -> pd.DataFrame:
    mapping = {c.name: c.name for c in RESOURCE_COLUMNS}
    frame, _ = _frame(path, mapping, large=True)
    frame = _to_numeric(frame, [c for c in RESOURCES_NUMERIC if c not in RESOURCES_MAY_BE_EMPTY], path, {})
    frame = _to_numeric(frame, RESOURCES_MAY_BE_EMPTY, path, {}, allow_na=RESOURCES_MAY_BE_EMPTY)
    # Times, sizes, CPU shares, process ids and counts alike are finite and never negative.
    _check_range(frame, list(RESOURCES_NUMERIC), path, {})
    roles = set(frame["role"].unique())
    unknown = roles - set(rf.RESOURCE_ROLES)
    if unknown:
        i = int(np.flatnonzero(frame["role"].isin(unknown).to_numpy())[0])
        raise RunFolderError(
            f"role {frame['role'].iloc[i]!r} is neither {' nor '.join(map(repr, rf.RESOURCE_ROLES))}",
            file=path,
            row=i + 2,
            column="role",
        )
    return frame


# --- JSON --------------------------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise RunFolderError("is empty: the run may have been killed while writing it", file=path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunFolderError(
            f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", file=path
        ) from None


def _read_json_object(path: Path) -> Mapping[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise RunFolderError(f"must hold a JSON object, not {type(data).__name__}", file=path)
    return data


def read_run_json(path: Path) -> RunInfo:
    """run.json, typed and checked key by key by the run folder's contract."""
    data = _read_json_object(path)
    try:
        return RunInfo.from_json(data, file=str(path))
    except rf.RunFolderError as exc:
        raise RunFolderError(exc.problem, file=exc.file, key=exc.key or None) from None


def validate_config(config: Mapping[str, Any], source: str) -> BenchmarkConfig:
    """A performance_config.json through the library's one validator; its errors as `ThresholdsError`
    (exit 2) naming the file and the key."""
    try:
        return config_from_mapping(dict(config), source)
    except BenchmarkConfigError as exc:
        raise ThresholdsError(exc.problem, file=exc.file, key=exc.key or None) from None


ARRIVAL_NUMBERS = ("duration_s", "target_rate", "rate_start", "rate_end", "achieved_rate")
ARRIVAL_COUNTS = ("stage", "started", "dropped")


def read_arrival(path: Path) -> Any:
    """arrival.json: an object whose `stages` list holds one object per stage, its rates and durations
    finite numbers of at least 0, its counts whole numbers of at least 0 (a bare list of stages, as an
    earlier version wrote, reads too)."""
    data = read_json(path)
    if isinstance(data, dict):
        stages, where = data.get("stages", []), "stages"
    elif isinstance(data, list):
        stages, where = data, ""
    else:
        raise RunFolderError(f"must hold a JSON object with 'stages', not {type(data).__name__}", file=path)
    if not isinstance(stages, list):
        raise RunFolderError("must be a list of stages", file=path, key=where)
    for i, st in enumerate(stages):
        at = f"{where}[{i}]"
        if not isinstance(st, dict):
            raise RunFolderError("must be an object", file=path, key=at)
        for k in (*ARRIVAL_NUMBERS, *ARRIVAL_COUNTS):
            if k not in st:
                continue
            v = st[k]
            whole = k in ARRIVAL_COUNTS
            if not _is_number(v) or v < 0 or (whole and v != int(v)):
                kind = "a whole number" if whole else "a finite number"
                raise RunFolderError(f"must be {kind} of at least 0, not {v!r}", file=path, key=f"{at}.{k}")
    return data


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def read_locust_json(path: Path) -> tuple[Mapping[str, Any], ...]:
    """Locust's `--json-file` output: a list of per-entry stats with `response_times` histograms."""
    data = read_json(path)
    if not isinstance(data, list):
        raise RunFolderError(f"must hold a JSON list of entries, not {type(data).__name__}", file=path)
    entries: list[Mapping[str, Any]] = []
    for i, e in enumerate(data):
        where = f"[{i}]"
        if not isinstance(e, dict):
            raise RunFolderError("is not an object", file=path, key=where)
        for k in ("name", "method"):
            if not isinstance(e.get(k), str):
                raise RunFolderError("is missing or not a string", file=path, key=f"{where}.{k}")
        for k in ("num_requests", "num_failures", "total_response_time", "max_response_time"):
            if not _is_number(e.get(k)) or e[k] < 0:
                raise RunFolderError(
                    f"is missing or not a finite number of at least 0: {e.get(k)!r}",
                    file=path,
                    key=f"{where}.{k}",
                )
        if e["num_failures"] > e["num_requests"]:
            raise RunFolderError(
                f"{e['num_failures']} failures of {e['num_requests']} requests: failures cannot exceed "
                "requests",
                file=path,
                key=f"{where}.num_failures",
            )
        mn = e.get("min_response_time")
        if mn is not None and (not _is_number(mn) or mn < 0):
            raise RunFolderError(
                f"must be null or a finite number of at least 0, not {mn!r}",
                file=path,
                key=f"{where}.min_response_time",
            )
        rt = e.get("response_times")
        if not isinstance(rt, dict):
            raise RunFolderError("is missing or not an object", file=path, key=f"{where}.response_times")
        try:
            hist = {int(float(k)): v for k, v in rt.items()}
        except (TypeError, ValueError, OverflowError):
            raise RunFolderError(
                "must map response times to counts (numbers)", file=path, key=f"{where}.response_times"
            ) from None
        for t, c in hist.items():
            if t < 0 or not _is_number(c) or c < 0 or c != int(c):
                raise RunFolderError(
                    f"maps {t} ms to {c!r}: times and counts must be whole numbers of at least 0",
                    file=path,
                    key=f"{where}.response_times",
                )
        hist = {t: int(c) for t, c in hist.items()}
        entries.append({**e, "response_times": hist})
    return tuple(entries)


def read_benchmarks(path: Path) -> pd.DataFrame:
    """pytest-benchmark's JSON layout: `benchmarks[]` of `{name, group, stats{min, max, mean, ...}}`,
    in seconds."""
    data = _read_json_object(path)
    benches = data.get("benchmarks")
    if not isinstance(benches, list):
        raise RunFolderError("is missing or not a list", file=path, key="benchmarks")
    rows: list[dict[str, Any]] = []
    for i, b in enumerate(benches):
        where = f"benchmarks[{i}]"
        if not isinstance(b, dict) or not isinstance(b.get("name"), str):
            raise RunFolderError("needs a string 'name'", file=path, key=where)
        st = b.get("stats")
        if not isinstance(st, dict):
            raise RunFolderError("is missing or not an object", file=path, key=f"{where}.stats")
        row: dict[str, Any] = {"name": b["name"], "group": b.get("group") or "bench"}
        for k in ("min", "max", "mean"):
            if not _is_number(st.get(k)) or st[k] < 0:
                raise RunFolderError(
                    f"is missing or not a finite number of at least 0: {st.get(k)!r}",
                    file=path,
                    key=f"{where}.stats.{k}",
                )
            row[k] = float(st[k])
        for k in ("median", "stddev", "rounds", "ops"):
            row[k] = float(st[k]) if _is_number(st.get(k)) else math.nan
        data_points = st.get("data")
        if isinstance(data_points, list) and data_points and all(_is_number(x) for x in data_points):
            row["data"] = tuple(float(x) for x in data_points)
        else:
            row["data"] = None
        extra = b.get("extra_info")
        failed = extra.get("failed_rounds") if isinstance(extra, dict) else None
        row["failed_rounds"] = int(failed) if isinstance(failed, int | float) and _is_number(failed) else 0
        # Numeric measures a benchmark reported (RSS growth, slow requests, connections left over...).
        row["extra"] = (
            {str(k): float(v) for k, v in extra.items() if _is_number(v) and k != "failed_rounds"}
            if isinstance(extra, dict)
            else {}
        )
        rows.append(row)
    # Benchmarks none of whose rounds succeeded (the library lists them apart, without stats).
    failed_list = data.get("failed_benchmarks", [])
    for i, b in enumerate(failed_list if isinstance(failed_list, list) else []):
        if not isinstance(b, dict) or not isinstance(b.get("name"), str):
            raise RunFolderError("needs a string 'name'", file=path, key=f"failed_benchmarks[{i}]")
        n = b.get("failed_rounds")
        rows.append(
            {
                "name": b["name"],
                "group": b.get("group") or "bench",
                **dict.fromkeys(("min", "max", "mean", "median", "stddev", "rounds", "ops"), math.nan),
                "data": None,
                "failed_rounds": int(n) if isinstance(n, int | float) and _is_number(n) else 1,
                "extra": {},
            }
        )
    columns = [
        "name",
        "group",
        "min",
        "max",
        "mean",
        "median",
        "stddev",
        "rounds",
        "ops",
        "data",
        "failed_rounds",
        "extra",
    ]
    return pd.DataFrame(rows, columns=columns)


# --- the exact request record -----------------------------------------------------------------------


def _kind(arrow_type: Any) -> str:
    """The contract's kind (`float64`, `int64`, `bool`, `string`) of a parquet column's arrow type."""
    import pyarrow as pa

    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if pa.types.is_floating(t):
        return "float64"
    if pa.types.is_integer(t):
        return "int64"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_null(t):
        return "null"
    return str(t)


def _readable(found: str, kind: str) -> bool:
    """A column of kind `found` reads as the contract's `kind`: the same, all null, or integers as floats."""
    return found in (kind, "null") or (kind == "float64" and found == "int64")


def read_record(folder: Path, with_stream_columns: bool = True) -> pd.DataFrame:
    """The exact record: every `requests/*.parquet` part, only the columns the analysis needs.

    One pass over the folder: every part's footer is checked first (columns, types), then the parts
    are read, a few ahead on two threads while the last ones are copied, into arrays of the whole
    record's length. Small parts (a run writes one a second) are joined into batches of about
    `READ_BATCH_ROWS` before they are copied, so a long run's thousands of parts cost little more than
    a few large ones. The record is never held twice: peak memory is the columns the analysis uses plus
    a batch and the parts read ahead. Labels come back as categoricals, so ten million rows take a few
    hundred MB. Stream columns (`ttft_ms`, `tokens`, `intended_start`) that hold no value in any part
    are not loaded at all. A bad value is named by its part and row.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(folder.glob("*.parquet"))
    reading = [*RECORD_READ, *(RECORD_READ_STREAM if with_stream_columns else ())]
    footers: list[Any] = []
    layouts: list[tuple[int, list[str]]] = []
    holding: set[str] = set()
    # Parts almost always share one schema: each distinct one is checked once.
    schemas: list[tuple[Any, set[str]]] = []
    for part in parts:
        try:
            metadata = pq.read_metadata(part)
        except (pa.ArrowException, OSError) as exc:
            raise RunFolderError(f"is not a readable parquet file ({exc})", file=part) from None
        known = next((names for schema, names in schemas if schema.equals(metadata.schema)), None)
        if known is None:
            known = _checked_columns(part, metadata)
            schemas.append((metadata.schema, known))
        footers.append(metadata)
        layouts.append((metadata.num_rows, [c for c in reading if c in known]))
        holding.update(
            c
            for c in reading
            if c in RECORD_READ_STREAM and c in known and c not in holding and _may_hold_values(metadata, c)
        )
    # A stream column no part holds a value in (statistics without a minimum: all NaN or null) is not
    # read at all: three such columns of ten million rows are 240 MB read only to be dropped.
    absent = {c for c in RECORD_READ_STREAM if c not in holding}
    layouts = [(n, [c for c in wanted if c not in absent]) for n, wanted in layouts]
    lengths = [n for n, _ in layouts]
    names = [c for c in reading if any(c in wanted for _, wanted in layouts)]

    def read(i: int) -> Any:
        wanted = layouts[i][1]
        try:
            # The whole part read at once and decoded from memory: handed the path, Arrow took twice as
            # long for parts of 50,000 rows (200 of them: 0.52 s on two threads, not 0.24).
            data = parts[i].read_bytes()
            file = pq.ParquetFile(
                pa.py_buffer(data),
                metadata=footers[i],
                read_dictionary=[c for c in RECORD_CATEGORICAL if c in wanted],
            )
            # A small part is decoded on its reading thread: handing its columns to Arrow's pool costs more.
            table = file.read(columns=wanted, use_threads=lengths[i] > READ_BATCH_ROWS // 4)
        except (pa.ArrowException, OSError) as exc:
            raise RunFolderError(f"is not a readable parquet file ({exc})", file=parts[i]) from None
        if len(table) != lengths[i]:
            raise RunFolderError(f"holds {len(table)} rows where its footer says {lengths[i]}", file=parts[i])
        _check_record_nulls(table, [parts[i]], [lengths[i]])
        return table

    columns = _RecordColumns(names, sum(lengths))
    batch: list[Any] = []

    def copy_batch() -> None:
        if len(batch) > 1:
            # One dictionary per label column and one chunk per column: a few calls per batch.
            columns.add(pa.concat_tables(batch).unify_dictionaries().combine_chunks())
        elif batch:
            columns.add(batch[0])
        batch.clear()

    with ThreadPoolExecutor(max_workers=2) as reader:
        pending: deque[Future[Any]] = deque()
        submitted, ahead = 0, 0

        def read_ahead() -> None:
            """Parts in reading up to a batch's rows (and at least one), no further."""
            nonlocal submitted, ahead
            while submitted < len(parts) and (not pending or ahead < READ_BATCH_ROWS):
                pending.append(reader.submit(read, submitted))
                ahead += lengths[submitted]
                submitted += 1

        read_ahead()
        for i in range(len(parts)):
            table = pending.popleft().result()
            ahead -= lengths[i]
            read_ahead()  # the next parts are read while this one is copied
            if batch and (
                not table.schema.equals(batch[0].schema)
                or sum(map(len, batch)) + len(table) > READ_BATCH_ROWS
            ):
                copy_batch()
            batch.append(table)
            del table
        copy_batch()
    record = columns.frame()
    _check_record_values(record, parts, lengths)
    return record


READ_BATCH_ROWS = 1 << 18
"""Rows of small parts joined before they are copied, and rows read ahead of the copy."""


def _checked_columns(part: Path, metadata: Any) -> set[str]:
    """The record's columns a part holds, each checked against the contract's type."""
    schema = metadata.schema.to_arrow_schema()
    kinds = {f.name: _kind(f.type) for f in schema}
    for column in RECORD_COLUMNS:
        if column.name not in kinds:
            if column.required:
                raise RunFolderError(
                    "lacks a required column of the exact record", file=part, column=column.name
                )
            continue
        if not _readable(kinds[column.name], column.kind):
            raise RunFolderError(
                f"has type {kinds[column.name]}, the record needs {column.kind}",
                file=part,
                column=column.name,
            )
    return set(kinds)


def _may_hold_values(metadata: Any, column: str) -> bool:
    """False when the part's statistics show that `column` holds no number (only NaN or null): pyarrow
    leaves NaN out of a column chunk's minimum and maximum. A chunk without statistics may hold any."""
    index = metadata.schema.names.index(column)
    for g in range(metadata.num_row_groups):
        stats = metadata.row_group(g).column(index).statistics
        if stats is None or stats.has_min_max:
            return True
    return False


def _where(row: int, parts: Sequence[Path], lengths: Sequence[int]) -> tuple[Path, int]:
    """The part and the row within it (counted from 0, as parquet readers count) of a joined row."""
    for part, n in zip(parts, lengths, strict=True):
        if row < n:
            return part, row
        row -= n
    return parts[-1], row


def _check_record_nulls(table: Any, parts: Sequence[Path], lengths: Sequence[int]) -> None:
    for col in RECORD_NOT_NULL:
        if table.column(col).null_count:
            i = int(np.flatnonzero(table.column(col).is_null().to_numpy(zero_copy_only=False))[0])
            part, row = _where(i, parts, lengths)
            raise RunFolderError("is null where the record needs a value", file=part, row=row, column=col)


def record_from_tables(tables: Sequence[Any]) -> pd.DataFrame:
    """The record's DataFrame (as `read_record` gives it) from Arrow tables of the record's schema.

    The live verdict (`compliance_loadtest.plugin.live`) hands the tables it holds in memory here, so its
    figures come from the same frame the analysis computes them from."""
    names = [c for c in (*RECORD_READ, *RECORD_READ_STREAM) if any(c in t.column_names for t in tables)]
    columns = _RecordColumns(names, sum(len(t) for t in tables))
    for t in tables:
        columns.add(t)
    return columns.frame()


class _Labels:
    """A label column as categorical codes, filled chunk by chunk: each chunk's own dictionary is
    mapped onto the categories seen so far (in order of first appearance), so no string is ever
    built per row. Codes stay eight bits wide until there are too many categories for them."""

    def __init__(self, rows: int):
        self.codes: npt.NDArray[np.signedinteger[Any]] = np.empty(rows, dtype=np.int8)
        self.index: dict[str, int] = {}

    def add(self, start: int, chunk: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(chunk)
        if pa.types.is_null(chunk.type) or chunk.null_count == n:
            self.codes[start : start + n] = -1
            return
        if not pa.types.is_dictionary(chunk.type):
            chunk = pc.dictionary_encode(chunk)
        values = chunk.dictionary.to_pylist()
        mapped = [-1 if v is None else self.index.setdefault(v, len(self.index)) for v in values]
        limit = np.iinfo(self.codes.dtype).max
        if len(self.index) >= limit:
            wider = np.int16 if len(self.index) < np.iinfo(np.int16).max else np.int32
            self.codes = self.codes.astype(wider)
        indices = chunk.indices
        if indices.null_count:
            # A null label: one past the dictionary, which maps to -1 (pandas' missing category).
            indices = pc.fill_null(indices, len(values))
            mapped.append(-1)
        lookup = np.asarray(mapped, dtype=self.codes.dtype)
        # `take` into the slice: no temporary, and under half the time of `lookup[indices]`.
        np.take(lookup, indices.to_numpy(), out=self.codes[start : start + n], mode="clip")

    def categorical(self) -> pd.Categorical[str]:
        return pd.Categorical.from_codes(self.codes, categories=pd.Index(list(self.index)), validate=False)


class _RecordColumns:
    """The record's columns for `rows` rows, filled table by table in order: numbers straight into
    numpy arrays of the record's types (integers and all-null chunks become floats), labels into
    categorical codes (`_Labels`)."""

    NUMPY = {"float64": np.float64, "int64": np.int64, "bool": np.bool_}

    def __init__(self, names: Sequence[str], rows: int):
        self.rows = rows
        self.filled = 0
        self.labels = {c: _Labels(rows) for c in names if RECORD_BY_NAME[c].kind == "string"}
        self.numbers: dict[str, npt.NDArray[Any]] = {
            c: np.empty(rows, dtype=self.NUMPY[RECORD_BY_NAME[c].kind]) for c in names if c not in self.labels
        }

    def add(self, table: Any) -> None:
        import pyarrow as pa

        start, n = self.filled, len(table)
        for name, labels in self.labels.items():
            if name not in table.column_names:
                labels.codes[start : start + n] = -1
                continue
            at = start
            for chunk in table.column(name).chunks:
                labels.add(at, chunk)
                at += len(chunk)
        for name, out in self.numbers.items():
            if name not in table.column_names:
                out[start : start + n] = np.nan
                continue
            column = table.column(name)
            if out.dtype == np.float64 and not pa.types.is_float64(column.type):
                column = column.cast(pa.float64())  # integers of an older writer, or all null
            at = start
            for chunk in column.chunks:
                out[at : at + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
                at += len(chunk)
        self.filled += n

    def frame(self) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for name in (*RECORD_READ, *RECORD_READ_STREAM):
            if name in self.labels:
                data[name] = self.labels[name].categorical()
            elif name in self.numbers:
                values = self.numbers[name]
                # A stream column with no value in any row is left out, as if no part had it.
                if name in RECORD_READ_STREAM and not bool((~np.isnan(values)).any()):
                    continue
                data[name] = values
        return _fill_defaults(pd.DataFrame(data, copy=False))


# The record's numbers and their ranges: (column, what a value must be, may it be NaN, may it be negative).
RECORD_RANGES = (
    ("timestamp", "a finite epoch time of at least 0", False, False),
    ("response_time_ms", "a finite time of at least 0 ms", False, False),
    ("ttft_ms", "a finite time of at least 0 ms (or NaN on a row that is no stream)", True, False),
    ("tokens", "a finite count of at least 0 (or NaN on a row that is no stream)", True, False),
    ("intended_start", "a finite epoch time (or NaN outside arrival-rate runs)", True, False),
)


def _check_record_values(record: pd.DataFrame, parts: Sequence[Path], lengths: Sequence[int]) -> None:
    """NaN, infinite or negative numbers where the record documents a finite, non-negative one, named by
    part and row."""
    for col, what, nan_ok, negative_ok in RECORD_RANGES:
        if col not in record:
            continue
        values = record[col].to_numpy(dtype=np.float64)
        # One pass for the usual case: every value finite and at least 0 (NaN compares false).
        if bool((values >= 0).all()) and bool((values < np.inf).all()):
            continue
        nan = np.isnan(values)
        bad = ~nan & ~np.isfinite(values)
        if not nan_ok:
            bad |= nan
        if not negative_ok:
            bad |= ~nan & (values < 0)
        if bool(bad.any()):
            part, row = _where(int(np.flatnonzero(bad)[0]), parts, lengths)
            value = values[int(np.flatnonzero(bad)[0])]
            raise RunFolderError(f"{value:g} is not {what}", file=part, row=row, column=col)


def _fill_defaults(record: pd.DataFrame) -> pd.DataFrame:
    """Labels absent from (older) parts, null or empty read as the contract's defaults: `group` from the
    request type (`run_folder.default_group`), `tags` empty. Stream columns stay absent when no part
    has a value in them."""
    n = len(record)
    group = record.get("group")
    if group is None or bool(group.isna().any()) or bool((group == "").any()):
        # The default per distinct request type, looked up once per category.
        rt = record["request_type"]
        codes = rt.cat.codes.to_numpy() if isinstance(rt.dtype, pd.CategoricalDtype) else None
        if codes is not None:
            table = np.array([rf.default_group(str(t)) for t in rt.cat.categories] + [rf.DEFAULT_GROUP])
            default = table[codes]  # code -1 (a null request type) picks the last entry
        else:
            default = np.array([rf.default_group(str(t)) for t in rt.to_numpy()], dtype=object)
        if group is not None:
            given = group.astype(object).to_numpy()
            default = np.where(pd.isna(given) | (given == ""), default, given)
        record["group"] = pd.Categorical(default)
    tags_default = RECORD_BY_NAME["tags"].default
    if "tags" not in record:
        record["tags"] = pd.Categorical(np.full(n, tags_default))
    elif bool(record["tags"].isna().any()):
        record["tags"] = (
            record["tags"].cat.add_categories([tags_default]).fillna(tags_default)
            if tags_default not in record["tags"].cat.categories
            else record["tags"].fillna(tags_default)
        )
    record["success"] = record["success"].astype(bool)
    return record
