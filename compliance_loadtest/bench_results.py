"""The pure half of the microbenchmarks: their results, in pytest-benchmark's layout.

`BenchmarkResult` collects the measured rounds of one benchmark (times in seconds, warm-up excluded);
`stats_of` computes the statistics exactly as pytest-benchmark's `Stats` does (same quartile method,
same Tukey fences); `results_document` lays a run's results out as pytest-benchmark's
`--benchmark-json` file and `write_results` writes it atomically, so a reader never sees half a file.
The file's name in the run folder is `run_folder.BENCHMARK_RESULTS_JSON`; the benchmarks'
configuration (`performance_config.json`) is read by `compliance_loadtest.config`.

This module is pure (no Locust import, no state shared between runs), so the analysis and tests can
use it without gevent's patching.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import tempfile
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The pytest-benchmark file format this layout follows (its `version` field).
FORMAT_VERSION = "5.3.1"


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
