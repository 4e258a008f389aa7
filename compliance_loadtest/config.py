"""`performance_config.json`, the seed suite's configuration file: its one validator.

`load_config` reads a file into a frozen `BenchmarkConfig`; `config_from_mapping` validates one already
parsed. Every key is optional; anything wrong (an unknown key, a wrong type, a number that is not
finite or out of range, NaN and infinity included) is a `BenchmarkConfigError` naming the file and the
dotted key. The suite command, the benchmark users and the analysis (its `config.*` threshold rules)
all read the file through it, so they agree on what a valid file is.

Pure (the standard library only): the analysis imports it without Locust.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from compliance_loadtest.errors import UsageError

__all__ = [
    "THRESHOLD_KEYS",
    "BenchmarkConfig",
    "BenchmarkConfigError",
    "LocustSettings",
    "Thresholds",
    "config_from_mapping",
    "duration_seconds",
    "load_config",
]


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
THRESHOLD_KEYS = ("api_response_time", "database_query_time", "memory_increase_mb")

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
    thr = _section(top.get("thresholds", {}), file, "thresholds", THRESHOLD_KEYS)
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
                for k in THRESHOLD_KEYS
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
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise BenchmarkConfigError(file, prefix + key, f"expected a number greater than 0, got {value!r}")
    if not math.isfinite(value):  # NaN and Infinity, which Python's JSON parser accepts
        raise BenchmarkConfigError(
            file, prefix + key, f"expected a finite number greater than 0, got {value!r}"
        )
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
