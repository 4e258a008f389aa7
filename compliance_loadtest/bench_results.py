"""The pure half of the microbenchmarks: their configuration, and their results in pytest-benchmark's layout.

`load_config` reads a `performance_config.json` in the seed suite's format into a frozen
`BenchmarkConfig`; anything wrong is a `BenchmarkConfigError` naming the file and the key. It is the
one validator of that format: the suite command (`_suite.read_seed_config`) reads the file through it.

`BenchmarkResult` collects the measured rounds of one benchmark (times in seconds, warm-up excluded);
`stats_of` computes the statistics exactly as pytest-benchmark's `Stats` does (same quartile method,
same Tukey fences); `results_document` lays a run's results out as pytest-benchmark's
`--benchmark-json` file and `write_results` writes it atomically, so a reader never sees half a file.
The file's name in the run folder is `run_folder.BENCHMARK_RESULTS_JSON`.

This module is pure (no Locust import, no state shared between runs), so the analysis and tests can
use it without gevent's patching.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import tempfile
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from compliance_loadtest.errors import UsageError

# The pytest-benchmark file format this layout follows (its `version` field).
FORMAT_VERSION = "5.3.1"


# --------------------------------------------------------------------------------------------------
# Configuration


class BenchmarkConfigError(UsageError):
    """A `performance_config.json` that cannot be used; the message names the file and the key."""

    title = "Bad --benchmark-config"

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        super().__init__(f"{file}: key '{key}': {problem}" if key else f"{file}: {problem}")


@dataclass(frozen=True)
class LocustSettings:
    """The `locust` block: the load test the seed's runner started after the benchmarks."""

    users: int = 10
    spawn_rate: float = 2.0
    duration: str = "60s"
    """As given, or `Ns` for a number of seconds; always a valid, non-zero duration."""
    host: str = ""
    """An http(s) URL, or empty when the file gives none."""

    @property
    def duration_s(self) -> int:
        """The duration in seconds."""
        return duration_seconds(self.duration)


@dataclass(frozen=True)
class Thresholds:
    """The `thresholds` block, in seconds and megabytes (read by the analysis; kept here as given)."""

    api_response_time: float = 2.0
    database_query_time: float = 1.0
    memory_increase_mb: float = 100.0


@dataclass(frozen=True)
class BenchmarkConfig:
    """A validated `performance_config.json`. Defaults are the seed suite's."""

    warmup_iterations: int = 3
    """Rounds run before measuring, to warm caches and connections; they reach no stats."""
    benchmark_rounds: int = 10
    """Measured rounds of every benchmark, per user."""
    run_load_tests: bool = False
    locust: LocustSettings = field(default_factory=LocustSettings)
    thresholds: Thresholds = field(default_factory=Thresholds)
    source: str = "defaults"
    """The file it came from, or `defaults`."""
    given: frozenset[str] = frozenset()
    """The keys the file set, dotted (`benchmark_rounds`, `locust.users`, `thresholds.api_response_time`);
    every other value is a default. Lets a reader put the file between its own defaults and options."""


_TOP_KEYS = ("warmup_iterations", "benchmark_rounds", "run_load_tests", "locust", "thresholds")
_LOCUST_KEYS = ("users", "spawn_rate", "duration", "host")
_THRESHOLD_KEYS = ("api_response_time", "database_query_time", "memory_increase_mb")

_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


def duration_seconds(text: str) -> int:
    """Seconds in `120`, `120s`, `2m`, `1h30m` or `1h30m15s` (surrounding spaces ignored).

    ValueError for anything else; zero is a valid answer here, callers decide whether it is allowed.
    """
    value = text.strip()
    if re.fullmatch(r"[0-9]+", value):
        return int(value)
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        raise ValueError(f"{text!r} is not a duration")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def load_config(path: str | Path) -> BenchmarkConfig:
    """Read and validate a `performance_config.json` (the seed's keys; every key optional)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchmarkConfigError(file, "", f"cannot be read ({exc.strerror or exc})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchmarkConfigError(
            file, "", f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    return config_from_mapping(raw, file)


def config_from_mapping(raw: object, file: str = "<config>") -> BenchmarkConfig:
    """Validate an already parsed configuration; `file` is only used in messages."""
    top = _section(raw, file, "", _TOP_KEYS)
    d = BenchmarkConfig()
    loc = _section(top.get("locust", {}), file, "locust", _LOCUST_KEYS)
    thr = _section(top.get("thresholds", {}), file, "thresholds", _THRESHOLD_KEYS)
    given = {k for k in top if k not in ("locust", "thresholds")}
    given |= {f"locust.{k}" for k in loc} | {f"thresholds.{k}" for k in thr}
    return BenchmarkConfig(
        warmup_iterations=_int(top, "warmup_iterations", d.warmup_iterations, file, minimum=0),
        benchmark_rounds=_int(top, "benchmark_rounds", d.benchmark_rounds, file, minimum=1),
        run_load_tests=_bool(top, "run_load_tests", d.run_load_tests, file),
        locust=LocustSettings(
            users=_int(loc, "users", d.locust.users, file, minimum=1, prefix="locust."),
            spawn_rate=_number(loc, "spawn_rate", d.locust.spawn_rate, file, prefix="locust."),
            duration=_duration(loc, d.locust.duration, file),
            host=_host(loc, file),
        ),
        thresholds=Thresholds(
            **{
                k: _number(thr, k, getattr(d.thresholds, k), file, prefix="thresholds.")
                for k in _THRESHOLD_KEYS
            }
        ),
        source=file,
        given=frozenset(given),
    )


def _section(raw: object, file: str, key: str, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BenchmarkConfigError(file, key, f"expected a JSON object, got {_json_type(raw)}")
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        name = f"{key}.{unknown[0]}" if key else unknown[0]
        raise BenchmarkConfigError(file, name, f"unknown key (known keys: {', '.join(allowed)})")
    return raw


def _int(s: Mapping[str, Any], key: str, default: int, file: str, *, minimum: int, prefix: str = "") -> int:
    value = s.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BenchmarkConfigError(
            file, prefix + key, f"expected a whole number of at least {minimum}, got {value!r}"
        )
    return value


def _number(s: Mapping[str, Any], key: str, default: float, file: str, *, prefix: str = "") -> float:
    value = s.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise BenchmarkConfigError(file, prefix + key, f"expected a number greater than 0, got {value!r}")
    return float(value)


def _bool(s: Mapping[str, Any], key: str, default: bool, file: str) -> bool:
    value = s.get(key, default)
    if not isinstance(value, bool):
        raise BenchmarkConfigError(file, key, f"expected true or false, got {value!r}")
    return value


def _duration(s: Mapping[str, Any], default: str, file: str) -> str:
    """`120` (a number or a string of digits) becomes `120s`; h/m/s text is kept; zero is refused."""
    value = s.get("duration", default)
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    seconds = None
    if isinstance(text, str):
        with contextlib.suppress(ValueError):
            seconds = duration_seconds(text)
    if seconds is None:
        raise BenchmarkConfigError(
            file,
            "locust.duration",
            f'expected a duration in seconds or h/m/s units, such as 120, "60s", "5m" or "1h30m", '
            f"got {value!r}",
        )
    if seconds <= 0:
        raise BenchmarkConfigError(
            file, "locust.duration", f"must be longer than zero seconds, got {value!r}"
        )
    text = text.strip()
    return f"{text}s" if text.isdigit() else text


def _host(s: Mapping[str, Any], file: str) -> str:
    """Absent means none; given, it must be an http(s) URL with a host (an empty string is refused)."""
    if "host" not in s:
        return ""
    value = s["host"]
    text = value.strip() if isinstance(value, str) else ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BenchmarkConfigError(file, "locust.host", f"expected an http:// or https:// URL, got {value!r}")
    return text


def _json_type(value: object) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class BenchmarkResult:
    """The measured rounds of one benchmark, gathered from every user and worker that ran it."""

    name: str
    group: str
    data: list[float] = field(default_factory=list)
    """Durations of the successful measured rounds, in seconds."""
    failed_rounds: int = 0
    errors: list[str] = field(default_factory=list)
    """Distinct failure messages, in the order first seen."""
    rounds_expected: int = 0
    """Rounds the configuration asked for, summed over the users that ran this benchmark."""
    warmup_iterations: int = 0
    users: int = 0
    extra_info: dict[str, Any] = field(default_factory=dict)

    def merge(self, part: Mapping[str, Any]) -> None:
        """Add one user's part (the message a user sends when it finished a benchmark)."""
        self.data.extend(float(x) for x in part.get("data", ()))
        self.failed_rounds += int(part.get("failed_rounds", 0))
        for message in part.get("errors", ()):
            if message not in self.errors:
                self.errors.append(str(message))
        self.rounds_expected += int(part.get("rounds_expected", 0))
        self.warmup_iterations = max(self.warmup_iterations, int(part.get("warmup_iterations", 0)))
        self.users += 1
        for key, value in dict(part.get("extra_info", {})).items():
            if self.users == 1 or key not in self.extra_info:
                self.extra_info[key] = value
            elif isinstance(value, list) and isinstance(self.extra_info[key], list):
                self.extra_info[key] = self.extra_info[key] + value
            elif isinstance(value, int | float) and isinstance(self.extra_info[key], int | float):
                # Several users measured the same quantity: keep the worst (largest) figure.
                self.extra_info[key] = max(self.extra_info[key], value)
            else:
                self.extra_info[key] = value


def stats_of(data: Sequence[float]) -> dict[str, Any]:
    """pytest-benchmark's `Stats.as_dict()` for `data`, plus `data` and `iterations` (always 1).

    An empty `data` (every round failed) gives zeros, so the entry still exists and says `rounds: 0`.
    """
    n = len(data)
    if n == 0:
        zero: dict[str, Any] = dict.fromkeys(
            (
                "min",
                "max",
                "mean",
                "stddev",
                "median",
                "iqr",
                "q1",
                "q3",
                "ld15iqr",
                "hd15iqr",
                "ops",
                "total",
            ),
            0.0,
        )
        return {
            **zero,
            "rounds": 0,
            "iqr_outliers": 0,
            "stddev_outliers": 0,
            "outliers": "0;0",
            "data": [],
            "iterations": 1,
        }
    s = sorted(data)
    mean = statistics.mean(s)
    stddev = statistics.stdev(s) if n > 1 else 0
    q1, q3 = _quartiles(s)
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_outliers = sum(1 for x in data if x < low_fence or x > high_fence)
    stddev_outliers = sum(1 for x in data if x < mean - stddev or x > mean + stddev)
    total = sum(data)
    return {
        "min": s[0],
        "max": s[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": n,
        "median": statistics.median(s),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": s[0] if n == 1 else s[bisect_left(s, low_fence)],
        "hd15iqr": s[0] if n == 1 else s[bisect_right(s, high_fence) - 1],
        "ops": n / total if total else 0,
        "total": total,
        "data": list(data),
        "iterations": 1,
    }


def _quartiles(s: Sequence[float]) -> tuple[float, float]:
    """Q1 and Q3 of sorted data, by the method pytest-benchmark uses (Wikipedia's methods 2 and 3)."""
    n = len(s)
    if n == 1:
        return s[0], s[0]
    if n % 2:
        k, r = n // 4, n % 4
        if r == 1:
            return 0.25 * s[k - 1] + 0.75 * s[k], 0.75 * s[3 * k] + 0.25 * s[3 * k + 1]
        return 0.75 * s[k] + 0.25 * s[k + 1], 0.25 * s[3 * k + 1] + 0.75 * s[3 * k + 2]
    return statistics.median(s[: n // 2]), statistics.median(s[n // 2 :])


def benchmark_entry(result: BenchmarkResult, options: Mapping[str, Any]) -> dict[str, Any]:
    """One element of `benchmarks[]`: pytest-benchmark's `Metadata.as_dict()` for our benchmark."""
    extra = dict(result.extra_info)
    extra.update(
        {
            "rounds_expected": result.rounds_expected,
            "failed_rounds": result.failed_rounds,
            "errors": list(result.errors),
            "users": result.users,
        }
    )
    return {
        "group": result.group,
        "name": result.name,
        "fullname": f"{result.group}::{result.name}",
        "params": None,
        "param": None,
        "extra_info": extra,
        "options": {
            **options,
            "warmup": result.warmup_iterations > 0,
            "warmup_iterations": result.warmup_iterations,
        },
        "stats": stats_of(result.data),
    }


def results_document(
    results: Iterable[BenchmarkResult],
    *,
    options: Mapping[str, Any] | None = None,
    commit_info: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The whole file: `machine_info`, `commit_info`, `benchmarks[]` by name, `datetime`, `version`.

    As pytest-benchmark leaves out a benchmark that raised, a benchmark none of whose rounds succeeded
    is not in `benchmarks[]` (zeros there would pass every threshold); it is listed, with its failure
    messages, in `failed_benchmarks[]`, a key pytest-benchmark's tools ignore.
    """
    opts = {
        "timer": "time.perf_counter",
        "disable_gc": False,
        "min_rounds": 1,
        "max_time": 0,
        "min_time": 0,
        **(options or {}),
    }
    ordered = sorted(results, key=lambda r: r.name)
    return {
        "machine_info": machine_info(),
        "commit_info": dict(commit_info) if commit_info is not None else git_commit_info(),
        "benchmarks": [benchmark_entry(r, opts) for r in ordered if r.data],
        "failed_benchmarks": [
            {"group": r.group, "name": r.name, "failed_rounds": r.failed_rounds, "errors": list(r.errors)}
            for r in ordered
            if not r.data
        ],
        "datetime": (now or datetime.now(UTC)).isoformat(),
        "version": FORMAT_VERSION,
    }


def write_results(path: Path, document: Mapping[str, Any]) -> Path:
    """Write `document` to `path` through a temporary file and a rename, so no reader sees it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def machine_info() -> dict[str, Any]:
    """The load generator's platform, in the keys pytest-benchmark writes (`cpu` without py-cpuinfo)."""
    return {
        "node": platform.node(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "python_compiler": platform.python_compiler(),
        "python_implementation": platform.python_implementation(),
        "python_implementation_version": platform.python_version(),
        "python_version": platform.python_version(),
        "python_build": list(platform.python_build()),
        "release": platform.release(),
        "system": platform.system(),
        "cpu": {"count": os.cpu_count(), "arch_string_raw": platform.machine()},
    }


def git_commit_info(cwd: Path | None = None) -> dict[str, Any]:
    """The working directory's git commit, as pytest-benchmark records it (`unversioned` outside git)."""
    info: dict[str, Any] = {
        "id": "unversioned",
        "time": None,
        "author_time": None,
        "dirty": False,
        "project": "compliance-loadtest",
        "branch": "(unknown)",
    }

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip()

    try:
        info["id"] = git("rev-parse", "HEAD")
        info["dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
        info["time"] = git("show", "-s", "--pretty=format:%cI")
        info["author_time"] = git("show", "-s", "--pretty=format:%aI")
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        info["branch"] = "(detached head)" if branch == "HEAD" else branch
    except (OSError, subprocess.SubprocessError):
        pass
    return info
