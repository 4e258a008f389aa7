"""The run folder's contract, in code: what its writer (the Locust plugin) puts there and its reader
(the analysis) expects, defined once and imported by both.

    file names            RUN_JSON, SUMMARY_JSON, REQUESTS_DIR + part_name(), RESOURCES_CSV, locust_csv(),
                          LOCUST_JSON, LOCUST_HTML, BENCHMARK_RESULTS_JSON, ARRIVAL_JSON, ...
    the exact record      RECORD_COLUMNS (name, kind, default, in order), RECORD_CONTEXT_KEYS,
                          GROUP_BY_REQUEST_TYPE and default_group()
    resources.csv         RESOURCE_COLUMNS, RESOURCE_ROLES
    run.json              RunInfo and the dataclasses it nests: `RunInfo.from_json(data, file=...)` checks
                          every key's type and range and raises `RunFolderError` naming the file and key;
                          `to_json()` is what the writer writes

The meaning of every file, column and key: docs/run-folder.md. This module is pure: the standard
library only (no Locust, gevent, pyarrow or pandas), so the analysis can import it unpatched; the
pyarrow schema is built from it in `plugin/record.py`, the pandas types in `analysis/_load.py`.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar, cast

from compliance_loadtest.errors import UsageError

# --------------------------------------------------------------------------------------------------
# File names

RUN_JSON = "run.json"
SUMMARY_JSON = "summary.json"
REQUESTS_DIR = "requests"
"""The folder of the exact record's parquet parts."""
PART_GLOB = "part-*.parquet"
RESOURCES_CSV = "resources.csv"
LOCUST_PREFIX = "locust"
"""The prefix of Locust's own files when the library writes them (Locust's `--csv` prefix)."""
STATS_CSV_SUFFIX = "_stats.csv"
HISTORY_CSV_SUFFIX = "_stats_history.csv"
FAILURES_CSV_SUFFIX = "_failures.csv"
EXCEPTIONS_CSV_SUFFIX = "_exceptions.csv"
LOCUST_CSV_SUFFIXES = (STATS_CSV_SUFFIX, HISTORY_CSV_SUFFIX, FAILURES_CSV_SUFFIX, EXCEPTIONS_CSV_SUFFIX)
LOCUST_JSON = f"{LOCUST_PREFIX}.json"
LOCUST_HTML = f"{LOCUST_PREFIX}.html"
BENCHMARK_RESULTS_JSON = "benchmark_results.json"
ARRIVAL_JSON = "arrival.json"
CAPACITY_JSON = "capacity.json"
CAPACITY_SVG = "capacity.svg"
PERFORMANCE_CONFIG_JSON = "performance_config.json"
"""The seed suite's configuration; the analysis reads it from the run folder when present."""
REPORT_DIR = "report"
"""The folder of a suite run where the analysis writes its reports."""
REPORT_STEM = "performance_report_"
"""Reports are `performance_report_<YYYYmmdd_HHMMSS>.<suffix>`."""


def part_name(index: int) -> str:
    """The file name of the record's part number `index`: `part-000000.parquet`, ..."""
    return f"part-{index:06d}.parquet"


def locust_csv(suffix: str, prefix: str = LOCUST_PREFIX) -> str:
    """The name of one of Locust's CSV files: `locust_csv(STATS_CSV_SUFFIX)` is `locust_stats.csv`."""
    return f"{prefix}{suffix}"


def temporary_name(name: str) -> str:
    """The name a file is written under before it is renamed to `name`; readers skip names starting with
    `.`, so every file they see is complete."""
    return f".{name}.tmp"


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write `path` under its temporary name and rename it: a reader (or a run killed mid-write) sees
    the old file or the new one, never part of one. A write that fails (a full disk) leaves no
    temporary file behind, taking no space, and raises the `OSError`."""
    tmp = path.with_name(temporary_name(path.name))
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_failure(what: str, error: OSError) -> str:
    """What a failed write says, its cause first: `disk full writing requests/part-000012.parquet`."""
    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    return f"{'disk full' if full else error.strerror or type(error).__name__} writing {what}"


# --------------------------------------------------------------------------------------------------
# Columns

Kind = Literal["float64", "string", "int64", "bool"]


@dataclass(frozen=True)
class Column:
    """One column of the record or of resources.csv."""

    name: str
    kind: Kind
    required: bool = False
    """Every part has it with a value; a reader refuses a part without it. Other columns may be absent
    from parts of earlier versions and then read as `default`."""
    default: float | int | str | bool | None = None
    """What an absent value reads as (None: no default; `group`'s comes from `default_group`)."""
    context: bool = False
    """Producers give it through the request event's `context` dict, under the column's name."""


NAN = math.nan

RECORD_COLUMNS: tuple[Column, ...] = (
    Column("timestamp", "float64", required=True),
    Column("request_type", "string", required=True),
    Column("name", "string", required=True),
    Column("response_time_ms", "float64", required=True, default=NAN),
    Column("response_length", "int64", default=0),
    Column("success", "bool", required=True),
    Column("error", "string", default=""),
    Column("user_class", "string", default="", context=True),
    Column("worker", "string", default=""),
    Column("group", "string", context=True),
    Column("ttft_ms", "float64", default=NAN, context=True),
    Column("tokens", "float64", default=NAN, context=True),
    Column("intended_start", "float64", default=NAN, context=True),
    Column("tags", "string", default="", context=True),
)
"""The exact request record's columns, in the order every part has them."""
RECORD_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in RECORD_COLUMNS)
RECORD_BY_NAME: Mapping[str, Column] = {c.name: c for c in RECORD_COLUMNS}
RECORD_CONTEXT_KEYS: tuple[str, ...] = tuple(c.name for c in RECORD_COLUMNS if c.context)
"""The keys of a request event's `context` the record keeps, in column order."""

GROUP_BY_REQUEST_TYPE: Mapping[str, str] = {"SQL": "db", "WS": "websocket", "LLM": "ai", "BENCH": "bench"}
"""The default `group` per request type; every other request type is `DEFAULT_GROUP`."""
DEFAULT_GROUP = "api"


def default_group(request_type: str) -> str:
    """The `group` of a row whose request gave none (absent, null or empty), and of an entry of Locust's
    own files (which have no groups): by its request type."""
    return GROUP_BY_REQUEST_TYPE.get(request_type, DEFAULT_GROUP)


ROLE_TARGET = "target"
ROLE_LOAD_GENERATOR = "load-generator"
RESOURCE_ROLES = (ROLE_TARGET, ROLE_LOAD_GENERATOR)

RESOURCE_COLUMNS: tuple[Column, ...] = (
    Column("timestamp", "float64", required=True),
    Column("role", "string", required=True),
    Column("worker", "string", required=True),
    Column("pid", "int64", required=True),
    Column("rss_mb", "float64", required=True),
    Column("cpu_percent", "float64", required=True),
    Column("threads", "int64", required=True),
    Column("open_files", "int64", required=True),
)
"""resources.csv's columns, in order (its header row)."""
RESOURCE_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in RESOURCE_COLUMNS)


# --------------------------------------------------------------------------------------------------
# run.json


class RunFolderError(UsageError):
    """A file of the run folder that does not hold what the contract says; names the file and the key."""

    title = "Bad run folder"

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        super().__init__(f"{file}: key '{key}': {problem}" if key else f"{file}: {problem}")


EndedBy = Literal["normal", "SIGTERM", "SIGINT", "error"]
ENDED_BY: tuple[EndedBy, ...] = ("normal", "SIGTERM", "SIGINT", "error")
"""How a run ended: Locust's shutdown, a signal, or Locust's exit 2 after an unhandled exception."""
Role = Literal["local", "master"]
RUN_ROLES: tuple[Role, ...] = ("local", "master")

_T = TypeVar("_T")


class _Reader:
    """Reads one JSON object's keys with strict types, naming `file` and the dotted key on failure."""

    def __init__(self, data: object, file: str, prefix: str = "") -> None:
        self.file, self.prefix = file, prefix
        if not isinstance(data, dict):
            self.fail("", f"expected a JSON object, got {_json_type(data)}")
        self.data: dict[str, Any] = data

    def key(self, key: str) -> str:
        return f"{self.prefix}{key}" if key else self.prefix.rstrip(".")

    def fail(self, key: str, problem: str) -> NoReturn:
        raise RunFolderError(self.file, self.key(key), problem)

    def flag(self, key: str, default: bool) -> bool:
        v = self.data.get(key, default)
        return v if isinstance(v, bool) else self.fail(key, f"expected true or false, got {v!r}")

    def opt_flag(self, key: str) -> bool | None:
        v = self.data.get(key)
        return (
            v
            if v is None or isinstance(v, bool)
            else self.fail(key, f"expected true, false or null, got {v!r}")
        )

    def count(self, key: str, default: int = 0) -> int:
        v = self.data.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            self.fail(key, f"expected a whole number of at least 0, got {v!r}")
        return v

    def opt_count(self, key: str) -> int | None:
        return None if self.data.get(key) is None else self.count(key)

    def number(self, key: str, default: float = 0.0, minimum: float | None = 0.0) -> float:
        v = self.data.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.fail(key, f"expected a finite number, got {v!r}")
        if minimum is not None and v < minimum:
            self.fail(key, f"expected a number of at least {minimum:g}, got {v!r}")
        return float(v)

    def opt_number(self, key: str, minimum: float | None = 0.0) -> float | None:
        return None if self.data.get(key) is None else self.number(key, minimum=minimum)

    def text(self, key: str, default: str = "") -> str:
        v = self.data.get(key, default)
        return v if isinstance(v, str) else self.fail(key, f"expected a string, got {v!r}")

    def opt_text(self, key: str) -> str | None:
        v = self.data.get(key)
        return (
            v if v is None or isinstance(v, str) else self.fail(key, f"expected a string or null, got {v!r}")
        )

    def choice(self, key: str, choices: tuple[_T, ...]) -> _T | None:
        v = self.data.get(key)
        if v is not None and v not in choices:
            self.fail(key, f"expected one of {', '.join(map(str, choices))} or null, got {v!r}")
        return cast("_T | None", v)

    def timestamp(self, key: str) -> str | None:
        """An ISO 8601 time (`2026-09-21T14:13:20.000Z`) or null."""
        v = self.opt_text(key)
        if v is not None:
            try:
                datetime.fromisoformat(v)
            except ValueError:
                self.fail(key, f"expected an ISO 8601 time or null, got {v!r}")
        return v

    def strings(self, key: str) -> tuple[str, ...]:
        v = self.data.get(key, [])
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            self.fail(key, f"expected a list of strings, got {v!r}")
        return tuple(v)

    def string_map(self, key: str) -> dict[str, str]:
        v = self.data.get(key, {})
        if not isinstance(v, dict) or not all(isinstance(s, str) for s in v.values()):
            self.fail(key, f"expected an object of strings, got {v!r}")
        return dict(v)

    def count_map(self, key: str) -> dict[str, int]:
        v = self.data.get(key, {})
        if not isinstance(v, dict):
            self.fail(key, f"expected an object of whole numbers, got {v!r}")
        return {str(k): _Reader(v, self.file, self.key(key) + ".").count(str(k)) for k in v}

    def json_object(self, key: str) -> dict[str, Any]:
        v = self.data.get(key, {})
        return (
            dict(v) if isinstance(v, dict) else self.fail(key, f"expected a JSON object, got {_json_type(v)}")
        )

    def section(self, key: str) -> _Reader:
        return _Reader(self.data.get(key, {}), self.file, self.key(key) + ".")

    def opt_section(self, key: str) -> _Reader | None:
        return None if self.data.get(key) is None else self.section(key)

    def sections(self, key: str) -> list[_Reader]:
        v = self.data.get(key, [])
        if not isinstance(v, list):
            self.fail(key, f"expected a list, got {_json_type(v)}")
        return [_Reader(item, self.file, f"{self.key(key)}[{i}].") for i, item in enumerate(v)]


def _json_type(value: object) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


@dataclass(frozen=True)
class Workers:
    """The workers of a distributed run (all empty in a local run)."""

    expected: int = 0
    """`--expect-workers` (or `--processes`)."""
    seen: tuple[str, ...] = ()
    """Ids of the workers that connected."""
    lost: tuple[str, ...] = ()
    lost_reasons: Mapping[str, str] = field(default_factory=dict)
    """Why each lost worker counts as lost."""
    rows: Mapping[str, int] = field(default_factory=dict)
    """Record rows received from each worker."""

    def to_json(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "seen": list(self.seen),
            "lost": list(self.lost),
            "lost_reasons": dict(self.lost_reasons),
            "rows": dict(self.rows),
        }

    @classmethod
    def _read(cls, r: _Reader) -> Workers:
        return cls(
            expected=r.count("expected"),
            seen=r.strings("seen"),
            lost=r.strings("lost"),
            lost_reasons=r.string_map("lost_reasons"),
            rows=r.count_map("rows"),
        )


@dataclass(frozen=True)
class System:
    """The master's machine."""

    memory_total_mb: float | None = None
    cpu_count: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"memory_total_mb": self.memory_total_mb, "cpu_count": self.cpu_count}

    @classmethod
    def _read(cls, r: _Reader) -> System:
        return cls(memory_total_mb=r.opt_number("memory_total_mb"), cpu_count=r.opt_count("cpu_count"))


@dataclass(frozen=True)
class Record:
    """What was written of the exact record."""

    enabled: bool = True
    """False with `--no-request-record`."""
    rows: int = 0
    parts: int = 0
    agrees_with_locust: bool | None = None
    """As in summary.json: null until the end, when the record was off, or after a stats reset."""
    user_classes: Mapping[str, int] = field(default_factory=dict)
    """Rows written per user class (the `user_class` column), rows without one left out: which classes
    made requests, where `RunInfo.user_classes` says only which ones were given. Empty in run folders of
    earlier versions."""

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "rows": self.rows,
            "parts": self.parts,
            "agrees_with_locust": self.agrees_with_locust,
            "user_classes": dict(self.user_classes),
        }

    @classmethod
    def _read(cls, r: _Reader) -> Record:
        return cls(
            enabled=r.flag("enabled", True),
            rows=r.count("rows"),
            parts=r.count("parts"),
            agrees_with_locust=r.opt_flag("agrees_with_locust"),
            user_classes=r.count_map("user_classes"),
        )


@dataclass(frozen=True)
class ProcessResources:
    """One sampled process's figures over the run (from its resources.csv rows)."""

    role: str
    """`target` or `load-generator`."""
    worker: str
    pid: int
    samples: int = 0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_max_mb: float = 0.0
    rss_increase_mb: float = 0.0
    """End minus start: negative when the process shrank."""
    cpu_mean_percent: float = 0.0
    cpu_max_percent: float = 0.0
    saturated: bool = False
    """A load generator above 90% CPU for 5 samples in a row."""

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "worker": self.worker,
            "pid": self.pid,
            "samples": self.samples,
            "rss_start_mb": self.rss_start_mb,
            "rss_end_mb": self.rss_end_mb,
            "rss_max_mb": self.rss_max_mb,
            "rss_increase_mb": self.rss_increase_mb,
            "cpu_mean_percent": self.cpu_mean_percent,
            "cpu_max_percent": self.cpu_max_percent,
            "saturated": self.saturated,
        }

    @classmethod
    def _read(cls, r: _Reader) -> ProcessResources:
        role = r.text("role")
        if role not in RESOURCE_ROLES:
            r.fail("role", f"expected one of {', '.join(RESOURCE_ROLES)}, got {role!r}")
        return cls(
            role=role,
            worker=r.text("worker"),
            pid=r.count("pid"),
            samples=r.count("samples"),
            rss_start_mb=r.number("rss_start_mb"),
            rss_end_mb=r.number("rss_end_mb"),
            rss_max_mb=r.number("rss_max_mb"),
            rss_increase_mb=r.number("rss_increase_mb", minimum=None),
            cpu_mean_percent=r.number("cpu_mean_percent"),
            cpu_max_percent=r.number("cpu_max_percent"),
            saturated=r.flag("saturated", False),
        )


@dataclass(frozen=True)
class Resources:
    """The sampled processes' figures: the target's and each load generator's."""

    target: ProcessResources | None = None
    """None when the target was not sampled (remote, not found, not permitted)."""
    load_generators: tuple[ProcessResources, ...] = ()
    memory_increase_mb: float | None = None
    """The target's RSS growth over the run; None when it was not sampled."""

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target.to_json() if self.target is not None else None,
            "load_generators": [p.to_json() for p in self.load_generators],
            "memory_increase_mb": self.memory_increase_mb,
        }

    @classmethod
    def _read(cls, r: _Reader) -> Resources:
        target = r.opt_section("target")
        return cls(
            target=None if target is None else ProcessResources._read(target),
            load_generators=tuple(ProcessResources._read(g) for g in r.sections("load_generators")),
            memory_increase_mb=r.opt_number("memory_increase_mb", minimum=None),
        )


@dataclass(frozen=True)
class StoppedBy:
    """The threshold rule that stopped the run while it went (an `abort` rule broken over its window)."""

    rule: str = ""
    """The rule's id in the thresholds file."""
    at: str | None = None
    """ISO 8601 UTC: when the rule stopped the run."""
    entry: str = ""
    """The entry (or 'all of N selected') whose value broke the rule."""
    value: float | None = None
    """The rule's metric over the window, in the rule's unit (ms, ratio, ...)."""
    window_s: float = 0.0
    samples: int = 0
    """Requests of the entry in the window."""
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "at": self.at,
            "entry": self.entry,
            "value": self.value,
            "window_s": self.window_s,
            "samples": self.samples,
            "message": self.message,
        }

    @classmethod
    def _read(cls, r: _Reader) -> StoppedBy:
        return cls(
            rule=r.text("rule"),
            at=r.timestamp("at"),
            entry=r.text("entry"),
            value=r.opt_number("value", minimum=None),
            window_s=r.number("window_s"),
            samples=r.count("samples"),
            message=r.text("message"),
        )


@dataclass(frozen=True)
class RunInfo:
    """`run.json`: written at the start (`complete: false`, `ended_*` null) and again at the end.

    Every key is optional when read (absent keys take these defaults, so a run.json of an earlier version
    still reads; keys this version does not know are ignored); a key that is present must have the
    documented type and range.
    """

    started_at: str | None = None
    """ISO 8601 UTC: the test start, or the process start when the test never started."""
    ended_at: str | None = None
    ended_by: EndedBy | None = None
    exit_code: int | None = None
    """Locust's exit code (1 when requests failed); null until the end."""
    stopped_by: StoppedBy | None = None
    """The threshold rule that stopped the run early; null when none did."""
    host: str | None = None
    user_classes: tuple[str, ...] = ()
    locust_version: str | None = None
    role: Role | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """Every parsed option as a JSON value, secrets redacted."""
    workers: Workers = field(default_factory=Workers)
    load_generator_saturated: bool = False
    saturated_load_generators: tuple[str, ...] = ()
    load_profile: str | None = None
    system: System = field(default_factory=System)
    record: Record = field(default_factory=Record)
    resources: Resources = field(default_factory=Resources)
    complete: bool = False
    """The run ended through Locust's shutdown, no worker was lost, every output was written and the
    record agrees with Locust's totals."""
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    """Every file of the folder, relative paths."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object the writer writes, keys in the documented order."""
        return {
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
            "exit_code": self.exit_code,
            "stopped_by": self.stopped_by.to_json() if self.stopped_by is not None else None,
            "host": self.host,
            "user_classes": list(self.user_classes),
            "locust_version": self.locust_version,
            "role": self.role,
            "options": dict(self.options),
            "workers": self.workers.to_json(),
            "load_generator_saturated": self.load_generator_saturated,
            "saturated_load_generators": list(self.saturated_load_generators),
            "load_profile": self.load_profile,
            "system": self.system.to_json(),
            "record": self.record.to_json(),
            "resources": self.resources.to_json(),
            "complete": self.complete,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "files": list(self.files),
        }

    @classmethod
    def from_json(cls, data: object, file: str = RUN_JSON) -> RunInfo:
        """Validate a parsed run.json; `RunFolderError` names `file` and the first bad key."""
        r = _Reader(data, file)
        return cls(
            started_at=r.timestamp("started_at"),
            ended_at=r.timestamp("ended_at"),
            ended_by=r.choice("ended_by", ENDED_BY),
            exit_code=r.opt_count("exit_code"),
            stopped_by=None if (stop := r.opt_section("stopped_by")) is None else StoppedBy._read(stop),
            host=r.opt_text("host"),
            user_classes=r.strings("user_classes"),
            locust_version=r.opt_text("locust_version"),
            role=r.choice("role", RUN_ROLES),
            options=r.json_object("options"),
            workers=Workers._read(r.section("workers")),
            load_generator_saturated=r.flag("load_generator_saturated", False),
            saturated_load_generators=r.strings("saturated_load_generators"),
            load_profile=r.opt_text("load_profile"),
            system=System._read(r.section("system")),
            record=Record._read(r.section("record")),
            resources=Resources._read(r.section("resources")),
            complete=r.flag("complete", False),
            problems=r.strings("problems"),
            notes=r.strings("notes"),
            files=r.strings("files"),
        )
